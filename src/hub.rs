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
use crate::cluster::messages::{Message, NodeCounts, RecordedEvent};
use crate::cluster::{ClusterLink, HistoryError};
use crate::config::Config;
use crate::delivery::{Delivery, Outbox, wire};
use crate::error::ClientError;
use crate::history::{Histories, Mirror, Position, Recovery};
use crate::ids::{Since, TicketId, TimelineKey, watchers_room};
use crate::metrics::{Metrics, Snapshot};
use crate::presence::{
    LeaveReason, Millis, Origin, PresenceEvent, PresenceOp, PresenceRules, PresenceStats, SocketPresence,
    ViewerRegistry, ViewerView, WatchRegistry,
};
use crate::ticket_updates::TicketUpdate;
use crate::timelines::{Membership, TimelineEvent, TimelineRegistry, TimelineStats};

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

/// Whether a publish reached every node, or only this one (Redis is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    AllNodes,
    ThisNodeOnly,
}

/// A publish as done: where it reached, and each event's offset and epoch
/// (`None` when it could not be given one).
#[derive(Debug, Clone)]
pub struct Published {
    pub reach: Reach,
    pub positions: Vec<Option<Position>>,
}

/// A subscribe as answered now, or once Redis was read (cluster).
pub enum Subscription {
    Done(Subscribed),
    Reading(std::pin::Pin<Box<dyn std::future::Future<Output = Subscribed> + Send>>),
}

