//! `loadgen`: a load generator that speaks the Switchboard contract to any
//! server (Switchboard or the Node original) over raw Engine.IO v4 /
//! Socket.IO v5 websockets, so that what is measured is the server, not a
//! JavaScript client.
//!
//! # Layout
//! - [`eio`]: one lean Socket.IO client connection (handshake, ping/pong,
//!   events with acks), no JSON parsing beyond what a scenario needs.
//! - [`http`]: a hand-written HTTP/1.1 keep-alive client for the internal API.
//! - [`probe`]: CPU (user and system apart) and RSS from `/proc`, for the
//!   server and for the generator itself.
//! - [`latency`]: the HDR histogram every latency goes into.
//! - [`backoff`]: socket.io-client's reconnection delays.
//! - [`scenario`]: `idle`, `fanout`, `collision`, `churn`, `storm`; each
//!   prints one JSON object per result line on stdout.
//! - [`table`]: turns two servers' result lines into one comparison table.
//!
//! Everything runs on one `current_thread` runtime (pin it with `taskset`),
//! every loop is bounded in count and time, and only loopback addresses are
//! accepted.

pub mod backoff;
pub mod eio;
pub mod http;
pub mod latency;
pub mod probe;
pub mod scenario;
pub mod table;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

/// The error every fallible step of a run returns; the binary prints it.
pub type Error = Box<dyn std::error::Error>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The server under load: its two listeners and, when known, its process.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub public: SocketAddr,
    pub internal: SocketAddr,
    pub pid: Option<u32>,
}

/// Refuses anything but a loopback address: the generator never sends load
/// elsewhere.
pub fn loopback(addr: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }
    Ok(addr)
}

/// Microseconds since the generator started: the clock that published items
/// carry (`"t"`) and deliveries are measured against, in the same process.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A small xorshift generator for jitter; no need for a cryptographic one.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so neighbouring seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    /// A uniform float in [0, 1), like `Math.random()`.
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}
