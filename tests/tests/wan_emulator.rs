//! System tests of the WAN emulator: host A — veth — [emulator namespace] — veth — host B.
//!
//! Each test builds its own namespaces and emulator and checks a measured value against the
//! configured one. They run one at a time (a process-wide lock): they measure time and
//! throughput, and two emulators busy-waiting on a 2-core machine would disturb each other.
//! Without root they are skipped with a message.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::probe::{send_seq, SeqReceiver};
use testbed::topology::{wan_pair, WanPair};
use testbed::wanem::{
    Action, Config, DirParams, Direction, Dur, EmulatorProcess, Event, LinkConfig, QueueLimit, Rate,
};
use testbed::{skip_unless_root, Netns};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn emulator_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wan-emulator"))
}

fn ms(n: u64) -> Dur {
    Dur(Duration::from_millis(n))
}

/// One link "l0" over the pair's link 0 with the same parameters both ways.
fn one_link(pair: &WanPair, both: DirParams) -> Config {
    let l = &pair.links[0];
    Config {
        control: None,
        links: vec![LinkConfig {
            name: "l0".into(),
            a_iface: l.emu_a_iface.clone(),
            b_iface: l.emu_b_iface.clone(),
            state: "up".into(),
            blackhole_dir: Direction::Both,
            both: Some(both),
            a_to_b: None,
            b_to_a: None,
        }],
        events: vec![],
    }
}

/// Resolves ARP both ways before a measurement, so the first probes are not held back by
/// neighbour resolution (or lost with it).
fn warm_up(pair: &WanPair) -> Result<()> {
    let b = pair.links[0].b_addr.to_string();
    pair.host_a
        .exec(&["ping", "-c", "2", "-i", "0.05", "-W", "2", &b])
        .context("warm-up ping")?;
    Ok(())
}

/// Sends `count` sequence-numbered datagrams from `from` to `to_addr` and returns the
/// sequence numbers that arrived, in arrival order.
fn udp_probe(
    from: &Netns,
    to: &Netns,
    to_addr: IpAddr,
    port: u16,
    count: u64,
    interval: Duration,
) -> Result<Vec<u64>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let limit = interval * count as u32 + Duration::from_millis(500);
    let rx = to.spawn_in(move || {
        let r = SeqReceiver::bind(port)?;
        let _ = ready_tx.send(());
        r.collect(Duration::from_millis(300), limit)
    })?;
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("receiver did not start")?;
    let dst = SocketAddr::new(to_addr, port);
    from.run_in(move || send_seq(dst, count, interval, 64))?;
    rx.join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 10 ms each way must give a 20 ms RTT: median of 20 pings within ±1 ms, none below.
#[test]
fn ping_rtt_matches_configured_delay() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let cfg = one_link(
        &pair,
        DirParams {
            delay: ms(10),
            ..Default::default()
        },
    );
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    warm_up(&pair)?;
    let b = pair.links[0].b_addr.to_string();
    let out = pair
        .host_a
        .exec(&["ping", "-c", "20", "-i", "0.05", "-W", "2", &b])?;
    let mut rtts: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    ensure!(rtts.len() == 20, "expected 20 replies:\n{out}");
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let med = median(&mut rtts);
    let snap = emu.stop()?;
    let ab = &snap.links[0].a_to_b;
    eprintln!(
        "RTT median {med:.3} ms (error {:+.3} ms), min {min:.3} ms; release lateness max {:.1} us, mean {:.1} us",
        med - 20.0,
        ab.stats.late_max_us,
        ab.stats.late_mean_us
    );
    ensure!(
        (med - 20.0).abs() <= 1.0,
        "median RTT {med} ms, want 20 ± 1"
    );
    ensure!(
        min >= 20.0,
        "min RTT {min} ms is below the configured 20 ms"
    );
    Ok(())
}

