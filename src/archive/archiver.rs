//! One archive job, end to end: the chunk's metadata, then its content, from ACS into the archive, then the result
//! in the recording document. `ArchiveRecording`, `handler archive` and `handler replay` all run jobs through here.
//!
//! The job names a chunk; everything else comes from the stored document — the chunk's locations as the merged
//! events announced them, and its archive state, which only this handler writes. What becomes of the attempt is
//! decided in one place, [`decide`]: `archived` (both files kept and verified), `expired` (ACS's own host answered
//! 404 or 410, or ACS kept failing after its 24-hour deadline), `failed` (the URLs are not allowed sources), or the
//! job fails and its queue retries it — every error on this side (the archive, the store, a credential, a refused
//! redirect) stays retryable, and becomes `failed` only when the queue gives up. A job for a chunk whose state is
//! final does nothing.

use std::sync::Arc;

use backon::Retryable;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::info;

use super::acs::{DownloadError, RecordingFiles, delete_target};
use super::{Archive, ArchiveError, ArchiveJob, FileKey};
use crate::clock::SharedClock;
use crate::error::error_chain;
use crate::loss;
use crate::recording::{ArchiveStatus, ArchivedFile, ChunkArchive, ChunkUpdate, RecordingDocument, Stored, one_object};
use crate::store::{Edited, RecordingStore, StoreError};

/// Dequeues of a job whose recording is not in the store yet that fail, so that the queue retries them, before the
/// job is acknowledged with nothing to do. A job can arrive before its document is visible to this instance (Cosmos
/// DB's session consistency holds per client, and the queue may hand the job to another instance at once).
const DEQUEUES_BEFORE_NO_DOCUMENT: u32 = 3;

/// Runs archive jobs against one store, one archive and one ACS client.
#[derive(Clone)]
pub struct Archiver {
    store: Arc<dyn RecordingStore>,
    archive: Arc<dyn Archive>,
    acs: Arc<dyn RecordingFiles>,
    /// Delete the chunk's files at ACS once both are archived (`RECORDINGS_DELETE_AFTER_ARCHIVE`).
    delete_after_archive: bool,
    clock: SharedClock,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Archived {
        content: ArchivedFile,
        metadata: ArchivedFile,
    },
    /// The chunk's state was final already.
    AlreadyDone(ArchiveStatus),
    Expired(String),
    Failed {
        reason: String,
        /// A later job may still turn it around (the queue gave up on it before ACS's deadline).
        retryable: bool,
    },
    /// The recording document is gone (or lacks the chunk): nothing to record the result in.
    NoDocument,
    /// The recording was erased: nothing is archived, and the files an attempt of this job kept are removed.
    Erased {
        files_removed: u64,
    },
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
    #[error("the recording is not in the store (yet): the job runs again, in case its event is still being stored")]
    NotStoredYet,
    #[error(
        "an event announced the chunk at other locations while its files were archived: the job runs again, from \
         where the chunk is now"
    )]
    LocationsChanged,
}

impl JobError {
    /// True when someone must fix something before a retry can succeed.
    pub fn needs_operator(&self) -> bool {
        match self {
            JobError::Download(e) => e.needs_operator(),
            JobError::Store(e) => e.needs_operator(),
            JobError::Archive(e) => e.needs_operator(),
            JobError::NotStoredYet | JobError::LocationsChanged => false,
        }
    }
}

/// Decides what an attempt at a chunk's files comes to: the state to record, or the error that makes the queue
/// run the job again.
///
/// - both files archived: `archived`;
/// - ACS's own host answered 404 or 410: `expired` (the files are gone);
/// - a URL is not an allowed source: `failed` (it is never requested, so no retry can help);
/// - past ACS's 24-hour deadline, an error that is ACS's own answer: `expired`;
/// - anything else — ACS before the deadline, and every error on this side at any time: retried.
pub fn decide(
    files: Result<(ArchivedFile, ArchivedFile), JobError>,
    past_deadline: bool,
    attempt: u32,
    now: String,
) -> Result<ChunkArchive, JobError> {
    match files {
        Ok((content, metadata)) => Ok(ChunkArchive::archived(content, metadata, now, attempt)),
        Err(JobError::Download(e @ DownloadError::Gone { .. })) => Ok(ChunkArchive::expired(e.to_string(), attempt)),
        Err(JobError::Download(e)) if e.is_refusal() => Ok(ChunkArchive::failed(e.to_string(), attempt)),
        Err(JobError::Download(e)) if past_deadline && e.is_from_acs() => Ok(ChunkArchive::expired(
            format!(
                "ACS deletes recording files 24 hours after the event, and still answered so after that: {}",
                error_chain(&e)
            ),
            attempt,
        )),
        Err(e) => Err(e),
    }
}

