//! The standard test topologies, built from [`crate::netns`] primitives.
//!
//! Each constructor makes a fresh [`RunId`], so topologies of concurrent tests never share a
//! name. Every struct owns its [`Netns`] guards: dropping it removes all its namespaces,
//! interfaces and processes. Addresses are fixed per topology (namespaces isolate them).
//!
//! | topology | shape |
//! |---|---|
//! | [`Relay`] | gen hosts — switch — appliance — switch — sink hosts (two LAN segments) |
//! | [`Sites`] | host A — appliance A — N WAN links via the emulator — appliance B — host B |
//! | [`WanPair`] | host A — N links via the emulator — host B (the emulator's own tests) |
//! | [`HubSites`] | a hub site and N spoke sites, each host — appliance, all appliances on M shared WAN segments |
//!
//! [`sites_behind_nat`] and [`hub_and_spokes_behind_nat`] put one site behind a [`Nat`].

use std::net::Ipv4Addr;

use anyhow::{ensure, Context, Result};

use crate::netns::{veth, Netns, RunId};

/// MTU of every veth unless a test changes it.
pub const MTU: u32 = 1500;

/// A host namespace with one configured interface.
#[derive(Debug)]
pub struct Host {
    pub ns: Netns,
    pub iface: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// The next hop for the default route (the appliance or router address on the segment).
    pub gateway: Ipv4Addr,
}

/// Generator hosts and sink hosts on two LAN segments with the appliance between them.
///
/// The appliance namespace only holds the two veth ends the DPDK application attaches to
/// with af_packet: no addresses, no kernel IPv6. Each segment is a bridge (multicast
/// snooping off, so it floods multicast like a plain switch) in the `switch` namespace.
#[derive(Debug)]
pub struct Relay {
    pub run: RunId,
    pub gens: Vec<Host>,
    pub sinks: Vec<Host>,
    pub appliance: Netns,
    pub switch: Netns,
    /// Appliance interface on the generator segment.
    pub app_gen_iface: String,
    /// Appliance interface on the sink segment.
    pub app_sink_iface: String,
    /// Address the appliance should use on the generator segment (hosts' gateway).
    pub app_gen_addr: Ipv4Addr,
    /// Address the appliance should use on the sink segment (hosts' gateway).
    pub app_sink_addr: Ipv4Addr,
    pub prefix_len: u8,
    /// True when the appliance namespace is a Linux host ([`relay_linux`]).
    pub linux_router: bool,
}

/// Generator segment 192.168.1.0/24, sink segment 192.168.2.0/24; the appliance is .1.
pub fn relay(n_gen: usize, n_sink: usize) -> Result<Relay> {
    build_relay(n_gen, n_sink, false)
}

/// The [`relay`] topology with a Linux host in place of the appliance, for baselines: its
/// two interfaces carry the .1 addresses and it forwards IPv4.
pub fn relay_linux(n_gen: usize, n_sink: usize) -> Result<Relay> {
    build_relay(n_gen, n_sink, true)
}

/// Makes the bridges of `ns` behave like a plain switch: this kernel has
/// br_netfilter built in with `bridge-nf-call-iptables = 1`, which would
/// validate bridged IPv4 (dropping a bad header checksum) and defragment it
/// before it reaches the appliance, hiding exactly what tests send on purpose.
fn plain_switch(ns: &Netns) -> Result<()> {
    for key in ["iptables", "ip6tables", "arptables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{key}");
        if std::path::Path::new(&path).exists() {
            ns.sysctl(&format!("net.bridge.bridge-nf-call-{key}"), "0")?;
        }
    }
    Ok(())
}

