//! Timeline subscriptions per socket and per room (contract §4).
//!
//! Delivery itself goes through Socket.IO rooms; this registry only keeps what
//! the rooms cannot tell cheaply: each socket's count (for the limit) and
//! each room's subscriber count (for stats and metrics).

use std::collections::{HashMap, HashSet};

use socketioxide::socket::Sid;

use crate::error::ClientError;
use crate::ids::TimelineKey;

#[derive(Debug)]
pub struct TimelineRegistry {
    max_per_socket: usize,
    sockets: HashMap<Sid, HashSet<TimelineKey>>,
    rooms: HashMap<TimelineKey, usize>,
}

/// Counts for `/v1/stats` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineStats {
    pub rooms: usize,
    pub subscriptions: usize,
}

impl TimelineRegistry {
    pub fn new(max_per_socket: usize) -> Self {
        Self {
            max_per_socket,
            sockets: HashMap::new(),
            rooms: HashMap::new(),
        }
    }

    /// Subscribes; returns whether this is a new subscription (so the socket
    /// must join the room). Subscribing twice is one subscription.
    pub fn subscribe(&mut self, sid: Sid, key: &TimelineKey) -> Result<bool, ClientError> {
        let subs = self.sockets.entry(sid).or_default();
        if subs.contains(key) {
            return Ok(false);
        }
        if subs.len() >= self.max_per_socket {
            if subs.is_empty() {
                self.sockets.remove(&sid);
            }
            return Err(ClientError::LimitExceeded(format!(
                "at most {} timelines per connection",
                self.max_per_socket
            )));
        }
        subs.insert(key.clone());
        *self.rooms.entry(key.clone()).or_default() += 1;
        Ok(true)
    }

    /// Unsubscribes; returns whether the socket was subscribed.
    pub fn unsubscribe(&mut self, sid: Sid, key: &TimelineKey) -> bool {
        let Some(subs) = self.sockets.get_mut(&sid) else {
            return false;
        };
        if !subs.remove(key) {
            return false;
        }
        if subs.is_empty() {
            self.sockets.remove(&sid);
        }
        self.release(key);
        true
    }

    /// The socket is gone: all its subscriptions end.
    pub fn disconnect(&mut self, sid: Sid) {
        for key in self.sockets.remove(&sid).unwrap_or_default() {
            self.release(&key);
        }
    }

    /// Timelines with at least one subscriber on this node.
    pub fn rooms(&self) -> impl Iterator<Item = &TimelineKey> {
        self.rooms.keys()
    }

    pub fn stats(&self) -> TimelineStats {
        TimelineStats {
            rooms: self.rooms.len(),
            subscriptions: self.rooms.values().sum(),
        }
    }

    fn release(&mut self, key: &TimelineKey) {
        if let Some(count) = self.rooms.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.rooms.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntityId, EntityType};
    use serde_json::json;

    fn key(t: &str, id: &str) -> TimelineKey {
        TimelineKey {
            entity_type: EntityType::parse(Some(&json!(t))).unwrap(),
            entity_id: EntityId::parse(Some(&json!(id))).unwrap(),
        }
    }

    #[test]
    fn subscribing_twice_is_one_subscription() {
        let mut r = TimelineRegistry::new(10);
        let s = Sid::new();
        assert!(r.subscribe(s, &key("contact", "1")).unwrap());
        assert!(!r.subscribe(s, &key("contact", "1")).unwrap());
        assert_eq!(
            r.stats(),
            TimelineStats {
                rooms: 1,
                subscriptions: 1
            }
        );
        assert_eq!(key("contact", "1").room(), "timeline:contact:1");
    }

    #[test]
    fn counts_follow_sockets_and_rooms() {
        let mut r = TimelineRegistry::new(10);
        let (s1, s2) = (Sid::new(), Sid::new());
        r.subscribe(s1, &key("contact", "1")).unwrap();
        r.subscribe(s2, &key("contact", "1")).unwrap();
        r.subscribe(s2, &key("deal", "1")).unwrap();
        assert_eq!(
            r.stats(),
            TimelineStats {
                rooms: 2,
                subscriptions: 3
            }
        );
        assert!(r.unsubscribe(s2, &key("deal", "1")));
        assert!(!r.unsubscribe(s2, &key("deal", "1")), "unsubscribing twice is a no-op");
        r.disconnect(s1);
        assert_eq!(
            r.stats(),
            TimelineStats {
                rooms: 1,
                subscriptions: 1
            }
        );
        r.disconnect(s2);
        assert_eq!(r.stats(), TimelineStats::default());
        assert!(r.sockets.is_empty());
    }

    #[test]
    fn limit_per_socket() {
        let mut r = TimelineRegistry::new(2);
        let s = Sid::new();
        r.subscribe(s, &key("contact", "1")).unwrap();
        r.subscribe(s, &key("contact", "2")).unwrap();
        assert!(matches!(
            r.subscribe(s, &key("contact", "3")),
            Err(ClientError::LimitExceeded(_))
        ));
        assert!(
            !r.subscribe(s, &key("contact", "2")).unwrap(),
            "a known subscription still answers"
        );
        assert!(r.subscribe(Sid::new(), &key("contact", "3")).unwrap());
    }

    #[test]
    fn zero_limit_refuses_everything_and_keeps_no_entry() {
        let mut r = TimelineRegistry::new(0);
        let s = Sid::new();
        assert!(r.subscribe(s, &key("contact", "1")).is_err());
        assert!(r.sockets.is_empty());
    }
}
