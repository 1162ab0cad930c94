//! Errors a client event can end in (contract §2), with their stable codes.

use serde_json::{Value, json};

use crate::ids::Invalid;

/// Why a client event was refused. `code()` is the contract's code; the
/// message is meant for the developer reading the client's console.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    InvalidPayload(String),
    #[error("{0}")]
    NotViewing(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("more than {0} events per second")]
    RateLimited(u32),
    #[error("unknown event {0}")]
    UnknownEvent(String),
}

impl ClientError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPayload(_) => "INVALID_PAYLOAD",
            Self::NotViewing(_) => "NOT_VIEWING",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::UnknownEvent(_) => "UNKNOWN_EVENT",
        }
    }

    /// The ack payload: `{ ok: false, error: { code, message } }`.
    pub fn to_ack(&self) -> Value {
        json!({ "ok": false, "error": { "code": self.code(), "message": self.to_string() } })
    }

    /// The `ticket:error` / `timeline:error` payload for a client without ack.
    pub fn to_error_event(&self, event: &str) -> Value {
        json!({ "event": event, "code": self.code(), "message": self.to_string() })
    }
}

impl From<Invalid> for ClientError {
    fn from(e: Invalid) -> Self {
        Self::InvalidPayload(e.0)
    }
}
