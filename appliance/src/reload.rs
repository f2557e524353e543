//! Reloading the files while running (`appliancectl reload`, SIGHUP). Both files are read and
//! checked as at start; the difference from the files last applied is worked out here; what
//! can change live becomes a list of steps the management lcore applies one after another
//! (routes, relay rules and BFD timers as the very requests an operator would send, then
//! neighbours, slow path, log and idle settings, then the rest of the tunnel's settings in
//! one table swap); anything else that changed is refused as a whole, every such key named,
//! before anything is applied.
//!
//! Live: `routes`, `mcast_rules`, `neighbors`, `slowpath`, `log.level`, `profile.idle`, and in
//! `[tunnel]` everything but what shapes its memory or its identity: the prefixes, classes
//! and default scheduler, paths added and removed, the paths' rates, MTUs, priorities,
//! `backup` and BFD timers (a Poll Sequence on an Up session), the probe interval, the
//! hold-down, `reorder.max_hold`, the shaper's rate share and CoDel, and the keys (their
//! files' contents too: a handshake under the new keys at once, the old session carrying
//! traffic until it completes). Needing a restart: the rest of the profile, the interfaces,
//! control, and the tunnel's port, encryption, shaping on or off, `max_packets` sizes, a
//! path's id, interface or addresses (under the same name), and BFD turned on or off on a
//! path that stays.

use std::path::PathBuf;

use crate::api::Request;
use crate::config::tunnel::{BfdConfig, TunnelConfig};
use crate::config::IdleConfig;
use crate::config::{Config, HwProfile, LogConfig, NeighborConfig, SlowPathConfig};
use crate::tunnel::crypto::keys::KeyPrint;

/// The files and what of them is in force.
#[derive(Debug)]
pub struct Reloader {
    profile_file: PathBuf,
    config_file: PathBuf,
    applied: (HwProfile, Config),
    /// The keys in force, by peer name (empty: no tunnel, or one in clear).
    keys: Vec<(String, KeyPrint)>,
}

impl Reloader {
    /// For the files the appliance started from, as they were read then, and the keys it
    /// read from them.
    pub fn new(
        files: (PathBuf, PathBuf),
        applied: (HwProfile, Config),
        keys: Vec<(String, KeyPrint)>,
    ) -> Self {
        Self {
            profile_file: files.0,
            config_file: files.1,
            applied,
            keys,
        }
    }

    /// Reads and checks both files (and the key files) as at start; the plan to them, and
    /// them, or why not (a file's error naming its key, or the keys that cannot change
    /// live).
    pub fn read(&self) -> Result<(Plan, (HwProfile, Config)), String> {
        let profile = HwProfile::load(&self.profile_file).map_err(|e| e.to_string())?;
        let config = Config::load(&self.config_file, &profile).map_err(|e| e.to_string())?;
        let keys = key_print(&config).map_err(|e| {
            format!(
                "{}: tunnel.{}: {}",
                self.config_file.display(),
                e.key,
                e.what
            )
        })?;
        let mut plan =
            plan((&self.applied.0, &self.applied.1), (&profile, &config)).map_err(|keys| {
                format!(
                "nothing applied: these cannot change while running (restart to change them): {}",
                keys.join(", ")
            )
            })?;
        if let Some(t) = &config.tunnel {
            // A peer that stays and whose key files hold other keys now (a peer added
            // makes its sessions anyway).
            let changed: Vec<&str> = keys
                .iter()
                .filter(|(name, print)| self.keys.iter().any(|(n, p)| n == name && p != print))
                .map(|(name, _)| name.as_str())
                .collect();
            match (t.peers.is_empty(), keys.first()) {
                (true, Some((_, new))) if !changed.is_empty() => plan.rekey(t, *new),
                (false, _) if !changed.is_empty() => plan.tunnel_step(
                    t,
                    format!(
                        "tunnel keys: new in the files of peer(s) {}: rekeying",
                        list(&changed)
                    ),
                ),
                _ => {}
            }
        }
        Ok((plan, (profile, config)))
    }

    /// The plan back from `files` to what is in force (to undo a reload that failed half-way;
    /// keys are never changed back: the key step is the last, and cannot fail after it
    /// changed anything).
    pub fn undo(&self, files: &(HwProfile, Config)) -> Plan {
        plan((&files.0, &files.1), (&self.applied.0, &self.applied.1)).unwrap_or_default()
    }

    /// The config file in force (as last applied; live changes are not in it, but for the
    /// peers of `peer add` and `peer del`).
    pub fn config(&self) -> &Config {
        &self.applied.1
    }

    /// The profile and config in force.
    pub fn files(&self) -> (&HwProfile, &Config) {
        (&self.applied.0, &self.applied.1)
    }

    /// `files` are in force now, with the keys `plan` applied.
    pub fn applied(&mut self, files: (HwProfile, Config), plan_keys: Option<KeyPrint>) {
        if let Some(k) = plan_keys {
            self.keys = vec![(crate::config::tunnel::ONE_PEER_NAME.to_owned(), k)];
        } else if files.1.tunnel.as_ref().is_some_and(|t| !t.peers.is_empty()) {
            self.keys = key_print(&files.1).unwrap_or_default();
        }
        self.applied = files;
    }
}

