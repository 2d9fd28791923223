//! Migration files: `<version>_<name>.up.sql` and `<version>_<name>.down.sql`, read from a
//! directory at run time or from files embedded at build time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checksum;
use crate::error::SchemaError;

/// The first line that makes a migration run outside a transaction (for statements that
/// cannot run in one, such as `CREATE INDEX CONCURRENTLY` or `VACUUM`).
pub const NO_TRANSACTION_MARKER: &str = "-- ferry:no-transaction";

/// One versioned migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub up_file: String,
    pub up_sql: String,
    pub down_file: Option<String>,
    pub down_sql: Option<String>,
    /// Checksum of the normalised up file (see [`crate::checksum`]).
    pub checksum: String,
}

impl Migration {
    /// `0003_tasks`: the file stem shared by the up and down files.
    pub fn label(&self) -> String {
        self.up_file.trim_end_matches(".up.sql").to_owned()
    }

    /// Whether the up file opts out of the per-migration transaction.
    pub fn no_transaction(&self) -> bool {
        first_line_is_marker(&self.up_sql)
    }

    /// Whether the down file opts out of the per-migration transaction.
    pub fn down_no_transaction(&self) -> bool {
        self.down_sql.as_deref().is_some_and(first_line_is_marker)
    }
}

fn first_line_is_marker(sql: &str) -> bool {
    sql.trim_start_matches('\u{feff}')
        .lines()
        .next()
        .is_some_and(|l| l.trim() == NO_TRANSACTION_MARKER)
}

/// An ordered set of migrations with unique versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
    /// Where the files came from, for messages.
    pub origin: String,
}

impl MigrationSet {
    /// Reads every `*.sql` file of `dir` (other files are ignored, so a `snapshots/`
    /// folder or a README can live beside them).
    pub fn from_dir(dir: &Path) -> Result<Self, SchemaError> {
        let entries = std::fs::read_dir(dir).map_err(|e| SchemaError::Io {
            op: "list",
            path: dir.to_path_buf(),
            error: e,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SchemaError::Io {
                op: "list",
                path: dir.to_path_buf(),
                error: e,
            })?;
            let path = entry.path();
            if !path.is_file() || path.extension().is_none_or(|e| e != "sql") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| SchemaError::Io {
                op: "read",
                path: path.clone(),
                error: e,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, text));
        }
        Self::from_files(files, &dir.display().to_string())
    }

    /// Builds a set from `(file name, contents)` pairs, such as those embedded by
    /// `ferry-migrations`.
    pub fn from_embedded(files: &[(&str, &str)]) -> Result<Self, SchemaError> {
        let owned = files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        Self::from_files(owned, "embedded migrations")
    }

    fn from_files(files: Vec<(String, String)>, origin: &str) -> Result<Self, SchemaError> {
        let mut ups: BTreeMap<i64, (String, String, String)> = BTreeMap::new();
        let mut downs: BTreeMap<i64, (String, String, String)> = BTreeMap::new();
        for (file, text) in files {
            let parsed = parse_file_name(&file).map_err(|reason| SchemaError::BadFile {
                path: PathBuf::from(origin).join(&file),
                reason,
            })?;
            let map = if parsed.up { &mut ups } else { &mut downs };
            if let Some((other, _, _)) = map.get(&parsed.version) {
                return Err(SchemaError::DuplicateVersion {
                    version: parsed.version,
                    first: other.clone(),
                    second: file,
                });
            }
            map.insert(parsed.version, (file, parsed.name, text));
        }
        for (version, (file, name, _)) in &downs {
            match ups.get(version) {
                None => {
                    return Err(SchemaError::BadFile {
                        path: PathBuf::from(origin).join(file),
                        reason: format!("down migration without its up migration ({version:04}_{name}.up.sql is missing)"),
                    })
                }
                Some((_, up_name, _)) if up_name != name => {
                    return Err(SchemaError::BadFile {
                        path: PathBuf::from(origin).join(file),
                        reason: format!("its name differs from the up migration of version {version} (`{up_name}`)"),
                    })
                }
                Some(_) => {}
            }
        }
        let migrations = ups
            .into_iter()
            .map(|(version, (up_file, name, up_sql))| {
                let down = downs.remove(&version);
                Migration {
                    version,
                    checksum: checksum::checksum(&up_sql),
                    name,
                    up_file,
                    up_sql,
                    down_file: down.as_ref().map(|d| d.0.clone()),
                    down_sql: down.map(|d| d.2),
                }
            })
            .collect();
        Ok(Self {
            migrations,
            origin: origin.to_owned(),
        })
    }

    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    /// The highest version, 0 when there is none.
    pub fn head(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }
}

struct ParsedName {
    version: i64,
    name: String,
    up: bool,
}

fn parse_file_name(file: &str) -> Result<ParsedName, String> {
    let (stem, up) = if let Some(stem) = file.strip_suffix(".up.sql") {
        (stem, true)
    } else if let Some(stem) = file.strip_suffix(".down.sql") {
        (stem, false)
    } else {
        return Err(
            "a migration file is named <version>_<name>.up.sql or <version>_<name>.down.sql".into(),
        );
    };
    let (version, name) = stem
        .split_once('_')
        .ok_or_else(|| "expected <version>_<name>, e.g. 0003_tasks.up.sql".to_owned())?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("version `{version}` is not a positive integer"));
    }
    let version: i64 = version
        .parse()
        .map_err(|_| format!("version `{version}` is too large"))?;
    if version <= 0 {
        return Err("version must be a positive integer (0 means \"no migration applied\")".into());
    }
    validate_name(name)?;
    Ok(ParsedName {
        version,
        name: name.to_owned(),
        up,
    })
}

/// A migration name is lower-case ASCII letters, digits and underscores, starting with a
/// letter.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name `{name}` must be lower-case letters, digits and underscores, starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_in_version_order() {
        let set = MigrationSet::from_embedded(&[
            ("0002_b.up.sql", "SELECT 2;"),
            ("0001_a.up.sql", "-- ferry:no-transaction\nSELECT 1;"),
            ("0001_a.down.sql", "SELECT -1;"),
        ])
        .unwrap();
        let versions: Vec<i64> = set.migrations().iter().map(|m| m.version).collect();
        assert_eq!(versions, [1, 2]);
        assert!(set.get(1).unwrap().no_transaction());
        assert_eq!(
            set.get(1).unwrap().down_file.as_deref(),
            Some("0001_a.down.sql")
        );
        assert!(set.get(2).unwrap().down_sql.is_none());
        assert_eq!(set.head(), 2);
    }

    #[test]
    fn bad_files_are_named() {
        let err = MigrationSet::from_embedded(&[("01-init.up.sql", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("01-init.up.sql"), "{err}");
        let err = MigrationSet::from_embedded(&[("0001_Init.up.sql", "")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0001_Init.up.sql") && err.contains("lower-case"),
            "{err}"
        );
        let err = MigrationSet::from_embedded(&[("0000_zero.up.sql", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("positive"), "{err}");
        let err = MigrationSet::from_embedded(&[("0001_a.up.sql", ""), ("1_b.up.sql", "")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0001_a.up.sql") && err.contains("1_b.up.sql"),
            "{err}"
        );
        let err = MigrationSet::from_embedded(&[("0003_c.down.sql", "")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0003_c.down.sql") && err.contains("without its up"),
            "{err}"
        );
        let err = MigrationSet::from_embedded(&[("0003_c.sql", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("0003_c.sql"), "{err}");
    }
}
