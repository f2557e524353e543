//! The host against frames captured from Linux 6.18 (a veth in a namespace,
//! sockets joining with IP_ADD_MEMBERSHIP / IP_ADD_SOURCE_MEMBERSHIP, queries
//! sent with AF_PACKET; `tests/tests/igmp_linux_bytes.rs` repeats the
//! capture on every `make test`). Our MAC and address are those of that veth,
//! so the frames must be equal byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::wire::checksum;
use crate::wire::igmp::{
    ALLOW_NEW_SOURCES, BLOCK_OLD_SOURCES, CHANGE_TO_EXCLUDE, CHANGE_TO_INCLUDE, MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
};
use crate::wire::ipv4::ROUTER_ALERT_OPTION;
use crate::wire::{EthernetFrame, Ipv4Packet, Ipv4Repr};

const MAC: MacAddr = MacAddr([0x5a, 0xef, 0xa8, 0x3e, 0x36, 0x38]);
const IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ADDRS: &[(MacAddr, Ipv4Addr)] = &[(MAC, IP)];
const QUERIER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
const G3: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const G4: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 4);
const SSM: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 1);
const S9: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);
const S8: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 8);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 5, 5, 5);

/// Linux's frames, from the capture described above.
mod linux {
    /// TO_EX{} 239.1.2.3: an ASM join.
    pub const ASM_JOIN: &str = "01005e0000165aefa83e3638080046c00028000040000102f9ab0a4d0001e0000016940400002200e8f90000000104000000ef010203";
    /// TO_IN{} 239.1.2.3: an ASM leave.
    pub const ASM_LEAVE: &str = "01005e0000165aefa83e3638080046c00028000040000102f9ab0a4d0001e0000016940400002200e9f90000000103000000ef010203";
    /// ALLOW{10.9.9.9} 232.1.1.1: an SSM join on a group with no state.
    pub const SSM_JOIN: &str = "01005e0000165aefa83e3638080046c0002c000040000102f9a70a4d0001e0000016940400002200dce80000000105000001e80101010a090909";
    /// ALLOW{10.9.9.8} 232.1.1.1: a second source.
    pub const SSM_ADD: &str = "01005e0000165aefa83e3638080046c0002c000040000102f9a70a4d0001e0000016940400002200dce90000000105000001e80101010a090908";
    /// BLOCK{10.9.9.9} 232.1.1.1: one of two sources dropped.
    pub const SSM_DROP: &str = "01005e0000165aefa83e3638080046c0002c000040000102f9a70a4d0001e0000016940400002200dbe80000000106000001e80101010a090909";
    /// BLOCK{10.9.9.8} 232.1.1.1: the last source dropped (no TO_IN{}).
    pub const SSM_LEAVE: &str = "01005e0000165aefa83e3638080046c0002c000040000102f9a70a4d0001e0000016940400002200dbe90000000106000001e80101010a090908";
    /// 239.1.2.3, 239.1.2.4 and 232.1.1.1 {.9, .8} joined at once: one report,
    /// ALLOW{.9,.8} 232.1.1.1, TO_EX 239.1.2.4, TO_EX 239.1.2.3.
    pub const JOIN_THREE: &str = "01005e0000165aefa83e3638080046c00040000040000102f9930a4d0001e0000016940400002200dfc90000000305000002e80101010a0909090a09090804000000ef01020404000000ef010203";
    /// The answer to a v3 general query with those three: IS_IN{.9,.8}
    /// 232.1.1.1, IS_EX 239.1.2.4, IS_EX 239.1.2.3.
    pub const GENERAL: &str = "01005e0000165aefa83e3638080046c00040000040000102f9930a4d0001e0000016940400002200e7c90000000301000002e80101010a0909090a09090802000000ef01020402000000ef010203";
    /// IS_EX{} 239.1.2.4: the answer to a group query, and to a
    /// group-and-source query, for an ASM group.
    pub const GROUP_ASM: &str = "01005e0000165aefa83e3638080046c00028000040000102f9ab0a4d0001e0000016940400002200eaf80000000102000000ef010204";
    /// IS_IN{10.9.9.9} 232.1.1.1: the answer to a query for {10.9.9.9,
    /// 10.5.5.5} when the host has {10.9.9.9, 10.9.9.8}.
    pub const GROUP_SOURCE: &str = "01005e0000165aefa83e3638080046c0002c000040000102f9a70a4d0001e0000016940400002200e0e80000000101000001e80101010a090909";
    /// v2 report 239.1.2.3, to the group.
    pub const V2_REPORT: &str =
        "01005e0102035aefa83e3638080046c00020000040000102e8c50a4d0001ef010203940400001600f8faef010203";
    /// v2 report 232.1.1.1 (an SSM join in v2 mode).
    pub const V2_REPORT_SSM: &str =
        "01005e0101015aefa83e3638080046c00020000040000102f0c70a4d0001e801010194040000160000fde8010101";
    /// v2 leave 239.1.2.3, to 224.0.0.2.
    pub const V2_LEAVE: &str =
        "01005e0000025aefa83e3638080046c00020000040000102f9c70a4d0001e0000002940400001700f7faef010203";
    /// v1 report 239.1.2.3.
    pub const V1_REPORT: &str =
        "01005e0102035aefa83e3638080046c00020000040000102e8c50a4d0001ef010203940400001200fcfaef010203";
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn asm(group: Ipv4Addr) -> Membership {
    Membership {
        group,
        source: None,
    }
}

fn ssm(group: Ipv4Addr, source: Ipv4Addr) -> Membership {
    Membership {
        group,
        source: Some(source),
    }
}

fn with_checksum(mut igmp: Vec<u8>) -> Vec<u8> {
    igmp[2..4].fill(0);
    let c = checksum::checksum(&igmp);
    igmp[2..4].copy_from_slice(&c.to_be_bytes());
    igmp
}

/// A v3 query; `code` is the Max Resp Code in tenths of a second.
fn v3_query(group: Ipv4Addr, code: u8, sources: &[Ipv4Addr]) -> Vec<u8> {
    let mut q = vec![0x11, code, 0, 0];
    q.extend_from_slice(&group.octets());
    q.extend_from_slice(&[2, 125]);
    q.extend_from_slice(&u16::try_from(sources.len()).unwrap().to_be_bytes());
    for s in sources {
        q.extend_from_slice(&s.octets());
    }
    with_checksum(q)
}

fn v2_query(group: Ipv4Addr, code: u8) -> Vec<u8> {
    let mut q = vec![0x11, code, 0, 0];
    q.extend_from_slice(&group.octets());
    with_checksum(q)
}

/// A host on one port, a seeded generator, and a clock the test moves.
struct Bench {
    host: IgmpHost,
    rng: fastrand::Rng,
    t0: Time,
    now: Time,
}

impl Bench {
    fn new(cfg: IgmpConfig, seed: u64) -> Bench {
        let t0 = Time::from_secs(1_000);
        Bench {
            host: IgmpHost::new(1, cfg),
            rng: fastrand::Rng::with_seed(seed),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, offset: Duration) -> &mut Self {
        assert!(self.t0 + offset >= self.now, "time goes forward");
        self.now = self.t0 + offset;
        self
    }

    fn set(&mut self, wanted: &[Membership]) {
        self.host.set_memberships(0, wanted, self.now);
    }

    fn rx(&mut self, src: Ipv4Addr, dst: Ipv4Addr, igmp: &[u8]) -> Result<(), IgmpRxError> {
        self.host
            .on_igmp(0, src, dst, igmp, self.now, &mut self.rng)
    }

    fn query(&mut self, igmp: &[u8]) {
        self.rx(QUERIER, ALL_SYSTEMS, igmp).unwrap();
    }

    /// Every frame sent from now until `now + span`, with its time since t0,
    /// polling exactly when the host asks to be woken; the clock ends at
    /// `now + span`.
    fn run(&mut self, span: Duration) -> Vec<(Duration, Vec<u8>)> {
        let end = self.now + span;
        let mut out = Vec::new();
        loop {
            let mut sent = Vec::new();
            let next = self
                .host
                .poll(self.now, &mut self.rng, ADDRS, &mut |port, f| {
                    assert_eq!(port, 0);
                    sent.push(f.to_vec());
                });
            out.extend(sent.into_iter().map(|f| (self.now - self.t0, f)));
            match next {
                Some(t) if t <= end => {
                    assert!(t > self.now, "the host asked to be polled again at once");
                    self.now = t;
                }
                _ => break,
            }
        }
        self.now = end;
        out
    }

    fn frames(&mut self, span: Duration) -> Vec<Vec<u8>> {
        self.run(span).into_iter().map(|(_, f)| f).collect()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

type RecordSet = BTreeSet<(u8, Ipv4Addr, BTreeSet<Ipv4Addr>)>;

/// The group records of a v3 report frame, order aside.
fn records(frame: &[u8]) -> RecordSet {
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    let igmp = IgmpPacket::new_checked(ip.payload()).unwrap();
    let IgmpRepr::ReportV3 { records } = IgmpRepr::parse(&igmp).unwrap() else {
        panic!("not a v3 report");
    };
    records
        .map(|r| (r.record_type, r.group_addr, r.sources.collect()))
        .collect()
}

/// Equal to a Linux frame but for the order of records and of sources: the
/// headers (whose checksums do not depend on that order) and the records.
fn assert_same_records(ours: &[u8], linux: &[u8]) {
    assert_eq!(ours.len(), linux.len());
    assert_eq!(ours[..14 + 24 + 8], linux[..14 + 24 + 8], "headers");
    assert_eq!(records(ours), records(linux));
}

/// Checks what every frame we send must be (RFC 3376 §4, RFC 2236 §2).
fn assert_well_formed(frame: &[u8], mtu: usize) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let repr = Ipv4Repr::parse(&ip).unwrap();
    assert!(repr.dst_addr.is_multicast());
    assert_eq!(eth.dst_addr(), MacAddr::from_ipv4_multicast(repr.dst_addr));
    assert_eq!((repr.ttl, repr.dscp, repr.ident), (1, 0x30, 0));
    assert!(repr.dont_frag);
    assert_eq!(ip.options(), &ROUTER_ALERT_OPTION);
    assert!(usize::from(ip.total_len()) <= mtu.max(frames::MIN_MTU));
    let igmp = IgmpPacket::new_checked(ip.payload()).unwrap();
    assert!(igmp.verify_checksum());
    if igmp.msg_type() != msg_type::V1_REPORT {
        IgmpRepr::parse(&igmp).unwrap();
    }
}

#[test]
fn asm_join_is_linux_to_ex_sent_robustness_times_within_the_interval() {
    for seed in 0..50 {
        let mut b = Bench::new(IgmpConfig::default(), seed);
        b.set(&[asm(G3)]);
        let sent = b.run(secs(5.0));
        assert_eq!(sent.len(), 2, "seed {seed}");
        assert_eq!(sent[0], (Duration::ZERO, hex(linux::ASM_JOIN)));
        assert_eq!(sent[1].1, hex(linux::ASM_JOIN));
        assert!(sent[1].0 <= secs(1.0), "seed {seed}: {:?}", sent[1].0);
    }
    // Robustness 3: three transmissions, each gap within the interval.
    let cfg = IgmpConfig {
        robustness: 3,
        unsolicited_report_interval: secs(0.5),
        ..IgmpConfig::default()
    };
    for seed in 0..50 {
        let mut b = Bench::new(cfg, seed);
        b.set(&[asm(G3)]);
        let sent = b.run(secs(5.0));
        assert_eq!(sent.len(), 3);
        for w in sent.windows(2) {
            assert!(w[1].0 - w[0].0 <= secs(0.5));
            assert_eq!(w[1].1, hex(linux::ASM_JOIN));
        }
    }
}

#[test]
fn ssm_join_add_drop_leave_match_linux() {
    let mut b = Bench::new(IgmpConfig::default(), 1);
    let steps: [(&[Membership], &str); 4] = [
        (&[ssm(SSM, S9)], linux::SSM_JOIN),
        (&[ssm(SSM, S9), ssm(SSM, S8)], linux::SSM_ADD),
        (&[ssm(SSM, S8)], linux::SSM_DROP),
        (&[], linux::SSM_LEAVE),
    ];
    for (i, (wanted, fixture)) in steps.into_iter().enumerate() {
        b.at(secs(2.0 * i as f64)).set(wanted);
        assert_eq!(b.frames(secs(1.5)), vec![hex(fixture); 2], "step {i}");
    }
    assert!(b.host.status()[0].groups.is_empty());
    assert_eq!(b.host.poll(b.now, &mut b.rng, ADDRS, &mut |_, _| {}), None);
}

#[test]
fn asm_leave_is_to_in_and_forgets_the_group() {
    let mut b = Bench::new(IgmpConfig::default(), 2);
    b.set(&[asm(G3)]);
    b.frames(secs(1.5));
    b.set(&[]);
    assert_eq!(b.frames(secs(1.5)), vec![hex(linux::ASM_LEAVE); 2]);
    assert!(b.host.status()[0].groups.is_empty());
    // Nothing left to say, nothing to wake up for.
    assert_eq!(b.host.poll(b.now, &mut b.rng, ADDRS, &mut |_, _| {}), None);
}

#[test]
fn changes_at_once_share_one_report() {
    let mut b = Bench::new(IgmpConfig::default(), 3);
    b.set(&[asm(G3), asm(G4), ssm(SSM, S9), ssm(SSM, S8)]);
    let sent = b.frames(secs(1.5));
    assert_eq!(sent.len(), 2);
    for f in &sent {
        assert_same_records(f, &hex(linux::JOIN_THREE));
    }
}

#[test]
fn asm_and_ssm_on_one_group_is_exclude() {
    let mut b = Bench::new(IgmpConfig::default(), 4);
    b.set(&[ssm(G3, S9), asm(G3)]);
    assert_eq!(b.frames(secs(1.5)), vec![hex(linux::ASM_JOIN); 2]);
    // The ASM rule goes: EXCLUDE{} → INCLUDE{S9} is a filter-mode change.
    b.set(&[ssm(G3, S9)]);
    let sent = b.frames(secs(1.5));
    assert_eq!(sent.len(), 2);
    assert_eq!(
        records(&sent[0]),
        RecordSet::from([(CHANGE_TO_INCLUDE, G3, BTreeSet::from([S9]))])
    );
}

#[test]
fn a_change_during_retransmissions_is_merged() {
    let mut b = Bench::new(IgmpConfig::default(), 5);
    b.set(&[ssm(SSM, S9)]);
    assert_eq!(b.frames(Duration::ZERO), vec![hex(linux::SSM_JOIN)]);
    // Before S9's repeat: S8 joins, so S9's repeat and S8's first go together.
    b.at(secs(0.0001)).set(&[ssm(SSM, S9), ssm(SSM, S8)]);
    let sent = b.frames(secs(2.0));
    let got: Vec<RecordSet> = sent.iter().map(|f| records(f)).collect();
    assert_eq!(
        got,
        vec![
            RecordSet::from([(ALLOW_NEW_SOURCES, SSM, BTreeSet::from([S8, S9]))]),
            RecordSet::from([(ALLOW_NEW_SOURCES, SSM, BTreeSet::from([S8]))]),
        ]
    );
    // A leave while a join is pending: the mode record now says TO_IN{}.
    b.set(&[asm(G3)]);
    b.frames(Duration::ZERO);
    b.set(&[]);
    let sent = b.frames(secs(2.0));
    let all: Vec<RecordSet> = sent.iter().map(|f| records(f)).collect();
    assert_eq!(
        all[0],
        RecordSet::from([
            (CHANGE_TO_INCLUDE, G3, BTreeSet::new()),
            (BLOCK_OLD_SOURCES, SSM, BTreeSet::from([S8, S9])),
        ])
    );
    assert_eq!(all.len(), 2);
}

#[test]
fn general_query_answered_once_within_max_resp_with_every_group() {
    for seed in 0..30 {
        let mut b = Bench::new(IgmpConfig::default(), seed);
        b.set(&[asm(G3), asm(G4), ssm(SSM, S9), ssm(SSM, S8)]);
        b.frames(secs(2.0));
        let q = b.now;
        b.query(&v3_query(Ipv4Addr::UNSPECIFIED, 10, &[]));
        let sent = b.run(secs(3.0));
        assert_eq!(sent.len(), 1, "seed {seed}");
        assert!(b.t0 + sent[0].0 <= q + secs(1.0));
        assert_same_records(&sent[0].1, &hex(linux::GENERAL));
    }
}

#[test]
fn group_queries_are_answered_for_our_groups_only() {
    let mut b = Bench::new(IgmpConfig::default(), 7);
    b.set(&[asm(G3), asm(G4), ssm(SSM, S9), ssm(SSM, S8)]);
    b.frames(secs(2.0));
    let cases: [(Vec<u8>, Vec<Vec<u8>>); 5] = [
        (v3_query(G4, 10, &[]), vec![hex(linux::GROUP_ASM)]),
        // Linux answers a group-and-source query on an ASM group with IS_EX{}.
        (v3_query(G4, 10, &[OTHER, S9]), vec![hex(linux::GROUP_ASM)]),
        (
            v3_query(SSM, 10, &[S9, OTHER]),
            vec![hex(linux::GROUP_SOURCE)],
        ),
        (v3_query(SSM, 10, &[OTHER]), vec![]),
        (v3_query(Ipv4Addr::new(239, 9, 9, 9), 10, &[]), vec![]),
    ];
    for (i, (query, expected)) in cases.into_iter().enumerate() {
        b.rx(QUERIER, Ipv4Addr::new(239, 1, 2, 4), &query).unwrap();
        let sent = b.run(secs(1.5));
        assert!(sent.iter().all(|(t, _)| *t <= b.now - b.t0 - secs(0.5)));
        let frames: Vec<Vec<u8>> = sent.into_iter().map(|(_, f)| f).collect();
        assert_eq!(frames, expected, "case {i}");
    }
    // A group query answers for the whole SSM group.
    b.query(&v3_query(SSM, 10, &[]));
    let sent = b.frames(secs(1.5));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        records(&sent[0]),
        RecordSet::from([(MODE_IS_INCLUDE, SSM, BTreeSet::from([S8, S9]))])
    );
}

#[test]
fn pending_responses_merge_per_rfc_3376_5_2() {
    let mut b = Bench::new(IgmpConfig::default(), 8);
    b.set(&[ssm(SSM, S9), ssm(SSM, S8), asm(G3)]);
    b.frames(secs(2.0));
    // Two group-and-source queries merge their source lists: one answer.
    b.query(&v3_query(SSM, 100, &[S9]));
    b.query(&v3_query(SSM, 100, &[S8]));
    let sent = b.frames(secs(11.0));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        records(&sent[0]),
        RecordSet::from([(MODE_IS_INCLUDE, SSM, BTreeSet::from([S8, S9]))])
    );
    // A pending general response sent sooner covers a later group query.
    b.query(&v3_query(Ipv4Addr::UNSPECIFIED, 0, &[]));
    b.query(&v3_query(G3, 100, &[]));
    let sent = b.frames(secs(11.0));
    assert_eq!(sent.len(), 1);
    assert_eq!(records(&sent[0]).len(), 2);
}

#[test]
fn v2_querier_means_v2_reports_until_the_timeout() {
    let cfg = IgmpConfig::default();
    let mut b = Bench::new(cfg, 9);
    b.set(&[asm(G3), ssm(SSM, S9)]);
    b.frames(secs(2.0));
    // A v2 general query, Max Resp Time 1 s: one v2 report per group.
    let q = b.now;
    b.query(&v2_query(Ipv4Addr::UNSPECIFIED, 10));
    let st = &b.host.status()[0];
    assert_eq!(
        (st.mode, st.querier, st.querier_version),
        (CompatMode::V2, Some(QUERIER), Some(2))
    );
    let sent = b.run(secs(2.0));
    let mut frames: Vec<Vec<u8>> = sent.iter().map(|(_, f)| f.clone()).collect();
    frames.sort();
    let mut expected = vec![hex(linux::V2_REPORT), hex(linux::V2_REPORT_SSM)];
    expected.sort();
    assert_eq!(frames, expected);
    assert!(sent.iter().all(|(t, _)| b.t0 + *t <= q + secs(1.0)));

    // A new group: a v2 report, repeated once within 10 s.
    b.set(&[asm(G3), ssm(SSM, S9), asm(G4)]);
    let sent = b.run(secs(11.0));
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0, secs(4.0));
    assert!(sent[1].0 - sent[0].0 <= secs(10.0));
    let eth = EthernetFrame::new_checked(&sent[0].1[..]).unwrap();
    assert_eq!(eth.dst_addr(), MacAddr::from_ipv4_multicast(G4));
    // Adding an SSM source says nothing in v2.
    b.set(&[asm(G3), ssm(SSM, S9), ssm(SSM, S8), asm(G4)]);
    assert!(b.frames(secs(1.0)).is_empty());
    // The last departure from a group we reported: one leave to 224.0.0.2.
    b.set(&[ssm(SSM, S9), ssm(SSM, S8), asm(G4)]);
    assert_eq!(b.frames(secs(5.0)), vec![hex(linux::V2_LEAVE)]);

