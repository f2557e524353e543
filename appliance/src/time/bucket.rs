//! A token bucket: ICMP errors (RFC 1812 §4.3.2.8: rate-limit them) and
//! tunnel handshakes are limited by it.

use crate::time::Time;

/// Allows `rate` events per second with a burst of `burst` (at least 1).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Time>,
}

impl TokenBucket {
    /// A full bucket whose burst is one second's worth.
    pub fn new(rate: u32) -> Self {
        Self::with_burst(rate, rate)
    }

    /// A full bucket of `burst` tokens refilled at `rate` per second.
    pub fn with_burst(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Adds tokens for the time since the last refill (no timer needed: the
    /// bucket refills from the elapsed time whenever it is used).
    fn refill(&mut self, now: Time) {
        if let Some(last) = self.last {
            self.tokens = (self.tokens
                + now.saturating_duration_since(last).as_secs_f64() * self.rate)
                .min(self.burst);
        }
        self.last = Some(now);
    }

    /// Takes a token if there is one at `now`.
    pub fn take(&mut self, now: Time) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_and_refills() {
        let mut b = TokenBucket::new(10);
        let t0 = Time::from_secs(100);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| b.take(t1)).count(), 5);
    }
}
