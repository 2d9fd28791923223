//! The phase runner: phases 1–5 with their gates and rollbacks, the phase ledger, and the
//! state-dir lock.
//!
//! A phase runs only when the gate of the phase before it passed and what that gate vouched
//! for still holds (backups still verify, the tables still have their digests, …);
//! `--force` with a reason overrides and is recorded. Every run, gate verdict, evidence and
//! rollback goes to the phase ledger (a JSON file under `state_dir/ledger/`, mirrored into
//! the SQLite table `ferry_phase_runs`), so `status` can always say where a migration
//! stands. This is the only crate that knows every phase.
//!
//! The runner survives being killed at any point and being started twice:
//! - one action at a time per state dir, under an OS file lock ([`lock::StateLock`]) that
//!   the kernel releases when its process dies; a second run waits, naming the holder, or
//!   refuses with [`lock::Wait::No`];
//! - a `started` ledger entry is written durably before any work and updated as the run
//!   creates things, so a killed run is found (`interrupted`, with what it left) by
//!   `status` and by the next run, which finishes it (a rerun) or undoes it (a rollback);
//! - what was true before a phase first ran (the SQLite file did not exist, the target
//!   schema's dump) is recorded once per attempt chain and kept across reruns;
//! - a rollback that does not verify leaves the phase "rollback incomplete" with what it did,
//!   and `status` re-checks passed gates rather than trusting the ledger.
//!
//! Each phase is a module with typed facts and evidence (`foundation`, `import`, `load`, `sync`,
//! `signoff`);
//! adding a phase is adding a module and one line in the runner's table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry_phases::{Phase, RunOptions, RunResult, Runner};
//! let config = ferry_core::config::Config::load_default()?;
//! let runner = Runner::new(config);
//! if let RunResult::Ran { report, .. } = runner.run(Phase::Foundation, &RunOptions::default()).await? {
//!     println!("{}", report.table());
//! }
//! println!("{}", runner.status().await?);
//! # Ok(()) }
//! ```

mod checks;
pub mod error;
mod export_back;
mod foundation;
pub mod gate;
mod housekeeping;
mod import;
pub mod ledger;
mod load;
pub mod lock;
mod module;
pub mod phase;
pub mod runner;
mod signoff;
pub mod status;
pub mod sync;

pub use error::PhaseError;
pub use gate::{Check, Findings, GateReport};
pub use lock::{StateLock, Wait};
pub use module::Depth;
pub use phase::Phase;
pub use runner::{ExportPlanReport, RollbackOptions, RunOptions, RunResult, Runner};
pub use status::StatusReport;
