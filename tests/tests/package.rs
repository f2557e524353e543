//! The install and the Debian package: `make install-files` lays out the binaries, the
//! systemd unit (with its paths filled in), the example profiles and configs and the
//! documentation; `packaging/deb.sh` builds a package of that tree whose control fields,
//! conffiles and file list are checked, which installs into a scratch root with dpkg, runs
//! from there, and removes cleanly.

use std::path::Path;
use std::process::Command;

use testbed::bins::{workspace_bin, workspace_root};
use testbed::netns::skip_unless_root;

/// Runs `cmd`, panicking with its output if it fails; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The debug binaries' folder (what `make test` built).
fn bin_dir() -> String {
    workspace_bin("appliance")
        .parent()
        .expect("bin dir")
        .display()
        .to_string()
}

/// What every install holds, relative to its root, with PREFIX=/usr and SYSCONFDIR=/etc.
const FILES: &[&str] = &[
    "usr/bin/appliance",
    "usr/bin/appliancectl",
    "usr/lib/systemd/system/appliance.service",
    "etc/appliance/examples/hw-profiles/vm-af-packet.toml",
    "etc/appliance/examples/hw-profiles/baremetal-e810.toml",
    "etc/appliance/examples/configs/demo.toml",
    "usr/share/doc/appliance/README.md",
    "usr/share/doc/appliance/docs/tunnel.md",
    "usr/share/doc/appliance/docs/wire-format.md",
];

#[test]
fn make_install_lays_out_binaries_unit_examples_and_docs() {
    if skip_unless_root(&["make"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    run(Command::new("make")
        .current_dir(workspace_root())
        .args(["--no-print-directory", "-s", "install-files", "PREFIX=/usr"])
        .arg(format!("DESTDIR={}", root.display()))
        .arg(format!("BINSRC={}", bin_dir())));
    for f in FILES {
        assert!(root.join(f).is_file(), "{f} not installed");
    }
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/appliance.service"))
        .expect("unit");
    assert!(!unit.contains('@'), "placeholders left in the unit: {unit}");
    assert!(
        unit.contains("ExecStart=/usr/bin/appliance --profile /etc/appliance/profile.toml"),
        "{unit}"
    );
    // The installed profiles and configs are the ones the tests use.
    assert_eq!(
        std::fs::read(root.join("etc/appliance/examples/configs/demo.toml")).expect("demo"),
        std::fs::read(workspace_root().join("configs/demo.toml")).expect("demo")
    );
}

#[test]
fn the_debian_package_installs_runs_and_removes() {
    if skip_unless_root(&["dpkg-deb", "dpkg", "make"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new("bash")
        .current_dir(workspace_root())
        .arg("packaging/deb.sh")
        .arg(dir.path().join("out"))
        .env("BINSRC", bin_dir()));
    let deb = Path::new(out.trim());
    assert!(deb.is_file(), "no package at {out}");

    let field = |name: &str| run(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg(name));
    assert_eq!(field("Package").trim(), "appliance");
    let depends = field("Depends");
    assert!(
        depends.contains("libc6") && depends.contains("librte"),
        "Depends names the C library and DPDK's: {depends}"
    );
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    for f in FILES {
        assert!(
            contents.contains(&format!("./{f}")),
            "{f} not in the package:\n{contents}"
        );
    }
    // Root-owned, the binaries executable.
    assert!(
        contents
            .lines()
            .filter(|l| l.ends_with("./usr/bin/appliance"))
            .all(|l| l.starts_with("-rwxr-xr-x root/root")),
        "{contents}"
    );
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert!(
        conffiles.lines().all(|l| l.starts_with("/etc/appliance/"))
            && conffiles.contains("/etc/appliance/examples/configs/demo.toml"),
        "{conffiles}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(control.join(script)).expect(script);
        let commands: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert!(
            !commands.is_empty()
                && commands.iter().all(|l| {
                    !l.contains("enable") && !l.contains(" start") && !l.contains("restart")
                }),
            "{script} must not enable or start the service: {text}"
        );
    }

    // Into a scratch root with its own dpkg database; the maintainer scripts run outside it
    // (there is no shell inside).
    let root = dir.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("dpkg dirs");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-depends",
                "--force-script-chrootless",
                "--log=/dev/null",
            ])
            .args(args))
    };
    dpkg(&["-i", &deb.display().to_string()]);
    let listed = dpkg(&["-L", "appliance"]);
    for f in FILES {
        assert!(
            listed.contains(&format!("/{f}")),
            "dpkg -L lacks {f}:\n{listed}"
        );
    }
    let version = run(Command::new(root.join("usr/bin/appliance")).arg("--version"));
    assert!(version.starts_with("appliance "), "{version}");
    dpkg(&["--purge", "appliance"]);
    assert!(
        !root.join("usr/bin/appliance").exists() && !root.join("etc/appliance/examples").exists(),
        "files left after purge"
    );
}
