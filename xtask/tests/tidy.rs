//! The tidy test, as in rust-analyzer: rules about the code base itself, checked on every
//! crate the workspace's `Cargo.toml` lists, so a crate added later is checked too.
//!
//! - Every Rust file opens with a `//!` line saying what it is.
//! - Dependencies flow one way: a library crate depends (normally) on the foundation crates
//!   only, never on a phase crate or another library; only the runner and the command line
//!   may depend on everything. Dev-dependencies are free.
//! - `docs/architecture.md` names every crate and every binary.
//! - The derived-type table of `docs/type-mapping.md` says what the code does: each row is
//!   checked against a plan ferry-transfer makes for a SQLite file holding that row's case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates everything may depend on: the shared vocabulary and the embedded schema files.
const FOUNDATION: &[&str] = &["ferry-core", "ferry-migrations"];
/// Crates that may depend on every other: the runner, the command line, and the sign-off
/// checks (which are the validation, the data API and the migrator, composed).
const ORCHESTRATORS: &[&str] = &["ferry-phases", "xtask", "ferry-signoff"];

/// The workspace root (this crate is `<root>/xtask`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

/// A workspace member: its folder (relative to the root) and its manifest.
struct Member {
    dir: String,
    manifest: toml::Table,
}

impl Member {
    fn name(&self) -> &str {
        self.manifest["package"]["name"]
            .as_str()
            .expect("a package name")
    }

    /// Names of the normal dependencies (`[dependencies]` and `[target.*.dependencies]`).
    fn normal_dependencies(&self) -> BTreeSet<String> {
        let mut tables = vec![self.manifest.get("dependencies")];
        if let Some(targets) = self.manifest.get("target").and_then(|t| t.as_table()) {
            tables.extend(targets.values().map(|t| t.get("dependencies")));
        }
        tables
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_table())
            .flat_map(|t| {
                t.iter().map(|(key, spec)| {
                    // `alias = { package = "real-name", … }` depends on `real-name`.
                    spec.get("package")
                        .and_then(|p| p.as_str())
                        .unwrap_or(key)
                        .to_owned()
                })
            })
            .collect()
    }

    /// The binaries it builds: `src/main.rs` (named after the package), `src/bin/*.rs`,
    /// and `[[bin]]` entries.
    fn binaries(&self, root: &Path) -> BTreeSet<String> {
        let dir = root.join(&self.dir);
        let mut out = BTreeSet::new();
        if dir.join("src/main.rs").is_file() {
            out.insert(self.name().to_owned());
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "rs") {
                    out.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
                } else if path.join("main.rs").is_file() {
                    out.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        for bin in self
            .manifest
            .get("bin")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(name) = bin.get("name").and_then(|n| n.as_str()) {
                out.insert(name.to_owned());
            }
        }
        out
    }
}

