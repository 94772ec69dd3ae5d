//! The archive sweep: what a lost job leaves behind is found and queued again.
//!
//! A job can be lost between the store and the queue — a host that dies after a successful answer but before it
//! writes the output, a message removed by hand — and a chunk whose job is lost stays `pending` while ACS's 24-hour
//! clock runs. So a timer (`ArchiveSweep`, every ten minutes) reads, a page at a time, the recordings with a chunk
//! still `pending`, or `failed` and retryable (the queue gave up on it), and queues one job for each such chunk
//! that is old enough that its own job should have run ([`SETTLE`]).
//!
//! A chunk's age and deadline count from its own announcement (`announcedAt`: the earliest event that announced it,
//! never later than when the handler received that event), so no event can make a chunk look too recent to sweep.
//! A chunk past ACS's deadline is queued too: that last job settles it — archived if ACS still serves the files,
//! `expired` on ACS's 404 (or on any error of ACS's after the deadline), `failed` for good if the queue gives up on
//! it — so that no chunk stays in the sweep's working set for ever. A chunk whose event was delivered late is swept on
//! its first sweep, while its own job may still be running; jobs are idempotent, so that costs at most a duplicate.
//!
//! A pending chunk with less than the at-risk time (`RECORDINGS_AT_RISK_HOURS`) left before ACS's deadline, or past
//! it, is one whose job has not run: the sweep lists it, for the `chunk_at_risk` and `chunk_past_deadline` records
//! ([`crate::loss`]), by the same rule the health summary counts it ([`crate::health::risk`]).

use time::OffsetDateTime;

use super::ArchiveJob;
use crate::health::{self, Risk};
use crate::recording::{ArchiveStatus, RecordingDocument};

/// How long after its announcement a chunk is left to its own job before the sweep queues another.
pub const SETTLE: time::Duration = time::Duration::minutes(15);

/// The most jobs one sweep queues; the next sweep takes the rest (the host writes every message of an answer
/// before it acknowledges the timer).
pub const MAX_JOBS: usize = 1000;

/// The recordings one page of the sweep's reading holds.
pub const PAGE: usize = 100;

/// What one sweep found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// One job per chunk to queue again, at most [`MAX_JOBS`].
    pub jobs: Vec<ArchiveJob>,
    /// Chunks to sweep that are too recent: their own job may still run.
    pub settling: usize,
    /// Of the jobs, those for chunks past ACS's deadline: their last.
    pub past_deadline: usize,
    /// Chunks to sweep left for the next sweep, beyond [`MAX_JOBS`].
    pub deferred: usize,
    /// Whether recordings were left unread because the sweep had its share of jobs.
    pub unread: bool,
    /// Pending chunks at risk or past ACS's deadline, with the deadline, each read once.
    pub at_risk: Vec<(ArchiveJob, Risk, OffsetDateTime)>,
    /// Pending chunks read, and the earliest announcement among them.
    pub pending: usize,
    pub oldest_pending: Option<OffsetDateTime>,
    /// How long before ACS's deadline a pending chunk is at risk.
    risk_window: time::Duration,
}

impl Default for Sweep {
    fn default() -> Self {
        Self {
            jobs: Vec::new(),
            settling: 0,
            past_deadline: 0,
            deferred: 0,
            unread: false,
            at_risk: Vec::new(),
            pending: 0,
            oldest_pending: None,
            risk_window: health::DEFAULT_AT_RISK,
        }
    }
}

impl Sweep {
    /// A sweep that finds pending chunks at risk `window` before ACS's deadline.
    pub fn with_risk_window(window: time::Duration) -> Self {
        Self {
            risk_window: window,
            ..Self::default()
        }
    }

