//! Network namespaces and the processes run inside them, with guaranteed cleanup.
//!
//! Every namespace this process creates is named `tb<pid hex>x<counter hex>-<role>` and is
//! recorded in a process-wide registry. It is removed (after killing every process inside it)
//! when its [`Netns`] guard drops, which covers success and test failures (panics unwind in the
//! test harness). SIGINT, SIGTERM and SIGHUP are caught by a handler thread that removes
//! everything still registered before exiting, and namespaces left by a process that was
//! SIGKILLed are removed by the next run (see [`cleanup_orphans`]).
//!
//! Interfaces are always created directly inside a namespace, never in the root namespace, so
//! deleting the namespaces also deletes every veth of the run.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Every name this crate creates starts with this, so orphans can be recognised.
const NAME_PREFIX: &str = "tb";
/// Linux limit for interface names (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// Commands run through [`Netns::exec`] that take longer than this are killed.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Names of the namespaces created by this process and not yet removed.
static REGISTRY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static COUNTER: AtomicU32 = AtomicU32::new(0);
static INIT: Once = Once::new();

/// True when running as root, which every namespace operation needs.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For tests: returns true (after printing why) when the test must be skipped because it is
/// not running as root or lacks a needed tool.
pub fn skip_unless_root(tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!("SKIPPED: needs root (network namespaces, AF_PACKET)");
        return true;
    }
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            eprintln!("SKIPPED: `{tool}` is not installed");
            return true;
        }
    }
    false
}

/// A unique base for the names of one topology instance: `tb<pid hex>x<counter hex>`.
///
/// The pid makes names unique across concurrent runs and lets [`cleanup_orphans`] tell whether
/// the owner is still alive; the counter makes them unique between tests of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunId {
    base: String,
}

impl RunId {
    /// Allocates the next base name, and on first use installs the signal handler and
    /// removes namespaces left behind by dead processes.
    pub fn new() -> RunId {
        init_process();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        RunId {
            base: format!("{}{:x}", process_prefix(), n),
        }
    }

    /// The base itself, e.g. `tb1f2ax3`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A namespace name for `role` (namespace names have no practical length limit).
    pub fn ns_name(&self, role: &str) -> String {
        format!("{}-{role}", self.base)
    }

    /// An interface name: the base plus a short suffix, at most [`IFNAME_MAX`] characters.
    ///
    /// # Panics
    /// If the result is too long: that is a bug in the caller's choice of suffix.
    pub fn ifname(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.base);
        assert!(
            name.len() <= IFNAME_MAX,
            "interface name {name} is longer than {IFNAME_MAX} characters"
        );
        name
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

/// `tb<pid hex>x`: the prefix of every name created by this process.
pub fn process_prefix() -> String {
    format!("{NAME_PREFIX}{:x}x", std::process::id())
}

/// Installs the signal thread and removes dead runs' namespaces, once per process.
pub(crate) fn init_process() {
    INIT.call_once(|| {
        if let Err(e) = cleanup_orphans() {
            log::warn!("removing namespaces of dead test runs failed: {e:#}");
        }
        install_signal_cleanup();
    });
}

/// On SIGINT/SIGTERM/SIGHUP, remove everything this process created (namespaces, with the
/// processes inside them, then the registered temporary directories), then exit.
///
/// A handler thread (not an async-signal handler) is used so that it may run commands.
fn install_signal_cleanup() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot install the cleanup signal handler: {e}");
            return;
        }
    };
    std::thread::Builder::new()
        .name("netns-cleanup".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("signal {sig}: removing this run's namespaces");
                cleanup_registered();
                crate::rundir::remove_registered();
                std::process::exit(128 + sig);
            }
        })
        .expect("spawn cleanup thread");
}

