//! The contract's wire messages (§3, §4) for what the domain decided:
//! presence events, timeline events, subscription replies.

use serde_json::{Value, json};
use socketioxide::socket::Sid;

use super::Delivery;
use crate::history::Position;
use crate::ids::{TimelineKey, ticket_room, watchers_room};
use crate::presence::PresenceEvent;
use crate::ticket_updates::TicketUpdate;
use crate::timelines::{TimelineChange, TimelineEvent};

/// The delivery that tells sockets about one presence event.
pub fn presence(event: PresenceEvent) -> Delivery {
    match event {
        PresenceEvent::JoinRoom { sid, ticket } => Delivery::Join {
            sid,
            room: ticket_room(&ticket),
        },
        PresenceEvent::LeaveRoom { sid, ticket } => Delivery::Leave {
            sid,
            room: ticket_room(&ticket),
        },
        // To the viewers and to the list views that watch the ticket (§3.2).
        PresenceEvent::ViewersUpdated { ticket, viewers } => Delivery::ToRoom {
            rooms: vec![ticket_room(&ticket), watchers_room(&ticket)],
            except: Vec::new(),
            event: "viewers:updated",
            payload: json!({ "ticketId": ticket, "viewers": viewers }),
        },
        PresenceEvent::ViewersTo { sid, ticket, viewers } => Delivery::ToSocket {
            sid,
            event: "viewers:updated",
            payload: json!({ "ticketId": ticket, "viewers": viewers }),
        },
        PresenceEvent::CollisionWarning {
            sid,
            ticket,
            others,
            severity,
            message,
        } => Delivery::ToSocket {
            sid,
            event: "collision:warning",
            payload: json!({ "ticketId": ticket, "viewers": others, "severity": severity, "message": message }),
        },
        PresenceEvent::AgentJoined {
            ticket,
            agent,
            name,
            since,
            except,
        } => Delivery::ToRoom {
            rooms: vec![ticket_room(&ticket)],
            except,
            event: "agent:joined",
            payload: json!({ "ticketId": ticket, "agentId": agent, "agentName": name, "since": since }),
        },
        PresenceEvent::AgentTyping {
            ticket,
            agent,
            name,
            except,
        } => {
            let message = format!("{name} is typing...");
            Delivery::ToRoom {
                rooms: vec![ticket_room(&ticket)],
                except,
                event: "agent:typing",
                payload: json!({
                    "ticketId": ticket, "agentId": agent, "agentName": name,
                    "warning": "COLLISION_RISK", "message": message,
                }),
            }
        }
        PresenceEvent::AgentStoppedTyping {
            ticket,
            agent,
            name,
            except,
        } => Delivery::ToRoom {
            rooms: vec![ticket_room(&ticket)],
            except,
            event: "agent:stopped_typing",
            payload: json!({ "ticketId": ticket, "agentId": agent, "agentName": name }),
        },
        PresenceEvent::AgentLeftTo {
            sid,
            ticket,
            agent,
            name,
            reason,
        } => Delivery::ToSocket {
            sid,
            event: "agent:left",
            payload: json!({ "ticketId": ticket, "agentId": agent, "agentName": name, "reason": reason }),
        },
        PresenceEvent::AgentLeft {
            ticket,
            agent,
            name,
            reason,
            except,
        } => Delivery::ToRoom {
            rooms: vec![ticket_room(&ticket)],
            except,
            event: "agent:left",
            payload: json!({ "ticketId": ticket, "agentId": agent, "agentName": name, "reason": reason }),
        },
    }
}

/// `ticket:updated` to the ticket's viewers on this node, except the
/// sockets of the agent who made the change (§3.3).
pub fn ticket_updated(update: &TicketUpdate, except: Vec<Sid>) -> Delivery {
    let by = update
        .by
        .as_ref()
        .map(|by| json!({ "agentId": by.agent, "agentName": by.name }));
    Delivery::ToRoom {
        rooms: vec![ticket_room(&update.ticket)],
        except,
        event: "ticket:updated",
        payload: json!({
            "ticketId": update.ticket, "kind": update.kind, "by": by,
            "summary": update.summary, "version": update.version, "at": update.at,
        }),
    }
}

