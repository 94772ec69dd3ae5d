//! `ArchiveRecording`: the queue trigger on `recording-archive`. Each invocation carries one archive job — one
//! chunk — which the [`Archiver`] runs: downloaded, kept, verified and recorded, or retried by the queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::warn;

use super::{Function, FunctionError};
use crate::archive::job::dequeue_count;
use crate::archive::{ArchiveJob, Archiver};
use crate::host::InvocationReply;
use crate::host::invocation::{self, InvocationError};
use crate::quarantine::QuarantineEntry;
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

    async fn invoke(&self, body: &[u8]) -> Result<InvocationReply, FunctionError> {
        let (job, metadata) = match read(body, TRIGGER) {
            Ok(read) => read,
            Err(reason) => return quarantine(self.store.as_ref(), body, reason).await,
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

/// The job and the message's metadata from a queue trigger invocation.
pub(super) fn read(body: &[u8], binding: &'static str) -> Result<(ArchiveJob, Option<Value>), String> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "Metadata", default)]
        metadata: Option<Value>,
        #[serde(rename = "Data", borrow)]
        _data: &'a RawValue,
    }
    let value = invocation::binding_value(body, binding).map_err(|e: InvocationError| e.to_string())?;
    let job = ArchiveJob::from_binding(value).map_err(|e| e.to_string())?;
    let metadata = serde_json::from_slice::<Envelope<'_>>(body)
        .ok()
        .and_then(|e| e.metadata);
    Ok((job, metadata))
}

/// Keeps a message that is not a job in quarantine, and acknowledges it: no retry can make it one.
pub(super) async fn quarantine(
    store: &dyn RecordingStore,
    body: &[u8],
    reason: String,
) -> Result<InvocationReply, FunctionError> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let entry = QuarantineEntry::new(invocation::quarantine_payload(body), reason, now);
    let line = format!("quarantined as {}: {}", entry.id, entry.reason);
    store.quarantine(entry).await?;
    warn!("{line}");
    Ok(InvocationReply::with_log(line))
}
