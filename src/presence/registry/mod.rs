use std::collections::{BTreeSet, HashMap};

mod replication;
mod timers;

use super::small_map::SmallMap;

use socketioxide::socket::Sid;

use super::{LeaveReason, Millis, PresenceEvent, PresenceOp, PresenceStats, TabState, ViewerStatus, ViewerView};

use crate::error::ClientError;
use crate::ids::{AgentId, AgentName, Device, TicketId};

/// What one change did: the viewer list a view's ack carries, and the
/// events to deliver, in order.
#[derive(Debug, Default)]
pub struct Applied {
    pub ack_viewers: Option<Vec<ViewerView>>,
    pub events: Vec<PresenceEvent>,
}

impl Applied {
    fn events(events: Vec<PresenceEvent>) -> Self {
        Self {
            ack_viewers: None,
            events,
        }
    }
}

/// One socket viewing one ticket as one agent: a local `ticket:view`, or a
/// replicated one. `since` may be earlier than `at` when a snapshot brings
/// a viewer that has been there for a while.
#[derive(Debug, Clone, Copy)]
struct SocketViewing<'a> {
    sid: Sid,
    ticket: &'a TicketId,
    agent: &'a AgentId,
    name: &'a AgentName,
    at: Millis,
    since: Millis,
    device: &'a Device,
    /// The socket's draft as a snapshot tells it; `None` keeps it (a view
    /// neither starts nor ends a draft).
    draft: Option<bool>,
    /// The socket's tab state as a snapshot tells it; a view is activity
    /// and makes the tab active.
    away: bool,
    /// A snapshot's viewer that had no activity for `idle_after` at its
    /// last activity `at`: idle from the start, rather than not idle until
    /// this node's timer catches up.
    timed_out: bool,
}

/// Whether two lists show the same viewers in the same states: names,
/// status, `editing`, `idle`, `devices`. `since` and `typingStartedAt`
/// moving alone (an earlier view or typing start replicated from another
/// node, one of two typing tabs stopping) are not broadcast, as in v1.
fn same_states(a: &[ViewerView], b: &[ViewerView]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.agent_id == b.agent_id
                && a.agent_name == b.agent_name
                && a.status == b.status
                && a.editing == b.editing
                && a.idle == b.idle
                && a.devices == b.devices
        })
}

impl SocketViewing<'_> {
    /// The state a socket starts viewing with.
    fn socket_view(&self) -> SocketView {
        SocketView {
            typing: None,
            device: self.device.clone(),
            draft: self.draft.unwrap_or(false),
            away: self.away,
        }
    }
}

/// The timing and limit rules the registry applies.
#[derive(Debug, Clone, Copy)]
pub struct PresenceRules {
    pub typing_timeout_ms: Millis,
    pub stale_after_ms: Millis,
    pub max_tickets_per_socket: usize,
    /// A viewer without activity this long is idle (v2).
    pub idle_after_ms: Millis,
}

/// Where a change was made: on this node, or on another one and replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Local,
    Remote,
}

/// Viewers of every ticket on this node, and the tickets of every socket.
#[derive(Debug)]
pub struct ViewerRegistry {
    rules: PresenceRules,
    tickets: HashMap<TicketId, SmallMap<AgentId, Viewer>>,
    /// What each socket views, and as which agent.
    sockets: HashMap<Sid, SmallMap<TicketId, AgentId>>,
    /// Typing sockets ordered by when their typing times out.
    typing_deadlines: BTreeSet<(Millis, TicketId, AgentId, Sid)>,
    /// Viewers not idle yet, ordered by when they turn idle without activity.
    idle_deadlines: BTreeSet<(Millis, TicketId, AgentId)>,
}

#[derive(Debug)]
struct Viewer {
    name: AgentName,
    since: Millis,
    last_activity: Millis,
    /// No activity for `idle_after`: set by the idle timer, cleared by the
    /// next activity. While false, the viewer's entry in `idle_deadlines`
    /// is `last_activity + idle_after`.
    timed_out: bool,
    sockets: SmallMap<Sid, SocketView>,
}

#[derive(Debug, Default)]
struct SocketView {
    /// When this socket started typing, and when that times out.
    typing: Option<(Millis, Millis)>,
    device: Device,
    /// An unsaved reply draft (`ticket:draft`).
    draft: bool,
    /// The tab is hidden (`ticket:activity` `away`).
    away: bool,
}

