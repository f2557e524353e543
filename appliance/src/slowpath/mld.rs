//! The appliance as a Multicast Listener Discovery listener (RFC 9777,
//! MLDv2) for the groups its own IPv6 needs on each port: the
//! solicited-node groups of its addresses, the Subnet-Router anycast one
//! included (Neighbor Solicitations reach it there), and all routers
//! (router solicitations). A switch that snoops MLD
//! forwards a link-scope group only to the ports that reported it (RFC 4541
//! §3: only ff02::1 is never reported), so without these reports Neighbor
//! Discovery would fail behind such a switch. Linux reports the same groups.
//!
//! Pure, as [`super::igmp`]: the caller starts it, hands it the queries it
//! receives, and sends the reports [`Listener::due`] gives; time comes in as
//! arguments and randomness from the caller's generator.
//!
//! What it sends: when a port's IPv6 starts, a state-change report joining
//! every group (record CHANGE_TO_EXCLUDE with no sources), [`ROBUSTNESS`]
//! times, the repeats up to [`UNSOLICITED_REPORT_INTERVAL`] apart; to a
//! general query, or a query for one of its groups, a current-state report
//! (MODE_IS_EXCLUDE) at a random time within the query's maximum response
//! delay; at shutdown a report leaving every group (CHANGE_TO_INCLUDE).
//! Reports are version 2 even to an MLDv1 querier (left alone: such a
//! router ignores them).

use std::net::Ipv6Addr;
use std::time::Duration;

use crate::interface::Interface;
use crate::time::Time;
use crate::wire::ipv6::{solicited_node, ALL_ROUTERS};
use crate::wire::mld::{record_type, QueryRepr, Record};

/// Robustness Variable: each state change is sent this many times (RFC 9777
/// §9.1).
pub const ROBUSTNESS: u8 = 2;
/// Longest gap between the repeats of a state change (RFC 9777 §9.11: 1 s).
pub const UNSOLICITED_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// One port's groups and what is due on it.
#[derive(Debug, Clone)]
struct Port {
    groups: Vec<Ipv6Addr>,
    /// State-change reports still to send, and when the next is due.
    changes_left: u8,
    next_change: Time,
    /// When the answer to a query is due.
    answer_at: Option<Time>,
}

/// The listener on every IPv6 port.
#[derive(Debug, Clone, Default)]
pub struct Listener {
    ports: Vec<Option<Port>>,
}

impl Listener {
    /// Joins the groups of each port with IPv6 on (by port index); the first
    /// reports are due at `now`.
    pub fn new(interfaces: &[Interface], now: Time) -> Self {
        let ports = interfaces
            .iter()
            .map(|i| {
                let global = i.address6?.addr();
                let mut groups = vec![
                    ALL_ROUTERS,
                    solicited_node(i.link_local()),
                    solicited_node(global),
                ];
                groups.extend(i.subnet_router_anycast().map(solicited_node));
                groups.sort_unstable();
                groups.dedup();
                Some(Port {
                    groups,
                    changes_left: ROBUSTNESS,
                    next_change: now,
                    answer_at: None,
                })
            })
            .collect();
        Self { ports }
    }

    /// The groups port `port` listens to.
    pub fn groups(&self, port: usize) -> &[Ipv6Addr] {
        self.ports
            .get(port)
            .and_then(Option::as_ref)
            .map_or(&[], |p| &p.groups)
    }

    /// When a report is next due on any port.
    pub fn next_deadline(&self) -> Option<Time> {
        self.ports
            .iter()
            .flatten()
            .flat_map(|p| {
                let change = (p.changes_left > 0).then_some(p.next_change);
                [change, p.answer_at]
            })
            .flatten()
            .min()
    }

