//! Glob patterns with named captures, matched against `/`-separated relative paths.
//!
//! `agent_workspaces/{agent}/inbox/**/*.json` matches
//! `agent_workspaces/Agent-1/inbox/messages/welcome.json` and captures `agent = "Agent-1"`.
//!
//! - `*` matches any run of characters inside one path segment (also an empty one),
//! - `?` matches exactly one character inside a segment,
//! - `{name}` matches a non-empty run inside a segment and records it under `name`,
//! - `**` (a whole segment) matches zero or more segments.
//!
//! Matching is case-sensitive and a leading dot is not special, so `**/*.json` also matches
//! `.claude/logs/chat.json`. There are no character classes or alternations: a profile
//! lists one rule per alternative, which keeps each rule's captures unambiguous.

use std::fmt;

/// A compiled pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segs: Vec<Seg>,
    captures: Vec<String>,
    /// Cheap tests that reject most paths before the backtracking match: the literal the
    /// last segment ends with, and the segments that are plain literals.
    suffix: Option<String>,
    literal_segs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`
    Any,
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Star,
    One,
    Cap(usize),
}

/// What a successful match captured, in the order the pattern names them.
pub type Captures = Vec<(String, String)>;

impl Pattern {
    /// Compiles a pattern; the error says what is wrong with it.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the pattern is empty".into());
        }
        if text.starts_with('/') {
            return Err(format!(
                "`{text}` is absolute; patterns are relative to the store directory"
            ));
        }
        let mut captures: Vec<String> = Vec::new();
        let mut segs = Vec::new();
        for seg in text.split('/') {
            if seg.is_empty() {
                return Err(format!(
                    "`{text}` has an empty segment (`//` or a trailing `/`)"
                ));
            }
            if seg == "**" {
                if segs.last() != Some(&Seg::Any) {
                    segs.push(Seg::Any);
                }
                continue;
            }
            if seg == "." || seg == ".." {
                return Err(format!(
                    "`{text}` contains `{seg}`; write the path without it"
                ));
            }
            segs.push(Seg::Parts(parse_segment(text, seg, &mut captures)?));
        }
        let suffix = match segs.last() {
            Some(Seg::Parts(parts)) => match parts.last() {
                Some(Part::Lit(l)) => Some(l.clone()),
                _ => None,
            },
            _ => None,
        };
        let literal_segs = segs
            .iter()
            .filter_map(|s| match s {
                Seg::Parts(p) => match p.as_slice() {
                    [Part::Lit(l)] => Some(l.clone()),
                    _ => None,
                },
                Seg::Any => None,
            })
            .collect();
        Ok(Self {
            text: text.to_owned(),
            segs,
            captures,
            suffix,
            literal_segs,
        })
    }

    /// The names of the captures, in order.
    pub fn capture_names(&self) -> &[String] {
        &self.captures
    }

    /// Matches a relative path; `Some(captures)` when it matches.
    #[cfg(test)]
    pub fn matches(&self, path: &str) -> Option<Captures> {
        let segs: Vec<&str> = path.split('/').collect();
        self.matches_split(path, &segs)
    }

    /// [`Self::matches`] for a path already split at `/` into `segs`, so a caller that
    /// tries many patterns on one path splits it once.
    pub fn matches_split(&self, path: &str, segs: &[&str]) -> Option<Captures> {
        if self
            .suffix
            .as_ref()
            .is_some_and(|s| !path.ends_with(s.as_str()))
        {
            return None;
        }
        if !self.literal_segs.iter().all(|l| segs.contains(&l.as_str())) {
            return None;
        }
        let mut caps: Vec<Option<&str>> = vec![None; self.captures.len()];
        if match_segs(&self.segs, segs, &mut caps) {
            Some(
                self.captures
                    .iter()
                    .cloned()
                    .zip(caps.into_iter().map(|c| c.unwrap_or_default().to_owned()))
                    .collect(),
            )
        } else {
            None
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_segment(text: &str, seg: &str, captures: &mut Vec<String>) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = seg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if chars.peek() == Some(&'*') {
                    return Err(format!("`{text}`: `**` must be a whole path segment"));
                }
                flush(&mut lit, &mut parts);
                if parts.last() != Some(&Part::Star) {
                    parts.push(Part::Star);
                }
            }
            '?' => {
                flush(&mut lit, &mut parts);
                parts.push(Part::One);
            }
            '{' => {
                flush(&mut lit, &mut parts);
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("`{text}`: `{{` without a closing `}}`")),
                    }
                }
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(format!(
                        "`{text}`: capture `{{{name}}}` must be a lowercase name (letters, digits, `_`)"
                    ));
                }
                if crate::template::BUILTIN_VARS.contains(&name.as_str()) {
                    return Err(format!(
                        "`{text}`: `{{{name}}}` is a built-in template variable; name the capture differently"
                    ));
                }
                if captures.contains(&name) {
                    return Err(format!("`{text}`: capture `{{{name}}}` appears twice"));
                }
                if matches!(parts.last(), Some(Part::Cap(_)) | Some(Part::Star)) {
                    return Err(format!(
                        "`{text}`: `{{{name}}}` directly follows another wildcard, so where one ends is ambiguous"
                    ));
                }
                captures.push(name);
                parts.push(Part::Cap(captures.len() - 1));
            }
            '}' => return Err(format!("`{text}`: `}}` without an opening `{{`")),
            c => lit.push(c),
        }
    }
    flush(&mut lit, &mut parts);
    Ok(parts)
}

