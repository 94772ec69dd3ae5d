//! `ArchiveRecordingPoison`: the queue trigger on `recording-archive-poison`, where the host moves an archive job
//! after its last retry. It marks the chunk `failed` with the reason, so that the recording document always tells
//! the truth — unless the chunk was archived or expired meanwhile, which the merge rule keeps — and writes the
//! `archive_job_poisoned` record ([`crate::loss`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Function, FunctionError, queue_job};
use crate::archive::JobOutcome;
use crate::archive::archiver::give_up;
use crate::clock::SharedClock;
use crate::host::InvocationReply;
use crate::loss;
use crate::store::RecordingStore;

/// The function's folder and route.
pub const NAME: &str = "ArchiveRecordingPoison";
/// The trigger binding's name in `ArchiveRecordingPoison/function.json`.
pub const TRIGGER: &str = "poisonJob";

/// One document write: well inside any timeout.
const BUDGET: Duration = Duration::from_secs(60);

pub struct ArchiveRecordingPoison {
    store: Arc<dyn RecordingStore>,
    clock: SharedClock,
}

impl ArchiveRecordingPoison {
    pub fn new(store: Arc<dyn RecordingStore>) -> Self {
        Self {
            store,
            clock: crate::clock::system(),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl Function for ArchiveRecordingPoison {
    fn name(&self) -> &'static str {
        NAME
    }

    fn budget(&self) -> Duration {
        BUDGET
    }

    async fn invoke(&self, body: &[u8], _invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        let (job, _) = match queue_job::read(body, TRIGGER) {
            Ok(read) => read,
            Err(reason) => return queue_job::quarantine(self.store.as_ref(), body, reason).await,
        };
        let span = tracing::Span::current();
        span.record("recording_id", job.recording_document_id.as_str());
        span.record("chunk_id", job.chunk_document_id.as_str());
        let outcome = give_up(self.store.as_ref(), &job, self.clock.now()).await?;
        if let JobOutcome::Failed { reason, retryable } = &outcome {
            loss::archive_job_poisoned(job.ids(), reason, *retryable);
        }
        Ok(InvocationReply::with_log(format!(
            "chunk {} of recording {} of call {}: {outcome}",
            job.chunk_document_id, job.recording_document_id, job.call_id
        )))
    }
}
