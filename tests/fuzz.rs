//! Fuzzing (issue 11): generated inputs through every decode path a client
//! or a backend can reach, with no panic and nothing left behind.
//!
//! Each target is a property test. The case count comes from
//! `PROPTEST_CASES` (proptest's own variable; 256 when unset, which is what
//! `cargo test` runs); the targets that go through a real server on
//! loopback run a tenth of it. The large run and its figures are in
//! `docs/fuzzing.md`:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release --test fuzz -- --nocapture --test-threads 1
//! ```
//!
//! Decode layers, outermost first:
//! - Engine.IO: a polling POST body (`engineioxide_core::payload::decoder`,
//!   chunked as it may arrive) and a text frame (`Packet::parse`);
//!   `engineio_*` here, and the vendored engineioxide transports through a
//!   real server in `server_*`.
//! - Socket.IO: socketioxide's parser (`socketioxide-parser-common`) with
//!   binary attachments, `socketio_*`.
//! - Our event payloads (`ClientPayload`, `Request::parse`), `client_events_*`.
//! - Every internal API body and path, through the real router,
//!   `internal_api_*`: refused input leaves the state as it was.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use engineioxide_core::{Packet as EioPacket, ProtocolVersion};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use socketioxide_core::packet::PacketData;
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_parser_common::CommonParser;
use switchboard::config::Config;
use switchboard::fuzz::{ClientPayload, EventName, Request as ClientRequest, event_payload, internal_router};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

// --- running ----------------------------------------------------------------

/// Panics anywhere in the process, server tasks included (tokio catches
/// those, so the property alone would not see them).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// The case count: `PROPTEST_CASES`, or proptest's default.
fn cases(divisor: u32) -> u32 {
    (RunnerConfig::default().cases / divisor).max(16)
}

/// Runs `test` on `cases` inputs from `strategy`; prints the count and time.
fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    count_panics();
    let before = PANICS.load(Ordering::SeqCst);
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let outcome = runner.run(&strategy, test);
    let elapsed = started.elapsed();
    println!("fuzz {name}: {cases} cases in {:.1} s", elapsed.as_secs_f64());
    if let Err(e) = outcome {
        panic!("fuzz {name}: {e}");
    }
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        before,
        "fuzz {name}: a panic somewhere in the process"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// --- strategies ---------------------------------------------------------------

/// Text that looks like protocol text more often than random text does.
fn protocol_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9b]{0,3}[-,/\\[\\]{}\":0-9a-z_]{0,40}",
        "[0-6][0-9]{0,3}(-)?(/[a-z]{0,4},)?[0-9]{0,4}\\[.{0,30}\\]",
        "b[A-Za-z0-9+/=]{0,48}",
        "[2-3](probe)?",
    ]
}

fn identifier() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-z0-9-]{1,8}".prop_map(Value::from),
        2 => (-5i64..100_000).prop_map(Value::from),
        1 => Just(json!("")),
        1 => Just(json!(9_007_199_254_740_992i64)),
        1 => Just(json!(1.5)),
        1 => Just(json!(7.0)),
        1 => Just(Value::Null),
        1 => Just(json!(true)),
        1 => Just(json!([1])),
        1 => Just(json!({"id": 1})),
        1 => ".{0,3}[\u{0}-\u{1f}\u{7f}-\u{9f}].{0,3}".prop_map(Value::from),
        1 => Just(Value::from("x".repeat(129))),
        1 => any::<String>().prop_map(Value::from),
    ]
}

fn agent_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[A-Za-z ]{1,12}".prop_map(Value::from),
        1 => Just(json!("   ")),
        1 => Just(Value::from("n".repeat(201))),
        1 => identifier(),
    ]
}

fn entity_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["deal", "contact", "lead"]).prop_map(Value::from),
        2 => "[a-zA-Z0-9_-]{0,34}".prop_map(Value::from),
        1 => identifier(),
    ]
}

