//! Options of an import run, with the defaults of ferry's configuration.

use std::path::PathBuf;

use ferry_core::config::Config;
use sha2::{Digest, Sha256};

use crate::profile::Profile;

/// Bumped when a change to the import itself should re-import every file.
const IMPORT_LOGIC_VERSION: u32 = 2;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Quarantine (`quarantine/`) and snapshots (`snapshots/`) go here.
    pub state_dir: PathBuf,
    /// Documents larger than this go to the snapshot store (`import.snapshot_threshold_bytes`).
    pub snapshot_threshold_bytes: u64,
    /// Files larger than this are quarantined unread (`import.max_file_bytes`).
    pub max_file_bytes: u64,
    /// The offset naive timestamps are read in, seconds east of UTC (`timestamps.naive`).
    pub naive_offset_seconds: i32,
    /// Overrides the profile's `delete_disappeared`.
    pub delete_disappeared: Option<bool>,
    /// Parser threads; 0 means one per core.
    pub workers: usize,
    /// Draw a progress bar (on a terminal only).
    pub progress: bool,
}

impl ImportOptions {
    /// Defaults as in ferry's built-in configuration, with this state directory.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            snapshot_threshold_bytes: 1_048_576,
            max_file_bytes: 67_108_864,
            naive_offset_seconds: 0,
            delete_disappeared: None,
            workers: 0,
            progress: false,
        }
    }

    /// The options a ferry configuration sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            state_dir: config.state_dir.clone(),
            snapshot_threshold_bytes: config.import.snapshot_threshold_bytes,
            max_file_bytes: config.import.max_file_bytes,
            naive_offset_seconds: config.timestamps.naive_offset_seconds(),
            delete_disappeared: None,
            workers: config.import.workers,
            progress: false,
        }
    }

    pub(crate) fn workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// What a file's outcome depends on besides its bytes: a change re-imports every file.
    pub fn settings_digest(&self, profile: &Profile) -> String {
        let text = format!(
            "ferry-import/{IMPORT_LOGIC_VERSION}\nprofile={}\nsnapshot_threshold={}\nmax_file_bytes={}\nnaive_offset={}\n",
            profile.digest(),
            self.snapshot_threshold_bytes,
            self.max_file_bytes,
            self.naive_offset_seconds
        );
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_takes_every_import_setting() {
        let config = ferry_core::config::ConfigLoader::new()
            .flag("import.workers", 3)
            .flag("import.max_file_bytes", 1000)
            .flag("import.snapshot_threshold_bytes", 100)
            .flag("timestamps.naive", "+02:00")
            .flag("state_dir", "elsewhere")
            .load()
            .unwrap();
        let o = ImportOptions::from_config(&config);
        assert_eq!(o.workers, 3, "import.workers was once ignored");
        assert_eq!(o.workers(), 3);
        assert_eq!((o.max_file_bytes, o.snapshot_threshold_bytes), (1000, 100));
        assert_eq!(o.naive_offset_seconds, 7200);
        assert_eq!(o.state_dir, PathBuf::from("elsewhere"));
    }
}
