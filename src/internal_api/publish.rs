//! Timeline publishes: validation of bodies and batch events (contract §5).

use serde_json::Value;

use crate::http_error::{HttpError, Result};
use crate::ids::{EntityId, EntityType, Invalid, ItemId, TimelineKey};
use crate::timelines::TimelineEvent;

/// Most events one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// A timeline key from path segments or batch fields.
pub fn timeline_key(entity_type: Option<&Value>, entity_id: Option<&Value>) -> Result<TimelineKey, Invalid> {
    Ok(TimelineKey {
        entity_type: EntityType::parse(entity_type)?,
        entity_id: EntityId::parse(entity_id)?,
    })
}

/// Validates a whole batch body; all or nothing.
pub fn batch(body: &Value) -> Result<Vec<TimelineEvent>> {
    let events = body
        .as_object()
        .and_then(|o| o.get("events"))
        .and_then(Value::as_array)
        .ok_or_else(|| HttpError::InvalidPayload("body must be {\"events\": [...]}".into()))?;
    if events.len() > MAX_BATCH {
        return Err(HttpError::InvalidPayload(format!(
            "at most {MAX_BATCH} events per batch"
        )));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, ev)| batch_event(ev).map_err(|e| HttpError::InvalidPayload(format!("events[{i}]: {e}"))))
        .collect()
}

fn batch_event(ev: &Value) -> Result<TimelineEvent, Invalid> {
    let ev = ev
        .as_object()
        .ok_or_else(|| Invalid("event must be an object".into()))?;
    let kind = ev.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("new_item" | "item_updated" | "refresh")) {
        return Err(Invalid("type must be one of new_item, item_updated, refresh".into()));
    }
    let key = timeline_key(ev.get("entityType"), ev.get("entityId"))?;
    match kind {
        Some("new_item") => TimelineEvent::new_item(key, ev.get("item")),
        Some("item_updated") => TimelineEvent::item_updated(key, ItemId::parse(ev.get("itemId"))?, ev.get("item")),
        _ => TimelineEvent::refresh(key, ev.get("reason")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timelines::TimelineChange;
    use serde_json::json;

    fn key() -> TimelineKey {
        timeline_key(Some(&json!("deal")), Some(&json!(9))).unwrap()
    }

    #[test]
    fn new_item_needs_an_object_with_an_id() {
        assert!(TimelineEvent::new_item(key(), Some(&json!({"id": 1}))).is_ok());
        assert!(TimelineEvent::new_item(key(), Some(&json!({"id": "a"}))).is_ok());
        assert!(TimelineEvent::new_item(key(), Some(&json!({"id": 1.5}))).is_err());
        assert!(TimelineEvent::new_item(key(), Some(&json!({"id": null}))).is_err());
        assert!(TimelineEvent::new_item(key(), Some(&json!({}))).is_err());
        assert!(TimelineEvent::new_item(key(), Some(&json!([1]))).is_err());
        let p = TimelineEvent::new_item(key(), Some(&json!({"id": 1, "text": "hi"}))).unwrap();
        let TimelineChange::NewItem { item } = p.change else {
            panic!()
        };
        assert_eq!(Value::Object(item), json!({"id": 1, "text": "hi"}));
        assert_eq!(p.key.room(), "timeline:deal:9");
    }

    #[test]
    fn refresh_reason_is_a_string_or_null() {
        let reason = |r: Option<&Value>| match TimelineEvent::refresh(key(), r).map(|e| e.change) {
            Ok(TimelineChange::Refresh { reason }) => Ok(reason),
            other => Err(other),
        };
        assert_eq!(reason(None), Ok(None));
        assert_eq!(reason(Some(&Value::Null)), Ok(None));
        assert_eq!(reason(Some(&json!("bulk"))), Ok(Some("bulk".into())));
        assert!(reason(Some(&json!(3))).is_err());
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
        assert!(matches!(batch(&bad), Err(HttpError::InvalidPayload(m)) if m.starts_with("events[1]")));
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
