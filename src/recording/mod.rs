//! The recording document — one per recording, the same in every store — and the rule that merges events into it.
//!
//! Event Grid delivers at least once and in any order, so [`RecordingDocument::merge`] is commutative, associative
//! and idempotent: any order and repetition of a recording's events gives the document one clean, in-order delivery
//! gives. Chunks are the union by `documentId`; for every single-valued field the value of the event with the later
//! `eventTime` wins, which is why the document remembers, in `fieldTimes`, the event time each value came from.

mod archive;
mod chunks;
mod erased;
mod field_times;
mod ids;
mod locations;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::Event;
use crate::subject::{RecordingSubject, SubjectError};

pub use archive::{ArchiveStatus, ArchivedFile, ChunkArchive, FIELD as ARCHIVE_FIELD};
pub use erased::{ERASED_AT, Stored, Tombstone};
pub use ids::document_id;
pub use locations::{CLOCK_SKEW, ChunkLocations, one_object};

use chunks::merge_chunks;
pub use field_times::FieldTimes;
use field_times::Picker;
use ids::derived_id;

/// The event type this handler stores; every other type is acknowledged and ignored.
pub const RECORDING_EVENT_TYPE: &str = "Microsoft.Communication.RecordingFileStatusUpdated";

/// Names the document uses for itself. A `data` field with one of these names, or starting with `_` (Cosmos DB's
/// system properties), is kept under `extraData` instead, so that no event can overwrite the document's identity.
const RESERVED_NAMES: &[&str] = &[
    "id",
    "callId",
    "recordingId",
    "serverCallId",
    "callConnectionId",
    "subject",
    "source",
    "chunks",
    "eventIds",
    "firstEventTime",
    "lastEventTime",
    "fieldTimes",
    "extraData",
    "ttl",
    ERASED_AT,
];

/// The stored document of one recording. Field order here is the order in the stored JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingDocument {
    /// The recording id when it is a safe document id, otherwise derived from it or from the call (see
    /// [`RecordingDocument::from_event`]).
    pub id: String,
    /// The partition key: all recordings of a call live together.
    pub call_id: String,
    /// The recording id as the events name it; `null` when no event named one.
    pub recording_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_connection_id: Option<String>,
    /// The raw subject of the winning event.
    pub subject: String,
    /// The publishing resource: the event's `topic` or CloudEvents `source`.
    #[serde(default)]
    pub source: Option<String>,
    /// The event's `data` fields under their original names, less the chunks.
    #[serde(flatten)]
    pub data: Map<String, Value>,
    /// `data` fields whose names clash with the document's own (see `RESERVED_NAMES`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra_data: Map<String, Value>,
    /// The union of every event's chunks, one per `documentId`, ordered by `index`.
    pub chunks: Vec<Map<String, Value>>,
    /// Every event merged into this document, once each, sorted.
    pub event_ids: BTreeSet<String>,
    pub first_event_time: Option<String>,
    pub last_event_time: Option<String>,
    /// For each single-valued field, the `eventTime` of the event its value came from.
    #[serde(default)]
    pub field_times: FieldTimes,
}

/// What recording an archive result did to the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkUpdate {
    Changed,
    /// The document already held this result, or a state that outranks it.
    Unchanged,
    NoSuchChunk,
    /// The result's files came from other locations than the chunk names now (a new announcement won meanwhile):
    /// nothing was recorded, and the chunk is archived again from where it is now.
    LocationsChanged,
}

/// Why a recording event can never be stored as a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    #[error("the recording event has no subject")]
    NoSubject,
    #[error("the recording event's subject names no call: {0}")]
    Subject(#[from] SubjectError),
    #[error("the recording event's data is missing or not an object")]
    NoData,
    #[error("the recording event's data has no recordingStorageInfo object")]
    NoStorageInfo,
    #[error("recordingStorageInfo.recordingChunks is not an array of objects")]
    MalformedChunks,
}

