//! Longest-prefix match over IPv6: a multibit trie with a 16-bit first level
//! and 8-bit strides below it (DIR-16-8-...-8, the layout of [`super::lpm`]
//! carried on to 128 bits), so a lookup makes one memory read for a prefix up
//! to /16, two up to /24, five for a /48, seven for a /64 and at most fifteen
//! for a /128.
//!
//! Level 1 has one entry per /16; an entry is a leaf (the route that covers
//! the whole /16, or none) or points to a group of 256 entries, one per /24,
//! whose entries are leaves or point on to groups one byte further down, and
//! so on to level 15, one entry per address. A route of length `l` fills the
//! `2^(16-l)` entries it covers in level 1 if `l <= 16`, otherwise the
//! `2^(8k-l)` entries it covers in its group at level `k - 1` for the `8k`
//! from 24 to 128 just at or above `l`. Routes go in shortest first, so a
//! longer one overwrites a shorter one where they overlap, and a group is
//! born holding the leaf of the entry it replaces.
//!
//! Every group below level 1 lives in one shared array, whatever its level:
//! the level of a group is the number of reads that reached it, so nothing
//! needs a separate array per level, and a lookup walks a single base pointer
//! with one bounds check per read. The array is a `Vec` while the trie is
//! built and boxed (cut to its length) when it is done.
//!
//! Built once per table version on the management lcore (the table is
//! immutable, so there is no incremental update to get wrong), read by the
//! workers without locks or allocation. Memory: 256 KiB, plus 1 KiB per
//! group, where a group exists for each prefix of 16, 24, ... 120 bits that
//! holds a route longer than itself. A route of length `l > 16` makes at most
//! `ceil((l - 16) / 8)` groups and shares those of its upper bits with the
//! routes beside it, so memory grows at most linearly with the routes: at
//! most 4 KiB for a lone /48, 6 KiB for a /64 and 14 KiB for a /128.

/// A table entry: 0 is no route; with [`GROUP`] set, the index of a group at
/// the next level; otherwise a route index plus one.
type Entry = u32;

const GROUP: Entry = 1 << 31;
const L1_BITS: u32 = 16;
/// Address bits each group below level 1 resolves.
const STRIDE: u32 = 8;
const GROUP_LEN: usize = 1 << STRIDE;

/// The trie; each route maps to a value (an index into the caller's route
/// list).
#[derive(Debug, Clone)]
pub struct Lpm6 {
    l1: Box<[Entry]>,
    /// Every group of every level below the first, `GROUP_LEN` entries each.
    groups: Box<[Entry]>,
}

impl Default for Lpm6 {
    fn default() -> Self {
        Self {
            l1: vec![0; 1 << L1_BITS].into_boxed_slice(),
            groups: Box::default(),
        }
    }
}

impl Lpm6 {
    /// Builds the trie from `(network, length, value)` triples, the network
    /// as the address's 128 bits in network order (`u128::from(Ipv6Addr)`);
    /// bits beyond the length are ignored. Values must be below 2^31 - 1.
    /// Among routes with the same prefix the last wins.
    ///
    /// # Panics
    /// If a value is 2^31 - 1 or more, or a length above 128 (callers pass
    /// `Ipv6Net` lengths and `Vec` indices).
    pub fn new(routes: &[(u128, u8, u32)]) -> Self {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        // Shortest first; the stable sort keeps a later duplicate after an
        // earlier one, so it overwrites it.
        order.sort_by_key(|&i| routes[i].1);
        let mut l1 = vec![0; 1 << L1_BITS].into_boxed_slice();
        let mut groups = Vec::new();
        for i in order {
            let (net, len, value) = routes[i];
            assert!(len <= 128 && value < GROUP - 1, "route {i} out of range");
            insert(&mut l1, &mut groups, net, len, value + 1);
        }
        Self {
            l1,
            groups: groups.into_boxed_slice(),
        }
    }

