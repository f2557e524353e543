//! Any text as a hardware profile and as a config: an error or a value, never a panic.
#![no_main]

use std::path::Path;

use appliance::config::{Config, HwProfile};
use libfuzzer_sys::fuzz_target;

const PROFILE: &str = r#"
name = "f"
poll_mode = "busy"
[eal]
lcores = "0-1"
memory_mb = 256
[mempool]
mbufs = 4095
[[ports]]
name = "lan"
driver = "null"
[[ports]]
name = "wan"
driver = "null"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = HwProfile::parse(Path::new("fuzz.toml"), text) {
        let _ = p.eal_args(0, "fuzz");
    }
    if let Ok(profile) = HwProfile::parse(Path::new("p.toml"), PROFILE) {
        let _ = Config::parse(Path::new("fuzz.toml"), text, &profile);
    }
});