/// Any JSON value, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the contract's field names, each valid or not, present or not.
fn payload_object() -> impl Strategy<Value = Value> {
    let since = prop_oneof![
        Just(Value::Null),
        ((-2i64..1000), "[a-z0-9]{0,6}").prop_map(|(o, e)| json!({"offset": o, "epoch": e})),
        json_value(),
    ];
    let fields = (
        prop::option::of(identifier()),
        prop::option::of(identifier()),
        prop::option::of(agent_name()),
        prop::option::of(entity_type()),
        prop::option::of(identifier()),
        prop::option::of(since),
        prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..3),
    );
    prop_oneof![
        8 => fields.prop_map(|(ticket, agent, name, et, eid, since, extra)| {
            let mut o: serde_json::Map<String, Value> = extra.into_iter().collect();
            for (k, v) in [("ticketId", ticket), ("agentId", agent), ("agentName", name), ("entityType", et), ("entityId", eid), ("since", since)] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            Value::Object(o)
        }),
        2 => json_value(),
    ]
}

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "ticket:view", "ticket:typing", "ticket:stop_typing", "ticket:leave",
            "timeline:subscribe", "timeline:unsubscribe",
        ]).prop_map(String::from),
        1 => ".{0,12}",
    ]
}

/// A Socket.IO text packet as a client could send it, with up to
/// `attachments` placeholders for binary attachments.
fn socketio_text() -> impl Strategy<Value = String> {
    let event = (
        event_name(),
        payload_object(),
        prop::option::of(0u32..1000),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(name, mut payload, ack, attachments, binary)| {
            if binary && let Value::Object(o) = &mut payload {
                for num in 0..attachments {
                    o.insert(format!("file{num}"), json!({"_placeholder": true, "num": num}));
                }
            }
            let args = json!([name, payload]).to_string();
            let ack = ack.map(|a| a.to_string()).unwrap_or_default();
            if binary {
                format!("5{attachments}-{ack}{args}")
            } else {
                format!("2{ack}{args}")
            }
        });
    prop_oneof![6 => event, 1 => protocol_text(), 1 => Just("0".to_string()), 1 => "0\\{.{0,20}"]
}

#[derive(Debug, Clone)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

fn socketio_frames() -> impl Strategy<Value = Vec<Frame>> {
    let frame = prop_oneof![
        4 => socketio_text().prop_map(Frame::Text),
        2 => prop::collection::vec(any::<u8>(), 0..32).prop_map(Frame::Binary),
    ];
    prop::collection::vec(frame, 1..6)
}

// --- Engine.IO ----------------------------------------------------------------

#[test]
fn engineio_packets_parse_without_panic() {
    fuzz("engineio_packet", cases(1), protocol_text(), |text| {
        for protocol in [ProtocolVersion::V4, ProtocolVersion::V3] {
            if let Ok(EioPacket::Message(m)) = EioPacket::parse(protocol, text.clone()) {
                prop_assert_eq!(&*m, &text[1..]);
            }
        }
        Ok(())
    });
}

#[test]
fn engineio_polling_payloads_decode_without_panic() {
    let rt = runtime();
    let body = (
        prop::collection::vec(prop_oneof![3 => protocol_text(), 1 => "4.{0,8}"], 0..6),
        prop::collection::vec(any::<u8>(), 0..16),
        0usize..4,
        prop_oneof![Just(1_000_000u64), 1u64..64],
    );
    fuzz(
        "engineio_polling_payload",
        cases(1),
        body,
        |(packets, junk, cuts, max)| {
            let mut bytes = packets.join("\x1e").into_bytes();
            bytes.extend_from_slice(&junk);
            // As it may arrive: in several chunks, cut anywhere (mid-UTF-8 too).
            let step = (bytes.len() / (cuts + 1)).max(1);
            let chunks: Vec<Result<_, Infallible>> = bytes
                .chunks(step)
                .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let body = StreamBody::new(futures_util::stream::iter(chunks));
            let decoded: Vec<_> = rt.block_on(
                engineioxide_core::payload::decoder(body, None, ProtocolVersion::V4, max)
                    .take(64)
                    .collect(),
            );
            if bytes.len() as u64 <= max && !bytes.is_empty() {
                let separators = bytes.iter().filter(|b| **b == 0x1e).count();
                prop_assert!(decoded.len() <= separators + 1);
            }
            Ok(())
        },
    );
}