/// Every member the root manifest lists (`crates/*` globs expanded).
fn members() -> Vec<Member> {
    let root = root();
    let workspace = read_toml(&root.join("Cargo.toml"));
    let patterns = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace.members");
    let mut dirs = Vec::new();
    for p in patterns {
        let p = p.as_str().expect("a member path");
        match p.strip_suffix("/*") {
            Some(parent) => {
                let mut found: Vec<String> = std::fs::read_dir(root.join(parent))
                    .unwrap()
                    .flatten()
                    .filter(|e| e.path().join("Cargo.toml").is_file())
                    .map(|e| format!("{parent}/{}", e.file_name().to_string_lossy()))
                    .collect();
                found.sort();
                dirs.extend(found);
            }
            None => dirs.push(p.to_owned()),
        }
    }
    assert!(dirs.len() >= 8, "the workspace lists its crates: {dirs:?}");
    dirs.into_iter()
        .map(|dir| Member {
            manifest: read_toml(&root.join(&dir).join("Cargo.toml")),
            dir,
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let root = root();
    let mut files = Vec::new();
    for m in members() {
        rust_files(&root.join(&m.dir), &mut files);
    }
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` line saying what they are:\n{}",
        missing.join("\n")
    );
}

/// The rule as a function of the manifests, so the test of the rule can feed it others.
fn dependency_violations(members: &[(String, BTreeSet<String>)]) -> Vec<String> {
    let names: BTreeSet<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = Vec::new();
    for (name, deps) in members {
        if ORCHESTRATORS.contains(&name.as_str()) {
            continue;
        }
        for dep in deps {
            if !names.contains(dep.as_str()) || FOUNDATION.contains(&dep.as_str()) {
                continue;
            }
            let foundation = FOUNDATION.contains(&name.as_str());
            out.push(if foundation {
                format!("{name} is a foundation crate and depends on {dep}; it may depend on no other ferry crate")
            } else {
                format!("{name} depends on {dep}: a library crate may depend only on {} (what two crates need belongs in ferry-core; a dev-dependency for a test is fine)", FOUNDATION.join(" and "))
            });
        }
    }
    out
}

#[test]
fn dependencies_flow_one_way() {
    let members: Vec<(String, BTreeSet<String>)> = members()
        .iter()
        .map(|m| (m.name().to_owned(), m.normal_dependencies()))
        .collect();
    let violations = dependency_violations(&members);
    assert!(violations.is_empty(), "{}", violations.join("\n"));

    // The rule itself catches what it is for: a new library leaning on a phase crate.
    let mut with_new = members.clone();
    with_new.push((
        "ferry-sync".into(),
        ["ferry-core".to_owned(), "ferry-transfer".to_owned()].into(),
    ));
    with_new.push(("ferry-core".into(), ["ferry-schema".to_owned()].into()));
    let caught = dependency_violations(&with_new);
    assert_eq!(caught.len(), 2, "{caught:?}");
    assert!(caught[0].contains("ferry-core") || caught[1].contains("ferry-core"));
}

#[test]
fn the_architecture_doc_names_every_crate_and_binary() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let mut missing = Vec::new();
    for m in members() {
        let mut names: BTreeSet<String> = m.binaries(&root);
        names.insert(m.name().to_owned());
        for name in names {
            if !doc.contains(&format!("`{name}`")) && !doc.contains(&format!("`{}`", m.dir)) {
                missing.push(format!("{name} ({})", m.dir));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name these crates or binaries (in backticks):\n{}",
        missing.join("\n")
    );
}

/// A column that exercises one row of the derived-type table: its declared type and the
/// SQL literals it holds.
struct Case {
    column: &'static str,
    declared: &'static str,
    values: &'static [&'static str],
}

/// The cases of each row of the table, by the row's left cell exactly as the docs write it.
/// A row the docs add needs cases here; a row they drop must leave here too.
fn cases() -> BTreeMap<&'static str, Vec<Case>> {
    let c = |column, declared, values| Case {
        column,
        declared,
        values,
    };
    BTreeMap::from([
        ("only INTEGER; declared BOOL*, all 0/1", vec![c("flag", "BOOLEAN", &["0", "1"])]),
        (
            "INTEGER and/or REAL; declared NUMERIC/DECIMAL/MONEY, all finite",
            vec![c("amount", "NUMERIC(10,2)", &["1", "2.5"])],
        ),
        ("only INTEGER", vec![c("n", "INTEGER", &["1", "9007199254740993"])]),
        ("only REAL", vec![c("x", "REAL", &["0.1", "1e300"])]),
        (
            "only TEXT; declared DATE/TIME, all ISO-8601, nothing beyond microseconds",
            vec![
                c("day", "DATE", &["'2025-08-11'"]),
                c("at_local", "TIMESTAMP", &["'2025-08-11 15:41:04.776422'"]),
                c("at", "DATETIME", &["'2025-08-11T15:41:04Z'", "'2025-08-11 10:41:04-05:00'"]),
            ],
        ),
        (
            "only TEXT; declared JSON or `CHECK (json_valid(col))`, all JSON without duplicate keys or `\\u0000`",
            vec![c("doc", "JSON", &["'{\"a\": [1, 2]}'", "'[]'"])],
        ),
        (
            "only TEXT; declared UUID, all UUIDs",
            vec![c("id", "UUID", &["'0f8fad5b-d9cb-469f-a165-70867728950e'"])],
        ),
        ("only TEXT", vec![c("s", "TEXT", &["'plain'", "''"])]),
        ("only BLOB", vec![c("b", "BLOB", &["x'00ff'"])]),
        (
            "INTEGER and TEXT, and no TEXT spells an integer (`transfer.mixed = text`, the default)",
            vec![c("code", "INTEGER_OR_TEXT", &["4326", "'X1'"])],
        ),
        ("several storage classes", vec![c("mixed", "", &["1", "'one'", "1.5"])]),
        (
            "only NULL",
            vec![
                c("null_int", "INTEGER", &["NULL"]),
                c("null_real", "REAL", &["NULL"]),
                c("null_text", "TEXT", &["NULL"]),
                c("null_blob", "BLOB", &["NULL"]),
                c("null_numeric", "NUMERIC", &["NULL"]),
            ],
        ),
    ])
}

/// Rows checked elsewhere, with where.
const CHECKED_ELSEWHERE: &[(&str, &str)] = &[(
    "a full-text (FTS) virtual table",
    "FTS5 virtual tables need SQLite's FTS module at planning time; ferry-transfer's own tests cover them",
)];

/// The derived table of docs/type-mapping.md: left cell, and the types its right cell names.
fn documented_rows() -> Vec<(String, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(root().join("docs/type-mapping.md")).unwrap();
    let section = doc
        .split("## Derived schema")
        .nth(1)
        .expect("docs/type-mapping.md has a `## Derived schema` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() != 2 || cells[0] == "SQLite column holds" || cells[0].starts_with("---") {
            continue;
        }
        let types: BTreeSet<String> = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        rows.push((cells[0].to_owned(), types));
    }
    assert!(rows.len() >= 10, "found the table: {rows:?}");
    rows
}

