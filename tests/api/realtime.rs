//! The Socket.IO side (contract §2–§4): client events in, emits and acks
//! out, through a real server and real sockets.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::sio::{SioClient, WAIT};

fn viewing(ticket: &str, agent: &str, name: &str) -> Value {
    json!({ "ticketId": ticket, "agentId": agent, "agentName": name })
}

fn on(ticket: &str, agent: &str) -> Value {
    json!({ "ticketId": ticket, "agentId": agent })
}

fn timeline(entity_type: &str, entity_id: &str) -> Value {
    json!({ "entityType": entity_type, "entityId": entity_id })
}

/// The keys of an object, sorted, to check a payload has exactly the contract's.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The code of a failure ack `{ ok: false, error: { code, message } }`.
fn error_code(ack: &Value) -> &str {
    assert_eq!(keys(ack), ["error", "ok"], "{ack}");
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(keys(&ack["error"]), ["code", "message"], "{ack}");
    assert!(ack["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{ack}");
    ack["error"]["code"].as_str().unwrap_or_default()
}

/// The `ticket:error` / `timeline:error` event's code, after checking its shape.
fn error_event_code<'a>(event: &'a Value, client_event: &str) -> &'a str {
    assert_eq!(keys(event), ["code", "event", "message"], "{event}");
    assert_eq!(event["event"], client_event, "{event}");
    assert!(event["message"].as_str().is_some_and(|m| !m.is_empty()), "{event}");
    event["code"].as_str().unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Views `ticket` and takes the `viewers:updated` that lists the agent; returns the ack.
async fn view(client: &mut SioClient, ticket: &str, agent: &str, name: &str) -> Value {
    let ack = client.emit_with_ack("ticket:view", viewing(ticket, agent, name)).await;
    assert_eq!(ack["ok"], true, "ticket:view failed: {ack}");
    client
        .next_event_where("viewers:updated", |p| {
            p["viewers"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["agentId"] == agent))
        })
        .await;
    ack
}

/// The next `viewers:updated` on `client` that lists `n` viewers.
async fn viewers_updated_to(client: &mut SioClient, n: usize) -> Value {
    client
        .next_event_where("viewers:updated", |p| {
            p["viewers"].as_array().is_some_and(|v| v.len() == n)
        })
        .await
}

