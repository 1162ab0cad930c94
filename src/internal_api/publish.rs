//! Timeline publishes: validation of bodies and batch events (contract §5).

use serde_json::{Map, Value, json};

use super::error::{ApiError, Result};
use crate::ids::{EntityId, EntityType, Invalid, ItemId, TimelineKey};

/// Most events one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// One validated timeline event, ready to emit to its room.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub key: TimelineKey,
    pub kind: &'static str,
    pub event: &'static str,
    pub payload: Value,
}

impl Publish {
    pub fn new_item(key: TimelineKey, item: Option<&Value>) -> Result<Self, Invalid> {
        let item = item_object(item)?;
        match item.get("id") {
            Some(Value::String(_)) => {}
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            _ => {
                return Err(Invalid("item must have an \"id\" (a string or an integer)".into()));
            }
        }
        let payload = json!({ "entityType": key.entity_type, "entityId": key.entity_id, "item": item });
        Ok(Self {
            key,
            kind: "new_item",
            event: "timeline:new_item",
            payload,
        })
    }

    pub fn item_updated(key: TimelineKey, item_id: ItemId, item: Option<&Value>) -> Result<Self, Invalid> {
        let item = item_object(item)?;
        let payload = json!({
            "entityType": key.entity_type, "entityId": key.entity_id, "itemId": item_id, "item": item,
        });
        Ok(Self {
            key,
            kind: "item_updated",
            event: "timeline:item_updated",
            payload,
        })
    }

    pub fn refresh(key: TimelineKey, reason: Option<&Value>) -> Result<Self, Invalid> {
        let reason = match reason {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(_) => return Err(Invalid("reason must be a string or null".into())),
        };
        let payload = json!({ "entityType": key.entity_type, "entityId": key.entity_id, "reason": reason });
        Ok(Self {
            key,
            kind: "refresh",
            event: "timeline:refresh",
            payload,
        })
    }
}

fn item_object(item: Option<&Value>) -> Result<&Map<String, Value>, Invalid> {
    item.and_then(Value::as_object)
        .ok_or_else(|| Invalid("item must be a JSON object".into()))
}

/// A timeline key from path segments or batch fields.
pub fn timeline_key(entity_type: Option<&Value>, entity_id: Option<&Value>) -> Result<TimelineKey, Invalid> {
    Ok(TimelineKey {
        entity_type: EntityType::parse(entity_type)?,
        entity_id: EntityId::parse(entity_id)?,
    })
}

/// Validates a whole batch body; all or nothing.
pub fn batch(body: &Value) -> Result<Vec<Publish>> {
    let events = body
        .as_object()
        .and_then(|o| o.get("events"))
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::InvalidPayload("body must be {\"events\": [...]}".into()))?;
    if events.len() > MAX_BATCH {
        return Err(ApiError::InvalidPayload(format!(
            "at most {MAX_BATCH} events per batch"
        )));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, ev)| batch_event(ev).map_err(|e| ApiError::InvalidPayload(format!("events[{i}]: {e}"))))
        .collect()
}

fn batch_event(ev: &Value) -> Result<Publish, Invalid> {
    let ev = ev
        .as_object()
        .ok_or_else(|| Invalid("event must be an object".into()))?;
    let kind = ev.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("new_item" | "item_updated" | "refresh")) {
        return Err(Invalid("type must be one of new_item, item_updated, refresh".into()));
    }
    let key = timeline_key(ev.get("entityType"), ev.get("entityId"))?;
    match kind {
        Some("new_item") => Publish::new_item(key, ev.get("item")),
        Some("item_updated") => Publish::item_updated(key, ItemId::parse(ev.get("itemId"))?, ev.get("item")),
        _ => Publish::refresh(key, ev.get("reason")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TimelineKey {
        timeline_key(Some(&json!("deal")), Some(&json!(9))).unwrap()
    }

    #[test]
    fn new_item_needs_an_object_with_an_id() {
        assert!(Publish::new_item(key(), Some(&json!({"id": 1}))).is_ok());
        assert!(Publish::new_item(key(), Some(&json!({"id": "a"}))).is_ok());
        assert!(Publish::new_item(key(), Some(&json!({"id": 1.5}))).is_err());
        assert!(Publish::new_item(key(), Some(&json!({"id": null}))).is_err());
        assert!(Publish::new_item(key(), Some(&json!({}))).is_err());
        assert!(Publish::new_item(key(), Some(&json!([1]))).is_err());
        let p = Publish::new_item(key(), Some(&json!({"id": 1, "text": "hi"}))).unwrap();
        assert_eq!(
            p.payload,
            json!({"entityType": "deal", "entityId": "9", "item": {"id": 1, "text": "hi"}})
        );
        assert_eq!(p.key.room(), "timeline:deal:9");
    }

    #[test]
    fn refresh_reason_is_a_string_or_null() {
        assert_eq!(Publish::refresh(key(), None).unwrap().payload["reason"], Value::Null);
        assert_eq!(
            Publish::refresh(key(), Some(&json!("bulk"))).unwrap().payload["reason"],
            "bulk"
        );
        assert!(Publish::refresh(key(), Some(&json!(3))).is_err());
    }

    #[test]
    fn batches_are_all_or_nothing() {
        let ok = json!({"events": [
            {"type": "new_item", "entityType": "deal", "entityId": 1, "item": {"id": 1}},
            {"type": "item_updated", "entityType": "deal", "entityId": 1, "itemId": 1, "item": {}},
            {"type": "refresh", "entityType": "deal", "entityId": 1},
        ]});
        assert_eq!(batch(&ok).unwrap().len(), 3);
        assert_eq!(batch(&json!({"events": []})).unwrap().len(), 0);
        let bad = json!({"events": [
            {"type": "new_item", "entityType": "deal", "entityId": 1, "item": {"id": 1}},
            {"type": "delete", "entityType": "deal", "entityId": 1},
        ]});
        assert!(matches!(batch(&bad), Err(ApiError::InvalidPayload(m)) if m.starts_with("events[1]")));
        let missing = json!({"events": [{"type": "item_updated", "entityType": "deal", "entityId": 1, "item": {}}]});
        assert!(batch(&missing).is_err());
        assert!(batch(&json!({"events": {}})).is_err());
        assert!(batch(&json!([])).is_err());
        let too_many: Vec<Value> = (0..=MAX_BATCH)
            .map(|_| json!({"type": "refresh", "entityType": "deal", "entityId": 1}))
            .collect();
        assert!(batch(&json!({ "events": too_many })).is_err());
    }
}
