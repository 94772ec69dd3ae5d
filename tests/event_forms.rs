//! Every event form ACS has published, delivered through the stand-in host and Event Grid, and what it becomes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::events::{TOPIC, call_ended, chunk, cloud_event, event_grid, recording_data, recording_event, subject};
use support::{EventGrid, Host, chunk_ids, documents, json_files, quarantined};

const T1: &str = "2026-11-27T15:20:34.2199328Z";
const T2: &str = "2026-11-27T15:21:10.0000001Z";
const T3: &str = "2026-11-27T15:22:00Z";

async fn start() -> Host {
    Host::start(&[]).await
}

/// The only stored document, after checking there is exactly one.
fn only_document(data: &Path) -> Value {
    let mut docs = documents(data);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    docs.remove(0)
}

#[tokio::test]
async fn every_published_subject_form_is_stored_with_its_ids() {
    let host = start().await;
    let forms = [
        (
            "/recording/call/call-a/serverCallId/srv-a",
            "call-a",
            None,
            Some("srv-a"),
            None,
        ),
        (
            "/recording/call/call-b/recordingId/rec-b",
            "call-b",
            Some("rec-b"),
            None,
            None,
        ),
        (
            "/recording/call/call-c/serverCallId/srv-c/recordingId/rec-c",
            "call-c",
            Some("rec-c"),
            Some("srv-c"),
            None,
        ),
        (
            "/recording/call/call-d/callConnectionId/conn-d/recordingId/rec-d",
            "call-d",
            Some("rec-d"),
            None,
            Some("conn-d"),
        ),
    ];
    let grid = EventGrid::new(&host);
    for (i, (subject, ..)) in forms.iter().enumerate() {
        let event = event_grid(
            &format!("e{i}"),
            subject,
            T1,
            recording_data(&[chunk(0, &format!("d{i}"))]),
        );
        grid.deliver_all(&[event]).await;
    }
    let docs = documents(&host.data_dir());
    assert_eq!(docs.len(), forms.len());
    for (subject, call_id, recording_id, server_call_id, connection_id) in forms {
        let doc = docs.iter().find(|d| d["callId"] == call_id).unwrap();
        assert_eq!(doc["subject"], subject);
        assert_eq!(doc["recordingId"].as_str(), recording_id);
        assert_eq!(doc.get("serverCallId").and_then(Value::as_str), server_call_id);
        assert_eq!(doc.get("callConnectionId").and_then(Value::as_str), connection_id);
        match recording_id {
            Some(recording_id) => assert_eq!(doc["id"], recording_id),
            None => assert!(doc["id"].as_str().unwrap().starts_with("rec-"), "derived id: {doc}"),
        }
    }
}

#[tokio::test]
async fn stored_document_keeps_every_data_field_chunk_and_the_source() {
    let host = start().await;
    let mut data = recording_data(&[chunk(0, "d0")]);
    data["futureField"] = json!({"kept": true});
    data["recordingStorageInfo"]["recordingChunks"][0]["futureChunkField"] = json!(7);
    let event = event_grid("e1", &subject("call-1", "rec-1"), T1, data.clone());
    EventGrid::new(&host).deliver_all(&[event]).await;

    let doc = only_document(&host.data_dir());
    assert_eq!(doc["id"], "rec-1");
    assert_eq!(doc["callId"], "call-1");
    assert_eq!(doc["source"], TOPIC);
    for field in [
        "recordingStartTime",
        "recordingDurationMs",
        "sessionEndReason",
        "recordingContentType",
        "recordingChannelType",
        "recordingFormatType",
        "futureField",
    ] {
        assert_eq!(doc[field], data[field], "{field}");
    }
    assert_eq!(
        doc["recordingStartTime"], "2026-11-27T15:20:23.6089755Z",
        "all seven digits kept"
    );
    // Every chunk field, and when the chunk was announced (the event's time).
    let mut announced = data["recordingStorageInfo"]["recordingChunks"].clone();
    for chunk in announced.as_array_mut().unwrap() {
        chunk["announcedAt"] = doc["firstEventTime"].clone();
        chunk["locationsAnnouncedAt"] = doc["firstEventTime"].clone();
    }
    assert_eq!(doc["chunks"], announced);
    assert_eq!(doc["eventIds"], json!(["e1"]));
    assert_eq!(
        (doc["firstEventTime"].as_str(), doc["lastEventTime"].as_str()),
        (Some(T1), Some(T1))
    );
}

