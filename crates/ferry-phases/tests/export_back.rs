//! `rollback --to 0 --export-back` on a generated store, against a real SQLite file and the
//! real PostgreSQL server: phases 1–5, then the application writes through ferry-agentdb
//! (new tasks, a status change, new messages, a message processed, a message deleted); the
//! plan changes nothing; the rollback writes every change back into the store and verifies;
//! the store imported again into a fresh SQLite file and loaded into a fresh schema gives
//! every table exactly as PostgreSQL held it before the rollback, and every file no row of
//! which changed is byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_agentdb::{AgentDb, AgentDbOptions, NewAgent, NewMessage, NewTask};
use ferry_core::config::{Config, ConfigLoader};
use ferry_phases::{Phase, RollbackOptions, RunOptions, RunResult, Runner};
use ferry_testkit::pg::ScratchSchema;
use ferry_testkit::store_gen::{generate, StoreSpec};
use sha2::{Digest, Sha256};
use sqlx::Row;

fn config(root: &Path, store: &Path, schema: &str) -> Config {
    let mut config = ConfigLoader::new()
        .flag("source.store_dir", store.display().to_string())
        .flag(
            "sqlite.path",
            root.join("state/ferry.sqlite3").display().to_string(),
        )
        .flag("state_dir", root.join("state").display().to_string())
        .flag("postgres.url", ferry_testkit::pg::server_url())
        .flag("postgres.schema", schema.to_owned())
        .load()
        .unwrap();
    config.import.max_file_bytes = StoreSpec::small().max_file_bytes();
    config
}

fn remove_special_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            remove_special_files(&e.path());
        } else if !kind.is_file() && !kind.is_symlink() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

/// Every file of a tree with its SHA-256.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.insert(rel, format!("symlink to {}", target.display()));
            } else {
                out.insert(
                    rel,
                    hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap())),
                );
            }
        }
    }
    out
}

fn file_sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// Each agent-store table of `schema` as one digest over its rows (every column, as
/// PostgreSQL renders the row), with its row count. The `documents` rows of `relaxed` paths
/// are digested without `doc_sha256` and `doc_size` (their `doc` is compared as jsonb): see
/// the round trip below for why.
async fn digests(schema: &str, relaxed: &[String]) -> BTreeMap<String, (i64, String)> {
    let url = ferry_testkit::pg::server_url();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'ferry\\_%' ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let row_text = if t == "documents" {
            "CASE WHEN x.document_path = ANY($1) THEN (to_jsonb(x) - 'doc_sha256' - 'doc_size')::text ELSE to_jsonb(x)::text END"
        } else {
            "to_jsonb(x)::text"
        };
        let row = sqlx::query(&format!(
            "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) FROM (SELECT {row_text} AS r FROM \"{schema}\".\"{t}\" x) s"
        ))
        .bind(relaxed)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.insert(t, (row.get::<i64, _>(0), row.get::<String, _>(1)));
    }
    out
}

fn ran(r: RunResult) -> Box<ferry_phases::GateReport> {
    match r {
        RunResult::Ran { report, .. } => report,
        RunResult::AlreadyPassed(e) => panic!("expected a run: {}", e.summary),
    }
}

async fn up_to(runner: &Runner, last: Phase) {
    for phase in Phase::ALL.iter().copied().filter(|p| *p <= last) {
        let options = match phase {
            Phase::Sync => RunOptions {
                writers_stopped: true,
                ..RunOptions::default()
            },
            Phase::SignOff => RunOptions {
                signed_by: Some("Release Manager".into()),
                signoff_load: Some(Duration::from_secs(2)),
                accept_slower: Some("a shared test machine".into()),
                ..RunOptions::default()
            },
            _ => RunOptions::default(),
        };
        let report = ran(runner.run(phase, &options).await.unwrap());
        if phase != Phase::SignOff {
            assert!(
                report.passed,
                "{phase}: {}\n{}",
                report.table(),
                report.details
            );
        }
    }
}