fn build_relay(n_gen: usize, n_sink: usize, linux: bool) -> Result<Relay> {
    ensure!(
        (1..=50).contains(&n_gen) && (1..=50).contains(&n_sink),
        "1..=50 hosts per segment"
    );
    let run = RunId::new();
    let appliance = Netns::create(&run.ns_name("app"))?;
    appliance.disable_ipv6()?;
    let switch = Netns::create(&run.ns_name("sw"))?;
    switch.disable_ipv6()?;
    plain_switch(&switch)?;
    let app_gen_iface = run.ifname("ag");
    let app_sink_iface = run.ifname("as");
    let mut segments = Vec::new();
    for (seg, (app_if, n, role)) in [(&app_gen_iface, n_gen, "g"), (&app_sink_iface, n_sink, "s")]
        .into_iter()
        .enumerate()
    {
        let br = run.ifname(&format!("br{seg}"));
        switch.ip(&["link", "add", &br, "type", "bridge", "mcast_snooping", "0"])?;
        switch.link_up(&br, MTU)?;
        let port = run.ifname(&format!("p{role}"));
        veth(&appliance, app_if, &switch, &port, MTU)?;
        switch.ip(&["link", "set", "dev", &port, "master", &br])?;
        let subnet = seg as u8 + 1;
        let gateway = Ipv4Addr::new(192, 168, subnet, 1);
        let mut hosts = Vec::new();
        for i in 0..n {
            let ns = Netns::create(&run.ns_name(&format!("{role}{i}")))?;
            let iface = run.ifname(&format!("{role}{i}"));
            let port = run.ifname(&format!("{role}{i}p"));
            veth(&ns, &iface, &switch, &port, MTU)?;
            switch.ip(&["link", "set", "dev", &port, "master", &br])?;
            let addr = Ipv4Addr::new(192, 168, subnet, 10 + i as u8);
            ns.addr_add(&iface, addr, 24)?;
            ns.route_add("default", Some(gateway), None)?;
            hosts.push(Host {
                ns,
                iface,
                addr,
                prefix_len: 24,
                gateway,
            });
        }
        segments.push(hosts);
    }
    let sinks = segments.pop().unwrap_or_default();
    let gens = segments.pop().unwrap_or_default();
    if linux {
        appliance.addr_add(&app_gen_iface, Ipv4Addr::new(192, 168, 1, 1), 24)?;
        appliance.addr_add(&app_sink_iface, Ipv4Addr::new(192, 168, 2, 1), 24)?;
        appliance.ip_forward(true)?;
    }
    Ok(Relay {
        run,
        gens,
        sinks,
        appliance,
        switch,
        app_gen_iface,
        app_sink_iface,
        app_gen_addr: Ipv4Addr::new(192, 168, 1, 1),
        app_sink_addr: Ipv4Addr::new(192, 168, 2, 1),
        prefix_len: 24,
        linux_router: linux,
    })
}

