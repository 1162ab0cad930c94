//! The public listener: Socket.IO at `/socket.io/`, `GET /health`, the
//! browser-origin policy of contract §1, `max_connections` (§6) and, when
//! turned on, the agent console at `/demo/`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use socketioxide::layer::SocketIoLayer;
use tower::Layer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::demo::Console;
use crate::http_error::HttpError;
use crate::hub::Hub;

/// Where engineioxide serves (socketioxide's default path).
const SOCKET_IO_PATH: &str = "/socket.io";

/// The public routes around the Socket.IO layer; `console` is `Some` with `demo = true`.
pub fn router(
    socketio: SocketIoLayer,
    cors_origins: Option<Vec<String>>,
    hub: Hub,
    console: Option<Console>,
) -> Router {
    let mut plain = Router::new()
        .route("/health", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .fallback(|| async { HttpError::NotFound });
    if let Some(console) = console {
        plain = plain.merge(console.router());
    }
    // Layered once, as a service: `Router::layer` would call `layer()` per
    // route, and each call builds a separate Engine.IO server with its own
    // sessions (a polling client would then hit "Session ID unknown").
    let routes = Router::new()
        .fallback_service(socketio.layer(plain))
        .layer(middleware::map_request(detach_head))
        // Inside CORS, so that a browser sees the 503 and not a CORS error.
        .layer(middleware::from_fn_with_state(hub.clone(), limit_connections))
        // Outside the limit: a refused protocol takes no place.
        .layer(middleware::from_fn_with_state(hub.config().allow_eio3, refuse_eio3));
    match cors_origins {
        None => routes.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::any())
                .allow_methods([Method::GET, Method::POST]),
        ),
        Some(origins) => {
            let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
            let cors = CorsLayer::new()
                .allow_origin(AllowOrigin::list(allowed))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers(AllowHeaders::mirror_request())
                .allow_credentials(true);
            routes
                .layer(cors)
                .layer(middleware::from_fn_with_state(Arc::new(origins), refuse_foreign_origin))
        }
    }
}

/// A browser request from an origin off the list gets 403 and no CORS
/// headers, whatever it asks for (polling, websocket handshake, upgrade).
/// Requests without `Origin` (servers, native apps) pass.
async fn refuse_foreign_origin(State(origins): State<Arc<Vec<String>>>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| origins.iter().any(|a| a == o));
        if !allowed {
            return HttpError::Forbidden("origin not allowed".into()).into_response();
        }
    }
    next.run(request).await
}

/// Without `allow_eio3`, every Engine.IO v3 request (socket.io-client 2.x)
/// gets what socket.io answers when `allowEIO3` is off: 400
/// `{"code":5,"message":"Unsupported protocol version"}`. engineioxide, built
/// with v3 support, has no switch of its own for it.
async fn refuse_eio3(State(allow_eio3): State<bool>, request: Request, next: Next) -> Response {
    if !allow_eio3 && under_socket_io_path(request.uri()) && engine_io_version(request.uri()) == Some("3") {
        return unsupported_protocol_version();
    }
    next.run(request).await
}

/// The `EIO` query parameter: the Engine.IO protocol version the client speaks.
fn engine_io_version(uri: &Uri) -> Option<&str> {
    uri.query()?.split('&').find_map(|pair| pair.strip_prefix("EIO="))
}

/// Engine.IO's error body for code 5, as engine.io and engineioxide send it.
fn unsupported_protocol_version() -> Response {
    let body = r#"{"code":5,"message":"Unsupported protocol version"}"#;
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn under_socket_io_path(uri: &Uri) -> bool {
    uri.path()
        .strip_prefix(SOCKET_IO_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// An Engine.IO handshake (a GET without `sid`) gets 503 `OVER_CAPACITY`
/// while the node holds `max_connections`; socket.io-client then retries
/// with its reconnection backoff. A handshake let in that opens no session
/// gives its place back.
async fn limit_connections(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    if !is_handshake(&request) {
        return next.run(request).await;
    }
    if !hub.admit_handshake() {
        return HttpError::OverCapacity.into_response();
    }
    let response = next.run(request).await;
    // 200 with the open packet (polling) or 101 (websocket); anything else
    // is engineioxide refusing the request.
    let status = response.status();
    if !(status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS) {
        hub.handshake_failed();
    }
    response
}

/// Whether engineioxide would open a session for this request, as it tells
/// them apart: under its path, `GET`, no `sid` in the query.
fn is_handshake(request: &Request) -> bool {
    let uri = request.uri();
    let has_sid = uri
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("sid=")));
    request.method() == Method::GET && under_socket_io_path(uri) && !has_sid
}

/// Copies the request's URI, and the one header engineioxide reads, out of
/// hyper's connection buffer.
///
/// hyper parses the head as slices of its 8–16 KiB read buffer, and
/// engineioxide keeps the handshake's request head for the whole life of the
/// session, so each connection held that whole buffer: half of its memory.
/// Of the headers, engineioxide reads only `Sec-WebSocket-Key` (to answer a
/// websocket handshake), and nothing of Switchboard reads any once the
/// origin and capacity checks (outer layers) are done: keeping the rest
/// would cost about 600 bytes per connection for nothing.
async fn detach_head(mut request: Request) -> Request {
    if let Ok(uri) = Uri::try_from(request.uri().to_string()) {
        *request.uri_mut() = uri;
    }
    let shared = std::mem::take(request.headers_mut());
    if let Some(Ok(key)) = shared
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| HeaderValue::from_bytes(key.as_bytes()))
    {
        request.headers_mut().insert(header::SEC_WEBSOCKET_KEY, key);
    }
    request
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(method: Method, uri: &str) -> Request {
        Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn a_handshake_is_a_get_under_the_path_without_sid() {
        assert!(is_handshake(&request(
            Method::GET,
            "/socket.io/?EIO=4&transport=polling"
        )));
        assert!(is_handshake(&request(
            Method::GET,
            "/socket.io?EIO=4&transport=websocket"
        )));
        // The polling session's requests and its upgrade to a websocket.
        assert!(!is_handshake(&request(
            Method::GET,
            "/socket.io/?EIO=4&transport=polling&sid=abc"
        )));
        assert!(!is_handshake(&request(
            Method::GET,
            "/socket.io/?sid=abc&EIO=4&transport=websocket"
        )));
        assert!(!is_handshake(&request(
            Method::POST,
            "/socket.io/?EIO=4&transport=polling"
        )));
        assert!(!is_handshake(&request(Method::GET, "/socket.iox/?EIO=4")));
        assert!(!is_handshake(&request(Method::GET, "/health")));
    }

    #[test]
    fn the_engine_io_version_is_the_eio_parameter() {
        let version = |uri: &str| engine_io_version(&uri.parse().unwrap()).map(str::to_owned);
        assert_eq!(version("/socket.io/?EIO=3&transport=polling").as_deref(), Some("3"));
        assert_eq!(version("/socket.io/?transport=websocket&EIO=4").as_deref(), Some("4"));
        assert_eq!(version("/socket.io/?transport=websocket"), None);
        assert_eq!(version("/socket.io/"), None);
    }
}