// --- Socket.IO ----------------------------------------------------------------

/// What socketioxide and then our handler do with a decoded event: read the
/// name, decode the payload as `TryData<ClientPayload>` does, parse it.
fn handle_event(mut value: socketioxide_core::Value) -> Result<(), TestCaseError> {
    let Ok(name) = CommonParser.read_event(&value).map(str::to_owned) else {
        return Ok(());
    };
    let decoded = CommonParser.decode_value::<ClientPayload>(&mut value, true);
    let payload = event_payload(decoded, &value);
    if let (Some(event), Some(payload)) = (EventName::parse(&name), payload) {
        let first = ClientRequest::parse(event, &payload, None);
        // A pure function of its input: the same payload, the same answer.
        prop_assert_eq!(first, ClientRequest::parse(event, &payload, None));
    }
    Ok(())
}

#[test]
fn socketio_packets_with_attachments_decode_without_panic() {
    let config = ParseConfig {
        max_incoming_binaries: 4,
        ..ParseConfig::default()
    };
    fuzz("socketio_packets", cases(1), socketio_frames(), |frames| {
        let state = ParserState::default();
        for frame in frames {
            let decoded = match frame {
                Frame::Text(t) => CommonParser.decode_str(&config, &state, t.into()),
                Frame::Binary(b) => CommonParser.decode_bin(&config, &state, b.into()),
            };
            if let Ok(packet) = decoded
                && let PacketData::Event(v, _) | PacketData::BinaryEvent(v, _) = packet.inner
            {
                handle_event(v)?;
            }
        }
        Ok(())
    });
}

// --- our event payloads ----------------------------------------------------------

#[test]
fn client_event_payloads_parse_as_json_does() {
    let config = ParseConfig::default();
    fuzz(
        "client_events",
        cases(1),
        (event_name(), payload_object()),
        |(name, payload)| {
            // Through the parser, as a client sends it...
            let packet = format!("2{}", json!([name, payload]));
            let state = ParserState::default();
            let decoded = CommonParser
                .decode_str(&config, &state, packet.into())
                .map_err(|e| TestCaseError::fail(format!("a JSON event packet refused: {e:?}")))?;
            let PacketData::Event(mut value, _) = decoded.inner else {
                return Err(TestCaseError::fail("not an event"));
            };
            let decoded = CommonParser.decode_value::<ClientPayload>(&mut value, true);
            // ... it reads as the JSON it was (as our handler reads it), numbers
            // aside: two JSON parsers agree on integers, not on every float.
            let via_parser =
                event_payload(decoded, &value).ok_or_else(|| TestCaseError::fail("a JSON payload was not read"))?;
            if !has_float(&payload) {
                prop_assert_eq!(&via_parser, &payload);
            }
            if let Some(event) = EventName::parse(&name) {
                let _ = ClientRequest::parse(event, &via_parser, None);
            }
            Ok(())
        },
    );
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// Binary attachments anywhere in a payload become arrays of byte values
/// (and the rest of the payload still parses).
#[test]
fn binary_attachments_in_payloads_become_byte_arrays() {
    let config = ParseConfig::default();
    fuzz(
        "client_events_binary",
        cases(4),
        (prop::collection::vec(any::<u8>(), 0..16), identifier()),
        |(bytes, ticket)| {
            let state = ParserState::default();
            let text = json!(["ticket:view", {"ticketId": ticket, "agentId": 1, "agentName": "Ada", "avatar": {"_placeholder": true, "num": 0}}]);
            let first = CommonParser.decode_str(&config, &state, format!("51-{text}").into());
            prop_assert!(first.is_err(), "waits for its attachment");
            let packet = CommonParser
                .decode_bin(&config, &state, bytes.clone().into())
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let PacketData::BinaryEvent(mut value, _) = packet.inner else {
                return Err(TestCaseError::fail("not a binary event"));
            };
            let payload = CommonParser
                .decode_value::<ClientPayload>(&mut value, true)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(&payload.0["avatar"], &json!(bytes));
            let parsed = ClientRequest::parse(EventName::View, &payload.0, None);
            let valid_ticket = ClientRequest::parse(
                EventName::View,
                &json!({"ticketId": ticket, "agentId": 1, "agentName": "Ada"}),
                None,
            );
            prop_assert_eq!(parsed, valid_ticket);
            Ok(())
        },
    );
}

// --- the internal API -----------------------------------------------------------

const TOKEN: &str = "fuzz-token";

#[derive(Debug, Clone)]
struct ApiCall {
    method: Method,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["deal", "contact", "lead", "1", "42", "x-y"]).prop_map(String::from),
        2 => "[A-Za-z0-9_.~-]{0,34}",
        1 => "(%[0-9A-Fa-f]{2}){1,4}",
        1 => any::<String>().prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect()),
    ]
}

