//! Many nodes as one: presence replicated over one Redis pub/sub channel.
//!
//! # Design
//!
//! Every node keeps the whole cluster's presence in its own
//! [`ViewerRegistry`](crate::presence::ViewerRegistry): its own sockets' and,
//! replicated, everyone else's. A change made on a node is applied there and
//! published as a [`PresenceOp`]; the other nodes replay it. Each node then
//! tells **its own** sockets what the change means for them (the registry's
//! events are delivered to local sockets only). So every client hears each
//! event exactly once, from the node it is connected to, and the rules
//! (one viewer per agent across tabs and nodes, warnings, typing, stale
//! sweep, typing timeouts) run unchanged everywhere.
//!
//! Liveness: each node publishes a heartbeat every `node_timeout / 3`
//! (at most 5 s). A node not heard from for `node_timeout` is lost: the
//! survivors remove its sockets, and its viewers leave with `node_lost`. A
//! node that stops gracefully says `Bye` after its sockets' disconnects.
//!
//! Recovery: on every (re)subscription a node publishes `Hello` and its
//! snapshot; every node answers a `Hello` with its own snapshot, and a
//! snapshot replaces what the others knew of its sender. Timeline rooms
//! with local subscribers get `timeline:refresh` (`reason: "resync"`).
//!
//! Timeline publishes travel the same channel, sent by Redis itself from the
//! history script that numbers and keeps them ([`history`]): every node, the
//! publishing one included, delivers them from there, in offset order.
//! While Redis is unreachable a publish is delivered locally only, without
//! an offset (`partial: true`).
//! Ticket updates (§3.3) travel it too; the receiving node delivers them
//! locally at once, so a Redis outage only cuts the other nodes off.
//!
//! Only timeline histories are stored in Redis (they expire by themselves):
//! a node that dies leaves nothing behind.

mod bus;
mod history;
pub mod messages;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketioxide::socket::Sid;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::history::{Fetched, Position};
use crate::hub::Hub;
use crate::ids::TimelineKey;
use crate::presence::{LeaveReason, PresenceOp};
use crate::timelines::TimelineEvent;
use bus::{Commands, Health, Publisher, PublisherQueue};
use history::RedisHistory;
use messages::{Envelope, Message, NodeCounts};

/// The Redis channel of the cluster.
const CHANNEL: &str = "switchboard:cluster";

/// What the hub holds of the cluster: the way out, and what it knows of the
/// other nodes.
#[derive(Debug)]
pub struct ClusterLink {
    node_id: String,
    /// `switchboard_cluster_messages_total{direction}`.
    pub messages: prometheus::IntCounterVec,
    publisher: Publisher,
    health: Arc<Health>,
    /// The publisher's connection, for the history scripts.
    commands: Commands,
    history: RedisHistory,
    /// Refusals of the history scripts, logged sparingly.
    pub refusals: RefusalLog,
    peers: Mutex<HashMap<String, Peer>>,
}

/// Logs Redis's refusals of the history scripts at most once a minute: on
/// a Redis Cluster every publish to a timeline whose slot lives elsewhere is
/// refused, and one warning per publish would drown the log.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// When the last warning went out, and the refusals since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(60);

    /// Notes one refusal; true when it was logged as a warning.
    pub fn refused(&self, what: &str, error: &redis::RedisError) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < Self::EVERY) {
            *suppressed += 1;
            tracing::debug!(%error, what, "redis refused a history script");
            return false;
        }
        tracing::warn!(%error, what, suppressed = *suppressed, "redis refused a history script; timeline events go out without offsets (logged at most once a minute)");
        *state = (Some(Instant::now()), 0);
        true
    }
}

/// Why a history script did not run.
#[derive(Debug)]
pub enum HistoryError {
    /// Redis is unreachable (or did not answer in time).
    Unreachable,
    /// Redis refused it (e.g. a Redis Cluster node that does not hold the
    /// timeline's keys): the channel still works.
    Refused(redis::RedisError),
}

impl From<redis::RedisError> for HistoryError {
    fn from(e: redis::RedisError) -> Self {
        match e.kind() {
            redis::ErrorKind::Server(_) | redis::ErrorKind::Client | redis::ErrorKind::UnexpectedReturnType => {
                Self::Refused(e)
            }
            _ => Self::Unreachable,
        }
    }
}

#[derive(Debug)]
struct Peer {
    last_seen: Instant,
    sids: HashSet<Sid>,
    counts: NodeCounts,
}

