//! What other nodes are told of this node's sockets, and how a snapshot
//! from another node is applied (multi-instance presence).

use socketioxide::socket::Sid;

use super::{SocketViewing, ViewerRegistry};
use crate::ids::{AgentId, TicketId};
use crate::presence::{LeaveReason, Origin, PresenceEvent, SocketPresence};

impl ViewerRegistry {
    /// What one socket views, as replicated in a node's snapshot.
    pub fn socket_presence(&self, sid: Sid) -> Vec<SocketPresence> {
        let Some(views) = self.sockets.get(&sid) else {
            return Vec::new();
        };
        let mut entries: Vec<SocketPresence> = views
            .iter()
            .filter_map(|(ticket, agent)| {
                let viewer = self.tickets.get(ticket)?.get(agent)?;
                let socket = viewer.sockets.get(&sid)?;
                Some(SocketPresence {
                    sid,
                    ticket: ticket.clone(),
                    agent: agent.clone(),
                    name: viewer.name.clone(),
                    since: viewer.since,
                    last_activity: viewer.last_activity,
                    typing: socket.typing,
                    device: socket.device.clone(),
                    draft: socket.draft,
                    away: socket.away,
                    timed_out: viewer.timed_out,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.ticket.cmp(&b.ticket));
        entries
    }

    /// Makes a remote socket's presence what its node says it is (after a
    /// snapshot): tickets it no longer views are left, the others viewed,
    /// with their typing state.
    pub fn sync_socket(&mut self, sid: Sid, entries: &[SocketPresence]) -> Vec<PresenceEvent> {
        let mut events = Vec::new();
        let stale: Vec<(TicketId, AgentId)> = self
            .sockets
            .get(&sid)
            .map(|views| {
                views
                    .iter()
                    .filter(|(t, a)| !entries.iter().any(|e| &e.ticket == *t && &e.agent == *a))
                    .map(|(t, a)| (t.clone(), a.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (ticket, agent) in stale {
            self.leave_socket(sid, &ticket, &agent, LeaveReason::Left, &mut events);
        }
        for e in entries {
            let view = SocketViewing {
                sid,
                ticket: &e.ticket,
                agent: &e.agent,
                name: &e.name,
                at: e.last_activity,
                since: e.since,
                device: &e.device,
                draft: Some(e.draft),
                away: e.away,
                timed_out: e.timed_out,
            };
            match self.view_from(Origin::Remote, &view) {
                Ok((_, more)) => events.extend(more),
                Err(_) => continue,
            }
            match e.typing {
                Some((started, deadline)) => self.set_typing(sid, &e.ticket, &e.agent, started, deadline, &mut events),
                None => self.clear_typing(sid, &e.ticket, &e.agent, &mut events),
            }
        }
        events
    }
}
