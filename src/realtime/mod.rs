//! The Socket.IO side: connections, client events, disconnects.
//!
//! Handlers are thin: they parse a [`Request`], call an operation of the
//! [`Hub`] (which queues the events it causes), and queue the ack or the
//! error on the [`Outbox`] after them.

pub mod payload;
pub mod requests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler};
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::{ProtocolVersion, SocketIo};

use crate::auth::{TokenIdentity, Unauthorized};
use crate::config::AuthMode;
use crate::delivery::{Delivery, Outbox};
use crate::error::ClientError;
use crate::hub::{Hub, Pending, Recovered, Subscribed, Subscription};
use crate::ids::TimelineKey;
use crate::presence::PresenceOp;
use crate::rate_limit::TokenBucket;
use requests::{EventName, Request};

/// Per-socket state kept in the socket's extensions.
#[derive(Debug)]
struct SocketSession {
    bucket: Mutex<TokenBucket>,
    /// The agent its token names (`auth_mode = jwt`).
    token: Option<TokenIdentity>,
    /// Set when socketioxide closes this socket, before our disconnect
    /// runs: a socket closed before its connect handler ran is not counted.
    closed: AtomicBool,
}

/// Serves the `/` namespace with the hub's rules; acks and error events
/// go out through `outbox`, behind the events they follow.
pub fn attach(io: &SocketIo, hub: Hub, outbox: Outbox) {
    // The socket is counted here, once socketioxide has told the client it
    // is connected, not in the middleware: a transport that closes while the
    // middleware runs is never closed by socketioxide (it closes only the
    // sockets already in the namespace; this one is dropped when its CONNECT
    // reply cannot be sent), and its disconnect handler never runs. And a
    // client that disconnects (`41`) as soon as it reads the CONNECT reply
    // can be closed before socketioxide marks the socket connected and calls
    // this handler. So the handler's body (run in line; only the future is
    // spawned) counts the socket unless its disconnect already began, under
    // the lock that disconnect takes (found by tests/fuzz.rs,
    // docs/fuzzing.md).
    let on_connect = {
        let hub = hub.clone();
        move |socket: SocketRef| {
            let session = socket.extensions.get::<Arc<SocketSession>>();
            let expiry = session
                .as_ref()
                .and_then(|s| s.token.as_ref().and_then(|t| t.expires_at));
            hub.socket_connected(socket.id, expiry, || {
                session.as_ref().is_some_and(|s| !s.closed.load(Ordering::SeqCst))
            });
            async {}
        }
    };
    // Handlers are registered in a middleware, which runs before the client
    // is told it is connected: the connect handler runs in a task of its own,
    // and an event arriving before it ran would find no handler.
    let prepare = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let (hub, outbox) = (hub.clone(), outbox.clone());
        async move {
            let token = match &hub.config().auth_mode {
                AuthMode::None => None,
                AuthMode::Jwt(verifier) => {
                    match verifier.verify_handshake(auth.as_ref().ok(), legacy_query_token(&socket).as_deref()) {
                        Ok(identity) => Some(identity),
                        Err(e) => {
                            tracing::debug!(sid = %socket.id, reason = %e.0, "handshake refused");
                            hub.metrics().client_event("connect", "UNAUTHORIZED");
                            hub.handshake_failed();
                            return Err(e);
                        }
                    }
                }
            };
            let bucket = TokenBucket::new(hub.config().events_per_second, Instant::now());
            socket.extensions.insert(Arc::new(SocketSession {
                bucket: Mutex::new(bucket),
                token,
                closed: AtomicBool::new(false),
            }));
            // A room of its own, as in socket.io, so broadcasts can leave out
            // all sockets of an agent by id (`except`) and `delivery` can
            // reach the socket before socketioxide marks it connected. The
            // one room change outside `delivery`: it must exist before the
            // client is told it is connected, and nothing is queued for the
            // socket yet.
            socket.join(socket.id.to_string());
            socket.on_fallback(EventRouter {
                hub: hub.clone(),
                outbox: outbox.clone(),
            });
            socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
                // In the closure's body: socketioxide runs it in line as it
                // closes the socket, before it spawns the future.
                if let Some(session) = socket.extensions.get::<Arc<SocketSession>>() {
                    session.closed.store(true, Ordering::SeqCst);
                }
                let (hub, outbox) = (hub.clone(), outbox.clone());
                async move { on_disconnect(&hub, &outbox, socket.id, reason).await }
            });
            Ok::<(), Unauthorized>(())
        }
    };
    io.ns("/", on_connect.with(prepare));
}

