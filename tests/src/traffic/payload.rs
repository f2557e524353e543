//! The test-traffic payload: who sent it, which one it is, and when.
//!
//! ```text
//! 0      4          8              16             24
//! | "TBMC" | stream id | sequence number | send time (ns, CLOCK_REALTIME) | padding...
//! ```
//! All fields big endian. CLOCK_REALTIME is shared by every namespace of the machine, so a
//! sink can compute one-way latency from a generator in another namespace.

use std::time::{SystemTime, UNIX_EPOCH};

pub const MAGIC: [u8; 4] = *b"TBMC";
/// Bytes of header; payloads are at least this long.
pub const HEADER_LEN: usize = 24;

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub stream: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Header {
    /// Writes the header at the start of `buf` (which must hold [`HEADER_LEN`] bytes).
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&MAGIC);
        buf[4..8].copy_from_slice(&self.stream.to_be_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_be_bytes());
        buf[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a header; `None` for anything that is not our traffic.
    pub fn read(buf: &[u8]) -> Option<Header> {
        if buf.len() < HEADER_LEN || buf[0..4] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let mut s = [0u8; 4];
        s.copy_from_slice(&buf[4..8]);
        Some(Header {
            stream: u32::from_be_bytes(s),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

/// CLOCK_REALTIME now, in ns.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_foreign() {
        let h = Header {
            stream: 7,
            seq: 1 << 40,
            sent_ns: 123,
        };
        let mut buf = [0u8; 64];
        h.write(&mut buf);
        assert_eq!(Header::read(&buf), Some(h));
        assert_eq!(Header::read(&buf[..20]), None);
        buf[0] = b'X';
        assert_eq!(Header::read(&buf), None);
    }
}
