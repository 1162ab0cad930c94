//! Agent identity from a JWT in the Socket.IO handshake (`auth_mode = jwt`,
//! contract §1).
//!
//! The token is checked once, at connect: HS256 with a shared secret, or
//! RS256/ES256 with a public key, `exp` and `nbf` with 60 s of leeway, `sub`
//! required. The socket then acts as that agent; when the token expires the
//! server disconnects the socket.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::Value;
use socketioxide::socket::Sid;
use tokio::sync::Notify;

use crate::ids::{AgentId, AgentName};

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// Who a socket is, as its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub agent: AgentId,
    /// The token's `name`, when it has a valid one.
    pub name: Option<AgentName>,
    /// When the token stops being accepted (its `exp` plus the leeway), in
    /// seconds since the epoch.
    pub expires_at: Option<u64>,
}

/// A handshake without a valid token; the client sees `unauthorized`.
#[derive(Debug, thiserror::Error)]
#[error("unauthorized")]
pub struct Unauthorized(pub String);

/// Verifies tokens with the configured key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<Value>,
    name: Option<Value>,
    exp: Option<u64>,
}

impl JwtVerifier {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// RS256 or ES256, from a PEM public key (the key's type picks the
    /// algorithm, so a token can never choose a weaker one).
    pub fn from_public_pem(pem: &[u8]) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::new(key, Algorithm::RS256));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self::new(key, Algorithm::ES256));
        }
        Err("not a PEM RSA or EC (P-256) public key".into())
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // `exp` is checked when present; `sub` is checked below.
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        Self { key, validation }
    }

    /// Checks a token and returns who it names.
    pub fn verify(&self, token: &str) -> Result<TokenIdentity, Unauthorized> {
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|e| Unauthorized(e.to_string()))?;
        let claims = data.claims;
        let agent = AgentId::parse(claims.sub.as_ref()).map_err(|e| Unauthorized(format!("sub: {e}")))?;
        let name = AgentName::parse(claims.name.as_ref()).ok();
        Ok(TokenIdentity {
            agent,
            name,
            expires_at: claims.exp.map(|exp| exp.saturating_add(LEEWAY_SECS)),
        })
    }

    /// Reads `{ token }` from the handshake's `auth`, else takes
    /// `query_token` (the handshake query's `token`, which only
    /// socket.io-client 2.x may use), and verifies it.
    pub fn verify_handshake(
        &self,
        auth: Option<&Value>,
        query_token: Option<&str>,
    ) -> Result<TokenIdentity, Unauthorized> {
        let token = auth
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .or(query_token)
            .ok_or_else(|| Unauthorized("no auth.token in the handshake".into()))?;
        self.verify(token)
    }
}

/// When each socket's token expires, in order.
#[derive(Debug, Default)]
pub struct Expiries {
    queue: Mutex<BTreeSet<(u64, Sid)>>,
    changed: Notify,
}

impl Expiries {
    /// Resolves when an expiry was scheduled.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Disconnect `sid` at `at` (seconds since the epoch).
    pub fn schedule(&self, sid: Sid, at: u64) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).insert((at, sid));
        self.changed.notify_one();
    }

    /// The earliest expiry queued.
    pub fn next(&self) -> Option<u64> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .map(|e| e.0)
    }

    /// Takes the sockets whose expiry is `now` or earlier off the queue.
    pub fn due(&self, now: u64) -> Vec<Sid> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while queue.first().is_some_and(|e| e.0 <= now) {
            if let Some((_, sid)) = queue.pop_first() {
                due.push(sid);
            }
        }
        due
    }
}

pub fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap()
    }

    #[test]
    fn a_valid_token_names_the_agent() {
        let v = JwtVerifier::hs256(b"s3cret");
        let now = epoch_secs();
        let id = v
            .verify(&token(json!({ "sub": "7", "name": "Ada", "exp": now + 60 })))
            .unwrap();
        assert_eq!(id.agent.as_str(), "7");
        assert_eq!(id.name.unwrap().as_str(), "Ada");
        assert_eq!(id.expires_at, Some(now + 60 + LEEWAY_SECS));
        let id = v.verify(&token(json!({ "sub": 42 }))).unwrap();
        assert_eq!(id.agent.as_str(), "42");
        assert_eq!(id.name, None);
        assert_eq!(id.expires_at, None);
    }

    #[test]
    fn bad_tokens_are_refused() {
        let v = JwtVerifier::hs256(b"s3cret");
        let now = epoch_secs();
        assert!(v.verify(&token(json!({ "name": "Ada" }))).is_err(), "sub is required");
        assert!(v.verify(&token(json!({ "sub": "" }))).is_err());
        assert!(
            v.verify(&token(json!({ "sub": "7", "exp": now - 120 }))).is_err(),
            "expired"
        );
        assert!(
            v.verify(&token(json!({ "sub": "7", "exp": now - 30 }))).is_ok(),
            "within the leeway"
        );
        assert!(
            v.verify(&token(json!({ "sub": "7", "nbf": now + 120 }))).is_err(),
            "not yet valid"
        );
        assert!(
            v.verify(&token(json!({ "sub": "7", "nbf": now + 30 }))).is_ok(),
            "within the leeway"
        );
        assert!(
            JwtVerifier::hs256(b"other")
                .verify(&token(json!({ "sub": "7" })))
                .is_err(),
            "wrong secret"
        );
        assert!(v.verify("not.a.token").is_err());
        assert!(v.verify_handshake(None, None).is_err());
        assert!(v.verify_handshake(Some(&json!({ "token": 5 })), None).is_err());
    }

    #[test]
    fn a_query_token_counts_when_auth_has_none() {
        let v = JwtVerifier::hs256(b"s3cret");
        let good = token(json!({ "sub": "7" }));
        let from_query = v.verify_handshake(None, Some(&good)).unwrap();
        assert_eq!(from_query.agent.as_str(), "7");
        // `auth` wins over the query.
        let other = token(json!({ "sub": "8" }));
        let both = v
            .verify_handshake(Some(&json!({ "token": other })), Some(&good))
            .unwrap();
        assert_eq!(both.agent.as_str(), "8");
        assert!(v.verify_handshake(None, Some("not.a.token")).is_err());
    }

    #[test]
    fn expiries_come_due_in_order() {
        let e = Expiries::default();
        let (a, b) = (Sid::new(), Sid::new());
        e.schedule(a, 20);
        e.schedule(b, 10);
        assert_eq!(e.next(), Some(10));
        assert_eq!(e.due(15), vec![b]);
        assert_eq!(e.due(25), vec![a]);
        assert!(e.due(100).is_empty());
    }
}
