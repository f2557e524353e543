//! Longest-prefix match over IPv4 in at most three memory reads: a
//! DIR-16-8-8 table (the multibit trie of DPDK's `rte_lpm`, with a 16-bit
//! first level so that a small table stays small).
//!
//! Level 1 has one entry per /16; an entry is a leaf (the route that covers
//! the whole /16, or none) or points to a level-2 group of 256 entries, one
//! per /24, whose entries point on in turn to level-3 groups, one entry per
//! address. A route of length `l` fills the `2^(16-l)`, `2^(24-l)` or
//! `2^(32-l)` entries it covers at its level; routes go in shortest first,
//! so a longer one overwrites a shorter one where they overlap, and a group
//! is born holding the leaf of the entry it replaces.
//!
//! Built once per table version on the management lcore (the table is
//! immutable, so there is no incremental update to get wrong), read by the
//! workers without locks or allocation. Memory: 256 KiB, plus 1 KiB per /16
//! that holds a longer prefix and 1 KiB per /24 that holds one longer than
//! /24.

/// A table entry: 0 is no route; with [`GROUP`] set, the index of a group at
/// the next level; otherwise a route index plus one.
type Entry = u32;

const GROUP: Entry = 1 << 31;
const L1_BITS: u32 = 16;

/// The trie; each route maps to a value (an index into the caller's route
/// list).
#[derive(Debug, Clone)]
pub struct Lpm {
    l1: Box<[Entry]>,
    l2: Vec<Entry>,
    l3: Vec<Entry>,
}

impl Default for Lpm {
    fn default() -> Self {
        Self {
            l1: vec![0; 1 << L1_BITS].into_boxed_slice(),
            l2: Vec::new(),
            l3: Vec::new(),
        }
    }
}

impl Lpm {
    /// Builds the trie from `(network, length, value)` triples; values must
    /// be below 2^31 - 1. Among routes with the same prefix the last wins.
    ///
    /// # Panics
    /// If a value is 2^31 - 1 or more, or a length above 32 (callers pass
    /// `Ipv4Net` lengths and `Vec` indices).
    pub fn new(routes: &[(u32, u8, u32)]) -> Self {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        // Shortest first; the stable sort keeps a later duplicate after an
        // earlier one, so it overwrites it.
        order.sort_by_key(|&i| routes[i].1);
        let mut t = Self::default();
        for i in order {
            let (net, len, value) = routes[i];
            assert!(len <= 32 && value < GROUP - 1, "route {i} out of range");
            t.insert(net, len, value + 1);
        }
        t
    }

    fn insert(&mut self, net: u32, len: u8, leaf: Entry) {
        let len = u32::from(len);
        let net = if len == 0 {
            0
        } else {
            net & (u32::MAX << (32 - len))
        };
        if len <= L1_BITS {
            let first = (net >> 16) as usize;
            let n = 1usize << (L1_BITS - len);
            fill(&mut self.l1[first..first + n], leaf);
            return;
        }
        let i1 = (net >> 16) as usize;
        let g2 = descend(&mut self.l1[i1], &mut self.l2);
        let i2 = g2 * 256 + ((net >> 8) & 0xff) as usize;
        if len <= 24 {
            let n = 1usize << (24 - len);
            fill(&mut self.l2[i2..i2 + n], leaf);
            return;
        }
        let g3 = descend(&mut self.l2[i2], &mut self.l3);
        let i3 = g3 * 256 + (net & 0xff) as usize;
        let n = 1usize << (32 - len);
        fill(&mut self.l3[i3..i3 + n], leaf);
    }

    /// The value of the longest prefix holding `addr`.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        let mut e = self.l1[(addr >> 16) as usize];
        if e & GROUP != 0 {
            e = self.l2[(e & !GROUP) as usize * 256 + ((addr >> 8) & 0xff) as usize];
            if e & GROUP != 0 {
                e = self.l3[(e & !GROUP) as usize * 256 + (addr & 0xff) as usize];
            }
        }
        e.checked_sub(1)
    }

    /// Bytes the trie holds.
    pub fn memory(&self) -> usize {
        (self.l1.len() + self.l2.len() + self.l3.len()) * std::mem::size_of::<Entry>()
    }
}