/// Makes a panic remove this process's namespaces (with their processes) and temporary
/// directories before the default handling. Binaries need this: the workspace builds them
/// with `panic = "abort"`, so no destructor runs after a panic.
pub fn cleanup_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("panic: removing this run's namespaces");
        cleanup_registered();
        crate::rundir::remove_registered();
    }));
}

/// Removes every namespace still registered by this process (used on signals).
pub fn cleanup_registered() {
    let names: Vec<String> = match REGISTRY.lock() {
        Ok(r) => r.iter().cloned().collect(),
        Err(p) => p.into_inner().iter().cloned().collect(),
    };
    for name in names {
        remove_netns(&name);
    }
}

/// Removes namespaces named by this crate whose creating process no longer exists.
pub fn cleanup_orphans() -> Result<usize> {
    let mut removed = 0;
    for name in list_netns()? {
        if let Some(pid) = owner_pid(&name) {
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                remove_netns(&name);
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Removes every namespace whose name starts with `prefix` (e.g. one run's [`RunId::base`]).
pub fn cleanup_prefix(prefix: &str) -> Result<usize> {
    let mut removed = 0;
    for name in list_netns()?.into_iter().filter(|n| n.starts_with(prefix)) {
        remove_netns(&name);
        removed += 1;
    }
    Ok(removed)
}

/// The pid encoded in a name of ours (`tb<pid hex>x...`), if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let hex = &rest[..rest.find('x')?];
    u32::from_str_radix(hex, 16).ok()
}

/// Names of all named network namespaces (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running `ip netns list`")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Kills every process in the namespace, deletes it and unregisters it. Never fails: this
/// runs from Drop and from the signal handler, where an error could only be logged.
fn remove_netns(name: &str) {
    for _ in 0..50 {
        let pids = netns_pids(name);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = Command::new("ip").args(["netns", "del", name]).output();
    match out {
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            if !err.contains("No such file") {
                log::warn!("ip netns del {name}: {}", err.trim());
            }
        }
        Err(e) => log::warn!("ip netns del {name}: {e}"),
        Ok(_) => {}
    }
    if let Ok(mut r) = REGISTRY.lock() {
        r.remove(name);
    }
}

fn netns_pids(name: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A named network namespace, deleted with everything inside it when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` and brings its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        init_process();
        // Register before creating, so a signal arriving in between still removes it.
        REGISTRY
            .lock()
            .map_err(|_| anyhow::anyhow!("netns registry poisoned"))?
            .insert(name.to_owned());
        let ns = Netns {
            name: name.to_owned(),
        };
        run_checked(Command::new("ip").args(["netns", "add", name]))?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as used by `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that will run `program` inside this namespace.
    ///
    /// It is wrapped in `setpriv --pdeathsig KILL`, so it dies with the thread that spawned
    /// it even if this process is SIGKILLed (then Drop never runs).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.name,
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",
        ])
        .arg(program)
        .stdin(Stdio::null());
        c
    }

    /// Runs `args[0]` with the remaining arguments inside the namespace, waits (at most 30 s)
    /// and returns its stdout. A non-zero exit status is an error that includes stderr.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let (program, rest) = args.split_first().context("empty command")?;
        let mut cmd = self.command(program);
        cmd.args(rest);
        let out = NsProcess::spawn(cmd)?.wait_timeout(EXEC_TIMEOUT)?;
        if !out.status.success() {
            bail!(
                "`{}` in {} failed ({}): {}",
                args.join(" "),
                self.name,
                out.status,
                out.stderr.trim()
            );
        }
        Ok(out.stdout)
    }

    /// Starts a long-running process inside the namespace. Its stdout and stderr are
    /// collected; it is killed when the returned guard drops.
    pub fn spawn(&self, args: &[&str]) -> Result<NsProcess> {
        let (program, rest) = args.split_first().context("empty command")?;
        let mut cmd = self.command(program);
        cmd.args(rest);
        NsProcess::spawn(cmd)
    }

    /// `ip -n <ns> <args>`: cheaper than `ip netns exec` since no mount namespace is made.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run_checked(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Loads an nftables ruleset (`nft -f`) into the namespace.
    pub fn nft(&self, ruleset: &str) -> Result<()> {
        let file = std::env::temp_dir().join(format!("{}.nft", self.name));
        std::fs::write(&file, ruleset).with_context(|| format!("writing {}", file.display()))?;
        let r = self.exec(&["nft", "-f", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        r.map(drop)
    }

    /// Sets a sysctl inside the namespace (`key` like `net.ipv4.ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Turns IPv4 forwarding on or off (Linux router namespaces).
    pub fn ip_forward(&self, on: bool) -> Result<()> {
        self.sysctl("net.ipv4.ip_forward", if on { "1" } else { "0" })
    }

    /// Stops the kernel from sending IPv6 ND/MLD chatter out of interfaces created later:
    /// namespaces whose interfaces are driven from user space (DPDK, the WAN emulator)
    /// should see only the test traffic.
    pub fn disable_ipv6(&self) -> Result<()> {
        self.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        self.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
    }

    /// Turns off TX checksum offload and segmentation/receive offloads on `dev`.
    ///
    /// Only for a host's link straight into the WAN emulator with no appliance between
    /// (the kernel-to-kernel baselines): the emulator stands for a wire, and a host's NIC
    /// would finish its checksums and cut its TSO frames before the wire. With them on,
    /// AF_PACKET would hand the emulator partial checksums and 64 KB frames.
    pub fn offloads_off(&self, dev: &str) -> Result<()> {
        self.exec(&[
            "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
        ])
        .map(drop)
    }

    /// Adds an address such as `10.1.0.2/24` to `dev`.
    pub fn addr_add(&self, dev: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        self.ip(&["addr", "add", &format!("{addr}/{prefix_len}"), "dev", dev])
            .map(drop)
    }

    /// Adds a route, e.g. `route_add("default", Some(gw), None)`.
    pub fn route_add(&self, dest: &str, via: Option<Ipv4Addr>, dev: Option<&str>) -> Result<()> {
        let via_s = via.map(|v| v.to_string());
        let mut args = vec!["route", "add", dest];
        if let Some(v) = &via_s {
            args.extend(["via", v.as_str()]);
        }
        if let Some(d) = dev {
            args.extend(["dev", d]);
        }
        self.ip(&args).map(drop)
    }

    /// Sets `dev` up with the given MTU.
    pub fn link_up(&self, dev: &str, mtu: u32) -> Result<()> {
        self.ip(&["link", "set", "dev", dev, "mtu", &mtu.to_string(), "up"])
            .map(drop)
    }

    /// The global IPv6 address `dev` made by SLAAC from a router advertisement
    /// of a prefix starting `prefix` (e.g. `"fd00:1:"`), once duplicate address
    /// detection is done and a default route through a link-local router is
    /// in place; waits up to 20 s.
    pub fn slaac_address(&self, dev: &str, prefix: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let addrs = self.ip(&[
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                dev,
                "scope",
                "global",
                "-tentative",
            ])?;
            let default = self.ip(&["-6", "route", "show", "default"])?;
            let address = addrs
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .unwrap_or_default();
            if address.starts_with(prefix) && default.contains("via fe80::") {
                return Ok(address.to_string());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no address in {prefix}* with a default route on {dev}: {addrs} {default}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What `ping` with `args` printed, whatever its exit status (the ICMP
    /// errors it reports make it fail).
    pub fn ping_output(&self, args: &[&str]) -> Result<String> {
        let mut c = self.command("ping");
        c.args(args);
        let out = NsProcess::spawn(c)?.wait_timeout(Duration::from_secs(20))?;
        Ok(format!("{}{}", out.stdout, out.stderr))
    }

    /// The MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> Result<String> {
        let out = self.ip(&["-o", "link", "show", "dev", dev])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_owned)
            .with_context(|| format!("no MAC for {dev} in {}", self.name))
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    ///
    /// Sockets created by `f` belong to the namespace. The thread ends before this returns,
    /// so it never keeps a deleted namespace alive.
    pub fn run_in<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.spawn_in(f)?
            .join()
            .map_err(|_| anyhow::anyhow!("thread in {} panicked", self.name))?
    }

    /// Like [`Netns::run_in`] but returns the thread's handle; the caller must join it
    /// before this namespace is dropped.
    pub fn spawn_in<T, F>(&self, f: F) -> Result<JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        Ok(std::thread::Builder::new()
            .name(format!("in-{}", self.name))
            .spawn(move || {
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
                drop(file);
                f()
            })?)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_netns(&self.name);
    }
}

/// Creates a veth pair with one end in each namespace, both up, with Linux's default
/// offloads (checksum offload, TSO, GSO, GRO on): as a container or VM guest beside the
/// appliance has them.
///
/// The first end is created directly inside `a` and the peer directly inside `b`, so no
/// interface ever exists in the root namespace.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str, mtu: u32) -> Result<()> {
    for d in [a_dev, b_dev] {
        if d.len() > IFNAME_MAX {
            bail!("interface name {d} is longer than {IFNAME_MAX} characters");
        }
    }
    a.ip(&[
        "link",
        "add",
        a_dev,
        "type",
        "veth",
        "peer",
        "name",
        b_dev,
        "netns",
        b.name(),
    ])?;
    a.link_up(a_dev, mtu)?;
    b.link_up(b_dev, mtu)?;
    Ok(())
}

