//! What one node of a cluster knows of the timeline histories kept in Redis
//! (contract §4.1 with `redis_url`): for each timeline its sockets follow,
//! the recent events as heard on the cluster channel, so that most
//! subscribes with `since` are answered without asking Redis.
//!
//! Redis assigns the offsets and publishes each event with its offset on
//! the channel, so every node hears a timeline's events in offset order.
//! A timeline's mirror is *synced* once it was read from Redis and every
//! event since was heard: then it is what Redis holds, and answers alone.
//! It stops being synced when an event is missing (a gap, a lost channel
//! connection) or when Redis may have expired the history; the next
//! subscribe that needs it reads Redis again ([`Mirror::merge`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{History, Position, Recorded, Recovery};
use crate::ids::TimelineKey;
use crate::presence::Millis;
use crate::timelines::TimelineEvent;

/// A timeline's history as read from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub epoch: Arc<str>,
    pub offset: u64,
    /// The kept events, oldest first.
    pub events: Vec<Recorded>,
}

#[derive(Debug)]
pub struct Mirror {
    size: usize,
    ttl_ms: Millis,
    timelines: HashMap<TimelineKey, Mirrored>,
}

#[derive(Debug, Default)]
struct Mirrored {
    /// `None` until the first event is heard or Redis is read.
    history: Option<History>,
    synced: bool,
    /// Subscribes waiting for Redis: the entry stays while any does.
    fetching: usize,
    /// When Redis was last read for it, or an event heard (for expiry).
    touched: Millis,
}

impl Mirror {
    pub fn new(size: usize, ttl_ms: Millis) -> Self {
        Self {
            size,
            ttl_ms,
            timelines: HashMap::new(),
        }
    }

    /// What a subscribe gets from the mirror alone: the position and, with
    /// `since`, the recovery; `None` when Redis must be read first.
    pub fn answer(&self, key: &TimelineKey, since: Option<(u64, &str)>) -> Option<(Position, Option<Recovery>)> {
        let mirrored = self.timelines.get(key).filter(|m| m.synced)?;
        let history = mirrored.history.as_ref()?;
        let Some((offset, epoch)) = since else {
            return Some((history.position(), None));
        };
        match history.recover(offset, epoch) {
            recovered @ Recovery::Recovered(_) => Some((history.position(), Some(recovered))),
            // Behind us in the same epoch: what Redis keeps, we keep.
            Recovery::Lost if *history.epoch == *epoch && offset < history.offset => {
                Some((history.position(), Some(Recovery::Lost)))
            }
            // Another epoch, or an offset ahead: the client may have heard
            // of something this node has not yet; Redis decides.
            Recovery::Lost => None,
        }
    }

    /// The answer once Redis was read: definitive.
    pub fn answer_now(&self, key: &TimelineKey, since: Option<(u64, &str)>) -> Option<(Position, Option<Recovery>)> {
        let history = self.timelines.get(key)?.history.as_ref()?;
        let recovery = since.map(|(offset, epoch)| history.recover(offset, epoch));
        Some((history.position(), recovery))
    }

    /// A subscribe is about to read Redis: from now on the timeline's
    /// events are kept, so that the read and what the channel brings
    /// meanwhile cover everything.
    pub fn begin_fetch(&mut self, key: &TimelineKey, now: Millis) {
        let mirrored = self.timelines.entry(key.clone()).or_default();
        mirrored.fetching += 1;
        mirrored.touched = now;
    }

    /// The read failed.
    pub fn abandon_fetch(&mut self, key: &TimelineKey) {
        if let Some(m) = self.timelines.get_mut(key) {
            m.fetching = m.fetching.saturating_sub(1);
        }
    }

