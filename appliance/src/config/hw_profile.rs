//! The hardware profile: EAL arguments, lcores, mempool, ports and how to
//! poll them. One file per kind of box (see `hw-profiles/README.md`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{parse_toml, read, ConfigError};

/// How workers wait when there is no traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin forever: lowest latency, one full core per worker (bare metal).
    Busy,
    /// Back off after empty polls (pause, then short sleeps): shared/VM hosts.
    Adaptive,
}

/// How the management lcore's thread is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MgmtPriority {
    /// Lowest real-time priority (`SCHED_RR` 1): its timers (BFD, ARP, IGMP)
    /// fire on time even when every CPU is busy. It sleeps whenever idle.
    #[default]
    Realtime,
    /// An ordinary thread: timers may fire milliseconds late under load.
    Normal,
}

/// Whether the EAL uses hugepages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HugePages {
    /// Use hugepages (`--in-memory`) when enough are free, else `--no-huge`.
    Auto,
    /// Require hugepages.
    On,
    /// `--no-huge`: 4 KiB pages, for functional tests.
    Off,
}

/// EAL settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Lcore list as the EAL's `-l` takes it; the first is the management lcore.
    pub lcores: String,
    /// CPU of each lcore, in `lcores` order, when lcores are not CPUs one to
    /// one (e.g. two workers on a 2-vCPU VM: `[0, 1, 0]`). Passed as
    /// `--lcores=lcore@cpu,...`.
    #[serde(default)]
    pub cpus: Option<Vec<u32>>,
    /// Memory in MiB (`-m`).
    pub memory_mb: u32,
    /// Hugepage policy.
    #[serde(default = "default_hugepages")]
    pub hugepages: HugePages,
    /// Hugepage mount (bare metal, file-backed hugepages); default `--in-memory`.
    #[serde(default)]
    pub huge_dir: Option<PathBuf>,
    /// Size of the hugepages `appliance prepare` reserves (`2M` or `1G`; default 2M).
    #[serde(default)]
    pub hugepage_size: Option<String>,
    /// `--file-prefix`; default one derived from the config file, so a
    /// restarted instance reuses its runtime directory and two instances with
    /// different configs never share one.
    #[serde(default)]
    pub file_prefix: Option<String>,
    /// Driver plugin directory to load (`-d`), if the default autoload is not enough.
    #[serde(default)]
    pub plugin_dir: Option<PathBuf>,
    /// Passed to the EAL as they are (e.g. `--log-level=pmd.net.*:debug`).
    #[serde(default)]
    pub extra_args: Vec<String>,
}

fn default_hugepages() -> HugePages {
    HugePages::Auto
}

/// The packet buffer pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Number of mbufs (best as 2^n - 1).
    pub mbufs: u32,
    /// Per-lcore cache.
    #[serde(default = "default_cache")]
    pub cache: u32,
    /// Buffer size including the 128 B headroom.
    #[serde(default = "default_data_room")]
    pub data_room: u16,
    /// Small buffers for multicast fan-out headers (one per relayed copy
    /// in flight when a rule has several outputs).
    #[serde(default = "default_header_mbufs")]
    pub header_mbufs: u32,
}

/// Data room of a fan-out header mbuf: the 128 B headroom plus 64 B for
/// Ethernet + IPv4 + UDP (42 B), rounded up to a cache line.
pub const HEADER_DATA_ROOM: u16 = 128 + 64;

fn default_header_mbufs() -> u32 {
    8191
}

fn default_cache() -> u32 {
    256
}
fn default_data_room() -> u16 {
    2176
}

/// Idle back-off tuning for `poll_mode = "adaptive"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleConfig {
    /// Empty polls before backing off at all.
    #[serde(default = "default_spin_polls")]
    pub spin_polls: u32,
    /// Longest sleep between polls when idle, in microseconds.
    #[serde(default = "default_max_sleep_us")]
    pub max_sleep_us: u32,
    /// Adaptive mode: after a poll that drained the rings (and found less
    /// than a backlog), sleep until about this many packets have arrived at
    /// the measured rate (at most `max_sleep_us`), like a NIC's `rx-frames`
    /// interrupt moderation; 0 (the default) turns it off.
    #[serde(default = "default_coalesce_frames")]
    pub coalesce_frames: u32,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            spin_polls: default_spin_polls(),
            max_sleep_us: default_max_sleep_us(),
            coalesce_frames: default_coalesce_frames(),
        }
    }
}

