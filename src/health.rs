//! The health summary an operator asks for (`handler status`, `GET /api/status`): how many recordings and tombstones
//! the store holds, every chunk by archive state, the oldest chunk still pending, how many pending chunks are at
//! risk, and how many payloads are in quarantine. Counts are exact: every store reads what it must for them
//! ([`crate::store::RecordingStore::status`]).
//!
//! Each store reads one [`RecordingSummary`] per recording (the Cosmos DB store has the server project it), and a
//! [`Tally`] adds them up. The rule for "at risk" is here too, so that the summary and the archive sweep's records
//! agree: a pending chunk is at risk when less than `RECORDINGS_AT_RISK_HOURS` is left before ACS's deadline,
//! 24 hours after its announcement — or when the deadline has passed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::archive::job::ACS_RETENTION;
use crate::clock::SharedClock;
use crate::event::EventTime;
use crate::recording::{ArchiveStatus, RecordingDocument};
use crate::store::{RecordingStore, StoreError};

/// How long before ACS's deadline a pending chunk counts as at risk, when `RECORDINGS_AT_RISK_HOURS` is unset.
pub const DEFAULT_AT_RISK: time::Duration = time::Duration::hours(6);

/// The summary, as `handler status` prints it and `GET /api/status` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Recording documents (tombstones not counted).
    pub recordings: u64,
    /// Chunks by archive state; a chunk without one (stored while archival was off) is in none.
    pub chunks: StateCounts,
    /// The pending chunk announced first, whose files ACS deletes first.
    pub oldest_pending: Option<PendingChunk>,
    /// Pending chunks with less than the at-risk time left before ACS's deadline, or past it.
    pub at_risk: u64,
    /// Payloads in quarantine.
    pub quarantined: u64,
    /// Erased recordings whose tombstone is still kept.
    pub tombstones: u64,
}

/// Chunks in each archive state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub pending: u64,
    pub archived: u64,
    pub failed: u64,
    pub expired: u64,
    pub external: u64,
}

impl StateCounts {
    fn add(&mut self, other: &StateCounts) {
        self.pending += other.pending;
        self.archived += other.archived;
        self.failed += other.failed;
        self.expired += other.expired;
        self.external += other.external;
    }

    fn count(&mut self, state: ArchiveStatus) {
        match state {
            ArchiveStatus::Pending => self.pending += 1,
            ArchiveStatus::Archived => self.archived += 1,
            ArchiveStatus::Failed => self.failed += 1,
            ArchiveStatus::Expired => self.expired += 1,
            ArchiveStatus::External => self.external += 1,
        }
    }
}

/// A pending chunk, as the summary names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingChunk {
    pub call_id: String,
    /// The recording document's id, as the recordings API and `handler erase` take it.
    pub recording_id: String,
    /// The chunk's `documentId`.
    pub document_id: String,
    /// When it was announced, as stored.
    pub announced_at: String,
    /// When ACS deletes its files (RFC 3339, UTC); `null` when the announcement time cannot be read.
    pub deadline: Option<String>,
}

/// What the summary needs of one stored item: a recording's counts and its pending chunks, or a tombstone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingSummary {
    pub call_id: String,
    pub id: String,
    /// False for a tombstone.
    pub recording: bool,
    /// The recording's first event time: the announcement of a chunk an earlier version stored without one.
    #[serde(default)]
    pub first_event_time: Option<String>,
    #[serde(flatten)]
    pub states: StateCounts,
    /// The pending chunks: `{documentId, announcedAt}`, as stored.
    #[serde(default)]
    pub pending_chunks: Vec<Map<String, Value>>,
}

impl RecordingSummary {
    /// A recording document's summary. A chunk counts in a state when it has a `documentId` (a chunk without one
    /// is never archived) and its `archive.state` names the state — the same rule the Cosmos DB store's query has.
    pub fn of(document: &RecordingDocument) -> Self {
        let mut summary = Self {
            call_id: document.call_id.clone(),
            id: document.id.clone(),
            recording: true,
            first_event_time: document.first_event_time.clone(),
            ..Self::default()
        };
        for chunk in &document.chunks {
            if !matches!(chunk.get("documentId"), Some(Value::String(_))) {
                continue;
            }
            let state = chunk
                .get(crate::recording::ARCHIVE_FIELD)
                .and_then(|archive| archive.get("state"))
                .cloned()
                .and_then(|state| serde_json::from_value::<ArchiveStatus>(state).ok());
            let Some(state) = state else {
                continue;
            };
            summary.states.count(state);
            if state == ArchiveStatus::Pending {
                let kept: Map<String, Value> = ["documentId", "announcedAt"]
                    .into_iter()
                    .filter_map(|field| Some((field.to_owned(), chunk.get(field)?.clone())))
                    .collect();
                summary.pending_chunks.push(kept);
            }
        }
        summary
    }