/// One WAN link of [`Sites`]: appliance A — emulator — appliance B.
#[derive(Debug, Clone)]
pub struct WanLink {
    /// Appliance A's interface (in `app_a`).
    pub app_a_iface: String,
    /// Emulator interface facing appliance A (the link's `a_iface`).
    pub emu_a_iface: String,
    /// Emulator interface facing appliance B (the link's `b_iface`).
    pub emu_b_iface: String,
    /// Appliance B's interface (in `app_b`).
    pub app_b_iface: String,
    /// 172.16.<i>.1: appliance A's address on this link.
    pub a_addr: Ipv4Addr,
    /// 172.16.<i>.2: appliance B's address on this link.
    pub b_addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// Two sites joined by N emulated WAN links.
///
/// From [`sites`], the appliance namespaces hold bare veth ends for the DPDK application;
/// from [`sites_linux`], they are Linux routers with the addresses below configured, IPv4
/// forwarding on and a route to the other site over link 0.
#[derive(Debug)]
pub struct Sites {
    pub run: RunId,
    /// 10.1.0.2/24, gateway 10.1.0.1 (appliance A).
    pub host_a: Host,
    /// 10.2.0.2/24, gateway 10.2.0.1 (appliance B).
    pub host_b: Host,
    pub app_a: Netns,
    pub app_b: Netns,
    pub emu: Netns,
    /// Appliance A's LAN interface (towards host A).
    pub app_a_lan: String,
    /// Appliance B's LAN interface (towards host B).
    pub app_b_lan: String,
    pub links: Vec<WanLink>,
    /// True when the appliances are Linux routers ([`sites_linux`]).
    pub linux_routers: bool,
    /// The NAT in front of appliance B ([`sites_behind_nat`]).
    pub nat: Option<Nat>,
}

impl Sites {
    /// Behind [`sites_behind_nat`]'s NAT, moves link `i`'s public address from `from` (at
    /// first `links[i].b_addr`) to `to` ([`Nat::renumber`]).
    pub fn renumber_nat(&self, i: usize, from: Ipv4Addr, to: Ipv4Addr) -> Result<()> {
        let nat = self.nat.as_ref().context("no NAT in this topology")?;
        nat.renumber(i, from, to)
    }
}

/// A NAT router in front of one site, as a branch's DSL or LTE router: per WAN link `i` an
/// outside interface holding the site's public address on that link, and an inside one,
/// [`Nat::gateway`]`(i)`, on a private subnet with the site appliance's WAN `i`
/// ([`Nat::site_address`]`(i)`). Whatever leaves an outside interface is masqueraded
/// (nftables) to its address, so the site's peers see only the public addresses, which
/// [`Nat::renumber`] changes.
#[derive(Debug)]
pub struct Nat {
    pub ns: Netns,
    /// Per link: the outside interface (in `ns`).
    pub outside: Vec<String>,
    /// Per link: the inside interface (in `ns`).
    pub inside: Vec<String>,
    /// The prefix length of the public addresses.
    pub prefix_len: u8,
}

impl Nat {
    /// The prefix length of every inside subnet (192.168.<i>.0/24).
    pub const INSIDE_PREFIX_LEN: u8 = 24;

    /// The NAT's inside address on link `i`, 192.168.<i>.1: the site appliance's next hop.
    pub fn gateway(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, i as u8, 1)
    }

    /// The address the site's appliance should use on link `i`, 192.168.<i>.2.
    pub fn site_address(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, i as u8, 2)
    }

    /// A NAT namespace of `run` for `n_links` links, forwarding and masquerading what leaves
    /// its outside interfaces; [`Nat::cable`] then gives it each link.
    fn create(run: &RunId, n_links: usize, prefix_len: u8) -> Result<Nat> {
        let ns = Netns::create(&run.ns_name("nat"))?;
        ns.disable_ipv6()?;
        ns.ip_forward(true)?;
        // A renumbering adds the new address before it removes the old one, which would
        // otherwise take the new one (a secondary) with it.
        ns.sysctl("net.ipv4.conf.all.promote_secondaries", "1")?;
        let outside: Vec<String> = (0..n_links)
            .map(|i| run.ifname(&format!("no{i:x}")))
            .collect();
        let inside = (0..n_links)
            .map(|i| run.ifname(&format!("ni{i:x}")))
            .collect();
        // `oifname` matches by name: the rule holds before the interfaces exist.
        let names: Vec<String> = outside.iter().map(|o| format!("\"{o}\"")).collect();
        let rules = format!(
            "table ip nat {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n  \
             oifname {{ {} }} masquerade\n }}\n}}\n",
            names.join(", ")
        );
        ns.nft(&rules).context("the NAT's masquerade rule")?;
        Ok(Nat {
            ns,
            outside,
            inside,
            prefix_len,
        })
    }

    /// Cables link `i`: the outside interface to `public_side` (a namespace and the name of
    /// the veth end to make there), with the site's public address `public`; the inside one
    /// to `site_side`, the site appliance's WAN `i`.
    fn cable(
        &self,
        i: usize,
        public_side: (&Netns, &str),
        public: Ipv4Addr,
        site_side: (&Netns, &str),
    ) -> Result<()> {
        let (outside, inside) = (&self.outside[i], &self.inside[i]);
        veth(public_side.0, public_side.1, &self.ns, outside, MTU)?;
        veth(&self.ns, inside, site_side.0, site_side.1, MTU)?;
        self.ns.addr_add(outside, public, self.prefix_len)?;
        self.ns
            .addr_add(inside, Self::gateway(i), Self::INSIDE_PREFIX_LEN)
    }

    /// Moves link `i`'s public address from `from` to `to`, as an ISP renumbering a line: the
    /// address is replaced on the outside interface, and the kernel drops the mappings made
    /// with the old one.
    pub fn renumber(&self, i: usize, from: Ipv4Addr, to: Ipv4Addr) -> Result<()> {
        let outside = self.outside.get(i).context("no such link")?;
        self.ns.addr_add(outside, to, self.prefix_len)?;
        self.ns.ip(&[
            "addr",
            "del",
            &format!("{from}/{}", self.prefix_len),
            "dev",
            outside,
        ])?;
        Ok(())
    }
}