fn default_spin_polls() -> u32 {
    256
}
fn default_max_sleep_us() -> u32 {
    250
}
fn default_coalesce_frames() -> u32 {
    0
}

/// Kind of port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// A PCI NIC (bare metal).
    Pci,
    /// af_packet sockets on a kernel interface, driven by the appliance
    /// (`dpdk_bindings::packet_port`), not DPDK's `net_af_packet`.
    AfPacket,
    /// `net_af_xdp` on a kernel interface.
    AfXdp,
    /// `net_pcap`: packets from/to pcap files (golden tests).
    Pcap,
    /// `net_ring`: in-memory loop (benchmarks).
    Ring,
    /// `net_null`: sink/source (benchmarks).
    Null,
    /// `net_memif`: shared-memory link to another DPDK process (benchmarks:
    /// two appliances back to back with no kernel between them); `devargs`
    /// give its `role` and `socket`.
    Memif,
}

/// One port of the box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortProfile {
    /// Logical name the config refers to (`lan`, `wan0`).
    pub name: String,
    /// Kind of port.
    pub driver: Driver,
    /// PCI address (`pci`).
    #[serde(default)]
    pub pci: Option<String>,
    /// The kernel driver `appliance prepare` binds the PCI device to for DPDK (`vfio-pci`,
    /// `uio_pci_generic`); unset, the device is left as it is (Mellanox NICs stay on mlx5:
    /// their PMD works beside the kernel's driver).
    #[serde(default)]
    pub bind: Option<String>,
    /// Kernel interface (`af_packet`, `af_xdp`).
    #[serde(default)]
    pub iface: Option<String>,
    /// af_packet RX ring slots per queue (default 16384); ≥ 16384 or a
    /// shared core drops silently. The TX ring has `tx_desc` slots.
    #[serde(default)]
    pub framecnt: Option<u32>,
    /// Input pcap (`pcap`).
    #[serde(default)]
    pub rx_pcap: Option<PathBuf>,
    /// Output pcap prefix (`pcap`): one file per TX queue, `<prefix>.q<N>.pcap`.
    #[serde(default)]
    pub tx_pcap: Option<PathBuf>,
    /// Extra device arguments appended to the vdev/PCI string.
    #[serde(default)]
    pub devargs: Option<String>,
    /// RX descriptors per queue.
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// TX descriptors per queue.
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// MTU (default: leave the device's).
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Spread flows over workers by RSS.
    #[serde(default = "yes")]
    pub rss: bool,
    /// Use TX checksum offload where the device has it.
    #[serde(default = "yes")]
    pub checksum_offload: bool,
    /// Receive frames for any MAC (needed on veths shared with the kernel).
    #[serde(default = "yes")]
    pub promiscuous: bool,
}

impl PortProfile {
    /// af_packet RX ring slots per queue.
    pub fn framecnt(&self) -> u32 {
        self.framecnt.unwrap_or(16384)
    }
}

fn default_desc() -> u16 {
    1024
}
fn yes() -> bool {
    true
}

/// The whole hardware profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwProfile {
    /// Profile name, for logs.
    pub name: String,
    /// Free text: what box this is.
    #[serde(default)]
    pub description: String,
    /// Worker polling.
    pub poll_mode: PollMode,
    /// Idle back-off tuning.
    #[serde(default)]
    pub idle: IdleConfig,
    /// Scheduling of the management lcore (default `realtime`).
    #[serde(default)]
    pub mgmt_priority: MgmtPriority,
    /// EAL settings.
    pub eal: EalConfig,
    /// Packet buffer pool.
    pub mempool: MempoolConfig,
    /// Ports, in port-index order.
    pub ports: Vec<PortProfile>,
}

/// Most ports the appliance handles (per-worker counter arrays are sized by it).
pub const MAX_PORTS: usize = 16;

