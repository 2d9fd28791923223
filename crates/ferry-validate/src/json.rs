//! JSON read the way `jsonb` normalises it: object keys ordered, the last of duplicate keys
//! wins, insignificant whitespace dropped, string escapes decoded, numbers compared by value.
//!
//! Both sides are canonicalised by this one parser, so a SQLite JSON text and the `jsonb`
//! PostgreSQL prints back compare equal exactly when they mean the same document.

use crate::decimal::Dec;

/// Nesting deeper than this is refused (reported as a value that cannot be compared)
/// rather than risking the reader thread's stack.
const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JVal {
    Null,
    Bool(bool),
    /// The number as written; compared by value through [`Dec`].
    Num(Vec<u8>),
    Str(Vec<u8>),
    Arr(Vec<JVal>),
    Obj(Vec<(Vec<u8>, JVal)>),
}

/// Parses a complete JSON text (RFC 8259), or `None` when it is not valid JSON.
pub(crate) fn parse(text: &[u8]) -> Option<JVal> {
    std::str::from_utf8(text).ok()?;
    let mut p = Parser { s: text, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    (p.i == text.len()).then_some(v)
}

/// Writes the canonical form of a JSON text into `out`; `false` when it is not valid JSON.
#[cfg(test)]
pub(crate) fn canonicalize(text: &[u8], out: &mut Vec<u8>) -> bool {
    match parse(text) {
        Some(v) => {
            write_canonical(v, out);
            true
        }
        None => false,
    }
}

/// Writes one value canonically. Consumes the tree so object members can be sorted in place.
/// The reference the streaming [`canonicalize_into`] is tested against.
#[cfg(test)]
pub(crate) fn write_canonical(v: JVal, out: &mut Vec<u8>) {
    match v {
        JVal::Null => out.extend_from_slice(b"null"),
        JVal::Bool(true) => out.extend_from_slice(b"true"),
        JVal::Bool(false) => out.extend_from_slice(b"false"),
        JVal::Num(text) => match Dec::parse(&text) {
            Some(d) => out.extend_from_slice(d.canonical().as_bytes()),
            None => out.extend_from_slice(&text),
        },
        JVal::Str(s) => write_string(&s, out),
        JVal::Arr(items) => {
            out.push(b'[');
            for (k, item) in items.into_iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        JVal::Obj(mut members) => {
            // Ordered by the written (escaped) key, as the streaming canonicaliser orders them;
            // the stable sort keeps duplicates in input order, so the last one is kept below.
            members.sort_by_cached_key(|(k, _)| {
                let mut escaped = Vec::with_capacity(k.len() + 2);
                write_string(k, &mut escaped);
                escaped
            });
            out.push(b'{');
            let n = members.len();
            let mut first = true;
            let mut it = members.into_iter().enumerate().peekable();
            while let Some((k, (key, value))) = it.next() {
                let dup_follows = k + 1 < n && it.peek().is_some_and(|(_, (next, _))| *next == key);
                if dup_follows {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                write_string(&key, out);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
    }
}

/// A JSON number written for a plain number value (an INTEGER or REAL stored in a JSON
/// column): canonical by value.
pub(crate) fn write_number(d: &Dec, out: &mut Vec<u8>) {
    out.extend_from_slice(d.canonical().as_bytes());
}

/// Writes the canonical form of a JSON text straight into `out` (no tree): the same result
/// as [`parse`] + [`write_canonical`], an order of magnitude cheaper. On invalid JSON it
/// returns `false` and leaves `out` as it was.
pub(crate) fn canonicalize_into(text: &[u8], out: &mut Vec<u8>) -> bool {
    let mark = out.len();
    let ok = std::str::from_utf8(text).is_ok() && {
        let mut c = Canon {
            s: text,
            i: 0,
            scratch: Vec::new(),
        };
        c.ws();
        c.value(out, 0).is_some() && {
            c.ws();
            c.i == text.len()
        }
    };
    if !ok {
        out.truncate(mark);
    }
    ok
}

struct Canon<'a> {
    s: &'a [u8],
    i: usize,
    /// Reused when an object's members must be reordered.
    scratch: Vec<u8>,
}

impl Canon<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match *self.s.get(self.i)? {
            b'{' => self.object(out, depth),
            b'[' => {
                self.i += 1;
                out.push(b'[');
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    out.push(b']');
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(out, depth + 1)?;
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => {
                            self.i += 1;
                            out.push(b',');
                        }
                        b']' => {
                            self.i += 1;
                            out.push(b']');
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string(out),
            b't' => self.lit(b"true", out),
            b'f' => self.lit(b"false", out),
            b'n' => self.lit(b"null", out),
            b'-' | b'0'..=b'9' => self.number(out),
            _ => None,
        }
    }

    fn lit(&mut self, word: &[u8], out: &mut Vec<u8>) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            out.extend_from_slice(word);
            Some(())
        } else {
            None
        }
    }

    /// Members are written as they come; only when their keys are not already strictly
    /// increasing are they re-read, sorted (stably: the last duplicate wins) and rewritten.
    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        self.i += 1;
        let base = out.len();
        out.push(b'{');
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            out.push(b'}');
            return Some(());
        }
        // (key start, key end, member end) relative to `out`.
        let mut members: Vec<(usize, usize, usize)> = Vec::new();
        let mut in_order = true;
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return None;
            }
            if !members.is_empty() {
                out.push(b',');
            }
            let ks = out.len();
            self.string(out)?;
            let ke = out.len();
            if let Some(&(ps, pe, _)) = members.last() {
                if out[ps..pe] >= out[ks..ke] {
                    in_order = false;
                }
            }
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return None;
            }
            self.i += 1;
            out.push(b':');
            self.ws();
            self.value(out, depth + 1)?;
            members.push((ks, ke, out.len()));
            self.ws();
            match self.s.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if !in_order {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend_from_slice(&out[base..]);
            let rel = |p: usize| p - base;
            members.sort_by(|a, b| scratch[rel(a.0)..rel(a.1)].cmp(&scratch[rel(b.0)..rel(b.1)]));
            out.truncate(base + 1);
            let mut first = true;
            for k in 0..members.len() {
                let (ks, ke, me) = members[k];
                let dup_follows = members
                    .get(k + 1)
                    .is_some_and(|n| scratch[rel(n.0)..rel(n.1)] == scratch[rel(ks)..rel(ke)]);
                if dup_follows {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&scratch[rel(ks)..rel(me)]);
            }
            self.scratch = scratch;
        }
        out.push(b'}');
        Some(())
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.skip_digits(),
            _ => return None,
        }
        let mut integral = true;
        if self.s.get(self.i) == Some(&b'.') {
            integral = false;
            self.i += 1;
            if !self.s.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.skip_digits();
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            integral = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if !self.s.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.skip_digits();
        }
        let lit = &self.s[start..self.i];
        // A JSON integer has no leading zeros, so up to 30 digits it is already canonical.
        if integral && lit.len() <= 30 {
            if lit == b"-0" {
                out.push(b'0');
            } else {
                out.extend_from_slice(lit);
            }
        } else {
            out.extend_from_slice(Dec::parse(lit)?.canonical().as_bytes());
        }
        Some(())
    }

    fn skip_digits(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    /// A string, written canonically: copied as is when it has no escape.
    fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i + 1;
        let mut j = start;
        while let Some(&c) = self.s.get(j) {
            match c {
                b'"' => {
                    out.extend_from_slice(&self.s[self.i..=j]);
                    self.i = j + 1;
                    return Some(());
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => j += 1,
            }
        }
        let mut p = Parser {
            s: self.s,
            i: self.i,
        };
        let decoded = p.string()?;
        self.i = p.i;
        write_string(&decoded, out);
        Some(())
    }
}

