//! Values into PostgreSQL's binary COPY format, converted strictly to the target type.
//!
//! The stream is `PGCOPY\n\377\r\n\0`, a flags word and an extension length, then for each
//! row a 16-bit field count and for each field a 32-bit length (−1 for NULL) and the
//! payload in the type's binary `recv` format, then −1 as a 16-bit trailer. A value that
//! cannot be written exactly returns a [`ConvError`]; the caller rejects the row.
//!
//! These are the conversions of a transfer plan (`ferry-transfer` copies with them,
//! `ferry-sync` applies changes with them): one implementation, so a value synced later
//! lands exactly as the bulk copy would have written it.

pub mod cell;
pub mod json;
pub mod timestamp;

use crate::plan::TargetType;

use self::cell::Cell;

/// Signature, flags (no OIDs) and an empty header extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The file trailer: a field count of −1.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Element type OID of `real[]` (`float4`).
const FLOAT4_OID: i32 = 700;

/// What happens to a timestamp with a nonzero digit beyond microseconds when its target is
/// a timestamp type (PostgreSQL keeps microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubMicrosecond {
    /// The row goes to the reject report (nothing is altered).
    #[default]
    Reject,
    /// The value is truncated to microseconds and listed in the report's `adjusted` cells.
    Truncate,
}

/// How values are converted.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOptions {
    /// Seconds east of UTC for timestamps written without an offset.
    pub naive_offset: i32,
    pub sub_microsecond: SubMicrosecond,
}

/// Why one value could not be written.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvError {
    pub reason: String,
    /// The raw bytes of the value, when showing them helps (invalid text, blobs).
    pub bytes: Option<Vec<u8>>,
}

impl ConvError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            bytes: None,
        }
    }
    fn with_bytes(reason: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            reason: reason.into(),
            bytes: Some(bytes.to_vec()),
        }
    }
}

/// The value was stored, but not exactly as written (only with `SubMicrosecond::Truncate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Adjusted {
    pub reason: String,
}

/// Starts a row of `fields` fields.
pub fn begin_row(out: &mut Vec<u8>, fields: usize) {
    out.extend_from_slice(&(fields as i16).to_be_bytes());
}

