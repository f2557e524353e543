//! A hub and three spokes, one appliance each on `net_af_packet`, every spoke's tunnel to the
//! hub over two shared WAN segments (`[[tunnel.peers]]`, [`testbed::hub_bed`]), with plain
//! Linux hosts behind them: every host reaches every other, spoke to spoke through the hub;
//! TCP runs between two spokes; a spoke's host sending from outside its site's prefixes is
//! dropped at the hub and counted against that spoke; every peer keeps both paths; nothing
//! is leaked.
//!
//! Then peers changed on a running hub: a spoke it did not list is added by `appliancectl
//! peer add` and comes up, one it listed is removed by a reload of its config and is cut
//! off, while a sequenced stream between the hub and a spoke left alone loses nothing and
//! stays in order.
//!
//! And a spoke behind a NAT of its own (nftables masquerade, as a branch on DSL or LTE): the
//! hub's paths to it learn its public addresses, and when the NAT's address on one segment
//! changes during a TCP transfer from the hub's host to the spoke's, the hub follows it and
//! the transfer carries on; the spoke still reaches another spoke through the hub.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::Value;
use testbed::hub_bed::{bed, bed_behind_nat, bed_with_hub_peers, site_name, HubBed};
use testbed::netns::skip_unless_root;
use testbed::probe::sleep_until;
use testbed::scenario::probe_stream::{self, ProbeStream};
use testbed::scenario::systems::appliance_tunnel::link_name;

const SPOKES: usize = 3;
const LINKS: usize = 2;
/// Echo requests per ordered pair of hosts.
const PINGS: usize = 3;
/// The drop reason of a decapsulated packet whose inner source is outside the prefixes of
/// the peer that sent it.
const INNER_SOURCE: &str = "tunnel_inner_source";
/// The source spoke 3's host forges: in no site's prefixes.
const FORGED_SOURCE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// Echo requests sent from it.
const FORGED_PINGS: u64 = 5;

/// Waits until every site shows every path of each of its peers usable.
fn every_path_becomes_usable(bed: &HubBed) -> Result<()> {
    bed.wait_peers(
        Duration::from_secs(5),
        "every path usable",
        every_path_usable,
    )
}

/// A `show peers` entry with every one of its paths usable.
fn every_path_usable(p: &Value) -> bool {
    p["paths"].as_u64() == Some(LINKS as u64) && p["paths_usable"] == p["paths"]
}

/// The TTL of an echo reply that crossed `appliances` appliances: Linux answers with 64 and
/// each appliance routes it once (the two-site tests see ttl=62 through two). Spoke to
/// spoke is three: the source spoke's, the hub's, the destination spoke's.
fn reply_ttl(appliances: u8) -> u8 {
    64 - appliances
}

