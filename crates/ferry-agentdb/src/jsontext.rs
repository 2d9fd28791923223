//! JSON documents as text: written with keys in a chosen order, and edited in place so that
//! every byte the edit does not concern stays as it was (a record of a file holding several
//! is replaced inside the file's text, a member of an object is set without re-serialising
//! its siblings).
//!
//! serde_json here keeps object keys sorted (no `preserve_order`), so re-serialising a
//! document would reorder what the application wrote; editing the text does not.

use std::ops::Range;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// An object written member by member, in insertion order.
#[derive(Debug, Default)]
pub(crate) struct ObjectText {
    members: Vec<(String, String)>,
}

impl ObjectText {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member whose value is a JSON value.
    pub fn value(&mut self, key: &str, v: &Value) -> &mut Self {
        self.members.push((key.to_owned(), v.to_string()));
        self
    }

    /// Adds a string member.
    pub fn string(&mut self, key: &str, s: &str) -> &mut Self {
        self.value(key, &Value::String(s.to_owned()))
    }

    /// Adds a string member when there is a value.
    pub fn opt_string(&mut self, key: &str, s: Option<&str>) -> &mut Self {
        if let Some(s) = s {
            self.string(key, s);
        }
        self
    }

    /// `{"a": 1, "b": "x"}`: one line, for a record inside a file of several.
    pub fn compact(&self) -> String {
        let inner: Vec<String> = self
            .members
            .iter()
            .map(|(k, v)| format!("{}: {v}", quote(k)))
            .collect();
        format!("{{{}}}", inner.join(", "))
    }

    /// Two-space indented, one member per line, ending with a newline: a whole file.
    pub fn pretty(&self) -> String {
        if self.members.is_empty() {
            return "{}\n".to_owned();
        }
        let inner: Vec<String> = self
            .members
            .iter()
            .map(|(k, v)| format!("  {}: {v}", quote(k)))
            .collect();
        format!("{{\n{}\n}}\n", inner.join(",\n"))
    }
}

/// A JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// The members of the top-level object of `text`, in file order: key and the byte range of
/// its value in `text`. `None` when the text is not a JSON object.
pub(crate) fn members(text: &str) -> Option<Vec<(String, Range<usize>)>> {
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
    let raw = (&mut de).deserialize_map(V).ok()?;
    de.end().ok()?;
    Some(
        raw.into_iter()
            .map(|(k, v)| (k, span_of(text, v.get())))
            .collect(),
    )
}

/// The elements of the array spanning `range` of `text`, as byte ranges of `text`.
pub(crate) fn elements(text: &str, range: Range<usize>) -> Option<Vec<Range<usize>>> {
    let slice = &text[range.clone()];
    let items: Vec<&RawValue> = serde_json::from_str(slice).ok()?;
    Some(items.iter().map(|r| span_of(text, r.get())).collect())
}

