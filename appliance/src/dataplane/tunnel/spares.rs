//! Receive state made ahead of need. A peer's reorder lane, and the replay
//! windows of one of its (lane, path) pairs, are made the first time they
//! carry a packet that authenticated, not when the peer is configured: a
//! hub's idle peers then cost next to nothing (`docs/benchmarks.md`, "Many
//! peers"). A worker never allocates while it forwards, so it takes them
//! from shelves the management lcore keeps stocked ([`Spares::restock`]).
//! An empty shelf drops the packet (`tunnel_no_state`) until the next
//! restock: a millisecond after the last one while spares are being taken,
//! 10 ms at most after a quiet spell.

use std::sync::atomic::{AtomicU32, Ordering};

use crossbeam_queue::ArrayQueue;
use dpdk_bindings::Mbuf;

use crate::tunnel::crypto::replay::KeyWindows;
use crate::tunnel::reorder::{self, Lane};

/// Replay windows on the shelf per worker: what that many (lane, path)
/// pairs starting in one restock period take.
const WINDOWS_PER_WORKER: usize = 256;
/// Most lanes on one ring size's shelf.
const LANES_MAX: usize = 64;
/// Fewest lanes on a shelf in use, however large their rings.
const LANES_MIN: usize = 2;
/// What one ring size's shelf may hold (bytes): fewer spares of large rings.
const LANE_SHELF_BYTES: usize = 8 << 20;
/// Ring sizes 2^1 to 2^16 ([`reorder::Config::ring_size`]).
const RING_SIZES: usize = 17;

/// The shelves, shared by the workers (who take) and the management lcore
/// (who stocks).
pub struct Spares {
    windows: ArrayQueue<Box<KeyWindows>>,
    /// Shelf `s` holds lanes whose ring has 2^s slots.
    lanes: Box<[ArrayQueue<Box<Lane<Mbuf>>>]>,
    /// Bit s: a peer's lanes have rings of 2^s (the shelves stocked).
    rings: AtomicU32,
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares")
            .field("windows", &self.windows.len())
            .field("rings", &self.rings.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The shelf of lanes of `cfg`'s ring size.
fn shelf_of(cfg: &reorder::Config) -> usize {
    cfg.ring_size().trailing_zeros() as usize
}

/// How many lanes of ring size 2^`s` a shelf keeps.
fn lanes_wanted(s: usize) -> usize {
    (LANE_SHELF_BYTES / Lane::<Mbuf>::footprint(1 << s)).clamp(LANES_MIN, LANES_MAX)
}

impl Spares {
    /// Empty shelves for `workers` workers ([`Self::restock`] fills them).
    pub fn new(workers: usize) -> Self {
        Self {
            windows: ArrayQueue::new(WINDOWS_PER_WORKER * workers.max(1)),
            lanes: (0..RING_SIZES)
                .map(|s| ArrayQueue::new(lanes_wanted(s)))
                .collect(),
            rings: AtomicU32::new(0),
        }
    }

    /// A (lane, path)'s replay windows, if one is ready.
    #[inline]
    pub fn windows(&self) -> Option<Box<KeyWindows>> {
        self.windows.pop()
    }

    /// How many (lane, path) windows are ready.
    pub fn windows_ready(&self) -> usize {
        self.windows.len()
    }

    /// A lane tuned as `cfg`, if one of its ring size is ready.
    #[inline]
    pub fn lane(&self, cfg: &reorder::Config) -> Option<Box<Lane<Mbuf>>> {
        let mut lane = self.lanes.get(shelf_of(cfg))?.pop()?;
        lane.set_max_hold(cfg.max_hold_ns);
        Some(lane)
    }

    /// The ring sizes the lanes of peers tuned as `peers` use (bit s: 2^s),
    /// for [`Self::restock`].
    pub fn rings_of<'a>(peers: impl Iterator<Item = &'a reorder::Config>) -> u32 {
        peers.fold(0, |rings, cfg| rings | 1 << shelf_of(cfg))
    }

    /// On the management lcore: fills the shelves of the lanes of ring
    /// sizes `rings` ([`Self::rings_of`]) and, when some peer is encrypted
    /// (`windows`), of replay windows. Returns how many spares it made.
    pub fn restock(&self, rings: u32, windows: bool) -> usize {
        self.rings.store(rings, Ordering::Relaxed);
        let mut made = 0;
        while windows && !self.windows.is_full() {
            if self.windows.push(Box::default()).is_err() {
                break;
            }
            made += 1;
        }
        for (s, shelf) in self.lanes.iter().enumerate() {
            if rings & (1 << s) == 0 {
                continue;
            }
            // The tuning a peer's table gives its lanes, but for `max_hold`
            // (set when taken): `TunnelTable` sets nothing else.
            let cfg = reorder::Config {
                capacity: 1 << s,
                ..reorder::Config::default()
            };
            while !shelf.is_full() {
                if shelf.push(Box::new(Lane::new(cfg))).is_err() {
                    break;
                }
                made += 1;
            }
        }
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuned(capacity: usize, max_hold_ns: u64) -> reorder::Config {
        reorder::Config {
            capacity,
            max_hold_ns,
            ..reorder::Config::default()
        }
    }

    #[test]
    fn a_restocked_shelf_gives_lanes_of_the_peers_ring_sizes_and_their_hold() {
        let spares = Spares::new(2);
        assert!(
            spares.windows().is_none(),
            "nothing before the first restock"
        );
        let peers = [tuned(100, 5_000_000), tuned(4096, 1)];
        let rings = Spares::rings_of(peers.iter());
        let made = spares.restock(rings, true);
        assert_eq!(
            made,
            2 * WINDOWS_PER_WORKER + lanes_wanted(7) + lanes_wanted(12)
        );
        let lane = spares.lane(&peers[0]).expect("a lane of 128");
        assert_eq!(lane.capacity(), 128);
        assert!(
            spares.lane(&tuned(1 << 10, 1)).is_none(),
            "no peer uses 1024"
        );
        for _ in 0..lanes_wanted(12) {
            assert_eq!(spares.lane(&peers[1]).map(|l| l.capacity()), Some(4096));
        }
        assert!(spares.lane(&peers[1]).is_none(), "the shelf ran out");
        assert_eq!(spares.restock(rings, true), 1 + lanes_wanted(12));
        assert_eq!(spares.restock(rings, true), 0, "full");
        assert!(spares.windows().is_some());
        assert_eq!(spares.restock(rings, false), 0, "no windows in clear");
        assert_eq!(spares.windows_ready(), 2 * WINDOWS_PER_WORKER - 1);
    }

    #[test]
    fn large_rings_keep_fewer_spares() {
        assert_eq!(lanes_wanted(1), LANES_MAX);
        assert_eq!(lanes_wanted(16), LANES_MIN);
    }
}
