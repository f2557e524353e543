//! Time for the management lcore and the workers: [`Time`], nanoseconds on one
//! monotonic clock, read from the CPU's time-stamp counter ([`Clock`]) with no
//! syscall, and [`Timers`], the deadlines a loop sleeps until.
//!
//! Everything that decides "is it time yet" (BFD detection, ARP retries, IGMP
//! reports, reorder deadlines) compares a [`Time`] it was handed with a
//! deadline it stored, so the answer never depends on how long the caller
//! slept: a loop that wakes late acts late, but acts correctly.

mod bucket;
mod timers;

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

pub use bucket::TokenBucket;
pub use timers::Timers;

/// A point on the appliance's monotonic clock, in nanoseconds since the clock
/// started. It has `std::time::Instant`'s arithmetic, but can be built from a
/// number, so tests and simulations step it by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The clock's start.
    pub const ZERO: Time = Time(0);

    /// `nanos` after the start.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// `secs` after the start (tests).
    pub const fn from_secs(secs: u64) -> Time {
        Time(secs * 1_000_000_000)
    }

    /// Nanoseconds since the start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the start, wrapping at 2^32 (the tunnel's send
    /// timestamps: only differences are used).
    pub const fn as_micros_u32(self) -> u32 {
        (self.0 / 1_000) as u32
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Same as [`Self::saturating_duration_since`] (`Instant`'s name for it).
    pub fn duration_since(self, earlier: Time) -> Duration {
        self.saturating_duration_since(earlier)
    }

    /// Time from `earlier` to `self`, `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: Time) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(nanos(d)))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(nanos(d)))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Lets the calling thread's sleeps end within a few microseconds of their
/// deadline instead of Linux's default 50 µs timer slack: a loop that sleeps
/// until its next timer should wake on time. Failure only costs precision.
pub fn set_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(10_000);
}

/// Runs the calling thread at the lowest real-time priority (`SCHED_RR` 1):
/// a sleeping loop then wakes on time even while every CPU is busy with
/// ordinary work (on this 2-vCPU test machine, an ordinary thread woke up to
/// 3 ms late under load, enough to make a 100 ms × 3 BFD session flap). Only
/// for threads that sleep whenever they are idle; the kernel's real-time
/// throttling keeps 5 % of each second for everything else regardless.
///
/// # Errors
/// Not permitted (not root and no `CAP_SYS_NICE`).
pub fn set_realtime_priority() -> Result<(), String> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::RoundRobin),
    )
    .map_err(|e| format!("{e:?}"))
}

/// Where [`Time`] comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The TSC: `cycles_per_sec` from the EAL, `origin` the cycle count at
    /// start.
    Tsc { origin: u64, cycles_per_sec: u64 },
    /// `std::time::Instant` (no EAL: unit tests, tools).
    System(std::time::Instant),
}

/// Reads [`Time`]. Copy one into each thread that needs it; all copies of one
/// clock agree.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    source: Source,
}

impl Clock {
    /// The TSC clock (needs the EAL, which measured its frequency). A read is
    /// one `rdtsc` and a multiplication: cheap enough for every burst.
    pub fn tsc() -> Clock {
        Clock {
            source: Source::Tsc {
                origin: dpdk_bindings::time::cycles(),
                cycles_per_sec: dpdk_bindings::time::cycles_per_sec().max(1),
            },
        }
    }

    /// A clock on `std::time::Instant`, for code that runs without the EAL.
    pub fn system() -> Clock {
        Clock {
            source: Source::System(std::time::Instant::now()),
        }
    }

    /// Now.
    #[inline]
    pub fn now(&self) -> Time {
        match self.source {
            Source::Tsc {
                origin,
                cycles_per_sec,
            } => {
                let cycles = dpdk_bindings::time::cycles().saturating_sub(origin);
                let ns = u128::from(cycles) * 1_000_000_000 / u128::from(cycles_per_sec);
                Time(u64::try_from(ns).unwrap_or(u64::MAX))
            }
            Source::System(origin) => Time(nanos(origin.elapsed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_instant_like_and_saturates() {
        let t = Time::from_secs(2);
        assert_eq!(t + Duration::from_millis(5) - t, Duration::from_millis(5));
        assert_eq!(t - Time::from_secs(3), Duration::ZERO);
        assert_eq!(t.checked_duration_since(Time::from_secs(3)), None);
        assert_eq!(Time::ZERO - Duration::from_secs(1), Time::ZERO);
        assert_eq!(Time::from_nanos(1_234_567).as_micros_u32(), 1_234);
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let c = Clock::system();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.now() - a >= Duration::from_millis(2));
    }
}
