//! Timers of the presence rules: typing timeouts and the stale sweep. Each
//! runs as an owned task that ends when its token is cancelled.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Turns typing that got no renewal within `typing_timeout` back to viewing.
pub async fn typing_expiry(hub: Hub, stop: CancellationToken) {
    loop {
        let next = hub.with_registry(|r| r.next_typing_deadline());
        // Nobody types: sleep until a typing event says otherwise.
        let wake = next.map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            |at| hub.clock.instant_at(at).into(),
        );
        tokio::select! {
            () = stop.cancelled() => return,
            () = hub.typing_changed.notified() => continue,
            () = sleep_until(wake) => {}
        }
        let now = hub.clock.now_ms();
        let _ = hub.with_presence(|r| Ok(((), r.expire_typing(now))));
    }
}

/// Every `sweep_interval`, removes viewers idle for `stale_after`.
pub async fn stale_sweep(hub: Hub, stop: CancellationToken) {
    let period = hub.config.sweep_interval;
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        hub.sweep_stale(hub.clock.now_ms());
    }
}
