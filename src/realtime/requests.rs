//! Client events of the contract, parsed from raw JSON (§2–§4).
//!
//! Payloads arrive as `serde_json::Value` and are validated here rather than
//! by serde derive: a typed extractor that fails makes socketioxide skip the
//! handler silently, and every bad payload must get its error code.

use serde_json::Value;

use crate::auth::TokenIdentity;
use crate::error::ClientError;
use crate::ids::{AgentId, AgentName, EntityId, EntityType, Since, TicketId, TimelineKey, payload_object};

/// The client events the contract defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    View,
    Typing,
    StopTyping,
    Leave,
    Subscribe,
    Unsubscribe,
}

impl EventName {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ticket:view" => Self::View,
            "ticket:typing" => Self::Typing,
            "ticket:stop_typing" => Self::StopTyping,
            "ticket:leave" => Self::Leave,
            "timeline:subscribe" => Self::Subscribe,
            "timeline:unsubscribe" => Self::Unsubscribe,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "ticket:view",
            Self::Typing => "ticket:typing",
            Self::StopTyping => "ticket:stop_typing",
            Self::Leave => "ticket:leave",
            Self::Subscribe => "timeline:subscribe",
            Self::Unsubscribe => "timeline:unsubscribe",
        }
    }

    /// Where a failure goes when the client asked for no ack.
    pub fn error_event(self) -> &'static str {
        match self {
            Self::Subscribe | Self::Unsubscribe => "timeline:error",
            _ => "ticket:error",
        }
    }
}

/// A validated client event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    View {
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
    },
    Typing {
        ticket: TicketId,
        agent: AgentId,
    },
    StopTyping {
        ticket: TicketId,
        agent: AgentId,
    },
    Leave {
        ticket: TicketId,
        agent: AgentId,
    },
    Subscribe {
        key: TimelineKey,
        since: Option<Since>,
    },
    Unsubscribe(TimelineKey),
}

