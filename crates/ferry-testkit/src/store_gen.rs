//! Generator of realistic agent file stores for import tests, demos and benchmarks.
//!
//! The layout is the one real multi-agent stores use (`agent_workspaces/<Agent>/status.json`,
//! `task_list.json`, `inbox/`, `outbox/`, `processed/`, `devlogs/`, a shared `queue/`,
//! `agents.json`) plus a Claude Code `.claude/` directory (hook logs as JSON arrays and JSON
//! Lines, sessions, context Markdown). The content mimics what those programs write: mixed
//! timestamp formats (naive, `Z`, offsets with 7-digit fractions, epoch floats), byte-order
//! marks, CRLF line endings, vocabularies in several spellings.
//!
//! About `broken_per_mille` of the files are broken in every way the import must survive
//! (empty, truncated JSON, invalid UTF-8, HTML in a `.json`, oversize), and the store always
//! holds one of each special case (a symlink out of the store, a dangling one, one inside it,
//! a FIFO, an unmapped file, an excluded one, a task list with a duplicate id, Markdown
//! front matter that does not parse). [`GeneratedStore::expected`] says how each file must
//! end, so tests can check every outcome.
//!
//! ```no_run
//! let dir = std::env::temp_dir().join("ferry-demo-store");
//! let store = ferry_testkit::store_gen::generate(&dir, &ferry_testkit::store_gen::StoreSpec::small()).unwrap();
//! println!("{} files, {} bytes", store.files, store.bytes);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How a generated file must end after an import with [`StoreSpec::max_file_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Imported,
    /// Quarantined with this reason kind (`empty_file`, `truncated_json`, …).
    Quarantined(&'static str),
    Excluded,
    Unmapped,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub agents: usize,
    pub messages_per_agent: usize,
    pub tasks_per_agent: usize,
    pub devlogs_per_agent: usize,
    pub queue_messages: usize,
    pub hook_logs: usize,
    pub events_per_hook_log: usize,
    pub sessions: usize,
    pub context_docs: usize,
    /// Broken files per thousand messages, spread over every defect kind.
    pub broken_per_mille: u32,
    /// Size of the oversize files; import with a cap below it ([`Self::max_file_bytes`]).
    pub oversize_bytes: usize,
    /// Size of one large session document, to exercise the snapshot store.
    pub large_session_bytes: usize,
    pub seed: u64,
}

impl StoreSpec {
    /// A store of a few hundred files with every defect, for tests.
    pub fn small() -> Self {
        Self {
            agents: 4,
            messages_per_agent: 30,
            tasks_per_agent: 4,
            devlogs_per_agent: 2,
            queue_messages: 10,
            hook_logs: 3,
            events_per_hook_log: 20,
            sessions: 4,
            context_docs: 3,
            broken_per_mille: 40,
            oversize_bytes: 40_000,
            large_session_bytes: 20_000,
            seed: 7,
        }
    }

    /// A store of about `files` files: a few hundred agents with hundreds of messages each.
    pub fn with_files(files: usize) -> Self {
        let agents = (files / 200).clamp(2, 400);
        let per_agent = (files / agents).saturating_sub(8).max(4);
        Self {
            agents,
            messages_per_agent: per_agent,
            tasks_per_agent: 12,
            devlogs_per_agent: 3,
            queue_messages: files / 100,
            hook_logs: 10,
            events_per_hook_log: 400,
            sessions: (files / 200).max(4),
            context_docs: 10,
            broken_per_mille: 10,
            oversize_bytes: 300_000,
            large_session_bytes: 200_000,
            seed: 42,
        }
    }

    /// The `import.max_file_bytes` the expectations assume: below the oversize files, above
    /// everything else.
    pub fn max_file_bytes(&self) -> u64 {
        (self.oversize_bytes as u64 * 3) / 4
    }
}

/// A generated store and how each of its files must end.
#[derive(Debug, Clone)]
pub struct GeneratedStore {
    pub root: PathBuf,
    pub files: u64,
    pub bytes: u64,
    /// Relative path -> expected outcome, for every entry that is not a directory.
    pub expected: BTreeMap<String, Expect>,
    /// A file outside the store that a symlink inside it points at.
    pub outside_target: PathBuf,
}

