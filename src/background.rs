//! The node's timers: typing timeouts and idle viewers, the stale sweep, history expiry,
//! token expiry. Each
//! runs as an owned task that ends when its token is cancelled; each asks
//! the hub to act, and the hub queues what sockets must hear.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::auth::epoch_secs;
use crate::hub::Hub;

/// How long a timer with nothing to wait for sleeps before looking again.
const NOTHING_DUE: Duration = Duration::from_secs(3600);

/// Turns typing that got no renewal within `typing_timeout` back to viewing,
/// and viewers without activity for `idle_after` idle: one precise timer
/// that sleeps until the earliest deadline, so each falls due on time (not a
/// periodic sweep).
pub async fn presence_timers(hub: Hub, stop: CancellationToken) {
    loop {
        // Nothing due: sleep until a presence change says otherwise.
        let wake = hub
            .next_presence_deadline()
            .map_or_else(|| Instant::now() + NOTHING_DUE, |at| hub.clock().instant_at(at).into());
        tokio::select! {
            () = stop.cancelled() => return,
            () = hub.presence_deadlines_changed() => continue,
            () = sleep_until(wake) => {}
        }
        hub.expire_presence_timers(hub.clock().now_ms());
    }
}

/// Every `sweep_interval`, removes viewers idle for `stale_after`.
pub async fn stale_sweep(hub: Hub, stop: CancellationToken) {
    let period = hub.config().sweep_interval;
    every(period, stop, || hub.sweep_stale(hub.clock().now_ms())).await;
}

/// Ends timeline histories `history_ttl` after their last publish, checking
/// ten times per `history_ttl` (at least every second, at most every minute).
pub async fn history_expiry(hub: Hub, stop: CancellationToken) {
    let period = (hub.config().history_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    every(period, stop, || hub.expire_histories(hub.clock().now_ms())).await;
}

/// Every `memory::TRIM_EVERY`, gives free heap memory back to the OS when
/// there is enough of it (after expired sessions, connections that left).
pub async fn memory_trim(stop: CancellationToken) {
    every(crate::memory::TRIM_EVERY, stop, || {
        let started = std::time::Instant::now();
        if let Some(free) = crate::memory::trim() {
            tracing::debug!(free, took = ?started.elapsed(), "heap trimmed");
        }
    })
    .await;
}

/// Runs `tick` every `period` (the first time one period from now) until
/// `stop`; a late tick delays the next ones rather than bunching them.
async fn every(period: Duration, stop: CancellationToken, mut tick: impl FnMut()) {
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => tick(),
        }
    }
}

/// At each token's expiry, disconnects its socket if it is still here
/// (clients that pass `auth` as a function reconnect with a fresh token).
pub async fn token_expiry(hub: Hub, stop: CancellationToken) {
    loop {
        let wake = hub.next_token_expiry().map_or_else(
            || Instant::now() + NOTHING_DUE,
            |at| Instant::now() + Duration::from_secs(at.saturating_sub(epoch_secs())),
        );
        tokio::select! {
            () = stop.cancelled() => return,
            () = hub.token_expiries_changed() => continue,
            () = sleep_until(wake) => {}
        }
        hub.expire_tokens(epoch_secs());
    }
}