impl HwProfile {
    /// Loads and validates a profile file.
    ///
    /// # Errors
    /// The first problem found, naming file and key.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = read(file)?;
        Self::parse(file, &text)
    }

    /// Parses and validates profile text (`file` is for messages only).
    ///
    /// # Errors
    /// The first problem found, naming file and key.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let p: HwProfile = parse_toml(file, text)?;
        p.validate(file)?;
        Ok(p)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: String, what: &str| Err(ConfigError::new(file, key, what));
        if parse_lcores(&self.eal.lcores).is_none_or(|l| l.len() < 2) {
            return err("eal.lcores".into(), "an lcore list with at least two lcores, e.g. \"0-1\" or \"0,2,4\" (the first is the management lcore)");
        }
        if let Some(cpus) = &self.eal.cpus {
            if cpus.len() != self.lcores().len() {
                return err(
                    "eal.cpus".into(),
                    "one CPU per lcore, in the order of eal.lcores",
                );
            }
        }
        if self.eal.memory_mb < 64 {
            return err("eal.memory_mb".into(), "at least 64 (MiB)");
        }
        if self
            .eal
            .hugepage_size
            .as_deref()
            .is_some_and(|s| !matches!(s, "2M" | "1G"))
        {
            return err("eal.hugepage_size".into(), "\"2M\" or \"1G\"");
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.bind.is_some() && p.driver != Driver::Pci {
                return err(
                    format!("ports[{i}].bind"),
                    "only on a `pci` port (a kernel driver for its PCI device)",
                );
            }
            if p.bind.as_deref().is_some_and(|b| {
                b.is_empty()
                    || !b
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }) {
                return err(
                    format!("ports[{i}].bind"),
                    "a kernel driver name such as \"vfio-pci\"",
                );
            }
        }
        if self.mempool.mbufs < 1023 {
            return err("mempool.mbufs".into(), "at least 1023 mbufs");
        }
        if self.mempool.data_room < 1024 + 128 {
            return err(
                "mempool.data_room".into(),
                "at least 1152 bytes (128 B headroom + a frame)",
            );
        }
        if self.mempool.header_mbufs < 63 {
            return err("mempool.header_mbufs".into(), "at least 63 header mbufs");
        }
        if self.mempool.cache > 512 || self.mempool.cache * 2 > self.mempool.mbufs {
            return err(
                "mempool.cache".into(),
                "at most 512 and at most half of mempool.mbufs",
            );
        }
        // The pool must fit in the EAL memory with room for rings and queues.
        let pool_mb = (u64::from(self.mempool.mbufs) * (u64::from(self.mempool.data_room) + 192)
            + u64::from(self.mempool.header_mbufs) * (u64::from(HEADER_DATA_ROOM) + 192))
            / (1 << 20);
        if pool_mb + 32 > u64::from(self.eal.memory_mb) {
            return err("mempool.mbufs".into(), &format!("a pool that fits in eal.memory_mb = {} MiB (this one needs about {} MiB + 32 MiB for the EAL)", self.eal.memory_mb, pool_mb));
        }
        if self.ports.is_empty() {
            return err("ports".into(), "at least one [[ports]] table");
        }
        if self.ports.len() > MAX_PORTS {
            return err("ports".into(), &format!("at most {MAX_PORTS} ports"));
        }
        for (i, p) in self.ports.iter().enumerate() {
            let key = |k: &str| format!("ports[{i}].{k}");
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return err(
                    key("name"),
                    "a non-empty name of letters, digits, '-' or '_'",
                );
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return err(key("name"), "a name not used by another port");
            }
            let needs = |field: &str, present: bool| -> Result<(), ConfigError> {
                if present {
                    Ok(())
                } else {
                    Err(ConfigError::new(
                        file,
                        key(field),
                        format!("required for driver {:?}", p.driver),
                    ))
                }
            };
            let forbids = |field: &str, present: bool| -> Result<(), ConfigError> {
                if present {
                    Err(ConfigError::new(
                        file,
                        key(field),
                        format!("not allowed for driver {:?}", p.driver),
                    ))
                } else {
                    Ok(())
                }
            };
            match p.driver {
                Driver::Pci => {
                    needs("pci", p.pci.is_some())?;
                    forbids("iface", p.iface.is_some())?;
                }
                Driver::AfPacket | Driver::AfXdp => {
                    needs(
                        "iface",
                        p.iface
                            .as_ref()
                            .is_some_and(|s| !s.is_empty() && s.len() < 16),
                    )?;
                    forbids("pci", p.pci.is_some())?;
                    // Two ports on one kernel interface would each see the
                    // other's traffic and fight over its queues.
                    if let Some(q) = self.ports[..i].iter().find(|q| {
                        matches!(q.driver, Driver::AfPacket | Driver::AfXdp) && q.iface == p.iface
                    }) {
                        return err(
                            key("iface"),
                            &format!("an interface no other port uses (port {} has it)", q.name),
                        );
                    }
                }
                Driver::Pcap => {
                    needs("rx_pcap", p.rx_pcap.is_some())?;
                    needs("tx_pcap", p.tx_pcap.is_some())?;
                }
                Driver::Ring | Driver::Null | Driver::Memif => {
                    forbids("iface", p.iface.is_some())?;
                    forbids("pci", p.pci.is_some())?;
                }
            }
            if p.driver != Driver::AfPacket {
                forbids("framecnt", p.framecnt.is_some())?;
            } else if p.devargs.is_some() {
                return err(
                    key("devargs"),
                    "nothing: af_packet ports are driven by the appliance, not a DPDK vdev",
                );
            } else if p.framecnt.is_some_and(|f| f < 512 || !f.is_power_of_two()) {
                return err(
                    key("framecnt"),
                    "a power of two ≥ 512 (16384 or more on shared cores)",
                );
            }
            if p.driver != Driver::Pcap {
                forbids("rx_pcap", p.rx_pcap.is_some())?;
                forbids("tx_pcap", p.tx_pcap.is_some())?;
            }
            for (k, d) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
                if !(64..=16384).contains(&d) {
                    return err(key(k), "between 64 and 16384 descriptors");
                }
            }
            if p.mtu.is_some_and(|m| !(576..=9600).contains(&m)) {
                return err(key("mtu"), "between 576 and 9600");
            }
        }
        if self.idle.max_sleep_us > 10_000 {
            return err(
                "idle.max_sleep_us".into(),
                "at most 10000 (10 ms); longer sleeps overflow RX rings",
            );
        }
        if self.idle.coalesce_frames > 256 {
            return err(
                "idle.coalesce_frames".into(),
                "at most 256 packets (0 turns coalescing off)",
            );
        }
        Ok(())
    }

    /// The lcores, management lcore first.
    pub fn lcores(&self) -> Vec<u32> {
        parse_lcores(&self.eal.lcores).unwrap_or_default()
    }

    /// Number of worker lcores.
    pub fn workers(&self) -> usize {
        self.lcores().len().saturating_sub(1)
    }

    /// The DPDK device name of port `i` (what `rte_eth_dev_get_port_by_name` finds).
    pub fn device_name(&self, i: usize) -> String {
        let p = &self.ports[i];
        match p.driver {
            Driver::Pci => p.pci.clone().unwrap_or_default(),
            Driver::AfPacket => format!("af_packet:{}", p.iface.as_deref().unwrap_or_default()),
            Driver::AfXdp => format!("net_af_xdp{i}"),
            Driver::Pcap => format!("net_pcap{i}"),
            Driver::Ring => format!("net_ring{i}"),
            Driver::Null => format!("net_null{i}"),
            Driver::Memif => format!("net_memif{i}"),
        }
    }

    /// The EAL file prefix: `eal.file_prefix` if set, else `instance` (see
    /// [`instance_name`]).
    pub fn file_prefix(&self, instance: &str) -> String {
        self.eal
            .file_prefix
            .clone()
            .unwrap_or_else(|| instance.to_string())
    }

    /// EAL arguments (argv[0] included) for this profile.
    ///
    /// `hugepages_free_mb` is what the host has free (from /proc/meminfo);
    /// it decides `auto`. `instance` names this appliance instance (the file
    /// prefix unless the profile sets one).
    pub fn eal_args(&self, hugepages_free_mb: u64, instance: &str) -> Vec<String> {
        let workers = self.workers();
        let mut a = vec!["appliance".to_string()];
        match &self.eal.cpus {
            Some(cpus) => {
                let map: Vec<String> = self
                    .lcores()
                    .iter()
                    .zip(cpus)
                    .map(|(l, c)| format!("{l}@{c}"))
                    .collect();
                a.push(format!("--lcores={}", map.join(",")));
            }
            None => {
                a.push("-l".into());
                a.push(self.eal.lcores.clone());
            }
        }
        // The first listed lcore is the management one.
        if let Some(main) = self.lcores().first() {
            a.push(format!("--main-lcore={main}"));
        }
        a.push("-m".into());
        a.push(self.eal.memory_mb.to_string());
        let huge = match self.eal.hugepages {
            HugePages::On => true,
            HugePages::Off => false,
            HugePages::Auto => hugepages_free_mb >= u64::from(self.eal.memory_mb),
        };
        let prefix = self.file_prefix(instance);
        if huge {
            match &self.eal.huge_dir {
                Some(dir) => {
                    a.push(format!("--huge-dir={}", dir.display()));
                    a.push(format!("--file-prefix={prefix}"));
                }
                None => a.push("--in-memory".into()),
            }
        } else {
            // --no-huge cannot combine with --in-memory; a unique prefix
            // keeps concurrent processes apart instead.
            a.push("--no-huge".into());
            a.push(format!("--file-prefix={prefix}"));
        }
        if !self.ports.iter().any(|p| p.driver == Driver::Pci) {
            a.push("--no-pci".into());
        }
        if let Some(dir) = &self.eal.plugin_dir {
            a.push("-d".into());
            a.push(dir.display().to_string());
        }
        for (i, p) in self.ports.iter().enumerate() {
            let extra = p
                .devargs
                .as_deref()
                .map(|d| format!(",{d}"))
                .unwrap_or_default();
            let iface = p.iface.as_deref().unwrap_or_default();
            match p.driver {
                Driver::Pci => a.push(format!("-a{}{extra}", p.pci.as_deref().unwrap_or_default())),
                // Opened by the appliance itself (`dpdk_bindings::packet_port`),
                // not by the EAL.
                Driver::AfPacket => {}
                Driver::AfXdp => a.push(format!(
                    "--vdev=net_af_xdp{i},iface={iface},start_queue=0,queue_count={}{extra}",
                    workers + 1
                )),
                Driver::Pcap => {
                    let rx = p
                        .rx_pcap
                        .as_ref()
                        .map(|r| r.display().to_string())
                        .unwrap_or_default();
                    let tx = p
                        .tx_pcap
                        .as_ref()
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    let txs: Vec<String> = (0..=workers)
                        .map(|q| format!("tx_pcap={tx}.q{q}.pcap"))
                        .collect();
                    a.push(format!(
                        "--vdev=net_pcap{i},rx_pcap={rx},{}{extra}",
                        txs.join(",")
                    ));
                }
                Driver::Ring => a.push(format!("--vdev=net_ring{i}{extra}")),
                Driver::Null => a.push(format!("--vdev=net_null{i}{extra}")),
                Driver::Memif => a.push(format!("--vdev=net_memif{i}{extra}")),
            }
        }
        a.extend(self.eal.extra_args.iter().cloned());
        a
    }
}