impl Viewer {
    fn is_typing(&self) -> bool {
        self.sockets.values().any(|s| s.typing.is_some())
    }

    fn view(&self, agent: &AgentId) -> ViewerView {
        let typing_started_at = self.sockets.values().filter_map(|s| s.typing.map(|t| t.0)).min();
        ViewerView {
            agent_id: agent.clone(),
            agent_name: self.name.clone(),
            status: if typing_started_at.is_some() {
                ViewerStatus::Typing
            } else {
                ViewerStatus::Viewing
            },
            since: self.since,
            typing_started_at,
            editing: self.sockets.values().any(|s| s.draft),
            idle: self.timed_out || (!self.sockets.is_empty() && self.sockets.values().all(|s| s.away)),
            devices: {
                let devices: BTreeSet<&Device> = self.sockets.values().map(|s| &s.device).collect();
                devices.into_iter().cloned().collect()
            },
        }
    }

    fn sids(&self) -> Vec<Sid> {
        let mut sids: Vec<Sid> = self.sockets.keys().copied().collect();
        sids.sort();
        sids
    }
}

fn not_viewing(ticket: &TicketId, agent: &AgentId) -> ClientError {
    ClientError::NotViewing(format!(
        "this connection is not viewing ticket {ticket} as agent {agent}"
    ))
}

impl ViewerRegistry {
    pub fn new(rules: PresenceRules) -> Self {
        Self {
            rules,
            tickets: HashMap::new(),
            sockets: HashMap::new(),
            typing_deadlines: BTreeSet::new(),
            idle_deadlines: BTreeSet::new(),
        }
    }

    /// `ticket:view` made on this node at `now`: become a viewer, or refresh
    /// one. Returns the viewer list for the ack, and the events to deliver.
    /// (The tests' shorthand for [`ViewerRegistry::apply`].)
    #[cfg(test)]
    pub fn view(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        name: &AgentName,
        now: Millis,
    ) -> Result<(Vec<ViewerView>, Vec<PresenceEvent>), ClientError> {
        self.view_on(sid, ticket, agent, name, &Device::default(), now)
    }

    /// [`ViewerRegistry::view`] with a device (tests).
    #[cfg(test)]
    pub fn view_on(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        name: &AgentName,
        device: &Device,
        now: Millis,
    ) -> Result<(Vec<ViewerView>, Vec<PresenceEvent>), ClientError> {
        let view = SocketViewing {
            sid,
            ticket,
            agent,
            name,
            at: now,
            since: now,
            device,
            draft: None,
            away: false,
            timed_out: false,
        };
        self.view_from(Origin::Local, &view)
    }

    /// A view as made on `origin`. Per-socket limits are the origin's to check.
    fn view_from(
        &mut self,
        origin: Origin,
        view: &SocketViewing<'_>,
    ) -> Result<(Vec<ViewerView>, Vec<PresenceEvent>), ClientError> {
        let SocketViewing { sid, ticket, agent, .. } = *view;
        let current = self.sockets.get(&sid).and_then(|t| t.get(ticket)).cloned();
        let socket_tickets = self.sockets.get(&sid).map_or(0, SmallMap::len);
        if origin == Origin::Local && current.is_none() && socket_tickets >= self.rules.max_tickets_per_socket {
            return Err(ClientError::LimitExceeded(format!(
                "at most {} tickets per connection",
                self.rules.max_tickets_per_socket
            )));
        }
        let mut events = Vec::new();
        // A socket switching agents on a ticket first leaves as the old one.
        if let Some(old) = current.as_ref().filter(|old| *old != agent) {
            self.leave_socket(sid, ticket, old, LeaveReason::Left, &mut events);
        }
        let known = self.tickets.get(ticket).is_some_and(|v| v.contains_key(agent));
        if known {
            let before = self.list(ticket);
            self.view_as_known_viewer(view, &before, &mut events);
        } else {
            self.view_as_new_viewer(view, &mut events);
        }
        Ok((self.list(ticket), events))
    }

