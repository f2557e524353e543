//! The multipath tunnel's header, carried after the outer IPv4/UDP header on
//! each path (layout and meaning: `docs/wire-format.md`).
//!
//! ```text
//!  0       4       8      12      16                             32
//! +-------+-------+-------+-------+-------------------------------+
//! |Version| Type  | Flags |Path ID|            Key ID             |
//! +-------+-------+-------+-------+-------------------------------+
//! |             Lane              |             Epoch             |
//! +-------------------------------+-------------------------------+
//! |                     Lane Sequence Number                      |
//! +---------------------------------------------------------------+
//! |                     Path Sequence Number                      |
//! +---------------------------------------------------------------+
//! |                    Send Timestamp (µs)                        |
//! +---------------------------------------------------------------+
//! ```
//!
//! [`TunnelPacket::new_checked`] checks the length, after which no accessor
//! panics; [`TunnelRepr::parse`] checks the version and the type. Probe
//! replies carry a [`ProbeReplyRepr`] after the header.

use super::{Error, Result};

/// The header's version (3: a 16-bit Key ID, so that a receiver tells
/// thousands of peers apart by it; 2 had 8 bits).
pub const VERSION: u8 = 3;

/// Path ids fit the header's 4 bits.
pub const MAX_PATH_ID: u8 = 15;

/// The lane of the management lcore's own packets (probes, and ICMP it
/// sends through the tunnel): always unordered, never reordered.
pub const CONTROL_LANE: u16 = 0xffff;

mod field {
    pub const VER_TYPE: usize = 0;
    /// Flags in the high nibble, the path id in the low one.
    pub const FLAGS_PATH: usize = 1;
    pub const KEY: usize = 2;
    pub const LANE: usize = 4;
    pub const EPOCH: usize = 6;
    pub const LANE_SEQ: usize = 8;
    pub const PATH_SEQ: usize = 12;
    pub const SENT_US: usize = 16;
}

/// What a tunnel packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An inner IPv4 packet.
    Data,
    /// A path probe: answer with a probe reply on the same path.
    Probe,
    /// The answer to a probe.
    ProbeReply,
    /// A handshake's first message (in clear: key id 0).
    HandshakeInitiation,
    /// A handshake's answer.
    HandshakeResponse,
    /// "Under load: send that again with this cookie."
    CookieReply,
}

impl Kind {
    fn from_bits(bits: u8) -> Option<Kind> {
        match bits {
            0 => Some(Kind::Data),
            1 => Some(Kind::Probe),
            2 => Some(Kind::ProbeReply),
            3 => Some(Kind::HandshakeInitiation),
            4 => Some(Kind::HandshakeResponse),
            5 => Some(Kind::CookieReply),
            _ => None,
        }
    }

    /// Its value in the header's type field.
    pub fn bits(self) -> u8 {
        match self {
            Kind::Data => 0,
            Kind::Probe => 1,
            Kind::ProbeReply => 2,
            Kind::HandshakeInitiation => 3,
            Kind::HandshakeResponse => 4,
            Kind::CookieReply => 5,
        }
    }

    /// Whether it is a handshake message (never encrypted by the tunnel:
    /// it makes the keys).
    pub fn is_handshake(self) -> bool {
        matches!(
            self,
            Kind::HandshakeInitiation | Kind::HandshakeResponse | Kind::CookieReply
        )
    }
}

/// Header flags.
pub mod flags {
    /// Deliver at once, never hold for order (per-flow schedulers and the
    /// control lane). The lane sequence field then holds the sender's next
    /// unassigned sequence number, which still proves holes lost.
    pub const UNORDERED: u8 = 0x01;
}

/// A view of a tunnel header (and what follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn read_u32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn write_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

impl<T: AsRef<[u8]>> TunnelPacket<T> {
    /// Bytes of the header.
    pub const HEADER_LEN: usize = 20;

    /// Wraps `buffer` without validation; see the module contract.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> TunnelPacket<T> {
        TunnelPacket { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    ///
    /// # Errors
    /// `Truncated` if the buffer is shorter than the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<TunnelPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header fits.
    ///
    /// # Errors
    /// `Truncated` if the buffer is shorter than the header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header version.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Raw type bits.
    #[inline]
    pub fn kind_bits(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// Flags ([`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS_PATH] >> 4
    }

    /// The path the sender sent it on.
    #[inline]
    pub fn path(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS_PATH] & 0x0f
    }