/// Parses an EAL lcore list such as `0-3`, `0,2,4` or `1,3-5`.
pub(crate) fn parse_lcores(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            if a > b || b >= 1024 {
                return None;
            }
            out.extend(a..=b);
        } else {
            let v: u32 = part.parse().ok()?;
            if v >= 1024 {
                return None;
            }
            out.push(v);
        }
    }
    let mut sorted = out.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == out.len() && !out.is_empty()).then_some(out)
}

/// The name of the appliance instance run with config file `config`:
/// `appliance-<file stem>-<8 hex digits of a hash of its absolute path>`. A
/// restarted instance gets the same name (and so reuses its EAL runtime
/// directory instead of leaving one per run behind); two configs never share
/// one, whatever their file names.
pub fn instance_name(config: &Path) -> String {
    let absolute = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = absolute
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    let stem: String = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    format!("appliance-{stem}-{:08x}", hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
poll_mode = "adaptive"
[eal]
lcores = "0-2"
memory_mb = 256
hugepages = "off"
[mempool]
mbufs = 8191
cache = 128
[[ports]]
name = "lan"
driver = "af_packet"
iface = "veth0"
framecnt = 16384
[[ports]]
name = "wan"
driver = "pcap"
rx_pcap = "in.pcap"
tx_pcap = "out"
"#;

    fn parse(t: &str) -> Result<HwProfile, ConfigError> {
        HwProfile::parse(Path::new("p.toml"), t)
    }

    #[test]
    fn good_profile_builds_eal_args() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.workers(), 2);
        let a = p.eal_args(0, "appliance-t").join(" ");
        assert!(a.contains("--no-huge"), "{a}");
        assert!(
            !a.contains("net_af_packet"),
            "the appliance opens af_packet ports: {a}"
        );
        assert!(
            a.contains("tx_pcap=out.q0.pcap,tx_pcap=out.q1.pcap,tx_pcap=out.q2.pcap"),
            "{a}"
        );
        assert!(a.contains("--no-pci"));
        assert!(a.contains("--file-prefix=appliance-t"), "{a}");
        assert_eq!(p.device_name(1), "net_pcap1");
    }

    #[test]
    fn auto_hugepages_uses_in_memory_when_enough_are_free() {
        let p = parse(&GOOD.replace("hugepages = \"off\"", "hugepages = \"auto\"")).unwrap();
        assert!(p.eal_args(512, "x").contains(&"--in-memory".to_string()));
        assert!(p.eal_args(128, "x").contains(&"--no-huge".to_string()));
    }

    #[test]
    fn instance_names_are_stable_and_distinct() {
        let a = instance_name(Path::new("/etc/appliance/site-a.toml"));
        assert_eq!(a, instance_name(Path::new("/etc/appliance/site-a.toml")));
        assert!(a.starts_with("appliance-site-a-"), "{a}");
        assert_ne!(a, instance_name(Path::new("/tmp/x/site-a.toml")));
        assert_ne!(a, instance_name(Path::new("/etc/appliance/site-b.toml")));
    }

    #[test]
    fn unknown_key_is_named() {
        let e =
            parse(&GOOD.replace("framecnt = 16384", "framecnt = 16384\nspeed = 10")).unwrap_err();
        assert_eq!(e.key, "ports[0].speed");
        assert!(e.expected.contains("unknown field"), "{e}");
        assert!(
            e.to_string().starts_with("p.toml: key `ports[0].speed`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let e = parse(&GOOD.replace("memory_mb = 256", "memory_mb = \"lots\"")).unwrap_err();
        assert_eq!(e.key, "eal.memory_mb");
    }

    #[test]
    fn bad_enum_value_is_named() {
        let e =
            parse(&GOOD.replace("poll_mode = \"adaptive\"", "poll_mode = \"lazy\"")).unwrap_err();
        assert_eq!(e.key, "poll_mode");
        assert!(e.expected.contains("busy"), "{e}");
    }

    #[test]
    fn semantic_errors_are_named() {
        let cases = [
            ("lcores = \"0-2\"", "lcores = \"0\"", "eal.lcores"),
            (
                "iface = \"veth0\"",
                "iface = \"a-very-long-interface-name\"",
                "ports[0].iface",
            ),
            ("framecnt = 16384", "framecnt = 1000", "ports[0].framecnt"),
            ("mbufs = 8191", "mbufs = 200000", "mempool.mbufs"),
            ("name = \"wan\"", "name = \"lan\"", "ports[1].name"),
            (
                "poll_mode = \"adaptive\"",
                "poll_mode = \"adaptive\"\n[idle]\ncoalesce_frames = 1000",
                "idle.coalesce_frames",
            ),
            ("rx_pcap = \"in.pcap\"", "", "ports[1].rx_pcap"),
            (
                // Two ports on one kernel interface.
                "driver = \"pcap\"\nrx_pcap = \"in.pcap\"\ntx_pcap = \"out\"",
                "driver = \"af_packet\"\niface = \"veth0\"",
                "ports[1].iface",
            ),
        ];
        for (from, to, key) in cases {
            assert!(GOOD.contains(from), "{from} is in the profile");
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!(e.key, key, "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn lcore_lists() {
        assert_eq!(parse_lcores("0-3"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_lcores("1,3-4"), Some(vec![1, 3, 4]));
        assert_eq!(parse_lcores("3-1"), None);
        assert_eq!(parse_lcores("1,1"), None);
        assert_eq!(parse_lcores("x"), None);
    }
}
