//! One raw Socket.IO v5 client over an Engine.IO v4 websocket.
//!
//! It does what socket.io-client does on the wire and nothing more: the
//! websocket handshake, the open packet, `40` to join `/`, a pong for every
//! ping, events as `42["name",payload]` and acks as `42<id>[..]` / `43<id>[..]`.
//! Frames are handed out as text; parsing is left to the caller, which looks
//! only at what it needs.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// Why a connection attempt failed; `storm` counts them as refused.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP connect refused: nothing listens (the server is down).
    Refused,
    /// The websocket handshake got this HTTP status (e.g. 503 when full).
    Status(u16),
    Timeout,
    /// Anything else: reset, closed early, a `44` connect error.
    Failed(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::Status(s) => write!(f, "handshake answered HTTP {s}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConnectError {}

/// One connected socket in namespace `/`.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    next_ack: u64,
}

/// tungstenite allocates its read buffer eagerly (128 KiB by default): with
/// 19,000 clients in one process that would be 2.4 GB. Frames here are small.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

impl Client {
    /// Connects to `addr` (websocket transport directly, as socket.io-client
    /// with `transports: ["websocket"]`) and joins namespace `/`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, ConnectError> {
        tokio::time::timeout(timeout, Self::connect_inner(addr))
            .await
            .unwrap_or(Err(ConnectError::Timeout))
    }

    async fn connect_inner(addr: SocketAddr) -> Result<Self, ConnectError> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            _ => ConnectError::Failed(format!("tcp connect: {e}")),
        })?;
        let _ = tcp.set_nodelay(true);
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = client_async_with_config(url, tcp, Some(ws_config()))
            .await
            .map_err(|e| match e {
                tungstenite::Error::Http(resp) => ConnectError::Status(resp.status().as_u16()),
                e => ConnectError::Failed(format!("websocket handshake: {e}")),
            })?;
        let mut client = Self { ws, next_ack: 0 };
        let closed = || ConnectError::Failed("closed during the Socket.IO handshake".into());
        let open = client.next_text().await.ok_or_else(closed)?;
        if !open.starts_with('0') {
            return Err(ConnectError::Failed(format!("expected an open packet, got {open}")));
        }
        client
            .send("40")
            .await
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        loop {
            let frame = client.next_text().await.ok_or_else(closed)?;
            if frame.starts_with("40") {
                return Ok(client);
            }
            if frame.starts_with("44") {
                return Err(ConnectError::Failed(format!("connect_error: {frame}")));
            }
        }
    }

    /// The next text frame that is not an Engine.IO ping (pings are answered
    /// here); `None` once the connection is closed or broken.
    pub async fn next_text(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => {
                    if text.as_str() == "2" {
                        self.send("3").await.ok()?;
                        continue;
                    }
                    return Some(text);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Sends one raw text frame.
    pub async fn send(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(text)).await
    }

    /// Emits `event` with a JSON `payload` and an ack id; returns the id.
    pub async fn emit_with_ack(&mut self, event: &str, payload: &str) -> Result<u64, tungstenite::Error> {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(&format!("42{id}[\"{event}\",{payload}]")).await?;
        Ok(id)
    }

    /// Reads until the ack `id` arrives and returns its frame (`43<id>[..]`);
    /// other frames (broadcasts to this socket) are skipped. `None` when the
    /// connection closes first.
    pub async fn wait_ack(&mut self, id: u64) -> Option<Utf8Bytes> {
        loop {
            let frame = self.next_text().await?;
            if let Some(rest) = frame.strip_prefix("43") {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if rest[..digits].parse() == Ok(id) {
                    return Some(frame);
                }
            }
        }
    }

    /// Emits with an ack and waits for it, within `timeout`.
    pub async fn call(&mut self, event: &str, payload: &str, timeout: Duration) -> Result<Utf8Bytes, String> {
        let id = self
            .emit_with_ack(event, payload)
            .await
            .map_err(|e| format!("{event}: {e}"))?;
        match tokio::time::timeout(timeout, self.wait_ack(id)).await {
            Ok(Some(ack)) => Ok(ack),
            Ok(None) => Err(format!("{event}: closed before the ack")),
            Err(_) => Err(format!("{event}: no ack within {timeout:?}")),
        }
    }

    /// Drops the TCP connection without any close packet (no Engine.IO `1`,
    /// no websocket close frame). With `reset`, the kernel sends RST instead
    /// of FIN.
    pub fn abort(self, reset: bool) {
        if reset {
            let _ = self.ws.get_ref().set_zero_linger();
        }
        drop(self);
    }
}

/// True when an ack frame (`43<id>[{...}]`) says `"ok":true`.
pub fn ack_ok(frame: &str) -> bool {
    frame.contains("\"ok\":true")
}

/// The publish timestamp a delivered frame carries (`"t":<µs>`), if any.
pub fn timestamp(frame: &str) -> Option<u64> {
    let at = frame.find("\"t\":")? + 4;
    let digits = frame[at..].bytes().take_while(u8::is_ascii_digit).count();
    frame[at..at + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_publish_timestamp() {
        let frame = r#"42["timeline:new_item",{"entityType":"client","entityId":"b-1","item":{"id":5,"t":123456,"text":"x"},"offset":3}]"#;
        assert_eq!(timestamp(frame), Some(123456));
        assert_eq!(timestamp(r#"42["timeline:new_item",{"item":{"id":5}}]"#), None);
    }

    #[test]
    fn reads_ack_outcome() {
        assert!(ack_ok(r#"431[{"ok":true,"ticketId":"1"}]"#));
        assert!(!ack_ok(r#"431[{"ok":false,"error":{"code":"RATE_LIMITED"}}]"#));
    }
}
