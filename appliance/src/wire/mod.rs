//! Packet wire formats: zero-copy views over byte buffers plus plain-data
//! representations.
//!
//! Every protocol follows the same two-layer pattern:
//!
//! * A *view* (`EthernetFrame<T>`, `Ipv4Packet<T>`, ...) wraps any
//!   `T: AsRef<[u8]>` without copying or allocating. Getters need only
//!   `AsRef<[u8]>`; setters additionally need `AsMut<[u8]>`, so a view over an
//!   mbuf's data can be rewritten in place on the forwarding path.
//! * A *repr* (`EthernetRepr`, `Ipv4Repr`, ...) is the parsed, validated
//!   meaning of a header. `Repr::parse` reads a view, `Repr::emit` writes one,
//!   and `buffer_len` says how many bytes `emit` needs.
//!
//! # Contract
//!
//! `new_unchecked` performs no validation, so accessors on such a view may
//! panic on a short or inconsistent buffer; it exists for building packets
//! into buffers that the caller has already sized. `new_checked` (which is
//! `new_unchecked` followed by `check_len`) validates every length and offset
//! field the accessors rely on: **after `new_checked` succeeds, no getter,
//! setter, `payload()` or `payload_mut()` of that view panics**, whatever the
//! bytes were. This holds for attacker-controlled input and is exercised by
//! property tests and by the fuzz target in `appliance/fuzz`.
//!
//! Setters that change a length field (e.g. `set_total_len`) can break that
//! guarantee for later accessor calls; re-run `check_len` after such a change
//! if the new value is not known to fit.
//!
//! `Repr::parse` re-checks lengths itself, so it never panics even on a view
//! built with `new_unchecked`. `Repr::emit` panics if the buffer is shorter
//! than `buffer_len()`; sizing the buffer is the caller's job.
//!
//! Checksums are never verified implicitly by views; `Repr::parse` verifies
//! them and reports [`Error::BadChecksum`].

#![deny(clippy::unwrap_used, clippy::expect_used)]

use core::fmt;

pub mod arp;
pub mod bfd;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod igmp;
pub mod ipv4;
pub mod ipv6;
pub mod mld;
pub mod tunnel;
pub mod udp;

pub use arp::{ArpOp, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use igmp::{IgmpPacket, IgmpRepr, IgmpVersion};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer could not be interpreted as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field claims.
    Truncated,
    /// A field holds a value the protocol forbids (bad version, a length
    /// field smaller than the fixed header, ...).
    Malformed,
    /// The packet's checksum does not match its contents.
    BadChecksum,
    /// Well-formed, but a variant this implementation deliberately does not
    /// handle (non-Ethernet ARP, unknown ICMP type, ...).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::BadChecksum => "bad checksum",
            Error::Unsupported => "unsupported packet",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for Error {}

/// Result type of all fallible wire operations.
pub type Result<T> = core::result::Result<T, Error>;

/// Big-endian field access with the bounds already established by the
/// caller's `check_len`; kept in one place so each protocol file reads as a
/// list of offsets rather than byte shuffling.
pub(crate) mod bytes {
    use std::net::Ipv4Addr;

    #[inline]
    pub fn read_u16(data: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    #[inline]
    pub fn write_u16(data: &mut [u8], at: usize, value: u16) {
        data[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn read_ipv4(data: &[u8], at: usize) -> Ipv4Addr {
        let b = &data[at..at + 4];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    #[inline]
    pub fn write_ipv4(data: &mut [u8], at: usize, addr: Ipv4Addr) {
        data[at..at + 4].copy_from_slice(&addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_is_human_readable() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet");
        assert_eq!(Error::Malformed.to_string(), "malformed packet");
        assert_eq!(Error::BadChecksum.to_string(), "bad checksum");
        assert_eq!(Error::Unsupported.to_string(), "unsupported packet");
    }
}
