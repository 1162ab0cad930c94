//! The state one node shares between its sockets, its internal API and its
//! background tasks. Cloning a `Hub` is cheap: an `Arc` inside.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use socketioxide::SocketIo;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::ClientError;
use crate::ids::EntityType;
use crate::metrics::{Metrics, Snapshot};
use crate::outbox::Outbox;
use crate::presence::{PresenceEvent, PresenceRules, PresenceStats, ViewerRegistry};
use crate::realtime::notify;
use crate::timelines::{TimelineRegistry, TimelineStats};

#[derive(Clone, Debug)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub node_id: String,
    pub clock: Clock,
    pub io: SocketIo,
    pub outbox: Outbox,
    pub metrics: Metrics,
    presence: Mutex<ViewerRegistry>,
    timelines: Mutex<TimelineRegistry>,
    /// Woken when a typing deadline is set, so the expiry task re-plans.
    pub typing_changed: Notify,
    connections: AtomicI64,
    serving: AtomicBool,
}

/// This node's figures for `/v1/stats`.
#[derive(Debug, Clone, Copy)]
pub struct NodeStats {
    pub connections: i64,
    pub presence: PresenceStats,
    pub timelines: TimelineStats,
}

impl std::ops::Deref for Hub {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Hub {
    pub fn new(config: Config, node_id: String, io: SocketIo, outbox: Outbox) -> Self {
        let rules = PresenceRules {
            typing_timeout_ms: config.typing_timeout.as_millis() as u64,
            stale_after_ms: config.stale_after.as_millis() as u64,
            max_tickets_per_socket: config.max_tickets_per_socket,
        };
        let timelines = TimelineRegistry::new(config.max_timelines_per_socket);
        Self {
            shared: Arc::new(Shared {
                node_id,
                clock: Clock::new(),
                io,
                outbox,
                metrics: Metrics::new(),
                presence: Mutex::new(ViewerRegistry::new(rules)),
                timelines: Mutex::new(timelines),
                typing_changed: Notify::new(),
                connections: AtomicI64::new(0),
                serving: AtomicBool::new(false),
                config,
            }),
        }
    }

    /// Runs `f` on the viewer registry and queues the events it returns,
    /// still under the lock, so deliveries keep the order of the changes.
    pub fn with_presence<T>(
        &self,
        f: impl FnOnce(&mut ViewerRegistry) -> Result<(T, Vec<PresenceEvent>), ClientError>,
    ) -> Result<T, ClientError> {
        let mut registry = lock(&self.presence);
        let (value, events) = f(&mut registry)?;
        for event in events {
            self.outbox.push(notify::delivery(event));
        }
        Ok(value)
    }

    pub fn timelines(&self) -> MutexGuard<'_, TimelineRegistry> {
        lock(&self.timelines)
    }

    /// `FORBIDDEN` when an allow-list is configured and `t` is not on it.
    pub fn check_entity_type(&self, t: &EntityType) -> Result<(), ClientError> {
        match &self.config.entity_types {
            Some(allowed) if !allowed.contains(t.as_str()) => {
                Err(ClientError::Forbidden(format!("entity type \"{t}\" is not allowed")))
            }
            _ => Ok(()),
        }
    }

    /// Whether the node takes traffic (`/ready`): false before start and
    /// once shutdown begins.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections_opened.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> NodeStats {
        NodeStats {
            connections: self.connections.load(Ordering::Relaxed),
            presence: lock(&self.presence).stats(),
            timelines: lock(&self.timelines).stats(),
        }
    }

    pub fn viewers(&self, ticket: &crate::ids::TicketId) -> Vec<crate::presence::ViewerView> {
        lock(&self.presence).list(ticket)
    }

    pub fn metrics_text(&self) -> String {
        let s = self.stats();
        self.metrics.render(Snapshot {
            connections: s.connections,
            tickets_watched: s.presence.tickets as i64,
            viewers: s.presence.viewers as i64,
            timeline_rooms: s.timelines.rooms as i64,
            timeline_subscriptions: s.timelines.subscriptions as i64,
        })
    }
}

/// A poisoned lock means a rule panicked half-way; the registries stay
/// usable (each method leaves them consistent before it can panic), so the
/// node keeps serving rather than failing every later event.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
