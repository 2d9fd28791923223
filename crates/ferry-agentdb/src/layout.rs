//! Where the old application keeps each kind of record in its file store, so every row
//! written through the API names the file it would be in (`source_path`): the same paths the
//! built-in import profile reads (`crates/ferry-import/src/default_profile.toml`).
//!
//! ```text
//! <prefix>agent_workspaces/agents.json                    one member per agent
//! <prefix>agent_workspaces/<agent>/status.json            the agent's status
//! <prefix>agent_workspaces/<agent>/task_list.json         the agent's tasks, an array
//! <prefix>agent_workspaces/<agent>/{inbox,outbox,processed}/<name>.json   messages
//! <prefix>agent_workspaces/<agent>/devlogs/<name>.md      an agent's devlogs
//! <prefix>devlogs/<name>.md                               devlogs of no agent
//! <prefix>config/<name>.json                              configuration
//! <prefix>project_analysis/<name>.json                    project analyses
//! ```

use crate::error::AgentDbError;

/// The store layout rooted at `prefix` (empty, or a relative folder ending in `/`).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Result<Self, AgentDbError> {
        let trimmed = prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Self {
                prefix: String::new(),
            });
        }
        for seg in trimmed.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
                return Err(AgentDbError::invalid(
                    "store_prefix",
                    format!("`{prefix}` must be a relative folder of the store such as `project/`"),
                ));
            }
        }
        Ok(Self {
            prefix: format!("{trimmed}/"),
        })
    }

    pub fn agents_file(&self) -> String {
        format!("{}agent_workspaces/agents.json", self.prefix)
    }

    pub fn status_file(&self, agent: &str) -> String {
        format!("{}agent_workspaces/{agent}/status.json", self.prefix)
    }

    pub fn task_list(&self, agent: &str) -> String {
        format!("{}agent_workspaces/{agent}/task_list.json", self.prefix)
    }

    pub fn message(&self, agent: &str, folder: &str, name: &str) -> String {
        format!("{}agent_workspaces/{agent}/{folder}/{name}", self.prefix)
    }

    pub fn devlog(&self, agent: Option<&str>, name: &str) -> String {
        match agent {
            Some(a) => format!("{}agent_workspaces/{a}/devlogs/{name}", self.prefix),
            None => format!("{}devlogs/{name}", self.prefix),
        }
    }

    pub fn config(&self, name: &str) -> String {
        format!("{}config/{name}.json", self.prefix)
    }

    pub fn analysis(&self, name: &str) -> String {
        format!("{}project_analysis/{name}", self.prefix)
    }
}

/// Folder names under `agent_workspaces/` that the profile reads as something other than an
/// agent: an agent of that name would have its files read as the wrong kind.
const RESERVED_AGENT_NAMES: &[&str] = &["queue", "onboarding"];

/// Checks that an agent id can be a folder name of the store.
pub(crate) fn check_agent_id(id: &str) -> Result<(), AgentDbError> {
    let bad = |why: &str| Err(AgentDbError::invalid("agent_id", format!("`{id}` {why}")));
    if id.is_empty() {
        return Err(AgentDbError::invalid("agent_id", "must not be empty"));
    }
    if id.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    if id == "." || id == ".." || id.contains(['/', '\\']) {
        return bad("must be a single folder name (no `/`, `\\`, `.` or `..`)");
    }
    if id.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if id.trim() != id {
        return bad("starts or ends with whitespace");
    }
    if RESERVED_AGENT_NAMES.contains(&id) {
        return bad("is a folder the store uses for something else");
    }
    Ok(())
}

/// Text that PostgreSQL can store: no NUL character.
pub(crate) fn check_text(field: &'static str, s: &str) -> Result<(), AgentDbError> {
    if s.contains('\0') {
        return Err(AgentDbError::invalid(
            field,
            "contains a NUL character, which PostgreSQL text cannot hold",
        ));
    }
    Ok(())
}

/// A name fit for a file: letters, digits, `.`, `_` and `-` kept, anything else as `_`, at
/// most `max` characters, never empty.
pub(crate) fn slug(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = "_".to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_store_layout() {
        let l = Layout::new("").unwrap();
        assert_eq!(
            l.task_list("Agent-1"),
            "agent_workspaces/Agent-1/task_list.json"
        );
        let l = Layout::new("/proj/").unwrap();
        assert_eq!(l.config("app"), "proj/config/app.json");
        assert_eq!(l.devlog(None, "x.md"), "proj/devlogs/x.md");
        assert!(Layout::new("a/../b").is_err());
    }

    #[test]
    fn agent_ids_must_be_folder_names() {
        assert!(check_agent_id("Agent-1").is_ok());
        for bad in ["", "a/b", "..", "queue", " x", "a\nb"] {
            assert!(check_agent_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(slug("Agent 1/x", 40), "Agent_1_x");
        assert_eq!(slug("..", 40), "_");
    }
}

/// The agent whose workspace holds `path` (the profile's `{agent}` capture): the segment
/// after the last `agent_workspaces/`.
pub(crate) fn agent_of(path: &str) -> Option<&str> {
    let segs: Vec<&str> = path.split('/').collect();
    let at = segs.iter().rposition(|s| *s == "agent_workspaces")?;
    // The agent is a folder: something must follow it.
    (at + 2 < segs.len()).then(|| segs[at + 1])
}

/// `path` moved from its mailbox folder into `folder` of the same agent:
/// `…/<agent>/inbox/a/b.json` → `…/<agent>/processed/a/b.json`.
pub(crate) fn move_to_folder(path: &str, folder: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    let at = segs.iter().rposition(|s| *s == "agent_workspaces")?;
    if at + 3 >= segs.len() {
        return None;
    }
    let mut out: Vec<&str> = segs[..at + 2].to_vec();
    out.push(folder);
    out.extend(&segs[at + 3..]);
    Some(out.join("/"))
}

/// `name.json` → `name-2.json`: another name in the same folder.
pub(crate) fn with_suffix(path: &str, n: u32) -> String {
    match path.rfind('.') {
        Some(dot) if dot > path.rfind('/').map_or(0, |s| s + 1) => {
            format!("{}-{n}{}", &path[..dot], &path[dot..])
        }
        _ => format!("{path}-{n}"),
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn agents_and_folders_come_from_paths() {
        assert_eq!(agent_of("p/agent_workspaces/A-1/inbox/m.json"), Some("A-1"));
        assert_eq!(agent_of("agent_workspaces/agents.json"), None);
        assert_eq!(
            move_to_folder("agent_workspaces/A/inbox/x/m.json", "processed").as_deref(),
            Some("agent_workspaces/A/processed/x/m.json")
        );
        assert_eq!(with_suffix("a/b.c/m.json", 2), "a/b.c/m-2.json");
        assert_eq!(with_suffix("a/b.c/m", 3), "a/b.c/m-3");
    }
}
