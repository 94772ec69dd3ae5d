//! The records an operator must see: every event that loses a recording, or puts one at risk, is written as one log
//! record with a stable name (`event`), its level, and the ids and reason in fields of their own.
//!
//! [`RECORDS`] lists them all ([`ALL`] adds the archive sweep's summary, which is no loss); each has one function
//! here that writes it, so its level, its message and the names of its fields are the same wherever it happens. The
//! message is a fixed sentence: everything that comes from outside (ids, reasons, URLs) is in a field, where both log
//! formats quote it — `event="chunk_expired"` in the text format, `"fields":{"event":"chunk_expired",…}` in JSON —
//! so that a query matches the event's name exactly and never a sentence, and no id or reason can pose as another
//! record. The Functions host files WARN and ERROR lines (stderr) at Warning and Error in Application Insights (an
//! ERROR line holding "warn" anywhere, at Warning).

use tracing::{Level, error, info, warn};

/// One kind of record: its `event` name, its level, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub event: &'static str,
    pub level: Level,
    /// What happened, and what it means for the recording.
    pub means: &'static str,
}

pub const CHUNK_FAILED: Record = Record {
    event: "chunk_failed",
    level: Level::ERROR,
    means: "a chunk's archive failed for good: its files are at a location the archive never downloads from (not in \
            RECORDINGS_ARCHIVE_SOURCES, not named, not files of one object); the recording is lost when ACS deletes \
            them unless someone archives them",
};

pub const CHUNK_EXPIRED: Record = Record {
    event: "chunk_expired",
    level: Level::ERROR,
    means: "ACS no longer has a chunk's files (404 or 410, or failures past its 24-hour deadline): the chunk is lost \
            unless it was archived elsewhere",
};

pub const CHUNK_AT_RISK: Record = Record {
    event: "chunk_at_risk",
    level: Level::WARN,
    means: "the archive sweep found a chunk still pending with less than RECORDINGS_AT_RISK_HOURS left before ACS \
            deletes its files; its job has not run, and the sweep queued another",
};

pub const CHUNK_PAST_DEADLINE: Record = Record {
    event: "chunk_past_deadline",
    level: Level::ERROR,
    means: "the archive sweep found a chunk still pending after ACS's 24-hour deadline; it queued a last job, which \
            archives the chunk if ACS still has the files, or marks it expired",
};

pub const PAYLOAD_QUARANTINED: Record = Record {
    event: "payload_quarantined",
    level: Level::WARN,
    means: "a payload that can never be stored (not an event, no recordingStorageInfo, a source outside \
            RECORDINGS_ALLOWED_SOURCES, a document the store refuses, a queue message that is not a job) was kept in \
            quarantine with the reason; any recording it announced is not archived",
};

pub const ARCHIVE_JOB_POISONED: Record = Record {
    event: "archive_job_poisoned",
    level: Level::ERROR,
    means: "the queue gave up on a chunk's archive job after its last retry: the chunk is marked failed, retryable \
            (the sweep tries again) while ACS keeps its files, for good after that",
};

pub const ACS_DELETE_SKIPPED: Record = Record {
    event: "acs_delete_skipped",
    level: Level::WARN,
    means: "a chunk is archived but its files were not deleted at ACS although RECORDINGS_DELETE_AFTER_ARCHIVE asks \
            for it (no deleteLocation, one that is not the archived files' object, or ACS refused); ACS deletes them \
            24 hours after the event anyway",
};

pub const RECORDING_ERASED: Record = Record {
    event: "recording_erased",
    level: Level::INFO,
    means: "a call or a recording was erased on request, everywhere: the audit record (target `audit`), written on \
            purpose and never alerted on",
};

/// Not a loss: one record per archive sweep, with what it read — the numbers the workbook charts over time.
pub const ARCHIVE_SWEEP: Record = Record {
    event: "archive_sweep",
    level: Level::INFO,
    means: "an archive sweep ran: the pending chunks it read, how many were at risk or past ACS's deadline, the jobs \
            it queued, and how long ago the oldest pending chunk was announced",
};

/// Every loss record, in the order the operations guide lists them.
pub const RECORDS: [Record; 8] = [
    CHUNK_FAILED,
    CHUNK_EXPIRED,
    CHUNK_AT_RISK,
    CHUNK_PAST_DEADLINE,
    PAYLOAD_QUARANTINED,
    ARCHIVE_JOB_POISONED,
    ACS_DELETE_SKIPPED,
    RECORDING_ERASED,
];

/// Every record the handler writes for operators: the loss records and the sweep's summary.
pub const ALL: [Record; 9] = [
    CHUNK_FAILED,
    CHUNK_EXPIRED,
    CHUNK_AT_RISK,
    CHUNK_PAST_DEADLINE,
    PAYLOAD_QUARANTINED,
    ARCHIVE_JOB_POISONED,
    ACS_DELETE_SKIPPED,
    RECORDING_ERASED,
    ARCHIVE_SWEEP,
];

