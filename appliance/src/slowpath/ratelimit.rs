//! Token bucket for ICMP errors (RFC 1812 §4.3.2.8: rate-limit them).

use crate::time::Time;

/// Allows `rate` events per second with a burst of `rate` (at least 1).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Time>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            last: None,
        }
    }

    /// Adds tokens for the time since the last refill (no timer needed: the
    /// bucket refills from the elapsed time whenever it is used).
    fn refill(&mut self, now: Time) {
        if let Some(last) = self.last {
            self.tokens =
                (self.tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
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
