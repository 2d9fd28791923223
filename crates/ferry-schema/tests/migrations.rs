//! ferry-schema against real databases: every operation on both dialects, the failure
//! modes users of other migration tools get hurt by, and two runners at once.

use std::path::Path;
use std::time::Duration;

use ferry_schema::{Database, Dialect, MigrationSet, Migrator, SchemaError, State};
use ferry_testkit::pg::ScratchSchema;

/// A database of either dialect, and what keeps it alive.
struct Scratch {
    _dir: tempfile::TempDir,
    schema: Option<ScratchSchema>,
    sqlite_path: std::path::PathBuf,
}

impl Scratch {
    async fn new(dialect: Dialect) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sqlite_path = dir.path().join("test.sqlite3");
        let schema = match dialect {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(ScratchSchema::new("schema").await),
        };
        Self {
            _dir: dir,
            schema,
            sqlite_path,
        }
    }

    async fn open(&self) -> Database {
        match &self.schema {
            None => Database::connect(&format!("sqlite://{}", self.sqlite_path.display()), None)
                .await
                .unwrap(),
            Some(s) => Database::connect(&s.url, Some(&s.name)).await.unwrap(),
        }
    }

    fn dir(&self) -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Three ordinary migrations valid in both dialects.
fn basic(dir: &Path) {
    write(
        dir,
        "0001_people.up.sql",
        "CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL);\n",
    );
    write(dir, "0001_people.down.sql", "DROP TABLE people;\n");
    write(dir, "0002_pets.up.sql", "CREATE TABLE pets (\n  id integer PRIMARY KEY,\n  owner integer REFERENCES people (id)\n);\nCREATE INDEX pets_owner_idx ON pets (owner);\n");
    write(dir, "0002_pets.down.sql", "DROP TABLE pets;\n");
    write(
        dir,
        "0003_names.up.sql",
        "ALTER TABLE pets ADD COLUMN name text;\n",
    );
    write(
        dir,
        "0003_names.down.sql",
        "ALTER TABLE pets DROP COLUMN name;\n",
    );
}

async fn table_exists(db: &mut Database, table: &str) -> bool {
    match db {
        Database::Sqlite { conn, .. } => {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_schema WHERE name = ?")
                .bind(table)
                .fetch_one(conn)
                .await
                .unwrap()
                > 0
        }
        Database::Postgres { conn, schema, .. } => sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)",
        )
        .bind(schema.as_str())
        .bind(table)
        .fetch_one(conn)
        .await
        .unwrap(),
    }
}

async fn up_down_status_plan_verify(dialect: Dialect) {
    let scratch = Scratch::new(dialect).await;
    let dir = scratch.dir();
    basic(dir.path());
    let migrator = Migrator::new(MigrationSet::from_dir(dir.path()).unwrap());
    let mut db = scratch.open().await;

    let status = migrator.status(&mut db).await.unwrap();
    assert_eq!((status.current, status.head), (0, 3));
    assert_eq!(status.count(State::Pending), 3);

    let plan = migrator.plan_up(&mut db, Some(2)).await.unwrap();
    assert_eq!(
        plan.iter().map(|s| s.file.as_str()).collect::<Vec<_>>(),
        ["0001_people.up.sql", "0002_pets.up.sql"]
    );
    assert!(plan[1].sql.contains("CREATE INDEX pets_owner_idx"));
    // A dry run changes nothing.
    assert!(!table_exists(&mut db, "people").await);

    let ran = migrator.up(&mut db, Some(2)).await.unwrap();
    assert_eq!(ran.len(), 2);
    assert!(table_exists(&mut db, "pets").await);
    let status = migrator.status(&mut db).await.unwrap();
    assert_eq!(status.current, 2);
    assert_eq!(
        status.rows.iter().map(|r| r.state).collect::<Vec<_>>(),
        [State::Applied, State::Applied, State::Pending]
    );

    migrator.up(&mut db, None).await.unwrap();
    assert!(migrator.status(&mut db).await.unwrap().is_clean_at_head());
    migrator.verify(&mut db).await.unwrap();
    // Up again is a no-op.
    assert!(migrator.up(&mut db, None).await.unwrap().is_empty());

    let plan = migrator.plan_down(&mut db, 1).await.unwrap();
    assert_eq!(
        plan.iter().map(|s| s.file.as_str()).collect::<Vec<_>>(),
        ["0003_names.down.sql", "0002_pets.down.sql"]
    );
    let ran = migrator.down(&mut db, 1).await.unwrap();
    assert_eq!(ran.len(), 2);
    assert!(!table_exists(&mut db, "pets").await);
    assert!(table_exists(&mut db, "people").await);
    assert_eq!(migrator.status(&mut db).await.unwrap().current, 1);
    migrator.down(&mut db, 0).await.unwrap();
    assert!(!table_exists(&mut db, "people").await);
    db.close().await;
}

