//! Logging set-up: human-readable by default, JSON lines for machines, filtered by
//! `RUST_LOG` or `--verbose`, and every line passed through [`crate::redact::redact`].

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("log format `{other}` is not `text` or `json`")),
        }
    }
}

/// Installs the global subscriber writing to stderr. `verbosity` 0 is `info` for ferry's
/// crates and `warn` for the rest; 1 is `debug`; 2 and more is `trace`. `RUST_LOG` wins when
/// set. Calling it twice is harmless (the second call does nothing).
pub fn init(format: LogFormat, verbosity: u8) {
    let default = match verbosity {
        0 => "warn,ferry=info,ferry_core=info,ferry_schema=info,ferry_import=info,ferry_transfer=info,ferry_validate=info,ferry_rollback=info,ferry_phases=info,xtask=info",
        1 => "info,ferry_core=debug,ferry_schema=debug,ferry_import=debug,ferry_transfer=debug,ferry_validate=debug,ferry_rollback=debug,ferry_phases=debug,xtask=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(verbosity > 0);
    let _ = match format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A stderr writer that redacts each formatted event before it reaches the terminal.
#[derive(Debug, Clone, Copy)]
pub struct RedactingStderr;

/// Buffers one event and writes it redacted when dropped.
#[derive(Debug)]
pub struct RedactingLine(Vec<u8>);

impl Write for RedactingLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = io::stderr().write_all(crate::redact::redact(&text).as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine(Vec::with_capacity(256))
    }
}
