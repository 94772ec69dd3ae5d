//! One archive job, end to end: the chunk's metadata, then its content, from ACS into the archive, then the result
//! in the recording document. `ArchiveRecording`, `handler archive` and `handler replay` all run jobs through here.
//!
//! What becomes of a job: the chunk is recorded `archived` (both files kept and verified), `expired` (ACS answered
//! 404 or 410, or the job failed after ACS's 24-hour deadline), or `failed` (its URLs are not allowed sources); or
//! the job fails and its queue retries it. A job for a chunk already archived or expired does nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::warn;

use super::acs::{AcsClient, DownloadError};
use super::{Archive, ArchiveError, ArchiveJob, FileKey};
use crate::error::error_chain;
use crate::recording::{ArchiveStatus, ArchivedFile, ChunkArchive, ChunkUpdate, RecordingDocument};
use crate::store::{Edited, RecordingStore, StoreError};

/// Deletions at ACS tried per job, once both files are archived.
const DELETE_ATTEMPTS: usize = 3;

/// Runs archive jobs against one store, one archive and one ACS client.
#[derive(Clone)]
pub struct Archiver {
    store: Arc<dyn RecordingStore>,
    archive: Arc<dyn Archive>,
    acs: AcsClient,
    /// Delete the chunk's files at ACS once both are archived (`RECORDINGS_DELETE_AFTER_ARCHIVE`).
    delete_after_archive: bool,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Archived {
        content: ArchivedFile,
        metadata: ArchivedFile,
    },
    /// The chunk was archived or expired already.
    AlreadyDone(ArchiveStatus),
    Expired(String),
    Failed(String),
    /// The recording document is gone (or lacks the chunk): nothing to record the result in.
    NoDocument,
}

/// Why a job must run again.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl JobError {
    /// True when someone must fix something before a retry can succeed.
    pub fn needs_operator(&self) -> bool {
        match self {
            JobError::Download(e) => e.needs_operator(),
            JobError::Store(e) => e.needs_operator(),
            JobError::Archive(e) => e.needs_operator(),
        }
    }
}

impl From<JobError> for crate::functions::FunctionError {
    fn from(error: JobError) -> Self {
        crate::functions::FunctionError::Archive(error)
    }
}

impl Archiver {
    pub fn new(
        store: Arc<dyn RecordingStore>,
        archive: Arc<dyn Archive>,
        acs: AcsClient,
        delete_after_archive: bool,
    ) -> Self {
        Self {
            store,
            archive,
            acs,
            delete_after_archive,
        }
    }

    pub fn store(&self) -> &Arc<dyn RecordingStore> {
        &self.store
    }

    /// Runs one job; `attempt` counts this run (the queue's `DequeueCount`). `Err` means: run it again later.
    pub async fn run(&self, job: &ArchiveJob, attempt: u32) -> Result<JobOutcome, JobError> {
        let Some(document) = self.store.read(&job.call_id, &job.recording_document_id).await? else {
            return Ok(JobOutcome::NoDocument);
        };
        let state = document
            .chunk(&job.chunk_document_id)
            .and_then(|chunk| chunk.get("archive"))
            .and_then(ChunkArchive::from_value);
        if let Some(state) = state.filter(|s| matches!(s.state, ArchiveStatus::Archived | ArchiveStatus::Expired)) {
            return Ok(JobOutcome::AlreadyDone(state.state));
        }
        let (Some(content_url), Some(metadata_url)) = (&job.content_location, &job.metadata_location) else {
            let reason = "the event announced no contentLocation or metadataLocation for the chunk";
            return self.record(job, ChunkArchive::failed(reason, attempt)).await;
        };
        for url in [metadata_url, content_url] {
            if !self.acs.allows(url) {
                let reason = format!("{url} is not in RECORDINGS_ARCHIVE_SOURCES; it was never requested");
                return self.record(job, ChunkArchive::failed(reason, attempt)).await;
            }
        }
        let past_deadline = job
            .deadline()
            .is_some_and(|deadline| OffsetDateTime::now_utc() > deadline);
        let files = async {
            let metadata = self.archive_file(metadata_url, &FileKey::metadata(job)).await?;
            let content = self.archive_file(content_url, &FileKey::content(job)).await?;
            Ok::<_, JobError>((content, metadata))
        };
        let (content, metadata) = match files.await {
            Ok(files) => files,
            Err(JobError::Download(e @ DownloadError::Gone { .. })) => {
                return self.record(job, ChunkArchive::expired(e.to_string(), attempt)).await;
            }
            Err(JobError::Download(e)) if e.is_refusal() => {
                return self.record(job, ChunkArchive::failed(e.to_string(), attempt)).await;
            }
            Err(e) if past_deadline => {
                let reason = format!(
                    "ACS deletes recording files 24 hours after the event, and the download failed after that: {}",
                    error_chain(&e)
                );
                return self.record(job, ChunkArchive::expired(reason, attempt)).await;
            }
            Err(e) => return Err(e),
        };
        let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let archived = ChunkArchive::archived(content.clone(), metadata.clone(), now, attempt);
        let outcome = self.record(job, archived).await?;
        if self.delete_after_archive && matches!(outcome, JobOutcome::Archived { .. }) {
            self.delete_at_acs(job).await;
        }
        Ok(outcome)
    }

