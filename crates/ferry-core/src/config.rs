//! Configuration: built-in defaults < `ferry.toml` < `FERRY_*` environment < command-line
//! flags, validated into a typed [`Config`] with no optional holes.
//!
//! Every error names the key once and the layer that set it ("config key `transfer.workers`
//! from environment variable FERRY_TRANSFER_WORKERS: found string \"many\", expected a whole
//! number of 0 or more"). Unknown keys in a config file are errors, so a typo never silently
//! falls back to a default; the error says which key was most likely meant, or under which
//! section a key written in the wrong place belongs.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::env_vars;
use crate::redact::SecretUrl;

/// The validated configuration every ferry command works from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub sqlite: SqliteConfig,
    pub postgres: PostgresConfig,
    /// Backups, reports, quarantine, snapshots and the phase ledger's JSON mirror.
    pub state_dir: PathBuf,
    pub import: ImportConfig,
    pub transfer: TransferConfig,
    pub timestamps: TimestampConfig,
    pub sync: SyncConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The root of the JSON/Markdown file store being migrated.
    pub store_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The SQLite file phase 1 creates (or baselines) and phase 2 fills.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user[:password]@host:port/database`. Shown everywhere with the password
    /// masked.
    pub url: SecretUrl,
    /// The schema ferry owns in that database.
    pub schema: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// `builtin` for the default profile, or a path to a profile TOML file.
    pub profile: String,
    /// Documents larger than this go to the content-addressed snapshot store on disk.
    pub snapshot_threshold_bytes: u64,
    /// Files larger than this are quarantined instead of parsed.
    pub max_file_bytes: u64,
    /// Parser threads.
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Parallel copy workers.
    pub workers: usize,
    /// Rows per checkpointed chunk.
    pub chunk_rows: u64,
    /// What happens to TEXT that PostgreSQL `text` cannot hold (invalid UTF-8, NUL).
    pub invalid_text: InvalidTextPolicy,
    /// How a column mixing INTEGER and TEXT is stored when that is lossless.
    pub mixed: MixedPolicy,
}

/// Where a column that mixes INTEGER and TEXT values goes (when no TEXT value spells an
/// integer, which SQLite's INTEGER affinity guarantees).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixedPolicy {
    /// `text`: INTEGER as its decimal, TEXT as it is; the type people join on.
    #[default]
    Text,
    /// The `sqlite_value` domain over `jsonb`: one scalar per value, class kept in the
    /// JSON type.
    Jsonb,
}

/// Phase 4: following SQLite's change log into PostgreSQL (`ferry-sync`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Pause between two passes of the follower, in milliseconds.
    pub interval_ms: u64,
    /// Change-log entries applied per batch (one PostgreSQL transaction per worker).
    pub batch_changes: u64,
    /// Parallel apply connections; the tables of a batch are shared among them.
    pub workers: usize,
    /// Largest table followed by whole-table digest (tables without a primary key and
    /// virtual tables, which capture triggers cannot follow safely); a larger one is
    /// refused at install.
    pub digest_max_rows: u64,
    /// Seconds between two full rescans of the file store, which catch what the file
    /// watcher missed.
    pub rescan_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidTextPolicy {
    /// The row goes to the reject report and the gate fails until acknowledged.
    Reject,
    /// The column becomes `bytea` and keeps the bytes.
    Bytea,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// The offset a timestamp written without one is read in: `UTC` or `+HH:MM`/`-HH:MM`.
    pub naive: String,
}

impl TimestampConfig {
    /// The configured offset for naive timestamps, in seconds east of UTC.
    pub fn naive_offset_seconds(&self) -> i32 {
        parse_offset(&self.naive).unwrap_or(0)
    }
}

/// A configuration error that names the key and where its value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}`{origin}: {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
}

/// How to build a [`Config`]: which file, and which command-line flags override it.
#[derive(Debug, Default, Clone)]
pub struct ConfigLoader {
    file: Option<PathBuf>,
    flags: Vec<(String, Value)>,
}

