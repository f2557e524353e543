//! A hub site and N spoke sites ([`hub_and_spokes`]), one DPDK appliance each on
//! `net_af_packet`, with plain Linux hosts behind them: the bed of the many-peer tunnel
//! tests.
//!
//! Every appliance runs the profile of the two-site tests ([`appliance_tunnel::profile`]:
//! ports `lan` and `wan<j>`, the management lcore and one worker) with its own key. Its
//! config lists its peers in the many-peer form (`[[tunnel.peers]]`):
//!
//! ```toml
//! [tunnel]
//! private_key = "/tmp/.../hub.key"   # `appliance genkey`, new at every start
//! [[tunnel.peers]]                   # the hub: one per spoke, named spoke<k>
//! name = "spoke1"
//! public_key = "..."                 # `appliance pubkey` of spoke 1's key
//! prefixes = ["10.2.0.0/24"]         # spoke 1's LAN
//! [[tunnel.peers.paths]]             # one per WAN link j, named a, b, ...
//! name = "a"
//! id = 0
//! interface = "wan0"
//! remote = "172.16.0.11"             # spoke 1 on segment j
//! rate = "30mbit"
//! ```
//!
//! A spoke has one peer, `hub`, whose prefixes are the hub's LAN and every other spoke's:
//! traffic between two spokes goes through the hub, which is what the tests are about.
//! BFD, probing, reordering and shaping are left at their defaults.
//!
//! One spoke may sit behind a NAT of its own ([`bed_behind_nat`],
//! [`crate::topology::hub_and_spokes_behind_nat`]), as a branch on DSL or LTE: its paths name
//! the hub with the NAT as their `next_hop`, the hub's paths to it name no `remote` and learn
//! where its packets come from, and BFD is off on both (it runs to fixed addresses; the
//! probes watch the paths), as in the two-site NAT test.
//!
//! The hub may list only some of the spokes ([`bed_with_hub_peers`]), and its list can be
//! rewritten while it runs ([`HubBed::rewrite_hub_config`], then [`HubBed::reload`]): a
//! spoke keeps listing the hub whether or not the hub lists it, as a site that is not yet
//! (or no longer) admitted would.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::bins::workspace_bin;
use crate::netns::NsProcess;
use crate::rundir::RunDir;
use crate::scenario::iperf;
use crate::scenario::systems::appliance_tunnel::{self, link_name};
use crate::topology::{hub_and_spokes, hub_and_spokes_behind_nat, HubSites, Nat};

/// Every path's configured rate (the schedulers' ceiling; the segments themselves are
/// bridges, not rate-limited).
pub const PATH_RATE: &str = "30mbit";

/// How long an appliance gets to open its control socket.
const SOCKET_WAIT: Duration = Duration::from_secs(30);

/// The peer name of site `k` in the others' configs: `hub` for site 0, `spoke<k>` else.
pub fn site_name(k: usize) -> String {
    if k == 0 {
        "hub".to_string()
    } else {
        format!("spoke{k}")
    }
}

/// The port `appliance_tunnel::profile` gives WAN link `j`.
fn wan_port(j: usize) -> String {
    format!("wan{j}")
}

/// The peers site `k` has among `n_sites` sites (the hub and its spokes), by site number:
/// the hub has every spoke, a spoke has the hub only.
pub fn peer_sites(k: usize, n_sites: usize) -> Vec<usize> {
    if k == 0 {
        (1..n_sites).collect()
    } else {
        vec![0]
    }
}

/// One site's addresses as its config and its peers' configs need them (from
/// [`addresses`]; a value of its own so the configs can be made without namespaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAddresses {
    /// The appliance's LAN address: its host's gateway.
    pub lan: Ipv4Addr,
    pub lan_prefix_len: u8,
    /// Per WAN link: the appliance's address on that segment (behind a NAT: on the NAT's
    /// inside subnet of that link).
    pub wan: Vec<Ipv4Addr>,
    pub wan_prefix_len: u8,
    /// Per WAN link, for a site behind a NAT: the NAT's inside address, its next hop to every
    /// peer (whose paths to it learn its public address). Empty for a site on the segments.
    pub nat_gateways: Vec<Ipv4Addr>,
}