    /// The reports due at `now`, by port.
    pub fn due(&mut self, now: Time, rng: &mut fastrand::Rng) -> Vec<(usize, Vec<Record>)> {
        let mut out = Vec::new();
        for (i, p) in self.ports.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            if p.changes_left > 0 && p.next_change <= now {
                p.changes_left -= 1;
                let gap = rng.u64(0..=UNSOLICITED_REPORT_INTERVAL.as_millis() as u64);
                p.next_change = now + Duration::from_millis(gap);
                out.push((i, records(&p.groups, record_type::CHANGE_TO_EXCLUDE)));
            }
            if p.answer_at.is_some_and(|at| at <= now) {
                p.answer_at = None;
                out.push((i, records(&p.groups, record_type::MODE_IS_EXCLUDE)));
            }
        }
        out
    }

    /// A query arrived on `port`: a general one, or one for a group it
    /// listens to, is answered within its maximum response delay (an
    /// answer already due sooner stands). Returns when the answer is due.
    pub fn on_query(
        &mut self,
        port: usize,
        q: &QueryRepr,
        now: Time,
        rng: &mut fastrand::Rng,
    ) -> Option<Time> {
        let p = self.ports.get_mut(port)?.as_mut()?;
        if !q.group.is_unspecified() && !p.groups.contains(&q.group) {
            return None;
        }
        let delay = Duration::from_millis(rng.u64(0..=u64::from(q.max_response_ms)));
        let at = now + delay;
        p.answer_at = Some(p.answer_at.map_or(at, |a| a.min(at)));
        p.answer_at
    }

    /// Leaves every group of every port (at shutdown): the reports to send.
    pub fn leave(&mut self) -> Vec<(usize, Vec<Record>)> {
        let out = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref()
                    .map(|p| (i, records(&p.groups, record_type::CHANGE_TO_INCLUDE)))
            })
            .collect();
        self.ports.clear();
        out
    }

    /// Stops listening on `port` (its IPv6 went off); nothing is sent.
    pub fn stop(&mut self, port: usize) {
        if let Some(p) = self.ports.get_mut(port) {
            *p = None;
        }
    }
}

fn records(groups: &[Ipv6Addr], kind: u8) -> Vec<Record> {
    groups.iter().map(|&group| Record { kind, group }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(address6: Option<&str>) -> Interface {
        Interface::for_test(None, address6)
    }

    fn query(group: &str, max_ms: u32) -> QueryRepr {
        QueryRepr {
            group: group.parse().unwrap(),
            max_response_ms: max_ms,
            v1: false,
            sources: 0,
        }
    }

    #[test]
    fn joins_twice_at_start_then_answers_queries() {
        let ifaces = [iface(Some("fd00:1::1/64")), iface(None)];
        let mut l = Listener::new(&ifaces, Time::ZERO);
        let mut rng = fastrand::Rng::with_seed(3);
        assert_eq!(
            l.groups(0),
            &[
                "ff02::2".parse::<Ipv6Addr>().unwrap(),
                "ff02::1:ff00:0".parse().unwrap(),
                "ff02::1:ff00:1".parse().unwrap(),
            ],
            "fe80::ff:fe00:1 and fd00:1::1 share a solicited-node group; fd00:1:: has its own"
        );
        assert!(l.groups(1).is_empty());
        let mut sent = Vec::new();
        while let Some(at) = l.next_deadline() {
            assert!(at <= Time::ZERO + UNSOLICITED_REPORT_INTERVAL);
            sent.extend(l.due(at, &mut rng));
        }
        assert_eq!(sent.len(), usize::from(ROBUSTNESS));
        assert!(sent
            .iter()
            .all(|(p, r)| *p == 0 && r.iter().all(|r| r.kind == record_type::CHANGE_TO_EXCLUDE)));
        // A general query: answered within its delay, once.
        let now = Time::from_secs(10);
        let at = l.on_query(0, &query("::", 2000), now, &mut rng).unwrap();
        assert!(at <= now + Duration::from_secs(2));
        assert!(l.due(now, &mut rng).is_empty() || at == now);
        let answers = l.due(at, &mut rng);
        assert_eq!(answers.len(), 1);
        assert!(answers[0]
            .1
            .iter()
            .all(|r| r.kind == record_type::MODE_IS_EXCLUDE));
        assert_eq!(l.next_deadline(), None);
        // A query for another group, or on a port without IPv6: nothing.
        assert_eq!(
            l.on_query(0, &query("ff02::1:ff00:9", 1000), now, &mut rng),
            None
        );
        assert_eq!(l.on_query(1, &query("::", 1000), now, &mut rng), None);
        // Shutdown leaves every group.
        let left = l.leave();
        assert_eq!(left.len(), 1);
        assert!(left[0]
            .1
            .iter()
            .all(|r| r.kind == record_type::CHANGE_TO_INCLUDE));
    }
}
