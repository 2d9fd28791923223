//! Every environment variable ferry reads, in one place.
//!
//! Configuration variables map onto config keys (see [`CONFIG_VARS`]); the others tune the
//! command line and the tests.

/// Environment variables that set a configuration key, as `(variable, key)`.
///
/// They override `ferry.toml` and are overridden by command-line flags.
pub const CONFIG_VARS: &[(&str, &str)] = &[
    ("FERRY_STORE_DIR", "source.store_dir"),
    ("FERRY_SQLITE_PATH", "sqlite.path"),
    ("FERRY_POSTGRES_URL", "postgres.url"),
    ("FERRY_POSTGRES_SCHEMA", "postgres.schema"),
    ("FERRY_STATE_DIR", "state_dir"),
    ("FERRY_IMPORT_PROFILE", "import.profile"),
    (
        "FERRY_IMPORT_SNAPSHOT_THRESHOLD_BYTES",
        "import.snapshot_threshold_bytes",
    ),
    ("FERRY_IMPORT_MAX_FILE_BYTES", "import.max_file_bytes"),
    ("FERRY_IMPORT_WORKERS", "import.workers"),
    ("FERRY_TRANSFER_WORKERS", "transfer.workers"),
    ("FERRY_TRANSFER_CHUNK_ROWS", "transfer.chunk_rows"),
    ("FERRY_TRANSFER_INVALID_TEXT", "transfer.invalid_text"),
    ("FERRY_TRANSFER_MIXED", "transfer.mixed"),
    ("FERRY_NAIVE_TIMESTAMPS", "timestamps.naive"),
    ("FERRY_SYNC_INTERVAL_MS", "sync.interval_ms"),
    ("FERRY_SYNC_BATCH_CHANGES", "sync.batch_changes"),
    ("FERRY_SYNC_WORKERS", "sync.workers"),
    ("FERRY_SYNC_DIGEST_MAX_ROWS", "sync.digest_max_rows"),
    ("FERRY_SYNC_RESCAN_SECS", "sync.rescan_secs"),
];

/// Path of the config file when `--config` is not given.
pub const FERRY_CONFIG: &str = "FERRY_CONFIG";

/// PostgreSQL server the test suite creates its scratch databases and schemas on.
/// Defaults to the `postgres.url` default.
pub const FERRY_TEST_POSTGRES_URL: &str = "FERRY_TEST_POSTGRES_URL";

/// The folder of shared real-world samples acceptance tests read (default: `../shared/samples`
/// beside the workspace).
pub const FERRY_SAMPLES_DIR: &str = "FERRY_SAMPLES_DIR";

/// Where a test that could not run its acceptance check (its sample is absent) leaves a
/// marker; `cargo xtask ci` sets it and counts the markers (default:
/// `target/skipped-checks/` of the workspace).
pub const FERRY_SKIPPED_CHECKS_DIR: &str = "FERRY_SKIPPED_CHECKS_DIR";

/// Log filter, as understood by `tracing-subscriber`'s `EnvFilter`.
pub const RUST_LOG: &str = "RUST_LOG";

/// `json` for machine-readable logs; `text` (the default) for people.
pub const FERRY_LOG_FORMAT: &str = "FERRY_LOG_FORMAT";

/// `0` hides progress bars even on a terminal.
pub const FERRY_PROGRESS: &str = "FERRY_PROGRESS";

/// The default PostgreSQL server: the local one with trust authentication.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server tests use: [`FERRY_TEST_POSTGRES_URL`], else [`DEFAULT_POSTGRES_URL`].
pub fn test_postgres_url() -> String {
    std::env::var(FERRY_TEST_POSTGRES_URL).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}
