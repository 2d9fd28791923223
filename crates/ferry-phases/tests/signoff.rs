//! Phase 5 on a real migration: a generated store through phases 1 to 3 (and 4), the
//! sign-off checks, the signature, and its withdrawal by `rollback --to 4`.

use std::time::Duration;

use ferry_core::config::{Config, ConfigLoader};
use ferry_phases::ledger::{Action, State};
use ferry_phases::{Phase, RollbackOptions, RunOptions, RunResult, Runner};
use ferry_testkit::pg::ScratchSchema;
use ferry_testkit::store_gen::{generate, StoreSpec};

struct Scratch {
    dir: tempfile::TempDir,
    pg: ScratchSchema,
}

impl Scratch {
    async fn new(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        generate(&store, &StoreSpec::small()).unwrap();
        // Phase 1 refuses a FIFO in the store (it cannot be backed up); this store is one
        // phase 1 accepts.
        remove_special_files(&store);
        Self {
            dir,
            pg: ScratchSchema::new(prefix).await,
        }
    }

    fn config(&self) -> Config {
        let p = self.dir.path();
        let mut config = ConfigLoader::new()
            .flag("source.store_dir", p.join("store").display().to_string())
            .flag(
                "sqlite.path",
                p.join("state/ferry.sqlite3").display().to_string(),
            )
            .flag("state_dir", p.join("state").display().to_string())
            .flag("postgres.schema", self.pg.name.clone())
            .load()
            .unwrap();
        config.import.max_file_bytes = StoreSpec::small().max_file_bytes();
        config
    }
}

fn remove_special_files(dir: &std::path::Path) {
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

fn sign(who: Option<&str>) -> RunOptions {
    RunOptions {
        signed_by: who.map(str::to_owned),
        signoff_load: Some(Duration::from_secs(2)),
        ..RunOptions::default()
    }
}

async fn ran(runner: &Runner, phase: Phase, options: &RunOptions) -> ferry_phases::GateReport {
    match runner.run(phase, options).await.unwrap() {
        RunResult::Ran { report, .. } => *report,
        RunResult::AlreadyPassed(_) => panic!("{phase} had already passed"),
    }
}

/// Phase 5 forced over a missing gate 4: every check runs and is reported, the migration
/// checks fail for want of phase 4's evidence, the signature is refused, and `rollback --to
/// 4` is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phase_five_reports_every_check_refuses_to_sign_a_failed_gate_and_rolls_back() {
    let s = Scratch::new("phase5_forced").await;
    let runner = Runner::new(s.config());
    for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
        let report = ran(&runner, phase, &RunOptions::default()).await;
        assert!(report.passed, "{phase}: {}", report.table());
    }
    let options = RunOptions {
        force_reason: Some("testing phase 5 without phase 4".into()),
        ..sign(Some("Release Manager"))
    };
    let report = ran(&runner, Phase::SignOff, &options).await;
    assert!(!report.passed, "no cutover evidence: {}", report.table());
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .filter(|n| !n.starts_with("performance:"))
        .collect();
    assert_eq!(
        failed,
        [
            "migration: cutover blackout recorded",
            "migration: sync caught up before cutover"
        ],
        "{}",
        report.table()
    );
    for area in ["data:", "performance:", "concurrency:"] {
        assert!(
            report.checks.iter().any(|c| c.name.starts_with(area)),
            "{area}"
        );
    }
    let evidence = &report.evidence;
    assert!(
        evidence["signature"].is_null(),
        "a failed gate is not signed"
    );
    assert!(evidence["signature_refused"]
        .as_str()
        .unwrap()
        .contains("Release Manager"));
    let html = std::path::PathBuf::from(evidence["html"].as_str().unwrap());
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let json = std::path::PathBuf::from(evidence["signoff_json"].as_str().unwrap());
    let sha = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&json).unwrap())
    );
    assert_eq!(
        evidence["evidence_sha256"].as_str(),
        Some(sha.as_str()),
        "{} ({} bytes): {:?}",
        json.display(),
        std::fs::metadata(&json).unwrap().len(),
        std::fs::read_dir(json.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );

    let reports = runner
        .rollback(4, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].phase, Phase::SignOff);
    assert!(reports[0].passed, "{}", reports[0].table());
    let entries = runner.ledger().entries().unwrap();
    let last = entries.last().unwrap();
    assert_eq!(
        (last.phase, last.action),
        (Phase::SignOff, Action::Rollback)
    );
}

/// The whole migration, 1 to 5, signed; `rollback --to 4` withdraws the signature and says
/// so in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phases_one_to_five_pass_signed_and_rollback_to_four_withdraws_the_signature() {
    let s = Scratch::new("phase5_e2e").await;
    let runner = Runner::new(s.config());
    for phase in [Phase::Foundation, Phase::Import, Phase::Load, Phase::Sync] {
        let options = RunOptions {
            writers_stopped: true,
            ..RunOptions::default()
        };
        let report = ran(&runner, phase, &options).await;
        assert!(
            report.passed,
            "{phase}: {}\n{}",
            report.table(),
            report.details
        );
    }
    // Without acceptance the gate passes exactly when every check does; a performance miss
    // is a failed check with its numbers and the flag that accepts it (the bound is never
    // loosened), and nothing but the comparison with the baselines may fail here.
    let plain = ran(&runner, Phase::SignOff, &sign(None)).await;
    let failed: Vec<_> = plain.checks.iter().filter(|c| !c.passed).collect();
    assert_eq!(plain.passed, failed.is_empty(), "{}", plain.table());
    for c in &failed {
        assert!(
            c.name.starts_with("performance: PostgreSQL within 10% of")
                && c.detail.contains("--accept-slower"),
            "{}",
            plain.table()
        );
    }
    // Unsigned, the miss accepted: the gate passes, and the phase waits for a signature.
    let accept = |options: RunOptions| RunOptions {
        accept_slower: Some("a loopback round trip per read; agreed with the team".into()),
        rerun: true,
        ..options
    };
    let unsigned = ran(&runner, Phase::SignOff, &accept(sign(None))).await;
    assert!(unsigned.passed, "{}", unsigned.table());
    for c in &failed {
        let now = unsigned.checks.iter().find(|n| n.name == c.name).unwrap();
        assert!(now.detail.contains("ACCEPTED by the signer"), "{now:?}");
    }
    assert!(unsigned.evidence["signature"].is_null());
    assert_eq!(unsigned.findings.what, "awaiting signature");
    let signed = ran(
        &runner,
        Phase::SignOff,
        &accept(sign(Some("Release Manager"))),
    )
    .await;
    assert!(signed.passed, "{}", signed.table());
    assert!(signed.findings.is_empty());
    let signature = &signed.evidence["signature"];
    assert_eq!(signature["signed_by"], "Release Manager");
    assert_eq!(
        signature["evidence_sha256"],
        signed.evidence["evidence_sha256"]
    );
    let status = runner.status().await.unwrap();
    assert_eq!(status.phases[4].state, State::Passed);

    let reports = runner
        .rollback(4, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed, "{}", reports[0].table());
    let entries = runner.ledger().entries().unwrap();
    let last = entries.last().unwrap();
    assert_eq!(
        (last.phase, last.action),
        (Phase::SignOff, Action::Rollback)
    );
    assert!(
        last.steps
            .iter()
            .any(|s| s.contains("withdrawing the signature of Release Manager")),
        "{:?}",
        last.steps
    );
    let status = runner.status().await.unwrap();
    assert_ne!(status.phases[4].state, State::Passed);
}
