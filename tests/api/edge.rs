//! Hostile traffic at the edge (contract §6 `header_read_timeout`,
//! `max_connections`): slow and idle requests are closed on both
//! listeners, WebSockets and long-polls are not, and a node at capacity
//! answers handshakes 503.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::helpers::{TestApp, spawn_app};
use crate::sio::{SioClient, WAIT};

/// `header_read_timeout` in these tests.
const TIMEOUT: Duration = Duration::from_millis(500);
const TIMEOUT_FLAG: [&str; 2] = ["--header-read-timeout", "500ms"];
/// A slow request must be closed by then (the "done when").
const CLOSE_BOUND: Duration = Duration::from_millis(1500);
/// Timer granularity: a request is never closed before `TIMEOUT` less this.
const SLACK: Duration = Duration::from_millis(20);
/// How often a slowloris sends one more byte.
const DRIP: Duration = Duration::from_millis(100);

/// How a misbehaving connection ended: when (after connecting) and what it
/// was sent before.
struct Ended {
    after: Duration,
    received: Vec<u8>,
}

/// Connects, sends `opening`, then with `drip` one byte more every `DRIP`,
/// and waits until the server closes the connection (panics after `WAIT`).
async fn held_open(addr: SocketAddr, opening: &'static [u8], drip: bool) -> Ended {
    let started = Instant::now();
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    write.write_all(opening).await.unwrap();
    // The write half lives until the server closes: dropping it would send
    // a FIN, and the server would close for that reason instead.
    let writer = tokio::spawn(async move {
        if drip {
            loop {
                tokio::time::sleep(DRIP).await;
                if write.write_all(b"1").await.is_err() {
                    break;
                }
            }
        }
        std::future::pending::<()>().await;
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout_at(started + WAIT, read.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {WAIT:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    Ended {
        after: started.elapsed(),
        received,
    }
}

/// A client of its own, so that no pooled connection of another test step
/// is reused just as the server closes it for idling.
fn fresh_http() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

#[tokio::test]
async fn slow_and_idle_requests_are_closed_on_both_listeners_while_others_are_served() {
    let app = spawn_app(&TIMEOUT_FLAG).await;
    let mut slow = JoinSet::new();
    for (port, addr) in [("public", app.public), ("internal", app.internal)] {
        let kinds: [(&str, &'static [u8], bool); 4] = [
            ("sends nothing", b"", false),
            ("part of a request line, then nothing", b"GET /hea", false),
            ("a header byte every 100 ms", b"GET /health HTTP/1.1\r\nX-Slow: ", true),
            (
                "kept alive after a request, then idle",
                b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                false,
            ),
        ];
        for (kind, opening, drip) in kinds {
            slow.spawn(async move { (port, kind, held_open(addr, opening, drip).await) });
        }
    }

    // Meanwhile a Socket.IO client connects and the internal API answers, at once.
    let started = Instant::now();
    let mut client = SioClient::websocket(app.public).await;
    let ack = client
        .emit_with_ack(
            "ticket:view",
            json!({ "ticketId": "1", "agentId": "a1", "agentName": "Ada" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let stats = fresh_http().get(app.internal_url("/v1/stats")).send().await.unwrap();
    assert_eq!(stats.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served in {:?}",
        started.elapsed()
    );

    while let Some(joined) = slow.join_next().await {
        let (port, kind, ended) = joined.unwrap();
        assert!(
            ended.after >= TIMEOUT - SLACK && ended.after <= CLOSE_BOUND,
            "{port}, {kind}: closed after {:?}",
            ended.after
        );
        let answer = String::from_utf8_lossy(&ended.received);
        if kind.starts_with("kept alive") {
            assert!(answer.starts_with("HTTP/1.1 200"), "{port}, {kind}: {answer}");
        } else {
            // hyper closes a header timeout without an answer.
            assert!(answer.is_empty(), "{port}, {kind}: {answer}");
        }
    }
    client.close().await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_internal_body_that_never_finishes_gets_408() {
    let app = spawn_app(&TIMEOUT_FLAG).await;
    let head = b"POST /v1/timeline/deal/1/items HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":";
    for drip in [false, true] {
        let ended = held_open(app.internal, head, drip).await;
        assert!(
            ended.after >= TIMEOUT - SLACK && ended.after <= CLOSE_BOUND,
            "drip {drip}: closed after {:?}",
            ended.after
        );
        let answer = String::from_utf8_lossy(&ended.received);
        assert!(answer.starts_with("HTTP/1.1 408"), "drip {drip}: {answer}");
        let body: Value = answer
            .split_once("\r\n\r\n")
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or_else(|| panic!("drip {drip}: no JSON body in {answer}"));
        assert_eq!(body["error"]["code"], "REQUEST_TIMEOUT", "{body}");
    }
    // A body that arrives in time is served as ever.
    let res = fresh_http()
        .post(app.internal_url("/v1/timeline/deal/1/items"))
        .json(&json!({ "id": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn websockets_and_long_polls_outlive_the_header_timeout() {
    let app = spawn_app(&TIMEOUT_FLAG).await;
    let mut websocket = SioClient::websocket(app.public).await;
    let mut polling = SioClient::polling(app.public).await;
    // Held three times the timeout: the websocket is idle, the polling
    // client's GET waits for data the whole time (the server pings every
    // 25 s). A closed transport would fail the acks below.
    let held = TIMEOUT * 3;
    tokio::time::sleep(held).await;
    for (agent, client) in [("ws", &mut websocket), ("poll", &mut polling)] {
        let ack = client
            .emit_with_ack(
                "ticket:view",
                json!({ "ticketId": "7", "agentId": agent, "agentName": agent }),
            )
            .await;
        assert_eq!(ack["ok"], true, "{agent}: {ack}");
    }
    websocket.close().await;
    polling.close().await;
    app.shutdown().await.unwrap();
}

/// The node's Socket.IO sockets, from `/v1/stats`.
async fn connections(app: &TestApp) -> u64 {
    let stats: Value = fresh_http()
        .get(app.internal_url("/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["connections"].as_u64().unwrap()
}

#[tokio::test]
async fn beyond_max_connections_handshakes_get_503_until_a_client_leaves() {
    let app = spawn_app(&["--max-connections", "2"]).await;
    let first = SioClient::websocket(app.public).await;
    let second = SioClient::polling(app.public).await;

    let handshake = app.public_url("/socket.io/?EIO=4&transport=polling");
    let res = fresh_http().get(&handshake).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "OVER_CAPACITY", "{body}");
    let ws_url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.public);
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected 503 for a websocket handshake, got {other:?}"),
    }
    let metrics = fresh_http()
        .get(app.internal_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("switchboard_connections_refused_total 2"), "{metrics}");

    first.close().await;
    let deadline = Instant::now() + WAIT;
    while connections(&app).await > 1 {
        assert!(
            Instant::now() < deadline,
            "the first client is still counted after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = SioClient::polling(app.public).await;
    second.close().await;
    third.close().await;
    app.shutdown().await.unwrap();
}
