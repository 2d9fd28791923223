//! Strict timestamp parsing into ISO-8601 UTC text with exactly six fraction digits
//! (`2025-08-11T15:41:04.776422Z`), so that text order is time order in SQLite.
//!
//! Accepted, and nothing else:
//! - `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z`, `±HH:MM`, `±HHMM`, `±HH`, or nothing
//!   (a *naive* time, read in the configured offset; `timestamps.naive`, UTC by default).
//!   A space may stand for the `T` and a comma for the decimal point.
//! - `YYYY-MM-DD` alone (front matter `date: 2025-08-12`): midnight, naive.
//! - A JSON number of epoch seconds (9–10 integer digits: 1973–2286) or milliseconds (12–13
//!   integer digits), read from its decimal text so no float rounding creeps in.
//!
//! Digits beyond microseconds are truncated, never rounded (rounding could carry into the next
//! second, minute or day), and the caller notes it; the original text stays in the stored
//! document. PostgreSQL's `timestamptz` holds microseconds, so this is also what phase 3 keeps.
//!
//! Every writer of ferry's tables reads timestamp text this one way: ferry-agentdb derives
//! its rows' columns with it, and ferry-import carries the same functions.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// A parsed timestamp and what was assumed or dropped on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
    pub utc: String,
    /// The text had no offset; the configured one was applied.
    pub naive: bool,
    /// Non-zero digits beyond microseconds were dropped.
    pub truncated: bool,
    /// Only a date was written; the time is midnight.
    pub date_only: bool,
    /// The value was a number of epoch seconds or milliseconds.
    pub epoch: Option<EpochUnit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Milliseconds,
}

/// Formats an instant the way every typed timestamp column stores it.
pub fn format_utc(dt: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written out by hand: chrono's `format` parses its pattern on every call, and this runs
    // for every timestamp of every record.
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        return dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.nanosecond() / 1000 % 1_000_000
    )
}

/// Parses timestamp text; `None` when it is not in an accepted form.
pub fn parse_text(s: &str, naive_offset_seconds: i32) -> Option<Timestamp> {
    let b = s.as_bytes();
    let date = NaiveDate::from_ymd_opt(
        num(b, 0, 4)? as i32,
        expect(b, 4, b'-').and_then(|_| num(b, 5, 2))?,
        expect(b, 7, b'-').and_then(|_| num(b, 8, 2))?,
    )?;
    if b.len() == 10 {
        let utc = date
            .and_hms_opt(0, 0, 0)?
            .checked_sub_signed(Duration::seconds(i64::from(naive_offset_seconds)))?;
        return Some(Timestamp {
            utc: format_utc(utc.and_utc()),
            naive: true,
            truncated: false,
            date_only: true,
            epoch: None,
        });
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = num(b, 11, 2)?;
    expect(b, 13, b':')?;
    let minute = num(b, 14, 2)?;
    let mut i = 16;
    let mut second = 0;
    let mut micros = 0;
    let mut truncated = false;
    if b.get(i) == Some(&b':') {
        second = num(b, i + 1, 2)?;
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() {
                return None;
            }
            let kept = &digits[..digits.len().min(6)];
            micros = kept.parse::<u32>().ok()? * 10u32.pow(6 - kept.len() as u32);
            truncated = digits.len() > 6 && digits[6..].bytes().any(|d| d != b'0');
        }
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    let (offset, naive) = match &b[i..] {
        [] => (naive_offset_seconds, true),
        [b'Z' | b'z'] => (0, false),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2] => (two(*h1, *h2)?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (two(*h1, *h2)?, two(*m1, *m2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i32;
            (if *sign == b'-' { -secs } else { secs }, false)
        }
        _ => return None,
    };
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_signed(Duration::seconds(i64::from(offset)))?;
    Some(Timestamp {
        utc: format_utc(utc.and_utc()),
        naive,
        truncated,
        date_only: false,
        epoch: None,
    })
}

/// Parses a JSON number as epoch seconds or milliseconds; `None` outside the plausible ranges.
pub fn parse_number(n: &serde_json::Number) -> Option<Timestamp> {
    let text = n.to_string();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text.as_str(), ""),
    };
    if int.is_empty()
        || !int.bytes().all(|d| d.is_ascii_digit())
        || !frac.bytes().all(|d| d.is_ascii_digit())
    {
        // Negative numbers are not epoch values ferry will guess at. (Exponent notation
        // reaches here already written out by serde_json, as the same double.)
        return None;
    }
    let (unit, micro_digits) = match int.len() {
        9 | 10 => (EpochUnit::Seconds, 6),
        12 | 13 => (EpochUnit::Milliseconds, 3),
        _ => return None,
    };
    let whole: i64 = int.parse().ok()?;
    let kept = &frac[..frac.len().min(micro_digits)];
    let frac_micros: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse::<i64>().ok()? * 10i64.pow((micro_digits - kept.len()) as u32)
    };
    let truncated = frac.len() > micro_digits && frac[micro_digits..].bytes().any(|d| d != b'0');
    let micros = match unit {
        EpochUnit::Seconds => whole.checked_mul(1_000_000)?.checked_add(frac_micros)?,
        EpochUnit::Milliseconds => whole.checked_mul(1_000)?.checked_add(frac_micros)?,
    };
    let dt = DateTime::<Utc>::from_timestamp_micros(micros)?;
    Some(Timestamp {
        utc: format_utc(dt),
        naive: false,
        truncated,
        date_only: false,
        epoch: Some(unit),
    })
}