impl Request {
    /// Validates a payload. With a token (`auth_mode = jwt`) the agent is the
    /// token's: `agentId` may be omitted, and one that differs is
    /// `FORBIDDEN` (checked after every `INVALID_PAYLOAD` rule).
    pub fn parse(event: EventName, payload: &Value, token: Option<&TokenIdentity>) -> Result<Self, ClientError> {
        let p = payload_object(payload)?;
        let timeline = || -> Result<TimelineKey, ClientError> {
            Ok(TimelineKey {
                entity_type: EntityType::parse(p.get("entityType"))?,
                entity_id: EntityId::parse(p.get(EntityId::FIELD))?,
            })
        };
        let ticket_event = |with_name: bool| -> Result<(TicketId, AgentId, Option<AgentName>), ClientError> {
            let ticket = TicketId::parse(p.get(TicketId::FIELD))?;
            // With a token, an omitted (or null) agentId or agentName means
            // the token's; without one, both are required.
            let given_agent = match p.get(AgentId::FIELD) {
                None | Some(Value::Null) if token.is_some() => None,
                given => Some(AgentId::parse(given)?),
            };
            let given_name = match p.get("agentName") {
                _ if !with_name => None,
                None | Some(Value::Null) if token.is_some() => None,
                given => Some(AgentName::parse(given)?),
            };
            let token = match (token, given_agent.clone()) {
                (Some(token), _) => token,
                (None, Some(agent)) => return Ok((ticket, agent, given_name)),
                (None, None) => return Err(ClientError::InvalidPayload("agentId is required".into())),
            };
            if given_agent.as_ref().is_some_and(|a| *a != token.agent) {
                return Err(ClientError::Forbidden(format!(
                    "agentId differs from the authenticated agent {}",
                    token.agent
                )));
            }
            let name = token
                .name
                .clone()
                .or(given_name)
                .unwrap_or_else(|| AgentName::of_agent(&token.agent));
            Ok((ticket, token.agent.clone(), Some(name)))
        };
        Ok(match event {
            EventName::View => {
                let (ticket, agent, name) = ticket_event(true)?;
                let name = name.ok_or_else(|| ClientError::InvalidPayload("agentName is required".into()))?;
                Self::View { ticket, agent, name }
            }
            EventName::Typing => {
                let (ticket, agent, _) = ticket_event(false)?;
                Self::Typing { ticket, agent }
            }
            EventName::StopTyping => {
                let (ticket, agent, _) = ticket_event(false)?;
                Self::StopTyping { ticket, agent }
            }
            EventName::Leave => {
                let (ticket, agent, _) = ticket_event(false)?;
                Self::Leave { ticket, agent }
            }
            EventName::Subscribe => Self::Subscribe {
                key: timeline()?,
                since: Since::parse(p.get("since"))?,
            },
            EventName::Unsubscribe => Self::Unsubscribe(timeline()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(event: EventName, payload: Value) -> &'static str {
        Request::parse(event, &payload, None).map_or_else(|e| e.code(), |_| "ok")
    }

    #[test]
    fn view_needs_ticket_agent_and_name() {
        assert_eq!(
            code(
                EventName::View,
                json!({"ticketId": 1, "agentId": "7", "agentName": "Ada"})
            ),
            "ok"
        );
        assert_eq!(
            code(EventName::View, json!({"ticketId": 1, "agentId": "7"})),
            "INVALID_PAYLOAD"
        );
        assert_eq!(code(EventName::View, json!("ticket 1")), "INVALID_PAYLOAD");
        assert_eq!(code(EventName::View, json!([1, 2])), "INVALID_PAYLOAD");
        assert_eq!(code(EventName::View, Value::Null), "INVALID_PAYLOAD");
        assert_eq!(
            code(
                EventName::View,
                json!({"ticketId": 1, "agentId": "7", "agentName": "Ada", "extra": true})
            ),
            "ok"
        );
    }

    #[test]
    fn typing_does_not_need_a_name() {
        assert_eq!(code(EventName::Typing, json!({"ticketId": "1", "agentId": 7})), "ok");
        assert_eq!(code(EventName::Leave, json!({"ticketId": "1"})), "INVALID_PAYLOAD");
    }

    #[test]
    fn timelines_need_a_valid_type_and_id() {
        let r = Request::parse(
            EventName::Subscribe,
            &json!({"entityType": "deal", "entityId": 5}),
            None,
        )
        .unwrap();
        let Request::Subscribe { key, since: None } = r else {
            panic!()
        };
        assert_eq!(key.room(), "timeline:deal:5");
        assert_eq!(
            code(EventName::Subscribe, json!({"entityType": "Deal", "entityId": 5})),
            "INVALID_PAYLOAD"
        );
        assert_eq!(
            code(EventName::Unsubscribe, json!({"entityType": "deal"})),
            "INVALID_PAYLOAD"
        );
    }

    fn token(name: Option<&str>) -> TokenIdentity {
        TokenIdentity {
            agent: AgentId::parse(Some(&json!("ada"))).unwrap(),
            name: name.map(|n| AgentName::parse(Some(&json!(n))).unwrap()),
            expires_at: None,
        }
    }

    fn view_with(payload: Value, token: &TokenIdentity) -> Result<(String, String), &'static str> {
        match Request::parse(EventName::View, &payload, Some(token)) {
            Ok(Request::View { agent, name, .. }) => Ok((agent.to_string(), name.to_string())),
            Ok(_) => unreachable!(),
            Err(e) => Err(e.code()),
        }
    }

    #[test]
    fn with_a_token_the_agent_is_the_tokens() {
        let named = token(Some("Ada L."));
        assert_eq!(
            view_with(json!({"ticketId": 1}), &named),
            Ok(("ada".into(), "Ada L.".into()))
        );
        assert_eq!(
            view_with(json!({"ticketId": 1, "agentId": "ada", "agentName": "A"}), &named),
            Ok(("ada".into(), "Ada L.".into()))
        );
        assert_eq!(
            view_with(json!({"ticketId": 1, "agentId": "bob"}), &named),
            Err("FORBIDDEN")
        );
        // Every INVALID_PAYLOAD rule comes first.
        assert_eq!(
            view_with(json!({"ticketId": "", "agentId": "bob"}), &named),
            Err("INVALID_PAYLOAD")
        );
        assert_eq!(
            view_with(json!({"ticketId": 1, "agentId": "bob", "agentName": " "}), &named),
            Err("INVALID_PAYLOAD")
        );
        let bare = token(None);
        assert_eq!(
            view_with(json!({"ticketId": 1, "agentName": "Ada"}), &bare),
            Ok(("ada".into(), "Ada".into()))
        );
        assert_eq!(
            view_with(json!({"ticketId": 1, "agentId": null}), &bare),
            Ok(("ada".into(), "ada".into()))
        );
        assert!(matches!(
            Request::parse(EventName::Typing, &json!({"ticketId": 1, "agentName": 5}), Some(&bare)),
            Ok(Request::Typing { .. })
        ));
    }

    #[test]
    fn names_round_trip() {
        for e in [
            EventName::View,
            EventName::Typing,
            EventName::StopTyping,
            EventName::Leave,
            EventName::Subscribe,
            EventName::Unsubscribe,
        ] {
            assert_eq!(EventName::parse(e.as_str()), Some(e));
        }
        assert_eq!(EventName::parse("ticket:delete"), None);
    }
}
