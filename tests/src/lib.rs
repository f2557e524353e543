//! Test bed library: network namespaces and standard topologies, the WAN link emulator,
//! traffic tools and the scenario runner. It never uses the appliance's own code.
#![forbid(unsafe_code)]

pub mod bins;
pub mod control;
pub mod golden;
pub mod hub_bed;
pub mod netns;
pub mod probe;
pub mod rundir;
pub mod scenario;
pub mod tap;
pub mod topology;
pub mod traffic;
pub mod tunnel_bed;
pub mod wanem;

pub use netns::{
    cleanup_orphans, cleanup_prefix, is_root, skip_unless_root, veth, Netns, NsProcess,
    ProcessOutput, RunId,
};
pub use topology::{relay, relay_linux, sites, sites_linux, wan_pair, Relay, Sites, WanPair};
