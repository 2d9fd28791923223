//! Strict timestamp parsing, as every crate of ferry reads timestamps: the import's
//! grammar lives in `ferry_core::timestamp` (shared with the transfer, the validation and
//! the data API) and is re-exported here for the import's callers.

pub use ferry_core::timestamp::*;