fn flush(lit: &mut String, parts: &mut Vec<Part>) {
    if !lit.is_empty() {
        parts.push(Part::Lit(std::mem::take(lit)));
    }
}

// Captures need no undoing when a branch fails: a capture is written only once the rest of
// its segment matched, and every segment of the pattern is matched again on the branch that
// succeeds, so the last value written to each capture is that branch's.
fn match_segs<'p>(pat: &[Seg], path: &[&'p str], caps: &mut [Option<&'p str>]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((Seg::Any, rest)) => {
            (0..=path.len()).any(|skip| match_segs(rest, &path[skip..], caps))
        }
        Some((Seg::Parts(parts), rest)) => match path.split_first() {
            None => false,
            Some((seg, path_rest)) => {
                match_parts(parts, seg, caps) && match_segs(rest, path_rest, caps)
            }
        },
    }
}

fn match_parts<'p>(parts: &[Part], s: &'p str, caps: &mut [Option<&'p str>]) -> bool {
    match parts.split_first() {
        None => s.is_empty(),
        Some((Part::Lit(l), rest)) => s
            .strip_prefix(l.as_str())
            .is_some_and(|t| match_parts(rest, t, caps)),
        Some((Part::One, rest)) => {
            let mut it = s.chars();
            it.next().is_some() && match_parts(rest, it.as_str(), caps)
        }
        Some((Part::Star, rest)) => char_splits(s).any(|i| match_parts(rest, &s[i..], caps)),
        Some((Part::Cap(n), rest)) => {
            for i in char_splits(s).skip(1) {
                if match_parts(rest, &s[i..], caps) {
                    caps[*n] = Some(&s[..i]);
                    return true;
                }
            }
            false
        }
    }
}

/// Every byte offset of `s` that is a char boundary, from 0 to `s.len()` inclusive.
fn char_splits(s: &str) -> impl Iterator<Item = usize> + '_ {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &str, path: &str) -> Option<Vec<(String, String)>> {
        Pattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn captures_and_double_stars() {
        assert_eq!(
            caps(
                "agent_workspaces/{agent}/inbox/**/*.json",
                "agent_workspaces/Agent-1/inbox/messages/welcome.json"
            ),
            Some(vec![("agent".into(), "Agent-1".into())])
        );
        assert!(caps(
            "agent_workspaces/{agent}/inbox/**/*.json",
            "agent_workspaces/Agent-1/inbox/a.json"
        )
        .is_some());
        assert!(caps(
            "agent_workspaces/{agent}/inbox/*.json",
            "agent_workspaces/Agent-1/inbox/x/a.json"
        )
        .is_none());
        assert!(caps("**/.claude/logs/*.json", ".claude/logs/chat.json").is_some());
        assert!(caps("**/.claude/logs/*.json", "a/b/.claude/logs/chat.json").is_some());
        assert!(caps("**/*.json", "x.jsonl").is_none());
        assert_eq!(
            caps("logs/{hook}.json", "logs/pre_tool_use.json"),
            Some(vec![("hook".into(), "pre_tool_use".into())])
        );
        assert!(caps("a/?.md", "a/b.md").is_some());
        assert!(caps("a/?.md", "a/bc.md").is_none());
        assert!(caps("a/**", "a").is_some(), "** matches zero segments");
        assert!(caps("*project_analysis*.json", "my_project_analysis_v2.json").is_some());
        // Multi-byte characters are matched whole.
        assert_eq!(
            caps("{x}é.md", "caféé.md"),
            Some(vec![("x".into(), "café".into())])
        );
    }

    #[test]
    fn captures_come_from_the_branch_that_matched() {
        // `{a}` first matches `m`, and that branch fails further on.
        assert_eq!(
            caps("**/{a}/x/y.json", "m/x/n/x/y.json"),
            Some(vec![("a".into(), "n".into())])
        );
        assert_eq!(
            caps("**/{a}-{b}/z", "k-l/m-n/z"),
            Some(vec![("a".into(), "m".into()), ("b".into(), "n".into())])
        );
        let p = Pattern::new("**/agent_workspaces/{agent}/inbox/**/*.json").unwrap();
        let path = "store/agent_workspaces/Agent-7/inbox/a/b.json";
        let segs: Vec<&str> = path.split('/').collect();
        assert_eq!(p.matches_split(path, &segs), p.matches(path));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (p, want) in [
            ("", "empty"),
            ("/abs/*.json", "absolute"),
            ("a//b", "empty segment"),
            ("a/**.json", "whole path segment"),
            ("a/{Agent}/x", "lowercase"),
            ("a/{x/b", "closing"),
            ("a/{x}/{x}", "twice"),
            ("a/{path}", "built-in"),
            ("a/*{x}", "ambiguous"),
        ] {
            let err = Pattern::new(p).unwrap_err();
            assert!(err.contains(want), "{p}: {err}");
        }
    }
}
