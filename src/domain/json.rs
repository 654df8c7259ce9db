//! Strict JSON reading for command bodies: a nesting limit checked before
//! parsing (so no input can exhaust the stack), and duplicate object keys
//! refused instead of silently keeping the last one.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("body is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("body nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("duplicate key `{0}`")]
    DuplicateKey(String),
    #[error("body is not valid JSON: {0}")]
    Syntax(String),
}

/// The deepest nesting of arrays and objects, counted without parsing;
/// stops counting once `limit` is exceeded.
pub fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses a body: UTF-8, at most `max_depth` levels, no duplicate keys.
pub fn parse_strict(body: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(JsonError::NotUtf8(e.valid_up_to()));
    }
    if nesting_exceeds(body, max_depth) {
        return Err(JsonError::TooDeep(max_depth));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = StrictValue
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let text = e.to_string();
            match text.strip_prefix(DUPLICATE) {
                Some(rest) => {
                    JsonError::DuplicateKey(rest.split('\u{1f}').next().unwrap_or("").to_owned())
                }
                None => JsonError::Syntax(text),
            }
        })?;
    Ok(value)
}

/// Marks our own error inside serde_json's error text.
const DUPLICATE: &str = "\u{1f}duplicate\u{1f}";

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
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
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictValue)?;
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).filter(|c| !c.is_control()).collect();
                return Err(de::Error::custom(format!("{DUPLICATE}{shown}\u{1f}")));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(
            parse_strict(br#"{"a":1,"a":2}"#, 8),
            Err(JsonError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse_strict(br#"{"p":{"x":1,"y":[{"k":1,"k":1}]}}"#, 8),
            Err(JsonError::DuplicateKey("k".into()))
        );
        assert!(parse_strict(br#"{"a":{"a":1}}"#, 8).is_ok());
    }

    #[test]
    fn nesting_is_limited_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_strict(deep.as_bytes(), 32),
            Err(JsonError::TooDeep(32))
        );
        assert!(parse_strict(br#"{"a":[[1]]}"#, 3).is_ok());
        assert_eq!(
            parse_strict(br#"{"a":[[1]]}"#, 2),
            Err(JsonError::TooDeep(2))
        );
        // Brackets inside strings do not count.
        assert!(parse_strict(br#"{"a":"[[[[[[\"[[["}"#, 1).is_ok());
    }

    #[test]
    fn invalid_utf8_and_trailing_garbage_are_refused() {
        assert_eq!(
            parse_strict(b"{\"a\":\"\xff\"}", 8),
            Err(JsonError::NotUtf8(6))
        );
        assert!(matches!(
            parse_strict(b"{} {}", 8),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(parse_strict(b"", 8), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn values_round_trip() {
        let v = parse_strict(
            br#"{"n":-1,"u":18446744073709551615,"f":1.5,"b":true,"z":null,"s":"x"}"#,
            4,
        )
        .unwrap();
        assert_eq!(v["n"], -1);
        assert_eq!(v["u"], u64::MAX);
        assert_eq!(v["f"], 1.5);
        assert_eq!(v["z"], Value::Null);
    }
}
