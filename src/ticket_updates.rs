//! "This ticket was updated" (contract §3.3): what a backend tells
//! Switchboard about a ticket, validated from the body of
//! `POST /v1/tickets/{ticketId}/events`, and carried to every node.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, AgentName, Invalid, TicketId, TicketVersion, payload_object};
use crate::presence::Millis;

const MAX_KIND_CHARS: usize = 64;
const MAX_SUMMARY_CHARS: usize = 500;

/// One change of a ticket made elsewhere (a reply sent, a status changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketUpdate {
    pub ticket: TicketId,
    /// `reply`, `status`, ...: `^[a-z][a-z0-9_.-]{0,63}$`.
    pub kind: String,
    /// Who made the change; their sockets are not told.
    pub by: Option<UpdatedBy>,
    pub summary: Option<String>,
    pub version: Option<TicketVersion>,
    /// When the receiving node accepted it; the same on every node.
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatedBy {
    pub agent: AgentId,
    pub name: Option<AgentName>,
}

impl TicketUpdate {
    /// Validates a body `{ kind, by?, summary?, version? }` (each optional
    /// field may be null; unknown fields are ignored).
    pub fn parse(ticket: TicketId, body: &Value, at: Millis) -> Result<Self, Invalid> {
        let body = payload_object(body).map_err(|_| Invalid("body must be a JSON object".into()))?;
        let kind = match body.get("kind") {
            Some(Value::String(k)) if is_kind(k) => k.clone(),
            None | Some(Value::Null) => return Err(Invalid("kind is required".into())),
            Some(_) => {
                return Err(Invalid(format!(
                    "kind must be 1 to {MAX_KIND_CHARS} characters of [a-z0-9_.-] starting with a letter"
                )));
            }
        };
        let by = match body.get("by") {
            None | Some(Value::Null) => None,
            Some(Value::Object(by)) => Some(UpdatedBy {
                agent: AgentId::parse(by.get(AgentId::FIELD)).map_err(|e| Invalid(format!("by.{e}")))?,
                name: match by.get("agentName") {
                    None | Some(Value::Null) => None,
                    given => Some(AgentName::parse(given).map_err(|e| Invalid(format!("by.{e}")))?),
                },
            }),
            Some(_) => return Err(Invalid("by must be { agentId, agentName? } or null".into())),
        };
        let summary = match body.get("summary") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= MAX_SUMMARY_CHARS => Some(s.clone()),
            Some(_) => {
                return Err(Invalid(format!(
                    "summary must be a string of at most {MAX_SUMMARY_CHARS} characters, or null"
                )));
            }
        };
        let version = match body.get("version") {
            None | Some(Value::Null) => None,
            given => Some(TicketVersion::parse(given)?),
        };
        Ok(Self {
            ticket,
            kind,
            by,
            summary,
            version,
            at,
        })
    }
}

fn is_kind(k: &str) -> bool {
    let bytes = k.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && bytes.len() <= MAX_KIND_CHARS
        && bytes[1..]
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<TicketUpdate, Invalid> {
        TicketUpdate::parse(TicketId::parse(Some(&json!(42))).unwrap(), &body, 7)
    }

    #[test]
    fn the_contracts_example_parses() {
        let u =
            parse(json!({"kind": "reply", "by": {"agentId": 8, "agentName": "Bob"}, "summary": "s", "version": 12}))
                .unwrap();
        assert_eq!(u.kind, "reply");
        let by = u.by.unwrap();
        assert_eq!((by.agent.as_str(), by.name.unwrap().as_str()), ("8", "Bob"));
        assert_eq!(u.summary.as_deref(), Some("s"));
        assert_eq!(u.version.unwrap().as_str(), "12");
        assert_eq!(u.at, 7);
    }

    #[test]
    fn only_kind_is_required() {
        let u = parse(json!({"kind": "status", "by": null, "summary": null, "version": null, "extra": 1})).unwrap();
        assert_eq!((u.by, u.summary, u.version), (None, None, None));
        let u = parse(json!({"kind": "a", "by": {"agentId": "8"}})).unwrap();
        assert_eq!(u.by.unwrap().name, None);
    }

    #[test]
    fn bad_fields_are_refused() {
        for bad in [
            json!({}),
            json!([]),
            json!("reply"),
            json!({"kind": null}),
            json!({"kind": ""}),
            json!({"kind": "Reply"}),
            json!({"kind": "1reply"}),
            json!({"kind": "re ply"}),
            json!({"kind": format!("a{}", "b".repeat(64))}),
            json!({"kind": 3}),
            json!({"kind": "reply", "by": "8"}),
            json!({"kind": "reply", "by": {}}),
            json!({"kind": "reply", "by": {"agentId": ""}}),
            json!({"kind": "reply", "by": {"agentId": "8", "agentName": " "}}),
            json!({"kind": "reply", "summary": "x".repeat(501)}),
            json!({"kind": "reply", "summary": 5}),
            json!({"kind": "reply", "version": 1.5}),
            json!({"kind": "reply", "version": ""}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        assert!(parse(json!({"kind": format!("a{}", "b.-_9".repeat(12)), "summary": "x".repeat(500)})).is_ok());
    }
}