/// The ids every chunk record names: the call (the recording's partition), the recording document and the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkIds<'a> {
    pub call_id: &'a str,
    pub recording_id: &'a str,
    pub chunk_id: &'a str,
}

pub fn chunk_failed(chunk: ChunkIds<'_>, reason: &str, retryable: bool) {
    error!(
        event = CHUNK_FAILED.event,
        call_id = chunk.call_id,
        recording_id = chunk.recording_id,
        chunk_id = chunk.chunk_id,
        reason,
        retryable,
        "a chunk's archive failed"
    );
}

pub fn chunk_expired(chunk: ChunkIds<'_>, reason: &str) {
    error!(
        event = CHUNK_EXPIRED.event,
        call_id = chunk.call_id,
        recording_id = chunk.recording_id,
        chunk_id = chunk.chunk_id,
        reason,
        "a chunk expired at ACS before it was archived"
    );
}

/// `announced_at` is the chunk's announcement as stored; `deadline` when ACS deletes its files (RFC 3339, UTC).
pub fn chunk_at_risk(chunk: ChunkIds<'_>, announced_at: &str, deadline: &str) {
    warn!(
        event = CHUNK_AT_RISK.event,
        call_id = chunk.call_id,
        recording_id = chunk.recording_id,
        chunk_id = chunk.chunk_id,
        announced_at,
        deadline,
        reason = "the chunk is still pending close to ACS's deadline",
        "a pending chunk is at risk"
    );
}

pub fn chunk_past_deadline(chunk: ChunkIds<'_>, announced_at: &str, deadline: &str) {
    error!(
        event = CHUNK_PAST_DEADLINE.event,
        call_id = chunk.call_id,
        recording_id = chunk.recording_id,
        chunk_id = chunk.chunk_id,
        announced_at,
        deadline,
        reason = "the chunk is still pending past ACS's deadline",
        "a pending chunk is past its deadline"
    );
}

/// `call_id` and `recording_id` when the payload's subject names them.
pub fn payload_quarantined(quarantine_id: &str, call_id: Option<&str>, recording_id: Option<&str>, reason: &str) {
    warn!(
        event = PAYLOAD_QUARANTINED.event,
        quarantine_id, call_id, recording_id, reason, "a payload was quarantined"
    );
}

pub fn archive_job_poisoned(chunk: ChunkIds<'_>, reason: &str, retryable: bool) {
    error!(
        event = ARCHIVE_JOB_POISONED.event,
        call_id = chunk.call_id,
        recording_id = chunk.recording_id,
        chunk_id = chunk.chunk_id,
        reason,
        retryable,
        "the queue gave up on an archive job"
    );
}

pub fn acs_delete_skipped(chunk: ChunkIds<'_>, reason: &str) {
    warn!(
        event = ACS_DELETE_SKIPPED.event,
        call_id = chunk.call_id,
        recording_id = chunk.recording_id,
        chunk_id = chunk.chunk_id,
        reason,
        "an archived chunk's files were not deleted at ACS"
    );
}

/// What one archive sweep read and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSummary {
    /// Pending chunks read.
    pub pending: u64,
    /// Of those, at risk (not yet past the deadline), and past ACS's deadline.
    pub at_risk: u64,
    pub past_deadline: u64,
    /// Jobs queued again (pending and retryable failed chunks).
    pub queued: u64,
    /// Seconds since the oldest pending chunk read was announced.
    pub oldest_pending_age_seconds: Option<i64>,
    /// False when the sweep had its share of jobs and left recordings unread: the counts are of what it read.
    pub complete: bool,
}

pub fn archive_sweep(summary: SweepSummary) {
    info!(
        event = ARCHIVE_SWEEP.event,
        pending = summary.pending,
        at_risk = summary.at_risk,
        past_deadline = summary.past_deadline,
        queued = summary.queued,
        oldest_pending_age_seconds = summary.oldest_pending_age_seconds,
        complete = summary.complete,
        "the archive sweep ran"
    );
}

/// What an erase removed, for its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasedCounts {
    pub recordings: u64,
    pub files: u64,
    pub acs_files: u64,
    pub quarantined: u64,
}

