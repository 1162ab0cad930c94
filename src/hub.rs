//! The state one node shares between its sockets, its internal API and its
//! background tasks. Cloning a `Hub` is cheap: an `Arc` inside.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use socketioxide::SocketIo;
use socketioxide::socket::Sid;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::cluster::ClusterLink;
use crate::cluster::messages::NodeCounts;
use crate::config::Config;
use crate::error::ClientError;
use crate::ids::EntityType;
use crate::metrics::{Metrics, Snapshot};
use crate::outbox::Outbox;
use crate::presence::{
    LeaveReason, Origin, PresenceEvent, PresenceOp, PresenceRules, PresenceStats, SocketPresence, ViewerRegistry,
    ViewerView,
};
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
    /// The other nodes, when Redis is configured.
    cluster: Option<ClusterLink>,
    presence: Mutex<ViewerRegistry>,
    timelines: Mutex<TimelineRegistry>,
    /// Sockets to disconnect when their token expires.
    pub expiries: crate::auth::Expiries,
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
    pub fn new(config: Config, node_id: String, io: SocketIo, outbox: Outbox, cluster: Option<ClusterLink>) -> Self {
        let rules = PresenceRules {
            typing_timeout_ms: config.typing_timeout.as_millis() as u64,
            stale_after_ms: config.stale_after.as_millis() as u64,
            max_tickets_per_socket: config.max_tickets_per_socket,
        };
        let timelines = TimelineRegistry::new(config.max_timelines_per_socket);
        let metrics = Metrics::new();
        if let Some(link) = &cluster {
            metrics.register(Box::new(link.messages.clone()));
        }
        Self {
            shared: Arc::new(Shared {
                node_id,
                clock: Clock::new(),
                io,
                outbox,
                metrics,
                cluster,
                presence: Mutex::new(ViewerRegistry::new(rules)),
                timelines: Mutex::new(timelines),
                expiries: crate::auth::Expiries::default(),
                typing_changed: Notify::new(),
                connections: AtomicI64::new(0),
                serving: AtomicBool::new(false),
                config,
            }),
        }
    }

    /// Applies a presence change made on this node: the registry, then the
    /// deliveries and the replication, queued under the lock so that both
    /// keep the order of the changes.
    pub fn apply_local(&self, op: PresenceOp) -> Result<Option<Vec<ViewerView>>, ClientError> {
        let mut registry = lock(&self.presence);
        let (viewers, events) = registry.apply(&op, Origin::Local)?;
        self.deliver(events);
        let typing = matches!(op, PresenceOp::Typing { .. });
        if let Some(cluster) = &self.cluster {
            cluster.send(crate::cluster::messages::Message::Presence { change: op });
        }
        if typing {
            // A new typing deadline: the expiry timer re-plans.
            self.typing_changed.notify_one();
        }
        Ok(viewers)
    }

    /// Replays a change another node made; its events reach local sockets.
    pub fn apply_remote(&self, op: &PresenceOp) {
        let mut registry = lock(&self.presence);
        match registry.apply(op, Origin::Remote) {
            Ok((_, events)) => self.deliver(events),
            Err(e) => tracing::debug!(error = %e, ?op, "replicated change does not apply here"),
        }
        self.typing_changed.notify_one();
    }

    /// Makes another node's sockets what its snapshot says: `gone` sockets
    /// are disconnected, the others synced.
    pub fn apply_snapshot(&self, gone: &[Sid], presence: &[SocketPresence]) {
        let mut registry = lock(&self.presence);
        for sid in gone {
            let events = registry.disconnect(*sid, LeaveReason::Disconnected);
            self.deliver(events);
        }
        let mut by_socket: Vec<&SocketPresence> = presence.iter().collect();
        by_socket.sort_by_key(|p| p.sid);
        for group in by_socket.chunk_by(|a, b| a.sid == b.sid) {
            let entries: Vec<SocketPresence> = group.iter().map(|p| (*p).clone()).collect();
            let events = registry.sync_socket(entries[0].sid, &entries);
            self.deliver(events);
        }
        self.typing_changed.notify_one();
    }

    /// Sweeps this node's sockets out of stale viewers; the other nodes
    /// replay the removals (each sweeps its own sockets).
    pub fn sweep_stale(&self, now: crate::presence::Millis) {
        let local = self.local_sids();
        let mut registry = lock(&self.presence);
        let (events, removed) = registry.sweep_stale(now, |sid| local.as_ref().is_none_or(|l| l.contains(&sid)));
        if !removed.is_empty() {
            tracing::debug!(sockets = removed.len(), "stale viewers swept");
        }
        self.deliver(events);
        if let Some(cluster) = &self.cluster {
            for change in removed {
                cluster.send(crate::cluster::messages::Message::Presence { change });
            }
        }
    }

    /// This node's sockets, when the registry also holds other nodes'
    /// (`None`: every socket in it is local).
    fn local_sids(&self) -> Option<std::collections::HashSet<Sid>> {
        self.cluster.as_ref()?;
        Some(
            self.io
                .of("/")
                .map(|ns| ns.sockets().iter().map(|s| s.id).collect())
                .unwrap_or_default(),
        )
    }

    /// Removes sockets of another node (gone or lost) from presence.
    pub fn remove_sockets(&self, sids: impl Iterator<Item = Sid>, reason: LeaveReason) {
        let mut registry = lock(&self.presence);
        for sid in sids {
            let events = registry.disconnect(sid, reason);
            self.deliver(events);
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
        self.deliver(events);
        Ok(value)
    }

    /// Reads the registry under its lock.
    pub fn with_registry<T>(&self, f: impl FnOnce(&ViewerRegistry) -> T) -> T {
        f(&lock(&self.presence))
    }

    fn deliver(&self, events: Vec<PresenceEvent>) {
        for event in events {
            self.outbox.push(notify::delivery(event));
        }
    }

    pub fn cluster(&self) -> Option<&ClusterLink> {
        self.cluster.as_ref()
    }

    /// This node's own figures, as told to the others.
    pub fn node_counts(&self) -> NodeCounts {
        let timelines = lock(&self.timelines);
        NodeCounts {
            connections: self.connections.load(Ordering::Relaxed),
            timeline_subscriptions: timelines.stats().subscriptions,
            timeline_rooms: timelines.rooms().map(|k| k.room()).collect(),
        }
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

    /// This node's figures: in a cluster the registry holds everyone's
    /// viewers, so only those with a socket here count.
    pub fn stats(&self) -> NodeStats {
        let presence = match self.local_sids() {
            None => lock(&self.presence).stats(),
            Some(local) => lock(&self.presence).stats_where(|sid| local.contains(&sid)),
        };
        NodeStats {
            connections: self.connections.load(Ordering::Relaxed),
            presence,
            timelines: lock(&self.timelines).stats(),
        }
    }

    /// Viewers of the whole cluster (or of this node alone).
    pub fn presence_stats(&self) -> PresenceStats {
        lock(&self.presence).stats()
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
            cluster: self
                .cluster
                .as_ref()
                .map(|c| (c.is_up(), c.counts(NodeCounts::default()).nodes as i64)),
        })
    }
}

/// A poisoned lock means a rule panicked half-way; the registries stay
/// usable (each method leaves them consistent before it can panic), so the
/// node keeps serving rather than failing every later event.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
