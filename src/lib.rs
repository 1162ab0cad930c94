//! # Switchboard
//!
//! A Socket.IO-compatible realtime server for a CRM/helpdesk: ticket
//! collision detection and live timelines. The wire contract is
//! `docs/PROTOCOL.md`.
//!
//! # Layout
//!
//! - [`config`]: the typed configuration, layered default → file → env → flags.
//! - [`ids`]: identifiers validated at the edge; [`error`]: client error codes.
//! - [`presence`]: the viewer registry (who views, who types), plain and synchronous.
//! - [`timelines`]: timeline subscriptions per socket and room.
//! - [`realtime`]: Socket.IO handlers; parse a request, apply it, queue the outcome.
//! - [`outbox`]: delivers queued joins, emits and acks in decision order.
//! - [`internal_api`]: the backend HTTP API (publishes, viewers, stats, probes).
//! - [`public`]: the public listener (Socket.IO, `/health`, origin policy).
//! - [`background`]: typing timeouts and the stale sweep.
//! - [`hub`]: the state shared by all of the above; [`app`] wires and stops it all.
//!
//! An event flows: socket → `realtime` (rate limit, parse) → `hub` (registry
//! under its lock) → `outbox` (rooms, emits, ack) → sockets.

pub mod app;
pub mod auth;
pub mod background;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod hub;
pub mod ids;
pub mod internal_api;
pub mod metrics;
pub mod outbox;
pub mod presence;
pub mod public;
pub mod rate_limit;
pub mod realtime;
pub mod timelines;
