//! Per-socket token bucket (contract §2): refills at `events_per_second`,
//! holds twice that, starts full; every client event takes one token.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket; `rate == 0` lets everything through.
    pub fn new(events_per_second: u32, now: Instant) -> Self {
        let rate = f64::from(events_per_second);
        Self {
            rate,
            capacity: 2.0 * rate,
            tokens: 2.0 * rate,
            at: now,
        }
    }

    /// Takes a token; false when none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn starts_full_with_twice_the_rate() {
        let now = Instant::now();
        let mut b = TokenBucket::new(5, now);
        assert_eq!((0..15).filter(|_| b.take(now)).count(), 10);
    }

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let now = Instant::now();
        let mut b = TokenBucket::new(5, now);
        while b.take(now) {}
        assert!(b.take(now + Duration::from_millis(200)));
        assert!(!b.take(now + Duration::from_millis(200)));
        let later = now + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| b.take(later)).count(), 10);
    }

    #[test]
    fn zero_turns_it_off() {
        let now = Instant::now();
        let mut b = TokenBucket::new(0, now);
        assert!((0..10_000).all(|_| b.take(now)));
    }
}
