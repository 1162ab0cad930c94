//! Contract §4.2 in process: a long-polling session that is not polled while
//! more than `client_queue_max` messages pile up is closed, and counted; one
//! with exactly `client_queue_max` waiting keeps every message. (The websocket
//! cases, with a client that stops reading its TCP socket, are in
//! `tests/js/test/slow-clients.test.js`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const QUEUE_MAX: usize = 8;

async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app
        .http
        .get(app.internal_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

/// Polls until what arrived contains `wanted` (at most 5 polls); returns it all.
async fn poll_until(app: &TestApp, url: &str, wanted: &str) -> String {
    let mut got = String::new();
    for _ in 0..5 {
        let res = app.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        got.push('\x1e');
        got.push_str(&res.text().await.unwrap());
        if got.contains(wanted) {
            return got;
        }
    }
    panic!("no {wanted:?} in {got:?}");
}

/// A raw Engine.IO polling session, connected to `/` and subscribed to
/// `contact/{id}`; returns its poll URL.
async fn subscribed_session(app: &TestApp, id: &str) -> String {
    let base = app.public_url("/socket.io/?EIO=4&transport=polling");
    let open = app.http.get(&base).send().await.unwrap().text().await.unwrap();
    let open: Value = serde_json::from_str(&open[1..]).unwrap();
    let url = format!("{base}&sid={}", open["sid"].as_str().unwrap());
    app.http.post(&url).body("40").send().await.unwrap();
    poll_until(app, &url, "40{").await;
    let subscribe = json!(["timeline:subscribe", { "entityType": "contact", "entityId": id }]);
    app.http
        .post(&url)
        .body(format!("421{subscribe}"))
        .send()
        .await
        .unwrap();
    poll_until(app, &url, "431[").await;
    url
}

async fn publish(app: &TestApp, id: &str, n: usize) {
    let res = app
        .http
        .post(app.internal_url(&format!("/v1/timeline/contact/{id}/items")))
        .json(&json!({ "id": n }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn a_polling_session_past_client_queue_max_is_closed_and_counted() {
    let app = spawn_app(&["--client-queue-max", &QUEUE_MAX.to_string()]).await;
    let url = subscribed_session(&app, "slow").await;
    for n in 0..QUEUE_MAX {
        publish(&app, "slow", n).await;
    }
    assert_eq!(metric(&app, "switchboard_slow_client_disconnects_total").await, 0);
    assert_eq!(metric(&app, "switchboard_connections").await, 1);

    publish(&app, "slow", QUEUE_MAX).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(&app, "switchboard_connections").await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the session is still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&app, "switchboard_slow_client_disconnects_total").await, 1);
    // Gone, not holding a hole in its stream: the next poll is refused.
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 400);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_polling_session_at_client_queue_max_gets_every_message() {
    let app = spawn_app(&["--client-queue-max", &QUEUE_MAX.to_string()]).await;
    let url = subscribed_session(&app, "full").await;
    for n in 0..QUEUE_MAX {
        publish(&app, "full", n).await;
    }
    let got = poll_until(&app, &url, &format!("\"id\":{}", QUEUE_MAX - 1)).await;
    let ids: Vec<usize> = (0..QUEUE_MAX)
        .filter(|n| got.contains(&format!("\"item\":{{\"id\":{n}}}")))
        .collect();
    assert_eq!(ids, (0..QUEUE_MAX).collect::<Vec<_>>(), "{got}");
    assert_eq!(metric(&app, "switchboard_slow_client_disconnects_total").await, 0);
    app.shutdown().await.unwrap();
}