    // Robustness × 125 s + 1 s after the query the port is back to v3:
    // changes are v3 reports again (nothing is sent on the switch itself).
    b.at(q.duration_since(b.t0) + secs(250.0 + 1.0 - 0.001));
    assert_eq!(b.host.status()[0].mode, CompatMode::V2);
    assert!(b.frames(secs(0.002)).is_empty());
    assert_eq!(b.host.status()[0].mode, CompatMode::V3);
    b.set(&[ssm(SSM, S9), ssm(SSM, S8), asm(G4), asm(G3)]);
    assert_eq!(b.frames(secs(2.0)), vec![hex(linux::ASM_JOIN); 2]);
}

#[test]
fn v1_querier_means_v1_reports_and_no_leave() {
    let mut b = Bench::new(IgmpConfig::default(), 10);
    b.set(&[asm(G3)]);
    b.frames(secs(2.0));
    // A v1 query: 8 bytes, code 0; the answer comes within 10 s.
    b.query(&v2_query(Ipv4Addr::UNSPECIFIED, 0));
    assert_eq!(b.host.status()[0].mode, CompatMode::V1);
    let sent = b.run(secs(11.0));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0 <= secs(12.0));
    assert_eq!(sent[0].1, hex(linux::V1_REPORT));
    b.set(&[]);
    assert!(b.frames(secs(5.0)).is_empty());
}