    /// The value of the longest prefix holding `addr`.
    #[inline]
    pub fn lookup(&self, addr: u128) -> Option<u32> {
        let mut e = self.l1[(addr >> (128 - L1_BITS)) as usize];
        let mut shift = 128 - L1_BITS;
        // A group's entries at the last level are all leaves, so the loop
        // stops by `shift` reaching 0 at the latest; the bound only makes
        // that plain.
        while e & GROUP != 0 && shift > 0 {
            shift -= STRIDE;
            let byte = (addr >> shift) as usize & (GROUP_LEN - 1);
            e = self.groups[(e & !GROUP) as usize * GROUP_LEN + byte];
        }
        e.checked_sub(1)
    }

    /// Bytes the trie holds.
    pub fn memory(&self) -> usize {
        (self.l1.len() + self.groups.len()) * std::mem::size_of::<Entry>()
    }
}

/// Adds a route of length `len` whose leaf is `leaf`.
fn insert(l1: &mut [Entry], groups: &mut Vec<Entry>, net: u128, len: u8, leaf: Entry) {
    let len = u32::from(len);
    let net = if len == 0 {
        0
    } else {
        net & (u128::MAX << (128 - len))
    };
    let i1 = (net >> (128 - L1_BITS)) as usize;
    if len <= L1_BITS {
        let n = 1usize << (L1_BITS - len);
        fill(&mut l1[i1..i1 + n], leaf);
        return;
    }
    l1[i1] = descend(l1[i1], groups);
    let mut group = l1[i1];
    // Bits resolved so far: those of level 1, then one stride per group.
    let mut depth = L1_BITS;
    loop {
        depth += STRIDE;
        let byte = (net >> (128 - depth)) as usize & (GROUP_LEN - 1);
        let i = (group & !GROUP) as usize * GROUP_LEN + byte;
        if len <= depth {
            let n = 1usize << (depth - len);
            fill(&mut groups[i..i + n], leaf);
            return;
        }
        groups[i] = descend(groups[i], groups);
        group = groups[i];
    }
}

/// Sets `slots` to `leaf`. Routes go in shortest first, and groups at a
/// level are only made by routes longer than every route that fills that
/// level, so a filled slot is never a group.
fn fill(slots: &mut [Entry], leaf: Entry) {
    debug_assert!(slots.iter().all(|s| *s & GROUP == 0));
    slots.fill(leaf);
}

