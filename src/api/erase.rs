//! Erasing a call, or one of its recordings, everywhere this product keeps it: the files still at ACS, the
//! recording documents (each replaced by a tombstone, so that no redelivered event or late archive job brings it
//! back), the archived files, and the quarantined payloads that name the call.
//!
//! The order makes every step safe to repeat after a failure: ACS first (a transient failure answers 503 before
//! anything is erased), then the tombstones, then the archive by each erased recording's folder — files whole or
//! not (partial files, staged blocks), also those a job committed after an earlier attempt; a folder still being
//! written fails the erase, to be run again — and, when the whole call is erased, the quarantine.
//! Erasing again finds tombstones and nothing else: zeros.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::warn;

use backon::Retryable;

use crate::archive::acs::{DownloadError, RecordingFiles, delete_target};
use crate::archive::{Archive, ArchiveError, ArchiveJob};
use crate::error::error_chain;
use crate::recording::{ArchiveStatus, RecordingDocument};
use crate::store::{Erasure, RecordingStore, StoreError};

/// What one erase removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    /// Recording documents replaced by tombstones.
    pub recordings: usize,
    /// Whole files removed from the archive.
    pub files: u64,
    /// Chunks whose files ACS was asked to delete and confirmed (or had deleted already).
    pub acs_files: usize,
    /// Quarantined payloads that named the call.
    pub quarantined: usize,
}

/// Why an erase could not finish; erasing again picks up where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("ACS did not delete a chunk's files")]
    Acs(#[from] DownloadError),
    #[error("cannot write the answer")]
    Write(#[source] std::io::Error),
}

/// Where an erase reaches: the store always; the archive and ACS when archival is on.
pub struct Reach<'a> {
    pub store: &'a dyn RecordingStore,
    pub archive: Option<&'a dyn Archive>,
    pub acs: Option<&'a dyn RecordingFiles>,
}

/// Whether `document` is the recording a request names: by its `recordingId` or by its document `id`.
pub fn is_named(document_id: &str, recording_id: Option<&str>, named: &str) -> bool {
    document_id == named || recording_id == Some(named)
}

/// Erases the call's recordings, or only `recording` (its `recordingId` or document id).
pub async fn erase(reach: &Reach<'_>, call_id: &str, recording: Option<&str>) -> Result<Erased, EraseError> {
    let named = |id: &str, recording_id: Option<&str>| recording.is_none_or(|named| is_named(id, recording_id, named));
    let mut documents = reach.store.documents(Some(call_id)).await?;
    documents.retain(|document| named(&document.id, document.recording_id.as_deref()));
    let mut erased = Erased::default();
    let mut deleted_at_acs = Vec::new();
    if let Some(acs) = reach.acs {
        for document in &documents {
            erased.acs_files += delete_at_acs(acs, document, &mut deleted_at_acs).await?;
        }
    }
    let erased_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    for document in &documents {
        if let Erasure::Erased(latest) = reach.store.erase(call_id, &document.id, &erased_at).await? {
            erased.recordings += 1;
            // Chunks an event added between the look above and the tombstone are still at ACS.
            if let Some(acs) = reach.acs {
                erased.acs_files += delete_at_acs(acs, &latest, &mut deleted_at_acs).await?;
            }
        }
    }
    if let Some(archive) = reach.archive {
        // Folder by folder, the erased recordings' and those an earlier, unfinished erase left as tombstones: a
        // recording the call gained meanwhile keeps its files.
        let mut ids: Vec<String> = documents.into_iter().map(|document| document.id).collect();
        for tombstone in reach.store.tombstones(call_id).await? {
            if named(&tombstone.id, tombstone.recording_id.as_deref()) && !ids.contains(&tombstone.id) {
                ids.push(tombstone.id);
            }
        }
        for id in &ids {
            erased.files += archive.erase(call_id, Some(id)).await?;
        }
    }
    // A quarantined payload names a call, not reliably one recording of it: only erasing the whole call removes it.
    if recording.is_none() {
        erased.quarantined = reach.store.erase_quarantined(call_id).await?;
    }
    Ok(erased)
}

/// Asks ACS to delete the files of every chunk of `document` it may still hold (and not in `done` already): within
/// ACS's 24 hours, not known to be gone, at a delete location that passes the rule delete-after-archive follows
/// ([`delete_target`]). Returns how many ACS confirmed, and adds them to `done`. A location that fails the rule is skipped and logged; a transient failure stops the erase.
async fn delete_at_acs(
    acs: &dyn RecordingFiles,
    document: &RecordingDocument,
    done: &mut Vec<String>,
) -> Result<usize, DownloadError> {
    let now = OffsetDateTime::now_utc();
    let mut deleted = 0;
    for (chunk_id, state) in document.archive_states() {
        if state.is_some_and(|state| state.state == ArchiveStatus::Expired) || done.iter().any(|id| id == chunk_id) {
            continue;
        }
        let Some(job) = ArchiveJob::for_chunk(document, chunk_id) else {
            continue;
        };
        if job.deadline().is_some_and(|deadline| now > deadline) {
            continue;
        }
        let (Some(content), Some(metadata), Some(delete)) =
            (&job.content_location, &job.metadata_location, &job.delete_location)
        else {
            continue;
        };
        if !(acs.allows(content) && acs.allows(metadata)) {
            continue;
        }
        let target = match delete_target(content, metadata, delete) {
            Ok(target) => target,
            Err(reason) => {
                warn!(chunk_id, "{reason}");
                continue;
            }
        };
        let result = (|| acs.delete(target.as_str()))
            .retry(crate::retry::acs_delete())
            .when(|e: &DownloadError| !e.is_refusal() && !e.needs_operator())
            .await;
        match result {
            Ok(()) => {
                deleted += 1;
                done.push(chunk_id.to_owned());
            }
            Err(e) if e.is_refusal() || e.needs_operator() => {
                warn!(chunk_id, error = %error_chain(&e), "ACS refused to delete the chunk's files; ACS deletes them within a day");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
