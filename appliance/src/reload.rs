//! Reloading the files while running (`appliancectl reload`, SIGHUP). Both files are read and
//! checked as at start; the difference from the files last applied is worked out here; what
//! can change live becomes the very requests an operator would send (routes, relay rules, BFD
//! timers), applied by the management lcore one after another; anything else that changed is
//! refused as a whole, every such key named, before anything is applied.
//!
//! Live today: `routes`, `mcast_rules`, and the BFD timers of the tunnel's paths
//! (`tunnel.bfd`, `tunnel.paths[i].bfd`: desired_min_tx, required_min_rx, detect_mult; a
//! Poll Sequence on an Up session). Everything else (the hardware profile, interfaces,
//! neighbours, control, slow path, the rest of the tunnel) needs a restart.

use std::path::PathBuf;

use crate::api::Request;
use crate::config::tunnel::{BfdConfig, TunnelConfig};
use crate::config::{Config, HwProfile};

/// The files and what of them is in force.
#[derive(Debug)]
pub struct Reloader {
    profile_file: PathBuf,
    config_file: PathBuf,
    applied: (HwProfile, Config),
}

impl Reloader {
    /// For the files the appliance started from, as they were read then.
    pub fn new(files: (PathBuf, PathBuf), applied: (HwProfile, Config)) -> Self {
        Self {
            profile_file: files.0,
            config_file: files.1,
            applied,
        }
    }

    /// Reads and checks both files as at start; the plan to them, and them, or why not
    /// (a file's error naming its key, or the keys that cannot change live).
    pub fn read(&self) -> Result<(Plan, (HwProfile, Config)), String> {
        let profile = HwProfile::load(&self.profile_file).map_err(|e| e.to_string())?;
        let config = Config::load(&self.config_file, &profile).map_err(|e| e.to_string())?;
        let plan =
            plan((&self.applied.0, &self.applied.1), (&profile, &config)).map_err(|keys| {
                format!(
                "nothing applied: these cannot change while running (restart to change them): {}",
                keys.join(", ")
            )
            })?;
        Ok((plan, (profile, config)))
    }

    /// The plan back from `files` to what is in force (to undo a reload that failed half-way).
    pub fn undo(&self, files: &(HwProfile, Config)) -> Plan {
        plan((&files.0, &files.1), (&self.applied.0, &self.applied.1)).unwrap_or_default()
    }

    /// The config file in force (as last applied; live changes are not in it).
    pub fn config(&self) -> &Config {
        &self.applied.1
    }

    /// `files` are in force now.
    pub fn applied(&mut self, files: (HwProfile, Config)) {
        self.applied = files;
    }
}

/// What a reload does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The requests that make the running appliance match the new files, in order.
    pub requests: Vec<Request>,
    /// One line per change, for the reply and the log.
    pub changes: Vec<String>,
}

/// The plan from the files applied (`old`) to the new ones, or every key that changed but
/// cannot change while running.
pub fn plan(
    (old_profile, old): (&HwProfile, &Config),
    (new_profile, new): (&HwProfile, &Config),
) -> Result<Plan, Vec<String>> {
    let mut refused = Vec::new();
    profile_keys(old_profile, new_profile, &mut refused);
    let fixed: [(&str, bool); 4] = [
        ("interfaces", old.interfaces != new.interfaces),
        ("neighbors", old.neighbors != new.neighbors),
        ("control", old.control != new.control),
        ("slowpath", old.slowpath != new.slowpath),
    ];
    refused.extend(fixed.iter().filter(|(_, c)| *c).map(|(k, _)| k.to_string()));
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
    if let (Some(a), Some(b)) = (&old.tunnel, &new.tunnel) {
        bfd_timers(a, b, &mut p);
    }
    Ok(p)
}

/// The profile's sections that differ (none can change while running).
fn profile_keys(a: &HwProfile, b: &HwProfile, refused: &mut Vec<String>) {
    let sections: [(&str, bool); 6] = [
        ("profile.poll_mode", a.poll_mode != b.poll_mode),
        ("profile.idle", a.idle != b.idle),
        ("profile.mgmt_priority", a.mgmt_priority != b.mgmt_priority),
        ("profile.eal", a.eal != b.eal),
        ("profile.mempool", a.mempool != b.mempool),
        ("profile.ports", a.ports != b.ports),
    ];
    refused.extend(
        sections
            .iter()
            .filter(|(_, c)| *c)
            .map(|(k, _)| k.to_string()),
    );
}

