//! Two appliances, one per site, joined by a tunnel over the test bed's emulated WAN links,
//! with plain Linux hosts behind them: the bed of the tunnel and failover tests.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::bins::workspace_bin;
use crate::scenario::iperf;
use crate::scenario::systems::appliance_tunnel::{self, ApplianceSites, Site, TunnelSpec};
use crate::scenario::systems::SitesSetup;
use crate::topology::{sites, sites_behind_nat, Sites};
use crate::wanem::config::{Dur, QueueLimit, Rate};
use crate::wanem::{Config, Control, DirParams, EmulatorProcess, LinkConfig};

pub const RATES: [u64; 2] = [30_000_000, 8_000_000];
pub const DELAYS_MS: [u64; 2] = [10, 30];

/// Host A — appliance A — two emulated links — appliance B — host B, with `loss` on every
/// link and direction.
#[derive(Debug)]
pub struct Bed {
    // Dropped in this order: appliances, emulator, namespaces.
    pair: Option<ApplianceSites>,
    pub emu: Option<EmulatorProcess>,
    pub setup: SitesSetup,
    pub sites: Sites,
}

pub fn bed(scheduler: &str, loss: f64) -> Result<Bed> {
    bed_with(TunnelSpec::new(scheduler, &RATES), loss)
}

pub fn bed_with(spec: TunnelSpec, loss: f64) -> Result<Bed> {
    start_bed(spec, loss, true)
}

/// [`bed_with`], without waiting for the tunnel to form (a test of wrong keys).
pub fn bed_unformed(spec: TunnelSpec) -> Result<Bed> {
    start_bed(spec, 0.0, false)
}

fn start_bed(spec: TunnelSpec, loss: f64, formed: bool) -> Result<Bed> {
    let sites = if spec.nat {
        sites_behind_nat(2)?
    } else {
        sites(2)?
    };
    let links = sites
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| LinkConfig {
            name: appliance_tunnel::link_name(i),
            a_iface: l.emu_a_iface.clone(),
            b_iface: l.emu_b_iface.clone(),
            state: "up".into(),
            both: Some(DirParams {
                delay: Dur(Duration::from_millis(DELAYS_MS[i])),
                rate: Some(Rate(RATES[i])),
                queue: QueueLimit::Time(Duration::from_millis(100)),
                loss,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let cfg = Config {
        control: None,
        links,
        events: vec![],
    };
    let emu = EmulatorProcess::start(&sites.emu, &workspace_bin("wan-emulator"), &cfg, &[])?;
    let exe = workspace_bin("appliance");
    let (pair, setup) = if formed {
        appliance_tunnel::start(&sites, &spec, &exe)?
    } else {
        appliance_tunnel::start_unchecked(&sites, &spec, &exe)?
    };
    Ok(Bed {
        pair: Some(pair),
        emu: Some(emu),
        setup,
        sites,
    })
}

impl Bed {
    pub fn pair(&self) -> &ApplianceSites {
        self.pair.as_ref().expect("running")
    }

    /// Restarts one site's appliance (SIGINT, then the same files) and waits for its control
    /// socket.
    pub fn restart(&mut self, site: Site) -> Result<()> {
        let ns = match site {
            Site::A => &self.sites.app_a,
            Site::B => &self.sites.app_b,
        };
        self.pair.as_mut().context("running")?.restart(site, ns)
    }

    /// `show paths` of one site.
    pub fn paths(&self, site: Site) -> Vec<Value> {
        let r =
            appliance_tunnel::request(self.pair().socket(site), r#"{"cmd":"show","what":"paths"}"#)
                .expect("show paths");
        r["data"].as_array().cloned().unwrap_or_default()
    }

    pub fn show(&self, site: Site, what: &str) -> Value {
        let line = format!(r#"{{"cmd":"show","what":"{what}"}}"#);
        appliance_tunnel::request(self.pair().socket(site), &line).expect("show")["data"].clone()
    }

    /// iperf3 TCP, one stream, host A to host B: Mbit/s the receiver got.
    pub fn tcp(&self, secs: u64) -> Result<f64> {
        self.tcp_streams(secs, 1)
    }

    /// `streams` Cubic streams from host A to host B for `secs`: the Mbit/s host B received.
    pub fn tcp_streams(&self, secs: u64, streams: u32) -> Result<f64> {
        let s = &self.sites;
        let server = iperf::start_server(
            &s.host_b.ns,
            &self.setup.wrapper,
            s.host_b.addr,
            Duration::from_secs(1),
        )?;
        let args = iperf::tcp_args(
            s.host_b.addr,
            streams,
            Duration::from_secs(secs),
            Duration::from_secs(1),
            Some("cubic"),
        );
        let client = iperf::run_client(
            &s.host_a.ns,
            &self.setup.wrapper,
            &args,
            Duration::from_secs(secs + 30),
        )?;
        let out = iperf::parse_tcp(&client, &iperf::server_report(server)?)?;
        Ok(out.received_mbps)
    }

    /// Stops everything; checks both appliances exited with the mempool at its baseline.
    pub fn finish(mut self) -> Result<[Value; 2]> {
        let finals = self.pair.take().context("running")?.stop()?;
        for (site, f) in ["A", "B"].iter().zip(&finals) {
            for line in f["log"]
                .as_str()
                .unwrap_or("")
                .lines()
                .filter(|l| l.contains("tunnel path"))
            {
                eprintln!("  site {site}: {line}");
            }
            assert_eq!(
                f["mempool_in_use_at_exit"], f["mempool"]["baseline_in_use"],
                "site {site}: no mbuf leaked"
            );
            assert_eq!(
                f["headers_in_use_at_exit"].as_u64(),
                Some(0),
                "site {site}: header pool"
            );
        }
        drop(self.emu.take());
        Ok(finals)
    }
}

impl Bed {
    /// One command to the emulator's control socket, e.g. `link a state blackhole both`.
    pub fn emulator(&self, line: &str) -> Result<Value> {
        let emu = self.emu.as_ref().context("emulator")?;
        Control::connect(&emu.control_path)?.cmd(line)
    }

    /// `show paths` of one site, the path named `name`.
    pub fn path(&self, site: Site, name: &str) -> Value {
        self.paths(site)
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or(Value::Null)
    }

    /// `appliancectl path down|up NAME` on one site.
    pub fn set_path_admin(&self, site: Site, name: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        let line = format!(r#"{{"cmd":"path_admin","path":"{name}","state":"{state}"}}"#);
        let r = appliance_tunnel::request(self.pair().socket(site), &line)?;
        anyhow::ensure!(r["ok"] == true, "path {state} {name}: {r}");
        Ok(())
    }

    /// Waits until every path's BFD session is Up on both sites.
    pub fn wait_bfd_up(&self, limit: Duration) -> Result<()> {
        let end = std::time::Instant::now() + limit;
        loop {
            let all_up = [Site::A, Site::B].iter().all(|s| {
                self.paths(*s)
                    .iter()
                    .all(|p| p["bfd"]["local_state"] == "Up")
            });
            if all_up {
                return Ok(());
            }
            if std::time::Instant::now() > end {
                anyhow::bail!(
                    "BFD not Up on every path within {limit:?}: A {:?}, B {:?}",
                    self.paths(Site::A)
                        .iter()
                        .map(|p| p["bfd"].clone())
                        .collect::<Vec<_>>(),
                    self.paths(Site::B)
                        .iter()
                        .map(|p| p["bfd"].clone())
                        .collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
