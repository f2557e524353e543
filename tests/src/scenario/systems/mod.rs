//! The systems a scenario compares (its rows): Linux baselines built in the same run, and
//! the appliance. Each file sets one system up on a fresh topology and returns a guard that
//! owns whatever it started; dropping the guard stops it (the topology's namespaces go
//! after it, taking anything left with them).
//!
//! | system | topology | what it is |
//! |---|---|---|
//! | `linux-single` | sites | plain routing over the first WAN link only: the one-link reference |
//! | `linux-ecmp-vxlan` | sites | one VXLAN tunnel per WAN link, kernel ECMP on the five-tuple: per-flow "tunnel handoff" without failure detection |
//! | `linux-mptcp` | sites | MPTCP end hosts (`mptcpize`), one address per WAN link, source-subnet routing: WAN-aware MPTCP without fast recovery |
//! | `linux-ipsec` | sites | kernel IPsec, ESP tunnel mode with AES-256-GCM and static SAs over the first WAN link: the encrypted tunnel sites run today |
//! | `linux-wireguard` | sites | WireGuard in user space (`wireguard-go`) over the first WAN link |
//! | `linux-socat` | relay | one `socat` per stream and output, receiving the input group and sending to the translated one |
//! | `linux-smcroute` | relay | kernel multicast routing (smcroute): no translation, 1:1 only |
//! | `appliance` | relay | the DPDK appliance on af_packet, with generated `[[mcast_rules]]` |
//! | `appliance-<scheduler>` | sites | two appliances joined by the multipath tunnel with that scheduler (`wlb`, `minrtt`, `flow-hash`, `source-subnet` with MPTCP hosts, `backup`, `redundant`) |

pub mod appliance;
pub mod appliance_tunnel;
pub mod linux_ecmp_vxlan;
pub mod linux_ipsec;
pub mod linux_mptcp;
pub mod linux_single;
pub mod linux_smcroute;
pub mod linux_socat;
pub mod linux_wireguard;
pub mod relay_guard;

use serde::{Deserialize, Serialize};

use super::spec::TopologyKind;
use crate::netns::NsProcess;

pub use relay_guard::RelayGuard;

/// One row of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    LinuxSingle,
    LinuxEcmpVxlan,
    LinuxMptcp,
    LinuxIpsec,
    LinuxWireguard,
    LinuxSocat,
    LinuxSmcroute,
    Appliance,
    /// The relay appliance with one worker (`appliance-1w`).
    #[serde(rename = "appliance-1w")]
    Appliance1w,
    ApplianceWlb,
    #[serde(rename = "appliance-minrtt")]
    ApplianceMinRtt,
    ApplianceFlowHash,
    ApplianceSourceSubnet,
    ApplianceBackup,
    ApplianceRedundant,
}

impl System {
    pub const ALL: [System; 15] = [
        System::LinuxSingle,
        System::LinuxEcmpVxlan,
        System::LinuxMptcp,
        System::LinuxIpsec,
        System::LinuxWireguard,
        System::LinuxSocat,
        System::LinuxSmcroute,
        System::Appliance,
        System::Appliance1w,
        System::ApplianceWlb,
        System::ApplianceMinRtt,
        System::ApplianceFlowHash,
        System::ApplianceSourceSubnet,
        System::ApplianceBackup,
        System::ApplianceRedundant,
    ];

