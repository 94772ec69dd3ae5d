//! The Azure Functions host's custom-handler protocol, apart from any one function: the invocation envelope and
//! reply ([`invocation`]), the server that answers the host ([`server`]), and how the process stops.
//!
//! The host starts the handler with its port in `FUNCTIONS_CUSTOMHANDLER_PORT`, polls `GET /` until any answer,
//! posts each invocation to `/{function name}`, and stops the handler with SIGKILL. It restarts a worker that exits
//! with a non-zero status, and leaves one that exits with 0 down.

pub mod invocation;
pub mod server;

pub use invocation::InvocationReply;
pub use server::{Forwarded, Readiness, bind_loopback, serve};

use tracing::{error, info};

/// A signal that asks the handler to stop: SIGTERM (a platform stop) or SIGINT (Ctrl-C under `func start`). The
/// host itself never sends one — it uses SIGKILL — so a stop by signal is one it did not ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

impl StopSignal {
    /// The exit status after this signal, by the shell's convention (128 + the signal's number). It is non-zero
    /// on purpose: the host restarts a worker only after a non-zero exit, and would leave the function down after
    /// a 0.
    pub fn exit_status(self) -> u8 {
        match self {
            StopSignal::Terminate => 128 + 15,
            StopSignal::Interrupt => 128 + 2,
        }
    }
}

/// Completes with the first SIGTERM or SIGINT.
pub async fn stop_signal() -> StopSignal {
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
    let signal = tokio::select! {
        _ = terminate => StopSignal::Terminate,
        _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
    };
    info!(?signal, "shutting down: finishing in-flight invocations");
    signal
}
