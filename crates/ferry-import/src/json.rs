//! JSON as the import reads it: values with duplicate keys noticed, errors turned into
//! reasons a person can act on, the raw text of records (so each keeps its bytes), and the
//! `\u0000` check for documents PostgreSQL's jsonb cannot hold.

use serde::de::{DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::parse::line_col;
use crate::report::{Reason, ReasonKind};

/// Parses a JSON value as `serde_json::from_str` does, and also returns every key that an
/// object holds twice, in the order found. serde_json keeps the last value of a duplicated
/// key without a word (and so does PostgreSQL's jsonb); the import notes it.
pub(crate) fn value_with_duplicates(text: &str) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Build {
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

/// A `Value` builder that records duplicated keys; numbers become `Value`s exactly as
/// serde_json's own builder makes them.
struct Build<'a> {
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(Build {
            duplicates: &mut *self.duplicates,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Build {
                duplicates: &mut *self.duplicates,
            })?;
            if let Some(_earlier) = out.insert(key.clone(), value) {
                self.duplicates.push(key);
            }
        }
        Ok(Value::Object(out))
    }
}

pub(crate) fn json_error(text: &str, e: &serde_json::Error) -> Reason {
    use serde_json::error::Category;
    let full = e.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_owned();
    let (line, column) = (e.line() as u64, e.column() as u64);
    match e.classify() {
        Category::Eof => Reason::new(
            ReasonKind::TruncatedJson,
            format!("the JSON ends before it is complete ({message}); the file looks truncated"),
        )
        .at(line, column),
        _ => {
            let trimmed = text.trim_start();
            let first = trimmed.chars().next();
            if first
                .is_some_and(|c| !matches!(c, '{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n'))
            {
                let start: String = trimmed
                    .chars()
                    .take(24)
                    .collect::<String>()
                    .replace('\n', "\\n");
                let (l, c) = line_col(text.as_bytes(), text.len() - trimmed.len());
                Reason::new(
                    ReasonKind::NotJson,
                    format!("the content is not JSON: it starts with `{start}`"),
                )
                .at(l, c)
            } else {
                Reason::new(ReasonKind::InvalidJson, format!("invalid JSON: {message}"))
                    .at(line, column)
            }
        }
    }
}

/// The raw text of the value at a JSON pointer (the document is known to be valid).
pub(crate) fn raw_at<'a>(text: &'a str, pointer: &str) -> Result<&'a RawValue, serde_json::Error> {
    let mut cur: &'a RawValue = serde_json::from_str(text)?;
    if pointer.is_empty() {
        return Ok(cur);
    }
    for token in pointer[1..].split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let s = cur.get().trim_start();
        cur = if s.starts_with('[') {
            let items: Vec<&'a RawValue> = serde_json::from_str(cur.get())?;
            match token
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).copied())
            {
                Some(v) => v,
                None => return Err(serde::de::Error::custom(format!("no element `{token}`"))),
            }
        } else {
            let members = members(cur.get())?;
            match members.into_iter().rev().find(|(k, _)| *k == token) {
                Some((_, v)) => v,
                None => return Err(serde::de::Error::custom(format!("no member `{token}`"))),
            }
        };
    }
    Ok(cur)
}

/// The members of a JSON object in file order, each with its raw value.
pub(crate) fn members(text: &str) -> Result<Vec<(String, &RawValue)>, serde_json::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = (&mut de).deserialize_map(V)?;
    de.end()?;
    Ok(out)
}

/// Whether JSON text contains the escape `\u0000` (a NUL character), as opposed to an escaped
/// backslash followed by the letters `u0000`.
pub(crate) fn json_has_nul_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find("\\u0000") {
        let at = from + pos;
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return true;
        }
        from = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{line_of, Lines};

    #[test]
    fn raw_values_keep_their_bytes() {
        let text =
            "{\n  \"tasks\": [ {\"a\": 1.50, \"b\": \"\\u00e9\"} ,\n {\"a\":2} ],\n \"x\": 1 }";
        let raw = raw_at(text, "/tasks").unwrap();
        let items: Vec<&RawValue> = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(items[0].get(), "{\"a\": 1.50, \"b\": \"\\u00e9\"}");
        assert_eq!(line_of(text, items[1].get()), 3);
        let mut lines = Lines::new(text);
        assert_eq!(
            (lines.line_of(items[0].get()), lines.line_of(items[1].get())),
            (2, 3)
        );
        let m = members("{\"b\": [1], \"a\": {\"c\": null}}").unwrap();
        assert_eq!(
            m.iter()
                .map(|(k, v)| (k.as_str(), v.get()))
                .collect::<Vec<_>>(),
            vec![("b", "[1]"), ("a", "{\"c\": null}")]
        );
    }

    #[test]
    fn json_errors_are_classified() {
        let e = serde_json::from_str::<Value>("{\n \"a\": [1,").unwrap_err();
        let r = json_error("{\n \"a\": [1,", &e);
        assert_eq!((r.kind, r.line), (ReasonKind::TruncatedJson, Some(2)));
        let text = "\n  <html>";
        let e = serde_json::from_str::<Value>(text).unwrap_err();
        let r = json_error(text, &e);
        assert_eq!(
            (r.kind, r.line, r.column),
            (ReasonKind::NotJson, Some(2), Some(3))
        );
        let e = serde_json::from_str::<Value>("{\"a\": 1,}").unwrap_err();
        assert_eq!(json_error("{\"a\": 1,}", &e).kind, ReasonKind::InvalidJson);
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let text = r#"{"a": 1, "b": {"c": 1, "c": 2}, "a": [3, {"d": 0, "d": 1}]}"#;
        let (value, dups) = value_with_duplicates(text).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(dups, vec!["c", "d", "a"]);
        let (_, none) = value_with_duplicates(r#"[{"a": 1}, {"a": 2}]"#).unwrap();
        assert!(none.is_empty());
        for text in [
            "1.5",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "1e400",
            "\"\\u00e9\"",
            "null",
        ] {
            assert_eq!(
                value_with_duplicates(text).ok().map(|(v, _)| v),
                serde_json::from_str::<Value>(text).ok(),
                "{text}"
            );
        }
        assert!(value_with_duplicates("{\"a\": 1} x").is_err());
    }

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(json_has_nul_escape(r#"{"a": "x\u0000y"}"#));
        assert!(json_has_nul_escape(r#"{"a": "\\\u0000"}"#));
        assert!(!json_has_nul_escape(r#"{"a": "\\u0000"}"#));
        assert!(!json_has_nul_escape(r#"{"a": "u0000"}"#));
    }
}
