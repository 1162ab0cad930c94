//! A client event's payload as JSON, whatever Socket.IO carried.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The payload as a JSON value. Binary attachments (a `Buffer` or
/// `ArrayBuffer` anywhere in the payload) become arrays of byte values:
/// `serde_json::Value` itself refuses bytes, which would make the whole
/// event unreadable instead of merely carrying an unknown field.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientPayload(pub Value);

impl<'de> Deserialize<'de> for ClientPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PayloadVisitor).map(ClientPayload)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value or binary data")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Array(v.iter().map(|b| Value::from(*b)).collect()))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(ClientPayload(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, ClientPayload(value))) = map.next_entry::<String, ClientPayload>()? {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The event's payload: what socketioxide's parser decoded, or, where it
/// could not, the JSON text read again with `serde_json`.
///
/// socketioxide-parser-common 0.17.3 reads the first key of every object
/// as a borrowed `&str`, which fails for a key with a JSON escape (`"a\"b"`,
/// `"\\"`, `"\u0000"`): a valid payload such as
/// `{"ticketId": 1, ..., "meta": {"say \"hi\"": 1}}` was refused with
/// `INVALID_PAYLOAD` (found by `tests/fuzz.rs`, see docs/fuzzing.md). Only a
/// text packet without binary attachments is read again: that is all
/// `serde_json` can hold.
pub fn event_payload<E>(decoded: Result<ClientPayload, E>, raw: &socketioxide::handler::Value) -> Option<Value> {
    match (decoded, raw) {
        (Ok(payload), _) => Some(payload.0),
        (Err(_), socketioxide::handler::Value::Str(text, None)) => {
            let mut args: Vec<Value> = serde_json::from_str(text.as_str()).ok()?;
            (args.len() >= 2).then(|| args.swap_remove(1))
        }
        (Err(_), _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_escapes_are_read() {
        let raw = socketioxide::handler::Value::Str(r#"["ticket:view",{"a":[{"\\":null}]}]"#.into(), None);
        let refused: Result<ClientPayload, ()> = Err(());
        assert_eq!(
            event_payload(refused, &raw),
            Some(serde_json::json!({"a": [{"\\": null}]}))
        );
        let no_payload = socketioxide::handler::Value::Str(r#"["ticket:view"]"#.into(), None);
        assert_eq!(event_payload(Err::<ClientPayload, ()>(()), &no_payload), None);
    }

    #[test]
    fn json_passes_through() {
        let v: ClientPayload = serde_json::from_str(r#"{"a":[1,-2,1.5,"x",null,true,{"b":{}}]}"#).unwrap();
        assert_eq!(v.0, serde_json::json!({"a":[1,-2,1.5,"x",null,true,{"b":{}}]}));
    }
}
