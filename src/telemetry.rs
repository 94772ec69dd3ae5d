//! Log output: human-readable lines by default, JSON lines when asked, always on stderr (the host collects both
//! streams; `handler replay` keeps stdout for its report).
//!
//! Lines are written by a thread of their own, so that a host slow to drain the pipe never stalls the threads that
//! answer invocations; when that thread falls [`BUFFERED_LINES`] behind, callers wait rather than lose lines.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Log lines held for the writer thread; a few hundred KiB at most.
const BUFFERED_LINES: usize = 4096;

/// Installs the global subscriber; a second call (as in tests) leaves the first in place. Keep the guard until the
/// process ends: dropping it writes out the lines still buffered.
#[must_use = "dropping the guard stops log output"]
pub fn init(format: LogFormat, filter: &str) -> WorkerGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
    guard
}