/// TCP through a 50 Mbit/s link with a 100 ms queue: goodput within ±3 % of the rate times
/// the payload share of a full frame. The emulator charges the Ethernet frame as AF_PACKET
/// sees it (14 B header + 1500 B IP packet, no overhead configured); a full-sized segment
/// carries 1448 B of payload (1500 - 20 IP - 32 TCP with timestamps), so the ceiling is
/// 50 Mbit/s × 1448 / 1514 = 47.82 Mbit/s. Measured by iperf3 over 8 s after a 2 s omit.
#[test]
fn tcp_goodput_matches_rate() -> Result<()> {
    if skip_unless_root(&["iperf3", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let rate = 50_000_000u64;
    let cfg = one_link(
        &pair,
        DirParams {
            delay: ms(5),
            rate: Some(Rate(rate)),
            queue: QueueLimit::Time(Duration::from_millis(100)),
            ..Default::default()
        },
    );
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    let _server = pair.host_b.spawn(&["iperf3", "-s", "-1", "-p", "5201"])?;
    std::thread::sleep(Duration::from_millis(200));
    let b = pair.links[0].b_addr.to_string();
    let out = pair
        .host_a
        .exec(&["iperf3", "-c", &b, "-p", "5201", "-O", "2", "-t", "8", "-J"])?;
    let json: serde_json::Value = serde_json::from_str(&out).context("iperf3 JSON")?;
    let goodput = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no sum_received in iperf3 output")?;
    let expected = rate as f64 * 1448.0 / 1514.0;
    let err = goodput / expected - 1.0;
    let snap = emu.stop()?;
    let ab = &snap.links[0].a_to_b;
    eprintln!(
        "goodput {:.3} Mbit/s vs {:.3} expected: error {:+.2} %; queue drops {}, lateness max {:.1} us",
        goodput / 1e6,
        expected / 1e6,
        err * 100.0,
        ab.stats.dropped(testbed::wanem::DropReason::Queue),
        ab.stats.late_max_us
    );
    ensure!(
        err.abs() <= 0.03,
        "goodput error {:.2} % exceeds 3 %",
        err * 100.0
    );
    Ok(())
}

/// 10 % random loss over 5000 datagrams: the count lost must be within 4 sigma of the
/// binomial mean, and agree with the emulator's own loss counter (which may also have hit
/// the odd ARP frame, hence the small allowance).
#[test]
fn random_loss_within_binomial_bounds() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let cfg = one_link(&pair, DirParams::default());
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    warm_up(&pair)?;
    // Loss is switched on through the control socket after ARP is resolved.
    emu.control()?.cmd("link l0 a-to-b loss 0.1")?;
    let n = 5000u64;
    let got = udp_probe(
        &pair.host_a,
        &pair.host_b,
        pair.links[0].b_addr.into(),
        6000,
        n,
        Duration::from_micros(200),
    )?;
    let lost = n - got.len() as u64;
    let snap = emu.stop()?;
    let counted = snap.links[0]
        .a_to_b
        .stats
        .dropped(testbed::wanem::DropReason::Loss);
    let (mean, sigma) = (n as f64 * 0.1, (n as f64 * 0.1 * 0.9).sqrt());
    eprintln!(
        "lost {lost} of {n} ({:.2} %), expected {mean:.0} ± {:.0} (4 sigma); emulator counted {counted}",
        lost as f64 * 100.0 / n as f64,
        4.0 * sigma
    );
    ensure!(
        (lost as f64 - mean).abs() <= 4.0 * sigma,
        "lost {lost}, outside {mean} ± {}",
        4.0 * sigma
    );
    ensure!(
        counted >= lost && counted <= lost + 3,
        "emulator counted {counted} losses, receiver saw {lost}"
    );
    Ok(())
}

/// Gilbert-Elliott p = 0.01, r = 0.25: mean loss p/(p+r) = 3.85 %, mean burst 1/r = 4.
/// Bursts make the count far more variable than binomial, so the bounds are loose.
#[test]
fn burst_loss_has_expected_rate_and_burst_length() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let cfg = one_link(&pair, DirParams::default());
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    warm_up(&pair)?;
    emu.control()?.cmd("link l0 a-to-b ge_p 0.01 ge_r 0.25")?;
    let n = 5000u64;
    let mut got = udp_probe(
        &pair.host_a,
        &pair.host_b,
        pair.links[0].b_addr.into(),
        6001,
        n,
        Duration::from_micros(200),
    )?;
    drop(emu);
    got.sort_unstable();
    let mut received = vec![false; n as usize];
    for s in got {
        received[s as usize] = true;
    }
    let lost = received.iter().filter(|r| !**r).count() as f64;
    let bursts = received.windows(2).filter(|w| w[0] && !w[1]).count() as f64;
    let rate = lost / n as f64;
    let mean_burst = lost / bursts.max(1.0);
    eprintln!(
        "burst loss {:.2} % (expect 3.85), mean burst {mean_burst:.2} (expect 4)",
        rate * 100.0
    );
    ensure!((0.015..=0.07).contains(&rate), "loss rate {rate}");
    ensure!((2.5..=6.0).contains(&mean_burst), "mean burst {mean_burst}");
    Ok(())
}