    /// Key id (0: not encrypted).
    #[inline]
    pub fn key(&self) -> u16 {
        super::bytes::read_u16(self.buffer.as_ref(), field::KEY)
    }

    /// The sender's lane.
    #[inline]
    pub fn lane(&self) -> u16 {
        super::bytes::read_u16(self.buffer.as_ref(), field::LANE)
    }

    /// The sender's epoch (changes when it restarts).
    #[inline]
    pub fn epoch(&self) -> u16 {
        super::bytes::read_u16(self.buffer.as_ref(), field::EPOCH)
    }

    /// Lane sequence number.
    #[inline]
    pub fn lane_seq(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::LANE_SEQ)
    }

    /// Sequence number on (lane, path).
    #[inline]
    pub fn path_seq(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::PATH_SEQ)
    }

    /// The sender's clock in µs when it sent the packet.
    #[inline]
    pub fn sent_us(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SENT_US)
    }

    /// What follows the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TunnelPacket<T> {
    fn bytes(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Writes version and type.
    #[inline]
    pub fn set_version_kind(&mut self, version: u8, kind: Kind) {
        self.bytes()[field::VER_TYPE] = (version << 4) | kind.bits();
    }

    /// Writes the flags (4 bits).
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        let b = &mut self.bytes()[field::FLAGS_PATH];
        *b = (v << 4) | (*b & 0x0f);
    }

    /// Writes the path id (4 bits: at most [`MAX_PATH_ID`]).
    #[inline]
    pub fn set_path(&mut self, v: u8) {
        let b = &mut self.bytes()[field::FLAGS_PATH];
        *b = (*b & 0xf0) | (v & 0x0f);
    }

    /// Writes the key id.
    #[inline]
    pub fn set_key(&mut self, v: u16) {
        super::bytes::write_u16(self.bytes(), field::KEY, v);
    }

    /// Writes the lane.
    #[inline]
    pub fn set_lane(&mut self, v: u16) {
        super::bytes::write_u16(self.bytes(), field::LANE, v);
    }

    /// Writes the epoch.
    #[inline]
    pub fn set_epoch(&mut self, v: u16) {
        super::bytes::write_u16(self.bytes(), field::EPOCH, v);
    }

    /// Writes the lane sequence number.
    #[inline]
    pub fn set_lane_seq(&mut self, v: u32) {
        write_u32(self.bytes(), field::LANE_SEQ, v);
    }

    /// Writes the path sequence number.
    #[inline]
    pub fn set_path_seq(&mut self, v: u32) {
        write_u32(self.bytes(), field::PATH_SEQ, v);
    }

    /// Writes the send timestamp.
    #[inline]
    pub fn set_sent_us(&mut self, v: u32) {
        write_u32(self.bytes(), field::SENT_US, v);
    }

    /// What follows the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[TunnelPacket::<&[u8]>::HEADER_LEN..]
    }
}

/// A parsed tunnel header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelRepr {
    /// What it carries.
    pub kind: Kind,
    /// Flags ([`flags`], 4 bits); unknown bits are ignored.
    pub flags: u8,
    /// Path id (0 to [`MAX_PATH_ID`]).
    pub path: u8,
    /// Key id (0: in clear; else the receiver's key it is sealed under).
    pub key: u16,
    /// Lane.
    pub lane: u16,
    /// Sender's epoch.
    pub epoch: u16,
    /// Lane sequence number.
    pub lane_seq: u32,
    /// Sequence number on (lane, path).
    pub path_seq: u32,
    /// Sender's clock in µs.
    pub sent_us: u32,
}

/// Why a tunnel header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the header.
    Truncated,
    /// A version this implementation does not speak.
    Version(u8),
    /// An unknown type.
    Kind(u8),
}

