//! One table of timestamp texts and what each means, shared by the three timestamp grammars
//! of ferry: the import's (`ferry_import::timestamp`), the transfer's
//! (`ferry_core::pgcopy::timestamp`, what lands in PostgreSQL) and the validation's
//! (`ferry-validate`'s `timefmt`, which reads SQLite's text to compare it with PostgreSQL).
//!
//! The verdicts are the transfer's: what ferry writes into a `timestamptz` column. Each
//! crate's test runs every case through its own parser and either agrees or lists the case
//! among its documented deviations, with the reason; a case that disagrees without a
//! reason fails that crate's test.
//!
//! Naive text (no offset) is read as UTC here; every grammar applies the configured offset
//! the same way, and each crate tests that separately.

/// What a timestamp text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// An instant: microseconds since 1970-01-01 00:00:00 UTC.
    Instant(i64),
    /// An instant with nonzero digits beyond the microsecond: the value is the instant
    /// truncated to microseconds, and the grammar must say that digits were dropped.
    BeyondMicros(i64),
    /// Not a timestamp ferry reads as one.
    Invalid,
}

/// One text and its meaning, with why the case is in the table.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub text: &'static str,
    pub meaning: Meaning,
    pub why: &'static str,
}

/// 2025-08-11T15:41:04Z in microseconds since 1970.
const T: i64 = 1_754_926_864_000_000;
/// Microseconds in an hour.
const H: i64 = 3_600_000_000;

/// Every case, valid forms first, then texts that are not timestamps, then the texts the
/// grammars have been seen to disagree on.
pub const CASES: &[Case] = &[
    Case {
        text: "2025-08-11T15:41:04Z",
        meaning: Meaning::Instant(T),
        why: "the canonical form",
    },
    Case {
        text: "2025-08-11T15:41:04.776422Z",
        meaning: Meaning::Instant(T + 776_422),
        why: "six fraction digits",
    },
    Case {
        text: "2025-08-11T15:41:04.5Z",
        meaning: Meaning::Instant(T + 500_000),
        why: "a short fraction",
    },
    Case {
        text: "2025-08-11T15:41:04.7764220Z",
        meaning: Meaning::Instant(T + 776_422),
        why: "a zero seventh digit changes nothing",
    },
    Case {
        text: "2025-08-11 15:41:04",
        meaning: Meaning::Instant(T),
        why: "SQLite's own datetime() form: a space, no offset",
    },
    Case {
        text: "2025-08-11t15:41:04z",
        meaning: Meaning::Instant(T),
        why: "lower-case designators",
    },
    Case {
        text: "2025-08-11T15:41",
        meaning: Meaning::Instant(T - 4_000_000),
        why: "no seconds",
    },
    Case {
        text: "2025-08-11T17:41:04+02:00",
        meaning: Meaning::Instant(T),
        why: "offset ±HH:MM",
    },
    Case {
        text: "2025-08-11T17:41:04+0200",
        meaning: Meaning::Instant(T),
        why: "offset ±HHMM",
    },
    Case {
        text: "2025-08-11T17:41:04+02",
        meaning: Meaning::Instant(T),
        why: "offset ±HH",
    },
    Case {
        text: "2025-08-11T10:41:04-05:00",
        meaning: Meaning::Instant(T),
        why: "a negative offset",
    },
    Case {
        text: "2025-08-12T07:41:04+16:00",
        meaning: Meaning::Instant(T),
        why: "an offset past PostgreSQL's text limit of 15:59 still names one instant",
    },
    Case {
        text: "2025-08-11",
        meaning: Meaning::Instant(T - (15 * H + 41 * 60_000_000 + 4_000_000)),
        why: "a bare date is midnight",
    },
    Case {
        text: "1969-12-31T23:59:59.999999Z",
        meaning: Meaning::Instant(-1),
        why: "before 1970",
    },
    Case {
        text: "2000-02-29T00:00:00Z",
        meaning: Meaning::Instant(951_782_400_000_000),
        why: "a leap day",
    },
    Case {
        text: "2025-08-11T10:41:04.7764221-05:00",
        meaning: Meaning::BeyondMicros(T + 776_422),
        why: "seven digits, as .NET writes them: PostgreSQL holds six",
    },
    Case {
        text: "",
        meaning: Meaning::Invalid,
        why: "empty",
    },
    Case {
        text: "now",
        meaning: Meaning::Invalid,
        why: "a word",
    },
    Case {
        text: "1700000000",
        meaning: Meaning::Invalid,
        why: "epoch seconds as text are not guessed at",
    },
    Case {
        text: "12:00:00",
        meaning: Meaning::Invalid,
        why: "a time without a date",
    },
    Case {
        text: "2025-02-30",
        meaning: Meaning::Invalid,
        why: "no such day",
    },
    Case {
        text: "2025-13-01",
        meaning: Meaning::Invalid,
        why: "no such month",
    },
    Case {
        text: "2025-8-11",
        meaning: Meaning::Invalid,
        why: "a one-digit month",
    },
    Case {
        text: "2025-08-11T25:00",
        meaning: Meaning::Invalid,
        why: "no such hour",
    },
    Case {
        text: "2025-08-11T15:60",
        meaning: Meaning::Invalid,
        why: "no such minute",
    },
    Case {
        text: "2025-08-11T10",
        meaning: Meaning::Invalid,
        why: "an hour without minutes",
    },
    Case {
        text: "2025-08-11T10:00:00.",
        meaning: Meaning::Invalid,
        why: "a decimal point without digits",
    },
    Case {
        text: "2025-08-11T10:00:00+2",
        meaning: Meaning::Invalid,
        why: "a one-digit offset",
    },
    Case {
        text: "2025-08-11T10:00:00Zjunk",
        meaning: Meaning::Invalid,
        why: "text after the offset",
    },
    // The cases the grammars were seen to disagree on.
    Case {
        text: "2025-08-11 24:00:00",
        meaning: Meaning::Invalid,
        why: "24:00 is not an hour of the day ferry writes",
    },
    Case {
        text: "2024-12-31T23:59:60Z",
        meaning: Meaning::Invalid,
        why: "a leap second has no instant of its own",
    },
    Case {
        text: " 2025-08-11T15:41:04Z ",
        meaning: Meaning::Invalid,
        why: "surrounding spaces make text, not a timestamp",
    },
    Case {
        text: "2025-08-11T15:41:04,5Z",
        meaning: Meaning::Invalid,
        why: "a decimal comma: PostgreSQL refuses it",
    },
    Case {
        text: "2025-08-11T15:41:04 UTC",
        meaning: Meaning::Invalid,
        why: "a zone name instead of an offset",
    },
    Case {
        text: "2025-08-11T17:41:04 +02:00",
        meaning: Meaning::Invalid,
        why: "a space before the offset",
    },
    Case {
        text: "2025-08-11T17:41:04+02:00:00",
        meaning: Meaning::Invalid,
        why: "an offset with seconds",
    },
    Case {
        text: "infinity",
        meaning: Meaning::Invalid,
        why: "PostgreSQL's special value, never written by ferry",
    },
];

