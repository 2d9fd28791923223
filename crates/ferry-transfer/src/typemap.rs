//! The target type of a derived column, decided by the data first and the declared type
//! second, so that every value fits exactly.
//!
//! | what the column holds | target type |
//! |---|---|
//! | only INTEGER, declared boolean, all 0/1 | `boolean` |
//! | only INTEGER (and/or REAL), declared NUMERIC/DECIMAL, all finite | `numeric` |
//! | only INTEGER | `bigint` |
//! | only REAL | `double precision` (never `real`) |
//! | only TEXT, declared date/time, all parse (no digit beyond microseconds) | `date` (all bare dates), `timestamp` (no offsets), else `timestamptz` (naive = configured offset) |
//! | only TEXT, declared JSON or `CHECK (json_valid(col))`, all JSON jsonb keeps | `jsonb` |
//! | only TEXT, declared UUID, all canonical UUIDs | `uuid` |
//! | only TEXT | `text` (invalid UTF-8 / NUL: rejected rows, or `bytea` by policy) |
//! | only BLOB | `bytea` |
//! | INTEGER and TEXT, no TEXT spelling an integer (`transfer.mixed = text`, the default) | `text`: INTEGER as its decimal |
//! | several storage classes | `jsonb` scalars in the `sqlite_value` domain ([`TargetType::MixedJsonb`]) |
//! | nothing but NULL | by affinity: INTEGER `bigint`, REAL `double precision`, TEXT `text`, BLOB `bytea`, NUMERIC `numeric` (declared boolean `boolean`, date/time `timestamptz` or `date`) |

use ferry_core::config::{InvalidTextPolicy, MixedPolicy};
use ferry_core::plan::TargetType;
use ferry_core::value::{affinity, Affinity};

use crate::profile::ColumnStats;

/// The type and the reason, in words.
pub fn choose(
    declared: &str,
    stats: &ColumnStats,
    invalid_text: InvalidTextPolicy,
    mixed: MixedPolicy,
) -> (TargetType, String) {
    let p = &stats.profile;
    let c = stats.candidates;
    let classes = p.classes();
    let n = |x: u64| {
        if x == 1 {
            "1 value".to_owned()
        } else {
            format!("{x} values")
        }
    };
    use ferry_core::value::StorageClass as S;
    match classes.as_slice() {
        [] => empty(declared),
        [S::Integer] if c.boolean && stats.zero_one == p.integers => {
            (TargetType::Boolean, format!("declared {declared:?}; all {} are 0 or 1", n(p.integers)))
        }
        [S::Integer] if c.decimal => (TargetType::Numeric, format!("declared {declared:?}; {} INTEGER, held exactly by numeric", n(p.integers))),
        [S::Integer] => (TargetType::Bigint, format!("{} INTEGER", n(p.integers))),
        [S::Real] | [S::Integer, S::Real] if c.decimal && stats.nonfinite_reals == 0 => (
            TargetType::Numeric,
            format!("declared {declared:?}; INTEGER and REAL values all convert exactly (REAL as its shortest round-trip decimal)"),
        ),
        [S::Real] => (TargetType::DoublePrecision, format!("{} REAL, kept bit for bit (never float4)", n(p.reals))),
        [S::Text] => text_type(declared, stats, invalid_text),
        [S::Blob] => (TargetType::Bytea, format!("{} BLOB", n(p.blobs))),
        [S::Integer, S::Text] if mixed_as_text(stats, mixed) => (
            TargetType::Text,
            format!(
                "mixes INTEGER ({}) and TEXT ({}), and no TEXT spells an integer: text keeps every value, INTEGER as its decimal (transfer.mixed = text)",
                p.integers, p.texts
            ),
        ),
        _ => {
            let names: Vec<String> = classes.iter().map(|c| format!("{c:?}").to_uppercase()).collect();
            let mut reason = format!(
                "mixes storage classes ({}): one jsonb scalar per value keeps each value and its class",
                names.join(", ")
            );
            if stats.invalid_texts() > 0 {
                reason.push_str(&format!(
                    "; {} TEXT values with invalid UTF-8 or NUL cannot be kept and their rows are rejected",
                    stats.invalid_texts()
                ));
            }
            (TargetType::MixedJsonb, reason)
        }
    }
}