/// Appends one field: `cell` converted to `target`. On error nothing is appended.
pub fn write_field(
    out: &mut Vec<u8>,
    target: &TargetType,
    cell: Cell<'_>,
    opts: &ConvertOptions,
) -> Result<Option<Adjusted>, ConvError> {
    if cell == Cell::Null {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(None);
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let res = write_payload(out, target, cell, opts);
    match res {
        Ok(adjusted) => {
            let len = out.len() - start - 4;
            let len = i32::try_from(len).map_err(|_| {
                out.truncate(start);
                ConvError::new(format!(
                    "value of {len} bytes exceeds PostgreSQL's 1 GB field limit"
                ))
            })?;
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
            Ok(adjusted)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn class_name(cell: &Cell<'_>) -> &'static str {
    match cell {
        Cell::Null => "NULL",
        Cell::Integer(_) => "INTEGER",
        Cell::Real(_) => "REAL",
        Cell::Text(_) => "TEXT",
        Cell::Blob(_) => "BLOB",
    }
}

fn mismatch(cell: &Cell<'_>, target: &TargetType) -> ConvError {
    let reason = format!(
        "{} value {} cannot be stored exactly in a {} column",
        class_name(cell),
        short(cell),
        target.sql()
    );
    match cell {
        Cell::Text(b) | Cell::Blob(b) => ConvError::with_bytes(reason, b),
        _ => ConvError::new(reason),
    }
}

/// A value for an error message, cut to a readable length.
fn short(cell: &Cell<'_>) -> String {
    let s = cell.display();
    if s.len() > 80 {
        format!("{}…", prefix(&s, 80))
    } else {
        s
    }
}

/// Valid UTF-8 without NUL, as PostgreSQL `text` requires.
pub fn check_text(bytes: &[u8]) -> Result<&str, ConvError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ConvError::with_bytes(
            format!(
                "invalid UTF-8 at byte {} (PostgreSQL text must be valid UTF-8)",
                e.valid_up_to()
            ),
            bytes,
        )
    })?;
    if let Some(pos) = bytes.iter().position(|b| *b == 0) {
        return Err(ConvError::with_bytes(
            format!("NUL byte at byte {pos} (PostgreSQL text cannot hold NUL)"),
            bytes,
        ));
    }
    Ok(text)
}

fn write_payload(
    out: &mut Vec<u8>,
    target: &TargetType,
    cell: Cell<'_>,
    opts: &ConvertOptions,
) -> Result<Option<Adjusted>, ConvError> {
    match (target, cell) {
        (TargetType::Boolean, Cell::Integer(i @ (0 | 1))) => out.push(i as u8),
        (TargetType::Smallint, Cell::Integer(i)) => {
            let v = i16::try_from(i)
                .map_err(|_| ConvError::new(format!("{i} is out of range for smallint")))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (TargetType::Integer, Cell::Integer(i)) => {
            let v = i32::try_from(i)
                .map_err(|_| ConvError::new(format!("{i} is out of range for integer")))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (TargetType::Bigint, Cell::Integer(i)) => out.extend_from_slice(&i.to_be_bytes()),
        (TargetType::DoublePrecision, Cell::Real(f)) => {
            out.extend_from_slice(&f.to_bits().to_be_bytes())
        }
        (TargetType::DoublePrecision, Cell::Integer(i)) => {
            let f = i as f64;
            if f as i128 != i128::from(i) {
                return Err(ConvError::new(format!(
                    "INTEGER {i} has no exact double precision value"
                )));
            }
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        (TargetType::Numeric, Cell::Integer(i)) => write_numeric(out, &i.to_string())?,
        (TargetType::Numeric, Cell::Real(f)) => {
            if !f.is_finite() {
                return Err(ConvError::new(format!("REAL {f:?} is not a finite number")));
            }
            write_numeric(out, &real_decimal(f))?;
        }
        (TargetType::Numeric, Cell::Text(b)) => {
            let text = check_text(b)?;
            write_numeric(out, text).map_err(|e| ConvError::with_bytes(e.reason, b))?;
        }
        (TargetType::Text, Cell::Text(b)) => {
            check_text(b)?;
            out.extend_from_slice(b);
        }
        // Text that reads back as the same number keeps the meaning.
        (TargetType::Text, Cell::Integer(i)) => out.extend_from_slice(i.to_string().as_bytes()),
        (TargetType::Text, Cell::Real(f)) => out.extend_from_slice(real_decimal(f).as_bytes()),
        (TargetType::Bytea, Cell::Blob(b)) => out.extend_from_slice(b),
        (TargetType::Bytea, Cell::Text(b)) => out.extend_from_slice(b),
        (TargetType::Date, Cell::Text(b)) => {
            let t = parse_timestamp(b, target)?;
            if !t.date_only() {
                return Err(ConvError::with_bytes(
                    "a date column takes a date without a time",
                    b,
                ));
            }
            out.extend_from_slice(&t.pg_days().to_be_bytes());
        }
        (TargetType::Timestamp | TargetType::Timestamptz, Cell::Text(b)) => {
            let t = parse_timestamp(b, target)?;
            let adjusted = if t.beyond_micros {
                match opts.sub_microsecond {
                    SubMicrosecond::Reject => {
                        return Err(ConvError::with_bytes(
                            "timestamp has nonzero digits beyond microseconds, which PostgreSQL cannot hold",
                            b,
                        ))
                    }
                    SubMicrosecond::Truncate => Some(Adjusted {
                        reason: format!(
                            "timestamp {} truncated to microseconds",
                            String::from_utf8_lossy(b)
                        ),
                    }),
                }
            } else {
                None
            };
            let micros = if *target == TargetType::Timestamp {
                if t.offset.is_some() {
                    return Err(ConvError::with_bytes(
                        "timestamp with an offset cannot go into a column without time zone",
                        b,
                    ));
                }
                t.local_micros()
            } else {
                t.utc_micros(opts.naive_offset)
            };
            out.extend_from_slice(&micros.to_be_bytes());
            return Ok(adjusted);
        }
        (TargetType::Json, Cell::Text(b)) => {
            let text = check_text(b)?;
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map_err(|e| ConvError::with_bytes(format!("not JSON: {e}"), b))?;
            out.extend_from_slice(b);
        }
        (TargetType::Jsonb, Cell::Text(b)) => {
            check_text(b)?;
            json::check(b)
                .map_err(|e| ConvError::with_bytes(format!("not JSON jsonb can keep: {e}"), b))?;
            out.push(1);
            out.extend_from_slice(b);
        }
        (TargetType::Json | TargetType::Jsonb, Cell::Integer(i)) => {
            if *target == TargetType::Jsonb {
                out.push(1);
            }
            out.extend_from_slice(i.to_string().as_bytes());
        }
        (TargetType::Json | TargetType::Jsonb, Cell::Real(f)) if f.is_finite() => {
            if *target == TargetType::Jsonb {
                out.push(1);
            }
            out.extend_from_slice(real_decimal(f).as_bytes());
        }
        (TargetType::Uuid, Cell::Text(b)) => {
            let bytes = parse_uuid(b).ok_or_else(|| ConvError::with_bytes("not a UUID", b))?;
            out.extend_from_slice(&bytes);
        }
        (TargetType::Uuid, Cell::Blob(b)) if b.len() == 16 => out.extend_from_slice(b),
        (TargetType::RealArray, Cell::Blob(b)) => {
            if b.len() % 4 != 0 {
                return Err(ConvError::with_bytes(
                    format!(
                        "BLOB of {} bytes is not a whole number of little-endian f32 values",
                        b.len()
                    ),
                    b,
                ));
            }
            let n = (b.len() / 4) as i32;
            if n == 0 {
                out.extend_from_slice(&0i32.to_be_bytes());
                out.extend_from_slice(&0i32.to_be_bytes());
                out.extend_from_slice(&FLOAT4_OID.to_be_bytes());
            } else {
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&0i32.to_be_bytes());
                out.extend_from_slice(&FLOAT4_OID.to_be_bytes());
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                out.reserve(b.len() * 2);
                for quad in b.chunks_exact(4) {
                    out.extend_from_slice(&4i32.to_be_bytes());
                    out.extend_from_slice(&[quad[3], quad[2], quad[1], quad[0]]);
                }
            }
        }
        (TargetType::MixedJsonb, cell) => write_mixed(out, cell)?,
        (target, cell) => return Err(mismatch(&cell, target)),
    }
    Ok(None)
}

fn parse_timestamp(b: &[u8], target: &TargetType) -> Result<timestamp::Timestamp, ConvError> {
    timestamp::parse(b).ok_or_else(|| {
        ConvError::with_bytes(
            format!(
                "{} is not an ISO-8601 {}",
                short(&Cell::Text(b)),
                target.sql()
            ),
            b,
        )
    })
}

/// The shortest decimal that reads back as the same f64, in positional notation and always
/// with a `.` (so `numeric` and `jsonb` keep it recognisable as a REAL).
pub fn real_decimal(f: f64) -> String {
    // Rust's `Display` for f64 writes the shortest round-trip digits without an exponent.
    let s = format!("{f}");
    if s.contains('.') || !f.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// `jsonb` scalar per storage class: see `TargetType::MixedJsonb`.
fn write_mixed(out: &mut Vec<u8>, cell: Cell<'_>) -> Result<(), ConvError> {
    out.push(1);
    match cell {
        Cell::Null => unreachable!("NULL is written as a SQL NULL before this"),
        Cell::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Cell::Real(f) if f.is_finite() => out.extend_from_slice(real_decimal(f).as_bytes()),
        Cell::Real(f) => {
            let name = if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            out.extend_from_slice(format!("{{\"$real\":\"{name}\"}}").as_bytes());
        }
        Cell::Text(b) => {
            let text = check_text(b)?;
            let quoted = serde_json::to_string(text).map_err(|e| ConvError::new(e.to_string()))?;
            out.extend_from_slice(quoted.as_bytes());
        }
        Cell::Blob(b) => {
            out.extend_from_slice(b"{\"$blob\":\"");
            out.extend_from_slice(hex::encode(b).as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
    Ok(())
}

fn parse_uuid(b: &[u8]) -> Option<[u8; 16]> {
    let hexits: Vec<u8> = match b.len() {
        36 => {
            for (i, c) in b.iter().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) != (*c == b'-') {
                    return None;
                }
            }
            b.iter().copied().filter(|c| *c != b'-').collect()
        }
        32 => b.to_vec(),
        _ => return None,
    };
    let mut out = [0u8; 16];
    hex::decode_to_slice(&hexits, &mut out).ok()?;
    Some(out)
}

/// Writes PostgreSQL's binary `numeric` for a decimal written as
/// `[+-]digits[.digits][e[+-]digits]`.
pub fn write_numeric(out: &mut Vec<u8>, text: &str) -> Result<(), ConvError> {
    let (neg, int_part, frac_part) = split_decimal(text)
        .ok_or_else(|| ConvError::new(format!("{text:?} is not a decimal number")))?;
    let dscale = frac_part.len();
    if dscale > 0x3FFF {
        return Err(ConvError::new(format!(
            "{text:?} has more fraction digits than numeric holds"
        )));
    }
    let int = int_part.trim_start_matches('0');
    let mut digits: Vec<i16> = Vec::with_capacity((int.len() + frac_part.len()) / 4 + 2);
    let pad = (4 - int.len() % 4) % 4;
    let padded: String = "0".repeat(pad) + int;
    for group in padded.as_bytes().chunks(4) {
        digits.push(group_value(group));
    }
    let mut weight = digits.len() as i32 - 1;
    let frac_padded = frac_part.to_owned() + &"0".repeat((4 - frac_part.len() % 4) % 4);
    for group in frac_padded.as_bytes().chunks(4) {
        digits.push(group_value(group));
    }
    let leading = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..leading);
    weight -= leading as i32;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign: u16 = if neg && !digits.is_empty() { 0x4000 } else { 0 };
    if digits.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight)
        .map_err(|_| ConvError::new(format!("{text:?} is out of range for numeric")))?;
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(dscale as u16).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Ok(())
}

fn group_value(group: &[u8]) -> i16 {
    group
        .iter()
        .fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'))
}

/// Sign, integer digits and fraction digits of a decimal, with any exponent applied.
fn split_decimal(text: &str) -> Option<(bool, String, String)> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if exp.unsigned_abs() > 16_000 {
        return None;
    }
    let mut all = format!("{int}{frac}");
    let mut point = int.len() as i64 + i64::from(exp);
    if point < 0 {
        all = "0".repeat((-point) as usize) + &all;
        point = 0;
    }
    let point = point as usize;
    if point > all.len() {
        all.push_str(&"0".repeat(point - all.len()));
    }
    let (i, f) = all.split_at(point);
    let i = if i.is_empty() { "0" } else { i };
    Some((neg, i.to_owned(), f.to_owned()))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ConvertOptions {
        ConvertOptions {
            naive_offset: 0,
            sub_microsecond: SubMicrosecond::Reject,
        }
    }

    fn field(target: TargetType, cell: Cell<'_>) -> Result<Vec<u8>, ConvError> {
        let mut out = Vec::new();
        write_field(&mut out, &target, cell, &opts())?;
        Ok(out[4..].to_vec())
    }

    #[test]
    fn reals_print_shortest_with_a_point() {
        assert_eq!(real_decimal(5.0), "5.0");
        assert_eq!(real_decimal(0.1), "0.1");
        assert_eq!(real_decimal(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(real_decimal(1e300).len(), 303);
        assert_eq!(real_decimal(1e-7), "0.0000001");
        assert_eq!(real_decimal(-0.0), "-0.0");
        for f in [1e300, 5e-324, 1.7976931348623157e308, 0.5585032703121495] {
            assert_eq!(
                real_decimal(f).parse::<f64>().unwrap().to_bits(),
                f.to_bits()
            );
        }
    }

    #[test]
    fn numeric_binary_layout() {
        // 12345.678 = digits [1, 2345, 6780], weight 1, dscale 3.
        let mut out = Vec::new();
        write_numeric(&mut out, "12345.678").unwrap();
        assert_eq!(out, [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C]);
        out.clear();
        write_numeric(&mut out, "-0.0001").unwrap();
        assert_eq!(out, [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1]);
        out.clear();
        write_numeric(&mut out, "0").unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 0]);
        out.clear();
        write_numeric(&mut out, "1.5e3").unwrap();
        assert_eq!(out, [0, 1, 0, 0, 0, 0, 0, 0, 0x05, 0xDC]);
        assert!(write_numeric(&mut Vec::new(), "1.2.3").is_err());
    }

    #[test]
    fn strict_conversions() {
        assert_eq!(
            field(TargetType::Bigint, Cell::Integer(-2)).unwrap(),
            (-2i64).to_be_bytes()
        );
        assert!(field(TargetType::Bigint, Cell::Real(2.5)).is_err());
        assert!(field(TargetType::Integer, Cell::Integer(1 << 40)).is_err());
        assert!(field(TargetType::Boolean, Cell::Integer(2)).is_err());
        assert_eq!(field(TargetType::Boolean, Cell::Integer(1)).unwrap(), [1]);
        assert!(field(TargetType::DoublePrecision, Cell::Integer(i64::MAX)).is_err());
        let err = field(TargetType::Text, Cell::Text(b"a\xffb")).unwrap_err();
        assert_eq!(err.bytes.as_deref(), Some(&b"a\xffb"[..]));
        assert!(field(TargetType::Text, Cell::Text(b"a\0b"))
            .unwrap_err()
            .reason
            .contains("NUL"));
        assert!(field(
            TargetType::Timestamptz,
            Cell::Text(b"2020-01-01T00:00:00.1234567Z")
        )
        .is_err());
        assert_eq!(
            field(TargetType::Timestamptz, Cell::Text(b"2000-01-01T00:00:01Z")).unwrap(),
            1_000_000i64.to_be_bytes()
        );
        assert!(field(TargetType::Jsonb, Cell::Text(br#"{"a":1,"a":2}"#)).is_err());
        assert_eq!(
            field(TargetType::MixedJsonb, Cell::Real(2.0)).unwrap(),
            b"\x012.0"
        );
        assert_eq!(
            field(TargetType::MixedJsonb, Cell::Text(b"x\"")).unwrap(),
            b"\x01\"x\\\"\""
        );
        assert_eq!(
            field(TargetType::MixedJsonb, Cell::Blob(&[0, 255])).unwrap(),
            b"\x01{\"$blob\":\"00ff\"}"
        );
        assert_eq!(
            field(TargetType::MixedJsonb, Cell::Real(f64::INFINITY)).unwrap(),
            b"\x01{\"$real\":\"Infinity\"}"
        );
        assert_eq!(
            field(
                TargetType::Uuid,
                Cell::Text(b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
            )
            .unwrap()[0],
            0xA0
        );
        let arr = field(TargetType::RealArray, Cell::Blob(&1.5f32.to_le_bytes())).unwrap();
        assert_eq!(&arr[arr.len() - 4..], 1.5f32.to_be_bytes());
        assert!(field(TargetType::RealArray, Cell::Blob(&[1, 2, 3])).is_err());
    }
}
