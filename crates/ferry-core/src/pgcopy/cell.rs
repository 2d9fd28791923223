//! One SQLite value as read, borrowed from the row: the storage class and its payload.

/// A SQLite value (`typeof()` and its bytes), independent of the driver that read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// TEXT as stored: usually UTF-8, but SQLite does not enforce it.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// An owned SQLite value, for keys kept between reads.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedCell {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Cell<'_> {
    pub fn to_owned_cell(self) -> OwnedCell {
        match self {
            Cell::Null => OwnedCell::Null,
            Cell::Integer(i) => OwnedCell::Integer(i),
            Cell::Real(f) => OwnedCell::Real(f),
            Cell::Text(t) => OwnedCell::Text(t.to_vec()),
            Cell::Blob(b) => OwnedCell::Blob(b.to_vec()),
        }
    }

    /// The value as a person reads it in a key: `3`, `'abc'`, `x'00ff'`, `NULL`.
    pub fn display(&self) -> String {
        match self {
            Cell::Null => "NULL".into(),
            Cell::Integer(i) => i.to_string(),
            Cell::Real(f) => format!("{f:?}"),
            Cell::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => format!("'{}'", s.replace('\'', "''")),
                Err(_) => format!("x'{}'", hex::encode(t)),
            },
            Cell::Blob(b) => format!("x'{}'", hex::encode(b)),
        }
    }
}
