//! Log output: human-readable lines by default, JSON lines when asked, on the streams each reader expects.
//!
//! The Functions host reads a worker's two streams differently: every stdout line is logged at Information, every
//! stderr line at Warning when it contains "warn" and at Error otherwise. So when serving, TRACE, DEBUG and INFO
//! lines go to stdout and WARN and ERROR lines to stderr; anything else would turn normal traffic into errors in
//! Application Insights. A command run from a terminal (`replay`, `archive`) keeps stdout for its report and writes
//! every log line to stderr, as command-line tools do.
//!
//! Each line is written to its stream by the thread that logs it, whole, before that thread goes on: the host stops
//! workers with SIGKILL, often right after an invocation's answer, and a line still waiting in a buffer or a queue
//! then would be lost — a warning that a recording is at risk among them. Once in the pipe, a line outlives the
//! process: the host reads it after the kill. A host that stopped draining the pipe would hold up the threads that
//! log until it drains again; the host reads both streams for as long as the worker runs.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::LogFormat;

/// Which streams the log lines go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Serving the Functions host: INFO and below on stdout, WARN and ERROR on stderr.
    ByLevel,
    /// A command in a terminal: every line on stderr, stdout left to the command's report.
    StderrOnly,
}

/// Installs the global subscriber; a second call (as in tests) leaves the first in place.
pub fn init(format: LogFormat, filter: &str, streams: Streams) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    match streams {
        Streams::StderrOnly => install(format, filter, std::io::stderr, std::io::stderr().is_terminal()),
        Streams::ByLevel => {
            // `with_max_level(WARN)` admits WARN and ERROR: tracing orders levels from ERROR (most severe) up.
            let writer = std::io::stderr.with_max_level(Level::WARN).or_else(std::io::stdout);
            let ansi = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
            install(format, filter, writer, ansi);
        }
    }
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
