//! IPv6 routed through the appliance (VM profile, `net_af_packet` on veths)
//! between two Linux hosts at their default IPv6 settings: host A configured
//! by the appliance's router advertisements alone (SLAAC and its default
//! route, withdrawn when the appliance stops), Neighbor Discovery both ways, ping6 to the appliance's global and link-local
//! addresses and through it, the ICMPv6 errors a router owes (time exceeded,
//! no route, address unreachable, packet too big toward a link with a
//! smaller MTU), iperf3 -6 TCP with the hosts' default offloads (TSO over
//! IPv6) across that link, the tables on the control socket, and no mbuf
//! left behind.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use testbed::bins::workspace_root;
use testbed::control::{request as ctl, start_appliance, wait_for};
use testbed::netns::{skip_unless_root, veth, Netns, NsProcess, RunId};

const CONFIG: &str = r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
address6 = "fd00:10:1::1/64"
[interfaces.ra]

[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
address6 = "fd00:10:2::1/64"

[[routes]]
prefix = "fd00:20::/48"
via = "fd00:10:2::2"

[control]
socket = "SOCKET"
metrics = ""
"#;

/// A host on `dev` with IPv6 at Linux's defaults (SLAAC, DAD, router
/// solicitations, MLD all on), `addr` and a default route through `gateway`;
/// waits until Duplicate Address Detection has finished.
fn ipv6_host(ns: &Netns, dev: &str, addr: &str, gateway: &str) {
    ns.ip(&["-6", "addr", "add", addr, "dev", dev])
        .expect("ipv6 address");
    ns.ip(&["-6", "route", "add", "default", "via", gateway, "dev", dev])
        .expect("ipv6 default route");
    wait_for(
        "the host's addresses to finish DAD",
        Duration::from_secs(10),
        || {
            ns.ip(&["-6", "addr", "show", "dev", dev, "tentative"])
                .is_ok_and(|o| o.trim().is_empty())
        },
    );
}

/// Host A — appliance — host B: three namespaces, the WAN link's MTU `wan_mtu`, the
/// appliance's own namespace with its kernel's IPv6 off (it stands for NICs the kernel
/// no longer drives: that kernel must not answer for the link-local addresses the
/// appliance derives from the same MACs).
fn namespaces(run: &RunId, wan_mtu: u32) -> (Netns, Netns, Netns) {
    let host_a = Netns::create(&run.ns_name("a")).expect("netns a");
    let host_b = Netns::create(&run.ns_name("b")).expect("netns b");
    let app = Netns::create(&run.ns_name("app")).expect("netns app");
    app.disable_ipv6().expect("app: kernel IPv6 off");
    veth(&host_a, "eth0", &app, "apl-lan", 1500).expect("veth lan");
    veth(&host_b, "eth0", &app, "apl-wan", wan_mtu).expect("veth wan");
    for ns in [&host_a, &host_b, &app] {
        ns.link_up("lo", 65536).expect("lo up");
    }
    (host_a, host_b, app)
}

/// Starts the appliance in `app` with the VM profile and [`CONFIG`]: its run
/// directory, control socket and process.
fn start(run: &RunId, app: &Netns) -> (std::path::PathBuf, std::path::PathBuf, NsProcess) {
    let dir = std::env::temp_dir().join(format!("appliance-{}", run.base()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let socket = dir.join("ctl.sock");
    let profile = std::fs::read_to_string(workspace_root().join("hw-profiles/vm-af-packet.toml"))
        .expect("profile");
    std::fs::write(dir.join("profile.toml"), profile).expect("write profile");
    let config = CONFIG.replace("SOCKET", &socket.display().to_string());
    std::fs::write(dir.join("config.toml"), config).expect("write config");
    let appliance = start_appliance(app, &dir, &socket);
    (dir, socket, appliance)
}

/// A drop counter summed over the workers (`show stats`).
fn dropped(socket: &std::path::Path, reason: &str) -> u64 {
    let s = ctl(socket, r#"{"cmd":"show","what":"stats"}"#);
    s["data"]["drops"][reason].as_u64().unwrap_or(0)
}

#[test]
fn ipv6_hosts_ping_route_and_iperf_through_the_appliance() {
    if skip_unless_root(&["ip", "ping", "iperf3"]) {
        return;
    }
    let run = RunId::new();
    // The WAN side's link carries less than the LAN's: what A sends at its MTU must be
    // answered with packet too big, and Linux's path MTU discovery take it from there.
    let (host_a, host_b, app) = namespaces(&run, 1400);
    let (dir, socket, appliance) = start(&run, &app);

    // Host A is configured by nothing but the appliance's router advertisements
    // (Linux's defaults accept them); host B by hand.
    let mac = app.mac("apl-lan").expect("lan MAC");
    let link_local = appliance::interface::link_local_of(mac.parse().expect("MAC"));
    let host_a_addr = host_a
        .slaac_address("eth0", "fd00:10:1:")
        .expect("host A configured by the router advertisement");
    let default = host_a
        .ip(&["-6", "route", "show", "default"])
        .expect("routes");
    assert!(
        default.contains(&link_local.to_string()),
        "the default route is the appliance's link-local address: {default}"
    );
    ipv6_host(&host_b, "eth0", "fd00:10:2::2/64", "fd00:10:2::1");

    // The appliance answers Neighbor Solicitations and echo for its addresses, global and
    // link-local (its interface identifier from the MAC, as Linux derives it).
    host_a
        .exec(&[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "fd00:10:1::1",
        ])
        .expect("host A pings the appliance's global address");
    // A large echo (above the errors' 1280) is answered whole.
    host_a
        .exec(&[
            "ping",
            "-6",
            "-c",
            "1",
            "-s",
            "1400",
            "-W",
            "2",
            "fd00:10:1::1",
        ])
        .expect("a 1448-byte echo is answered");
    host_a
        .exec(&[
            "ping",
            "-6",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            &format!("{link_local}%eth0"),
        ])
        .expect("host A pings the appliance's link-local address");

    // Host A reaches host B routed through it (the appliance solicits B).
    let out = host_a
        .exec(&[
            "ping",
            "-6",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            "fd00:10:2::2",
        ])
        .expect("host A pings host B");
    assert!(
        out.contains("ttl=63"),
        "one routed hop takes one off the hop limit: {out}"
    );
    // The errors a router owes, each from the appliance's address on A's link.
    let expired = host_a
        .ping_output(&["-6", "-c", "1", "-t", "1", "-W", "2", "fd00:10:2::2"])
        .expect("ping");
    assert!(
        expired.contains("fd00:10:1::1") && expired.contains("Time exceeded"),
        "hop limit 1: time exceeded from the appliance: {expired}"
    );
    let no_route = host_a
        .ping_output(&["-6", "-c", "1", "-W", "2", "fd00:99::1"])
        .expect("ping");
    assert!(
        no_route.contains("fd00:10:1::1") && no_route.contains("No route"),
        "no route: destination unreachable from the appliance: {no_route}"
    );
    let too_big = host_a
        .ping_output(&[
            "-6",
            "-c",
            "1",
            "-s",
            "1400",
            "-M",
            "do",
            "-W",
            "2",
            "fd00:10:2::2",
        ])
        .expect("ping");
    assert!(
        too_big.contains("fd00:10:1::1") && too_big.contains("mtu=1400"),
        "above the WAN link's MTU: packet too big from the appliance: {too_big}"
    );
    assert!(dropped(&socket, "mtu_exceeded") >= 1);
    // Nobody at fd00:10:2::99: after the solicitations go unanswered the held packet is
    // answered with address unreachable.
    let unresolved = host_a
        .ping_output(&["-6", "-c", "1", "-W", "6", "fd00:10:2::99"])
        .expect("ping");
    assert!(
        unresolved.contains("Address unreachable"),
        "an unresolved neighbour: address unreachable: {unresolved}"
    );
    assert!(dropped(&socket, "neighbor_unresolved") >= 1);

    // iperf3 -6 TCP through it, the hosts' offloads as Linux leaves them: TSO over IPv6.
    let server = NsProcess::spawn({
        let mut c = host_b.command("iperf3");
        c.args(["-s", "-1", "-B", "fd00:10:2::2", "-p", "5299"]);
        c
    })
    .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let client = host_a
        .exec(&[
            "iperf3",
            "-6",
            "-c",
            "fd00:10:2::2",
            "-p",
            "5299",
            "-t",
            "3",
            "-J",
        ])
        .expect("iperf3 client");
    let _ = server.wait_timeout(Duration::from_secs(10));
    let v: Value = serde_json::from_str(&client).expect("iperf3 JSON");
    let received = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!("iperf3 -6 through the appliance: {:.1} Mbit/s", bps / 1e6);
    assert!(
        received > 1_000_000,
        "TCP over IPv6 moved data through the appliance: {received} bytes"
    );
    let ports = ctl(&socket, r#"{"cmd":"show","what":"ports"}"#);
    let lan = ports["data"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "lan"))
        .map(|p| p["offload"].clone())
        .unwrap_or_default();
    assert!(
        lan["gso_segments"].as_u64() > lan["gso_frames"].as_u64()
            && lan["drop_gso_unsupported"] == 0
            && lan["drop_bad_offload"] == 0,
        "host A's TSO6 super-frames were cut, none refused: {lan}"
    );

    // The tables on the control socket.
    let neighbors = ctl(&socket, r#"{"cmd":"show","what":"neighbors"}"#);
    let list = neighbors["data"]["neighbors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for host in [host_a_addr.as_str(), "fd00:10:2::2"] {
        assert!(
            list.iter().any(|n| n["address"] == host),
            "{host} learned: {neighbors}"
        );
    }
    let routes = ctl(&socket, r#"{"cmd":"show","what":"routes"}"#);
    let list = routes["data"]["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        list.iter()
            .any(|r| r["prefix"] == "fd00:20::/48" && r["via"] == "fd00:10:2::2"),
        "{routes}"
    );
    let added = ctl(
        &socket,
        r#"{"cmd":"route_add","prefix":"fd00:30::/48","via":"fd00:10:2::2"}"#,
    );
    assert_eq!(added["ok"], true, "{added}");
    let refused = ctl(
        &socket,
        r#"{"cmd":"route_add","prefix":"fd00:31::/48","via":"10.10.2.2"}"#,
    );
    assert_eq!(
        refused["ok"], false,
        "a next hop of the other family: {refused}"
    );

    appliance.signal(Signal::SIGINT).expect("SIGINT");
    let out = appliance
        .wait_timeout(Duration::from_secs(20))
        .expect("appliance exits on SIGINT");
    assert!(out.status.success(), "clean exit: {}", out.stderr);
    let stats: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("final.json")).expect("final stats"),
    )
    .expect("json");
    assert_eq!(
        stats["mempool_in_use_at_exit"], stats["mempool"]["baseline_in_use"],
        "no mbuf leaked: {stats}"
    );
    let slow = &stats["slowpath"];
    assert!(
        slow["nd_adverts_sent"].as_u64() > Some(0) && slow["nd_solicits_sent"].as_u64() > Some(0),
        "{slow}"
    );
    // The last advertisement said the appliance is no longer a router: host A dropped
    // its default route at once rather than after 30 minutes.
    wait_for(
        "host A's default route gone after the appliance stopped",
        Duration::from_secs(3),
        || {
            host_a
                .ip(&["-6", "route", "show", "default"])
                .is_ok_and(|r| r.trim().is_empty())
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The appliance's address on a link is already someone else's: Duplicate Address
/// Detection finds it at start, IPv6 goes off on that port (logged, counted, its routes
/// gone, nothing answered for the address), and the other port carries on.
#[test]
fn a_duplicate_address_turns_ipv6_off_on_its_port() {
    if skip_unless_root(&["ip", "ping"]) {
        return;
    }
    let run = RunId::new();
    let (host_a, host_b, app) = namespaces(&run, 1500);
    // Host A holds the address the appliance is configured with on lan.
    ipv6_host(&host_a, "eth0", "fd00:10:1::1/64", "fd00:10:1::2");
    ipv6_host(&host_b, "eth0", "fd00:10:2::2/64", "fd00:10:2::1");
    let (dir, socket, appliance) = start(&run, &app);
    let failed = || {
        let s = ctl(&socket, r#"{"cmd":"show","what":"stats"}"#);
        s["data"]["slowpath"]["nd_dad_failed"].as_u64().unwrap_or(0)
    };
    wait_for(
        "DAD to find lan's address taken",
        Duration::from_secs(5),
        || failed() == 1,
    );
    let routes = ctl(&socket, r#"{"cmd":"show","what":"routes"}"#);
    let prefixes: Vec<String> = routes["data"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["prefix"].as_str().map(str::to_string))
        .collect();
    assert!(
        !prefixes.iter().any(|p| p.starts_with("fd00:10:1:"))
            && prefixes.iter().any(|p| p == "fd00:10:2::/64"),
        "lan's IPv6 routes gone, wan's kept: {prefixes:?}"
    );
    let ports = ctl(&socket, r#"{"cmd":"show","what":"ports"}"#);
    let port = |name: &str| {
        ports["data"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        port("lan")["address6"].is_null() && port("lan")["link_local"].is_null(),
        "show ports: IPv6 off on lan: {ports}"
    );
    assert_eq!(port("wan")["address6"], "fd00:10:2::1/64", "{ports}");
    // Host A keeps its address: nobody else answers for it.
    let mut neigh = host_b.command("ping");
    neigh.args(["-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00:10:2::1"]);
    let out = NsProcess::spawn(neigh)
        .and_then(|p| p.wait_timeout(Duration::from_secs(10)))
        .expect("ping");
    assert!(out.status.success(), "wan still answers: {}", out.stdout);
    appliance.signal(Signal::SIGINT).expect("SIGINT");
    let out = appliance
        .wait_timeout(Duration::from_secs(20))
        .expect("appliance exits on SIGINT");
    assert!(out.status.success(), "clean exit: {}", out.stderr);
    assert!(
        out.stderr.contains("fd00:10:1::1 is in use on the link")
            && out.stderr.contains("IPv6 is off on lan"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