#[tokio::test]
async fn cloud_events_schema_gives_the_same_document() {
    let grid_host = start().await;
    let cloud_host = start().await;
    let data = recording_data(&[chunk(0, "d0")]);
    let subject = subject("call-1", "rec-1");
    EventGrid::new(&grid_host)
        .deliver_all(&[event_grid("e1", &subject, T1, data.clone())])
        .await;
    EventGrid::new(&cloud_host)
        .deliver_all(&[cloud_event("e1", &subject, T1, data)])
        .await;
    assert_eq!(
        only_document(&grid_host.data_dir()),
        only_document(&cloud_host.data_dir())
    );
}

#[tokio::test]
async fn event_given_as_a_json_string_is_stored_like_an_object() {
    let host = start().await;
    let event = recording_event("e1", "call-1", "rec-1", T1, &[chunk(0, "d0")]);
    let answer = host.invoke_as_string(&event).await;
    assert!(answer.succeeded(), "{answer:?}");
    assert_eq!(only_document(&host.data_dir())["id"], "rec-1");
}

#[tokio::test]
async fn recording_event_with_only_the_required_fields_is_stored() {
    let host = start().await;
    let minimal = json!({
        "id": "e1",
        "subject": "/recording/call/call-1",
        "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
        "data": {"recordingStorageInfo": {"recordingChunks": [{"documentId": "d0"}]}},
    });
    let answer = host.invoke(&minimal).await;
    assert!(answer.succeeded(), "{answer:?}");
    let doc = only_document(&host.data_dir());
    assert_eq!(doc["callId"], "call-1");
    assert_eq!(doc["recordingId"], Value::Null);
    assert_eq!(chunk_ids(&doc), ["d0"]);
    assert_eq!(doc["firstEventTime"], Value::Null);
}

#[tokio::test]
async fn redelivered_event_changes_nothing() {
    let host = start().await;
    let event = recording_event("e1", "call-1", "rec-1", T1, &[chunk(0, "d0")]);
    let grid = EventGrid::new(&host);
    grid.deliver_all(std::slice::from_ref(&event)).await;
    let files_before = json_files(&host.data_dir().join("recordings"));
    let bytes_before = std::fs::read(&files_before[0].0).unwrap();

    let again = grid.deliver(&event).await;
    assert!(again.delivered);
    assert_eq!(
        again.last.unwrap().log(),
        "stored recording rec-1 of call call-1 (unchanged)"
    );
    assert_eq!(
        std::fs::read(&files_before[0].0).unwrap(),
        bytes_before,
        "not rewritten"
    );
    assert_eq!(json_files(&host.data_dir().join("recordings")).len(), 1);
}

#[tokio::test]
async fn chunks_split_across_events_give_one_document_in_any_order() {
    let events = [
        recording_event("e1", "call-1", "rec-1", T1, &[chunk(0, "d0")]),
        recording_event("e2", "call-1", "rec-1", T2, &[chunk(1, "d1"), chunk(2, "d2")]),
        recording_event("e3", "call-1", "rec-1", T3, &[chunk(3, "d3")]),
    ];
    let in_order_host = start().await;
    EventGrid::new(&in_order_host).deliver_all(&events).await;
    let in_order = only_document(&in_order_host.data_dir());
    assert_eq!(chunk_ids(&in_order), ["d0", "d1", "d2", "d3"]);
    assert_eq!(in_order["eventIds"], json!(["e1", "e2", "e3"]));

    let shuffled_host = start().await;
    let shuffled = [
        events[2].clone(),
        events[0].clone(),
        events[2].clone(),
        events[1].clone(),
        events[0].clone(),
    ];
    EventGrid::new(&shuffled_host).deliver_all(&shuffled).await;
    assert_eq!(only_document(&shuffled_host.data_dir()), in_order);
}