impl SiteAddresses {
    /// Whether the site is behind a NAT.
    pub fn behind_nat(&self) -> bool {
        !self.nat_gateways.is_empty()
    }

    /// The site's LAN as a prefix, e.g. `10.2.0.0/24`: what its peers route to it, and the
    /// only inner sources they accept from it.
    pub fn lan_prefix(&self) -> String {
        let bits = u32::from(self.lan_prefix_len.min(32));
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        let network = Ipv4Addr::from(u32::from(self.lan) & mask);
        format!("{network}/{bits}")
    }
}

/// Every site's addresses in `sites`, by site number.
pub fn addresses(sites: &HubSites) -> Vec<SiteAddresses> {
    sites
        .hosts
        .iter()
        .enumerate()
        .map(|(k, host)| {
            let (wan, wan_prefix_len, nat_gateways) = if sites.nat_of(k).is_some() {
                let links = 0..sites.links.len();
                (
                    links.clone().map(Nat::site_address).collect(),
                    Nat::INSIDE_PREFIX_LEN,
                    links.map(Nat::gateway).collect(),
                )
            } else {
                (
                    sites.links.iter().map(|l| l.addrs[k]).collect(),
                    sites.links.first().map_or(24, |l| l.prefix_len),
                    Vec::new(),
                )
            };
            SiteAddresses {
                lan: host.gateway,
                lan_prefix_len: host.prefix_len,
                wan,
                wan_prefix_len,
                nat_gateways,
            }
        })
        .collect()
}

/// The prefixes site `k` routes to its peer `peer`: the peer's LAN, and when the peer is
/// the hub, every other spoke's LAN too (spoke-to-spoke goes through the hub).
pub fn peer_prefixes(all: &[SiteAddresses], k: usize, peer: usize) -> Vec<String> {
    if peer != 0 {
        return vec![all[peer].lan_prefix()];
    }
    (0..all.len())
        .filter(|&s| s != k)
        .map(|s| all[s].lan_prefix())
        .collect()
}

/// The lines of the config of `here`'s path on WAN link `j` to `peer` that say where the
/// peer is: its address there (`remote`), unless it is behind a NAT (the path learns it);
/// the NAT's inside as the next hop if `here` is behind one; BFD off if either is, since it
/// runs to fixed addresses (the probes watch such a path).
fn path_far_end(here: &SiteAddresses, peer: &SiteAddresses, j: usize) -> String {
    let mut lines = String::new();
    if !peer.behind_nat() {
        let _ = writeln!(lines, "remote = \"{}\"", peer.wan[j]);
    }
    if let Some(gateway) = here.nat_gateways.get(j) {
        let _ = writeln!(lines, "next_hop = \"{gateway}\"");
    }
    if here.behind_nat() || peer.behind_nat() {
        lines.push_str("bfd = { enabled = false }\n");
    }
    lines
}

/// The config of site `k`'s appliance: `all` every site's addresses, `public_keys` every
/// site's public key (by site number), `private_key` its own key file, `socket` its control
/// socket.
pub fn config(
    all: &[SiteAddresses],
    k: usize,
    public_keys: &[String],
    private_key: &Path,
    socket: &Path,
) -> String {
    config_listing(
        all,
        k,
        &peer_sites(k, all.len()),
        public_keys,
        private_key,
        socket,
    )
}

