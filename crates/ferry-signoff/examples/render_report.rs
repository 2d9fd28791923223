//! Renders a saved sign-off report (`signoff-*.json`) again as Markdown and HTML next to it:
//! `cargo run --release -p ferry-signoff --example render_report -- REPORT.json`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: render_report REPORT.json");
        std::process::exit(2);
    };
    // JSON has no infinity: the last histogram bucket's bound is written as null.
    let text = std::fs::read_to_string(&path)?.replace("\"le_ms\": null", "\"le_ms\": 1e308");
    let report: ferry_signoff::SignoffReport = serde_json::from_str(&text)?;
    let md = path.with_extension("rendered.md");
    let html = path.with_extension("rendered.html");
    std::fs::write(&md, ferry_signoff::report::to_markdown(&report))?;
    std::fs::write(&html, ferry_signoff::report::to_html(&report))?;
    println!("{}\n{}", md.display(), html.display());
    Ok(())
}
