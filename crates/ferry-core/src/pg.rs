//! The PostgreSQL side of a migration, as data: a server and the schema that holds the
//! tables. The transfer writes into a [`PgTarget`], the validation reads from one, and the
//! phases hand the same value to both. No connection is opened here.

use crate::redact::SecretUrl;

/// A PostgreSQL server URL (password masked wherever it is shown) and a schema in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub url: SecretUrl,
    /// Created when missing by a derived transfer; must exist for a managed one.
    pub schema: String,
}

impl PgTarget {
    /// ```
    /// let t = ferry_core::pg::PgTarget::new("postgres://u:secret@db/app", "ferry");
    /// assert_eq!(t.url.to_string(), "postgres://u:***@db/app");
    /// ```
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        PgTarget {
            url: SecretUrl::new(url),
            schema: schema.into(),
        }
    }
}