/// host A — appliance A — `n_links` WAN links through the emulator namespace — appliance B —
/// host B, with the appliances left unconfigured for the DPDK application.
pub fn sites(n_links: usize) -> Result<Sites> {
    build_sites(n_links, false, false, false)
}

/// The [`sites`] topology with appliance B behind a NAT on every link, as a branch on DSL
/// or LTE: appliance B's WAN i is 192.168.<i>.2/24 behind the NAT namespace's 192.168.<i>.1,
/// which masquerades (nftables) to its outside address 172.16.<i>.2 (`links[i].b_addr`;
/// [`Sites::renumber_nat`] moves it) on the emulator's side.
pub fn sites_behind_nat(n_links: usize) -> Result<Sites> {
    build_sites(n_links, false, false, true)
}

/// The [`sites`] topology with Linux routers in place of the appliances, for baselines.
pub fn sites_linux(n_links: usize) -> Result<Sites> {
    build_sites(n_links, true, false, false)
}

/// The [`sites`] topology (Linux routers if `linux`) whose WAN links are plain veth pairs from
/// site A to site B: nothing between them, no emulator (its namespace stays empty).
pub fn sites_direct(n_links: usize, linux: bool) -> Result<Sites> {
    build_sites(n_links, linux, true, false)
}

fn build_sites(n_links: usize, linux: bool, direct: bool, nat: bool) -> Result<Sites> {
    ensure!((1..=16).contains(&n_links), "1..=16 WAN links");
    let run = RunId::new();
    let emu = Netns::create(&run.ns_name("emu"))?;
    emu.disable_ipv6()?;
    let nat = if nat {
        Some(Nat::create(&run, n_links, 24)?)
    } else {
        None
    };
    let app_a = Netns::create(&run.ns_name("appa"))?;
    let app_b = Netns::create(&run.ns_name("appb"))?;
    if !linux {
        app_a.disable_ipv6()?;
        app_b.disable_ipv6()?;
    }
    let mut hosts = Vec::new();
    let mut lans = Vec::new();
    for (site, app) in [(1u8, &app_a), (2u8, &app_b)] {
        let ns = Netns::create(&run.ns_name(&format!("h{site}")))?;
        let iface = run.ifname(&format!("h{site}"));
        let lan = run.ifname(&format!("l{site}"));
        veth(&ns, &iface, app, &lan, MTU)?;
        let addr = Ipv4Addr::new(10, site, 0, 2);
        let gateway = Ipv4Addr::new(10, site, 0, 1);
        ns.addr_add(&iface, addr, 24)?;
        ns.route_add("default", Some(gateway), None)?;
        if linux {
            app.addr_add(&lan, gateway, 24)?;
        }
        hosts.push(Host {
            ns,
            iface,
            addr,
            prefix_len: 24,
            gateway,
        });
        lans.push(lan);
    }
    let mut links = Vec::new();
    for i in 0..n_links {
        let link = WanLink {
            app_a_iface: run.ifname(&format!("wa{i}")),
            emu_a_iface: run.ifname(&format!("ea{i}")),
            emu_b_iface: run.ifname(&format!("eb{i}")),
            app_b_iface: run.ifname(&format!("wb{i}")),
            a_addr: Ipv4Addr::new(172, 16, i as u8, 1),
            b_addr: Ipv4Addr::new(172, 16, i as u8, 2),
            prefix_len: 24,
        };
        if let Some(n) = &nat {
            veth(&app_a, &link.app_a_iface, &emu, &link.emu_a_iface, MTU)?;
            n.cable(
                i,
                (&emu, &link.emu_b_iface),
                link.b_addr,
                (&app_b, &link.app_b_iface),
            )?;
        } else if direct {
            veth(&app_a, &link.app_a_iface, &app_b, &link.app_b_iface, MTU)?;
        } else {
            veth(&app_a, &link.app_a_iface, &emu, &link.emu_a_iface, MTU)?;
            veth(&emu, &link.emu_b_iface, &app_b, &link.app_b_iface, MTU)?;
        }
        if linux {
            app_a.addr_add(&link.app_a_iface, link.a_addr, 24)?;
            app_b.addr_add(&link.app_b_iface, link.b_addr, 24)?;
            // A Linux router's WAN end stands for a NIC onto the emulator's wire, which
            // would finish checksums and segments in hardware (`Netns::offloads_off`).
            // The hosts and the LAN ends keep their defaults.
            app_a.offloads_off(&link.app_a_iface)?;
            app_b.offloads_off(&link.app_b_iface)?;
        }
        links.push(link);
    }
    if linux {
        app_a.ip_forward(true)?;
        app_b.ip_forward(true)?;
        let l0 = &links[0];
        app_a.route_add("10.2.0.0/24", Some(l0.b_addr), Some(&l0.app_a_iface))?;
        app_b.route_add("10.1.0.0/24", Some(l0.a_addr), Some(&l0.app_b_iface))?;
    }
    let host_b = hosts.pop().expect("two hosts");
    let host_a = hosts.pop().expect("two hosts");
    let app_b_lan = lans.pop().expect("two lans");
    let app_a_lan = lans.pop().expect("two lans");
    Ok(Sites {
        run,
        host_a,
        host_b,
        app_a,
        app_b,
        emu,
        app_a_lan,
        app_b_lan,
        links,
        linux_routers: linux,
        nat,
    })
}

