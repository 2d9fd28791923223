//! Canonical typed values: every cell, read natively from either engine, is brought into
//! the *domain* of its column and encoded as tag + length + bytes before hashing.
//!
//! The domain is decided by the target column's type (or the transfer plan): a SQLite TEXT
//! and a PostgreSQL `timestamptz` are both turned into UTC microseconds in the
//! [`Domain::Timestamp`] domain, a JSON text and a `jsonb` into canonical JSON, and so on.
//! A value that cannot be held in its column's domain (TEXT `abc` for a `bigint` column,
//! invalid UTF-8 for `text`) is encoded with a "cannot convert" tag that carries the raw
//! value and the side it came from, so it never equals anything on the other side: a lossy
//! conversion is always reported, never hashed away.

use serde::{Deserialize, Serialize};

use crate::decimal::Dec;
use crate::json::{self, JVal};
use crate::timefmt;

/// How the values of one column are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// `bigint`/`integer`/`smallint`: SQLite INTEGER.
    Integer,
    /// `double precision`/`real`: IEEE-754 bits (−0.0 and NaN normalised); INTEGER when
    /// exactly representable.
    Float,
    /// `numeric`: decimal value; REAL as its shortest round-trip decimal.
    Numeric,
    /// `boolean`: INTEGER 0/1.
    Boolean,
    /// `boolean` where the plan says so: INTEGER 0/1 and TEXT `0`/`1`/`true`/`false`/`t`/`f`.
    BooleanOrText,
    /// `text`/`varchar`/`char`: TEXT byte for byte; INTEGER as its decimal; REAL as its
    /// shortest exact decimal in positional notation, always with a point (`5.0`, `1e20`
    /// written out), the documented way a REAL lands in a text column.
    Text,
    /// `bytea`: BLOB byte for byte; TEXT as its bytes.
    Bytes,
    /// `timestamptz`/`timestamp`: the UTC instant in microseconds; ISO-8601 TEXT without
    /// an offset (and a `timestamp` value) is read at the configured naive offset.
    Timestamp,
    /// `date`: days.
    Date,
    /// `jsonb`/`json`: canonical JSON (keys ordered, last duplicate wins, numbers by value).
    Json,
    /// `uuid`: 16 bytes; TEXT in any of PostgreSQL's input forms, BLOB of 16 bytes.
    Uuid,
    /// `real[]` (or pgvector `vector`): BLOB of little-endian f32, element for element.
    FloatArray,
    /// The plan's mixed-class `jsonb` encoding: each value keeps its storage class.
    Mixed,
    /// SQLite against SQLite: each value as its own storage class.
    Native,
    /// A target type ferry cannot compare; the table is reported as an error.
    Unsupported,
}

/// Which database a value came from (a value that cannot be converted carries it, so two
/// unconvertible values never compare equal across sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// One value as an engine returned it, before canonicalisation.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
    Bool(bool),
    F32(f32),
    Numeric(Dec),
    /// UTC microseconds since 1970 (`timestamptz`).
    Ts(i64),
    /// Wall-clock microseconds since 1970 (`timestamp` without time zone).
    TsLocal(i64),
    /// Days since 1970.
    Date(i32),
    /// `json`/`jsonb` text.
    JsonText(&'a [u8]),
    Uuid([u8; 16]),
    F32s(Vec<f32>),
    /// A value of a type this crate does not decode, or bytes that do not decode as their
    /// declared type; carries a description.
    Opaque(String),
}

// Tags of the canonical encoding. Changing any of them changes every digest: bump
// ENCODING_VERSION with it.
pub(crate) const T_NULL: u8 = 0;
pub(crate) const T_INT: u8 = 1;
pub(crate) const T_FLOAT: u8 = 2;
pub(crate) const T_TEXT: u8 = 3;
pub(crate) const T_BLOB: u8 = 4;
pub(crate) const T_BOOL: u8 = 5;
pub(crate) const T_TS: u8 = 6;
pub(crate) const T_DATE: u8 = 7;
pub(crate) const T_JSON: u8 = 8;
pub(crate) const T_NUMERIC: u8 = 9;
pub(crate) const T_UUID: u8 = 10;
pub(crate) const T_F32S: u8 = 11;
pub(crate) const T_BAD_SOURCE: u8 = 0xFE;
pub(crate) const T_BAD_TARGET: u8 = 0xFF;