/// `entry` if it points to a group; otherwise (a leaf) a new group holding
/// that leaf in all its slots, and the entry that points to it.
///
/// # Panics
/// If there are already 2^31 groups (2 TiB; the allocation fails first).
fn descend(entry: Entry, groups: &mut Vec<Entry>) -> Entry {
    if entry & GROUP != 0 {
        return entry;
    }
    let g = Entry::try_from(groups.len() / GROUP_LEN)
        .ok()
        .filter(|g| g & GROUP == 0)
        .expect("fewer than 2^31 groups");
    groups.extend(std::iter::repeat_n(entry, GROUP_LEN));
    GROUP | g
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    const L1: usize = 256 * 1024;
    const KIB: usize = 1024;

    #[test]
    fn slash_0_is_a_default_route() {
        // The network's bits are all beyond the length: ignored.
        let t = Lpm6::new(&[(ip("2001:db8::1"), 0, 7)]);
        for a in [0, u128::MAX, ip("2001:db8::1"), ip("fe80::1")] {
            assert_eq!(t.lookup(a), Some(7));
        }
        assert_eq!(t.memory(), L1);
        assert_eq!(Lpm6::new(&[]).lookup(ip("2001:db8::1")), None);
        assert_eq!(Lpm6::default().lookup(u128::MAX), None);
        assert_eq!(Lpm6::default().memory(), L1);
    }

    #[test]
    fn slash_16_fills_one_first_level_entry() {
        let t = Lpm6::new(&[(ip("2001:ffff::"), 16, 1)]);
        assert_eq!(t.lookup(ip("2001::")), Some(1));
        assert_eq!(
            t.lookup(ip("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(1)
        );
        assert_eq!(
            t.lookup(ip("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            None
        );
        assert_eq!(t.lookup(ip("2002::")), None);
        assert_eq!(t.memory(), L1);
        // A /15 fills two.
        let t = Lpm6::new(&[(ip("2000::"), 15, 1)]);
        assert_eq!(t.lookup(ip("2001:1::")), Some(1));
        assert_eq!(t.lookup(ip("2002::")), None);
    }

    #[test]
    fn slash_17_fills_half_a_group() {
        let t = Lpm6::new(&[(ip("2001:8000::"), 17, 1)]);
        assert_eq!(t.lookup(ip("2001:8000::")), Some(1));
        assert_eq!(
            t.lookup(ip("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(1)
        );
        assert_eq!(
            t.lookup(ip("2001:7fff:ffff:ffff:ffff:ffff:ffff:ffff")),
            None
        );
        assert_eq!(t.lookup(ip("2002::")), None);
        assert_eq!(t.memory(), L1 + KIB);
    }

    #[test]
    fn slash_48() {
        let t = Lpm6::new(&[(ip("2001:db8:1::"), 48, 3)]);
        assert_eq!(t.lookup(ip("2001:db8:1::")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:1:ffff:1:2:3:4")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:0:ffff::")), None);
        assert_eq!(t.lookup(ip("2001:db8:2::")), None);
        assert_eq!(t.lookup(ip("2001:db9:1::")), None);
        // Groups for bits 16-24, 24-32, 32-40 and 40-48.
        assert_eq!(t.memory(), L1 + 4 * KIB);
    }

    #[test]
    fn slash_64() {
        let t = Lpm6::new(&[(ip("2001:db8:1:2::"), 64, 4)]);
        assert_eq!(t.lookup(ip("2001:db8:1:2::")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:1:3::")), None);
        assert_eq!(t.lookup(ip("2001:db8:1:1:ffff:ffff:ffff:ffff")), None);
        assert_eq!(t.memory(), L1 + 6 * KIB);
    }

    #[test]
    fn slash_127() {
        let t = Lpm6::new(&[(ip("2001:db8::3"), 127, 5)]);
        assert_eq!(t.lookup(ip("2001:db8::2")), Some(5));
        assert_eq!(t.lookup(ip("2001:db8::3")), Some(5));
        assert_eq!(t.lookup(ip("2001:db8::1")), None);
        assert_eq!(t.lookup(ip("2001:db8::4")), None);
        assert_eq!(t.memory(), L1 + 14 * KIB);
    }

    #[test]
    fn slash_128() {
        let t = Lpm6::new(&[(ip("2001:db8::1"), 128, 6), (u128::MAX, 128, 9)]);
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(6));
        assert_eq!(t.lookup(ip("2001:db8::")), None);
        assert_eq!(t.lookup(ip("2001:db8::2")), None);
        assert_eq!(t.lookup(ip("2001:db8:0:0:1::1")), None);
        assert_eq!(t.lookup(u128::MAX), Some(9));
        assert_eq!(t.lookup(u128::MAX - 1), None);
        assert_eq!(t.memory(), L1 + 2 * 14 * KIB);
    }

    #[test]
    fn nested_prefixes_at_every_level_and_the_default() {
        let t = Lpm6::new(&[
            (0, 0, 0),
            (ip("2000::"), 3, 1),
            (ip("2001::"), 16, 2),
            (ip("2001:db8::"), 32, 3),
            (ip("2001:db8:1::"), 48, 4),
            (ip("2001:db8:1:ff00::"), 56, 5),
            (ip("2001:db8:1:ff01::"), 64, 6),
            (ip("2001:db8:1:ff01:8000::"), 65, 7),
            (ip("2001:db8:1:ff01::1:0"), 112, 8),
            (ip("2001:db8:1:ff01::1:2"), 127, 9),
            (ip("2001:db8:1:ff01::1:3"), 128, 10),
        ]);
        let cases = [
            ("2001:db8:1:ff01::1:3", 10),
            ("2001:db8:1:ff01::1:2", 9),
            ("2001:db8:1:ff01::1:1", 8),
            ("2001:db8:1:ff01::2:1", 6),
            ("2001:db8:1:ff01:8000::1", 7),
            ("2001:db8:1:ff02::", 5),
            ("2001:db8:1:fe00::", 4),
            ("2001:db8:2::", 3),
            ("2001:db9::", 2),
            ("3fff::", 1),
            ("::1", 0),
            ("fe80::1", 0),
        ];
        for (a, want) in cases {
            assert_eq!(t.lookup(ip(a)), Some(want), "{a}");
        }
    }

    #[test]
    fn overlapping_prefixes_in_any_order() {
        // Longest first in the input: the build sorts them.
        let t = Lpm6::new(&[
            (ip("2001:db8:1:2::"), 64, 3),
            (ip("2001:db8:1::"), 48, 2),
            (ip("2001:db8::"), 32, 1),
            (ip("2001:db8:1:2::"), 63, 4),
        ]);
        assert_eq!(t.lookup(ip("2001:db8:1:2::9")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:1:3::9")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:1:4::9")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8:ff::")), Some(1));
        assert_eq!(t.lookup(ip("2001:db9::")), None);
    }

    #[test]
    fn the_last_of_duplicates_wins() {
        // The same prefix three times, one with host bits set.
        let t = Lpm6::new(&[
            (ip("2001:db8::"), 48, 1),
            (ip("2001:db8::"), 64, 5),
            (ip("2001:db8::"), 48, 2),
            (ip("2001:db8:0:ffff::1"), 48, 3),
            (0, 0, 8),
            (ip("::1"), 0, 9),
        ]);
        assert_eq!(t.lookup(ip("2001:db8:0:1::")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(5));
        assert_eq!(t.lookup(ip("2001:db9::")), Some(9));
    }

    #[test]
    fn the_largest_value_round_trips() {
        let max = GROUP - 2;
        let t = Lpm6::new(&[(ip("2001:db8::"), 32, max), (ip("2001:db8::1"), 128, max)]);
        assert_eq!(t.lookup(ip("2001:db8::5")), Some(max));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(max));
    }

    #[test]
    #[should_panic(expected = "route 1 out of range")]
    fn a_length_above_128_panics() {
        Lpm6::new(&[(0, 0, 0), (0, 129, 1)]);
    }

    #[test]
    #[should_panic(expected = "route 0 out of range")]
    fn a_value_of_2_31_minus_1_panics() {
        Lpm6::new(&[(0, 8, GROUP - 1)]);
    }

    fn mask(l: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(l)).unwrap_or(0)
    }

    fn reference(routes: &[(u128, u8, u32)], addr: u128) -> Option<u32> {
        let matches = |&&(n, l, _): &&(u128, u8, u32)| (addr & mask(l)) == (n & mask(l));
        let best = routes.iter().filter(matches).map(|r| r.1).max()?;
        routes
            .iter()
            .rev()
            .filter(matches)
            .find(|r| r.1 == best)
            .map(|r| r.2)
    }

    proptest! {
        /// Agrees with a linear scan, probing addresses inside the routes as
        /// well as random ones, with prefixes that nest and overlap at every
        /// depth.
        #[test]
        fn matches_a_linear_scan(
            base in any::<u128>(),
            routes in proptest::collection::vec((any::<u128>(), 0u32..=128, 0u8..=128), 1..60),
            probes in proptest::collection::vec(
                (0usize..60, any::<u128>(), 0u32..=128, any::<u128>()),
                1..80,
            ),
        ) {
            // Each route keeps the top `keep` bits of `base` and random bits
            // below, so they share upper bits and nest.
            let routes: Vec<(u128, u8, u32)> = routes
                .iter()
                .enumerate()
                .map(|(i, &(low, keep, l))| {
                    (base ^ low.checked_shr(keep).unwrap_or(0), l, i as u32)
                })
                .collect();
            let t = Lpm6::new(&routes);
            for (i, low, keep, random) in probes {
                // A network, the same with random bits below `keep`, and
                // anything.
                let (n, _, _) = routes[i % routes.len()];
                let near = n ^ low.checked_shr(keep).unwrap_or(0);
                for addr in [n, near, random] {
                    prop_assert_eq!(t.lookup(addr), reference(&routes, addr), "addr {:#x}", addr);
                }
            }
        }

        /// Any table, any address: an answer, never a panic.
        #[test]
        fn arbitrary_lookups_never_panic(
            routes in proptest::collection::vec((any::<u128>(), 0u8..=128, 0..GROUP - 1), 0..40),
            addrs in proptest::collection::vec(any::<u128>(), 1..100),
        ) {
            let t = Lpm6::new(&routes);
            for (n, _, _) in &routes {
                t.lookup(*n);
            }
            for a in addrs {
                t.lookup(a);
                t.lookup(!a);
            }
        }
    }
}
