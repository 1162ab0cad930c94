//! The hub's timeline operations: subscribes (with recovery from the
//! history, in memory or mirrored from Redis), unsubscribes, publishes and
//! their delivery, history expiry and the resync after an outage.

use std::collections::HashSet;

use socketioxide::socket::Sid;

use super::{Hub, Reach, lock};
use crate::cluster::HistoryError;
use crate::cluster::messages::{Message, RecordedEvent};
use crate::delivery::{Delivery, wire};
use crate::error::ClientError;
use crate::history::{Position, Recovery};
use crate::ids::{Since, TimelineKey};
use crate::presence::Millis;
use crate::timelines::{Membership, TimelineEvent};

/// A publish as done: where it reached, and each event's offset and epoch
/// (`None` when it could not be given one).
#[derive(Debug, Clone)]
pub struct Published {
    pub reach: Reach,
    pub positions: Vec<Option<Position>>,
}

/// An answer that comes later (once Redis was read).
pub type Pending<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A subscribe as answered now, or once Redis was read (cluster).
pub enum Subscription {
    Done(Subscribed),
    Reading(Pending<Subscribed>),
}

/// A subscribe as done: the timeline's position, and with `since` whether
/// the missed events were replayed and how many.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub position: Option<Position>,
    pub recovery: Option<Recovered>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    Replayed { missed: usize },
    Lost,
}

impl Hub {
    /// `timeline:subscribe`: the socket joins the room and is told so; with
    /// `since`, it then gets the events it missed, or `history_lost`.
    ///
    /// The join and the replay are queued under the history lock, which
    /// every publish takes to queue its event: an event recorded before is
    /// replayed (the socket was not in the room yet), one recorded after is
    /// delivered live. None is lost, none comes twice. In a cluster the
    /// same holds for the mirror of Redis's history; when the mirror cannot
    /// answer, the answer comes once Redis was read.
    pub fn subscribe(&self, sid: Sid, key: &TimelineKey, since: Option<&Since>) -> Result<Subscription, ClientError> {
        self.check_entity_type(key)?;
        let membership = lock(&self.shared.timelines).subscribe(sid, key)?;
        let joins = membership == Membership::Changed;
        if let Some(cluster) = &self.shared.cluster {
            let mut mirror = lock(&self.shared.mirror);
            if !cluster.is_up() {
                // The mirror may miss what other nodes published meanwhile.
                let recovery = since.map(|_| Recovery::Lost);
                return Ok(Subscription::Done(
                    self.answer_subscribe(sid, key, joins, None, recovery),
                ));
            }
            let since_at = since.map(|s| (s.offset, &*s.epoch));
            if let Some((position, recovery)) = mirror.answer(key, since_at) {
                return Ok(Subscription::Done(self.answer_subscribe(
                    sid,
                    key,
                    joins,
                    Some(position),
                    recovery,
                )));
            }
            mirror.begin_fetch(key, self.shared.clock.now_ms());
            drop(mirror);
            let (hub, key, since) = (self.clone(), key.clone(), since.cloned());
            return Ok(Subscription::Reading(Box::pin(async move {
                hub.subscribe_from_redis(sid, &key, since.as_ref()).await
            })));
        }
        let mut histories = lock(&self.shared.histories);
        let position = histories.position(key);
        let recovery = since.map(|since| histories.recover(key, since.offset, &since.epoch));
        Ok(Subscription::Done(self.answer_subscribe(
            sid,
            key,
            joins,
            Some(position),
            recovery,
        )))
    }

    /// The end of a subscribe the mirror could not answer: Redis is read,
    /// joined with what the channel brought meanwhile, and the socket joins
    /// (unless it unsubscribed or left meanwhile) and gets its replay.
    async fn subscribe_from_redis(&self, sid: Sid, key: &TimelineKey, since: Option<&Since>) -> Subscribed {
        let cluster = self.shared.cluster.as_ref().expect("only in a cluster");
        let fetched = cluster.fetch(key).await;
        let mut mirror = lock(&self.shared.mirror);
        let answer = match fetched {
            Ok(fetched) => {
                mirror.merge(key, fetched, self.shared.clock.now_ms());
                mirror.answer_now(key, since.map(|s| (s.offset, &*s.epoch)))
            }
            Err(e) => {
                if let HistoryError::Refused(e) = e {
                    let _ = cluster.refusals.refused("read", &e);
                }
                mirror.abandon_fetch(key);
                None
            }
        };
        let (position, recovery) = match answer {
            Some((position, recovery)) => (Some(position), recovery),
            None => (None, since.map(|_| Recovery::Lost)),
        };
        // Under the mirror lock, so that no channel event slips between the
        // replay and the join, and the timelines lock, so that an
        // unsubscribe or a disconnect is wholly before or after the join.
        let timelines = lock(&self.shared.timelines);
        let joins = timelines.is_subscribed(sid, key);
        self.answer_subscribe(sid, key, joins, position, recovery)
    }

