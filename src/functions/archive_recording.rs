//! `ArchiveRecording`: the queue trigger on `recording-archive`. Each invocation carries one archive job — one
//! chunk — which the [`Archiver`] runs: downloaded, kept, verified and recorded, or retried by the queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Function, FunctionError, queue_job};
use crate::archive::Archiver;
use crate::archive::job::dequeue_count;
use crate::host::InvocationReply;
use crate::store::RecordingStore;

/// The function's folder and route.
pub const NAME: &str = "ArchiveRecording";
/// The trigger binding's name in `ArchiveRecording/function.json`.
pub const TRIGGER: &str = "archiveJob";

/// The time allowed for one job: a 1.5 GB chunk (ACS's largest) at a modest few MB/s, and under host.json's
/// `functionTimeout` (one hour), so that the handler answers before the host gives up on it — a function timeout
/// kills the worker with every invocation in flight.
const BUDGET: Duration = Duration::from_secs(55 * 60);

pub struct ArchiveRecording {
    store: Arc<dyn RecordingStore>,
    /// `None` when archival is off: a job that still arrives (queued before it was switched off) fails, so that the
    /// queue keeps it, retries it, and finally hands it to `ArchiveRecordingPoison`, which records the chunk failed.
    archiver: Option<Archiver>,
}

impl ArchiveRecording {
    pub fn new(store: Arc<dyn RecordingStore>, archiver: Option<Archiver>) -> Self {
        Self { store, archiver }
    }
}

#[async_trait]
impl Function for ArchiveRecording {
    fn name(&self) -> &'static str {
        NAME
    }

    fn budget(&self) -> Duration {
        BUDGET
    }

    async fn invoke(&self, body: &[u8], _invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        let (job, metadata) = match queue_job::read(body, TRIGGER) {
            Ok(read) => read,
            Err(reason) => return queue_job::quarantine(self.store.as_ref(), body, reason).await,
        };
        let span = tracing::Span::current();
        span.record("recording_id", job.recording_document_id.as_str());
        span.record("chunk_id", job.chunk_document_id.as_str());
        let archiver = self.archiver.as_ref().ok_or(FunctionError::ArchivalOff)?;
        let outcome = archiver.run(&job, dequeue_count(metadata.as_ref())).await?;
        Ok(InvocationReply::with_log(format!(
            "chunk {} of recording {} of call {}: {outcome}",
            job.chunk_document_id, job.recording_document_id, job.call_id
        )))
    }
}