impl ConfigLoader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads this TOML file (it must exist). Without it, `FERRY_CONFIG` names one, else
    /// `ferry.toml` in the current directory is read when present.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Sets a key from a command-line flag, the layer with the last word.
    pub fn flag(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.flags.push((key.to_owned(), value.into()));
        self
    }

    /// Layers defaults, file, environment and flags, and validates the result.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let figment = self.figment()?;
        let config: Config = figment.extract().map_err(|e| from_figment(&figment, e))?;
        config.validate(&figment)?;
        Ok(config)
    }

    fn figment(&self) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Defaults);
        let file = match &self.file {
            Some(path) => Some(path.clone()),
            None => std::env::var_os(env_vars::FERRY_CONFIG).map(PathBuf::from),
        };
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::MissingFile { path });
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new("ferry.toml").is_file() => {
                figment = figment.merge(Toml::file_exact("ferry.toml"));
            }
            None => {}
        }
        let vars: Vec<&'static str> = env_vars::CONFIG_VARS.iter().map(|(v, _)| *v).collect();
        figment = figment.merge(
            Env::raw()
                .only(&vars)
                .map(|name| {
                    let key = env_vars::CONFIG_VARS
                        .iter()
                        .find(|(v, _)| name.as_str().eq_ignore_ascii_case(v))
                        .map_or("", |(_, k)| k);
                    key.to_owned().into()
                })
                .lowercase(false)
                .split("."),
        );
        Ok(figment.merge(Flags(self.flags.clone())))
    }
}

impl Config {
    /// Loads with no file and no flags: defaults, `ferry.toml` if present, environment.
    pub fn load_default() -> Result<Config, ConfigError> {
        ConfigLoader::new().load()
    }

    /// A stable digest of the effective configuration (password masked), recorded with
    /// every phase run so a gate can tell when the configuration changed under it.
    pub fn digest(&self) -> String {
        let json = serde_json::to_string(self).expect("config serialises");
        hex::encode(Sha256::digest(json.as_bytes()))
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            origin: origin(figment, key),
            message,
        };
        if let Err(why) = check_postgres_url(self.postgres.url.expose()) {
            return Err(invalid("postgres.url", why));
        }
        if let Err(why) = check_identifier(&self.postgres.schema) {
            return Err(invalid("postgres.schema", why));
        }
        for (key, path) in [
            ("source.store_dir", &self.source.store_dir),
            ("sqlite.path", &self.sqlite.path),
            ("state_dir", &self.state_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if self.import.workers == 0 {
            return Err(invalid("import.workers", "must be at least 1".into()));
        }
        if self.transfer.workers == 0 {
            return Err(invalid("transfer.workers", "must be at least 1".into()));
        }
        if self.transfer.chunk_rows == 0 {
            return Err(invalid("transfer.chunk_rows", "must be at least 1".into()));
        }
        for (key, value) in [
            ("sync.interval_ms", self.sync.interval_ms),
            ("sync.batch_changes", self.sync.batch_changes),
            ("sync.workers", self.sync.workers as u64),
            ("sync.rescan_secs", self.sync.rescan_secs),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.import.max_file_bytes == 0 {
            return Err(invalid(
                "import.max_file_bytes",
                "must be at least 1".into(),
            ));
        }
        if self.import.profile.is_empty() {
            return Err(invalid(
                "import.profile",
                "must be `builtin` or the path of a profile file".into(),
            ));
        }
        if parse_offset(&self.timestamps.naive).is_none() {
            return Err(invalid(
                "timestamps.naive",
                format!(
                    "`{}` is not `UTC` or an offset like `+02:00`",
                    self.timestamps.naive
                ),
            ));
        }
        Ok(())
    }
}

/// Checks that `url` names a PostgreSQL server (`postgres://` or `postgresql://`): ferry
/// writes into PostgreSQL only, and a `mysql://` URL handed to the PostgreSQL driver would
/// not fail but connect wherever its host and port lead. The message shows the URL with its
/// password masked.
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    let shown = crate::redact::redact(url);
    let scheme = url.split_once("://").map(|(s, _)| s);
    Err(match scheme {
        Some(scheme) if !scheme.is_empty() => format!(
            "`{shown}` is a {scheme}:// URL, but ferry writes into PostgreSQL only (expected postgres://user@host:port/database)"
        ),
        _ => format!(
            "`{shown}` is not a PostgreSQL URL (expected postgres://user@host:port/database)"
        ),
    })
}

/// Checks a PostgreSQL schema name ferry will create and quote: 1–63 bytes, no NUL.
pub fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "`{name}` is {} bytes long; PostgreSQL identifiers hold at most 63",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err("must not contain a NUL byte".into());
    }
    Ok(())
}

