//! `handler`: serves the Functions host, or replays Event Grid JSON files into the configured store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acs_recording_handler::config::{Config, Purpose};
use acs_recording_handler::error::error_chain;
use acs_recording_handler::functions::{Function, RecordingEvent};
use acs_recording_handler::host::{self, Readiness};
use acs_recording_handler::pipeline::{AllowedSources, Pipeline};
use acs_recording_handler::telemetry::{self, Streams};
use acs_recording_handler::{replay, store};
use clap::{Parser, Subcommand};
use tokio::sync::oneshot;
use tracing::{error, info};

/// Persists Azure Communication Services recording events delivered by Event Grid through Azure Functions.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Functions host on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (the default).
    Serve,
    /// Push Event Grid JSON files (one event, an array, or a dead-letter blob) into the configured store.
    Replay {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let (purpose, streams) = match command {
        Command::Serve => (Purpose::Serve, Streams::ByLevel),
        Command::Replay { .. } => (Purpose::Replay, Streams::StderrOnly),
    };
    let config = match Config::from_env(purpose) {
        Ok(config) => config,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::from(2);
        }
    };
    let _logs = telemetry::init(config.log_format, &config.log_filter, streams);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match command {
            Command::Serve => serve(config).await,
            Command::Replay { files } => run_replay(config, &files).await,
        }
    })
}

/// Serves the host until SIGTERM or SIGINT, then exits with the status the host reads as "restart me".
async fn serve(config: Config) -> ExitCode {
    // The port is taken before the store opens (which can take seconds while Cosmos DB is unreachable), so that the
    // host's port is never free for another process meanwhile; its requests wait in the backlog.
    let listener = match host::bind_loopback(config.port.unwrap_or_default()).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(error = %e, port = config.port, "cannot listen on 127.0.0.1");
            return ExitCode::FAILURE;
        }
    };
    let Some(pipeline) = pipeline(&config).await else {
        return ExitCode::FAILURE;
    };
    let functions: Vec<Arc<dyn Function>> = vec![Arc::new(RecordingEvent::new(pipeline))];
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    info!(port, "listening on 127.0.0.1 for the Functions host");
    let (stopped, signal) = oneshot::channel();
    let shutdown = async move {
        let _ = stopped.send(host::stop_signal().await);
    };
    let readiness = Readiness {
        worker_id: config.worker_id,
    };
    host::serve(listener, functions, readiness, shutdown).await;
    let status = signal.await.map_or(1, |signal| signal.exit_status());
    info!(status, "stopped");
    ExitCode::from(status)
}

async fn pipeline(config: &Config) -> Option<Pipeline> {
    match store::open(&config.store, config.app_root.as_deref()).await {
        Ok(store) => {
            Some(Pipeline::new(store).with_allowed_sources(config.allowed_sources.clone().map(AllowedSources::new)))
        }
        Err(e) => {
            error!(error = %error_chain(&e), "cannot open the recording store");
            None
        }
    }
}

async fn run_replay(config: Config, files: &[PathBuf]) -> ExitCode {
    let Some(pipeline) = pipeline(&config).await else {
        return ExitCode::FAILURE;
    };
    let mut stdout = std::io::stdout().lock();
    let summary = match replay::replay(&pipeline, files, &mut stdout).await {
        Ok(summary) => summary,
        Err(e) => {
            error!(error = %e, "cannot write the replay report");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = writeln!(stdout, "{summary}") {
        error!(error = %e, "cannot write the replay report");
    }
    if summary.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
