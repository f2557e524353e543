//! A packet buffer the pure pipeline can grow and shrink at both ends:
//! [`PacketBuf`], implemented by DPDK's mbuf (in production) and by
//! [`VecBuf`] (in tests and fuzzing), so encapsulation and decapsulation are
//! functions over byte buffers like the rest of the pipeline.
//!
//! Every operation that cannot be done (not enough headroom, a buffer
//! shorter than what is cut) is an error and leaves the buffer unchanged;
//! nothing here panics.

use dpdk_bindings::Mbuf;

/// Why a buffer operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BufError {
    /// Prepending more than the free space in front of the data.
    #[error("not enough headroom")]
    NoHeadroom,
    /// Cutting more than the data holds.
    #[error("buffer shorter than the cut")]
    TooShort,
    /// The packet spans several segments (only the first is editable).
    #[error("packet spans several segments")]
    Segmented,
}

/// A packet whose bytes can be read, rewritten, extended in front (into the
/// headroom) and cut at either end.
pub trait PacketBuf {
    /// The packet's bytes.
    fn data(&self) -> &[u8];
    /// The packet's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Extends the packet by `n` bytes in front and returns them (their
    /// contents are unspecified).
    ///
    /// # Errors
    /// `NoHeadroom` when fewer than `n` bytes are free in front.
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Removes `n` bytes from the front.
    ///
    /// # Errors
    /// `TooShort` when the packet is shorter than `n`.
    fn trim_front(&mut self, n: usize) -> Result<(), BufError>;
    /// Removes `n` bytes from the back.
    ///
    /// # Errors
    /// `TooShort` when the packet is shorter than `n`.
    fn trim_back(&mut self, n: usize) -> Result<(), BufError>;

    /// Length of the packet.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// Whether the packet is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A packet in a `Vec`, with headroom in front like an mbuf's: the test
/// double of [`Mbuf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl VecBuf {
    /// DPDK's default mbuf headroom (`RTE_PKTMBUF_HEADROOM`).
    pub const DEFAULT_HEADROOM: usize = 128;

    /// `data` with `headroom` free bytes in front of it.
    pub fn with_headroom(data: &[u8], headroom: usize) -> Self {
        let mut bytes = vec![0; headroom];
        bytes.extend_from_slice(data);
        Self {
            bytes,
            start: headroom,
        }
    }

    /// `data` with an mbuf's default headroom.
    pub fn new(data: &[u8]) -> Self {
        Self::with_headroom(data, Self::DEFAULT_HEADROOM)
    }

    /// The packet's bytes as an owned vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.bytes[self.start..].to_vec()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..]
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        let start = self.start.checked_sub(n).ok_or(BufError::NoHeadroom)?;
        self.start = start;
        Ok(&mut self.bytes[start..start + n])
    }

    fn trim_front(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.len() {
            return Err(BufError::TooShort);
        }
        self.start += n;
        Ok(())
    }

    fn trim_back(&mut self, n: usize) -> Result<(), BufError> {
        let len = self.len().checked_sub(n).ok_or(BufError::TooShort)?;
        self.bytes.truncate(self.start + len);
        Ok(())
    }
}

/// The first (and, for the editing calls, only) segment of the mbuf.
impl PacketBuf for Mbuf {
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }

    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > Mbuf::headroom(self) {
            return Err(BufError::NoHeadroom);
        }
        let n = u16::try_from(n).map_err(|_| BufError::NoHeadroom)?;
        Mbuf::prepend(self, n).ok_or(BufError::NoHeadroom)
    }

    fn trim_front(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.data_len() {
            return Err(BufError::TooShort);
        }
        let n = u16::try_from(n).map_err(|_| BufError::TooShort)?;
        if self.adj(n) {
            Ok(())
        } else {
            Err(BufError::TooShort)
        }
    }

    fn trim_back(&mut self, n: usize) -> Result<(), BufError> {
        if !self.is_contiguous() {
            return Err(BufError::Segmented);
        }
        if n > self.data_len() {
            return Err(BufError::TooShort);
        }
        let n = u16::try_from(n).map_err(|_| BufError::TooShort)?;
        if self.trim(n) {
            Ok(())
        } else {
            Err(BufError::TooShort)
        }
    }
}