/// A blackhole scheduled at 1.000 s must take effect within 1 ms of that time by the
/// emulator's own clock, and the last probe forwarded before it (probes every 1 ms, 5 ms
/// one-way delay) must have left within 1 ms + one probe interval of it. At 1.4 s the link
/// comes back and the probes pass again.
#[test]
fn scheduled_blackhole_starts_on_time() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let mut cfg = one_link(
        &pair,
        DirParams {
            delay: ms(5),
            ..Default::default()
        },
    );
    let t_bh = Duration::from_millis(1000);
    let t_up = Duration::from_millis(1400);
    cfg.events = vec![
        Event {
            at: Dur(t_bh),
            link: "l0".into(),
            action: Action::Blackhole,
            direction: Direction::AToB,
            params: None,
        },
        Event {
            at: Dur(t_up),
            link: "l0".into(),
            action: Action::Up,
            direction: Direction::Both,
            params: None,
        },
    ];
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    warm_up(&pair)?;
    let mut ctl = emu.control()?;
    let started = ctl.show()?.uptime_us;
    ensure!(
        started < 700_000,
        "setup took too long ({started} us) to probe before the event"
    );
    // Probes every 1 ms from now until ~1.7 s after the emulator started.
    let interval = Duration::from_millis(1);
    let count = (1_700_000 - started) / 1000;
    let (probe_tx, probe_rx) = mpsc::channel();
    let b_addr = pair.links[0].b_addr;
    let rx_thread = {
        let (ready_tx, ready_rx) = mpsc::channel();
        let h = pair.host_b.spawn_in(move || {
            let r = SeqReceiver::bind(6002)?;
            let _ = ready_tx.send(());
            // Idle timeout well above the 400 ms blackhole, so it waits through it.
            r.collect(Duration::from_millis(1000), Duration::from_secs(4))
        })?;
        ready_rx.recv_timeout(Duration::from_secs(5))?;
        h
    };
    let sender = pair.host_a.spawn_in(move || {
        let r = send_seq(SocketAddr::new(b_addr.into(), 6002), count, interval, 64);
        let _ = probe_tx.send(());
        r
    })?;
    // Read the counters while the blackhole is in force.
    loop {
        let s = ctl.show()?;
        if s.uptime_us >= 1_200_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let during = ctl.show()?;
    let _ = probe_rx.recv_timeout(Duration::from_secs(5));
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let got = rx_thread
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let snap = emu.stop()?;

    let ev = &snap.events;
    ensure!(ev.len() == 2, "expected 2 applied events, got {ev:?}");
    let bh_err = ev[0].applied_us as i64 - t_bh.as_micros() as i64;
    let up_err = ev[1].applied_us as i64 - t_up.as_micros() as i64;
    let last_fwd = during.links[0].a_to_b.stats.last_forward_us as i64;
    let bh_us = t_bh.as_micros() as i64;
    let dropped = snap.links[0]
        .a_to_b
        .stats
        .dropped(testbed::wanem::DropReason::Blackhole);
    let missing = count - got.len() as u64;
    eprintln!(
        "blackhole applied {bh_err} us after its time (up: {up_err} us); last probe forwarded \
         {} us before it; {dropped} probes blackholed, {missing} missing at the receiver",
        bh_us - last_fwd
    );
    ensure!(
        (0..=1000).contains(&bh_err),
        "blackhole applied {bh_err} us late"
    );
    ensure!((0..=1000).contains(&up_err), "up applied {up_err} us late");
    ensure!(
        last_fwd <= bh_us + 1000 && last_fwd >= bh_us - 1000 - interval.as_micros() as i64,
        "last forward at {last_fwd} us, blackhole at {bh_us} us"
    );
    // 400 ms of 1 ms probes were blackholed, and the emulator accounted for every one.
    ensure!(
        (360..=440).contains(&dropped),
        "{dropped} probes blackholed, expected about 400"
    );
    // The emulator may also have dropped an ARP probe or two of host A's.
    ensure!(
        dropped >= missing && dropped <= missing + 3,
        "receiver missed {missing}, emulator dropped {dropped}"
    );
    ensure!(
        got.last().copied() == Some(count - 1),
        "probes did not resume after the blackhole"
    );
    Ok(())
}

/// True when `dev` in `ns` has lost its carrier (`NO-CARRIER` in `ip link`).
fn no_carrier(ns: &Netns, dev: &str) -> Result<bool> {
    Ok(ns
        .ip(&["-o", "link", "show", "dev", dev])?
        .contains("NO-CARRIER"))
}

