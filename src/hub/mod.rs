//! The state one node shares between its sockets, its internal API, its
//! cluster link and its timers, and the operations on it. Cloning a `Hub`
//! is cheap: an `Arc` inside.
//!
//! Every operation that changes something decides under a registry's lock
//! and queues what sockets must be told on the [`Outbox`] before it lets
//! go, so deliveries keep the order of the decisions. The hub never talks to
//! sockets itself.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use socketioxide::socket::Sid;
use tokio::sync::Notify;

use crate::admission::{CONNECT_TIMEOUT, Connections};
use crate::auth::Expiries;
use crate::clock::Clock;
use crate::cluster::ClusterLink;
use crate::cluster::messages::{Message, NodeCounts};
use crate::config::Config;
use crate::delivery::{Delivery, Outbox, wire};
use crate::error::ClientError;
use crate::history::{Histories, Mirror};
use crate::ids::{TicketId, TimelineKey, watchers_room};
use crate::metrics::{Metrics, Snapshot};
use crate::presence::{
    LeaveReason, Millis, Origin, PresenceEvent, PresenceOp, PresenceRules, PresenceStats, SocketPresence,
    ViewerRegistry, ViewerView, WatchRegistry,
};
use crate::ticket_updates::TicketUpdate;
use crate::timelines::{TimelineRegistry, TimelineStats};

#[derive(Clone, Debug)]
pub struct Hub {
    shared: std::sync::Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Config,
    node_id: String,
    clock: Clock,
    outbox: Outbox,
    metrics: Metrics,
    /// The other nodes, when Redis is configured.
    cluster: Option<ClusterLink>,
    // Lock order: `presence`, `watches`, `timelines`, `histories` and
    // `connections` are never held together; an operation that needs two
    // reads one, lets go, then takes the other. One exception: `mirror` may
    // be held while `timelines` is taken (never the other way round).
    presence: Mutex<ViewerRegistry>,
    /// The tickets each of this node's sockets watches (list views).
    watches: Mutex<WatchRegistry>,
    timelines: Mutex<TimelineRegistry>,
    /// Offsets, epochs and recent events of the timelines (single instance).
    histories: Mutex<Histories>,
    /// What this node knows of the histories kept in Redis (cluster).
    mirror: Mutex<Mirror>,
    /// This node's sockets (the registry also holds other nodes') and the
    /// handshakes on their way to being sockets (`max_connections`).
    connections: Mutex<Connections>,
    /// Sockets to disconnect when their token expires.
    expiries: Expiries,
    /// Woken when a typing or idle deadline may have moved earlier.
    presence_deadlines_changed: Notify,
    serving: AtomicBool,
}

/// This node's figures for `/v1/stats`.
#[derive(Debug, Clone, Copy)]
pub struct NodeStats {
    pub connections: usize,
    pub presence: PresenceStats,
    pub timelines: TimelineStats,
}

mod timelines;

pub use timelines::{Pending, Recovered, Subscribed, Subscription};

/// Whether a publish reached every node, or only this one (Redis is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    AllNodes,
    ThisNodeOnly,
}

