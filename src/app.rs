//! Wires the node together: Socket.IO, the hub, both HTTP listeners, the
//! background tasks, and the order in which they stop.

use std::future::Future;
use std::io;
use std::time::Duration;

use socketioxide::{ParserConfig, SocketIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::CONNECT_TIMEOUT;
use crate::cluster::{self, ClusterLink};
use crate::config::{Config, PacketParser};
use crate::delivery::Outbox;
use crate::demo::Console;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::{background, http_server, internal_api, public, realtime};

/// Bytes a websocket reads at a time. Client messages are small (an event is
/// a few hundred bytes); a larger one is read in several steps into a buffer
/// sized for it. engineioxide's 4 KiB would sit idle in every connection.
const WS_READ_CHUNK: usize = 256;

/// The two bound listeners; binding is the caller's, so tests use port 0.
pub struct Listeners {
    pub public: TcpListener,
    pub internal: TcpListener,
}

impl Listeners {
    /// Binds both addresses of `config`; an error names the key at fault.
    pub async fn bind(config: &Config) -> Result<Self, String> {
        let public = listen(config.listen).map_err(|e| format!("listen: {}: {e}", config.listen))?;
        let internal =
            listen(config.internal_listen).map_err(|e| format!("internal_listen: {}: {e}", config.internal_listen))?;
        Ok(Self { public, internal })
    }
}

/// Connections the kernel may hold for us before we accept them. After a
/// restart every client reconnects at once; tokio's default (1024) makes the
/// overflow wait for SYN retransmits (1 s, 3 s, ...). The kernel caps it at
/// `net.core.somaxconn`.
const ACCEPT_BACKLOG: u32 = 8192;

fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's bind does: a restarted server can bind while old connections
    // are still in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// The Engine.IO heartbeat: a ping `ping_interval` after the handshake and
/// after each pong, the session closed when no pong comes within
/// `ping_timeout`. Not a config key (the contract has none): socket.io's
/// defaults, which clients read from the handshake; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
        }
    }
}

/// Serves until `shutdown` resolves, then stops gracefully within
/// `shutdown_timeout`.
pub async fn run(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    run_with(config, listeners, Heartbeat::default(), shutdown).await
}

/// [`run`] with another Engine.IO heartbeat.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    heartbeat: Heartbeat,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // First: a console that cannot be served stops the start-up, naming its key.
    let console = config.demo.then(Console::load).transpose().map_err(io::Error::other)?;
    let builder = SocketIo::builder()
        .ping_interval(heartbeat.ping_interval)
        .ping_timeout(heartbeat.ping_timeout)
        .max_payload(config.max_payload)
        .ws_max_message_size(usize::try_from(config.max_payload).unwrap_or(usize::MAX))
        // Contract §4.2: one message more than `client_queue_max` waiting for a
        // socket closes its transport (the patched engineioxide's queue
        // overflows), rather than failing that emit on a connection that stays
        // open. The default (1024) takes a whole batch publish (up to 1000
        // events) to a polling client between two polls.
        .max_buffer_size(config.client_queue_max)
        .ws_read_buffer_size(WS_READ_CHUNK)
        .connect_timeout(CONNECT_TIMEOUT);
    let builder = match config.parser {
        PacketParser::Default => builder.with_parser(ParserConfig::common()),
        PacketParser::Msgpack => builder.with_parser(ParserConfig::msgpack()),
    };
    // Engine.IO v3 is compiled in (socketioxide's `v4` feature) and turned
    // away at the door unless `allow_eio3` (`public::refuse_eio3`).
    let (socketio_layer, io) = builder.build_layer();
    let metrics = Metrics::new();
    let (outbox, delivery_task) = Outbox::start(io.clone(), metrics.slow_client_disconnects.clone());
    let node_id = node_id();
    let (cluster, cluster_start) = match &config.redis_url {
        Some(url) => {
            let (link, start) = ClusterLink::new(node_id.clone(), &config, url).map_err(io::Error::other)?;
            (Some(link), Some(start))
        }
        None => (None, None),
    };
    let hub = Hub::new(config.clone(), node_id, outbox.clone(), cluster, metrics);
    realtime::attach(&io, hub.clone(), outbox.clone());
    let stop_cluster = CancellationToken::new();
    let cluster_tasks = cluster_start
        .map(|start| cluster::start(&hub, start, &stop_cluster))
        .unwrap_or_default();

    let public_addr = listeners.public.local_addr()?;
    let internal_addr = listeners.internal.local_addr()?;
    let stop_accepting = CancellationToken::new();
    let public_server = http_server::spawn(
        listeners.public,
        public::router(socketio_layer, config.cors_origins.clone(), hub.clone(), console),
        config.header_read_timeout,
        &stop_accepting,
    );
    let internal_server = http_server::spawn(
        listeners.internal,
        internal_api::router(hub.clone()),
        config.header_read_timeout,
        &stop_accepting,
    );

    let stop_timers = CancellationToken::new();
    let timers = [
        tokio::spawn(background::presence_timers(hub.clone(), stop_timers.clone())),
        tokio::spawn(background::stale_sweep(hub.clone(), stop_timers.clone())),
        tokio::spawn(background::token_expiry(hub.clone(), stop_timers.clone())),
        tokio::spawn(background::history_expiry(hub.clone(), stop_timers.clone())),
        tokio::spawn(background::memory_trim(stop_timers.clone())),
    ];
    hub.set_serving(true);
    tracing::info!(node = %hub.node_id(), public = %public_addr, internal = %internal_addr, "switchboard serving");

    shutdown.await;
    tracing::info!("shutting down");
    hub.set_serving(false);
    let graceful = async {
        stop_accepting.cancel();
        // Clients hear `transport close` and reconnect elsewhere; their
        // disconnect handlers tell the remaining viewers.
        io.close().await;
        for server in [public_server, internal_server] {
            report("http server", server.await);
        }
        outbox.flush().await;
        // The sockets' disconnects are queued for the other nodes; `Bye`
        // follows them, so the others know this node left on purpose.
        if let Some(cluster) = hub.cluster() {
            cluster.leave().await;
        }
    };
    if tokio::time::timeout(config.shutdown_timeout, graceful).await.is_err() {
        tracing::warn!(timeout = ?config.shutdown_timeout, "graceful shutdown timed out");
    }
    stop_timers.cancel();
    stop_cluster.cancel();
    for task in timers.into_iter().chain(cluster_tasks) {
        report("background task", task.await.map(Ok));
    }
    // Last: whatever the timers queued before they stopped is still sent
    // (to sockets that are left, if any).
    outbox.close();
    report("delivery task", delivery_task.await.map(Ok));
    tracing::info!("stopped");
    Ok(())
}

fn report(what: &str, outcome: Result<io::Result<()>, tokio::task::JoinError>) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "{what} failed"),
        Err(e) => tracing::error!(error = %e, "{what} panicked"),
    }
}

/// `<hostname>-<pid>-<random>`: unique per process, readable in logs.
fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".into());
    let random = socketioxide::socket::Sid::new().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..6])
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
