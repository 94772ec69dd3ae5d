//! The functions this handler serves, one module each, as peers: each names its folder (and route), its time
//! budget, and turns one invocation body into the host's reply.
//!
//! A function returns `Ok` for every input it has dealt with for good — stored, ignored, quarantined — and `Err`
//! only when a retry can help; the server turns that into the non-2xx answer that makes the trigger retry.

pub mod archive_recording;
pub mod archive_recording_poison;
pub mod archive_sweep;
mod queue_job;
pub mod recording_event;
pub mod recordings;
pub mod status;

use std::time::Duration;

use async_trait::async_trait;

use crate::archive::archiver::JobError;
use crate::host::InvocationReply;
use crate::store::StoreError;

pub use archive_recording::ArchiveRecording;
pub use archive_recording_poison::ArchiveRecordingPoison;
pub use archive_sweep::ArchiveSweep;
pub use recording_event::RecordingEvent;
pub use recordings::{EraseRecordings, Recordings};
pub use status::Status;

#[async_trait]
pub trait Function: Send + Sync {
    /// The function's folder name, which is also the path the host posts to (exact case, no `/api` prefix).
    fn name(&self) -> &'static str;

    /// How long one invocation may take before it fails, so that the trigger's own retry takes over in time.
    fn budget(&self) -> Duration;

    /// Handles one invocation body; `invocation_id` is the host's id of the invocation, for audit lines.
    async fn invoke(&self, body: &[u8], invocation_id: &str) -> Result<InvocationReply, FunctionError>;
}

/// Why an invocation failed; the trigger delivers its input again.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] JobError),
    #[error("archival is off (no AcsConnection or AcsConnection__endpoint), so the archive job cannot run")]
    ArchivalOff,
    #[error("the invocation did not finish within {0:?}")]
    TimedOut(Duration),
}

impl FunctionError {
    /// True when retries alone will not help: an operator must fix something first.
    pub fn needs_operator(&self) -> bool {
        match self {
            FunctionError::Store(e) => e.needs_operator(),
            FunctionError::Archive(e) => e.needs_operator(),
            FunctionError::ArchivalOff => true,
            FunctionError::TimedOut(_) => false,
        }
    }
}
