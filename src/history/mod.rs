//! Timeline offsets, epochs and history (contract §4.1), in this process's
//! memory: a plain synchronous type, time passed in.
//!
//! Each timeline has an epoch (a name for its stream of events) and the
//! offset of its last event; each publish gets the next offset and is kept,
//! up to `history_size` events, so that a client that comes back with
//! `since: { offset, epoch }` gets exactly what it missed. A timeline's
//! state exists from its first subscribe or publish; `history_ttl` after its
//! last publish the history is gone, and so is the epoch: the timeline
//! starts again at offset 0 of a new epoch (and is forgotten altogether
//! when nobody here follows it), so a `since` from before is not recovered.

mod mirror;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

pub use mirror::{Fetched, Mirror};

use crate::ids::TimelineKey;
use crate::presence::Millis;
use crate::timelines::TimelineEvent;

/// Where a timeline stands: the offset of its last event in `epoch` (0 when
/// none was published in this epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: Arc<str>,
}

/// An event as published, with its offset (also the shape of a history
/// entry in Redis).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub offset: u64,
    pub event: TimelineEvent,
}

/// What a subscribe with `since` gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// Every event after `since`, in order (possibly none).
    Recovered(Vec<Recorded>),
    /// Another epoch, history too short or off, or an offset ahead.
    Lost,
}

#[derive(Debug)]
pub struct Histories {
    /// Events kept per timeline.
    size: usize,
    ttl_ms: Millis,
    /// This process's part of every epoch it names: a restarted instance
    /// never reuses an epoch.
    process: String,
    /// Epochs named so far, for the next one.
    named: u64,
    timelines: HashMap<TimelineKey, History>,
}

/// One timeline's stream: its epoch, the offset of its last event, and the
/// last events (contiguous offsets, the newest last).
#[derive(Debug)]
struct History {
    epoch: Arc<str>,
    offset: u64,
    events: VecDeque<Recorded>,
    last_publish: Option<Millis>,
}

impl History {
    fn new(epoch: Arc<str>) -> Self {
        Self {
            epoch,
            offset: 0,
            events: VecDeque::new(),
            last_publish: None,
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }

    /// Appends the event of offset `self.offset + 1`, keeping at most `size`.
    fn push(&mut self, event: TimelineEvent, size: usize, now: Millis) {
        self.offset += 1;
        self.last_publish = Some(now);
        if size > 0 {
            if self.events.len() == size {
                self.events.pop_front();
            }
            self.events.push_back(Recorded {
                offset: self.offset,
                event,
            });
        }
    }

    /// The events after `offset` of `epoch`, when all of them are kept.
    fn recover(&self, offset: u64, epoch: &str) -> Recovery {
        if *self.epoch != *epoch || offset > self.offset {
            return Recovery::Lost;
        }
        let missed = self.offset - offset;
        let kept = self.events.len() as u64;
        if missed > kept {
            return Recovery::Lost;
        }
        let from = (kept - missed) as usize;
        Recovery::Recovered(self.events.range(from..).cloned().collect())
    }
}

impl Histories {
    /// `process` names this process (random per start).
    pub fn new(size: usize, ttl_ms: Millis, process: String) -> Self {
        Self {
            size,
            ttl_ms,
            process,
            named: 0,
            timelines: HashMap::new(),
        }
    }

    fn timeline(&mut self, key: &TimelineKey) -> &mut History {
        if !self.timelines.contains_key(key) {
            self.named += 1;
            let epoch = format!("{}-{:x}", self.process, self.named).into();
            self.timelines.insert(key.clone(), History::new(epoch));
        }
        self.timelines.get_mut(key).expect("inserted above")
    }

    /// The timeline's position; its epoch is the one the next event carries.
    pub fn position(&mut self, key: &TimelineKey) -> Position {
        self.timeline(key).position()
    }

    /// Gives `event` the next offset of its timeline and keeps it.
    pub fn record(&mut self, event: &TimelineEvent, now: Millis) -> Position {
        let size = self.size;
        let history = self.timeline(&event.key);
        history.push(event.clone(), size, now);
        history.position()
    }

    /// The events after `offset` of `epoch`, when all of them are still kept.
    pub fn recover(&mut self, key: &TimelineKey, offset: u64, epoch: &str) -> Recovery {
        self.timeline(key).recover(offset, epoch)
    }

