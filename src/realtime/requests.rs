//! Client events of the contract, parsed from raw JSON (§2–§4).
//!
//! Payloads arrive as `serde_json::Value` and are validated here rather than
//! by serde derive: a typed extractor that fails makes socketioxide skip the
//! handler silently, and every bad payload must get its error code.

use serde_json::Value;

use crate::error::ClientError;
use crate::ids::{AgentId, AgentName, EntityId, EntityType, TicketId, TimelineKey, payload_object};

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
    Subscribe(TimelineKey),
    Unsubscribe(TimelineKey),
}

impl Request {
    pub fn parse(event: EventName, payload: &Value) -> Result<Self, ClientError> {
        let p = payload_object(payload)?;
        let ticket = || TicketId::parse(p.get(TicketId::FIELD));
        let agent = || AgentId::parse(p.get(AgentId::FIELD));
        let timeline = || -> Result<TimelineKey, ClientError> {
            Ok(TimelineKey {
                entity_type: EntityType::parse(p.get("entityType"))?,
                entity_id: EntityId::parse(p.get(EntityId::FIELD))?,
            })
        };
        Ok(match event {
            EventName::View => Self::View {
                ticket: ticket()?,
                agent: agent()?,
                name: AgentName::parse(p.get("agentName"))?,
            },
            EventName::Typing => Self::Typing {
                ticket: ticket()?,
                agent: agent()?,
            },
            EventName::StopTyping => Self::StopTyping {
                ticket: ticket()?,
                agent: agent()?,
            },
            EventName::Leave => Self::Leave {
                ticket: ticket()?,
                agent: agent()?,
            },
            EventName::Subscribe => Self::Subscribe(timeline()?),
            EventName::Unsubscribe => Self::Unsubscribe(timeline()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(event: EventName, payload: Value) -> &'static str {
        Request::parse(event, &payload).map_or_else(|e| e.code(), |_| "ok")
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
        let r = Request::parse(EventName::Subscribe, &json!({"entityType": "deal", "entityId": 5})).unwrap();
        let Request::Subscribe(key) = r else { panic!() };
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
