//! The transfer's timestamp grammar (`pgcopy::timestamp`) against the shared table of cases
//! in `ferry_testkit::timestamps`, whose verdicts are this grammar's: it must agree on every
//! case, with no deviation.

use ferry_core::pgcopy::timestamp::parse;
use ferry_testkit::timestamps::{check, Meaning};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

#[test]
fn the_transfer_grammar_agrees_with_the_shared_table() {
    let meaning = |text: &str| match parse(text.as_bytes()) {
        None => Meaning::Invalid,
        Some(t) if t.beyond_micros => Meaning::BeyondMicros(t.utc_micros(0) + PG_EPOCH_MICROS),
        Some(t) => Meaning::Instant(t.utc_micros(0) + PG_EPOCH_MICROS),
    };
    let problems = check(meaning, &[]);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
