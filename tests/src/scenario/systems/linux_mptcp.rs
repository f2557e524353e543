//! `linux-mptcp`: WAN-aware MPTCP as in Zhang et al. (research/wamptcp.md) with Linux only.
//! Host A gets one address per WAN link (10.1.<i>.2, link 0 keeps 10.1.0.2) and an MPTCP
//! `subflow` endpoint for each extra one, so every connection opens one subflow per link.
//! Router A routes by source subnet (`from 10.1.<i>.0/24` → link i), router B by
//! destination (`to 10.1.<i>.0/24` → link i), so a subflow's data and ACKs stay on its link.
//! iperf3 runs under `mptcpize run` on both hosts (it has no MPTCP flag). There is no fast
//! recovery: when a link fails its subflow stalls and MPTCP re-injects on the others.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::SitesSetup;
use crate::netns::Netns;
use crate::topology::Sites;

/// First routing table of the per-link tables on router A.
const TABLE_BASE: u32 = 100;

pub fn setup(s: &Sites) -> Result<SitesSetup> {
    let n = s.links.len();
    for (i, l) in s.links.iter().enumerate() {
        let host_net = format!("10.1.{i}.0/24");
        if i > 0 {
            let host_addr = Ipv4Addr::new(10, 1, i as u8, 2);
            s.host_a.ns.addr_add(&s.host_a.iface, host_addr, 24)?;
            s.app_a
                .addr_add(&s.app_a_lan, Ipv4Addr::new(10, 1, i as u8, 1), 24)?;
            s.host_a
                .ns
                .ip(&[
                    "mptcp",
                    "endpoint",
                    "add",
                    &host_addr.to_string(),
                    "dev",
                    &s.host_a.iface,
                    "subflow",
                ])
                .context("MPTCP endpoint")?;
            s.app_b
                .route_add(&host_net, Some(l.a_addr), Some(&l.app_b_iface))?;
        }
        let table = (TABLE_BASE + i as u32).to_string();
        s.app_a.ip(&[
            "route",
            "add",
            "10.2.0.0/24",
            "via",
            &l.b_addr.to_string(),
            "dev",
            &l.app_a_iface,
            "table",
            &table,
        ])?;
        s.app_a.ip(&[
            "rule", "add", "from", &host_net, "lookup", &table, "pref", &table,
        ])?;
    }
    host_limits(s, n)?;
    Ok(SitesSetup {
        wrapper: vec!["mptcpize".into(), "run".into()],
        notes: vec![format!(
            "{n} subflows per connection (one per host A address), source-subnet routing"
        )],
        processes: vec![],
    })
}

/// Lets both hosts open a subflow per link (`n` links) and accept as many addresses.
pub fn host_limits(s: &Sites, n: usize) -> Result<()> {
    let limit = (n + 1).to_string();
    for host in [&s.host_a.ns, &s.host_b.ns] {
        host.ip(&[
            "mptcp",
            "limits",
            "set",
            "subflows",
            &limit,
            "add_addr_accepted",
            &limit,
        ])
        .context("MPTCP limits")?;
    }
    Ok(())
}

/// The host's MPTCP counters (`MPTcpExt` in /proc/net/netstat) that show whether MPTCP was
/// used: connections made, subflows joined, retransmissions.
pub fn counters(host: &Netns) -> Result<Value> {
    let text = host.exec(&["cat", "/proc/net/netstat"])?;
    let mut lines = text.lines().filter(|l| l.starts_with("MPTcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        anyhow::bail!("no MPTcpExt counters in /proc/net/netstat (is MPTCP in the kernel?)");
    };
    let keep = [
        "MPCapableSYNTX",
        "MPCapableSYNACKRX",
        "MPJoinSynTx",
        "MPJoinSynAckRx",
        "MPTCPRetrans",
        "MPFailTx",
        "MPFallbackTokenInit",
    ];
    let mut out = Map::new();
    for (k, v) in names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
    {
        if keep.contains(&k) {
            out.insert(k.into(), Value::from(v.parse::<u64>().unwrap_or(0)));
        }
    }
    Ok(Value::Object(out))
}