#[test]
fn a_v2_report_heard_suppresses_ours_and_the_leave() {
    let mut b = Bench::new(IgmpConfig::default(), 11);
    b.set(&[asm(G3)]);
    b.frames(secs(2.0));
    b.query(&v2_query(Ipv4Addr::UNSPECIFIED, 100));
    let report = with_checksum(vec![0x16, 0, 0, 0, 239, 1, 2, 3]);
    // Sent to 224.0.0.1 rather than the group: the router never sees it.
    b.rx(Ipv4Addr::new(10, 77, 0, 9), ALL_SYSTEMS, &report)
        .unwrap();
    assert_eq!(b.status_groups(), 1);
    b.rx(Ipv4Addr::new(10, 77, 0, 9), G3, &report).unwrap();
    assert!(b.frames(secs(11.0)).is_empty());
    // Another member reported last: it will answer the router's query.
    b.set(&[]);
    assert!(b.frames(secs(1.0)).is_empty());
}

impl Bench {
    fn status_groups(&self) -> usize {
        self.host.status()[0].groups.len()
    }
}

#[test]
fn v3_hosts_do_not_suppress() {
    let mut b = Bench::new(IgmpConfig::default(), 12);
    b.set(&[asm(G3)]);
    b.frames(secs(2.0));
    b.query(&v3_query(G3, 10, &[]));
    let report = with_checksum(vec![0x16, 0, 0, 0, 239, 1, 2, 3]);
    b.rx(Ipv4Addr::new(10, 77, 0, 9), G3, &report).unwrap();
    assert_eq!(b.frames(secs(1.5)).len(), 1);
}

