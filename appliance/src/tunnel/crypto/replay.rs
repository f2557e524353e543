//! The anti-replay window of one (key, lane, path): which path sequence
//! numbers were already accepted, as RFC 6479's ring of bit blocks (no
//! shifting; moving the window clears the blocks it passes).
//!
//! A packet is checked before it is decrypted ([`Window::fresh`]) and
//! marked only after its tag verified ([`Window::mark`]), so forged packets
//! never move it. Sequence numbers wrap (32 bits); a key never covers 2^32
//! packets of one (lane, path), so serial-number order is exact.

use super::RX_KEYS;

/// Blocks of 64 bits in the ring.
const BLOCKS: usize = 128;
/// How far behind the newest accepted number a packet may be and still be
/// accepted once: the ring less one block (the one being filled), as
/// WireGuard's 8128.
pub const WINDOW: u32 = ((BLOCKS - 1) * 64) as u32;

/// What one window has accepted.
#[derive(Clone)]
pub struct Window {
    /// The newest number accepted (`None`: nothing yet).
    top: Option<u32>,
    bits: [u64; BLOCKS],
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window").field("top", &self.top).finish()
    }
}

impl Default for Window {
    fn default() -> Self {
        Self {
            top: None,
            bits: [0; BLOCKS],
        }
    }
}

/// The windows of one (lane, path): one per receive key held, found by the
/// key's serial (not by its place in the key set, which shifts as sessions
/// come and go: a window found by place would be another key's, or
/// forgotten, and a replay would pass).
#[derive(Debug, Default)]
pub struct KeyWindows {
    /// The serial of the key each window holds numbers for (0: none).
    serials: [u64; RX_KEYS],
    windows: [Window; RX_KEYS],
}

impl KeyWindows {
    /// Whether `seq` may be accepted under the key of serial `serial`
    /// (nothing changes).
    ///
    /// # Errors
    /// Why not.
    #[inline]
    pub fn fresh(&self, serial: u64, seq: u32) -> Result<(), Refused> {
        match self.serials.iter().position(|s| *s == serial) {
            Some(i) => self.windows[i].fresh(seq),
            // Nothing accepted under this key here yet.
            None => Ok(()),
        }
    }

    /// Accepts `seq`, which [`Self::fresh`] allowed and whose packet
    /// verified, under the key of serial `serial`; `held` are the serials of
    /// the keys held now (0: an empty place), of which `serial` is one. A key
    /// new here takes the window of one no longer held. Returns whether it
    /// is the newest so far ([`Window::mark`]).
    #[inline]
    pub fn mark(&mut self, serial: u64, seq: u32, held: &[u64; RX_KEYS]) -> bool {
        let i = match self.serials.iter().position(|s| *s == serial) {
            Some(i) => i,
            None => {
                // At most RX_KEYS keys are held, this one among them: another
                // window is free or belongs to a key that is gone.
                let gone = |s: &u64| *s == 0 || !held.contains(s);
                let i = self.serials.iter().position(gone).unwrap_or(0);
                self.serials[i] = serial;
                self.windows[i].reset();
                i
            }
        };
        self.windows[i].mark(seq)
    }
}

/// Why a number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Accepted before.
    Again,
    /// Further behind the newest than the window reaches.
    TooOld,
}

fn at(seq: u32) -> (usize, u64) {
    ((seq >> 6) as usize % BLOCKS, 1u64 << (seq & 63))
}

impl Window {
    /// Forgets everything (a new key). Cheap: the bits are cleared when the
    /// window is next used, so a key change costs nothing per window that
    /// stays idle.
    pub fn reset(&mut self) {
        self.top = None;
    }

    /// Whether `seq` may be accepted (nothing changes).
    ///
    /// # Errors
    /// Why not.
    #[inline]
    pub fn fresh(&self, seq: u32) -> Result<(), Refused> {
        let Some(top) = self.top else {
            return Ok(());
        };
        let ahead = seq.wrapping_sub(top) as i32;
        if ahead > 0 {
            return Ok(());
        }
        if ahead.unsigned_abs() >= WINDOW {
            return Err(Refused::TooOld);
        }
        let (block, bit) = at(seq);
        if self.bits[block] & bit != 0 {
            return Err(Refused::Again);
        }
        Ok(())
    }

