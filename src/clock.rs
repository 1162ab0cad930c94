//! Wall-clock milliseconds that never go backwards.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::presence::Millis;

/// Epoch milliseconds (like JavaScript's `Date.now()`) read from a monotonic
/// clock, so a wall-clock step cannot reorder `since` or expire typing early.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch_at_start: Millis,
    start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            epoch_at_start: epoch.as_millis() as Millis,
            start: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> Millis {
        self.epoch_at_start + self.start.elapsed().as_millis() as Millis
    }

    /// The instant at which `now_ms()` reaches `at`.
    pub fn instant_at(&self, at: Millis) -> Instant {
        self.start + std::time::Duration::from_millis(at.saturating_sub(self.epoch_at_start))
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.start.elapsed().as_secs()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