impl TunnelRepr {
    /// Parses and checks version and type.
    ///
    /// # Errors
    /// Truncated, unknown version or unknown type.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &TunnelPacket<&T>,
    ) -> core::result::Result<TunnelRepr, HeaderError> {
        p.check_len().map_err(|_| HeaderError::Truncated)?;
        if p.version() != VERSION {
            return Err(HeaderError::Version(p.version()));
        }
        let kind = Kind::from_bits(p.kind_bits()).ok_or(HeaderError::Kind(p.kind_bits()))?;
        Ok(TunnelRepr {
            kind,
            flags: p.flags(),
            path: p.path(),
            key: p.key(),
            lane: p.lane(),
            epoch: p.epoch(),
            lane_seq: p.lane_seq(),
            path_seq: p.path_seq(),
            sent_us: p.sent_us(),
        })
    }

    /// Bytes `emit` writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        TunnelPacket::<&[u8]>::HEADER_LEN
    }

    /// Writes the header.
    ///
    /// # Panics
    /// If the buffer is shorter than the header (sizing it is the caller's
    /// job, as with every `emit`).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TunnelPacket<T>) {
        p.set_version_kind(VERSION, self.kind);
        p.set_flags(self.flags);
        p.set_path(self.path);
        p.set_key(self.key);
        p.set_lane(self.lane);
        p.set_epoch(self.epoch);
        p.set_lane_seq(self.lane_seq);
        p.set_path_seq(self.path_seq);
        p.set_sent_us(self.sent_us);
    }

    /// Whether the far end delivers it at once rather than in lane order.
    #[inline]
    pub fn unordered(&self) -> bool {
        self.flags & flags::UNORDERED != 0
    }
}

/// What a probe carries after the header: its number on the path (the
/// reply echoes it) and how many tunnel packets its sender has received on
/// this path from the other end (a wrapping count). While the count keeps
/// moving, the other end knows that what it sends on the path arrives, even
/// when congestion drops some probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRepr {
    /// The prober's number for this probe on the path.
    pub number: u32,
    /// Tunnel packets received on this path from the probe's addressee.
    pub rx_packets: u32,
}

impl ProbeRepr {
    /// Bytes after the tunnel header.
    pub const LEN: usize = 8;

    /// Reads it from a probe's payload.
    ///
    /// # Errors
    /// `Truncated` if the payload is short.
    #[inline]
    pub fn parse(payload: &[u8]) -> Result<ProbeRepr> {
        if payload.len() < Self::LEN {
            return Err(Error::Truncated);
        }
        Ok(ProbeRepr {
            number: read_u32(payload, 0),
            rx_packets: read_u32(payload, 4),
        })
    }

    /// Writes it.
    ///
    /// # Panics
    /// If `payload` is shorter than [`Self::LEN`].
    #[inline]
    pub fn emit(&self, payload: &mut [u8]) {
        write_u32(payload, 0, self.number);
        write_u32(payload, 4, self.rx_packets);
    }
}

/// What a probe reply carries after the header: enough for the prober to
/// measure the round trip and its path's forward one-way delay, and the
/// replier's received-packet count as in [`ProbeRepr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReplyRepr {
    /// The probe's number, echoed.
    pub echo_number: u32,
    /// The probe's send timestamp, echoed (the prober's clock).
    pub echo_sent_us: u32,
    /// The replier's clock at reception minus the probe's send timestamp
    /// (wrapping): the forward one-way delay plus the clocks' offset, which
    /// is the same for every path, so paths compare by it.
    pub forward_us: u32,
    /// How long the replier held the probe before replying (taken off the
    /// round trip).
    pub hold_us: u32,
    /// Tunnel packets the replier received on this path from the prober.
    pub rx_packets: u32,
}

impl ProbeReplyRepr {
    /// Bytes after the tunnel header.
    pub const LEN: usize = 20;

    /// Reads it from a probe reply's payload.
    ///
    /// # Errors
    /// `Truncated` if the payload is short.
    #[inline]
    pub fn parse(payload: &[u8]) -> Result<ProbeReplyRepr> {
        if payload.len() < Self::LEN {
            return Err(Error::Truncated);
        }
        Ok(ProbeReplyRepr {
            echo_number: read_u32(payload, 0),
            echo_sent_us: read_u32(payload, 4),
            forward_us: read_u32(payload, 8),
            hold_us: read_u32(payload, 12),
            rx_packets: read_u32(payload, 16),
        })
    }