/// The application after cutover, through the data API on PostgreSQL: new tasks, a status
/// change, new messages, a message processed, a message deleted — on the agents the store
/// has (the two first, by id). Returns whether it changed and removed records the import
/// wrote (an imported task and inbox message were there to change).
async fn application_writes(config: &Config) -> bool {
    let db = AgentDb::connect(
        config.postgres.url.expose(),
        AgentDbOptions::from_config(config),
    )
    .await
    .unwrap();
    let schema = &config.postgres.schema;
    let mut pg = <sqlx::PgConnection as sqlx::Connection>::connect(config.postgres.url.expose())
        .await
        .unwrap();
    let agents: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT agent_id FROM \"{schema}\".agents WHERE agent_id NOT IN ('queue', 'onboarding') ORDER BY agent_id LIMIT 2"
    ))
    .fetch_all(&mut pg)
    .await
    .unwrap();
    // A store without two agents gets them, as the application registers them (a member
    // of `agents.json` each).
    let mut agents = agents;
    for id in ["Export-A", "Export-B"] {
        if agents.len() < 2 {
            db.register_agent(&NewAgent::new(id)).await.unwrap();
            agents.push(id.to_owned());
        }
    }
    let (a, b) = (agents[0].as_str(), agents[1].as_str());
    for (agent, title) in [(a, "written after cutover"), (b, "and another")] {
        let mut t = NewTask::new(agent, title);
        t.priority = Some("high".into());
        db.create_task(&t).await.unwrap();
    }
    let imported: Option<String> = sqlx::query_scalar(&format!(
        "SELECT task_id FROM \"{schema}\".tasks WHERE title IS DISTINCT FROM 'written after cutover' AND title IS DISTINCT FROM 'and another' ORDER BY task_id LIMIT 1"
    ))
    .fetch_optional(&mut pg)
    .await
    .unwrap();
    let edited = imported.is_some();
    if let Some(task) = imported {
        db.update_task_status(&task, "completed").await.unwrap();
    }
    for (from, to) in [(b, a), (a, b)] {
        db.send_message(&NewMessage::new(from, to, "a message after cutover"))
            .await
            .unwrap();
    }
    let inbox: Option<String> = sqlx::query_scalar(&format!(
        "SELECT message_id FROM \"{schema}\".messages WHERE folder = 'inbox' AND body IS DISTINCT FROM 'a message after cutover' ORDER BY message_id LIMIT 1"
    ))
    .fetch_optional(&mut pg)
    .await
    .unwrap();
    let edited = edited && inbox.is_some();
    if let Some(m) = inbox {
        db.mark_processed(&m).await.unwrap();
    }
    db.close().await;
    // The application deletes a message (the data API has no call for it).
    sqlx::query(&format!(
        "DELETE FROM \"{schema}\".messages WHERE message_id = (SELECT max(message_id) FROM \"{schema}\".messages WHERE folder <> 'processed' AND body IS DISTINCT FROM 'a message after cutover')"
    ))
    .execute(&mut pg)
    .await
    .unwrap();
    edited
}

