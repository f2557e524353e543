//! Golden runs of the real appliance binary on `net_pcap` vdevs: frames in
//! from one pcap file per port, everything each TX queue sent read back from
//! its own pcap (`<port>.out.q<N>.pcap`: N = worker, the last queue is the
//! management lcore's), and the final counters from `--final-stats`. No root
//! or network needed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use serde_json::Value;

use crate::bins::{workspace_bin, workspace_root};

/// net_pcap gives port N the MAC 02:70:63:61:70:N ("pcap").
pub fn pcap_mac(port: u8) -> [u8; 6] {
    [0x02, 0x70, 0x63, 0x61, 0x70, port]
}

/// Writes `frames` to a pcap file, 1 ms apart.
///
/// # Panics
/// If the file cannot be written (a test helper).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).expect("create pcap")).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("write packet");
    }
}

/// Every frame of a pcap file (none if it does not exist).
///
/// # Panics
/// If the file is not a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    let mut r = PcapReader::new(f).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("packet").data.into_owned());
    }
    out
}

/// A finished golden run.
#[derive(Debug)]
pub struct GoldenRun {
    /// Its directory (pcaps, profile, config, stats).
    pub dir: PathBuf,
    /// The final counters (`--final-stats`).
    pub stats: Value,
    /// What the appliance printed.
    pub log: String,
}

impl GoldenRun {
    /// Runs the appliance with one pcap port per `(name, input frames)`, the
    /// config `config` (its `{socket}` replaced by a control socket path), until
    /// it has received nothing for 1.5 s.
    ///
    /// # Panics
    /// If the appliance fails (a test helper).
    pub fn run(name: &str, ports: &[(&str, Vec<Vec<u8>>)], config: &str) -> GoldenRun {
        let dir =
            std::env::temp_dir().join(format!("appliance-golden-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let shipped = std::fs::read_to_string(workspace_root().join("hw-profiles/pcap.toml"))
            .expect("pcap profile");
        let head = shipped.split("[[ports]]").next().unwrap_or_default();
        let mut profile = head.to_string();
        for (port, frames) in ports {
            let input = dir.join(format!("{port}.in.pcap"));
            write_pcap(&input, frames);
            profile += &format!(
                "[[ports]]\nname = \"{port}\"\ndriver = \"pcap\"\nrx_pcap = \"{}\"\ntx_pcap = \"{}\"\n\n",
                input.display(),
                dir.join(format!("{port}.out")).display()
            );
        }
        std::fs::write(dir.join("profile.toml"), profile).expect("profile");
        let config = config.replace("{socket}", &dir.join("ctl.sock").display().to_string());
        std::fs::write(dir.join("config.toml"), config).expect("config");
        let start = Instant::now();
        let out = Command::new("timeout")
            .args(["-s", "KILL", "60"])
            .arg(workspace_bin("appliance"))
            .arg("--profile")
            .arg(dir.join("profile.toml"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .args(["--exit-when-idle-ms", "1500", "--final-stats"])
            .arg(dir.join("stats.json"))
            .output()
            .expect("run appliance");
        let log = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "appliance failed after {:?}:\n{log}",
            start.elapsed()
        );
        let stats: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).expect("stats"))
                .expect("json");
        GoldenRun { dir, stats, log }
    }

    /// What TX queue `queue` of `port` sent.
    pub fn sent(&self, port: &str, queue: usize) -> Vec<Vec<u8>> {
        read_pcap(&self.dir.join(format!("{port}.out.q{queue}.pcap")))
    }

    /// Drops of one reason.
    pub fn drops(&self, reason: &str) -> u64 {
        self.stats["drops"][reason].as_u64().unwrap_or(0)
    }

    /// Every packet mbuf is back in the pool at exit and no fan-out header is left.
    ///
    /// # Panics
    /// If one leaked.
    pub fn assert_no_mbuf_leaked(&self) {
        assert_eq!(
            self.stats["mempool_in_use_at_exit"], self.stats["mempool"]["baseline_in_use"],
            "no mbuf leaked"
        );
        assert_eq!(
            self.stats["headers_in_use_at_exit"].as_u64(),
            Some(0),
            "no header mbuf leaked"
        );
    }
}

impl Drop for GoldenRun {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