/// The tunnel's keys that differ, BFD timers aside.
fn tunnel_keys(a: &TunnelConfig, b: &TunnelConfig, refused: &mut Vec<String>) {
    let keys: [(&str, bool); 13] = [
        ("tunnel.port", a.port != b.port),
        ("tunnel.prefixes", a.prefixes != b.prefixes),
        ("tunnel.classes", a.classes != b.classes),
        (
            "tunnel.default_scheduler",
            a.default_scheduler != b.default_scheduler,
        ),
        (
            "tunnel.probe_interval",
            a.probe_interval != b.probe_interval,
        ),
        ("tunnel.reorder", a.reorder != b.reorder),
        ("tunnel.max_hold_down", a.max_hold_down != b.max_hold_down),
        ("tunnel.shaping", a.shaping != b.shaping),
        ("tunnel.encryption", a.encryption != b.encryption),
        ("tunnel.private_key", a.private_key != b.private_key),
        (
            "tunnel.peer_public_key",
            a.peer_public_key != b.peer_public_key,
        ),
        ("tunnel.preshared_key", a.preshared_key != b.preshared_key),
        ("tunnel.bfd", !same_but_timers(&a.bfd, &b.bfd)),
    ];
    refused.extend(keys.iter().filter(|(_, c)| *c).map(|(k, _)| k.to_string()));
    if a.paths.len() != b.paths.len() {
        refused.push("tunnel.paths".into());
        return;
    }
    for (i, (pa, pb)) in a.paths.iter().zip(&b.paths).enumerate() {
        let mut pa = pa.clone();
        // The timers may differ; whether the path has its own BFD settings may not.
        let bfd_ok = match (pa.bfd, pb.bfd) {
            (Some(x), Some(y)) => same_but_timers(&x, &y),
            (x, y) => x.is_none() == y.is_none(),
        };
        pa.bfd = pb.bfd;
        if pa != *pb {
            refused.push(format!("tunnel.paths[{i}]"));
        } else if !bfd_ok {
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
            p.requests.push(Request::RouteDel { prefix: r.prefix });
            p.changes.push(format!("route {} removed", r.prefix));
        }
    }
    for r in &new.routes {
        match old.routes.iter().find(|o| o.prefix == r.prefix) {
            Some(o) if o.via == r.via => {}
            found => {
                p.requests.push(Request::RouteAdd {
                    prefix: r.prefix,
                    via: r.via,
                });
                p.changes.push(match found {
                    Some(o) => format!("route {} via {} (was via {})", r.prefix, r.via, o.via),
                    None => format!("route {} via {} added", r.prefix, r.via),
                });
            }
        }
    }
}

fn mcast_rules(old: &Config, new: &Config, p: &mut Plan) {
    for r in &old.mcast_rules {
        if !new.mcast_rules.iter().any(|n| n.input == r.input) {
            p.requests.push(Request::McastDel {
                input: r.input.clone(),
            });
            p.changes.push(format!("relay rule {} removed", r.input));
        }
    }
    for r in &new.mcast_rules {
        match old.mcast_rules.iter().find(|o| o.input == r.input) {
            Some(o) if o == r => {}
            found => {
                p.requests.push(Request::McastAdd {
                    rule: r.clone(),
                    replace: found.is_some(),
                });
                p.changes.push(format!(
                    "relay rule {} {}",
                    r.input,
                    if found.is_some() { "changed" } else { "added" }
                ));
            }
        }
    }
}

fn bfd_timers(a: &TunnelConfig, b: &TunnelConfig, p: &mut Plan) {
    for (pa, pb) in a.paths.iter().zip(&b.paths) {
        let (x, y) = (pa.bfd.unwrap_or(a.bfd), pb.bfd.unwrap_or(b.bfd));
        if x == y || !y.enabled {
            continue;
        }
        p.requests.push(Request::BfdSet {
            path: pb.name.clone(),
            desired_min_tx: Some(y.desired_min_tx),
            required_min_rx: Some(y.required_min_rx),
            detect_mult: Some(y.detect_mult),
        });
        p.changes.push(format!(
            "path {} BFD timers: desired min TX {:?}, required min RX {:?}, detect mult {}",
            pb.name, y.desired_min_tx.0, y.required_min_rx.0, y.detect_mult
        ));
    }
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
            p.changes,
            [
                "route 10.21.0.0/16 removed",
                "route 10.22.0.0/16 via 10.10.2.3 added",
                "relay rule lan:239.1.1.1:5000 changed",
                "path a BFD timers: desired min TX 300ms, required min RX 100ms, detect mult 3",
            ]
        );
        assert!(matches!(
            p.requests[2],
            Request::McastAdd { replace: true, .. }
        ));
        assert!(matches!(
            &p.requests[3],
            Request::BfdSet { path, detect_mult: Some(3), .. } if path == "a"
        ));
    }

    #[test]
    fn what_cannot_change_live_is_refused_naming_every_key() {
        let text = BASE
            .replace("10.10.1.1/24", "10.10.1.254/24")
            .replace(
                "prefixes = [\"10.2.0.0/16\"]",
                "prefixes = [\"10.3.0.0/16\"]",
            )
            .replace("rate = \"100mbit\"", "rate = \"50mbit\"")
            .replace("prefix = \"10.20.0.0/16\"", "prefix = \"10.30.0.0/16\"");
        assert_eq!(
            plan_to(&text),
            Err(vec![
                "interfaces".to_string(),
                "tunnel.prefixes".into(),
                "tunnel.paths[0]".into(),
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