/// The round trip on `store` (a copy the test may change), in `root`: phases 1–5, the
/// application's writes, the plan (which changes nothing), `rollback --to 0 --export-back`,
/// then the store imported and loaded again into a fresh schema.
async fn round_trip(root: &Path, store: &Path, prefix: &str) {
    let pg = ScratchSchema::new(prefix).await;
    let cfg = config(&root.join("one"), store, &pg.name);
    let runner = Runner::new(cfg.clone());
    up_to(&runner, Phase::SignOff).await;
    let at_cutover = tree(store);

    let imported_records = application_writes(&cfg).await;
    let before_rollback = digests(&pg.name, &[]).await;
    let sqlite_sha = file_sha(&cfg.sqlite.path);

    // The plan lists what would change, and changes nothing.
    let plan = runner.export_plan().await.unwrap();
    let counts = &plan.plan["counts"];
    eprintln!("{prefix}: plan {counts}");
    assert_eq!(plan.rejects, 0, "{:#?}", plan.lines);
    assert!(counts["create"].as_u64().unwrap() >= 3, "{counts}");
    if imported_records {
        assert!(counts["write"].as_u64().unwrap() >= 2, "{counts}");
        assert!(counts["remove"].as_u64().unwrap() >= 1, "{counts}");
    }
    assert!(plan.report.as_ref().unwrap().is_file());
    assert_eq!(tree(store), at_cutover, "the plan wrote the store");
    assert_eq!(
        file_sha(&cfg.sqlite.path),
        sqlite_sha,
        "the plan wrote SQLite"
    );
    assert_eq!(
        digests(&pg.name, &[]).await,
        before_rollback,
        "the plan wrote PostgreSQL"
    );
    let rewritten_lists: Vec<String> = plan.plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "write" && f["kind"] == "task_list")
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    let before_relaxed = digests(&pg.name, &rewritten_lists).await;

    // --restore-store with --export-back is refused.
    let err = runner
        .rollback(
            0,
            &RollbackOptions {
                export_back: true,
                restore_store: true,
                ..RollbackOptions::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--restore-store") && err.contains("--export-back"),
        "{err}"
    );

    let reports = runner
        .rollback(
            0,
            &RollbackOptions {
                export_back: true,
                ..RollbackOptions::default()
            },
        )
        .await
        .unwrap();
    for r in &reports {
        assert!(r.passed, "{}: {}\n{:#}", r.phase, r.table(), r.evidence);
    }
    assert_eq!(reports.len(), 5);
    let four = &reports[1];
    assert_eq!(four.phase, Phase::Sync);
    let ev = &four.evidence["export_back"];
    let exported: Vec<String> = ev["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(four
        .checks
        .iter()
        .any(|c| c.name == "exported files verified" && c.passed));
    let one = &reports[4];
    assert!(
        one.checks.iter().any(|c| c.name
            == "store equals the cutover store plus the exported changes"
            && c.passed),
        "{}",
        one.table()
    );

    // Untouched files are byte-identical; what was replaced or removed is kept aside.
    let after = tree(store);
    for (path, sha) in &at_cutover {
        if !exported.contains(path) {
            assert_eq!(
                after.get(path),
                Some(sha),
                "{path} changed although no row of it did"
            );
        }
    }
    let displaced = PathBuf::from(ev["displaced_dir"].as_str().unwrap());
    for a in ev["applied"].as_array().unwrap() {
        if a["action"] != "create" {
            let kept = displaced.join(a["displaced"].as_str().unwrap());
            assert_eq!(
                Some(&file_sha(&kept)),
                at_cutover.get(a["path"].as_str().unwrap()),
                "{a}"
            );
        }
    }
    assert!(
        !after.keys().any(|p| p.contains(".ferry-export.tmp")),
        "a temporary file was left"
    );

    // The round trip: the store imported again and loaded into a fresh schema holds every
    // table exactly as PostgreSQL did before the rollback.
    let pg2 = ScratchSchema::new(&format!("{prefix}_again")).await;
    let runner2 = Runner::new(config(&root.join("two"), store, &pg2.name));
    up_to(&runner2, Phase::Load).await;
    // A task list the data API rewrote is written back with its unchanged tasks byte for
    // byte (each task row's `doc_sha256` holds), so the file's bytes are not the jsonb
    // rendering the data API gave its whole-file `documents` row: that row comes back with
    // the same document (compared as jsonb) but its own `doc_sha256` and `doc_size`.
    let before_rollback = before_relaxed;
    let again = digests(&pg2.name, &rewritten_lists).await;
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        before_rollback.keys().collect::<Vec<_>>()
    );
    let differ: Vec<String> = before_rollback
        .iter()
        .filter(|(t, d)| again.get(*t) != Some(d))
        .map(|(t, d)| format!("{t}: {d:?} before, {:?} again", again.get(t)))
        .collect();
    assert!(
        differ.is_empty(),
        "{prefix}: tables differ after the round trip: {differ:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_after_cutover_go_back_to_files_and_the_round_trip_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    generate(&store, &StoreSpec::small()).unwrap();
    remove_special_files(&store);
    round_trip(dir.path(), &store, "exportback").await;
}