/// `timeline:new_item`, `timeline:item_updated` or `timeline:refresh` to the
/// timeline's room, with its offset and epoch (`null` when it has none: a
/// publish that could not reach the history).
pub fn timeline(event: &TimelineEvent, position: Option<&Position>) -> Delivery {
    let (name, payload) = timeline_message(event, position);
    Delivery::ToRoom {
        rooms: vec![event.key.room()],
        except: Vec::new(),
        event: name,
        payload,
    }
}

/// One missed event replayed to a recovering socket.
pub fn replayed(sid: Sid, event: &TimelineEvent, position: &Position) -> Delivery {
    let (name, payload) = timeline_message(event, Some(position));
    Delivery::ToSocket {
        sid,
        event: name,
        payload,
    }
}

/// `timeline:refresh` with `reason: "history_lost"` to a socket whose
/// `since` cannot be recovered.
pub fn history_lost(sid: Sid, key: &TimelineKey) -> Delivery {
    Delivery::ToSocket {
        sid,
        event: "timeline:refresh",
        payload: json!({ "entityType": key.entity_type, "entityId": key.entity_id, "reason": "history_lost" }),
    }
}

fn timeline_message(event: &TimelineEvent, position: Option<&Position>) -> (&'static str, Value) {
    let key = &event.key;
    let (name, mut payload) = match &event.change {
        TimelineChange::NewItem { item } => (
            "timeline:new_item",
            json!({ "entityType": key.entity_type, "entityId": key.entity_id, "item": item }),
        ),
        TimelineChange::ItemUpdated { item_id, item } => (
            "timeline:item_updated",
            json!({ "entityType": key.entity_type, "entityId": key.entity_id, "itemId": item_id, "item": item }),
        ),
        TimelineChange::Refresh { reason } => (
            "timeline:refresh",
            json!({ "entityType": key.entity_type, "entityId": key.entity_id, "reason": reason }),
        ),
    };
    payload["offset"] = position.map_or(Value::Null, |p| Value::from(p.offset));
    payload["epoch"] = position.map_or(Value::Null, |p| Value::from(&*p.epoch));
    (name, payload)
}

/// `timeline:refresh` with `reason: "resync"`: this node could not hear the
/// others for a while and its subscribers may have missed events.
pub fn resync(key: &TimelineKey) -> Delivery {
    Delivery::ToRoom {
        rooms: vec![key.room()],
        except: Vec::new(),
        event: "timeline:refresh",
        payload: json!({ "entityType": key.entity_type, "entityId": key.entity_id, "reason": "resync" }),
    }
}

/// `timeline:subscribed` or `timeline:unsubscribed` to the socket.
pub fn subscription(sid: Sid, key: &TimelineKey, subscribed: bool) -> Delivery {
    Delivery::ToSocket {
        sid,
        event: if subscribed {
            "timeline:subscribed"
        } else {
            "timeline:unsubscribed"
        },
        payload: json!({ "entityType": key.entity_type, "entityId": key.entity_id }),
    }
}