#[test]
fn switching_to_v2_cancels_v3_retransmissions() {
    let mut b = Bench::new(IgmpConfig::default(), 13);
    b.set(&[asm(G3)]);
    assert_eq!(b.frames(Duration::ZERO).len(), 1);
    b.at(secs(0.0001));
    // The v2 report goes within 0.1 s, and no v3 repeat follows.
    b.query(&v2_query(G3, 0x01));
    let sent = b.frames(secs(2.0));
    assert_eq!(sent, vec![hex(linux::V2_REPORT)]);
}

#[test]
fn long_reports_are_split_at_the_mtu() {
    let sources: Vec<Membership> = (0..400u32)
        .map(|i| ssm(SSM, Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    let mut b = Bench::new(IgmpConfig::default(), 14);
    b.set(&sources);
    let sent = b.frames(Duration::ZERO);
    assert_eq!(sent.len(), 2);
    let mut total = 0;
    for f in &sent {
        assert_well_formed(f, 1500);
        for (t, g, s) in records(f) {
            assert_eq!((t, g), (ALLOW_NEW_SOURCES, SSM));
            total += s.len();
        }
    }
    assert_eq!(total, 400);
    // The first one is full: (1500 - 24 - 8 - 8) / 4 sources.
    assert_eq!(sent[0].len(), 14 + 1500);
    // A tiny MTU still makes progress.
    let mut b = Bench::new(
        IgmpConfig {
            mtu: 0,
            ..IgmpConfig::default()
        },
        14,
    );
    b.set(&sources[..20]);
    let sent = b.frames(Duration::ZERO);
    assert_eq!(sent.len(), 3);
    sent.iter().for_each(|f| assert_well_formed(f, 0));
}

#[test]
fn groups_that_cannot_be_joined_are_ignored() {
    let mut b = Bench::new(IgmpConfig::default(), 15);
    b.set(&[
        asm(ALL_SYSTEMS),
        asm(Ipv4Addr::new(10, 0, 0, 1)),
        ssm(SSM, Ipv4Addr::UNSPECIFIED),
        ssm(SSM, Ipv4Addr::new(239, 0, 0, 1)),
    ]);
    assert!(b.frames(secs(2.0)).is_empty());
    assert_eq!(b.status_groups(), 0);
}

#[test]
fn malformed_input_is_an_error() {
    let mut b = Bench::new(IgmpConfig::default(), 16);
    let mut bad_sum = v2_query(Ipv4Addr::UNSPECIFIED, 10);
    bad_sum[7] ^= 1;
    let cases: [(Vec<u8>, Result<(), IgmpRxError>); 10] = [
        (vec![], Err(IgmpRxError::Malformed)),
        (vec![0x11, 0, 0, 0, 0, 0, 0], Err(IgmpRxError::Malformed)),
        (bad_sum, Err(IgmpRxError::BadChecksum)),
        (
            with_checksum(vec![0x30, 0, 0, 0, 0, 0, 0, 0]),
            Err(IgmpRxError::Unsupported),
        ),
        // A general query with sources.
        (
            v3_query(Ipv4Addr::UNSPECIFIED, 10, &[S9]),
            Err(IgmpRxError::Malformed),
        ),
        // Source count past the end.
        (
            with_checksum(vec![
                0x11, 10, 0, 0, 239, 1, 2, 3, 2, 125, 0, 9, 10, 0, 0, 1,
            ]),
            Err(IgmpRxError::Malformed),
        ),
        // A query for a unicast "group".
        (
            v2_query(Ipv4Addr::new(10, 0, 0, 1), 10),
            Err(IgmpRxError::Malformed),
        ),
        (
            with_checksum(vec![0x12, 0, 0, 0, 10, 0, 0, 1]),
            Err(IgmpRxError::Malformed),
        ),
        // Other hosts' leaves and v3 reports are fine and need nothing.
        (with_checksum(vec![0x17, 0, 0, 0, 239, 1, 2, 3]), Ok(())),
        (hex(linux::ASM_JOIN)[14 + 24..].to_vec(), Ok(())),
    ];
    for (i, (bytes, expected)) in cases.into_iter().enumerate() {
        assert_eq!(b.rx(QUERIER, ALL_SYSTEMS, &bytes), expected, "case {i}");
    }
    assert_eq!(b.host.status()[0].mode, CompatMode::V3);
    assert!(b.frames(secs(20.0)).is_empty());
}

#[test]
fn ports_are_independent_and_status_shows_them() {
    let mut host = IgmpHost::new(2, IgmpConfig::default());
    let mut rng = fastrand::Rng::with_seed(17);
    let now = Time::from_secs(1_000);
    host.set_memberships(1, &[ssm(SSM, S9), asm(G3)], now);
    // Port 3 did not exist: it is added.
    host.set_memberships(3, &[asm(G4)], now);
    let other = (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(10, 1, 0, 1));
    let mut sent = Vec::new();
    // Port 3 has no address: its report is dropped, its timers still run.
    host.poll(now, &mut rng, &[(MAC, IP), other], &mut |p, f| {
        sent.push((p, f.to_vec()))
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 1);
    assert_eq!(&sent[0].1[6..12], &other.0 .0);
    let status = host.status();
    assert_eq!(status.len(), 4);
    assert!(status[0].groups.is_empty());
    let json = serde_json::to_value(&status[1]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "port": 1, "mode": "v3", "querier": null, "querier_version": null,
            "groups": [
                {"group": "232.1.1.1", "filter": "include", "sources": ["10.9.9.9"]},
                {"group": "239.1.2.3", "filter": "exclude", "sources": []},
            ],
        })
    );
    assert_eq!(status[3].groups[0].group, G4);
}

#[test]
fn record_types_of_the_fixtures() {
    // The fixtures say what the tests above claim they say.
    let one = |s: &str| records(&hex(s)).into_iter().next().unwrap();
    assert_eq!(
        one(linux::ASM_JOIN),
        (CHANGE_TO_EXCLUDE, G3, BTreeSet::new())
    );
    assert_eq!(
        one(linux::ASM_LEAVE),
        (CHANGE_TO_INCLUDE, G3, BTreeSet::new())
    );
    assert_eq!(one(linux::SSM_JOIN).0, ALLOW_NEW_SOURCES);
    assert_eq!(one(linux::SSM_LEAVE).0, BLOCK_OLD_SOURCES);
    assert_eq!(
        one(linux::GROUP_ASM),
        (MODE_IS_EXCLUDE, G4, BTreeSet::new())
    );
    for f in [
        linux::V2_REPORT,
        linux::V2_LEAVE,
        linux::V1_REPORT,
        linux::GENERAL,
    ] {
        assert_well_formed(&hex(f), 1500);
    }
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Set(Vec<(u8, Option<u8>)>),
    Bytes(Vec<u8>),
    Query {
        kind: u8,
        group: u8,
        code: u8,
        sources: Vec<u8>,
    },
    Report {
        v1: bool,
        group: u8,
        to_group: bool,
    },
    Wait(u16),
}

fn group_of(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(if i % 2 == 0 { 239 } else { 232 }, 0, 0, i % 4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::collection::vec((0u8..4, proptest::option::of(0u8..3)), 0..5).prop_map(Op::Set),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Bytes),
        (
            0u8..3,
            0u8..5,
            any::<u8>(),
            proptest::collection::vec(0u8..4, 0..3)
        )
            .prop_map(|(kind, group, code, sources)| Op::Query {
                kind,
                group,
                code,
                sources
            }),
        (any::<bool>(), 0u8..4, any::<bool>()).prop_map(|(v1, group, to_group)| Op::Report {
            v1,
            group,
            to_group
        }),
        (0u16..3000).prop_map(Op::Wait),
    ]
}

