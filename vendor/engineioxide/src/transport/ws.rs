//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::{
    future::poll_fn,
    ops::ControlFlow,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket, body::ResponseBody, config::EngineIoConfig, engine::EngineIo,
    errors::Error, handler::EngineIoHandler, transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    mut req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let ws_key = req
        .headers()
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    // Taken out rather than cloning the request head, which the session keeps: the
    // clone made its header values share their bytes, and kept hyper's upgrade handle.
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, _) = req.into_parts();
    // The session keeps the request head; its headers served their purpose
    // (the key above) and its extensions (hyper's, axum's) are of no use to
    // the session: ~850 bytes per connection for nothing.
    parts.headers = http::HeaderMap::new();
    parts.extensions = http::Extensions::new();

    tokio::spawn(async move {
        let conn = on_upgrade.await.map(hyper_util::rt::TokioIo::new);

        let res = match conn {
            Ok(conn) => on_init(engine.clone(), conn, protocol, sid, parts).await,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws session started")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Then spawns the task that runs the session, [`run_session`], and returns
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
pub async fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    let (socket, ws) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, S>(&socket, &mut ws);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws)
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        (socket, ws)
    };
    // An upgraded session keeps the heartbeat task that its polling transport started.
    let with_heartbeat = sid.is_none();
    tokio::spawn(run_session(engine, socket, ws, with_heartbeat));
    Ok(())
}

/// Runs a websocket session until it is closed, in a single task: reads the
/// websocket and hands packets to the [`Socket`], writes the packets queued in the
/// socket, and runs the heartbeat if `with_heartbeat` is set.
///
/// Reading and writing progress independently, as they did in two tasks: a write
/// that a slow client blocks does not stop its pongs from being read, and the other
/// way round.
// Not an `async fn`: that would keep a second copy of the arguments, `ws` included
// (300 bytes per session).
#[allow(clippy::manual_async_fn)]
fn run_session<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    socket: Arc<Socket<H::Data>>,
    mut ws: WebSocketStream<S>,
    with_heartbeat: bool,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        let (interval, timeout) = (engine.config.ping_interval, engine.config.ping_timeout);
        let mut heartbeat = pin!(with_heartbeat.then(|| socket.heartbeat(interval, timeout)));
        let mut cancelled = pin!(socket.cancellation_token.cancelled());
        // A polling request that was in progress during the upgrade may still hold the lock.
        let mut lock = pin!(socket.internal_rx.lock());
        let mut internal_rx = None;
        let mut reading = true;
        let mut write = Write::Idle;

        poll_fn(|cx| {
            // The client stopped reading and its queue overflowed: end the connection
            // now, without the flush and the close frame it would not read either
            // (the cancellation that follows the overflow wakes this task).
            if socket.queue.overflowed() {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = %socket.id, "send queue overflowed, dropping the websocket");
                return Poll::Ready(());
            }
            // Like the former reader and heartbeat tasks, stop at once when the session is closed.
            if reading && !socket.cancellation_token.is_cancelled() {
                reading = poll_read(&engine, &socket, &mut ws, cx).is_pending();
            }
            if !socket.cancellation_token.is_cancelled()
                && let Some(job) = heartbeat.as_mut().as_pin_mut()
                && job.poll(cx).is_ready()
            {
                heartbeat.set(None);
            }

            let closing = cancelled.as_mut().poll(cx).is_ready();
            if internal_rx.is_none() {
                match lock.as_mut().poll(cx) {
                    Poll::Ready(guard) => internal_rx = Some(guard),
                    Poll::Pending if closing => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
                        return Poll::Ready(());
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            write.poll(&socket, &mut ws, closing, cx)
        })
        .await
    }
}

/// Reads the messages the websocket has ready. `Ready` once the client or the
/// connection closed the session.
fn poll_read<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let res = match ready!(ws.poll_next_unpin(cx)) {
            Some(Ok(msg)) => read_message(engine, socket, msg),
            Some(Err(e)) => Err(e.into()),
            None => Ok(ControlFlow::Break(())),
        };
        let reason = match res {
            Ok(ControlFlow::Continue(())) => continue,
            Ok(ControlFlow::Break(())) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = %socket.id, "ws transport was closed");
                DisconnectReason::TransportClose
            }
            Err(e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("error when handling packet: {:?}", e);
                Option::<DisconnectReason>::from(&e).unwrap_or(DisconnectReason::TransportError)
            }
        };
        engine.close_session(socket.id, reason);
        return Poll::Ready(());
    }
}