#[tokio::test]
async fn later_event_time_wins_a_disagreement_whatever_the_arrival_order() {
    let host = start().await;
    let mut early = recording_event("e1", "call-1", "rec-1", T1, &[chunk(0, "d0")]);
    early["data"]["recordingDurationMs"] = json!(1000);
    let mut late = recording_event("e2", "call-1", "rec-1", T2, &[chunk(1, "d1")]);
    late["data"]["recordingDurationMs"] = json!(2000);
    EventGrid::new(&host).deliver_all(&[late, early]).await;
    let doc = only_document(&host.data_dir());
    assert_eq!(doc["recordingDurationMs"], 2000);
    assert_eq!(doc["lastEventTime"], T2);
}

#[tokio::test]
async fn concurrent_invocations_for_one_recording_lose_no_chunk() {
    let host = start().await;
    let events: Vec<Value> = (0..24)
        .map(|i| {
            recording_event(
                &format!("e{i}"),
                "call-1",
                "rec-1",
                T1,
                &[chunk(i, &format!("d{i:02}"))],
            )
        })
        .collect();
    let answers = futures_util::future::join_all(events.iter().map(|e| host.invoke(e))).await;
    assert!(answers.iter().all(|a| a.succeeded()), "{answers:?}");
    let doc = only_document(&host.data_dir());
    let expected: Vec<String> = (0..24).map(|i| format!("d{i:02}")).collect();
    assert_eq!(chunk_ids(&doc), expected);
    assert_eq!(doc["eventIds"].as_array().unwrap().len(), 24);
}

#[tokio::test]
async fn other_event_types_are_acknowledged_and_not_stored() {
    let host = start().await;
    let answer = host.invoke(&call_ended("e1")).await;
    assert!(answer.succeeded());
    assert_eq!(answer.log(), "ignored Microsoft.Communication.CallEnded event");
    assert!(documents(&host.data_dir()).is_empty());
    assert!(quarantined(&host.data_dir()).is_empty());
}

