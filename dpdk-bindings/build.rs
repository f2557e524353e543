//! Generates the FFI from the system DPDK and builds the C shim.
//!
//! Both bindgen and the shim get the *full* `pkg-config --cflags libdpdk`
//! token list (including `-include rte_config.h` and `-march=`), so inline
//! functions compile exactly as DPDK's own build expects.

use std::env;
use std::path::PathBuf;
use std::process::{exit, Command};

const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let library = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(_) => {
            // One line, naming the fix: the build is useless without DPDK.
            eprintln!(
                "error: libdpdk >= {MIN_VERSION} not found by pkg-config; run `make deps` to install Debian's libdpdk-dev"
            );
            exit(1);
        }
    };
    println!("cargo:rustc-env=DPDK_PKG_VERSION={}", library.version);

    let cflags = pkg_config_cflags();

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").include("csrc").warnings(false);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("appliance_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_arg("-Icsrc")
        .clang_args(&cflags)
        .allowlist_function(
            "^(rte_(eal|eth|pktmbuf|mempool|ring|lcore|get|socket|strerror|version|thread|vdev|dev)_.*|rte_strerror|rte_version|rte_socket_id|shim_.*)",
        )
        .allowlist_var("^(RTE_.*|RING_F_.*|SOCKET_ID_ANY)")
        .allowlist_type("^rte_eth_.*")
        .blocklist_item("per_lcore_.*")
        .blocklist_item("max_align_t")
        .blocklist_type("rte_arp_.*")
        .blocklist_type("rte_l2tpv2_.*")
        .blocklist_type("rte_ecpri_.*")
        .opaque_type("rte_arp_ipv4")
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| {
            eprintln!("error: bindgen failed on the DPDK headers: {e}");
            exit(1);
        });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs into OUT_DIR");
}

fn pkg_config_cflags() -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config ran a moment ago");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