/// The writing side of [`run_session`]. It follows the former writer task step by
/// step: it feeds every queued packet to the websocket, then flushes before it takes
/// more; once the session is closing it writes what is left in the queue, then
/// closes the websocket.
#[allow(
    clippy::large_enum_variant,
    reason = "one per session, inline in its task: a box would be allocated for every batch"
)]
enum Write {
    Idle,
    Feeding(smallvec::IntoIter<[Packet; 2]>),
    Flushing,
    Closing { flushed: bool },
}

impl Write {
    /// `Ready` once the websocket is closed.
    fn poll<D, S>(
        &mut self,
        socket: &Socket<D>,
        ws: &mut WebSocketStream<S>,
        closing: bool,
        cx: &mut Context<'_>,
    ) -> Poll<()>
    where
        D: Default + Send + Sync + 'static,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match self {
                Write::Idle => match socket.queue.poll_recv(cx) {
                    Poll::Ready(Some(packets)) => *self = Write::Feeding(packets.into_iter()),
                    Poll::Ready(None) => *self = Write::Closing { flushed: false },
                    Poll::Pending if closing => *self = Write::Closing { flushed: false },
                    Poll::Pending => return Poll::Pending,
                },
                Write::Feeding(packets) => {
                    // As `SinkExt::feed` did: wait for the websocket to be ready, then
                    // send; drop the message if the websocket failed.
                    let ready = ready!(ws.poll_ready_unpin(cx));
                    let Some(msg) = packets.find_map(|p| to_message(p, socket.protocol)) else {
                        *self = match socket.queue.try_recv() {
                            Poll::Ready(Some(packets)) => Write::Feeding(packets.into_iter()),
                            _ => Write::Flushing,
                        };
                        continue;
                    };
                    if let Err(_e) = ready.and_then(|()| ws.start_send_unpin(msg)) {
                        #[cfg(feature = "tracing")]
                        tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
                    }
                }
                Write::Flushing => {
                    #[cfg(feature = "tracing")]
                    tracing::trace!(sid = %socket.id, "ws flush");
                    ready!(ws.poll_flush_unpin(cx)).ok();
                    *self = Write::Idle;
                }
                Write::Closing { flushed: false } => {
                    #[cfg(feature = "tracing")]
                    tracing::trace!(sid = %socket.id, "ws closing flush");
                    ready!(ws.poll_flush_unpin(cx)).ok();
                    *self = Write::Closing { flushed: true };
                }
                Write::Closing { flushed: true } => {
                    ready!(ws.poll_close_unpin(cx)).ok();
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Hands a message read from the websocket to the [`Socket`]; `Break` once the client closed the session.
fn read_message<H: EngineIoHandler>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    msg: Message,
) -> Result<ControlFlow<()>, Error> {
    match msg {
        Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
            Packet::Close => {
                #[cfg(feature = "tracing")]
                tracing::debug!("[sid={}] closing session", socket.id);
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                return Ok(ControlFlow::Break(()));
            }
            Packet::Pong | Packet::Ping => {
                // A pending notification means that the client is already known to be alive.
                socket.heartbeat.notify_one();
            }
            Packet::Message(msg) => engine.handler.on_message(msg, socket.clone()),
            p => return Err(Error::BadPacket(p)),
        },
        Message::Binary(mut data) => {
            if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                // The first byte is the message type, which we don't need.
                data = data.split_off(1);
            }
            engine.handler.on_binary(data, socket.clone());
        }
        Message::Close(_) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("websocket closed, closing session");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
            return Ok(ControlFlow::Break(()));
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = ?socket.id, "unexpected ws message");
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The websocket message of a packet; none for a NOOP packet, which only ends a
/// polling request during an upgrade and may be left in the queue.
fn to_message(packet: Packet, protocol: ProtocolVersion) -> Option<Message> {
    match packet {
        Packet::Binary(bin) | Packet::BinaryV3(bin) if protocol == ProtocolVersion::V3 => {
            // v3 protocol requires packet type as the first byte.
            // This requires a new buffer. This is OK as it is only for the V3 protocol.
            let mut buff = Vec::with_capacity(bin.len() + 1);
            buff.push(0x04);
            buff.extend(bin);
            Some(Message::Binary(buff.into()))
        }
        Packet::Binary(bin) | Packet::BinaryV3(bin) => Some(Message::Binary(bin)),
        Packet::Noop => None,
        packet => Some(Message::Text(String::from(packet).into())),
    }
}

