//! `handler`: serves the Functions host, replays Event Grid JSON files into the configured store, or archives what
//! the store still has to archive.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acs_recording_handler::api::{Linker, RecordingsApi};
use acs_recording_handler::archive::{self, Archiver};
use acs_recording_handler::commands::{self, Summary};
use acs_recording_handler::config::{ACS_VARIABLES, Config, Purpose};
use acs_recording_handler::error::error_chain;
use acs_recording_handler::functions::{
    ArchiveRecording, ArchiveRecordingPoison, ArchiveSweep, EraseRecordings, Function, RecordingEvent, Recordings,
    Status,
};
use acs_recording_handler::health::Health;
use acs_recording_handler::host::{self, Forwarded, Readiness};
use acs_recording_handler::pipeline::{AllowedSources, Pipeline};
use acs_recording_handler::store::{self, ListFilter, RecordingStore};
use acs_recording_handler::telemetry::{self, Streams};
use clap::{Parser, Subcommand};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// Persists Azure Communication Services recording events delivered by Event Grid through Azure Functions, and
/// archives every recording's files before ACS deletes them.
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
    /// Push Event Grid JSON files (one event, an array, or a dead-letter blob) into the configured store, and
    /// archive their chunks when archival is on.
    Replay {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Store the events only; leave their chunks pending for the Functions host to archive.
        #[arg(long)]
        no_archive: bool,
    },
    /// Archive every chunk in the store that is pending or failed and not past ACS's 24-hour deadline.
    Archive {
        /// Only this call's recordings.
        #[arg(long, value_name = "ID")]
        call: Option<String>,
    },
    /// Print the stored recordings as JSON (`{"recordings": […], "continuationToken": null}`).
    Recordings {
        /// Only this call's recordings.
        #[arg(long, value_name = "ID")]
        call: Option<String>,
        /// Only the recordings that name this server call id.
        #[arg(long, value_name = "ID")]
        server_call: Option<String>,
        /// Only the recordings with a chunk in this archive state.
        #[arg(long, value_name = "STATE", value_parser = ["pending", "archived", "expired", "failed", "external"])]
        archive_state: Option<String>,
        /// Give every archived chunk read links to its files (valid RECORDINGS_LINK_MINUTES).
        #[arg(long)]
        links: bool,
    },
    /// Print the health summary as JSON: recordings and tombstones, chunks by archive state, the oldest pending
    /// chunk, pending chunks at risk (RECORDINGS_AT_RISK_HOURS before ACS's deadline) and quarantined payloads.
    Status,
    /// Erase a call's recordings, or one recording, everywhere: the files still at ACS, the documents (each leaves
    /// a tombstone, so that a redelivered event cannot bring it back), the archived files, and the quarantined
    /// payloads that name the call. Prints the counts as JSON.
    Erase {
        #[arg(long, value_name = "ID")]
        call: String,
        /// Only this recording (its recordingId or document id).
        #[arg(long, value_name = "ID")]
        recording: Option<String>,
    },
}

/// What archival is, once set up.
enum Archival {
    On(Archiver),
    Off,
}

/// The one line that says archival is off, and what that means.
const ARCHIVAL_OFF: &str = "archival is off: ACS deletes recording files 24 hours after the event, and they are not \
                            archived; set AcsConnection (the ACS connection string) or AcsConnection__endpoint to \
                            archive them";

fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let (purpose, streams) = match command {
        Command::Serve => (Purpose::Serve, Streams::ByLevel),
        Command::Replay { .. }
        | Command::Archive { .. }
        | Command::Recordings { .. }
        | Command::Status
        | Command::Erase { .. } => (Purpose::Replay, Streams::StderrOnly),
    };
    let config = match Config::from_env(purpose) {
        Ok(config) => config,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_filter, streams);
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
            Command::Replay { files, no_archive } => run_replay(config, &files, no_archive).await,
            Command::Archive { call } => run_archive(config, call.as_deref()).await,
            Command::Recordings {
                call,
                server_call,
                archive_state,
                links,
            } => {
                let filter = ListFilter {
                    call_id: call,
                    server_call_id: server_call,
                    archive_state: archive_state.and_then(|state| serde_json::from_value(state.into()).ok()),
                };
                run_recordings(config, &filter, links).await
            }
            Command::Status => run_status(config).await,
            Command::Erase { call, recording } => run_erase(config, &call, recording.as_deref()).await,
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
    let Some((pipeline, archival)) = open(&config).await else {
        return ExitCode::FAILURE;
    };
    let store = pipeline.store().clone();
    let api = recordings_api(store.clone(), &archival, &config);
    let archival_on = matches!(archival, Archival::On(_));
    let archiver = match archival {
        Archival::On(archiver) => Some(archiver),
        Archival::Off => {
            warn!("{ARCHIVAL_OFF}");
            None
        }
    };
    let health = Health::new(store.clone(), config.at_risk);
    let functions: Vec<Arc<dyn Function>> = vec![
        Arc::new(RecordingEvent::new(pipeline)),
        Arc::new(ArchiveRecording::new(store.clone(), archiver)),
        Arc::new(ArchiveRecordingPoison::new(store.clone())),
        Arc::new(ArchiveSweep::new(store, archival_on).with_at_risk(config.at_risk)),
        Arc::new(Recordings::new(api.clone())),
        Arc::new(EraseRecordings::new(api.clone())),
        Arc::new(Status::new(health.clone())),
    ];
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    info!(port, "listening on 127.0.0.1 for the Functions host");
    let (stopped, signal) = oneshot::channel();
    let shutdown = async move {
        let _ = stopped.send(host::stop_signal().await);
    };
    let readiness = Readiness {
        worker_id: config.worker_id,
    };
    host::serve(listener, functions, Forwarded { api, health }, readiness, shutdown).await;
    let status = signal.await.map_or(1, |signal| signal.exit_status());
    info!(status, "stopped");
    ExitCode::from(status)
}

