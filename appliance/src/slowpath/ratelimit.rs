//! Token bucket for ICMP errors (RFC 1812 §4.3.2.8: rate-limit them).

use std::time::Instant;

/// Allows `rate` events per second with a burst of `rate` (at least 1).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
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

    /// Adds tokens for the time since the last refill.
    pub fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            self.tokens =
                (self.tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        }
        self.last = Some(now);
    }

    /// Takes a token if there is one.
    pub fn take(&mut self) -> bool {
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
        let t0 = Instant::now();
        b.refill(t0);
        assert_eq!((0..20).filter(|_| b.take()).count(), 10);
        b.refill(t0 + Duration::from_millis(500));
        assert_eq!((0..20).filter(|_| b.take()).count(), 5);
    }
}
