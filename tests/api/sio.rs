//! A small Socket.IO v5 / Engine.IO v4 client for the tests: text packets on
//! namespace `/`, over WebSocket or long-polling.
//!
//! A transport task per connection answers the server's pings and forwards
//! decoded packets in arrival order; `SioClient` keeps what arrived until a
//! test takes it, and the names in arrival order so tests can check order.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;

/// How long to wait for what should arrive. Generous, so a loaded machine
/// does not fail a test; a passing test never waits it out.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long nothing may arrive for "no such event" to hold.
pub const QUIET: Duration = Duration::from_millis(200);

/// A packet from the server, decoded.
#[derive(Debug)]
enum Incoming {
    Connected(String),
    Event(String, Value),
    Ack(u64, Value),
    Closed(String),
}

pub struct SioClient {
    /// The Socket.IO id, to tell clients apart in failure messages.
    sid: String,
    /// Engine.IO packets to send (`42[..]`, `3`, ...).
    out: UnboundedSender<String>,
    inbox: UnboundedReceiver<Incoming>,
    /// Events that arrived and no test has taken yet, oldest first.
    events: VecDeque<(String, Value)>,
    acks: HashMap<u64, Value>,
    /// The event each ack id answers, to name acks in `received`.
    asked: HashMap<u64, String>,
    received: Vec<String>,
    next_ack: u64,
    /// Ends once it has sent the close packet.
    writer: JoinHandle<()>,
    reader: Option<JoinHandle<()>>,
}

