//! The Socket.IO side: connections, client events, disconnects.
//!
//! Handlers are thin: they parse a [`Request`], call the registries through
//! the [`Hub`], and queue the outcome (events, then the ack) on the outbox.

pub mod notify;
pub mod payload;
pub mod requests;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler};
use socketioxide::socket::{DisconnectReason, Sid, Socket};

use crate::auth::{TokenIdentity, Unauthorized};
use crate::config::AuthMode;
use crate::error::ClientError;
use crate::hub::Hub;
use crate::ids::TimelineKey;
use crate::outbox::Delivery;
use crate::presence::PresenceOp;
use crate::rate_limit::TokenBucket;
use requests::{EventName, Request};

/// Per-socket state kept in the socket's extensions.
#[derive(Debug)]
struct SocketSession {
    bucket: Mutex<TokenBucket>,
    /// The agent its token names (`auth_mode = jwt`).
    token: Option<TokenIdentity>,
}

/// Serves the `/` namespace with the hub's rules.
pub fn attach(io: &SocketIo, hub: Hub) {
    let on_connect = async |_: SocketRef| {};
    // Handlers are registered in a middleware, which runs before the client
    // is told it is connected: the connect handler runs in a task of its own,
    // and an event arriving before it ran would find no handler.
    let prepare = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let hub = hub.clone();
        async move {
            let token = match &hub.config.auth_mode {
                AuthMode::None => None,
                AuthMode::Jwt(verifier) => match verifier.verify_handshake(auth.as_ref().ok()) {
                    Ok(identity) => Some(identity),
                    Err(e) => {
                        tracing::debug!(sid = %socket.id, reason = %e.0, "handshake refused");
                        hub.metrics.client_event("connect", "UNAUTHORIZED");
                        return Err(e);
                    }
                },
            };
            if let Some(at) = token.as_ref().and_then(|t| t.expires_at) {
                hub.expiries.schedule(socket.id, at);
            }
            let bucket = TokenBucket::new(hub.config.events_per_second, Instant::now());
            socket.extensions.insert(Arc::new(SocketSession {
                bucket: Mutex::new(bucket),
                token,
            }));
            // A room of its own, as in socket.io, so broadcasts can leave out
            // all sockets of an agent by id (`except`), on any node.
            socket.join(socket.id.to_string());
            socket.on_fallback(EventRouter { hub: hub.clone() });
            hub.connection_opened();
            socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
                let hub = hub.clone();
                async move { on_disconnect(&hub, socket.id, reason).await }
            });
            Ok::<(), Unauthorized>(())
        }
    };
    io.ns("/", on_connect.with(prepare));
}

/// Receives every client event, synchronously and in arrival order (the
/// usual `async` handlers run in tasks of their own, which may reorder two
/// events of one socket).
#[derive(Clone)]
struct EventRouter {
    hub: Hub,
}

/// Marker for `MessageHandler`'s type parameter.
#[doc(hidden)]
pub struct Routed;

impl MessageHandler<LocalAdapter, Routed> for EventRouter {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, mut v: socketioxide::handler::Value, ack_id: Option<i64>) {
        let Ok(Event(event)) = Event::from_message_parts(&s, &mut v, &ack_id) else {
            return;
        };
        let Ok(TryData(payload)) = TryData::<payload::ClientPayload>::from_message_parts(&s, &mut v, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        let ack = ack_id.map(|_| ack);
        let session = s.extensions.get::<Arc<SocketSession>>();
        let allowed = session.as_ref().is_none_or(|session| {
            session
                .bucket
                .lock()
                .map(|mut b| b.take(Instant::now()))
                .unwrap_or(true)
        });
        let token = session.as_ref().and_then(|s| s.token.as_ref());
        handle_event(&self.hub, s.id, &event, payload.ok().map(|p| p.0), allowed, token, ack);
    }
}