fn api_body() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        Just(json!({"id": 1}).to_string()),
        json_value().prop_map(|v| v.to_string())
    ];
    let batch_event = (
        prop::sample::select(vec!["new_item", "item_updated", "refresh", "delete"]),
        entity_type(),
        identifier(),
        prop::option::of(json_value()),
        prop::option::of(identifier()),
        prop::option::of(prop_oneof![
            Just(Value::Null),
            ".{0,8}".prop_map(Value::from),
            json_value()
        ]),
    )
        .prop_map(|(t, et, eid, item, item_id, reason)| {
            let mut o = json!({"type": t, "entityType": et, "entityId": eid});
            if let Some(item) = item {
                o["item"] = item;
            }
            if let Some(id) = item_id {
                o["itemId"] = id;
            }
            if let Some(r) = reason {
                o["reason"] = r;
            }
            o
        });
    prop_oneof![
        3 => item.prop_map(String::into_bytes),
        3 => prop::collection::vec(batch_event, 0..5).prop_map(|events| json!({"events": events}).to_string().into_bytes()),
        1 => prop_oneof![Just(Value::Null), ".{0,8}".prop_map(Value::from), json_value()].prop_map(|r| json!({"reason": r}).to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        1 => Just(format!("{{\"id\":1,\"pad\":\"{}\"}}", "x".repeat(5000)).into_bytes()),
    ]
}

fn api_call() -> impl Strategy<Value = ApiCall> {
    let route = prop_oneof![
        (path_segment(), path_segment()).prop_map(|(t, i)| (Method::POST, format!("/v1/timeline/{t}/{i}/items"))),
        (path_segment(), path_segment(), path_segment())
            .prop_map(|(t, i, it)| (Method::PUT, format!("/v1/timeline/{t}/{i}/items/{it}"))),
        (path_segment(), path_segment()).prop_map(|(t, i)| (Method::POST, format!("/v1/timeline/{t}/{i}/refresh"))),
        Just((Method::POST, "/v1/timeline/batch".to_string())),
        path_segment().prop_map(|t| (Method::GET, format!("/v1/tickets/{t}/viewers"))),
        Just((Method::GET, "/v1/stats".to_string())),
        (
            prop::sample::select(vec![
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH
            ]),
            "(/[a-z0-9._~%-]{0,8}){1,5}"
        )
            .prop_map(|(m, p)| (m, p)),
    ];
    let authorization = prop_oneof![
        6 => Just(Some(format!("Bearer {TOKEN}"))),
        1 => Just(None),
        1 => "[ -~]{0,20}".prop_map(Some),
        1 => Just(Some(format!("Bearer {TOKEN}x"))),
    ];
    (route, authorization, api_body()).prop_map(|((method, path), authorization, body)| ApiCall {
        method,
        path,
        authorization,
        body,
    })
}

async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Bytes) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let request = request.body(Body::from(body)).expect("a request HTTP can carry");
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

