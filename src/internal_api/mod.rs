//! The internal HTTP API for backend services (contract §5), served on its
//! own listener so it is never exposed with the public Socket.IO port.

mod deadline;
pub mod openapi;
pub mod publish;

use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Value, json};

use subtle::ConstantTimeEq;

use crate::http_error::{HttpError, Result};
use crate::hub::{Hub, Reach};
use crate::ids::{ItemId, TicketId, TimelineKey};
use crate::ticket_updates::TicketUpdate;
use crate::timelines::TimelineEvent;
use publish::timeline_key;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Probes and metrics: no token, whatever the configuration.
    Open,
    /// Needs `Authorization: Bearer <internal_token>` when a token is set.
    Token,
}

/// One route as the router serves it (path in axum's syntax, which is also
/// OpenAPI's: `{name}` for a path parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// Every route of the internal API. The router is built from this list and
/// nothing else, so `openapi`'s test, which holds the list against the
/// OpenAPI document, fails for a route added here without documenting it.
fn routes() -> Vec<(Route, MethodRouter<Hub>)> {
    use Access::{Open, Token};
    vec![
        route(Open, Method::GET, "/health", health),
        route(Open, Method::GET, "/ready", ready),
        route(Open, Method::GET, "/metrics", metrics),
        route(Token, Method::GET, "/v1/openapi.json", openapi::serve),
        route(
            Token,
            Method::POST,
            "/v1/timeline/{entityType}/{entityId}/items",
            new_item,
        ),
        route(
            Token,
            Method::PUT,
            "/v1/timeline/{entityType}/{entityId}/items/{itemId}",
            item_updated,
        ),
        route(
            Token,
            Method::POST,
            "/v1/timeline/{entityType}/{entityId}/refresh",
            refresh,
        ),
        route(Token, Method::POST, "/v1/timeline/batch", batch),
        route(Token, Method::GET, "/v1/tickets/{ticketId}/viewers", viewers),
        route(Token, Method::POST, "/v1/tickets/{ticketId}/events", ticket_event),
        route(Token, Method::GET, "/v1/stats", stats),
    ]
}

fn route<H, T>(access: Access, method: Method, path: &'static str, handler: H) -> (Route, MethodRouter<Hub>)
where
    H: Handler<T, Hub>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    (Route { method, path, access }, on(filter, handler))
}

/// The internal API's routes, with the hub as state.
pub fn router(hub: Hub) -> Router {
    let mut router = Router::new();
    for (route, method_router) in routes() {
        let method_router = match route.access {
            Access::Open => method_router,
            Access::Token => method_router.route_layer(middleware::from_fn_with_state(hub.clone(), require_token)),
        };
        router = router.route(route.path, method_router);
    }
    router
        .fallback(|| async { HttpError::NotFound })
        .method_not_allowed_fallback(|| async { HttpError::MethodNotAllowed })
        .layer(middleware::map_request_with_state(hub.clone(), deadline::bound_body))
        .layer(middleware::from_fn_with_state(hub.clone(), count_requests))
        .with_state(hub)
}

/// When a request's head had arrived: the start of the publish latency
/// (`switchboard_publish_duration_seconds`).
#[derive(Debug, Clone, Copy)]
struct Arrival(Instant);

async fn count_requests(State(hub): State<Hub>, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Arrival(Instant::now()));
    let response = next.run(request).await;
    hub.metrics()
        .internal_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn require_token(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    if let Some(token) = &hub.config().internal_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compared in constant time, so response timing does not reveal how
        // much of a guessed token was right.
        if !given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes()))) {
            return HttpError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn ready(State(hub): State<Hub>) -> Result<impl IntoResponse> {
    if !hub.is_serving() {
        return Err(HttpError::NotReady("not serving".into()));
    }
    if hub.cluster().is_some_and(|c| !c.is_up()) {
        return Err(HttpError::NotReady("redis is not reachable".into()));
    }
    Ok(axum::Json(json!({ "status": "ready" })))
}

async fn metrics(State(hub): State<Hub>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        hub.metrics_text(),
    )
}

/// Path parameters, percent-decoded; one that does not decode to UTF-8 is
/// a bad identifier (`INVALID_PAYLOAD`), not axum's plain-text 400.
struct PathParams<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S> for PathParams<T> {
    type Rejection = HttpError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|_| HttpError::InvalidPayload("malformed path segment".into()))
    }
}

/// The timeline a path names.
fn timeline(entity_type: String, entity_id: String) -> Result<TimelineKey> {
    Ok(timeline_key(
        Some(&Value::String(entity_type)),
        Some(&Value::String(entity_id)),
    )?)
}