fn parse_offset(text: &str) -> Option<i32> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 18 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(meta) => describe(meta, key),
        None => String::new(),
    }
}

/// Where a key's value came from: the file, the environment variable, or the layer.
fn describe(meta: &Metadata, key: &str) -> String {
    match &meta.source {
        Some(figment::Source::File(path)) => format!(" from {}", path.display()),
        _ if meta.name.contains("environment") => {
            match env_vars::CONFIG_VARS.iter().find(|(_, k)| *k == key) {
                Some((var, _)) => format!(" from environment variable {var}"),
                None => format!(" from {}", meta.name),
            }
        }
        _ => format!(" from {}", meta.name),
    }
}

fn from_figment(figment: &Figment, err: figment::Error) -> ConfigError {
    let mut path = err.path.clone();
    // Figment's path for an unknown key sometimes ends with the key and sometimes stops at
    // its section; the key is named once either way.
    if let figment::error::Kind::UnknownField(field, _) = &err.kind {
        if path.last() != Some(field) {
            path.push(field.clone());
        }
    }
    let key = path.join(".");
    let origin = match &err.metadata {
        Some(meta) => describe(meta, &key),
        None => origin(figment, &key),
    };
    // Figment's own message repeats the key and source; keep only the kind.
    let message = match &err.kind {
        figment::error::Kind::UnknownField(..) => unknown_key_message(&path),
        figment::error::Kind::InvalidType(actual, expected) => {
            format!("found {actual}, expected {}", in_words(expected))
        }
        kind => kind.to_string(),
    };
    let key = if key.is_empty() {
        "(top level)".into()
    } else {
        key
    };
    ConfigError::Invalid {
        key,
        origin,
        message: crate::redact::redact(&message).into_owned(),
    }
}

/// What serde expected, in words rather than Rust type names.
fn in_words(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number of 0 or more".into(),
        "i64" | "i32" | "i16" | "i8" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "bool" | "a boolean" => "true or false".into(),
        "path" | "a string" | "string" => "text in quotes".into(),
        other => other.to_owned(),
    }
}

/// Why an unknown key is unknown, with what the person most likely meant: a key of the same
/// section spelled almost alike, or the section a key written in the wrong place belongs to.
fn unknown_key_message(path: &[String]) -> String {
    let known = known_keys();
    let Some((name, section)) = path.split_last() else {
        return "unknown key (ferry.example.toml lists every key)".into();
    };
    let prefix: String = section.iter().map(|s| format!("{s}.")).collect();
    // Keys and sections one level below `section`: what could have been meant here.
    let mut siblings: Vec<String> = known
        .iter()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split('.').next().unwrap_or(rest).to_owned())
        .collect();
    siblings.sort();
    siblings.dedup();
    // The same key under another section: written at the top level, or in the wrong one.
    let elsewhere: Vec<&String> = known
        .iter()
        .filter(|k| k.rsplit('.').next() == Some(name.as_str()) && k.contains('.'))
        .collect();
    if !elsewhere.is_empty() {
        let sections: Vec<String> = elsewhere
            .iter()
            .map(|k| format!("`[{}]`", k.rsplit_once('.').map_or("", |(s, _)| s)))
            .collect();
        let here = if prefix.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("under `[{}]`", prefix.trim_end_matches('.'))
        };
        return format!(
            "unknown {here}; `{name}` belongs under {}",
            sections.join(" or ")
        );
    }
    if let Some(close) = closest(name, &siblings) {
        return format!("unknown key; did you mean `{prefix}{close}`?");
    }
    "unknown key (ferry.example.toml lists every key)".into()
}

/// The candidate nearest to `name` in edit distance, when it is near enough to be a typo
/// (at most a third of the name's length, and at least one edit allowed).
fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance over characters, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Every configuration key, dotted (`source.store_dir`), from the built-in defaults, which
/// set every key.
fn known_keys() -> Vec<String> {
    fn walk(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &format!("{prefix}{k}."), out);
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_owned()),
        }
    }
    let mut out = Vec::new();
    walk(&default_values(), "", &mut out);
    out
}