/// Whether a column of INTEGER and TEXT values can be `text` with every value's class
/// recoverable: each INTEGER is written as its decimal, so no TEXT may spell one (SQLite's
/// INTEGER affinity converts such texts already; a column without affinity is checked).
pub fn mixed_as_text(stats: &ColumnStats, mixed: MixedPolicy) -> bool {
    mixed == MixedPolicy::Text
        && stats.profile.texts_like_integer == 0
        && stats.invalid_texts() == 0
}

fn text_type(
    declared: &str,
    stats: &ColumnStats,
    invalid_text: InvalidTextPolicy,
) -> (TargetType, String) {
    let p = &stats.profile;
    let c = stats.candidates;
    let bad = stats.invalid_texts();
    if bad > 0 {
        return match invalid_text {
            InvalidTextPolicy::Bytea => (
                TargetType::Bytea,
                format!("{bad} TEXT values hold invalid UTF-8 or NUL; config transfer.invalid_text = bytea keeps every value's bytes"),
            ),
            InvalidTextPolicy::Reject => (
                TargetType::Text,
                format!("{bad} of {} TEXT values hold invalid UTF-8 or NUL, which text cannot hold: those rows are rejected (or set transfer.invalid_text = bytea)", p.texts),
            ),
        };
    }
    let texts = p.texts;
    if c.time && stats.time_ok == texts {
        if stats.time_beyond_micros > 0 {
            return (
                TargetType::Text,
                format!(
                    "declared {declared:?}; all values parse as timestamps but {} have nonzero digits beyond microseconds, which PostgreSQL cannot hold: kept as text",
                    stats.time_beyond_micros
                ),
            );
        }
        if stats.time_date_only == texts {
            return (
                TargetType::Date,
                format!("declared {declared:?}; all {texts} values are ISO-8601 dates"),
            );
        }
        if stats.time_with_offset == 0 {
            return (TargetType::Timestamp, format!("declared {declared:?}; all {texts} values are ISO-8601 timestamps without offset"));
        }
        return (
            TargetType::Timestamptz,
            format!(
                "declared {declared:?}; all {texts} values are ISO-8601 timestamps, {} with an offset (those without are read in the configured naive offset)",
                stats.time_with_offset
            ),
        );
    }
    if c.json && stats.json_ok == texts {
        return (
            TargetType::Jsonb,
            format!("declared {declared:?} or checked by json_valid; all {texts} values are JSON"),
        );
    }
    if c.uuid && stats.uuid_ok == texts {
        return (
            TargetType::Uuid,
            format!("declared {declared:?}; all {texts} values are UUIDs"),
        );
    }
    let mut reason = if texts == 1 {
        "1 TEXT value".to_owned()
    } else {
        format!("{texts} TEXT values")
    };
    if c.time {
        reason.push_str(&format!(
            "; declared {declared:?} but {} values are not ISO-8601 timestamps",
            texts - stats.time_ok
        ));
    } else if c.json {
        reason.push_str(&format!(
            "; declared {declared:?} but {} values are not JSON jsonb keeps ({})",
            texts - stats.json_ok,
            stats.json_example_error.as_deref().unwrap_or("")
        ));
    }
    (TargetType::Text, reason)
}