/// The recordings API over the store, with the archive's read links and ACS when archival is on.
fn recordings_api(store: Arc<dyn RecordingStore>, archival: &Archival, config: &Config) -> RecordingsApi {
    let api = RecordingsApi::new(store);
    match (archival, &config.archive) {
        (Archival::On(archiver), Some(archive)) => api.with_archive(
            Linker {
                archive: archiver.archive().clone(),
                lifetime: archive.link_lifetime,
            },
            archiver.acs().clone(),
        ),
        _ => api,
    }
}

/// Opens the store, and sets archival up when configured.
async fn open(config: &Config) -> Option<(Pipeline, Archival)> {
    let store = match store::open(&config.store, config.app_root.as_deref()).await {
        Ok(store) => store,
        Err(e) => {
            error!(error = %error_chain(&e), "cannot open the recording store");
            return None;
        }
    };
    let archival = match &config.archive {
        Some(archive) => match archive::open(archive, store.clone()).await {
            Ok(archiver) => Archival::On(archiver),
            Err(e) => {
                error!(error = %error_chain(&e), "cannot set archival up");
                return None;
            }
        },
        None => Archival::Off,
    };
    let pipeline = Pipeline::new(store)
        .with_allowed_sources(config.allowed_sources.clone().map(AllowedSources::new))
        .with_archival(
            config
                .archive
                .as_ref()
                .filter(|_| matches!(archival, Archival::On(_)))
                .map(|archive| archive.sources.clone()),
        );
    Some((pipeline, archival))
}

async fn run_replay(config: Config, files: &[PathBuf], no_archive: bool) -> ExitCode {
    let Some((pipeline, archival)) = open(&config).await else {
        return ExitCode::FAILURE;
    };
    let mut stdout = std::io::stdout().lock();
    let archiver = match &archival {
        Archival::On(archiver) if !no_archive => Some(archiver),
        Archival::On(_) => None,
        Archival::Off => {
            let _ = writeln!(stdout, "{ARCHIVAL_OFF}");
            None
        }
    };
    let summary = commands::replay::replay(&pipeline, archiver, files, &mut stdout).await;
    finish(summary, &mut stdout)
}

async fn run_archive(config: Config, call: Option<&str>) -> ExitCode {
    let Some((_, archival)) = open(&config).await else {
        return ExitCode::FAILURE;
    };
    let Archival::On(archiver) = archival else {
        eprintln!(
            "archival is off: set {} (the ACS connection string) or {} to archive",
            ACS_VARIABLES[0], ACS_VARIABLES[1]
        );
        return ExitCode::from(2);
    };
    let mut stdout = std::io::stdout().lock();
    let summary = commands::archive::archive(&archiver, call, &mut stdout).await;
    finish(summary, &mut stdout)
}

async fn run_recordings(config: Config, filter: &ListFilter, links: bool) -> ExitCode {
    let Some((pipeline, archival)) = open(&config).await else {
        return ExitCode::FAILURE;
    };
    let api = match &archival {
        Archival::On(_) if links => recordings_api(pipeline.store().clone(), &archival, &config),
        Archival::Off if links => {
            eprintln!(
                "archival is off, so there is no archive to link to: set {} or {}",
                ACS_VARIABLES[0], ACS_VARIABLES[1]
            );
            return ExitCode::from(2);
        }
        _ => RecordingsApi::new(pipeline.store().clone()),
    };
    let mut stdout = std::io::stdout().lock();
    match commands::recordings::recordings(&api, filter, &mut stdout).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %error_chain(&e), "cannot list the recordings");
            ExitCode::FAILURE
        }
    }
}

async fn run_status(config: Config) -> ExitCode {
    let store = match store::open(&config.store, config.app_root.as_deref()).await {
        Ok(store) => store,
        Err(e) => {
            error!(error = %error_chain(&e), "cannot open the recording store");
            return ExitCode::FAILURE;
        }
    };
    match Health::new(store, config.at_risk).status().await {
        Ok(status) => {
            let json = serde_json::to_string_pretty(&status).unwrap_or_default();
            match writeln!(std::io::stdout().lock(), "{json}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!(error = %e, "cannot write the summary");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            error!(error = %error_chain(&e), "cannot read the health summary");
            ExitCode::FAILURE
        }
    }
}

async fn run_erase(config: Config, call_id: &str, recording_id: Option<&str>) -> ExitCode {
    let Some((pipeline, archival)) = open(&config).await else {
        return ExitCode::FAILURE;
    };
    if matches!(archival, Archival::Off) {
        warn!("archival is off: only the store is erased; archived files and files at ACS are left as they are");
    }
    let api = recordings_api(pipeline.store().clone(), &archival, &config);
    let mut stdout = std::io::stdout().lock();
    match commands::recordings::erase(&api, call_id, recording_id, &mut stdout).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %error_chain(&e), "the erase did not finish; run it again");
            ExitCode::FAILURE
        }
    }
}

/// Writes a command's summary line last, and exits with success only when everything went through.
fn finish(summary: std::io::Result<impl Summary>, out: &mut impl Write) -> ExitCode {
    let summary = match summary.and_then(|summary| writeln!(out, "{summary}").map(|()| summary)) {
        Ok(summary) => summary,
        Err(e) => {
            error!(error = %e, "cannot write the report");
            return ExitCode::FAILURE;
        }
    };
    if summary.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