/// The audit record of an erase: who asked (the invocation), which call or recording, and the counts.
pub fn recording_erased(invocation_id: &str, call_id: &str, recording_id: Option<&str>, erased: ErasedCounts) {
    info!(
        target: "audit",
        event = RECORDING_ERASED.event,
        action = "erase",
        invocation_id,
        call_id,
        recording_id = recording_id.unwrap_or("(every recording of the call)"),
        recordings = erased.recordings,
        files = erased.files,
        acs_files = erased.acs_files,
        quarantined = erased.quarantined,
        "erased"
    );
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;

    /// Lines written by a subscriber, for a test to read back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Lines {
        type Writer = Lines;
        fn make_writer(&'w self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The ids of a test chunk: nothing an id or reason holds may pose as another record.
    const HOSTILE: &str = "x\" event=\"chunk_failed\"\n{\"fields\":{\"event\":\"chunk_failed\"}}";

    fn ids() -> ChunkIds<'static> {
        ChunkIds {
            call_id: "call-1",
            recording_id: HOSTILE,
            chunk_id: "d0",
        }
    }

    /// Writes every record once, in [`ALL`]' order, with outside data that tries to look like another record.
    fn write_each() {
        chunk_failed(ids(), HOSTILE, false);
        chunk_expired(ids(), HOSTILE);
        chunk_at_risk(ids(), "2026-11-27T15:20:34Z", "2026-11-28T15:20:34Z");
        chunk_past_deadline(ids(), "2026-11-27T15:20:34Z", "2026-11-28T15:20:34Z");
        payload_quarantined("q1", Some("call-1"), None, HOSTILE);
        archive_job_poisoned(ids(), HOSTILE, true);
        acs_delete_skipped(ids(), HOSTILE);
        let counts = ErasedCounts {
            recordings: 1,
            files: 2,
            acs_files: 0,
            quarantined: 0,
        };
        recording_erased("inv-1", "call-1", Some(HOSTILE), counts);
        archive_sweep(SweepSummary {
            pending: 3,
            at_risk: 1,
            past_deadline: 1,
            queued: 3,
            oldest_pending_age_seconds: Some(90_000),
            complete: true,
        });
    }

    /// The event name a text line carries, read as the alert queries read it: `event="NAME"` after a space or at the
    /// start of the line, the value unescaped.
    fn text_event(line: &str) -> Option<&str> {
        let start = line
            .match_indices("event=\"")
            .find(|(at, _)| *at == 0 || line[..*at].ends_with(' '))?
            .0
            + "event=\"".len();
        let name = &line[start..];
        let end = name.find('"')?;
        let name = &name[..end];
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            .then_some(name)
    }

    #[test]
    fn every_record_is_one_json_line_with_its_level_event_and_fields() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(lines.clone())
            .with_max_level(Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, write_each);
        let records: Vec<Value> = lines
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(records.len(), ALL.len(), "one line each: {}", lines.text());
        for (record, line) in ALL.iter().zip(&records) {
            assert_eq!(line["fields"]["event"], record.event, "{line}");
            assert_eq!(line["level"], record.level.as_str(), "{line}");
            let message = line["fields"]["message"].as_str().unwrap();
            assert!(!message.contains("x\""), "no outside data in the message: {message}");
        }
        for line in &records[..4] {
            assert_eq!(line["fields"]["call_id"], "call-1");
            assert_eq!(line["fields"]["recording_id"], HOSTILE, "kept whole, in its field");
            assert_eq!(line["fields"]["chunk_id"], "d0");
            assert!(line["fields"]["reason"].is_string(), "{line}");
        }
        assert_eq!(records[0]["fields"]["retryable"], false);
        assert_eq!(records[5]["fields"]["retryable"], true);
        assert_eq!(records[2]["fields"]["deadline"], "2026-11-28T15:20:34Z");
        assert_eq!(records[4]["fields"]["quarantine_id"], "q1");
        assert_eq!(records[4]["fields"]["call_id"], "call-1");
        assert!(
            records[4]["fields"].get("recording_id").is_none(),
            "an unknown id is left out"
        );
        assert_eq!(records[7]["target"], "audit");
        assert_eq!(records[7]["fields"]["files"], 2);
        assert_eq!(records[8]["fields"]["oldest_pending_age_seconds"], 90_000);
        assert_eq!(records[8]["fields"]["complete"], true);
    }

    #[test]
    fn every_record_is_one_text_line_whose_event_a_query_reads_exactly() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, write_each);
        let text = lines.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            ALL.len(),
            "a newline in a field never splits a record: {text}"
        );
        for (record, line) in ALL.iter().zip(&lines) {
            assert_eq!(text_event(line), Some(record.event), "{line}");
            assert!(line.contains(&format!(" {} ", record.level.as_str())), "{line}");
        }
        assert!(
            lines[0].contains(r#"call_id="call-1""#) && lines[0].contains("retryable=false"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn event_names_are_unique_words_and_every_loss_is_at_warning_or_above() {
        let mut names: Vec<&str> = ALL.iter().map(|record| record.event).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(
            &ALL[..RECORDS.len()],
            &RECORDS,
            "every loss record is among all records"
        );
        for record in RECORDS {
            assert!(
                record.event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                record.event
            );
            assert!(
                !record.event.contains("warn"),
                "the host would file an error named so at Warning"
            );
            if record != RECORDING_ERASED {
                assert!(record.level <= Level::WARN, "{} is at {}", record.event, record.level);
            }
        }
    }
}