#[tokio::test]
async fn unprocessable_payloads_are_quarantined_verbatim_and_acknowledged() {
    let host = start().await;
    let no_storage_info = event_grid("e1", &subject("call-1", "rec-1"), T1, json!({"recordingDurationMs": 5}));
    let no_call = event_grid("e2", "/recording/call/", T1, recording_data(&[chunk(0, "d0")]));
    let no_subject = {
        let mut e = recording_event("e3", "call-1", "rec-1", T1, &[]);
        e.as_object_mut().unwrap().remove("subject");
        e
    };
    let cases: Vec<(Vec<u8>, &str, Option<String>)> = vec![
        (b"this is not JSON".to_vec(), "not a JSON object", None),
        (
            br#"{"Metadata":{}}"#.to_vec(),
            "not a JSON object with a Data object",
            None,
        ),
        (
            br#"{"Data":{"other":{}},"Metadata":{"sys":{"RandGuid":"a"}}}"#.to_vec(),
            "no eventGridEvent",
            Some(r#"{"other":{}}"#.to_owned()),
        ),
        (
            support::envelope::event_grid("RecordingEvent", "eventGridEvent", &no_storage_info.to_string()),
            "no recordingStorageInfo",
            Some(no_storage_info.to_string()),
        ),
        (
            support::envelope::event_grid("RecordingEvent", "eventGridEvent", &no_call.to_string()),
            "names no call",
            Some(no_call.to_string()),
        ),
        (
            support::envelope::event_grid("RecordingEvent", "eventGridEvent", &no_subject.to_string()),
            "no subject",
            Some(no_subject.to_string()),
        ),
    ];
    for (body, reason, payload) in &cases {
        let answer = host.post(body.clone()).await;
        assert!(answer.succeeded(), "{answer:?}");
        assert!(answer.log().starts_with("quarantined as "), "{}", answer.log());
        let expected = payload
            .clone()
            .unwrap_or_else(|| String::from_utf8(body.clone()).unwrap());
        let entry = quarantined(&host.data_dir())
            .into_iter()
            .find(|q| q["payload"] == expected.as_str())
            .unwrap_or_else(|| panic!("{expected} is not kept verbatim in quarantine"));
        assert!(entry["reason"].as_str().unwrap().contains(reason), "{entry}");
    }
    assert_eq!(quarantined(&host.data_dir()).len(), cases.len());
    assert!(documents(&host.data_dir()).is_empty());

    // A redelivered unprocessable payload lands on the same entry, though the host's metadata differs.
    assert!(host.post(cases[0].0.clone()).await.succeeded());
    let redelivered = br#"{"Data":{"other":{}},"Metadata":{"sys":{"RandGuid":"b"}}}"#.to_vec();
    assert!(host.post(redelivered).await.succeeded());
    assert_eq!(quarantined(&host.data_dir()).len(), cases.len());
}

#[tokio::test]
async fn binary_body_is_quarantined_as_base64() {
    let host = start().await;
    let answer = host.post(b"\xff\xfe\x00garbage".to_vec()).await;
    assert!(answer.succeeded(), "{answer:?}");
    let entries = quarantined(&host.data_dir());
    assert_eq!(entries.len(), 1);
    assert!(entries[0]["payloadBase64"].is_string());
}

#[tokio::test]
async fn hostile_ids_never_leave_the_data_directory() {
    let host = start().await;
    let hostile = [
        ("..", ".."),
        ("%2e%2e", "..%2F..%2Fetc"),
        ("call-1", "..\\..\\outside"),
        (".hidden", "a?b#c"),
    ];
    let grid = EventGrid::new(&host);
    for (i, (call_id, recording_id)) in hostile.iter().enumerate() {
        let event = recording_event(&format!("e{i}"), call_id, recording_id, T1, &[chunk(0, "d0")]);
        grid.deliver_all(&[event]).await;
    }
    // Bring-your-own-storage events name the recording in data, where `/` can appear.
    let mut byos = event_grid("e9", "/recording/call/call-9", T1, recording_data(&[chunk(0, "d0")]));
    byos["data"]["recordingId"] = json!("../../../../tmp/escaped");
    grid.deliver_all(&[byos]).await;

    let docs = documents(&host.data_dir());
    assert_eq!(docs.len(), hostile.len() + 1, "one document per recording");
    for doc in &docs {
        let id = doc["id"].as_str().unwrap();
        assert!(!id.contains(['/', '\\', '?', '#']), "document id {id}");
    }
    let byos_doc = docs.iter().find(|d| d["callId"] == "call-9").unwrap();
    assert_eq!(
        byos_doc["recordingId"], "../../../../tmp/escaped",
        "the original id is kept"
    );
    let data = host.data_dir();
    let beside: Vec<String> = std::fs::read_dir(data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "app")
        .collect();
    assert_eq!(
        beside,
        [data.file_name().unwrap().to_string_lossy()],
        "nothing written beside the data directory"
    );
    assert!(!Path::new("/tmp/escaped.json").exists());
}

#[tokio::test]
async fn events_from_resources_outside_the_allow_list_are_quarantined() {
    let allowed = format!("{},/subscriptions/other", TOPIC.to_uppercase());
    let host = Host::start(&[("RECORDINGS_ALLOWED_SOURCES", &allowed)]).await;
    let ours = recording_event("e1", "call-1", "rec-1", T1, &[chunk(0, "d0")]);
    let mut foreign = recording_event("e2", "call-2", "rec-2", T1, &[chunk(0, "d0")]);
    foreign["topic"] = json!(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/x/providers/microsoft.communication/communicationservices/intruder"
    );
    EventGrid::new(&host).deliver_all(&[ours, foreign]).await;
    assert_eq!(only_document(&host.data_dir())["callId"], "call-1");
    let entries = quarantined(&host.data_dir());
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]["reason"].as_str().unwrap().contains("intruder"),
        "{}",
        entries[0]
    );
}

#[tokio::test]
async fn chunk_locations_are_never_fetched() {
    // Every location of the event points at a listener of ours; the handler must never connect to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let trap = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let host = start().await;
    let mut c = chunk(0, "d0");
    for field in ["contentLocation", "metadataLocation", "deleteLocation"] {
        c[field] = json!(format!("{trap}/{field}"));
    }
    EventGrid::new(&host)
        .deliver_all(&[recording_event("e1", "call-1", "rec-1", T1, &[c])])
        .await;
    assert_eq!(
        only_document(&host.data_dir())["chunks"][0]["deleteLocation"],
        format!("{trap}/deleteLocation")
    );
    // Once the worker that stored the event has exited, it can connect to nothing more: whatever it did is in the
    // listener's backlog by then.
    host.signal("TERM");
    host.wait_for_exit().await;
    assert!(listener.accept().is_err(), "the handler connected to a chunk location");
}
