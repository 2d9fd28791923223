//! The import's timestamp grammar against the shared table of cases in
//! `ferry_testkit::timestamps` (whose verdicts are the transfer's), with its deviations
//! documented here.

use ferry_import::timestamp::parse_text;
use ferry_testkit::timestamps::{check, Deviation, Meaning};

/// Where the import reads a text differently from the transfer, and why it may.
const DEVIATIONS: &[Deviation] = &[Deviation {
    text: "2025-08-11T15:41:04,5Z",
    meaning: Meaning::Instant(1_754_926_864_500_000),
    reason: "ISO 8601 allows a decimal comma and some writers use it; the import stores the \
             value in its canonical form (`…04.500000Z`), so the transfer never sees the comma",
}];

#[test]
fn the_import_grammar_agrees_with_the_shared_table_or_says_why() {
    let meaning = |text: &str| match parse_text(text, 0) {
        None => Meaning::Invalid,
        Some(t) => {
            let micros = chrono::DateTime::parse_from_rfc3339(&t.utc)
                .expect("the import writes RFC 3339")
                .timestamp_micros();
            // The import truncates digits beyond the microsecond and flags it (the
            // document keeps them): the same meaning as the transfer's flag.
            if t.truncated {
                Meaning::BeyondMicros(micros)
            } else {
                Meaning::Instant(micros)
            }
        }
    };
    let problems = check(meaning, DEVIATIONS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
