//! The service manager's notify protocol (systemd `Type=notify` with `WatchdogSec=`): READY
//! once the data plane forwards, STOPPING when it begins to stop, a STATUS line, and WATCHDOG
//! pings only while the management lcore and every worker make progress, so that systemd
//! restarts an appliance whose worker wedged (a loop that no longer polls) as well as one
//! whose management lcore did. Started by hand (no `NOTIFY_SOCKET`), every call does nothing.
//!
//! Everything here runs on the management lcore: the pings are its timer, so a wedged
//! management lcore sends none either.

use std::time::Duration;

use sd_notify::NotifyState;

/// Talks to the service manager, if one started us.
#[derive(Debug)]
pub struct ServiceManager {
    watchdog: Option<Watchdog>,
}

/// systemd's watchdog: its timeout and each worker's loop count at the last check.
#[derive(Debug)]
struct Watchdog {
    timeout: Duration,
    seen: Vec<u64>,
    /// Whether the last check found a worker stalled (a stall is logged once, when it starts).
    stalled: bool,
}

/// What a watchdog check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every worker looped since the last check: pinged.
    Pinged,
    /// These workers did not loop since the last check: no ping.
    Stalled(Vec<usize>),
}

impl ServiceManager {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`) as systemd set them.
    pub fn from_env() -> Self {
        Self::with_watchdog(sd_notify::watchdog_enabled())
    }

    /// With the watchdog's timeout, if systemd asked for one.
    pub fn with_watchdog(timeout: Option<Duration>) -> Self {
        Self {
            watchdog: timeout.map(|timeout| Watchdog {
                timeout,
                seen: Vec::new(),
                stalled: false,
            }),
        }
    }

    /// How often to check the workers and ping: half the timeout, as systemd advises, so a
    /// ping is never late while all is well.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.as_ref().map(|w| w.timeout / 2)
    }

    /// READY=1 with a status line: the ports are started and the workers forward.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STOPPING=1: the appliance has begun to stop.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Pings the watchdog if every worker's loop count (`polls`, by worker) moved since the
    /// last check. The first check only records the counts, and pings.
    pub fn watchdog(&mut self, polls: &[u64]) -> Option<Progress> {
        let w = self.watchdog.as_mut()?;
        let stalled: Vec<usize> = if w.seen.len() == polls.len() {
            (0..polls.len())
                .filter(|&i| polls[i] == w.seen[i])
                .collect()
        } else {
            Vec::new()
        };
        w.seen = polls.to_vec();
        if stalled.is_empty() {
            if w.stalled {
                log::info!("every worker loops again: watchdog pings resume");
            }
            w.stalled = false;
            send(&[NotifyState::Watchdog]);
            Some(Progress::Pinged)
        } else {
            if !w.stalled {
                log::error!(
                    "workers {stalled:?} made no progress for {:?}: watchdog not pinged \
                     (systemd restarts the appliance if they stay stalled)",
                    w.timeout / 2
                );
            }
            w.stalled = true;
            Some(Progress::Stalled(stalled))
        }
    }
}

/// Sends `states`; a service manager that went away is no reason to stop forwarding.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("service manager notification failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_watchdog_nothing_is_checked() {
        let mut s = ServiceManager::with_watchdog(None);
        assert_eq!(s.watchdog_every(), None);
        assert_eq!(s.watchdog(&[1, 2]), None);
    }

    #[test]
    fn a_worker_that_stops_looping_stops_the_pings() {
        let mut s = ServiceManager::with_watchdog(Some(Duration::from_secs(4)));
        assert_eq!(s.watchdog_every(), Some(Duration::from_secs(2)));
        assert_eq!(s.watchdog(&[10, 20]), Some(Progress::Pinged));
        assert_eq!(s.watchdog(&[11, 25]), Some(Progress::Pinged));
        assert_eq!(s.watchdog(&[11, 30]), Some(Progress::Stalled(vec![0])));
        assert_eq!(s.watchdog(&[11, 30]), Some(Progress::Stalled(vec![0, 1])));
        assert_eq!(s.watchdog(&[12, 31]), Some(Progress::Pinged));
    }
}