/// The handshake's `token` query parameter, for socket.io-client 2.x
/// (Socket.IO protocol v4), which has no `auth`. Not read for newer
/// clients: they have `auth`, and a token in a URL ends up in access logs.
fn legacy_query_token(socket: &SocketRef) -> Option<String> {
    if socket.protocol() != ProtocolVersion::V4 {
        return None;
    }
    let query = socket.req_parts().uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

/// Receives every client event, synchronously and in arrival order (the
/// usual `async` handlers run in tasks of their own, which may reorder two
/// events of one socket).
#[derive(Clone)]
struct EventRouter {
    hub: Hub,
    outbox: Outbox,
}

/// Marker for `MessageHandler`'s type parameter.
#[doc(hidden)]
pub struct Routed;

/// One client event as it arrived.
struct ClientEvent<'a> {
    sid: Sid,
    name: &'a str,
    /// `None` when the payload is not something JSON can hold.
    payload: Option<Value>,
    /// Whether the rate limit let it through.
    allowed: bool,
    /// The agent the socket's token names (`auth_mode = jwt`).
    token: Option<&'a TokenIdentity>,
    /// Present when the client waits for an ack.
    ack: Option<AckSender>,
}

impl MessageHandler<LocalAdapter, Routed> for EventRouter {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, mut v: socketioxide::handler::Value, ack_id: Option<i64>) {
        let Ok(Event(name)) = Event::from_message_parts(&s, &mut v, &ack_id) else {
            return;
        };
        let Ok(TryData(payload)) = TryData::<payload::ClientPayload>::from_message_parts(&s, &mut v, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        let session = s.extensions.get::<Arc<SocketSession>>();
        let allowed = session.as_ref().is_none_or(|session| {
            session
                .bucket
                .lock()
                .map(|mut b| b.take(Instant::now()))
                .unwrap_or(true)
        });
        self.handle(ClientEvent {
            sid: s.id,
            name: &name,
            payload: payload::event_payload(payload, &v),
            allowed,
            token: session.as_ref().and_then(|s| s.token.as_ref()),
            ack: ack_id.map(|_| ack),
        });
    }
}

impl EventRouter {
    fn handle(&self, event: ClientEvent<'_>) {
        let hub = &self.hub;
        let rate = hub.config().events_per_second;
        let Some(name) = EventName::parse(event.name) else {
            // Unknown events are answered only when the client waits for an ack.
            let error = if event.allowed {
                ClientError::UnknownEvent(event.name.chars().take(100).collect())
            } else {
                ClientError::RateLimited(rate)
            };
            hub.metrics().client_event("unknown", error.code());
            if let Some(ack) = event.ack {
                self.outbox.push(Delivery::Ack {
                    ack,
                    payload: error.to_ack(),
                });
            }
            return;
        };
        let result = if !event.allowed {
            Err(ClientError::RateLimited(rate))
        } else {
            event
                .payload
                .ok_or_else(|| ClientError::InvalidPayload("payload must be an object".into()))
                .and_then(|p| Request::parse(name, &p, event.token))
                .and_then(|request| apply(hub, event.sid, request))
        };
        hub.metrics()
            .client_event(name.as_str(), result.as_ref().map_or_else(ClientError::code, |_| "ok"));
        let delivery = match (result, event.ack) {
            (Ok(Reply::Now(reply)), Some(ack)) => Delivery::Ack { ack, payload: reply },
            (Ok(Reply::Now(_)), None) => return,
            (Ok(Reply::Later(reply)), ack) => {
                let outbox = self.outbox.clone();
                tokio::spawn(async move {
                    let reply = reply.await;
                    if let Some(ack) = ack {
                        outbox.push(Delivery::Ack { ack, payload: reply });
                    }
                });
                return;
            }
            (Err(e), Some(ack)) => Delivery::Ack {
                ack,
                payload: e.to_ack(),
            },
            (Err(e), None) => Delivery::ToSocket {
                sid: event.sid,
                event: name.error_event(),
                payload: e.to_error_event(name.as_str()),
            },
        };
        self.outbox.push(delivery);
    }
}