#[tokio::test]
async fn the_documented_type_table_is_what_the_transfer_plans() {
    use sqlx::{ConnectOptions, Connection};

    let rows = documented_rows();
    let mut cases = cases();
    let mut problems = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("types.sqlite3");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let mut expected: Vec<(String, String, BTreeSet<String>)> = Vec::new();
    for (n, (row, types)) in rows.iter().enumerate() {
        if CHECKED_ELSEWHERE.iter().any(|(r, _)| r == row) {
            continue;
        }
        let Some(row_cases) = cases.remove(row.as_str()) else {
            problems.push(format!(
                "the row `{row}` has no case in this test: add one, so the row is checked against the code"
            ));
            continue;
        };
        for case in row_cases {
            // One table per case: a table's row count never mixes cases.
            let table = format!("row{n}_{}", case.column);
            sqlx::raw_sql(&format!(
                "CREATE TABLE {table} ({} {}); {}",
                case.column,
                case.declared,
                case.values
                    .iter()
                    .map(|v| format!("INSERT INTO {table} VALUES ({v});"))
                    .collect::<String>()
            ))
            .execute(&mut conn)
            .await
            .unwrap();
            expected.push((table, row.clone(), types.clone()));
        }
    }
    for row in cases.keys() {
        problems.push(format!(
            "this test has cases for `{row}`, a row docs/type-mapping.md no longer has"
        ));
    }
    conn.close().await.unwrap();

    let opts = ferry_transfer::TransferOptions {
        workers: 1,
        progress: false,
        ..Default::default()
    };
    let plan = ferry_transfer::plan_derived(&file, "tidy", &opts)
        .await
        .unwrap();
    for (table, row, types) in &expected {
        let planned = plan
            .table(table)
            .unwrap_or_else(|| panic!("the plan has table {table}"));
        let ty = planned.columns[0].target_type.sql();
        if !types.contains(ty) {
            problems.push(format!(
                "row `{row}`: the docs say {types:?}, the transfer plans `{ty}` for {table}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