/// What a refused request must not change: the stats and the publish counts.
async fn state(router: &axum::Router) -> (Value, BTreeMap<String, String>) {
    let bearer = format!("Bearer {TOKEN}");
    let (_, stats) = call(router, Method::GET, "/v1/stats", Some(&bearer), Vec::new()).await;
    let mut stats: Value = serde_json::from_slice(&stats).unwrap();
    stats.as_object_mut().unwrap().remove("uptimeSeconds");
    let (_, metrics) = call(router, Method::GET, "/metrics", None, Vec::new()).await;
    let published = String::from_utf8(metrics.to_vec())
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("switchboard_published_total") || l.starts_with("switchboard_publish_duration_seconds_count")
        })
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    (stats, published)
}

const DOCUMENTED: [u16; 9] = [200, 202, 400, 401, 403, 404, 405, 408, 413];
const CODES: [&str; 8] = [
    "INVALID_JSON",
    "INVALID_PAYLOAD",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "PAYLOAD_TOO_LARGE",
    "REQUEST_TIMEOUT",
];

#[test]
fn internal_api_refuses_bad_bodies_and_changes_nothing() {
    let rt = runtime();
    let args = [
        "switchboard",
        "--internal-token",
        TOKEN,
        "--entity-types",
        "deal,contact",
        "--max-body",
        "4096",
    ];
    let config = Config::from_args_and_env(args, |_| None).unwrap();
    let router = rt.block_on(async { internal_router(config) });
    fuzz("internal_api", cases(1), api_call(), |c| {
        rt.block_on(async {
            let before = state(&router).await;
            let (status, body) = call(
                &router,
                c.method.clone(),
                &c.path,
                c.authorization.as_deref(),
                c.body.clone(),
            )
            .await;
            prop_assert!(DOCUMENTED.contains(&status.as_u16()), "{c:?} answered {status}");
            if status.is_client_error() {
                let error: Value =
                    serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{c:?}: {e}")))?;
                let code = error["error"]["code"].as_str().unwrap_or_default();
                prop_assert!(CODES.contains(&code), "{c:?}: {error}");
                prop_assert_eq!(
                    state(&router).await,
                    before,
                    "{:?} was refused ({}) but changed the state",
                    c,
                    status
                );
            }
            Ok(())
        })
    });
}

// --- a real server: the vendored engineioxide transports, end to end -------------

fn server_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// After every client left: no connection, viewer or subscription is left,
/// and a well-behaved client is still served.
async fn nothing_left_behind(app: &helpers::TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = app.stats().await;
        let idle = stats["connections"] == 0
            && stats["tickets"] == json!({"watched": 0, "viewers": 0})
            && stats["timelines"] == json!({"rooms": 0, "subscriptions": 0});
        if idle {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.public);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("40")).await.unwrap();
    // As socket.io-client does: an event sent before the CONNECT reply may
    // find the socket still in the connect middleware, and socketioxide
    // closes the transport of a packet for a socket it does not have yet.
    wait_connected(&mut ws).await.expect("CONNECT reply");
    ws.send(Message::text(
        r#"421["ticket:view",{"ticketId":"after","agentId":"1","agentName":"Ada"}]"#,
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .expect("ack in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg
            && t.starts_with("431[")
        {
            assert!(t.contains(r#""ok":true"#), "{t}");
            break;
        }
    }
    let _ = ws.close(None).await;
}

/// Regression (found by `server_websocket_frames`, docs/fuzzing.md): a
/// client that sent CONNECT (or DISCONNECT then CONNECT again) and closed
/// its transport at once stayed counted in `connections` (and held a
/// `max_connections` place) for good. socketioxide closes only the sockets
/// already in its namespace when a transport closes; one still in the
/// connect middleware was counted there, and its disconnect handler never
/// ran. Sockets are now counted in the connect handler (`realtime::attach`).
#[test]
fn connect_then_close_at_once_leaves_nothing() {
    let rt = server_runtime();
    rt.block_on(async {
        let app = helpers::spawn_app(&[]).await;
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.public);
        for frames in [&["40"][..], &["40", "41", "40"][..]] {
            for _ in 0..30 {
                let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
                if frames.len() > 1 {
                    ws.send(Message::text("40")).await.unwrap();
                    wait_connected(&mut ws).await.unwrap();
                }
                for f in &frames[frames.len().min(2) - 1..] {
                    let _ = ws.send(Message::text(*f)).await;
                }
                let _ = ws.close(None).await;
            }
        }
        nothing_left_behind(&app).await;
        app.shutdown().await.unwrap();
    });
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until the server's reply to CONNECT (`40{"sid":..}`).
async fn wait_connected(ws: &mut Ws) -> Result<(), TestCaseError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with("40{") => return Ok(()),
            Ok(Some(Ok(_))) => {}
            other => return Err(TestCaseError::fail(format!("no CONNECT reply: {other:?}"))),
        }
    }
}

