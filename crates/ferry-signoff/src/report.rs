//! The report as JSON (the evidence a signature covers), Markdown, and one self-contained
//! HTML page with the charts inlined as SVG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Utc;
use ferry_agentdb::harness::Latency;
use ferry_core::table::Table;
use sha2::{Digest, Sha256};

use crate::{charts, Signature, SignoffError, SignoffReport};

/// Where [`write_reports`] wrote the report.
#[derive(Debug, Clone)]
pub struct ReportPaths {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
    /// sha256 of the JSON file's bytes: the digest of the evidence.
    pub evidence_sha256: String,
    /// The signature recorded on the Markdown and HTML pages, when one was given.
    pub signature: Option<Signature>,
}

/// Writes `signoff-<time>.json`, `.md` and `.html` under `state_dir/reports/`. The JSON is
/// the evidence (the report without a signature); with `signed_by`, the Markdown and HTML
/// name who signed it, when, and the JSON's sha256.
pub fn write_reports(
    report: &SignoffReport,
    state_dir: &Path,
    signed_by: Option<&str>,
) -> Result<ReportPaths, SignoffError> {
    let json = ferry_core::fsutil::report_path(state_dir, "signoff", "json").map_err(|e| {
        SignoffError::Write {
            path: state_dir.join("reports").display().to_string(),
            source: e,
        }
    })?;
    let mut evidence = report.clone();
    evidence.signature = None;
    let bytes = serde_json::to_vec_pretty(&evidence).map_err(|e| SignoffError::Write {
        path: json.display().to_string(),
        source: e.into(),
    })?;
    let write = |path: &Path, bytes: &[u8]| {
        ferry_core::fsutil::write_atomic(path, bytes).map_err(|e| SignoffError::Write {
            path: path.display().to_string(),
            source: e,
        })
    };
    write(&json, &bytes)?;
    let evidence_sha256 = hex::encode(Sha256::digest(&bytes));
    let signature = signed_by
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|who| Signature {
            signed_by: who.to_owned(),
            signed_at: Utc::now(),
            evidence_sha256: evidence_sha256.clone(),
            evidence: json.clone(),
        });
    let mut shown = evidence;
    shown.signature = signature.clone();
    let markdown = json.with_extension("md");
    write(&markdown, to_markdown(&shown).as_bytes())?;
    let html = json.with_extension("html");
    write(&html, to_html(&shown).as_bytes())?;
    Ok(ReportPaths {
        json,
        markdown,
        html,
        evidence_sha256,
        signature,
    })
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        "pass"
    } else {
        "FAIL"
    }
}

fn checks_table(r: &SignoffReport) -> Table {
    let mut t = Table::new(["area", "check", "result", "detail"]);
    for c in &r.checks {
        t.row([
            c.area.clone(),
            c.name.clone(),
            verdict(c.passed).to_owned(),
            c.detail.clone(),
        ]);
    }
    t
}

fn latency_row(path: &str, l: &Latency) -> [String; 6] {
    [
        l.name.clone(),
        path.to_owned(),
        format!("{:.3}", l.p50_ms),
        format!("{:.3}", l.p95_ms),
        format!("{:.3}", l.p99_ms),
        l.samples.to_string(),
    ]
}

fn latency_table(r: &SignoffReport) -> Option<Table> {
    let p = r.performance.as_ref()?;
    let mut t = Table::new(["read", "path", "p50 ms", "p95 ms", "p99 ms", "samples"]);
    for c in &p.comparison {
        if let Some(l) = p.postgres.query(&c.read) {
            t.row(latency_row("PostgreSQL", l));
        }
        if let Some(l) = p.sqlite.query(&c.read) {
            t.row(latency_row("SQLite", l));
        }
        if let Some(l) = p.files.iter().find(|f| f.name == c.read) {
            t.row(latency_row("files", l));
        }
    }
    Some(t)
}

fn load_table(r: &SignoffReport) -> Option<Table> {
    let c = r.concurrency.as_ref()?;
    let mut t = Table::new(["operation", "ops", "errors", "p50 ms", "p95 ms", "p99 ms"]);
    for o in &c.load.per_operation {
        t.row([
            o.name.clone(),
            o.samples.to_string(),
            o.errors.to_string(),
            format!("{:.3}", o.p50_ms),
            format!("{:.3}", o.p95_ms),
            format!("{:.3}", o.p99_ms),
        ]);
    }
    Some(t)
}

fn rows_table(r: &SignoffReport) -> Table {
    let mut t = Table::new(["table", "SQLite rows", "PostgreSQL rows", "verdict"]);
    for row in &r.data.tables {
        t.row([
            row.table.clone(),
            row.sqlite_rows.to_string(),
            row.postgres_rows.to_string(),
            row.verdict.clone(),
        ]);
    }
    t
}