/// One link of [`WanPair`]: host A — emulator — host B on subnet 10.0.<i>.0/24.
#[derive(Debug, Clone)]
pub struct PairLink {
    /// Host A's interface, address 10.0.<i>.1.
    pub a_iface: String,
    pub emu_a_iface: String,
    pub emu_b_iface: String,
    /// Host B's interface, address 10.0.<i>.2.
    pub b_iface: String,
    pub a_addr: Ipv4Addr,
    pub b_addr: Ipv4Addr,
}

/// Two hosts joined directly by N links through the emulator namespace: one subnet per
/// link, so traffic to `links[i].b_addr` crosses link i.
#[derive(Debug)]
pub struct WanPair {
    pub run: RunId,
    pub host_a: Netns,
    pub host_b: Netns,
    pub emu: Netns,
    pub links: Vec<PairLink>,
}

/// host A — veth — [emulator namespace] — veth — host B, `n_links` times.
pub fn wan_pair(n_links: usize) -> Result<WanPair> {
    ensure!((1..=16).contains(&n_links), "1..=16 links");
    let run = RunId::new();
    let emu = Netns::create(&run.ns_name("emu"))?;
    emu.disable_ipv6()?;
    let host_a = Netns::create(&run.ns_name("ha"))?;
    let host_b = Netns::create(&run.ns_name("hb"))?;
    let mut links = Vec::new();
    for i in 0..n_links {
        let link = PairLink {
            a_iface: run.ifname(&format!("a{i}")),
            emu_a_iface: run.ifname(&format!("ea{i}")),
            emu_b_iface: run.ifname(&format!("eb{i}")),
            b_iface: run.ifname(&format!("b{i}")),
            a_addr: Ipv4Addr::new(10, 0, i as u8, 1),
            b_addr: Ipv4Addr::new(10, 0, i as u8, 2),
        };
        veth(&host_a, &link.a_iface, &emu, &link.emu_a_iface, MTU)?;
        veth(&emu, &link.emu_b_iface, &host_b, &link.b_iface, MTU)?;
        // No appliance here: the emulator is the wire between two hosts' NICs, which
        // would finish checksums and segments in hardware (`Netns::offloads_off`).
        host_a.offloads_off(&link.a_iface)?;
        host_b.offloads_off(&link.b_iface)?;
        host_a.addr_add(&link.a_iface, link.a_addr, 24)?;
        host_b.addr_add(&link.b_iface, link.b_addr, 24)?;
        links.push(link);
    }
    Ok(WanPair {
        run,
        host_a,
        host_b,
        emu,
        links,
    })
}

