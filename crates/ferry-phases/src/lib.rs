//! The phase runner: phases 1–5 with their gates and rollbacks, and the phase ledger.
//!
//! A phase runs only when the gate of the phase before it passed and what that gate vouched
//! for still holds (backups still verify, the schema is still at the same head, …);
//! `--force` with a reason overrides and is recorded. Every run, gate verdict, evidence and
//! rollback goes to the phase ledger (a JSON file under `state_dir/ledger/`, mirrored into
//! the SQLite table `ferry_phase_runs`), so `status` can always say where a migration stands.
//! This is the only crate that knows every phase.
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
mod foundation;
pub mod gate;
mod import;
pub mod ledger;
mod load;
pub mod phase;
pub mod runner;

pub use error::PhaseError;
pub use gate::{Check, GateReport};
pub use phase::Phase;
pub use runner::{RollbackOptions, RunOptions, RunResult, Runner, StatusReport};
