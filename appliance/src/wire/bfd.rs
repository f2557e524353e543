//! BFD Control packet (RFC 5880 §4.1): a checked view over bytes and a plain value.
//!
//! Only the mandatory section is modelled. This appliance never configures
//! authentication, so a packet with the A bit set is rejected, not parsed.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use core::fmt;

/// Length of a Control packet without an authentication section.
pub const HEADER_LEN: usize = 24;
/// The smallest legal Length when the A bit is set (mandatory part plus the
/// two-byte Auth Type / Auth Len prefix).
const MIN_AUTH_LEN: usize = 26;
/// The only protocol version RFC 5880 defines.
pub const VERSION: u8 = 1;
/// UDP destination port for single-hop sessions (RFC 5881).
pub const PORT_SINGLE_HOP: u16 = 3784;
/// UDP destination port for multihop sessions (RFC 5883).
pub const PORT_MULTIHOP: u16 = 4784;

mod field {
    use core::ops::Range;

    pub const VERS_DIAG: usize = 0;
    pub const STA_FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISCR: Range<usize> = 4..8;
    pub const YOUR_DISCR: Range<usize> = 8..12;
    pub const DESIRED_MIN_TX: Range<usize> = 12..16;
    pub const REQUIRED_MIN_RX: Range<usize> = 16..20;
    pub const REQUIRED_MIN_ECHO_RX: Range<usize> = 20..24;
}

/// Bit masks inside the `STA_FLAGS` byte (the top two bits are the state).
mod flag {
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CPI: u8 = 0x08;
    pub const AUTH: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// Session state as carried in the Sta field (RFC 5880 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Held down by configuration.
    AdminDown = 0,
    /// Not established (also the initial state).
    Down = 1,
    /// Remote seen, waiting for it to see us.
    Init = 2,
    /// Established.
    Up = 3,
}

impl State {
    /// Decodes the two-bit Sta field; all four values are defined, so this cannot fail.
    pub fn from_bits(bits: u8) -> State {
        match bits & 0x03 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Diagnostic code (RFC 5880 §4.1). Unassigned values are kept in `Other`
/// so that a newer peer never makes parsing fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0: No Diagnostic.
    NoDiagnostic,
    /// 1: Control Detection Time Expired.
    ControlDetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFunctionFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborSignaledSessionDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdministrativelyDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// Any unassigned code; only the low 5 bits go on the wire. Build it with
    /// `Diag::from` so that assigned codes get their named variant.
    Other(u8),
}

impl From<u8> for Diag {
    fn from(v: u8) -> Diag {
        match v {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Other(other),
        }
    }
}

impl From<Diag> for u8 {
    fn from(d: Diag) -> u8 {
        match d {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(v) => v,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Diag::NoDiagnostic => "no diagnostic",
            Diag::ControlDetectionTimeExpired => "control detection time expired",
            Diag::EchoFunctionFailed => "echo function failed",
            Diag::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Other(v) => return write!(f, "unassigned diagnostic {v}"),
        };
        f.write_str(s)
    }
}

/// Why a received Control packet was discarded: one variant per RFC 5880
/// §6.8.6 rule, plus the session-level TTL (RFC 5881 §5 / RFC 5883 §2) and
/// demultiplexing rules, so one counter family covers every discard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxError {
    /// Payload shorter than the 24-byte mandatory section.
    Truncated,
    /// Version is not 1.
    BadVersion,
    /// Length below the minimum, or beyond the payload.
    BadLength,
    /// Detect Mult is zero.
    ZeroDetectMult,
    /// Multipoint bit set.
    Multipoint,
    /// My Discriminator is zero.
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while State is neither Down nor AdminDown.
    YourDiscriminatorZeroNotDown,
    /// A bit set, but no authentication is configured.
    AuthUnsupported,
    /// Your Discriminator matches no session.
    UnknownDiscriminator,
    /// IP TTL fails the single-hop (255) or multihop (minimum TTL) check.
    BadTtl,
    /// The UDP header is truncated or its checksum is wrong.
    BadUdp,
    /// Your Discriminator names a session, but the packet comes from another
    /// address or hop mode than the session's peer (RFC 5881 §4).
    WrongPeer,
}

