//! Route scale: config load (TOML parse and every check) and table build for 10k, 100k
//! and 1M static routes, the memory each takes, and the lookup rate on those tables
//! against one probe of a hash map with as many entries, in the same run. A report, not a
//! test: `make bench` runs it and writes the result under docs/benchmarks.md.
//!
//! Prefixes follow the shape of an Internet table: most /24, then /22 to /16 and a few
//! shorter. Lookups go to random addresses, so most of them miss the longest lengths.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use appliance::config::{Config, HwProfile};
use appliance::tables::{NextHop, Route, RouteKind, RouteTable};
use ipnet::Ipv4Net;

const PROFILE: &str = r#"
name = "bench"
poll_mode = "busy"
[eal]
lcores = "0-1"
memory_mb = 256
hugepages = "off"
[mempool]
mbufs = 8191
cache = 128
[[ports]]
name = "lan"
driver = "null"
[[ports]]
name = "wan"
driver = "null"
"#;

const HEAD: &str = r#"
[[interfaces]]
port = "lan"
address = "10.0.1.1/24"
[[interfaces]]
port = "wan"
address = "10.0.2.1/24"
[control]
socket = "/tmp/route-bench.sock"
metrics = ""
"#;

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `n` distinct prefixes shaped like an Internet table, outside 10/8.
fn prefixes(n: usize, rng: &mut fastrand::Rng) -> Vec<Ipv4Net> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = match rng.u32(0..100) {
            0..=59 => 24,
            60..=69 => 23,
            70..=79 => 22,
            80..=87 => rng.u8(20..=21),
            88..=96 => rng.u8(16..=19),
            _ => rng.u8(8..=15),
        };
        let addr = Ipv4Addr::from(rng.u32(0x0b00_0000..0xdf00_0000));
        let Ok(net) = Ipv4Net::new(addr, len) else {
            continue;
        };
        let net = net.trunc();
        if seen.insert(net) {
            out.push(net);
        }
    }
    out
}

fn main() {
    let sizes: Vec<usize> = std::env::var("ROUTE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let profile = HwProfile::parse(Path::new("bench-profile.toml"), PROFILE).expect("profile");
    let mut rng = fastrand::Rng::with_seed(7);
    let probes: Vec<u32> = (0..1 << 20).map(|_| rng.u32(..)).collect();
    let mut md = String::from(
        "| routes | config text | load (parse + checks) | memory after load | table build | the trie | peak RSS so far | LPM lookups/s | hash probes/s (same keys) | LPM ÷ hash |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for n in sizes {
        let nets = prefixes(n, &mut rng);
        let mut text = String::with_capacity(n * 48 + HEAD.len());
        text.push_str(HEAD);
        for p in &nets {
            let _ = write!(text, "[[routes]]\nprefix = \"{p}\"\nvia = \"10.0.2.2\"\n");
        }
        let before = rss();
        let t = Instant::now();
        let config = Config::parse(Path::new("routes.toml"), &text, &profile).expect("config");
        let load_s = t.elapsed().as_secs_f64();
        let load_mem = rss().saturating_sub(before);
        drop(text);
        let t = Instant::now();
        let table = RouteTable::new(config.routes.iter().map(|r| Route {
            prefix: r.prefix,
            next_hop: NextHop::Gateway {
                via: r.via,
                port: 1,
            },
            kind: RouteKind::Static,
        }));
        let build_s = t.elapsed().as_secs_f64();
        drop(config);

        let rounds = 8;
        let t = Instant::now();
        let mut hits = 0u64;
        for _ in 0..rounds {
            for d in &probes {
                hits += u64::from(table.lookup(Ipv4Addr::from(*d)).is_some());
            }
        }
        let lpm = (rounds * probes.len()) as f64 / t.elapsed().as_secs_f64();
        black_box(hits);
        // The reference: one probe per lookup of a hash map holding as many keys.
        let map: hashbrown::HashMap<u32, usize> = nets
            .iter()
            .enumerate()
            .map(|(i, p)| (u32::from(p.network()), i))
            .collect();
        let t = Instant::now();
        let mut found = 0u64;
        for _ in 0..rounds {
            for d in &probes {
                found += u64::from(map.get(&(d & 0xffff_ff00)).is_some());
            }
        }
        let hash = (rounds * probes.len()) as f64 / t.elapsed().as_secs_f64();
        black_box(found);
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let _ = writeln!(
            md,
            "| {n} | {:.1} MiB | {load_s:.2} s | {:.0} MiB | {:.1} ms | {:.1} MiB | {:.0} MiB | {:.1} M | {:.1} M | {:.2} |",
            mib((n * 48) as u64),
            mib(load_mem),
            build_s * 1e3,
            mib(table.lookup_memory() as u64),
            mib(peak_rss()),
            lpm / 1e6,
            hash / 1e6,
            lpm / hash
        );
        eprintln!("{n} routes done");
    }
    print!("{md}");
}
