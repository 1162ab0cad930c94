//! Prometheus metrics (`GET /metrics` on the internal listener).
//!
//! Counters are bumped on the hot paths; gauges are read from the registries
//! when scraped, so they can never drift from the state they describe.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// A contract event name, or `unknown`.
    pub event: &'static str,
    /// `ok` or the error code.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    /// `new_item`, `item_updated` or `refresh`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub status: u16,
}

/// Figures read from the registries at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub connections: i64,
    pub tickets_watched: i64,
    pub viewers: i64,
    pub timeline_rooms: i64,
    pub timeline_subscriptions: i64,
    pub uptime_seconds: i64,
}

pub struct Metrics {
    registry: Registry,
    pub connections_opened: Counter,
    pub client_events: Family<EventLabels, Counter>,
    pub published: Family<PublishLabels, Counter>,
    pub internal_requests: Family<HttpLabels, Counter>,
    connections: Gauge,
    tickets_watched: Gauge,
    viewers: Gauge,
    timeline_rooms: Gauge,
    timeline_subscriptions: Gauge,
    uptime: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Self {
            connections_opened: Counter::default(),
            client_events: Family::default(),
            published: Family::default(),
            internal_requests: Family::default(),
            connections: Gauge::default(),
            tickets_watched: Gauge::default(),
            viewers: Gauge::default(),
            timeline_rooms: Gauge::default(),
            timeline_subscriptions: Gauge::default(),
            uptime: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("connections", "Connected Socket.IO clients on this node", m.connections.clone());
        registry.register("connections_opened", "Socket.IO connections accepted", m.connections_opened.clone());
        registry.register("tickets_watched", "Tickets with at least one viewer", m.tickets_watched.clone());
        registry.register("viewers", "Ticket viewers (agent x ticket)", m.viewers.clone());
        registry.register("timeline_rooms", "Timelines with local subscribers", m.timeline_rooms.clone());
        registry.register(
            "timeline_subscriptions",
            "Timeline subscriptions on this node",
            m.timeline_subscriptions.clone(),
        );
        registry.register("client_events", "Client events by event and outcome", m.client_events.clone());
        registry.register("published", "Timeline events published through the internal API", m.published.clone());
        registry.register("internal_http_requests", "Internal API requests by status", m.internal_requests.clone());
        registry.register("uptime_seconds", "Seconds since start", m.uptime.clone());
        Self { registry, ..m }
    }

    pub fn client_event(&self, event: &'static str, outcome: &'static str) {
        self.client_events.get_or_create(&EventLabels { event, outcome }).inc();
    }

    /// The text exposition, with the gauges set from `snapshot`.
    pub fn render(&self, snapshot: Snapshot) -> String {
        self.connections.set(snapshot.connections);
        self.tickets_watched.set(snapshot.tickets_watched);
        self.viewers.set(snapshot.viewers);
        self.timeline_rooms.set(snapshot.timeline_rooms);
        self.timeline_subscriptions.set(snapshot.timeline_subscriptions);
        self.uptime.set(snapshot.uptime_seconds);
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.client_event("ticket:view", "ok");
        m.published.get_or_create(&PublishLabels { kind: "new_item" }).inc();
        let text = m.render(Snapshot { connections: 3, viewers: 2, ..Snapshot::default() });
        assert!(text.contains("switchboard_connections 3"), "{text}");
        assert!(text.contains("switchboard_viewers 2"));
        assert!(text.contains("switchboard_client_events_total{event=\"ticket:view\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("switchboard_published_total{kind=\"new_item\"} 1"), "{text}");
    }
}