/// The byte range of `slice` inside `text` (it is a sub-slice of it).
fn span_of(text: &str, slice: &str) -> Range<usize> {
    let start = (slice.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    start..start + slice.len()
}

/// The range of the top-level value of `text` (without surrounding whitespace).
pub(crate) fn root_range(text: &str) -> Range<usize> {
    let start = text.len() - text.trim_start().len();
    start..text.trim_end().len()
}

/// Sets member `key` of the top-level object to `value` (JSON text): its value is replaced
/// where it stands (the last one, when the key repeats, as a parser keeps the last), or the
/// member is appended after the last one with the separator the object already uses.
pub(crate) fn set_member(text: &str, key: &str, value: &str) -> Option<String> {
    let ms = members(text)?;
    if let Some((_, range)) = ms.iter().rev().find(|(k, _)| k == key) {
        return Some(splice(text, range.clone(), value));
    }
    let root = root_range(text);
    let open = root.start;
    let member = format!("{}: {value}", quote(key));
    match ms.last() {
        Some((_, last)) => {
            // The whitespace between `{` and the first key is the object's separator.
            let first_key = text[open + 1..]
                .find('"')
                .map_or(open + 1, |i| open + 1 + i);
            let sep = &text[open + 1..first_key];
            let sep = if sep.trim().is_empty() { sep } else { " " };
            Some(splice(text, last.end..last.end, &format!(",{sep}{member}")))
        }
        None => {
            let close = root.end - 1;
            Some(splice(text, open + 1..close, &member))
        }
    }
}

/// Appends `element` (JSON text) to the array spanning `range` of `text`, with the separator
/// its elements already use; returns the new text and the element's index.
pub(crate) fn push_element(
    text: &str,
    range: Range<usize>,
    element: &str,
) -> Option<(String, usize)> {
    let items = elements(text, range.clone())?;
    match (items.first(), items.last()) {
        (Some(first), Some(last)) => {
            let sep = &text[range.start + 1..first.start];
            let sep = if sep.trim().is_empty() { sep } else { " " };
            Some((
                splice(text, last.end..last.end, &format!(",{sep}{element}")),
                items.len(),
            ))
        }
        _ => Some((splice(text, range.start + 1..range.end - 1, element), 0)),
    }
}

/// `text` with `range` replaced by `with`.
pub(crate) fn splice(text: &str, range: Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// Where the import finds the records of a file whose rule says
/// `records = { at = ["", "/tasks"], each = "element" }`: the top-level array, else the
/// last `tasks` member when it is an array.
pub(crate) fn task_array(text: &str) -> Option<Range<usize>> {
    let root = root_range(text);
    if text[root.clone()].starts_with('[') {
        return Some(root);
    }
    let ms = members(text)?;
    let (_, range) = ms.iter().rev().find(|(k, _)| k == "tasks")?;
    text[range.clone()].starts_with('[').then(|| range.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_insertion_order() {
        let mut o = ObjectText::new();
        o.string("z", "last \"quoted\"")
            .value("a", &serde_json::json!([1, 2]));
        assert_eq!(o.compact(), r#"{"z": "last \"quoted\"", "a": [1,2]}"#);
        assert_eq!(
            o.pretty(),
            "{\n  \"z\": \"last \\\"quoted\\\"\",\n  \"a\": [1,2]\n}\n"
        );
    }

    #[test]
    fn set_member_keeps_every_other_byte() {
        let text = "{\n    \"b\": 1.50,\n    \"status\": \"busy\" ,\n    \"a\": {\"x\": null}\n}\n";
        let edited = set_member(text, "status", "\"idle\"").unwrap();
        assert_eq!(
            edited,
            "{\n    \"b\": 1.50,\n    \"status\": \"idle\" ,\n    \"a\": {\"x\": null}\n}\n"
        );
        let added = set_member(text, "new", "true").unwrap();
        assert_eq!(
            added,
            "{\n    \"b\": 1.50,\n    \"status\": \"busy\" ,\n    \"a\": {\"x\": null},\n    \"new\": true\n}\n"
        );
        assert_eq!(set_member("  {}\n", "k", "1").unwrap(), "  {\"k\": 1}\n");
        // A repeated key: the last one is what a parser reads, so it is the one set.
        assert_eq!(
            set_member(r#"{"k": 1, "k": 2}"#, "k", "3").unwrap(),
            r#"{"k": 1, "k": 3}"#
        );
        assert!(set_member("[1]", "k", "1").is_none());
    }

    #[test]
    fn elements_are_appended_and_found_where_the_import_looks() {
        let text = "{\n  \"tasks\": [\n    {\"id\": 1},\n    {\"id\": 2}\n  ],\n  \"last_updated\": \"x\"\n}\n";
        let range = task_array(text).unwrap();
        let (out, index) = push_element(text, range, "{\"id\": 3}").unwrap();
        assert_eq!(index, 2);
        assert_eq!(
            out,
            "{\n  \"tasks\": [\n    {\"id\": 1},\n    {\"id\": 2},\n    {\"id\": 3}\n  ],\n  \"last_updated\": \"x\"\n}\n"
        );
        let items = elements(&out, task_array(&out).unwrap()).unwrap();
        assert_eq!(&out[items[2].clone()], "{\"id\": 3}");
        let (out, index) = push_element("[]\n", task_array("[]\n").unwrap(), "{}").unwrap();
        assert_eq!((out.as_str(), index), ("[{}]\n", 0));
        assert!(task_array("{\"tasks\": null}").is_none());
    }
}