    /// Writes it.
    ///
    /// # Panics
    /// If `payload` is shorter than [`Self::LEN`].
    #[inline]
    pub fn emit(&self, payload: &mut [u8]) {
        write_u32(payload, 0, self.echo_number);
        write_u32(payload, 4, self.echo_sent_us);
        write_u32(payload, 8, self.forward_us);
        write_u32(payload, 12, self.hold_us);
        write_u32(payload, 16, self.rx_packets);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// An unordered data packet on path 2, lane 1, sealed under key 0x0123,
    /// as `docs/wire-format.md` draws it.
    const DATA: [u8; 20] = [
        0x30, 0x12, 0x01, 0x23, // v3 data, unordered, path 2, key 0x0123
        0x00, 0x01, 0xbe, 0xef, // lane 1, epoch 0xbeef
        0x00, 0x00, 0x01, 0x00, // lane seq 256
        0x00, 0x00, 0x00, 0x80, // path seq 128
        0x00, 0x0f, 0x42, 0x40, // sent at 1 000 000 µs
    ];

    #[test]
    fn deconstructs_the_documented_example() {
        let p = TunnelPacket::new_checked(&DATA[..]).unwrap();
        let r = TunnelRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            TunnelRepr {
                kind: Kind::Data,
                flags: flags::UNORDERED,
                path: 2,
                key: 0x0123,
                lane: 1,
                epoch: 0xbeef,
                lane_seq: 256,
                path_seq: 128,
                sent_us: 1_000_000,
            }
        );
        let mut out = [0xffu8; 20];
        r.emit(&mut TunnelPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, DATA);
    }

    #[test]
    fn refuses_short_old_and_unknown() {
        assert_eq!(
            TunnelRepr::parse(&TunnelPacket::new_unchecked(&DATA[..19])),
            Err(HeaderError::Truncated)
        );
        let mut v2 = DATA;
        v2[0] = 0x20;
        assert_eq!(
            TunnelRepr::parse(&TunnelPacket::new_unchecked(&v2[..])),
            Err(HeaderError::Version(2))
        );
        let mut t9 = DATA;
        t9[0] = 0x39;
        assert_eq!(
            TunnelRepr::parse(&TunnelPacket::new_unchecked(&t9[..])),
            Err(HeaderError::Kind(9))
        );
    }

    #[test]
    fn probe_reply_round_trips() {
        let r = ProbeReplyRepr {
            echo_number: 3,
            echo_sent_us: 7,
            forward_us: u32::MAX,
            hold_us: 35,
            rx_packets: 1 << 31,
        };
        let mut b = [0u8; 20];
        r.emit(&mut b);
        assert_eq!(ProbeReplyRepr::parse(&b), Ok(r));
        assert_eq!(ProbeReplyRepr::parse(&b[..19]), Err(Error::Truncated));
        let p = ProbeRepr {
            number: 4,
            rx_packets: 9,
        };
        p.emit(&mut b);
        assert_eq!(ProbeRepr::parse(&b[..8]), Ok(p));
        assert_eq!(ProbeRepr::parse(&b[..7]), Err(Error::Truncated));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(p) = TunnelPacket::new_checked(&bytes[..]) {
                let _ = (p.lane(), p.epoch(), p.lane_seq(), p.path_seq(), p.sent_us(), p.payload().len());
                let _ = TunnelRepr::parse(&p);
            }
            let _ = ProbeReplyRepr::parse(&bytes);
            let _ = ProbeRepr::parse(&bytes);
        }

        #[test]
        fn emit_then_parse_is_identity(flags in 0u8..16, path in 0u8..=MAX_PATH_ID, lane in 0u16.., epoch in 0u16.., ls in 0u32.., ps in 0u32.., t in 0u32.., k in 0u8..6, key in 0u16..) {
            let kind = [Kind::Data, Kind::Probe, Kind::ProbeReply, Kind::HandshakeInitiation, Kind::HandshakeResponse, Kind::CookieReply][usize::from(k)];
            let r = TunnelRepr { kind, flags, path, key, lane, epoch, lane_seq: ls, path_seq: ps, sent_us: t };
            let mut b = [0u8; 20];
            r.emit(&mut TunnelPacket::new_unchecked(&mut b[..]));
            proptest::prop_assert_eq!(TunnelRepr::parse(&TunnelPacket::new_unchecked(&b[..])), Ok(r));
        }
    }
}