/// A subscribe as done: the timeline's position, and with `since` whether
/// the missed events were replayed and how many.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub position: Option<Position>,
    pub recovery: Option<Recovered>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    Replayed { missed: usize },
    Lost,
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
                mirror: Mutex::new(Mirror::new(
                    config.history_size,
                    config.history_ttl.as_millis() as u64,
                )),
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

    // --- timelines -----------------------------------------------------------

    /// `timeline:subscribe`: the socket joins the room and is told so; with
    /// `since`, it then gets the events it missed, or `history_lost`.
    ///
    /// The join and the replay are queued under the history lock, which
    /// every publish takes to queue its event: an event recorded before is
    /// replayed (the socket was not in the room yet), one recorded after is
    /// delivered live. None is lost, none comes twice. In a cluster the
    /// same holds for the mirror of Redis's history; when the mirror cannot
    /// answer, the answer comes once Redis was read.
    pub fn subscribe(&self, sid: Sid, key: &TimelineKey, since: Option<&Since>) -> Result<Subscription, ClientError> {
        self.check_entity_type(key)?;
        let membership = lock(&self.shared.timelines).subscribe(sid, key)?;
        let joins = membership == Membership::Changed;
        if let Some(cluster) = &self.shared.cluster {
            let mut mirror = lock(&self.shared.mirror);
            if !cluster.is_up() {
                // The mirror may miss what other nodes published meanwhile.
                let recovery = since.map(|_| Recovery::Lost);
                return Ok(Subscription::Done(self.answer_subscribe(sid, key, joins, None, recovery)));
            }
            let since_at = since.map(|s| (s.offset, &*s.epoch));
            if let Some((position, recovery)) = mirror.answer(key, since_at) {
                return Ok(Subscription::Done(self.answer_subscribe(sid, key, joins, Some(position), recovery)));
            }
            mirror.begin_fetch(key, self.shared.clock.now_ms());
            drop(mirror);
            let (hub, key, since) = (self.clone(), key.clone(), since.cloned());
            return Ok(Subscription::Reading(Box::pin(async move {
                hub.subscribe_from_redis(sid, &key, since.as_ref()).await
            })));
        }
        let mut histories = lock(&self.shared.histories);
        let position = histories.position(key);
        let recovery = since.map(|since| histories.recover(key, since.offset, &since.epoch));
        Ok(Subscription::Done(self.answer_subscribe(sid, key, joins, Some(position), recovery)))
    }

    /// The end of a subscribe the mirror could not answer: Redis is read,
    /// joined with what the channel brought meanwhile, and the socket joins
    /// (unless it unsubscribed or left meanwhile) and gets its replay.
    async fn subscribe_from_redis(&self, sid: Sid, key: &TimelineKey, since: Option<&Since>) -> Subscribed {
        let cluster = self.shared.cluster.as_ref().expect("only in a cluster");
        let fetched = cluster.fetch(key).await;
        let mut mirror = lock(&self.shared.mirror);
        let answer = match fetched {
            Ok(fetched) => {
                mirror.merge(key, fetched, self.shared.clock.now_ms());
                mirror.answer_now(key, since.map(|s| (s.offset, &*s.epoch)))
            }
            Err(e) => {
                if let HistoryError::Refused(e) = e {
                    tracing::warn!(error = %e, room = %key.room(), "redis refused to read a timeline's history");
                }
                mirror.abandon_fetch(key);
                None
            }
        };
        let (position, recovery) = match answer {
            Some((position, recovery)) => (Some(position), recovery),
            None => (None, since.map(|_| Recovery::Lost)),
        };
        // Under the mirror lock, so that no channel event slips between the
        // replay and the join, and the timelines lock, so that an
        // unsubscribe or a disconnect is wholly before or after the join.
        let timelines = lock(&self.shared.timelines);
        let joins = timelines.is_subscribed(sid, key);
        self.answer_subscribe(sid, key, joins, position, recovery)
    }

    /// Queues what a subscribe answers: the join, `timeline:subscribed`, the
    /// replay or `history_lost`. Called under the lock of the history the
    /// answer comes from.
    fn answer_subscribe(
        &self,
        sid: Sid,
        key: &TimelineKey,
        joins: bool,
        position: Option<Position>,
        recovery: Option<Recovery>,
    ) -> Subscribed {
        let outbox = &self.shared.outbox;
        if joins {
            outbox.push(Delivery::Join { sid, room: key.room() });
        }
        outbox.push(wire::subscription(sid, key, true));
        let recovery = recovery.map(|recovery| match (recovery, &position) {
            (Recovery::Recovered(missed), Some(position)) => {
                for recorded in &missed {
                    let at = Position {
                        offset: recorded.offset,
                        epoch: position.epoch.clone(),
                    };
                    outbox.push(wire::replayed(sid, &recorded.event, &at));
                }
                Recovered::Replayed { missed: missed.len() }
            }
            _ => {
                outbox.push(wire::history_lost(sid, key));
                Recovered::Lost
            }
        });
        Subscribed { position, recovery }
    }

    /// `timeline:unsubscribe`: the socket leaves the room and is told so.
    pub fn unsubscribe(&self, sid: Sid, key: &TimelineKey) -> Result<(), ClientError> {
        self.check_entity_type(key)?;
        let mut timelines = lock(&self.shared.timelines);
        if timelines.unsubscribe(sid, key) == Membership::Changed {
            self.shared.outbox.push(Delivery::Leave { sid, room: key.room() });
        }
        self.shared.outbox.push(wire::subscription(sid, key, false));
        Ok(())
    }

    /// `FORBIDDEN` when an allow-list is configured and the type is not on it.
    fn check_entity_type(&self, key: &TimelineKey) -> Result<(), ClientError> {
        if self.shared.config.allows(&key.entity_type) {
            Ok(())
        } else {
            Err(ClientError::Forbidden(format!(
                "entity type \"{}\" is not allowed",
                key.entity_type
            )))
        }
    }

    /// A backend's publish (one event or a batch, in order): each event
    /// gets its timeline's next offset and is kept, then goes to the
    /// subscribers of every node. In a cluster, Redis numbers and keeps
    /// them and sends them to every node, this one included; while Redis is
    /// unreachable they reach this node's subscribers only, without offset.
    pub async fn publish(&self, events: &[TimelineEvent]) -> Published {
        for event in events {
            self.shared.metrics.published(event.change.kind());
        }
        let Some(cluster) = &self.shared.cluster else {
            let mut histories = lock(&self.shared.histories);
            let now = self.shared.clock.now_ms();
            let positions = events
                .iter()
                .map(|event| {
                    let position = histories.record(event, now);
                    self.shared.outbox.push(wire::timeline(event, Some(&position)));
                    Some(position)
                })
                .collect();
            return Published {
                reach: Reach::AllNodes,
                positions,
            };
        };
        let unnumbered = Published {
            reach: Reach::AllNodes,
            positions: vec![None; events.len()],
        };
        if events.is_empty() {
            return unnumbered;
        }
        let reached = if cluster.is_up() {
            cluster.record(events).await
        } else {
            Err(HistoryError::Unreachable)
        };
        match reached {
            Ok(positions) => Published {
                reach: Reach::AllNodes,
                positions: positions.into_iter().map(Some).collect(),
            },
            Err(HistoryError::Refused(e)) => {
                // The channel still reaches every node: v1 delivery.
                tracing::warn!(error = %e, "redis refused the history script; publishing without offsets");
                for event in events {
                    self.shared.outbox.push(wire::timeline(event, None));
                    cluster.send(Message::Publish { event: event.clone() });
                }
                unnumbered
            }
            Err(HistoryError::Unreachable) => {
                for event in events {
                    self.shared.outbox.push(wire::timeline(event, None));
                }
                Published {
                    reach: Reach::ThisNodeOnly,
                    ..unnumbered
                }
            }
        }
    }

    /// Events numbered in Redis, as heard on the channel (by every node, the
    /// publishing one included): kept in the mirror of the timelines
    /// followed here, and delivered to this node's subscribers.
    pub fn deliver_recorded(&self, events: Vec<RecordedEvent>) {
        let now = self.shared.clock.now_ms();
        let mut mirror = lock(&self.shared.mirror);
        for recorded in events {
            let at = Position {
                offset: recorded.offset,
                epoch: recorded.epoch.into(),
            };
            mirror.observe(&recorded.event, &at, now);
            self.shared.outbox.push(wire::timeline(&recorded.event, Some(&at)));
        }
    }

    /// Ends the histories past `history_ttl` (see [`Histories::expire`]).
    pub fn expire_histories(&self, now: Millis) {
        let followed: HashSet<TimelineKey> = lock(&self.shared.timelines).rooms().cloned().collect();
        if self.shared.cluster.is_some() {
            lock(&self.shared.mirror).expire(now, |key| followed.contains(key));
        } else {
            lock(&self.shared.histories).expire(now, |key| followed.contains(key));
        }
    }

    /// A publish that reached another node, for this node's subscribers.
    pub fn deliver_remote_publish(&self, event: &TimelineEvent) {
        self.shared.outbox.push(wire::timeline(event, None));
    }

    /// After an outage: every timeline followed here may have missed events.
    pub fn resync_timelines(&self) {
        lock(&self.shared.mirror).unsync_all();
        let timelines = lock(&self.shared.timelines);
        for key in timelines.rooms() {
            self.shared.outbox.push(wire::resync(key));
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
