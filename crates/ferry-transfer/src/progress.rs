//! Progress bars, one per table being copied (rows/s, MB/s, ETA), drawn together on stderr
//! when it is a terminal; hidden otherwise (same rule as `ferry_core::progress`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone)]
pub struct Bars {
    multi: MultiProgress,
}

impl Bars {
    pub fn new(show: bool) -> Self {
        let target = if show && ferry_core::progress::visible() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    pub fn table(&self, label: &str, total: u64) -> TableBar {
        let bar = self.multi.add(ProgressBar::new(total));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} rows {msg} ETA {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(crate::ident::prefix(label, 20).to_owned());
        TableBar {
            bar,
            started: Instant::now(),
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TableBar {
    bar: ProgressBar,
    started: Instant,
    bytes: Arc<AtomicU64>,
}

impl TableBar {
    pub fn add(&self, rows: u64, bytes: u64) {
        self.bar.inc(rows);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mb = self.bytes.load(Ordering::Relaxed) as f64 / secs / 1_048_576.0;
        self.bar.set_message(format!(
            "{:.0} rows/s {mb:.1} MB/s",
            self.bar.position() as f64 / secs
        ));
    }

    /// Takes back rows counted by an attempt that was rolled back.
    pub fn undo(&self, rows: u64, bytes: u64) {
        self.bar
            .set_position(self.bar.position().saturating_sub(rows));
        self.bytes.fetch_sub(
            bytes.min(self.bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }

    pub fn set_done(&self, rows: u64) {
        self.bar.set_position(rows);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