/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    if !socket.queue.send_ignoring_bound(smallvec![Packet::Noop]) {
        return Err(Error::Upgrade);
    }

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http::Request;
    use tokio::io::DuplexStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[derive(Debug)]
    struct StubHandler;
    impl EngineIoHandler for StubHandler {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn socket() -> Arc<Socket<()>> {
        Arc::new(Socket::new(
            ProtocolVersion::V4,
            TransportType::Websocket,
            &EngineIoConfig::default(),
            Request::<()>::default().into_parts().0,
            Arc::new(|_, _| ()),
            false,
        ))
    }

    async fn ws_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(1024);
        (
            WebSocketStream::from_raw_socket(server, Role::Server, None).await,
            WebSocketStream::from_raw_socket(client, Role::Client, None).await,
        )
    }

    fn engine() -> Arc<EngineIo<StubHandler>> {
        Arc::new(EngineIo::new(
            Arc::new(StubHandler),
            EngineIoConfig::default(),
        ))
    }

    /// A polling request can still hold the lock at the end of an upgrade.
    #[tokio::test]
    async fn writer_waits_for_the_lock_of_a_polling_request() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;

        let polling = socket.internal_rx.lock().await;
        let session = tokio::spawn(run_session(engine(), socket.clone(), server, false));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !session.is_finished(),
            "the writer should wait for the lock"
        );

        // Meanwhile the websocket is read.
        let pong = socket.heartbeat.notified();
        client.send(Message::text("3")).await.unwrap();
        tokio::time::timeout(TIMEOUT, pong)
            .await
            .expect("the pong should be read");

        drop(polling);
        socket.emit(Str::from("hello")).unwrap();
        let msg = tokio::time::timeout(TIMEOUT, client.next())
            .await
            .expect("the writer should send the packet")
            .unwrap()
            .unwrap();
        assert_eq!(msg, Message::text("4hello"));
    }

    #[tokio::test]
    async fn writer_waiting_for_the_lock_stops_with_the_session() {
        let socket = socket();
        let (server, _client) = ws_pair().await;

        let _polling = socket.internal_rx.lock().await;
        let session = tokio::spawn(run_session(engine(), socket.clone(), server, false));
        tokio::time::sleep(Duration::from_millis(20)).await;

        socket.cancellation_token.cancel();
        tokio::time::timeout(TIMEOUT, session)
            .await
            .expect("the session should stop")
            .unwrap();
    }

    #[tokio::test]
    async fn pongs_are_read_while_a_write_is_blocked() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;
        tokio::spawn(run_session(engine(), socket.clone(), server, false));

        // Larger than the duplex buffer: the write blocks until the client reads.
        socket.emit("x".repeat(64 * 1024)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;

        let pong = socket.heartbeat.notified();
        client.send(Message::text("3")).await.unwrap();
        tokio::time::timeout(TIMEOUT, pong)
            .await
            .expect("the pong should be read");

        let msg = client.next().await.unwrap().unwrap();
        assert_eq!(msg.len(), 1 + 64 * 1024);
    }

    #[tokio::test]
    async fn queued_packets_are_written_in_order_before_the_close() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;
        let session = tokio::spawn(run_session(engine(), socket.clone(), server, false));

        socket.emit("a").unwrap();
        socket.emit_binary(Bytes::from_static(b"b")).unwrap();
        socket.emit("c").unwrap();
        socket.cancellation_token.cancel();

        let mut received = Vec::new();
        while let Some(Ok(msg)) = client.next().await {
            received.push(msg);
        }
        assert_eq!(
            received,
            [
                Message::text("4a"),
                Message::binary(Bytes::from_static(b"b")),
                Message::text("4c"),
                Message::Close(None),
            ]
        );
        tokio::time::timeout(TIMEOUT, session)
            .await
            .unwrap()
            .unwrap();
    }
}
