//! A real headless browser for tests of ferry's HTML reports: Debian's `chromium`, installed
//! on first use when the machine has none.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Command;

/// Where Debian puts the browser.
const CANDIDATES: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];

/// The lock that serialises installs between test processes.
const LOCK: &str = "ferry-chromium-install.lock";

fn found() -> Option<PathBuf> {
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The path of the `chromium` binary. When there is none, installs Debian's package
/// (`apt-get update && apt-get install -y chromium`) once, under a file lock so that
/// parallel tests install it once. Panics with a sentence when it cannot.
pub fn chromium() -> PathBuf {
    if let Some(p) = found() {
        return p;
    }
    let lock_path = std::env::temp_dir().join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if let Some(p) = found() {
        return p;
    }
    for args in [&["update"][..], &["install", "-y", "chromium"][..]] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| panic!("chromium is not installed and apt-get cannot run: {e}"));
        assert!(
            out.status.success(),
            "chromium is not installed and `apt-get {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(lock);
    found()
        .unwrap_or_else(|| panic!("apt-get installed chromium, but none of {CANDIDATES:?} exists"))
}

/// Runs headless chromium on a local HTML file: its DOM after rendering, and a PNG
/// screenshot written to `screenshot`.
pub fn render(html: &std::path::Path, screenshot: &std::path::Path) -> String {
    let bin = chromium();
    let url = format!("file://{}", html.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
    ];
    let dom = Command::new(&bin)
        .args(common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        dom.status.success(),
        "chromium --dump-dom {url} failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = Command::new(&bin)
        .args(common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1280,2400")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        shot.status.success(),
        "chromium --screenshot {url} failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}