/// The keys of a payload, sorted; for tests of the contract's exact shapes.
#[cfg(test)]
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AgentId, AgentName, TicketId};
    use crate::presence::{LeaveReason, ViewerStatus, ViewerView};

    fn payload_of(d: Delivery) -> (&'static str, Value) {
        match d {
            Delivery::ToRoom { event, payload, .. } | Delivery::ToSocket { event, payload, .. } => (event, payload),
            other => panic!("not an emit: {other:?}"),
        }
    }

    fn ids() -> (TicketId, AgentId, AgentName) {
        (
            TicketId::parse(Some(&json!(42))).unwrap(),
            AgentId::parse(Some(&json!("7"))).unwrap(),
            AgentName::parse(Some(&json!("Ada"))).unwrap(),
        )
    }

    #[test]
    fn payloads_have_exactly_the_contracts_keys() {
        let (ticket, agent, name) = ids();
        let viewer = ViewerView {
            agent_id: agent.clone(),
            agent_name: name.clone(),
            status: ViewerStatus::Typing,
            since: 1,
            typing_started_at: Some(2),
            editing: true,
            idle: false,
            devices: vec![crate::ids::Device::default()],
        };
        let (event, p) = payload_of(presence(PresenceEvent::collision_warning(
            Sid::new(),
            &ticket,
            vec![viewer.clone()],
        )));
        assert_eq!(event, "collision:warning");
        assert_eq!(keys(&p), ["message", "severity", "ticketId", "viewers"]);
        assert_eq!(p["ticketId"], "42");
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["message"], "Ada is typing a reply");
        assert_eq!(
            keys(&p["viewers"][0]),
            [
                "agentId",
                "agentName",
                "devices",
                "editing",
                "idle",
                "since",
                "status",
                "typingStartedAt"
            ]
        );
        assert_eq!(p["viewers"][0]["status"], "typing");
        assert_eq!(p["viewers"][0]["devices"], json!(["web"]));

        let (_, p) = payload_of(presence(PresenceEvent::AgentTyping {
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: name.clone(),
            except: vec![],
        }));
        assert_eq!(keys(&p), ["agentId", "agentName", "message", "ticketId", "warning"]);
        assert_eq!(p["message"], "Ada is typing...");

        let (_, p) = payload_of(presence(PresenceEvent::AgentLeft {
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: name.clone(),
            reason: LeaveReason::NodeLost,
            except: vec![],
        }));
        assert_eq!(keys(&p), ["agentId", "agentName", "reason", "ticketId"]);
        assert_eq!(p["reason"], "node_lost");

        let (_, p) = payload_of(presence(PresenceEvent::AgentJoined {
            ticket,
            agent,
            name,
            since: 5,
            except: vec![],
        }));
        assert_eq!(keys(&p), ["agentId", "agentName", "since", "ticketId"]);
    }

    fn timeline_payload(event: Result<TimelineEvent, crate::ids::Invalid>) -> (String, &'static str, Value) {
        let position = Position {
            offset: 7,
            epoch: "e1".into(),
        };
        match timeline(&event.unwrap(), Some(&position)) {
            Delivery::ToRoom {
                mut rooms,
                event,
                payload,
                ..
            } => (rooms.remove(0), event, payload),
            other => panic!("not a room emit: {other:?}"),
        }
    }

    #[test]
    fn timeline_payloads_have_exactly_the_contracts_keys() {
        let key = || TimelineKey {
            entity_type: crate::ids::EntityType::parse(Some(&json!("deal"))).unwrap(),
            entity_id: crate::ids::EntityId::parse(Some(&json!(9))).unwrap(),
        };
        let (room, event, p) = timeline_payload(TimelineEvent::new_item(key(), Some(&json!({"id": 1, "text": "hi"}))));
        assert_eq!((room.as_str(), event), ("timeline:deal:9", "timeline:new_item"));
        assert_eq!(
            p,
            json!({"entityType": "deal", "entityId": "9", "item": {"id": 1, "text": "hi"}, "offset": 7, "epoch": "e1"})
        );
        let item_id = crate::ids::ItemId::parse(Some(&json!(3))).unwrap();
        let (_, event, p) = timeline_payload(TimelineEvent::item_updated(key(), item_id, Some(&json!({"a": 1}))));
        assert_eq!(event, "timeline:item_updated");
        assert_eq!(
            p,
            json!({"entityType": "deal", "entityId": "9", "itemId": "3", "item": {"a": 1}, "offset": 7, "epoch": "e1"})
        );
        let (_, event, p) = timeline_payload(TimelineEvent::refresh(key(), None));
        assert_eq!(event, "timeline:refresh");
        assert_eq!(
            p,
            json!({"entityType": "deal", "entityId": "9", "reason": null, "offset": 7, "epoch": "e1"})
        );
        let Delivery::ToRoom { payload, .. } = resync(&key()) else {
            panic!()
        };
        assert_eq!(payload["reason"], "resync");
    }
}
