//! Generators of realistic SQLite files for transfer tests, demos and the benchmark.
//!
//! - [`bench`]: an agent-system database of ~270,000 rows per unit of scale (text, JSON
//!   text, ISO and epoch timestamps, reals, blobs, NULLs, unicode, a mixed-type column,
//!   composite keys, indexes and foreign keys).
//! - [`hostile`]: every shape that breaks naive transfers (identifiers PostgreSQL needs
//!   quoted or shortened, mixed storage classes, invalid UTF-8 and NUL in TEXT, 100,000
//!   distinct REAL epochs, unknown type names, full-text tables, views, triggers…), with
//!   [`HostileFacts`] saying what a lossless transfer must reject.
//! - [`awkward_keys`]: small tables whose primary keys are hard to follow (for sync).
//! - [`agent_store`]: rows for ferry's own schema (`migrations/sqlite/0001`), including the
//!   awkward timestamps real stores hold.
//!
//! Everything is deterministic: the same call writes the same rows (except columns left to
//! defaults that read the clock or `random()`, which is the point of those defaults).

use std::path::Path;

use rusqlite::{params, Connection};

/// A small deterministic generator (SplitMix64): fixtures need variety, not cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.below(16) as usize] as char)
            .collect()
    }
}

const WORDS: &[&str] = &[
    "agent",
    "task",
    "review",
    "deploy",
    "Zürich",
    "naïve",
    "façade",
    "日本語",
    "données",
    "🚀 launch",
    "O'Brien",
    "quote\"d",
    "build",
    "merge",
    "résumé",
    "Ålesund",
    "тест",
    "λ-calculus",
    "cache",
    "index",
];
const ROLES: &[&str] = &[
    "planner",
    "coder",
    "reviewer",
    "tester",
    "ops",
    "researcher",
];
const KINDS: &[&str] = &[
    "tool_call",
    "message",
    "status",
    "error",
    "heartbeat",
    "handoff",
];
const TOOLS: &[&str] = &["Edit", "Read", "Bash", "Grep", "Write", "WebFetch"];

