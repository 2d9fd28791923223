//! End-to-end behaviour of the import on generated stores: every file's outcome, idempotent
//! re-runs, changed and vanished files, documents read back byte for byte, and the gate.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ferry_import::{gate, import, FileStatus, ImportOptions, NoteKind, Profile, ReasonKind};
use ferry_testkit::store_gen::{self, Expect, GeneratedStore, StoreSpec};
use sha2::Digest as _;
use sqlx::Row;

use common::{db_digest, fk_violations, fresh_db, ledger_states, manifest};

fn options(state: &Path, spec: &StoreSpec) -> ImportOptions {
    let mut o = ImportOptions::new(state);
    o.max_file_bytes = spec.max_file_bytes();
    // Below the large session, so the snapshot store is exercised.
    o.snapshot_threshold_bytes = (spec.large_session_bytes / 2) as u64;
    o
}

fn small_store(dir: &Path) -> (GeneratedStore, StoreSpec) {
    let spec = StoreSpec::small();
    let store = store_gen::generate(&dir.join("store"), &spec).unwrap();
    (store, spec)
}

#[tokio::test]
async fn every_file_ends_in_the_state_its_defect_calls_for() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spec) = small_store(dir.path());
    let (_, mut conn) = fresh_db(dir.path()).await;
    let state = dir.path().join("state");
    let report = import(
        &store.root,
        &mut conn,
        &Profile::builtin(),
        &options(&state, &spec),
    )
    .await
    .unwrap();

    let states = ledger_states(&mut conn).await;
    let mut wrong = Vec::new();
    for (path, expect) in &store.expected {
        let got = states.get(path).map(|(s, r)| (s.as_str(), r.as_deref()));
        let ok = match (expect, got) {
            (Expect::Imported, Some(("imported", None))) => true,
            (Expect::Excluded, Some(("excluded", _))) => true,
            (Expect::Unmapped, Some(("unmapped", None))) => true,
            (Expect::Quarantined(kind), Some(("quarantined", Some(r)))) => r == *kind,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{path}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        states.len(),
        store.expected.len(),
        "the ledger holds exactly the store's files"
    );

    // Every defect kind the issue lists is among the quarantined files, each with a reason.
    let kinds: Vec<ReasonKind> = report.quarantined.iter().map(|q| q.reason.kind).collect();
    for k in [
        ReasonKind::EmptyFile,
        ReasonKind::TruncatedJson,
        ReasonKind::InvalidUtf8,
        ReasonKind::NotJson,
        ReasonKind::TooLarge,
        ReasonKind::SymlinkOutside,
        ReasonKind::SpecialFile,
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let truncated = report
        .quarantined
        .iter()
        .find(|q| q.reason.kind == ReasonKind::TruncatedJson)
        .unwrap();
    assert!(
        truncated.reason.line.is_some() && truncated.reason.column.is_some(),
        "{truncated:?}"
    );
    let utf8 = report
        .quarantined
        .iter()
        .find(|q| q.reason.kind == ReasonKind::InvalidUtf8)
        .unwrap();
    assert!(utf8.reason.line.is_some(), "{utf8:?}");
    // Regular files are copied to the quarantine byte for byte; the FIFO is never opened.
    for q in &report.quarantined {
        match q.reason.kind {
            ReasonKind::SpecialFile => assert!(q.quarantine_path.is_none()),
            ReasonKind::SymlinkOutside | ReasonKind::BrokenSymlink => {
                let copy = state.join(q.quarantine_path.as_ref().unwrap());
                assert!(
                    fs::symlink_metadata(&copy)
                        .unwrap()
                        .file_type()
                        .is_symlink(),
                    "{copy:?}"
                );
            }
            _ => {
                let copy = state.join(q.quarantine_path.as_ref().unwrap());
                assert_eq!(
                    fs::read(&copy).unwrap(),
                    fs::read(store.root.join(&q.path)).unwrap(),
                    "{}",
                    q.path
                );
            }
        }
    }
    assert!(state.join("quarantine/index.json").is_file());
    // What was tolerated is said.
    for k in [
        NoteKind::BomStripped,
        NoteKind::TimestampNaive,
        NoteKind::TimestampTruncated,
        NoteKind::TimestampEpoch,
        NoteKind::TimestampUnparsed,
        NoteKind::VocabularyOther,
        NoteKind::Snapshot,
    ] {
        assert!(
            report.note_counts.get(&k).is_some_and(|n| *n > 0),
            "no {k:?} note: {:?}",
            report.note_counts
        );
    }
    assert!(report.has_findings());
    assert_eq!(report.totals.files, store.expected.len() as u64);
    assert_eq!(report.unmapped, vec!["assets/logo.png".to_owned()]);

    // Agents named only by their directories exist (placeholders need no file), and every
    // foreign key holds.
    assert_eq!(fk_violations(&mut conn).await, 0);
    let agents: i64 = sqlx::query_scalar("SELECT count(*) FROM agents")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(agents, spec.agents as i64);

    // The gate's checks pass on this database.
    let acc = gate::accounting(&mut conn, &manifest(&store.root))
        .await
        .unwrap();
    assert!(acc.passed(), "{:?}", acc.unaccounted);
    assert_eq!(acc.by_status.get(&FileStatus::Unmapped), Some(&1));
    let rows = gate::check_rows(&mut conn).await.unwrap();
    assert!(rows.passed(), "{rows:?}");
    assert_eq!(
        rows.kinds["inbox"].records_parsed,
        rows.kinds["inbox"].rows_found
    );
}

#[tokio::test]
async fn a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spec) = small_store(dir.path());
    let (_, mut conn) = fresh_db(dir.path()).await;
    let opts = options(&dir.path().join("state"), &spec);
    let first = import(&store.root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();
    let before = db_digest(&mut conn).await;
    let second = import(&store.root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();
    let after = db_digest(&mut conn).await;
    assert_eq!(before, after, "rows or ledger changed on a re-run");
    assert_eq!(second.totals.unchanged, second.totals.files);
    assert_eq!(
        (
            second.totals.new,
            second.totals.changed,
            second.totals.rows_written,
            second.totals.files_read
        ),
        (0, 0, 0, 0)
    );
    assert!(second.ledger.written.is_empty());
    // The run log says what the run saw: every file, all unchanged (it once said 0 seen).
    let (seen, unchanged): (i64, i64) = sqlx::query_as(
        "SELECT files_seen, files_unchanged FROM ferry_import_runs WHERE run_id = ?",
    )
    .bind(second.run_id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        (seen as u64, unchanged as u64),
        (second.totals.files, second.totals.files)
    );
    assert_eq!(
        first.kinds,
        second
            .kinds
            .iter()
            .map(|(k, c)| (k.clone(), with_new(c, &first.kinds[k])))
            .collect::<BTreeMap<_, _>>()
    );
    // The quarantine list is the store's, not the run's: still every defect.
    assert_eq!(first.quarantined, second.quarantined);

    // Touching every file (new mtimes, same bytes) reads them again but still changes no row.
    for path in manifest(&store.root) {
        let p = store.root.join(&path);
        if fs::symlink_metadata(&p).unwrap().file_type().is_file() {
            let f = fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(std::time::SystemTime::now()).unwrap();
        }
    }
    let third = import(&store.root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();
    assert_eq!(third.totals.rows_written, 0);
    let touched = db_digest(&mut conn).await;
    for (table, digest) in &before {
        if table != "ferry_source_files" {
            assert_eq!(
                touched.get(table),
                Some(digest),
                "{table} changed after a touch"
            );
        }
    }
}

/// Counts of a second run are the first's with every file unchanged.
fn with_new(
    second: &ferry_import::KindCounts,
    first: &ferry_import::KindCounts,
) -> ferry_import::KindCounts {
    let mut c = second.clone();
    c.new = first.new;
    c.changed = first.changed;
    c.unchanged = first.unchanged;
    c
}

#[tokio::test]
async fn changed_and_vanished_files_update_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spec) = small_store(dir.path());
    let (_, mut conn) = fresh_db(dir.path()).await;
    let opts = options(&dir.path().join("state"), &spec);
    import(&store.root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();

    // Agent-2's task list: drop the first task, rename the second.
    let rel = "agent_workspaces/Agent-2/task_list.json";
    let path = store.root.join(rel);
    let mut tasks: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let list = tasks.as_array_mut().unwrap();
    let dropped = list.remove(0)["task_id"].as_str().unwrap().to_owned();
    let renamed = list[0]["task_id"].as_str().unwrap().to_owned();
    list[0]["title"] = "renamed task".into();
    let remaining = list.len() as i64;
    fs::write(&path, serde_json::to_vec_pretty(&tasks).unwrap()).unwrap();
    // A message disappears, another one arrives, and a good message goes bad.
    let inbox = store.root.join("agent_workspaces/Agent-3/inbox");
    let mut messages: Vec<_> = fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    messages.sort();
    let gone = messages[0].clone();
    fs::remove_file(&gone).unwrap();
    let goes_bad = messages[1].clone();
    fs::write(&goes_bad, b"{\"type\": \"task\", \"from\": ").unwrap();
    fs::write(
        inbox.join("new-message.json"),
        b"{\"from\": \"Agent-1\", \"to\": \"Agent-3\", \"message\": \"hello\"}",
    )
    .unwrap();

    let report = import(&store.root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();
    assert_eq!(report.totals.new, 1);
    assert_eq!(report.totals.changed, 2);
    let updated = report
        .updated
        .iter()
        .find(|u| u.path == rel)
        .expect("the task list is reported as updated");
    assert_eq!(
        (updated.rows_after, updated.rows_released),
        (remaining as u64 + 1, 1),
        "{updated:?}"
    );
    let title: String = sqlx::query_scalar("SELECT title FROM tasks WHERE task_id = ?")
        .bind(&renamed)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(title, "renamed task");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE task_id = ?")
        .bind(&dropped)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "the dropped task's row is released");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE source_path = ?")
        .bind(rel)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, remaining);

    // The vanished file is reported and its row kept; the bad file keeps its last good rows.
    let gone_rel = format!(
        "agent_workspaces/Agent-3/inbox/{}",
        gone.file_name().unwrap().to_string_lossy()
    );
    assert!(
        report
            .disappeared
            .iter()
            .any(|d| d.path == gone_rel && !d.deleted && d.rows == 1),
        "{:?}",
        report.disappeared
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE source_path = ?")
        .bind(&gone_rel)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let bad_rel = format!(
        "agent_workspaces/Agent-3/inbox/{}",
        goes_bad.file_name().unwrap().to_string_lossy()
    );
    let bad = report
        .quarantined
        .iter()
        .find(|q| q.path == bad_rel)
        .expect("the broken message is quarantined");
    assert_eq!(
        (bad.reason.kind, bad.rows_kept),
        (ReasonKind::TruncatedJson, 1)
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.path == bad_rel && n.kind == NoteKind::PreviousRowsKept));
    assert!(gate::check_rows(&mut conn).await.unwrap().passed());
    assert_eq!(fk_violations(&mut conn).await, 0);

    // With delete_disappeared, the vanished file's rows and ledger row go.
    let mut deleting = opts.clone();
    deleting.delete_disappeared = Some(true);
    let report = import(&store.root, &mut conn, &Profile::builtin(), &deleting)
        .await
        .unwrap();
    assert!(report
        .disappeared
        .iter()
        .any(|d| d.path == gone_rel && d.deleted));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE source_path = ?")
        .bind(&gone_rel)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(!ledger_states(&mut conn).await.contains_key(&gone_rel));
    assert!(gate::check_rows(&mut conn).await.unwrap().passed());
}

