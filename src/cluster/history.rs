//! Timeline histories in Redis (contract §4.1 with `redis_url`): offsets
//! and epochs are assigned there, so that they are cluster-wide, and the
//! last `history_size` events are kept there, so that any node can replay
//! them.
//!
//! Per timeline, two keys that share a hash tag:
//! `switchboard:timeline:{<type>:<id>}` (a hash: `epoch`, `offset`) and
//! `switchboard:timeline:{<type>:<id>}:events` (a list of
//! `{"offset":n,"event":{...}}`, capped at `history_size`). Both expire
//! `history_ttl` after the last publish; a timeline created again gets a
//! new epoch.
//!
//! A publish is one script (one round trip, atomic): it numbers and keeps
//! the events and publishes them, with their offsets, on the cluster
//! channel. Redis runs one script at a time and delivers a channel's
//! messages in order, so every node (the publishing one included) hears a
//! timeline's events in offset order, whichever node published them.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Script};

use crate::history::{Fetched, Position, Recorded};
use crate::ids::TimelineKey;
use crate::timelines::TimelineEvent;

/// KEYS: (hash, list) per event. ARGV: a fresh epoch, history_size,
/// history_ttl in ms, the channel, the sender's node id as JSON, then one
/// event (JSON) per pair of keys. Returns `{offset, epoch}` per event.
const RECORD: &str = r#"
local size = tonumber(ARGV[2])
local out, published = {}, {}
for i = 1, #KEYS / 2 do
  local meta, list = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('HSETNX', meta, 'epoch', ARGV[1]) == 1 then
    redis.call('DEL', list)
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  local offset = redis.call('HINCRBY', meta, 'offset', 1)
  redis.call('PEXPIRE', meta, ARGV[3])
  local event = ARGV[5 + i]
  if size > 0 then
    redis.call('RPUSH', list, '{"offset":' .. offset .. ',"event":' .. event .. '}')
    redis.call('LTRIM', list, -size, -1)
    redis.call('PEXPIRE', list, ARGV[3])
  end
  out[i] = { offset, epoch }
  published[i] = '{"offset":' .. offset .. ',"epoch":' .. cjson.encode(epoch) .. ',"event":' .. event .. '}'
end
redis.call('PUBLISH', ARGV[4],
  '{"node":' .. ARGV[5] .. ',"message":{"type":"recorded","events":[' .. table.concat(published, ',') .. ']}}')
return out
"#;

/// KEYS: hash, list. ARGV: a fresh epoch, history_ttl in ms. Names the
/// epoch of a timeline nothing was published to yet (so that a subscribe's
/// ack carries the epoch its first event will), and returns
/// `{epoch, offset, events}`.
const FETCH: &str = r#"
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'offset', 0)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
return { meta[1], tonumber(meta[2]) or 0, redis.call('LRANGE', KEYS[2], 0, -1) }
"#;

/// The scripts and the settings they run with.
#[derive(Debug)]
pub struct RedisHistory {
    record: Script,
    fetch: Script,
    size: usize,
    ttl_ms: u64,
    channel: String,
    /// The sender field of the channel messages, as JSON.
    node_json: String,
}

fn keys(key: &TimelineKey) -> (String, String) {
    let meta = format!("switchboard:timeline:{{{}:{}}}", key.entity_type, key.entity_id);
    let list = format!("{meta}:events");
    (meta, list)
}

/// A name for a stream no one used before.
fn fresh_epoch() -> String {
    socketioxide::socket::Sid::new().to_string()
}

impl RedisHistory {
    pub fn new(size: usize, ttl_ms: u64, channel: &str, node_id: &str) -> Self {
        Self {
            record: Script::new(RECORD),
            fetch: Script::new(FETCH),
            size,
            ttl_ms: ttl_ms.max(1),
            channel: channel.to_string(),
            node_json: serde_json::Value::String(node_id.to_string()).to_string(),
        }
    }

    /// Numbers, keeps and publishes `events` in one step; their positions.
    pub async fn record(
        &self,
        conn: &mut MultiplexedConnection,
        events: &[TimelineEvent],
    ) -> RedisResult<Vec<Position>> {
        let mut call = self.record.prepare_invoke();
        call.arg(fresh_epoch())
            .arg(self.size)
            .arg(self.ttl_ms)
            .arg(&self.channel)
            .arg(&self.node_json);
        for event in events {
            let (meta, list) = keys(&event.key);
            call.key(meta).key(list);
            call.arg(serde_json::to_string(event).map_err(encode_error)?);
        }
        let positions: Vec<(u64, String)> = call.invoke_async(conn).await?;
        Ok(positions
            .into_iter()
            .map(|(offset, epoch)| Position {
                offset,
                epoch: epoch.into(),
            })
            .collect())
    }

    /// The timeline's epoch, offset and kept events.
    pub async fn fetch(&self, conn: &mut MultiplexedConnection, key: &TimelineKey) -> RedisResult<Fetched> {
        let (meta, list) = keys(key);
        let (epoch, offset, entries): (String, u64, Vec<String>) = self
            .fetch
            .key(meta)
            .key(list)
            .arg(fresh_epoch())
            .arg(self.ttl_ms)
            .invoke_async(conn)
            .await?;
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            match serde_json::from_str::<Recorded>(&entry) {
                Ok(recorded) if recorded.event.key == *key => events.push(recorded),
                // Kept by something else than this version: skipped, so
                // the recovery falls short and says `history_lost`.
                _ => tracing::warn!(room = %key.room(), "ignoring an unreadable history entry in redis"),
            }
        }
        Ok(Fetched {
            epoch: Arc::from(epoch),
            offset,
            events,
        })
    }
}

fn encode_error(e: serde_json::Error) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "cannot encode a timeline event",
        e.to_string(),
    ))
}