/// One WAN link of [`HubSites`]: a layer-2 segment 172.16.<j>.0/24 that every site's
/// appliance is on, as sites on one provider's network (a bridge, no emulated impairment).
/// The vectors are indexed by site, as [`HubSites::hosts`] is.
#[derive(Debug, Clone)]
pub struct HubLink {
    /// The bridge in [`HubSites::wan`] that is the segment.
    pub bridge: String,
    /// Per site: the appliance's interface on this segment (in `apps[k]`, left bare for DPDK;
    /// a spoke behind a NAT's is cabled to the NAT's inside).
    pub app_ifaces: Vec<String>,
    /// Per site: the bridge port its interface (or its NAT's outside) is cabled to (in
    /// [`HubSites::wan`]).
    pub wan_ports: Vec<String>,
    /// Per site: its address on the segment, 172.16.<j>.1 for the hub, 172.16.<j>.<10+k> for
    /// spoke k (k = 1..): the address the appliance should use, or for a spoke behind a NAT,
    /// its NAT's outside address (its public one; the appliance has [`Nat::site_address`]).
    pub addrs: Vec<Ipv4Addr>,
    pub prefix_len: u8,
}

/// A hub site and N spoke sites: per site a host and an appliance namespace, and every
/// appliance on each of M shared WAN segments ([`HubLink`]).
///
/// Site 0 is the hub, site k (1..=N) is spoke k. Site k's host is 10.<k+1>.0.2/24 with its
/// default route through 10.<k+1>.0.1 (the appliance's address to configure); the appliance
/// namespaces hold only bare veth ends for the DPDK application, as from [`sites`].
#[derive(Debug)]
pub struct HubSites {
    pub run: RunId,
    /// Per site: its host.
    pub hosts: Vec<Host>,
    /// Per site: its appliance's namespace.
    pub apps: Vec<Netns>,
    /// Per site: the appliance's LAN interface (towards its host, in `apps[k]`).
    pub lans: Vec<String>,
    /// Holds the segments' bridges; kernel IPv6 off, so the segments carry only what the
    /// appliances send.
    pub wan: Netns,
    /// Per WAN link: its segment.
    pub links: Vec<HubLink>,
    /// The spoke behind its own NAT ([`hub_and_spokes_behind_nat`]).
    pub nat: Option<SpokeNat>,
}

/// A spoke of [`HubSites`] that reaches every segment through a [`Nat`] of its own.
#[derive(Debug)]
pub struct SpokeNat {
    /// Its site number.
    pub spoke: usize,
    pub nat: Nat,
}

impl HubSites {
    /// How many spokes (every site but the hub).
    pub fn n_spokes(&self) -> usize {
        self.hosts.len().saturating_sub(1)
    }

    /// The NAT in front of site `k`, if it is the spoke behind one.
    pub fn nat_of(&self, k: usize) -> Option<&Nat> {
        self.nat.as_ref().filter(|n| n.spoke == k).map(|n| &n.nat)
    }

    /// Behind [`hub_and_spokes_behind_nat`]'s NAT, moves the spoke's public address on
    /// segment `j` from `from` (at first `links[j].addrs[spoke]`) to `to` ([`Nat::renumber`]).
    pub fn renumber_nat(&self, j: usize, from: Ipv4Addr, to: Ipv4Addr) -> Result<()> {
        let n = self.nat.as_ref().context("no NAT in this topology")?;
        n.nat.renumber(j, from, to)
    }
}

