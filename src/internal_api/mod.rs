//! The internal HTTP API for backend services (contract §5), served on its
//! own listener so it is never exposed with the public Socket.IO port.

pub mod error;
pub mod publish;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::cluster::messages::Message;
use crate::hub::Hub;
use crate::ids::{ItemId, TicketId};
use error::{ApiError, Result};
use publish::{Publish, timeline_key};

/// The internal API's routes, with the hub as state.
pub fn router(hub: Hub) -> Router {
    let protected = Router::new()
        .route("/v1/timeline/{entity_type}/{entity_id}/items", post(new_item))
        .route(
            "/v1/timeline/{entity_type}/{entity_id}/items/{item_id}",
            put(item_updated),
        )
        .route("/v1/timeline/{entity_type}/{entity_id}/refresh", post(refresh))
        .route("/v1/timeline/batch", post(batch))
        .route("/v1/tickets/{ticket_id}/viewers", get(viewers))
        .route("/v1/stats", get(stats))
        .route_layer(middleware::from_fn_with_state(hub.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(protected)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(hub.clone(), count_requests))
        .with_state(hub)
}

async fn count_requests(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    hub.metrics
        .internal_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn require_token(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    if let Some(token) = &hub.config.internal_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so response timing
/// does not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn ready(State(hub): State<Hub>) -> Result<impl IntoResponse> {
    if !hub.is_serving() {
        return Err(ApiError::NotReady("not serving".into()));
    }
    if hub.cluster().is_some_and(|c| !c.is_up()) {
        return Err(ApiError::NotReady("redis is not reachable".into()));
    }
    Ok(axum::Json(json!({ "status": "ready" })))
}

async fn metrics(State(hub): State<Hub>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        hub.metrics_text(),
    )
}

/// Path segments, percent-decoded; a segment that does not decode to UTF-8
/// is a bad identifier.
struct Segments(Vec<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Segments {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        Path::<Vec<String>>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Segments(v))
            .map_err(|_| ApiError::InvalidPayload("malformed path segment".into()))
    }
}

fn segment(s: &Segments, i: usize) -> Value {
    Value::String(s.0.get(i).cloned().unwrap_or_default())
}

/// Reads the body as JSON within `max_body`; `None` when it is empty.
async fn read_json(hub: &Hub, body: Body) -> Result<Option<Value>> {
    let bytes = to_bytes(body, hub.config.max_body)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(hub.config.max_body))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::InvalidJson(e.to_string()))
}

async fn required_json(hub: &Hub, body: Body) -> Result<Value> {
    read_json(hub, body)
        .await?
        .ok_or_else(|| ApiError::InvalidJson("a JSON body is required".into()))
}

async fn new_item(State(hub): State<Hub>, path: Segments, body: Body) -> Result<Response> {
    let item = required_json(&hub, body).await?;
    let key = timeline_key(Some(&segment(&path, 0)), Some(&segment(&path, 1)))?;
    deliver_one(&hub, Publish::new_item(key, Some(&item))?).await
}

async fn item_updated(State(hub): State<Hub>, path: Segments, body: Body) -> Result<Response> {
    let item = required_json(&hub, body).await?;
    let key = timeline_key(Some(&segment(&path, 0)), Some(&segment(&path, 1)))?;
    let item_id = ItemId::parse(Some(&segment(&path, 2)))?;
    deliver_one(&hub, Publish::item_updated(key, item_id, Some(&item))?).await
}

async fn refresh(State(hub): State<Hub>, path: Segments, body: Body) -> Result<Response> {
    let body = read_json(&hub, body).await?;
    let reason = match &body {
        None => None,
        Some(Value::Object(o)) => o.get("reason"),
        Some(_) => {
            return Err(ApiError::InvalidPayload(
                "body must be {\"reason\": string | null}, {} or empty".into(),
            ));
        }
    };
    let key = timeline_key(Some(&segment(&path, 0)), Some(&segment(&path, 1)))?;
    deliver_one(&hub, Publish::refresh(key, reason)?).await
}

async fn batch(State(hub): State<Hub>, body: Body) -> Result<Response> {
    let body = required_json(&hub, body).await?;
    let events = publish::batch(&body)?;
    for p in &events {
        hub.check_entity_type(&p.key.entity_type)?;
    }
    let mut reached_all = true;
    for p in &events {
        reached_all &= deliver(&hub, p).await;
    }
    let mut reply = json!({ "accepted": events.len() });
    if !reached_all {
        reply["partial"] = Value::Bool(true);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(reply)).into_response())
}

async fn deliver_one(hub: &Hub, p: Publish) -> Result<Response> {
    hub.check_entity_type(&p.key.entity_type)?;
    let mut reply = json!({ "delivered": true });
    if !deliver(hub, &p).await {
        reply["partial"] = Value::Bool(true);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(reply)).into_response())
}

/// Delivers to this node's subscribers, then sends it to the other nodes;
/// false when the other nodes could not be reached (Redis is down).
async fn deliver(hub: &Hub, p: &Publish) -> bool {
    hub.metrics.published(p.kind);
    let room = p.key.room();
    if let Some(cluster) = hub.cluster() {
        cluster.send(Message::Publish {
            room: room.clone(),
            event: p.event.to_string(),
            payload: p.payload.clone(),
        });
    }
    // No namespace once the server is closing: nobody is left to tell.
    if let Some(ns) = hub.io.of("/")
        && let Err(e) = ns.to(room).emit(p.event, &p.payload).await
    {
        tracing::warn!(room = %p.key.room(), error = %e, "timeline publish not delivered to every socket");
    }
    hub.cluster().is_none_or(|c| c.is_up())
}

async fn viewers(State(hub): State<Hub>, path: Segments) -> Result<impl IntoResponse> {
    let ticket = TicketId::parse(Some(&segment(&path, 0)))?;
    let viewers = hub.viewers(&ticket);
    Ok(axum::Json(json!({ "ticketId": ticket, "viewers": viewers })))
}

async fn stats(State(hub): State<Hub>) -> impl IntoResponse {
    let s = hub.stats();
    let mut body = json!({
        "nodeId": hub.node_id,
        "uptimeSeconds": hub.clock.uptime_seconds(),
        "connections": s.connections,
        "tickets": { "watched": s.presence.tickets, "viewers": s.presence.viewers },
        "timelines": { "rooms": s.timelines.rooms, "subscriptions": s.timelines.subscriptions },
    });
    if let Some(cluster) = hub.cluster() {
        // Presence is replicated: the registry already holds the whole
        // cluster's viewers, each agent x ticket once.
        let c = cluster.counts(hub.node_counts());
        let all = hub.presence_stats();
        body["cluster"] = json!({
            "nodes": c.nodes,
            "connections": c.connections,
            "tickets": { "watched": all.tickets, "viewers": all.viewers },
            "timelines": { "rooms": c.timeline_rooms, "subscriptions": c.timeline_subscriptions },
        });
    }
    axum::Json(body)
}