/// A small deterministic generator (SplitMix64), so the same spec gives the same store.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        (self.next() % 1000) < u64::from(per_mille)
    }

    fn words(&mut self, n: usize) -> String {
        const WORDS: &[&str] = &[
            "sync",
            "repository",
            "contract",
            "status",
            "report",
            "tests",
            "coverage",
            "pipeline",
            "deploy",
            "review",
            "agent",
            "captain",
            "queue",
            "retry",
            "validate",
            "evidence",
            "onboarding",
            "schema",
            "index",
            "latency",
            "trading",
            "platform",
            "documentation",
            "cleanup",
            "refactor",
            "handoff",
            "priority",
            "blocked",
            "metrics",
        ];
        (0..n)
            .map(|_| self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Writes a store under `root` (created; it should be empty).
pub fn generate(root: &Path, spec: &StoreSpec) -> io::Result<GeneratedStore> {
    let mut g = Gen {
        root: root.to_owned(),
        rng: Rng(spec.seed),
        expected: BTreeMap::new(),
        files: 0,
        bytes: 0,
        defect: 0,
    };
    fs::create_dir_all(root)?;
    let agents: Vec<String> = (1..=spec.agents).map(|i| format!("Agent-{i}")).collect();

    // agents.json: an object keyed by agent id.
    let mut members = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        let status = g.rng.pick(&[
            "online",
            "offline",
            "busy",
            "idle",
            "ready",
            "Active",
            "maintenance",
        ]);
        members.push(format!(
            "  \"{a}\": {{\n    \"agent_id\": \"{a}\",\n    \"name\": \"{a} ({})\",\n    \"role\": \"{}\",\n    \"status\": \"{status}\",\n    \"capabilities\": [\"task_execution\", \"status_reporting\"],\n    \"registered_at\": \"{}\"\n  }}",
            g.rng.words(2),
            g.rng.pick(&["captain", "developer", "reviewer", "analyst"]),
            ts(&mut g.rng, i as u64)
        ));
    }
    g.write(
        "agent_workspaces/agents.json",
        format!("{{\n{}\n}}\n", members.join(",\n")).as_bytes(),
        Expect::Imported,
    )?;

    let mut msg_seq = 0u64;
    for (ai, agent) in agents.iter().enumerate() {
        let base = format!("agent_workspaces/{agent}");
        // status.json, in one of the two shapes real stores use.
        let status = g.rng.pick(&[
            "busy", "offline", "ready", "healthy", "online", "idle", "To Do",
        ]);
        let status_doc = if ai % 2 == 0 {
            format!(
                "{{\n  \"agent_id\": \"{agent}\",\n  \"status\": \"{status}\",\n  \"current_task\": \"{}\",\n  \"last_update\": \"{}\",\n  \"capabilities\": [\"task_execution\", \"message_handling\"],\n  \"performance_metrics\": {{\"tasks_completed\": {}, \"uptime_hours\": {}.5, \"error_count\": 0, \"success_rate\": 100.0}},\n  \"message_history\": [{{\"timestamp\": \"{}\", \"message\": \"{}\"}}]\n}}\n",
                g.rng.words(5),
                ts(&mut g.rng, ai as u64),
                g.rng.below(40),
                g.rng.below(30),
                ts(&mut g.rng, ai as u64 + 1),
                g.rng.words(8)
            )
        } else {
            format!(
                "{{\n    \"agent_id\": \"{agent}\",\n    \"status\": \"{status}\",\n    \"current_task\": \"none\",\n    \"last_updated\": \"{}\",\n    \"workspace_path\": \"D:\\\\Agents\\\\agent_workspaces\\\\{agent}\",\n    \"performance\": {{\"tasks_completed\": 0, \"messages_sent\": {}, \"last_activity\": null}},\n    \"health\": {{\"status\": \"healthy\", \"errors\": [], \"warnings\": []}}\n}}\n",
                ts(&mut g.rng, ai as u64 + 2),
                g.rng.below(100)
            )
        };
        g.write(
            &format!("{base}/status.json"),
            status_doc.as_bytes(),
            Expect::Imported,
        )?;

        // task_list.json: bare array or {"tasks": [...]}.
        let mut tasks = Vec::new();
        for t in 0..spec.tasks_per_agent {
            tasks.push(format!(
                "{{\"task_id\": \"{agent}-task-{t:03}\", \"title\": \"{}\", \"description\": \"{}\", \"status\": \"{}\", \"priority\": \"{}\", \"created_at\": \"{}\"}}",
                g.rng.words(4),
                g.rng.words(14),
                g.rng.pick(&["pending", "in_progress", "completed", "To Do", "done", "blocked", "waiting-review"]),
                g.rng.pick(&["low", "normal", "Medium", "High", "Critical", "asap"]),
                ts(&mut g.rng, t as u64)
            ));
        }
        // One agent's list repeats a task id: the whole file is quarantined.
        let duplicate = ai == 0 && tasks.len() >= 2;
        if duplicate {
            let first = tasks[0].clone();
            tasks.push(first);
        }
        let task_doc = if ai % 2 == 0 {
            format!(
                "{{\n  \"tasks\": [\n    {}\n  ],\n  \"last_updated\": \"{}\"\n}}\n",
                tasks.join(",\n    "),
                ts(&mut g.rng, 3)
            )
        } else {
            format!("[\n  {}\n]\n", tasks.join(",\n  "))
        };
        let expect = if duplicate {
            Expect::Quarantined("duplicate_key")
        } else {
            Expect::Imported
        };
        g.write(
            &format!("{base}/task_list.json"),
            task_doc.as_bytes(),
            expect,
        )?;

        // Messages: inbox, outbox, processed.
        for m in 0..spec.messages_per_agent {
            msg_seq += 1;
            let other = &agents[g.rng.below(agents.len())];
            let folder = match m % 10 {
                0..=5 => "inbox",
                6..=7 => "outbox",
                _ => "processed",
            };
            let stamp = 20_250_811_000_000 + msg_seq;
            let (name, doc) = message(&mut g.rng, folder, agent, other, stamp, msg_seq);
            let rel = format!("{base}/{folder}/{name}");
            if g.rng.chance(spec.broken_per_mille) {
                g.broken(&rel, &doc, spec)?;
            } else if g.rng.chance(spec.broken_per_mille) {
                // Tolerated, not broken: a byte-order mark, or Windows line endings.
                let mut bytes = Vec::new();
                if msg_seq.is_multiple_of(2) {
                    bytes.extend_from_slice(b"\xEF\xBB\xBF");
                    bytes.extend_from_slice(doc.as_bytes());
                } else {
                    bytes.extend_from_slice(doc.replace('\n', "\r\n").as_bytes());
                }
                g.write(&rel, &bytes, Expect::Imported)?;
            } else {
                g.write(&rel, doc.as_bytes(), Expect::Imported)?;
            }
        }

        for d in 0..spec.devlogs_per_agent {
            let doc = format!(
                "---\ntitle: \"{}\"\nagent: {agent}\ndate: 2025-08-{:02}\ntags: [devlog, {}]\n---\n\n# {}\n\n{}\n\n## Next\n\n- {}\n- {}\n",
                g.rng.words(4),
                1 + d % 28,
                g.rng.pick(&["sync", "tests", "infra"]),
                g.rng.words(3),
                g.rng.words(60),
                g.rng.words(6),
                g.rng.words(6)
            );
            g.write(
                &format!("{base}/devlogs/2025-08-{:02}-{d}.md", 1 + d % 28),
                doc.as_bytes(),
                Expect::Imported,
            )?;
        }
        // A workspace file no specific rule maps: kept whole in `documents`.
        if ai % 3 == 0 {
            let doc = format!(
                "{{\"current_state\": \"{}\", \"history\": [1, 2, 3]}}\n",
                g.rng.words(2)
            );
            g.write(
                &format!("{base}/task_state.json"),
                doc.as_bytes(),
                Expect::Imported,
            )?;
        }
    }

    for q in 0..spec.queue_messages {
        let from = &agents[g.rng.below(agents.len())];
        let to = &agents[g.rng.below(agents.len())];
        let doc = format!(
            "{{\n  \"id\": \"2025-07-02T08-39-{:02}-{q:06}_{}_to_{}\",\n  \"timestamp\": \"2025-07-02T08:39:28.{:06}\",\n  \"from\": \"{}\",\n  \"to\": \"{}\",\n  \"message\": \"{}\",\n  \"priority\": \"normal\",\n  \"status\": \"pending\"\n}}\n",
            q % 60,
            from.to_lowercase(),
            to.to_lowercase(),
            g.rng.below(1_000_000),
            from.to_lowercase(),
            to.to_lowercase(),
            g.rng.words(10)
        );
        let sub = if q % 3 == 0 {
            "completed"
        } else {
            "persistent"
        };
        g.write(
            &format!("agent_workspaces/queue/{sub}/msg-{q:06}.json"),
            doc.as_bytes(),
            Expect::Imported,
        )?;
    }

    // .claude: hook logs (top-level arrays and one JSON Lines file), sessions, context.
    const HOOKS: &[&str] = &[
        "pre_tool_use",
        "post_tool_use",
        "notification",
        "stop",
        "subagent_stop",
        "user_prompt_submit",
        "session_start",
        "status_line",
        "pre_compact",
        "chat",
    ];
    let sessions: Vec<String> = (0..spec.sessions.max(1))
        .map(|i| uuid(&mut g.rng, i as u64))
        .collect();
    for h in 0..spec.hook_logs {
        let hook = HOOKS[h % HOOKS.len()];
        let mut events = Vec::new();
        for e in 0..spec.events_per_hook_log {
            let session = &sessions[g.rng.below(sessions.len())];
            events.push(format!(
                "  {{\n    \"session_id\": \"{session}\",\n    \"hook_event_name\": \"{}\",\n    \"tool_name\": \"{}\",\n    \"tool_input\": {{\"command\": \"{}\", \"description\": \"{}\"}},\n    \"timestamp\": \"{}\",\n    \"cwd\": \"/home/user/project\"\n  }}",
                camel(hook),
                g.rng.pick(&["Bash", "Read", "Edit", "Write", "Grep"]),
                g.rng.words(3),
                g.rng.words(7),
                ts(&mut g.rng, e as u64)
            ));
        }
        let name = if h < HOOKS.len() {
            hook.to_owned()
        } else {
            format!("{hook}_{h}")
        };
        g.write(
            &format!(".claude/logs/{name}.json"),
            format!("[\n{}\n]\n", events.join(",\n")).as_bytes(),
            Expect::Imported,
        )?;
    }
    let mut lines = String::new();
    for e in 0..spec.events_per_hook_log.min(50) {
        let _ = writeln!(lines, "{{\"session_id\": \"{}\", \"hook_event_name\": \"PostToolUse\", \"timestamp\": {}.{:03}}}", sessions[e % sessions.len()], 1_755_248_017 + e, e);
    }
    g.write(
        ".claude/logs/events.jsonl",
        lines.as_bytes(),
        Expect::Imported,
    )?;
    for (i, s) in sessions.iter().enumerate() {
        let n = if i == 0 {
            spec.large_session_bytes / 60
        } else {
            3
        };
        let prompts: Vec<String> = (0..n.max(1))
            .map(|_| format!("\"{}\"", g.rng.words(8)))
            .collect();
        let doc = format!("{{\n  \"session_id\": \"{s}\",\n  \"prompts\": [\n    {}\n  ],\n  \"agent_name\": \"{}\"\n}}\n", prompts.join(",\n    "), g.rng.pick(&["Seraphim", "Orion", "Vega"]));
        g.write(
            &format!(".claude/data/sessions/{s}.json"),
            doc.as_bytes(),
            Expect::Imported,
        )?;
    }
    for c in 0..spec.context_docs {
        let doc = format!(
            "---\ncreated: 2025-09-13T04:03:23Z\nlast_updated: 2025-10-02T04:12:{:02}Z\nversion: 1.{c}\nauthor: Claude Code PM System\n---\n\n# {}\n\n{}\n",
            c % 60,
            g.rng.words(3),
            g.rng.words(200)
        );
        g.write(
            &format!(".claude/context/context-{c}.md"),
            doc.as_bytes(),
            Expect::Imported,
        )?;
    }
    g.write(
        ".claude/context/README.md",
        b"# Context Directory\n\nNo front matter here.\n",
        Expect::Imported,
    )?;
    g.write(
        ".claude/CLAUDE.md",
        b"# CLAUDE.md\n\n> Keep it simple.\n",
        Expect::Imported,
    )?;
    g.write(
        ".claude/settings.json",
        b"{\"model\": \"inherit\", \"hooks\": {}}\n",
        Expect::Imported,
    )?;

    // One of each special case.
    g.write(
        ".claude/context/broken-front-matter.md",
        b"---\ntitle: [unclosed\nauthor: x\n---\n# Body\n",
        Expect::Quarantined("invalid_front_matter"),
    )?;
    g.write(
        "config/app.json",
        b"{\"retries\": 3, \"updated_at\": \"TIMESTAMP\"}\n",
        Expect::Imported,
    )?;
    g.write("analysis/project_analysis.json", b"{\"project\": \"ferry\", \"type\": \"structure\", \"created_at\": \"2025-08-12T10:00:00Z\", \"modules\": 12}\n", Expect::Imported)?;
    g.write("notes/todo.txt", b"remember the milk\r\n", Expect::Imported)?;
    g.write(
        "assets/logo.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        Expect::Unmapped,
    )?;
    g.write(".DS_Store", b"\0\0\0\x01Bud1", Expect::Excluded)?;
    g.write(
        "agent_workspaces/Agent-1/inbox/empty.json",
        b"",
        Expect::Quarantined("empty_file"),
    )?;
    for kind in DEFECTS {
        let rel = format!("agent_workspaces/Agent-1/processed/defect-{kind}.json");
        g.defect(&rel, "{\"type\": \"task\", \"from\": \"Agent-2\", \"to\": \"Agent-1\", \"summary\": \"defect sample\"}\n", kind, spec)?;
    }
    let outside = root.with_file_name(format!(
        "{}-outside.json",
        root.file_name()
            .map_or("store".into(), |n| n.to_string_lossy().into_owned())
    ));
    fs::write(&outside, b"{\"secret\": true}\n")?;
    #[cfg(unix)]
    {
        let link = |target: &Path, rel: &str| std::os::unix::fs::symlink(target, root.join(rel));
        link(&outside, "agent_workspaces/Agent-1/inbox/outside-link.json")?;
        g.expect(
            "agent_workspaces/Agent-1/inbox/outside-link.json",
            Expect::Quarantined("symlink_outside"),
        );
        link(
            Path::new("does-not-exist.json"),
            "agent_workspaces/Agent-1/inbox/dangling-link.json",
        )?;
        g.expect(
            "agent_workspaces/Agent-1/inbox/dangling-link.json",
            Expect::Quarantined("broken_symlink"),
        );
        link(
            Path::new("../task_list.json"),
            "agent_workspaces/Agent-1/inbox/inside-link.json",
        )?;
        g.expect(
            "agent_workspaces/Agent-1/inbox/inside-link.json",
            Expect::Excluded,
        );
        let fifo = root.join("agent_workspaces/Agent-1/inbox/pipe.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if made {
            g.expect(
                "agent_workspaces/Agent-1/inbox/pipe.json",
                Expect::Quarantined("special_file"),
            );
        }
    }
    Ok(GeneratedStore {
        root: root.to_owned(),
        files: g.files,
        bytes: g.bytes,
        expected: g.expected,
        outside_target: outside,
    })
}

/// The defect kinds spread over broken files.
const DEFECTS: &[&str] = &[
    "empty_file",
    "truncated_json",
    "invalid_utf8",
    "not_json",
    "too_large",
];

struct Gen {
    root: PathBuf,
    rng: Rng,
    expected: BTreeMap<String, Expect>,
    files: u64,
    bytes: u64,
    defect: usize,
}

impl Gen {
    fn write(&mut self, rel: &str, bytes: &[u8], expect: Expect) -> io::Result<()> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, bytes)?;
        self.files += 1;
        self.bytes += bytes.len() as u64;
        self.expected.insert(rel.to_owned(), expect);
        Ok(())
    }

    fn expect(&mut self, rel: &str, expect: Expect) {
        self.files += 1;
        self.expected.insert(rel.to_owned(), expect);
    }

    fn broken(&mut self, rel: &str, doc: &str, spec: &StoreSpec) -> io::Result<()> {
        let kind = DEFECTS[self.defect % DEFECTS.len()];
        self.defect += 1;
        self.defect(rel, doc, kind, spec)
    }

    fn defect(
        &mut self,
        rel: &str,
        doc: &str,
        kind: &'static str,
        spec: &StoreSpec,
    ) -> io::Result<()> {
        let bytes: Vec<u8> = match kind {
            "empty_file" => Vec::new(),
            "truncated_json" => doc.as_bytes()[..doc.len() * 2 / 3].to_vec(),
            "invalid_utf8" => {
                let mut b = doc.as_bytes().to_vec();
                let at = b.len() / 2;
                b.splice(at..at, [0xC3, 0x28, 0xFF]);
                b
            }
            "not_json" => b"<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n".to_vec(),
            _ => {
                // Valid JSON, just over the size cap.
                let pad = "x".repeat(spec.oversize_bytes);
                format!("{{\"type\": \"log\", \"payload\": \"{pad}\"}}\n").into_bytes()
            }
        };
        self.write(rel, &bytes, Expect::Quarantined(kind))
    }
}

