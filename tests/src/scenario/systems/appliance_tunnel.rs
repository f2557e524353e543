//! `appliance-<scheduler>`: two DPDK appliances, one per site, joined by the multipath
//! tunnel over every WAN link of the sites topology, on `net_af_packet` over the bare veth
//! ends (the sites' appliance namespaces hold no addresses). The system tests of the tunnel
//! use the same setup.
//!
//! Each appliance runs the `vm-af-packet` profile's settings with ports `lan` and `wan<i>`
//! (one per link), the management lcore and one worker; site B's lcores sit on the other
//! CPU than site A's, so the two workers do not share one. Its config is generated:
//!
//! ```toml
//! [[interfaces]]              # lan: 10.1.0.1/16 on site A (host A is 10.1.0.2)
//! [[interfaces]]              # wan<i>: 172.16.<i>.1/24 on site A, .2 on site B
//! [tunnel]
//! prefixes = ["10.2.0.0/16"]  # the other site's hosts
//! default_scheduler = "wlb"   # the row's scheduler
//! private_key = "a.key"       # `appliance genkey` for each site, at every start of the pair
//! peer_public_key = "..."     # `appliance pubkey` of the other site's key
//! [[tunnel.paths]]            # one per link: remote = the other appliance, rate = the link's
//! ```
//!
//! The tunnel is encrypted, as a user runs it, unless the spec says otherwise.
//!
//! `source-subnet` (WAN-aware MPTCP): host A gets one address per link (10.1.<i>.2) and an
//! MPTCP subflow endpoint for each, as in `linux-mptcp`; site A's class binds 10.1.<i>.0/24
//! to path i, site B answers on the lowest-delay path (`minrtt`).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde_json::Value;

use super::SitesSetup;
use crate::bins::workspace_root;
use crate::netns::NsProcess;
use crate::rundir::RunDir;
use crate::scenario::emulator::{wait_until, Worker};
use crate::scenario::result::{HealthSample, ReorderSample};
use crate::topology::Sites;

/// How the pair is configured.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    /// The scheduler every packet uses (`tunnel.default_scheduler`), or
    /// `source-subnet`.
    pub scheduler: String,
    /// Per link: its rate in bit/s (the path's configured rate).
    pub rates: Vec<u64>,
    /// Probe interval, e.g. "10ms".
    pub probe_interval: String,
    /// More `[tunnel]` lines for both sites (classes, ...).
    pub extra: String,
    /// Workers per appliance: 1, or 2 (one on each CPU, beside the management lcore).
    pub workers: u32,
    /// `tunnel.encryption` ("auto": the default).
    pub encryption: String,
    /// A pre-shared key: none, one both sites have (`Some(true)`), or a different one at
    /// each site (`Some(false)`).
    pub psk: Option<bool>,
    /// Site A is given a public key for site B that is not B's.
    pub wrong_peer_key: bool,
    /// `control.metrics` of both sites (each in its own namespace): "" serves none.
    pub metrics: String,
    /// Site B sits behind a NAT ([`crate::topology::sites_behind_nat`]): its paths name
    /// site A's address through the NAT, and site A's learn where B's packets come from.
    /// BFD is off on both (it runs to fixed addresses); the probes watch the paths.
    pub nat: bool,
    /// Dual stack: each LAN also has fd00:<site>::1/64 with router advertisements (its
    /// host configures itself from them), and the other site's fd00:<other>::/48 is a
    /// tunnel prefix beside its IPv4 one.
    pub ipv6: bool,
}

impl TunnelSpec {
    /// `scheduler` over links of these rates, probing every 10 ms.
    pub fn new(scheduler: &str, rates: &[u64]) -> TunnelSpec {
        TunnelSpec {
            scheduler: scheduler.to_string(),
            rates: rates.to_vec(),
            probe_interval: "10ms".into(),
            extra: String::new(),
            workers: 1,
            encryption: "auto".into(),
            psk: None,
            wrong_peer_key: false,
            metrics: String::new(),
            nat: false,
            ipv6: false,
        }
    }
}

