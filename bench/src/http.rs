//! A minimal HTTP/1.1 keep-alive client for the internal API: one request at
//! a time on one TCP connection, `Content-Length` bodies only (both servers
//! send them). Written by hand so that publishing costs the generator little.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive connection to `addr`, opened on first use and again after
/// the server closed it.
pub struct HttpClient {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
            timeout: Duration::from_secs(30),
        }
    }

    /// Sends one request and reads its response. A kept-alive connection
    /// that the server had closed meanwhile (Node closes idle ones after 5 s)
    /// is reopened and the request sent once more, which is safe because the
    /// server saw none of it.
    pub async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if !body.is_empty() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);

        let reused = self.stream.is_some();
        let mut result = self.exchange_within(&wire).await;
        if reused && matches!(result, Err(Failure::Stale)) {
            self.stream = None;
            result = self.exchange_within(&wire).await;
        }
        result.map_err(|failure| {
            self.stream = None;
            match failure {
                Failure::Timeout => io::Error::new(io::ErrorKind::TimedOut, "request timed out"),
                Failure::Stale | Failure::Broken => io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "connection closed before a full response",
                ),
            }
        })
    }

    async fn exchange_within(&mut self, wire: &[u8]) -> Result<Response, Failure> {
        tokio::time::timeout(self.timeout, self.exchange(wire))
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    async fn exchange(&mut self, wire: &[u8]) -> Result<Response, Failure> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await.map_err(|_| Failure::Broken)?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Broken);
        };
        stream.write_all(wire).await.map_err(|_| Failure::Stale)?;
        self.buf.clear();
        // Headers.
        let (status, head_len, content_length, close) = loop {
            let mut chunk = [0u8; 4096];
            let nothing_yet = if self.buf.is_empty() {
                Failure::Stale
            } else {
                Failure::Broken
            };
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(nothing_yet),
                Ok(n) => n,
            };
            self.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut content_length = 0usize;
                    let mut close = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            content_length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            // Neither server chunks its small JSON replies.
                            return Err(Failure::Broken);
                        }
                    }
                    break (resp.code.unwrap_or(0), len, content_length, close);
                }
                Ok(httparse::Status::Partial) => continue,
                Err(_) => return Err(Failure::Broken),
            }
        };
        // Body.
        while self.buf.len() < head_len + content_length {
            let mut chunk = [0u8; 4096];
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(Failure::Broken),
                Ok(n) => n,
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[head_len..head_len + content_length].to_vec();
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }

    /// `GET /v1/stats`: (connections, viewers, timeline subscriptions).
    pub async fn stats(&mut self) -> crate::Result<Stats> {
        let resp = self.request("GET", "/v1/stats", b"").await?;
        if resp.status != 200 {
            return Err(format!("GET /v1/stats answered {}", resp.status).into());
        }
        let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
        let n = |p: &str| v.pointer(p).and_then(serde_json::Value::as_u64).unwrap_or(u64::MAX);
        Ok(Stats {
            connections: n("/connections"),
            viewers: n("/tickets/viewers"),
            subscriptions: n("/timelines/subscriptions"),
        })
    }
}

/// Why an exchange failed: `Stale` when the server sent nothing at all (so it
/// saw no request and a retry is safe), `Broken` after part of a response.
enum Failure {
    Stale,
    Broken,
    Timeout,
}

/// The leak-relevant figures of `GET /v1/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    pub viewers: u64,
    pub subscriptions: u64,
}

impl Stats {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections,
            "viewers": self.viewers,
            "subscriptions": self.subscriptions,
        })
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} viewers, {} subscriptions",
            self.connections, self.viewers, self.subscriptions
        )
    }
}

/// Polls `GET /health` until it answers 200, within `timeout`.
pub async fn wait_healthy(addr: SocketAddr, timeout: Duration) -> crate::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut client = HttpClient::new(addr);
        if let Ok(resp) = client.request("GET", "/health", b"").await
            && resp.status == 200
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{addr} not healthy within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
