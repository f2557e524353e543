//! Test traffic: the payload format shared by `mcast-gen` and `mcast-sink`, and the sink's
//! per-stream statistics.

pub mod payload;
pub mod stats;

pub use payload::{realtime_ns, Header, HEADER_LEN};
pub use stats::{Latency, StreamReport, StreamStats};