/// Which appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Site A (host A's side).
    A,
    /// Site B.
    B,
}

/// The profile both appliances are made from.
const PROFILE: &str = "hw-profiles/vm-af-packet.toml";

/// The hardware profile of one appliance: the shipped VM profile with its ports replaced by
/// `lan` and one `wan<i>` per link, and its lcores on `cpus` (management, worker); with
/// two workers, the second on the management lcore's CPU.
pub fn profile(
    lan_iface: &str,
    wan_ifaces: &[String],
    cpus: [u32; 2],
    workers: u32,
) -> Result<String> {
    let path = workspace_root().join(PROFILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let Some(head) = text.split("[[ports]]").next() else {
        bail!("{PROFILE} has no [[ports]]");
    };
    let lcores = if workers >= 2 {
        format!(
            "lcores = \"0-2\"\ncpus = [{}, {}, {}]",
            cpus[0], cpus[1], cpus[0]
        )
    } else {
        format!("lcores = \"0-1\"\ncpus = [{}, {}]", cpus[0], cpus[1])
    };
    let head = head.replace("lcores = \"0-1\"", &lcores);
    if !head.contains("cpus = [") {
        bail!("{PROFILE} no longer says lcores = \"0-1\"");
    }
    let mut p = head;
    let port = |name: &str, iface: &str| {
        format!(
            "[[ports]]\nname = \"{name}\"\ndriver = \"af_packet\"\niface = \"{iface}\"\nframecnt = 4096\nrx_desc = 1024\ntx_desc = 1024\n\n"
        )
    };
    p += &port("lan", lan_iface);
    for (i, w) in wan_ifaces.iter().enumerate() {
        p += &port(&format!("wan{i}"), w);
    }
    Ok(p)
}

/// Each site's key lines for its `[tunnel]`: new keys in `dir` made by the appliance binary
/// `exe` (its own `genkey` and `pubkey`), as the spec asks.
pub fn key_lines(exe: &Path, dir: &Path, spec: &TunnelSpec) -> Result<[String; 2]> {
    let encryption = format!("encryption = \"{}\"\n", spec.encryption);
    if spec.encryption == "none" {
        return Ok([encryption.clone(), encryption]);
    }
    let mut public = Vec::new();
    for name in ["a", "b", "stranger", "psk-a", "psk-b"] {
        public.push(generate_key(exe, &dir.join(format!("{name}.key")))?);
    }
    let peer_of_a = if spec.wrong_peer_key {
        &public[2]
    } else {
        &public[1]
    };
    let psk = |site: &str| match spec.psk {
        None => String::new(),
        Some(true) => "preshared_key = \"psk-a.key\"\n".to_string(),
        Some(false) => format!("preshared_key = \"psk-{site}.key\"\n"),
    };
    Ok([
        format!(
            "{encryption}private_key = \"a.key\"\npeer_public_key = \"{peer_of_a}\"\n{}",
            psk("a")
        ),
        format!(
            "{encryption}private_key = \"b.key\"\npeer_public_key = \"{}\"\n{}",
            public[0],
            psk("b")
        ),
    ])
}

/// A new key in `file` (any old one replaced) made by the appliance binary `exe`
/// (`appliance genkey`); returns its public half (`appliance pubkey`), base64, as a peer's
/// config names it.
pub fn generate_key(exe: &Path, file: &Path) -> Result<String> {
    let _ = std::fs::remove_file(file);
    run_appliance_tool(exe, &["genkey", &file.to_string_lossy()])?;
    run_appliance_tool(exe, &["pubkey", &file.to_string_lossy()])
}

/// Runs `exe` with `args` to completion: its trimmed stdout, or an error with its stderr.
fn run_appliance_tool(exe: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(exe)
        .args(args)
        .output()
        .with_context(|| format!("running {} {args:?}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?}: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The config of one appliance; `keys`: its key lines ([`key_lines`]).
pub fn config(site: Site, sites: &Sites, spec: &TunnelSpec, control: &Path, keys: &str) -> String {
    let (lan, here, other) = match site {
        Site::A => ("10.1.0.1/16", 1u8, 2u8),
        Site::B => ("10.2.0.1/16", 2, 1),
    };
    let mut c = format!(
        "# Generated by the test bed (tests/src/scenario/systems/appliance_tunnel.rs).\n\
         [[interfaces]]\nport = \"lan\"\naddress = \"{lan}\"\n\n"
    );
    if spec.ipv6 {
        let _ = write!(c, "address6 = \"fd00:{here}::1/64\"\n[interfaces.ra]\n\n");
    }
    let prefixes = if spec.ipv6 {
        format!("\"10.{other}.0.0/16\", \"fd00:{other}::/48\"")
    } else {
        format!("\"10.{other}.0.0/16\"")
    };
    for i in 0..sites.links.len() {
        let address = if spec.nat && site == Site::B {
            format!("192.168.{i}.2/24")
        } else {
            format!("172.16.{i}.{here}/24")
        };
        let _ = write!(
            c,
            "[[interfaces]]\nport = \"wan{i}\"\naddress = \"{address}\"\n\n"
        );
    }
    let scheduler = match (spec.scheduler.as_str(), site) {
        ("source-subnet", Site::A) => "wlb",
        ("source-subnet", Site::B) => "minrtt",
        (s, _) => s,
    };
    let _ = write!(
        c,
        "[control]\nsocket = {:?}\nmetrics = {:?}\n\n[tunnel]\nprefixes = [{prefixes}]\n\
         default_scheduler = \"{scheduler}\"\nprobe_interval = \"{}\"\n{keys}{}\n",
        control.display().to_string(),
        spec.metrics,
        spec.probe_interval,
        spec.extra
    );
    for (i, rate) in spec.rates.iter().enumerate().take(sites.links.len()) {
        let remote = match (spec.nat, site) {
            (false, _) => format!("remote = \"172.16.{i}.{other}\"\n"),
            // Behind the NAT: to site A through it.
            (true, Site::B) => format!(
                "remote = \"172.16.{i}.1\"\nnext_hop = \"192.168.{i}.1\"\nbfd = {{ enabled = false }}\n"
            ),
            // In front of it: wherever B's packets come from.
            (true, Site::A) => "bfd = { enabled = false }\n".to_string(),
        };
        let _ = write!(
            c,
            "[[tunnel.paths]]\nname = \"{}\"\nid = {i}\ninterface = \"wan{i}\"\n{remote}rate = \"{rate}\"\npriority = {i}\n\n",
            link_name(i)
        );
    }
    if spec.scheduler == "source-subnet" && site == Site::A {
        c += "[[tunnel.classes]]\nname = \"mptcp-subflows\"\nscheduler = \"source-subnet\"\nbindings = [";
        for i in 0..sites.links.len() {
            let _ = write!(
                c,
                "{}{{ subnet = \"10.1.{i}.0/24\", path = \"{}\" }}",
                if i > 0 { ", " } else { "" },
                link_name(i)
            );
        }
        c += "]\n";
    }
    c
}

/// Path i's name: the scenario link names are a, b, c, ...
pub fn link_name(i: usize) -> String {
    char::from(b'a' + (i as u8 % 26)).to_string()
}

/// The running pair. Dropping it kills both appliances; [`ApplianceSites::stop`] stops them
/// with SIGINT and returns their final counters.
#[derive(Debug)]
pub struct ApplianceSites {
    // Processes stop before their directory goes (fields drop in order).
    processes: Vec<NsProcess>,
    dir: RunDir,
    /// Control sockets of site A and site B.
    pub control: [PathBuf; 2],
    final_stats: [PathBuf; 2],
    /// The appliance binary, and each site's profile and config.
    exe: PathBuf,
    files: [(PathBuf, PathBuf); 2],
}

impl ApplianceSites {
    /// The control socket of `site`.
    pub fn socket(&self, site: Site) -> &Path {
        &self.control[site as usize]
    }

    /// Process ids of site A's and site B's appliances.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(NsProcess::pid).collect()
    }

    /// User + system CPU seconds both appliances used so far.
    pub fn cpu_seconds(&self) -> f64 {
        crate::scenario::machine::processes_cpu_seconds(&self.processes)
    }

    /// The directory holding the generated files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits up to `limit` for `n` paths to be usable on both sides (the peer's reports
    /// arrive); returns how many are on the side with fewer.
    pub fn wait_usable(&self, n: usize, limit: Duration) -> Result<usize> {
        let deadline = Instant::now() + limit;
        loop {
            let usable = self
                .control
                .iter()
                .map(|s| up_paths(s).unwrap_or(0))
                .min()
                .unwrap_or(0);
            if usable >= n || Instant::now() > deadline {
                return Ok(usable);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops `site`'s appliance (SIGINT, as an operator's restart) and starts it again in
    /// `ns` (its namespace) with the same files; waits for its control socket.
    pub fn restart(&mut self, site: Site, ns: &crate::netns::Netns) -> Result<()> {
        let i = site as usize;
        let (profile, config) = self.files[i].clone();
        let old = self.processes.remove(i);
        let _ = old.signal(Signal::SIGINT);
        let out = old.wait_timeout(Duration::from_secs(20))?;
        if !out.status.success() {
            bail!(
                "the appliance of site {i} did not stop cleanly for its restart: {}",
                super::relay_guard::tail(&out.stderr, 1500)
            );
        }
        let _ = std::fs::remove_file(&self.control[i]);
        let cmd = appliance_command(ns, &self.exe, &profile, &config, &self.final_stats[i]);
        self.processes.insert(i, NsProcess::spawn(cmd)?);
        wait_socket(&self.control[i], Duration::from_secs(30))
    }

    /// Stops both (SIGINT: they drain and write their final counters) and returns those,
    /// each with its log (stderr) under `"log"`.
    pub fn stop(mut self) -> Result<[Value; 2]> {
        let mut logs = Vec::new();
        for p in std::mem::take(&mut self.processes) {
            logs.push(stop_appliance(p)?);
        }
        let mut a = read_final_stats(&self.final_stats[0])?;
        let mut b = read_final_stats(&self.final_stats[1])?;
        a["log"] = logs.first().cloned().unwrap_or_default().into();
        b["log"] = logs.get(1).cloned().unwrap_or_default().into();
        Ok([a, b])
    }
}

/// Stops one appliance with SIGINT, as an operator does (it drains and writes its final
/// counters), waiting at most 20 s; returns its log (stderr). An unclean exit is an error
/// that quotes the log's end.
pub fn stop_appliance(p: NsProcess) -> Result<String> {
    let _ = p.signal(Signal::SIGINT);
    let out = p.wait_timeout(Duration::from_secs(20))?;
    if !out.status.success() {
        bail!(
            "an appliance did not exit cleanly: {}",
            super::relay_guard::tail(&out.stderr, 1500)
        );
    }
    Ok(out.stderr)
}

/// The final counters an appliance wrote at exit (`--final-stats`).
pub fn read_final_stats(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Host A's extra addresses and MPTCP endpoints for `source-subnet` (one address per link,
/// 10.1.<i>.2), and both hosts' MPTCP limits; iperf3 then runs under `mptcpize run`.
fn mptcp_hosts(s: &Sites) -> Result<SitesSetup> {
    let n = s.links.len();
    for i in 1..n {
        let addr = Ipv4Addr::new(10, 1, i as u8, 2);
        s.host_a.ns.addr_add(&s.host_a.iface, addr, 24)?;
        s.host_a
            .ns
            .ip(&[
                "mptcp",
                "endpoint",
                "add",
                &addr.to_string(),
                "dev",
                &s.host_a.iface,
                "subflow",
            ])
            .context("MPTCP endpoint")?;
    }
    super::linux_mptcp::host_limits(s, n)?;
    Ok(SitesSetup {
        wrapper: vec!["mptcpize".into(), "run".into()],
        notes: vec![format!(
            "MPTCP end hosts: {n} subflows per connection, site A binds 10.1.<i>.0/24 to path i (source-subnet)"
        )],
        processes: vec![],
    })
}

/// Starts both appliances on `sites` (made with [`crate::topology::sites`]) and waits for
/// their control sockets and for every path to be usable on both sides.
pub fn start(sites: &Sites, spec: &TunnelSpec, exe: &Path) -> Result<(ApplianceSites, SitesSetup)> {
    let (pair, setup) = start_unchecked(sites, spec, exe)?;
    let n = sites.links.len();
    let usable = pair.wait_usable(n, Duration::from_secs(30))?;
    if usable < n {
        bail!("only {usable} of {n} tunnel paths became usable within 30 s");
    }
    Ok((pair, setup))
}

/// The command that runs an appliance in `ns` with these files, writing its final counters
/// to `final_stats` when it stops.
pub fn appliance_command(
    ns: &crate::netns::Netns,
    exe: &Path,
    profile: &Path,
    config: &Path,
    final_stats: &Path,
) -> std::process::Command {
    let mut cmd = ns.command(exe);
    cmd.env("RUST_LOG", "info")
        .arg("--profile")
        .arg(profile)
        .arg("--config")
        .arg(config)
        .arg("--final-stats")
        .arg(final_stats);
    cmd
}

/// Starts both appliances and waits for their control sockets only (the tunnel may not
/// form: a test of wrong keys).
pub fn start_unchecked(
    sites: &Sites,
    spec: &TunnelSpec,
    exe: &Path,
) -> Result<(ApplianceSites, SitesSetup)> {
    if sites.linux_routers {
        bail!("the appliance needs the sites topology with bare appliance namespaces");
    }
    let setup = if spec.scheduler == "source-subnet" {
        mptcp_hosts(sites)?
    } else {
        SitesSetup::default()
    };
    let dir = RunDir::new("tunnel")?;
    let keys = key_lines(exe, dir.path(), spec)?;
    let mut processes = Vec::new();
    let mut control = Vec::new();
    let mut finals = Vec::new();
    let mut files = Vec::new();
    for (site, ns, lan, cpus) in [
        (Site::A, &sites.app_a, &sites.app_a_lan, [0, 1]),
        (Site::B, &sites.app_b, &sites.app_b_lan, [1, 0]),
    ] {
        let tag = if site == Site::A { "a" } else { "b" };
        let wans: Vec<String> = sites
            .links
            .iter()
            .map(|l| {
                if site == Site::A {
                    l.app_a_iface.clone()
                } else {
                    l.app_b_iface.clone()
                }
            })
            .collect();
        let profile_path = dir.path().join(format!("profile-{tag}.toml"));
        let config_path = dir.path().join(format!("site-{tag}.toml"));
        let socket = dir.path().join(format!("ctl-{tag}.sock"));
        let final_stats = dir.path().join(format!("final-{tag}.json"));
        std::fs::write(&profile_path, profile(lan, &wans, cpus, spec.workers)?)?;
        std::fs::write(
            &config_path,
            config(site, sites, spec, &socket, &keys[site as usize]),
        )?;
        check_config(exe, &profile_path, &config_path, tag)?;
        processes.push(NsProcess::spawn(appliance_command(
            ns,
            exe,
            &profile_path,
            &config_path,
            &final_stats,
        ))?);
        control.push(socket);
        finals.push(final_stats);
        files.push((profile_path, config_path));
    }
    let pair = ApplianceSites {
        processes,
        dir,
        control: [control[0].clone(), control[1].clone()],
        final_stats: [finals[0].clone(), finals[1].clone()],
        exe: exe.to_path_buf(),
        files: [files[0].clone(), files[1].clone()],
    };
    for socket in &pair.control {
        wait_socket(socket, Duration::from_secs(30))?;
    }
    Ok((pair, setup))
}

/// Has the appliance `exe` check a generated profile and config (`--check`) before it is
/// started, so a config it rejects fails with its own message; `site` names it there.
pub fn check_config(exe: &Path, profile: &Path, config: &Path, site: &str) -> Result<()> {
    let check = std::process::Command::new(exe)
        .arg("--check")
        .arg("--profile")
        .arg(profile)
        .arg("--config")
        .arg(config)
        .output()
        .with_context(|| format!("running {} --check", exe.display()))?;
    if !check.status.success() {
        bail!(
            "the appliance rejected the generated config of site {site}: {}",
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }
    Ok(())
}

/// Waits up to `limit` until an appliance's control socket accepts connections.
pub fn wait_socket(socket: &Path, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while UnixStream::connect(socket).is_err() {
        if Instant::now() > deadline {
            bail!(
                "an appliance did not open its control socket {} within {limit:?}",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How many paths an appliance sends on and has heard the peer on.
pub fn up_paths(socket: &Path) -> Result<usize> {
    let reply = request(socket, r#"{"cmd":"show","what":"paths"}"#)?;
    Ok(reply["data"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|p| p["usable"].as_bool() == Some(true) && p["state"] == "up")
            .count()
    }))
}

/// Samples the reorder buffers of the appliance behind `socket` at `t0`, `t0 + interval`,
/// ... until finished: every lane summed (`show tunnel`).
pub fn sample_reorder(
    socket: PathBuf,
    t0: Instant,
    interval: Duration,
) -> Result<Worker<Vec<ReorderSample>>> {
    Worker::spawn("scenario-reorder", move |stop| {
        let mut samples = Vec::new();
        let mut due = t0;
        while wait_until(due, stop) {
            let t = t0.elapsed().as_secs_f64();
            let reply = request(&socket, r#"{"cmd":"show","what":"tunnel"}"#)?;
            let r = &reply["data"]["reorder"];
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            samples.push(ReorderSample {
                t,
                occupancy: n("occupancy"),
                in_order: n("in_order"),
                held: n("held"),
                released_early: n("released_early"),
                timed_out: n("timed_out"),
                overflow: Some(n("overflow")),
                late: n("late"),
                unordered: n("unordered"),
            });
            due += interval;
        }
        Ok(samples)
    })
}

/// Samples both appliances every `interval` from `t0`: usable paths, `tunnel_no_path`
/// drops, BFD flaps per path (`show paths`, `show tunnel`) and resident memory.
pub fn sample_health(
    sockets: [PathBuf; 2],
    pids: Vec<u32>,
    t0: Instant,
    interval: Duration,
) -> Result<Worker<Vec<HealthSample>>> {
    Worker::spawn("scenario-health", move |stop| {
        let mut samples = Vec::new();
        let mut due = t0;
        while wait_until(due, stop) {
            let mut s = HealthSample {
                t: t0.elapsed().as_secs_f64(),
                ..HealthSample::default()
            };
            for (i, socket) in sockets.iter().enumerate() {
                let paths = request(socket, r#"{"cmd":"show","what":"paths"}"#)?;
                let paths = paths["data"].as_array().cloned().unwrap_or_default();
                s.usable[i] = paths
                    .iter()
                    .filter(|p| p["usable"].as_bool() == Some(true))
                    .count() as u32;
                for p in &paths {
                    let name = p["name"].as_str().unwrap_or("").to_string();
                    let flaps = p["bfd"]["flaps"].as_u64().unwrap_or(0);
                    match s.bfd_flaps.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, f)) => f[i] = flaps,
                        None => {
                            let mut f = [0; 2];
                            f[i] = flaps;
                            s.bfd_flaps.push((name, f));
                        }
                    }
                }
                let tunnel = request(socket, r#"{"cmd":"show","what":"tunnel"}"#)?;
                s.no_path_drops[i] = tunnel["data"]["drops"]["tunnel_no_path"]
                    .as_u64()
                    .unwrap_or(0);
                s.rss_kb[i] = pids.get(i).map_or(0, |&pid| rss_kb(pid));
            }
            samples.push(s);
            due += interval;
        }
        Ok(samples)
    })
}

/// A process's resident set (kB), 0 if it is gone.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One control request (a JSON line) and its reply.
pub fn request(socket: &Path, line: &str) -> Result<Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(line.as_bytes())?;
    s.write_all(b"\n")?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply)?;
    Ok(serde_json::from_str(&reply)?)
}