    /// Joins what Redis holds with what the channel brought since the read
    /// began (by offset): the mirror is then synced.
    pub fn merge(&mut self, key: &TimelineKey, fetched: Fetched, now: Millis) {
        let size = self.size;
        let mirrored = self.timelines.entry(key.clone()).or_default();
        mirrored.fetching = mirrored.fetching.saturating_sub(1);
        mirrored.touched = now;
        let heard = mirrored.history.take().filter(|h| h.epoch == fetched.epoch);
        let mut events: BTreeMap<u64, TimelineEvent> =
            fetched.events.into_iter().map(|r| (r.offset, r.event)).collect();
        let mut offset = fetched.offset;
        if let Some(heard) = heard {
            offset = offset.max(heard.offset);
            events.extend(heard.events.into_iter().map(|r| (r.offset, r.event)));
        }
        let mut history = History::new(fetched.epoch);
        history.offset = offset;
        history.last_publish = Some(now);
        // The contiguous run that ends at `offset`, at most `size` long.
        let mut expected = offset;
        for (at, event) in events.into_iter().rev() {
            if at != expected || history.events.len() == size {
                break;
            }
            history.events.push_front(Recorded { offset: at, event });
            expected -= 1;
        }
        mirrored.history = Some(history);
        mirrored.synced = true;
    }

    /// An event heard on the channel, with the position Redis gave it. Kept
    /// when the timeline is followed here; a gap or a stream that started
    /// before we heard it unsyncs the mirror.
    pub fn observe(&mut self, event: &TimelineEvent, at: &Position, now: Millis) {
        let size = self.size;
        let Some(mirrored) = self.timelines.get_mut(&event.key) else {
            return;
        };
        mirrored.touched = now;
        let history = match &mut mirrored.history {
            Some(h) if h.epoch == at.epoch => h,
            other => {
                // A new stream: whole when it starts at 1.
                let mut fresh = History::new(at.epoch.clone());
                fresh.offset = at.offset.saturating_sub(1);
                mirrored.synced &= at.offset == 1;
                other.insert(fresh)
            }
        };
        if at.offset <= history.offset {
            return; // heard already (read from Redis meanwhile)
        }
        if at.offset != history.offset + 1 {
            history.events.clear();
            history.offset = at.offset.saturating_sub(1);
            mirrored.synced = false;
        }
        history.push(event.clone(), size, now);
    }

    /// Forgets what nobody here follows any more, and unsyncs histories
    /// Redis may have expired (`history_ttl` after their last event).
    pub fn expire(&mut self, now: Millis, followed: impl Fn(&TimelineKey) -> bool) {
        let ttl = self.ttl_ms;
        self.timelines.retain(|key, m| {
            if now.saturating_sub(m.touched) >= ttl {
                m.synced = false;
            }
            m.fetching > 0 || followed(key)
        });
    }

    /// After a lost channel connection: events may have been missed.
    pub fn unsync_all(&mut self) {
        for m in self.timelines.values_mut() {
            m.synced = false;
        }
    }

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

    fn key() -> TimelineKey {
        TimelineKey {
            entity_type: EntityType::parse(Some(&json!("deal"))).unwrap(),
            entity_id: EntityId::parse(Some(&json!(1))).unwrap(),
        }
    }

    fn item(id: u64) -> TimelineEvent {
        TimelineEvent::new_item(key(), Some(&json!({ "id": id }))).unwrap()
    }

    fn at(offset: u64, epoch: &str) -> Position {
        Position {
            offset,
            epoch: epoch.into(),
        }
    }

    fn fetched(epoch: &str, offset: u64, from: u64) -> Fetched {
        Fetched {
            epoch: epoch.into(),
            offset,
            events: (from..=offset)
                .map(|o| Recorded {
                    offset: o,
                    event: item(o),
                })
                .collect(),
        }
    }

    fn offsets(answer: Option<(Position, Option<Recovery>)>) -> Option<Vec<u64>> {
        match answer?.1? {
            Recovery::Recovered(events) => Some(events.iter().map(|r| r.offset).collect()),
            Recovery::Lost => Some(vec![u64::MAX]),
        }
    }