/// [`config`] with `peers` (site numbers, in that order) as the `[[tunnel.peers]]` in place
/// of all of site `k`'s: the hub admitting only some spokes. Everything else is as
/// [`config`] writes it, so two listings of one site differ in their peer entries only (a
/// reload between them changes nothing but the peers).
pub fn config_listing(
    all: &[SiteAddresses],
    k: usize,
    peers: &[usize],
    public_keys: &[String],
    private_key: &Path,
    socket: &Path,
) -> String {
    let here = &all[k];
    let mut c = format!(
        "# Generated by the test bed (tests/src/hub_bed.rs): {} of a hub and {} spokes.\n\
         [[interfaces]]\nport = \"lan\"\naddress = \"{}/{}\"\n\n",
        site_name(k),
        all.len() - 1,
        here.lan,
        here.lan_prefix_len
    );
    for (j, addr) in here.wan.iter().enumerate() {
        let _ = write!(
            c,
            "[[interfaces]]\nport = \"{}\"\naddress = \"{addr}/{}\"\n\n",
            wan_port(j),
            here.wan_prefix_len
        );
    }
    let _ = write!(
        c,
        "[control]\nsocket = {:?}\nmetrics = \"\"\n\n[tunnel]\nprivate_key = {:?}\n\n",
        socket.display().to_string(),
        private_key.display().to_string()
    );
    for &peer in peers {
        let prefixes: Vec<String> = peer_prefixes(all, k, peer)
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        let _ = write!(
            c,
            "[[tunnel.peers]]\nname = \"{}\"\npublic_key = \"{}\"\nprefixes = [{}]\n\n",
            site_name(peer),
            public_keys[peer],
            prefixes.join(", ")
        );
        for j in 0..all[peer].wan.len() {
            let _ = write!(
                c,
                "[[tunnel.peers.paths]]\nname = \"{}\"\nid = {j}\ninterface = \"{}\"\n\
                 {}rate = \"{PATH_RATE}\"\n\n",
                link_name(j),
                wan_port(j),
                path_far_end(here, &all[peer], j)
            );
        }
    }
    c
}

/// The running appliances of a [`HubSites`], with the topology. Dropping it kills the
/// appliances, then removes their files, then the namespaces; [`HubBed::stop`] stops them
/// as an operator does and checks what they left.
#[derive(Debug)]
pub struct HubBed {
    // Fields drop in order: the processes before their directory, both before the
    // namespaces they run in.
    processes: Vec<NsProcess>,
    dir: RunDir,
    /// Per site: its appliance's control socket.
    pub sockets: Vec<PathBuf>,
    final_stats: Vec<PathBuf>,
    /// What the configs are made of, kept to rewrite the hub's: every site's addresses,
    /// public key and key file, and its config file, by site number.
    all: Vec<SiteAddresses>,
    public_keys: Vec<String>,
    key_files: Vec<PathBuf>,
    configs: Vec<PathBuf>,
    /// The spokes the hub's config file lists now, in its order: what [`HubBed::wait_peers`]
    /// expects of the hub (once it has read that file).
    hub_peers: Vec<usize>,
    pub sites: HubSites,
}

/// The hub and `n_spokes` spokes on `n_links` segments, every appliance started and
/// answering on its control socket (the tunnels may still be forming:
/// [`HubBed::wait_sessions`]).
pub fn bed(n_spokes: usize, n_links: usize) -> Result<HubBed> {
    let all: Vec<usize> = (1..=n_spokes).collect();
    bed_with_hub_peers(n_spokes, n_links, &all)
}

/// [`bed`] with the hub listing only the spokes `hub_peers` (by site number, in that
/// order); every spoke still lists the hub, and an unlisted one's handshakes go unanswered
/// until a reload of the hub lists it.
pub fn bed_with_hub_peers(n_spokes: usize, n_links: usize, hub_peers: &[usize]) -> Result<HubBed> {
    let sites = hub_and_spokes(n_spokes, n_links)?;
    HubBed::start_with_hub_peers(sites, &workspace_bin("appliance"), hub_peers)
}

/// [`bed`] with spoke `spoke` behind a NAT of its own
/// ([`crate::topology::hub_and_spokes_behind_nat`]): the hub's paths to it learn its public
/// addresses.
pub fn bed_behind_nat(n_spokes: usize, n_links: usize, spoke: usize) -> Result<HubBed> {
    let sites = hub_and_spokes_behind_nat(n_spokes, n_links, spoke)?;
    HubBed::start(sites, &workspace_bin("appliance"))
}

/// Checks that `peers` are spokes among `n_sites` sites, each once: the hub cannot list
/// itself, nor one spoke twice (which would be a test's mistake, not the appliance's).
fn check_hub_peers(peers: &[usize], n_sites: usize) -> Result<()> {
    for (i, &s) in peers.iter().enumerate() {
        ensure!(
            (1..n_sites).contains(&s),
            "the hub's peers {peers:?}: {s} is not a spoke of 1..{n_sites}"
        );
        ensure!(
            !peers[..i].contains(&s),
            "the hub's peers {peers:?}: spoke {s} twice"
        );
    }
    Ok(())
}