impl RxError {
    /// Every variant, so a caller can register all counters up front.
    pub const ALL: [RxError; 12] = [
        RxError::Truncated,
        RxError::BadVersion,
        RxError::BadLength,
        RxError::ZeroDetectMult,
        RxError::Multipoint,
        RxError::ZeroMyDiscriminator,
        RxError::YourDiscriminatorZeroNotDown,
        RxError::AuthUnsupported,
        RxError::UnknownDiscriminator,
        RxError::BadTtl,
        RxError::BadUdp,
        RxError::WrongPeer,
    ];

    /// Stable snake_case name, used as a counter name: never rename one.
    pub fn name(self) -> &'static str {
        match self {
            RxError::Truncated => "truncated",
            RxError::BadVersion => "bad_version",
            RxError::BadLength => "bad_length",
            RxError::ZeroDetectMult => "zero_detect_mult",
            RxError::Multipoint => "multipoint",
            RxError::ZeroMyDiscriminator => "zero_my_discriminator",
            RxError::YourDiscriminatorZeroNotDown => "your_discriminator_zero_not_down",
            RxError::AuthUnsupported => "auth_unsupported",
            RxError::UnknownDiscriminator => "unknown_discriminator",
            RxError::BadTtl => "bad_ttl",
            RxError::BadUdp => "bad_udp",
            RxError::WrongPeer => "wrong_peer",
        }
    }

    /// One-line explanation for operators.
    pub fn help(self) -> &'static str {
        match self {
            RxError::Truncated => "payload shorter than the 24-byte BFD control header",
            RxError::BadVersion => "BFD version is not 1",
            RxError::BadLength => {
                "Length field too small for the A bit, or larger than the payload"
            }
            RxError::ZeroDetectMult => "Detect Mult is zero",
            RxError::Multipoint => "Multipoint (M) bit set",
            RxError::ZeroMyDiscriminator => "My Discriminator is zero",
            RxError::YourDiscriminatorZeroNotDown => {
                "Your Discriminator is zero but State is not Down or AdminDown"
            }
            RxError::AuthUnsupported => {
                "Authentication (A) bit set but no authentication configured"
            }
            RxError::UnknownDiscriminator => "Your Discriminator matches no local session",
            RxError::BadTtl => "IP TTL below 255 (single hop) or below the multihop minimum",
            RxError::BadUdp => "UDP header truncated or checksum wrong",
            RxError::WrongPeer => "from another address or hop mode than the session's peer",
        }
    }
}

impl fmt::Display for RxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.help())
    }
}

impl std::error::Error for RxError {}

