//! A tap on one interface of a namespace: what an attacker on a WAN path sees and sends.
//! It captures the frames that pass the interface (both ways) and injects frames of its own,
//! which leave the interface as if the emulator had forwarded them.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};

use crate::netns::Netns;

fn open(iface: &str) -> Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>)> {
    let ni = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface)
        .with_context(|| format!("no interface {iface:?} in this namespace"))?;
    let cfg = pnet_datalink::Config {
        read_timeout: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    match pnet_datalink::channel(&ni, cfg).with_context(|| format!("tap on {iface}"))? {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => bail!("{iface}: not an Ethernet channel"),
    }
}

/// Captures up to `count` frames that pass `iface` in `ns` and satisfy `wanted`, for at
/// most `limit`.
pub fn capture(
    ns: &Netns,
    iface: &str,
    count: usize,
    limit: Duration,
    wanted: fn(&[u8]) -> bool,
) -> Result<std::thread::JoinHandle<Result<Vec<Vec<u8>>>>> {
    let iface = iface.to_owned();
    ns.spawn_in(move || {
        let (_tx, mut rx) = open(&iface)?;
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < count && Instant::now() < end {
            match rx.next() {
                Ok(f) if wanted(f) => got.push(f.to_vec()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(got)
    })
}

/// Sends `frames` out of `iface` in `ns`, one every `every` (or as fast as it can with
/// zero), `rounds` times over.
pub fn inject(
    ns: &Netns,
    iface: &str,
    frames: Vec<Vec<u8>>,
    every: Duration,
    rounds: usize,
) -> Result<std::thread::JoinHandle<Result<u64>>> {
    let iface = iface.to_owned();
    ns.spawn_in(move || {
        let (mut tx, _rx) = open(&iface)?;
        let mut sent = 0u64;
        let mut due = Instant::now();
        for _ in 0..rounds {
            for f in &frames {
                if !every.is_zero() {
                    crate::probe::sleep_until(due);
                    due += every;
                }
                match tx.send_to(f, None) {
                    Some(Ok(())) => sent += 1,
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("tap: nothing sent"),
                }
            }
        }
        Ok(sent)
    })
}
