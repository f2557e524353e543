//! Stages with work of their own: besides the packets the pipeline hands
//! them, some stages hold packets and must act when time passes (a reorder
//! buffer releasing a hole at its deadline) or when another worker hands them
//! packets through a ring. The worker polls each such [`Stage`] once per loop
//! iteration, whether or not packets arrived, and its idle back-off never
//! sleeps past the earliest [`Stage::next_deadline`].

use crate::dataplane::sinks::Sinks;
use crate::tables::Tables;
use crate::time::Time;

/// A stage the worker polls every loop iteration.
pub trait Stage: Send + std::fmt::Debug {
    /// Does the stage's own work at `now` with the iteration's snapshot
    /// (packets whose deadline passed, packets other workers handed over),
    /// sending what it releases through `sinks`; returns how many packets it
    /// moved, which keeps the worker from backing off while it is busy.
    fn poll(&mut self, tables: &Tables, now: Time, sinks: &mut Sinks<'_>) -> usize;

    /// When the stage next needs `poll`, if it holds anything.
    fn next_deadline(&self) -> Option<Time>;
}