/// Sets `slots` to `leaf`. Routes go in shortest first, and groups at a
/// level are only made by routes longer than every route that fills that
/// level, so a filled slot is never a group.
fn fill(slots: &mut [Entry], leaf: Entry) {
    debug_assert!(slots.iter().all(|s| *s & GROUP == 0));
    slots.fill(leaf);
}

/// The group `entry` points to, made first (holding `entry`'s leaf in all
/// 256 slots) if it is a leaf.
fn descend(entry: &mut Entry, level: &mut Vec<Entry>) -> usize {
    if *entry & GROUP != 0 {
        return (*entry & !GROUP) as usize;
    }
    let g = level.len() / 256;
    level.extend(std::iter::repeat_n(*entry, 256));
    *entry = GROUP | g as Entry;
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn every_level_and_the_default() {
        let t = Lpm::new(&[
            (0, 0, 0),
            (ip("10.0.0.0"), 8, 1),
            (ip("10.1.0.0"), 16, 2),
            (ip("10.1.2.0"), 24, 3),
            (ip("10.1.2.128"), 25, 4),
            (ip("10.1.2.3"), 32, 5),
        ]);
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.4")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(4));
        assert_eq!(t.lookup(ip("10.1.3.1")), Some(2));
        assert_eq!(t.lookup(ip("10.2.0.1")), Some(1));
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(0));
        assert_eq!(
            Lpm::new(&[(ip("10.0.0.0"), 8, 1)]).lookup(ip("11.0.0.1")),
            None
        );
        assert_eq!(Lpm::new(&[]).lookup(ip("1.2.3.4")), None);
    }

    #[test]
    fn a_shorter_route_after_a_longer_one_keeps_the_longer() {
        // Inserted longest first in the input: the build sorts them.
        let t = Lpm::new(&[(ip("10.1.2.0"), 24, 3), (ip("10.0.0.0"), 8, 1)]);
        assert_eq!(t.lookup(ip("10.1.2.9")), Some(3));
        assert_eq!(t.lookup(ip("10.1.3.9")), Some(1));
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(1));
    }

    #[test]
    fn memory_grows_with_long_prefixes_only() {
        let small = Lpm::new(&[(ip("10.0.0.0"), 8, 0)]);
        assert_eq!(small.memory(), 256 * 1024);
        let t = Lpm::new(&[(ip("10.1.2.0"), 24, 0), (ip("10.1.2.1"), 32, 1)]);
        assert_eq!(t.memory(), 256 * 1024 + 2 * 1024);
    }

    fn reference(routes: &[(u32, u8, u32)], addr: u32) -> Option<u32> {
        let mask = |l: u8| {
            if l == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(l))
            }
        };
        let best = routes
            .iter()
            .filter(|(n, l, _)| (addr & mask(*l)) == (n & mask(*l)))
            .map(|(_, l, _)| *l)
            .max()?;
        routes
            .iter()
            .rev()
            .find(|(n, l, _)| *l == best && (addr & mask(*l)) == (n & mask(*l)))
            .map(|(_, _, v)| *v)
    }

    proptest! {
        /// Agrees with a linear scan, probing addresses inside the routes as
        /// well as random ones, with prefixes that nest and overlap.
        #[test]
        fn matches_a_linear_scan(
            base in any::<u32>(),
            routes in proptest::collection::vec((any::<u16>(), 0u8..=32), 1..60),
            probes in proptest::collection::vec((0usize..60, any::<u16>(), any::<u32>()), 1..80),
        ) {
            // Routes share their top bits with `base`, so they nest.
            let routes: Vec<(u32, u8, u32)> = routes
                .iter()
                .enumerate()
                .map(|(i, &(low, l))| ((base & 0xffff_0000) | u32::from(low), l, i as u32))
                .collect();
            let t = Lpm::new(&routes);
            for (i, low, random) in probes {
                let (n, _, _) = routes[i % routes.len()];
                for addr in [n, n ^ u32::from(low), random] {
                    prop_assert_eq!(t.lookup(addr), reference(&routes, addr), "addr {:#x}", addr);
                }
            }
        }
    }
}