    /// Ends the histories `history_ttl` past their last publish: a timeline
    /// followed here starts a new epoch, any other is forgotten, as are
    /// timelines nobody follows that never had a publish.
    pub fn expire(&mut self, now: Millis, followed: impl Fn(&TimelineKey) -> bool) {
        let ttl = self.ttl_ms;
        let mut renewed = Vec::new();
        self.timelines.retain(|key, history| {
            let expired = history.last_publish.is_some_and(|at| now.saturating_sub(at) >= ttl);
            let idle = history.last_publish.is_none() || expired;
            if !idle || !followed(key) {
                return !idle;
            }
            if expired {
                renewed.push(key.clone());
                return false;
            }
            true
        });
        for key in renewed {
            self.timeline(&key);
        }
    }

    /// Timelines with state here, for tests and figures.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.timelines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntityId, EntityType};
    use serde_json::json;

    fn key(id: u64) -> TimelineKey {
        TimelineKey {
            entity_type: EntityType::parse(Some(&json!("deal"))).unwrap(),
            entity_id: EntityId::parse(Some(&json!(id))).unwrap(),
        }
    }

    fn item(key: &TimelineKey, id: u64) -> TimelineEvent {
        TimelineEvent::new_item(key.clone(), Some(&json!({ "id": id }))).unwrap()
    }

    fn offsets(r: Recovery) -> Option<Vec<u64>> {
        match r {
            Recovery::Recovered(events) => Some(events.iter().map(|e| e.offset).collect()),
            Recovery::Lost => None,
        }
    }

    #[test]
    fn offsets_are_contiguous_per_timeline_from_one() {
        let mut h = Histories::new(100, 1000, "p".into());
        let (a, b) = (key(1), key(2));
        let before = h.position(&a);
        assert_eq!(before.offset, 0);
        let first = h.record(&item(&a, 1), 0);
        assert_eq!(
            first,
            Position {
                offset: 1,
                epoch: before.epoch.clone()
            },
            "the ack's epoch is the first event's"
        );
        assert_eq!(h.record(&item(&a, 2), 0).offset, 2);
        assert_eq!(h.record(&item(&b, 1), 0).offset, 1, "each timeline counts on its own");
        assert_ne!(h.position(&b).epoch, before.epoch);
    }

    #[test]
    fn recovers_what_was_missed_while_history_holds_it() {
        let mut h = Histories::new(3, 1000, "p".into());
        let a = key(1);
        let epoch = h.position(&a).epoch;
        for i in 1..=5 {
            h.record(&item(&a, i), 0);
        }
        assert_eq!(offsets(h.recover(&a, 5, &epoch)), Some(vec![]), "nothing missed");
        assert_eq!(offsets(h.recover(&a, 3, &epoch)), Some(vec![4, 5]));
        assert_eq!(offsets(h.recover(&a, 2, &epoch)), Some(vec![3, 4, 5]));
        assert_eq!(offsets(h.recover(&a, 1, &epoch)), None, "history too short");
        assert_eq!(offsets(h.recover(&a, 6, &epoch)), None, "offset ahead");
        assert_eq!(offsets(h.recover(&a, 5, "other")), None, "another epoch");
    }

    #[test]
    fn without_history_only_nothing_missed_is_recovered() {
        let mut h = Histories::new(0, 1000, "p".into());
        let a = key(1);
        let epoch = h.position(&a).epoch;
        h.record(&item(&a, 1), 0);
        assert_eq!(offsets(h.recover(&a, 0, &epoch)), None);
        assert_eq!(offsets(h.recover(&a, 1, &epoch)), Some(vec![]));
    }

    #[test]
    fn expiry_starts_a_new_epoch_or_forgets_the_timeline() {
        let mut h = Histories::new(10, 1000, "p".into());
        let (followed, alone, quiet) = (key(1), key(2), key(3));
        let old = h.record(&item(&followed, 1), 0);
        h.record(&item(&alone, 1), 0);
        let quiet_epoch = h.position(&quiet).epoch;
        h.expire(999, |k| *k != alone);
        assert_eq!(h.position(&followed), old, "not yet");
        h.expire(1000, |k| *k != alone);
        let renewed = h.position(&followed);
        assert_eq!(renewed.offset, 0);
        assert_ne!(renewed.epoch, old.epoch);
        assert_eq!(
            offsets(h.recover(&followed, 1, &old.epoch)),
            None,
            "a since from before is lost"
        );
        assert_eq!(h.position(&quiet).epoch, quiet_epoch, "followed, never published: kept");
        assert_eq!(h.len(), 2, "the timeline nobody follows is forgotten");
        h.record(&item(&quiet, 1), 4500);
        h.expire(5000, |_| false);
        assert_eq!(h.len(), 1, "only the one with a recent publish is left");
    }
}
