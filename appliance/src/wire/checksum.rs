//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! [`sum`] and [`pseudo_header_sum`] return *partial* sums that are already
//! folded into 16 bits (with end-around carry), so any number of them — up to
//! 65 537 — can be added with plain `+` on `u32` and finished with
//! [`fold`] without overflow. Because 2^16 ≡ 1 (mod 0xFFFF), folding early
//! never changes the final one's complement result.

use std::net::Ipv4Addr;

/// One's complement sum of `data` taken as big-endian 16-bit words; an odd
/// trailing byte is padded with a zero low byte. The result is ≤ 0xFFFF.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // Summing 32-bit words into a u64 halves the loop count on the hot path
    // and is equivalent to summing 16-bit words, because 2^16 ≡ 1 mod 0xFFFF.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Reduce 64 -> 32 -> 16 bits; each step preserves the value mod 0xFFFF.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    u32::from(fold(acc as u32))
}

/// Folds carries of a partial sum back into 16 bits. Not inverted: the
/// transmitted checksum is `!fold(..)`.
#[inline]
pub fn fold(sum: u32) -> u16 {
    // Two steps always suffice for 32 bits (the first leaves at most
    // 0x1FFFE), and without a loop there is no branch to mispredict.
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The Internet checksum of `data`, ready to be stored in a header.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo header that UDP and TCP prepend to their
/// checksum (RFC 768). `length` is the transport header plus payload length.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let raw = u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(protocol)
        + u32::from(length);
    u32::from(fold(raw))
}

/// Updates a stored checksum after one 16-bit word of the covered data
/// changed from `old_word` to `new_word`, per RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`.
///
/// Eqn. 3 (rather than the older eqn. 2 of RFC 1141) is used because it
/// yields the same value as a full recomputation even when the result is
/// 0x0000, which eqn. 2 would wrongly give as 0xFFFF.
///
/// The one input where it still differs from recomputation is data that
/// becomes *all zero*: recomputation gives 0xFFFF, this gives 0x0000. No IPv4
/// header can be all zero (the version nibble is 4), so IP forwarding is
/// exact; callers rewriting other protocols should recompute instead.
#[inline]
pub fn incremental_update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let acc = u32::from(!old_checksum) + u32::from(!old_word) + u32::from(new_word);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    /// Straightforward RFC 1071 reference, independent of the optimised loop.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for (i, b) in data.iter().enumerate() {
            acc += if i % 2 == 0 {
                u32::from(*b) << 8
            } else {
                u32::from(*b)
            };
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_low_byte() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x00, 0x01, 0xab]), 0xab01);
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xffff);
    }

    #[test]
    fn fold_carries_repeatedly() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
    }

    proptest::proptest! {
        /// The two fixed steps agree with folding until no carry is left.
        #[test]
        fn fold_agrees_with_folding_until_done(x in proptest::prelude::any::<u32>()) {
            let mut want = x;
            while want > 0xffff {
                want = (want & 0xffff) + (want >> 16);
            }
            proptest::prop_assert_eq!(u32::from(fold(x)), want);
        }
    }

    #[test]
    fn known_ipv4_header() {
        // Classic example header with checksum b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
    }

    #[test]
    fn pseudo_header_matches_explicit_bytes() {
        let src = Ipv4Addr::new(192, 168, 1, 1);
        let dst = Ipv4Addr::new(255, 255, 255, 254);
        let bytes = [192, 168, 1, 1, 255, 255, 255, 254, 0, 17, 0xff, 0xf0];
        assert_eq!(
            fold(pseudo_header_sum(src, dst, 17, 0xfff0)),
            fold(sum(&bytes))
        );
    }

    #[test]
    fn incremental_result_zero_edge_case() {
        // Data whose full checksum after the change is 0x0000: ~fold == 0,
        // i.e. the sum is 0xffff. Eqn 2 would produce 0xffff here.
        let before = [0x12, 0x34, 0x00, 0x00];
        let after = [0x12, 0x34, 0xed, 0xcb];
        assert_eq!(checksum(&after), 0x0000);
        let hc = checksum(&before);
        assert_eq!(incremental_update(hc, 0x0000, 0xedcb), 0x0000);
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(fold(sum(&data)), reference_sum(&data));
            prop_assert!(sum(&data) <= 0xffff);
        }

        #[test]
        fn partial_sums_compose(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            b in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            // Only even-length prefixes keep word alignment when concatenated.
            let a_even = &a[..a.len() & !1];
            let mut joined = a_even.to_vec();
            joined.extend_from_slice(&b);
            prop_assert_eq!(fold(sum(a_even) + sum(&b)), fold(sum(&joined)));
        }

        #[test]
        fn incremental_equals_full(
            words in proptest::collection::vec(any::<u16>(), 1..32),
            idx in any::<proptest::sample::Index>(),
            new_word in any::<u16>(),
        ) {
            let to_bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            let i = idx.index(words.len());
            let mut changed = words.clone();
            changed[i] = new_word;
            // The documented all-zero exception (see `incremental_update`).
            prop_assume!(changed.iter().any(|w| *w != 0));
            let old = checksum(&to_bytes(&words));
            let new = incremental_update(old, words[i], new_word);
            prop_assert_eq!(new, checksum(&to_bytes(&changed)));
        }

        #[test]
        fn incremental_equals_full_ipv4_like(
            mut hdr in proptest::array::uniform20(any::<u8>()),
            word_idx in 0usize..10,
            new_word in any::<u16>(),
        ) {
            hdr[0] = 0x45;
            hdr[10] = 0;
            hdr[11] = 0;
            let hc = checksum(&hdr);
            hdr[10..12].copy_from_slice(&hc.to_be_bytes());
            // The checksum field itself is not a candidate for a rewrite.
            prop_assume!(word_idx != 5);
            let at = word_idx * 2;
            let old_word = u16::from_be_bytes([hdr[at], hdr[at + 1]]);
            let mut changed = hdr;
            changed[at..at + 2].copy_from_slice(&new_word.to_be_bytes());
            let inc = incremental_update(hc, old_word, new_word);
            changed[10] = 0;
            changed[11] = 0;
            prop_assume!(changed.iter().any(|b| *b != 0));
            prop_assert_eq!(inc, checksum(&changed));
        }
    }
}
