//! Schema review: a fresh database migrated to each version dumps exactly to the committed
//! snapshot of that version (`migrations/<dialect>/snapshots/<version>.snap`), and every
//! down migration is proven by going up to N, down to N−1, and comparing with the snapshot
//! of N−1 — on both dialects.

use std::path::Path;

use ferry_schema::{dump, Database, Dialect, MigrationSet, Migrator};
use ferry_testkit::pg::ScratchSchema;

fn snapshot_dir(dialect: Dialect) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(dialect.dir_name())
        .join("snapshots")
}

fn embedded(dialect: Dialect) -> MigrationSet {
    MigrationSet::from_embedded(match dialect {
        Dialect::Sqlite => ferry_migrations::SQLITE,
        Dialect::Postgres => ferry_migrations::POSTGRES,
    })
    .unwrap()
}

/// A fresh database of the dialect, and what keeps it alive.
async fn fresh(dialect: Dialect) -> (Database, Option<ScratchSchema>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    match dialect {
        Dialect::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("s.sqlite3").display());
            (Database::connect(&url, None).await.unwrap(), None, dir)
        }
        Dialect::Postgres => {
            let schema = ScratchSchema::new("snap").await;
            let db = Database::connect(&schema.url, Some(&schema.name))
                .await
                .unwrap();
            (db, Some(schema), dir)
        }
    }
}

async fn every_version_matches_its_snapshot_and_every_down_is_proven(dialect: Dialect) {
    let set = embedded(dialect);
    let migrator = Migrator::new(set.clone());
    let mut previous = String::new();
    for m in set.migrations() {
        // Up to N on a fresh database: the reviewed snapshot of N.
        let (mut db, _keep, _dir) = fresh(dialect).await;
        migrator.up(&mut db, Some(m.version)).await.unwrap();
        let at_n = dump(&mut db).await.unwrap();
        insta::with_settings!({
            snapshot_path => snapshot_dir(dialect),
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => format!("{} schema after {}", dialect.dir_name(), m.up_file),
        }, {
            insta::assert_snapshot!(format!("{:04}", m.version), at_n);
        });
        // Down to N−1: exactly the schema of N−1.
        migrator.down(&mut db, m.version - 1).await.unwrap();
        let after_down = dump(&mut db).await.unwrap();
        assert_eq!(
            after_down,
            previous,
            "{} does not exactly undo {} ({})",
            m.down_file.as_deref().unwrap_or("(no down file)"),
            m.up_file,
            dialect.dir_name()
        );
        // And up again reproduces N (the down left nothing behind that breaks the up).
        migrator.up(&mut db, Some(m.version)).await.unwrap();
        assert_eq!(dump(&mut db).await.unwrap(), at_n);
        previous = at_n;
        db.close().await;
    }
}

#[tokio::test]
async fn sqlite_schema_snapshots() {
    every_version_matches_its_snapshot_and_every_down_is_proven(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_schema_snapshots() {
    every_version_matches_its_snapshot_and_every_down_is_proven(Dialect::Postgres).await;
}

#[tokio::test]
async fn embedded_snapshots_are_what_the_tests_review() {
    // The runtime copy (used by gate 1 and `migrate diff`) is the reviewed file.
    for (dialect, files) in [
        (Dialect::Sqlite, ferry_migrations::SQLITE_SNAPSHOTS),
        (Dialect::Postgres, ferry_migrations::POSTGRES_SNAPSHOTS),
    ] {
        let set = ferry_schema::SnapshotSet::from_embedded(files);
        let head = embedded(dialect).head();
        let (mut db, _keep, _dir) = fresh(dialect).await;
        Migrator::new(embedded(dialect))
            .up(&mut db, None)
            .await
            .unwrap();
        let live = dump(&mut db).await.unwrap();
        let check = ferry_schema::compare_snapshot(&set, head, &live);
        assert!(
            check.equal,
            "{} head differs from its snapshot: {:#?}",
            dialect.dir_name(),
            check.diff
        );
        db.close().await;
    }
}
