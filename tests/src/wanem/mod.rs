//! The WAN link emulator: bridges pairs of interfaces at layer 2 with AF_PACKET and applies
//! delay, jitter, rate with a bounded queue, random and burst loss, and link states, per link
//! and direction. The `wan-emulator` binary is a thin wrapper around [`engine::Emulator`].

pub mod carrier;
pub mod client;
pub mod config;
pub mod control;
pub mod engine;
pub mod forwarder;
pub mod link;
pub mod model;
pub mod port;
pub mod stats;

pub use client::{Control, EmulatorProcess};
pub use config::{
    Action, Config, DirParams, DirPatch, Direction, Dur, Event, LinkConfig, QueueLimit, Rate,
};
pub use engine::{Emulator, Snapshot};
pub use stats::DropReason;
