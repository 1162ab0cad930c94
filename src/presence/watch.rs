use std::collections::{HashMap, HashSet};

use socketioxide::socket::Sid;

use crate::error::ClientError;
use crate::ids::TicketId;

/// Which tickets each socket watches from a list view (§3.2). A watch is
/// this node's business only: every node holds the whole cluster's viewer
/// lists and tells its own watchers of each change, local or replicated.
#[derive(Debug)]
pub struct WatchRegistry {
    max_per_socket: usize,
    sockets: HashMap<Sid, HashSet<TicketId>>,
}

impl WatchRegistry {
    pub fn new(max_per_socket: usize) -> Self {
        Self {
            max_per_socket,
            sockets: HashMap::new(),
        }
    }

    /// `tickets:watch`: all of `tickets` or none. Returns the tickets the
    /// socket did not watch yet (each once, in the order given), whose rooms
    /// it must join; `LIMIT_EXCEEDED` when they would take the socket past
    /// `max_watched_tickets`.
    pub fn watch(&mut self, sid: Sid, tickets: &[TicketId]) -> Result<Vec<TicketId>, ClientError> {
        let watched = self.sockets.get(&sid);
        let mut new: Vec<TicketId> = Vec::new();
        for ticket in tickets {
            if !watched.is_some_and(|w| w.contains(ticket)) && !new.contains(ticket) {
                new.push(ticket.clone());
            }
        }
        let count = watched.map_or(0, HashSet::len);
        if count + new.len() > self.max_per_socket {
            return Err(ClientError::LimitExceeded(format!(
                "at most {} watched tickets per connection ({count} watched, {} more asked)",
                self.max_per_socket,
                new.len()
            )));
        }
        if !new.is_empty() {
            self.sockets.entry(sid).or_default().extend(new.iter().cloned());
        }
        Ok(new)
    }

    /// `tickets:unwatch`: returns the tickets the socket stops watching
    /// (those it did not watch are ignored).
    pub fn unwatch(&mut self, sid: Sid, tickets: &[TicketId]) -> Vec<TicketId> {
        let Some(watched) = self.sockets.get_mut(&sid) else {
            return Vec::new();
        };
        let removed: Vec<TicketId> = tickets.iter().filter(|t| watched.remove(*t)).cloned().collect();
        if watched.is_empty() {
            self.sockets.remove(&sid);
        }
        removed
    }

    /// The socket is gone: every watch ends (socketioxide empties its rooms).
    pub fn disconnect(&mut self, sid: Sid) {
        self.sockets.remove(&sid);
    }

    /// How many tickets the socket watches.
    #[cfg(test)]
    pub fn count(&self, sid: Sid) -> usize {
        self.sockets.get(&sid).map_or(0, HashSet::len)
    }
}