impl SioClient {
    /// Connects over WebSocket only (no polling first), like `transports: ["websocket"]`.
    pub async fn websocket(addr: SocketAddr) -> Self {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        // Without TCP_NODELAY a second small write waits for the server's
        // delayed ACK (tens of ms), as a browser's would not.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
            .await
            .unwrap_or_else(|e| panic!("websocket to {url}: {e}"));
        match timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(open)))) if open.starts_with("0{") => {}
            other => panic!("expected the open packet 0{{..}}, got {other:?}"),
        }
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (incoming, inbox) = mpsc::unbounded_channel();
        let writer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    packet = outgoing.recv() => {
                        let Some(packet) = packet else { break };
                        let close = packet == "1";
                        if ws.send(Message::text(packet)).await.is_err() || close {
                            break;
                        }
                    }
                    message = ws.next() => match message {
                        Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                            let _ = ws.send(Message::text("3")).await;
                        }
                        Some(Ok(Message::Text(text))) => forward(&incoming, &text),
                        Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                        ended => {
                            let _ = incoming.send(Incoming::Closed(format!("websocket ended: {ended:?}")));
                            break;
                        }
                    },
                }
            }
            let _ = ws.close(None).await;
        });
        Self::handshake(out, inbox, writer, None).await
    }

    /// Connects over HTTP long-polling only, like `transports: ["polling"]`.
    pub async fn polling(addr: SocketAddr) -> Self {
        let http = reqwest::Client::new();
        let base = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
        let open = poll(&http, &base)
            .await
            .unwrap_or_else(|e| panic!("polling handshake: {e}"));
        let open: Value = open
            .strip_prefix('0')
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_else(|| panic!("expected the open packet 0{{..}}, got {open}"));
        let url = format!("{base}&sid={}", open["sid"].as_str().expect("open packet has a sid"));
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (incoming, inbox) = mpsc::unbounded_channel();
        let (pong, post_url, post_http) = (out.clone(), url.clone(), http.clone());
        let reader = tokio::spawn(async move {
            loop {
                let body = match poll(&http, &url).await {
                    Ok(body) => body,
                    Err(e) => {
                        let _ = incoming.send(Incoming::Closed(e));
                        return;
                    }
                };
                for packet in body.split('\x1e') {
                    if packet == "2" {
                        let _ = pong.send("3".into());
                    } else {
                        forward(&incoming, packet);
                    }
                }
            }
        });
        let writer = tokio::spawn(async move {
            while let Some(packet) = outgoing.recv().await {
                let sent = post_http.post(&post_url).body(packet.clone()).send().await;
                if !sent.is_ok_and(|res| res.status().is_success()) || packet == "1" {
                    break;
                }
            }
        });
        Self::handshake(out, inbox, writer, Some(reader)).await
    }

    async fn handshake(
        out: UnboundedSender<String>,
        mut inbox: UnboundedReceiver<Incoming>,
        writer: JoinHandle<()>,
        reader: Option<JoinHandle<()>>,
    ) -> Self {
        out.send("40".into()).expect("transport task is running");
        let sid = match timeout(WAIT, inbox.recv()).await {
            Ok(Some(Incoming::Connected(sid))) => sid,
            other => panic!("expected CONNECT 40{{\"sid\":..}}, got {other:?}"),
        };
        Self {
            sid,
            out,
            inbox,
            events: VecDeque::new(),
            acks: HashMap::new(),
            asked: HashMap::new(),
            received: Vec::new(),
            next_ack: 0,
            writer,
            reader,
        }
    }

    /// Sends an event without an ack: `42["event",payload]`.
    pub fn emit(&self, event: &str, payload: Value) {
        self.send(format!("42{}", json!([event, payload])));
    }

    /// Sends an event that asks for an ack (`42<id>[..]`); `ack(id)` awaits it.
    pub fn emit_asking_ack(&mut self, event: &str, payload: Value) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        self.asked.insert(id, event.to_string());
        self.send(format!("42{id}{}", json!([event, payload])));
        id
    }

    /// Sends an event and returns its ack's payload (`43<id>[payload]`).
    pub async fn emit_with_ack(&mut self, event: &str, payload: Value) -> Value {
        let id = self.emit_asking_ack(event, payload);
        self.ack(id).await
    }

    /// Awaits the ack of `emit_asking_ack`'s `id`.
    pub async fn ack(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(payload) = self.acks.remove(&id) {
                return payload;
            }
            if !self.pull(deadline).await {
                panic!(
                    "{}: no ack for `{}` within {WAIT:?}; received: {:?}",
                    self.sid, self.asked[&id], self.received
                );
            }
        }
    }

    /// Takes the oldest event `name` that arrived or arrives within `WAIT`.
    pub async fn next_event(&mut self, name: &str) -> Value {
        self.next_event_where(name, |_| true).await
    }

    /// Takes the first event `name` whose payload satisfies `wanted`; the
    /// older events of that name are dropped on the way.
    pub async fn next_event_where(&mut self, name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(at) = self.events.iter().position(|(n, _)| n == name) {
                let (_, payload) = self.events.remove(at).expect("position is in range");
                if wanted(&payload) {
                    return payload;
                }
            }
            if !self.pull(deadline).await {
                panic!(
                    "{}: no matching `{name}` within {WAIT:?}; received: {:?}",
                    self.sid, self.received
                );
            }
        }
    }

    /// Asserts that no event `name` is waiting or arrives within `QUIET`.
    pub async fn assert_no_event(&mut self, name: &str) {
        self.assert_no_events(&[name]).await;
    }

    /// Asserts that none of these events is waiting or arrives within `QUIET`
    /// (one quiet window for all of them).
    pub async fn assert_no_events(&mut self, names: &[&str]) {
        let deadline = Instant::now() + QUIET;
        loop {
            if let Some((name, payload)) = self.events.iter().find(|(n, _)| names.contains(&n.as_str())) {
                panic!(
                    "{}: unexpected `{name}`: {payload}; received: {:?}",
                    self.sid, self.received
                );
            }
            if !self.pull(deadline).await {
                return;
            }
        }
    }

    /// Names of everything received so far, in arrival order; an ack is
    /// `"ack <event>"`.
    pub fn received(&self) -> &[String] {
        &self.received
    }

    /// Asserts that the first `earlier` arrived before the first `later`.
    pub fn assert_arrived_before(&self, earlier: &str, later: &str) {
        let at = |name| self.received.iter().position(|n| n == name);
        match (at(earlier), at(later)) {
            (Some(e), Some(l)) if e < l => {}
            _ => panic!(
                "{}: expected `{earlier}` before `{later}`; received: {:?}",
                self.sid, self.received
            ),
        }
    }

    /// Disconnects like `socket.disconnect()`: a DISCONNECT packet, then the
    /// Engine.IO close packet, then the transport closes.
    pub async fn close(self) {
        self.send("41".into());
        self.send("1".into());
        let _ = timeout(WAIT, self.writer).await;
        if let Some(reader) = self.reader {
            reader.abort();
        }
    }

    /// Drops the connection without a goodbye, like a killed tab or a lost network.
    pub fn drop_transport(self) {
        self.writer.abort();
        if let Some(reader) = self.reader {
            reader.abort();
        }
    }

    fn send(&self, packet: String) {
        self.out.send(packet).expect("transport task is running");
    }

    /// Waits until `deadline` for one packet; false if none came.
    async fn pull(&mut self, deadline: Instant) -> bool {
        let packet = match timeout_at(deadline, self.inbox.recv()).await {
            Err(_) => return false,
            Ok(packet) => packet.unwrap_or(Incoming::Closed("transport task ended".into())),
        };
        match packet {
            Incoming::Event(name, payload) => {
                self.received.push(name.clone());
                self.events.push_back((name, payload));
            }
            Incoming::Ack(id, payload) => {
                let event = self.asked.get(&id).map_or("an unknown id", String::as_str);
                self.received.push(format!("ack {event}"));
                self.acks.insert(id, payload);
            }
            Incoming::Closed(why) => panic!("{}: connection closed ({why}); received: {:?}", self.sid, self.received),
            Incoming::Connected(sid) => panic!("{}: a second CONNECT ({sid})", self.sid),
        }
        true
    }
}

/// One long-polling GET (or the handshake): the body, or why there is none.
async fn poll(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let res = http.get(url).send().await.map_err(|e| format!("poll failed: {e}"))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| format!("poll body: {e}"))?;
    if !status.is_success() {
        return Err(format!("poll answered {status}: {body}"));
    }
    Ok(body)
}

/// Decodes one Engine.IO text packet and forwards what a test may want.
fn forward(incoming: &UnboundedSender<Incoming>, packet: &str) {
    let Some(sio) = packet.strip_prefix('4') else {
        return; // pong, noop, upgrade
    };
    let (kind, rest) = sio.split_at(sio.len().min(1));
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (id, data) = rest.split_at(digits);
    // A missing index reads as null: an event or ack without arguments has a null payload.
    let data: Value = serde_json::from_str(data).unwrap_or_default();
    let decoded = match kind {
        "0" => Incoming::Connected(data["sid"].as_str().unwrap_or_default().to_string()),
        "1" => Incoming::Closed("server disconnected the socket".into()),
        "2" => Incoming::Event(data[0].as_str().unwrap_or_default().to_string(), data[1].clone()),
        "3" => Incoming::Ack(id.parse().unwrap_or(u64::MAX), data[0].clone()),
        _ => Incoming::Closed(format!("unexpected packet {packet}")),
    };
    let _ = incoming.send(decoded);
}