/// The same round trip on each agent store of the shared samples, copied first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_round_trip_holds_on_the_sample_agent_stores() {
    let Some(samples) = ferry_testkit::samples::require("stores") else {
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(&samples)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no sample store under {}",
        samples.display()
    );
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        copy_tree(&samples.join(&name), &store);
        let prefix = format!("exportback_{}", name.replace('-', "_"));
        round_trip(dir.path(), &store, &prefix).await;
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let kind = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if kind.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if kind.is_file() {
            std::fs::write(&dest, std::fs::read(e.path()).unwrap()).unwrap();
            let mut perms = std::fs::metadata(&dest).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&dest, perms).unwrap();
        }
    }
}

/// A write with no file form (a row of `agent_memory`) is never passed over: the plan lists
/// it (table, key, reason), rollback 4→3 with `--export-back` stops before touching the
/// store and PostgreSQL, and only `--discard-writes-since-cutover` with it exports the rest
/// and records the row as discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_without_a_file_form_stops_the_export_until_it_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    generate(&store, &StoreSpec::small()).unwrap();
    remove_special_files(&store);
    let pg = ScratchSchema::new("exportback_reject").await;
    let cfg = config(&dir.path().join("one"), &store, &pg.name);
    let runner = Runner::new(cfg.clone());
    up_to(&runner, Phase::Sync).await;
    let at_cutover = tree(&store);
    let db = AgentDb::connect(cfg.postgres.url.expose(), AgentDbOptions::from_config(&cfg))
        .await
        .unwrap();
    db.create_task(&NewTask::new("Agent-2", "exported"))
        .await
        .unwrap();
    db.close().await;
    let mut conn = pg.connect().await;
    sqlx::query("INSERT INTO agent_memory (agent_id, content) VALUES ('Agent-2', 'remembered')")
        .execute(&mut conn)
        .await
        .unwrap();

    let plan = runner.export_plan().await.unwrap();
    assert_eq!(plan.rejects, 1, "{:#?}", plan.lines);
    let reject = &plan.plan["rejects"][0];
    assert_eq!(reject["table"], "agent_memory", "{reject}");
    assert!(
        reject["reason"].as_str().unwrap().contains("no file form"),
        "{reject}"
    );

    let export = RollbackOptions {
        export_back: true,
        ..RollbackOptions::default()
    };
    let before = digests(&pg.name, &[]).await;
    let reports = runner.rollback(3, &export).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].passed);
    let check = reports[0]
        .checks
        .iter()
        .find(|c| c.name == "every row written since the cutover can be written back")
        .unwrap();
    assert!(
        !check.passed && check.detail.contains("agent_memory"),
        "{check:?}"
    );
    assert_eq!(tree(&store), at_cutover, "the store was written");
    assert_eq!(
        digests(&pg.name, &[]).await,
        before,
        "PostgreSQL was changed"
    );

    let reports = runner
        .rollback(
            3,
            &RollbackOptions {
                discard_writes_since_cutover: true,
                ..export
            },
        )
        .await
        .unwrap();
    assert!(reports[0].passed, "{}", reports[0].table());
    let ev = &reports[0].evidence["export_back"];
    assert_eq!(ev["counts"]["unrenderable_rows"], 1, "{ev}");
    assert!(PathBuf::from(ev["unrenderable_report"].as_str().unwrap()).is_file());
    assert_eq!(ev["counts"]["write"], 1, "{ev}");
    let list =
        std::fs::read_to_string(store.join("agent_workspaces/Agent-2/task_list.json")).unwrap();
    assert!(list.contains("\"exported\""), "{list}");
}
