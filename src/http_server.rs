//! The HTTP/1 server both listeners run: our own accept loop on hyper,
//! because `axum::serve` sets no header read timeout (contract §6
//! `header_read_timeout`).
//!
//! When hyper's header timer runs (hyper 1.x, `Conn::poll_read_head`): it
//! starts when a connection begins to wait for a request head, which is at
//! once on a fresh connection (before any byte arrives) and, on a kept-alive
//! connection, as soon as the previous response has been written; it stops
//! when the head has been parsed. So a client that sends its headers a byte
//! at a time, one that sends nothing at all, and a kept-alive connection
//! left idle are all closed `header_read_timeout` after the timer started,
//! without an answer (hyper writes no 408 for it). The timer does not run
//! while a request is being served (a long-poll waiting for data) nor once a
//! connection has been upgraded to a WebSocket (hyper has handed the socket
//! over). The internal API bounds its bodies itself (`internal_api`).

use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves `router` on `listener` until `stop` is cancelled; then stops
/// accepting, lets each connection finish the request it is serving (idle
/// ones close at once) and returns when all are closed. The caller bounds
/// that wait (`shutdown_timeout`).
pub fn spawn(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: &CancellationToken,
) -> JoinHandle<io::Result<()>> {
    tokio::spawn(serve(listener, router, header_read_timeout, stop.clone()))
}

async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let connections = TaskTracker::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    pause_after(e, &stop).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Small Socket.IO frames must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        // Upgrades for the public listener's WebSockets; the internal API
        // never asks for one.
        let conn = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()))
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut conn = pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stop.cancelled() => {
                    // Finishes the request in flight, then closes.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                // A header timeout, a client gone mid-request: the client's
                // business, not the server's health.
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// After a failed accept: a connection that died in the backlog is
/// skipped; anything else (out of file descriptors, ...) is logged and
/// accepting resumes a second later, as `axum::serve` does.
async fn pause_after(e: io::Error, stop: &CancellationToken) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
        () = stop.cancelled() => {}
    }
}