    /// Accepts `seq`, which [`Self::fresh`] allowed and whose packet
    /// verified. Returns whether it is the newest so far (it moved the
    /// window, or is the first).
    #[inline]
    pub fn mark(&mut self, seq: u32) -> bool {
        let newest = match self.top {
            None => {
                // The first number since a reset: what the bits held is from before.
                self.bits = [0; BLOCKS];
                self.top = Some(seq);
                true
            }
            Some(top) if (seq.wrapping_sub(top) as i32) > 0 => {
                // Clear the blocks the window moves onto (all of them at most).
                // Block numbers are 26 bits (a sequence number's top bits).
                let from = top >> 6;
                let to = seq >> 6;
                let moved = (to.wrapping_sub(from) & (u32::MAX >> 6)).min(BLOCKS as u32);
                for i in 1..=moved {
                    self.bits[from.wrapping_add(i) as usize % BLOCKS] = 0;
                }
                self.top = Some(seq);
                true
            }
            Some(_) => false,
        };
        let (block, bit) = at(seq);
        self.bits[block] |= bit;
        newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn accept(w: &mut Window, seq: u32) -> Result<(), Refused> {
        w.fresh(seq)?;
        w.mark(seq);
        Ok(())
    }

    #[test]
    fn first_copies_pass_second_copies_and_old_ones_do_not() {
        let mut w = Window::default();
        assert_eq!(accept(&mut w, 100), Ok(()));
        assert_eq!(accept(&mut w, 100), Err(Refused::Again));
        assert_eq!(accept(&mut w, 99), Ok(()), "late but inside");
        assert_eq!(accept(&mut w, 10_000), Ok(()));
        assert_eq!(accept(&mut w, 10_000 - WINDOW + 1), Ok(()));
        assert_eq!(accept(&mut w, 10_000 - WINDOW), Err(Refused::TooOld));
        assert_eq!(accept(&mut w, 150), Err(Refused::TooOld));
    }

    #[test]
    fn mark_says_which_number_is_the_newest_and_a_reset_forgets_lazily() {
        let mut w = Window::default();
        assert!(w.mark(100), "the first");
        assert!(!w.mark(99), "late: not the newest");
        assert!(w.mark(101));
        w.reset();
        assert_eq!(w.fresh(101), Ok(()), "forgotten at once");
        assert!(w.mark(200), "the first since the reset");
        // 101 is behind 200 and inside the window: only its bit could refuse it.
        assert_eq!(
            w.fresh(101),
            Ok(()),
            "the old bits went with the first mark"
        );
        assert_eq!(w.fresh(200), Err(Refused::Again));
    }

    #[test]
    fn each_key_has_its_window_wherever_the_key_set_holds_it() {
        let mut w = KeyWindows::default();
        assert!(w.mark(7, 100, &[7, 0, 0]));
        assert_eq!(w.fresh(7, 100), Err(Refused::Again));
        assert_eq!(w.fresh(8, 100), Ok(()), "another key's");
        assert!(w.mark(8, 100, &[7, 8, 0]));
        assert!(w.mark(9, 100, &[7, 8, 9]));
        // Key 7 retired; key 8 moved to the set's first place: its window stays.
        assert!(w.mark(10, 50, &[8, 9, 10]), "the first under key 10");
        assert_eq!(w.fresh(8, 100), Err(Refused::Again), "key 8 kept its own");
        assert_eq!(w.fresh(9, 100), Err(Refused::Again), "key 9 kept its own");
        assert_eq!(w.fresh(10, 50), Err(Refused::Again));
        assert_eq!(
            w.fresh(7, 100),
            Ok(()),
            "retired: its window went to key 10"
        );
    }

    #[test]
    fn numbers_wrap() {
        let mut w = Window::default();
        assert_eq!(accept(&mut w, u32::MAX - 1), Ok(()));
        assert_eq!(accept(&mut w, 3), Ok(()));
        assert_eq!(accept(&mut w, u32::MAX), Ok(()), "behind, across the wrap");
        assert_eq!(accept(&mut w, u32::MAX - 1), Err(Refused::Again));
        assert_eq!(accept(&mut w, 3), Err(Refused::Again));
    }

    #[test]
    fn a_check_alone_changes_nothing() {
        let mut w = Window::default();
        accept(&mut w, 5).unwrap();
        for seq in [6, 1_000_000, 4] {
            assert_eq!(w.fresh(seq), Ok(()));
        }
        assert_eq!(accept(&mut w, 6), Ok(()), "checked, never marked");
    }

    proptest! {
        /// Against a set of every number accepted: a number is accepted
        /// exactly when it is new and within the window of the newest.
        #[test]
        fn accepts_every_first_copy_inside_the_window_and_no_second(
            start in any::<u32>(),
            steps in proptest::collection::vec((-9000i64..9000, 0u8..3), 1..400),
        ) {
            let mut w = Window::default();
            let mut seen = std::collections::HashSet::new();
            let mut top: Option<u32> = None;
            let mut cur = start;
            for (step, repeat) in steps {
                cur = cur.wrapping_add(step as u32);
                for _ in 0..=repeat {
                    let behind = top.map_or(0, |t| t.wrapping_sub(cur) as i32);
                    let want = if seen.contains(&cur) && behind >= 0 && (behind as u32) < WINDOW {
                        Err(Refused::Again)
                    } else if behind > 0 && behind as u32 >= WINDOW {
                        Err(Refused::TooOld)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(accept(&mut w, cur), want, "seq {} top {:?}", cur, top);
                    if want.is_ok() {
                        seen.insert(cur);
                        if behind <= 0 {
                            top = Some(cur);
                        }
                    }
                }
            }
        }
    }
}
