//! The fast path: per-packet pipeline, multicast relay (header rewrite and
//! fan-out), the worker loop, its transmit buffers, counters and idle
//! back-off.

pub mod idle;
pub mod mcast_headers;
pub mod pipeline;
pub mod relay;
pub mod tx;
pub mod worker;
