//! Phase 3, PostgreSQL load: apply the PostgreSQL migrations, copy the phase-2 SQLite file
//! into them (managed mode), and gate on every table equal by content digest.

use ferry_core::config::Config;
use ferry_schema::{Database, Migrator};
use ferry_transfer::{Target, TransferOptions};
use ferry_validate::{PgTarget, ValidateOptions};
use serde_json::{json, Value};

use crate::checks;
use crate::error::PhaseError;
use crate::gate::Check;
use crate::runner::{scope_digest, Ctx, PhaseResult};

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> Result<PhaseResult, PhaseError> {
    let config = ctx.config;
    ctx.evidence
        .insert("scope_digest".into(), json!(scope_digest(config)));
    let schema = config.postgres.schema.clone();
    let url = config.postgres.url.clone();

    // What the target looked like before: rollback proves it is back to exactly this.
    let mut db = Database::connect(url.expose(), Some(&schema))
        .await
        .map_err(|e| PhaseError::failed("connecting to PostgreSQL", e))?;
    let existed = schema_exists(&mut db, &schema).await?;
    let before = if existed {
        ferry_schema::dump(&mut db)
            .await
            .map_err(|e| PhaseError::failed("dumping the target schema", e))?
    } else {
        String::new()
    };
    ctx.evidence.insert("schema".into(), json!(schema));
    ctx.evidence.insert("schema_existed".into(), json!(existed));
    ctx.evidence.insert("schema_before".into(), json!(before));

    let (set, snapshots) = checks::postgres_schema()
        .map_err(|e| PhaseError::failed("loading the PostgreSQL migrations", e))?;
    let ran = Migrator::new(set.clone())
        .up(&mut db, None)
        .await
        .map_err(|e| PhaseError::failed(format!("migrating schema \"{schema}\""), e))?;
    ctx.evidence.insert(
        "migrations_applied".into(),
        json!(ran.iter().map(|r| r.file.clone()).collect::<Vec<_>>()),
    );

    let target = Target {
        url: url.clone(),
        schema: schema.clone(),
    };
    let mut options = TransferOptions::from_config(config);
    options.progress = true;
    let plan = ferry_transfer::plan_managed(&config.sqlite.path, &target, &options)
        .await
        .map_err(|e| PhaseError::failed("planning the copy into PostgreSQL", e))?;
    let plan_path = save(config, "plan3", &plan)?;
    ctx.evidence.insert("plan".into(), json!(plan_path));
    let report = ferry_transfer::execute(&plan, &target, &options)
        .await
        .map_err(|e| PhaseError::failed("copying SQLite into PostgreSQL", e))?;
    let report_path = save(config, "transfer3", &report)?;
    ctx.evidence
        .insert("transfer_report".into(), json!(report_path));
    ctx.evidence.insert(
        "rows_copied".into(),
        json!(report.tables.iter().map(|t| t.rows).sum::<u64>()),
    );
    ctx.evidence
        .insert("rejected_rows".into(), json!(report.rejected_rows()));

    let validation_options = ValidateOptions {
        timestamps: config.timestamps.clone(),
        progress: true,
        ..ValidateOptions::default()
    };
    let validation = ferry_validate::validate(
        &config.sqlite.path,
        &PgTarget {
            url: url.clone(),
            schema: schema.clone(),
        },
        Some(&plan),
        &validation_options,
    )
    .await
    .map_err(|e| PhaseError::failed("validating PostgreSQL against SQLite", e))?;
    let validation_path = save(config, "validate3", &validation)?;
    ctx.evidence
        .insert("validation_report".into(), json!(validation_path));
    ctx.evidence
        .insert("validation_totals".into(), json!(validation.totals));

    let mut checks = Vec::new();
    let t = &validation.totals;
    let counts_equal = validation
        .tables
        .iter()
        .all(|tr| tr.source_rows == tr.target_rows);
    checks.push(Check::new(
        "row counts equal",
        counts_equal && t.tables_error == 0,
        format!(
            "{} tables, {} rows in SQLite, {} in PostgreSQL",
            t.tables, t.source_rows, t.target_rows
        ),
    ));
    let different: Vec<String> = validation
        .tables
        .iter()
        .filter(|tr| tr.verdict.as_str() != "equal")
        .map(|tr| format!("{} ({})", tr.name(), tr.verdict.as_str()))
        .collect();
    checks.push(Check::new(
        "content digests equal",
        different.is_empty() && t.tables_error == 0,
        if different.is_empty() {
            format!(
                "all {} tables equal cell by cell (canonical typed digests)",
                t.tables
            )
        } else {
            format!(
                "{} missing, {} extra, {} changed rows in: {}",
                t.missing_rows,
                t.extra_rows,
                t.changed_rows,
                different.join(", ")
            )
        },
    ));
    let rejects = report.rejected_rows();
    let acknowledged = ctx
        .evidence
        .get("rejects_acknowledged")
        .and_then(Value::as_str)
        .map(str::to_owned);
    checks.push(Check::new(
        "no unacknowledged rejects",
        rejects == 0 || acknowledged.is_some(),
        match (rejects, acknowledged) {
            (0, _) => "every row arrived".to_owned(),
            (n, Some(reason)) => format!("{n} rejected rows acknowledged: {reason}; listed in {}", report_path.display()),
            (n, None) => format!(
                "{n} rejected rows (first: {}); see {}; acknowledge with `phase 3 --rerun --acknowledge-rejects \"reason\"`",
                report.rejects.first().map_or(String::new(), |r| format!("{} key {} column {}: {}", r.table, r.key, r.column, r.reason)),
                report_path.display()
            ),
        },
    ));
    let fk_findings: Vec<String> = validation
        .constraints
        .findings
        .iter()
        .map(|f| format!("{} {:?}: {}", f.table, f.kind, f.detail))
        .collect();
    checks.push(Check::new(
        "constraints validated in PostgreSQL",
        validation.constraints.checked && fk_findings.is_empty(),
        if fk_findings.is_empty() {
            format!(
                "{} foreign keys without orphans ({} validated now), {} sequences past their maximum, {} source constraints present",
                validation.constraints.target_foreign_keys,
                validation.constraints.validated_foreign_keys.len(),
                validation.constraints.sequences,
                validation.constraints.source_constraints
            )
        } else {
            fk_findings.into_iter().take(5).collect::<Vec<_>>().join("; ")
        },
    ));
    checks.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
    db.close().await;

    Ok(PhaseResult {
        summary: format!(
            "{} rows copied into \"{schema}\", {} rejected; {} of {} tables equal",
            report.tables.iter().map(|t| t.rows).sum::<u64>(),
            rejects,
            t.tables_equal,
            t.tables
        ),
        details: format!("{}\n{}", report.summary_table(), validation.summary_table()),
        checks,
    })
}