#[tokio::test]
async fn documents_read_back_equal_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spec) = small_store(dir.path());
    let (_, mut conn) = fresh_db(dir.path()).await;
    let state = dir.path().join("state");
    import(
        &store.root,
        &mut conn,
        &Profile::builtin(),
        &options(&state, &spec),
    )
    .await
    .unwrap();

    let strip_bom = |b: Vec<u8>| {
        b.strip_prefix(b"\xEF\xBB\xBF")
            .map(<[u8]>::to_vec)
            .unwrap_or(b)
    };
    // Whole-file JSON documents: the stored bytes are the file's, after a byte-order mark.
    let mut checked = 0;
    let mut snapshots = 0;
    for table in [
        "messages",
        "agent_status",
        "sessions",
        "configurations",
        "project_analyses",
    ] {
        let rows = sqlx::query(&format!(
            "SELECT source_path, doc, doc_snapshot, doc_sha256, doc_size FROM {table}"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for r in rows {
            let path: String = r.get(0);
            let doc: Option<String> = r.get(1);
            let snapshot: Option<String> = r.get(2);
            let bytes = match (doc, snapshot) {
                (Some(d), None) => d.into_bytes(),
                (None, Some(s)) => {
                    snapshots += 1;
                    ferry_import::read_snapshot(&state, &s).unwrap()
                }
                other => panic!("{path}: doc and snapshot {other:?}"),
            };
            let source = strip_bom(fs::read(store.root.join(&path)).unwrap());
            assert_eq!(bytes, source, "{table} {path}");
            assert_eq!(r.get::<i64, _>(4), source.len() as i64);
            assert_eq!(
                r.get::<String, _>(3),
                hex::encode(sha2::Sha256::digest(&source))
            );
            checked += 1;
        }
    }
    assert!(
        checked > 100 && snapshots >= 1,
        "{checked} documents, {snapshots} snapshots"
    );
    // Array elements: each document is the element's exact text, in order.
    let rows = sqlx::query("SELECT source_path, doc FROM hook_events WHERE source_path LIKE '%.json' ORDER BY source_path, source_record")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        by_file.entry(r.get(0)).or_default().push(r.get(1));
    }
    for (path, docs) in by_file {
        let source = fs::read_to_string(store.root.join(&path)).unwrap();
        let elements: Vec<&serde_json::value::RawValue> = serde_json::from_str(&source).unwrap();
        assert_eq!(
            docs,
            elements
                .iter()
                .map(|e| e.get().to_owned())
                .collect::<Vec<_>>(),
            "{path}"
        );
    }
    // Markdown keeps its text exactly.
    let rows = sqlx::query("SELECT source_path, source_text FROM context_documents")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let path: String = r.get(0);
        assert_eq!(
            r.get::<String, _>(1),
            fs::read_to_string(store.root.join(&path)).unwrap(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_file_missing_from_the_ledger_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spec) = small_store(dir.path());
    let (_, mut conn) = fresh_db(dir.path()).await;
    import(
        &store.root,
        &mut conn,
        &Profile::builtin(),
        &options(&dir.path().join("state"), &spec),
    )
    .await
    .unwrap();
    let mut files = manifest(&store.root);
    assert!(gate::accounting(&mut conn, &files).await.unwrap().passed());

    // A file the import never saw (written after it ran, say) is unaccounted for.
    fs::write(
        store.root.join("agent_workspaces/Agent-2/inbox/late.json"),
        b"{}",
    )
    .unwrap();
    files.push("agent_workspaces/Agent-2/inbox/late.json".into());
    let acc = gate::accounting(&mut conn, &files).await.unwrap();
    assert!(!acc.passed());
    assert_eq!(
        acc.unaccounted,
        vec!["agent_workspaces/Agent-2/inbox/late.json".to_owned()]
    );

    // Rows removed behind the ledger's back fail the row check, naming the file.
    let victim: String =
        sqlx::query_scalar("SELECT source_path FROM messages ORDER BY source_path LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query("DELETE FROM messages WHERE source_path = ?")
        .bind(&victim)
        .execute(&mut conn)
        .await
        .unwrap();
    let rows = gate::check_rows(&mut conn).await.unwrap();
    assert!(!rows.passed());
    assert!(
        rows.mismatches
            .iter()
            .any(|m| m.path == victim && m.table == "messages" && m.expected == 1 && m.found == 0),
        "{rows:?}"
    );
    // And a row claiming a file the ledger does not know is an orphan.
    sqlx::query("UPDATE messages SET source_path = 'nowhere.json' WHERE rowid = (SELECT min(rowid) FROM messages)").execute(&mut conn).await.unwrap();
    let rows = gate::check_rows(&mut conn).await.unwrap();
    assert!(
        rows.orphans.iter().any(|o| o.source_path == "nowhere.json"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_key_owned_by_another_file_is_a_conflict_not_an_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let ws = root.join("agent_workspaces");
    fs::create_dir_all(ws.join("Agent-A")).unwrap();
    fs::create_dir_all(ws.join("Agent-B")).unwrap();
    fs::write(
        ws.join("Agent-A/task_list.json"),
        br#"[{"task_id": "t-1", "title": "from A"}]"#,
    )
    .unwrap();
    fs::write(
        ws.join("Agent-B/task_list.json"),
        br#"[{"task_id": "t-1", "title": "from B"}, {"task_id": "t-2"}]"#,
    )
    .unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    let opts = ImportOptions::new(dir.path().join("state"));
    let report = import(&root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();
    let q = report
        .quarantined
        .iter()
        .find(|q| q.path == "agent_workspaces/Agent-B/task_list.json")
        .expect("B conflicts");
    assert_eq!(q.reason.kind, ReasonKind::KeyConflict);
    assert!(
        q.reason
            .message
            .contains("agent_workspaces/Agent-A/task_list.json"),
        "{}",
        q.reason.message
    );
    let title: String = sqlx::query_scalar("SELECT title FROM tasks WHERE task_id = 't-1'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(title, "from A");
    // When A gives the key up, B imports on the next run: conflicts are always retried.
    fs::write(
        ws.join("Agent-A/task_list.json"),
        br#"[{"task_id": "t-0", "title": "from A"}]"#,
    )
    .unwrap();
    let report = import(&root, &mut conn, &Profile::builtin(), &opts)
        .await
        .unwrap();
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let title: String = sqlx::query_scalar("SELECT title FROM tasks WHERE task_id = 't-1'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(title, "from B");
    assert!(gate::check_rows(&mut conn).await.unwrap().passed());
    assert_eq!(fk_violations(&mut conn).await, 0);
}

#[tokio::test]
async fn a_profile_that_does_not_fit_the_schema_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    let profile_path = dir.path().join("custom.toml");
    fs::write(
        &profile_path,
        "version = 1\n[[rule]]\nkind = \"msgs\"\nglob = \"**/*.json\"\nformat = \"json\"\ntable = \"messages\"\n[rule.columns]\nmessage_id = \"{path}\"\nfolder = \"inbox\"\nsender = \"/from\"\n",
    )
    .unwrap();
    let profile = Profile::load(&profile_path).unwrap();
    fs::create_dir_all(dir.path().join("store")).unwrap();
    let err = import(
        &dir.path().join("store"),
        &mut conn,
        &profile,
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("custom.toml")
            && err.contains("rule[0].columns.sender")
            && err.contains("no column sender"),
        "{err}"
    );
    // A constant outside a CHECKed vocabulary is caught the same way.
    fs::write(
        &profile_path,
        fs::read_to_string(&profile_path)
            .unwrap()
            .replace("sender = \"/from\"\n", "")
            .replace("\"inbox\"", "\"mailbox\""),
    )
    .unwrap();
    let profile = Profile::load(&profile_path).unwrap();
    let err = import(
        &dir.path().join("store"),
        &mut conn,
        &profile,
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("rule[0].columns.folder") && err.contains("mailbox"),
        "{err}"
    );
}

#[tokio::test]
async fn rows_the_database_refuses_quarantine_only_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let inbox = root.join("agent_workspaces/Agent-A/inbox");
    fs::create_dir_all(&inbox).unwrap();
    for i in 0..5 {
        fs::write(
            inbox.join(format!("m{i}.json")),
            format!("{{\"from\": \"Agent-B\", \"message\": \"hello {i}\"}}"),
        )
        .unwrap();
    }
    // A table the built-in profile does not know, with a CHECK no profile validation sees.
    fs::create_dir_all(root.join("metrics")).unwrap();
    fs::write(root.join("metrics/ok.json"), br#"{"n": 3}"#).unwrap();
    fs::write(root.join("metrics/negative.json"), br#"{"n": -1}"#).unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    sqlx::raw_sql("CREATE TABLE counters (counter_id TEXT PRIMARY KEY, n INTEGER CHECK (n > 0), source_path TEXT NOT NULL, doc TEXT, doc_sha256 TEXT, doc_size INTEGER, doc_snapshot TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    // A row some other program wrote, with the key the import will derive for m2.json.
    sqlx::query("INSERT INTO messages (message_id, folder, source_path, doc, doc_sha256, doc_size) VALUES (?1, 'inbox', 'written/by/the/app', '{}', 'x', 2)")
        .bind("agent_workspaces/Agent-A/inbox/m2.json")
        .execute(&mut conn)
        .await
        .unwrap();
    // The counters rule must win over the catch-all `**/*.json`: put it first.
    let toml = ferry_import::BUILTIN_TOML.replacen(
        "[[rule]]",
        "[[rule]]\nkind = \"counters\"\nglob = \"metrics/*.json\"\nformat = \"json\"\ntable = \"counters\"\n[rule.columns]\ncounter_id = \"{stem}\"\nn = \"/n\"\n\n[[rule]]",
        1,
    );
    let profile = Profile::from_toml(&toml, "test profile").unwrap();
    let report = import(
        &root,
        &mut conn,
        &profile,
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap();

    let reasons: BTreeMap<&str, ReasonKind> = report
        .quarantined
        .iter()
        .map(|q| (q.path.as_str(), q.reason.kind))
        .collect();
    assert_eq!(
        reasons.get("metrics/negative.json"),
        Some(&ReasonKind::ConstraintViolation),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.get("agent_workspaces/Agent-A/inbox/m2.json"),
        Some(&ReasonKind::KeyConflict),
        "{reasons:?}"
    );
    assert_eq!(
        report.quarantined.len(),
        2,
        "{:?}",
        report.quarantine_lines()
    );
    // The other files of the same batches are written, and the foreign row is untouched.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE source_path LIKE 'agent_workspaces/%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 4);
    let owner: String = sqlx::query_scalar("SELECT source_path FROM messages WHERE message_id = 'agent_workspaces/Agent-A/inbox/m2.json'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner, "written/by/the/app");
    let n: i64 = sqlx::query_scalar("SELECT n FROM counters WHERE counter_id = 'ok'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 3);
    // Four messages and one counter: the rows of the rolled-back attempt are not counted.
    assert_eq!(report.totals.rows_written, 5);
    assert_eq!(fk_violations(&mut conn).await, 0);
    // The gate sees the foreign row as a row no ledger file accounts for.
    let rows = gate::check_rows(&mut conn).await.unwrap();
    assert!(
        rows.orphans
            .iter()
            .any(|o| o.source_path == "written/by/the/app"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn text_survives_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let ctx = root.join(".claude/context");
    fs::create_dir_all(&ctx).unwrap();
    // CRLF, a NUL character, emoji and a byte-order mark; a JSON string with escapes.
    let md = "---\r\ntitle: Ünïcode 🚀\r\n---\r\n# Heading\r\nnul:\u{0} tab:\t end  \r\n";
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(md.as_bytes());
    fs::write(ctx.join("doc.md"), &with_bom).unwrap();
    let json = "{\"a\": \"\\u0000 \\\"q\\\" \\n\", \"n\": 1.50, \"big\": 12345678901234567890}\r\n";
    fs::create_dir_all(root.join("config")).unwrap();
    fs::write(root.join("config/c.json"), json).unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    let report = import(
        &root,
        &mut conn,
        &Profile::builtin(),
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap();
    assert!(
        report.quarantined.is_empty(),
        "{:?}",
        report.quarantine_lines()
    );
    let (text, title): (String, String) =
        sqlx::query_as("SELECT source_text, title FROM context_documents")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(text, md);
    assert_eq!(title, "Ünïcode 🚀");
    // PostgreSQL's jsonb cannot hold U+0000, so a document with a `\u0000` escape is kept
    // whole in the snapshot store, and reads back as the exact bytes of the file.
    let (doc, snapshot): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT doc, doc_snapshot FROM configurations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(doc, None);
    let snapshot = snapshot.expect("the document went to the snapshot store");
    let bytes = ferry_import::read_snapshot(&dir.path().join("state"), &snapshot).unwrap();
    assert_eq!(bytes, json.as_bytes());
    assert!(report
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::Snapshot && n.path == "config/c.json"));
    assert!(report
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::BomStripped && n.path == ".claude/context/doc.md"));
}

/// Regression (issue 9, item 5): two names that are not UTF-8 collapsed into one ledger row
/// beside a valid name holding U+FFFD, so the summary said 2 quarantined, the ledger held
/// fewer rows than the store files, and the exit code said nothing was wrong.
#[cfg(unix)]
#[tokio::test]
async fn names_that_are_not_utf8_each_keep_their_own_exact_ledger_path() {
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let names: [&[u8]; 3] = [b"x\xff.json", b"x\xfe.json", "x\u{fffd}.json".as_bytes()];
    let sub = store.join(std::ffi::OsStr::from_bytes(b"d\xff"));
    fs::create_dir_all(&sub).unwrap();
    for name in names {
        fs::write(store.join(std::ffi::OsStr::from_bytes(name)), "{}").unwrap();
    }
    fs::write(sub.join("inside.json"), "{}").unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    let report = import(
        &store,
        &mut conn,
        &Profile::builtin(),
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap();

    let states = ledger_states(&mut conn).await;
    assert_eq!(states.len(), 4, "one ledger row per file: {states:?}");
    assert_eq!(report.totals.files, 4);
    let mut bytes: Vec<Vec<u8>> = states
        .keys()
        .map(|p| ferry_import::names::decode(p))
        .collect();
    bytes.sort();
    let mut want: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    want.push(b"d\xff/inside.json".to_vec());
    want.sort();
    assert_eq!(
        bytes, want,
        "every ledger path turns back into its file's bytes"
    );
    for (path, (status, reason)) in &states {
        let valid = path == "x\u{fffd}.json";
        assert_eq!(
            (status.as_str(), reason.as_deref()),
            if valid {
                // The built-in profile's catch-all keeps any other JSON document.
                ("imported", None)
            } else {
                ("quarantined", Some("invalid_file_name"))
            },
            "{path}"
        );
    }
    assert_eq!(report.totals.quarantined, 3);
    assert_eq!(report.quarantined.len(), 3);
    assert!(
        report.has_findings(),
        "quarantined files make the exit code 1"
    );
    // The copies in the quarantine are distinct files too.
    for q in &report.quarantined {
        let copy = dir
            .path()
            .join("state")
            .join(q.quarantine_path.as_ref().unwrap());
        assert!(copy.is_file(), "{}", copy.display());
    }
}

/// Regression (issue 9, item 6): a key written twice in one object was resolved (the last
/// value wins) without a word.
#[tokio::test]
async fn a_key_written_twice_is_noted_and_the_document_keeps_both() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ws = store.join("agent_workspaces/Agent-1");
    fs::create_dir_all(&ws).unwrap();
    let text = "{\"agent_id\": \"Agent-1\", \"status\": \"idle\", \"status\": \"busy\"}";
    fs::write(ws.join("status.json"), text).unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    let report = import(
        &store,
        &mut conn,
        &Profile::builtin(),
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap();
    assert!(
        report.quarantined.is_empty(),
        "{:?}",
        report.quarantine_lines()
    );
    assert_eq!(
        report.note_counts.get(&NoteKind::DuplicateJsonKey),
        Some(&1)
    );
    let note = report
        .notes
        .iter()
        .find(|n| n.kind == NoteKind::DuplicateJsonKey)
        .unwrap();
    assert_eq!(note.path, "agent_workspaces/Agent-1/status.json");
    assert!(note.detail.contains("`status`"), "{}", note.detail);
    let (status, doc): (String, String) =
        sqlx::query_as("SELECT status, doc FROM agent_status WHERE agent_id = 'Agent-1'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        status, "busy",
        "the last value is mapped, as jsonb keeps it"
    );
    assert_eq!(doc, text, "the stored document keeps both");
}