/// Cluster-wide figures for `/v1/stats`.
#[derive(Debug, Clone, Default)]
pub struct ClusterCounts {
    pub nodes: usize,
    pub connections: i64,
    pub timeline_rooms: usize,
    pub timeline_subscriptions: usize,
}

/// Tasks to start once the hub exists.
pub struct ClusterStart {
    client: redis::Client,
    queue: PublisherQueue,
}

impl ClusterLink {
    /// A link for `node_id` to the Redis at `url` (not connected yet).
    pub fn new(node_id: String, config: &Config, url: &str) -> redis::RedisResult<(Self, ClusterStart)> {
        let client = redis::Client::open(url)?;
        let (publisher, queue) = bus::publisher();
        let history = RedisHistory::new(
            config.history_size,
            config.history_ttl.as_millis() as u64,
            CHANNEL,
            &node_id,
        );
        let link = Self {
            commands: Commands::default(),
            history,
            refusals: RefusalLog::default(),
            node_id,
            messages: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "cluster_messages_total",
                    "Messages on the cluster channel by direction.",
                )
                .namespace("switchboard"),
                &["direction"],
            )
            .expect("valid metric"),
            publisher,
            health: Arc::new(Health::default()),
            peers: Mutex::new(HashMap::new()),
        };
        Ok((link, ClusterStart { client, queue }))
    }

    /// Both Redis connections are up.
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    pub fn send(&self, message: Message) {
        self.messages.with_label_values(&["sent"]).inc();
        let envelope = Envelope {
            node: self.node_id.clone(),
            message,
        };
        match serde_json::to_string(&envelope) {
            Ok(text) => self.publisher.send(text),
            Err(e) => tracing::error!(error = %e, "cannot encode a cluster message"),
        }
    }

    /// Numbers, keeps and publishes timeline events through Redis (one
    /// round trip); every node, this one included, delivers them when they
    /// come back on the channel.
    pub async fn record(&self, events: &[TimelineEvent]) -> Result<Vec<Position>, HistoryError> {
        let mut conn = self.commands.get().ok_or(HistoryError::Unreachable)?;
        Ok(self.history.record(&mut conn, events).await?)
    }

    /// A timeline's history as Redis holds it.
    pub async fn fetch(&self, key: &TimelineKey) -> Result<Fetched, HistoryError> {
        let mut conn = self.commands.get().ok_or(HistoryError::Unreachable)?;
        Ok(self.history.fetch(&mut conn, key).await?)
    }

    /// Says goodbye and waits until the queue is sent.
    pub async fn leave(&self) {
        self.send(Message::Bye);
        self.publisher.flush().await;
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the live peers' figures to this node's.
    pub fn counts(&self, own: NodeCounts) -> ClusterCounts {
        let peers = self.peers();
        let mut rooms: HashSet<&str> = own.timeline_rooms.iter().map(String::as_str).collect();
        let mut counts = ClusterCounts {
            nodes: 1 + peers.len(),
            connections: own.connections,
            timeline_rooms: 0,
            timeline_subscriptions: own.timeline_subscriptions,
        };
        for peer in peers.values() {
            counts.connections += peer.counts.connections;
            counts.timeline_subscriptions += peer.counts.timeline_subscriptions;
            rooms.extend(peer.counts.timeline_rooms.iter().map(String::as_str));
        }
        counts.timeline_rooms = rooms.len();
        counts
    }
}

