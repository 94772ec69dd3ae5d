//! The archive sweep: what a lost job leaves behind is found and queued again.
//!
//! A job can be lost between the store and the queue — a host that dies after a successful answer but before it
//! writes the output, a message removed by hand — and a chunk whose job is lost stays `pending` while ACS's 24-hour
//! clock runs. So a timer (`ArchiveSweep`, every ten minutes) asks the store for the recordings with a chunk still
//! `pending`, or `failed` and retryable (the queue gave up on it), and queues one job for each such chunk that is
//! old enough that its own job should have run ([`SETTLE`]) and young enough that ACS still keeps its files.
//!
//! The chunk's age is taken from its event's time, as its deadline is: the store keeps no time of its own for a
//! chunk (a stored time would differ on every delivery and break the merge's idempotence). An event delivered late
//! is therefore swept on its first sweep, while its own job may still be running; jobs are idempotent, so that costs
//! at most a duplicate job.

use time::OffsetDateTime;

use super::ArchiveJob;
use crate::recording::RecordingDocument;

/// How long after its event a chunk is left to its own job before the sweep queues another.
pub const SETTLE: time::Duration = time::Duration::minutes(15);

/// The most jobs one sweep queues; the next sweep takes the rest (the host writes every message of an answer
/// before it acknowledges the timer).
pub const MAX_JOBS: usize = 1000;

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// One job per chunk to queue again, at most [`MAX_JOBS`].
    pub jobs: Vec<ArchiveJob>,
    /// Chunks to sweep that are too recent: their own job may still run.
    pub settling: usize,
    /// Chunks to sweep past ACS's deadline, left as they are (`handler archive` says so too).
    pub past_deadline: usize,
    /// Chunks to sweep left for the next sweep, beyond [`MAX_JOBS`].
    pub deferred: usize,
}

/// The jobs to queue for `documents` at `now`.
pub fn sweep(documents: &[RecordingDocument], now: OffsetDateTime) -> Sweep {
    let mut sweep = Sweep::default();
    for document in documents {
        for (chunk_id, state) in document.archive_states() {
            if !state.is_some_and(|state| state.needs_sweeping()) {
                continue;
            }
            let Some(job) = ArchiveJob::for_chunk(document, chunk_id) else {
                continue;
            };
            let settled = |time: OffsetDateTime| time.checked_add(SETTLE).is_some_and(|settled| settled <= now);
            if job.event_instant().is_some_and(|time| !settled(time)) {
                sweep.settling += 1;
            } else if job.deadline().is_some_and(|deadline| deadline < now) {
                sweep.past_deadline += 1;
            } else if sweep.jobs.len() >= MAX_JOBS {
                sweep.deferred += 1;
            } else {
                sweep.jobs.push(job);
            }
        }
    }
    sweep
}

impl std::fmt::Display for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "archive sweep: {} chunk(s) queued again, {} too recent, {} past ACS's deadline, {} left for the next sweep",
            self.jobs.len(),
            self.settling,
            self.past_deadline,
            self.deferred
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::recording::{ArchivedFile, ChunkArchive};
    use serde_json::json;
    use time::format_description::well_known::Rfc3339;

    fn at(minutes_ago: i64) -> String {
        (OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago))
            .format(&Rfc3339)
            .unwrap()
    }

    fn recording(id: &str, time: &str, chunks: &[&str]) -> RecordingDocument {
        let chunks: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"documentId": id, "index": i,
                       "contentLocation": format!("https://us-storage.asm.skype.com/v1/objects/{id}/content/video"),
                       "metadataLocation": format!("https://us-storage.asm.skype.com/v1/objects/{id}/content/acsmetadata")})
            })
            .collect();
        let event = json!({"id": "e1", "topic": "/acs", "subject": format!("/recording/call/c1/recordingId/{id}"),
                           "eventType": "Microsoft.Communication.RecordingFileStatusUpdated", "eventTime": time,
                           "data": {"recordingStorageInfo": {"recordingChunks": chunks}}});
        RecordingDocument::from_event(Event::parse(&event.to_string()).unwrap())
            .unwrap()
            .with_pending_archives()
    }

    fn ids(sweep: &Sweep) -> Vec<&str> {
        sweep.jobs.iter().map(|job| job.chunk_document_id.as_str()).collect()
    }

    #[test]
    fn pending_and_retryable_failed_chunks_between_settling_and_the_deadline_are_queued() {
        let file = |name: &str| ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 1,
            sha256: "00".repeat(32),
        };
        let mut settled = recording("r1", &at(20), &["pending", "archived", "gave-up", "refused", "expired"]);
        settled.record_archive("archived", &ChunkArchive::archived(file("c"), file("m"), at(0), 1));
        settled.record_archive("gave-up", &ChunkArchive::gave_up("the queue gave up", 10));
        settled.record_archive("refused", &ChunkArchive::failed("not an allowed source", 1));
        settled.record_archive("expired", &ChunkArchive::expired("gone", 1));
        let recent = recording("r2", &at(5), &["recent"]);
        let old = recording("r3", &at(25 * 60), &["too-late"]);
        let sweep = sweep(&[settled, recent, old], OffsetDateTime::now_utc());
        assert_eq!(ids(&sweep), ["pending", "gave-up"]);
        assert_eq!((sweep.settling, sweep.past_deadline, sweep.deferred), (1, 1, 0));
    }

    #[test]
    fn a_sweep_queues_at_most_its_share_and_leaves_the_rest_for_the_next() {
        let chunks: Vec<String> = (0..MAX_JOBS + 5).map(|i| format!("d{i}")).collect();
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let sweep = sweep(&[recording("r1", &at(20), &chunks)], OffsetDateTime::now_utc());
        assert_eq!((sweep.jobs.len(), sweep.deferred), (MAX_JOBS, 5));
    }

    #[test]
    fn times_at_the_edges_of_the_calendar_never_panic() {
        for time in [
            "9999-12-31T23:59:59.9999999Z",
            "0000-01-01T00:00:00+01:00",
            "not a time",
        ] {
            let sweep = sweep(&[recording("r1", time, &["d0"])], OffsetDateTime::now_utc());
            assert_eq!(sweep.jobs.len() + sweep.settling + sweep.past_deadline, 1, "{time}");
        }
    }
}
