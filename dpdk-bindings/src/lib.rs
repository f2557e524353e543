//! DPDK 22.11 for the appliance: generated FFI ([`ffi`]), and the safe layer
//! the rest of the workspace uses (EAL, lcores, mempools, mbufs, ports,
//! rings, time). All `unsafe` of the project lives in this crate, each block
//! with the reason it is sound.
pub mod eal;
pub mod error;
pub mod ffi;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod packet_port;
pub mod port;
pub mod ring;
pub mod time;

pub use eal::Eal;
pub use error::{DpdkError, Result};
pub use mbuf::{Burst, Mbuf, SharedMbuf, BURST_SIZE};
pub use mempool::Mempool;
