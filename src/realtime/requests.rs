//! Client events of the contract, parsed from raw JSON (§2–§4).
//!
//! Payloads arrive as `serde_json::Value` and are validated here rather than
//! by serde derive: a typed extractor that fails makes socketioxide skip the
//! handler silently, and every bad payload must get its error code.

use serde_json::Value;

use crate::auth::TokenIdentity;
use crate::error::ClientError;
use crate::ids::{
    AgentId, AgentName, Device, EntityId, EntityType, Invalid, Since, TicketId, TimelineKey, payload_object,
};
use crate::presence::TabState;

/// Most ticket ids one `tickets:watch` or `tickets:unwatch` may carry.
pub const MAX_WATCH_IDS: usize = 100;

/// The client events the contract defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    View,
    Typing,
    StopTyping,
    Leave,
    Draft,
    Activity,
    Watch,
    Unwatch,
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
            "ticket:draft" => Self::Draft,
            "ticket:activity" => Self::Activity,
            "tickets:watch" => Self::Watch,
            "tickets:unwatch" => Self::Unwatch,
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
            Self::Draft => "ticket:draft",
            Self::Activity => "ticket:activity",
            Self::Watch => "tickets:watch",
            Self::Unwatch => "tickets:unwatch",
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
        device: Device,
    },
    Draft {
        ticket: TicketId,
        agent: AgentId,
        editing: bool,
    },
    Activity {
        ticket: TicketId,
        agent: AgentId,
        state: TabState,
    },
    /// `tickets:watch`: the ids as given (duplicates included).
    Watch(Vec<TicketId>),
    Unwatch(Vec<TicketId>),
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
                let device = Device::parse(p.get("device"))?;
                let (ticket, agent, name) = ticket_event(true)?;
                let name = name.ok_or_else(|| ClientError::InvalidPayload("agentName is required".into()))?;
                Self::View {
                    ticket,
                    agent,
                    name,
                    device,
                }
            }
            EventName::Draft => {
                let editing = p
                    .get("editing")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| ClientError::InvalidPayload("editing must be a boolean".into()))?;
                let (ticket, agent, _) = ticket_event(false)?;
                Self::Draft { ticket, agent, editing }
            }
            EventName::Activity => {
                let state = match p.get("state").and_then(Value::as_str) {
                    Some("active") => TabState::Active,
                    Some("away") => TabState::Away,
                    _ => {
                        return Err(ClientError::InvalidPayload(
                            "state must be \"active\" or \"away\"".into(),
                        ));
                    }
                };
                let (ticket, agent, _) = ticket_event(false)?;
                Self::Activity { ticket, agent, state }
            }
            EventName::Watch => Self::Watch(ticket_ids(p.get("ticketIds"))?),
            EventName::Unwatch => Self::Unwatch(ticket_ids(p.get("ticketIds"))?),
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

/// `ticketIds`: an array of 1 to 100 identifiers.
fn ticket_ids(value: Option<&Value>) -> Result<Vec<TicketId>, Invalid> {
    let ids = match value {
        Some(Value::Array(ids)) if (1..=MAX_WATCH_IDS).contains(&ids.len()) => ids,
        _ => {
            return Err(Invalid(format!(
                "ticketIds must be an array of 1 to {MAX_WATCH_IDS} ticket ids"
            )));
        }
    };
    ids.iter()
        .enumerate()
        .map(|(i, id)| TicketId::parse(Some(id)).map_err(|e| Invalid(format!("ticketIds[{i}]: {e}"))))
        .collect()
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
    fn v2_events_validate_their_fields() {
        let view = |extra: Value| {
            let mut p = json!({"ticketId": 1, "agentId": "7", "agentName": "Ada"});
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            Request::parse(EventName::View, &p, None)
        };
        let device = |r: Result<Request, ClientError>| match r {
            Ok(Request::View { device, .. }) => Ok(device.as_str().to_string()),
            Ok(_) => unreachable!(),
            Err(e) => Err(e.code()),
        };
        assert_eq!(device(view(json!({}))), Ok("web".into()));
        assert_eq!(device(view(json!({"device": null}))), Ok("web".into()));
        assert_eq!(device(view(json!({"device": "mobile"}))), Ok("mobile".into()));
        assert_eq!(device(view(json!({"device": "Mobile"}))), Err("INVALID_PAYLOAD"));
        assert_eq!(device(view(json!({"device": 3}))), Err("INVALID_PAYLOAD"));

        assert_eq!(
            code(
                EventName::Draft,
                json!({"ticketId": 1, "agentId": "7", "editing": true})
            ),
            "ok"
        );
        assert_eq!(
            code(
                EventName::Draft,
                json!({"ticketId": 1, "agentId": "7", "editing": "yes"})
            ),
            "INVALID_PAYLOAD"
        );
        assert_eq!(
            code(EventName::Draft, json!({"ticketId": 1, "agentId": "7"})),
            "INVALID_PAYLOAD"
        );
        assert_eq!(
            code(
                EventName::Activity,
                json!({"ticketId": 1, "agentId": "7", "state": "away"})
            ),
            "ok"
        );
        assert_eq!(
            code(
                EventName::Activity,
                json!({"ticketId": 1, "agentId": "7", "state": "gone"})
            ),
            "INVALID_PAYLOAD"
        );
        assert_eq!(
            code(EventName::Activity, json!({"ticketId": 1, "state": "active"})),
            "INVALID_PAYLOAD"
        );

        assert_eq!(code(EventName::Watch, json!({"ticketIds": [1, "2", 1]})), "ok");
        let hundred: Vec<u32> = (0..100).collect();
        assert_eq!(code(EventName::Watch, json!({ "ticketIds": hundred })), "ok");
        let too_many: Vec<u32> = (0..101).collect();
        assert_eq!(
            code(EventName::Watch, json!({ "ticketIds": too_many })),
            "INVALID_PAYLOAD"
        );
        assert_eq!(code(EventName::Watch, json!({"ticketIds": []})), "INVALID_PAYLOAD");
        assert_eq!(code(EventName::Watch, json!({"ticketIds": 1})), "INVALID_PAYLOAD");
        assert_eq!(
            code(EventName::Unwatch, json!({"ticketIds": [1, ""]})),
            "INVALID_PAYLOAD"
        );
        assert_eq!(code(EventName::Unwatch, json!({})), "INVALID_PAYLOAD");
    }

    #[test]
    fn invalid_draft_fields_come_before_forbidden() {
        let bare = token(None);
        let code = |p: Value| Request::parse(EventName::Draft, &p, Some(&bare)).map_or_else(|e| e.code(), |_| "ok");
        assert_eq!(
            code(json!({"ticketId": 1, "agentId": "bob", "editing": 1})),
            "INVALID_PAYLOAD"
        );
        assert_eq!(
            code(json!({"ticketId": 1, "agentId": "bob", "editing": true})),
            "FORBIDDEN"
        );
        assert_eq!(code(json!({"ticketId": 1, "editing": false})), "ok");
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
            EventName::Draft,
            EventName::Activity,
            EventName::Watch,
            EventName::Unwatch,
            EventName::Subscribe,
            EventName::Unsubscribe,
        ] {
            assert_eq!(EventName::parse(e.as_str()), Some(e));
        }
        assert_eq!(EventName::parse("ticket:delete"), None);
    }
}
