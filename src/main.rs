//! `handler`: serves the Functions host, or replays Event Grid JSON files into the configured store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acs_recording_handler::config::{Config, CosmosConfig, Purpose, StoreConfig};
use acs_recording_handler::http::{self, Limits};
use acs_recording_handler::pipeline::{AllowedSources, Pipeline};
use acs_recording_handler::store::{CosmosStore, EmbeddedStore, MemoryStore, RecordingStore};
use acs_recording_handler::{replay, telemetry};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

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
    let cli = Cli::parse();
    let purpose = match cli.command {
        Some(Command::Replay { .. }) => Purpose::Replay,
        _ => Purpose::Serve,
    };
    let config = match Config::from_env(purpose) {
        Ok(config) => config,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::from(2);
        }
    };
    let _log_writer = telemetry::init(config.log_format, &config.log_filter);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // The port is taken before the store opens (which can take seconds while Cosmos DB is unreachable), so that
        // the host's port is never free for another process meanwhile; its requests wait in the backlog.
        let listener = match cli.command {
            Some(Command::Replay { .. }) => None,
            _ => match bind(config.port.unwrap_or_default()).await {
                Some(listener) => Some(listener),
                None => return ExitCode::FAILURE,
            },
        };
        let store = match open_store(&config.store).await {
            Ok(store) => store,
            Err(message) => {
                error!("{message}");
                return ExitCode::FAILURE;
            }
        };
        let pipeline =
            Pipeline::new(store).with_allowed_sources(config.allowed_sources.clone().map(AllowedSources::new));
        match (cli.command, listener) {
            (Some(Command::Replay { files }), _) => run_replay(&pipeline, &files).await,
            (_, Some(listener)) => run_server(listener, pipeline).await,
            (_, None) => ExitCode::FAILURE,
        }
    })
}

async fn open_store(config: &StoreConfig) -> Result<Arc<dyn RecordingStore>, String> {
    match config {
        StoreConfig::Embedded { data_dir } => {
            let store = EmbeddedStore::open(data_dir)
                .map_err(|e| format!("cannot open the embedded store: {}", http::error_chain(&e)))?;
            info!(data_dir = %data_dir.display(), "recordings are kept in the embedded store");
            let sweeper = store.clone();
            tokio::task::spawn_blocking(move || sweeper.remove_abandoned_temp_files());
            Ok(Arc::new(store))
        }
        StoreConfig::Cosmos(cosmos) => {
            let store = connect_cosmos(cosmos).await?;
            info!(
                endpoint = %cosmos.endpoint,
                database = %cosmos.database,
                container = %cosmos.container,
                quarantine_container = %cosmos.quarantine_container,
                "recordings are kept in Cosmos DB"
            );
            Ok(Arc::new(store))
        }
        StoreConfig::Memory => {
            warn!(
                "RECORDINGS_STORE=memory: recordings are kept in memory only and LOST when the handler stops; \
                 every event is acknowledged all the same. For benchmarks and tests only, never for real events"
            );
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

/// How long startup keeps trying to reach Cosmos DB through transient failures; the host waits about 30–60 s for a
/// new worker to answer, and Event Grid keeps the events meanwhile.
const COSMOS_STARTUP_PATIENCE: Duration = Duration::from_secs(20);

/// Connects to Cosmos DB, retrying transient failures (throttling, an outage) for a while; a configuration problem
/// (authorization, a missing container) stops at once.
async fn connect_cosmos(config: &CosmosConfig) -> Result<CosmosStore, String> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(250);
    loop {
        match CosmosStore::connect(config).await {
            Ok(store) => return Ok(store),
            Err(e) if !e.needs_operator() && started.elapsed() + wait < COSMOS_STARTUP_PATIENCE => {
                warn!(error = %http::error_chain(&e), "cannot reach Cosmos DB yet; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(4));
            }
            Err(e) => return Err(format!("cannot open the Cosmos DB store: {}", http::error_chain(&e))),
        }
    }
}

async fn bind(port: u16) -> Option<TcpListener> {
    match http::bind_loopback(port).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            error!(error = %e, port, "cannot listen on 127.0.0.1");
            None
        }
    }
}

async fn run_server(listener: TcpListener, pipeline: Pipeline) -> ExitCode {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    info!(port, "listening on 127.0.0.1 for the Functions host");
    http::serve(listener, pipeline, Limits::default(), shutdown_signal()).await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGTERM (the host stopping the worker) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    info!("shutting down: finishing in-flight invocations");
}

async fn run_replay(pipeline: &Pipeline, files: &[PathBuf]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let summary = match replay::replay(pipeline, files, &mut stdout).await {
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
