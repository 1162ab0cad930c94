//! Turns presence events into the contract's server events (§3).

#[cfg(test)]
use serde_json::Value;
use serde_json::json;

use crate::ids::ticket_room;
use crate::outbox::Delivery;
use crate::presence::{PresenceEvent, collision_message};

/// The delivery that tells sockets about one presence event.
pub fn delivery(event: PresenceEvent) -> Delivery {
    match event {
        PresenceEvent::JoinRoom { sid, ticket } => Delivery::Join {
            sid,
            room: ticket_room(&ticket),
        },
        PresenceEvent::LeaveRoom { sid, ticket } => Delivery::Leave {
            sid,
            room: ticket_room(&ticket),
        },
        PresenceEvent::ViewersUpdated { ticket, viewers } => Delivery::ToRoom {
            room: ticket_room(&ticket),
            except: Vec::new(),
            event: "viewers:updated",
            payload: json!({ "ticketId": ticket, "viewers": viewers }),
        },
        PresenceEvent::ViewersTo { sid, ticket, viewers } => Delivery::ToSocket {
            sid,
            event: "viewers:updated",
            payload: json!({ "ticketId": ticket, "viewers": viewers }),
        },
        PresenceEvent::CollisionWarning { sid, ticket, others } => {
            let (severity, message) = collision_message(&others);
            Delivery::ToSocket {
                sid,
                event: "collision:warning",
                payload: json!({ "ticketId": ticket, "viewers": others, "severity": severity, "message": message }),
            }
        }
        PresenceEvent::AgentJoined {
            ticket,
            agent,
            name,
            since,
            except,
        } => Delivery::ToRoom {
            room: ticket_room(&ticket),
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
                room: ticket_room(&ticket),
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
            room: ticket_room(&ticket),
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
            room: ticket_room(&ticket),
            except,
            event: "agent:left",
            payload: json!({ "ticketId": ticket, "agentId": agent, "agentName": name, "reason": reason }),
        },
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
    use socketioxide::socket::Sid;

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
        };
        let (event, p) = payload_of(delivery(PresenceEvent::CollisionWarning {
            sid: Sid::new(),
            ticket: ticket.clone(),
            others: vec![viewer.clone()],
        }));
        assert_eq!(event, "collision:warning");
        assert_eq!(keys(&p), ["message", "severity", "ticketId", "viewers"]);
        assert_eq!(p["ticketId"], "42");
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["message"], "Ada is typing a reply");
        assert_eq!(
            keys(&p["viewers"][0]),
            ["agentId", "agentName", "since", "status", "typingStartedAt"]
        );
        assert_eq!(p["viewers"][0]["status"], "typing");

        let (_, p) = payload_of(delivery(PresenceEvent::AgentTyping {
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: name.clone(),
            except: vec![],
        }));
        assert_eq!(keys(&p), ["agentId", "agentName", "message", "ticketId", "warning"]);
        assert_eq!(p["message"], "Ada is typing...");

        let (_, p) = payload_of(delivery(PresenceEvent::AgentLeft {
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: name.clone(),
            reason: LeaveReason::NodeLost,
            except: vec![],
        }));
        assert_eq!(keys(&p), ["agentId", "agentName", "reason", "ticketId"]);
        assert_eq!(p["reason"], "node_lost");

        let (_, p) = payload_of(delivery(PresenceEvent::AgentJoined {
            ticket,
            agent,
            name,
            since: 5,
            except: vec![],
        }));
        assert_eq!(keys(&p), ["agentId", "agentName", "since", "ticketId"]);
    }
}
