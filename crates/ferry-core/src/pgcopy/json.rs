//! Strict JSON checks for values headed to `jsonb`.
//!
//! `jsonb` keeps the last of duplicate object keys and refuses `\u0000`; both would change
//! or lose a value, so such text is not JSON for ferry's purposes (derived mode keeps the
//! column as `text`, managed mode rejects the row with the reason).

use std::borrow::Cow;
use std::collections::HashSet;

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 1000;

/// Why a text is not acceptable JSON for `jsonb`, or `Ok`. The text must already be valid
/// UTF-8 (callers check that first).
pub fn check(text: &[u8]) -> Result<(), String> {
    let mut p = Scanner {
        s: text,
        i: 0,
        depth: 0,
    };
    p.ws();
    p.value()?;
    p.ws();
    if p.i != text.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(())
}

/// A validating scanner: no value is built, only object keys (to find duplicates).
struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> Scanner<'a> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<(), String> {
        match self.s.get(self.i) {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a JSON value")),
            None => Err(self.err("unexpected end")),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<(), String>) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting deeper than 1000"));
        }
        let res = f(self);
        self.depth -= 1;
        res
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.s.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), String> {
        self.eat(b'-');
        if self.eat(b'0') {
            if let Some(b'0'..=b'9') = self.s.get(self.i) {
                return Err(self.err("leading zero in a number"));
            }
        } else if self.digits() == 0 {
            return Err(self.err("invalid number"));
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.err("invalid number"));
        }
        if self.eat(b'e') || self.eat(b'E') {
            let negative = self.eat(b'-');
            if !negative {
                self.eat(b'+');
            }
            let start = self.i;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
            // PostgreSQL's numeric holds 131072 digits before the point and 16383 after:
            // a larger exponent cannot be stored.
            let exp: u64 = std::str::from_utf8(&self.s[start..self.i])
                .ok()
                .and_then(|e| e.parse().ok())
                .unwrap_or(u64::MAX);
            if exp > 16_000 {
                return Err(self.err("a number is out of range"));
            }
        }
        Ok(())
    }

    fn array(&mut self) -> Result<(), String> {
        self.i += 1;
        self.ws();
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            if self.eat(b']') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(self.err("expected , or ]"));
            }
            self.ws();
        }
    }

    fn object(&mut self) -> Result<(), String> {
        self.i += 1;
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        // Most objects are small: a linear search beats hashing until they are not.
        let mut keys: Vec<Cow<'a, [u8]>> = Vec::new();
        let mut many: Option<HashSet<Cow<'a, [u8]>>> = None;
        loop {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected an object key"));
            }
            let at = self.i;
            let key = self.string()?;
            let duplicate = match many.as_mut() {
                Some(set) => !set.insert(key.clone()),
                None if keys.contains(&key) => true,
                None => {
                    keys.push(key.clone());
                    if keys.len() > 16 {
                        many = Some(keys.drain(..).collect());
                    }
                    false
                }
            };
            if duplicate {
                return Err(format!(
                    "duplicate object key {:?} at byte {at} (jsonb would keep only the last)",
                    String::from_utf8_lossy(&key)
                ));
            }
            self.ws();
            if !self.eat(b':') {
                return Err(self.err("expected :"));
            }
            self.ws();
            self.value()?;
            self.ws();
            if self.eat(b'}') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(self.err("expected , or }"));
            }
            self.ws();
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err("invalid \\u escape"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    /// A string; returns its decoded bytes (borrowed when it holds no escape).
    fn string(&mut self) -> Result<Cow<'a, [u8]>, String> {
        self.i += 1;
        let start = self.i;
        let mut decoded: Option<Vec<u8>> = None;
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(match decoded {
                        Some(d) => Cow::Owned(d),
                        None => Cow::Borrowed(raw),
                    });
                }
                b'\\' => {
                    let buf = decoded.get_or_insert_with(|| self.s[start..self.i].to_vec());
                    self.i += 1;
                    let e = *self
                        .s
                        .get(self.i)
                        .ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    let ch = match e {
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
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return Err(self.err("lone leading surrogate in \\u escape"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid surrogate pair in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.err("lone trailing surrogate in \\u escape"));
                            } else {
                                hi
                            };
                            if code == 0 {
                                return Err(
                                    self.err("a string holds \\u0000, which jsonb cannot store")
                                );
                            }
                            char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))?
                        }
                        _ => return Err(self.err("invalid escape")),
                    };
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                    continue;
                }
                0..=0x1F => return Err(self.err("control character in a string")),
                _ => {}
            }
            if let Some(buf) = decoded.as_mut() {
                buf.push(c);
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_json_and_refuses_what_jsonb_would_change() {
        assert!(check(br#"{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}"#).is_ok());
        assert!(check(b"12345678901234567890123").is_ok());
        assert!(check(br#""plain string""#).is_ok());
        assert!(check(br#"{"a": 1, "a": 2}"#)
            .unwrap_err()
            .contains("duplicate"));
        assert!(check(br#"{"a": "x\u0000y"}"#)
            .unwrap_err()
            .contains("u0000"));
        assert!(check(br#"{"a": 1"#).is_err());
        assert!(check(b"1e999999").is_err());
        assert!(check(b"not json").is_err());
        assert!(check(br#""\ud800""#).is_err());
        assert!(check(br#""\udc00""#).is_err());
        assert!(check(br#""\ud83d\ude80""#).is_ok());
        assert!(
            check(br#"{"a\u0062": 1, "ab": 2}"#)
                .unwrap_err()
                .contains("duplicate"),
            "escaped keys compare decoded"
        );
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(check(format!("{{{}}}", many.join(", ")).as_bytes()).is_ok());
        assert!(
            check(format!("{{{}, \"k39\": 0}}", many.join(", ")).as_bytes())
                .unwrap_err()
                .contains("duplicate")
        );
    }

    #[test]
    fn agrees_with_serde_json_on_syntax() {
        let cases: &[&[u8]] = &[
            b"0",
            b"-0",
            b"01",
            b"1.",
            b".5",
            b"+1",
            b"1e",
            b"1e+5",
            b"1E-5",
            b"-1.5e3",
            b"tru",
            b"true ",
            b" null",
            b"[1,]",
            b"[,1]",
            b"[]",
            b"[[[]]]",
            br#"{"a":1,}"#,
            br#"{,}"#,
            br#"{"a" 1}"#,
            br#"{1: 2}"#,
            b"\"a\tb\"",
            b"\"a\\tb\"",
            br#""\x""#,
            br#""\u12""#,
            br#""\u00e9\/""#,
            b"\"\xc3\xa9\"",
            b"[1] [2]",
            b"",
            b"  ",
            br#"{"a":{"b":[1,{"c":null}]}}"#,
            b"\"unterminated",
            b"[1, 2",
            b"1 2",
        ];
        for case in cases {
            let ours = check(case).is_ok();
            let serde = serde_json::from_slice::<serde::de::IgnoredAny>(case).is_ok();
            assert_eq!(ours, serde, "{:?}", String::from_utf8_lossy(case));
        }
    }
}