/// The built-in defaults, the bottom layer.
struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named("ferry's built-in defaults")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(default_values()).data()
    }
}

/// Every key with its built-in value.
fn default_values() -> serde_json::Value {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    serde_json::json!({
            "source": { "store_dir": "store" },
            "sqlite": { "path": ".ferry/ferry.sqlite3" },
            "postgres": { "url": env_vars::DEFAULT_POSTGRES_URL, "schema": "ferry" },
            "state_dir": ".ferry",
            "import": {
                "profile": "builtin",
                "snapshot_threshold_bytes": 1_048_576,
                "max_file_bytes": 67_108_864,
                "workers": workers,
            },
            "transfer": {
                "workers": workers,
                "chunk_rows": 50_000,
                "invalid_text": "reject",
                "mixed": "text",
            },
            "timestamps": { "naive": "UTC" },
            "sync": {
                "interval_ms": 500,
                "batch_changes": 5_000,
                "workers": 2,
                "digest_max_rows": 100_000,
                "rescan_secs": 30,
            },
    })
}

/// Command-line flags, the top layer.
struct Flags(Vec<(String, Value)>);

impl Provider for Flags {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flag")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut figment = Figment::new();
        for (key, value) in &self.0 {
            figment = figment.merge(Serialized::default(key, value));
        }
        figment.data()
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail's closures return figment::Error, which is large"
)]
mod tests {
    use super::*;

