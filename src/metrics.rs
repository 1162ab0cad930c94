//! Prometheus metrics (`GET /metrics` on the internal listener), in the
//! Prometheus text format 0.0.4.
//!
//! Counters are bumped on the hot paths; gauges are read from the registries
//! when scraped, so they can never drift from the state they describe.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Figures read from the registries at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub connections: i64,
    pub tickets_watched: i64,
    pub viewers: i64,
    pub timeline_rooms: i64,
    pub timeline_subscriptions: i64,
    /// With Redis: whether both connections are up, and the live nodes.
    pub cluster: Option<(bool, i64)>,
}

pub struct Metrics {
    registry: Registry,
    pub connections_opened: IntCounter,
    /// Socket.IO handshakes refused because the node held `max_connections`.
    pub connections_refused: IntCounter,
    /// Transports closed because a socket's unsent queue passed
    /// `client_queue_max` (contract §4.2).
    pub slow_client_disconnects: IntCounter,
    /// Client events by `event` (a contract name or `unknown`) and `outcome`
    /// (`ok` or an error code).
    pub client_events: IntCounterVec,
    /// Timeline events published through the internal API, by `kind`.
    pub published: IntCounterVec,
    /// Internal API requests by `status`.
    pub internal_requests: IntCounterVec,
    /// Seconds from an internal API request's arrival to the handoff of its
    /// event to delivery (this node's outbox and the cluster link), by `kind`.
    publish_duration: HistogramVec,
    redis_up: IntGauge,
    cluster_nodes: IntGauge,
    connections: IntGauge,
    tickets_watched: IntGauge,
    viewers: IntGauge,
    timeline_rooms: IntGauge,
    timeline_subscriptions: IntGauge,
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

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("switchboard")
}

impl Metrics {
    pub fn new() -> Self {
        let counter = |name, help| IntCounter::with_opts(opts(name, help)).expect("valid metric");
        let gauge = |name, help| IntGauge::with_opts(opts(name, help)).expect("valid metric");
        let family = |name, help, labels: &[&str]| IntCounterVec::new(opts(name, help), labels).expect("valid metric");
        let m = Self {
            registry: Registry::new(),
            connections_opened: counter("connections_opened_total", "Socket.IO connections accepted."),
            connections_refused: counter(
                "connections_refused_total",
                "Socket.IO handshakes refused with 503: the node held max_connections.",
            ),
            slow_client_disconnects: counter(
                "slow_client_disconnects_total",
                "Transports closed because the socket's unsent queue passed client_queue_max.",
            ),
            client_events: family(
                "client_events_total",
                "Client events by event and outcome.",
                &["event", "outcome"],
            ),
            published: family(
                "published_total",
                "Timeline events published through the internal API.",
                &["kind"],
            ),
            internal_requests: family(
                "internal_http_requests_total",
                "Internal API requests by status.",
                &["status"],
            ),
            publish_duration: HistogramVec::new(
                HistogramOpts::new(
                    "publish_duration_seconds",
                    "Seconds from an internal API request's arrival to the handoff of its event to delivery.",
                )
                .namespace("switchboard")
                .buckets(PUBLISH_BUCKETS.to_vec()),
                &["kind"],
            )
            .expect("valid metric"),
            redis_up: gauge(
                "redis_up",
                "1 when both Redis connections are up (multi-instance mode).",
            ),
            cluster_nodes: gauge("cluster_nodes", "Live nodes in the cluster, this one included."),
            connections: gauge("connections", "Connected Socket.IO clients on this node."),
            tickets_watched: gauge("tickets_watched", "Tickets with at least one viewer."),
            viewers: gauge("viewers", "Ticket viewers (agent x ticket)."),
            timeline_rooms: gauge("timeline_rooms", "Timelines with local subscribers."),
            timeline_subscriptions: gauge("timeline_subscriptions", "Timeline subscriptions on this node."),
        };
        // Series that exist from the start, so a dashboard sees 0, not nothing.
        for kind in ["new_item", "item_updated", "refresh"] {
            m.published.with_label_values(&[kind]);
            m.publish_duration.with_label_values(&[kind]);
        }
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.connections_opened.clone()),
            Box::new(m.connections_refused.clone()),
            Box::new(m.slow_client_disconnects.clone()),
            Box::new(m.client_events.clone()),
            Box::new(m.published.clone()),
            Box::new(m.internal_requests.clone()),
            Box::new(m.publish_duration.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.tickets_watched.clone()),
            Box::new(m.viewers.clone()),
            Box::new(m.timeline_rooms.clone()),
            Box::new(m.timeline_subscriptions.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// Adds a metric kept elsewhere (e.g. by the cluster link).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::error!(error = %e, "cannot register a metric");
        }
    }

    pub fn client_event(&self, event: &str, outcome: &str) {
        self.client_events.with_label_values(&[event, outcome]).inc();
    }

    pub fn published(&self, kind: &str) {
        self.published.with_label_values(&[kind]).inc();
    }

    /// A publish of `kind` was handed to delivery `elapsed` after its
    /// request arrived.
    pub fn publish_handed_off(&self, kind: &str, elapsed: Duration) {
        self.publish_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition, with the gauges set from `snapshot`.
    pub fn render(&self, snapshot: Snapshot) -> String {
        self.connections.set(snapshot.connections);
        self.tickets_watched.set(snapshot.tickets_watched);
        self.viewers.set(snapshot.viewers);
        self.timeline_rooms.set(snapshot.timeline_rooms);
        self.timeline_subscriptions.set(snapshot.timeline_subscriptions);
        let mut families = self.registry.gather();
        // The cluster gauges exist only in multi-instance mode.
        if let Some((up, nodes)) = snapshot.cluster {
            self.redis_up.set(i64::from(up));
            self.cluster_nodes.set(nodes);
            for gauge in [&self.redis_up, &self.cluster_nodes] {
                families.extend(prometheus::core::Collector::collect(gauge));
            }
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Publishing is a validation and a queue push: tens of microseconds when
/// all is well, so the buckets start at 50 µs; the top ones catch a body
/// that trickled in (bounded by `header_read_timeout`).
const PUBLISH_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.client_event("ticket:view", "ok");
        m.published("new_item");
        let text = m.render(Snapshot {
            connections: 3,
            viewers: 2,
            ..Snapshot::default()
        });
        assert!(text.contains("switchboard_connections 3"), "{text}");
        assert!(text.contains("switchboard_viewers 2"));
        assert!(
            text.contains("switchboard_client_events_total{event=\"ticket:view\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_published_total{kind=\"new_item\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_published_total{kind=\"refresh\"} 0"),
            "{text}"
        );
        assert!(text.contains("# TYPE switchboard_published_total counter"), "{text}");
        m.publish_handed_off("refresh", Duration::from_micros(300));
        let text = m.render(Snapshot::default());
        assert!(
            text.contains("switchboard_publish_duration_seconds_bucket{kind=\"refresh\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_publish_duration_seconds_bucket{kind=\"refresh\",le=\"0.00025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_publish_duration_seconds_count{kind=\"new_item\"} 0"),
            "{text}"
        );
    }
}