fn run_checked(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a finished [`NsProcess`] printed.
#[derive(Debug)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A child process (usually inside a namespace) that is killed when dropped.
///
/// Its stdout and stderr are drained by background threads so it never blocks on a full pipe.
#[derive(Debug)]
pub struct NsProcess {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl NsProcess {
    /// Spawns `cmd` with stdout and stderr captured.
    pub fn spawn(mut cmd: Command) -> Result<NsProcess> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Ok(NsProcess {
            child,
            stdout,
            stderr,
        })
    }

    /// The process id (of `ip netns exec`, which execs into the real program).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. SIGINT to make a tool print its summary).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), sig).context("kill")
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit by itself; kills it if it takes longer than `limit`.
    pub fn wait_timeout(mut self, limit: Duration) -> Result<ProcessOutput> {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let status = self.child.wait()?;
                let out = self.collect(status);
                bail!(
                    "process {} did not finish within {limit:?}; stderr: {}",
                    self.child.id(),
                    out.stderr.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(self.collect(status))
    }

    /// Sends SIGTERM (SIGKILL after 2 s) and returns what it printed.
    pub fn stop(mut self) -> Result<ProcessOutput> {
        let status = self.terminate()?;
        Ok(self.collect(status))
    }

    fn terminate(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.child.try_wait()? {
            return Ok(s);
        }
        let _ = self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        Ok(self.child.wait()?)
    }

    fn collect(&mut self, status: ExitStatus) -> ProcessOutput {
        let take =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        ProcessOutput {
            status,
            stdout: take(self.stdout.take()),
            stderr: take(self.stderr.take()),
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_our_names_only() {
        assert_eq!(owner_pid("tb1f2ax3-emu"), Some(0x1f2a));
        assert_eq!(owner_pid("tbffx0-a"), Some(0xff));
        assert_eq!(owner_pid("other"), None);
        assert_eq!(owner_pid("tbzzx1"), None);
    }

    #[test]
    fn run_ids_are_unique_and_short() {
        let a = RunId::new();
        let b = RunId::new();
        assert_ne!(a, b);
        assert!(a.base().starts_with(&process_prefix()));
        // The longest suffix the topologies use must still fit.
        assert!(a.ifname("eb15").len() <= IFNAME_MAX);
    }
}