impl HubBed {
    /// Writes every site's key, profile and config, has the appliance `exe` check each, and
    /// starts one per site in its namespace; waits for their control sockets.
    pub fn start(sites: HubSites, exe: &Path) -> Result<HubBed> {
        let all: Vec<usize> = (1..sites.hosts.len()).collect();
        Self::start_with_hub_peers(sites, exe, &all)
    }

    /// [`HubBed::start`] with the hub's config listing only the spokes `hub_peers`.
    pub fn start_with_hub_peers(
        sites: HubSites,
        exe: &Path,
        hub_peers: &[usize],
    ) -> Result<HubBed> {
        let dir = RunDir::new("hub")?;
        let n_sites = sites.hosts.len();
        check_hub_peers(hub_peers, n_sites)?;
        let key_files: Vec<PathBuf> = (0..n_sites)
            .map(|k| dir.path().join(format!("{}.key", site_name(k))))
            .collect();
        let public_keys = key_files
            .iter()
            .map(|f| appliance_tunnel::generate_key(exe, f))
            .collect::<Result<Vec<String>>>()?;
        let all = addresses(&sites);
        let mut bed = HubBed {
            processes: Vec::new(),
            dir,
            sockets: Vec::new(),
            final_stats: Vec::new(),
            all,
            public_keys,
            key_files,
            configs: Vec::new(),
            hub_peers: hub_peers.to_vec(),
            sites,
        };
        for k in 0..n_sites {
            let name = site_name(k);
            let wans: Vec<String> = bed
                .sites
                .links
                .iter()
                .map(|l| l.app_ifaces[k].clone())
                .collect();
            // Two CPUs: alternate which one carries a site's worker.
            let cpus = if k % 2 == 0 { [0, 1] } else { [1, 0] };
            let profile_path = bed.dir.path().join(format!("profile-{name}.toml"));
            let config_path = bed.dir.path().join(format!("{name}.toml"));
            let socket = bed.dir.path().join(format!("ctl-{name}.sock"));
            let final_stats = bed.dir.path().join(format!("final-{name}.json"));
            let profile = appliance_tunnel::profile(&bed.sites.lans[k], &wans, cpus, 1)?;
            std::fs::write(&profile_path, profile)
                .with_context(|| format!("writing {}", profile_path.display()))?;
            let peers = if k == 0 {
                bed.hub_peers.clone()
            } else {
                peer_sites(k, n_sites)
            };
            let text = config_listing(
                &bed.all,
                k,
                &peers,
                &bed.public_keys,
                &bed.key_files[k],
                &socket,
            );
            std::fs::write(&config_path, text)
                .with_context(|| format!("writing {}", config_path.display()))?;
            appliance_tunnel::check_config(exe, &profile_path, &config_path, &name)?;
            let cmd = appliance_tunnel::appliance_command(
                &bed.sites.apps[k],
                exe,
                &profile_path,
                &config_path,
                &final_stats,
            );
            bed.processes.push(
                NsProcess::spawn(cmd)
                    .with_context(|| format!("starting the appliance of {name}"))?,
            );
            bed.sockets.push(socket);
            bed.final_stats.push(final_stats);
            bed.configs.push(config_path);
        }
        for socket in &bed.sockets {
            appliance_tunnel::wait_socket(socket, SOCKET_WAIT)?;
        }
        Ok(bed)
    }

    /// One control request (a JSON line) to site `k`'s appliance, and its reply.
    pub fn request(&self, k: usize, line: &str) -> Result<Value> {
        let socket = self
            .sockets
            .get(k)
            .with_context(|| format!("no site {k}"))?;
        appliance_tunnel::request(socket, line)
            .with_context(|| format!("{}: request {line}", site_name(k)))
    }

