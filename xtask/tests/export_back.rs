//! `rollback --to 0 --export-back` as a real process killed with SIGKILL in the middle of the
//! export: no file of the store is left half-written (each is as it was at cutover or as the
//! export writes it), a rerun finishes the export and the rollback, nothing is displaced
//! twice, and no temporary file stays behind. Also `--plan` through the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_agentdb::{AgentDb, AgentDbOptions, NewMessage, Page};
use ferry_phases::ledger::{Action, Ledger, Outcome};
use ferry_phases::Phase;

struct Migration {
    dir: tempfile::TempDir,
    pg: ferry_testkit::pg::ScratchSchema,
}

impl Migration {
    async fn new(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        ferry_testkit::store_gen::generate(&store, &ferry_testkit::store_gen::StoreSpec::small())
            .unwrap();
        let _ = std::fs::remove_file(store.join("agent_workspaces/Agent-1/inbox/pipe.json"));
        let m = Self {
            dir,
            pg: ferry_testkit::pg::ScratchSchema::new(prefix).await,
        };
        m.ok(&["phase", "1"], &[0]);
        m.ok(&["phase", "2"], &[0, 1]);
        m.ok(&["phase", "3"], &[0]);
        m.ok(&["phase", "4", "--writers-stopped"], &[0]);
        m
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("FERRY_CONFIG")
            .env("FERRY_STORE_DIR", self.store())
            .env("FERRY_STATE_DIR", self.state())
            .env("FERRY_SQLITE_PATH", self.state().join("ferry.sqlite3"))
            .env("FERRY_POSTGRES_URL", ferry_testkit::pg::server_url())
            .env("FERRY_POSTGRES_SCHEMA", &self.pg.name)
            .env("FERRY_PROGRESS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn ok(&self, args: &[&str], codes: &[i32]) -> Output {
        let out = self.command(args).output().expect("run xtask");
        assert!(
            codes.contains(&out.status.code().unwrap_or(-1)),
            "`{}` exited {:?}: {}",
            args.join(" "),
            out.status.code(),
            text(&out)
        );
        out
    }

    /// The application sends `n` messages through the data API on PostgreSQL (each a new
    /// file in an inbox and one in an outbox) and marks `processed` imported inbox messages
    /// processed (each moves from `inbox/` to `processed/`). Returns the inbox files moved.
    async fn send(&self, n: usize, processed: usize, body: &str) -> Vec<String> {
        let mut options = AgentDbOptions {
            schema: self.pg.name.clone(),
            state_dir: Some(self.state()),
            ..AgentDbOptions::default()
        };
        options.max_connections = Some(2);
        let db = AgentDb::connect(&ferry_testkit::pg::server_url(), options)
            .await
            .unwrap();
        let mut moved = Vec::new();
        for agent in ["Agent-2", "Agent-3", "Agent-4"] {
            let inbox = db.get_inbox(agent, Page::first(100)).await.unwrap();
            for m in inbox
                .into_iter()
                .take(processed.saturating_sub(moved.len()))
            {
                db.mark_processed(&m.message_id).await.unwrap();
                moved.push(m.message_id);
            }
        }
        assert_eq!(moved.len(), processed, "not enough imported inbox messages");
        for i in 0..n {
            let to = ["Agent-1", "Agent-2", "Agent-3", "Agent-4"][i % 4];
            db.send_message(&NewMessage::new("Agent-2", to, format!("{body} {i}")))
                .await
                .unwrap();
        }
        db.close().await;
        moved
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

fn is_temp(path: &str) -> bool {
    path.ends_with(".ferry-export.tmp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_killed_midway_leaves_no_half_written_file_and_a_rerun_finishes_it() {
    let m = Migration::new("exportkill").await;
    let at_cutover = tree(&m.store());
    let moved = m.send(300, 20, "sent after cutover").await;
    let creates = 600 + moved.len();

    // The plan through the command line: counts, a JSON report, exit 0, nothing changed.
    let out = m.ok(&["rollback", "--to", "0", "--export-back", "--plan"], &[0]);
    let t = text(&out);
    assert!(
        t.lines()
            .any(|l| l.starts_with("files to create") && l.ends_with(&format!(" {creates}"))),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("files to remove") && l.ends_with(" 20")),
        "{t}"
    );
    assert!(t.contains("JSON report:"), "{t}");
    assert_eq!(tree(&m.store()), at_cutover, "--plan changed the store");

    // Killed once the export has created a few of its 600 files (each is fsynced with its
    // folder, so the export takes far longer than the watch between two looks). A rollback
    // that finished cannot be tried again, so there is one attempt.
    let mut child = m
        .command(&["rollback", "--to", "0", "--export-back"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let created = |t: &BTreeMap<String, Vec<u8>>| {
        t.keys()
            .filter(|p| !at_cutover.contains_key(*p) && !is_temp(p))
            .count()
    };
    let killed = loop {
        if created(&tree(&m.store())) >= 5 {
            let alive = child.try_wait().unwrap().is_none();
            child.kill().ok();
            child.wait().unwrap();
            assert!(alive, "the rollback finished before it could be killed");
            break tree(&m.store());
        }
        let finished = child.try_wait().unwrap();
        assert!(
            finished.is_none() && Instant::now() < deadline,
            "the rollback ended ({finished:?}) before the export created a file"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let created_when_killed = created(&killed);
    assert!(
        created_when_killed < creates,
        "the kill came after the export ({created_when_killed} files created)"
    );

    // The rerun takes over the killed rollback and finishes it.
    let out = m.ok(&["rollback", "--to", "0", "--export-back"], &[0]);
    let t = text(&out);
    assert!(
        t.contains("store equals the cutover store plus the exported changes"),
        "{t}"
    );
    let entries = Ledger::new(&m.state(), &m.state().join("ferry.sqlite3"))
        .entries()
        .unwrap();
    let rollbacks4: Vec<_> = entries
        .iter()
        .filter(|e| e.phase == Phase::Sync && e.action == Action::Rollback)
        .collect();
    assert_eq!(rollbacks4.first().unwrap().outcome, Outcome::Interrupted);
    assert_eq!(rollbacks4.last().unwrap().outcome, Outcome::RolledBack);

    // Every file the kill saw is as it was at cutover or as the export finally wrote it.
    let after = tree(&m.store());
    for (path, bytes) in &killed {
        if is_temp(path) {
            continue;
        }
        assert!(
            at_cutover.get(path) == Some(bytes) || after.get(path) == Some(bytes),
            "{path} was half-written when the export was killed"
        );
    }
    assert!(
        !after.keys().any(|p| is_temp(p)),
        "a temporary file was left"
    );
    let new_files = after
        .keys()
        .filter(|p| !at_cutover.contains_key(*p))
        .count();
    assert_eq!(
        new_files, creates,
        "every message sent or moved is a file again"
    );
    for (path, bytes) in &at_cutover {
        if moved.contains(path) {
            assert!(!after.contains_key(path), "{path} was moved to processed/");
        } else {
            assert_eq!(after.get(path), Some(bytes), "{path} changed");
        }
    }
    // Each file moved away is kept once, as it was at cutover: nothing displaced twice.
    let kept = tree(&m.state().join("displaced"));
    let displaced: Vec<(&String, &Vec<u8>)> = kept
        .iter()
        .filter(|(p, _)| p.starts_with("export-back-"))
        .collect();
    assert_eq!(displaced.len(), moved.len(), "{:?}", kept.keys());
    for path in &moved {
        let (_, bytes) = displaced
            .iter()
            .find(|(p, _)| p.ends_with(&format!("/store/{path}")))
            .unwrap_or_else(|| panic!("{path} was not kept"));
        assert_eq!(Some(*bytes), at_cutover.get(path), "{path}");
    }
}