    /// A file from the archive when an earlier attempt kept it whole, otherwise downloaded into it.
    async fn archive_file(&self, url: &str, key: &FileKey) -> Result<ArchivedFile, JobError> {
        if let Some(file) = self.archive.existing(key).await? {
            return Ok(file);
        }
        let mut writer = self.archive.writer(key).await?;
        let announced = self.acs.download(url, writer.as_mut()).await?;
        Ok(writer.commit(announced).await?)
    }

    async fn record(&self, job: &ArchiveJob, proposed: ChunkArchive) -> Result<JobOutcome, JobError> {
        record(self.store.as_ref(), job, proposed).await
    }

    /// Deletes the chunk's files at ACS. A failure is logged, not retried by the queue: the files are archived,
    /// and ACS deletes them within a day anyway.
    async fn delete_at_acs(&self, job: &ArchiveJob) {
        let Some(url) = &job.delete_location else {
            warn!(chunk_id = %job.chunk_document_id, "the event announced no deleteLocation; the files stay at ACS");
            return;
        };
        let mut last = None;
        for attempt in 0..DELETE_ATTEMPTS {
            match self.acs.delete(url).await {
                Ok(()) => return,
                Err(e) if e.is_refusal() => {
                    last = Some(e);
                    break;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        if let Some(e) = last {
            warn!(
                chunk_id = %job.chunk_document_id,
                error = %error_chain(&e),
                "the chunk is archived but its files could not be deleted at ACS; ACS deletes them within a day"
            );
        }
    }
}

/// Records that the queue gave up on a job after its last retry: the chunk is marked `failed`, unless it was archived
/// or expired meanwhile.
pub async fn give_up(store: &dyn RecordingStore, job: &ArchiveJob) -> Result<JobOutcome, JobError> {
    let reason = "archiving failed on every attempt the queue allows (host.json's maxDequeueCount); the \
                  ArchiveRecording function's log has each error, and `handler archive` tries again";
    record(store, job, ChunkArchive::failed(reason, 0)).await
}

/// Merges a result into the chunk's archive state; the outcome is the state the chunk ends in.
pub async fn record(
    store: &dyn RecordingStore,
    job: &ArchiveJob,
    proposed: ChunkArchive,
) -> Result<JobOutcome, JobError> {
    let resulting: Arc<Mutex<Option<ChunkArchive>>> = Arc::default();
    let edit = {
        let (chunk_id, proposed, resulting) = (job.chunk_document_id.clone(), proposed.clone(), resulting.clone());
        Arc::new(move |document: &mut RecordingDocument| {
            let update = document.record_archive(&chunk_id, &proposed);
            let state = document
                .chunk(&chunk_id)
                .and_then(|chunk| chunk.get("archive"))
                .and_then(ChunkArchive::from_value);
            *resulting.lock().unwrap_or_else(PoisonError::into_inner) = state;
            update == ChunkUpdate::Changed
        })
    };
    let edited = store.edit(&job.call_id, &job.recording_document_id, edit).await?;
    let resulting = resulting.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(state) = resulting.filter(|_| edited != Edited::Missing) else {
        return Ok(JobOutcome::NoDocument);
    };
    if state.state != proposed.state {
        return Ok(JobOutcome::AlreadyDone(state.state));
    }
    Ok(match state.state {
        ArchiveStatus::Archived => JobOutcome::Archived {
            content: file(state.content_location, state.content_bytes, state.content_sha256),
            metadata: file(state.metadata_location, state.metadata_bytes, state.metadata_sha256),
        },
        ArchiveStatus::Expired => JobOutcome::Expired(state.reason.unwrap_or_default()),
        ArchiveStatus::Failed | ArchiveStatus::Pending => JobOutcome::Failed(state.reason.unwrap_or_default()),
    })
}

fn file(location: Option<String>, bytes: Option<u64>, sha256: Option<String>) -> ArchivedFile {
    ArchivedFile {
        location: location.unwrap_or_default(),
        bytes: bytes.unwrap_or_default(),
        sha256: sha256.unwrap_or_default(),
    }
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobOutcome::Archived { content, metadata } => write!(
                f,
                "archived: content in {} ({} bytes), metadata in {}",
                content.location, content.bytes, metadata.location
            ),
            JobOutcome::AlreadyDone(state) => write!(f, "already {}", state.as_str()),
            JobOutcome::Expired(reason) => write!(f, "expired: {reason}"),
            JobOutcome::Failed(reason) => write!(f, "failed: {reason}"),
            JobOutcome::NoDocument => f.write_str("no such recording or chunk in the store; nothing recorded"),
        }
    }
}
