//! Errors of the two HTTP listeners (contract §5 for the internal API; the
//! public one answers `NOT_FOUND`, `FORBIDDEN` and `OVER_CAPACITY` the same
//! way) and their JSON form: `{ "error": { "code", "message" } }`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ids::Invalid;

pub type Result<T, E = HttpError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidPayload(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not all arrive within `header_read_timeout` (the
    /// contract's table has no row for it; see docs/behaviour.md).
    #[error("the body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("{0}")]
    NotReady(String),
    /// A Socket.IO handshake while the node holds `max_connections`.
    #[error("this server is at capacity; retry later")]
    OverCapacity,
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::InvalidPayload(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotReady(_) | Self::OverCapacity => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "INVALID_JSON",
            Self::InvalidPayload(_) => "INVALID_PAYLOAD",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::RequestTimeout(_) => "REQUEST_TIMEOUT",
            Self::NotReady(_) => "NOT_READY",
            Self::OverCapacity => "OVER_CAPACITY",
        }
    }
}

impl From<Invalid> for HttpError {
    fn from(e: Invalid) -> Self {
        Self::InvalidPayload(e.0)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        (self.status(), Json(body)).into_response()
    }
}