/// Phase 3's evidence still holds: the SQLite tables are as gate 2 left them (so the copy
/// still matches its source) and the PostgreSQL schema is at head.
pub(crate) async fn recheck(config: &Config, _evidence: &Value) -> Vec<Check> {
    let mut out = Vec::new();
    let entries = crate::ledger::Ledger::new(&config.state_dir, &config.sqlite.path)
        .entries()
        .unwrap_or_default();
    match crate::ledger::latest_run(&entries, crate::phase::Phase::Import) {
        Some(e) => out.push(crate::import::tables_unchanged(config, &e.evidence).await),
        None => out.push(Check::new(
            "SQLite tables unchanged since gate 2",
            false,
            "phase 2 has no run in the ledger",
        )),
    }
    match (
        checks::postgres_schema(),
        Database::connect(config.postgres.url.expose(), Some(&config.postgres.schema)).await,
    ) {
        (Ok((set, snapshots)), Ok(mut db)) => {
            out.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
            db.close().await;
        }
        (Err(e), _) => out.push(Check::new(
            "PostgreSQL schema at head",
            false,
            e.to_string(),
        )),
        (_, Err(e)) => out.push(Check::new(
            "PostgreSQL schema at head",
            false,
            e.to_string(),
        )),
    }
    out
}

/// Undoes phase 3: drops what ferry created in PostgreSQL and proves the schema equals its
/// pre-phase dump (absent, when ferry created it).
pub(crate) async fn rollback(
    config: &Config,
    evidence: &Value,
) -> Result<(Vec<Check>, Value), PhaseError> {
    let schema = evidence
        .get("schema")
        .and_then(Value::as_str)
        .unwrap_or(&config.postgres.schema)
        .to_owned();
    let existed = evidence
        .get("schema_existed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let before = evidence
        .get("schema_before")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut db = Database::connect(config.postgres.url.expose(), Some(&schema))
        .await
        .map_err(|e| PhaseError::failed("connecting to PostgreSQL", e))?;
    let quoted = ferry_schema::quote_ident(&schema);
    let mut out = serde_json::Map::new();
    if existed {
        // The schema was there before: revert the migrations, then drop ferry's own
        // bookkeeping tables (transfer checkpoints and runs), leaving what was there.
        let (set, _) = checks::postgres_schema()
            .map_err(|e| PhaseError::failed("loading the PostgreSQL migrations", e))?;
        let reverted = Migrator::new(set).down(&mut db, 0).await.map_err(|e| {
            PhaseError::failed(format!("reverting the migrations in \"{schema}\""), e)
        })?;
        out.insert(
            "migrations_reverted".into(),
            json!(reverted.iter().map(|r| r.file.clone()).collect::<Vec<_>>()),
        );
        let conn = db.postgres().expect("a PostgreSQL database");
        let ferry_tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'ferry\\_%'",
        )
        .bind(&schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| PhaseError::failed("listing ferry's tables", e))?;
        for table in &ferry_tables {
            sqlx::raw_sql(&format!(
                "DROP TABLE IF EXISTS {quoted}.{} CASCADE",
                ferry_schema::quote_ident(table)
            ))
            .execute(&mut *conn)
            .await
            .map_err(|e| PhaseError::failed(format!("dropping {table}"), e))?;
        }
        out.insert("dropped".into(), json!(ferry_tables));
    } else {
        let conn = db.postgres().expect("a PostgreSQL database");
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
            .execute(&mut *conn)
            .await
            .map_err(|e| PhaseError::failed(format!("dropping schema \"{schema}\""), e))?;
        out.insert("dropped".into(), json!([format!("schema {schema}")]));
    }
    let now_exists = schema_exists(&mut db, &schema).await?;
    let after = if now_exists {
        ferry_schema::dump(&mut db)
            .await
            .map_err(|e| PhaseError::failed("dumping the target schema", e))?
    } else {
        String::new()
    };
    db.close().await;
    let diff = ferry_schema::snapshot::line_diff(&before, &after);
    let detail = if diff.is_empty() {
        if existed {
            format!("schema \"{schema}\" equals its dump from before phase 3")
        } else {
            format!("schema \"{schema}\" is gone, as before phase 3")
        }
    } else {
        format!(
            "{} lines differ from before phase 3, first: {}",
            diff.len(),
            diff.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")
        )
    };
    let checks = vec![Check::new(
        "target schema equals its pre-phase snapshot",
        diff.is_empty() && now_exists == existed,
        detail,
    )];
    Ok((checks, Value::Object(out)))
}

async fn schema_exists(db: &mut Database, schema: &str) -> Result<bool, PhaseError> {
    let conn = db.postgres().expect("a PostgreSQL database");
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(conn)
        .await
        .map_err(|e| PhaseError::failed("reading the PostgreSQL catalog", e))
}

fn save<T: serde::Serialize>(
    config: &Config,
    name: &str,
    value: &T,
) -> Result<std::path::PathBuf, PhaseError> {
    ferry_core::fsutil::report_path(&config.state_dir, name, "json")
        .and_then(|p| ferry_core::fsutil::write_json(&p, value).map(|()| p))
        .map_err(|e| {
            PhaseError::failed(
                format!(
                    "writing a {name} report under {}",
                    config.state_dir.display()
                ),
                e,
            )
        })
}