fn handle_event(
    hub: &Hub,
    sid: Sid,
    event: &str,
    payload: Option<Value>,
    allowed: bool,
    token: Option<&TokenIdentity>,
    ack: Option<AckSender>,
) {
    let Some(name) = EventName::parse(event) else {
        // Unknown events are answered only when the client waits for an ack.
        let error = if allowed {
            ClientError::UnknownEvent(event.chars().take(100).collect())
        } else {
            ClientError::RateLimited(hub.config.events_per_second)
        };
        hub.metrics.client_event("unknown", error.code());
        if let Some(ack) = ack {
            hub.outbox.push(Delivery::Ack {
                ack,
                payload: error.to_ack(),
            });
        }
        return;
    };
    let result = if !allowed {
        Err(ClientError::RateLimited(hub.config.events_per_second))
    } else {
        payload
            .ok_or_else(|| ClientError::InvalidPayload("payload must be an object".into()))
            .and_then(|p| Request::parse(name, &p, token))
            .and_then(|request| apply(hub, sid, request))
    };
    hub.metrics
        .client_event(name.as_str(), result.as_ref().map_or_else(ClientError::code, |_| "ok"));
    match (result, ack) {
        (Ok(reply), Some(ack)) => hub.outbox.push(Delivery::Ack { ack, payload: reply }),
        (Ok(_), None) => {}
        (Err(e), Some(ack)) => hub.outbox.push(Delivery::Ack {
            ack,
            payload: e.to_ack(),
        }),
        (Err(e), None) => hub.outbox.push(Delivery::ToSocket {
            sid,
            event: name.error_event(),
            payload: e.to_error_event(name.as_str()),
        }),
    }
}

/// Applies a valid request; returns the ack's success payload.
fn apply(hub: &Hub, sid: Sid, request: Request) -> Result<Value, ClientError> {
    let at = hub.clock.now_ms();
    let (ticket, op) = match request {
        Request::View { ticket, agent, name } => (
            ticket.clone(),
            PresenceOp::View {
                sid,
                ticket,
                agent,
                name,
                at,
            },
        ),
        Request::Typing { ticket, agent } => (ticket.clone(), PresenceOp::Typing { sid, ticket, agent, at }),
        Request::StopTyping { ticket, agent } => (ticket.clone(), PresenceOp::StopTyping { sid, ticket, agent, at }),
        Request::Leave { ticket, agent } => (ticket.clone(), PresenceOp::Leave { sid, ticket, agent }),
        Request::Subscribe(key) => return subscribe(hub, sid, key),
        Request::Unsubscribe(key) => return unsubscribe(hub, sid, key),
    };
    Ok(match hub.apply_local(op)? {
        Some(viewers) => json!({ "ok": true, "ticketId": ticket, "viewers": viewers }),
        None => json!({ "ok": true, "ticketId": ticket }),
    })
}

fn subscribe(hub: &Hub, sid: Sid, key: TimelineKey) -> Result<Value, ClientError> {
    hub.check_entity_type(&key.entity_type)?;
    let mut timelines = hub.timelines();
    if timelines.subscribe(sid, &key)? {
        hub.outbox.push(Delivery::Join { sid, room: key.room() });
    }
    Ok(timeline_reply(hub, sid, &key, "timeline:subscribed"))
}

fn unsubscribe(hub: &Hub, sid: Sid, key: TimelineKey) -> Result<Value, ClientError> {
    hub.check_entity_type(&key.entity_type)?;
    let mut timelines = hub.timelines();
    if timelines.unsubscribe(sid, &key) {
        hub.outbox.push(Delivery::Leave { sid, room: key.room() });
    }
    Ok(timeline_reply(hub, sid, &key, "timeline:unsubscribed"))
}

/// Tells the socket (`timeline:subscribed` / `timeline:unsubscribed`) and
/// returns the ack's success payload.
fn timeline_reply(hub: &Hub, sid: Sid, key: &TimelineKey, event: &'static str) -> Value {
    let body = json!({ "entityType": key.entity_type, "entityId": key.entity_id });
    hub.outbox.push(Delivery::ToSocket {
        sid,
        event,
        payload: body,
    });
    json!({ "ok": true, "entityType": key.entity_type, "entityId": key.entity_id })
}

async fn on_disconnect(hub: &Hub, sid: Sid, reason: DisconnectReason) {
    tracing::debug!(%sid, ?reason, "socket disconnected");
    let _ = hub.apply_local(PresenceOp::Disconnect { sid });
    hub.timelines().disconnect(sid);
    hub.connection_closed();
    // socketioxide empties the socket's rooms when this handler returns:
    // joins still queued for it must be done (and so undone) by then.
    hub.outbox.flush().await;
}
