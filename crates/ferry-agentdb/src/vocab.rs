//! The vocabularies of ferry's built-in import profile (`agent_status`, `task_status`,
//! `priority`): the CHECKed canonical values and the spellings stores use for them.
//!
//! A value written through the API is normalised exactly as the import normalises it: the
//! canonical value goes to the column, the text as written to `<column>_raw`. A test reads
//! the profile's TOML and compares, so the two cannot drift apart.

/// A closed set of values with the synonyms that map onto each.
#[derive(Debug)]
pub struct Vocabulary {
    pub name: &'static str,
    /// The value when the document has none.
    pub missing: &'static str,
    /// The value for a spelling that is not listed.
    pub other: &'static str,
    /// `(canonical, synonyms)`, synonyms already normalised.
    pub values: &'static [(&'static str, &'static [&'static str])],
}

impl Vocabulary {
    /// The canonical value for `raw` as written; `other` when it is not listed.
    pub fn canonical(&self, raw: &str) -> &'static str {
        let word = normalize_word(raw);
        self.values
            .iter()
            .find(|(_, synonyms)| synonyms.contains(&word.as_str()))
            .map_or(self.other, |(canonical, _)| canonical)
    }

    /// The values a column of this vocabulary can hold.
    pub fn outputs(&self) -> Vec<&'static str> {
        let mut out: Vec<&str> = self.values.iter().map(|(c, _)| *c).collect();
        for extra in [self.missing, self.other] {
            if !out.contains(&extra) {
                out.push(extra);
            }
        }
        out
    }
}

/// `"To Do"` -> `"to_do"`: lowercase, trimmed, spaces and hyphens as underscores, runs of
/// underscores as one (the import's rule).
pub fn normalize_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        let c = if c == ' ' || c == '-' { '_' } else { c };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

pub const AGENT_STATUS: Vocabulary = Vocabulary {
    name: "agent_status",
    missing: "unknown",
    other: "other",
    values: &[
        (
            "online",
            &["online", "active", "running", "working", "connected"],
        ),
        (
            "offline",
            &["offline", "inactive", "stopped", "disconnected"],
        ),
        ("busy", &["busy", "executing"]),
        ("idle", &["idle", "waiting", "sleeping"]),
        ("ready", &["ready", "available"]),
        ("healthy", &["healthy", "ok"]),
        ("error", &["error", "failed", "crashed", "unhealthy"]),
        ("unknown", &["unknown", "none", "n/a"]),
    ],
};

pub const TASK_STATUS: Vocabulary = Vocabulary {
    name: "task_status",
    missing: "pending",
    other: "other",
    values: &[
        (
            "pending",
            &[
                "pending",
                "todo",
                "to_do",
                "open",
                "new",
                "queued",
                "not_started",
                "ready",
            ],
        ),
        (
            "in_progress",
            &[
                "in_progress",
                "active",
                "started",
                "running",
                "executing",
                "working",
                "doing",
                "wip",
            ],
        ),
        ("blocked", &["blocked", "on_hold", "waiting"]),
        (
            "completed",
            &[
                "completed",
                "complete",
                "done",
                "finished",
                "closed",
                "resolved",
                "validated",
            ],
        ),
        ("failed", &["failed", "error"]),
        (
            "cancelled",
            &["cancelled", "canceled", "abandoned", "skipped", "wontfix"],
        ),
    ],
};

pub const PRIORITY: Vocabulary = Vocabulary {
    name: "priority",
    missing: "normal",
    other: "other",
    values: &[
        ("low", &["low", "minor", "p3", "p4"]),
        ("normal", &["normal", "default", "regular"]),
        ("medium", &["medium", "moderate", "p2"]),
        ("high", &["high", "urgent", "important", "p1"]),
        ("critical", &["critical", "blocker", "emergency", "p0"]),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_map_to_canonical_values() {
        assert_eq!(TASK_STATUS.canonical("To Do"), "pending");
        assert_eq!(TASK_STATUS.canonical(" WIP "), "in_progress");
        assert_eq!(TASK_STATUS.canonical("waiting-review"), "other");
        assert_eq!(AGENT_STATUS.canonical("Active"), "online");
        assert_eq!(PRIORITY.canonical("asap"), "other");
        assert_eq!(normalize_word("on - hold"), "on_hold");
        assert!(PRIORITY.outputs().contains(&"other"));
    }
}
