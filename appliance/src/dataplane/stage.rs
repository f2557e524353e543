//! Stages with work of their own: besides the packets the pipeline hands
//! them, some stages hold packets and must act when time passes (a reorder
//! buffer releasing a hole at its deadline) or when another worker hands them
//! packets through a ring. The worker polls each such [`Stage`] once per loop
//! iteration, whether or not packets arrived, and its idle back-off never
//! sleeps past the earliest [`Stage::next_deadline`].

use crate::dataplane::tx::TxPorts;
use crate::stats::WorkerCounters;
use crate::tables::Tables;
use crate::time::Time;

/// What a stage's `poll` works with: the worker's snapshot, TX buffers and
/// counters, at one instant.
#[derive(Debug)]
pub struct StageCtx<'a> {
    /// Now, read once per loop iteration.
    pub now: Time,
    /// The snapshot of this iteration.
    pub tables: &'a Tables,
    /// The worker's TX buffers (flushed after the stages ran).
    pub tx: &'a mut TxPorts,
    /// The worker's counters.
    pub counters: &'a WorkerCounters,
}

/// A stage the worker polls every loop iteration.
pub trait Stage: Send + std::fmt::Debug {
    /// Does the stage's own work (packets whose deadline passed, packets other
    /// workers handed over); returns how many packets it moved, which keeps
    /// the worker from backing off while it is busy.
    fn poll(&mut self, ctx: &mut StageCtx<'_>) -> usize;

    /// When the stage next needs `poll`, if it holds anything.
    fn next_deadline(&self) -> Option<Time>;
}
