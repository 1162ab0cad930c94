//! # Switchboard
//!
//! A Socket.IO-compatible realtime server for a CRM/helpdesk: ticket
//! collision detection and live timelines. The wire contract is
//! `docs/PROTOCOL.md`; `docs/architecture.md` walks through the flows.
//!
//! # Layout
//!
//! The domain, plain and synchronous (unit-tested without a network):
//! - `ids`: identifiers validated at the edge; `error`: client error codes
//!   (Socket.IO); `http_error`: HTTP error codes (both listeners).
//! - `presence`: the viewer registry (who views, types, edits, is idle, on
//!   which devices), returns events; the watch registry (list views).
//! - `ticket_updates`: "this ticket was updated" from a backend (§3.3).
//! - `timelines`: timeline events and the subscriptions per socket and room.
//! - `history`: timeline offsets, epochs and the events kept for recovery.
//! - `rate_limit`: the per-socket token bucket; `clock`: monotonic epoch ms.
//! - `admission`: this node's connections and the `max_connections` rule.
//!
//! State and the way out:
//! - `hub`: the node's shared state and its operations; decides under its
//!   locks and queues the outcome.
//! - `delivery`: the only code that talks to sockets (joins, emits, acks,
//!   disconnects), one task in decision order; `delivery::wire` turns domain
//!   outcomes into the contract's wire messages.
//!
//! The edges:
//! - `realtime`: Socket.IO handlers: rate limit, parse, call the hub, queue the ack.
//! - `auth`: JWT verification at the handshake, token expiry times.
//! - `internal_api`: the backend HTTP API (publishes, viewers, stats, probes).
//! - `public`: the public listener (Socket.IO, `/health`, origin policy,
//!   `max_connections`, and `demo`'s agent console).
//! - `demo`: the agent console's page and the socket.io-client bundle it loads.
//! - `http_server`: the accept loop both listeners run (header read timeout,
//!   graceful drain).
//! - `cluster`: replication of presence and publishes over Redis pub/sub.
//! - `background`: the timers (typing timeouts and idle viewers, stale
//!   sweep, token expiry).
//! - `metrics`: Prometheus counters and gauges.
//! - `memory`: gives the heap's free memory back to the OS (`malloc_trim`, from a timer).
//! - [`config`]: the typed configuration; [`app`] wires everything and owns
//!   shutdown; [`healthcheck`]: the container probe (`switchboard healthcheck`).
//!
//! A client event flows: socket → `realtime` (rate limit, parse) → `hub`
//! (`presence` under its lock; events → `delivery::wire` → outbox; the change
//! to `cluster`) → `realtime` queues the ack → the delivery task → sockets.
//! A backend publish flows: `internal_api` (validate) → `hub::publish` (outbox
//! here, `cluster` for the others) → the delivery task of every node.

mod admission;
pub mod app;
mod auth;
mod background;
mod clock;
mod cluster;
pub mod config;
mod delivery;
mod demo;
mod error;
pub mod healthcheck;
mod history;
mod http_error;
mod http_server;
mod hub;
mod ids;
mod internal_api;
mod memory;
mod metrics;
mod presence;
mod public;
mod rate_limit;
mod realtime;
mod ticket_updates;
mod timelines;

/// What the fuzz tests (`tests/fuzz.rs`) drive in-process; not an API.
#[doc(hidden)]
pub mod fuzz {
    pub use crate::realtime::payload::{ClientPayload, event_payload};
    pub use crate::realtime::requests::{EventName, Request};

    /// The internal API's router over a fresh single-instance hub whose
    /// Socket.IO server has no listener (publishes reach no socket). Call
    /// within a tokio runtime: it starts the delivery task.
    pub fn internal_router(config: crate::config::Config) -> axum::Router {
        let (_layer, io) = socketioxide::SocketIo::builder().build_layer();
        let metrics = crate::metrics::Metrics::new();
        let (outbox, _delivery) = crate::delivery::Outbox::start(io, metrics.slow_client_disconnects.clone());
        let hub = crate::hub::Hub::new(config, "fuzz".into(), outbox, None, metrics);
        hub.set_serving(true);
        crate::internal_api::router(hub)
    }
}

/// What the micro-benchmarks (`benches/hot_paths.rs`) drive; not an API.
#[doc(hidden)]
pub mod bench {
    pub use crate::delivery::Delivery;
    pub use crate::delivery::wire::timeline as timeline_delivery;
    pub use crate::history::Position;
    pub use crate::ids::{AgentId, AgentName, Device, EntityId, EntityType, TicketId, TimelineKey};
    pub use crate::presence::{Origin, PresenceOp, PresenceRules, ViewerRegistry};
    pub use crate::realtime::payload::ClientPayload;
    pub use crate::realtime::requests::{EventName, Request};
    pub use crate::timelines::TimelineEvent;
}