    /// Rewrites the hub's config file to list exactly the spokes `peers` (by site number, in
    /// that order), with the same keys, addresses and everything else as at the start; the
    /// running hub reads it at its next [`HubBed::reload`], and from then
    /// [`HubBed::wait_peers`] expects the hub to list these.
    pub fn rewrite_hub_config(&mut self, peers: &[usize]) -> Result<()> {
        check_hub_peers(peers, self.sockets.len())?;
        let path = &self.configs[0];
        let text = config_listing(
            &self.all,
            0,
            peers,
            &self.public_keys,
            &self.key_files[0],
            &self.sockets[0],
        );
        std::fs::write(path, text).with_context(|| format!("rewriting {}", path.display()))?;
        self.hub_peers = peers.to_vec();
        Ok(())
    }

    /// `appliancectl peer <op> ARGS` at the hub, `op` being `add`, `set` or `del`; for `add`
    /// and `set`, ARGS is a file of the hub's entries of the spokes `peers` (as its config
    /// lists them, as `[[peers]]`). Its output, or an error quoting it if it failed. From
    /// then on [`HubBed::wait_peers`] expects the hub to list `expect`.
    pub fn peer_change(&mut self, op: &str, peers: &[usize], expect: &[usize]) -> Result<String> {
        let mut args = vec![
            "--socket".to_string(),
            self.sockets[0].display().to_string(),
            "peer".into(),
            op.into(),
        ];
        if op == "del" {
            args.extend(peers.iter().map(|p| site_name(*p)));
        } else {
            let listing = config_listing(
                &self.all,
                0,
                peers,
                &self.public_keys,
                &self.key_files[0],
                &self.sockets[0],
            );
            let entries = listing
                .get(listing.find("[[tunnel.peers]]").unwrap_or(listing.len())..)
                .unwrap_or_default()
                .replace("[[tunnel.peers", "[[peers");
            let file = self.dir.path().join(format!("peer-{op}.toml"));
            std::fs::write(&file, entries)?;
            args.push(file.display().to_string());
        }
        let out = std::process::Command::new(workspace_bin("appliancectl"))
            .args(&args)
            .output()
            .context("appliancectl")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            out.status.success(),
            "appliancectl {}: {text}",
            args.join(" ")
        );
        self.hub_peers = expect.to_vec();
        Ok(text)
    }

    /// Has site `k`'s appliance re-read its config file (`{"cmd":"reload"}`, as
    /// `appliancectl reload`): the changes its reply lists, one line each, or an error
    /// quoting the reply if it is not ok.
    pub fn reload(&self, k: usize) -> Result<Vec<String>> {
        let reply = self.request(k, r#"{"cmd":"reload"}"#)?;
        ensure!(
            reply["ok"] == true,
            "{}: reload refused: {reply}",
            site_name(k)
        );
        let changes = reply["data"]["changes"].as_array().with_context(|| {
            format!(
                "{}: a reload's reply without its changes: {reply}",
                site_name(k)
            )
        })?;
        Ok(changes
            .iter()
            .filter_map(|c| c.as_str().map(String::from))
            .collect())
    }

    /// `show <what>` at site `k`: the reply's data (an error if the appliance refused).
    pub fn show(&self, k: usize, what: &str) -> Result<Value> {
        let reply = self.request(k, &format!(r#"{{"cmd":"show","what":"{what}"}}"#))?;
        ensure!(
            reply["ok"] == true,
            "{}: show {what}: {reply}",
            site_name(k)
        );
        Ok(reply["data"].clone())
    }

    /// Site `k`'s path `name` to its peer `peer` in `show paths`.
    pub fn path(&self, k: usize, peer: &str, name: &str) -> Result<Value> {
        let paths = self.show(k, "paths")?;
        paths
            .as_array()
            .and_then(|a| a.iter().find(|p| p["peer"] == peer && p["name"] == name))
            .cloned()
            .with_context(|| format!("{} has no path {name} to {peer}: {paths}", site_name(k)))
    }

    /// `show peers` at site `k`: one object per peer.
    pub fn peers(&self, k: usize) -> Result<Vec<Value>> {
        let data = self.show(k, "peers")?;
        data.as_array()
            .cloned()
            .with_context(|| format!("{}: show peers is not a list: {data}", site_name(k)))
    }

    /// Site `k`'s entry for its peer `name` in `show peers`.
    pub fn peer(&self, k: usize, name: &str) -> Result<Value> {
        self.peers(k)?
            .into_iter()
            .find(|p| p["name"] == name)
            .with_context(|| format!("{} has no peer {name}", site_name(k)))
    }

    /// A drop counter of site `k` by reason, summed over its lcores (`show stats`, which
    /// lists every reason: a missing one is an error, not a zero).
    pub fn dropped(&self, k: usize, reason: &str) -> Result<u64> {
        let stats = self.show(k, "stats")?;
        stats["drops"][reason]
            .as_u64()
            .with_context(|| format!("{}: no drop counter {reason} in show stats", site_name(k)))
    }

    /// Waits up to `limit` until the hub's `show peers` lists exactly the spokes its config
    /// lists, and each of those spokes' lists exactly the hub, and each entry satisfies
    /// `ready`; `what` names the condition in the error, which quotes every site still
    /// waiting. A spoke the hub does not list is not asked: it lists the hub all the same,
    /// and what it shows of it says nothing of the hub.
    pub fn wait_peers(
        &self,
        limit: Duration,
        what: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        let sites: Vec<usize> = std::iter::once(0)
            .chain(self.hub_peers.iter().copied())
            .collect();
        loop {
            let mut waiting = Vec::new();
            for &k in &sites {
                let peers = self.peers(k)?;
                let expected = if k == 0 {
                    self.hub_peers.clone()
                } else {
                    vec![0]
                };
                let all_ready = peers.len() == expected.len()
                    && expected.iter().all(|&s| {
                        peers
                            .iter()
                            .any(|p| p["name"] == site_name(s).as_str() && ready(p))
                    });
                if !all_ready {
                    waiting.push(format!("{}: {}", site_name(k), Value::Array(peers)));
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "not every peer has {what} within {limit:?}: {}",
                    waiting.join("; ")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `limit` until every one of the hub's peers and every listed spoke's peer
    /// `hub` shows a session (`"session": true` in `show peers`; [`HubBed::wait_peers`]).
    pub fn wait_sessions(&self, limit: Duration) -> Result<()> {
        self.wait_peers(limit, "a session", |p| p["session"] == true)
    }

    /// Waits up to `limit` until site `k`'s peer `name` shows a session: how long that took.
    /// The peer may be missing from `show peers` meanwhile (a reload still adding it).
    pub fn wait_peer_session(&self, k: usize, name: &str, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let peers = self.peers(k)?;
            if peers
                .iter()
                .any(|p| p["name"] == name && p["session"] == true)
            {
                return Ok(start.elapsed());
            }
            ensure!(
                start.elapsed() <= limit,
                "{} has no session with {name} within {limit:?}: {}",
                site_name(k),
                Value::Array(peers)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// iperf3 TCP, one Cubic stream, from site `from`'s host to site `to`'s for `secs`: the
    /// Mbit/s the receiver got (as [`crate::tunnel_bed::Bed::tcp`] between two sites).
    pub fn tcp(&self, from: usize, to: usize, secs: u64) -> Result<f64> {
        let hosts = &self.sites.hosts;
        let (client_host, server_host) = (
            hosts.get(from).with_context(|| format!("no site {from}"))?,
            hosts.get(to).with_context(|| format!("no site {to}"))?,
        );
        let server = iperf::start_server(
            &server_host.ns,
            &[],
            server_host.addr,
            Duration::from_secs(1),
        )?;
        let args = iperf::tcp_args(
            server_host.addr,
            1,
            Duration::from_secs(secs),
            Duration::from_secs(1),
            Some("cubic"),
        );
        let client =
            iperf::run_client(&client_host.ns, &[], &args, Duration::from_secs(secs + 30))?;
        let out = iperf::parse_tcp(&client, &iperf::server_report(server)?)?;
        Ok(out.received_mbps)
    }

    /// Stops every appliance (SIGINT: each drains and writes its final counters) and returns
    /// those by site, each with its log under `"log"`; checks that each exited with its
    /// mempool back at its baseline and no fan-out header in use (nothing leaked).
    pub fn stop(self) -> Result<Vec<Value>> {
        let HubBed {
            processes,
            dir,
            sockets: _,
            final_stats,
            all: _,
            public_keys: _,
            key_files: _,
            configs: _,
            hub_peers: _,
            sites,
        } = self;
        let mut logs = Vec::new();
        for (k, p) in processes.into_iter().enumerate() {
            logs.push(
                appliance_tunnel::stop_appliance(p)
                    .with_context(|| format!("stopping {}", site_name(k)))?,
            );
        }
        let mut finals = Vec::new();
        for (k, (path, log)) in final_stats.iter().zip(logs).enumerate() {
            let name = site_name(k);
            let mut f = appliance_tunnel::read_final_stats(path)
                .with_context(|| format!("{name}'s final counters"))?;
            let in_use = &f["mempool_in_use_at_exit"];
            let baseline = &f["mempool"]["baseline_in_use"];
            ensure!(
                in_use.as_u64().is_some() && in_use == baseline,
                "{name}: mbufs leaked: {in_use} in use at exit, {baseline} at the baseline"
            );
            let headers = &f["headers_in_use_at_exit"];
            ensure!(
                headers.as_u64() == Some(0),
                "{name}: fan-out headers in use at exit: {headers}"
            );
            f["log"] = log.into();
            finals.push(f);
        }
        // The directory and the namespaces go only now, after the counters are read.
        drop(dir);
        drop(sites);
        Ok(finals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub and two spokes on two segments, addressed as [`hub_and_spokes`] does.
    fn three_sites() -> Vec<SiteAddresses> {
        (0..3u8)
            .map(|k| SiteAddresses {
                lan: Ipv4Addr::new(10, k + 1, 0, 1),
                lan_prefix_len: 24,
                wan: (0..2u8)
                    .map(|j| Ipv4Addr::new(172, 16, j, if k == 0 { 1 } else { 10 + k }))
                    .collect(),
                wan_prefix_len: 24,
                nat_gateways: Vec::new(),
            })
            .collect()
    }

    fn parsed(k: usize) -> toml::Value {
        let keys: Vec<String> = (0..3).map(|k| format!("key{k}=")).collect();
        let text = config(
            &three_sites(),
            k,
            &keys,
            Path::new("/run/site.key"),
            Path::new("/run/ctl.sock"),
        );
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn the_hub_has_one_peer_per_spoke_with_its_lan_and_a_path_per_link() {
        let c = parsed(0);
        let peers = c["tunnel"]["peers"].as_array().expect("peers");
        assert_eq!(peers.len(), 2);
        for (i, p) in peers.iter().enumerate() {
            let k = i + 1;
            assert_eq!(p["name"].as_str(), Some(format!("spoke{k}").as_str()));
            assert_eq!(p["public_key"].as_str(), Some(format!("key{k}=").as_str()));
            let prefixes = p["prefixes"].as_array().expect("prefixes");
            assert_eq!(prefixes.len(), 1);
            assert_eq!(
                prefixes[0].as_str(),
                Some(format!("10.{}.0.0/24", k + 1).as_str())
            );
            let paths = p["paths"].as_array().expect("paths");
            for (j, path) in paths.iter().enumerate() {
                assert_eq!(path["name"].as_str(), Some(link_name(j).as_str()));
                assert_eq!(path["id"].as_integer(), Some(j as i64));
                assert_eq!(path["interface"].as_str(), Some(format!("wan{j}").as_str()));
                assert_eq!(
                    path["remote"].as_str(),
                    Some(format!("172.16.{j}.{}", 10 + k).as_str())
                );
                assert_eq!(path["rate"].as_str(), Some(PATH_RATE));
            }
            assert_eq!(paths.len(), 2);
        }
        assert_eq!(c["tunnel"]["private_key"].as_str(), Some("/run/site.key"));
        assert!(c["tunnel"].get("prefixes").is_none());
        let ifaces = c["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifaces[0]["address"].as_str(), Some("10.1.0.1/24"));
        assert_eq!(ifaces[2]["address"].as_str(), Some("172.16.1.1/24"));
    }

    #[test]
    fn a_spoke_reaches_the_hub_and_the_other_spokes_through_the_hub() {
        let c = parsed(2);
        let peers = c["tunnel"]["peers"].as_array().expect("peers");
        assert_eq!(peers.len(), 1);
        let hub = &peers[0];
        assert_eq!(hub["name"].as_str(), Some("hub"));
        assert_eq!(hub["public_key"].as_str(), Some("key0="));
        let prefixes: Vec<&str> = hub["prefixes"]
            .as_array()
            .expect("prefixes")
            .iter()
            .filter_map(toml::Value::as_str)
            .collect();
        assert_eq!(prefixes, ["10.1.0.0/24", "10.2.0.0/24"]);
        let remotes: Vec<&str> = hub["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .filter_map(|p| p["remote"].as_str())
            .collect();
        assert_eq!(remotes, ["172.16.0.1", "172.16.1.1"]);
        let ifaces = c["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifaces[1]["address"].as_str(), Some("172.16.0.12/24"));
    }

    #[test]
    fn a_hub_listing_some_spokes_has_their_entries_and_nothing_else_changed() {
        let keys: Vec<String> = (0..3).map(|k| format!("key{k}=")).collect();
        let listing = |peers: &[usize]| -> toml::Value {
            let text = config_listing(
                &three_sites(),
                0,
                peers,
                &keys,
                Path::new("/run/site.key"),
                Path::new("/run/ctl.sock"),
            );
            toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
        };
        let mut full = parsed(0);
        let mut only_2 = listing(&[2]);
        let take = |c: &mut toml::Value| -> Vec<toml::Value> {
            c.get_mut("tunnel")
                .and_then(toml::Value::as_table_mut)
                .and_then(|t| t.remove("peers"))
                .and_then(|p| p.as_array().cloned())
                .unwrap_or_default()
        };
        let (full_peers, some_peers) = (take(&mut full), take(&mut only_2));
        assert_eq!(some_peers, [full_peers[1].clone()]);
        assert_eq!(only_2, full);
        assert_eq!(listing(&[1, 2]), parsed(0));
        assert!(check_hub_peers(&[2, 1], 3).is_ok());
        assert!(check_hub_peers(&[0], 3).is_err());
        assert!(check_hub_peers(&[3], 3).is_err());
        assert!(check_hub_peers(&[1, 1], 3).is_err());
    }

    #[test]
    fn the_hub_learns_a_spoke_behind_nat_which_reaches_it_through_its_nat() {
        let mut all = three_sites();
        all[2].wan = (0..2).map(Nat::site_address).collect();
        all[2].nat_gateways = (0..2).map(Nat::gateway).collect();
        let keys: Vec<String> = (0..3).map(|k| format!("key{k}=")).collect();
        let parsed = |k: usize| -> toml::Value {
            let text = config(
                &all,
                k,
                &keys,
                Path::new("/run/site.key"),
                Path::new("/run/ctl.sock"),
            );
            toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
        };
        // The paths of the `i`th entry of `c`'s peers.
        let paths = |c: &toml::Value, i: usize| -> Vec<toml::Value> {
            c["tunnel"]["peers"][i]["paths"]
                .as_array()
                .cloned()
                .expect("paths")
        };
        let hub = parsed(0);
        // Spoke 1, then spoke 2.
        for p in paths(&hub, 0) {
            assert!(p.get("remote").is_some() && p.get("bfd").is_none(), "{p}");
        }
        for p in paths(&hub, 1) {
            assert!(
                p.get("remote").is_none() && p.get("next_hop").is_none(),
                "{p}"
            );
            assert_eq!(p["bfd"]["enabled"].as_bool(), Some(false));
        }
        let spoke2 = parsed(2);
        for (j, p) in paths(&spoke2, 0).iter().enumerate() {
            assert_eq!(p["remote"].as_str(), Some(format!("172.16.{j}.1").as_str()));
            assert_eq!(
                p["next_hop"].as_str(),
                Some(format!("192.168.{j}.1").as_str())
            );
            assert_eq!(p["bfd"]["enabled"].as_bool(), Some(false));
        }
        let ifaces = spoke2["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifaces[2]["address"].as_str(), Some("192.168.1.2/24"));
    }

    #[test]
    fn a_lan_prefix_is_its_network() {
        let s = SiteAddresses {
            lan: Ipv4Addr::new(10, 3, 7, 1),
            lan_prefix_len: 16,
            wan: vec![],
            wan_prefix_len: 24,
            nat_gateways: vec![],
        };
        assert_eq!(s.lan_prefix(), "10.3.0.0/16");
    }
}