fn quarantine_table(r: &SignoffReport) -> Table {
    let mut t = Table::new(["file", "reason", "where"]);
    for q in &r.data.files.quarantined {
        t.row([
            q.path.clone(),
            format!("{}: {}", q.reason_kind, q.reason),
            match (q.line, q.column) {
                (Some(l), Some(c)) => format!("line {l}, column {c}"),
                (Some(l), None) => format!("line {l}"),
                _ => String::new(),
            },
        ]);
    }
    t
}

fn headline(r: &SignoffReport) -> String {
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    if r.passed {
        format!("all {} checks pass", r.checks.len())
    } else {
        format!("{failed} of {} checks FAILED", r.checks.len())
    }
}

fn signature_line(r: &SignoffReport) -> String {
    match &r.signature {
        Some(s) => format!(
            "Signed by {} at {}; evidence {} (sha256 {}).",
            s.signed_by,
            s.signed_at.to_rfc3339(),
            s.evidence.display(),
            s.evidence_sha256
        ),
        None => {
            "Not signed: awaiting a signature (`cargo xtask phase 5 --signed-by NAME`).".to_owned()
        }
    }
}

fn load_line(r: &SignoffReport) -> String {
    match &r.concurrency {
        Some(c) => format!(
            "{} agents for {:.1} s: {} operations, {:.0} per second, {} errors ({:.3}%), {} deadlocks, in scratch schema \"{}\"{}.",
            c.load.agents,
            c.load.duration_s,
            c.load.total_ops,
            c.load.throughput_ops_per_s,
            c.load.errors,
            c.load.error_rate * 100.0,
            c.load.deadlocks,
            c.scratch_schema,
            if c.scratch_dropped { " (dropped)" } else { " (NOT dropped)" }
        ),
        None => "The concurrency run did not happen (see the checks).".to_owned(),
    }
}

fn migration_line(r: &SignoffReport) -> String {
    match &r.migration {
        Some(m) => format!(
            "Cutover at {}, blackout {}, last change {}; lag p50 {}, p99 {}, max {}; {} points in the lag series.",
            m.cutover_at.as_deref().unwrap_or("not recorded"),
            m.blackout_ms.map_or("not recorded".into(), |v| format!("{v:.0} ms")),
            m.last_seq.map_or("n/a".into(), |v| v.to_string()),
            m.lag_p50_ms.map_or("n/a".into(), |v| format!("{v:.0} ms")),
            m.lag_p99_ms.map_or("n/a".into(), |v| format!("{v:.0} ms")),
            m.lag_max_ms.map_or("n/a".into(), |v| format!("{v:.0} ms")),
            m.points.len()
        ),
        None => "No phase-4 evidence was given to this run.".to_owned(),
    }
}

