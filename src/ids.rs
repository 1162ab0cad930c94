//! Identifiers validated at the edge (contract §2, "Identifiers").
//!
//! Once parsed, the rest of the code cannot hold an invalid id: every newtype
//! here is built only through `parse`, from the raw JSON a client or a backend
//! sent.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Why a value was refused; the text goes into the `INVALID_PAYLOAD` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const MAX_ID_CHARS: usize = 128;
const MAX_NAME_CHARS: usize = 200;
/// ±(2^53−1): integers JavaScript represents exactly.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

fn is_control(c: char) -> bool {
    // Unicode category Cc: C0, DEL and C1.
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Parses an identifier: a non-empty string or an integral number within
/// ±(2^53−1), at most 128 code points, no control characters.
fn identifier(value: Option<&Value>, field: &str) -> Result<Arc<str>, Invalid> {
    let text = match value {
        None | Some(Value::Null) => return Err(Invalid(format!("{field} is required"))),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => i.to_string(),
            // A float with an integral value (e.g. 7.0) is still an integer to JavaScript.
            None if n
                .as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64) =>
            {
                (n.as_f64().unwrap_or_default() as i64).to_string()
            }
            _ => {
                return Err(Invalid(format!("{field} must be a string or a safe integer")));
            }
        },
        Some(_) => return Err(Invalid(format!("{field} must be a string or an integer"))),
    };
    if text.is_empty() {
        return Err(Invalid(format!("{field} must not be empty")));
    }
    if text.chars().count() > MAX_ID_CHARS {
        return Err(Invalid(format!("{field} is longer than {MAX_ID_CHARS} characters")));
    }
    if text.chars().any(is_control) {
        return Err(Invalid(format!("{field} contains control characters")));
    }
    Ok(text.into())
}

