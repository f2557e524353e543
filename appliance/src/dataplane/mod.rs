//! The fast path: per-packet pipeline, the worker loop, its counters and
//! idle back-off.

pub mod counters;
pub mod idle;
pub mod pipeline;
pub mod worker;
