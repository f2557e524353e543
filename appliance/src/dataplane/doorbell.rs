//! The workers' doorbell on the management lcore: a worker that punted
//! packets wakes it, so it can sleep until its next timer instead of waking
//! every few hundred microseconds to look at the punt rings.
//!
//! The protocol is a flag and a check on each side, with a full fence
//! between (the two sides' writes must not pass their reads):
//! - the management lcore raises `parked`, then looks at the punt rings once
//!   more, and parks only if they are empty;
//! - a worker enqueues its punts, then reads `parked`, and unparks the
//!   thread only if it is raised.
//!
//! Either the management lcore sees the punt, or the worker sees the flag.
//! An unpark that comes before the park is kept by the thread (its token),
//! so the park then returns at once. A worker rings at most once per
//! iteration, after its flush, and only makes the syscall while the
//! management lcore sleeps: a packet in hand is never delayed by it.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

/// Shared by the management lcore and every worker.
#[derive(Debug, Clone)]
pub struct Doorbell {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    parked: AtomicBool,
    thread: Thread,
}

impl Doorbell {
    /// A doorbell on `thread` (the management loop's).
    pub fn new(thread: Thread) -> Self {
        Self {
            inner: Arc::new(Inner {
                parked: AtomicBool::new(false),
                thread,
            }),
        }
    }

    /// Worker side, after its punts are enqueued: wakes the management lcore
    /// if it sleeps. Returns whether it had to.
    #[inline]
    pub fn ring(&self) -> bool {
        // The enqueue before must be visible before the flag is read.
        fence(Ordering::SeqCst);
        if self.inner.parked.load(Ordering::Relaxed) {
            self.inner.thread.unpark();
            true
        } else {
            false
        }
    }

    /// Management side, on its own thread: parks for at most `timeout` unless
    /// `pending()` (the punt rings, read after the flag is raised) says there
    /// is work. Returns whether it parked.
    pub fn park(&self, timeout: Duration, pending: impl FnOnce() -> bool) -> bool {
        self.inner.parked.store(true, Ordering::SeqCst);
        let parked = !pending();
        if parked {
            std::thread::park_timeout(timeout);
        }
        self.inner.parked.store(false, Ordering::Relaxed);
        parked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    #[test]
    fn a_worker_does_not_ring_an_awake_lcore() {
        let bell = Doorbell::new(std::thread::current());
        assert!(!bell.ring());
    }

    #[test]
    fn pending_work_keeps_it_awake() {
        let bell = Doorbell::new(std::thread::current());
        let start = Instant::now();
        assert!(!bell.park(Duration::from_secs(5), || true));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    /// A worker enqueues and rings while the management side parks with a
    /// long timeout, many times over and racing: no punt waits for the
    /// timeout (a lost wake-up would show as a 10 s test).
    #[test]
    fn no_wake_up_is_lost() {
        const ROUNDS: usize = 2_000;
        let ring = Arc::new(AtomicUsize::new(0));
        let (bell_tx, bell_rx) = std::sync::mpsc::channel();
        let worker = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let bell: Doorbell = bell_rx.recv().expect("doorbell");
                let mut rang = 0;
                for _ in 0..ROUNDS {
                    // Wait until the previous punt was taken, then punt again.
                    while ring.load(Ordering::SeqCst) != 0 {
                        std::hint::spin_loop();
                    }
                    ring.store(1, Ordering::SeqCst);
                    rang += usize::from(bell.ring());
                }
                rang
            })
        };
        let bell = Doorbell::new(std::thread::current());
        bell_tx.send(bell.clone()).expect("send");
        let start = Instant::now();
        let mut taken = 0;
        let mut longest = Duration::ZERO;
        while taken < ROUNDS {
            let t = Instant::now();
            bell.park(Duration::from_secs(10), || ring.load(Ordering::SeqCst) != 0);
            longest = longest.max(t.elapsed());
            if ring.swap(0, Ordering::SeqCst) == 1 {
                taken += 1;
            }
        }
        let rang = worker.join().expect("worker");
        assert!(
            longest < Duration::from_secs(5),
            "a park waited {longest:?}: a wake-up was lost"
        );
        assert!(start.elapsed() < Duration::from_secs(30));
        // Some rounds must have found the lcore parked, or the test did not
        // test the wake-up.
        assert!(rang > 0, "the worker never found the lcore parked");
    }
}