/// The server the transport fuzzers talk to: no rate limit (every input
/// reaches the parsers), small messages (oversize ones are cheap to make).
async fn fuzzed_server() -> helpers::TestApp {
    helpers::spawn_app(&["--events-per-second", "0", "--max-payload", "2048"]).await
}

#[test]
fn server_websocket_frames() {
    let rt = server_runtime();
    let app = rt.block_on(fuzzed_server());
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.public);
    let frames = (
        any::<bool>(),
        socketio_frames(),
        prop::collection::vec(protocol_text(), 0..3),
    );
    fuzz("server_websocket", cases(10), frames, |(connect, frames, engineio)| {
        rt.block_on(async {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if connect {
                // Connected before the fuzzed frames (which may CONNECT
                // again, or DISCONNECT); a CONNECT with a transport closed at
                // once has its own test (`connect_then_close_at_once_leaves_nothing`).
                let _ = ws.send(Message::text("40")).await;
                wait_connected(&mut ws).await?;
            }
            for frame in frames {
                let sent = match frame {
                    Frame::Text(t) => ws.send(Message::text(format!("4{t}"))).await,
                    Frame::Binary(b) => ws.send(Message::binary(b)).await,
                };
                if sent.is_err() {
                    break;
                }
            }
            for t in engineio {
                let _ = ws.send(Message::text(t)).await;
            }
            let _ = ws.close(None).await;
            Ok(())
        })
    });
    rt.block_on(nothing_left_behind(&app));
    rt.block_on(app.shutdown()).unwrap();
}

#[test]
fn server_polling_bodies() {
    let rt = server_runtime();
    let app = rt.block_on(fuzzed_server());
    let base = format!("http://{}/socket.io/?EIO=4&transport=polling", app.public);
    let body = (
        any::<bool>(),
        prop::collection::vec(
            prop_oneof![3 => socketio_text().prop_map(|t| format!("4{t}")), 1 => protocol_text()],
            0..5,
        ),
        prop::collection::vec(any::<u8>(), 0..8),
    );
    fuzz("server_polling", cases(10), body, |(connect, packets, junk)| {
        rt.block_on(async {
            let open = app
                .http
                .get(&base)
                .send()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let open = open.text().await.unwrap_or_default();
            let sid = open
                .strip_prefix('0')
                .and_then(|o| serde_json::from_str::<Value>(o).ok())
                .and_then(|o| o["sid"].as_str().map(str::to_owned))
                .ok_or_else(|| TestCaseError::fail(format!("handshake: {open}")))?;
            let url = format!("{base}&sid={sid}");
            if connect {
                let _ = app.http.post(&url).body("40").send().await;
                // Until the CONNECT's reply, as on the websocket.
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let polled = app
                        .http
                        .get(&url)
                        .send()
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    if polled.text().await.unwrap_or_default().contains("40{") {
                        break;
                    }
                    prop_assert!(Instant::now() < deadline, "no CONNECT reply");
                }
            }
            let mut body = packets.join("\x1e").into_bytes();
            body.extend_from_slice(&junk);
            let res = app
                .http
                .post(&url)
                .body(body)
                .send()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(!res.status().is_server_error(), "{}", res.status());
            // Ends the session if the body did not.
            let _ = app.http.post(&url).body("1").send().await;
            Ok(())
        })
    });
    rt.block_on(nothing_left_behind(&app));
    rt.block_on(app.shutdown()).unwrap();
}
