//! socket.io-client's reconnection delays (its `Backoff`, with the Manager's
//! defaults: `reconnectionDelay` 1 s, `reconnectionDelayMax` 5 s,
//! `randomizationFactor` 0.5).

use std::time::Duration;

use crate::Rng;

/// One client's reconnection schedule; `reset` after a successful connect.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempts: u32,
    min_ms: f64,
    max_ms: f64,
    factor: f64,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 0,
            min_ms: 1000.0,
            max_ms: 5000.0,
            factor: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The next delay, exactly as socket.io-client computes it: the base
    /// doubles each attempt, a random deviation of up to ±50 % is added or
    /// taken away (the choice from the same random number), and the result is
    /// capped at the maximum.
    pub fn next_delay(&mut self, rng: &mut Rng) -> Duration {
        let mut ms = self.min_ms * self.factor.powi(self.attempts.min(30) as i32);
        self.attempts += 1;
        let rand = rng.next_f64();
        let deviation = (rand * self.jitter * ms).floor();
        ms = if ((rand * 10.0).floor() as u64) & 1 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
        Duration::from_millis(ms.min(self.max_ms) as u64)
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_socket_io_clients_ranges() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let mut b = Backoff::default();
            let ranges = [(500, 1500), (1000, 3000), (2000, 5000), (4000, 5000), (4000, 5000)];
            for (lo, hi) in ranges {
                let d = b.next_delay(&mut rng).as_millis() as u64;
                assert!((lo..=hi).contains(&d), "{d} not in {lo}..={hi}");
            }
        }
    }

    #[test]
    fn reset_starts_again_at_one_second() {
        let mut rng = Rng::new(1);
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(&mut rng);
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(1500));
    }
}
