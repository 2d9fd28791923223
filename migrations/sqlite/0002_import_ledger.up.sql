-- ferry-import's bookkeeping: the ledger of every file of the store and the log of import
-- runs. Like every `ferry_*` table they stay in SQLite and are never transferred.
--
-- Every file the import has seen has exactly one row in `ferry_source_files`, in exactly one
-- state: `imported` (its records are rows; `row_keys` names them per table), `quarantined`
-- (copied to state_dir/quarantine/, with a reason: kind, sentence, line and column),
-- `excluded` (an exclude pattern of the profile, or a symlink inside the store, matched it)
-- or `unmapped` (no rule of the profile matched it). Phase 2's gate checks the backup
-- manifest against these rows, and the rows of each table against `row_keys`.
--
-- `size`, `mtime_ns`, `sha256` and `settings_digest` (profile plus import options) let a
-- re-run skip a file that has not changed. `disappeared_at` is set when the file is no
-- longer in the store but its rows were kept.
--
-- WITHOUT ROWID and no secondary index: the import writes one row per file, and a single
-- b-tree keyed by path is half the work of a rowid table plus its primary-key index.

CREATE TABLE IF NOT EXISTS ferry_source_files (
    path            TEXT PRIMARY KEY NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    mtime_ns        INTEGER,
    sha256          TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
    status          TEXT NOT NULL
                    CHECK (status IN ('imported', 'quarantined', 'excluded', 'unmapped')),
    kind            TEXT,
    format          TEXT,
    target_table    TEXT,
    row_keys        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(row_keys)),
    row_count       INTEGER NOT NULL DEFAULT 0 CHECK (row_count >= 0),
    records_parsed  INTEGER NOT NULL DEFAULT 0 CHECK (records_parsed >= 0),
    reason_kind     TEXT,
    reason          TEXT,
    reason_line     INTEGER,
    reason_column   INTEGER,
    quarantine_path TEXT,
    notes           TEXT CHECK (notes IS NULL OR json_valid(notes)),
    settings_digest TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    changed_at      TEXT NOT NULL,
    disappeared_at  TEXT,
    run_id          INTEGER,
    CHECK (status <> 'quarantined' OR reason_kind IS NOT NULL)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ferry_import_runs (
    run_id            INTEGER PRIMARY KEY,
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    store_dir         TEXT NOT NULL,
    profile           TEXT NOT NULL,
    settings_digest   TEXT NOT NULL,
    ferry_version     TEXT NOT NULL,
    files_seen        INTEGER NOT NULL DEFAULT 0,
    files_new         INTEGER NOT NULL DEFAULT 0,
    files_changed     INTEGER NOT NULL DEFAULT 0,
    files_unchanged   INTEGER NOT NULL DEFAULT 0,
    files_quarantined INTEGER NOT NULL DEFAULT 0,
    files_disappeared INTEGER NOT NULL DEFAULT 0,
    rows_written      INTEGER NOT NULL DEFAULT 0,
    rows_deleted      INTEGER NOT NULL DEFAULT 0
);
