//! Timeline offsets, epochs and recovery with `since` (contract §4.1), on a
//! single instance, through a real client.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::sio::SioClient;

async fn publish_item(app: &TestApp, entity_id: &str, id: u64) -> Value {
    let res = app
        .http
        .post(app.internal_url(&format!("/v1/timeline/deal/{entity_id}/items")))
        .json(&json!({ "id": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.json().await.unwrap()
}

fn subscribing(entity_id: &str, since: Value) -> Value {
    json!({ "entityType": "deal", "entityId": entity_id, "since": since })
}

/// Subscribes without `since`; returns the ack.
async fn follow(client: &mut SioClient, entity_id: &str) -> Value {
    let ack = client
        .emit_with_ack(
            "timeline:subscribe",
            json!({ "entityType": "deal", "entityId": entity_id }),
        )
        .await;
    client.next_event("timeline:subscribed").await;
    ack
}

/// The offsets of the `timeline:new_item` events received so far.
async fn next_offsets(client: &mut SioClient, n: usize) -> Vec<u64> {
    let mut offsets = Vec::new();
    for _ in 0..n {
        let event = client.next_event("timeline:new_item").await;
        offsets.push(event["offset"].as_u64().expect("an offset"));
    }
    offsets
}

#[tokio::test]
async fn a_client_that_comes_back_gets_exactly_what_it_missed() {
    let app = spawn_app(&[]).await;
    let mut first = SioClient::websocket(app.public).await;
    let epoch = follow(&mut first, "9").await["epoch"].clone();
    for id in 1..=3 {
        publish_item(&app, "9", id).await;
    }
    assert_eq!(next_offsets(&mut first, 3).await, [1, 2, 3]);
    first.close().await;
    for id in 4..=53 {
        publish_item(&app, "9", id).await;
    }

    let mut back = SioClient::websocket(app.public).await;
    let ack = back
        .emit_with_ack(
            "timeline:subscribe",
            subscribing("9", json!({ "offset": 3, "epoch": epoch })),
        )
        .await;
    assert_eq!(
        ack,
        json!({ "ok": true, "entityType": "deal", "entityId": "9", "offset": 53, "epoch": epoch,
                "recovered": true, "missed": 50 })
    );
    assert_eq!(next_offsets(&mut back, 50).await, (4..=53).collect::<Vec<_>>());
    back.assert_arrived_before("timeline:subscribed", "timeline:new_item");
    back.assert_no_event("timeline:refresh").await;
    // Live again afterwards.
    publish_item(&app, "9", 54).await;
    assert_eq!(next_offsets(&mut back, 1).await, [54]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn publishes_racing_a_recovery_arrive_once_and_in_order() {
    let app = spawn_app(&["--history-size", "1000"]).await;
    let mut watcher = SioClient::websocket(app.public).await;
    let epoch = follow(&mut watcher, "9").await["epoch"].clone();
    for id in 1..=20 {
        publish_item(&app, "9", id).await;
    }
    let publisher = {
        let (http, url) = (app.http.clone(), app.internal_url("/v1/timeline/deal/9/items"));
        tokio::spawn(async move {
            for id in 21..=220 {
                let res = http.post(&url).json(&json!({ "id": id })).send().await.unwrap();
                assert_eq!(res.status(), 202);
            }
        })
    };
    let mut back = SioClient::websocket(app.public).await;
    let ack = back
        .emit_with_ack(
            "timeline:subscribe",
            subscribing("9", json!({ "offset": 5, "epoch": epoch })),
        )
        .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    publisher.await.unwrap();
    assert_eq!(
        next_offsets(&mut back, 215).await,
        (6..=220).collect::<Vec<_>>(),
        "contiguous, no duplicate"
    );
    back.assert_no_event("timeline:new_item").await;
    app.shutdown().await.unwrap();
}

/// Each case: (flags, the `since` offset, whether to send another epoch, why).
#[tokio::test]
async fn what_cannot_be_recovered_gets_history_lost() {
    for (args, since_offset, other_epoch, why) in [
        (vec!["--history-size", "10"], 1, false, "history too short"),
        (vec!["--history-size", "0"], 1, false, "history off"),
        (vec![], 99, false, "offset ahead"),
        (vec![], 1, true, "another epoch"),
    ] {
        let app = spawn_app(&args).await;
        let mut first = SioClient::websocket(app.public).await;
        let epoch = follow(&mut first, "9").await["epoch"].clone();
        for id in 1..=20 {
            publish_item(&app, "9", id).await;
        }
        let epoch = if other_epoch { json!("not-this-one") } else { epoch };
        let mut back = SioClient::websocket(app.public).await;
        let ack = back
            .emit_with_ack(
                "timeline:subscribe",
                subscribing("9", json!({ "offset": since_offset, "epoch": epoch })),
            )
            .await;
        assert_eq!(ack["recovered"], false, "{why}: {ack}");
        assert_eq!(ack["missed"], 0, "{why}");
        assert_eq!(ack["offset"], 20, "{why}: the current position");
        let refresh = back.next_event("timeline:refresh").await;
        assert_eq!(
            refresh,
            json!({ "entityType": "deal", "entityId": "9", "reason": "history_lost" }),
            "{why}: no offset on the server's own refresh"
        );
        back.assert_arrived_before("timeline:subscribed", "timeline:refresh");
        back.assert_no_event("timeline:new_item").await;
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_expired_history_starts_a_new_epoch() {
    let app = spawn_app(&["--history-ttl", "1s"]).await;
    let mut client = SioClient::websocket(app.public).await;
    let old = follow(&mut client, "9").await["epoch"].clone();
    publish_item(&app, "9", 1).await;
    // The expiry runs every second: within two the history is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let renewed = loop {
        let ack = client
            .emit_with_ack(
                "timeline:subscribe",
                subscribing("9", json!({ "offset": 0, "epoch": old })),
            )
            .await;
        if ack["recovered"] == false {
            break ack;
        }
        assert!(std::time::Instant::now() < deadline, "history never expired: {ack}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_ne!(renewed["epoch"], old);
    assert_eq!(renewed["offset"], 0);
    let reply = publish_item(&app, "9", 2).await;
    assert_eq!(
        (reply["offset"].clone(), reply["epoch"].clone()),
        (json!(1), renewed["epoch"].clone()),
        "the ack's epoch is the next event's"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_since_is_invalid_payload_with_and_without_ack() {
    let app = spawn_app(&[]).await;
    let mut client = SioClient::websocket(app.public).await;
    for since in [
        json!({ "offset": -1, "epoch": "e" }),
        json!({ "offset": "1", "epoch": "e" }),
        json!({ "offset": 1 }),
        json!({ "offset": 1, "epoch": "" }),
        json!({ "offset": 1, "epoch": "e".repeat(129) }),
        json!([1, "e"]),
    ] {
        let ack = client
            .emit_with_ack("timeline:subscribe", subscribing("9", since.clone()))
            .await;
        assert_eq!(ack["error"]["code"], "INVALID_PAYLOAD", "{since}");
        client.emit("timeline:subscribe", subscribing("9", since.clone()));
        let error = client.next_event("timeline:error").await;
        assert_eq!(error["code"], "INVALID_PAYLOAD", "{since}");
        assert_eq!(error["event"], "timeline:subscribe");
    }
    client.assert_no_event("timeline:subscribed").await;
    app.shutdown().await.unwrap();
}