    /// The agent starts viewing: the socket is warned about the others, the
    /// room hears `agent:joined` and the new list.
    fn view_as_new_viewer(&mut self, view: &SocketViewing<'_>, events: &mut Vec<PresenceEvent>) {
        let SocketViewing {
            sid,
            ticket,
            agent,
            name,
            ..
        } = *view;
        let since = view.since;
        let others = self.list(ticket);
        let viewer = Viewer {
            name: name.clone(),
            since,
            last_activity: view.at,
            timed_out: view.timed_out,
            sockets: SmallMap::new(),
        };
        self.tickets
            .entry(ticket.clone())
            .or_default()
            .insert(agent.clone(), viewer);
        if !view.timed_out {
            self.idle_deadlines
                .insert((view.at + self.rules.idle_after_ms, ticket.clone(), agent.clone()));
        }
        self.attach(sid, ticket, agent, view.socket_view(), events);
        if !others.is_empty() {
            events.push(PresenceEvent::collision_warning(sid, ticket, others));
        }
        events.push(PresenceEvent::AgentJoined {
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: name.clone(),
            since,
            except: vec![sid],
        });
        events.push(self.viewers_updated(ticket));
    }

    /// The agent already views: activity, and the earliest `since` any of its
    /// sockets brings. A new tab is warned and gets the list; a change of the
    /// list (a new name, device, idle no more) is told to everyone.
    fn view_as_known_viewer(
        &mut self,
        view: &SocketViewing<'_>,
        before: &[ViewerView],
        events: &mut Vec<PresenceEvent>,
    ) {
        let SocketViewing {
            sid,
            ticket,
            agent,
            name,
            ..
        } = *view;
        self.touch(ticket, agent, view.at);
        if view.timed_out {
            self.time_out(ticket, agent, view.at);
        }
        let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) else {
            return;
        };
        viewer.since = viewer.since.min(view.since);
        viewer.name = name.clone();
        let new_tab = !viewer.sockets.contains_key(&sid);
        if let Some(socket) = viewer.sockets.get_mut(&sid) {
            socket.device = view.device.clone();
            socket.away = view.away;
            if let Some(draft) = view.draft {
                socket.draft = draft;
            }
        }
        if new_tab {
            self.attach(sid, ticket, agent, view.socket_view(), events);
            let others: Vec<ViewerView> = self.list(ticket).into_iter().filter(|v| v.agent_id != *agent).collect();
            if !others.is_empty() {
                events.push(PresenceEvent::collision_warning(sid, ticket, others));
            }
        }
        if !same_states(&self.list(ticket), before) {
            // The list changed (a name, a device, idle): everyone hears it.
            events.push(self.viewers_updated(ticket));
        } else if new_tab {
            events.push(PresenceEvent::ViewersTo {
                sid,
                ticket: ticket.clone(),
                viewers: self.list(ticket),
            });
        }
    }

    /// `ticket:typing`: the socket's agent types. Repeats only renew the timeout.
    pub fn typing(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        now: Millis,
    ) -> Result<Vec<PresenceEvent>, ClientError> {
        self.change_view(sid, ticket, agent, |this, events| {
            this.set_away(sid, ticket, agent, false);
            let deadline = now + this.rules.typing_timeout_ms;
            this.set_typing(sid, ticket, agent, now, deadline, events);
        })
    }

    /// A change a socket makes to its own view of a ticket it views as
    /// `agent`: checked, made by `change`, and told to the room when it
    /// changed the viewer list.
    fn change_view(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        change: impl FnOnce(&mut Self, &mut Vec<PresenceEvent>),
    ) -> Result<Vec<PresenceEvent>, ClientError> {
        self.check_viewing(sid, ticket, agent)?;
        let before = self.list(ticket);
        let mut events = Vec::new();
        change(self, &mut events);
        self.tell_if_changed(ticket, &before, 0, &mut events);
        Ok(events)
    }

    /// The socket types since `started` (unless it already did) until
    /// `deadline`; tells the room when the viewer starts typing.
    fn set_typing(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        started: Millis,
        deadline: Millis,
        events: &mut Vec<PresenceEvent>,
    ) {
        // Typing renewed at `deadline - typing_timeout` is activity then.
        self.touch(ticket, agent, deadline.saturating_sub(self.rules.typing_timeout_ms));
        let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) else {
            return;
        };
        let was_typing = viewer.is_typing();
        let socket = viewer.sockets.get_or_default(sid);
        let started = match socket.typing.take() {
            Some((first, old_deadline)) => {
                self.typing_deadlines
                    .remove(&(old_deadline, ticket.clone(), agent.clone(), sid));
                first.min(started)
            }
            None => started,
        };
        socket.typing = Some((started, deadline));
        self.typing_deadlines
            .insert((deadline, ticket.clone(), agent.clone(), sid));
        if !was_typing {
            events.push(PresenceEvent::AgentTyping {
                ticket: ticket.clone(),
                agent: agent.clone(),
                name: viewer.name.clone(),
                except: viewer.sids(),
            });
            events.push(self.viewers_updated(ticket));
        }
    }

    /// `ticket:stop_typing`: the socket's agent stops typing.
    pub fn stop_typing(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        now: Millis,
    ) -> Result<Vec<PresenceEvent>, ClientError> {
        self.change_view(sid, ticket, agent, |this, events| {
            this.touch(ticket, agent, now);
            this.set_away(sid, ticket, agent, false);
            this.clear_typing(sid, ticket, agent, events);
        })
    }

    /// `ticket:draft`: the socket has (or no longer has) a reply draft.
    /// Activity either way; the room hears only a change of the list.
    pub fn draft(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        editing: bool,
        now: Millis,
    ) -> Result<Vec<PresenceEvent>, ClientError> {
        self.change_view(sid, ticket, agent, |this, _| {
            this.touch(ticket, agent, now);
            this.set_away(sid, ticket, agent, false);
            if let Some(socket) = this.socket_mut(sid, ticket, agent) {
                socket.draft = editing;
            }
        })
    }

    /// `ticket:activity`: the socket's tab is in use (activity) or hidden
    /// (not activity). The room hears only a change of the list.
    pub fn activity(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        state: TabState,
        now: Millis,
    ) -> Result<Vec<PresenceEvent>, ClientError> {
        self.change_view(sid, ticket, agent, |this, _| {
            if state == TabState::Active {
                this.touch(ticket, agent, now);
            }
            this.set_away(sid, ticket, agent, state == TabState::Away);
        })
    }

    /// `ticket:leave`: the socket stops viewing the ticket.
    pub fn leave(&mut self, sid: Sid, ticket: &TicketId, agent: &AgentId) -> Result<Vec<PresenceEvent>, ClientError> {
        self.check_viewing(sid, ticket, agent)?;
        let mut events = Vec::new();
        self.leave_socket(sid, ticket, agent, LeaveReason::Left, &mut events);
        Ok(events)
    }

    /// The socket is gone (`Disconnected`, or `NodeLost` with its node):
    /// every ticket it viewed is left.
    pub fn disconnect(&mut self, sid: Sid, reason: LeaveReason) -> Vec<PresenceEvent> {
        let mut events = Vec::new();
        let Some(views) = self.sockets.get(&sid) else {
            return events;
        };
        let mut views: Vec<(TicketId, AgentId)> = views.iter().map(|(t, a)| (t.clone(), a.clone())).collect();
        views.sort();
        for (ticket, agent) in views {
            self.leave_socket(sid, &ticket, &agent, reason, &mut events);
        }
        self.sockets.remove(&sid);
        events
    }

    /// Applies one change; returns the viewer list for a view's ack, and the
    /// events to deliver. Remote changes replay what another node did.
    pub fn apply(&mut self, op: &PresenceOp, origin: Origin) -> Result<Applied, ClientError> {
        Ok(match op {
            PresenceOp::View {
                sid,
                ticket,
                agent,
                name,
                at,
                device,
            } => {
                let view = SocketViewing {
                    sid: *sid,
                    ticket,
                    agent,
                    name,
                    at: *at,
                    since: *at,
                    device,
                    draft: None,
                    away: false,
                    timed_out: false,
                };
                let (viewers, events) = self.view_from(origin, &view)?;
                Applied {
                    ack_viewers: Some(viewers),
                    events,
                }
            }
            PresenceOp::Typing { sid, ticket, agent, at } => Applied::events(self.typing(*sid, ticket, agent, *at)?),
            PresenceOp::StopTyping { sid, ticket, agent, at } => {
                Applied::events(self.stop_typing(*sid, ticket, agent, *at)?)
            }
            PresenceOp::Draft {
                sid,
                ticket,
                agent,
                editing,
                at,
            } => Applied::events(self.draft(*sid, ticket, agent, *editing, *at)?),
            PresenceOp::Activity {
                sid,
                ticket,
                agent,
                state,
                at,
            } => Applied::events(self.activity(*sid, ticket, agent, *state, *at)?),
            PresenceOp::Leave { sid, ticket, agent } => Applied::events(self.leave(*sid, ticket, agent)?),
            PresenceOp::Disconnect { sid } => Applied::events(self.disconnect(*sid, LeaveReason::Disconnected)),
            PresenceOp::Stale { sid, ticket, agent } => {
                self.check_viewing(*sid, ticket, agent)?;
                let mut events = Vec::new();
                self.leave_socket(*sid, ticket, agent, LeaveReason::Stale, &mut events);
                Applied::events(events)
            }
        })
    }

    /// The viewers of a ticket, ordered by `since`, then `agentId`.
    pub fn list(&self, ticket: &TicketId) -> Vec<ViewerView> {
        let Some(viewers) = self.tickets.get(ticket) else {
            return Vec::new();
        };
        let mut list: Vec<ViewerView> = viewers.iter().map(|(agent, v)| v.view(agent)).collect();
        list.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.agent_id.cmp(&b.agent_id)));
        list
    }

    /// How many viewers of `ticket` are not `except` and have a socket for
    /// which `counted` holds (the agents a ticket update notifies).
    pub fn agents_other_than(
        &self,
        ticket: &TicketId,
        except: Option<&AgentId>,
        counted: impl Fn(Sid) -> bool,
    ) -> usize {
        self.tickets.get(ticket).map_or(0, |viewers| {
            viewers
                .iter()
                .filter(|(agent, _)| except != Some(*agent))
                .filter(|(_, v)| v.sockets.keys().any(|sid| counted(*sid)))
                .count()
        })
    }

    /// The sockets (on any node) through which `agent` views `ticket`.
    pub fn sockets_of(&self, ticket: &TicketId, agent: &AgentId) -> Vec<Sid> {
        self.tickets
            .get(ticket)
            .and_then(|v| v.get(agent))
            .map(Viewer::sids)
            .unwrap_or_default()
    }

    pub fn stats(&self) -> PresenceStats {
        PresenceStats {
            tickets: self.tickets.len(),
            viewers: self.tickets.values().map(SmallMap::len).sum(),
        }
    }

    /// Counts only viewers with at least one socket for which `local` holds
    /// (this node's share of a replicated registry).
    pub fn stats_where(&self, local: impl Fn(Sid) -> bool) -> PresenceStats {
        let mut stats = PresenceStats::default();
        for viewers in self.tickets.values() {
            let here = viewers
                .values()
                .filter(|v| v.sockets.keys().any(|sid| local(*sid)))
                .count();
            stats.viewers += here;
            stats.tickets += usize::from(here > 0);
        }
        stats
    }

    fn check_viewing(&self, sid: Sid, ticket: &TicketId, agent: &AgentId) -> Result<(), ClientError> {
        match self.sockets.get(&sid).and_then(|t| t.get(ticket)) {
            Some(viewing_as) if viewing_as == agent => Ok(()),
            _ => Err(not_viewing(ticket, agent)),
        }
    }

    fn viewers_updated(&self, ticket: &TicketId) -> PresenceEvent {
        PresenceEvent::ViewersUpdated {
            ticket: ticket.clone(),
            viewers: self.list(ticket),
        }
    }

    /// Records that `sid` views `ticket` as `agent` (the viewer exists).
    fn attach(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        socket: SocketView,
        events: &mut Vec<PresenceEvent>,
    ) {
        if let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) {
            viewer.sockets.insert(sid, socket);
        }
        self.sockets
            .entry(sid)
            .or_default()
            .insert(ticket.clone(), agent.clone());
        events.push(PresenceEvent::JoinRoom {
            sid,
            ticket: ticket.clone(),
        });
    }

    /// One socket stops typing; tells the room if the viewer no longer types.
    fn clear_typing(&mut self, sid: Sid, ticket: &TicketId, agent: &AgentId, events: &mut Vec<PresenceEvent>) {
        let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) else {
            return;
        };
        let was_typing = viewer.is_typing();
        if let Some((_, deadline)) = viewer.sockets.get_mut(&sid).and_then(|s| s.typing.take()) {
            self.typing_deadlines
                .remove(&(deadline, ticket.clone(), agent.clone(), sid));
        }
        if was_typing && !viewer.is_typing() {
            events.push(PresenceEvent::AgentStoppedTyping {
                ticket: ticket.clone(),
                agent: agent.clone(),
                name: viewer.name.clone(),
                except: viewer.sids(),
            });
            events.push(self.viewers_updated(ticket));
        }
    }

    /// One socket stops viewing one ticket, as by `ticket:leave`.
    fn leave_socket(
        &mut self,
        sid: Sid,
        ticket: &TicketId,
        agent: &AgentId,
        reason: LeaveReason,
        events: &mut Vec<PresenceEvent>,
    ) {
        let before = self.list(ticket);
        let mark = events.len();
        self.forget_view(sid, ticket, events);
        let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) else {
            return;
        };
        if viewer.sockets.keys().all(|s| *s == sid) {
            // The last tab: the viewer goes. The leaving socket is already
            // out of the room; the rest hears it.
            self.clear_typing(sid, ticket, agent, events);
            if let Some(viewer) = self.tickets.get_mut(ticket).and_then(|v| v.get_mut(agent)) {
                viewer.sockets.remove(&sid);
            }
            self.remove_viewer(ticket, agent, reason, events);
            return;
        }
        // One tab of several: its typing, draft, device and tab state go
        // with it, and the room hears the new list once.
        let was_typing = viewer.is_typing();
        let typing = viewer.sockets.remove(&sid).and_then(|s| s.typing);
        if let Some((_, deadline)) = typing {
            self.typing_deadlines
                .remove(&(deadline, ticket.clone(), agent.clone(), sid));
        }
        if let Some(viewer) = self.tickets.get(ticket).and_then(|v| v.get(agent))
            && was_typing
            && !viewer.is_typing()
        {
            events.push(PresenceEvent::AgentStoppedTyping {
                ticket: ticket.clone(),
                agent: agent.clone(),
                name: viewer.name.clone(),
                except: viewer.sids(),
            });
        }
        self.tell_if_changed(ticket, &before, mark, events);
    }

    fn socket_mut(&mut self, sid: Sid, ticket: &TicketId, agent: &AgentId) -> Option<&mut SocketView> {
        self.tickets.get_mut(ticket)?.get_mut(agent)?.sockets.get_mut(&sid)
    }

    /// Any ticket event of a socket but `ticket:activity` makes its tab active.
    fn set_away(&mut self, sid: Sid, ticket: &TicketId, agent: &AgentId, away: bool) {
        if let Some(socket) = self.socket_mut(sid, ticket, agent) {
            socket.away = away;
        }
    }

    /// `viewers:updated` when the list differs from what the room was last
    /// told: the last list queued since `mark`, else `before`. So a change
    /// is broadcast once, and no change is broadcast at all.
    fn tell_if_changed(&self, ticket: &TicketId, before: &[ViewerView], mark: usize, events: &mut Vec<PresenceEvent>) {
        let told = events[mark.min(events.len())..]
            .iter()
            .rev()
            .find_map(|e| match e {
                PresenceEvent::ViewersUpdated { ticket: t, viewers } if t == ticket => Some(viewers.as_slice()),
                _ => None,
            })
            .unwrap_or(before);
        let now = self.list(ticket);
        if !same_states(told, &now) {
            events.push(PresenceEvent::ViewersUpdated {
                ticket: ticket.clone(),
                viewers: now,
            });
        }
    }

    /// Removes a whole viewer; sockets still attached to it (stale sweep) hear
    /// `agent:left` too, then leave the room and forget the ticket.
    fn remove_viewer(
        &mut self,
        ticket: &TicketId,
        agent: &AgentId,
        reason: LeaveReason,
        events: &mut Vec<PresenceEvent>,
    ) {
        let Some(viewers) = self.tickets.get_mut(ticket) else {
            return;
        };
        let Some(viewer) = viewers.remove(agent) else {
            return;
        };
        if viewers.is_empty() {
            self.tickets.remove(ticket);
        }
        if !viewer.timed_out {
            self.idle_deadlines.remove(&(
                viewer.last_activity + self.rules.idle_after_ms,
                ticket.clone(),
                agent.clone(),
            ));
        }
        for (sid, socket) in viewer.sockets.iter() {
            if let Some((_, deadline)) = socket.typing {
                self.typing_deadlines
                    .remove(&(deadline, ticket.clone(), agent.clone(), *sid));
            }
        }
        events.push(PresenceEvent::AgentLeft {
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: viewer.name.clone(),
            reason,
            except: Vec::new(),
        });
        for sid in viewer.sids() {
            self.forget_view(sid, ticket, events);
        }
        events.push(self.viewers_updated(ticket));
    }

    /// The socket no longer views the ticket and leaves its room.
    fn forget_view(&mut self, sid: Sid, ticket: &TicketId, events: &mut Vec<PresenceEvent>) {
        if let Some(views) = self.sockets.get_mut(&sid) {
            views.remove(ticket);
            if views.is_empty() {
                self.sockets.remove(&sid);
            }
        }
        events.push(PresenceEvent::LeaveRoom {
            sid,
            ticket: ticket.clone(),
        });
    }
}