    /// Adds the jobs to queue for one page of `documents` at `now`.
    pub fn add(&mut self, documents: &[RecordingDocument], now: OffsetDateTime) {
        for document in documents {
            for (chunk_id, state) in document.archive_states() {
                let Some(state) = state.filter(|state| state.needs_sweeping()) else {
                    continue;
                };
                let Some(job) = ArchiveJob::for_chunk(document, chunk_id) else {
                    continue;
                };
                if state.state == ArchiveStatus::Pending {
                    self.pending += 1;
                    if let Some(announced) = job.event_instant() {
                        self.oldest_pending =
                            Some(self.oldest_pending.map_or(announced, |oldest| oldest.min(announced)));
                    }
                    let deadline = job.deadline();
                    let risk = health::risk(deadline, now, self.risk_window);
                    if let (Risk::AtRisk | Risk::PastDeadline, Some(deadline)) = (risk, deadline) {
                        self.at_risk.push((job.clone(), risk, deadline));
                    }
                }
                let settled = |time: OffsetDateTime| time.checked_add(SETTLE).is_some_and(|settled| settled <= now);
                if job.event_instant().is_some_and(|time| !settled(time)) {
                    self.settling += 1;
                } else if self.jobs.len() >= MAX_JOBS {
                    self.deferred += 1;
                } else {
                    if job.deadline().is_some_and(|deadline| deadline < now) {
                        self.past_deadline += 1;
                    }
                    self.jobs.push(job);
                }
            }
        }
    }

    /// Whether the sweep has its share of jobs: it reads no further.
    pub fn is_full(&self) -> bool {
        self.jobs.len() >= MAX_JOBS
    }
}

/// The jobs to queue for `documents` at `now`.
pub fn sweep(documents: &[RecordingDocument], now: OffsetDateTime) -> Sweep {
    let mut sweep = Sweep::default();
    sweep.add(documents, now);
    sweep
}