#[tokio::test]
async fn sqlite_up_down_status_plan_verify() {
    up_down_status_plan_verify(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_up_down_status_plan_verify() {
    up_down_status_plan_verify(Dialect::Postgres).await;
}

async fn crlf_and_drift(dialect: Dialect) {
    let scratch = Scratch::new(dialect).await;
    let lf = scratch.dir();
    basic(lf.path());
    let mut db = scratch.open().await;
    Migrator::new(MigrationSet::from_dir(lf.path()).unwrap())
        .up(&mut db, None)
        .await
        .unwrap();

    // The same files checked out with CRLF line endings and trailing spaces: not drift.
    let crlf = scratch.dir();
    for entry in std::fs::read_dir(lf.path()).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        write(
            crlf.path(),
            &entry.file_name().to_string_lossy(),
            &text.replace('\n', "  \r\n"),
        );
    }
    let migrator = Migrator::new(MigrationSet::from_dir(crlf.path()).unwrap());
    migrator.verify(&mut db).await.unwrap();
    assert!(migrator.status(&mut db).await.unwrap().is_clean_at_head());

    // An edited applied migration is drift: status says so, verify and up refuse, naming
    // the file and version.
    write(
        crlf.path(),
        "0002_pets.up.sql",
        "CREATE TABLE pets (id bigint PRIMARY KEY);\n",
    );
    let migrator = Migrator::new(MigrationSet::from_dir(crlf.path()).unwrap());
    let status = migrator.status(&mut db).await.unwrap();
    assert_eq!(status.rows[1].state, State::Drifted);
    for err in [
        migrator.verify(&mut db).await.unwrap_err(),
        migrator.up(&mut db, None).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, SchemaError::Drift { version: 2, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("0002_pets.up.sql") && text.contains("version 2"),
            "{text}"
        );
    }
    // Accepting the edit explicitly.
    migrator.repair(&mut db, 2, false).await.unwrap();
    migrator.verify(&mut db).await.unwrap();
    db.close().await;
}

#[tokio::test]
async fn sqlite_crlf_is_not_drift_but_an_edit_is() {
    crlf_and_drift(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_crlf_is_not_drift_but_an_edit_is() {
    crlf_and_drift(Dialect::Postgres).await;
}

async fn failing_migration(dialect: Dialect) {
    let scratch = Scratch::new(dialect).await;
    let dir = scratch.dir();
    basic(dir.path());
    // The second statement, starting on line 4, has a syntax error on line 5.
    write(
        dir.path(),
        "0004_broken.up.sql",
        "-- adds two tables\nCREATE TABLE first_half (id integer);\n\nCREATE TABLE second_half (\n  id integer PRIMARY KEY,,\n  x text\n);\n",
    );
    write(
        dir.path(),
        "0004_broken.down.sql",
        "DROP TABLE second_half;\nDROP TABLE first_half;\n",
    );
    let migrator = Migrator::new(MigrationSet::from_dir(dir.path()).unwrap());
    let mut db = scratch.open().await;
    let err = migrator.up(&mut db, None).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("0004_broken.up.sql"), "{text}");
    let want_line = match dialect {
        Dialect::Sqlite => "line 4",
        Dialect::Postgres => "line 5",
    };
    assert!(text.contains(want_line), "{text}");
    // No partial state: the first statement of the failed migration was rolled back, the
    // ledger has no row for it, and the earlier migrations stayed applied.
    assert!(!table_exists(&mut db, "first_half").await);
    let status = migrator.status(&mut db).await.unwrap();
    assert_eq!(status.current, 3);
    assert_eq!(status.rows[3].state, State::Pending);
    db.close().await;
}

#[tokio::test]
async fn sqlite_failing_migration_names_file_and_line_and_leaves_nothing() {
    failing_migration(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_failing_migration_names_file_and_line_and_leaves_nothing() {
    failing_migration(Dialect::Postgres).await;
}

async fn dirty_blocks_until_repair(dialect: Dialect) {
    let scratch = Scratch::new(dialect).await;
    let dir = scratch.dir();
    basic(dir.path());
    write(
        dir.path(),
        "0004_outside.up.sql",
        "-- ferry:no-transaction\nCREATE TABLE done_part (id integer);\nCREATE TABLE broken_part (id integer,);\n",
    );
    write(
        dir.path(),
        "0004_outside.down.sql",
        "DROP TABLE done_part;\n",
    );
    write(
        dir.path(),
        "0005_later.up.sql",
        "CREATE TABLE later (id integer);\n",
    );
    write(dir.path(), "0005_later.down.sql", "DROP TABLE later;\n");
    let migrator = Migrator::new(MigrationSet::from_dir(dir.path()).unwrap());
    let mut db = scratch.open().await;
    let err = migrator.up(&mut db, None).await.unwrap_err();
    assert!(err.to_string().contains("0004_outside.up.sql"), "{err}");
    // The first statement ran outside a transaction and stays: the row is dirty.
    assert!(table_exists(&mut db, "done_part").await);
    assert_eq!(
        migrator.status(&mut db).await.unwrap().rows[3].state,
        State::Dirty
    );
    // Every later run refuses, naming the migration and the way out.
    let err = migrator.up(&mut db, None).await.unwrap_err();
    assert!(
        matches!(err, SchemaError::Dirty { version: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("repair 4"), "{err}");
    assert!(!table_exists(&mut db, "later").await);

    // A person finishes the migration by hand, then repairs.
    match &mut db {
        Database::Sqlite { conn, .. } => {
            sqlx::raw_sql("CREATE TABLE broken_part (id integer)")
                .execute(conn)
                .await
                .unwrap();
        }
        Database::Postgres { conn, .. } => {
            sqlx::raw_sql("CREATE TABLE broken_part (id integer)")
                .execute(conn)
                .await
                .unwrap();
        }
    }
    migrator.repair(&mut db, 4, false).await.unwrap();
    migrator.up(&mut db, None).await.unwrap();
    assert!(table_exists(&mut db, "later").await);
    assert!(migrator.status(&mut db).await.unwrap().is_clean_at_head());
    db.close().await;
}

#[tokio::test]
async fn sqlite_dirty_migration_blocks_until_repair() {
    dirty_blocks_until_repair(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_dirty_migration_blocks_until_repair() {
    dirty_blocks_until_repair(Dialect::Postgres).await;
}

async fn two_runners(dialect: Dialect) {
    let scratch = Scratch::new(dialect).await;
    let dir = scratch.dir();
    basic(dir.path());
    // A slow migration, so the two runs overlap: it fills a table with 200,000 rows.
    let fill = "CREATE TABLE counter (n integer);\nINSERT INTO counter (n) WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 200000) SELECT n FROM c;\n";
    write(dir.path(), "0004_slow.up.sql", fill);
    write(dir.path(), "0004_slow.down.sql", "DROP TABLE counter;\n");
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let (mut a, mut b) = (scratch.open().await, scratch.open().await);
    let ma = Migrator::new(set.clone()).lock_timeout(Duration::from_secs(120));
    let mb = Migrator::new(set.clone()).lock_timeout(Duration::from_secs(120));
    let (ra, rb) = tokio::join!(ma.up(&mut a, None), mb.up(&mut b, None));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Every migration ran exactly once, split between the two runners somehow.
    let mut versions: Vec<i64> = ra.iter().chain(rb.iter()).map(|r| r.version).collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4]);
    let n: i64 = match &mut a {
        Database::Sqlite { conn, .. } => sqlx::query_scalar("SELECT count(*) FROM counter")
            .fetch_one(conn)
            .await
            .unwrap(),
        Database::Postgres { conn, .. } => sqlx::query_scalar("SELECT count(*) FROM counter")
            .fetch_one(conn)
            .await
            .unwrap(),
    };
    assert_eq!(n, 200_000);
    assert!(ma.status(&mut a).await.unwrap().is_clean_at_head());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_concurrent_up_runs_never_double_apply() {
    two_runners(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_concurrent_up_runs_never_double_apply() {
    two_runners(Dialect::Postgres).await;
}

#[tokio::test]
async fn postgres_lock_held_elsewhere_times_out_with_a_clear_message() {
    let scratch = Scratch::new(Dialect::Postgres).await;
    let dir = scratch.dir();
    basic(dir.path());
    let migrator = Migrator::new(MigrationSet::from_dir(dir.path()).unwrap())
        .lock_timeout(Duration::from_millis(500));
    let schema = scratch.schema.as_ref().unwrap();
    // Another runner holds the lock: take it through a runner that is mid-way.
    let mut holder = schema.connect().await;
    let key: i64 = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(format!("ferry-schema:{}", schema.name).as_bytes());
        i64::from_be_bytes(d[..8].try_into().unwrap())
    };
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut db = scratch.open().await;
    let err = migrator.up(&mut db, None).await.unwrap_err();
    assert!(matches!(err, SchemaError::LockTimeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("another migration run holds the lock"),
        "{err}"
    );
    assert!(!table_exists(&mut db, "people").await);
    db.close().await;
}

#[tokio::test]
async fn embedded_and_directory_sets_agree() {
    // The embedded copy of migrations/ is the directory, file for file.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    for (dir, files) in [
        ("sqlite", ferry_migrations::SQLITE),
        ("postgres", ferry_migrations::POSTGRES),
    ] {
        let from_dir = MigrationSet::from_dir(&root.join(dir)).unwrap();
        let embedded = MigrationSet::from_embedded(files).unwrap();
        assert_eq!(from_dir.migrations(), embedded.migrations(), "{dir}");
        assert!(embedded.head() >= 1);
        assert!(
            embedded.migrations().iter().all(|m| m.down_sql.is_some()),
            "every ferry migration has a down file"
        );
    }
}

#[test]
fn add_creates_the_next_pair_for_each_dialect() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("sqlite")).unwrap();
    write(&root.path().join("sqlite"), "0007_x.up.sql", "SELECT 1;");
    let created = ferry_schema::add(root.path(), "add_things").unwrap();
    let names: Vec<String> = created
        .iter()
        .map(|p| p.strip_prefix(root.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "sqlite/0008_add_things.up.sql",
            "sqlite/0008_add_things.down.sql",
            "postgres/0008_add_things.up.sql",
            "postgres/0008_add_things.down.sql"
        ]
    );
    assert!(ferry_schema::add(root.path(), "Bad Name").is_err());
}

/// Regression (issue 10, item 2): `migrate status` on a missing file created a 0-byte
/// database, which every later step then refused.
#[tokio::test]
async fn opening_an_existing_database_never_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sqlite3");
    let url = format!("sqlite://{}", missing.display());
    let err = Database::connect_existing(&url, None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("SQLite file {} does not exist", missing.display())
    );
    assert!(!missing.exists(), "nothing was created");

    let notes = dir.path().join("notes.db");
    std::fs::write(&notes, "these are notes, not a database\n").unwrap();
    let err = Database::connect_existing(&format!("sqlite://{}", notes.display()), None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{} is not a SQLite database: it does not start with SQLite's file header",
            notes.display()
        ),
        "no SQL, no driver prefix"
    );
    let err = Database::connect(&format!("sqlite://{}", notes.display()), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not a SQLite database"),
        "{err}"
    );

    let in_missing_folder = dir.path().join("no/such/folder/x.sqlite3");
    let err = Database::connect(&format!("sqlite://{}", in_missing_folder.display()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, SchemaError::NoFolder { .. }), "{err}");

    // An empty file is an empty database: it opens (and stays empty until `up`).
    let empty = dir.path().join("empty.sqlite3");
    std::fs::write(&empty, "").unwrap();
    let mut db = Database::connect_existing(&format!("sqlite://{}", empty.display()), None)
        .await
        .unwrap();
    let status = Migrator::new(MigrationSet::from_embedded(ferry_migrations::SQLITE).unwrap())
        .status(&mut db)
        .await
        .unwrap();
    assert_eq!(status.current, 0);
    db.close().await;
}

/// Regression (issue 9, item 6): a wrong database name was reported as an unreachable
/// server.
#[tokio::test]
async fn a_database_that_does_not_exist_is_named() {
    let base = ferry_core::env_vars::test_postgres_url();
    let end = base.rfind('/').unwrap();
    let name = format!("ferry_missing_{}", std::process::id());
    let url = format!("{}/{name}", &base[..end]);
    let err = Database::connect(&url, Some("s")).await.unwrap_err();
    assert!(matches!(err, SchemaError::NoDatabase { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("has no database named \"{name}\"")),
        "{err}"
    );
}