proptest! {
    #[test]
    fn never_panics_and_every_frame_is_well_formed(
        ops in proptest::collection::vec(op(), 0..40),
        seed in any::<u64>(),
        mtu in prop_oneof![Just(1500usize), 0usize..200],
    ) {
        let cfg = IgmpConfig { mtu, ..IgmpConfig::default() };
        let mut b = Bench::new(cfg, seed);
        for op in ops {
            match op {
                Op::Set(m) => {
                    let wanted: Vec<Membership> = m
                        .iter()
                        .map(|(g, s)| Membership {
                            group: group_of(*g),
                            source: s.map(|s| Ipv4Addr::new(10, 0, 0, s)),
                        })
                        .collect();
                    b.set(&wanted);
                }
                Op::Bytes(bytes) => {
                    let _ = b.rx(QUERIER, ALL_SYSTEMS, &bytes);
                    let _ = b.rx(QUERIER, ALL_SYSTEMS, &with_checksum_if_fits(bytes));
                }
                Op::Query { kind, group, code, sources } => {
                    let g = if group == 4 { Ipv4Addr::UNSPECIFIED } else { group_of(group) };
                    let s: Vec<Ipv4Addr> = sources.iter().map(|s| Ipv4Addr::new(10, 0, 0, *s)).collect();
                    let q = match kind {
                        0 => v3_query(g, code, &s),
                        1 => v2_query(g, code),
                        _ => v2_query(g, 0),
                    };
                    let _ = b.rx(QUERIER, ALL_SYSTEMS, &q);
                }
                Op::Report { v1, group, to_group } => {
                    let g = group_of(group);
                    let mut r = vec![if v1 { 0x12 } else { 0x16 }, 0, 0, 0];
                    r.extend_from_slice(&g.octets());
                    let dst = if to_group { g } else { ALL_SYSTEMS };
                    prop_assert_eq!(b.rx(QUERIER, dst, &with_checksum(r)), Ok(()));
                }
                Op::Wait(ms) => {
                    for f in b.frames(Duration::from_millis(u64::from(ms))) {
                        assert_well_formed(&f, mtu);
                    }
                }
            }
        }
        // Every timer runs out: after the compat timeouts, all repeats and
        // the longest Max Resp Time (3174.4 s), the host is quiet.
        for f in b.frames(secs(3200.0)) {
            assert_well_formed(&f, mtu);
        }
        b.now += secs(1.0);
        let next = b.host.poll(b.now, &mut b.rng, ADDRS, &mut |_, _| ());
        prop_assert!(next.is_none());
        prop_assert_eq!(b.host.status()[0].mode, CompatMode::V3);
    }
}

fn with_checksum_if_fits(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 4 {
        with_checksum(bytes)
    } else {
        bytes
    }
}
