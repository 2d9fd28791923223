//! ISO-8601 timestamps as SQLite stores them in TEXT, parsed strictly.
//!
//! Accepted: `YYYY-MM-DD`, optionally followed by `T`, `t` or a space and `HH:MM`,
//! `HH:MM:SS` or `HH:MM:SS.fff…` (any number of fraction digits), optionally followed by
//! `Z`, `±HH:MM`, `±HHMM` or `±HH`. Nothing else (no surrounding spaces, no leap second, no
//! `24:00`): a value that does not parse keeps its column in `text`.
//!
//! PostgreSQL holds microseconds. Digits beyond the sixth that are all zero change nothing;
//! a nonzero seventh (or later) digit is reported by [`Timestamp::beyond_micros`] and the
//! caller decides (derived mode keeps such a column as `text`; managed mode rejects the row
//! or truncates and lists the value, see `SubMicrosecond`).

use chrono::{Datelike, NaiveDate};

/// Microseconds per day.
const DAY_MICROS: i64 = 86_400_000_000;

/// One parsed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub date: NaiveDate,
    /// Hour, minute, second, microsecond; `None` for a bare date.
    pub time: Option<(u32, u32, u32, u32)>,
    /// Seconds east of UTC when the text carries an offset (`Z` is 0).
    pub offset: Option<i32>,
    /// The fraction had a nonzero digit after the sixth.
    pub beyond_micros: bool,
}

impl Timestamp {
    pub fn date_only(&self) -> bool {
        self.time.is_none() && self.offset.is_none()
    }

    /// Days since 2000-01-01 (PostgreSQL's `date` epoch).
    pub fn pg_days(&self) -> i32 {
        // Years 0000–9999 keep this well inside i32.
        self.date.num_days_from_ce() - PG_EPOCH_DAYS_FROM_CE
    }

    /// Microseconds since 2000-01-01 00:00:00 on the wall clock written, offset ignored.
    pub fn local_micros(&self) -> i64 {
        let (h, m, s, us) = self.time.unwrap_or((0, 0, 0, 0));
        i64::from(self.pg_days()) * DAY_MICROS
            + (i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s)) * 1_000_000
            + i64::from(us)
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC; a value without an offset is read in
    /// `naive_offset` seconds east of UTC.
    pub fn utc_micros(&self, naive_offset: i32) -> i64 {
        self.local_micros() - i64::from(self.offset.unwrap_or(naive_offset)) * 1_000_000
    }
}

/// 2000-01-01 as days from 0001-01-01 (chrono's `num_days_from_ce`).
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;

/// Parses one TEXT value; `None` when it is not a timestamp of the accepted forms.
pub fn parse(text: &[u8]) -> Option<Timestamp> {
    let mut p = Parser { s: text, i: 0 };
    let year = p.digits(4)?;
    p.expect(b'-')?;
    let month = p.digits(2)?;
    p.expect(b'-')?;
    let day = p.digits(2)?;
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    if p.done() {
        return Some(Timestamp {
            date,
            time: None,
            offset: None,
            beyond_micros: false,
        });
    }
    match p.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = p.digits(2)?;
    p.expect(b':')?;
    let minute = p.digits(2)?;
    let (mut second, mut micros, mut beyond) = (0, 0, false);
    if p.peek() == Some(b':') {
        p.i += 1;
        second = p.digits(2)?;
        if p.peek() == Some(b'.') {
            p.i += 1;
            let start = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            let frac = &text[start..p.i];
            if frac.is_empty() {
                return None;
            }
            for k in 0..6 {
                micros = micros * 10 + frac.get(k).map_or(0, |d| u32::from(d - b'0'));
            }
            beyond = frac.iter().skip(6).any(|d| *d != b'0');
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset = if p.done() {
        None
    } else {
        match p.next()? {
            b'Z' | b'z' => Some(0),
            sign @ (b'+' | b'-') => {
                let h = p.digits(2)?;
                let m = if p.done() {
                    0
                } else {
                    if p.peek() == Some(b':') {
                        p.i += 1;
                    }
                    p.digits(2)?
                };
                if h > 23 || m > 59 {
                    return None;
                }
                let secs = (h * 3600 + m * 60) as i32;
                Some(if sign == b'-' { -secs } else { secs })
            }
            _ => return None,
        }
    };
    if !p.done() {
        return None;
    }
    Some(Timestamp {
        date,
        time: Some((hour, minute, second, micros)),
        offset,
        beyond_micros: beyond,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self.next()?;
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        parse(s.as_bytes()).unwrap().utc_micros(0)
    }

    #[test]
    fn accepts_the_shapes_sqlite_writes() {
        assert_eq!(micros("2000-01-01"), 0);
        assert_eq!(micros("2000-01-01 00:00:01"), 1_000_000);
        assert_eq!(micros("2000-01-01T00:00:00Z"), 0);
        assert_eq!(micros("2000-01-01T02:00:00+02:00"), 0);
        assert_eq!(micros("2000-01-01T02:00:00+0200"), 0);
        assert_eq!(micros("1999-12-31T23:00:00-01"), 0);
        assert_eq!(micros("2000-01-01 00:00:00.5"), 500_000);
        assert_eq!(micros("2000-01-01 00:01"), 60_000_000);
        assert_eq!(micros("1999-12-31"), -86_400_000_000);
        let t = parse(b"2025-08-11T15:41:04.7764221+00:00").unwrap();
        assert!(t.beyond_micros);
        assert_eq!(t.time.unwrap().3, 776_422);
        assert!(
            !parse(b"2025-08-11T15:41:04.7764220Z")
                .unwrap()
                .beyond_micros
        );
        // Naive values are read in the configured offset.
        assert_eq!(parse(b"2000-01-01 02:00:00").unwrap().utc_micros(7200), 0);
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "2000-1-01",
            "2000-02-30",
            "2000-01-01 24:00:00",
            "2000-01-01 23:59:60",
            " 2000-01-01",
            "2000-01-01 ",
            "2000-01-01T10",
            "2000-01-01T10:00:00.",
            "now",
            "2000-01-01T10:00:00+2",
            "12:00:00",
            "1700000000",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }
}