/// How often a node says it is alive.
fn heartbeat_interval(node_timeout: Duration) -> Duration {
    (node_timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Starts the Redis connections and the liveness task.
pub fn start(hub: &Hub, start: ClusterStart, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    let Some(link) = hub.cluster() else { return Vec::new() };
    let heartbeat = heartbeat_interval(hub.config().node_timeout);
    let silence = (heartbeat * 3).max(Duration::from_secs(3));
    let on_connected = {
        let hub = hub.clone();
        move || {
            if hub.cluster().is_some_and(|link| link.health.take_resync()) {
                resync(&hub);
            }
        }
    };
    let publisher = tokio::spawn(bus::run_publisher(
        start.client.clone(),
        CHANNEL.to_string(),
        start.queue,
        link.health.clone(),
        link.commands.clone(),
        stop.clone(),
        on_connected.clone(),
    ));
    let on_message = {
        let hub = hub.clone();
        move |bytes: &[u8]| receive(&hub, bytes)
    };
    let subscriber = tokio::spawn(bus::run_subscriber(
        start.client,
        CHANNEL.to_string(),
        link.health.clone(),
        silence,
        stop.clone(),
        on_connected,
        on_message,
    ));
    let liveness = tokio::spawn(liveness(hub.clone(), heartbeat, stop.clone()));
    vec![publisher, subscriber, liveness]
}

/// Once both connections are up after an outage (or at start): ask for
/// everyone's state, give ours, and tell local timeline subscribers they may
/// have missed items. Messages sent while either connection was down were
/// lost, so this waits for both.
fn resync(hub: &Hub) {
    let Some(link) = hub.cluster() else { return };
    link.send(Message::Hello);
    hub.send_snapshot();
    hub.resync_timelines();
}

/// Handles one message from the channel; true when it is this node's own.
fn receive(hub: &Hub, bytes: &[u8]) -> bool {
    let Some(link) = hub.cluster() else { return false };
    let envelope: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed cluster message");
            return false;
        }
    };
    let own = envelope.node == link.node_id;
    if let Message::Recorded { events } = envelope.message {
        // Delivered from here by every node, the publishing one included:
        // that is what puts them in offset order everywhere.
        hub.deliver_recorded(events);
        return own;
    }
    if own {
        return true;
    }
    link.messages.with_label_values(&["received"]).inc();
    let node = envelope.node;
    {
        let mut peers = link.peers();
        let known = peers.contains_key(&node);
        let peer = peers.entry(node.clone()).or_insert_with(|| Peer {
            last_seen: Instant::now(),
            sids: HashSet::new(),
            counts: NodeCounts::default(),
        });
        peer.last_seen = Instant::now();
        if !known && !matches!(envelope.message, Message::Bye) {
            tracing::info!(%node, "node joined the cluster");
            // A node we did not know (new, or lost while we could not hear
            // it) may hold state we never got: ask everyone for theirs.
            if !matches!(envelope.message, Message::Hello | Message::Snapshot { .. }) {
                link.send(Message::Hello);
            }
        }
    }
    match envelope.message {
        Message::Hello => hub.send_snapshot(),
        Message::Heartbeat { counts } => {
            if let Some(peer) = link.peers().get_mut(&node) {
                peer.counts = counts;
            }
        }
        Message::Snapshot { presence, counts } => {
            let sids: HashSet<Sid> = presence.iter().map(|p| p.sid).collect();
            let gone: Vec<Sid> = {
                let mut peers = link.peers();
                let Some(peer) = peers.get_mut(&node) else { return false };
                peer.counts = counts;
                let gone = peer.sids.difference(&sids).copied().collect();
                peer.sids = sids.clone();
                gone
            };
            hub.apply_snapshot(&gone, &presence);
        }
        Message::Presence { change } => {
            if let Some(peer) = link.peers().get_mut(&node) {
                match &change {
                    PresenceOp::Disconnect { sid } => {
                        peer.sids.remove(sid);
                    }
                    other => {
                        peer.sids.insert(other.sid());
                    }
                }
            }
            hub.apply_remote(&change);
        }
        Message::Publish { event } => hub.deliver_remote_publish(&event),
        Message::Recorded { .. } => {}
        Message::TicketUpdated { update } => hub.deliver_remote_ticket_update(&update),
        Message::Bye => {
            let peer = link.peers().remove(&node);
            if let Some(peer) = peer {
                tracing::info!(%node, "node left the cluster");
                hub.remove_sockets(peer.sids.iter().copied(), LeaveReason::Disconnected);
            }
        }
    }
    false
}

/// Heartbeats, and the removal of nodes that fell silent.
async fn liveness(hub: Hub, every: Duration, stop: CancellationToken) {
    let Some(link) = hub.cluster() else { return };
    let node_timeout = hub.config().node_timeout;
    let mut ticks = tokio::time::interval(every.min(Duration::from_secs(1)));
    let mut last_beat = Instant::now() - every;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if last_beat.elapsed() >= every {
            link.send(Message::Heartbeat {
                counts: hub.node_counts(),
            });
            last_beat = Instant::now();
        }
        let lost: Vec<(String, Peer)> = {
            let mut peers = link.peers();
            let silent: Vec<String> = peers
                .iter()
                .filter(|(_, p)| p.last_seen.elapsed() > node_timeout)
                .map(|(n, _)| n.clone())
                .collect();
            silent
                .into_iter()
                .filter_map(|n| peers.remove(&n).map(|p| (n, p)))
                .collect()
        };
        for (node, peer) in lost {
            tracing::warn!(%node, sockets = peer.sids.len(), "node lost: no message within node_timeout");
            hub.remove_sockets(peer.sids.into_iter(), LeaveReason::NodeLost);
        }
    }
}
