//! A worker's part of the tunnel: [`TunnelSender`] schedules what the
//! pipeline routes into the tunnel, queues it for its path's shaper
//! (`queues`) and numbers and encapsulates it as it leaves (`departures`);
//! [`TunnelReceiver`] opens (`keys`), reorders and decapsulates what comes
//! out of it (and is polled as a stage).
//!
//! Each worker sends on its own lane, numbered by counters only it touches;
//! each lane of the peer is reordered by exactly one worker here (`lane %
//! workers`), which the others reach through an SPSC ring. Nothing is shared
//! between workers but the tables and the path atomics: no lock, no shared
//! sequence counter. The two halves are separate so that a packet a lane
//! releases can enter the tunnel again (a relay rule from the tunnel with an
//! output into it is refused, but a relayed copy of a LAN stream goes in).

mod departures;
mod keys;
mod queues;
mod receive;
mod send;
mod slot_list;
mod spares;

pub use receive::{TunnelReceiver, TunnelRx};
pub use send::{TunnelSender, TunnelSenders};
pub use spares::Spares;
