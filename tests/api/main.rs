//! In-process integration tests: the real server on random ports, spoken to
//! over real sockets. The HTTP side is tested here, the Socket.IO side in
//! `realtime` with the small client of `sio`; `tests/js` tests both again
//! with the real socket.io-client.

mod container;
mod demo;
mod edge;
mod heartbeat;
mod helpers;
mod realtime;
mod recovery;
mod sio;
mod slow_clients;

use std::time::{Duration, Instant};

use helpers::spawn_app;
use serde_json::{Value, json};

#[tokio::test]
async fn probes_answer_on_both_listeners() {
    let app = spawn_app(&[]).await;
    for url in [app.internal_url("/health"), app.public_url("/health")] {
        let res = app.http.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
    }
    let ready = app.http.get(app.internal_url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Internal routes are not on the public port.
    let res = app.http.get(app.public_url("/v1/stats")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn token_guards_everything_but_probes_and_metrics() {
    let app = spawn_app(&["--internal-token", "s3cret"]).await;
    let stats = app.internal_url("/v1/stats");
    let res = app.http.get(&stats).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let res = app.http.get(&stats).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.http.get(&stats).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(res.status(), 200);
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            app.http.get(app.internal_url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn publish_errors_follow_the_table() {
    let app = spawn_app(&["--entity-types", "deal", "--max-body", "64"]).await;
    let post = |path: &str, body: &str| app.http.post(app.internal_url(path)).body(body.to_string()).send();
    let code = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        (status, body["error"]["code"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(
        code(post("/v1/timeline/deal/1/items", "{").await.unwrap()).await,
        (400, "INVALID_JSON".into())
    );
    assert_eq!(
        code(post("/v1/timeline/deal/1/items", "{}").await.unwrap()).await,
        (400, "INVALID_PAYLOAD".into())
    );
    assert_eq!(
        code(post("/v1/timeline/Deal/1/items", r#"{"id":1}"#).await.unwrap()).await,
        (400, "INVALID_PAYLOAD".into())
    );
    assert_eq!(
        code(post("/v1/timeline/lead/1/items", r#"{"id":1}"#).await.unwrap()).await,
        (403, "FORBIDDEN".into())
    );
    // A 400 wins over a 403.
    assert_eq!(
        code(post("/v1/timeline/lead/1/items", "{}").await.unwrap()).await,
        (400, "INVALID_PAYLOAD".into())
    );
    let big = format!(r#"{{"id":1,"p":"{}"}}"#, "x".repeat(64));
    assert_eq!(
        code(post("/v1/timeline/deal/1/items", &big).await.unwrap()).await,
        (413, "PAYLOAD_TOO_LARGE".into())
    );
    let exact = format!(r#"{{"id":1,"p":"{}"}}"#, "x".repeat(64 - 15));
    assert_eq!(exact.len(), 64);
    assert_eq!(post("/v1/timeline/deal/1/items", &exact).await.unwrap().status(), 202);
    assert_eq!(
        code(post("/v1/nothing", "").await.unwrap()).await,
        (404, "NOT_FOUND".into())
    );
    let res = app.http.delete(app.internal_url("/v1/stats")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let app = spawn_app(&[]).await;
    let url = app.internal_url("/v1/timeline/batch");
    let good = json!({ "events": [
        { "type": "new_item", "entityType": "deal", "entityId": 1, "item": { "id": 1 } },
        { "type": "refresh", "entityType": "deal", "entityId": 1, "reason": null },
    ]});
    let res = app.http.post(&url).json(&good).send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({ "accepted": 2 }));
    let bad = json!({ "events": [{ "type": "refresh", "entityType": "deal", "entityId": 1, "reason": 5 }] });
    assert_eq!(app.http.post(&url).json(&bad).send().await.unwrap().status(), 400);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn viewers_of_an_unwatched_ticket_are_empty() {
    let app = spawn_app(&[]).await;
    let res = app
        .http
        .get(app.internal_url("/v1/tickets/42/viewers"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({ "ticketId": "42", "viewers": [] })
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_returns_within_the_bound() {
    let app = spawn_app(&["--shutdown-timeout", "2s"]).await;
    let started = Instant::now();
    app.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn engine_io_v3_is_served_only_with_allow_eio3() {
    let polling = |app: &helpers::TestApp, eio: u8| {
        let url = app.public_url(&format!("/socket.io/?EIO={eio}&transport=polling"));
        let http = app.http.clone();
        async move {
            let res = http.get(url).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let refused = json!({ "code": 5, "message": "Unsupported protocol version" });

    let app = spawn_app(&[]).await;
    let (status, body) = polling(&app, 3).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        refused,
        "a numeric code, as engine.io"
    );
    let (status, body) = polling(&app, 4).await;
    assert_eq!((status, &body[..7]), (200, r#"0{"sid""#));
    app.shutdown().await.unwrap();

    let app = spawn_app(&["--allow-eio3", "true"]).await;
    let (status, body) = polling(&app, 3).await;
    // Engine.IO v3 polling frames each packet as `<length>:<packet>`.
    assert_eq!(status, 200, "{body}");
    let (_, open) = body.split_once(':').expect("a v3 payload");
    assert!(open.starts_with(r#"0{"sid""#), "{body}");
    let (status, body) = polling(&app, 4).await;
    assert_eq!((status, &body[..7]), (200, r#"0{"sid""#));
    // Versions engineioxide does not know are still refused.
    let (status, body) = polling(&app, 2).await;
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()), (400, refused));
    app.shutdown().await.unwrap();
}