fn write_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8], v: JVal) -> Option<JVal> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<JVal> {
        if depth > MAX_DEPTH {
            return None;
        }
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(JVal::Obj(members));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    let key = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.push((key, v));
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(JVal::Obj(members));
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(JVal::Arr(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(JVal::Arr(items));
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(JVal::Str),
            b't' => self.lit(b"true", JVal::Bool(true)),
            b'f' => self.lit(b"false", JVal::Bool(false)),
            b'n' => self.lit(b"null", JVal::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<JVal> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.skip_digits(),
            _ => return None,
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.s.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.skip_digits();
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if !self.s.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.skip_digits();
        }
        Some(JVal::Num(self.s[start..self.i].to_vec()))
    }

    fn skip_digits(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let part = self.s.get(self.i..self.i + 4)?;
        let text = std::str::from_utf8(part).ok()?;
        let v = u32::from_str_radix(text, 16).ok()?;
        self.i += 4;
        Some(v)
    }

    /// A string starting at the opening quote; returns its decoded UTF-8 bytes.
    fn string(&mut self) -> Option<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let start = self.i;
            while let Some(&c) = self.s.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.extend_from_slice(&self.s[start..self.i]);
            match *self.s.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.i += 1;
                    let esc = *self.s.get(self.i)?;
                    self.i += 1;
                    let c = match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return None;
                            } else {
                                hi
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                // A raw control character inside a string is not JSON.
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        let mut out = Vec::new();
        if canonicalize(s.as_bytes(), &mut out) {
            String::from_utf8(out).unwrap()
        } else {
            "invalid".into()
        }
    }

    #[test]
    fn jsonb_normalisations_compare_equal() {
        assert_eq!(
            canon(r#" { "b" : 1, "a" : [1.0, 2e0, -0] } "#),
            r#"{"a":[1,2,0],"b":1}"#
        );
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
        assert_eq!(canon(r#"{"a":1,"b":0,"a":3}"#), r#"{"a":3,"b":0}"#);
        assert_eq!(canon(r#""\u00e9\n\/""#), "\"é\\u000a/\"");
        assert_eq!(canon(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(canon("1.50"), "1.5");
        assert_eq!(canon("[]"), "[]");
        assert_eq!(canon("{}"), "{}");
    }

    #[test]
    fn values_that_differ_stay_different() {
        assert_ne!(canon(r#"{"a":"1"}"#), canon(r#"{"a":1}"#));
        assert_ne!(canon(r#"[1,2]"#), canon(r#"[2,1]"#));
        assert_ne!(canon(r#""a ""#), canon(r#""a""#));
        assert_ne!(canon("null"), canon(r#""null""#));
    }

    #[test]
    fn the_streaming_canonicaliser_agrees_with_the_tree() {
        for text in [
            r#"{"b":1,"a":{"d":[1,2.50,{"z":null,"y":true}],"c":"x"},"a":-0}"#,
            r#"{"a":1,"a":2,"b":{"b":1,"a":2}}"#,
            r#"[{"k":"\u00e9\"q"},{"k":"v"},{"\u0001":1}]"#,
            r#"{"x":1e400,"y":123456789012345678901234567890123,"z":-0.000}"#,
            r#" [ ] "#,
            r#"{"a\"b":1,"a":2,"a\\b":3}"#,
            r#"{"a!":1,"a\u0001":2,"a\u0001":3}"#,
        ] {
            let mut tree = Vec::new();
            assert!(canonicalize(text.as_bytes(), &mut tree), "{text}");
            let mut stream = vec![b'#'];
            assert!(canonicalize_into(text.as_bytes(), &mut stream), "{text}");
            assert_eq!(
                String::from_utf8_lossy(&stream[1..]),
                String::from_utf8_lossy(&tree),
                "{text}"
            );
        }
        for bad in ["{", "[1,]", "{\"a\" 1}", "01", "\"\t\"", "\"\\ud800\""] {
            let mut out = vec![b'#'];
            assert!(!canonicalize_into(bad.as_bytes(), &mut out), "{bad}");
            assert_eq!(out, b"#", "output left untouched");
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [
            "{",
            "[1,]",
            "{'a':1}",
            "01",
            "1.",
            "\"\t\"",
            "\"\\ud800\"",
            "nul",
            "1 2",
            "\"\\x\"",
        ] {
            assert_eq!(canon(bad), "invalid", "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        assert_eq!(canon(&deep), "invalid");
    }
}
