//! The fast path: per-packet pipeline, multicast relay (header rewrite and
//! fan-out), the worker loop, its transmit buffers, stages polled every
//! iteration, and the idle back-off.

pub mod dispatch;
pub mod doorbell;
pub mod idle;
pub mod mcast_headers;
pub mod mgmt_frames;
pub mod pipeline;
pub mod pipeline6;
pub mod relay;
pub mod sinks;
pub mod stage;
pub mod tunnel;
pub mod tx;
pub mod verdict;
pub mod worker;
