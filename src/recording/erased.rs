//! What is left of an erased recording: a tombstone under the recording's own id, so that a redelivered event or a
//! late archive job finds it and does nothing, instead of bringing the recording back.
//!
//! A tombstone keeps the recording's ids and when it was erased, nothing else: no subject, no locations, no event
//! data. It takes the recording document's place in the store (same partition, same id), so the event path pays
//! nothing extra to see it: the read or create a merge makes anyway finds the tombstone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RecordingDocument;

/// The field that marks a stored item as a tombstone. It is a reserved name of the recording document (an event's
/// `data.erasedAt` is kept under `extraData`), and every document has `chunks`, which no tombstone has — so a
/// document an earlier version stored with a top-level `erasedAt` still reads as a recording.
pub const ERASED_AT: &str = "erasedAt";

/// An erased recording's ids and when it was erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    pub id: String,
    pub call_id: String,
    pub recording_id: Option<String>,
    /// RFC 3339, UTC.
    pub erased_at: String,
}

impl Tombstone {
    /// The tombstone that replaces `document`, erased at `erased_at`.
    pub fn of(document: &RecordingDocument, erased_at: impl Into<String>) -> Self {
        Self {
            id: document.id.clone(),
            call_id: document.call_id.clone(),
            recording_id: document.recording_id.clone(),
            erased_at: erased_at.into(),
        }
    }
}

/// A recording as a store keeps it: its document, or the tombstone left where it was erased.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Stored {
    Recording(Box<RecordingDocument>),
    Erased(Tombstone),
}

impl Stored {
    /// Reads a stored item: a tombstone when it has `erasedAt` and no `chunks` (every recording document has
    /// `chunks`), a recording document otherwise.
    pub fn from_json(item: Map<String, Value>) -> Result<Self, serde_json::Error> {
        if item.contains_key(ERASED_AT) && !item.contains_key("chunks") {
            return serde_json::from_value(Value::Object(item)).map(Stored::Erased);
        }
        serde_json::from_value(Value::Object(item)).map(|document| Stored::Recording(Box::new(document)))
    }

    /// The recording document, unless the recording was erased.
    pub fn into_recording(self) -> Option<RecordingDocument> {
        match self {
            Stored::Recording(document) => Some(*document),
            Stored::Erased(_) => None,
        }
    }

    /// The tombstone, when the recording was erased.
    pub fn into_tombstone(self) -> Option<Tombstone> {
        match self {
            Stored::Erased(tombstone) => Some(tombstone),
            Stored::Recording(_) => None,
        }
    }

    /// The recording document, unless the recording was erased.
    pub fn recording(&self) -> Option<&RecordingDocument> {
        match self {
            Stored::Recording(document) => Some(document),
            Stored::Erased(_) => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Stored::Erased(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::event::Event;

    fn document() -> RecordingDocument {
        let event = json!({
            "id": "e1",
            "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Communication/CommunicationServices/a",
            "subject": "/recording/call/c1/serverCallId/s1/recordingId/r1",
            "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
            "eventTime": "2021-07-27T15:20:23Z",
            "dataVersion": "1.0",
            "data": {"recordingStorageInfo": {"recordingChunks": [{"documentId": "d1", "index": 0}]},
                     "erasedAt": "not a tombstone"}
        });
        let event = Event::parse(&event.to_string()).unwrap();
        RecordingDocument::from_event(event).unwrap()
    }

    #[test]
    fn a_tombstone_keeps_the_ids_and_the_time_and_nothing_else() {
        let tombstone = Tombstone::of(&document(), "2026-12-02T12:00:00Z");
        let stored = serde_json::to_value(&tombstone).unwrap();
        assert_eq!(
            stored,
            json!({"id": "r1", "callId": "c1", "recordingId": "r1", "erasedAt": "2026-12-02T12:00:00Z"})
        );
        let Value::Object(item) = stored else { unreachable!() };
        assert_eq!(Stored::from_json(item).unwrap(), Stored::Erased(tombstone));
    }

    #[test]
    fn a_document_whose_event_data_names_erased_at_is_still_a_recording() {
        let document = document();
        let Value::Object(mut item) = serde_json::to_value(&document).unwrap() else {
            unreachable!()
        };
        assert_eq!(item["extraData"][ERASED_AT], "not a tombstone");
        assert_eq!(
            Stored::from_json(item.clone()).unwrap(),
            Stored::Recording(Box::new(document))
        );

        // An earlier version kept the data field at the top level: the document's chunks still tell it apart.
        item.insert(ERASED_AT.to_owned(), json!("not a tombstone"));
        assert!(!Stored::from_json(item).unwrap().is_erased());
    }
}
