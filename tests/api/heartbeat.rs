//! Engine.IO heartbeat timing as socket.io does it (issue 11): the first ping
//! `pingInterval` after the handshake, the session closed `pingTimeout` after
//! an unanswered ping. So a session that is never polled again lives
//! `pingInterval + pingTimeout` (25 s + 20 s by default), not `pingTimeout`.
//! Short settings here: 1 s and 0.6 s.

use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard::app::Heartbeat;

use crate::helpers::{TestApp, spawn_app_with};

const INTERVAL: Duration = Duration::from_millis(1000);
const TIMEOUT: Duration = Duration::from_millis(600);
/// Timers fire late, never early; this is how late they may be on a loaded machine.
const SLACK: Duration = Duration::from_millis(700);

async fn app() -> TestApp {
    spawn_app_with(
        &[],
        Heartbeat {
            ping_interval: INTERVAL,
            ping_timeout: TIMEOUT,
        },
    )
    .await
}

/// A polling handshake: the session's poll URL and the handshake's instant.
async fn handshake(app: &TestApp) -> (String, Instant) {
    let base = app.public_url("/socket.io/?EIO=4&transport=polling");
    let started = Instant::now();
    let open = app.http.get(&base).send().await.unwrap().text().await.unwrap();
    let open: Value = serde_json::from_str(open.strip_prefix('0').expect("an open packet")).unwrap();
    assert_eq!(open["pingInterval"], INTERVAL.as_millis() as u64);
    assert_eq!(open["pingTimeout"], TIMEOUT.as_millis() as u64);
    (format!("{base}&sid={}", open["sid"].as_str().unwrap()), started)
}

async fn poll(app: &TestApp, url: &str) -> (u16, String) {
    let res = app.http.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_first_ping_comes_after_ping_interval_and_an_unanswered_one_closes_after_ping_timeout() {
    let app = app().await;
    let (url, started) = handshake(&app).await;

    // A long-poll from the start: the first packet is the ping, after pingInterval.
    let (status, body) = poll(&app, &url).await;
    let first_ping = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "2"));
    assert!(
        first_ping >= INTERVAL && first_ping < INTERVAL + SLACK,
        "first ping after {first_ping:?}, pingInterval {INTERVAL:?}"
    );

    // No pong: the pending poll ends when the session is closed, pingTimeout later.
    let (status, _) = poll(&app, &url).await;
    let closed = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        closed >= INTERVAL + TIMEOUT && closed < INTERVAL + TIMEOUT + SLACK,
        "closed after {closed:?}, pingInterval + pingTimeout {:?}",
        INTERVAL + TIMEOUT
    );
    assert_eq!(poll(&app, &url).await.0, 400, "the session is gone");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn pongs_keep_the_session_and_each_ping_comes_ping_interval_after_the_last_pong() {
    let app = app().await;
    let (url, _) = handshake(&app).await;
    for _ in 0..3 {
        assert_eq!(poll(&app, &url).await, (200, "2".to_string()));
        let ponged = Instant::now();
        let res = app.http.post(&url).body("3").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let (status, body) = poll(&app, &url).await;
        assert_eq!((status, body.as_str()), (200, "2"));
        let gap = ponged.elapsed();
        assert!(
            gap >= INTERVAL - Duration::from_millis(50) && gap < INTERVAL + SLACK,
            "next ping {gap:?} after the pong"
        );
        let res = app.http.post(&url).body("3").send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_session_never_polled_again_lives_ping_interval_plus_ping_timeout() {
    let app = app().await;
    let (url, started) = handshake(&app).await;
    // Time passing is the subject: past pingTimeout (where 0.17.9 closed it),
    // before pingInterval + pingTimeout.
    tokio::time::sleep(INTERVAL + TIMEOUT / 2 - started.elapsed()).await;
    let (status, body) = poll(&app, &url).await;
    assert_eq!((status, body.as_str()), (200, "2"), "alive at {:?}", started.elapsed());
    app.shutdown().await.unwrap();
}
