//! PostgreSQL identifiers as the transfer uses them: quoting, and names that fit 63 bytes
//! without ever colliding (both live in `ferry_core::sql`, shared with the validation, which
//! pairs renamed names back without a plan).
//!
//! SQLite names are kept exactly (mixed case, spaces, reserved words) and always quoted.

pub use ferry_core::sql::{
    prefix, qualified, quote_ident as quote, quote_ident as quote_sqlite, quote_literal as literal,
    NameAllocator, MAX_IDENTIFIER_BYTES,
};