/// Reads the body as JSON within `max_body` and its deadline; `None` when
/// it is empty.
async fn read_json(hub: &Hub, body: Body) -> Result<Option<Value>> {
    let max_body = hub.config().max_body;
    let bytes = to_bytes(body, max_body).await.map_err(|e| {
        if deadline::timed_out(&e) {
            HttpError::RequestTimeout(hub.config().header_read_timeout)
        } else {
            HttpError::PayloadTooLarge(max_body)
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| HttpError::InvalidJson(e.to_string()))
}

async fn required_json(hub: &Hub, body: Body) -> Result<Value> {
    read_json(hub, body)
        .await?
        .ok_or_else(|| HttpError::InvalidJson("a JSON body is required".into()))
}

async fn new_item(
    State(hub): State<Hub>,
    Extension(arrival): Extension<Arrival>,
    PathParams((entity_type, entity_id)): PathParams<(String, String)>,
    body: Body,
) -> Result<Response> {
    let item = required_json(&hub, body).await?;
    let key = timeline(entity_type, entity_id)?;
    publish_one(&hub, arrival, TimelineEvent::new_item(key, Some(&item))?).await
}

async fn item_updated(
    State(hub): State<Hub>,
    Extension(arrival): Extension<Arrival>,
    PathParams((entity_type, entity_id, item_id)): PathParams<(String, String, String)>,
    body: Body,
) -> Result<Response> {
    let item = required_json(&hub, body).await?;
    let key = timeline(entity_type, entity_id)?;
    let item_id = ItemId::parse(Some(&Value::String(item_id)))?;
    publish_one(&hub, arrival, TimelineEvent::item_updated(key, item_id, Some(&item))?).await
}

async fn refresh(
    State(hub): State<Hub>,
    Extension(arrival): Extension<Arrival>,
    PathParams((entity_type, entity_id)): PathParams<(String, String)>,
    body: Body,
) -> Result<Response> {
    let body = read_json(&hub, body).await?;
    let reason = match &body {
        None => None,
        Some(Value::Object(o)) => o.get("reason"),
        Some(_) => {
            return Err(HttpError::InvalidPayload(
                "body must be {\"reason\": string | null}, {} or empty".into(),
            ));
        }
    };
    let key = timeline(entity_type, entity_id)?;
    publish_one(&hub, arrival, TimelineEvent::refresh(key, reason)?).await
}

async fn batch(State(hub): State<Hub>, Extension(arrival): Extension<Arrival>, body: Body) -> Result<Response> {
    let body = required_json(&hub, body).await?;
    let events = publish::batch(&body)?;
    for event in &events {
        check_allowed(&hub, &event.key)?;
    }
    let published = hub.publish(&events).await;
    for event in &events {
        hub.metrics()
            .publish_handed_off(event.change.kind(), arrival.0.elapsed());
    }
    let mut reply = json!({ "accepted": events.len() });
    if published.reach == Reach::ThisNodeOnly {
        reply["partial"] = Value::Bool(true);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(reply)).into_response())
}

async fn publish_one(hub: &Hub, arrival: Arrival, event: TimelineEvent) -> Result<Response> {
    check_allowed(hub, &event.key)?;
    let published = hub.publish(std::slice::from_ref(&event)).await;
    hub.metrics()
        .publish_handed_off(event.change.kind(), arrival.0.elapsed());
    let position = published.positions.first().and_then(Option::as_ref);
    let mut reply = json!({
        "delivered": true,
        "offset": position.map(|p| p.offset),
        "epoch": position.map(|p| &*p.epoch),
    });
    if published.reach == Reach::ThisNodeOnly {
        reply["partial"] = Value::Bool(true);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(reply)).into_response())
}

/// `FORBIDDEN` for an entity type off the configured allow-list.
fn check_allowed(hub: &Hub, key: &TimelineKey) -> Result<()> {
    if hub.config().allows(&key.entity_type) {
        Ok(())
    } else {
        Err(HttpError::Forbidden(format!(
            "entity type \"{}\" is not allowed",
            key.entity_type
        )))
    }
}

async fn viewers(State(hub): State<Hub>, PathParams(ticket): PathParams<String>) -> Result<impl IntoResponse> {
    let ticket = TicketId::parse(Some(&Value::String(ticket)))?;
    let viewers = hub.viewers(&ticket);
    Ok(axum::Json(json!({ "ticketId": ticket, "viewers": viewers })))
}

/// `POST /v1/tickets/{ticketId}/events` (§3.3): `ticket:updated` to the
/// ticket's viewers on every node; `viewers` is how many agents that
/// notified (see [`Hub::ticket_updated`]).
async fn ticket_event(State(hub): State<Hub>, PathParams(ticket): PathParams<String>, body: Body) -> Result<Response> {
    let body = required_json(&hub, body).await?;
    let ticket = TicketId::parse(Some(&Value::String(ticket)))?;
    let update = TicketUpdate::parse(ticket, &body, hub.clock().now_ms())?;
    let (reach, notified) = hub.ticket_updated(&update);
    let mut reply = json!({ "delivered": true, "viewers": notified });
    if reach == Reach::ThisNodeOnly {
        reply["partial"] = Value::Bool(true);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(reply)).into_response())
}

async fn stats(State(hub): State<Hub>) -> impl IntoResponse {
    let s = hub.stats();
    let mut body = json!({
        "nodeId": hub.node_id(),
        "uptimeSeconds": hub.clock().uptime_seconds(),
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