impl Hub {
    pub fn new(
        config: Config,
        node_id: String,
        outbox: Outbox,
        cluster: Option<ClusterLink>,
        metrics: Metrics,
    ) -> Self {
        let rules = PresenceRules {
            typing_timeout_ms: config.typing_timeout.as_millis() as u64,
            stale_after_ms: config.stale_after.as_millis() as u64,
            max_tickets_per_socket: config.max_tickets_per_socket,
            idle_after_ms: config.idle_after.as_millis() as u64,
        };
        let timelines = TimelineRegistry::new(config.max_timelines_per_socket);
        if let Some(link) = &cluster {
            metrics.register(Box::new(link.messages.clone()));
        }
        Self {
            shared: std::sync::Arc::new(Shared {
                node_id,
                clock: Clock::new(),
                outbox,
                metrics,
                cluster,
                presence: Mutex::new(ViewerRegistry::new(rules)),
                watches: Mutex::new(WatchRegistry::new(config.max_watched_tickets)),
                timelines: Mutex::new(timelines),
                histories: Mutex::new(Histories::new(
                    config.history_size,
                    config.history_ttl.as_millis() as u64,
                    socketioxide::socket::Sid::new().to_string(),
                )),
                mirror: Mutex::new(Mirror::new(config.history_size, config.history_ttl.as_millis() as u64)),
                connections: Mutex::new(Connections::new(config.max_connections, CONNECT_TIMEOUT)),
                expiries: Expiries::default(),
                presence_deadlines_changed: Notify::new(),
                serving: AtomicBool::new(false),
                config,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    pub fn cluster(&self) -> Option<&ClusterLink> {
        self.shared.cluster.as_ref()
    }

    // --- this node's sockets -------------------------------------------------

    /// Lets an Engine.IO handshake in unless this node holds
    /// `max_connections` sockets and handshakes; a refusal is counted.
    pub fn admit_handshake(&self) -> bool {
        let admitted = lock(&self.shared.connections).admit(Instant::now());
        if !admitted {
            self.shared.metrics.connections_refused.inc();
        }
        admitted
    }

    /// A handshake let in by [`Hub::admit_handshake`] opened no session, or
    /// its Socket.IO CONNECT was refused.
    pub fn handshake_failed(&self) {
        lock(&self.shared.connections).handshake_failed();
    }

    /// A socket passed the handshake; `token_expiry` (seconds since the
    /// epoch) is when its token stops being valid. `still_connected` is
    /// asked under the lock [`Hub::socket_disconnected`] takes: a socket
    /// closed in between is not counted (its disconnect may already have
    /// run, and would not run again).
    pub fn socket_connected(&self, sid: Sid, token_expiry: Option<u64>, still_connected: impl FnOnce() -> bool) {
        {
            let mut connections = lock(&self.shared.connections);
            if !still_connected() {
                connections.handshake_failed();
                return;
            }
            connections.connected(sid);
        }
        self.shared.metrics.connections_opened.inc();
        if let Some(at) = token_expiry {
            self.shared.expiries.schedule(sid, at);
        }
    }

    /// A socket is gone: it stops viewing, watching and following everything.
    pub fn socket_disconnected(&self, sid: Sid) {
        let _ = self.apply_local(PresenceOp::Disconnect { sid });
        lock(&self.shared.watches).disconnect(sid);
        lock(&self.shared.timelines).disconnect(sid);
        lock(&self.shared.connections).disconnected(sid);
    }

    /// This node's sockets, when the registry also holds other nodes'
    /// (`None`: every socket in it is local).
    fn local_sids(&self) -> Option<HashSet<Sid>> {
        self.shared.cluster.as_ref()?;
        Some(lock(&self.shared.connections).sockets().clone())
    }

    // --- presence ------------------------------------------------------------

    /// Applies a presence change made on this node: the registry, then the
    /// deliveries and the replication, queued under the lock so that both
    /// keep the order of the changes. Returns the viewer list of a view's ack.
    pub fn apply_local(&self, op: PresenceOp) -> Result<Option<Vec<ViewerView>>, ClientError> {
        let mut registry = lock(&self.shared.presence);
        let applied = registry.apply(&op, Origin::Local)?;
        self.deliver(applied.events);
        // Only typing and a view can bring a deadline earlier than the one
        // the timer sleeps until (a new typing timeout; the first idle
        // deadline of a new viewer); other activity only moves them later.
        let earlier = matches!(op, PresenceOp::Typing { .. } | PresenceOp::View { .. });
        if let Some(cluster) = &self.shared.cluster {
            cluster.send(Message::Presence { change: op });
        }
        drop(registry);
        if earlier {
            self.shared.presence_deadlines_changed.notify_one();
        }
        Ok(applied.ack_viewers)
    }

    /// Replays a change another node made; its events reach local sockets.
    pub fn apply_remote(&self, op: &PresenceOp) {
        let mut registry = lock(&self.shared.presence);
        match registry.apply(op, Origin::Remote) {
            Ok(applied) => self.deliver(applied.events),
            Err(e) => tracing::debug!(error = %e, ?op, "replicated change does not apply here"),
        }
        drop(registry);
        self.shared.presence_deadlines_changed.notify_one();
    }

    /// Makes another node's sockets what its snapshot says: `gone` sockets
    /// are disconnected, the others synced.
    pub fn apply_snapshot(&self, gone: &[Sid], presence: &[SocketPresence]) {
        let mut registry = lock(&self.shared.presence);
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
        drop(registry);
        self.shared.presence_deadlines_changed.notify_one();
    }

    /// Removes sockets of another node (gone or lost) from presence.
    pub fn remove_sockets(&self, sids: impl Iterator<Item = Sid>, reason: LeaveReason) {
        let mut registry = lock(&self.shared.presence);
        for sid in sids {
            let events = registry.disconnect(sid, reason);
            self.deliver(events);
        }
    }

    /// Sends this node's presence to the others. Built and queued under the
    /// presence lock: it sits in the stream exactly between the changes
    /// before and after it.
    pub fn send_snapshot(&self) {
        let Some(cluster) = &self.shared.cluster else { return };
        let counts = self.node_counts();
        let local = self.local_sids().unwrap_or_default();
        let registry = lock(&self.shared.presence);
        let presence: Vec<SocketPresence> = local.iter().flat_map(|sid| registry.socket_presence(*sid)).collect();
        cluster.send(Message::Snapshot { presence, counts });
    }

    /// Turns typing that got no renewal in time back to viewing, and
    /// viewers without activity for `idle_after` idle. Each node does it for
    /// the whole cluster's viewers and tells its own sockets.
    pub fn expire_presence_timers(&self, now: Millis) {
        let mut registry = lock(&self.shared.presence);
        let mut events = registry.expire_typing(now);
        events.extend(registry.expire_idle(now));
        self.deliver(events);
    }

    /// When the next typing timeout or idle deadline falls due, if any.
    pub fn next_presence_deadline(&self) -> Option<Millis> {
        let registry = lock(&self.shared.presence);
        match (registry.next_typing_deadline(), registry.next_idle_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolves when a typing or idle deadline may have changed.
    pub async fn presence_deadlines_changed(&self) {
        self.shared.presence_deadlines_changed.notified().await;
    }

    /// `tickets:watch`: all of `tickets` or none (`LIMIT_EXCEEDED`); returns
    /// each distinct ticket's current viewer list, in the order given.
    ///
    /// The joins are queued under the presence lock, after the lists are
    /// read: a change made before is in the list, one made after reaches
    /// the socket as `viewers:updated`.
    pub fn watch(&self, sid: Sid, tickets: &[TicketId]) -> Result<Vec<(TicketId, Vec<ViewerView>)>, ClientError> {
        let new = lock(&self.shared.watches).watch(sid, tickets)?;
        let registry = lock(&self.shared.presence);
        for ticket in new {
            self.shared.outbox.push(Delivery::Join {
                sid,
                room: watchers_room(&ticket),
            });
        }
        let mut lists: Vec<(TicketId, Vec<ViewerView>)> = Vec::new();
        for ticket in tickets {
            if !lists.iter().any(|(t, _)| t == ticket) {
                lists.push((ticket.clone(), registry.list(ticket)));
            }
        }
        Ok(lists)
    }

    /// `tickets:unwatch`: tickets not watched are ignored.
    pub fn unwatch(&self, sid: Sid, tickets: &[TicketId]) {
        let removed = lock(&self.shared.watches).unwatch(sid, tickets);
        for ticket in removed {
            self.shared.outbox.push(Delivery::Leave {
                sid,
                room: watchers_room(&ticket),
            });
        }
    }

    /// A backend says a ticket changed (§3.3): `ticket:updated` to its
    /// viewers on every node but the sockets of the agent who changed it.
    /// Returns where it reached and how many agents it notified: the
    /// ticket's viewers other than `by`, cluster-wide (every node holds the
    /// whole list); while Redis is down, only those with a socket here.
    pub fn ticket_updated(&self, update: &TicketUpdate) -> (Reach, usize) {
        let reach = match &self.shared.cluster {
            Some(cluster) if !cluster.is_up() => Reach::ThisNodeOnly,
            _ => Reach::AllNodes,
        };
        let local = match reach {
            Reach::AllNodes => None,
            Reach::ThisNodeOnly => self.local_sids(),
        };
        let registry = lock(&self.shared.presence);
        let by = update.by.as_ref().map(|b| &b.agent);
        let notified = registry.agents_other_than(&update.ticket, by, |sid| {
            local.as_ref().is_none_or(|l| l.contains(&sid))
        });
        let except = by
            .map(|agent| registry.sockets_of(&update.ticket, agent))
            .unwrap_or_default();
        self.shared.outbox.push(wire::ticket_updated(update, except));
        if let Some(cluster) = &self.shared.cluster {
            cluster.send(Message::TicketUpdated { update: update.clone() });
        }
        drop(registry);
        (reach, notified)
    }

    /// A ticket update received by another node, for this node's viewers.
    pub fn deliver_remote_ticket_update(&self, update: &TicketUpdate) {
        let registry = lock(&self.shared.presence);
        let except = update
            .by
            .as_ref()
            .map(|b| registry.sockets_of(&update.ticket, &b.agent))
            .unwrap_or_default();
        self.shared.outbox.push(wire::ticket_updated(update, except));
    }

    /// Sweeps this node's sockets out of stale viewers; the other nodes
    /// replay the removals (each sweeps its own sockets).
    pub fn sweep_stale(&self, now: Millis) {
        let local = self.local_sids();
        let mut registry = lock(&self.shared.presence);
        let (events, removed) = registry.sweep_stale(now, |sid| local.as_ref().is_none_or(|l| l.contains(&sid)));
        if !removed.is_empty() {
            tracing::debug!(sockets = removed.len(), "stale viewers swept");
        }
        self.deliver(events);
        if let Some(cluster) = &self.shared.cluster {
            for change in removed {
                cluster.send(Message::Presence { change });
            }
        }
    }

    pub fn viewers(&self, ticket: &TicketId) -> Vec<ViewerView> {
        lock(&self.shared.presence).list(ticket)
    }

    fn deliver(&self, events: Vec<PresenceEvent>) {
        for event in events {
            self.shared.outbox.push(wire::presence(event));
        }
    }

    // --- token expiry --------------------------------------------------------

    /// When the next token expires (seconds since the epoch).
    pub fn next_token_expiry(&self) -> Option<u64> {
        self.shared.expiries.next()
    }

    /// Disconnects the sockets whose token expired by `now`.
    pub fn expire_tokens(&self, now: u64) {
        for sid in self.shared.expiries.due(now) {
            tracing::debug!(%sid, "token expired: disconnecting");
            self.shared.outbox.push(Delivery::Disconnect { sid });
        }
    }

    /// Resolves when a token expiry was scheduled.
    pub async fn token_expiries_changed(&self) {
        self.shared.expiries.changed().await;
    }

    // --- readiness and figures -----------------------------------------------

    /// Whether the node takes traffic (`/ready`): false before start and
    /// once shutdown begins.
    pub fn is_serving(&self) -> bool {
        self.shared.serving.load(Ordering::Relaxed)
    }

    pub fn set_serving(&self, serving: bool) {
        self.shared.serving.store(serving, Ordering::Relaxed);
    }

    /// This node's own figures, as told to the others.
    pub fn node_counts(&self) -> NodeCounts {
        let connections = lock(&self.shared.connections).sockets().len() as i64;
        let timelines = lock(&self.shared.timelines);
        NodeCounts {
            connections,
            timeline_subscriptions: timelines.stats().subscriptions,
            timeline_rooms: timelines.rooms().map(TimelineKey::room).collect(),
        }
    }

    /// This node's figures: in a cluster the registry holds everyone's
    /// viewers, so only those with a socket here count.
    pub fn stats(&self) -> NodeStats {
        let connections = lock(&self.shared.connections).sockets().len();
        let presence = match self.local_sids() {
            None => lock(&self.shared.presence).stats(),
            Some(local) => lock(&self.shared.presence).stats_where(|sid| local.contains(&sid)),
        };
        NodeStats {
            connections,
            presence,
            timelines: lock(&self.shared.timelines).stats(),
        }
    }

    /// Viewers of the whole cluster (or of this node alone).
    pub fn presence_stats(&self) -> PresenceStats {
        lock(&self.shared.presence).stats()
    }

    pub fn metrics_text(&self) -> String {
        let s = self.stats();
        self.shared.metrics.render(Snapshot {
            connections: s.connections as i64,
            tickets_watched: s.presence.tickets as i64,
            viewers: s.presence.viewers as i64,
            timeline_rooms: s.timelines.rooms as i64,
            timeline_subscriptions: s.timelines.subscriptions as i64,
            cluster: self
                .shared
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
