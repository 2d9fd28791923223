//! Progress bars for long work: count, rate and ETA, drawn on stderr only when it is a
//! terminal (and `FERRY_PROGRESS` is not `0`), so logs, tests and CI stay clean.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::env_vars;

/// A bar over items (files, rows) that also shows bytes per second.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    bytes: Arc<AtomicU64>,
    unit: &'static str,
}

impl Progress {
    /// A bar of `total` items of `unit` (`"files"`, `"rows"`); `total` may be unknown.
    pub fn new(label: &str, unit: &'static str, total: Option<u64>) -> Self {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ETA {eta}"
        } else {
            "{prefix:>12} {spinner} {pos} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        if !visible() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Self {
            bar,
            started: Instant::now(),
            bytes: Arc::new(AtomicU64::new(0)),
            unit,
        }
    }

    /// Adds `items` done and `bytes` processed, and refreshes the rates.
    pub fn inc(&self, items: u64, bytes: u64) {
        self.bar.inc(items);
        if bytes > 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        self.refresh();
    }

    fn refresh(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let items = self.bar.position() as f64 / secs;
        let mb = self.bytes.load(Ordering::Relaxed) as f64 / secs / 1_048_576.0;
        self.bar.set_message(format!(
            "{} {items:.0} {}/s {mb:.1} MB/s",
            self.unit, self.unit
        ));
    }

    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    pub fn position(&self) -> u64 {
        self.bar.position()
    }
}

/// Whether bars are drawn at all.
pub fn visible() -> bool {
    std::env::var(env_vars::FERRY_PROGRESS).map_or(true, |v| v != "0")
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
}