fn num(b: &[u8], at: usize, len: usize) -> Option<u32> {
    let slice = b.get(at..at + len)?;
    if !slice.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        slice
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

fn two(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

fn expect(b: &[u8], at: usize, c: u8) -> Option<()> {
    (b.get(at) == Some(&c)).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Option<String> {
        parse_text(s, 0).map(|t| t.utc)
    }

    #[test]
    fn the_formats_the_stores_use() {
        assert_eq!(
            utc("2025-08-12T12:45:00Z").unwrap(),
            "2025-08-12T12:45:00.000000Z"
        );
        assert_eq!(
            utc("2025-06-30T20:33:39.979513Z").unwrap(),
            "2025-06-30T20:33:39.979513Z"
        );
        assert_eq!(
            utc("2025-07-02T08:39:28.346615").unwrap(),
            "2025-07-02T08:39:28.346615Z"
        );
        assert_eq!(
            utc("2025-09-13T04:03:23.123Z").unwrap(),
            "2025-09-13T04:03:23.123000Z"
        );
        assert_eq!(
            utc("2025-08-11T10:41:17-05:00").unwrap(),
            "2025-08-11T15:41:17.000000Z"
        );
        assert_eq!(
            utc("2025-06-29 18:00:00").unwrap(),
            "2025-06-29T18:00:00.000000Z"
        );
        assert_eq!(
            utc("2025-06-29T18:00").unwrap(),
            "2025-06-29T18:00:00.000000Z"
        );
        assert_eq!(
            utc("2025-06-29T23:30:00+0200").unwrap(),
            "2025-06-29T21:30:00.000000Z"
        );
        assert_eq!(
            utc("2025-06-29T23:30:00+02").unwrap(),
            "2025-06-29T21:30:00.000000Z"
        );
        let d = parse_text("2025-08-12", 0).unwrap();
        assert_eq!(d.utc, "2025-08-12T00:00:00.000000Z");
        assert!(d.date_only && d.naive);
    }

    #[test]
    fn seven_fraction_digits_are_truncated_and_flagged() {
        let t = parse_text("2025-08-11T10:41:04.7764221-05:00", 0).unwrap();
        assert_eq!(t.utc, "2025-08-11T15:41:04.776422Z");
        assert!(t.truncated && !t.naive);
        // Truncation never carries into the next second.
        let t = parse_text("2025-12-31T23:59:59.9999999Z", 0).unwrap();
        assert_eq!(t.utc, "2025-12-31T23:59:59.999999Z");
        // Trailing zeros lose nothing.
        assert!(
            !parse_text("2025-12-31T23:59:59.1234560Z", 0)
                .unwrap()
                .truncated
        );
    }

    #[test]
    fn naive_times_use_the_configured_offset() {
        let t = parse_text("2025-07-02T08:00:00", 2 * 3600).unwrap();
        assert_eq!(t.utc, "2025-07-02T06:00:00.000000Z");
        assert!(t.naive);
    }

    #[test]
    fn formatting_matches_chrono() {
        for s in [
            "2025-08-12T12:45:00.000001Z",
            "0001-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            let dt: DateTime<Utc> = s.parse().unwrap();
            assert_eq!(
                format_utc(dt),
                dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
            assert_eq!(format_utc(dt), s);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for s in [
            "TIMESTAMP",
            "",
            "2025-8-12",
            "2025-08-12T",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-08-12T24:00:00Z",
            "2025-08-12T12:00:60Z",
            "2025-08-12T12:00:00.Z",
            "2025-08-12T12:00:00+25:00",
            " 2025-08-12T12:00:00Z",
            "2025-08-12T12:00:00Z ",
            "2025-08-12T12:00:00 UTC",
            "12/08/2025 12:00",
        ] {
            assert_eq!(utc(s), None, "{s:?}");
        }
    }

    #[test]
    fn epoch_numbers() {
        let n: serde_json::Number = serde_json::from_str("1751460680.6457994").unwrap();
        let t = parse_number(&n).unwrap();
        assert_eq!(t.utc, "2025-07-02T12:51:20.645799Z");
        assert!(t.truncated);
        assert_eq!(t.epoch, Some(EpochUnit::Seconds));
        let n: serde_json::Number = serde_json::from_str("1751460680645").unwrap();
        assert_eq!(parse_number(&n).unwrap().utc, "2025-07-02T12:51:20.645000Z");
        for bad in ["17", "-1751460680", "175146068064512", "1751460.5"] {
            let n: serde_json::Number = serde_json::from_str(bad).unwrap();
            assert_eq!(parse_number(&n), None, "{bad}");
        }
    }
}
