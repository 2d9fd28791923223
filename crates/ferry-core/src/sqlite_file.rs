//! What is at a path that should hold a SQLite database, told from the file system and the
//! file's first sixteen bytes alone.
//!
//! A command checks its SQLite argument with [`inspect`] before it opens anything, so bad
//! input gets one sentence naming the path — never a driver's message or the SQL it was
//! running — and a read-only command never creates a file where there was none. This reads
//! a file header; it opens no database connection.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The first sixteen bytes of every SQLite 3 database file.
pub const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What [`inspect`] found at a path that can be used as a SQLite database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing is there (and no dangling symlink either): SQLite would create the file.
    Missing,
    /// A 0-byte file, which SQLite treats as an empty database.
    Empty,
    /// A file that starts with SQLite's header.
    Database,
}

/// Why a path cannot be used as a SQLite database. Each message is one sentence naming the
/// path.
#[derive(Debug, thiserror::Error)]
pub enum SqliteFileError {
    #[error("SQLite file {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("{} is a symlink to `{}`, which does not exist", path.display(), target.display())]
    DanglingSymlink { path: PathBuf, target: PathBuf },
    #[error("{} is a symlink that cannot be followed: {error}", path.display())]
    SymlinkUnresolvable { path: PathBuf, error: io::Error },
    #[error("{} is a directory, not a SQLite file", path.display())]
    Directory { path: PathBuf },
    #[error("{} is not a regular file, so it cannot be a SQLite database", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} is not a SQLite database: it does not start with SQLite's file header", path.display())]
    NotSqlite { path: PathBuf },
    #[error("SQLite file {} cannot be read: {error}", path.display())]
    Unreadable { path: PathBuf, error: io::Error },
}

/// Looks at `path` without opening it as a database: missing, empty, or a SQLite file;
/// anything else (a directory, a symlink loop, a text file, an unreadable file) is an error
/// that names the path.
pub fn inspect(path: &Path) -> Result<Found, SqliteFileError> {
    let owned = || path.to_path_buf();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(error) => {
            // `metadata` follows links; `symlink_metadata` tells a link that leads nowhere
            // (or round in a circle) from a path where nothing is.
            let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            return match (link, error.kind()) {
                (false, io::ErrorKind::NotFound) => Ok(Found::Missing),
                (true, io::ErrorKind::NotFound) => Err(SqliteFileError::DanglingSymlink {
                    path: owned(),
                    target: fs::read_link(path).unwrap_or_default(),
                }),
                (true, _) => Err(SqliteFileError::SymlinkUnresolvable {
                    path: owned(),
                    error,
                }),
                (false, _) => Err(SqliteFileError::Unreadable {
                    path: owned(),
                    error,
                }),
            };
        }
    };
    if meta.is_dir() {
        return Err(SqliteFileError::Directory { path: owned() });
    }
    if !meta.is_file() {
        return Err(SqliteFileError::NotAFile { path: owned() });
    }
    if meta.len() == 0 {
        return Ok(Found::Empty);
    }
    let mut header = [0u8; 16];
    let read = fs::File::open(path).and_then(|mut f| {
        let mut filled = 0;
        while filled < header.len() {
            match f.read(&mut header[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    });
    match read {
        Ok(n) if n == header.len() && &header == HEADER => Ok(Found::Database),
        Ok(_) => Err(SqliteFileError::NotSqlite { path: owned() }),
        Err(error) => Err(SqliteFileError::Unreadable {
            path: owned(),
            error,
        }),
    }
}

/// Like [`inspect`], for a database that must already exist: a missing path is an error.
pub fn require(path: &Path) -> Result<Found, SqliteFileError> {
    match inspect(path)? {
        Found::Missing => Err(SqliteFileError::Missing {
            path: path.to_path_buf(),
        }),
        found => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_every_kind_of_path_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        assert_eq!(inspect(&p("none")).unwrap(), Found::Missing);
        assert!(matches!(
            require(&p("none")),
            Err(SqliteFileError::Missing { .. })
        ));
        fs::write(p("empty"), b"").unwrap();
        assert_eq!(inspect(&p("empty")).unwrap(), Found::Empty);
        let mut db = HEADER.to_vec();
        db.extend_from_slice(&[0; 84]);
        fs::write(p("db"), &db).unwrap();
        assert_eq!(inspect(&p("db")).unwrap(), Found::Database);
        fs::write(p("text"), b"{\"not\": \"sqlite\"}").unwrap();
        let err = inspect(&p("text")).unwrap_err().to_string();
        assert!(
            err.ends_with("is not a SQLite database: it does not start with SQLite's file header"),
            "{err}"
        );
        fs::write(p("short"), b"SQLite").unwrap();
        assert!(matches!(
            inspect(&p("short")),
            Err(SqliteFileError::NotSqlite { .. })
        ));
        fs::create_dir(p("folder")).unwrap();
        assert!(matches!(
            inspect(&p("folder")),
            Err(SqliteFileError::Directory { .. })
        ));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("loop", p("loop")).unwrap();
            let err = inspect(&p("loop")).unwrap_err();
            assert!(
                matches!(err, SqliteFileError::SymlinkUnresolvable { .. }),
                "a symlink loop is not a missing file: {err}"
            );
            std::os::unix::fs::symlink("nowhere", p("dangling")).unwrap();
            let err = inspect(&p("dangling")).unwrap_err().to_string();
            assert!(
                err.ends_with("is a symlink to `nowhere`, which does not exist"),
                "{err}"
            );
        }
    }
}