/// A message file of the shape its folder holds in real stores.
fn message(
    rng: &mut Rng,
    folder: &str,
    agent: &str,
    other: &str,
    stamp: u64,
    seq: u64,
) -> (String, String) {
    let date = stamp / 1_000_000;
    let time = stamp % 1_000_000;
    match folder {
        "inbox" => {
            let name = format!("msg_{date}_{time:06}_{other}_to_{agent}.json");
            let doc = format!(
                "{{\n  \"type\": \"{}\",\n  \"from\": \"{other}\",\n  \"to\": \"{agent}\",\n  \"timestamp\": \"{}\",\n  \"topic\": \"contract: {}\",\n  \"summary\": \"{}\",\n  \"priority\": \"{}\",\n  \"details\": {{\n    \"task_id\": \"task-{seq}\",\n    \"repo_path\": \"D:\\\\repositories\\\\{}\",\n    \"acceptance_criteria\": [\"{}\", \"{}\"],\n    \"state\": \"ready\"\n  }}\n}}\n",
                rng.pick(&["task", "sync", "broadcast", "status_update", "message"]),
                ts(rng, seq),
                rng.words(3),
                rng.words(12),
                rng.pick(&["normal", "medium", "High", "urgent", "Critical"]),
                rng.words(1),
                rng.words(6),
                rng.words(6)
            );
            (name, doc)
        }
        "outbox" => {
            let name = format!(
                "2025-07-02T07-{:02}-{:02}-{seq:06}_{}_to_{}.json",
                seq % 60,
                time % 60,
                agent.to_lowercase(),
                other.to_lowercase()
            );
            let doc = format!(
                "{{\n  \"id\": \"2025-07-02T07-{:02}-{:02}_{}_to_{}\",\n  \"to\": \"{}\",\n  \"message\": \"{}\",\n  \"tag\": \"{}\",\n  \"sent_at\": 17514{:05}.{:07}\n}}\n",
                seq % 60,
                time % 60,
                agent.to_lowercase(),
                other.to_lowercase(),
                other.to_lowercase(),
                rng.words(15),
                rng.pick(&["reply", "normal", "coordinate"]),
                seq % 100_000,
                rng.below(10_000_000)
            );
            (name, doc)
        }
        _ => {
            let name = format!("fsm_request_{date}_{time:06}.json");
            let doc = format!(
                "{{\n  \"type\": \"fsm_request\",\n  \"from\": \"{other}\",\n  \"to\": \"{agent}\",\n  \"timestamp\": \"{}\",\n  \"workflow\": \"{}\",\n  \"agents\": [\"{agent}\", \"{other}\"]\n}}\n",
                ts(rng, seq),
                rng.words(2)
            );
            (name, doc)
        }
    }
}

/// A timestamp in one of the formats real stores mix.
fn ts(rng: &mut Rng, n: u64) -> String {
    let (d, h, m, s) = (1 + n % 28, n % 24, (n * 7) % 60, (n * 13) % 60);
    match rng.below(5) {
        0 => format!("2025-08-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        1 => format!(
            "2025-08-{d:02}T{h:02}:{m:02}:{s:02}.{:06}",
            rng.below(1_000_000)
        ),
        2 => format!(
            "2025-08-{d:02}T{h:02}:{m:02}:{s:02}.{:07}-05:00",
            rng.below(10_000_000)
        ),
        3 => format!(
            "2025-08-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            rng.below(1000)
        ),
        _ => format!("2025-08-{d:02}T{h:02}:{m:02}:{s:02}+02:00"),
    }
}

fn uuid(rng: &mut Rng, i: u64) -> String {
    let a = rng.next() ^ i;
    let b = rng.next();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xffff,
        b & 0xffff_ffff_ffff
    )
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_uppercase().collect::<String>() + c.as_str()
            })
        })
        .collect()
}