fn empty(declared: &str) -> (TargetType, String) {
    let c = crate::profile::Candidates::of(declared, false);
    let by = |t: TargetType| {
        (
            t,
            format!("no values; chosen by the declared type {declared:?}"),
        )
    };
    if c.boolean {
        return by(TargetType::Boolean);
    }
    if c.decimal {
        return by(TargetType::Numeric);
    }
    match affinity(declared) {
        Affinity::Integer => by(TargetType::Bigint),
        Affinity::Real => by(TargetType::DoublePrecision),
        Affinity::Text => by(TargetType::Text),
        Affinity::Blob => by(TargetType::Bytea),
        Affinity::Numeric if c.time && declared.to_ascii_uppercase().trim() == "DATE" => {
            by(TargetType::Date)
        }
        Affinity::Numeric if c.time => by(TargetType::Timestamptz),
        Affinity::Numeric => by(TargetType::Numeric),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Candidates;

    fn stats(declared: &str, f: impl FnOnce(&mut ColumnStats)) -> ColumnStats {
        let mut s = ColumnStats {
            candidates: Candidates::of(declared, false),
            ..Default::default()
        };
        f(&mut s);
        s
    }

    #[test]
    fn data_decides() {
        let r = InvalidTextPolicy::Reject;
        let choose = |d: &str, s: &ColumnStats, r| choose(d, s, r, MixedPolicy::Jsonb);
        let ints = stats("TINYINT(1)", |s| {
            s.profile.integers = 3;
            s.zero_one = 3;
        });
        assert_eq!(choose("TINYINT(1)", &ints, r).0, TargetType::Bigint);
        let b = stats("BOOLEAN", |s| {
            s.profile.integers = 3;
            s.zero_one = 3;
        });
        assert_eq!(choose("BOOLEAN", &b, r).0, TargetType::Boolean);
        let reals = stats("REAL", |s| s.profile.reals = 5);
        assert_eq!(choose("REAL", &reals, r).0, TargetType::DoublePrecision);
        let dec = stats("DECIMAL(5,2)", |s| {
            s.profile.reals = 5;
            s.profile.integers = 1;
        });
        assert_eq!(choose("DECIMAL(5,2)", &dec, r).0, TargetType::Numeric);
        let mixed = stats("INTEGER", |s| {
            s.profile.integers = 5;
            s.profile.texts = 1;
        });
        assert_eq!(choose("INTEGER", &mixed, r).0, TargetType::MixedJsonb);
        let ts = stats("DATETIME", |s| {
            s.profile.texts = 2;
            s.time_ok = 2;
            s.time_with_offset = 1;
        });
        assert_eq!(choose("DATETIME", &ts, r).0, TargetType::Timestamptz);
        let bad = stats("TEXT", |s| {
            s.profile.texts = 2;
            s.profile.invalid_utf8 = 1;
        });
        assert_eq!(choose("TEXT", &bad, r).0, TargetType::Text);
        assert_eq!(
            choose("TEXT", &bad, InvalidTextPolicy::Bytea).0,
            TargetType::Bytea
        );
        assert_eq!(
            choose("BLOB SUB_TYPE TEXT", &ColumnStats::default(), r).0,
            TargetType::Text
        );
        assert_eq!(
            choose("INTEGER_OR_TEXT", &ColumnStats::default(), r).0,
            TargetType::Bigint
        );
    }

    #[test]
    fn integers_and_texts_are_text_when_no_text_spells_an_integer() {
        let r = InvalidTextPolicy::Reject;
        let mut codes = stats("INTEGER_OR_TEXT", |s| {
            s.profile.integers = 3;
            s.profile.texts = 2;
        });
        assert_eq!(
            choose("INTEGER_OR_TEXT", &codes, r, MixedPolicy::Text).0,
            TargetType::Text
        );
        assert_eq!(
            choose("INTEGER_OR_TEXT", &codes, r, MixedPolicy::Jsonb).0,
            TargetType::MixedJsonb
        );
        // A STRICT table's ANY column keeps TEXT '7' as TEXT: as text it would read as 7.
        codes.profile.texts_like_integer = 1;
        assert_eq!(
            choose("ANY", &codes, r, MixedPolicy::Text).0,
            TargetType::MixedJsonb
        );
    }
}
