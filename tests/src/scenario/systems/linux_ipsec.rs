//! `linux-ipsec`: the encrypted tunnel most sites run today, kernel IPsec. Each router holds
//! two static ESP security associations in tunnel mode over the first WAN link (outer
//! 172.16.0.1 ↔ .2), AES-256-GCM with a 16-byte ICV (`rfc4106(gcm(aes))`, fresh random keys
//! per run) and a 32-packet replay window (strongSwan's default), and policies that send
//! 10.1.0.0/24 ↔ 10.2.0.0/24 through them. No key exchange runs (an IKE daemon would set up
//! the same SAs); ESP cannot use a second link, so the others stay idle. The routers clamp
//! the TCP MSS of forwarded SYNs to the route's MTU, which the ESP bundle lowers, as an IPsec
//! gateway does.

use std::io::Read;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::linux_ecmp_vxlan::clamp_mss;
use super::SitesSetup;
use crate::netns::{Netns, RunId};
use crate::topology::Sites;

/// Security parameter indexes of the a→b and b→a associations.
const SPI_A_TO_B: &str = "0x1000a00b";
const SPI_B_TO_A: &str = "0x1000b00a";

/// RFC 4106 key material: a 256-bit AES key and the 4-byte salt.
const KEY_BYTES: usize = 36;

pub fn setup(s: &Sites) -> Result<SitesSetup> {
    let l0 = &s.links[0];
    let key_ab = random_hex(KEY_BYTES)?;
    let key_ba = random_hex(KEY_BYTES)?;
    let net_a = "10.1.0.0/24";
    let net_b = "10.2.0.0/24";
    for (ns, local, remote, here, there) in [
        (&s.app_a, l0.a_addr, l0.b_addr, net_a, net_b),
        (&s.app_b, l0.b_addr, l0.a_addr, net_b, net_a),
    ] {
        // Both SAs on both routers: one to send with, one to receive with.
        for (src, dst, spi, key) in [
            (l0.a_addr, l0.b_addr, SPI_A_TO_B, &key_ab),
            (l0.b_addr, l0.a_addr, SPI_B_TO_A, &key_ba),
        ] {
            state(ns, src, dst, spi, key)?;
        }
        policy(ns, here, there, "out", local, remote)?;
        policy(ns, there, here, "fwd", remote, local)?;
        policy(ns, there, here, "in", remote, local)?;
        clamp_mss(ns)?;
    }
    Ok(SitesSetup {
        notes: vec![
            "kernel ESP tunnel mode over the first WAN link, AES-256-GCM (rfc4106, 16-byte \
             ICV), static SAs, replay window 32, MSS clamped to the ESP route's MTU"
                .into(),
        ],
        ..SitesSetup::default()
    })
}

/// Why this kernel cannot run the row, if it cannot: it tries the same ESP AES-GCM SA in a
/// scratch namespace. A kernel built without ESP or GCM (`CONFIG_INET_ESP`,
/// `CONFIG_CRYPTO_GCM`) and without modules refuses it.
pub fn kernel_lacks_esp() -> Option<String> {
    let tried = Netns::create(&RunId::new().ns_name("esp")).and_then(|ns| {
        let args = state_args(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            SPI_A_TO_B,
            &random_hex(KEY_BYTES)?,
        );
        Ok(ns.command("ip").args(&args).output()?)
    });
    let refusal = match tried {
        Ok(out) if out.status.success() => return None,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("{e:#}"),
    };
    let mut reason = format!(
        "this kernel refuses an ESP AES-GCM SA (ip xfrm: {refusal}); kernel IPsec needs \
         CONFIG_INET_ESP and CONFIG_CRYPTO_GCM"
    );
    if let Some(config) = kernel_config(&["CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM"]) {
        reason.push_str(&format!(" (/proc/config.gz: {config})"));
    }
    Some(reason)
}

/// The named options' lines from `/proc/config.gz`, if the kernel exposes its config.
fn kernel_config(names: &[&str]) -> Option<String> {
    let out = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            names
                .iter()
                .any(|n| l.contains(&format!("{n}=")) || l.contains(&format!("{n} ")))
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

fn state(ns: &Netns, src: Ipv4Addr, dst: Ipv4Addr, spi: &str, key: &str) -> Result<()> {
    let args = state_args(src, dst, spi, key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ns.ip(&args)
        .with_context(|| format!("ESP SA {src} -> {dst}"))?;
    Ok(())
}

/// `ip xfrm state add` for one tunnel-mode ESP SA with AES-256-GCM and a 16-byte ICV.
fn state_args(src: Ipv4Addr, dst: Ipv4Addr, spi: &str, key: &str) -> Vec<String> {
    [
        "xfrm",
        "state",
        "add",
        "src",
        &src.to_string(),
        "dst",
        &dst.to_string(),
        "proto",
        "esp",
        "spi",
        spi,
        "reqid",
        "1",
        "mode",
        "tunnel",
        "replay-window",
        "32",
        "aead",
        "rfc4106(gcm(aes))",
        &format!("0x{key}"),
        "128",
    ]
    .map(str::to_string)
    .to_vec()
}

fn policy(
    ns: &Netns,
    from: &str,
    to: &str,
    dir: &str,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
) -> Result<()> {
    ns.ip(&[
        "xfrm",
        "policy",
        "add",
        "src",
        from,
        "dst",
        to,
        "dir",
        dir,
        "tmpl",
        "src",
        &outer_src.to_string(),
        "dst",
        &outer_dst.to_string(),
        "proto",
        "esp",
        "reqid",
        "1",
        "mode",
        "tunnel",
    ])
    .with_context(|| format!("IPsec policy {from} -> {to} {dir}"))?;
    Ok(())
}

/// `n` bytes from the kernel's CSPRNG, in hex.
fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