    #[test]
    fn layers_in_order_and_names_the_source_of_a_bad_value() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ferry.toml",
                "state_dir = \"from-file\"\n[postgres]\nschema = \"file_schema\"\n[transfer]\nworkers = 3\n",
            )?;
            let config = ConfigLoader::new().load().unwrap();
            assert_eq!(config.state_dir, PathBuf::from("from-file"));
            assert_eq!(config.postgres.schema, "file_schema");
            assert_eq!(config.transfer.workers, 3);
            assert_eq!(config.sqlite.path, PathBuf::from(".ferry/ferry.sqlite3"));

            jail.set_env("FERRY_POSTGRES_SCHEMA", "env_schema");
            jail.set_env("FERRY_TRANSFER_WORKERS", "5");
            let config = ConfigLoader::new().load().unwrap();
            assert_eq!(config.postgres.schema, "env_schema");
            assert_eq!(config.transfer.workers, 5);

            let config = ConfigLoader::new()
                .flag("postgres.schema", "flag_schema")
                .load()
                .unwrap();
            assert_eq!(config.postgres.schema, "flag_schema");

            jail.set_env("FERRY_SYNC_INTERVAL_MS", "250");
            jail.set_env("FERRY_SYNC_WORKERS", "3");
            let config = ConfigLoader::new()
                .flag("sync.batch_changes", 77)
                .load()
                .unwrap();
            assert_eq!(config.sync.interval_ms, 250);
            assert_eq!(config.sync.workers, 3);
            assert_eq!(config.sync.batch_changes, 77);
            jail.set_env("FERRY_SYNC_WORKERS", "0");
            let err = ConfigLoader::new().load().unwrap_err().to_string();
            assert!(err.contains("`sync.workers`"), "{err}");
            assert!(err.contains("FERRY_SYNC_WORKERS"), "{err}");
            jail.set_env("FERRY_SYNC_WORKERS", "2");

            jail.set_env("FERRY_TRANSFER_WORKERS", "many");
            let err = ConfigLoader::new().load().unwrap_err().to_string();
            assert!(err.contains("`transfer.workers`"), "{err}");
            assert!(
                err.contains("FERRY_TRANSFER_WORKERS") || err.contains("environment"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferry.toml", "[sqlite]\npaht = \"x\"\n")?;
            let err = ConfigLoader::new().load().unwrap_err().to_string();
            assert!(err.contains("sqlite.paht"), "{err}");
            assert!(err.contains("ferry.toml"), "{err}");

            jail.create_file("ferry.toml", "[postgres]\nurl = \"mysql://root:pw@x/db\"\n")?;
            let err = ConfigLoader::new().load().unwrap_err().to_string();
            assert!(err.contains("`postgres.url`"), "{err}");
            assert!(err.contains("ferry.toml"), "{err}");
            assert!(!err.contains(":pw@"), "password leaked: {err}");

            jail.create_file("ferry.toml", "[timestamps]\nnaive = \"CET\"\n")?;
            let err = ConfigLoader::new().load().unwrap_err().to_string();
            assert!(err.contains("`timestamps.naive`"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn example_file_sets_every_key_and_loads() {
        // The shipped example, uncommented, must be a complete and valid configuration.
        let example = include_str!("../../../ferry.example.toml");
        let uncommented: String = example
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with('['))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferry.toml", &uncommented)?;
            let config = ConfigLoader::new().load().unwrap();
            let from_file: toml_keys::Keys = toml_keys::keys(&uncommented);
            let all = toml_keys::keys_of(&serde_json::to_value(&config).unwrap());
            assert_eq!(from_file, all, "ferry.example.toml must list every key");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named_once_with_what_was_meant() {
        figment::Jail::expect_with(|jail| {
            let err = |toml: &str| {
                jail.create_file("ferry.toml", toml).unwrap();
                ConfigLoader::new().load().unwrap_err().to_string()
            };
            assert_eq!(
                err("[source]\nstore_dri = \"x\"\n"),
                "config key `source.store_dri` from ferry.toml: unknown key; did you mean `source.store_dir`?"
            );
            assert_eq!(
                err("store_dir = \"x\"\n"),
                "config key `store_dir` from ferry.toml: unknown at the top level; `store_dir` belongs under `[source]`"
            );
            assert_eq!(
                err("[trasnfer]\nworkers = 3\n"),
                "config key `trasnfer` from ferry.toml: unknown key; did you mean `transfer`?"
            );
            assert_eq!(
                err("[import]\nchunk_rows = 3\n"),
                "config key `import.chunk_rows` from ferry.toml: unknown under `[import]`; `chunk_rows` belongs under `[transfer]`"
            );
            assert_eq!(
                err("workers = 3\n"),
                "config key `workers` from ferry.toml: unknown at the top level; `workers` belongs under `[import]` or `[sync]` or `[transfer]`"
            );
            assert_eq!(
                err("[sqlite]\ncolour = 3\n"),
                "config key `sqlite.colour` from ferry.toml: unknown key (ferry.example.toml lists every key)"
            );
            Ok(())
        });
    }

    #[test]
    fn only_postgres_urls_are_accepted() {
        assert!(check_postgres_url("postgres://u@h:5432/db").is_ok());
        assert!(check_postgres_url("postgresql://u@h/db").is_ok());
        let why = check_postgres_url("mysql://root:hunter2@h/db").unwrap_err();
        assert_eq!(
            why,
            "`mysql://root:***@h/db` is a mysql:// URL, but ferry writes into PostgreSQL only (expected postgres://user@host:port/database)"
        );
        let why = check_postgres_url("localhost:5432").unwrap_err();
        assert!(why.contains("is not a PostgreSQL URL"), "{why}");
    }

    #[test]
    fn edit_distance_counts_a_swap_once() {
        assert_eq!(edit_distance("store_dri", "store_dir"), 1);
        assert_eq!(edit_distance("trasnfer", "transfer"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("UTC"), Some(0));
        assert_eq!(parse_offset("+02:00"), Some(7200));
        assert_eq!(parse_offset("-05:30"), Some(-19800));
        assert_eq!(parse_offset("+2"), None);
    }

    mod toml_keys {
        pub type Keys = std::collections::BTreeSet<String>;

        pub fn keys(toml: &str) -> Keys {
            let mut section = String::new();
            let mut out = Keys::new();
            for line in toml.lines().map(str::trim) {
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = format!("{name}.");
                } else if let Some((key, _)) = line.split_once(" = ") {
                    if !line.starts_with('#') {
                        out.insert(format!("{section}{}", key.trim()));
                    }
                }
            }
            out
        }

        pub fn keys_of(value: &serde_json::Value) -> Keys {
            let mut out = Keys::new();
            walk(value, "", &mut out);
            out
        }

        fn walk(value: &serde_json::Value, prefix: &str, out: &mut Keys) {
            match value {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        walk(v, &format!("{prefix}{k}."), out);
                    }
                }
                _ => {
                    out.insert(prefix.trim_end_matches('.').to_owned());
                }
            }
        }
    }
}
