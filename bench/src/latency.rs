//! Latencies in microseconds, in an HDR histogram (3 significant digits, up
//! to two minutes).

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::probe::round;

#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn add(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// p50, p99, p99.9 and max in milliseconds.
    pub fn to_json(&self) -> Value {
        let ms = |us: u64| round(us as f64 / 1000.0, 3);
        if self.0.is_empty() {
            return json!({ "count": 0 });
        }
        json!({
            "count": self.0.len(),
            "p50_ms": ms(self.0.value_at_quantile(0.50)),
            "p99_ms": ms(self.0.value_at_quantile(0.99)),
            "p999_ms": ms(self.0.value_at_quantile(0.999)),
            "max_ms": ms(self.0.max()),
        })
    }
}
