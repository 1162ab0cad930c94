//! What nodes tell each other over the Redis channel.

use serde::{Deserialize, Serialize};

use crate::presence::{PresenceOp, SocketPresence};
use crate::ticket_updates::TicketUpdate;
use crate::timelines::TimelineEvent;

/// One message on the bus, with the node that sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub node: String,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// "I (re)joined the channel": every other node answers with a snapshot.
    Hello,
    /// "I am alive", with this node's figures for the cluster stats.
    Heartbeat { counts: NodeCounts },
    /// Everything this node's sockets view; replaces what others knew of it.
    Snapshot {
        presence: Vec<SocketPresence>,
        counts: NodeCounts,
    },
    /// One presence change made on the sender, in the sender's order.
    Presence { change: PresenceOp },
    /// A timeline event for the subscribers on every node, without a
    /// position (the history in Redis could not be used).
    Publish { event: TimelineEvent },
    /// Timeline events numbered and kept in Redis, sent from Redis itself
    /// (the history script), in offset order; the sender delivers them too.
    Recorded { events: Vec<RecordedEvent> },
    /// A backend's ticket update for the ticket's viewers on every node.
    TicketUpdated { update: TicketUpdate },
    /// The sender is shutting down; its sockets are gone.
    Bye,
}

/// A timeline event with the position Redis gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub offset: u64,
    pub epoch: String,
    pub event: TimelineEvent,
}

/// One node's own figures, for `/v1/stats`'s `cluster` part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    pub connections: i64,
    pub timeline_subscriptions: usize,
    /// Timeline rooms with subscribers on the node (names, so that a room
    /// followed on two nodes counts once).
    pub timeline_rooms: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AgentId, TicketId};
    use serde_json::json;
    use socketioxide::socket::Sid;

    #[test]
    fn round_trips_as_json() {
        let env = Envelope {
            node: "n1".into(),
            message: Message::Presence {
                change: PresenceOp::Leave {
                    sid: Sid::new(),
                    ticket: TicketId::parse(Some(&json!(1))).unwrap(),
                    agent: AgentId::parse(Some(&json!("a"))).unwrap(),
                },
            },
        };
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), env);
    }

    #[test]
    fn invalid_ids_from_the_wire_are_refused() {
        let text = r#"{"node":"n","message":{"type":"presence","change":{"op":"leave","sid":"AAAAAAAAAAAAAAAA","ticket":"","agent":"a"}}}"#;
        assert!(serde_json::from_str::<Envelope>(text).is_err());
    }
}