/// Zero-copy view of a BFD Control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BfdPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> BfdPacket<T> {
        BfdPacket { buffer }
    }

    /// Wraps a buffer after `check_len`, so that no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<BfdPacket<T>, RxError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures every fixed-offset accessor is in bounds. The Length field is
    /// judged by `BfdRepr::parse`, which knows the RFC rules for it.
    pub fn check_len(&self) -> Result<(), RxError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(RxError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref()[at]
    }

    fn word(&self, at: core::ops::Range<usize>) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buffer.as_ref()[at]);
        u32::from_be_bytes(b)
    }

    fn flag(&self, mask: u8) -> bool {
        self.byte(field::STA_FLAGS) & mask != 0
    }

    /// Protocol version (3 bits).
    pub fn version(&self) -> u8 {
        self.byte(field::VERS_DIAG) >> 5
    }

    /// Diagnostic code (5 bits).
    pub fn diag(&self) -> Diag {
        Diag::from(self.byte(field::VERS_DIAG) & 0x1f)
    }

    /// Session state of the sender.
    pub fn state(&self) -> State {
        State::from_bits(self.byte(field::STA_FLAGS) >> 6)
    }

    /// Poll (P) bit.
    pub fn poll(&self) -> bool {
        self.flag(flag::POLL)
    }

    /// Final (F) bit.
    pub fn final_(&self) -> bool {
        self.flag(flag::FINAL)
    }

    /// Control Plane Independent (C) bit.
    pub fn control_plane_independent(&self) -> bool {
        self.flag(flag::CPI)
    }

    /// Authentication Present (A) bit.
    pub fn auth_present(&self) -> bool {
        self.flag(flag::AUTH)
    }

    /// Demand (D) bit.
    pub fn demand(&self) -> bool {
        self.flag(flag::DEMAND)
    }

    /// Multipoint (M) bit.
    pub fn multipoint(&self) -> bool {
        self.flag(flag::MULTIPOINT)
    }

    /// Detect Mult.
    pub fn detect_mult(&self) -> u8 {
        self.byte(field::DETECT_MULT)
    }

    /// Length field, in bytes.
    pub fn length(&self) -> u8 {
        self.byte(field::LENGTH)
    }

    /// My Discriminator.
    pub fn my_discriminator(&self) -> u32 {
        self.word(field::MY_DISCR)
    }

    /// Your Discriminator.
    pub fn your_discriminator(&self) -> u32 {
        self.word(field::YOUR_DISCR)
    }

    /// Desired Min TX Interval, in microseconds.
    pub fn desired_min_tx(&self) -> u32 {
        self.word(field::DESIRED_MIN_TX)
    }

    /// Required Min RX Interval, in microseconds.
    pub fn required_min_rx(&self) -> u32 {
        self.word(field::REQUIRED_MIN_RX)
    }

    /// Required Min Echo RX Interval, in microseconds.
    pub fn required_min_echo_rx(&self) -> u32 {
        self.word(field::REQUIRED_MIN_ECHO_RX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BfdPacket<T> {
    fn set_byte(&mut self, at: usize, v: u8) {
        self.buffer.as_mut()[at] = v;
    }

    fn set_word(&mut self, at: core::ops::Range<usize>, v: u32) {
        self.buffer.as_mut()[at].copy_from_slice(&v.to_be_bytes());
    }

    fn set_flag(&mut self, mask: u8, on: bool) {
        let b = self.byte(field::STA_FLAGS);
        self.set_byte(field::STA_FLAGS, if on { b | mask } else { b & !mask });
    }

    /// Sets the version (low 3 bits used).
    pub fn set_version(&mut self, v: u8) {
        let b = self.byte(field::VERS_DIAG);
        self.set_byte(field::VERS_DIAG, (b & 0x1f) | (v << 5));
    }

    /// Sets the diagnostic (low 5 bits used).
    pub fn set_diag(&mut self, d: Diag) {
        let b = self.byte(field::VERS_DIAG);
        self.set_byte(field::VERS_DIAG, (b & 0xe0) | (u8::from(d) & 0x1f));
    }

    /// Sets the state, keeping the flags.
    pub fn set_state(&mut self, s: State) {
        let b = self.byte(field::STA_FLAGS);
        self.set_byte(field::STA_FLAGS, (b & 0x3f) | ((s as u8) << 6));
    }

    /// Sets the Poll (P) bit.
    pub fn set_poll(&mut self, on: bool) {
        self.set_flag(flag::POLL, on);
    }

    /// Sets the Final (F) bit.
    pub fn set_final(&mut self, on: bool) {
        self.set_flag(flag::FINAL, on);
    }

    /// Sets the Control Plane Independent (C) bit.
    pub fn set_control_plane_independent(&mut self, on: bool) {
        self.set_flag(flag::CPI, on);
    }

    /// Sets the Authentication Present (A) bit.
    pub fn set_auth_present(&mut self, on: bool) {
        self.set_flag(flag::AUTH, on);
    }

    /// Sets the Demand (D) bit.
    pub fn set_demand(&mut self, on: bool) {
        self.set_flag(flag::DEMAND, on);
    }

    /// Sets the Multipoint (M) bit.
    pub fn set_multipoint(&mut self, on: bool) {
        self.set_flag(flag::MULTIPOINT, on);
    }

    /// Sets Detect Mult.
    pub fn set_detect_mult(&mut self, v: u8) {
        self.set_byte(field::DETECT_MULT, v);
    }

    /// Sets the Length field.
    pub fn set_length(&mut self, v: u8) {
        self.set_byte(field::LENGTH, v);
    }

    /// Sets My Discriminator.
    pub fn set_my_discriminator(&mut self, v: u32) {
        self.set_word(field::MY_DISCR, v);
    }

    /// Sets Your Discriminator.
    pub fn set_your_discriminator(&mut self, v: u32) {
        self.set_word(field::YOUR_DISCR, v);
    }

    /// Sets Desired Min TX Interval (µs).
    pub fn set_desired_min_tx(&mut self, v: u32) {
        self.set_word(field::DESIRED_MIN_TX, v);
    }

    /// Sets Required Min RX Interval (µs).
    pub fn set_required_min_rx(&mut self, v: u32) {
        self.set_word(field::REQUIRED_MIN_RX, v);
    }

    /// Sets Required Min Echo RX Interval (µs).
    pub fn set_required_min_echo_rx(&mut self, v: u32) {
        self.set_word(field::REQUIRED_MIN_ECHO_RX, v);
    }
}

/// A BFD Control packet as plain values. Version is always 1, and the A and M
/// bits are always clear: packets with them set never parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdRepr {
    /// Diagnostic code of the sender.
    pub diag: Diag,
    /// Session state of the sender.
    pub state: State,
    /// Poll (P) bit.
    pub poll: bool,
    /// Final (F) bit (`final` is a reserved word).
    pub final_: bool,
    /// Control Plane Independent (C) bit.
    pub control_plane_independent: bool,
    /// Demand (D) bit.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discr: u32,
    /// Your Discriminator.
    pub your_discr: u32,
    /// Desired Min TX Interval (µs).
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval (µs).
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval (µs); 0 means no echo.
    pub required_min_echo_rx_us: u32,
}

impl BfdRepr {
    /// Applies every packet-level discard rule of RFC 5880 §6.8.6, in RFC order.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &BfdPacket<&T>) -> Result<BfdRepr, RxError> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(RxError::BadVersion);
        }
        let len = usize::from(packet.length());
        let min = if packet.auth_present() {
            MIN_AUTH_LEN
        } else {
            HEADER_LEN
        };
        if len < min || len > packet.buffer.as_ref().len() {
            return Err(RxError::BadLength);
        }
        if packet.detect_mult() == 0 {
            return Err(RxError::ZeroDetectMult);
        }
        if packet.multipoint() {
            return Err(RxError::Multipoint);
        }
        let repr = BfdRepr {
            diag: packet.diag(),
            state: packet.state(),
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discr: packet.my_discriminator(),
            your_discr: packet.your_discriminator(),
            desired_min_tx_us: packet.desired_min_tx(),
            required_min_rx_us: packet.required_min_rx(),
            required_min_echo_rx_us: packet.required_min_echo_rx(),
        };
        repr.check()?;
        // The RFC places the A-bit rule after session lookup; with no
        // authentication configured anywhere the outcome is the same here.
        if packet.auth_present() {
            return Err(RxError::AuthUnsupported);
        }
        Ok(repr)
    }

    /// The §6.8.6 rules that can be judged on the value alone. `parse` runs
    /// them; the session runs them again because a repr may be built by hand.
    pub fn check(&self) -> Result<(), RxError> {
        if self.detect_mult == 0 {
            return Err(RxError::ZeroDetectMult);
        }
        if self.my_discr == 0 {
            return Err(RxError::ZeroMyDiscriminator);
        }
        if self.your_discr == 0 && !matches!(self.state, State::Down | State::AdminDown) {
            return Err(RxError::YourDiscriminatorZeroNotDown);
        }
        Ok(())
    }

    /// Bytes `emit` writes; we never send an authentication section.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the packet; the buffer must hold at least `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut BfdPacket<&mut T>) {
        // Whole bytes first so that stale flag bits in a reused buffer cannot leak.
        packet.set_byte(field::VERS_DIAG, VERSION << 5);
        packet.set_byte(field::STA_FLAGS, 0);
        packet.set_diag(self.diag);
        packet.set_state(self.state);
        packet.set_poll(self.poll);
        packet.set_final(self.final_);
        packet.set_control_plane_independent(self.control_plane_independent);
        packet.set_demand(self.demand);
        packet.set_detect_mult(self.detect_mult);
        packet.set_length(HEADER_LEN as u8);
        packet.set_my_discriminator(self.my_discr);
        packet.set_your_discriminator(self.your_discr);
        packet.set_desired_min_tx(self.desired_min_tx_us);
        packet.set_required_min_rx(self.required_min_rx_us);
        packet.set_required_min_echo_rx(self.required_min_echo_rx_us);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Shaped like an FRR bfdd packet for an Up session: version 1, diag 0,
    /// flags byte 0xc0 (Up, no flags), Detect Mult 3, Length 24, 100 ms
    /// intervals and a 50 ms Required Min Echo RX.
    const FRR_UP: [u8; 24] = [
        0x20, 0xc0, 0x03, 0x18, // vers/diag, sta/flags, detect mult, length
        0x5e, 0x3b, 0x01, 0x07, // my discriminator
        0x00, 0x00, 0x00, 0x01, // your discriminator
        0x00, 0x01, 0x86, 0xa0, // desired min tx 100000
        0x00, 0x01, 0x86, 0xa0, // required min rx 100000
        0x00, 0x00, 0xc3, 0x50, // required min echo rx 50000
    ];

    fn parse(bytes: &[u8]) -> Result<BfdRepr, RxError> {
        BfdRepr::parse(&BfdPacket::new_checked(bytes)?)
    }

    fn with(f: impl FnOnce(&mut BfdPacket<&mut [u8]>)) -> [u8; 24] {
        let mut b = FRR_UP;
        f(&mut BfdPacket::new_unchecked(&mut b[..]));
        b
    }

    #[test]
    fn frr_fixture_accessors() {
        let p = BfdPacket::new_checked(&FRR_UP[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.diag(), Diag::NoDiagnostic);
        assert_eq!(p.state(), State::Up);
        assert!(!p.poll() && !p.final_() && !p.control_plane_independent());
        assert!(!p.auth_present() && !p.demand() && !p.multipoint());
        assert_eq!(p.detect_mult(), 3);
        assert_eq!(p.length(), 24);
        assert_eq!(p.my_discriminator(), 0x5e3b_0107);
        assert_eq!(p.your_discriminator(), 1);
        assert_eq!(p.desired_min_tx(), 100_000);
        assert_eq!(p.required_min_rx(), 100_000);
        assert_eq!(p.required_min_echo_rx(), 50_000);
    }

    #[test]
    fn frr_fixture_parses_and_reemits_identically() {
        let r = parse(&FRR_UP).unwrap();
        assert_eq!(
            r,
            BfdRepr {
                diag: Diag::NoDiagnostic,
                state: State::Up,
                poll: false,
                final_: false,
                control_plane_independent: false,
                demand: false,
                detect_mult: 3,
                my_discr: 0x5e3b_0107,
                your_discr: 1,
                desired_min_tx_us: 100_000,
                required_min_rx_us: 100_000,
                required_min_echo_rx_us: 50_000,
            }
        );
        let mut out = [0xffu8; 24];
        r.emit(&mut BfdPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, FRR_UP);
    }

    #[test]
    fn round_trip_with_flags_and_unknown_diag() {
        let r = BfdRepr {
            diag: Diag::from(17),
            state: State::Init,
            poll: true,
            final_: false,
            control_plane_independent: true,
            demand: true,
            detect_mult: 1,
            my_discr: 7,
            your_discr: 7,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 0,
            required_min_echo_rx_us: 0,
        };
        assert_eq!(r.diag, Diag::Other(17));
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut BfdPacket::new_unchecked(&mut out[..]));
        assert_eq!(out[0], 0x20 | 17);
        assert_eq!(out[1], 0x80 | 0x20 | 0x08 | 0x02);
        assert_eq!(parse(&out).unwrap(), r);
    }

    #[test]
    fn trailing_bytes_beyond_length_are_ignored() {
        let mut b = FRR_UP.to_vec();
        b.extend_from_slice(&[0xaa; 6]);
        assert_eq!(parse(&b).unwrap(), parse(&FRR_UP).unwrap());
    }

    #[test]
    fn truncated() {
        assert_eq!(parse(&FRR_UP[..23]), Err(RxError::Truncated));
        assert_eq!(parse(&[]), Err(RxError::Truncated));
        // parse re-checks a view built without new_checked.
        let p = BfdPacket::new_unchecked(&FRR_UP[..10]);
        assert_eq!(BfdRepr::parse(&p), Err(RxError::Truncated));
    }

    #[test]
    fn bad_version() {
        for v in [0, 2, 7] {
            assert_eq!(parse(&with(|p| p.set_version(v))), Err(RxError::BadVersion));
        }
    }

    #[test]
    fn bad_length() {
        assert_eq!(parse(&with(|p| p.set_length(23))), Err(RxError::BadLength));
        // Length beyond the payload.
        assert_eq!(parse(&with(|p| p.set_length(25))), Err(RxError::BadLength));
        // With A set the minimum is 26, even if the payload is long enough.
        let mut long = with(|p| p.set_auth_present(true)).to_vec();
        long.resize(40, 0);
        assert_eq!(parse(&long), Err(RxError::BadLength));
        long[3] = 25;
        assert_eq!(parse(&long), Err(RxError::BadLength));
    }

    #[test]
    fn zero_detect_mult() {
        let b = with(|p| p.set_detect_mult(0));
        assert_eq!(parse(&b), Err(RxError::ZeroDetectMult));
    }

    #[test]
    fn multipoint() {
        let b = with(|p| p.set_multipoint(true));
        assert_eq!(parse(&b), Err(RxError::Multipoint));
    }

    #[test]
    fn zero_my_discriminator() {
        let b = with(|p| p.set_my_discriminator(0));
        assert_eq!(parse(&b), Err(RxError::ZeroMyDiscriminator));
    }

    #[test]
    fn your_discriminator_zero_only_when_down() {
        for (state, ok) in [
            (State::Up, false),
            (State::Init, false),
            (State::Down, true),
            (State::AdminDown, true),
        ] {
            let b = with(|p| {
                p.set_state(state);
                p.set_your_discriminator(0);
            });
            let want = if ok {
                Ok(())
            } else {
                Err(RxError::YourDiscriminatorZeroNotDown)
            };
            assert_eq!(parse(&b).map(|_| ()), want, "{state}");
        }
    }

    #[test]
    fn auth_unsupported() {
        // A well-formed packet with a (simple password) auth section.
        let mut b = with(|p| {
            p.set_auth_present(true);
            p.set_length(28);
        })
        .to_vec();
        b.extend_from_slice(&[1, 4, 1, b'x']);
        assert_eq!(parse(&b), Err(RxError::AuthUnsupported));
    }

    #[test]
    fn error_names_are_unique_snake_case() {
        let mut names: Vec<_> = RxError::ALL.iter().map(|e| e.name()).collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        for e in RxError::ALL {
            assert!(!e.help().is_empty() && !e.help().contains('\n'));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RxError::ALL.len());
    }

    #[test]
    fn diag_codes_match_rfc() {
        for v in 0..32u8 {
            assert_eq!(u8::from(Diag::from(v)), v);
        }
        assert_eq!(Diag::from(3), Diag::NeighborSignaledSessionDown);
        assert_eq!(u8::from(Diag::AdministrativelyDown), 7);
        assert_eq!(Diag::from(9), Diag::Other(9));
    }

    fn arb_repr() -> impl Strategy<Value = BfdRepr> {
        (
            (0u8..32, 0u8..4, any::<[bool; 4]>(), 1u8..=255),
            (1u32.., any::<u32>(), any::<[u32; 3]>()),
        )
            .prop_map(|((diag, state, f, mult), (my, your, t))| {
                let state = State::from_bits(state);
                let down = matches!(state, State::Down | State::AdminDown);
                BfdRepr {
                    diag: Diag::from(diag),
                    state,
                    poll: f[0],
                    final_: f[1],
                    control_plane_independent: f[2],
                    demand: f[3],
                    detect_mult: mult,
                    my_discr: my,
                    your_discr: if your == 0 && !down { 1 } else { your },
                    desired_min_tx_us: t[0],
                    required_min_rx_us: t[1],
                    required_min_echo_rx_us: t[2],
                }
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = BfdPacket::new_checked(&bytes[..]) {
                let _ = (p.version(), p.diag(), p.state(), p.poll(), p.final_(), p.length());
                let _ = (p.control_plane_independent(), p.auth_present(), p.demand());
                let _ = (p.multipoint(), p.detect_mult(), p.my_discriminator());
                let _ = (p.your_discriminator(), p.desired_min_tx(), p.required_min_rx());
                let _ = p.required_min_echo_rx();
                let _ = BfdRepr::parse(&p);
            }
        }

        #[test]
        fn emit_then_parse_is_identity(r in arb_repr()) {
            let mut buf = [0x5au8; 24];
            r.emit(&mut BfdPacket::new_unchecked(&mut buf[..]));
            prop_assert_eq!(parse(&buf), Ok(r));
        }
    }
}