fn sentence(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| *rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An ISO-8601 timestamp around 2025 with microseconds and the given offset (`Z`, `+02:00`).
fn iso(rng: &mut Rng, offset: &str) -> String {
    let secs = 1_735_689_600 + rng.below(31_536_000) as i64;
    let micros = rng.below(1_000_000);
    let t = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .naive_utc();
    format!("{}.{micros:06}{offset}", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// What [`bench`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchSummary {
    /// `(table, rows)`.
    pub tables: Vec<(String, u64)>,
}

impl BenchSummary {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// The tables of the benchmark file, with their keys and indexes.
pub const BENCH_SCHEMA: &str = "
CREATE TABLE agents (
    agent_id      TEXT PRIMARY KEY NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT,
    capabilities  JSON,
    registered_at DATETIME NOT NULL,
    score         REAL,
    active        BOOLEAN NOT NULL DEFAULT 1
);
CREATE TABLE events (
    event_id    INTEGER PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (agent_id),
    kind        TEXT NOT NULL,
    payload     JSON,
    occurred_at TIMESTAMP NOT NULL,
    epoch       REAL NOT NULL,
    duration_ms INTEGER,
    note        TEXT,
    value
);
CREATE INDEX events_agent_id_idx ON events (agent_id);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE TABLE metrics (
    metric_id   INTEGER PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (agent_id),
    name        TEXT NOT NULL,
    value       REAL NOT NULL,
    recorded_at INTEGER NOT NULL,
    tags        TEXT
);
CREATE INDEX metrics_agent_recorded_idx ON metrics (agent_id, recorded_at);
CREATE TABLE documents (
    doc_id    INTEGER PRIMARY KEY,
    path      TEXT NOT NULL UNIQUE,
    body      TEXT NOT NULL,
    digest    BLOB NOT NULL,
    thumbnail BLOB,
    size      INTEGER NOT NULL
);
CREATE TABLE task_links (
    task_id    TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    weight     REAL,
    created_at DATETIME,
    PRIMARY KEY (task_id, depends_on)
);
";

/// Writes the benchmark database: ~270,000 rows per unit of `scale` (scale 10 ≈ 2.7M rows,
/// about 1 GB). The file must not exist.
pub fn bench(path: &Path, scale: u32) -> rusqlite::Result<BenchSummary> {
    let scale = u64::from(scale.max(1));
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA page_size = 8192;",
    )?;
    conn.execute_batch(BENCH_SCHEMA)?;
    let mut rng = Rng::new(0x5EED_0001);
    let n_agents = 200 * scale;
    let n_events = 150_000 * scale;
    let n_metrics = 80_000 * scale;
    let n_docs = 10_000 * scale;
    let n_links = 30_000 * scale;
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare("INSERT INTO agents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
        for i in 0..n_agents {
            let caps = format!(
                "{{\"tools\": [\"{}\", \"{}\"], \"max_tokens\": {}, \"model\": \"m-{}\"}}",
                rng.pick(TOOLS),
                rng.pick(TOOLS),
                1000 + rng.below(100_000),
                rng.below(9)
            );
            st.execute(params![
                format!("Agent-{i}"),
                sentence(&mut rng, 2),
                rng.pick(ROLES),
                if rng.chance(0.1) { None } else { Some(caps) },
                iso(&mut rng, "Z"),
                if rng.chance(0.2) {
                    None
                } else {
                    Some(rng.unit() * 100.0)
                },
                rng.below(2) as i64,
            ])?;
        }
        let mut st =
            tx.prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
        for i in 1..=n_events {
            let agent = format!("Agent-{}", rng.below(n_agents));
            let payload = format!(
                "{{\"tool\": \"{}\", \"args\": {{\"path\": \"src/{}.rs\", \"line\": {}}}, \"ok\": {}, \"tokens\": [{}, {}, {}], \"summary\": \"{}\"}}",
                rng.pick(TOOLS),
                rng.hex(8),
                rng.below(5000),
                rng.chance(0.9),
                rng.below(1000),
                rng.below(1000),
                rng.below(1000),
                sentence(&mut rng, 8).replace('"', "\\\"")
            );
            let offset = *rng.pick(&["Z", "+02:00", "-05:00", "+05:30"]);
            let epoch = 1_735_689_600.0 + rng.unit() * 31_536_000.0;
            let value: rusqlite::types::Value = match rng.below(4) {
                0 => rusqlite::types::Value::Integer(rng.below(1_000_000) as i64),
                1 => rusqlite::types::Value::Real(rng.unit() * 1000.0),
                2 => rusqlite::types::Value::Text(sentence(&mut rng, 2)),
                _ => rusqlite::types::Value::Null,
            };
            st.execute(params![
                i as i64,
                agent,
                rng.pick(KINDS),
                if rng.chance(0.05) {
                    None
                } else {
                    Some(payload)
                },
                iso(&mut rng, offset),
                epoch,
                if rng.chance(0.3) {
                    None
                } else {
                    Some(rng.below(60_000) as i64)
                },
                if rng.chance(0.7) {
                    None
                } else {
                    Some(sentence(&mut rng, 6))
                },
                value,
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO metrics VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for i in 1..=n_metrics {
            st.execute(params![
                i as i64,
                format!("Agent-{}", rng.below(n_agents)),
                *rng.pick(&[
                    "latency_ms",
                    "tokens",
                    "cost_usd",
                    "success_rate",
                    "queue_depth"
                ]),
                rng.unit() * 10_000.0 - 100.0,
                1_735_689_600 + rng.below(31_536_000) as i64,
                if rng.chance(0.5) {
                    None
                } else {
                    Some(format!(
                        "{{\"env\": \"{}\", \"shard\": {}}}",
                        rng.pick(&["prod", "dev"]),
                        rng.below(16)
                    ))
                },
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO documents VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for i in 1..=n_docs {
            let paragraphs = 1 + rng.below(6);
            let body: String = (0..paragraphs)
                .map(|p| {
                    let words = 40 + rng.below(60) as usize;
                    format!("## Section {p}\n\n{}.\n", sentence(&mut rng, words))
                })
                .collect();
            let size = body.len() as i64;
            st.execute(params![
                i as i64,
                format!("docs/{}/{}-{i}.md", rng.pick(ROLES), rng.hex(6)),
                body,
                rng.bytes(32),
                if rng.chance(0.4) {
                    None
                } else {
                    let len = 200 + rng.below(1800) as usize;
                    Some(rng.bytes(len))
                },
                size,
            ])?;
        }
        let mut st = tx.prepare("INSERT OR IGNORE INTO task_links VALUES (?1, ?2, ?3, ?4)")?;
        let mut i = 0;
        while i < n_links {
            let a = rng.below(n_links);
            let b = rng.below(n_links);
            if a == b {
                continue;
            }
            let changed = st.execute(params![
                format!("task-{a:07}"),
                format!("task-{b:07}"),
                if rng.chance(0.1) {
                    None
                } else {
                    Some(rng.unit())
                },
                if rng.chance(0.1) {
                    None
                } else {
                    Some(iso(&mut rng, ""))
                },
            ])?;
            i += changed as u64;
        }
    }
    tx.commit()?;
    Ok(BenchSummary {
        tables: vec![
            ("agents".into(), n_agents),
            ("events".into(), n_events),
            ("metrics".into(), n_metrics),
            ("documents".into(), n_docs),
            ("task_links".into(), n_links),
        ],
    })
}

/// What a lossless transfer of the [`hostile`] file must do beyond copying every cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostileFacts {
    /// `(table, rowid)` of rows holding TEXT that PostgreSQL `text` cannot hold (invalid
    /// UTF-8, NUL): rejected by default, kept as `bytea` when asked.
    pub bad_text_rows: Vec<(String, i64)>,
    /// Distinct REAL epoch values in table `epochs` (column `at`).
    pub distinct_epochs: usize,
    /// The two table names longer than 63 bytes that share their first 63 bytes.
    pub long_tables: [String; 2],
    /// The two column names (of the first long table) that share their first 63 bytes.
    pub long_columns: [String; 2],
}

/// Writes a small database with every awkward shape (see the module docs).
pub fn hostile(path: &Path) -> rusqlite::Result<HostileFacts> {
    let mut conn = Connection::open(path)?;
    let long_tables = [
        format!(
            "{}_one",
            "a_table_whose_name_is_far_longer_than_postgresql_identifiers_can_be"
        ),
        format!(
            "{}_two",
            "a_table_whose_name_is_far_longer_than_postgresql_identifiers_can_be"
        ),
    ];
    let long_columns = [
        "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaax".to_owned(),
        "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaay".to_owned(),
    ];
    conn.execute_batch(&format!(
        r#"
CREATE TABLE "Order Details" (
    "Order ID"   INTEGER NOT NULL,
    "Product"    TEXT NOT NULL,
    "Unit Price" DECIMAL(10,2) NOT NULL DEFAULT 0,
    "Quantity"   SMALLINT UNSIGNED NOT NULL DEFAULT 1,
    "Shipped"    DATETIME DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY ("Order ID", "Product"),
    CHECK ("Quantity" > 0)
);
CREATE TABLE "user" (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    "select"     TEXT NOT NULL,
    "references" INT(11),
    "Group"      TINYINT(1) NOT NULL DEFAULT 0,
    note         BLOB SUB_TYPE TEXT,
    flags        INTEGER_OR_TEXT,
    stamp        TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    weird        INTEGER DEFAULT (abs(random()))
);
CREATE UNIQUE INDEX user_select_key ON "user" ("select");
CREATE TABLE "MixedCase Table" (
    "Id"          INTEGER PRIMARY KEY,
    "CamelColumn" TEXT COLLATE NOCASE,
    value
);
CREATE INDEX "MixedCase lower idx" ON "MixedCase Table" (lower("CamelColumn"));
CREATE INDEX mixed_partial_idx ON "MixedCase Table" ("Id" DESC) WHERE "CamelColumn" IS NOT NULL;
CREATE TABLE "{t1}" (
    id INTEGER PRIMARY KEY,
    "{c1}" INTEGER NOT NULL,
    "{c2}" TEXT NOT NULL
);
CREATE TABLE "{t2}" (id INTEGER PRIMARY KEY, label TEXT);
CREATE TABLE epochs (id INTEGER PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE texts (id INTEGER PRIMARY KEY, body TEXT NOT NULL, maybe TEXT);
CREATE TABLE times (
    id      INTEGER PRIMARY KEY,
    naive   DATETIME NOT NULL,
    zoned   TIMESTAMP,
    precise DATETIME,
    day     DATE,
    epoch_i DATETIME
);
CREATE TABLE flags (id INTEGER PRIMARY KEY, enabled BOOLEAN NOT NULL, maybe BOOL);
CREATE TABLE kv (k TEXT PRIMARY KEY, v JSON NOT NULL, n NUMERIC) WITHOUT ROWID;
CREATE TABLE log (at TEXT, msg TEXT);
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE child (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parent (id) ON DELETE CASCADE,
    doc       TEXT CHECK (doc IS NULL OR json_valid(doc))
);
CREATE INDEX child_parent_id_idx ON child (parent_id);
CREATE TABLE empty_table (x INTEGER, y TEXT);
CREATE VIRTUAL TABLE docs USING fts5(title, body);
CREATE VIEW "big orders" AS SELECT "Order ID", "Quantity" FROM "Order Details" WHERE "Quantity" > 1;
CREATE VIEW odd AS SELECT typeof(value) AS t FROM "MixedCase Table";
CREATE TRIGGER user_touch AFTER UPDATE ON "user" BEGIN SELECT 1; END;
"#,
        t1 = long_tables[0],
        t2 = long_tables[1],
        c1 = long_columns[0],
        c2 = long_columns[1],
    ))?;
    let mut rng = Rng::new(0xBAD_5EED);
    let tx = conn.transaction()?;
    let mut bad_text_rows = Vec::new();
    {
        let mut st = tx.prepare(r#"INSERT INTO "Order Details" VALUES (?1, ?2, ?3, ?4, ?5)"#)?;
        for i in 0..300i64 {
            let price: rusqlite::types::Value = if i % 3 == 0 {
                rusqlite::types::Value::Integer(i)
            } else {
                rusqlite::types::Value::Real(i as f64 / 7.0)
            };
            st.execute(params![
                i / 3,
                format!("{} #{i}", rng.pick(WORDS)),
                price,
                1 + i % 5,
                "2024-02-29 12:00:00"
            ])?;
        }
        let mut st = tx.prepare(r#"INSERT INTO "user" (id, "select", "references", "Group", note, flags) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#)?;
        for i in 1..=40i64 {
            let flags: rusqlite::types::Value = if i % 4 == 0 {
                rusqlite::types::Value::Text(format!("flag-{i}"))
            } else {
                rusqlite::types::Value::Integer(i * 1000)
            };
            st.execute(params![
                i,
                format!("select {i}"),
                i64::MAX - i,
                i % 2,
                sentence(&mut rng, 3),
                flags
            ])?;
        }
        // AUTOINCREMENT never reuses ids: the sequence must pass 40, not 35.
        tx.execute(r#"DELETE FROM "user" WHERE id > 35"#, [])?;
        let mut st = tx.prepare(r#"INSERT INTO "MixedCase Table" VALUES (?1, ?2, ?3)"#)?;
        let mixed: Vec<rusqlite::types::Value> = vec![
            rusqlite::types::Value::Integer(5),
            rusqlite::types::Value::Real(5.0),
            rusqlite::types::Value::Real(0.1 + 0.2),
            rusqlite::types::Value::Real(0.5585032703121495),
            rusqlite::types::Value::Real(1e300),
            rusqlite::types::Value::Real(-2.5e-310),
            rusqlite::types::Value::Real(f64::INFINITY),
            rusqlite::types::Value::Real(f64::NEG_INFINITY),
            rusqlite::types::Value::Integer(i64::MIN),
            rusqlite::types::Value::Text("5".into()),
            rusqlite::types::Value::Text(String::new()),
            rusqlite::types::Value::Text("trailing space ".into()),
            rusqlite::types::Value::Blob(vec![0, 159, 146, 150, 255]),
            rusqlite::types::Value::Blob(Vec::new()),
            rusqlite::types::Value::Null,
        ];
        for (i, v) in mixed.into_iter().enumerate() {
            st.execute(params![
                i as i64 + 1,
                if i % 3 == 0 {
                    None
                } else {
                    Some(format!("Camel{i}"))
                },
                v
            ])?;
        }
        let mut st = tx.prepare(&format!(
            r#"INSERT INTO "{}" VALUES (?1, ?2, ?3)"#,
            long_tables[0]
        ))?;
        for i in 1..=5i64 {
            st.execute(params![i, i * 7, format!("long {i}")])?;
        }
        tx.execute(
            &format!(
                r#"INSERT INTO "{}" VALUES (1, 'second long table')"#,
                long_tables[1]
            ),
            [],
        )?;
        // 100,000 distinct epoch seconds with millisecond fractions: float4 keeps ~200 of them.
        let mut st = tx.prepare("INSERT INTO epochs VALUES (?1, ?2)")?;
        for i in 0..100_000i64 {
            st.execute(params![i + 1, 1_700_000_000.0 + i as f64 * 0.731 + 0.001])?;
        }
        let mut st = tx.prepare("INSERT INTO texts VALUES (?1, ?2, ?3)")?;
        let bodies = [
            "plain",
            "emoji 🚀🎉",
            "trailing spaces   ",
            "  leading",
            "tab\tand\nnewline",
            "日本語テキスト",
            "",
            "quote ' and \" and \\",
        ];
        for (i, b) in bodies.iter().enumerate() {
            let maybe: Option<&str> = match i % 3 {
                0 => None,
                1 => Some(""),
                _ => Some("x"),
            };
            st.execute(params![i as i64 + 1, b, maybe])?;
        }
        // TEXT PostgreSQL cannot hold, written the way real files get it.
        tx.execute(
            "INSERT INTO texts VALUES (100, CAST(X'66696C65966E616D65' AS TEXT), NULL)",
            [],
        )?;
        tx.execute(
            "INSERT INTO texts VALUES (101, CAST(X'610062' AS TEXT), 'nul inside')",
            [],
        )?;
        tx.execute(
            "INSERT INTO texts VALUES (102, 'fine body', CAST(X'C328' AS TEXT))",
            [],
        )?;
        bad_text_rows.extend([
            ("texts".to_owned(), 100),
            ("texts".to_owned(), 101),
            ("texts".to_owned(), 102),
        ]);
        let mut st = tx.prepare("INSERT INTO times VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        type TimeRow<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<i64>,
        );
        let rows: &[TimeRow<'_>] = &[
            (
                "2024-01-01 00:00:00",
                Some("2024-01-01T00:00:00Z"),
                Some("2025-08-11T15:41:04.7764221+00:00"),
                Some("2024-02-29"),
                Some(1_700_000_000),
            ),
            (
                "2024-06-30T23:59:59.999999",
                Some("2024-06-30T23:59:59.5+02:00"),
                Some("2025-08-11T15:41:04.1234567Z"),
                Some("1999-12-31"),
                None,
            ),
            (
                "1970-01-01 00:00",
                Some("2024-03-10 02:30:00"),
                None,
                None,
                Some(0),
            ),
            (
                "2000-02-29T12:34:56.1",
                Some("2024-11-03T01:30:00-0500"),
                Some("2025-01-01T00:00:00.0000000Z"),
                Some("0001-01-01"),
                Some(-1),
            ),
        ];
        for (i, r) in rows.iter().enumerate() {
            st.execute(params![i as i64 + 1, r.0, r.1, r.2, r.3, r.4])?;
        }
        let mut st = tx.prepare("INSERT INTO flags VALUES (?1, ?2, ?3)")?;
        for i in 0..20i64 {
            st.execute(params![
                i + 1,
                i % 2,
                if i % 5 == 4 { None } else { Some(i % 3) }
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO kv VALUES (?1, ?2, ?3)")?;
        for i in 0..50i64 {
            let n: rusqlite::types::Value = if i % 2 == 0 {
                rusqlite::types::Value::Integer(i)
            } else {
                rusqlite::types::Value::Real(i as f64 + 0.25)
            };
            st.execute(params![
                format!("key/{:03}/{}", i, rng.pick(WORDS)),
                format!("{{\"i\": {i}, \"nested\": {{\"ok\": true, \"list\": [1, 2.5, \"x\"]}}}}"),
                n
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO log VALUES (?1, ?2)")?;
        for i in 0..30i64 {
            // Duplicate rows on purpose: a table without a key is a multiset.
            st.execute(params![
                format!("2024-01-0{}", 1 + i % 3),
                format!("message {}", i % 10)
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO parent VALUES (?1, ?2)")?;
        for i in 1..=10i64 {
            st.execute(params![i, format!("parent {i}")])?;
        }
        let mut st = tx.prepare("INSERT INTO child VALUES (?1, ?2, ?3)")?;
        for i in 1..=60i64 {
            st.execute(params![
                i,
                1 + i % 10,
                if i % 4 == 0 {
                    None
                } else {
                    Some(format!("{{\"n\": {i}}}"))
                }
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO docs (rowid, title, body) VALUES (?1, ?2, ?3)")?;
        for i in 1..=25i64 {
            st.execute(params![
                i * 10,
                format!("Doc {i} {}", rng.pick(WORDS)),
                sentence(&mut rng, 12)
            ])?;
        }
    }
    tx.commit()?;
    Ok(HostileFacts {
        bad_text_rows,
        distinct_epochs: 100_000,
        long_tables,
        long_columns,
    })
}

/// Fills a SQLite database that already has ferry's schema (`migrations/sqlite/0001`) with
/// `n` agents and their tasks, messages, metrics, memories (1536-dimension embeddings) and
/// hook events. Timestamps come in every shape real stores hold: naive, `Z`, offsets, and
/// 7-digit fractions (`.NET`'s `o` format). Returns `(table, rows)`.
pub fn agent_store(path: &Path, n: usize) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    let mut rng = Rng::new(0xA6E7_5700);
    // Every shape a real store holds; none has a nonzero digit beyond microseconds.
    let stamp = |rng: &mut Rng, i: usize| -> String {
        match i % 5 {
            0 => iso(rng, "Z"),
            1 => iso(rng, "+02:00"),
            2 => iso(rng, "").replace('T', " "),
            // Seven fraction digits, the last one zero.
            3 => format!("{}0+00:00", iso(rng, "")),
            _ => iso(rng, "-07:00"),
        }
    };
    // Like `stamp`, but every 50th value has a nonzero seventh fraction digit, which
    // PostgreSQL cannot hold (used in tables no foreign key points to).
    let awkward = |rng: &mut Rng, i: usize| -> String {
        if i % 50 == 7 {
            format!("{}{}+00:00", iso(rng, ""), 1 + rng.below(9))
        } else {
            stamp(rng, i)
        }
    };
    let tx = conn.transaction()?;
    let mut counts: Vec<(String, u64)> = Vec::new();
    {
        let mut st = tx.prepare(
            "INSERT INTO agents (agent_id, display_name, role, status, status_raw, capabilities, registered_at, updated_at,
                                 source_path, source_record, doc, doc_sha256, doc_size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12)",
        )?;
        for i in 0..n {
            let doc = format!(
                "{{\"id\": \"Agent-{i}\", \"name\": \"{}\", \"status\": \"online\"}}",
                sentence(&mut rng, 2).replace('"', "'")
            );
            st.execute(params![
                format!("Agent-{i}"),
                sentence(&mut rng, 2),
                rng.pick(ROLES),
                *rng.pick(&["online", "offline", "busy", "other"]),
                "Online",
                if i % 3 == 0 {
                    None
                } else {
                    Some("[\"edit\", \"review\"]".to_owned())
                },
                stamp(&mut rng, i),
                if i % 4 == 0 {
                    None
                } else {
                    Some(stamp(&mut rng, i + 1))
                },
                format!("agent_workspaces/Agent-{i}/status.json"),
                doc.clone(),
                rng.hex(64),
                doc.len() as i64,
            ])?;
        }
        counts.push(("agents".into(), n as u64));
        let mut st = tx.prepare(
            "INSERT INTO tasks (task_id, agent_id, parent_task_id, title, description, status, priority, created_at, completed_at,
                                source_path, source_record, doc, doc_sha256, doc_size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let n_tasks = n * 5;
        for i in 0..n_tasks {
            let doc = format!(
                "{{\"task\": {i}, \"tags\": [\"a\", \"b\"], \"estimate\": {}.5}}",
                rng.below(10)
            );
            st.execute(params![
                format!("task-{i:05}"),
                format!("Agent-{}", i % n),
                if i > 0 && i % 3 == 0 {
                    Some(format!("task-{:05}", i / 3))
                } else {
                    None
                },
                sentence(&mut rng, 4),
                if i % 2 == 0 {
                    Some(sentence(&mut rng, 20))
                } else {
                    None
                },
                *rng.pick(&["pending", "in_progress", "completed", "other"]),
                *rng.pick(&["low", "normal", "high", "critical"]),
                stamp(&mut rng, i),
                if i % 2 == 0 {
                    Some(stamp(&mut rng, i + 2))
                } else {
                    None
                },
                "task_list.json",
                i as i64,
                doc.clone(),
                rng.hex(64),
                doc.len() as i64,
            ])?;
        }
        counts.push(("tasks".into(), n_tasks as u64));
        let mut st = tx.prepare("INSERT OR IGNORE INTO task_dependencies VALUES (?1, ?2)")?;
        let mut deps = 0;
        for i in 1..n_tasks {
            let other = rng.below(i as u64) as usize;
            deps += st.execute(params![format!("task-{i:05}"), format!("task-{other:05}")])? as u64;
        }
        counts.push(("task_dependencies".into(), deps));
        let mut st = tx.prepare(
            "INSERT INTO messages (message_id, mailbox_agent_id, folder, from_agent, to_agent, message_type, priority, subject, body,
                                   sent_at, source_path, doc, doc_sha256, doc_size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let n_messages = n * 4;
        for i in 0..n_messages {
            let doc = format!(
                "{{\"from\": \"Agent-{}\", \"body\": \"{}\"}}",
                i % n,
                sentence(&mut rng, 5).replace('"', "'")
            );
            st.execute(params![
                format!("msg-{i:06}"),
                format!("Agent-{}", (i + 1) % n),
                *rng.pick(&["inbox", "outbox", "queue"]),
                format!("Agent-{}", i % n),
                format!("Agent-{}", (i + 1) % n),
                "task_assignment",
                "normal",
                sentence(&mut rng, 3),
                sentence(&mut rng, 25),
                stamp(&mut rng, i),
                format!("agent_workspaces/Agent-{}/inbox/{i}.json", (i + 1) % n),
                doc.clone(),
                rng.hex(64),
                doc.len() as i64,
            ])?;
        }
        counts.push(("messages".into(), n_messages as u64));
        let mut st = tx.prepare(
            "INSERT INTO performance_metrics (agent_id, metric, value, unit, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let n_metrics = n * 6;
        for i in 0..n_metrics {
            st.execute(params![
                format!("Agent-{}", i % n),
                format!("metric-{}", i / n),
                rng.unit() * 1e6 - 5e5,
                "ms",
                awkward(&mut rng, i)
            ])?;
        }
        counts.push(("performance_metrics".into(), n_metrics as u64));
        let mut st = tx.prepare(
            "INSERT INTO agent_memory (agent_id, content, embedding, metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let n_memory = n * 2;
        for i in 0..n_memory {
            let embedding: Vec<u8> = (0..1536)
                .flat_map(|_| ((rng.unit() * 2.0 - 1.0) as f32).to_le_bytes())
                .collect();
            st.execute(params![
                format!("Agent-{}", i % n),
                sentence(&mut rng, 10),
                if i % 5 == 0 { None } else { Some(embedding) },
                format!("{{\"source\": \"memory\", \"i\": {i}}}"),
                stamp(&mut rng, i),
            ])?;
        }
        counts.push(("agent_memory".into(), n_memory as u64));
        let mut st = tx.prepare(
            "INSERT INTO hook_events (session_id, hook_name, tool_name, occurred_at, source_path, source_record, doc, doc_sha256, doc_size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let n_hooks = n * 8;
        for i in 0..n_hooks {
            let doc = format!(
                "{{\"hook\": \"PreToolUse\", \"tool\": \"{}\", \"i\": {i}}}",
                rng.pick(TOOLS)
            );
            st.execute(params![
                format!("session-{}", i % 7),
                "PreToolUse",
                rng.pick(TOOLS),
                awkward(&mut rng, i),
                ".claude/logs/pre_tool_use.json",
                i as i64,
                doc.clone(),
                rng.hex(64),
                doc.len() as i64,
            ])?;
        }
        counts.push(("hook_events".into(), n_hooks as u64));
    }
    tx.commit()?;
    Ok(counts)
}

/// A small WAL database whose keys are awkward to follow: INTEGER (down to `i64::MIN`),
/// REAL, BLOB and TEXT keys, a composite key with quoted names mixing classes, a NOCASE key,
/// a second UNIQUE constraint, a self-referencing foreign key, a full-text table and a table
/// without a primary key (with duplicate rows).
pub fn awkward_keys(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        r#"
        PRAGMA journal_mode = WAL;
        CREATE TABLE ints (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, parent INTEGER REFERENCES ints (id), score REAL);
        CREATE TABLE reals (k REAL PRIMARY KEY, v TEXT) WITHOUT ROWID;
        CREATE TABLE blobs (k BLOB PRIMARY KEY, v INTEGER);
        CREATE TABLE texts (k TEXT PRIMARY KEY, v BLOB);
        CREATE TABLE "Mixed Key" ("a b" INTEGER NOT NULL, "c""d" TEXT NOT NULL, v TEXT, PRIMARY KEY ("a b", "c""d")) WITHOUT ROWID;
        CREATE TABLE nocase (k TEXT PRIMARY KEY COLLATE NOCASE, v INTEGER);
        CREATE TABLE loose (a TEXT, b INTEGER);
        CREATE VIRTUAL TABLE notes USING fts5 (title, body);
        INSERT INTO ints (id, name, parent, score) VALUES (1, 'one', NULL, 0.1), (2, 'two', 1, 0.30000000000000004), (-9223372036854775808, 'min', NULL, -0.0);
        INSERT INTO reals VALUES (0.1, 'a'), (1e300, 'b'), (-2.5, 'c');
        INSERT INTO blobs VALUES (x'00ff', 1), (x'', 2), (x'deadbeef', 3);
        INSERT INTO texts VALUES ('plain', x'01'), ('naïve ✓', NULL), ('trailing  ', x'');
        INSERT INTO "Mixed Key" VALUES (1, 'x', 'one'), (1, 'y', 'two'), (2, 'x', 'three');
        INSERT INTO nocase VALUES ('Alpha', 1), ('beta', 2);
        INSERT INTO loose VALUES ('dup', 1), ('dup', 1), (NULL, NULL);
        INSERT INTO notes (rowid, title, body) VALUES (1, 'first', 'hello world'), (2, 'second', 'sync me');
        "#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_sized() {
        let dir = std::env::temp_dir().join(format!("ferry-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.db"), dir.join("b.db"));
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
        let facts = hostile(&a).unwrap();
        hostile(&b).unwrap();
        assert_eq!(facts.bad_text_rows.len(), 3);
        let conn = Connection::open(&a).unwrap();
        let other = Connection::open(&b).unwrap();
        let digest =
            "SELECT group_concat(hex(body), ',') FROM (SELECT body FROM texts ORDER BY id)";
        let (x, y): (String, String) = (
            conn.query_row(digest, [], |r| r.get(0)).unwrap(),
            other.query_row(digest, [], |r| r.get(0)).unwrap(),
        );
        assert!(x == y, "the same call wrote different rows");
        let distinct: i64 = conn
            .query_row("SELECT count(DISTINCT at) FROM epochs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(distinct as usize, facts.distinct_epochs);
        let classes: i64 = conn
            .query_row(
                r#"SELECT count(DISTINCT typeof(value)) FROM "MixedCase Table""#,
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(classes, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
