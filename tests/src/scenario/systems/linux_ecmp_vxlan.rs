//! `linux-ecmp-vxlan`: the per-flow "tunnel handoff" baseline. Each site router gets one
//! VXLAN tunnel per WAN link (outer addresses 172.16.<i>.1 ↔ .2, inner 10.200.<i>.1 ↔ .2)
//! and one ECMP route to the other site with a next hop through every tunnel, hashed on the
//! L4 five-tuple, so each flow sticks to one tunnel.
//!
//! The hash is the five-tuple as `fib_multipath_hash_policy=3` with
//! `fib_multipath_hash_fields=0x37` (source and destination address and port, protocol)
//! computes it, with a fixed seed. Policy 1, the usual "L4 hash", is not used because of a
//! test-bed artefact: for a packet that already carries an L4 hash, policy 1 takes that hash,
//! and here the packet comes over a veth from the sending host's socket with the socket's
//! *random* `sk_txhash` on it (which TCP even re-draws after a timeout). On a real router the
//! hash does not cross the wire; policy 3 always dissects the packet, so the router behaves as
//! a real one would: same five-tuple, same tunnel. Nothing watches the tunnels: a VXLAN device keeps its carrier when its WAN link
//! loses its own, so flows hashed onto a failed link stall until it returns (the paper's
//! baseline adds BFD-driven reroute; Linux alone has none). The routers clamp the TCP MSS to
//! the tunnel MTU (1450) on forwarded SYNs, as a tunnel gateway on a 1500-byte WAN does.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::SitesSetup;
use crate::netns::Netns;
use crate::topology::Sites;

/// A fixed multipath hash seed: the same five-tuples take the same tunnels in every run.
const HASH_SEED: &str = "1";

/// VXLAN's default UDP port.
const VXLAN_PORT: &str = "4789";

pub fn setup(s: &Sites) -> Result<SitesSetup> {
    let mut hops_a = Vec::new();
    let mut hops_b = Vec::new();
    for (i, l) in s.links.iter().enumerate() {
        let vx = s.run.ifname(&format!("vx{i}"));
        let vni = (100 + i).to_string();
        let inner_a = Ipv4Addr::new(10, 200, i as u8, 1);
        let inner_b = Ipv4Addr::new(10, 200, i as u8, 2);
        for (ns, dev, local, remote, inner) in [
            (&s.app_a, &l.app_a_iface, l.a_addr, l.b_addr, inner_a),
            (&s.app_b, &l.app_b_iface, l.b_addr, l.a_addr, inner_b),
        ] {
            ns.ip(&[
                "link",
                "add",
                &vx,
                "type",
                "vxlan",
                "id",
                &vni,
                "local",
                &local.to_string(),
                "remote",
                &remote.to_string(),
                "dev",
                dev,
                "dstport",
                VXLAN_PORT,
            ])
            .with_context(|| format!("creating VXLAN {vx} over {dev}"))?;
            ns.addr_add(&vx, inner, 24)?;
            ns.ip(&["link", "set", "dev", &vx, "up"])?;
        }
        hops_a.extend([
            "nexthop".to_string(),
            "via".into(),
            inner_b.to_string(),
            "dev".into(),
            vx.clone(),
        ]);
        hops_b.extend([
            "nexthop".to_string(),
            "via".into(),
            inner_a.to_string(),
            "dev".into(),
            vx,
        ]);
    }
    for (ns, dest, hops) in [
        (&s.app_a, "10.2.0.0/24", &hops_a),
        (&s.app_b, "10.1.0.0/24", &hops_b),
    ] {
        ns.sysctl("net.ipv4.fib_multipath_hash_policy", "3")?;
        ns.sysctl("net.ipv4.fib_multipath_hash_fields", "0x0037")?;
        ns.sysctl("net.ipv4.fib_multipath_hash_seed", HASH_SEED)?;
        let mut args = vec!["route", "replace", dest];
        args.extend(hops.iter().map(String::as_str));
        ns.ip(&args).context("ECMP route")?;
        clamp_mss(ns)?;
    }
    Ok(SitesSetup {
        wrapper: vec![],
        notes: vec![format!(
            "{} VXLAN tunnels (MTU 1450, MSS clamped), equal-weight ECMP on the five-tuple \
             (fib_multipath_hash_policy 3, fields 0x37, seed {HASH_SEED})",
            s.links.len()
        )],
        processes: vec![],
    })
}

/// Rewrites the MSS option of SYNs forwarded by `ns` to fit the route's MTU (nft).
pub fn clamp_mss(ns: &Netns) -> Result<()> {
    ns.exec(&["nft", "add", "table", "inet", "tbmss"])?;
    ns.exec(&[
        "nft",
        "add",
        "chain",
        "inet",
        "tbmss",
        "clamp",
        "{ type filter hook forward priority mangle; policy accept; }",
    ])?;
    ns.exec(&[
        "nft", "add", "rule", "inet", "tbmss", "clamp", "tcp", "flags", "syn", "tcp", "option",
        "maxseg", "size", "set", "rt", "mtu",
    ])
    .context("nft MSS clamp")?;
    Ok(())
}
