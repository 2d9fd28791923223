//! Peak resident set sizes for the benches' summaries.

/// This process's peak resident set (`VmHWM`), in MiB.
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The summary line every bench that runs ferry in its own process ends with.
pub(crate) fn print_own_peak(what: &str) {
    match peak_rss_mb() {
        Some(mb) => println!("peak RSS of this process ({what}): {mb:.0} MiB"),
        None => println!("peak RSS of this process ({what}): not measured (no /proc)"),
    }
}

/// A command that runs `exe` under `/usr/bin/time`, which writes the child's peak resident
/// set in KiB to `out` (or `exe` itself, with a warning, when `/usr/bin/time` is missing);
/// read it back with [`read_peak_kib`].
pub(crate) fn timed_command(exe: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let time = std::path::Path::new("/usr/bin/time");
    if time.is_file() {
        let mut c = std::process::Command::new(time);
        c.arg("-f").arg("%M").arg("-o").arg(out).arg(exe);
        c
    } else {
        eprintln!("warning: /usr/bin/time is missing; peak RSS is not measured");
        std::process::Command::new(exe)
    }
}

/// The peak resident set a [`timed_command`] recorded, in KiB.
pub(crate) fn read_peak_kib(out: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(out).ok()?;
    text.lines().rev().find_map(|l| l.trim().parse().ok())
}
