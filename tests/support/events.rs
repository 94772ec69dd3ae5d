//! Real-shaped ACS events for tests, in the shapes ACS has published them.

use serde_json::{Value, json};

pub const TOPIC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/contoso-rg/providers/microsoft.communication/communicationservices/contoso-acs";
pub const RECORDING_EVENT: &str = "Microsoft.Communication.RecordingFileStatusUpdated";

/// One recording chunk, as ACS lists it in `recordingStorageInfo.recordingChunks`.
pub fn chunk(index: u64, document_id: &str) -> Value {
    json!({
        "documentId": document_id,
        "index": index,
        "endReason": "SessionEnded",
        "contentLocation": format!("https://storage.asm.skype.com/v1/objects/{document_id}/content/video"),
        "metadataLocation": format!("https://storage.asm.skype.com/v1/objects/{document_id}/content/acsmetadata"),
        "deleteLocation": format!("https://storage.asm.skype.com/v1/objects/{document_id}"),
    })
}

/// The full `data` of a recording event with these chunks.
pub fn recording_data(chunks: &[Value]) -> Value {
    json!({
        "recordingStorageInfo": { "recordingChunks": chunks },
        "recordingStartTime": "2026-11-27T15:20:23.6089755Z",
        "recordingDurationMs": 6620,
        "sessionEndReason": "CallEnded",
        "recordingContentType": "AudioVideo",
        "recordingChannelType": "Mixed",
        "recordingFormatType": "Mp4"
    })
}

/// A recording event in the Event Grid schema.
pub fn event_grid(id: &str, subject: &str, time: &str, data: Value) -> Value {
    json!({
        "id": id,
        "topic": TOPIC,
        "subject": subject,
        "data": data,
        "eventType": RECORDING_EVENT,
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": time,
    })
}

/// The same event in the CloudEvents 1.0 schema.
pub fn cloud_event(id: &str, subject: &str, time: &str, data: Value) -> Value {
    json!({
        "id": id,
        "source": TOPIC,
        "subject": subject,
        "type": RECORDING_EVENT,
        "time": time,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// The newest subject form, naming call, server call and recording.
pub fn subject(call_id: &str, recording_id: &str) -> String {
    format!("/recording/call/{call_id}/serverCallId/c2VydmVyLWNhbGwtaWQ/recordingId/{recording_id}")
}

/// A recording event of `recording_id` in call `call_id` announcing these chunks.
pub fn recording_event(event_id: &str, call_id: &str, recording_id: &str, time: &str, chunks: &[Value]) -> Value {
    event_grid(event_id, &subject(call_id, recording_id), time, recording_data(chunks))
}

/// An ACS event of another type, delivered on the same subscription.
pub fn call_ended(id: &str) -> Value {
    json!({
        "id": id,
        "topic": TOPIC,
        "subject": "call/c2VydmVyLWNhbGwtaWQ",
        "data": { "durationOfCall": 49.7286172, "serverCallId": "c2VydmVyLWNhbGwtaWQ", "isTwoParty": false },
        "eventType": "Microsoft.Communication.CallEnded",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2026-11-27T17:03:12.6143005Z",
    })
}

/// The last instant of the calendar, as an event time: a day after it is past the calendar.
pub const LAST_INSTANT: &str = "9999-12-31T23:59:59.9999999Z";

/// An event of the oldest subject form (it names only the call) whose recording starts in the last half hour of
/// the calendar, spelled with an offset that puts its UTC form past year 9999.
pub fn recording_starting_at_the_calendars_edge(event_id: &str, call_id: &str, time: &str, chunks: &[Value]) -> Value {
    let mut event = event_grid(
        event_id,
        &format!("/recording/call/{call_id}"),
        time,
        recording_data(chunks),
    );
    event["data"]["recordingStartTime"] = json!("9999-12-31T23:30:00-01:00");
    event
}

/// A chunk whose files are served at these URLs (the ACS test server's).
pub fn chunk_at(index: u64, document_id: &str, urls: &super::acs::ChunkUrls) -> Value {
    json!({
        "documentId": document_id,
        "index": index,
        "endReason": "SessionEnded",
        "contentLocation": urls.content,
        "metadataLocation": urls.metadata,
        "deleteLocation": urls.delete,
    })
}