/// A case a crate's grammar reads differently from [`CASES`], and the reason it may.
#[derive(Debug, Clone, Copy)]
pub struct Deviation {
    pub text: &'static str,
    pub meaning: Meaning,
    pub reason: &'static str,
}

/// Runs every case through `parse` and returns one line per disagreement that `deviations`
/// does not document (or documents with another meaning), and per deviation that names no
/// case or no longer deviates; an empty list means the grammar agrees.
pub fn check(parse: impl Fn(&str) -> Meaning, deviations: &[Deviation]) -> Vec<String> {
    let mut problems = Vec::new();
    for case in CASES {
        let got = parse(case.text);
        let allowed = deviations.iter().find(|d| d.text == case.text);
        match allowed {
            None if got != case.meaning => problems.push(format!(
                "{:?}: read as {got:?}, the table says {:?} ({})",
                case.text, case.meaning, case.why
            )),
            Some(d) if got != d.meaning => problems.push(format!(
                "{:?}: read as {got:?}, the documented deviation says {:?}",
                case.text, d.meaning
            )),
            Some(d) if d.meaning == case.meaning => problems.push(format!(
                "{:?}: listed as a deviation but agrees with the table; remove it",
                d.text
            )),
            _ => {}
        }
    }
    for d in deviations {
        if !CASES.iter().any(|c| c.text == d.text) {
            problems.push(format!(
                "{:?}: a deviation with no case in the table",
                d.text
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_unique_and_instants_consistent() {
        let mut texts: Vec<&str> = CASES.iter().map(|c| c.text).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), CASES.len(), "each text once");
        // The anchor instant, checked against chrono rather than trusted.
        let anchor = chrono::DateTime::parse_from_rfc3339("2025-08-11T15:41:04Z").unwrap();
        assert_eq!(anchor.timestamp_micros(), T);
    }

    #[test]
    fn check_reports_undocumented_and_stale_deviations() {
        // A parser that reads nothing: every valid case is a problem.
        let none = check(|_| Meaning::Invalid, &[]);
        let valid = CASES
            .iter()
            .filter(|c| c.meaning != Meaning::Invalid)
            .count();
        assert_eq!(none.len(), valid);
        let stale = Deviation {
            text: "now",
            meaning: Meaning::Invalid,
            reason: "agrees",
        };
        let unknown = Deviation {
            text: "not a case",
            meaning: Meaning::Invalid,
            reason: "x",
        };
        let truth = |t: &str| CASES.iter().find(|c| c.text == t).unwrap().meaning;
        let problems = check(truth, &[stale, unknown]);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