    /// The tunnel scheduler of an `appliance-<scheduler>` row.
    pub fn tunnel_scheduler(self) -> Option<&'static str> {
        match self {
            System::ApplianceWlb => Some("wlb"),
            System::ApplianceMinRtt => Some("minrtt"),
            System::ApplianceFlowHash => Some("flow-hash"),
            System::ApplianceSourceSubnet => Some("source-subnet"),
            System::ApplianceBackup => Some("backup"),
            System::ApplianceRedundant => Some("redundant"),
            _ => None,
        }
    }

    /// The name used in scenario files and results.
    pub fn name(self) -> &'static str {
        match self {
            System::LinuxSingle => "linux-single",
            System::LinuxEcmpVxlan => "linux-ecmp-vxlan",
            System::LinuxMptcp => "linux-mptcp",
            System::LinuxIpsec => "linux-ipsec",
            System::LinuxWireguard => "linux-wireguard",
            System::LinuxSocat => "linux-socat",
            System::LinuxSmcroute => "linux-smcroute",
            System::Appliance => "appliance",
            System::Appliance1w => "appliance-1w",
            System::ApplianceWlb => "appliance-wlb",
            System::ApplianceMinRtt => "appliance-minrtt",
            System::ApplianceFlowHash => "appliance-flow-hash",
            System::ApplianceSourceSubnet => "appliance-source-subnet",
            System::ApplianceBackup => "appliance-backup",
            System::ApplianceRedundant => "appliance-redundant",
        }
    }

    /// One line for the README's table of rows.
    pub fn describe(self) -> &'static str {
        match self {
            System::LinuxSingle => {
                "Linux routers, plain routing over the first WAN link only (the one-link reference)"
            }
            System::LinuxEcmpVxlan => {
                "Linux routers, one VXLAN tunnel per WAN link, ECMP route hashed on the \
                 five-tuple: per-flow tunnel handoff, no failure detection"
            }
            System::LinuxMptcp => {
                "MPTCP end hosts (iperf3 under mptcpize), one host address per WAN link, \
                 source-subnet routing on the Linux routers: WAN-aware MPTCP without fast recovery"
            }
            System::LinuxIpsec => {
                "Linux routers, kernel IPsec: ESP tunnel mode over the first WAN link, \
                 AES-256-GCM, static SAs (ESP uses one link)"
            }
            System::LinuxWireguard => {
                "Linux routers, WireGuard in user space (Debian's wireguard-go) over the first \
                 WAN link (WireGuard uses one link)"
            }
            System::LinuxSocat => {
                "one socat per stream and output on a Linux host: joins the input group, \
                 sends each datagram to the translated group and port"
            }
            System::LinuxSmcroute => {
                "kernel multicast routing set up by smcroute: forwards the group unchanged \
                 (no translation), one output per input"
            }
            System::Appliance => {
                "the DPDK appliance on af_packet (vm-af-packet-2workers profile: management \
                 lcore + 2 workers on the 2 vCPUs) with generated [[mcast_rules]]"
            }
            System::Appliance1w => {
                "the same with one worker (vm-af-packet profile: management lcore on CPU 0, \
                 the worker on CPU 1)"
            }
            System::ApplianceWlb => {
                "two DPDK appliances joined by the multipath tunnel over every link, wlb: per \
                 packet in bytes, earliest delivery, reordered at the far end"
            }
            System::ApplianceMinRtt => {
                "the tunnel with minrtt: the lowest-delay path, spilling to the next at its rate"
            }
            System::ApplianceFlowHash => {
                "the tunnel with flow-hash: a flow stays on one path (hashed by configured rate)"
            }
            System::ApplianceSourceSubnet => {
                "the tunnel with source-subnet: MPTCP end hosts (mptcpize), one address per link, \
                 each subnet bound to its path (WAN-aware MPTCP with fast recovery)"
            }
            System::ApplianceBackup => "the tunnel with backup: active/standby by priority",
            System::ApplianceRedundant => {
                "the tunnel with redundant: every packet on the two best paths, first copy wins"
            }
        }
    }

    /// The topology it runs on; `None` when it can run on either.
    pub fn topology(self) -> Option<TopologyKind> {
        match self {
            System::LinuxSocat | System::LinuxSmcroute => Some(TopologyKind::Relay),
            System::Appliance | System::Appliance1w => Some(TopologyKind::Relay),
            _ => Some(TopologyKind::Sites),
        }
    }

    /// Why this system cannot be measured on `topology`, or on this machine, if it cannot.
    pub fn not_available(self, topology: TopologyKind) -> Option<String> {
        match (self, topology) {
            (System::Appliance | System::Appliance1w, TopologyKind::Sites) => {
                Some("the tunnel rows are appliance-<scheduler> (appliance-wlb, ...)".into())
            }
            (System::LinuxIpsec, _) => linux_ipsec::kernel_lacks_esp(),
            _ => None,
        }
    }

    /// Whether its sites/relay namespaces are Linux routers (addresses, forwarding) rather
    /// than bare veth ends for the DPDK application.
    pub fn linux_routers(self) -> bool {
        !matches!(self, System::Appliance | System::Appliance1w)
            && self.tunnel_scheduler().is_none()
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How traffic runs over a sites system once it is set up.
#[derive(Debug, Default)]
pub struct SitesSetup {
    /// Words put before `iperf3` on both hosts (`mptcpize run` for MPTCP).
    pub wrapper: Vec<String>,
    pub notes: Vec<String>,
    /// The system's own user-space processes (`wireguard-go`): their CPU time is the row's
    /// system CPU; stopped (SIGTERM) when the row ends.
    pub processes: Vec<NsProcess>,
}

impl SitesSetup {
    /// CPU seconds its own processes used so far; `None` when it has none (Linux routers).
    pub fn cpu_seconds(&self) -> Option<f64> {
        (!self.processes.is_empty())
            .then(|| crate::scenario::machine::processes_cpu_seconds(&self.processes))
    }
}