/// The success payload of an ack: known now, or once Redis was read (a
/// subscribe in a cluster whose history this node does not mirror yet).
enum Reply {
    Now(Value),
    Later(Pending<Value>),
}

/// Applies a valid request; returns the ack's success payload.
fn apply(hub: &Hub, sid: Sid, request: Request) -> Result<Reply, ClientError> {
    let at = hub.clock().now_ms();
    let (ticket, op) = match request {
        Request::View {
            ticket,
            agent,
            name,
            device,
        } => (
            ticket.clone(),
            PresenceOp::View {
                sid,
                ticket,
                agent,
                name,
                at,
                device,
            },
        ),
        Request::Draft { ticket, agent, editing } => (
            ticket.clone(),
            PresenceOp::Draft {
                sid,
                ticket,
                agent,
                editing,
                at,
            },
        ),
        Request::Activity { ticket, agent, state } => (
            ticket.clone(),
            PresenceOp::Activity {
                sid,
                ticket,
                agent,
                state,
                at,
            },
        ),
        Request::Watch(tickets) => {
            let lists = hub.watch(sid, &tickets)?;
            let tickets: Vec<Value> = lists
                .into_iter()
                .map(|(ticket, viewers)| json!({ "ticketId": ticket, "viewers": viewers }))
                .collect();
            return Ok(Reply::Now(json!({ "ok": true, "tickets": tickets })));
        }
        Request::Unwatch(tickets) => {
            hub.unwatch(sid, &tickets);
            return Ok(Reply::Now(json!({ "ok": true })));
        }
        Request::Typing { ticket, agent } => (ticket.clone(), PresenceOp::Typing { sid, ticket, agent, at }),
        Request::StopTyping { ticket, agent } => (ticket.clone(), PresenceOp::StopTyping { sid, ticket, agent, at }),
        Request::Leave { ticket, agent } => (ticket.clone(), PresenceOp::Leave { sid, ticket, agent }),
        Request::Subscribe { key, since } => {
            return Ok(match hub.subscribe(sid, &key, since.as_ref())? {
                Subscription::Done(subscribed) => Reply::Now(subscribe_ack(&key, subscribed)),
                Subscription::Reading(reading) => {
                    Reply::Later(Box::pin(async move { subscribe_ack(&key, reading.await) }))
                }
            });
        }
        Request::Unsubscribe(key) => {
            hub.unsubscribe(sid, &key)?;
            return Ok(Reply::Now(
                json!({ "ok": true, "entityType": key.entity_type, "entityId": key.entity_id }),
            ));
        }
    };
    Ok(Reply::Now(match hub.apply_local(op)? {
        Some(viewers) => json!({ "ok": true, "ticketId": ticket, "viewers": viewers }),
        None => json!({ "ok": true, "ticketId": ticket }),
    }))
}

/// A subscribe's ack: the timeline's position and, with `since`, whether
/// the missed events were replayed.
fn subscribe_ack(key: &TimelineKey, subscribed: Subscribed) -> Value {
    let position = subscribed.position.as_ref();
    let mut ack = json!({
        "ok": true, "entityType": key.entity_type, "entityId": key.entity_id,
        "offset": position.map(|p| p.offset), "epoch": position.map(|p| &*p.epoch),
    });
    if let Some(recovery) = subscribed.recovery {
        let (recovered, missed) = match recovery {
            Recovered::Replayed { missed } => (true, missed),
            Recovered::Lost => (false, 0),
        };
        ack["recovered"] = recovered.into();
        ack["missed"] = missed.into();
    }
    ack
}

async fn on_disconnect(hub: &Hub, outbox: &Outbox, sid: Sid, reason: DisconnectReason) {
    tracing::debug!(%sid, ?reason, "socket disconnected");
    hub.socket_disconnected(sid);
    // socketioxide empties the socket's rooms when this handler returns:
    // joins still queued for it must be done (and so undone) by then.
    outbox.flush().await;
}