    /// A tombstone's summary.
    pub fn tombstone(call_id: &str, id: &str) -> Self {
        Self {
            call_id: call_id.to_owned(),
            id: id.to_owned(),
            ..Self::default()
        }
    }
}

/// Where a pending chunk stands against ACS's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// More than the at-risk time is left.
    Safe,
    /// Less than the at-risk time is left.
    AtRisk,
    /// ACS's deadline has passed.
    PastDeadline,
    /// The announcement time cannot be read (or lies at the calendar's end): no deadline is known.
    Unknown,
}

/// When ACS deletes the files of a chunk announced at `announced_at`: 24 hours later.
pub fn deadline(announced_at: &str) -> Option<OffsetDateTime> {
    EventTime::instant(announced_at)?.checked_add(ACS_RETENTION)
}

/// Where a pending chunk whose deadline is `deadline` stands at `now`, with `window` the at-risk time.
pub fn risk(deadline: Option<OffsetDateTime>, now: OffsetDateTime, window: time::Duration) -> Risk {
    match deadline {
        None => Risk::Unknown,
        Some(deadline) if deadline < now => Risk::PastDeadline,
        Some(deadline) if deadline - now < window => Risk::AtRisk,
        Some(_) => Risk::Safe,
    }
}

/// A deadline as the summary and the records write it: RFC 3339, UTC.
pub fn format_time(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Adds up the summaries of a store's items into a [`Status`] at `now`.
#[derive(Debug, Clone)]
pub struct Tally {
    now: OffsetDateTime,
    window: time::Duration,
    status: Status,
    /// The oldest pending chunk so far, by deadline (a chunk whose deadline is unknown only when none is known).
    oldest: Option<(Option<OffsetDateTime>, PendingChunk)>,
}

impl Tally {
    pub fn new(now: OffsetDateTime, window: time::Duration) -> Self {
        Self {
            now,
            window,
            status: Status::default(),
            oldest: None,
        }
    }

    pub fn add(&mut self, summary: &RecordingSummary) {
        if !summary.recording {
            self.status.tombstones += 1;
            return;
        }
        self.status.recordings += 1;
        self.status.chunks.add(&summary.states);
        for chunk in &summary.pending_chunks {
            let announced_at = match chunk.get("announcedAt") {
                Some(Value::String(time)) => Some(time.as_str()),
                _ => summary.first_event_time.as_deref(),
            };
            let deadline = announced_at.and_then(deadline);
            if matches!(risk(deadline, self.now, self.window), Risk::AtRisk | Risk::PastDeadline) {
                self.status.at_risk += 1;
            }
            let pending = PendingChunk {
                call_id: summary.call_id.clone(),
                recording_id: summary.id.clone(),
                document_id: chunk
                    .get("documentId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                announced_at: announced_at.unwrap_or_default().to_owned(),
                deadline: deadline.map(format_time),
            };
            self.consider(deadline, pending);
        }
    }

    pub fn add_quarantined(&mut self, count: u64) {
        self.status.quarantined += count;
    }

    /// The oldest pending chunk is the one whose files ACS deletes first; of equal deadlines, the first by ids, so
    /// that every store names the same one.
    fn consider(&mut self, deadline: Option<OffsetDateTime>, pending: PendingChunk) {
        let key = |deadline: Option<OffsetDateTime>, chunk: &PendingChunk| {
            (
                deadline.is_none(),
                deadline,
                chunk.call_id.clone(),
                chunk.recording_id.clone(),
                chunk.document_id.clone(),
            )
        };
        let older = match &self.oldest {
            None => true,
            Some((kept_deadline, kept)) => key(deadline, &pending) < key(*kept_deadline, kept),
        };
        if older {
            self.oldest = Some((deadline, pending));
        }
    }

    pub fn finish(mut self) -> Status {
        self.status.oldest_pending = self.oldest.map(|(_, chunk)| chunk);
        self.status
    }
}

/// The summary of one store, at the clock's time: what `handler status` and the `Status` function answer.
#[derive(Clone)]
pub struct Health {
    store: Arc<dyn RecordingStore>,
    clock: SharedClock,
    at_risk: time::Duration,
}

impl Health {
    pub fn new(store: Arc<dyn RecordingStore>, at_risk: time::Duration) -> Self {
        Self {
            store,
            clock: crate::clock::system(),
            at_risk,
        }
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub async fn status(&self) -> Result<Status, StoreError> {
        self.store.status(self.clock.now(), self.at_risk).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    fn pending(id: &str, announced: Option<&str>) -> Map<String, Value> {
        let mut chunk = Map::new();
        chunk.insert("documentId".into(), json!(id));
        if let Some(announced) = announced {
            chunk.insert("announcedAt".into(), json!(announced));
        }
        chunk
    }

    #[test]
    fn a_chunk_is_at_risk_with_less_than_the_window_left_and_past_its_deadline_after_it() {
        let now = at("2026-11-28T12:00:00Z");
        let window = time::Duration::hours(6);
        let second = time::Duration::SECOND;
        let of = |left: time::Duration| risk(Some(now + left), now, window);
        assert_eq!(of(window), Risk::Safe, "exactly the window left");
        assert_eq!(of(window - second), Risk::AtRisk);
        assert_eq!(of(time::Duration::ZERO), Risk::AtRisk, "at the deadline");
        assert_eq!(of(-second), Risk::PastDeadline);
        assert_eq!(risk(None, now, window), Risk::Unknown);
        assert_eq!(
            deadline("2026-11-27T12:00:00+01:00").map(format_time).as_deref(),
            Some("2026-11-28T11:00:00Z"),
            "24 hours on, written in UTC"
        );
        assert_eq!(deadline("9999-12-31T23:59:59Z"), None);
    }

    #[test]
    fn the_tally_counts_every_state_tombstone_and_the_oldest_pending_chunk() {
        let now = at("2026-11-28T12:00:00Z");
        let mut tally = Tally::new(now, DEFAULT_AT_RISK);
        let first = RecordingSummary {
            call_id: "c1".into(),
            id: "r1".into(),
            recording: true,
            first_event_time: Some("2026-11-27T08:00:00Z".into()),
            states: StateCounts {
                pending: 3,
                archived: 2,
                failed: 1,
                expired: 1,
                external: 1,
            },
            pending_chunks: vec![
                pending("fresh", Some("2026-11-28T11:00:00Z")),
                pending("at-risk", Some("2026-11-27T17:00:00Z")),
                pending("of-an-earlier-version", None),
            ],
        };
        let second = RecordingSummary {
            call_id: "c2".into(),
            id: "r2".into(),
            recording: true,
            states: StateCounts {
                pending: 1,
                ..StateCounts::default()
            },
            pending_chunks: vec![pending("unreadable", Some("not a time"))],
            ..RecordingSummary::default()
        };
        for summary in [&first, &second, &RecordingSummary::tombstone("c3", "r3")] {
            tally.add(summary);
        }
        tally.add_quarantined(2);
        let status = tally.finish();
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"recordings": 2,
                   "chunks": {"pending": 4, "archived": 2, "failed": 1, "expired": 1, "external": 1},
                   "oldestPending": {"callId": "c1", "recordingId": "r1", "documentId": "of-an-earlier-version",
                                     "announcedAt": "2026-11-27T08:00:00Z", "deadline": "2026-11-28T08:00:00Z"},
                   "atRisk": 2, "quarantined": 2, "tombstones": 1})
        );
    }

    #[test]
    fn a_documents_summary_counts_its_chunks_by_the_state_they_record() {
        use crate::recording::ChunkArchive;
        let event = json!({"id": "e1", "subject": "/recording/call/c1/recordingId/r1",
                           "eventType": crate::recording::RECORDING_EVENT_TYPE, "eventTime": "2026-11-27T15:20:34Z",
                           "data": {"recordingStorageInfo": {"recordingChunks": [
                               {"documentId": "d0", "index": 0}, {"documentId": "d1", "index": 1},
                               {"documentId": "d2", "index": 2}, {"index": 3}]}}});
        let mut document = RecordingDocument::from_event(crate::event::Event::parse(&event.to_string()).unwrap())
            .unwrap()
            .with_pending_archives();
        document.record_archive("d1", &ChunkArchive::expired("gone", 1));
        document.record_archive("d2", &ChunkArchive::gave_up("the queue gave up", 10));
        let summary = RecordingSummary::of(&document);
        assert_eq!(
            summary.states,
            StateCounts {
                pending: 1,
                expired: 1,
                failed: 1,
                ..StateCounts::default()
            }
        );
        assert_eq!(
            summary.pending_chunks,
            vec![pending("d0", Some("2026-11-27T15:20:34Z"))]
        );
    }
}
