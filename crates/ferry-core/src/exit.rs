//! The process exit codes every ferry command uses.
//!
//! 0: the work ran and found nothing to report. 1: the work ran to the end but found
//! differences, rejects, quarantined files or drift. 2: an error stopped the work.

/// The work ran and everything matched.
pub const SUCCESS: u8 = 0;
/// The work ran to the end but found differences, rejects, quarantined files or drift.
pub const FINDINGS: u8 = 1;
/// An error stopped the work.
pub const ERROR: u8 = 2;
