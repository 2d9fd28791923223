//! ISO-8601 timestamps and dates as SQLite stores them in TEXT, read into UTC microseconds
//! (and days) the way PostgreSQL's `timestamptz`/`date` hold them — and printed back.
//!
//! Parsing is exact: a fraction finer than a microsecond is accepted only when the extra
//! digits are zeros, because PostgreSQL would round them away and that is a loss, not a
//! representation change.
//!
//! This grammar reads everything the transfer's (`ferry_core::pgcopy::timestamp`) reads, as
//! the same instant, and more: text as PostgreSQL's own input parser accepts it (surrounding
//! spaces, `24:00`, a leap second, `UTC`, a space before the offset, offset seconds,
//! `infinity`, a decimal comma). A value the transfer refused never reaches a timestamp
//! column, so reading more can only match what PostgreSQL would have stored from the text.
//! The shared cases in `ferry_testkit::timestamps` pin every difference (see the tests).

use crate::decimal::trim_ascii;

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Parses a timestamp; a text without an offset is read at `naive_offset_secs` east of UTC.
/// Returns UTC microseconds since 1970, `i64::MAX`/`i64::MIN` for `infinity`/`-infinity`.
pub(crate) fn parse_timestamp(text: &[u8], naive_offset_secs: i32) -> Option<i64> {
    let s = trim_ascii(text);
    if s.eq_ignore_ascii_case(b"infinity") || s.eq_ignore_ascii_case(b"+infinity") {
        return Some(i64::MAX);
    }
    if s.eq_ignore_ascii_case(b"-infinity") {
        return Some(i64::MIN);
    }
    let mut p = Cursor { s, i: 0 };
    let days = p.date()?;
    let mut micros: i64 = 0;
    let mut offset = i64::from(naive_offset_secs);
    if p.i < s.len() {
        match s[p.i] {
            b'T' | b't' | b' ' => p.i += 1,
            _ => return None,
        }
        let hour = p.digits(2)?;
        p.expect(b':')?;
        let minute = p.digits(2)?;
        let mut second = 0;
        let mut frac: i64 = 0;
        if p.peek() == Some(b':') {
            p.i += 1;
            second = p.digits(2)?;
            if p.peek() == Some(b'.') || p.peek() == Some(b',') {
                p.i += 1;
                let start = p.i;
                while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                    p.i += 1;
                }
                let digits = &s[start..p.i];
                if digits.is_empty() {
                    return None;
                }
                for (k, d) in digits.iter().enumerate() {
                    if k < 6 {
                        frac = frac * 10 + i64::from(d - b'0');
                    } else if *d != b'0' {
                        // Sub-microsecond precision PostgreSQL cannot keep.
                        return None;
                    }
                }
                for _ in digits.len()..6 {
                    frac *= 10;
                }
            }
        }
        let valid_time = (hour < 24 && minute < 60 && second <= 60)
            || (hour == 24 && minute == 0 && second == 0 && frac == 0);
        if !valid_time {
            return None;
        }
        // Second 60 (a leap second) rolls over into the next minute, as in PostgreSQL.
        micros = ((hour * 60 + minute) * 60 + second) * 1_000_000 + frac;
        if p.peek() == Some(b' ') {
            p.i += 1;
        }
        if p.i < s.len() {
            offset = p.offset()?;
        }
        if p.i != s.len() {
            return None;
        }
    }
    let local = i64::from(days) * MICROS_PER_DAY + micros;
    Some(local - offset * 1_000_000)
}

/// Parses a `YYYY-MM-DD` date into days since 1970-01-01.
pub(crate) fn parse_date(text: &[u8]) -> Option<i32> {
    let s = trim_ascii(text);
    if s.eq_ignore_ascii_case(b"infinity") {
        return Some(i32::MAX);
    }
    if s.eq_ignore_ascii_case(b"-infinity") {
        return Some(i32::MIN);
    }
    let mut p = Cursor { s, i: 0 };
    let days = p.date()?;
    (p.i == s.len()).then_some(days)
}

/// `2025-08-11T15:41:04.776422Z` (fraction only when non-zero).
pub(crate) fn format_timestamp(micros: i64) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:06}Z")
    }
}

