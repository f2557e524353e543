//! The multicast address plan of the relay scenarios, the same for every system.
//!
//! Stream `i` (0-based) arrives as 239.1.1.(i+1):(5000+i) and is republished, for output
//! `k`, as 239.(10+k).1.(i+1):(6000+i): the issue's "239.1.1.x:5000+x → 239.10.1.x:6000+x"
//! for output 0. Every stream has its own port, and the outputs of one stream differ by group
//! only, so a sink tells them apart by the destination address of each datagram.

use std::net::{Ipv4Addr, SocketAddrV4};

/// One input stream and the groups it is republished to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    pub input: SocketAddrV4,
    pub outputs: Vec<SocketAddrV4>,
}

/// The plan for `streams` inputs with `fanout` outputs each (validated: at most 200 streams
/// and 16 outputs, so every octet stays in range).
pub fn plan(streams: u32, fanout: u32) -> Vec<StreamPlan> {
    (0..streams)
        .map(|i| {
            let host = (i + 1) as u8;
            StreamPlan {
                input: SocketAddrV4::new(Ipv4Addr::new(239, 1, 1, host), 5000 + i as u16),
                outputs: (0..fanout)
                    .map(|k| {
                        SocketAddrV4::new(
                            Ipv4Addr::new(239, 10 + k as u8, 1, host),
                            6000 + i as u16,
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Every input, comma-separated (`mcast-gen --dest`).
pub fn inputs(plan: &[StreamPlan]) -> String {
    join(plan.iter().map(|s| s.input))
}

/// Every output, comma-separated (`mcast-sink --group`).
pub fn outputs(plan: &[StreamPlan]) -> String {
    join(plan.iter().flat_map(|s| s.outputs.iter().copied()))
}

fn join(addrs: impl Iterator<Item = SocketAddrV4>) -> String {
    addrs.map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_issue_and_stays_distinct() {
        let p = plan(50, 8);
        assert_eq!(p[0].input.to_string(), "239.1.1.1:5000");
        assert_eq!(p[0].outputs[0].to_string(), "239.10.1.1:6000");
        assert_eq!(p[49].input.to_string(), "239.1.1.50:5049");
        assert_eq!(p[49].outputs[7].to_string(), "239.17.1.50:6049");
        let all: std::collections::HashSet<_> = p.iter().flat_map(|s| s.outputs.iter()).collect();
        assert_eq!(all.len(), 400);
        assert_eq!(outputs(&plan(2, 1)), "239.10.1.1:6000,239.10.1.2:6001");
    }
}
