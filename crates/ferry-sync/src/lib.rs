//! Record-time sync for phase 4: changes the old application keeps making in SQLite after
//! phase 3's copy reach PostgreSQL exactly once, until cutover.
//!
//! - **Capture** ([`install`], [`uninstall`], [`verify`]): a change log in the SQLite file,
//!   written by `AFTER INSERT/UPDATE/DELETE` triggers in the writer's own transaction. It
//!   logs *keys*, with their exact storage class and bytes. Virtual (full-text) tables and
//!   tables without a primary key are followed by a whole-table digest instead.
//! - **Apply** ([`Applier`]): batches of entries after the cursor; for the keys they name,
//!   the rows' *current* state is read in one SQLite snapshot, converted with the transfer
//!   plan's own conversions (`ferry_core::pgcopy`), staged with binary COPY and applied in
//!   PostgreSQL: touched keys deleted, rows holding a staged row's value of another UNIQUE
//!   constraint deleted (how a SQLite `REPLACE` that removed a different row reaches
//!   PostgreSQL), present rows inserted, rejects recorded, and the table's cursor stored, in
//!   one transaction. Applying an entry again changes nothing, so a crash anywhere repeats
//!   at most one batch with no effect: exactly once in effect.
//! - **Handoff**: [`Applier::full_pass`] (or the runner's [`Applier::apply_keys`] with
//!   ferry-validate's row diff) closes the gap between phase 3's copy and the start of
//!   capture.
//! - **Follower** ([`Follower`]): drains every `sync.interval_ms` until stopped, with a hook
//!   before each pass and a [`StoreWatcher`] for the file store; lag as a [`SyncStatus`] and
//!   a time series.
//! - **Cutover** ([`Applier::fence`], [`Applier::release`]): SQLite's write lock held while
//!   the log is drained; the blackout is measured; writes that reach SQLite afterwards are
//!   counted ([`written_after_cutover`]), and so are rows written to PostgreSQL since
//!   ([`pg_writes_since_cutover`]).
//!
//! ```no_run
//! # async fn demo(plan: ferry_core::plan::TransferPlan) -> Result<(), ferry_sync::SyncError> {
//! use ferry_core::redact::SecretUrl;
//! use ferry_sync::{install, Applier, Follower, FollowerOptions, InstallOptions, NoHook, SyncOptions, SyncTarget};
//!
//! let sqlite = std::path::Path::new("app.sqlite3");
//! install(sqlite, &plan, &InstallOptions::default())?;
//! let target = SyncTarget { url: SecretUrl::new("postgres://postgres@127.0.0.1/app"), schema: "ferry".into() };
//! let applier = Applier::open(sqlite, &target, &plan, &SyncOptions::default(), true).await?;
//! let mut follower = Follower::new(applier, FollowerOptions::default());
//! let stop = follower.handle().stop;
//! tokio::spawn(async move { let _ = tokio::signal::ctrl_c().await; stop.trigger(); });
//! let summary = follower.run(&mut NoHook).await?;
//! println!("{} changes, lag p99 {:?} ms", summary.changes, summary.lag_p99_ms);
//! # Ok(()) }
//! ```

mod capture;
mod engine;
mod error;
mod follower;
mod lag;
mod source;
mod target;
mod watch;

pub use capture::{
    install, uninstall, verify, written_after_cutover, CaptureSpec, CapturedTable, Follow,
    InstallOptions, LOG_TABLE, META_TABLE, OBJECT_PREFIX,
};
pub use engine::{
    drop_bookkeeping, pg_writes_since_cutover, Applier, BatchReport, Cutover, DrainReport, Fence,
    FullReport, SyncOptions, TableWrites,
};
pub use error::SyncError;
pub use follower::{
    Follower, FollowerHandle, FollowerOptions, FollowerSummary, NoHook, PassHook, PassInfo, Stop,
};
pub use lag::{LagPoint, LagSeries, LagStats, SyncStatus};
pub use source::Reject;
pub use target::{RetryPolicy, SyncTarget, REJECTS_TABLE, STATE_TABLE, TABLES_TABLE};
pub use watch::{StoreChanges, StoreWatcher};