/// The report as Markdown.
pub fn to_markdown(r: &SignoffReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# ferry sign-off: {}\n", headline(r));
    let _ = writeln!(
        s,
        "Generated {} by ferry {}. SQLite {}, PostgreSQL {} schema \"{}\", store {}.\n",
        r.generated_at.to_rfc3339(),
        r.ferry_version,
        r.sqlite,
        r.postgres,
        r.schema,
        r.store_dir
    );
    let _ = writeln!(s, "{}\n", signature_line(r));
    let _ = writeln!(s, "## Checks\n\n{}", checks_table(r).to_markdown());
    let _ = writeln!(s, "## Data\n\n{}", rows_table(r).to_markdown());
    let f = &r.data.files;
    let _ = writeln!(
        s,
        "Files: {} imported files compared, {} row documents found in their files, {} differences.\n",
        f.files_compared,
        f.documents_equal,
        f.differences.len()
    );
    for d in f.differences.iter().take(50) {
        let _ = writeln!(s, "- {d}");
    }
    if !f.quarantined.is_empty() {
        let _ = writeln!(
            s,
            "\nQuarantined files:\n\n{}",
            quarantine_table(r).to_markdown()
        );
    }
    if let Some(t) = latency_table(r) {
        let _ = writeln!(s, "\n## Performance: typical reads\n\n{}", t.to_markdown());
    }
    let _ = writeln!(s, "\n## Concurrency\n\n{}\n", load_line(r));
    if let Some(t) = load_table(r) {
        let _ = writeln!(s, "{}", t.to_markdown());
    }
    let _ = writeln!(s, "\n## Migration\n\n{}", migration_line(r));
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_table(t: &Table, header: &[&str]) -> String {
    // ferry_core's Table renders Markdown; the HTML page builds its rows from that text.
    let md = t.to_markdown();
    let mut out = String::from("<table>\n<tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for line in md.lines().skip(2) {
        let cells: Vec<&str> = line
            .trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split(" | ")
            .collect();
        out.push_str("<tr>");
        for c in cells {
            let c = c.trim();
            let class = match c {
                "pass" => " class=\"pass\"",
                "FAIL" => " class=\"fail\"",
                _ => "",
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(&c.replace("\\|", "|")));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn chart(out: &mut String, svg: Result<String, String>) {
    match svg {
        Ok(svg) => {
            let _ = writeln!(out, "<figure>{svg}</figure>");
        }
        Err(e) => {
            let _ = writeln!(out, "<p class=\"fail\">{}</p>", esc(&e));
        }
    }
}

/// The report as one HTML page: no script, no external resource; charts inline as SVG.
pub fn to_html(r: &SignoffReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ferry sign-off: {}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}\n\
         th {{ background: #f0f0f0; }}\n\
         .pass {{ color: #0a6b2b; font-weight: bold; }}\n\
         .fail {{ color: #b00020; font-weight: bold; }}\n\
         figure {{ margin: 1em 0; }}\n\
         </style>\n</head>\n<body>\n",
        esc(&headline(r))
    );
    let _ = writeln!(
        s,
        "<h1>ferry sign-off: <span class=\"{}\">{}</span></h1>",
        if r.passed { "pass" } else { "fail" },
        esc(&headline(r))
    );
    let _ = writeln!(
        s,
        "<p>Generated {} by ferry {}. SQLite <code>{}</code>, PostgreSQL <code>{}</code> schema <code>{}</code>, store <code>{}</code>.</p>",
        esc(&r.generated_at.to_rfc3339()),
        esc(&r.ferry_version),
        esc(&r.sqlite),
        esc(&r.postgres),
        esc(&r.schema),
        esc(&r.store_dir)
    );
    let _ = writeln!(s, "<p id=\"signature\">{}</p>", esc(&signature_line(r)));
    let _ = writeln!(
        s,
        "<h2>Checks</h2>\n{}",
        html_table(&checks_table(r), &["area", "check", "result", "detail"])
    );
    let _ = writeln!(s, "<h2>Data</h2>");
    chart(&mut s, charts::rows_per_table(&r.data.tables));
    s.push_str(&html_table(
        &rows_table(r),
        &["table", "SQLite rows", "PostgreSQL rows", "verdict"],
    ));
    let f = &r.data.files;
    let _ = writeln!(
        s,
        "<p>{} imported files compared, {} row documents found in their files, {} differences.</p>",
        f.files_compared,
        f.documents_equal,
        f.differences.len()
    );
    if !f.differences.is_empty() {
        s.push_str("<ul>\n");
        for d in f.differences.iter().take(50) {
            let _ = writeln!(s, "<li>{}</li>", esc(&d.to_string()));
        }
        s.push_str("</ul>\n");
    }
    if !f.quarantined.is_empty() {
        let _ = writeln!(
            s,
            "<h3>Quarantined files</h3>\n{}",
            html_table(&quarantine_table(r), &["file", "reason", "where"])
        );
    }
    let _ = writeln!(s, "<h2>Performance: typical reads</h2>");
    if let Some(p) = &r.performance {
        if let Some(t) = latency_table(r) {
            s.push_str(&html_table(
                &t,
                &["read", "path", "p50 ms", "p95 ms", "p99 ms", "samples"],
            ));
        }
        for c in &p.comparison {
            let mut series: Vec<(&str, &Latency)> = Vec::new();
            if let Some(l) = p.postgres.query(&c.read) {
                series.push(("PostgreSQL", l));
            }
            if let Some(l) = p.sqlite.query(&c.read) {
                series.push(("SQLite", l));
            }
            if let Some(l) = p.files.iter().find(|f| f.name == c.read) {
                series.push(("files", l));
            }
            chart(&mut s, charts::latency_histogram(&c.read, &series));
        }
    } else {
        s.push_str("<p class=\"fail\">not measured (see the checks)</p>\n");
    }
    let _ = writeln!(s, "<h2>Concurrency</h2>\n<p>{}</p>", esc(&load_line(r)));
    chart(
        &mut s,
        charts::throughput(r.concurrency.as_ref().map_or(&[][..], |c| &c.load.series)),
    );
    if let Some(t) = load_table(r) {
        s.push_str(&html_table(
            &t,
            &["operation", "ops", "errors", "p50 ms", "p95 ms", "p99 ms"],
        ));
    }
    let _ = writeln!(s, "<h2>Migration</h2>\n<p>{}</p>", esc(&migration_line(r)));
    chart(
        &mut s,
        charts::sync_lag(r.migration.as_ref().map_or(&[][..], |m| &m.points)),
    );
    s.push_str("</body>\n</html>\n");
    s
}