/// A change of the tunnel's peers from the control socket (`appliancectl peer add`, `peer
/// set`, `peer del`), made to a copy of the running config.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerChange {
    /// Add these peers (`replace`: change these existing ones instead).
    Add {
        /// The peers.
        peers: Vec<crate::config::tunnel::PeerConfig>,
        /// Change existing ones, by name.
        replace: bool,
    },
    /// Remove the peers of these names.
    Del {
        /// Their names.
        names: Vec<String>,
    },
}

impl PeerChange {
    /// What it is called in replies and logs.
    pub fn verb(&self) -> &'static str {
        match self {
            PeerChange::Add { replace: false, .. } => "peer add",
            PeerChange::Add { replace: true, .. } => "peer set",
            PeerChange::Del { .. } => "peer del",
        }
    }

    /// Makes the change to `config`'s `[[tunnel.peers]]` (not checked further here).
    ///
    /// # Errors
    /// No tunnel, a tunnel in the two-site form, a name added twice or added that is there
    /// (changed or removed that is not), or no peer left.
    pub fn edit(&self, config: &mut Config) -> Result<(), String> {
        let Some(t) = config.tunnel.as_mut().filter(|t| !t.peers.is_empty()) else {
            return Err(
                "the tunnel lists no [[tunnel.peers]] (none, or the two-site form): change the \
                 file and reload"
                    .into(),
            );
        };
        let names: Vec<String> = t.peers.iter().map(|p| p.name.clone()).collect();
        let mut seen = std::collections::HashSet::new();
        match self {
            PeerChange::Add { peers, replace } => {
                for p in peers {
                    if !seen.insert(p.name.as_str()) {
                        return Err(format!("peer {:?} is given twice", p.name));
                    }
                    match (names.iter().position(|n| *n == p.name), replace) {
                        (Some(i), true) => t.peers[i] = p.clone(),
                        (None, false) => t.peers.push(p.clone()),
                        (Some(_), false) => {
                            return Err(format!("peer {:?} exists (peer set changes it)", p.name))
                        }
                        (None, true) => {
                            return Err(format!(
                                "no peer {:?} to change (peer add adds it); peers: {}",
                                p.name,
                                list(&names)
                            ))
                        }
                    }
                }
            }
            PeerChange::Del { names: gone } => {
                for name in gone {
                    if !seen.insert(name.as_str()) || !names.contains(name) {
                        return Err(format!(
                            "no peer {name:?} (or named twice); peers: {}",
                            list(&names)
                        ));
                    }
                }
                t.peers.retain(|p| !gone.contains(&p.name));
                if t.peers.is_empty() {
                    return Err(
                        "that removes every peer: a tunnel keeps one at least (remove \
                                [tunnel] from the file and restart to have none)"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The prints of `config`'s tunnel keys by peer name, read from their files (empty: no
/// tunnel, or in clear).
///
/// # Errors
/// A key file missing, exposed or malformed, naming its key under `tunnel`.
pub fn key_print(
    config: &Config,
) -> Result<Vec<(String, KeyPrint)>, crate::config::tunnel::TunnelConfigError> {
    let Some(t) = &config.tunnel else {
        return Ok(Vec::new());
    };
    let keys = t.peer_keys()?;
    Ok(t.peers()
        .into_iter()
        .zip(keys)
        .filter_map(|((name, _), k)| Some((name, k?.print())))
        .collect())
}

/// One thing a reload does.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// A request, as an operator would send it on the control socket.
    Request(Request),
    /// The workers' idle back-off.
    Idle(IdleConfig),
    /// The log level (the one at start when the file no longer sets it).
    Log(LogConfig),
    /// The static neighbours, all of them.
    Neighbors(Vec<NeighborConfig>),
    /// The slow path's settings.
    SlowPath(SlowPathConfig),
    /// The tunnel's settings, swapped in one table
    /// ([`crate::tunnel::TunnelTable::reconfigured`]), and, when `rekey` is set, new
    /// sessions under the keys it names (the files are read again and must still hold
    /// them).
    Tunnel {
        /// The new `[tunnel]`.
        config: Box<TunnelConfig>,
        /// The keys to make sessions under now.
        rekey: Option<KeyPrint>,
    },
}

/// A step and the changes it makes, one line each (for the reply and the log).
#[derive(Debug, PartialEq)]
pub struct Planned {
    /// What to do.
    pub step: Step,
    /// What it changes.
    pub changes: Vec<String>,
}

/// What a reload does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The steps that make the running appliance match the new files, in order.
    pub steps: Vec<Planned>,
}

impl Plan {
    fn push(&mut self, step: Step, change: String) {
        self.steps.push(Planned {
            step,
            changes: vec![change],
        });
    }

    fn request(&mut self, r: Request, change: String) {
        self.push(Step::Request(r), change);
    }

    /// Every change, in order.
    pub fn changes(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.changes.clone()).collect()
    }

    /// The keys to make sessions under (set by [`Self::rekey`]).
    pub fn keys(&self) -> Option<KeyPrint> {
        self.steps.iter().find_map(|s| match s.step {
            Step::Tunnel { rekey, .. } => rekey,
            _ => None,
        })
    }

    /// A change the tunnel step applies (the step made if the settings did not change).
    fn tunnel_step(&mut self, t: &TunnelConfig, change: String) {
        for s in &mut self.steps {
            if let Step::Tunnel { .. } = &s.step {
                s.changes.push(change);
                return;
            }
        }
        self.push(
            Step::Tunnel {
                config: Box::new(t.clone()),
                rekey: None,
            },
            change,
        );
    }

    /// New keys: sessions under them at once (in the tunnel step, made if the settings
    /// did not change).
    fn rekey(&mut self, t: &TunnelConfig, keys: KeyPrint) {
        let change = format!(
            "tunnel keys: ours {}, the peer's {}{}: rekeying",
            keys.ours,
            keys.peer,
            if keys.psk.is_some() {
                ", with a pre-shared key"
            } else {
                ""
            }
        );
        for s in &mut self.steps {
            if let Step::Tunnel { rekey, .. } = &mut s.step {
                *rekey = Some(keys);
                s.changes.push(change);
                return;
            }
        }
        self.push(
            Step::Tunnel {
                config: Box::new(t.clone()),
                rekey: Some(keys),
            },
            change,
        );
    }
}

/// The plan from the files applied (`old`) to the new ones, or every key that changed but
/// cannot change while running. (Key files' contents are compared by [`Reloader::read`].)
pub fn plan(
    (old_profile, old): (&HwProfile, &Config),
    (new_profile, new): (&HwProfile, &Config),
) -> Result<Plan, Vec<String>> {
    let mut refused = Vec::new();
    profile_keys(old_profile, new_profile, &mut refused);
    let fixed: [(&str, bool); 2] = [
        ("interfaces", old.interfaces != new.interfaces),
        ("control", old.control != new.control),
    ];
    refused.extend(changed(&fixed).map(str::to_string));
    match (&old.tunnel, &new.tunnel) {
        (None, None) => {}
        (Some(a), Some(b)) => tunnel_keys(a, b, &mut refused),
        _ => refused.push("tunnel".into()),
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let mut p = Plan::default();
    routes(old, new, &mut p);
    mcast_rules(old, new, &mut p);
    if old.neighbors != new.neighbors {
        let statics: Vec<String> = new
            .neighbors
            .iter()
            .map(|n| format!("{} at {}", n.address, n.mac))
            .collect();
        p.push(
            Step::Neighbors(new.neighbors.clone()),
            format!("neighbors: {}", list(&statics)),
        );
    }
    if old.slowpath != new.slowpath {
        let s = &new.slowpath;
        p.push(
            Step::SlowPath(s.clone()),
            format!(
                "slowpath: icmp_errors_per_sec {}, arp_reachable_secs {}, arp_retries {}, \
                 arp_hold_packets {}",
                s.icmp_errors_per_sec, s.arp_reachable_secs, s.arp_retries, s.arp_hold_packets
            ),
        );
    }
    if old.log != new.log {
        p.push(
            Step::Log(new.log),
            format!(
                "log.level: {}",
                new.log
                    .level
                    .map_or_else(|| "as at start".into(), |l| format!("{l:?}").to_lowercase())
            ),
        );
    }
    if old_profile.idle != new_profile.idle {
        p.push(
            Step::Idle(new_profile.idle.clone()),
            format!(
                "profile.idle: spin_polls {}, max_sleep_us {}, coalesce_frames {}",
                new_profile.idle.spin_polls,
                new_profile.idle.max_sleep_us,
                new_profile.idle.coalesce_frames
            ),
        );
    }
    if let (Some(a), Some(b)) = (&old.tunnel, &new.tunnel) {
        if b.peers.is_empty() {
            bfd_timers(a, b, "", &mut p);
            tunnel_settings(a, b, &mut p);
        } else {
            peers(a, b, &mut p);
        }
    }
    Ok(p)
}

/// The profile's sections that differ and cannot change while running (all but `idle`).
fn profile_keys(a: &HwProfile, b: &HwProfile, refused: &mut Vec<String>) {
    let sections: [(&str, bool); 5] = [
        ("profile.poll_mode", a.poll_mode != b.poll_mode),
        ("profile.mgmt_priority", a.mgmt_priority != b.mgmt_priority),
        ("profile.eal", a.eal != b.eal),
        ("profile.mempool", a.mempool != b.mempool),
        ("profile.ports", a.ports != b.ports),
    ];
    refused.extend(changed(&sections).map(str::to_string));
}

/// The keys of `keys` whose flag says they changed.
fn changed<'a>(keys: &'a [(&'a str, bool)]) -> impl Iterator<Item = &'a str> + 'a {
    keys.iter().filter(|(_, c)| *c).map(|(k, _)| *k)
}

/// The tunnel's keys that differ and cannot change while running.
fn tunnel_keys(a: &TunnelConfig, b: &TunnelConfig, refused: &mut Vec<String>) {
    if a.peers.is_empty() != b.peers.is_empty() {
        // From one form to the other: the one peer's name would change.
        refused.push("tunnel.peers".into());
        return;
    }
    if b.peers.is_empty() {
        one_peer_keys(a, b, refused);
        return;
    }
    // Peers come and go live; one that stays (by name) keeps what names its paths on the
    // wire, and the section's shared keys are the same for every peer.
    let (pa, pb) = (a.peers(), b.peers());
    for (j, (name, vb)) in pb.iter().enumerate() {
        let Some((_, va)) = pa.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let mut theirs = Vec::new();
        one_peer_keys(va, vb, &mut theirs);
        for k in theirs {
            let k = match k.strip_prefix("tunnel.paths") {
                Some(rest) => format!("tunnel.peers[{j}].paths{rest}"),
                None => k,
            };
            if !refused.contains(&k) {
                refused.push(k);
            }
        }
    }
    let shared = |t: &TunnelConfig| TunnelConfig {
        paths: Vec::new(),
        peers: Vec::new(),
        ..t.clone()
    };
    let mut theirs = Vec::new();
    one_peer_keys(&shared(a), &shared(b), &mut theirs);
    for k in theirs {
        if !refused.contains(&k) {
            refused.push(k);
        }
    }
}

/// [`tunnel_keys`] of one peer's tunnel (the one-peer form, or a peer's view).
fn one_peer_keys(a: &TunnelConfig, b: &TunnelConfig, refused: &mut Vec<String>) {
    let keys: [(&str, bool); 6] = [
        ("tunnel.port", a.port != b.port),
        ("tunnel.encryption", a.encryption != b.encryption),
        (
            "tunnel.shaping.enabled",
            a.shaping.enabled != b.shaping.enabled,
        ),
        (
            "tunnel.shaping.max_packets",
            a.shaping.max_packets != b.shaping.max_packets,
        ),
        (
            "tunnel.reorder.max_packets",
            a.reorder.max_packets != b.reorder.max_packets,
        ),
        ("tunnel.bfd", !same_but_timers(&a.bfd, &b.bfd)),
    ];
    refused.extend(changed(&keys).map(str::to_string));
    // Paths may come and go; one that stays (by name) keeps what names it on the wire.
    for (i, pb) in b.paths.iter().enumerate() {
        let Some(pa) = a.paths.iter().find(|p| p.name == pb.name) else {
            continue;
        };
        let identity: [(&str, bool); 5] = [
            ("id", pa.id != pb.id),
            ("interface", pa.interface != pb.interface),
            ("local", pa.local != pb.local),
            ("remote", pa.remote != pb.remote),
            ("next_hop", pa.next_hop != pb.next_hop),
        ];
        refused.extend(changed(&identity).map(|k| format!("tunnel.paths[{i}].{k}")));
        // The timers may differ; whether the path has its own BFD settings may not.
        let bfd_ok = match (pa.bfd, pb.bfd) {
            (Some(x), Some(y)) => same_but_timers(&x, &y),
            (x, y) => x.is_none() == y.is_none(),
        };
        if !bfd_ok {
            refused.push(format!("tunnel.paths[{i}].bfd"));
        }
    }
}

/// Equal but for the three timers.
fn same_but_timers(a: &BfdConfig, b: &BfdConfig) -> bool {
    BfdConfig {
        desired_min_tx: b.desired_min_tx,
        required_min_rx: b.required_min_rx,
        detect_mult: b.detect_mult,
        ..*a
    } == *b
}

fn routes(old: &Config, new: &Config, p: &mut Plan) {
    for r in &old.routes {
        if !new.routes.iter().any(|n| n.prefix == r.prefix) {
            p.request(
                Request::RouteDel { prefix: r.prefix },
                format!("route {} removed", r.prefix),
            );
        }
    }
    for r in &new.routes {
        match old.routes.iter().find(|o| o.prefix == r.prefix) {
            Some(o) if o.via == r.via => {}
            found => p.request(
                Request::RouteAdd {
                    prefix: r.prefix,
                    via: r.via,
                },
                match found {
                    Some(o) => format!("route {} via {} (was via {})", r.prefix, r.via, o.via),
                    None => format!("route {} via {} added", r.prefix, r.via),
                },
            ),
        }
    }
}

fn mcast_rules(old: &Config, new: &Config, p: &mut Plan) {
    for r in &old.mcast_rules {
        if !new.mcast_rules.iter().any(|n| n.input == r.input) {
            p.request(
                Request::McastDel {
                    input: r.input.clone(),
                },
                format!("relay rule {} removed", r.input),
            );
        }
    }
    for r in &new.mcast_rules {
        match old.mcast_rules.iter().find(|o| o.input == r.input) {
            Some(o) if o == r => {}
            found => p.request(
                Request::McastAdd {
                    rule: r.clone(),
                    replace: found.is_some(),
                },
                format!(
                    "relay rule {} {}",
                    r.input,
                    if found.is_some() { "changed" } else { "added" }
                ),
            ),
        }
    }
}

/// A tunnel that lists its peers: each peer that stays as a one-peer tunnel (its BFD
/// timers by request, its other changes named `peer NAME: ...`), each peer added or removed
/// named; all in one tunnel step.
fn peers(a: &TunnelConfig, b: &TunnelConfig, p: &mut Plan) {
    let (pa, pb) = (a.peers(), b.peers());
    let mut changes = Vec::new();
    for (name, _) in &pa {
        if !pb.iter().any(|(n, _)| n == name) {
            changes.push(format!("peer {name} removed"));
        }
    }
    for (name, vb) in &pb {
        let Some((_, va)) = pa.iter().find(|(n, _)| n == name) else {
            let paths: Vec<&str> = vb.paths.iter().map(|p| p.name.as_str()).collect();
            changes.push(format!(
                "peer {name} added: prefixes {}, paths {}",
                list(&vb.prefixes),
                list(&paths)
            ));
            continue;
        };
        bfd_timers(va, vb, &format!("{name}/"), p);
        // Only what is the peer's own: the shared settings are named once, below.
        let own_on_new = TunnelConfig {
            prefixes: va.prefixes.clone(),
            paths: va.paths.clone(),
            classes: va.classes.clone(),
            default_scheduler: va.default_scheduler,
            peer_public_key: va.peer_public_key.clone(),
            preshared_key: va.preshared_key.clone(),
            ..vb.clone()
        };
        let mut own = Plan::default();
        tunnel_settings(&own_on_new, vb, &mut own);
        for c in own.changes() {
            changes.push(format!("peer {name}: {c}"));
        }
    }
    let shared = |t: &TunnelConfig| TunnelConfig {
        prefixes: Vec::new(),
        paths: Vec::new(),
        classes: Vec::new(),
        peers: Vec::new(),
        peer_public_key: None,
        preshared_key: None,
        ..t.clone()
    };
    let mut common = Plan::default();
    tunnel_settings(&shared(a), &shared(b), &mut common);
    changes.splice(0..0, common.changes());
    let order = |x: &[(String, TunnelConfig)]| x.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if changes.is_empty() && order(&pa) != order(&pb) {
        // Each peer keeps its slot: the order in the file changes nothing that runs.
        changes.push(format!("tunnel.peers: in the order {}", list(&order(&pb))));
    }
    for c in changes {
        p.tunnel_step(b, c);
    }
}

fn bfd_timers(a: &TunnelConfig, b: &TunnelConfig, peer: &str, p: &mut Plan) {
    for pb in &b.paths {
        // A path added gets its session with the table.
        let Some(pa) = a.paths.iter().find(|p| p.name == pb.name) else {
            continue;
        };
        let (x, y) = (pa.bfd.unwrap_or(a.bfd), pb.bfd.unwrap_or(b.bfd));
        if x == y || !y.enabled {
            continue;
        }
        p.request(
                        Request::BfdSet {
                path: format!("{peer}{}", pb.name),
                desired_min_tx: Some(y.desired_min_tx),
                required_min_rx: Some(y.required_min_rx),
                detect_mult: Some(y.detect_mult),
            },
            format!(
                                "path {peer}{} BFD timers: desired min TX {:?}, required min RX {:?}, detect mult {}",
                pb.name, y.desired_min_tx.0, y.required_min_rx.0, y.detect_mult
            ),
        );
    }
}

/// The tunnel's other live settings: one table swap if any of them changed, each change
/// named. (BFD timers went as requests; the key files' contents are compared elsewhere.)
fn tunnel_settings(a: &TunnelConfig, b: &TunnelConfig, p: &mut Plan) {
    let mut changes = Vec::new();
    let mut note = |changed: bool, what: String| {
        if changed {
            changes.push(what);
        }
    };
    note(
        a.prefixes != b.prefixes,
        format!("tunnel.prefixes: {}", list(&b.prefixes)),
    );
    note(
        a.classes != b.classes,
        format!(
            "tunnel.classes: {}",
            list(&b.classes.iter().map(|c| &c.name).collect::<Vec<_>>())
        ),
    );
    note(
        a.default_scheduler != b.default_scheduler,
        format!("tunnel.default_scheduler: {:?}", b.default_scheduler),
    );
    note(
        a.probe_interval != b.probe_interval,
        format!("tunnel.probe_interval: {:?}", b.probe_interval.0),
    );
    note(
        a.max_hold_down != b.max_hold_down,
        format!("tunnel.max_hold_down: {:?}", b.max_hold_down.0),
    );
    note(
        a.reorder.max_hold != b.reorder.max_hold,
        format!("tunnel.reorder.max_hold: {:?}", b.reorder.max_hold.0),
    );
    note(
        a.shaping != b.shaping,
        format!(
            "tunnel.shaping: rate_percent {}, target {:?}, interval {:?}",
            b.shaping.rate_percent, b.shaping.target.0, b.shaping.interval.0
        ),
    );
    for pa in &a.paths {
        note(
            !b.paths.iter().any(|p| p.name == pa.name),
            format!("path {} removed", pa.name),
        );
    }
    for pb in &b.paths {
        let Some(pa) = a.paths.iter().find(|p| p.name == pb.name) else {
            note(
                true,
                format!(
                    "path {} added: id {}, interface {}, remote {}, rate {}",
                    pb.name,
                    pb.id,
                    pb.interface,
                    pb.remote
                        .map_or_else(|| "learned".to_string(), |r| r.to_string()),
                    pb.rate
                ),
            );
            continue;
        };
        let mut what = Vec::new();
        if pa.rate != pb.rate {
            what.push(format!("rate {} (was {})", pb.rate, pa.rate));
        }
        if pa.mtu != pb.mtu {
            what.push(format!("mtu {} (was {})", pb.mtu, pa.mtu));
        }
        if pa.priority != pb.priority {
            what.push(format!("priority {} (was {})", pb.priority, pa.priority));
        }
        if pa.backup != pb.backup {
            what.push(format!("backup {}", pb.backup));
        }
        note(
            !what.is_empty(),
            format!("path {}: {}", pb.name, what.join(", ")),
        );
    }
    // The key files' names alone: their contents are what counts (compared by the reader).
    let mut rest = a.clone();
    rest.prefixes.clone_from(&b.prefixes);
    rest.classes.clone_from(&b.classes);
    rest.default_scheduler = b.default_scheduler;
    rest.probe_interval = b.probe_interval;
    rest.max_hold_down = b.max_hold_down;
    rest.reorder.max_hold = b.reorder.max_hold;
    rest.shaping = b.shaping;
    rest.bfd = b.bfd;
    rest.private_key.clone_from(&b.private_key);
    rest.peer_public_key.clone_from(&b.peer_public_key);
    rest.preshared_key.clone_from(&b.preshared_key);
    // Paths added, removed and changed are named above; the rest of a path that stays is
    // refused if it differs (`tunnel_keys`). Only their order is left.
    let names = |t: &TunnelConfig| t.paths.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let kept = |x: &TunnelConfig, y: &TunnelConfig| {
        names(x)
            .into_iter()
            .filter(|n| y.paths.iter().any(|p| p.name == *n))
            .collect::<Vec<_>>()
    };
    note(
        kept(a, b) != kept(b, a),
        format!("tunnel.paths: in the order {}", list(&names(b))),
    );
    rest.paths.clone_from(&b.paths);
    debug_assert!(
        rest == *b,
        "every tunnel key is either refused or named as a live change"
    );
    if !changes.is_empty() {
        p.steps.push(Planned {
            step: Step::Tunnel {
                config: Box::new(b.clone()),
                rekey: None,
            },
            changes,
        });
    }
}

/// `[a, b, c]` as `a, b, c` (or `none`).
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn profile() -> HwProfile {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hw-profiles");
        HwProfile::load(&root.join("vm-af-packet.toml")).expect("profile")
    }

    const BASE: &str = r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
[[routes]]
prefix = "10.20.0.0/16"
via = "10.10.2.2"
[[routes]]
prefix = "10.21.0.0/16"
via = "10.10.2.2"
[[mcast_rules]]
input = { interface = "lan", group = "239.1.1.1", port = 5000 }
outputs = [{ interface = "wan", destination = "239.10.1.1", port = 6000 }]
[tunnel]
prefixes = ["10.2.0.0/16"]
encryption = "none"
bfd = { desired_min_tx = "100ms", required_min_rx = "100ms", detect_mult = 3 }
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.10.2.9"
rate = "100mbit"
"#;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("x.toml"), text, &profile()).expect("config")
    }

    fn plan_to(text: &str) -> Result<Plan, Vec<String>> {
        let p = profile();
        plan((&p, &config(BASE)), (&p, &config(text)))
    }

    #[test]
    fn the_same_files_change_nothing() {
        assert_eq!(plan_to(BASE), Ok(Plan::default()));
    }

    #[test]
    fn routes_rules_and_bfd_timers_become_requests() {
        let text = BASE
            .replace(
                "prefix = \"10.21.0.0/16\"\nvia = \"10.10.2.2\"",
                "prefix = \"10.22.0.0/16\"\nvia = \"10.10.2.3\"",
            )
            .replace(
                "destination = \"239.10.1.1\"",
                "destination = \"239.10.1.2\"",
            )
            .replace("desired_min_tx = \"100ms\"", "desired_min_tx = \"300ms\"");
        let p = plan_to(&text).expect("live");
        assert_eq!(
            p.changes(),
            [
                "route 10.21.0.0/16 removed",
                "route 10.22.0.0/16 via 10.10.2.3 added",
                "relay rule lan:239.1.1.1:5000 changed",
                "path a BFD timers: desired min TX 300ms, required min RX 100ms, detect mult 3",
            ]
        );
        assert!(matches!(
            p.steps[2].step,
            Step::Request(Request::McastAdd { replace: true, .. })
        ));
        assert!(matches!(
            &p.steps[3].step,
            Step::Request(Request::BfdSet { path, detect_mult: Some(3), .. }) if path == "a"
        ));
    }

    #[test]
    fn the_tunnels_settings_change_in_one_step_naming_each_change() {
        let text = BASE
            .replace(
                "prefixes = [\"10.2.0.0/16\"]",
                "prefixes = [\"10.2.0.0/16\", \"10.3.0.0/16\"]\nprobe_interval = \"20ms\"",
            )
            .replace("rate = \"100mbit\"", "rate = \"50mbit\"\npriority = 2")
            + "[[tunnel.classes]]\nname = \"voice\"\nscheduler = \"redundant\"\n\
               match = { dscp = [46] }\n";
        let p = plan_to(&text).expect("live");
        assert_eq!(
            p.changes(),
            [
                "tunnel.prefixes: 10.2.0.0/16, 10.3.0.0/16",
                "tunnel.classes: voice",
                "tunnel.probe_interval: 20ms",
                "path a: rate 50000000bit (was 100000000bit), priority 2 (was 0)",
            ]
        );
        assert_eq!(p.steps.len(), 1, "one table swap");
        let Step::Tunnel { config, rekey } = &p.steps[0].step else {
            panic!("a tunnel step: {:?}", p.steps[0]);
        };
        assert_eq!(config.paths[0].priority, 2);
        assert_eq!(*rekey, None, "the keys did not change");
    }

    /// A hub of two peers in clear, east and west.
    fn hub() -> String {
        let (start, _) = BASE.split_once("[tunnel]").expect("a tunnel");
        start.to_string()
            + r#"[tunnel]
encryption = "none"
[[tunnel.peers]]
name = "east"
prefixes = ["10.2.0.0/16"]
[[tunnel.peers.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.10.2.9"
rate = "100mbit"
[[tunnel.peers]]
name = "west"
prefixes = ["10.3.0.0/16"]
[[tunnel.peers.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.10.2.10"
rate = "10mbit"
"#
    }

    /// `peer add`, `peer set` and `peer del` edit a copy of the running config: each
    /// refuses, whole, a name it cannot take, and `del` leaves a peer at least.
    #[test]
    fn peer_changes_edit_the_running_peers_by_name() {
        let hub = config(&hub());
        let peers = &hub.tunnel.as_ref().expect("a tunnel").peers;
        let (east, west) = (peers[0].clone(), peers[1].clone());
        let north = crate::config::tunnel::PeerConfig {
            name: "north".into(),
            prefixes: vec!["10.4.0.0/16".parse().expect("a prefix")],
            ..west.clone()
        };
        let names = |c: &Config| -> Vec<String> {
            c.tunnel.as_ref().map_or_else(Vec::new, |t| {
                t.peers.iter().map(|p| p.name.clone()).collect()
            })
        };
        let add = |peers: Vec<crate::config::tunnel::PeerConfig>, replace| PeerChange::Add {
            peers,
            replace,
        };
        let edited = |change: PeerChange| {
            let mut c = hub.clone();
            change.edit(&mut c).map(|()| c)
        };
        let c = edited(add(vec![north.clone()], false)).expect("north added");
        assert_eq!(names(&c), ["east", "west", "north"]);
        let err = edited(add(vec![north.clone(), east.clone()], false)).unwrap_err();
        assert!(err.contains("\"east\" exists"), "{err}");
        let err = edited(add(vec![north.clone(), north.clone()], false)).unwrap_err();
        assert!(err.contains("given twice"), "{err}");
        let faster = crate::config::tunnel::PeerConfig {
            prefixes: vec!["10.5.0.0/16".parse().expect("a prefix")],
            ..west.clone()
        };
        let c = edited(add(vec![faster], true)).expect("west changed");
        assert_eq!(names(&c), ["east", "west"]);
        assert_eq!(
            c.tunnel
                .as_ref()
                .map(|t| t.peers[1].prefixes[0].to_string()),
            Some("10.5.0.0/16".into())
        );
        let err = edited(add(vec![north], true)).unwrap_err();
        assert!(err.contains("no peer \"north\" to change"), "{err}");
        let c = edited(PeerChange::Del {
            names: vec!["east".into()],
        })
        .expect("east removed");
        assert_eq!(names(&c), ["west"]);
        let err = edited(PeerChange::Del {
            names: vec!["east".into(), "west".into()],
        })
        .unwrap_err();
        assert!(err.contains("removes every peer"), "{err}");
        let err = edited(PeerChange::Del {
            names: vec!["south".into()],
        })
        .unwrap_err();
        assert!(err.contains("no peer \"south\""), "{err}");
        // The plan from the running config to an edited one is a reload's.
        let c = edited(add(vec![east.clone()], true)).expect("the same east");
        let p = profile();
        assert!(plan((&p, &hub), (&p, &c))
            .expect("a plan")
            .changes()
            .is_empty());
        let mut two_site = config(BASE);
        let err = add(vec![east], false).edit(&mut two_site).unwrap_err();
        assert!(err.contains("lists no [[tunnel.peers]]"), "{err}");
    }

    fn hub_plan_to(text: &str) -> Result<Plan, Vec<String>> {
        let p = profile();
        plan((&p, &config(&hub())), (&p, &config(text)))
    }

    /// Peers come and go by name, each change of one named under it, the
    /// shared settings once, all in one tunnel step; a peer's BFD timers by
    /// request to `peer/path`.
    #[test]
    fn peers_come_and_go_live_each_named() {
        let north = "[[tunnel.peers]]\nname = \"north\"\nprefixes = [\"10.4.0.0/16\"]\n\
                     [[tunnel.peers.paths]]\nname = \"b\"\nid = 1\ninterface = \"wan\"\n\
                     remote = \"10.10.2.11\"\nrate = \"5mbit\"\n";
        let (without_west, _) = hub()
            .split_once("[[tunnel.peers]]\nname = \"west\"")
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .expect("west");
        let text = without_west + north;
        let p = hub_plan_to(&text).expect("live");
        assert_eq!(
            p.changes(),
            [
                "peer west removed",
                "peer north added: prefixes 10.4.0.0/16, paths b"
            ]
        );
        assert_eq!(p.steps.len(), 1, "one step");
        let changed = hub()
            .replacen(
                "encryption = \"none\"",
                "encryption = \"none\"\nprobe_interval = \"20ms\"\nbfd = { desired_min_tx = \"300ms\" }",
                1,
            )
            .replacen("rate = \"100mbit\"", "rate = \"50mbit\"", 1);
        let p = hub_plan_to(&changed).expect("live");
        assert_eq!(
            p.changes(),
            [
                "path east/a BFD timers: desired min TX 300ms, required min RX 100ms, detect mult 3",
                "path west/a BFD timers: desired min TX 300ms, required min RX 100ms, detect mult 3",
                "tunnel.probe_interval: 20ms",
                "peer east: path a: rate 50000000bit (was 100000000bit)",
            ]
        );
        assert!(matches!(
            &p.steps[0].step,
            Step::Request(Request::BfdSet { path, .. }) if path == "east/a"
        ));
        assert_eq!(hub_plan_to(&hub()), Ok(Plan::default()));
    }

    /// From one form to the other, or what names a path of a peer that
    /// stays: refused, the key named under the peer.
    #[test]
    fn a_peers_identity_and_the_form_do_not_change_live() {
        assert_eq!(hub_plan_to(BASE), Err(vec!["tunnel.peers".to_string()]));
        let moved = hub().replacen("remote = \"10.10.2.10\"", "remote = \"10.10.2.12\"", 1);
        assert_eq!(
            hub_plan_to(&moved),
            Err(vec!["tunnel.peers[1].paths[0].remote".to_string()])
        );
        let port = hub().replacen(
            "encryption = \"none\"",
            "encryption = \"none\"\nport = 4801",
            1,
        );
        assert_eq!(hub_plan_to(&port), Err(vec!["tunnel.port".to_string()]));
    }

    #[test]
    fn paths_come_and_go_by_name() {
        let two = BASE.to_string()
            + "[[tunnel.paths]]\nname = \"b\"\nid = 1\ninterface = \"wan\"\n\
               remote = \"10.10.2.10\"\nrate = \"10mbit\"\n";
        let p = plan_to(&two).expect("live");
        assert_eq!(
            p.changes(),
            ["path b added: id 1, interface wan, remote 10.10.2.10, rate 10000000bit"]
        );
        // Path a removed, b kept: a's name may even come back with other addresses.
        let only_b = two.replace(
            "[[tunnel.paths]]\nname = \"a\"\nid = 0\ninterface = \"wan\"\nremote = \"10.10.2.9\"\n\
             rate = \"100mbit\"\n",
            "",
        );
        assert!(only_b != two, "test bug: path a still in {only_b}");
        let p = plan((&profile(), &config(&two)), (&profile(), &config(&only_b))).expect("live");
        assert_eq!(p.changes(), ["path a removed"]);
        assert!(matches!(&p.steps[0].step, Step::Tunnel { config, .. } if config.paths.len() == 1));
    }

    #[test]
    fn the_log_level_changes_live() {
        let p = plan_to(&format!("{BASE}\n[log]\nlevel = \"debug\"\n")).expect("live");
        assert_eq!(p.changes(), ["log.level: debug"]);
        assert!(matches!(
            p.steps[0].step,
            Step::Log(LogConfig {
                level: Some(crate::config::LogLevel::Debug)
            })
        ));
    }

    #[test]
    fn the_idle_back_off_changes_live() {
        let mut other = profile();
        other.idle.max_sleep_us += 100;
        let c = config(BASE);
        let p = plan((&profile(), &c), (&other, &c)).expect("live");
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].step, Step::Idle(other.idle.clone()));
    }

    #[test]
    fn what_cannot_change_live_is_refused_naming_every_key() {
        let text = BASE
            .replace("10.10.1.1/24", "10.10.1.254/24")
            .replace(
                "prefixes = [\"10.2.0.0/16\"]",
                "prefixes = [\"10.3.0.0/16\"]\nport = 4900",
            )
            .replace("rate = \"100mbit\"", "rate = \"50mbit\"")
            .replace("remote = \"10.10.2.9\"", "remote = \"10.10.2.8\"")
            .replace("prefix = \"10.20.0.0/16\"", "prefix = \"10.30.0.0/16\"");
        assert_eq!(
            plan_to(&text),
            Err(vec![
                "interfaces".to_string(),
                "tunnel.port".into(),
                "tunnel.paths[0].remote".into(),
            ])
        );

        // A profile change is refused too.
        let mut other = profile();
        other.mempool.mbufs += 1;
        let c = config(BASE);
        assert_eq!(
            plan((&profile(), &c), (&other, &c)),
            Err(vec!["profile.mempool".to_string()])
        );
    }
}