impl std::fmt::Display for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "archive sweep: {} chunk(s) queued again ({} past ACS's deadline, for a last try), {} too recent, {} left \
             for the next sweep{}",
            self.jobs.len(),
            self.past_deadline,
            self.settling,
            self.deferred,
            if self.unread {
                ", and recordings not read yet"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::job::ACS_RETENTION;
    use crate::event::Event;
    use crate::recording::{ArchivedFile, ChunkArchive};
    use serde_json::json;
    use time::format_description::well_known::Rfc3339;

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

    /// The moment the tests sweep at.
    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-11-28T12:00:00Z", &Rfc3339).unwrap()
    }

    fn before(duration: time::Duration) -> String {
        (now() - duration).format(&Rfc3339).unwrap()
    }

    fn counts(sweep: &Sweep) -> (usize, usize, usize, usize) {
        (sweep.jobs.len(), sweep.settling, sweep.past_deadline, sweep.deferred)
    }

    #[test]
    fn pending_and_retryable_failed_chunks_are_queued_once_settled_and_past_the_deadline_for_a_last_try() {
        let file = |name: &str| ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 1,
            sha256: "00".repeat(32),
            source: None,
        };
        let mut settled = recording(
            "r1",
            &before(time::Duration::minutes(20)),
            &["pending", "archived", "gave-up", "refused", "expired"],
        );
        settled.record_archive(
            "archived",
            &ChunkArchive::archived(file("c"), file("m"), before(time::Duration::ZERO), 1),
        );
        settled.record_archive("gave-up", &ChunkArchive::gave_up("the queue gave up", 10));
        settled.record_archive("refused", &ChunkArchive::failed("not an allowed source", 1));
        settled.record_archive("expired", &ChunkArchive::expired("gone", 1));
        let recent = recording("r2", &before(time::Duration::minutes(5)), &["recent"]);
        let old = recording("r3", &before(time::Duration::hours(25)), &["too-late"]);
        let sweep = sweep(&[settled, recent, old], now());
        assert_eq!(ids(&sweep), ["pending", "gave-up", "too-late"]);
        assert_eq!(counts(&sweep), (3, 1, 1, 0));
    }

    #[test]
    fn the_settle_time_and_the_deadline_hold_to_the_second() {
        let one = |age: time::Duration| sweep(&[recording("r1", &before(age), &["d0"])], now());
        let second = time::Duration::SECOND;
        assert_eq!(
            counts(&one(SETTLE - second)),
            (0, 1, 0, 0),
            "a second before it settles"
        );
        assert_eq!(counts(&one(SETTLE)), (1, 0, 0, 0), "settled");
        assert_eq!(counts(&one(ACS_RETENTION)), (1, 0, 0, 0), "at the deadline");
        assert_eq!(
            counts(&one(ACS_RETENTION + second)),
            (1, 0, 1, 0),
            "a second past it: a last job"
        );
        assert_eq!(SETTLE, time::Duration::minutes(15));
        assert_eq!(ACS_RETENTION, time::Duration::hours(24));
    }

    #[test]
    fn each_chunk_counts_from_its_own_announcement() {
        let early = recording("r1", &before(time::Duration::minutes(30)), &["early"]);
        let late = recording("r1", &before(time::Duration::minutes(1)), &["late"]);
        let merged = early.merge(late);
        let sweep = sweep(&[merged], now());
        assert_eq!(
            ids(&sweep),
            ["early"],
            "the late chunk's event does not hold the early one back"
        );
        assert_eq!(sweep.settling, 1);
    }

    #[test]
    fn a_future_dated_event_cannot_hide_a_chunk_from_the_sweep() {
        let mut document = recording("r1", "9999-12-31T23:59:59.9999999Z", &["d0"]);
        let received = now() - time::Duration::minutes(20);
        assert_eq!(document.received_at(received).len(), 1, "the time is clamped");
        assert_eq!(ids(&sweep(&[document.clone()], now())), ["d0"]);
        // Announced again, later, by an event within the clocks' skew: the earlier announcement stays.
        let mut again = recording("r1", &before(time::Duration::ZERO), &["d0"]);
        assert!(again.received_at(now()).is_empty(), "a time within the skew is kept");
        assert_eq!(ids(&sweep(&[document.merge(again)], now())), ["d0"]);
    }

    #[test]
    fn a_sweep_queues_at_most_its_share_and_leaves_the_rest_for_the_next() {
        let chunks: Vec<String> = (0..MAX_JOBS + 5).map(|i| format!("d{i}")).collect();
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let sweep = sweep(&[recording("r1", &before(time::Duration::minutes(20)), &chunks)], now());
        assert_eq!((sweep.jobs.len(), sweep.deferred), (MAX_JOBS, 5));
        assert!(sweep.is_full());
    }

    #[test]
    fn pending_chunks_close_to_or_past_acs_deadline_are_listed_at_risk_by_the_window() {
        let hours = time::Duration::hours;
        let mut gave_up = recording("r4", &before(hours(20)), &["gave-up"]);
        gave_up.record_archive("gave-up", &ChunkArchive::gave_up("the queue gave up", 10));
        let documents = [
            recording("r1", &before(hours(17)), &["safe"]),
            recording("r2", &before(hours(19)), &["at-risk"]),
            recording("r3", &before(hours(25)), &["past"]),
            gave_up,
        ];
        let listed = |window: time::Duration| {
            let mut sweep = Sweep::with_risk_window(window);
            sweep.add(&documents, now());
            sweep
                .at_risk
                .iter()
                .map(|(job, risk, deadline)| (job.chunk_document_id.clone(), *risk, *deadline))
                .collect::<Vec<_>>()
        };
        let deadline = |age: time::Duration| now() - age + ACS_RETENTION;
        assert_eq!(
            listed(hours(6)),
            [
                ("at-risk".to_owned(), Risk::AtRisk, deadline(hours(19))),
                ("past".to_owned(), Risk::PastDeadline, deadline(hours(25)))
            ],
            "pending chunks only: the retryable failure had its own record"
        );
        assert_eq!(
            listed(hours(1)).len(),
            1,
            "five hours left is safe with a window of one"
        );
        assert_eq!(Sweep::default().risk_window, hours(6));
        let mut all = Sweep::default();
        all.add(&documents, now());
        assert_eq!(all.pending, 3, "the retryable failure is not pending");
        assert_eq!(all.oldest_pending, Some(now() - hours(25)));
    }

    #[test]
    fn times_at_the_edges_of_the_calendar_never_panic() {
        // (time, jobs, settling, past the deadline)
        for (time, expected) in [
            ("9999-12-31T23:59:59.9999999Z", (0, 1, 0, 0)),
            ("0000-01-01T00:00:00+01:00", (1, 0, 1, 0)),
            ("not a time", (1, 0, 0, 0)),
        ] {
            let sweep = sweep(&[recording("r1", time, &["d0"])], now());
            assert_eq!(counts(&sweep), expected, "{time}");
        }
    }
}
