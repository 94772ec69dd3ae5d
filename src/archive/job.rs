//! The archive job: one chunk to archive, as a queue message. `RecordingEvent` writes one per chunk to the
//! `recording-archive` queue; `ArchiveRecording` reads them back.
//!
//! The host turns a job object into an indented JSON message; the queue trigger hands it back as a string holding
//! that text (sometimes JSON-encoded twice) or as an object, so reading is tolerant. The host also copies a
//! message's top-level properties into the invocation's metadata, where they would override its own of the same
//! name (case-insensitively), so no property is named `Id`, `DequeueCount`, `PopReceipt`, `InsertionTime`,
//! `ExpirationTime`, `NextVisibleTime` or `sys`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::event::EventTime;
use crate::recording::RecordingDocument;

/// How long ACS keeps a recording's files after the event that announced them.
pub const ACS_RETENTION: time::Duration = time::Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveJob {
    /// The recording document's partition key.
    pub call_id: String,
    /// The recording document's id.
    pub recording_document_id: String,
    /// The chunk's `documentId`.
    pub chunk_document_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_location: Option<String>,
    /// The recording's `recordingFormatType` (`Mp4`, `Mp3`, `Wav`), which names the content file's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// When the chunk was announced (its `announcedAt`; for a chunk an earlier version stored, the recording's first
    /// event time): ACS deletes its files 24 hours later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
}

/// Why a queue message is not an archive job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the queue message is not an archive job: {0}")]
pub struct NotAJob(String);

impl ArchiveJob {
    /// One job per chunk of `document` that carries an archive state (an event's document, stored with archival
    /// on), with the locations the event announced.
    pub fn for_chunks(document: &RecordingDocument) -> Vec<Self> {
        document
            .archivable_chunk_ids()
            .iter()
            .filter_map(|id| Self::for_chunk(document, id))
            .collect()
    }

    /// The job for the chunk `chunk_id` of a document; `None` when it has no such chunk. The locations and time are
    /// only for an operator reading the queue: the job runs with those the stored document names when it runs.
    pub fn for_chunk(document: &RecordingDocument, chunk_id: &str) -> Option<Self> {
        let locations = document.chunk_locations(chunk_id)?;
        Some(Self {
            call_id: document.call_id.clone(),
            recording_document_id: document.id.clone(),
            chunk_document_id: chunk_id.to_owned(),
            content_location: locations.content,
            metadata_location: locations.metadata,
            delete_location: locations.delete,
            format: document.recording_format().map(str::to_owned),
            event_time: document.chunk_announced_at(chunk_id).map(str::to_owned),
        })
    }

    /// Reads the job from the trigger binding's value: an object, or a string holding one (encoded up to three
    /// times).
    pub fn from_binding(value: &RawValue) -> Result<Self, NotAJob> {
        let mut value: Value = serde_json::from_str(value.get()).map_err(|e| NotAJob(e.to_string()))?;
        for _ in 0..3 {
            match value {
                Value::String(text) => value = serde_json::from_str(&text).map_err(|e| NotAJob(e.to_string()))?,
                _ => break,
            }
        }
        let job: ArchiveJob = serde_json::from_value(value).map_err(|e| NotAJob(e.to_string()))?;
        if job.call_id.is_empty() || job.recording_document_id.is_empty() || job.chunk_document_id.is_empty() {
            return Err(NotAJob("it names no call, recording or chunk".to_owned()));
        }
        Ok(job)
    }