    /// Queues what a subscribe answers: the join, `timeline:subscribed`, the
    /// replay or `history_lost`. Called under the lock of the history the
    /// answer comes from.
    fn answer_subscribe(
        &self,
        sid: Sid,
        key: &TimelineKey,
        joins: bool,
        position: Option<Position>,
        recovery: Option<Recovery>,
    ) -> Subscribed {
        let outbox = &self.shared.outbox;
        if joins {
            outbox.push(Delivery::Join { sid, room: key.room() });
        }
        outbox.push(wire::subscription(sid, key, true));
        let recovery = recovery.map(|recovery| match (recovery, &position) {
            (Recovery::Recovered(missed), Some(position)) => {
                for recorded in &missed {
                    let at = Position {
                        offset: recorded.offset,
                        epoch: position.epoch.clone(),
                    };
                    outbox.push(wire::replayed(sid, &recorded.event, &at));
                }
                Recovered::Replayed { missed: missed.len() }
            }
            _ => {
                outbox.push(wire::history_lost(sid, key));
                Recovered::Lost
            }
        });
        Subscribed { position, recovery }
    }

    /// `timeline:unsubscribe`: the socket leaves the room and is told so.
    pub fn unsubscribe(&self, sid: Sid, key: &TimelineKey) -> Result<(), ClientError> {
        self.check_entity_type(key)?;
        let mut timelines = lock(&self.shared.timelines);
        if timelines.unsubscribe(sid, key) == Membership::Changed {
            self.shared.outbox.push(Delivery::Leave { sid, room: key.room() });
        }
        self.shared.outbox.push(wire::subscription(sid, key, false));
        Ok(())
    }

    /// `FORBIDDEN` when an allow-list is configured and the type is not on it.
    fn check_entity_type(&self, key: &TimelineKey) -> Result<(), ClientError> {
        if self.shared.config.allows(&key.entity_type) {
            Ok(())
        } else {
            Err(ClientError::Forbidden(format!(
                "entity type \"{}\" is not allowed",
                key.entity_type
            )))
        }
    }

    /// A backend's publish (one event or a batch, in order): each event
    /// gets its timeline's next offset and is kept, then goes to the
    /// subscribers of every node. In a cluster, Redis numbers and keeps
    /// them and sends them to every node, this one included; while Redis is
    /// unreachable they reach this node's subscribers only, without offset.
    pub async fn publish(&self, events: &[TimelineEvent]) -> Published {
        for event in events {
            self.shared.metrics.published(event.change.kind());
        }
        let Some(cluster) = &self.shared.cluster else {
            let mut histories = lock(&self.shared.histories);
            let now = self.shared.clock.now_ms();
            let positions = events
                .iter()
                .map(|event| {
                    let position = histories.record(event, now);
                    self.shared.outbox.push(wire::timeline(event, Some(&position)));
                    Some(position)
                })
                .collect();
            return Published {
                reach: Reach::AllNodes,
                positions,
            };
        };
        let unnumbered = Published {
            reach: Reach::AllNodes,
            positions: vec![None; events.len()],
        };
        if events.is_empty() {
            return unnumbered;
        }
        let reached = if cluster.is_up() {
            cluster.record(events).await
        } else {
            Err(HistoryError::Unreachable)
        };
        match reached {
            Ok(positions) => Published {
                reach: Reach::AllNodes,
                positions: positions.into_iter().map(Some).collect(),
            },
            Err(HistoryError::Refused(e)) => {
                // The channel still reaches every node: v1 delivery.
                let _ = cluster.refusals.refused("publish", &e);
                for event in events {
                    self.shared.outbox.push(wire::timeline(event, None));
                    cluster.send(Message::Publish { event: event.clone() });
                }
                unnumbered
            }
            Err(HistoryError::Unreachable) => {
                for event in events {
                    self.shared.outbox.push(wire::timeline(event, None));
                }
                Published {
                    reach: Reach::ThisNodeOnly,
                    ..unnumbered
                }
            }
        }
    }

    /// Events numbered in Redis, as heard on the channel (by every node, the
    /// publishing one included): kept in the mirror of the timelines
    /// followed here, and delivered to this node's subscribers.
    pub fn deliver_recorded(&self, events: Vec<RecordedEvent>) {
        let now = self.shared.clock.now_ms();
        let mut mirror = lock(&self.shared.mirror);
        for recorded in events {
            let at = Position {
                offset: recorded.offset,
                epoch: recorded.epoch.into(),
            };
            mirror.observe(&recorded.event, &at, now);
            self.shared.outbox.push(wire::timeline(&recorded.event, Some(&at)));
        }
    }

    /// Ends the histories past `history_ttl` (see [`Histories::expire`]).
    pub fn expire_histories(&self, now: Millis) {
        let followed: HashSet<TimelineKey> = lock(&self.shared.timelines).rooms().cloned().collect();
        if self.shared.cluster.is_some() {
            lock(&self.shared.mirror).expire(now, |key| followed.contains(key));
        } else {
            lock(&self.shared.histories).expire(now, |key| followed.contains(key));
        }
    }

    /// A publish that reached another node, for this node's subscribers.
    pub fn deliver_remote_publish(&self, event: &TimelineEvent) {
        self.shared.outbox.push(wire::timeline(event, None));
    }

    /// After an outage: every timeline followed here may have missed events.
    pub fn resync_timelines(&self) {
        lock(&self.shared.mirror).unsync_all();
        let timelines = lock(&self.shared.timelines);
        for key in timelines.rooms() {
            self.shared.outbox.push(wire::resync(key));
        }
    }
}
