//! Route scale: config load (TOML parse and every check) and table build for 10k, 100k
//! and 1M static routes, the memory each takes, and the lookup rate on those tables
//! against one probe of a hash map with as many entries, in the same run. A report, not a
//! test: `make bench` runs it and writes the result under docs/benchmarks.md.
//!
//! Prefixes follow the shape of an Internet table: most /24, then /22 to /16 and a few
//! shorter. Lookups go to random addresses, so most of them miss the longest lengths.
//!
//! Then IPv6: the trie ([`Lpm6`]) built from 10k, 200k and 1M prefixes shaped like an IPv6
//! table, its memory and its lookup rate, each beside the IPv4 table built from as many
//! IPv4 prefixes in the same run, and their ratios. Both are probed with addresses inside
//! their routes (a random route, random host bits), so an IPv6 lookup walks as deep as its
//! route: five reads for a /48.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use appliance::config::{Config, HwProfile};
use appliance::tables::{Lpm6, NextHop, Route, RouteKind, RouteTable};
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
        let table = RouteTable::new(
            config
                .routes
                .iter()
                .filter_map(|r| match (r.prefix, r.via) {
                    (ipnet::IpNet::V4(prefix), std::net::IpAddr::V4(via)) => Some(Route {
                        prefix,
                        next_hop: NextHop::Gateway { via, port: 1 },
                        kind: RouteKind::Static,
                    }),
                    _ => None,
                }),
        );
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
    ipv6();
}

/// `n` distinct prefixes shaped like an IPv6 Internet table: about half /48, then /32,
/// /44, /40 and the rest of /33 to /47, some /64, a few /128 and a few shorter than /32
/// (/19 to /31). They cluster as a real table does: `n / 8` provider /32s in 2000::/4, and
/// every prefix inside one of them (a /128 in the provider's first /64, as loopbacks are).
fn prefixes6(n: usize, rng: &mut fastrand::Rng) -> Vec<(u128, u8)> {
    let providers: Vec<u128> = (0..(n / 8).max(16))
        .map(|_| (0x2 << 124) | (u128::from(rng.u32(..) >> 4) << 96))
        .collect();
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = match rng.u32(0..100) {
            0..=44 => 48,
            45..=59 => 32,
            60..=69 => 44,
            70..=77 => 40,
            78..=85 => rng.u8(33..=47),
            86..=93 => 64,
            94..=95 => 128,
            _ => rng.u8(19..=31),
        };
        let provider = providers[rng.usize(..providers.len())];
        let net = if len == 128 {
            provider | u128::from(rng.u16(..))
        } else {
            (provider | (u128::from(rng.u32(..)) << 64)) & mask6(len)
        };
        if seen.insert((net, len)) {
            out.push((net, len));
        }
    }
    out
}

/// The network mask of a /`len` IPv6 prefix.
fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The IPv6 trie beside the IPv4 table, `n` prefixes each, in a second table.
fn ipv6() {
    let sizes: Vec<usize> = std::env::var("ROUTE_BENCH_SIZES6")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 200_000, 1_000_000]);
    // A generator of its own, so the IPv4 table above stays as it was.
    let mut rng = fastrand::Rng::with_seed(6);
    let mut md = String::from(
        "\nIPv6: the trie (16-bit first level, then 8-bit strides) built from N prefixes shaped like an IPv6 table (45 % /48, 15 % /32, the rest /19 to /64 and 2 % /128), beside the IPv4 table built from N IPv4 prefixes as above; both probed with addresses inside their routes. The IPv4 build includes the route list and its duplicate check (`RouteTable::new`).\n\n| routes | IPv6 build | IPv6 trie | IPv6 lookups/s | IPv4 build | IPv4 trie | IPv4 lookups/s | build v6 ÷ v4 | trie v6 ÷ v4 | lookups/s v6 ÷ v4 |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let probes = 1 << 20;
    let rounds = 8;
    for n in sizes {
        let nets6 = prefixes6(n, &mut rng);
        let triples: Vec<(u128, u8, u32)> = nets6
            .iter()
            .enumerate()
            .map(|(i, &(net, len))| (net, len, i as u32))
            .collect();
        let t = Instant::now();
        let trie6 = Lpm6::new(&triples);
        let build6 = t.elapsed().as_secs_f64();
        let probes6: Vec<u128> = (0..probes)
            .map(|_| {
                let (net, len) = nets6[rng.usize(..nets6.len())];
                net | (rng.u128(..) & !mask6(len))
            })
            .collect();
        drop(triples);
        let t = Instant::now();
        let mut hits = 0u64;
        for _ in 0..rounds {
            for a in &probes6 {
                hits += u64::from(trie6.lookup(*a).is_some());
            }
        }
        let rate6 = (rounds * probes6.len()) as f64 / t.elapsed().as_secs_f64();
        black_box(hits);
        let mem6 = trie6.memory();
        drop(trie6);
        drop(probes6);

        let nets4 = prefixes(n, &mut rng);
        let t = Instant::now();
        let table4 = RouteTable::new(nets4.iter().map(|p| Route {
            prefix: *p,
            next_hop: NextHop::Gateway {
                via: Ipv4Addr::new(10, 0, 2, 2),
                port: 1,
            },
            kind: RouteKind::Static,
        }));
        let build4 = t.elapsed().as_secs_f64();
        let probes4: Vec<Ipv4Addr> = (0..probes)
            .map(|_| {
                let p = nets4[rng.usize(..nets4.len())];
                Ipv4Addr::from(u32::from(p.network()) | (rng.u32(..) & u32::from(p.hostmask())))
            })
            .collect();
        let t = Instant::now();
        let mut hits = 0u64;
        for _ in 0..rounds {
            for a in &probes4 {
                hits += u64::from(table4.lookup(*a).is_some());
            }
        }
        let rate4 = (rounds * probes4.len()) as f64 / t.elapsed().as_secs_f64();
        black_box(hits);
        let mem4 = table4.lookup_memory();

        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        let _ = writeln!(
            md,
            "| {n} | {:.1} ms | {:.1} MiB | {:.1} M | {:.1} ms | {:.1} MiB | {:.1} M | {:.2} | {:.2} | {:.2} |",
            build6 * 1e3,
            mib(mem6),
            rate6 / 1e6,
            build4 * 1e3,
            mib(mem4),
            rate4 / 1e6,
            build6 / build4,
            mem6 as f64 / mem4 as f64,
            rate6 / rate4
        );
        eprintln!("{n} IPv6 routes done");
    }
    print!("{md}");
}