pub(crate) fn format_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (y, m, d) = civil_from_days(i64::from(days));
            format!("{y:04}-{m:02}-{d:02}")
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn digits(&mut self, n: usize) -> Option<i64> {
        let part = self.s.get(self.i..self.i + n)?;
        let mut v = 0i64;
        for d in part {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(d - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn date(&mut self) -> Option<i32> {
        let y = self.digits(4)?;
        self.expect(b'-')?;
        let m = self.digits(2)?;
        self.expect(b'-')?;
        let d = self.digits(2)?;
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        i32::try_from(days_from_civil(y, m, d)).ok()
    }

    /// `Z`, `UTC`, `GMT`, `±HH`, `±HH:MM`, `±HHMM`, `±HH:MM:SS`; returns seconds east.
    fn offset(&mut self) -> Option<i64> {
        let rest = &self.s[self.i..];
        if rest == b"Z"
            || rest == b"z"
            || rest.eq_ignore_ascii_case(b"utc")
            || rest.eq_ignore_ascii_case(b"gmt")
        {
            self.i = self.s.len();
            return Some(0);
        }
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.i += 1;
        let h = self.digits(2)?;
        let mut m = 0;
        let mut sec = 0;
        if self.peek() == Some(b':') {
            self.i += 1;
            m = self.digits(2)?;
            if self.peek() == Some(b':') {
                self.i += 1;
                sec = self.digits(2)?;
            }
        } else if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            m = self.digits(2)?;
        }
        // Up to 23 hours, as the transfer accepts: it converts the offset itself and sends
        // PostgreSQL the instant, so a text offset beyond PostgreSQL's own ±15:59 still
        // names a value a timestamp column can hold.
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        Some(sign * (h * 3600 + m * 60 + sec))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<i64> {
        parse_timestamp(s.as_bytes(), 0)
    }

    #[test]
    fn iso_forms_read_as_the_same_instant() {
        let want = ts("2025-08-11T15:41:04.776422Z").unwrap();
        assert_eq!(format_timestamp(want), "2025-08-11T15:41:04.776422Z");
        for form in [
            "2025-08-11 15:41:04.776422",
            "2025-08-11T15:41:04.776422+00:00",
            "2025-08-11T17:41:04.776422+02:00",
            "2025-08-11T17:41:04.776422+0200",
            "2025-08-11T17:41:04.7764220+02",
            "2025-08-11T10:41:04.776422 -05:00",
            " 2025-08-11T15:41:04.776422z ",
        ] {
            assert_eq!(ts(form), Some(want), "{form}");
        }
        assert_eq!(ts("1970-01-01"), Some(0));
        assert_eq!(ts("1970-01-01T00:00"), Some(0));
        assert_eq!(ts("1969-12-31T23:59:59.999999Z"), Some(-1));
        assert_eq!(ts("2000-01-01T00:00:00Z"), Some(PG_EPOCH_MICROS));
        assert_eq!(ts("2024-12-31T23:59:60Z"), ts("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn naive_text_reads_at_the_configured_offset() {
        assert_eq!(parse_timestamp(b"1970-01-01 02:00:00", 7200), Some(0));
        // An explicit offset wins over the configured one.
        assert_eq!(parse_timestamp(b"1970-01-01 00:00:00Z", 7200), Some(0));
    }

    #[test]
    fn invalid_or_lossy_text_is_rejected() {
        for bad in [
            "2025-02-30",
            "2025-13-01",
            "2025-08-11T25:00",
            "2025-08-11T15:41:04.7764225Z",
            "yesterday",
            "2025-08-11T15:41:04Zjunk",
            "",
        ] {
            assert_eq!(ts(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_the_shared_cases_or_says_why() {
        use ferry_testkit::timestamps::{check, Deviation, Meaning};
        const T: i64 = 1_754_926_864_000_000;
        let deviations = [
            Deviation {
                text: "2025-08-11T10:41:04.7764221-05:00",
                meaning: Meaning::Invalid,
                reason: "digits beyond the microsecond cannot be held by PostgreSQL, so a truncated value must show as a difference, never as equal",
            },
            Deviation {
                text: "2025-08-11 24:00:00",
                meaning: Meaning::Instant(T + 8 * 3_600_000_000 + 18 * 60_000_000 + 56_000_000),
                reason: "PostgreSQL reads 24:00 as the next midnight",
            },
            Deviation {
                text: "2024-12-31T23:59:60Z",
                meaning: Meaning::Instant(1_735_689_600_000_000),
                reason: "PostgreSQL rolls a leap second into the next minute",
            },
            Deviation {
                text: " 2025-08-11T15:41:04Z ",
                meaning: Meaning::Instant(T),
                reason: "PostgreSQL ignores surrounding spaces",
            },
            Deviation {
                text: "2025-08-11T15:41:04,5Z",
                meaning: Meaning::Instant(T + 500_000),
                reason: "ISO 8601's decimal comma, which the import also reads",
            },
            Deviation {
                text: "2025-08-11T15:41:04 UTC",
                meaning: Meaning::Instant(T),
                reason: "PostgreSQL reads the zone name UTC",
            },
            Deviation {
                text: "2025-08-11T17:41:04 +02:00",
                meaning: Meaning::Instant(T),
                reason: "PostgreSQL allows a space before the offset",
            },
            Deviation {
                text: "2025-08-11T17:41:04+02:00:00",
                meaning: Meaning::Instant(T),
                reason: "PostgreSQL reads offset seconds",
            },
            Deviation {
                text: "infinity",
                meaning: Meaning::Instant(i64::MAX),
                reason: "PostgreSQL's special value, compared as itself",
            },
        ];
        let meaning = |text: &str| match parse_timestamp(text.as_bytes(), 0) {
            None => Meaning::Invalid,
            Some(micros) => Meaning::Instant(micros),
        };
        let problems = check(meaning, &deviations);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"2000-01-01"), Some(PG_EPOCH_DAYS));
        assert_eq!(format_date(PG_EPOCH_DAYS), "2000-01-01");
        assert_eq!(parse_date(b"2000-01-01T00:00"), None);
        assert_eq!(format_date(-1), "1969-12-31");
    }
}