/// The hub (site 0) and `n_spokes` spokes, each appliance on `n_links` shared segments
/// ([`HubSites`]). Site and link numbers are single hex digits in the interface names, which
/// bounds both.
pub fn hub_and_spokes(n_spokes: usize, n_links: usize) -> Result<HubSites> {
    build_hub(n_spokes, n_links, None)
}

/// The [`hub_and_spokes`] topology with spoke `spoke` behind a NAT of its own on every
/// segment, as a branch on DSL or LTE: its appliance's WAN j is [`Nat::site_address`]`(j)`
/// behind the NAT's [`Nat::gateway`]`(j)`, and the NAT's outside address on segment j is the
/// one the spoke would have had there, `links[j].addrs[spoke]` ([`HubSites::renumber_nat`]
/// moves it).
pub fn hub_and_spokes_behind_nat(
    n_spokes: usize,
    n_links: usize,
    spoke: usize,
) -> Result<HubSites> {
    ensure!(
        (1..=n_spokes).contains(&spoke),
        "the spoke behind the NAT, {spoke}, is not one of 1..={n_spokes}"
    );
    build_hub(n_spokes, n_links, Some(spoke))
}

fn build_hub(n_spokes: usize, n_links: usize, natted: Option<usize>) -> Result<HubSites> {
    ensure!((1..=15).contains(&n_spokes), "1..=15 spokes");
    ensure!((1..=16).contains(&n_links), "1..=16 WAN links");
    let run = RunId::new();
    let nat = match natted {
        Some(spoke) => Some(SpokeNat {
            spoke,
            nat: Nat::create(&run, n_links, 24)?,
        }),
        None => None,
    };
    let wan = Netns::create(&run.ns_name("wan"))?;
    wan.disable_ipv6()?;
    plain_switch(&wan)?;
    let mut hosts = Vec::new();
    let mut apps = Vec::new();
    let mut lans = Vec::new();
    for k in 0..=n_spokes {
        let app = Netns::create(&run.ns_name(&format!("app{k}")))?;
        app.disable_ipv6()?;
        let ns = Netns::create(&run.ns_name(&format!("h{k}")))?;
        let iface = run.ifname(&format!("h{k:x}"));
        let lan = run.ifname(&format!("l{k:x}"));
        veth(&ns, &iface, &app, &lan, MTU)?;
        let subnet = k as u8 + 1;
        let addr = Ipv4Addr::new(10, subnet, 0, 2);
        let gateway = Ipv4Addr::new(10, subnet, 0, 1);
        ns.addr_add(&iface, addr, 24)?;
        ns.route_add("default", Some(gateway), None)?;
        hosts.push(Host {
            ns,
            iface,
            addr,
            prefix_len: 24,
            gateway,
        });
        apps.push(app);
        lans.push(lan);
    }
    let mut links = Vec::new();
    for j in 0..n_links {
        let bridge = run.ifname(&format!("br{j:x}"));
        wan.ip(&[
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        wan.link_up(&bridge, MTU)?;
        let mut link = HubLink {
            bridge,
            app_ifaces: Vec::new(),
            wan_ports: Vec::new(),
            addrs: Vec::new(),
            prefix_len: 24,
        };
        for (k, app) in apps.iter().enumerate() {
            let app_iface = run.ifname(&format!("w{k:x}{j:x}"));
            let port = run.ifname(&format!("p{k:x}{j:x}"));
            let host_part = if k == 0 { 1 } else { 10 + k as u8 };
            let addr = Ipv4Addr::new(172, 16, j as u8, host_part);
            match nat.as_ref().filter(|n| n.spoke == k) {
                Some(n) => n.nat.cable(j, (&wan, &port), addr, (app, &app_iface))?,
                None => veth(app, &app_iface, &wan, &port, MTU)?,
            }
            wan.ip(&["link", "set", "dev", &port, "master", &link.bridge])?;
            link.app_ifaces.push(app_iface);
            link.wan_ports.push(port);
            link.addrs.push(addr);
        }
        links.push(link);
    }
    Ok(HubSites {
        run,
        hosts,
        apps,
        lans,
        wan,
        links,
        nat,
    })
}
