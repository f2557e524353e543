//! The peer slots that have something to do (packets held or queued,
//! counters to publish), each once: what a worker's loop visits instead of
//! every peer, so a hub's idle peers cost it nothing. Listing is a flag
//! test and a push into room made when the peers change, so it never
//! allocates, and it does not touch the peer's own state.

/// Peer slots, each at most once, in the order they were listed.
#[derive(Debug, Default)]
pub struct SlotList {
    slots: Vec<usize>,
    /// By slot: whether it is in `slots`.
    listed: Vec<bool>,
}

impl SlotList {
    /// Makes room for slots `0..n` (the peers changed): listed slots below
    /// `n` stay listed, the others go.
    pub fn resize(&mut self, n: usize) {
        self.slots.retain(|s| *s < n);
        self.slots.reserve(n.saturating_sub(self.slots.len()));
        self.listed.resize(n, false);
        self.listed.truncate(n);
    }

    /// Lists `slot` unless it is listed (or beyond the room made).
    #[inline]
    pub fn list(&mut self, slot: usize) {
        if let Some(l) = self.listed.get_mut(slot).filter(|l| !**l) {
            *l = true;
            self.slots.push(slot);
        }
    }

    /// Keeps the slots for which `keep` says so, in order.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let listed = &mut self.listed;
        self.slots.retain(|s| {
            let k = keep(*s);
            if !k {
                listed[*s] = false;
            }
            k
        });
    }

    /// Takes every slot out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = usize> + '_ {
        let listed = &mut self.listed;
        self.slots.drain(..).inspect(move |s| listed[*s] = false)
    }

    /// The listed slots, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().copied()
    }

    /// Whether none is listed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_listed_once_until_it_leaves_and_a_resize_keeps_the_rest() {
        let mut l = SlotList::default();
        l.resize(4);
        for s in [2, 0, 2, 3, 9] {
            l.list(s);
        }
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [2, 0, 3],
            "once each, none beyond the room"
        );
        l.retain(|s| s != 0);
        l.list(2);
        l.list(0);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [2, 3, 0],
            "0 left, so it lists again"
        );
        l.resize(3);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [2, 0],
            "slot 3 is gone with the room"
        );
        l.resize(4);
        l.list(3);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [2, 0, 3],
            "a slot made again starts unlisted"
        );
        assert_eq!(l.drain().collect::<Vec<_>>(), [2, 0, 3]);
        assert!(l.is_empty());
        l.list(2);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [2],
            "drained slots list again"
        );
        let cap = l.slots.capacity();
        for s in 0..4 {
            l.list(s);
        }
        assert_eq!(l.slots.capacity(), cap, "listing never grows the list");
    }
}