    /// The moment after which ACS may have deleted the files; `None` when the event time is unknown, or so late in
    /// the calendar that a day after it is past the last representable instant.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        crate::health::deadline(self.event_time.as_deref()?)
    }

    /// When the event that announced the chunk happened; `None` when its time is unknown or unreadable.
    pub fn event_instant(&self) -> Option<OffsetDateTime> {
        EventTime::parse(self.event_time.as_deref()?).map(|time| time.instant)
    }

    /// The content file's extension, from the recording's format: `mp4`, `mp3`, `wav`; `bin` when unknown.
    pub fn content_extension(&self) -> String {
        match self.format.as_deref().map(str::to_ascii_lowercase) {
            Some(format)
                if !format.is_empty() && format.len() <= 8 && format.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                format
            }
            _ => "bin".to_owned(),
        }
    }

    /// The ids a loss record names the chunk by.
    pub fn ids(&self) -> crate::loss::ChunkIds<'_> {
        crate::loss::ChunkIds {
            call_id: &self.call_id,
            recording_id: &self.recording_document_id,
            chunk_id: &self.chunk_document_id,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The `DequeueCount` of a queue trigger invocation's metadata: how many times this message has been delivered,
/// this delivery included. The host sends it as a string; a number is read too; 1 when absent.
pub fn dequeue_count(metadata: Option<&Value>) -> u32 {
    let Some(count) = metadata.and_then(|m| m.get("DequeueCount")) else {
        return 1;
    };
    match count {
        Value::String(text) => text.trim_matches('"').parse().unwrap_or(1),
        Value::Number(number) => number.as_u64().map_or(1, |n| n.min(u64::from(u32::MAX)) as u32),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ArchiveJob {
        ArchiveJob {
            call_id: "call-1".into(),
            recording_document_id: "rec-1".into(),
            chunk_document_id: "d0".into(),
            content_location: Some("https://us-storage.asm.skype.com/v1/objects/d0/content/video".into()),
            metadata_location: Some("https://us-storage.asm.skype.com/v1/objects/d0/content/acsmetadata".into()),
            delete_location: Some("https://us-storage.asm.skype.com/v1/objects/d0".into()),
            format: Some("Mp4".into()),
            event_time: Some("2026-11-27T15:20:34.2199328Z".into()),
        }
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn a_job_is_read_as_an_object_or_a_string_encoded_once_or_twice() {
        let object = serde_json::to_string(&job()).unwrap();
        let indented = serde_json::to_string_pretty(&job()).unwrap();
        let once = serde_json::to_string(&indented).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        for text in [object.as_str(), once.as_str(), twice.as_str()] {
            assert_eq!(ArchiveJob::from_binding(&raw(text)).unwrap(), job(), "{text}");
        }
    }

    #[test]
    fn anything_else_is_not_a_job() {
        for text in [
            r#""not json""#,
            "42",
            r#"{"callId":"c"}"#,
            r#"{"callId":"","recordingDocumentId":"r","chunkDocumentId":"d"}"#,
        ] {
            assert!(ArchiveJob::from_binding(&raw(text)).is_err(), "{text}");
        }
    }

    #[test]
    fn no_property_shadows_the_hosts_queue_metadata() {
        let value = job().to_value();
        for name in value.as_object().unwrap().keys() {
            for reserved in [
                "id",
                "dequeuecount",
                "popreceipt",
                "insertiontime",
                "expirationtime",
                "nextvisibletime",
                "sys",
                "queuetrigger",
            ] {
                assert_ne!(name.to_ascii_lowercase(), reserved);
            }
        }
    }

    #[test]
    fn the_deadline_is_a_day_after_the_event_and_the_extension_follows_the_format() {
        let deadline = job().deadline().unwrap();
        assert_eq!(deadline.to_string(), "2026-11-28 15:20:34.2199328 +00:00:00");
        assert_eq!(
            ArchiveJob {
                event_time: None,
                ..job()
            }
            .deadline(),
            None
        );
        assert_eq!(job().content_extension(), "mp4");
        assert_eq!(
            ArchiveJob {
                format: Some("../x".into()),
                ..job()
            }
            .content_extension(),
            "bin"
        );
        assert_eq!(ArchiveJob { format: None, ..job() }.content_extension(), "bin");
    }

    #[test]
    fn an_event_time_at_the_end_of_the_calendar_has_no_deadline_and_no_panic() {
        let late = |time: &str| ArchiveJob {
            event_time: Some(time.into()),
            ..job()
        };
        assert_eq!(late("9999-12-31T23:59:59.9999999Z").deadline(), None);
        assert_eq!(late("9999-12-31T23:30:00-01:00").deadline(), None);
        let early = late("0000-01-01T00:00:00+01:00").deadline().unwrap();
        assert_eq!(early.to_string(), "0000-01-02 0:00:00.0 +01:00:00");
    }

    #[test]
    fn dequeue_count_is_read_from_a_string_or_a_number() {
        assert_eq!(dequeue_count(Some(&serde_json::json!({"DequeueCount": "3"}))), 3);
        assert_eq!(dequeue_count(Some(&serde_json::json!({"DequeueCount": 4}))), 4);
        assert_eq!(dequeue_count(Some(&serde_json::json!({}))), 1);
        assert_eq!(dequeue_count(None), 1);
    }
}