/// Polls until both hosts' link interfaces show (or no longer show) NO-CARRIER.
fn wait_carrier(pair: &WanPair, lost: bool) -> Result<Duration> {
    let l = &pair.links[0];
    let t0 = std::time::Instant::now();
    loop {
        let a = no_carrier(&pair.host_a, &l.a_iface)?;
        let b = no_carrier(&pair.host_b, &l.b_iface)?;
        if a == lost && b == lost {
            return Ok(t0.elapsed());
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(2),
            "carrier still {} after 2 s (host A no-carrier: {a}, host B: {b})",
            if lost { "on" } else { "off" }
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `down` is carrier-like: nothing passes in either direction, and the interfaces of both
/// hosts attached to the link lose their carrier (the emulator takes its own veth ends
/// down). `up` brings the carrier back, and traffic passes again both ways over the same
/// emulator sockets.
#[test]
fn down_drops_carrier_and_blocks_both_directions_and_up_restores() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let cfg = one_link(&pair, DirParams::default());
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    warm_up(&pair)?;
    let mut ctl = emu.control()?;
    let l = &pair.links[0];
    let interval = Duration::from_millis(1);
    ensure!(
        !no_carrier(&pair.host_a, &l.a_iface)? && !no_carrier(&pair.host_b, &l.b_iface)?,
        "carrier off before the link went down"
    );
    ctl.cmd("link l0 state down")?;
    let lost_after = wait_carrier(&pair, true)?;
    let ab = udp_probe(
        &pair.host_a,
        &pair.host_b,
        l.b_addr.into(),
        6003,
        200,
        interval,
    )?;
    let ba = udp_probe(
        &pair.host_b,
        &pair.host_a,
        l.a_addr.into(),
        6004,
        200,
        interval,
    )?;
    ensure!(
        no_carrier(&pair.host_a, &l.a_iface)? && no_carrier(&pair.host_b, &l.b_iface)?,
        "carrier came back while the link was down"
    );
    ctl.cmd("link l0 state up")?;
    let back_after = wait_carrier(&pair, false)?;
    let ab2 = udp_probe(
        &pair.host_a,
        &pair.host_b,
        l.b_addr.into(),
        6005,
        100,
        interval,
    )?;
    let ba2 = udp_probe(
        &pair.host_b,
        &pair.host_a,
        l.a_addr.into(),
        6006,
        100,
        interval,
    )?;
    let snap = emu.stop()?;
    let log: Vec<&str> = snap.events.iter().map(|e| e.change.as_str()).collect();
    eprintln!(
        "carrier lost {:.1} ms after `down`, back {:.1} ms after `up`; down: received {} a->b \
         and {} b->a; up: received {} and {}; log {log:?}",
        lost_after.as_secs_f64() * 1e3,
        back_after.as_secs_f64() * 1e3,
        ab.len(),
        ba.len(),
        ab2.len(),
        ba2.len()
    );
    ensure!(ab.is_empty() && ba.is_empty(), "traffic passed a down link");
    ensure!(
        ab2.len() == 100 && ba2.len() == 100,
        "traffic did not fully resume after up"
    );
    ensure!(
        log == ["state down (carrier off)", "state up (carrier on)"],
        "event log {log:?}"
    );
    Ok(())
}

/// A blackhole is the silent failure: nothing passes, but the carrier stays on.
#[test]
fn blackhole_keeps_the_carrier() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let cfg = one_link(&pair, DirParams::default());
    let emu = EmulatorProcess::start(&pair.emu, emulator_exe(), &cfg, &[])?;
    warm_up(&pair)?;
    let l = &pair.links[0];
    emu.control()?.cmd("link l0 state blackhole")?;
    std::thread::sleep(Duration::from_millis(100));
    let got = udp_probe(
        &pair.host_a,
        &pair.host_b,
        l.b_addr.into(),
        6007,
        50,
        Duration::from_millis(1),
    )?;
    ensure!(got.is_empty(), "traffic passed a blackhole");
    ensure!(
        !no_carrier(&pair.host_a, &l.a_iface)? && !no_carrier(&pair.host_b, &l.b_iface)?,
        "a blackhole must not drop the carrier"
    );
    Ok(())
}

/// The emulator's temporary directory (config, control socket) goes when the guard drops.
#[test]
fn emulator_directory_is_removed_with_it() -> Result<()> {
    if skip_unless_root(&["ethtool"]) {
        return Ok(());
    }
    let _s = serial();
    let pair = wan_pair(1)?;
    let emu = EmulatorProcess::start(
        &pair.emu,
        emulator_exe(),
        &one_link(&pair, DirParams::default()),
        &[],
    )?;
    let dir = emu.dir().to_path_buf();
    ensure!(dir.join("wanem.toml").exists(), "no config in {dir:?}");
    ensure!(
        testbed::rundir::is_registered(&dir),
        "not registered for signals"
    );
    drop(emu);
    ensure!(!dir.exists(), "{dir:?} left behind");
    Ok(())
}
