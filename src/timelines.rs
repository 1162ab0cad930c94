//! Timelines (contract §4): the events backends publish, and the
//! subscriptions per socket and per room.
//!
//! Delivery itself goes through Socket.IO rooms; the registry only keeps what
//! the rooms cannot tell cheaply: each socket's count (for the limit) and
//! each room's subscriber count (for stats and metrics).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use socketioxide::socket::Sid;

use crate::error::ClientError;
use crate::ids::{Invalid, ItemId, TimelineKey};

/// One event a backend published to a timeline; every subscriber on every
/// node receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub key: TimelineKey,
    pub change: TimelineChange,
}

/// What happened on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineChange {
    NewItem { item: Map<String, Value> },
    ItemUpdated { item_id: ItemId, item: Map<String, Value> },
    Refresh { reason: Option<String> },
}

impl TimelineEvent {
    /// A new item: a JSON object with an `id` (a string or an integer).
    pub fn new_item(key: TimelineKey, item: Option<&Value>) -> Result<Self, Invalid> {
        let item = item_object(item)?;
        match item.get("id") {
            Some(Value::String(_)) => {}
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            _ => return Err(Invalid("item must have an \"id\" (a string or an integer)".into())),
        }
        Ok(Self {
            key,
            change: TimelineChange::NewItem { item },
        })
    }

    /// An updated item: any JSON object.
    pub fn item_updated(key: TimelineKey, item_id: ItemId, item: Option<&Value>) -> Result<Self, Invalid> {
        Ok(Self {
            key,
            change: TimelineChange::ItemUpdated {
                item_id,
                item: item_object(item)?,
            },
        })
    }

    /// "Reload the timeline", with an optional reason.
    pub fn refresh(key: TimelineKey, reason: Option<&Value>) -> Result<Self, Invalid> {
        let reason = match reason {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Invalid("reason must be a string or null".into())),
        };
        Ok(Self {
            key,
            change: TimelineChange::Refresh { reason },
        })
    }
}

impl TimelineChange {
    /// The `kind` label of the publish metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NewItem { .. } => "new_item",
            Self::ItemUpdated { .. } => "item_updated",
            Self::Refresh { .. } => "refresh",
        }
    }
}

fn item_object(item: Option<&Value>) -> Result<Map<String, Value>, Invalid> {
    item.and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| Invalid("item must be a JSON object".into()))
}

/// What a subscribe or unsubscribe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The socket must join (subscribe) or leave (unsubscribe) the room.
    Changed,
    /// Already subscribed, or not subscribed: nothing to do but answer.
    Unchanged,
}

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

    /// Subscribes; subscribing twice is one subscription.
    pub fn subscribe(&mut self, sid: Sid, key: &TimelineKey) -> Result<Membership, ClientError> {
        let subs = self.sockets.entry(sid).or_default();
        if subs.contains(key) {
            return Ok(Membership::Unchanged);
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
        Ok(Membership::Changed)
    }

    /// Unsubscribes; unsubscribing from a timeline not followed is no error.
    pub fn unsubscribe(&mut self, sid: Sid, key: &TimelineKey) -> Membership {
        let Some(subs) = self.sockets.get_mut(&sid) else {
            return Membership::Unchanged;
        };
        if !subs.remove(key) {
            return Membership::Unchanged;
        }
        if subs.is_empty() {
            self.sockets.remove(&sid);
        }
        self.release(key);
        Membership::Changed
    }

    /// The socket is gone: all its subscriptions end.
    pub fn disconnect(&mut self, sid: Sid) {
        for key in self.sockets.remove(&sid).unwrap_or_default() {
            self.release(&key);
        }
    }

    pub fn is_subscribed(&self, sid: Sid, key: &TimelineKey) -> bool {
        self.sockets.get(&sid).is_some_and(|subs| subs.contains(key))
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
        assert_eq!(r.subscribe(s, &key("contact", "1")), Ok(Membership::Changed));
        assert_eq!(r.subscribe(s, &key("contact", "1")), Ok(Membership::Unchanged));
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
        assert_eq!(r.unsubscribe(s2, &key("deal", "1")), Membership::Changed);
        assert_eq!(
            r.unsubscribe(s2, &key("deal", "1")),
            Membership::Unchanged,
            "unsubscribing twice is a no-op"
        );
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
        assert_eq!(
            r.subscribe(s, &key("contact", "2")),
            Ok(Membership::Unchanged),
            "a known subscription still answers"
        );
        assert_eq!(r.subscribe(Sid::new(), &key("contact", "3")), Ok(Membership::Changed));
    }

    #[test]
    fn zero_limit_refuses_everything_and_keeps_no_entry() {
        let mut r = TimelineRegistry::new(0);
        let s = Sid::new();
        assert!(r.subscribe(s, &key("contact", "1")).is_err());
        assert!(r.sockets.is_empty());
    }
}