impl Archiver {
    pub fn new(
        store: Arc<dyn RecordingStore>,
        archive: Arc<dyn Archive>,
        acs: Arc<dyn RecordingFiles>,
        delete_after_archive: bool,
    ) -> Self {
        Self {
            store,
            archive,
            acs,
            delete_after_archive,
            clock: crate::clock::system(),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Arc<dyn RecordingStore> {
        &self.store
    }

    /// The archive the files go to.
    pub fn archive(&self) -> &Arc<dyn Archive> {
        &self.archive
    }

    /// Where the files come from: ACS, signed as configured.
    pub fn acs(&self) -> &Arc<dyn RecordingFiles> {
        &self.acs
    }

    /// Runs one job; `attempt` counts this run (the queue's `DequeueCount`). `Err` means: run it again later.
    pub async fn run(&self, job: &ArchiveJob, attempt: u32) -> Result<JobOutcome, JobError> {
        let document = match self.store.lookup(&job.call_id, &job.recording_document_id).await? {
            Some(Stored::Erased(_)) => return self.erased(job).await,
            stored => stored.and_then(Stored::into_recording),
        };
        let Some(locations) = document
            .as_ref()
            .and_then(|document| document.chunk_locations(&job.chunk_document_id))
        else {
            return if attempt < DEQUEUES_BEFORE_NO_DOCUMENT {
                Err(JobError::NotStoredYet)
            } else {
                Ok(JobOutcome::NoDocument)
            };
        };
        let Some(document) = document else {
            return Ok(JobOutcome::NoDocument);
        };
        let state = document.chunk_archive(&job.chunk_document_id);
        if let Some(state) = state.filter(|state| !state.needs_archiving()) {
            return Ok(JobOutcome::AlreadyDone(state.state));
        }
        let (Some(content_url), Some(metadata_url)) = (&locations.content, &locations.metadata) else {
            let reason = "the event announced no contentLocation or metadataLocation for the chunk";
            return self.record(job, ChunkArchive::failed(reason, attempt)).await;
        };
        for url in [metadata_url, content_url] {
            if !self.acs.allows(url) {
                let reason = format!("{url} is not in RECORDINGS_ARCHIVE_SOURCES; it was never requested");
                return self.record(job, ChunkArchive::failed(reason, attempt)).await;
            }
        }
        if one_object(content_url, metadata_url).is_none() {
            let reason = "the chunk's contentLocation and metadataLocation are not files of one object \
                          (…/v1/objects/{id}/content/…); neither was requested";
            return self.record(job, ChunkArchive::failed(reason, attempt)).await;
        }
        // The deadline of the chunk as stored, not as the message says.
        let now = self.clock.now();
        let past_deadline = ArchiveJob::for_chunk(&document, &job.chunk_document_id)
            .and_then(|stored| stored.deadline())
            .is_some_and(|deadline| now > deadline);
        let files = async {
            let metadata = self.archive_file(metadata_url, &FileKey::metadata(job)).await?;
            let content = self.archive_file(content_url, &FileKey::content(job)).await?;
            Ok::<_, JobError>((content, metadata))
        };
        let files = files.await;
        let now = self.clock.now().format(&Rfc3339).unwrap_or_default();
        let mut proposed = decide(files, past_deadline, attempt, now)?;
        let delete = match (&proposed.state, self.delete_after_archive) {
            (ArchiveStatus::Archived, true) => match locations.delete.as_deref() {
                None => {
                    proposed.delete_skipped = Some("the event announced no deleteLocation for the chunk".to_owned());
                    None
                }
                // The object the archived files came from (the result is recorded only when they are the chunk's
                // locations still).
                Some(delete) => match delete_target(content_url, metadata_url, delete) {
                    Ok(target) => Some(target),
                    Err(reason) => {
                        proposed.delete_skipped = Some(reason);
                        None
                    }
                },
            },
            _ => None,
        };
        let skipped = proposed.delete_skipped.clone();
        let outcome = self.record(job, proposed).await?;
        match (delete, &outcome) {
            (Some(target), JobOutcome::Archived { .. }) => self.delete_at_acs(job, target.as_str()).await,
            (None, JobOutcome::Archived { .. }) => {
                if let Some(reason) = skipped {
                    loss::acs_delete_skipped(job.ids(), &reason);
                }
            }
            (_, JobOutcome::Erased { .. }) => return self.erased(job).await,
            _ => {}
        }
        Ok(outcome)
    }

    /// The end of a job whose recording was erased — before it started, or while it downloaded: the chunk's files
    /// are removed from the archive, in case this job (or an earlier attempt of it) committed them after the erase.
    async fn erased(&self, job: &ArchiveJob) -> Result<JobOutcome, JobError> {
        let mut files_removed = 0;
        for key in [FileKey::content(job), FileKey::metadata(job)] {
            if self.archive.remove(&key).await? {
                files_removed += 1;
            }
        }
        info!(
            chunk_id = %job.chunk_document_id,
            files_removed,
            "the recording was erased: nothing archived, and the job is acknowledged"
        );
        Ok(JobOutcome::Erased { files_removed })
    }

    /// A file from the archive when an earlier attempt kept it whole from `url`, otherwise downloaded into it. A
    /// file under its name from another URL (the chunk was announced elsewhere since, or an earlier version wrote it
    /// and did not say) is no file of the chunk's as it is now: no `archived` state names it (a result is recorded only
    /// while its sources are the chunk's locations), so it is removed and the file downloaded again.
    async fn archive_file(&self, url: &str, key: &FileKey) -> Result<ArchivedFile, JobError> {
        if let Some(file) = self.archive.existing(key).await? {
            if file.source.as_deref() == Some(url) {
                return Ok(file);
            }
            info!(
                chunk_id = %key.chunk_id,
                file = %file.location,
                "the archived file came from another location than the chunk's now; it is archived again"
            );
            self.archive.remove(key).await?;
        }
        let mut writer = self.archive.writer(key, url).await?;
        let total = self.acs.download(url, writer.as_mut()).await?;
        let file = writer.commit(Some(total)).await?;
        if file.source.as_deref() != Some(url) {
            // Another writer's file of the same bytes from elsewhere won the name; the next try replaces it.
            return Err(ArchiveError::Busy(file.location).into());
        }
        Ok(file)
    }

    /// Records a result; a chunk it leaves `failed` or `expired` gets its loss record.
    async fn record(&self, job: &ArchiveJob, proposed: ChunkArchive) -> Result<JobOutcome, JobError> {
        let outcome = record(self.store.as_ref(), job, proposed).await?;
        match &outcome {
            JobOutcome::Expired(reason) => loss::chunk_expired(job.ids(), reason),
            JobOutcome::Failed { reason, retryable } => loss::chunk_failed(job.ids(), reason, *retryable),
            _ => {}
        }
        Ok(outcome)
    }

    /// Deletes the chunk's files at ACS. A failure is logged, not retried by the queue: the files are archived,
    /// and ACS deletes them within a day anyway.
    async fn delete_at_acs(&self, job: &ArchiveJob, url: &str) {
        let deleted = (|| self.acs.delete(url))
            .retry(crate::retry::acs_delete())
            .when(|e: &DownloadError| !e.is_refusal())
            .await;
        if let Err(e) = deleted {
            let reason = format!("ACS did not delete the files: {}", error_chain(&e));
            loss::acs_delete_skipped(job.ids(), &reason);
        }
    }
}

/// Records that the queue gave up on a job after its last retry: the chunk is marked `failed`, unless its state
/// became final meanwhile — retryable by the sweep while ACS's deadline has not passed, for good after it (that was
/// its last job).
pub async fn give_up(
    store: &dyn RecordingStore,
    job: &ArchiveJob,
    now: OffsetDateTime,
) -> Result<JobOutcome, JobError> {
    let reason = "archiving failed on every attempt the queue allows (host.json's maxDequeueCount); the \
                  ArchiveRecording function's log has each error, and `handler archive` tries again";
    let past_deadline = match store.read(&job.call_id, &job.recording_document_id).await? {
        Some(document) => ArchiveJob::for_chunk(&document, &job.chunk_document_id)
            .and_then(|stored| stored.deadline())
            .is_some_and(|deadline| now > deadline),
        None => false,
    };
    let state = if past_deadline {
        ChunkArchive::failed(format!("{reason}; ACS's 24 hours had passed"), 0)
    } else {
        ChunkArchive::gave_up(reason, 0)
    };
    record(store, job, state).await
}

/// Merges a result into the chunk's archive state; the outcome is the state the chunk ends in.
pub async fn record(
    store: &dyn RecordingStore,
    job: &ArchiveJob,
    proposed: ChunkArchive,
) -> Result<JobOutcome, JobError> {
    let moved = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let edit = {
        let (chunk_id, proposed, moved) = (job.chunk_document_id.clone(), proposed.clone(), moved.clone());
        Arc::new(move |document: &mut RecordingDocument| {
            let update = document.record_archive(&chunk_id, &proposed);
            moved.store(
                update == ChunkUpdate::LocationsChanged,
                std::sync::atomic::Ordering::Relaxed,
            );
            update == ChunkUpdate::Changed
        })
    };
    let edited = store.edit(&job.call_id, &job.recording_document_id, edit).await?;
    if moved.load(std::sync::atomic::Ordering::Relaxed) && !matches!(edited, Edited::Erased) {
        return Err(JobError::LocationsChanged);
    }
    if matches!(edited, Edited::Erased) {
        return Ok(JobOutcome::Erased { files_removed: 0 });
    }
    let Some(state) = edited
        .document()
        .and_then(|document| document.chunk_archive(&job.chunk_document_id))
    else {
        return Ok(JobOutcome::NoDocument);
    };
    if state.state != proposed.state {
        return Ok(JobOutcome::AlreadyDone(state.state));
    }
    Ok(match (state.state, state.files()) {
        (ArchiveStatus::Archived, Some((content, metadata))) => JobOutcome::Archived { content, metadata },
        (ArchiveStatus::Expired, _) => JobOutcome::Expired(state.reason.unwrap_or_default()),
        (_, _) => JobOutcome::Failed {
            retryable: state.retryable,
            reason: state.reason.unwrap_or_default(),
        },
    })
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
            JobOutcome::Failed { reason, .. } => write!(f, "failed: {reason}"),
            JobOutcome::NoDocument => f.write_str("no such recording or chunk in the store; nothing recorded"),
            JobOutcome::Erased { files_removed } => write!(
                f,
                "the recording was erased: nothing archived ({files_removed} file(s) kept after the erase removed)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use serde_json::json;

    use crate::archive::EmbeddedArchive;
    use crate::clock::SetClock;
    use crate::event::Event;
    use crate::store::MemoryStore;

    const OBJECTS: &str = "https://us-storage.asm.skype.com/v1/objects";

    /// ACS as a test scripts it: each URL's bytes, errors its next downloads get, and every deletion asked for.
    #[derive(Default)]
    struct ScriptedFiles {
        files: HashMap<String, Vec<u8>>,
        failures: Mutex<VecDeque<DownloadError>>,
        /// URLs whose next download answers 503.
        unavailable: Mutex<Vec<String>>,
        deleted: Mutex<Vec<String>>,
    }

    impl ScriptedFiles {
        fn serving(objects: &[&str]) -> Self {
            let mut files = HashMap::new();
            for object in objects {
                files.insert(
                    format!("{OBJECTS}/{object}/content/video"),
                    format!("video of {object}").into_bytes(),
                );
                files.insert(
                    format!("{OBJECTS}/{object}/content/acsmetadata"),
                    format!("{{\"object\": \"{object}\"}}").into_bytes(),
                );
            }
            Self {
                files,
                ..Self::default()
            }
        }

        fn failing_once(self, error: DownloadError) -> Self {
            self.failures.lock().unwrap().push_back(error);
            self
        }
    }

    #[async_trait::async_trait]
    impl RecordingFiles for ScriptedFiles {
        fn allows(&self, url: &str) -> bool {
            url.starts_with(OBJECTS)
        }

        async fn download(&self, url: &str, writer: &mut dyn crate::archive::FileWriter) -> Result<u64, DownloadError> {
            if let Some(error) = self.failures.lock().unwrap().pop_front() {
                return Err(error);
            }
            let unavailable = {
                let mut unavailable = self.unavailable.lock().unwrap();
                let found = unavailable.iter().position(|u| u == url);
                found.map(|i| unavailable.remove(i)).is_some()
            };
            if unavailable {
                return Err(DownloadError::Status { status: 503 });
            }
            let bytes = self.files.get(url).ok_or(DownloadError::Gone { status: 404 })?;
            let from = usize::try_from(writer.offset()).unwrap();
            writer.write(&bytes[from..]).await?;
            Ok(bytes.len() as u64)
        }

        async fn delete(&self, url: &str) -> Result<(), DownloadError> {
            self.deleted.lock().unwrap().push(url.to_owned());
            Ok(())
        }
    }

    /// A recording with one chunk `d0` whose files are ACS's object `object` and whose deletion goes to `delete`,
    /// stored; the job its event queued; and an archiver over it.
    struct Setup {
        store: Arc<MemoryStore>,
        files: Arc<ScriptedFiles>,
        archiver: Archiver,
        job: ArchiveJob,
        _dir: tempfile::TempDir,
    }

    async fn one_chunk(files: ScriptedFiles, object: &str, delete: &str, event_time: &str) -> Setup {
        let chunk = json!({"documentId": "d0", "index": 0,
                           "contentLocation": format!("{OBJECTS}/{object}/content/video"),
                           "metadataLocation": format!("{OBJECTS}/{object}/content/acsmetadata"),
                           "deleteLocation": format!("{OBJECTS}/{delete}")});
        let event = json!({"id": "e1", "topic": "/acs", "subject": "/recording/call/c1/recordingId/r1",
                           "eventType": "Microsoft.Communication.RecordingFileStatusUpdated", "eventTime": event_time,
                           "data": {"recordingStorageInfo": {"recordingChunks": [chunk]}, "recordingFormatType": "Mp4"}});
        let document = RecordingDocument::from_event(Event::parse(&event.to_string()).unwrap())
            .unwrap()
            .with_pending_archives();
        let job = ArchiveJob::for_chunks(&document).remove(0);
        let store = Arc::new(MemoryStore::new());
        store.merge(document).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = Arc::new(EmbeddedArchive::open(dir.path()).unwrap());
        let files = Arc::new(files);
        let archiver = Archiver::new(store.clone(), archive, files.clone(), true);
        Setup {
            store,
            files,
            archiver,
            job,
            _dir: dir,
        }
    }

    fn recent() -> String {
        OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
    }

    fn two_days_ago() -> String {
        (OffsetDateTime::now_utc() - time::Duration::days(2))
            .format(&Rfc3339)
            .unwrap()
    }

    async fn stored_state(setup: &Setup) -> ChunkArchive {
        let document = setup.store.read("c1", "r1").await.unwrap().unwrap();
        document.chunk_archive("d0").unwrap()
    }

    #[tokio::test]
    async fn a_job_archives_the_files_the_stored_chunk_names_and_deletes_their_object() {
        let setup = one_chunk(ScriptedFiles::serving(&["d0", "evil"]), "d0", "d0", &recent()).await;
        // The message names other files: the archiver goes by the stored document.
        let job = ArchiveJob {
            content_location: Some(format!("{OBJECTS}/evil/content/video")),
            delete_location: Some(format!("{OBJECTS}/evil")),
            ..setup.job.clone()
        };
        let outcome = setup.archiver.run(&job, 1).await.unwrap();
        let JobOutcome::Archived { content, metadata } = outcome else {
            panic!("{outcome}");
        };
        let kept = std::fs::read(url::Url::parse(&content.location).unwrap().to_file_path().unwrap()).unwrap();
        assert_eq!(kept, b"video of d0");
        assert_eq!(metadata.bytes, br#"{"object": "d0"}"#.len() as u64);
        assert_eq!(stored_state(&setup).await.files(), Some((content, metadata)));
        assert_eq!(*setup.files.deleted.lock().unwrap(), [format!("{OBJECTS}/d0")]);
        assert_eq!(
            setup.archiver.run(&job, 2).await.unwrap(),
            JobOutcome::AlreadyDone(ArchiveStatus::Archived)
        );
    }

    #[tokio::test]
    async fn another_objects_delete_location_is_never_sent_a_delete_and_the_chunk_says_why() {
        let setup = one_chunk(ScriptedFiles::serving(&["d0"]), "d0", "someone-elses", &recent()).await;
        assert!(matches!(
            setup.archiver.run(&setup.job, 1).await.unwrap(),
            JobOutcome::Archived { .. }
        ));
        assert!(setup.files.deleted.lock().unwrap().is_empty());
        let state = stored_state(&setup).await;
        assert!(state.delete_skipped.unwrap().contains("nothing was deleted"));
    }

    #[tokio::test]
    async fn past_the_deadline_a_refused_credential_is_retried_and_an_acs_error_expires_the_chunk() {
        let ours = ScriptedFiles::serving(&["d0"]).failing_once(DownloadError::Unauthorized { status: 403 });
        let setup = one_chunk(ours, "d0", "d0", &two_days_ago()).await;
        assert!(
            setup.archiver.run(&setup.job, 1).await.is_err(),
            "a refused credential is retried"
        );
        assert_eq!(stored_state(&setup).await.state, ArchiveStatus::Pending);
        assert!(matches!(
            setup.archiver.run(&setup.job, 2).await.unwrap(),
            JobOutcome::Archived { .. }
        ));

        let acs = ScriptedFiles::serving(&["d0"]).failing_once(DownloadError::Status { status: 503 });
        let expiring = one_chunk(acs, "d0", "d0", &two_days_ago()).await;
        assert!(matches!(
            expiring.archiver.run(&expiring.job, 1).await.unwrap(),
            JobOutcome::Expired(_)
        ));
        assert!(
            expiring.files.deleted.lock().unwrap().is_empty(),
            "nothing deleted that is not archived"
        );
    }

    #[tokio::test]
    async fn a_job_before_its_recording_fails_early_and_is_acknowledged_later() {
        let setup = one_chunk(ScriptedFiles::serving(&["d0"]), "d0", "d0", &recent()).await;
        let unknown = ArchiveJob {
            recording_document_id: "not-stored-yet".into(),
            ..setup.job.clone()
        };
        assert!(matches!(
            setup.archiver.run(&unknown, 1).await,
            Err(JobError::NotStoredYet)
        ));
        assert_eq!(setup.archiver.run(&unknown, 3).await.unwrap(), JobOutcome::NoDocument);
    }

    /// The event of `setup`'s recording announcing `d0` at ACS's object `object` at `time`.
    fn announcement(object: &str, time: &str) -> RecordingDocument {
        let chunk = json!({"documentId": "d0", "index": 0,
                           "contentLocation": format!("{OBJECTS}/{object}/content/video"),
                           "metadataLocation": format!("{OBJECTS}/{object}/content/acsmetadata"),
                           "deleteLocation": format!("{OBJECTS}/{object}")});
        let event = json!({"id": format!("e-{object}"), "topic": "/acs", "subject": "/recording/call/c1/recordingId/r1",
                           "eventType": "Microsoft.Communication.RecordingFileStatusUpdated", "eventTime": time,
                           "data": {"recordingStorageInfo": {"recordingChunks": [chunk]}, "recordingFormatType": "Mp4"}});
        RecordingDocument::from_event(Event::parse(&event.to_string()).unwrap())
            .unwrap()
            .with_judged_locations(|url| url.starts_with(OBJECTS))
            .with_pending_archives()
    }

    #[tokio::test]
    async fn a_chunk_announced_elsewhere_after_a_file_was_kept_is_archived_whole_from_its_new_object() {
        let files = ScriptedFiles::serving(&["first", "second"]);
        files
            .unavailable
            .lock()
            .unwrap()
            .push(format!("{OBJECTS}/first/content/video"));
        let setup = one_chunk(files, "first", "first", "2026-11-27T15:20:02Z").await;
        let setup = Setup {
            archiver: setup.archiver.clone().with_clock(SetClock::at(
                OffsetDateTime::parse("2026-11-27T16:00:00Z", &Rfc3339).unwrap(),
            )),
            ..setup
        };
        assert!(
            setup.archiver.run(&setup.job, 1).await.is_err(),
            "the content answered 503: retried, the metadata kept"
        );
        // An earlier announcement at another object arrives: the chunk's locations are now the second object's.
        setup
            .store
            .merge(announcement("second", "2026-11-27T15:20:01Z"))
            .await
            .unwrap();
        let JobOutcome::Archived { content, metadata } = setup.archiver.run(&setup.job, 2).await.unwrap() else {
            panic!("not archived");
        };
        let read = |location: &str| std::fs::read(url::Url::parse(location).unwrap().to_file_path().unwrap()).unwrap();
        assert_eq!(
            read(&metadata.location),
            br#"{"object": "second"}"#,
            "not the first object's metadata"
        );
        assert_eq!(read(&content.location), b"video of second");
        let state = stored_state(&setup).await;
        assert_eq!(
            state.sources(),
            Some((
                Some(format!("{OBJECTS}/second/content/video").as_str()),
                Some(format!("{OBJECTS}/second/content/acsmetadata").as_str())
            ))
        );
        assert_eq!(*setup.files.deleted.lock().unwrap(), [format!("{OBJECTS}/second")]);
    }

    #[tokio::test]
    async fn content_and_metadata_of_two_objects_are_never_archived_together() {
        let setup = one_chunk(ScriptedFiles::serving(&["a", "b"]), "a", "a", &recent()).await;
        let edit: crate::store::Edit = Arc::new(|document: &mut RecordingDocument| {
            document.chunks[0].insert(
                "metadataLocation".into(),
                json!(format!("{OBJECTS}/b/content/acsmetadata")),
            );
            true
        });
        setup.store.edit("c1", "r1", edit).await.unwrap();
        let outcome = setup.archiver.run(&setup.job, 1).await.unwrap();
        assert!(
            matches!(outcome, JobOutcome::Failed { ref reason, .. } if reason.contains("one object")),
            "{outcome}"
        );
        assert!(setup.files.deleted.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn acs_deadline_holds_to_the_second() {
        let announced = OffsetDateTime::parse("2026-11-27T15:20:00Z", &Rfc3339).unwrap();
        for (after, expired) in [(time::Duration::ZERO, false), (time::Duration::SECOND, true)] {
            let acs = ScriptedFiles::serving(&["d0"]).failing_once(DownloadError::Status { status: 503 });
            let setup = one_chunk(acs, "d0", "d0", "2026-11-27T15:20:00Z").await;
            let clock = SetClock::at(announced + time::Duration::hours(24) + after);
            let archiver = setup.archiver.clone().with_clock(clock);
            let outcome = archiver.run(&setup.job, 1).await;
            assert_eq!(
                matches!(outcome, Ok(JobOutcome::Expired(_))),
                expired,
                "{after}: {outcome:?}"
            );
            assert_eq!(outcome.is_err(), !expired, "at the deadline ACS's 503 is retried");
        }
    }

    #[tokio::test]
    async fn past_the_deadline_the_queue_giving_up_fails_the_chunk_for_good() {
        let setup = one_chunk(ScriptedFiles::serving(&["d0"]), "d0", "d0", "2026-11-27T15:20:00Z").await;
        let at = |text: &str| OffsetDateTime::parse(text, &Rfc3339).unwrap();
        give_up(setup.store.as_ref(), &setup.job, at("2026-11-28T15:20:00Z"))
            .await
            .unwrap();
        assert!(
            stored_state(&setup).await.retryable,
            "before the deadline the sweep tries again"
        );
        let late = one_chunk(ScriptedFiles::serving(&["d0"]), "d0", "d0", "2026-11-27T15:20:00Z").await;
        give_up(late.store.as_ref(), &late.job, at("2026-11-28T15:20:01Z"))
            .await
            .unwrap();
        let state = stored_state(&late).await;
        assert_eq!(
            (state.state, state.retryable),
            (ArchiveStatus::Failed, false),
            "its last job was run"
        );
    }

    fn file(name: &str) -> ArchivedFile {
        ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 3,
            sha256: "ab".repeat(32),
            source: None,
        }
    }

    fn now() -> String {
        "2026-11-28T10:00:00Z".to_owned()
    }

    fn download(error: DownloadError) -> Result<(ArchivedFile, ArchivedFile), JobError> {
        Err(JobError::Download(error))
    }

    fn state(decision: Result<ChunkArchive, JobError>) -> Option<ArchiveStatus> {
        decision.ok().map(|archive| archive.state)
    }

    #[test]
    fn archived_files_are_archived_whenever_they_arrive() {
        for past_deadline in [false, true] {
            let decided = decide(Ok((file("c"), file("m"))), past_deadline, 2, now()).unwrap();
            assert_eq!(decided.state, ArchiveStatus::Archived);
            assert_eq!(decided.files(), Some((file("c"), file("m"))));
            assert_eq!(decided.attempts, 2);
        }
    }

    #[test]
    fn only_acs_own_host_can_say_the_files_are_gone() {
        for past_deadline in [false, true] {
            assert_eq!(
                state(decide(
                    download(DownloadError::Gone { status: 404 }),
                    past_deadline,
                    1,
                    now()
                )),
                Some(ArchiveStatus::Expired)
            );
        }
        let elsewhere = || {
            download(DownloadError::Elsewhere {
                origin: "https://cdn.asm.skype.com".into(),
                status: 404,
            })
        };
        assert!(
            decide(elsewhere(), false, 1, now()).is_err(),
            "a redirect target's 404 is retried"
        );
        assert!(decide(elsewhere(), true, 1, now()).is_err(), "even after the deadline");
    }

    #[test]
    fn urls_that_are_not_allowed_sources_fail_at_once() {
        let refused = download(DownloadError::NotAllowed("https://evil.example/x".into()));
        assert_eq!(state(decide(refused, false, 1, now())), Some(ArchiveStatus::Failed));
    }

    #[test]
    fn past_the_deadline_only_acs_answers_expire_the_chunk() {
        let acs_answers = || {
            [
                DownloadError::Status { status: 503 },
                DownloadError::Empty,
                DownloadError::Short {
                    received: 1,
                    expected: 2,
                },
                DownloadError::UnknownLength("a 200 without Content-Length"),
            ]
        };
        for error in acs_answers() {
            let before = decide(download(error), false, 1, now());
            assert!(before.is_err(), "before the deadline ACS's errors are retried");
        }
        for error in acs_answers() {
            let text = error.to_string();
            assert_eq!(
                state(decide(download(error), true, 1, now())),
                Some(ArchiveStatus::Expired),
                "{text}"
            );
        }
        let ours: Vec<JobError> = vec![
            JobError::Archive(ArchiveError::Busy("file:///archive/c".into())),
            JobError::Archive(ArchiveError::Setup("403 from Blob Storage".into())),
            JobError::Download(DownloadError::Archive(ArchiveError::Busy("x".into()))),
            JobError::Download(DownloadError::Unauthorized { status: 403 }),
            JobError::Download(DownloadError::Credential("no token".into())),
            JobError::Download(DownloadError::RedirectRefused {
                origin: "https://evil.example".into(),
            }),
            JobError::Store(StoreError::TimedOut(std::time::Duration::from_secs(1))),
            JobError::NotStoredYet,
        ];
        for error in ours {
            let text = error.to_string();
            assert!(
                decide(Err(error), true, 1, now()).is_err(),
                "an error on this side is retried, never taken for the files being gone: {text}"
            );
        }
    }
}
