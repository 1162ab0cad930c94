//! Ticket presence: who views which ticket, who is typing (contract §3).
//!
//! [`ViewerRegistry`] is a plain synchronous type. Every method applies one
//! rule and returns the [`PresenceEvent`]s it caused, in the order a client
//! must see them; the socket layer turns them into room joins and emits. Time
//! is passed in (`now`, milliseconds), so tests drive it without a clock.
//!
//! A viewer is one agent on one ticket, whatever number of sockets (tabs) it
//! has there; each socket keeps its own typing state, and the viewer is typing
//! while any of its sockets is. So too in v2 (§3.1): each socket has its
//! device, its draft and whether its tab is away; the viewer's `devices`,
//! `editing` and `idle` combine them.
//!
//! [`WatchRegistry`] holds the list views' watches (§3.2): which tickets each
//! socket watches, with the per-socket limit.

mod registry;
mod small_map;
#[cfg(test)]
mod tests;
mod watch;

use serde::{Deserialize, Serialize};
use socketioxide::socket::Sid;

use crate::ids::{AgentId, AgentName, Device, TicketId};

pub use registry::{Origin, PresenceRules, ViewerRegistry};
pub use watch::WatchRegistry;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// One viewer as the contract shows it (§3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerView {
    pub agent_id: AgentId,
    pub agent_name: AgentName,
    pub status: ViewerStatus,
    pub since: Millis,
    pub typing_started_at: Option<Millis>,
    /// One of its sockets has an unsaved reply draft (v2).
    pub editing: bool,
    /// Every socket's tab is away, or no activity for `idle_after` (v2).
    pub idle: bool,
    /// The distinct devices of its sockets, sorted (v2).
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewerStatus {
    Viewing,
    Typing,
}

/// Why a viewer stopped viewing (`agent:left`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Disconnected,
    Stale,
    NodeLost,
}

/// Something a rule changed that sockets must be told about, or a room
/// membership to change. The socket layer applies them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// The socket joins the ticket's room.
    JoinRoom { sid: Sid, ticket: TicketId },
    /// The socket leaves the ticket's room.
    LeaveRoom { sid: Sid, ticket: TicketId },
    /// `viewers:updated` to the whole room.
    ViewersUpdated { ticket: TicketId, viewers: Vec<ViewerView> },
    /// `viewers:updated` to one socket only (a new tab of a known viewer).
    ViewersTo {
        sid: Sid,
        ticket: TicketId,
        viewers: Vec<ViewerView>,
    },
    /// `collision:warning` to one socket, about the other viewers.
    CollisionWarning {
        sid: Sid,
        ticket: TicketId,
        others: Vec<ViewerView>,
        /// `"warning"`, or `"critical"` when one of the others types.
        severity: &'static str,
        message: String,
    },
    /// `agent:joined` to the room except the joining socket.
    AgentJoined {
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
        since: Millis,
        except: Vec<Sid>,
    },
    /// `agent:typing` to the room except the typist's sockets.
    AgentTyping {
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
        except: Vec<Sid>,
    },
    /// `agent:stopped_typing` to the room except the typist's sockets.
    AgentStoppedTyping {
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
        except: Vec<Sid>,
    },
    /// `agent:left` to one socket only: a stale socket of a viewer that
    /// stays through its sockets on other nodes.
    AgentLeftTo {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
        reason: LeaveReason,
    },
    /// `agent:left` to the room except `except`.
    AgentLeft {
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
        reason: LeaveReason,
        except: Vec<Sid>,
    },
}

/// A change to presence made on one node; replayed as is on the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PresenceOp {
    View {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
        name: AgentName,
        at: Millis,
        #[serde(default)]
        device: Device,
    },
    /// `ticket:draft`: the socket has (or no longer has) a reply draft.
    Draft {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
        editing: bool,
        at: Millis,
    },
    /// `ticket:activity`: the socket's tab is in use or hidden.
    Activity {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
        state: TabState,
        at: Millis,
    },
    Typing {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
        at: Millis,
    },
    StopTyping {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
        at: Millis,
    },
    Leave {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
    },
    /// The sender's stale sweep removed this socket from the viewer.
    Stale {
        sid: Sid,
        ticket: TicketId,
        agent: AgentId,
    },
    Disconnect {
        sid: Sid,
    },
}

impl PresenceOp {
    /// The socket the change is about.
    pub fn sid(&self) -> Sid {
        match self {
            Self::View { sid, .. }
            | Self::Typing { sid, .. }
            | Self::StopTyping { sid, .. }
            | Self::Draft { sid, .. }
            | Self::Activity { sid, .. }
            | Self::Leave { sid, .. }
            | Self::Stale { sid, .. }
            | Self::Disconnect { sid } => *sid,
        }
    }
}

/// One socket's view of one ticket, as a node tells the others in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketPresence {
    pub sid: Sid,
    pub ticket: TicketId,
    pub agent: AgentId,
    pub name: AgentName,
    /// The viewer's `since` and last activity.
    pub since: Millis,
    pub last_activity: Millis,
    /// This socket's typing start and timeout, when it types.
    pub typing: Option<(Millis, Millis)>,
    /// This socket's device, draft and tab state (v2; absent from a v1
    /// node's snapshot: web, no draft, active).
    #[serde(default)]
    pub device: Device,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub away: bool,
    /// The viewer had no activity for `idle_after` (idle by time).
    #[serde(default)]
    pub timed_out: bool,
}

/// A tab's state as `ticket:activity` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TabState {
    Active,
    Away,
}

/// Counts for `/v1/stats` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Tickets with at least one viewer.
    pub tickets: usize,
    /// Viewers (agent × ticket) in all.
    pub viewers: usize,
}

impl PresenceEvent {
    /// The warning for `sid`, which just started viewing with `others` there.
    pub fn collision_warning(sid: Sid, ticket: &TicketId, others: Vec<ViewerView>) -> Self {
        let (severity, message) = collision_message(&others);
        Self::CollisionWarning {
            sid,
            ticket: ticket.clone(),
            others,
            severity,
            message,
        }
    }
}

/// The `collision:warning` message: who views, or who writes a reply when
/// one does — typing (v1), or with an unsaved draft (`editing`, v2). An
/// agent who does both is typing; typists and editors together are
/// "writing" a reply.
pub fn collision_message(others: &[ViewerView]) -> (&'static str, String) {
    let typing = |v: &&ViewerView| v.status == ViewerStatus::Typing;
    let writers: Vec<&ViewerView> = others.iter().filter(|v| typing(v) || v.editing).collect();
    if writers.is_empty() {
        let names: Vec<&str> = others.iter().map(|v| v.agent_name.as_str()).collect();
        return (
            "warning",
            format!("{} {} viewing this ticket", join_names(&names), verb(names.len())),
        );
    }
    let doing = if writers.iter().all(typing) {
        "typing"
    } else if writers.iter().any(typing) {
        "writing"
    } else {
        "editing"
    };
    let names: Vec<&str> = writers.iter().map(|v| v.agent_name.as_str()).collect();
    (
        "critical",
        format!("{} {} {doing} a reply", join_names(&names), verb(names.len())),
    )
}

fn verb(count: usize) -> &'static str {
    if count == 1 { "is" } else { "are" }
}

/// "Ada", "Ada and Bob", "Ada, Bob and Cy".
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