macro_rules! identifier_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        #[allow(dead_code, reason = "generated for every identifier type; not every type uses each item")]
        impl $name {
            /// Field name used in error messages and payloads.
            pub const FIELD: &'static str = $field;

            /// Parses the raw JSON value of this field.
            pub fn parse(value: Option<&Value>) -> Result<Self, Invalid> {
                identifier(value, $field).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::parse(Some(&Value::deserialize(d)?)).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier_type!(
    /// A helpdesk ticket.
    TicketId, "ticketId"
);
identifier_type!(
    /// An agent (a person, with any number of sockets).
    AgentId, "agentId"
);
identifier_type!(
    /// The id of a CRM entity whose timeline is followed.
    EntityId, "entityId"
);
identifier_type!(
    /// The id of a timeline item.
    ItemId, "itemId"
);

identifier_type!(
    /// A backend's own version of a ticket (`ticket:updated`'s `version`).
    TicketVersion, "version"
);

/// An agent's display name: 1 to 200 code points, no control characters,
/// not only white space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AgentName(Arc<str>);

impl AgentName {
    pub fn parse(value: Option<&Value>) -> Result<Self, Invalid> {
        let s = match value {
            None | Some(Value::Null) => return Err(Invalid("agentName is required".into())),
            Some(Value::String(s)) => s,
            Some(_) => return Err(Invalid("agentName must be a string".into())),
        };
        if s.is_empty() {
            return Err(Invalid("agentName must not be empty".into()));
        }
        if s.chars().count() > MAX_NAME_CHARS {
            return Err(Invalid(format!("agentName is longer than {MAX_NAME_CHARS} characters")));
        }
        if s.chars().any(is_control) {
            return Err(Invalid("agentName contains control characters".into()));
        }
        if s.chars().all(char::is_whitespace) {
            return Err(Invalid("agentName must not be only white space".into()));
        }
        Ok(Self(s.as_str().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The agent's id as its display name, for a token without `name`.
    pub fn of_agent(agent: &AgentId) -> Self {
        Self(agent.0.clone())
    }
}

impl<'de> Deserialize<'de> for AgentName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(Some(&Value::deserialize(d)?)).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A timeline entity type: `^[a-z][a-z0-9_-]{0,31}$`. Whether it is on the
/// allow-list is a separate question (`FORBIDDEN`, checked after all else).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EntityType(Arc<str>);

impl EntityType {
    pub fn parse(value: Option<&Value>) -> Result<Self, Invalid> {
        match value {
            None | Some(Value::Null) => Err(Invalid("entityType is required".into())),
            Some(Value::String(s)) if Self::is_valid(s) => Ok(Self(s.as_str().into())),
            Some(_) => Err(Invalid("entityType must match ^[a-z][a-z0-9_-]{0,31}$".into())),
        }
    }

    fn is_valid(s: &str) -> bool {
        let bytes = s.as_bytes();
        matches!(bytes.first(), Some(b'a'..=b'z'))
            && bytes.len() <= 32
            && bytes[1..]
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EntityType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(Some(&Value::deserialize(d)?)).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The device a socket views a ticket from (`ticket:view`'s `device`, v2):
/// the `entityType` pattern; omitted or null means `"web"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Device(Arc<str>);

impl Device {
    pub fn parse(value: Option<&Value>) -> Result<Self, Invalid> {
        match value {
            None | Some(Value::Null) => Ok(Self::default()),
            Some(Value::String(s)) if EntityType::is_valid(s) => Ok(Self(s.as_str().into())),
            Some(_) => Err(Invalid("device must match ^[a-z][a-z0-9_-]{0,31}$".into())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Device {
    /// `"web"`, one allocation shared by every socket that names no device.
    fn default() -> Self {
        static WEB: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "web".into());
        Self(WEB.clone())
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(Some(&Value::deserialize(d)?)).map_err(serde::de::Error::custom)
    }
}

/// One timeline: an entity type and id, also the name of its room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineKey {
    pub entity_type: EntityType,
    pub entity_id: EntityId,
}

impl TimelineKey {
    /// The Socket.IO room of this timeline: `timeline:{entityType}:{entityId}`.
    pub fn room(&self) -> String {
        format!("timeline:{}:{}", self.entity_type, self.entity_id)
    }
}

/// Where a recovering client left a timeline: `since: { offset, epoch }`
/// (an integer ≥ 0 and a non-empty string of at most 128 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    pub offset: u64,
    pub epoch: String,
}

impl Since {
    /// Parses the optional `since` field; `null` is the same as absent.
    pub fn parse(value: Option<&Value>) -> Result<Option<Self>, Invalid> {
        let since = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(Invalid("since must be { offset, epoch }".into())),
        };
        let offset = match since.get("offset") {
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(f))
                    .map(|f| f as u64)
            }),
            _ => None,
        }
        .filter(|o| *o <= MAX_SAFE_INTEGER as u64)
        .ok_or_else(|| Invalid("since.offset must be an integer >= 0".into()))?;
        let epoch = match since.get("epoch") {
            Some(Value::String(e)) if !e.is_empty() && e.chars().count() <= MAX_ID_CHARS => e.clone(),
            _ => {
                return Err(Invalid(format!(
                    "since.epoch must be a non-empty string of at most {MAX_ID_CHARS} characters"
                )));
            }
        };
        Ok(Some(Self { offset, epoch }))
    }
}

/// The Socket.IO room of a ticket: `ticket:{ticketId}`.
pub fn ticket_room(ticket: &TicketId) -> String {
    format!("ticket:{ticket}")
}

/// The Socket.IO room of a ticket's watchers (`tickets:watch`, v2):
/// `watchers:{ticketId}`, apart from the viewers' room so that watching
/// brings only `viewers:updated`.
pub fn watchers_room(ticket: &TicketId) -> String {
    format!("watchers:{ticket}")
}

/// The payload must be a JSON object; returns it.
pub fn payload_object(value: &Value) -> Result<&serde_json::Map<String, Value>, Invalid> {
    value
        .as_object()
        .ok_or_else(|| Invalid("payload must be an object".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ticket(v: Value) -> Result<TicketId, Invalid> {
        TicketId::parse(Some(&v))
    }

    #[test]
    fn integers_become_decimal_strings() {
        assert_eq!(ticket(json!(42)).unwrap().as_str(), "42");
        assert_eq!(ticket(json!(-7)).unwrap().as_str(), "-7");
        assert_eq!(ticket(json!(9007199254740991i64)).unwrap().as_str(), "9007199254740991");
        assert_eq!(ticket(json!(3.0)).unwrap().as_str(), "3");
    }

    #[test]
    fn unsafe_or_fractional_numbers_are_refused() {
        assert!(ticket(json!(9007199254740992i64)).is_err());
        assert!(ticket(json!(-9007199254740992i64)).is_err());
        assert!(ticket(json!(1.5)).is_err());
        assert!(ticket(json!(1e300)).is_err());
    }

    #[test]
    fn strings_are_checked_for_length_and_control_characters() {
        assert!(ticket(json!("")).is_err());
        assert!(ticket(json!("a".repeat(128))).is_ok());
        assert!(ticket(json!("a".repeat(129))).is_err());
        // 128 code points of 4 UTF-8 bytes each are fine.
        assert!(ticket(json!("😀".repeat(128))).is_ok());
        assert!(ticket(json!("a\u{0}b")).is_err());
        assert!(ticket(json!("a\u{85}b")).is_err());
        assert!(ticket(json!("a\u{7f}")).is_err());
        assert!(ticket(json!("tab\tinside")).is_err());
    }

    #[test]
    fn other_types_and_missing_are_refused() {
        assert!(ticket(json!(true)).is_err());
        assert!(ticket(json!({})).is_err());
        assert!(ticket(json!([])).is_err());
        assert!(ticket(Value::Null).is_err());
        assert!(TicketId::parse(None).is_err());
    }

    #[test]
    fn agent_names() {
        let name = |v: Value| AgentName::parse(Some(&v));
        assert!(name(json!("Ada")).is_ok());
        assert!(name(json!("")).is_err());
        assert!(name(json!("   ")).is_err());
        assert!(name(json!("\u{3000}")).is_err());
        assert!(name(json!("x".repeat(200))).is_ok());
        assert!(name(json!("x".repeat(201))).is_err());
        assert!(name(json!("A\nB")).is_err());
        assert!(name(json!(7)).is_err());
    }

    #[test]
    fn entity_types_follow_the_pattern() {
        let et = |v: Value| EntityType::parse(Some(&v));
        assert!(et(json!("contact")).is_ok());
        assert!(et(json!("a")).is_ok());
        assert!(et(json!("deal_2-x")).is_ok());
        assert!(et(json!(format!("a{}", "b".repeat(31)))).is_ok());
        assert!(et(json!(format!("a{}", "b".repeat(32)))).is_err());
        assert!(et(json!("Contact")).is_err());
        assert!(et(json!("1abc")).is_err());
        assert!(et(json!("")).is_err());
        assert!(et(json!("a b")).is_err());
        assert!(et(json!(3)).is_err());
    }

    #[test]
    fn devices_follow_the_entity_type_pattern_and_default_to_web() {
        let d = |v: Option<Value>| Device::parse(v.as_ref()).map(|d| d.as_str().to_string());
        assert_eq!(d(None), Ok("web".into()));
        assert_eq!(d(Some(Value::Null)), Ok("web".into()));
        assert_eq!(d(Some(json!("mobile"))), Ok("mobile".into()));
        assert!(d(Some(json!("Mobile"))).is_err());
        assert!(d(Some(json!(""))).is_err());
        assert!(d(Some(json!(1))).is_err());
    }

    #[test]
    fn since_is_an_offset_and_an_epoch() {
        let ok = |v: serde_json::Value| Since::parse(Some(&v)).map(|s| s.map(|s| (s.offset, s.epoch)));
        assert_eq!(ok(json!({"offset": 3, "epoch": "e"})), Ok(Some((3, "e".into()))));
        assert_eq!(ok(json!({"offset": 0.0, "epoch": "e"})), Ok(Some((0, "e".into()))));
        assert_eq!(Since::parse(None), Ok(None));
        assert_eq!(ok(json!(null)), Ok(None));
        for bad in [
            json!({"offset": -1, "epoch": "e"}),
            json!({"offset": 1.5, "epoch": "e"}),
            json!({"offset": "3", "epoch": "e"}),
            json!({"epoch": "e"}),
            json!({"offset": 3}),
            json!({"offset": 3, "epoch": ""}),
            json!({"offset": 3, "epoch": 7}),
            json!({"offset": 3, "epoch": "x".repeat(129)}),
            json!([3, "e"]),
            json!("3"),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad}");
        }
    }
}
