//! The Redis side of the cluster: one channel, a publisher and a subscriber
//! connection, each reconnecting by itself.
//!
//! Publishing never blocks a caller: messages are queued and sent in order
//! by one task. While Redis is unreachable they are dropped (the node
//! re-sends its whole state once Redis is back), and the outage is logged
//! once, when it starts, and once when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

/// How long one connection attempt or one command may take.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// Whether each connection is up; both must be for the node to be ready.
#[derive(Debug)]
pub struct Health {
    publisher: AtomicBool,
    subscriber: AtomicBool,
    /// Something may have been missed, by us or by the others, since the
    /// last resync: set at start and whenever a connection goes down.
    resync_due: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            publisher: AtomicBool::new(false),
            subscriber: AtomicBool::new(false),
            resync_due: AtomicBool::new(true),
        }
    }
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.publisher.load(Ordering::Relaxed) && self.subscriber.load(Ordering::Relaxed)
    }

    /// True once per outage, when both connections are up again.
    pub fn take_resync(&self) -> bool {
        self.is_up() && self.resync_due.swap(false, Ordering::AcqRel)
    }
}

/// The publisher's current connection, shared with the history scripts
/// (a multiplexed connection pipelines concurrent commands).
#[derive(Debug, Clone, Default)]
pub struct Commands(Arc<std::sync::Mutex<Option<MultiplexedConnection>>>);

impl Commands {
    pub fn get(&self) -> Option<MultiplexedConnection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, conn: Option<MultiplexedConnection>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }
}

/// Logs an outage once, when it starts, and once when it ends.
struct Outage {
    what: &'static str,
    flag: Arc<Health>,
    down_since: Option<Instant>,
    ever_up: bool,
}

impl Outage {
    fn new(what: &'static str, flag: Arc<Health>) -> Self {
        Self {
            what,
            flag,
            down_since: None,
            ever_up: false,
        }
    }

    fn set(&self, up: bool) {
        let flag = match self.what {
            "publisher" => &self.flag.publisher,
            _ => &self.flag.subscriber,
        };
        flag.store(up, Ordering::Relaxed);
    }

    fn up(&mut self) {
        self.set(true);
        match self.down_since.take() {
            Some(since) => tracing::info!(connection = self.what, after = ?since.elapsed(), "redis reachable again"),
            None if !self.ever_up => tracing::info!(connection = self.what, "connected to redis"),
            None => {}
        }
        self.ever_up = true;
    }

    fn down(&mut self, error: &dyn std::fmt::Display) {
        self.set(false);
        self.flag.resync_due.store(true, Ordering::Release);
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            if self.ever_up {
                tracing::error!(connection = self.what, %error, "redis unreachable; serving local clients only, retrying");
            } else {
                tracing::error!(connection = self.what, %error, "redis unreachable at startup; serving local clients only, retrying with backoff");
            }
        } else {
            tracing::debug!(connection = self.what, %error, "redis still unreachable");
        }
    }
}

enum Outgoing {
    Text(String),
    Flush(oneshot::Sender<()>),
}

/// The publishing side of the bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outgoing")
    }
}

/// The receiving end the publisher task drains.
pub struct PublisherQueue(mpsc::UnboundedReceiver<Outgoing>);

impl PublisherQueue {
    /// The texts queued so far (tests replay them on another node).
    #[cfg(test)]
    pub fn drain(&mut self) -> Vec<String> {
        let mut texts = Vec::new();
        while let Ok(item) = self.0.try_recv() {
            match item {
                Outgoing::Text(text) => texts.push(text),
                Outgoing::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
        texts
    }
}

pub fn publisher() -> (Publisher, PublisherQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Publisher { tx }, PublisherQueue(rx))
}

impl Publisher {
    pub fn send(&self, text: String) {
        let _ = self.tx.send(Outgoing::Text(text));
    }

    /// Waits until everything queued so far was sent (or dropped).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Outgoing::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(IO_TIMEOUT))
        .set_response_timeout(Some(IO_TIMEOUT))
}

/// Sends queued messages to `channel`, reconnecting with backoff; calls
/// `on_connected` after each (re)connection.
pub async fn run_publisher(
    client: redis::Client,
    channel: String,
    mut queue: PublisherQueue,
    health: Arc<Health>,
    commands: Commands,
    stop: CancellationToken,
    on_connected: impl Fn(),
) {
    let mut outage = Outage::new("publisher", health);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut retry = FIRST_RETRY;
    let mut retry_at = Instant::now();
    loop {
        let reconnect = async {
            if conn.is_some() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(retry_at).await;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = reconnect => {
                match client.get_multiplexed_async_connection_with_config(&connection_config()).await {
                    Ok(c) => {
                        commands.set(Some(c.clone()));
                        conn = Some(c);
                        retry = FIRST_RETRY;
                        outage.up();
                        on_connected();
                    }
                    Err(e) => {
                        outage.down(&e);
                        retry_at = Instant::now() + retry;
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
            item = queue.0.recv() => match item {
                None => return,
                Some(Outgoing::Flush(done)) => {
                    let _ = done.send(());
                }
                Some(Outgoing::Text(text)) => {
                    let Some(c) = conn.as_mut() else { continue };
                    let sent: redis::RedisResult<()> = redis::cmd("PUBLISH").arg(&channel).arg(text).query_async(c).await;
                    if let Err(e) = sent {
                        conn = None;
                        commands.set(None);
                        outage.down(&e);
                        retry_at = Instant::now() + FIRST_RETRY;
                    }
                }
            },
        }
    }
}

/// Subscribes to `channel` and hands every message to `on_message`, in
/// order; calls `on_connected` after each (re)subscription. A subscription
/// that stops hearing this node's own heartbeats for `silence` is presumed
/// dead (a half-open connection) and replaced.
pub async fn run_subscriber(
    client: redis::Client,
    channel: String,
    health: Arc<Health>,
    silence: Duration,
    stop: CancellationToken,
    on_connected: impl Fn(),
    mut on_message: impl FnMut(&[u8]) -> bool,
) {
    let mut outage = Outage::new("subscriber", health);
    let mut retry = FIRST_RETRY;
    loop {
        let subscribed = async {
            let mut pubsub = timeout(IO_TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connection timed out")))??;
            timeout(IO_TIMEOUT, pubsub.subscribe(&channel))
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "subscribe timed out")))??;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            result = subscribed => result,
        };
        match pubsub {
            Err(e) => outage.down(&e),
            Ok(pubsub) => {
                outage.up();
                retry = FIRST_RETRY;
                on_connected();
                let mut stream = pubsub.into_on_message();
                let mut last_own = Instant::now();
                let mut check = tokio::time::interval(silence / 2);
                let ended = loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        msg = stream.next() => match msg {
                            None => break "connection closed".to_string(),
                            Some(msg) => {
                                if on_message(msg.get_payload_bytes()) {
                                    last_own = Instant::now();
                                }
                            }
                        },
                        _ = check.tick() => {
                            if last_own.elapsed() > silence {
                                break format!("no message of this node's came back within {silence:?}");
                            }
                        }
                    }
                };
                outage.down(&ended);
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(retry) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}
