//! Log output: human-readable lines by default, JSON lines when asked, on the streams each reader expects.
//!
//! The Functions host reads a worker's two streams differently: every stdout line is logged at Information, every
//! stderr line at Warning when it contains "warn" and at Error otherwise. So when serving, TRACE, DEBUG and INFO
//! lines go to stdout and WARN and ERROR lines to stderr; anything else would turn normal traffic into errors in
//! Application Insights. A command run from a terminal (`replay`, `archive`) keeps stdout for its report and writes
//! every log line to stderr, as command-line tools do.
//!
//! Lines are written by a thread per stream, so that a host slow to drain a pipe never stalls the threads that
//! answer invocations. Each line is written as soon as that thread receives it — nothing is held back in a buffer —
//! because the host stops workers with SIGKILL, and a line still buffered then would be lost. When a thread falls
//! [`BUFFERED_LINES`] behind, callers wait rather than lose lines.

use std::io::IsTerminal;

use tracing::Level;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::LogFormat;

/// Log lines handed to a writer thread and not yet written; a few hundred KiB at most.
const BUFFERED_LINES: usize = 4096;

/// Which streams the log lines go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Serving the Functions host: INFO and below on stdout, WARN and ERROR on stderr.
    ByLevel,
    /// A command in a terminal: every line on stderr, stdout left to the command's report.
    StderrOnly,
}

/// Keeps the writer threads alive; dropping it writes out the lines they still hold and stops them.
#[must_use = "dropping the guard stops log output"]
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

/// Installs the global subscriber; a second call (as in tests) leaves the first in place. Keep the guard until the
/// process ends.
pub fn init(format: LogFormat, filter: &str, streams: Streams) -> LogGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (stderr, stderr_guard) = writer_thread(std::io::stderr(), "log-stderr");
    match streams {
        Streams::StderrOnly => {
            install(format, filter, stderr, std::io::stderr().is_terminal());
            LogGuard {
                _guards: vec![stderr_guard],
            }
        }
        Streams::ByLevel => {
            let (stdout, stdout_guard) = writer_thread(std::io::stdout(), "log-stdout");
            // `with_max_level(WARN)` admits WARN and ERROR: tracing orders levels from ERROR (most severe) up.
            let writer = stderr.with_max_level(Level::WARN).or_else(stdout);
            let ansi = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
            install(format, filter, writer, ansi);
            LogGuard {
                _guards: vec![stderr_guard, stdout_guard],
            }
        }
    }
}

fn writer_thread<W: std::io::Write + Send + 'static>(stream: W, name: &str) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name(name)
        .finish(stream)
}

fn install<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}