/// Polls `read` until it reaches `at_least` or `limit` passes (counters reach the control
/// socket a little after the packets); returns the last value read.
fn counter_reaches(limit: Duration, at_least: u64, read: impl Fn() -> Result<u64>) -> Result<u64> {
    let deadline = Instant::now() + limit;
    loop {
        let n = read()?;
        if n >= at_least || Instant::now() > deadline {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every host pings every other: all answered, each reply with the TTL of its route.
fn every_host_reaches_every_other(bed: &HubBed) -> Result<()> {
    let hosts = &bed.sites.hosts;
    for from in 0..hosts.len() {
        for to in 0..hosts.len() {
            if from == to {
                continue;
            }
            let appliances = if from != 0 && to != 0 { 3 } else { 2 };
            let ttl = format!("ttl={} ", reply_ttl(appliances));
            let (_, out) = ping(bed, from, to)?;
            let replies: Vec<&str> = out.lines().filter(|l| l.contains(" ttl=")).collect();
            ensure!(
                out.contains(" 0% packet loss")
                    && replies.len() == PINGS
                    && replies.iter().all(|l| l.contains(&ttl)),
                "{} to {}: {PINGS} replies, each {}through {appliances} appliances: {out}",
                site_name(from),
                site_name(to),
                ttl
            );
        }
    }
    let n = hosts.len();
    eprintln!(
        "{} ordered pairs of hosts ping one another: spoke to spoke ttl={}, through the hub",
        n * (n - 1),
        reply_ttl(3)
    );
    Ok(())
}

#[test]
fn a_hub_joins_its_spokes_and_holds_each_to_its_own_prefixes() -> Result<()> {
    if skip_unless_root(&["ip", "ping", "iperf3", "ss"]) {
        return Ok(());
    }
    let bed = bed(SPOKES, LINKS)?;
    bed.wait_sessions(Duration::from_secs(20))?;
    // Traffic goes where a path is usable: a path whose peer came up after it went
    // no_replies carries again once its probes are answered.
    every_path_becomes_usable(&bed)?;

    every_host_reaches_every_other(&bed)?;

    let mbps = bed.tcp(1, 2, 5)?;
    eprintln!("TCP spoke 1 to spoke 2 through the hub: {mbps:.1} Mbit/s");
    ensure!(
        mbps > 1.0,
        "TCP from spoke 1 to spoke 2 ran at {mbps:.1} Mbit/s"
    );
    // Nothing so far came from outside its sender's prefixes.
    for k in 0..=SPOKES {
        let n = bed.dropped(k, INNER_SOURCE)?;
        ensure!(
            n == 0,
            "{}: {n} {INNER_SOURCE} drops of legitimate traffic",
            site_name(k)
        );
    }

    // Spoke 3's host sends to the hub's host from a source outside spoke 3's prefixes. Its
    // ARP keeps naming its own address (arp_announce 2): the appliance is not asked about
    // the forged one.
    let spoke3 = &bed.sites.hosts[3];
    spoke3.ns.sysctl("net.ipv4.conf.all.arp_announce", "2")?;
    spoke3.ns.addr_add(&spoke3.iface, FORGED_SOURCE, 32)?;
    let hub_host = bed.sites.hosts[0].addr.to_string();
    let out = spoke3.ns.ping_output(&[
        "-c",
        &FORGED_PINGS.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        &FORGED_SOURCE.to_string(),
        &hub_host,
    ])?;
    ensure!(
        out.contains(" 0 received"),
        "no reply to a forged source: {out}"
    );
    let limit = Duration::from_secs(2);
    let spoke3_drops = counter_reaches(limit, FORGED_PINGS, || {
        Ok(bed.peer(0, "spoke3")?["inner_source_drops"]
            .as_u64()
            .unwrap_or(0))
    })?;
    let hub_drops = counter_reaches(limit, FORGED_PINGS, || bed.dropped(0, INNER_SOURCE))?;
    eprintln!(
        "forged source {FORGED_SOURCE} from spoke 3: {spoke3_drops} inner-source drops against \
         spoke3 at the hub, {INNER_SOURCE} {hub_drops}"
    );
    ensure!(
        spoke3_drops >= FORGED_PINGS,
        "the hub's peer spoke3: {}",
        bed.peer(0, "spoke3")?
    );
    ensure!(
        hub_drops >= FORGED_PINGS,
        "the hub's {INNER_SOURCE} drops: {hub_drops}"
    );
    for k in 1..SPOKES {
        let other = bed.peer(0, &site_name(k))?;
        ensure!(
            other["inner_source_drops"].as_u64() == Some(0),
            "only spoke3 is charged: {other}"
        );
    }

    // Every peer keeps both paths.
    every_path_becomes_usable(&bed)?;
    let peers = bed.peers(0)?;
    for p in &peers {
        eprintln!(
            "  hub peer {}: session {}, handshake {}s ago, paths {}/{}, tx {} rx {} packets, \
             inner-source drops {}",
            p["name"],
            p["session"],
            p["handshake_age_secs"],
            p["paths_usable"],
            p["paths"],
            p["tx_packets"],
            p["rx_packets"],
            p["inner_source_drops"],
        );
    }
    ensure!(
        peers.len() == SPOKES
            && peers
                .iter()
                .all(|p| p["paths_usable"].as_u64() == Some(LINKS as u64)),
        "the hub lists {SPOKES} peers with {LINKS} usable paths each: {}",
        Value::Array(peers)
    );
    // One path per link to each spoke, each naming its peer.
    let paths = bed.show(0, "paths")?;
    for k in 1..=SPOKES {
        let name = site_name(k);
        let to_it = paths.as_array().map_or(0, |a| {
            a.iter().filter(|p| p["peer"] == name.as_str()).count()
        });
        ensure!(
            to_it == LINKS,
            "the hub's show paths has {to_it} paths to {name}: {paths}"
        );
    }
    // One peer in full, and a name that is no peer's refused.
    let spoke1 = bed.request(0, r#"{"cmd":"peer_show","name":"spoke1"}"#)?;
    let d = &spoke1["data"];
    ensure!(
        spoke1["ok"] == true
            && d["peer"]["name"] == "spoke1"
            && d["tunnel"]["peer"] == "spoke1"
            && d["paths"].as_array().is_some_and(|a| a.len() == LINKS)
            && d["classes"].as_array().is_some_and(|a| !a.is_empty()),
        "peer show spoke1 at the hub: {spoke1}"
    );
    let nobody = bed.request(0, r#"{"cmd":"peer_show","name":"spoke9"}"#)?;
    ensure!(
        nobody["ok"] == false
            && nobody["error"]
                .as_str()
                .is_some_and(|e| e.contains("spoke1")),
        "peer show of no peer: {nobody}"
    );

    let finals = bed.stop()?;
    for (k, f) in finals.iter().enumerate() {
        let drops = &f["drops"][INNER_SOURCE];
        eprintln!("  {} at exit: {INNER_SOURCE} {drops}", site_name(k));
        if k > 0 {
            ensure!(
                drops.as_u64() == Some(0),
                "{}: {INNER_SOURCE} {drops}",
                site_name(k)
            );
        }
    }
    Ok(())
}

/// The stream past the peer changes: a probe every 5 ms each way between spoke 1's host and
/// the hub's, for 10 s (2000 a way).
const EVERY: Duration = Duration::from_millis(5);
const STREAM: Duration = Duration::from_secs(10);
/// When, after the stream's start, the hub's config gains spoke 3, and when it loses spoke
/// 2: each change with the stream running well before and after it.
const ADD_AT: Duration = Duration::from_secs(2);
const REMOVE_AT: Duration = Duration::from_secs(5);
/// The stream still to run after spoke 2's removal, at least, for the stream to say
/// something of it.
const AFTER_REMOVAL: Duration = Duration::from_secs(2);
/// How long spoke 3 may take to have a session once the hub lists it (its handshakes are
/// retried every second).
const ADD_LIMIT: Duration = Duration::from_secs(10);

/// [`PINGS`] echo requests from site `from`'s host to site `to`'s: how many were answered,
/// and ping's output.
fn ping(bed: &HubBed, from: usize, to: usize) -> Result<(usize, String)> {
    let dst = bed.sites.hosts[to].addr.to_string();
    let out = bed.sites.hosts[from].ns.ping_output(&[
        "-c",
        &PINGS.to_string(),
        "-i",
        "0.2",
        "-W",
        "2",
        &dst,
    ])?;
    let replies = out.lines().filter(|l| l.contains(" ttl=")).count();
    Ok((replies, out))
}

/// Site `from`'s host gets no reply from site `to`'s: `why` says why it should not.
fn cannot_ping(bed: &HubBed, from: usize, to: usize, why: &str) -> Result<()> {
    let (replies, out) = ping(bed, from, to)?;
    ensure!(
        replies == 0 && out.contains(" 0 received"),
        "{}'s host reaches {}'s host, though {why}: {out}",
        site_name(from),
        site_name(to)
    );
    Ok(())
}

/// The names the hub's `show peers` lists, sorted (its order is the appliance's).
fn hub_peer_names(bed: &HubBed) -> Result<Vec<String>> {
    let mut names: Vec<String> = bed
        .peers(0)?
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// A reload's `changes` include `wanted`, and none names spoke 1, whose peer carries the
/// stream and is not to be touched.
fn changes_include(changes: &[String], wanted: &str) -> Result<()> {
    ensure!(
        changes.iter().any(|c| c.contains(wanted)),
        "the hub's reload: no \"{wanted}\" among its changes {changes:?}"
    );
    ensure!(
        !changes.iter().any(|c| c.contains(&site_name(1))),
        "the hub's reload changed spoke1, which it was to leave alone: {changes:?}"
    );
    Ok(())
}

/// At [`ADD_AT`] after `t0`: `appliancectl peer add` gives the hub spoke 3 (after refusing,
/// whole, a change that adds spoke 1 again beside it); spoke 3 comes up and its host reaches
/// the hub's. Returns how long after the reply the hub had a session with it.
fn add_spoke3(bed: &mut HubBed, t0: Instant) -> Result<Duration> {
    sleep_until(t0 + ADD_AT);
    // A change that names a peer twice, or one there already, is refused whole.
    let refused = bed.peer_change("add", &[3, 1], &[1, 2]);
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("exists (peer set changes it)")),
        "adding spoke1 again (with spoke3): {refused:?}"
    );
    let added = bed.peer_change("add", &[3], &[1, 2, 3])?;
    ensure!(
        added.contains("peer spoke3 added"),
        "appliancectl peer add spoke3: {added}"
    );
    // The file says the same from now on: the reload below removes spoke2 only.
    bed.rewrite_hub_config(&[1, 2, 3])?;
    let up = bed.wait_peer_session(0, &site_name(3), ADD_LIMIT)?;
    // The hub lists exactly spokes 1 to 3, and each has its session with the hub. Spoke 3's
    // own paths went no_replies while the hub ignored it: they carry again once its probes
    // are answered, and what it sends before has no path (tunnel_no_path).
    bed.wait_sessions(Duration::from_secs(5))?;
    every_path_becomes_usable(bed)?;
    let (replies, out) = ping(bed, 3, 0)?;
    ensure!(
        replies == PINGS && out.contains(" 0% packet loss"),
        "spoke3's host to the hub's once the hub lists spoke3: {PINGS} replies: {out}"
    );
    Ok(up)
}

/// At [`REMOVE_AT`] after `t0` (or as soon as spoke 3 is up, if later, with the stream still
/// running): the hub's config loses spoke 2 and is reloaded; the hub lists spokes 1 and 3
/// only, and spoke 2's host is cut off from the hub's.
fn remove_spoke2(bed: &mut HubBed, t0: Instant) -> Result<()> {
    sleep_until(t0 + REMOVE_AT);
    ensure!(
        t0.elapsed() + AFTER_REMOVAL <= STREAM,
        "spoke 3 took until {:?} into the {STREAM:?} stream to come up: too late for the \
         stream to see spoke 2 removed",
        t0.elapsed()
    );
    bed.rewrite_hub_config(&[1, 3])?;
    let changes = bed.reload(0)?;
    changes_include(&changes, "peer spoke2 removed")?;
    let names = hub_peer_names(bed)?;
    ensure!(
        names == [site_name(1), site_name(3)],
        "the hub lists {names:?} once spoke2 is removed: {}",
        Value::Array(bed.peers(0)?)
    );
    cannot_ping(bed, 2, 0, "the hub no longer lists spoke2")?;
    Ok(())
}

/// A stream's figures, printed; an error unless every probe arrived, once and in order.
fn whole_and_in_order(what: &str, s: &ProbeStream) -> Result<()> {
    let seqs: Vec<u64> = s.arrivals.iter().map(|(seq, _)| *seq).collect();
    let reordered = seqs.windows(2).filter(|w| w[1] < w[0]).count();
    let lost = s.sent.saturating_sub(s.received);
    let silence_ms = s
        .arrivals
        .windows(2)
        .map(|w| (w[1].1 - w[0].1) * 1e3)
        .fold(0.0, f64::max);
    eprintln!(
        "stream {what}: {} sent, {} received, {lost} lost, {reordered} out of order, longest \
         silence {silence_ms:.1} ms",
        s.sent, s.received
    );
    ensure!(lost == 0, "{what}: {lost} of {} probes lost", s.sent);
    ensure!(
        reordered == 0,
        "{what}: {reordered} probes arrived out of order"
    );
    ensure!(
        seqs.len() as u64 == s.sent,
        "{what}: {} arrivals for {} probes (duplicates)",
        seqs.len(),
        s.sent
    );
    Ok(())
}

#[test]
fn peers_are_added_and_removed_while_the_others_carry_traffic() -> Result<()> {
    if skip_unless_root(&["ip", "ping"]) {
        return Ok(());
    }
    // The hub lists spokes 1 and 2; spoke 3 lists the hub all the same, and its handshakes
    // go unanswered.
    let mut bed = bed_with_hub_peers(SPOKES, LINKS, &[1, 2])?;
    bed.wait_sessions(Duration::from_secs(20))?;
    // Traffic goes where a path is usable: a path whose peer came up after it went
    // no_replies carries again once its probes are answered.
    every_path_becomes_usable(&bed)?;
    let spoke3 = bed.peer(3, "hub")?;
    ensure!(
        spoke3["session"] != true,
        "spoke3 has a session with a hub that does not list it: {spoke3}"
    );
    cannot_ping(&bed, 3, 0, "the hub does not list spoke3")?;

    let t0 = Instant::now();
    let hosts = &bed.sites.hosts;
    let to_hub = probe_stream::start_between(&hosts[1], &hosts[0], EVERY, STREAM, t0)?;
    let from_hub = probe_stream::start_between(&hosts[0], &hosts[1], EVERY, STREAM, t0)?;
    // The streams are waited for even when a change fails (its error is the one reported).
    let changed = add_spoke3(&mut bed, t0).and_then(|up| {
        remove_spoke2(&mut bed, t0)?;
        Ok(up)
    });
    let (to_hub, from_hub) = (to_hub.finish(), from_hub.finish());
    let spoke3_up = changed?;
    eprintln!(
        "spoke3 added by peer add: a session with the hub {} ms after the reply, its host \
         reaching the hub's; spoke2 removed: cut off",
        spoke3_up.as_millis()
    );
    whole_and_in_order("spoke1 to hub", &to_hub?)?;
    whole_and_in_order("hub to spoke1", &from_hub?)?;

    bed.stop()?;
    Ok(())
}

/// The spokes of the NAT test, and the one behind the NAT (the last).
const NAT_SPOKES: usize = 2;
const NATTED: usize = NAT_SPOKES;
/// Where the NAT's public address on segment 0 moves: an address no site has there.
const RENUMBERED: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 99);
/// The TCP transfer across the renumbering, and when into it the NAT is renumbered: with
/// seconds of transfer on either side.
const TRANSFER_SECS: u64 = 8;
const RENUMBER_AT: Duration = Duration::from_secs(3);
/// How long the hub may take to follow the NAT: the spoke probes every path every 10 ms, and
/// its next probe through the NAT shows the new address.
const FOLLOW_LIMIT: Duration = Duration::from_secs(3);

/// The hub's path on segment `j` to the spoke behind the NAT, and whether it has learned
/// `public` (the NAT's outside address there) and is usable.
fn hub_path_to_natted(bed: &HubBed, j: usize, public: Ipv4Addr) -> Result<(Value, bool)> {
    let p = bed.path(0, &site_name(NATTED), &link_name(j))?;
    let want = format!("learned {public}:");
    let learned = p["remote"].as_str().is_some_and(|r| r.starts_with(&want)) && p["usable"] == true;
    Ok((p, learned))
}

/// The hub's paths to the spoke behind the NAT: each has learned the NAT's outside address
/// on its segment, `public(j)`, and is usable; what they show, for the log.
fn hub_learned(bed: &HubBed, public: impl Fn(usize) -> Ipv4Addr) -> Result<String> {
    let mut shown = Vec::new();
    for j in 0..LINKS {
        let (p, learned) = hub_path_to_natted(bed, j, public(j))?;
        ensure!(
            learned && p["state"] == "up",
            "the hub's path {} to {} has not learned {}: {p}",
            link_name(j),
            site_name(NATTED),
            public(j)
        );
        shown.push(format!(
            "{} {} ({} moves)",
            link_name(j),
            p["remote"].as_str().unwrap_or_default(),
            p["endpoint_moves"]
        ));
    }
    Ok(shown.join(", "))
}

/// Renumbers the NAT's segment 0 from `from` to [`RENUMBERED`] and waits until the hub's path
/// there has learned the new address: how long that took.
fn renumber_and_follow(bed: &HubBed, from: Ipv4Addr) -> Result<Duration> {
    bed.sites.renumber_nat(0, from, RENUMBERED)?;
    let moved = Instant::now();
    loop {
        let (p, learned) = hub_path_to_natted(bed, 0, RENUMBERED)?;
        if learned {
            return Ok(moved.elapsed());
        }
        ensure!(
            moved.elapsed() < FOLLOW_LIMIT,
            "the hub did not follow the NAT to {RENUMBERED} within {FOLLOW_LIMIT:?}: {p}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_spoke_behind_nat_is_followed_when_its_address_changes() -> Result<()> {
    if skip_unless_root(&["ip", "ping", "iperf3", "nft"]) {
        return Ok(());
    }
    let bed = bed_behind_nat(NAT_SPOKES, LINKS, NATTED)?;
    bed.wait_sessions(Duration::from_secs(20))?;
    every_path_becomes_usable(&bed)?;
    // The hub learned the spoke's public endpoints: its NAT's outside addresses.
    let public = |j: usize| bed.sites.links[j].addrs[NATTED];
    let before = hub_learned(&bed, public)?;
    eprintln!("the hub learned {}: {before}", site_name(NATTED));

    // The bulk goes to the learned endpoints: what left for the old address is lost, and TCP
    // is to recover it.
    let (mbps, followed) = std::thread::scope(|scope| -> Result<(f64, Duration)> {
        let tcp = scope.spawn(|| bed.tcp(0, NATTED, TRANSFER_SECS));
        std::thread::sleep(RENUMBER_AT);
        let followed = renumber_and_follow(&bed, public(0))?;
        let mbps = tcp
            .join()
            .map_err(|_| anyhow::anyhow!("iperf3 panicked"))??;
        Ok((mbps, followed))
    })?;
    eprintln!(
        "the hub follows the NAT to {RENUMBERED} within {} ms; TCP hub to {} across the \
         renumbering: {mbps:.1} Mbit/s",
        followed.as_millis(),
        site_name(NATTED)
    );
    ensure!(
        mbps > 1.0,
        "TCP from the hub to {} ran at {mbps:.1} Mbit/s across the renumbering",
        site_name(NATTED)
    );
    let renumbered = |j: usize| if j == 0 { RENUMBERED } else { public(j) };
    let after = hub_learned(&bed, renumbered)?;
    eprintln!("after the renumbering, the hub has {after}");
    let (a, _) = hub_path_to_natted(&bed, 0, RENUMBERED)?;
    ensure!(
        a["endpoint_moves"].as_u64() >= Some(1),
        "the move is counted: {a}"
    );

    // Spoke to spoke through the hub, from behind the NAT.
    let (replies, out) = ping(&bed, NATTED, 1)?;
    let ttl = format!("ttl={} ", reply_ttl(3));
    ensure!(
        replies == PINGS && out.lines().filter(|l| l.contains(&ttl)).count() == PINGS,
        "{}'s host to {}'s: {PINGS} replies, each {ttl}through 3 appliances: {out}",
        site_name(NATTED),
        site_name(1)
    );
    eprintln!(
        "{}'s host reaches {}'s through the hub: {ttl}",
        site_name(NATTED),
        site_name(1)
    );

    bed.stop()?;
    Ok(())
}