/// Checks the [`PacketBuf`] contract on `b`, which must hold 6 bytes `1..=6`
/// with at least 8 bytes of headroom: prepend, trims, errors that leave the
/// buffer unchanged. Public so the EAL-backed tests run it on mbufs.
///
/// # Panics
/// When the implementation breaks the contract (it is a test helper).
pub fn check_contract(b: &mut impl PacketBuf) {
    assert_eq!(b.data(), &[1, 2, 3, 4, 5, 6]);
    let room = b.headroom();
    assert!(room >= 8);
    let front = b.prepend(4).expect("prepend within the headroom");
    front.copy_from_slice(&[0xa, 0xb, 0xc, 0xd]);
    assert_eq!(b.data(), &[0xa, 0xb, 0xc, 0xd, 1, 2, 3, 4, 5, 6]);
    assert_eq!(b.headroom(), room - 4);
    assert_eq!(b.prepend(room), Err(BufError::NoHeadroom));
    assert_eq!(b.len(), 10, "a refused prepend changes nothing");
    b.trim_front(4).expect("trim front");
    b.trim_back(2).expect("trim back");
    assert_eq!(b.data(), &[1, 2, 3, 4]);
    assert_eq!(b.trim_front(5), Err(BufError::TooShort));
    assert_eq!(b.trim_back(5), Err(BufError::TooShort));
    assert_eq!(b.data(), &[1, 2, 3, 4], "refused trims change nothing");
    b.data_mut()[0] = 7;
    assert_eq!(b.data()[0], 7);
    assert_eq!(b.headroom(), room);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract every implementation keeps, run on [`VecBuf`] here and
    /// on real mbufs in `dpdk-bindings`' and the golden tests' EAL processes
    /// through [`check_contract`].
    #[test]
    fn vec_buf_keeps_the_contract() {
        check_contract(&mut VecBuf::with_headroom(&[1, 2, 3, 4, 5, 6], 8));
    }

    #[test]
    fn prepend_past_the_headroom_is_an_error_not_a_panic() {
        let mut b = VecBuf::with_headroom(&[9; 4], 2);
        assert_eq!(b.prepend(3), Err(BufError::NoHeadroom));
        assert_eq!(b.data(), &[9; 4], "unchanged");
        assert_eq!(b.trim_front(5), Err(BufError::TooShort));
        assert_eq!(b.trim_back(5), Err(BufError::TooShort));
        assert_eq!(b.prepend(2).map(|h| h.len()), Ok(2));
        assert_eq!(b.prepend(1), Err(BufError::NoHeadroom));
        assert_eq!(b.into_vec().len(), 6);
    }

    proptest::proptest! {
        /// Any sequence of operations on any buffer: no panic, and the length
        /// moves exactly as the successful operations say.
        #[test]
        fn arbitrary_operations_never_panic(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            headroom in 0usize..64,
            ops in proptest::collection::vec((0u8..3, 0usize..80), 0..20),
        ) {
            let mut b = VecBuf::with_headroom(&data, headroom);
            for (op, n) in ops {
                let (len, room) = (b.len(), b.headroom());
                let ok = match op {
                    0 => b.prepend(n).is_ok(),
                    1 => b.trim_front(n).is_ok(),
                    _ => b.trim_back(n).is_ok(),
                };
                let want = match op {
                    0 => (n <= room).then(|| len + n),
                    _ => (n <= len).then(|| len - n),
                };
                proptest::prop_assert_eq!(ok, want.is_some());
                proptest::prop_assert_eq!(b.len(), want.unwrap_or(len));
            }
        }
    }
}
