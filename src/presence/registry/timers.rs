//! The registry's clocks: typing timeouts, idle viewers (both precise
//! deadlines the timer task sleeps until) and the stale sweep.

use socketioxide::socket::Sid;

use super::ViewerRegistry;
use crate::ids::{AgentId, TicketId};
use crate::presence::{LeaveReason, Millis, PresenceEvent, PresenceOp};

impl ViewerRegistry {
    /// Viewers without activity for `idle_after` turn idle; the room hears
    /// it unless they already were (every tab away).
    pub fn expire_idle(&mut self, now: Millis) -> Vec<PresenceEvent> {
        let mut events = Vec::new();
        while let Some(first) = self.idle_deadlines.first() {
            if first.0 > now {
                break;
            }
            let Some((_, ticket, agent)) = self.idle_deadlines.pop_first() else {
                break;
            };
            let (before, mark) = (self.list(&ticket), events.len());
            if let Some(viewer) = self.tickets.get_mut(&ticket).and_then(|v| v.get_mut(&agent)) {
                viewer.timed_out = true;
            }
            self.tell_if_changed(&ticket, &before, mark, &mut events);
        }
        events
    }

    /// When the next viewer turns idle without activity, if any.
    pub fn next_idle_deadline(&self) -> Option<Millis> {
        self.idle_deadlines.first().map(|d| d.0)
    }

    /// Typing that got no renewal in time falls back to viewing.
    pub fn expire_typing(&mut self, now: Millis) -> Vec<PresenceEvent> {
        let mut events = Vec::new();
        while let Some(first) = self.typing_deadlines.first() {
            if first.0 > now {
                break;
            }
            let Some((_, ticket, agent, sid)) = self.typing_deadlines.pop_first() else {
                break;
            };
            self.clear_typing(sid, &ticket, &agent, &mut events);
        }
        events
    }

    /// When the next typing timeout falls due, if any socket types.
    pub fn next_typing_deadline(&self) -> Option<Millis> {
        self.typing_deadlines.first().map(|d| d.0)
    }

    /// Removes this node's sockets from viewers idle for `stale_after`
    /// (`local` tells which sockets are this node's). A viewer whose sockets
    /// are all here leaves with `stale`: the room hears it, its own sockets
    /// too, and they leave the room but stay connected. A viewer that also
    /// has sockets on other nodes keeps them until those nodes sweep theirs;
    /// the sockets removed here hear `agent:left` alone. Returns the events,
    /// and the removals for the other nodes to replay.
    pub fn sweep_stale(&mut self, now: Millis, local: impl Fn(Sid) -> bool) -> (Vec<PresenceEvent>, Vec<PresenceOp>) {
        let mut stale: Vec<(TicketId, AgentId)> = self
            .tickets
            .iter()
            .flat_map(|(ticket, viewers)| {
                viewers
                    .iter()
                    .filter(|(_, v)| now.saturating_sub(v.last_activity) >= self.rules.stale_after_ms)
                    .filter(|(_, v)| v.sockets.keys().any(|sid| local(*sid)))
                    .map(move |(agent, _)| (ticket.clone(), agent.clone()))
            })
            .collect();
        stale.sort();
        let (mut events, mut removed) = (Vec::new(), Vec::new());
        for (ticket, agent) in stale {
            let Some(viewer) = self.tickets.get(&ticket).and_then(|v| v.get(&agent)) else {
                continue;
            };
            let name = viewer.name.clone();
            let (here, elsewhere): (Vec<Sid>, Vec<Sid>) = viewer.sids().into_iter().partition(|sid| local(*sid));
            removed.extend(here.iter().map(|&sid| PresenceOp::Stale {
                sid,
                ticket: ticket.clone(),
                agent: agent.clone(),
            }));
            if elsewhere.is_empty() {
                self.remove_viewer(&ticket, &agent, LeaveReason::Stale, &mut events);
                continue;
            }
            for sid in here {
                events.push(PresenceEvent::AgentLeftTo {
                    sid,
                    ticket: ticket.clone(),
                    agent: agent.clone(),
                    name: name.clone(),
                    reason: LeaveReason::Stale,
                });
                self.leave_socket(sid, &ticket, &agent, LeaveReason::Stale, &mut events);
            }
        }
        (events, removed)
    }

    /// Activity of a viewer at `at`: no longer idle by time, and its idle
    /// deadline moves to `at + idle_after`. An older `at` (a replicated
    /// change that crossed a newer one) changes nothing.
    pub(super) fn touch(&mut self, ticket: &TicketId, agent: &AgentId, at: Millis) {
        let idle_after = self.rules.idle_after_ms;
        let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) else {
            return;
        };
        if at <= viewer.last_activity {
            return;
        }
        if !viewer.timed_out {
            self.idle_deadlines
                .remove(&(viewer.last_activity + idle_after, ticket.clone(), agent.clone()));
        }
        viewer.last_activity = at;
        viewer.timed_out = false;
        self.idle_deadlines
            .insert((at + idle_after, ticket.clone(), agent.clone()));
    }

    /// A snapshot says the viewer, last active at `at`, is idle by time:
    /// so it is here too unless it was active since.
    pub(super) fn time_out(&mut self, ticket: &TicketId, agent: &AgentId, at: Millis) {
        let idle_after = self.rules.idle_after_ms;
        let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) else {
            return;
        };
        if viewer.timed_out || viewer.last_activity > at {
            return;
        }
        self.idle_deadlines
            .remove(&(viewer.last_activity + idle_after, ticket.clone(), agent.clone()));
        viewer.timed_out = true;
    }
}