impl RecordingDocument {
    /// Builds the document one event describes.
    ///
    /// The document id is the recording id named by the subject (or, for bring-your-own-storage events, by
    /// `data.recordingId`) when it is at most 255 bytes of printable text without `/`, `\`, `?` or `#`; otherwise
    /// `rid-` and the SHA-256 of the recording id. An event naming no recording gets `rec-` and a digest of the call
    /// id and `recordingStartTime` — the same for every event of that recording — or, without a start time, of the
    /// call id and event id, so that a redelivery still lands on the same document.
    pub fn from_event(event: Event) -> Result<Self, RecordingError> {
        let subject_text = event.subject.ok_or(RecordingError::NoSubject)?;
        let subject = RecordingSubject::parse(&subject_text)?;
        let Some(Value::Object(mut data)) = event.data else {
            return Err(RecordingError::NoData);
        };
        let Some(Value::Object(storage_info)) = data.get_mut("recordingStorageInfo") else {
            return Err(RecordingError::NoStorageInfo);
        };
        let time = event.time.map(|t| t.text);
        let chunks = match storage_info.remove("recordingChunks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(chunks)) => chunks
                .into_iter()
                .map(|chunk| match chunk {
                    Value::Object(chunk) => {
                        let mut chunk = disarmed(chunk);
                        locations::stamp(&mut chunk, time.as_deref());
                        Ok(chunk)
                    }
                    _ => Err(RecordingError::MalformedChunks),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(RecordingError::MalformedChunks),
        };

        let data_recording_id = data
            .get("recordingId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let recording_id = subject.recording_id.or_else(|| data_recording_id.map(str::to_owned));
        let id = match &recording_id {
            Some(recording_id) => document_id(recording_id),
            None => derived_id(&subject.call_id, data.get("recordingStartTime"), &event.id),
        };

        // The event's own map becomes the document's `data`: only what does not belong there is taken out.
        let mut extra_data = Map::new();
        data.retain(|name, value| {
            let redundant = match (name.as_str(), &*value) {
                ("recordingStorageInfo", Value::Object(rest)) => rest.is_empty(),
                ("recordingId", Value::String(id)) => recording_id.as_deref() == Some(id.as_str()),
                _ => false,
            };
            if !redundant && is_reserved(name) {
                extra_data.insert(name.clone(), std::mem::take(value));
                return false;
            }
            !redundant
        });
        let mut document = RecordingDocument {
            id,
            call_id: subject.call_id,
            recording_id,
            server_call_id: subject.server_call_id,
            call_connection_id: subject.call_connection_id,
            subject: subject_text,
            source: event.source,
            data,
            extra_data,
            chunks: Vec::new(),
            event_ids: BTreeSet::from([event.id]),
            first_event_time: time.clone(),
            last_event_time: time,
            field_times: BTreeMap::new(),
        };
        merge_chunks(&mut document.chunks, chunks);
        // One text for every field's time, shared rather than copied.
        if let Some(time) = document.last_event_time.as_deref().map(Arc::<str>::from) {
            let mut field_times = FieldTimes::new();
            for key in document.single_valued_keys() {
                field_times.insert(key, Arc::clone(&time));
            }
            document.field_times = field_times;
        }
        Ok(document)
    }

    /// Merges another delivery's document of the same recording into this one.
    pub fn merge(mut self, other: RecordingDocument) -> RecordingDocument {
        self.merge_from(other);
        self
    }

    /// Merges another delivery's document of the same recording into this one, in place; returns whether anything
    /// changed — false exactly when the merge leaves the document as it was, so that a store writes nothing.
    pub fn merge_from(&mut self, other: RecordingDocument) -> bool {
        let RecordingDocument {
            recording_id,
            server_call_id,
            call_connection_id,
            subject,
            source,
            data,
            extra_data,
            chunks,
            event_ids,
            first_event_time,
            last_event_time,
            field_times,
            ..
        } = other;
        let mut changed = false;
        if self.recording_id.is_none() && recording_id.is_some() {
            self.recording_id = recording_id;
            changed = true;
        }
        let mut times = Picker::new(&mut self.field_times, field_times);
        changed |= times.pick("serverCallId", &mut self.server_call_id, server_call_id);
        changed |= times.pick("callConnectionId", &mut self.call_connection_id, call_connection_id);
        changed |= times.pick_required("subject", &mut self.subject, subject);
        changed |= times.pick("source", &mut self.source, source);
        changed |= times.pick_each("", &mut self.data, data);
        changed |= times.pick_each(EXTRA_PREFIX, &mut self.extra_data, extra_data);
        changed |= times.pick_time(&mut self.first_event_time, first_event_time, Ordering::Less);
        changed |= times.pick_time(&mut self.last_event_time, last_event_time, Ordering::Greater);
        changed |= merge_chunks(&mut self.chunks, chunks);
        for id in event_ids {
            changed |= self.event_ids.insert(id);
        }
        changed
    }

    /// Takes the moment the handler received the event as the announcement time of every chunk whose event time is
    /// missing, unreadable or later than that by more than [`CLOCK_SKEW`], so that no event can date a chunk into the
    /// future (and out of the archive sweep's sight). Returns the chunks changed, with the time each had.
    pub fn received_at(&mut self, received: time::OffsetDateTime) -> Vec<(String, Option<String>)> {
        let mut clamped = Vec::new();
        for chunk in &mut self.chunks {
            if let Some(given) = locations::clamp_times(chunk, received) {
                let id = chunk.get("documentId").and_then(Value::as_str).unwrap_or_default();
                clamped.push((id.to_owned(), given));
            }
        }
        clamped
    }

    /// Marks every chunk whose locations the archive would not download — a URL `is_acs_source` refuses, a file not
    /// named, content and metadata of two objects — `locationsRefused`, so that they never displace ones it would
    /// (see [`locations`]). Every event's document is judged so, with archival on or off.
    pub fn with_judged_locations(mut self, is_acs_source: impl Fn(&str) -> bool) -> Self {
        for chunk in &mut self.chunks {
            locations::judge(chunk, &is_acs_source);
        }
        self
    }

    /// Marks every chunk that has a `documentId` and no archive state yet as `pending`. Chunks without a
    /// `documentId` cannot be archived (nothing names their job) and stay as they are.
    pub fn with_pending_archives(self) -> Self {
        self.with_archive_states(|_| true)
    }

    /// How an event is stored when archival is on: every chunk that has a `documentId` gets its first archive state
    /// — `pending`, or `external` when the event says ACS wrote the files to the customer's own storage
    /// (`storageType` `AzureBlob`) and neither file is at a source `is_acs_source` accepts (an export that failed
    /// leaves them at ACS, to be archived as usual).
    pub fn with_archive_states(mut self, is_acs_source: impl Fn(&str) -> bool) -> Self {
        let own_storage = self
            .data
            .get("storageType")
            .and_then(Value::as_str)
            .is_some_and(|storage| storage.eq_ignore_ascii_case("AzureBlob"));
        for chunk in &mut self.chunks {
            if !matches!(chunk.get("documentId"), Some(Value::String(_))) || chunk.contains_key(archive::FIELD) {
                continue;
            }
            let ChunkLocations { content, metadata, .. } = ChunkLocations::of(chunk);
            let at_acs = [&content, &metadata]
                .into_iter()
                .flatten()
                .any(|url| is_acs_source(url));
            let state = if own_storage && !at_acs && content.is_some() {
                ChunkArchive::external(content, metadata)
            } else {
                ChunkArchive::pending()
            };
            chunk.insert(archive::FIELD.to_owned(), state.to_value());
        }
        self
    }

    /// The chunk with this `documentId`.
    pub fn chunk(&self, chunk_id: &str) -> Option<&Map<String, Value>> {
        self.chunks
            .iter()
            .find(|chunk| chunk.get("documentId").and_then(Value::as_str) == Some(chunk_id))
    }

    /// The archive state the handler recorded for the chunk `chunk_id`; `None` when there is no such chunk, it has
    /// no state, or its state is not one this handler writes.
    pub fn chunk_archive(&self, chunk_id: &str) -> Option<ChunkArchive> {
        ChunkArchive::of(self.chunk(chunk_id)?)
    }

    /// Every chunk that can be archived (it has a `documentId`), with the archive state the handler recorded for it
    /// (`None`: none yet, or one of a shape the handler never writes).
    pub fn archive_states(&self) -> impl Iterator<Item = (&str, Option<ChunkArchive>)> + '_ {
        self.chunks.iter().filter_map(|chunk| match chunk.get("documentId") {
            Some(Value::String(id)) => Some((id.as_str(), ChunkArchive::of(chunk))),
            _ => None,
        })
    }

    /// The recording's format (`recordingFormatType`: `Mp4`, `Mp3`, `Wav`), which names the content file's type.
    pub fn recording_format(&self) -> Option<&str> {
        self.data.get("recordingFormatType").and_then(Value::as_str)
    }

    /// Whether a chunk's archive state asks the archive sweep for a job (see [`ChunkArchive::needs_sweeping`]).
    pub fn has_chunks_to_sweep(&self) -> bool {
        self.archive_states()
            .any(|(_, state)| state.is_some_and(|state| state.needs_sweeping()))
    }

    /// When the chunk was first announced: the earliest event time among its announcements, or, for a chunk an
    /// earlier version stored without one, the recording's first event time. ACS's 24 hours run from it.
    pub fn chunk_announced_at(&self, chunk_id: &str) -> Option<&str> {
        match self.chunk(chunk_id)?.get(locations::ANNOUNCED_AT) {
            Some(Value::String(time)) => Some(time),
            _ => self.first_event_time.as_deref(),
        }
    }

    /// The chunk's locations at ACS, as the events announced them (the merged document's, not any one event's).
    pub fn chunk_locations(&self, chunk_id: &str) -> Option<ChunkLocations> {
        self.chunk(chunk_id).map(ChunkLocations::of)
    }

    /// The `documentId`s of the chunks that carry an archive state.
    pub fn archivable_chunk_ids(&self) -> Vec<String> {
        self.chunks
            .iter()
            .filter(|chunk| chunk.contains_key(archive::FIELD))
            .filter_map(|chunk| chunk.get("documentId").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// Of `chunk_ids`, those whose archive state in this document still calls for an archive job: every chunk whose
    /// state is not final — `pending`, `failed`, none, or a value this handler never wrote.
    pub fn still_to_archive(&self, chunk_ids: &[String]) -> Vec<String> {
        chunk_ids
            .iter()
            .filter(|id| {
                self.chunk(id)
                    .is_some_and(|chunk| ChunkArchive::of(chunk).is_none_or(|state| state.needs_archiving()))
            })
            .cloned()
            .collect()
    }

    /// Merges an archive result into the chunk `chunk_id`, by the archive state's own merge rule. A result that
    /// names the files' sources is recorded only when they are the chunk's locations now.
    pub fn record_archive(&mut self, chunk_id: &str, archive: &ChunkArchive) -> ChunkUpdate {
        let Some(chunk) = self
            .chunks
            .iter_mut()
            .find(|chunk| chunk.get("documentId").and_then(Value::as_str) == Some(chunk_id))
        else {
            return ChunkUpdate::NoSuchChunk;
        };
        if let Some(sources) = archive.sources() {
            let now = ChunkLocations::of(chunk);
            if (now.content.as_deref(), now.metadata.as_deref()) != sources {
                return ChunkUpdate::LocationsChanged;
            }
        }
        let update = archive.to_value();
        let merged = match chunk.get(archive::FIELD) {
            Some(current) => archive::merge(current.clone(), update),
            None => update,
        };
        if chunk.get(archive::FIELD) == Some(&merged) {
            return ChunkUpdate::Unchanged;
        }
        chunk.insert(archive::FIELD.to_owned(), merged);
        ChunkUpdate::Changed
    }

    /// The keys `fieldTimes` uses for the fields this document holds.
    fn single_valued_keys(&self) -> impl Iterator<Item = Cow<'static, str>> + '_ {
        let named = [
            ("serverCallId", self.server_call_id.is_some()),
            ("callConnectionId", self.call_connection_id.is_some()),
            ("subject", true),
            ("source", self.source.is_some()),
        ];
        named
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(key, _)| Cow::Borrowed(key))
            .chain(self.data.keys().map(|key| Cow::Owned(key.clone())))
            .chain(
                self.extra_data
                    .keys()
                    .map(|key| Cow::Owned(format!("{EXTRA_PREFIX}{key}"))),
            )
    }
}

/// The `fieldTimes` key prefix of `extraData` fields, so that `extraData.subject` and `subject` stay apart.
const EXTRA_PREFIX: &str = "extraData.";

/// The chunk fields only the handler writes: its archive state, its read links (made when a recording is listed,
/// never stored by the handler) and the times and verdict of its announcement.
const HANDLER_CHUNK_FIELDS: [&str; 5] = [
    archive::FIELD,
    LINKS,
    locations::OWN_FIELDS[0],
    locations::OWN_FIELDS[1],
    locations::OWN_FIELDS[2],
];

/// The chunk field the recordings API gives an archived chunk's read links in.
pub const LINKS: &str = "links";

/// An event's chunk without the say over what only the handler writes ([`HANDLER_CHUNK_FIELDS`]). A chunk that
/// claims one (`"archive": {"state": "archived", …}`, `"links": {…}` — forged, or copied from a stored document or a
/// listing) keeps the claim under its `extraData`, where nothing reads it, so that it can never stop a job from being
/// queued, stand in for a real result, be served as a link, or move the chunk's times.
fn disarmed(mut chunk: Map<String, Value>) -> Map<String, Value> {
    let claims: Vec<(String, Value)> = HANDLER_CHUNK_FIELDS
        .iter()
        .filter_map(|field| Some(((*field).to_owned(), chunk.remove(*field)?)))
        .collect();
    if claims.is_empty() {
        return chunk;
    }
    let mut extra = match chunk.remove("extraData") {
        Some(Value::Object(extra)) => extra,
        Some(other) => Map::from_iter([("extraData".to_owned(), other)]),
        None => Map::new(),
    };
    extra.extend(claims);
    chunk.insert("extraData".to_owned(), Value::Object(extra));
    chunk
}

fn is_reserved(name: &str) -> bool {
    name.starts_with('_') || name.starts_with(EXTRA_PREFIX) || RESERVED_NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, time: &str, subject: &str, data: Value) -> Event {
        Event::parse(
            &json!({"id": id, "topic": "/acs", "subject": subject, "eventType": RECORDING_EVENT_TYPE,
                    "eventTime": time, "data": data})
            .to_string(),
        )
        .unwrap()
    }

    fn chunk(index: u64, document_id: &str) -> Value {
        json!({"documentId": document_id, "index": index, "endReason": "SessionEnded",
               "contentLocation": format!("https://storage.example/{document_id}/content"),
               "metadataLocation": format!("https://storage.example/{document_id}/metadata"),
               "deleteLocation": format!("https://storage.example/{document_id}")})
    }

    fn recording(id: &str, time: &str, chunks: Vec<Value>, extra: Value) -> RecordingDocument {
        let mut data = json!({"recordingStorageInfo": {"recordingChunks": chunks}});
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        RecordingDocument::from_event(event(
            id,
            time,
            "/recording/call/c1/serverCallId/s1/recordingId/r1",
            data,
        ))
        .unwrap()
    }

    fn merge_all(documents: &[&RecordingDocument]) -> RecordingDocument {
        let mut iter = documents.iter().map(|d| (*d).clone());
        let first = iter.next().unwrap();
        iter.fold(first, RecordingDocument::merge)
    }

    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let head = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, head.clone());
                all.push(tail);
            }
        }
        all
    }

    #[test]
    fn one_event_gives_the_documented_shape() {
        let doc = recording(
            "e1",
            "2021-07-27T15:20:34.2199328Z",
            vec![chunk(0, "d0")],
            json!({"recordingStartTime": "2021-07-27T15:20:23.6089755Z", "recordingDurationMs": 6620,
                   "sessionEndReason": "CallEnded", "recordingFormatType": "Mp4", "futureField": {"x": 1}}),
        );
        let stored = serde_json::to_value(&doc).unwrap();
        assert_eq!(stored["id"], "r1");
        assert_eq!(stored["callId"], "c1");
        assert_eq!(stored["recordingId"], "r1");
        assert_eq!(stored["serverCallId"], "s1");
        assert_eq!(stored["source"], "/acs");
        assert_eq!(stored["recordingStartTime"], "2021-07-27T15:20:23.6089755Z");
        assert_eq!(stored["recordingDurationMs"], 6620);
        assert_eq!(stored["futureField"], json!({"x": 1}));
        let mut announced = chunk(0, "d0");
        announced["announcedAt"] = json!("2021-07-27T15:20:34.2199328Z");
        announced["locationsAnnouncedAt"] = json!("2021-07-27T15:20:34.2199328Z");
        assert_eq!(stored["chunks"], json!([announced]));
        assert_eq!(stored["eventIds"], json!(["e1"]));
        assert_eq!(stored["firstEventTime"], "2021-07-27T15:20:34.2199328Z");
        assert_eq!(
            stored["fieldTimes"]["recordingDurationMs"],
            "2021-07-27T15:20:34.2199328Z"
        );
        assert!(
            stored.get("recordingStorageInfo").is_none(),
            "chunks are not stored twice"
        );
        let back: RecordingDocument = serde_json::from_value(stored).unwrap();
        assert_eq!(back, doc, "the stored JSON reads back as the same document");
    }

    #[test]
    fn storage_info_fields_besides_the_chunks_are_kept_without_them() {
        let data = json!({"recordingStorageInfo": {"recordingChunks": [chunk(0, "d0")], "container": "c"}});
        let doc = RecordingDocument::from_event(event(
            "e1",
            "2021-07-27T15:20:34Z",
            "/recording/call/c1/recordingId/r1",
            data,
        ))
        .unwrap();
        assert_eq!(doc.data["recordingStorageInfo"], json!({"container": "c"}));
        assert_eq!(doc.chunks.len(), 1);
    }

    #[test]
    fn redelivered_event_changes_nothing() {
        let doc = recording(
            "e1",
            "2021-07-27T15:20:34Z",
            vec![chunk(0, "d0")],
            json!({"recordingDurationMs": 5}),
        );
        assert_eq!(doc.clone().merge(doc.clone()), doc);
    }

    #[test]
    fn any_order_of_three_events_gives_one_document() {
        let a = recording(
            "a",
            "2021-07-27T15:20:01Z",
            vec![chunk(0, "d0")],
            json!({"sessionEndReason": "A", "x": 1}),
        );
        let b = recording(
            "b",
            "2021-07-27T15:20:02Z",
            vec![chunk(1, "d1")],
            json!({"sessionEndReason": "B"}),
        );
        let c = recording(
            "c",
            "2021-07-27T15:20:03Z",
            vec![chunk(2, "d2"), chunk(0, "d0")],
            json!({"y": 2}),
        );
        let in_order = merge_all(&[&a, &b, &c]);
        for order in permutations(&[&a, &b, &c]) {
            assert_eq!(merge_all(&order), in_order);
            let with_repeats = [order.clone(), order].concat();
            assert_eq!(merge_all(&with_repeats), in_order);
        }
        assert_eq!(in_order.data["sessionEndReason"], "B", "the later event wins");
        assert_eq!(in_order.data["x"], 1, "a field only the earliest event has is kept");
        let indexes: Vec<_> = in_order.chunks.iter().map(|c| c["index"].clone()).collect();
        assert_eq!(indexes, vec![json!(0), json!(1), json!(2)]);
        assert_eq!(in_order.event_ids.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(in_order.first_event_time.as_deref(), Some("2021-07-27T15:20:01Z"));
        assert_eq!(in_order.last_event_time.as_deref(), Some("2021-07-27T15:20:03Z"));
    }

    #[test]
    fn archive_results_and_redelivered_events_merge_in_any_order() {
        let first = recording(
            "a",
            "2021-07-27T15:20:01Z",
            vec![chunk(0, "d0"), chunk(1, "d1")],
            json!({}),
        )
        .with_pending_archives();
        let file = |name: &str| ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 10,
            sha256: "0f".repeat(32),
            source: None,
        };
        let mut archived = first.clone();
        let result = ChunkArchive::archived(file("d0.mp4"), file("d0.json"), "2021-07-27T15:30:00Z".into(), 1);
        assert_eq!(archived.record_archive("d0", &result), ChunkUpdate::Changed);
        assert_eq!(archived.clone().record_archive("d0", &result), ChunkUpdate::Unchanged);
        assert_eq!(
            archived.clone().record_archive("nope", &result),
            ChunkUpdate::NoSuchChunk
        );
        let later = recording(
            "b",
            "2021-07-27T15:20:02Z",
            vec![chunk(1, "d1"), chunk(2, "d2")],
            json!({}),
        )
        .with_pending_archives();
        let mut failed = later.clone();
        failed.record_archive("d2", &ChunkArchive::failed("gave up", 10));

        let in_order = merge_all(&[&first, &archived, &later, &failed]);
        for order in permutations(&[&first, &archived, &later, &failed]) {
            assert_eq!(merge_all(&order), in_order);
            assert_eq!(merge_all(&[order.clone(), order].concat()), in_order);
        }
        let state = |id: &str| {
            ChunkArchive::from_value(&in_order.chunk(id).unwrap()["archive"])
                .unwrap()
                .state
        };
        assert_eq!(state("d0"), ArchiveStatus::Archived, "never turned back into pending");
        assert_eq!(state("d1"), ArchiveStatus::Pending);
        assert_eq!(state("d2"), ArchiveStatus::Failed);
        let all = ["d0".to_owned(), "d1".to_owned(), "d2".to_owned()];
        assert_eq!(in_order.still_to_archive(&all), ["d1", "d2"]);
        assert_eq!(first.archivable_chunk_ids(), ["d0", "d1"]);
    }

    #[test]
    fn an_event_cannot_set_a_chunks_archive_state() {
        let forged = |archive: Value| {
            let mut chunk = chunk(0, "d0");
            chunk["archive"] = archive;
            recording("a", "2021-07-27T15:20:01Z", vec![chunk], json!({}))
        };
        let claims = [
            json!({"state": "archived", "contentLocation": "https://evil.example/x", "contentSha256": "00",
                   "metadataLocation": "https://evil.example/m", "attempts": 9}),
            json!({"state": "expired", "reason": "trust me"}),
            json!("x"),
            json!(null),
        ];
        for claim in claims.clone() {
            let stored = forged(claim.clone()).with_pending_archives();
            assert_eq!(
                stored.chunk_archive("d0"),
                Some(ChunkArchive::pending()),
                "{claim} is not a state"
            );
            assert_eq!(
                stored.chunk("d0").unwrap()["extraData"]["archive"],
                claim,
                "the claim is kept aside"
            );
            assert_eq!(stored.still_to_archive(&["d0".to_owned()]), ["d0"]);
            // Without archival the claim is kept aside all the same.
            assert!(forged(claim.clone()).chunk_archive("d0").is_none());
        }

        // Against a real result: a forged claim merged in later changes nothing of it.
        let mut archived =
            recording("a", "2021-07-27T15:20:01Z", vec![chunk(0, "d0")], json!({})).with_pending_archives();
        let file = |name: &str| ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 10,
            sha256: "0f".repeat(32),
            source: None,
        };
        let result = ChunkArchive::archived(file("d0.mp4"), file("d0.json"), "2021-07-27T15:30:00Z".into(), 1);
        archived.record_archive("d0", &result);
        let merged = archived
            .clone()
            .merge(forged(claims[0].clone()).with_pending_archives());
        assert_eq!(merged.chunk_archive("d0"), Some(result));
    }

    #[test]
    fn chunks_in_the_customers_own_storage_are_external_and_an_export_failure_is_archived() {
        let own = |content: &str| {
            json!({"documentId": "d0", "index": 0, "contentLocation": content,
                   "metadataLocation": content.replace("video.mp4", "metadata.json")})
        };
        let byos = |chunk: Value| {
            recording(
                "a",
                "2021-07-27T15:20:01Z",
                vec![chunk],
                json!({"storageType": "AzureBlob"}),
            )
            .with_archive_states(|url| url.starts_with("https://us-storage.asm.skype.com/"))
        };
        let blob = "https://contoso.blob.core.windows.net/recordings/d0/video.mp4";
        let external = byos(own(blob));
        let state = external.chunk_archive("d0").unwrap();
        assert_eq!(state.state, ArchiveStatus::External);
        assert_eq!(state.content_location.as_deref(), Some(blob), "the locations are kept");
        assert!(
            external.still_to_archive(&["d0".to_owned()]).is_empty(),
            "nothing to download"
        );

        let at_acs = byos(own("https://us-storage.asm.skype.com/v1/objects/d0/content/video.mp4"));
        assert_eq!(
            at_acs.chunk_archive("d0"),
            Some(ChunkArchive::pending()),
            "an export that failed"
        );
        let merged = external.clone().merge(at_acs.clone());
        assert_eq!(merged.chunk_archive("d0").unwrap().state, ArchiveStatus::Pending);
        assert_eq!(merged, at_acs.merge(external), "in either order");

        let acs_storage =
            recording("b", "2021-07-27T15:20:01Z", vec![own(blob)], json!({})).with_archive_states(|_| false);
        assert_eq!(
            acs_storage.chunk_archive("d0"),
            Some(ChunkArchive::pending()),
            "only an event that says so is in the customer's storage"
        );
    }

    #[test]
    fn a_stored_state_this_handler_never_wrote_still_calls_for_a_job() {
        let mut doc = recording("a", "2021-07-27T15:20:01Z", vec![chunk(0, "d0")], json!({}));
        doc.chunks[0].insert("archive".into(), json!("x"));
        assert_eq!(doc.still_to_archive(&["d0".to_owned()]), ["d0"]);
        let doc =
            doc.merge(recording("b", "2021-07-27T15:20:02Z", vec![chunk(0, "d0")], json!({})).with_pending_archives());
        assert_eq!(doc.chunk_archive("d0"), Some(ChunkArchive::pending()));
    }

    /// A chunk of `r1` announced at `at` (`https://{host}/v1/objects/{object}`) by event `id` at `time`, stored with
    /// archival on (allowed sources: `*.asm.skype.com`).
    fn announced(id: &str, time: &str, host: &str, object: &str) -> RecordingDocument {
        let at = format!("https://{host}/v1/objects/{object}");
        let chunk = json!({"documentId": "d0", "index": 0, "contentLocation": format!("{at}/content/video"),
                           "metadataLocation": format!("{at}/content/acsmetadata"), "deleteLocation": at});
        recording(id, time, vec![chunk], json!({}))
            .with_judged_locations(|url| url.contains(".asm.skype.com/"))
            .with_pending_archives()
    }

    fn content_of(document: &RecordingDocument) -> String {
        document.chunk_locations("d0").unwrap().content.unwrap()
    }

    #[test]
    fn an_event_cannot_plant_links_or_the_chunks_times() {
        let mut planted = chunk(0, "d0");
        planted["links"] = json!({"content": "https://evil.example/x.mp4"});
        planted["announcedAt"] = json!("0000-01-01T00:00:00Z");
        planted["locationsRefused"] = json!(false);
        let doc = recording("a", "2021-07-27T15:20:01Z", vec![planted], json!({}));
        let chunk = doc.chunk("d0").unwrap();
        assert!(chunk.get("links").is_none(), "links are the product's");
        assert_eq!(
            chunk["extraData"]["links"]["content"], "https://evil.example/x.mp4",
            "kept aside"
        );
        assert_eq!(chunk["announcedAt"], "2021-07-27T15:20:01Z", "the event's own time");
        assert_eq!(chunk["extraData"]["announcedAt"], "0000-01-01T00:00:00Z");
        assert!(chunk.get("locationsRefused").is_none());
    }

    #[test]
    fn a_location_outside_the_sources_never_replaces_an_allowed_one_in_any_order() {
        let real = announced("a", "2021-07-27T15:20:02Z", "us-storage.asm.skype.com", "real");
        // Earlier, and sorting higher: it would have won field by field.
        let outside = announced("b", "2021-07-27T15:20:01Z", "zz.evil.example", "real");
        let split = {
            let mut split = chunk(0, "d0");
            split["contentLocation"] = json!("https://us-storage.asm.skype.com/v1/objects/x/content/video");
            split["metadataLocation"] = json!("https://us-storage.asm.skype.com/v1/objects/y/content/acsmetadata");
            recording("c", "2021-07-27T15:20:00Z", vec![split], json!({}))
                .with_judged_locations(|url| url.contains(".asm.skype.com/"))
        };
        assert_eq!(outside.chunk("d0").unwrap()["locationsRefused"], true);
        assert_eq!(
            split.chunk("d0").unwrap()["locationsRefused"],
            true,
            "not files of one object"
        );
        for order in permutations(&[&real, &outside, &split]) {
            let merged = merge_all(&order);
            assert_eq!(content_of(&merged), content_of(&real));
            assert!(merged.chunk("d0").unwrap().get("locationsRefused").is_none());
            assert_eq!(
                merged.chunk_announced_at("d0"),
                Some("2021-07-27T15:20:00Z"),
                "the earliest announcement"
            );
        }
    }

    #[test]
    fn between_allowed_locations_the_earliest_announcement_stays_whole() {
        let first = announced("a", "2021-07-27T15:20:01Z", "us-storage.asm.skype.com", "aaa");
        let later = announced("b", "2021-07-27T15:20:02Z", "us-storage.asm.skype.com", "zzz");
        let tie = announced("c", "2021-07-27T15:20:01Z", "us-storage.asm.skype.com", "bbb");
        for order in permutations(&[&first, &later, &tie]) {
            let merged = merge_all(&order);
            let at = merged.chunk_locations("d0").unwrap();
            assert_eq!(
                at.content.as_deref(),
                Some("https://us-storage.asm.skype.com/v1/objects/aaa/content/video")
            );
            assert_eq!(
                at.metadata.as_deref(),
                Some("https://us-storage.asm.skype.com/v1/objects/aaa/content/acsmetadata"),
                "the three locations of one announcement"
            );
            assert_eq!(
                at.delete.as_deref(),
                Some("https://us-storage.asm.skype.com/v1/objects/aaa")
            );
        }
    }

    #[test]
    fn a_documents_chunk_of_an_earlier_version_keeps_its_locations() {
        // Stored before announcements had times: as the oldest announcement, it stays.
        let mut old = announced("a", "2021-07-27T15:20:05Z", "us-storage.asm.skype.com", "zzz");
        for field in ["announcedAt", "locationsAnnouncedAt"] {
            old.chunks[0].remove(field);
        }
        let new = announced("b", "2021-07-27T15:20:01Z", "us-storage.asm.skype.com", "aaa");
        let merged = old.clone().merge(new.clone());
        assert_eq!(merged, new.merge(old.clone()));
        assert_eq!(content_of(&merged), content_of(&old));
        assert_eq!(
            merged.chunk_announced_at("d0"),
            Some("2021-07-27T15:20:01Z"),
            "no time of its own: the recording's first event's"
        );
    }

    #[test]
    fn a_time_later_than_its_receipt_is_clamped_and_one_within_the_skew_kept() {
        let received =
            time::OffsetDateTime::parse("2021-07-27T15:20:00Z", &time::format_description::well_known::Rfc3339)
                .unwrap();
        let mut future = recording("a", "9999-12-31T23:59:59.9999999Z", vec![chunk(0, "d0")], json!({}));
        assert_eq!(
            future.received_at(received),
            [("d0".to_owned(), Some("9999-12-31T23:59:59.9999999Z".to_owned()))]
        );
        assert_eq!(future.chunk_announced_at("d0"), Some("2021-07-27T15:20:00Z"));
        assert_eq!(
            future.chunk("d0").unwrap()["locationsAnnouncedAt"],
            "2021-07-27T15:20:00Z"
        );
        let mut skewed = recording("b", "2021-07-27T15:25:00Z", vec![chunk(0, "d0")], json!({}));
        assert!(
            skewed.received_at(received).is_empty(),
            "five minutes ahead is the clocks' skew"
        );
        let mut beyond = recording("c", "2021-07-27T15:25:01Z", vec![chunk(0, "d0")], json!({}));
        assert_eq!(beyond.received_at(received).len(), 1, "a second beyond it is not");
        // Redelivered later (clamped to a later receipt), the chunk keeps its earliest time.
        let mut again = recording("a", "9999-12-31T23:59:59.9999999Z", vec![chunk(0, "d0")], json!({}));
        again.received_at(received + time::Duration::hours(1));
        assert_eq!(
            future.clone().merge(again.clone()).chunk_announced_at("d0"),
            Some("2021-07-27T15:20:00Z")
        );
        assert_eq!(future.clone().merge(again.clone()), again.merge(future));
    }

    #[test]
    fn an_archived_result_is_recorded_only_from_the_chunks_locations() {
        let mut doc = announced("a", "2021-07-27T15:20:01Z", "us-storage.asm.skype.com", "aaa");
        let file = |name: &str, object: &str| ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 10,
            sha256: "0f".repeat(32),
            source: Some(format!(
                "https://us-storage.asm.skype.com/v1/objects/{object}/content/{name}"
            )),
        };
        let from = |object: &str| {
            let mut content = file("video", object);
            let mut metadata = file("acsmetadata", object);
            content.location = "file:///archive/d0.content.mp4".into();
            metadata.location = "file:///archive/d0.metadata.json".into();
            ChunkArchive::archived(content, metadata, "2021-07-27T15:30:00Z".into(), 1)
        };
        assert_eq!(doc.record_archive("d0", &from("zzz")), ChunkUpdate::LocationsChanged);
        assert_eq!(doc.chunk_archive("d0"), Some(ChunkArchive::pending()));
        assert_eq!(doc.record_archive("d0", &from("aaa")), ChunkUpdate::Changed);
    }

    #[test]
    fn chunks_without_a_document_id_get_no_archive_state() {
        let doc = recording("a", "2021-07-27T15:20:01Z", vec![json!({"index": 0})], json!({})).with_pending_archives();
        assert!(doc.chunks[0].get("archive").is_none());
        assert!(doc.archivable_chunk_ids().is_empty());
    }

    #[test]
    fn later_event_wins_even_when_merged_into_an_even_later_one_first() {
        let a = recording("a", "2021-07-27T15:20:01Z", vec![], json!({"sessionEndReason": "A"}));
        let b = recording("b", "2021-07-27T15:20:02Z", vec![], json!({"sessionEndReason": "B"}));
        let c = recording("c", "2021-07-27T15:20:03Z", vec![], json!({}));
        assert_eq!(merge_all(&[&a, &c, &b]).data["sessionEndReason"], "B");
    }

    #[test]
    fn equal_times_are_settled_by_value_not_arrival() {
        let a = recording("a", "2021-07-27T15:20:01Z", vec![], json!({"sessionEndReason": "A"}));
        let b = recording("b", "2021-07-27T15:20:01Z", vec![], json!({"sessionEndReason": "B"}));
        assert_eq!(a.clone().merge(b.clone()), b.merge(a));
    }

    #[test]
    fn same_chunk_in_two_events_is_kept_once_with_every_field() {
        let mut partial = chunk(0, "d0");
        partial.as_object_mut().unwrap().remove("endReason");
        let a = recording("a", "2021-07-27T15:20:01Z", vec![partial], json!({}));
        let b = recording("b", "2021-07-27T15:20:02Z", vec![chunk(0, "d0")], json!({}));
        let merged = a.clone().merge(b.clone());
        let mut expected = chunk(0, "d0");
        expected["announcedAt"] = json!("2021-07-27T15:20:01Z");
        expected["locationsAnnouncedAt"] = json!("2021-07-27T15:20:01Z");
        assert_eq!(merged.chunks, vec![expected.as_object().unwrap().clone()]);
        assert_eq!(merged, b.merge(a));
    }

    #[test]
    fn data_fields_named_like_document_fields_cannot_overwrite_them() {
        let doc = recording(
            "e1",
            "2021-07-27T15:20:01Z",
            vec![],
            json!({"id": "../evil", "callId": "x", "_etag": "e"}),
        );
        assert_eq!((doc.id.as_str(), doc.call_id.as_str()), ("r1", "c1"));
        assert_eq!(doc.extra_data["id"], "../evil");
        assert_eq!(doc.extra_data["_etag"], "e");
        let stored = serde_json::to_value(&doc).unwrap();
        assert_eq!(stored["id"], "r1");
        assert_eq!(serde_json::from_value::<RecordingDocument>(stored).unwrap(), doc);
    }

    #[test]
    fn data_field_named_like_an_extra_data_time_key_stays_apart() {
        let a = recording(
            "a",
            "2021-07-27T15:20:01Z",
            vec![],
            json!({"id": "x", "extraData.id": "y"}),
        );
        let b = recording("b", "2021-07-27T15:20:02Z", vec![], json!({"id": "x2"}));
        let c = recording("c", "2021-07-27T15:20:03Z", vec![], json!({"extraData.id": "y3"}));
        let in_order = merge_all(&[&a, &b, &c]);
        for order in permutations(&[&a, &b, &c]) {
            assert_eq!(merge_all(&order), in_order);
        }
        assert_eq!(in_order.extra_data["id"], "x2");
        assert_eq!(in_order.extra_data["extraData.id"], "y3");
    }

    #[test]
    fn unsafe_recording_ids_get_a_digest_id_and_keep_the_original() {
        let data = json!({"recordingStorageInfo": {"recordingChunks": []}});
        for hostile in [
            "../../etc/passwd",
            "a?b",
            "a#b",
            "a\\b",
            " padded",
            "nul\u{0}",
            &"x".repeat(300),
        ] {
            let subject = format!("/recording/call/c1/recordingId/{hostile}");
            let Ok(doc) = RecordingDocument::from_event(event("e", "2021-07-27T15:20:01Z", &subject, data.clone()))
            else {
                continue; // a `/` splits the subject; the id is then whatever follows, tested below
            };
            assert!(
                doc.id.starts_with("rid-") || !doc.id.contains(['/', '\\', '?', '#']),
                "{hostile}"
            );
        }
        // The digest's value is pinned in `ids`; here, that the document carries it and keeps the id as named.
        let subject = "/recording/call/c1/recordingId/a?b";
        let doc = RecordingDocument::from_event(event("e", "2021-07-27T15:20:01Z", subject, data)).unwrap();
        assert_eq!(doc.id, document_id("a?b"));
        assert_eq!(
            doc.id,
            "rid-3db35d3d1cb1b6b0b4ba5c58a1d199484d7977f3d13137cb8585500517fac465"
        );
        assert_eq!(doc.recording_id.as_deref(), Some("a?b"));
    }

    #[test]
    fn events_naming_no_recording_share_an_id_through_the_start_time() {
        let data = |chunk_id: &str| {
            json!({"recordingStorageInfo": {"recordingChunks": [chunk(0, chunk_id)]},
                   "recordingStartTime": "2021-07-27T15:20:23.6089755Z"})
        };
        let subject = "/recording/call/c1/serverCallId/s1";
        let a = RecordingDocument::from_event(event("a", "2021-07-27T15:20:01Z", subject, data("d0"))).unwrap();
        let b = RecordingDocument::from_event(event("b", "2021-07-27T15:20:02Z", subject, data("d1"))).unwrap();
        assert_eq!(a.id, b.id);
        assert!(a.id.starts_with("rec-") && a.recording_id.is_none());
        let respelled = |start: &str| {
            let data = json!({"recordingStorageInfo": {"recordingChunks": []}, "recordingStartTime": start});
            RecordingDocument::from_event(event("c", "2021-07-27T15:20:03Z", subject, data))
                .unwrap()
                .id
        };
        assert_eq!(respelled("2021-07-27T15:20:23.6089755Z"), a.id);
        assert_eq!(
            respelled("2021-07-27T17:20:23.60897550+02:00"),
            a.id,
            "the same instant, spelled otherwise"
        );
        let other_call =
            RecordingDocument::from_event(event("a", "2021-07-27T15:20:01Z", "/recording/call/c2", data("d0")))
                .unwrap();
        assert_ne!(a.id, other_call.id);
    }

    #[test]
    fn bring_your_own_storage_events_name_the_recording_in_data() {
        let data =
            json!({"recordingStorageInfo": {"recordingChunks": []}, "recordingId": "r9", "storageType": "AzureBlob"});
        let doc =
            RecordingDocument::from_event(event("e", "2021-07-27T15:20:01Z", "/recording/call/c1", data)).unwrap();
        assert_eq!((doc.id.as_str(), doc.recording_id.as_deref()), ("r9", Some("r9")));
        assert_eq!(doc.data["storageType"], "AzureBlob");
        assert!(doc.extra_data.is_empty());
    }

    #[test]
    fn unusable_recording_events_are_refused_with_a_reason() {
        let subject = "/recording/call/c1";
        let cases = [
            (json!({}), RecordingError::NoStorageInfo),
            (json!({"recordingStorageInfo": "x"}), RecordingError::NoStorageInfo),
            (
                json!({"recordingStorageInfo": {"recordingChunks": {}}}),
                RecordingError::MalformedChunks,
            ),
            (
                json!({"recordingStorageInfo": {"recordingChunks": [1]}}),
                RecordingError::MalformedChunks,
            ),
            (json!([]), RecordingError::NoData),
        ];
        for (data, reason) in cases {
            assert_eq!(
                RecordingDocument::from_event(event("e", "2021-07-27T15:20:01Z", subject, data)),
                Err(reason)
            );
        }
        let data = json!({"recordingStorageInfo": {}});
        assert!(matches!(
            RecordingDocument::from_event(event("e", "2021-07-27T15:20:01Z", "/call/x", data)),
            Err(RecordingError::Subject(_))
        ));
    }
}