    #[test]
    fn nothing_is_answered_before_redis_was_read() {
        let mut m = Mirror::new(10, 1000);
        assert!(m.answer(&key(), None).is_none());
        m.begin_fetch(&key(), 0);
        m.observe(&item(5), &at(5, "e"), 0);
        assert!(m.answer(&key(), None).is_none(), "heard, but not read");
    }

    #[test]
    fn a_read_joined_with_events_heard_meanwhile_is_contiguous() {
        let mut m = Mirror::new(10, 1000);
        m.begin_fetch(&key(), 0);
        // 4 and 5 were published after the read began; 4 also made it into
        // the read, 5 did not.
        m.observe(&item(4), &at(4, "e"), 0);
        m.observe(&item(5), &at(5, "e"), 0);
        m.merge(&key(), fetched("e", 4, 1), 0);
        let (position, _) = m.answer(&key(), None).unwrap();
        assert_eq!(position, at(5, "e"));
        assert_eq!(offsets(m.answer(&key(), Some((2, "e")))), Some(vec![3, 4, 5]));
        m.observe(&item(6), &at(6, "e"), 0);
        assert_eq!(offsets(m.answer(&key(), Some((5, "e")))), Some(vec![6]));
    }

    #[test]
    fn too_short_is_lost_here_other_epochs_and_offsets_ahead_ask_redis() {
        let mut m = Mirror::new(3, 1000);
        m.begin_fetch(&key(), 0);
        m.merge(&key(), fetched("e", 10, 8), 0);
        assert_eq!(offsets(m.answer(&key(), Some((7, "e")))), Some(vec![8, 9, 10]));
        assert_eq!(
            offsets(m.answer(&key(), Some((6, "e")))),
            Some(vec![u64::MAX]),
            "too short"
        );
        assert!(m.answer(&key(), Some((11, "e"))).is_none(), "ahead: ask Redis");
        assert!(
            m.answer(&key(), Some((3, "other"))).is_none(),
            "another epoch: ask Redis"
        );
        assert_eq!(offsets(m.answer_now(&key(), Some((3, "other")))), Some(vec![u64::MAX]));
    }

    #[test]
    fn a_gap_or_a_lost_connection_unsyncs() {
        let mut m = Mirror::new(10, 1000);
        m.begin_fetch(&key(), 0);
        m.merge(&key(), fetched("e", 2, 1), 0);
        m.observe(&item(4), &at(4, "e"), 0);
        assert!(m.answer(&key(), None).is_none(), "3 was missed");
        m.begin_fetch(&key(), 0);
        m.merge(&key(), fetched("e", 4, 1), 0);
        assert_eq!(offsets(m.answer(&key(), Some((0, "e")))), Some(vec![1, 2, 3, 4]));
        m.unsync_all();
        assert!(m.answer(&key(), None).is_none());
    }

    #[test]
    fn a_new_epoch_from_one_stays_synced() {
        let mut m = Mirror::new(10, 1000);
        m.begin_fetch(&key(), 0);
        m.merge(&key(), fetched("e", 2, 1), 0);
        m.observe(&item(1), &at(1, "f"), 0);
        assert_eq!(m.answer(&key(), None).unwrap().0, at(1, "f"));
        assert!(
            m.answer(&key(), Some((2, "e"))).is_none(),
            "the old epoch: Redis decides"
        );
    }

    #[test]
    fn expiry_forgets_unfollowed_and_unsyncs_old() {
        let mut m = Mirror::new(10, 1000);
        m.begin_fetch(&key(), 0);
        m.merge(&key(), fetched("e", 2, 1), 0);
        m.expire(500, |_| true);
        assert!(m.answer(&key(), None).is_some());
        m.expire(1000, |_| true);
        assert!(m.answer(&key(), None).is_none(), "Redis may have expired it");
        m.expire(1000, |_| false);
        assert_eq!(m.len(), 0);
    }
}