/// Version of the canonical encoding, recorded in reports: digests are comparable only
/// between equal versions.
pub const ENCODING_VERSION: u32 = 1;

// Kinds of raw value kept inside a "cannot convert" payload.
const RAW_INT: u8 = 1;
const RAW_REAL: u8 = 2;
const RAW_TEXT: u8 = 3;
const RAW_BLOB: u8 = 4;
const RAW_OTHER: u8 = 5;

const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;
const CANONICAL_NAN32: u32 = 0x7fc0_0000;

/// Settings that change how values read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx {
    /// Seconds east of UTC for timestamps written without an offset.
    pub naive_offset_secs: i32,
}

fn float_bits(x: f64) -> u64 {
    if x.is_nan() {
        CANONICAL_NAN
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

fn f32_bits(x: f32) -> u32 {
    if x.is_nan() {
        CANONICAL_NAN32
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

fn int_payload(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// Appends tag + u32 length + payload.
fn put(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends a tag and a payload written by `f` (length patched afterwards).
fn put_with(out: &mut Vec<u8>, tag: u8, f: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    f(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_bad(out: &mut Vec<u8>, side: Side, v: &Val<'_>) {
    let tag = match side {
        Side::Source => T_BAD_SOURCE,
        Side::Target => T_BAD_TARGET,
    };
    put_with(out, tag, |o| match v {
        Val::Int(i) => {
            o.push(RAW_INT);
            o.extend_from_slice(&i.to_le_bytes());
        }
        Val::Real(x) => {
            o.push(RAW_REAL);
            o.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Val::Text(t) => {
            o.push(RAW_TEXT);
            o.extend_from_slice(t);
        }
        Val::Blob(b) => {
            o.push(RAW_BLOB);
            o.extend_from_slice(b);
        }
        other => {
            o.push(RAW_OTHER);
            o.extend_from_slice(describe_val(other).as_bytes());
        }
    });
}

fn describe_val(v: &Val<'_>) -> String {
    match v {
        Val::Null => "NULL".into(),
        Val::Int(i) => format!("integer {i}"),
        Val::Real(x) => format!("real {}", show_f64(*x)),
        Val::Text(t) => format!("text {}", show_text(t)),
        Val::Blob(b) => format!("blob {}", show_blob(b)),
        Val::Bool(b) => format!("boolean {b}"),
        Val::F32(x) => format!("real {x}"),
        Val::Numeric(d) => format!("numeric {}", d.canonical()),
        Val::Ts(t) => format!("timestamptz {}", timefmt::format_timestamp(*t)),
        Val::TsLocal(t) => format!(
            "timestamp {}",
            timefmt::format_timestamp(*t).trim_end_matches('Z')
        ),
        Val::Date(d) => format!("date {}", timefmt::format_date(*d)),
        Val::JsonText(t) => format!("json {}", truncate(&String::from_utf8_lossy(t), 120)),
        Val::Uuid(u) => format!("uuid {}", show_uuid(u)),
        Val::F32s(v) => format!("real[] of {} values", v.len()),
        Val::Opaque(s) => s.clone(),
    }
}

/// Encodes one cell of `domain` into `out`. `scratch` is a reusable buffer.
pub(crate) fn encode(domain: Domain, v: &Val<'_>, ctx: Ctx, side: Side, out: &mut Vec<u8>) {
    if let Val::Null = v {
        out.push(T_NULL);
        return;
    }
    let ok = match domain {
        Domain::Integer => match v {
            Val::Int(i) => {
                put(out, T_INT, &int_payload(*i));
                true
            }
            _ => false,
        },
        Domain::Float => {
            let x = match v {
                Val::Real(x) => Some(*x),
                Val::F32(x) => Some(f64::from(*x)),
                // Only integers a double holds exactly; larger ones would change value.
                Val::Int(i) if i.unsigned_abs() <= 1 << 53 => Some(*i as f64),
                _ => None,
            };
            match x {
                Some(x) => {
                    put(out, T_FLOAT, &float_bits(x).to_be_bytes());
                    true
                }
                None => false,
            }
        }
        Domain::Numeric => {
            let d = match v {
                Val::Int(i) => Some(Dec::from_i64(*i)),
                Val::Real(x) => Some(Dec::from_f64(*x)),
                Val::Numeric(d) => Some(d.clone()),
                Val::Text(t) => Dec::parse(t),
                _ => None,
            };
            match d {
                Some(d) => {
                    put(out, T_NUMERIC, d.canonical().as_bytes());
                    true
                }
                None => false,
            }
        }
        Domain::Boolean | Domain::BooleanOrText => {
            let b = match v {
                Val::Int(0) => Some(false),
                Val::Int(1) => Some(true),
                Val::Bool(b) => Some(*b),
                Val::Text(t) if domain == Domain::BooleanOrText => text_bool(t),
                _ => None,
            };
            match b {
                Some(b) => {
                    put(out, T_BOOL, &[u8::from(b)]);
                    true
                }
                None => false,
            }
        }
        Domain::Text => match v {
            Val::Text(t) => {
                put(out, T_TEXT, t);
                true
            }
            Val::Int(i) => {
                put(out, T_TEXT, i.to_string().as_bytes());
                true
            }
            Val::Real(x) => {
                put(out, T_TEXT, real_text(*x).as_bytes());
                true
            }
            _ => false,
        },
        Domain::Bytes => match v {
            Val::Blob(b) | Val::Text(b) => {
                put(out, T_BLOB, b);
                true
            }
            _ => false,
        },
        Domain::Timestamp => {
            let t = match v {
                Val::Text(t) => timefmt::parse_timestamp(t, ctx.naive_offset_secs),
                Val::Ts(t) => Some(*t),
                Val::TsLocal(t) if *t == i64::MAX || *t == i64::MIN => Some(*t),
                Val::TsLocal(t) => t.checked_sub(i64::from(ctx.naive_offset_secs) * 1_000_000),
                _ => None,
            };
            match t {
                Some(t) => {
                    put(out, T_TS, &int_payload(t));
                    true
                }
                None => false,
            }
        }
        Domain::Date => {
            let d = match v {
                Val::Text(t) => timefmt::parse_date(t),
                Val::Date(d) => Some(*d),
                _ => None,
            };
            match d {
                Some(d) => {
                    put(out, T_DATE, &(((d as u32) ^ (1 << 31)).to_be_bytes()));
                    true
                }
                None => false,
            }
        }
        Domain::Json => match v {
            Val::Text(t) | Val::JsonText(t) => {
                let mark = out.len();
                let mut ok = true;
                put_with(out, T_JSON, |o| ok = json::canonicalize_into(t, o));
                if !ok {
                    out.truncate(mark);
                }
                ok
            }
            // A number stored in a JSON column is the JSON number of the same value.
            Val::Int(i) => {
                put_with(out, T_JSON, |o| json::write_number(&Dec::from_i64(*i), o));
                true
            }
            Val::Real(x) if x.is_finite() => {
                put_with(out, T_JSON, |o| json::write_number(&Dec::from_f64(*x), o));
                true
            }
            _ => false,
        },
        Domain::Uuid => {
            let u = match v {
                Val::Text(t) => parse_uuid(t),
                Val::Blob(b) if b.len() == 16 => <[u8; 16]>::try_from(*b).ok(),
                Val::Uuid(u) => Some(*u),
                _ => None,
            };
            match u {
                Some(u) => {
                    put(out, T_UUID, &u);
                    true
                }
                None => false,
            }
        }
        Domain::FloatArray => match v {
            Val::Blob(b) if b.len() % 4 == 0 => {
                put_with(out, T_F32S, |o| {
                    for chunk in b.chunks_exact(4) {
                        let x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        o.extend_from_slice(&f32_bits(x).to_be_bytes());
                    }
                });
                true
            }
            Val::F32s(xs) => {
                put_with(out, T_F32S, |o| {
                    for x in xs {
                        o.extend_from_slice(&f32_bits(*x).to_be_bytes());
                    }
                });
                true
            }
            _ => false,
        },
        Domain::Mixed | Domain::Native => match v {
            Val::Int(i) => {
                put(out, T_INT, &int_payload(*i));
                true
            }
            Val::Real(x) => {
                put(out, T_FLOAT, &float_bits(*x).to_be_bytes());
                true
            }
            Val::Text(t) => {
                put(out, T_TEXT, t);
                true
            }
            Val::Blob(b) => {
                put(out, T_BLOB, b);
                true
            }
            Val::JsonText(t) if domain == Domain::Mixed => encode_mixed_jsonb(t, out),
            _ => false,
        },
        Domain::Unsupported => false,
    };
    if !ok {
        put_bad(out, side, v);
    }
}

/// Reads one `jsonb` value written in the plan's mixed-class encoding back into the
/// SQLite value it stands for (see `ferry_core::plan::TargetType::MixedJsonb`).
fn encode_mixed_jsonb(text: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(j) = json::parse(text) else {
        return false;
    };
    match j {
        JVal::Num(n) => {
            // PostgreSQL prints jsonb numbers without exponents; a number without a point
            // that fits in i64 was an INTEGER, anything else a REAL.
            let integral = !n.iter().any(|c| matches!(c, b'.' | b'e' | b'E'));
            let as_int = if integral {
                std::str::from_utf8(&n)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
            } else {
                None
            };
            match as_int {
                Some(i) => put(out, T_INT, &int_payload(i)),
                None => {
                    let Some(x) = std::str::from_utf8(&n)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                    else {
                        return false;
                    };
                    put(out, T_FLOAT, &float_bits(x).to_be_bytes());
                }
            }
            true
        }
        JVal::Str(s) => {
            put(out, T_TEXT, &s);
            true
        }
        JVal::Obj(members) if members.len() == 1 => match &members[0] {
            (k, JVal::Str(hex_text)) if k == b"$blob" => match hex::decode(hex_text) {
                Ok(bytes) => {
                    put(out, T_BLOB, &bytes);
                    true
                }
                Err(_) => false,
            },
            (k, JVal::Str(word)) if k == b"$real" => {
                let x = match word.as_slice() {
                    b"NaN" => f64::NAN,
                    b"Infinity" => f64::INFINITY,
                    b"-Infinity" => f64::NEG_INFINITY,
                    _ => return false,
                };
                put(out, T_FLOAT, &float_bits(x).to_be_bytes());
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn text_bool(t: &[u8]) -> Option<bool> {
    let t = crate::decimal::trim_ascii(t);
    if t == b"1" || t.eq_ignore_ascii_case(b"true") || t.eq_ignore_ascii_case(b"t") {
        Some(true)
    } else if t == b"0" || t.eq_ignore_ascii_case(b"false") || t.eq_ignore_ascii_case(b"f") {
        Some(false)
    } else {
        None
    }
}

/// Parses a UUID the way PostgreSQL's `uuid_in` accepts it: 32 hex digits, optionally in
/// braces, optionally with a hyphen after any group of four.
pub(crate) fn parse_uuid(t: &[u8]) -> Option<[u8; 16]> {
    let t = crate::decimal::trim_ascii(t);
    let t = match (t.first(), t.last()) {
        (Some(b'{'), Some(b'}')) => &t[1..t.len() - 1],
        _ => t,
    };
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut since_hyphen = 0;
    for (i, &c) in t.iter().enumerate() {
        if c == b'-' {
            if since_hyphen != 4 || i + 1 == t.len() {
                return None;
            }
            since_hyphen = 0;
            continue;
        }
        let d = (c as char).to_digit(16)? as u8;
        if n >= 32 {
            return None;
        }
        out[n / 2] |= if n % 2 == 0 { d << 4 } else { d };
        n += 1;
        since_hyphen = if since_hyphen == 4 {
            1
        } else {
            since_hyphen + 1
        };
    }
    (n == 32).then_some(out)
}

/// A REAL written as text the documented way (`docs/type-mapping.md`): the shortest
/// decimal that reads back as the same double, in positional notation and always with a
/// point; non-finite values by name.
pub(crate) fn real_text(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // Rust's `Display` for f64 writes the shortest round-trip digits without an exponent.
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The order-preserving key bytes of one encoded cell: tag, payload with 0x00 escaped as
/// 0x00 0xFF, terminated by 0x00 0x01 — so keys compare bytewise like their values, and
/// composite keys like tuples.
pub(crate) fn push_key_part(cell: &[u8], key: &mut Vec<u8>) {
    key.push(cell[0]);
    if cell.len() > 5 {
        for &b in &cell[5..] {
            key.push(b);
            if b == 0 {
                key.push(0xFF);
            }
        }
    }
    key.extend_from_slice(&[0, 1]);
}

/// One key part decoded back from key bytes, for SQL range predicates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyPart {
    Int(i64),
    Text(String),
}

/// Decodes key bytes made of INTEGER and TEXT parts (the domains pushed into SQL).
pub(crate) fn decode_key(mut key: &[u8]) -> Option<Vec<KeyPart>> {
    let mut parts = Vec::new();
    while let Some((&tag, rest)) = key.split_first() {
        let mut payload = Vec::new();
        let mut i = 0;
        loop {
            let b = *rest.get(i)?;
            if b == 0 {
                match *rest.get(i + 1)? {
                    0xFF => {
                        payload.push(0);
                        i += 2;
                    }
                    1 => {
                        i += 2;
                        break;
                    }
                    _ => return None,
                }
            } else {
                payload.push(b);
                i += 1;
            }
        }
        key = &rest[i..];
        parts.push(match tag {
            T_INT => {
                let raw: [u8; 8] = payload.as_slice().try_into().ok()?;
                KeyPart::Int((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
            }
            T_TEXT => KeyPart::Text(String::from_utf8(payload).ok()?),
            _ => return None,
        });
    }
    Some(parts)
}

/// A person-readable rendering of one encoded cell (at most about `limit` characters).
/// `cell` may have been cut short; its header still gives the full length.
pub(crate) fn show(domain: Domain, cell: &[u8], limit: usize) -> String {
    let tag = cell[0];
    let payload = if cell.len() > 5 { &cell[5..] } else { &[][..] };
    let full_len = if cell.len() >= 5 {
        u32::from_le_bytes([cell[1], cell[2], cell[3], cell[4]]) as usize
    } else {
        0
    };
    let cut = full_len > payload.len();
    let payload = if cut && matches!(tag, T_TEXT | T_JSON) {
        // Do not report a UTF-8 sequence split by the cut as invalid text.
        match std::str::from_utf8(payload) {
            Ok(_) => payload,
            Err(e) if e.error_len().is_none() => &payload[..e.valid_up_to()],
            Err(_) => payload,
        }
    } else {
        payload
    };
    let s = match tag {
        T_NULL => "NULL".to_owned(),
        T_INT => match <[u8; 8]>::try_from(payload) {
            Ok(raw) => ((u64::from_be_bytes(raw) ^ (1 << 63)) as i64).to_string(),
            Err(_) => "?".into(),
        },
        T_FLOAT => match <[u8; 8]>::try_from(payload) {
            Ok(raw) => show_f64(f64::from_bits(u64::from_be_bytes(raw))),
            Err(_) => "?".into(),
        },
        T_TEXT => show_text(payload),
        T_BLOB if cut => format!(
            "x'{}…' ({full_len} bytes)",
            hex::encode(&payload[..payload.len().min(48)])
        ),
        T_BLOB => show_blob(payload),
        T_BOOL => (payload.first() == Some(&1)).to_string(),
        T_TS => match <[u8; 8]>::try_from(payload) {
            Ok(raw) => timefmt::format_timestamp((u64::from_be_bytes(raw) ^ (1 << 63)) as i64),
            Err(_) => "?".into(),
        },
        T_DATE => match <[u8; 4]>::try_from(payload) {
            Ok(raw) => timefmt::format_date((u32::from_be_bytes(raw) ^ (1 << 31)) as i32),
            Err(_) => "?".into(),
        },
        T_JSON | T_NUMERIC => String::from_utf8_lossy(payload).into_owned(),
        T_UUID => match <[u8; 16]>::try_from(payload) {
            Ok(u) => show_uuid(&u),
            Err(_) => "?".into(),
        },
        T_F32S => {
            let xs: Vec<String> = payload
                .chunks_exact(4)
                .take(4)
                .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).to_string())
                .collect();
            let n = full_len / 4;
            if n > 4 {
                format!("[{}, …] ({n} values)", xs.join(", "))
            } else {
                format!("[{}]", xs.join(", "))
            }
        }
        T_BAD_SOURCE | T_BAD_TARGET => {
            let raw = if payload.is_empty() {
                &[][..]
            } else {
                &payload[1..]
            };
            let what = match payload.first() {
                Some(&RAW_INT) => match <[u8; 8]>::try_from(raw) {
                    Ok(b) => format!("integer {}", i64::from_le_bytes(b)),
                    Err(_) => "integer ?".into(),
                },
                Some(&RAW_REAL) => match <[u8; 8]>::try_from(raw) {
                    Ok(b) => format!("real {}", show_f64(f64::from_bits(u64::from_le_bytes(b)))),
                    Err(_) => "real ?".into(),
                },
                Some(&RAW_TEXT) => format!("text {}", show_text(raw)),
                Some(&RAW_BLOB) => format!("blob {}", show_blob(raw)),
                _ => String::from_utf8_lossy(raw).into_owned(),
            };
            format!("{what} (not comparable as {})", domain_name(domain))
        }
        _ => format!("tag {tag}"),
    };
    if cut && !matches!(tag, T_F32S | T_BLOB) {
        format!(
            "{}… ({full_len} bytes)",
            truncate(&s, limit).trim_end_matches('…')
        )
    } else {
        truncate(&s, limit)
    }
}

pub(crate) fn domain_name(d: Domain) -> &'static str {
    match d {
        Domain::Integer => "integer",
        Domain::Float => "double",
        Domain::Numeric => "numeric",
        Domain::Boolean | Domain::BooleanOrText => "boolean",
        Domain::Text => "text",
        Domain::Bytes => "bytes",
        Domain::Timestamp => "timestamp",
        Domain::Date => "date",
        Domain::Json => "json",
        Domain::Uuid => "uuid",
        Domain::FloatArray => "real[]",
        Domain::Mixed => "mixed jsonb",
        Domain::Native => "sqlite value",
        Domain::Unsupported => "unsupported type",
    }
}

fn show_f64(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:?}")
    }
}

/// Text as a JSON string literal when it is UTF-8 (so trailing spaces and control
/// characters are visible), else as hex.
fn show_text(t: &[u8]) -> String {
    match std::str::from_utf8(t) {
        Ok(s) => serde_json::to_string(s).unwrap_or_else(|_| s.to_owned()),
        Err(_) => format!("(invalid UTF-8) {}", show_blob(t)),
    }
}

fn show_blob(b: &[u8]) -> String {
    if b.len() > 48 {
        format!("x'{}…' ({} bytes)", hex::encode(&b[..48]), b.len())
    } else {
        format!("x'{}'", hex::encode(b))
    }
}

fn show_uuid(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn truncate(s: &str, limit: usize) -> String {
    if s.chars().count() <= limit {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(limit).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(domain: Domain, v: Val<'_>, side: Side) -> Vec<u8> {
        let mut out = Vec::new();
        encode(domain, &v, Ctx::default(), side, &mut out);
        out
    }

    #[test]
    fn representations_of_one_value_encode_equal() {
        use Side::*;
        assert_eq!(
            enc(Domain::Float, Val::Real(-0.0), Source),
            enc(Domain::Float, Val::Real(0.0), Target)
        );
        assert_eq!(
            enc(Domain::Float, Val::Real(f64::NAN), Source),
            enc(
                Domain::Float,
                Val::Real(f64::from_bits(0x7ff0_0000_0000_0001)),
                Target
            )
        );
        assert_eq!(
            enc(Domain::Float, Val::Int(3), Source),
            enc(Domain::Float, Val::Real(3.0), Target)
        );
        assert_eq!(
            enc(Domain::Timestamp, Val::Text(b"2025-01-01 00:00:00"), Source),
            enc(Domain::Timestamp, Val::Ts(1_735_689_600_000_000), Target)
        );
        assert_eq!(
            enc(
                Domain::Json,
                Val::Text(br#"{"b": [1.0], "a": null}"#),
                Source
            ),
            enc(
                Domain::Json,
                Val::JsonText(br#"{"a": null, "b": [1]}"#),
                Target
            )
        );
        assert_eq!(
            enc(Domain::BooleanOrText, Val::Text(b"true"), Source),
            enc(Domain::Boolean, Val::Bool(true), Target)
        );
        assert_eq!(
            enc(Domain::Numeric, Val::Real(0.1), Source),
            enc(
                Domain::Numeric,
                Val::Numeric(Dec::parse(b"0.100").unwrap()),
                Target
            )
        );
        assert_eq!(
            enc(
                Domain::Uuid,
                Val::Text(b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
                Source
            ),
            enc(
                Domain::Uuid,
                Val::Text(b"{a0eebc999c0b4ef8bb6d6bb9bd380a11}"),
                Target
            )
        );
        let blob: Vec<u8> = [1.5f32, -0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            enc(Domain::FloatArray, Val::Blob(&blob), Source),
            enc(Domain::FloatArray, Val::F32s(vec![1.5, 0.0]), Target)
        );
        assert_eq!(
            enc(Domain::Mixed, Val::Real(5.0), Source),
            enc(Domain::Mixed, Val::JsonText(b"5.0"), Target)
        );
        assert_eq!(
            enc(Domain::Mixed, Val::Int(5), Source),
            enc(Domain::Mixed, Val::JsonText(b"5"), Target)
        );
        assert_eq!(
            enc(Domain::Mixed, Val::Blob(&[0xab]), Source),
            enc(Domain::Mixed, Val::JsonText(br#"{"$blob": "ab"}"#), Target)
        );
        assert_eq!(
            enc(Domain::Text, Val::Real(0.1 + 0.2), Source),
            enc(Domain::Text, Val::Text(b"0.30000000000000004"), Target)
        );
    }

    #[test]
    fn different_values_encode_differently() {
        use Side::*;
        assert_ne!(
            enc(Domain::Text, Val::Text(b""), Source),
            enc(Domain::Text, Val::Null, Target)
        );
        assert_ne!(
            enc(Domain::Text, Val::Text(b"a "), Source),
            enc(Domain::Text, Val::Text(b"a"), Target)
        );
        assert_ne!(
            enc(Domain::Mixed, Val::Int(5), Source),
            enc(Domain::Mixed, Val::JsonText(b"5.0"), Target)
        );
        assert_ne!(
            enc(Domain::Float, Val::Real(0.1), Source),
            enc(Domain::Float, Val::F32(0.1), Target)
        );
        // The same unconvertible value on both sides is still a difference.
        assert_ne!(
            enc(Domain::Integer, Val::Text(b"abc"), Source),
            enc(Domain::Integer, Val::Text(b"abc"), Target)
        );
        // Integers a double cannot hold exactly are not silently rounded.
        assert_eq!(
            enc(Domain::Float, Val::Int((1 << 53) + 1), Source)[0],
            T_BAD_SOURCE
        );
        assert_eq!(
            enc(Domain::Boolean, Val::Text(b"1"), Source)[0],
            T_BAD_SOURCE
        );
    }

    #[test]
    fn keys_order_like_values_and_decode() {
        let key = |cells: &[Vec<u8>]| {
            let mut k = Vec::new();
            for c in cells {
                push_key_part(c, &mut k);
            }
            k
        };
        let i = |v: i64| enc(Domain::Integer, Val::Int(v), Side::Source);
        let t = |s: &'static [u8]| enc(Domain::Text, Val::Text(s), Side::Source);
        assert!(key(&[i(-5)]) < key(&[i(3)]));
        assert!(key(&[i(3)]) < key(&[i(300)]));
        assert!(key(&[t(b"ab")]) < key(&[t(b"ab\0")]));
        assert!(key(&[t(b"ab\0")]) < key(&[t(b"abc")]));
        assert!(key(&[t(b"a"), t(b"z")]) < key(&[t(b"ab"), t(b"a")]));
        assert_eq!(
            decode_key(&key(&[i(-7), t(b"x\0y")])),
            Some(vec![KeyPart::Int(-7), KeyPart::Text("x\0y".into())])
        );
    }

    #[test]
    fn reals_as_text_are_exact_and_positional() {
        assert_eq!(real_text(1e15), "1000000000000000.0");
        assert_eq!(real_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(real_text(-0.0), "-0.0");
        assert_eq!(real_text(1.5e-7), "0.00000015");
        assert_eq!(real_text(f64::INFINITY), "Infinity");
        for x in [1e300, 5e-324, 0.5585032703121495] {
            assert_eq!(real_text(x).parse::<f64>().unwrap().to_bits(), x.to_bits());
        }
    }

    #[test]
    fn shown_values_name_what_could_not_be_converted() {
        let cell = enc(Domain::Integer, Val::Text(b"abc"), Side::Source);
        assert_eq!(
            show(Domain::Integer, &cell, 100),
            "text \"abc\" (not comparable as integer)"
        );
        let cell = enc(Domain::Timestamp, Val::Ts(0), Side::Target);
        assert_eq!(show(Domain::Timestamp, &cell, 100), "1970-01-01T00:00:00Z");
    }
}