async fn viewers_of(app: &TestApp, ticket: &str) -> Value {
    let res = app
        .http
        .get(app.internal_url(&format!("/v1/tickets/{ticket}/viewers")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["viewers"].clone()
}

/// Waits until the server counts `n` open connections (a disconnect is handled).
async fn wait_for_connections(app: &TestApp, n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = app.stats().await;
        if stats["connections"] == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections still {} after {WAIT:?}",
            stats["connections"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends a publish to the internal API and checks it is accepted.
async fn publish(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Value {
    let res = app
        .http
        .request(method, app.internal_url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{path}");
    res.json().await.unwrap()
}

/// Subscribes and takes the `timeline:subscribed` that answers it.
async fn subscribe(client: &mut SioClient, entity_type: &str, entity_id: &str) {
    let ack = client
        .emit_with_ack("timeline:subscribe", timeline(entity_type, entity_id))
        .await;
    assert_eq!(ack["ok"], true, "timeline:subscribe failed: {ack}");
    client.next_event("timeline:subscribed").await;
}

#[tokio::test]
async fn first_viewer_gets_an_ack_with_itself_and_viewers_updated() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let before = now_ms();
    let ack = ada
        .emit_with_ack(
            "ticket:view",
            json!({ "ticketId": 42, "agentId": 7, "agentName": "Ada" }),
        )
        .await;
    assert_eq!(keys(&ack), ["ok", "ticketId", "viewers"]);
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["ticketId"], "42", "integer ids become decimal strings");
    let viewer = &ack["viewers"][0];
    assert_eq!(ack["viewers"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        keys(viewer),
        [
            "agentId",
            "agentName",
            "devices",
            "editing",
            "idle",
            "since",
            "status",
            "typingStartedAt"
        ]
    );
    assert_eq!(
        [
            &viewer["agentId"],
            &viewer["agentName"],
            &viewer["status"],
            &viewer["typingStartedAt"],
            &viewer["editing"],
            &viewer["idle"],
            &viewer["devices"]
        ],
        [
            &json!("7"),
            &json!("Ada"),
            &json!("viewing"),
            &Value::Null,
            &json!(false),
            &json!(false),
            &json!(["web"])
        ]
    );
    let since = viewer["since"].as_i64().expect("since is an integer");
    assert!(
        (since - before).abs() < 60_000,
        "since {since} is not milliseconds since the epoch"
    );

    let updated = ada.next_event("viewers:updated").await;
    assert_eq!(updated, json!({ "ticketId": "42", "viewers": ack["viewers"] }));
    ada.assert_arrived_before("viewers:updated", "ack ticket:view");
    ada.assert_no_event("collision:warning").await;
    assert_eq!(viewers_of(&app, "42").await, ack["viewers"]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn second_agent_gets_collision_warning_before_the_ack() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    let ada_ack = view(&mut ada, "t1", "ada", "Ada").await;

    let ack = bob.emit_with_ack("ticket:view", viewing("t1", "bob", "Bob")).await;
    let warning = bob.next_event("collision:warning").await;
    bob.assert_arrived_before("collision:warning", "ack ticket:view");
    assert_eq!(
        warning,
        json!({
            "ticketId": "t1", "viewers": ada_ack["viewers"], "severity": "warning",
            "message": "Ada is viewing this ticket",
        })
    );
    let ids: Vec<&Value> = ack["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["agentId"])
        .collect();
    assert_eq!(ids, ["ada", "bob"]);
    assert_eq!(
        ack["viewers"][0], ada_ack["viewers"][0],
        "the first viewer is unchanged"
    );

    let joined = ada.next_event("agent:joined").await;
    assert_eq!(
        joined,
        json!({ "ticketId": "t1", "agentId": "bob", "agentName": "Bob", "since": ack["viewers"][1]["since"] })
    );
    for client in [&mut ada, &mut bob] {
        assert_eq!(viewers_updated_to(client, 2).await["viewers"], ack["viewers"]);
    }
    tokio::join!(
        bob.assert_no_event("agent:joined"),
        ada.assert_no_event("collision:warning")
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn typing_is_announced_to_the_others_until_stop_typing() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;
    view(&mut bob, "t1", "bob", "Bob").await;

    let ack = bob.emit_with_ack("ticket:typing", on("t1", "bob")).await;
    assert_eq!(ack, json!({ "ok": true, "ticketId": "t1" }));
    let typing = ada.next_event("agent:typing").await;
    assert_eq!(
        typing,
        json!({
            "ticketId": "t1", "agentId": "bob", "agentName": "Bob",
            "warning": "COLLISION_RISK", "message": "Bob is typing...",
        })
    );
    let updated = ada
        .next_event_where("viewers:updated", |p| p["viewers"][1]["status"] == "typing")
        .await;
    let bob_viewer = &updated["viewers"][1];
    assert!(
        bob_viewer["typingStartedAt"].as_i64() >= bob_viewer["since"].as_i64(),
        "{bob_viewer}"
    );
    assert_eq!(updated["viewers"][0]["status"], "viewing");

    // Typing again renews the timeout only: nothing is broadcast again.
    let again = bob.emit_with_ack("ticket:typing", on("t1", "bob")).await;
    assert_eq!(again["ok"], true);
    tokio::join!(ada.assert_no_event("agent:typing"), bob.assert_no_event("agent:typing"));

    let ack = bob.emit_with_ack("ticket:stop_typing", on("t1", "bob")).await;
    assert_eq!(ack, json!({ "ok": true, "ticketId": "t1" }));
    let stopped = ada.next_event("agent:stopped_typing").await;
    assert_eq!(
        stopped,
        json!({ "ticketId": "t1", "agentId": "bob", "agentName": "Bob" })
    );
    let updated = ada
        .next_event_where("viewers:updated", |p| p["viewers"][1]["status"] == "viewing")
        .await;
    assert_eq!(updated["viewers"][1]["typingStartedAt"], Value::Null);
    bob.assert_no_event("agent:stopped_typing").await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn typing_falls_back_to_viewing_after_the_typing_timeout() {
    let app = spawn_app(&["--typing-timeout", "300ms"]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;
    view(&mut bob, "t1", "bob", "Bob").await;

    let started = Instant::now();
    bob.emit_with_ack("ticket:typing", on("t1", "bob")).await;
    ada.next_event("agent:typing").await;
    let stopped = ada.next_event("agent:stopped_typing").await;
    // Milliseconds on the server's clock: allow for its rounding.
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "after {:?}",
        started.elapsed()
    );
    assert_eq!(
        stopped,
        json!({ "ticketId": "t1", "agentId": "bob", "agentName": "Bob" })
    );
    let updated = ada
        .next_event_where("viewers:updated", |p| p["viewers"][1]["status"] == "viewing")
        .await;
    assert_eq!(updated["viewers"][1]["typingStartedAt"], Value::Null);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn leave_tells_the_others_agent_left_with_reason_left() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;
    view(&mut bob, "t1", "bob", "Bob").await;

    let ack = bob.emit_with_ack("ticket:leave", on("t1", "bob")).await;
    assert_eq!(ack, json!({ "ok": true, "ticketId": "t1" }));
    let left = ada.next_event("agent:left").await;
    assert_eq!(
        left,
        json!({ "ticketId": "t1", "agentId": "bob", "agentName": "Bob", "reason": "left" })
    );
    let updated = viewers_updated_to(&mut ada, 1).await;
    assert_eq!(updated["viewers"][0]["agentId"], "ada");
    bob.assert_no_event("agent:left").await;
    // Bob left the room: the room's events no longer reach him.
    ada.emit_with_ack("ticket:typing", on("t1", "ada")).await;
    bob.assert_no_event("agent:typing").await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn disconnect_tells_the_others_agent_left_with_reason_disconnected() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;
    view(&mut bob, "t1", "bob", "Bob").await;

    bob.close().await;
    let left = ada.next_event("agent:left").await;
    assert_eq!(
        left,
        json!({ "ticketId": "t1", "agentId": "bob", "agentName": "Bob", "reason": "disconnected" })
    );
    let updated = viewers_updated_to(&mut ada, 1).await;
    assert_eq!(updated["viewers"][0]["agentId"], "ada");

    // A connection lost without a goodbye is a disconnect too.
    let mut cy = SioClient::websocket(app.public).await;
    view(&mut cy, "t1", "cy", "Cy").await;
    cy.drop_transport();
    let left = ada.next_event("agent:left").await;
    assert_eq!(
        left,
        json!({ "ticketId": "t1", "agentId": "cy", "agentName": "Cy", "reason": "disconnected" })
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_new_viewer_where_someone_types_gets_a_critical_warning() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;
    ada.emit_with_ack("ticket:typing", on("t1", "ada")).await;

    bob.emit_with_ack("ticket:view", viewing("t1", "bob", "Bob")).await;
    let warning = bob.next_event("collision:warning").await;
    assert_eq!(warning["severity"], "critical");
    assert_eq!(warning["message"], "Ada is typing a reply");
    assert_eq!(warning["viewers"][0]["status"], "typing");
    app.shutdown().await.unwrap();
}

/// socketioxide tells the client it is connected a moment before it marks
/// the socket connected; an event sent at once used to lose its warning and
/// never join the room (24 in 1000 under load). Many quick connects make the
/// race likely enough for this test to catch it (the server needs threads
/// of its own for the race to exist).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_sent_right_after_connect_is_fully_served() {
    const TABS: usize = 200;
    let app = spawn_app(&["--events-per-second", "0", "--max-tickets-per-socket", "1000"]).await;
    let mut bob = SioClient::websocket(app.public).await;
    // One ticket per tab, so that each warning and each room stays small.
    for i in 0..TABS {
        bob.emit("ticket:view", viewing(&format!("t{i}"), "bob", "Bob"));
    }
    bob.emit_with_ack("ticket:view", viewing("last", "bob", "Bob")).await;
    let mut tabs = Vec::new();
    for i in 0..TABS {
        let tab = SioClient::websocket(app.public).await;
        tab.emit("ticket:view", viewing(&format!("t{i}"), &format!("a{i}"), "Ada"));
        tabs.push(tab);
    }
    for tab in &mut tabs {
        tab.next_event("collision:warning").await;
    }
    for (i, tab) in tabs.iter_mut().enumerate() {
        bob.emit_with_ack("ticket:typing", on(&format!("t{i}"), "bob")).await;
        assert_eq!(tab.next_event("agent:typing").await["agentId"], "bob", "in the room");
    }
}

#[tokio::test]
async fn two_tabs_of_one_agent_are_one_viewer() {
    let app = spawn_app(&[]).await;
    let mut tab1 = SioClient::websocket(app.public).await;
    let mut tab2 = SioClient::websocket(app.public).await;
    let mut bob = SioClient::websocket(app.public).await;
    let first = view(&mut tab1, "t1", "ada", "Ada").await;
    view(&mut bob, "t1", "bob", "Bob").await;

    let ack = tab2.emit_with_ack("ticket:view", viewing("t1", "ada", "Ada")).await;
    let ids: Vec<&Value> = ack["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["agentId"])
        .collect();
    assert_eq!(ids, ["ada", "bob"], "one viewer per agent");
    assert_eq!(
        ack["viewers"][0]["since"], first["viewers"][0]["since"],
        "since is the earliest view"
    );
    let warning = tab2.next_event("collision:warning").await;
    assert_eq!(
        warning["message"], "Bob is viewing this ticket",
        "about the others only"
    );
    tab2.next_event("viewers:updated").await;
    tokio::join!(
        bob.assert_no_event("agent:joined"),
        tab1.assert_no_event("collision:warning")
    );

    // The agent types while any tab types; its own tabs hear nothing of it.
    tab2.emit_with_ack("ticket:typing", on("t1", "ada")).await;
    assert_eq!(bob.next_event("agent:typing").await["agentId"], "ada");
    tab1.assert_no_event("agent:typing").await;

    // It stays a viewer while any tab views the ticket.
    tab1.close().await;
    wait_for_connections(&app, 2).await;
    bob.assert_no_event("agent:left").await;
    assert_eq!(viewers_of(&app, "t1").await.as_array().map(Vec::len), Some(2));
    tab2.emit_with_ack("ticket:leave", on("t1", "ada")).await;
    let left = bob.next_event("agent:left").await;
    assert_eq!(left["agentId"], "ada");
    assert_eq!(left["reason"], "left");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_payloads_are_invalid_payload_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    for payload in [
        json!("t1"),
        json!(null),
        json!({ "ticketId": "t1", "agentId": "ada" }),
        json!({ "ticketId": "", "agentId": "ada", "agentName": "Ada" }),
        json!({ "ticketId": "t1", "agentId": "ada", "agentName": "   " }),
        json!({ "ticketId": 1.5, "agentId": "ada", "agentName": "Ada" }),
        json!({ "ticketId": "x".repeat(129), "agentId": "ada", "agentName": "Ada" }),
    ] {
        let ack = client.emit_with_ack("ticket:view", payload.clone()).await;
        assert_eq!(error_code(&ack), "INVALID_PAYLOAD", "{payload}");
    }
    let ack = client
        .emit_with_ack("timeline:subscribe", json!({ "entityType": "Deal", "entityId": 1 }))
        .await;
    assert_eq!(error_code(&ack), "INVALID_PAYLOAD");
    // With an ack, the failure is in the ack only.
    client
        .assert_no_events(&["ticket:error", "timeline:error", "timeline:subscribed"])
        .await;
    assert_eq!(viewers_of(&app, "t1").await, json!([]));
    // The client stays connected.
    view(&mut client, "t1", "ada", "Ada").await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn ticket_events_on_a_ticket_not_viewed_are_not_viewing() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;
    for event in ["ticket:typing", "ticket:stop_typing", "ticket:leave"] {
        let ack = ada.emit_with_ack(event, on("t2", "ada")).await;
        assert_eq!(error_code(&ack), "NOT_VIEWING", "{event} on another ticket");
        let ack = ada.emit_with_ack(event, on("t1", "bob")).await;
        assert_eq!(error_code(&ack), "NOT_VIEWING", "{event} as another agent");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_event_is_answered_only_with_an_ack() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    let ack = client.emit_with_ack("ticket:delete", json!({ "ticketId": "t1" })).await;
    assert_eq!(error_code(&ack), "UNKNOWN_EVENT");
    client.emit("ticket:delete", json!({ "ticketId": "t1" }));
    client.assert_no_event("ticket:error").await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_events_are_rate_limited_before_anything_else() {
    // One event per second, burst two: the third in a row is refused.
    let app = spawn_app(&["--events-per-second", "1"]).await;
    let mut client = SioClient::websocket(app.public).await;
    // Sent back to back, so that no token comes back in between.
    let first = client.emit_asking_ack("ticket:view", viewing("t1", "ada", "Ada"));
    let second = client.emit_asking_ack("ticket:typing", on("t1", "ada"));
    let bad = client.emit_asking_ack("ticket:view", json!("not an object"));
    client.emit("ticket:stop_typing", on("t1", "ada"));
    assert_eq!(client.ack(first).await["ok"], true);
    assert_eq!(client.ack(second).await["ok"], true);
    assert_eq!(
        error_code(&client.ack(bad).await),
        "RATE_LIMITED",
        "RATE_LIMITED wins over INVALID_PAYLOAD"
    );
    let error = client.next_event("ticket:error").await;
    assert_eq!(error_event_code(&error, "ticket:stop_typing"), "RATE_LIMITED");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn viewing_more_tickets_than_allowed_is_limit_exceeded() {
    let app = spawn_app(&["--max-tickets-per-socket", "1"]).await;
    let mut client = SioClient::websocket(app.public).await;
    view(&mut client, "t1", "ada", "Ada").await;
    let ack = client.emit_with_ack("ticket:view", viewing("t2", "ada", "Ada")).await;
    assert_eq!(error_code(&ack), "LIMIT_EXCEEDED");
    client.emit("ticket:view", viewing("t3", "ada", "Ada"));
    let error = client.next_event("ticket:error").await;
    assert_eq!(error_event_code(&error, "ticket:view"), "LIMIT_EXCEEDED");
    assert_eq!(viewers_of(&app, "t2").await, json!([]));
    // Viewing the same ticket again is no new ticket.
    let again = client.emit_with_ack("ticket:view", viewing("t1", "ada", "Ada")).await;
    assert_eq!(again["ok"], true);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn entity_types_off_the_allow_list_are_forbidden() {
    let app = spawn_app(&["--entity-types", "a,b"]).await;
    let mut client = SioClient::websocket(app.public).await;
    let ack = client.emit_with_ack("timeline:subscribe", timeline("c", "1")).await;
    assert_eq!(error_code(&ack), "FORBIDDEN");
    // A refused subscribe answers with the error only.
    client.assert_no_event("timeline:subscribed").await;
    let ack = client.emit_with_ack("timeline:subscribe", timeline("C", "1")).await;
    assert_eq!(
        error_code(&ack),
        "INVALID_PAYLOAD",
        "INVALID_PAYLOAD wins over FORBIDDEN"
    );
    client.emit("timeline:subscribe", timeline("c", "1"));
    let error = client.next_event("timeline:error").await;
    assert_eq!(error_event_code(&error, "timeline:subscribe"), "FORBIDDEN");
    let ack = client.emit_with_ack("timeline:subscribe", timeline("b", "1")).await;
    assert_eq!(ack["ok"], true);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn failures_without_an_ack_arrive_as_error_events() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    client.emit("ticket:view", json!({ "ticketId": "t1" }));
    let error = client.next_event("ticket:error").await;
    assert_eq!(error_event_code(&error, "ticket:view"), "INVALID_PAYLOAD");
    client.emit("ticket:typing", on("t1", "ada"));
    let error = client.next_event("ticket:error").await;
    assert_eq!(error_event_code(&error, "ticket:typing"), "NOT_VIEWING");
    client.emit("timeline:unsubscribe", json!({ "entityType": "deal" }));
    let error = client.next_event("timeline:error").await;
    assert_eq!(error_event_code(&error, "timeline:unsubscribe"), "INVALID_PAYLOAD");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn timeline_subscribe_answers_subscribed_then_the_ack() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    let ack = client
        .emit_with_ack("timeline:subscribe", json!({ "entityType": "deal", "entityId": 9 }))
        .await;
    let epoch = ack["epoch"].as_str().expect("the ack names the epoch").to_string();
    assert_eq!(
        ack,
        json!({ "ok": true, "entityType": "deal", "entityId": "9", "offset": 0, "epoch": epoch }),
        "v2: the timeline's position, 0 before any publish"
    );
    let subscribed = client.next_event("timeline:subscribed").await;
    assert_eq!(subscribed, timeline("deal", "9"));
    client.assert_arrived_before("timeline:subscribed", "ack timeline:subscribe");
    // Subscribing twice still answers.
    let again = client.emit_with_ack("timeline:subscribe", timeline("deal", "9")).await;
    assert_eq!(again, ack);
    assert_eq!(client.next_event("timeline:subscribed").await, subscribed);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn published_item_arrives_as_new_item_on_its_timeline_only() {
    let app = spawn_app(&[]).await;
    let mut subscriber = SioClient::websocket(app.public).await;
    let mut other = SioClient::websocket(app.public).await;
    subscribe(&mut subscriber, "deal", "9").await;
    subscribe(&mut other, "deal", "10").await;

    let item = json!({ "id": 1, "text": "Call booked", "nested": { "list": [1, null, true] } });
    let reply = publish(&app, reqwest::Method::POST, "/v1/timeline/deal/9/items", item.clone()).await;
    let epoch = reply["epoch"].clone();
    assert!(epoch.is_string(), "{reply}");
    assert_eq!(reply, json!({ "delivered": true, "offset": 1, "epoch": epoch }));
    let event = subscriber.next_event("timeline:new_item").await;
    assert_eq!(
        event,
        json!({ "entityType": "deal", "entityId": "9", "item": item, "offset": 1, "epoch": epoch })
    );
    other.assert_no_event("timeline:new_item").await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn batch_events_arrive_in_order() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    subscribe(&mut client, "deal", "9").await;
    let before = client.received().len();

    let mut events = Vec::new();
    let mut expected = Vec::new();
    for id in 1..=100 {
        events.push(json!({ "type": "new_item", "entityType": "deal", "entityId": "9", "item": { "id": id } }));
        expected.push("timeline:new_item");
        if id % 10 == 0 {
            let update = json!({ "id": id, "done": true });
            events.push(json!({
                "type": "item_updated", "entityType": "deal", "entityId": 9, "itemId": id, "item": update,
            }));
            expected.push("timeline:item_updated");
        }
    }
    events.push(json!({ "type": "refresh", "entityType": "deal", "entityId": "9", "reason": "batch" }));
    expected.push("timeline:refresh");
    let reply = publish(
        &app,
        reqwest::Method::POST,
        "/v1/timeline/batch",
        json!({ "events": events }),
    )
    .await;
    assert_eq!(reply, json!({ "accepted": 111 }));

    assert_eq!(client.next_event("timeline:refresh").await["reason"], "batch");
    assert_eq!(client.received()[before..], expected);
    for id in 1..=100 {
        assert_eq!(client.next_event("timeline:new_item").await["item"]["id"], id);
    }
    for id in (10..=100).step_by(10) {
        assert_eq!(
            client.next_event("timeline:item_updated").await["itemId"],
            id.to_string()
        );
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn item_update_arrives_as_item_updated() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    subscribe(&mut client, "deal", "9").await;
    let item = json!({ "id": 42, "status": "won" });
    let reply = publish(&app, reqwest::Method::PUT, "/v1/timeline/deal/9/items/42", item.clone()).await;
    let epoch = reply["epoch"].clone();
    assert_eq!(reply, json!({ "delivered": true, "offset": 1, "epoch": epoch }));
    let event = client.next_event("timeline:item_updated").await;
    assert_eq!(
        event,
        json!({ "entityType": "deal", "entityId": "9", "itemId": "42", "item": item, "offset": 1, "epoch": epoch })
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn refresh_arrives_with_its_reason_or_null() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    subscribe(&mut client, "deal", "9").await;
    for (offset, body, reason) in [
        (1, json!({ "reason": "merged" }), json!("merged")),
        (2, json!({}), Value::Null),
    ] {
        let reply = publish(&app, reqwest::Method::POST, "/v1/timeline/deal/9/refresh", body).await;
        let epoch = reply["epoch"].clone();
        assert_eq!(reply, json!({ "delivered": true, "offset": offset, "epoch": epoch }));
        let event = client.next_event("timeline:refresh").await;
        assert_eq!(
            event,
            json!({ "entityType": "deal", "entityId": "9", "reason": reason, "offset": offset, "epoch": epoch })
        );
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let app = spawn_app(&[]).await;
    let mut leaving = SioClient::websocket(app.public).await;
    let mut staying = SioClient::websocket(app.public).await;
    subscribe(&mut leaving, "deal", "9").await;
    subscribe(&mut staying, "deal", "9").await;

    let ack = leaving
        .emit_with_ack("timeline:unsubscribe", timeline("deal", "9"))
        .await;
    assert_eq!(ack, json!({ "ok": true, "entityType": "deal", "entityId": "9" }));
    assert_eq!(leaving.next_event("timeline:unsubscribed").await, timeline("deal", "9"));
    leaving.assert_arrived_before("timeline:unsubscribed", "ack timeline:unsubscribe");

    publish(
        &app,
        reqwest::Method::POST,
        "/v1/timeline/deal/9/items",
        json!({ "id": 1 }),
    )
    .await;
    staying.next_event("timeline:new_item").await;
    leaving.assert_no_event("timeline:new_item").await;
    // Unsubscribing again is a no-op that still answers.
    let again = leaving
        .emit_with_ack("timeline:unsubscribe", timeline("deal", "9"))
        .await;
    assert_eq!(again, ack);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_polling_client_gets_warnings_acks_and_publishes() {
    let app = spawn_app(&[]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let mut bob = SioClient::polling(app.public).await;
    view(&mut ada, "t1", "ada", "Ada").await;

    let ack = bob.emit_with_ack("ticket:view", viewing("t1", "bob", "Bob")).await;
    assert_eq!(ack["viewers"].as_array().map(Vec::len), Some(2));
    let warning = bob.next_event("collision:warning").await;
    assert_eq!(warning["message"], "Ada is viewing this ticket");
    bob.assert_arrived_before("collision:warning", "ack ticket:view");
    assert_eq!(ada.next_event("agent:joined").await["agentId"], "bob");

    ada.emit_with_ack("ticket:typing", on("t1", "ada")).await;
    assert_eq!(bob.next_event("agent:typing").await["message"], "Ada is typing...");

    subscribe(&mut bob, "deal", "9").await;
    publish(
        &app,
        reqwest::Method::POST,
        "/v1/timeline/deal/9/items",
        json!({ "id": 1 }),
    )
    .await;
    assert_eq!(bob.next_event("timeline:new_item").await["item"], json!({ "id": 1 }));

    bob.close().await;
    assert_eq!(ada.next_event("agent:left").await["reason"], "disconnected");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn viewing_as_another_agent_first_leaves_as_the_old_one() {
    let app = spawn_app(&[]).await;
    let mut watcher = SioClient::websocket(app.public).await;
    let mut shared = SioClient::websocket(app.public).await;
    view(&mut watcher, "t1", "cy", "Cy").await;
    view(&mut shared, "t1", "ada", "Ada").await;
    assert_eq!(watcher.next_event("agent:joined").await["agentId"], "ada");
    let mark = watcher.received().len();

    let ack = shared.emit_with_ack("ticket:view", viewing("t1", "bob", "Bob")).await;
    let ids: Vec<&Value> = ack["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["agentId"])
        .collect();
    assert_eq!(ids, ["cy", "bob"]);
    let left = watcher.next_event("agent:left").await;
    assert_eq!(
        left,
        json!({ "ticketId": "t1", "agentId": "ada", "agentName": "Ada", "reason": "left" })
    );
    assert_eq!(watcher.next_event("agent:joined").await["agentId"], "bob");
    let agent_events: Vec<&String> = watcher.received()[mark..]
        .iter()
        .filter(|e| e.starts_with("agent:"))
        .collect();
    assert_eq!(
        agent_events,
        ["agent:left", "agent:joined"],
        "the old agent leaves first"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stale_viewer_is_removed_and_told_so_and_stays_connected() {
    let app = spawn_app(&["--sweep-interval", "100ms", "--stale-after", "300ms"]).await;
    let mut ada = SioClient::websocket(app.public).await;
    let started = Instant::now();
    view(&mut ada, "t1", "ada", "Ada").await;

    let left = ada.next_event("agent:left").await;
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "after {:?}",
        started.elapsed()
    );
    assert_eq!(
        left,
        json!({ "ticketId": "t1", "agentId": "ada", "agentName": "Ada", "reason": "stale" })
    );
    assert_eq!(viewers_of(&app, "t1").await, json!([]));
    let ack = ada.emit_with_ack("ticket:typing", on("t1", "ada")).await;
    assert_eq!(error_code(&ack), "NOT_VIEWING");
    view(&mut ada, "t1", "ada", "Ada").await;
    app.shutdown().await.unwrap();
}

/// Regression (tests/fuzz.rs, docs/fuzzing.md): socketioxide's parser
/// refused a payload in which some object's first key holds a JSON escape;
/// an unknown field like that must be ignored, as any other.
#[tokio::test]
async fn a_key_with_an_escape_in_an_extra_field_is_ignored() {
    let app = spawn_app(&[]).await;
    for transport in ["websocket", "polling"] {
        let mut client = match transport {
            "websocket" => SioClient::websocket(app.public).await,
            _ => SioClient::polling(app.public).await,
        };
        let ticket = format!("esc-{transport}");
        let ack = client
            .emit_with_ack(
                "ticket:view",
                json!({ "ticketId": ticket, "agentId": "7", "agentName": "Ada", "meta": { "say \"hi\"\\": [{ "\u{1}": 1 }] } }),
            )
            .await;
        assert_eq!(ack["ok"], true, "{transport}: {ack}");
        client.close().await;
    }
    app.shutdown().await.unwrap();
}
