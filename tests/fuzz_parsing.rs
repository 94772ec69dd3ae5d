//! Hostile and broken input, generated: no panic, bounded work, and every payload ends stored, ignored or
//! quarantined. The merge rule's algebra is checked on generated recordings too.
//!
//! A smoke run by default; `PROPTEST_CASES=20000 cargo test --release --test fuzz_parsing` runs a long one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use acs_recording_handler::event::Event;
use acs_recording_handler::functions::RecordingEvent;
use acs_recording_handler::functions::recording_event::TRIGGER;
use acs_recording_handler::host::invocation;
use acs_recording_handler::pipeline::{Outcome, Pipeline};
use acs_recording_handler::recording::{ArchivedFile, ChunkArchive, RecordingDocument, document_id};
use acs_recording_handler::store::{EmbeddedStore, RecordingStore};
use acs_recording_handler::subject::RecordingSubject;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels, with the awkward corners: nulls, huge and negative numbers, odd strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("/recording/call/../..//recordingId/%2e%2e")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An event-shaped object: the fields of either schema, each missing, plausible or arbitrary.
fn event_like() -> impl Strategy<Value = Value> {
    let field = |plausible: BoxedStrategy<Value>| {
        prop_oneof![
            1 => Just(None),
            3 => plausible.prop_map(Some),
            1 => any_json().prop_map(Some),
        ]
    };
    let text = |pattern: &'static str| pattern.prop_map(Value::String).boxed();
    let subject = prop_oneof![
        "/recording/call/[a-z0-9-]{0,8}(/(serverCallId|recordingId|callConnectionId|x)/[A-Za-z0-9+/=.%-]{0,10}){0,4}",
        ".{0,30}",
    ]
    .prop_map(Value::String)
    .boxed();
    let chunk = prop_oneof![
        any_json(),
        ("[a-z0-9]{0,6}", any::<i64>(), any_json())
            .prop_map(|(id, index, extra)| json!({"documentId": id, "index": index, "endReason": extra})),
    ];
    let data = prop_oneof![
        any_json(),
        (prop::collection::vec(chunk, 0..8), any_json(), any_json()).prop_map(|(chunks, start, extra)| {
            json!({"recordingStorageInfo": {"recordingChunks": chunks}, "recordingStartTime": start,
                   "recordingDurationMs": extra, "recordingId": "r/1?#"})
        }),
    ]
    .boxed();
    let time = prop_oneof![
        "2026-11-27T15:20:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]0[0-9]:00)",
        ".{0,12}",
    ]
    .prop_map(Value::String)
    .boxed();
    let kind = prop_oneof![
        Just(json!("Microsoft.Communication.RecordingFileStatusUpdated")),
        Just(json!("Microsoft.Communication.CallEnded")),
        ".{0,20}".prop_map(Value::String),
    ]
    .boxed();
    (
        field(text("[a-z0-9-]{0,10}")),
        field(subject),
        field(kind.clone()),
        field(kind),
        field(time.clone()),
        field(time),
        field(text("/subscriptions/[a-z]{0,6}")),
        field(data),
        field(Just(json!("1.0")).boxed()),
    )
        .prop_map(
            |(id, subject, event_type, cloud_type, event_time, time, topic, data, specversion)| {
                let mut event = serde_json::Map::new();
                for (name, value) in [
                    ("id", id),
                    ("subject", subject),
                    ("eventType", event_type),
                    ("type", cloud_type),
                    ("eventTime", event_time),
                    ("time", time),
                    ("topic", topic),
                    ("data", data),
                    ("specversion", specversion),
                ] {
                    if let Some(value) = value {
                        event.insert(name.to_owned(), value);
                    }
                }
                Value::Object(event)
            },
        )
}

/// What the pure path makes of a body: the recording document it describes (or why it cannot), when it carries a
/// readable event, and the bytes that would be quarantined.
struct Classified<'a> {
    document: Option<Result<RecordingDocument, String>>,
    quarantined: &'a [u8],
}

/// The pure path every payload takes; it must never panic, whatever the input. Asserts what holds for every body:
/// the quarantined bytes are the body or a part of it, a body that is not JSON is quarantined whole, and a document
/// has a call id of one segment and an id safe in every store.
fn classify(body: &[u8]) -> Classified<'_> {
    let document = invocation::binding_object(body, TRIGGER)
        .ok()
        .and_then(|event| Event::parse(&event).ok())
        .map(|event| RecordingDocument::from_event(event).map_err(|e| e.to_string()));
    let quarantined = invocation::quarantine_payload(body);
    let inside = body.as_ptr_range();
    assert!(
        quarantined.is_empty() || inside.contains(&quarantined.as_ptr()) && quarantined.len() <= body.len(),
        "the quarantined bytes are part of the body"
    );
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        assert_eq!(quarantined, body, "a body that is not JSON is quarantined whole");
        assert!(document.is_none(), "no event is read from a body that is not JSON");
    }
    if let Some(Ok(document)) = &document {
        assert!(
            !document.call_id.is_empty() && !document.call_id.contains('/'),
            "{}",
            document.call_id
        );
        assert!(!document.id.is_empty() && document.id.len() <= 255, "{}", document.id);
        assert!(!document.id.contains(['/', '\\', '?', '#']), "{}", document.id);
        assert_eq!(document.event_ids.len(), 1, "{:?}", document.event_ids);
    }
    Classified { document, quarantined }
}

/// An invocation body carrying `event` as the Event Grid trigger's value.
fn envelope(event: Value) -> Vec<u8> {
    json!({"Data": {TRIGGER: event}, "Metadata": {"sys": {"MethodName": "RecordingEvent"}}})
        .to_string()
        .into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_quarantined_whole(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let classified = classify(&body);
        // Random bytes are almost never JSON; when they are (`1`, `"x"`), no event object is in them either.
        prop_assert!(classified.document.is_none());
        if serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert_eq!(classified.quarantined, &body[..]);
        }
    }

    #[test]
    fn arbitrary_subjects_never_panic_and_keep_one_segment_call_ids(subject in ".{0,80}") {
        if let Ok(parsed) = RecordingSubject::parse(&subject) {
            prop_assert!(!parsed.call_id.is_empty() && !parsed.call_id.contains('/'));
        }
    }

    #[test]
    fn event_shaped_input_never_panics_and_reads_alike_in_either_envelope_form(
        event in event_like(),
    ) {
        let as_object = envelope(event.clone());
        let as_string = envelope(Value::String(event.to_string()));
        let (object, string) = (classify(&as_object), classify(&as_string));
        // Either form, one reading: the same document (or the same reason it cannot be one).
        let summary = |c: &Classified<'_>| c.document.clone().map(|d| d.map(|d| (d.call_id, d.id)));
        prop_assert_eq!(summary(&object), summary(&string));
        // What is quarantined is the invocation's `Data`, never its `Metadata`.
        prop_assert!(serde_json::from_slice::<Value>(object.quarantined).unwrap().get(TRIGGER).is_some());
    }
}

/// Times at the edges of the calendar and of the offsets, beside ordinary and unreadable ones: `eventTime` and
/// `recordingStartTime` take any of them.
fn edge_time() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("9999-12-31T23:59:59.9999999Z".to_owned()),
        Just("9999-12-31T23:30:00-01:00".to_owned()),
        Just("9999-12-31T23:59:59+00:01".to_owned()),
        Just("0000-01-01T00:00:00+01:00".to_owned()),
        Just("0000-01-01T00:00:00Z".to_owned()),
        Just("0001-01-01T00:00:00Z".to_owned()),
        "2026-11-27T(0[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([+-]23:59|[+-]0[0-9]:[0-5][0-9]|Z)",
        "(0000|9999)-(01|12)-(01|31)T(00|23):(00|59):(00|59)([+-]23:59|[+-]00:01)",
        Just("yesterday".to_owned()),
    ]
}

/// What a payload must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expected {
    Stored,
    Ignored,
    Quarantined,
}

/// How a valid recording event is spoiled, if at all.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// None: a field gets a value of a wrong type that the document keeps as it is.
    WrongTypedExtra(u8),
    OtherEventType,
    NoId,
    NoSubject,
    SubjectWithoutCallId,
    DataNotAnObject,
    NoStorageInfo,
    ChunksNotAnArray,
    NotJson,
}

impl Mutation {
    fn expected(self) -> Expected {
        match self {
            Mutation::WrongTypedExtra(_) => Expected::Stored,
            Mutation::OtherEventType => Expected::Ignored,
            _ => Expected::Quarantined,
        }
    }
}

/// A payload and what it must become: a real-shaped recording event in either schema — times at the calendar's
/// edges, subjects naming a recording or only the call — spoiled by one mutation or none.
#[derive(Debug, Clone)]
struct Case {
    body: Vec<u8>,
    mutation: Mutation,
    call_id: String,
    /// The recording id the subject names; `None` for the subject forms naming only the call.
    recording_id: Option<String>,
    start_time: Option<String>,
    archival: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let recording_id = prop_oneof![
        4 => Just(None),
        4 => "[A-Za-z0-9+=.-]{1,16}".prop_map(Some),
        1 => "[A-Za-z0-9]{1,4}[?#\\\\][A-Za-z0-9]{0,4}".prop_map(Some),
        1 => Just(Some("x".repeat(300))),
    ];
    let mutation = prop_oneof![
        10 => any::<u8>().prop_map(Mutation::WrongTypedExtra),
        2 => Just(Mutation::OtherEventType),
        1 => Just(Mutation::NoId),
        1 => Just(Mutation::NoSubject),
        1 => Just(Mutation::SubjectWithoutCallId),
        1 => Just(Mutation::DataNotAnObject),
        1 => Just(Mutation::NoStorageInfo),
        1 => Just(Mutation::ChunksNotAnArray),
        1 => Just(Mutation::NotJson),
    ];
    (
        (
            "[a-z0-9]{1,8}",
            "[a-z0-9-]{1,12}",
            recording_id,
            prop::option::of("[A-Za-z0-9]{1,8}"),
        ),
        (
            edge_time(),
            prop::option::of(edge_time()),
            prop::collection::vec("d[0-9]{1,3}", 0..4),
        ),
        (mutation, any::<bool>(), any::<bool>(), any::<bool>(), any_json()),
    )
        .prop_map(
            |((id, call_id, recording_id, server_call_id), (time, start_time, chunk_ids), rest)| {
                let (mutation, cloud_events, as_string, archival, wrong) = rest;
                let mut subject = format!("/recording/call/{call_id}");
                if let Some(server_call_id) = &server_call_id {
                    subject.push_str(&format!("/serverCallId/{server_call_id}"));
                }
                if let Some(recording_id) = &recording_id {
                    subject.push_str(&format!("/recordingId/{recording_id}"));
                }
                let chunks: Vec<Value> = chunk_ids
                    .iter()
                    .enumerate()
                    .map(|(index, id)| {
                        json!({"documentId": id, "index": index, "endReason": "SessionEnded",
                                              "contentLocation": format!("https://x.asm.skype.com/{id}/content")})
                    })
                    .collect();
                let mut data = json!({"recordingStorageInfo": {"recordingChunks": chunks},
                                      "recordingDurationMs": 6620, "recordingContentType": "AudioVideo"});
                if let Some(start) = &start_time {
                    data["recordingStartTime"] = json!(start);
                }
                let (type_field, time_field, source_field) = if cloud_events {
                    ("type", "time", "source")
                } else {
                    ("eventType", "eventTime", "topic")
                };
                let mut event = json!({"id": id, "subject": subject, "data": data,
                                       type_field: "Microsoft.Communication.RecordingFileStatusUpdated",
                                       time_field: time, source_field: "/subscriptions/s/communicationservices/acs"});
                if cloud_events {
                    event["specversion"] = json!("1.0");
                }
                let fields = [
                    "recordingDurationMs",
                    "sessionEndReason",
                    "recordingChannelType",
                    "unknownField",
                ];
                match mutation {
                    Mutation::WrongTypedExtra(pick) => event["data"][fields[usize::from(pick) % fields.len()]] = wrong,
                    Mutation::OtherEventType => event[type_field] = json!("Microsoft.Communication.CallEnded"),
                    Mutation::NoId => drop(event.as_object_mut().unwrap().remove("id")),
                    Mutation::NoSubject => drop(event.as_object_mut().unwrap().remove("subject")),
                    Mutation::SubjectWithoutCallId => event["subject"] = json!("/recording/call/"),
                    Mutation::DataNotAnObject => event["data"] = json!([1, 2]),
                    Mutation::NoStorageInfo => {
                        drop(event["data"].as_object_mut().unwrap().remove("recordingStorageInfo"))
                    }
                    Mutation::ChunksNotAnArray => {
                        event["data"]["recordingStorageInfo"]["recordingChunks"] = json!("d0")
                    }
                    Mutation::NotJson => {}
                }
                let body = match mutation {
                    Mutation::NotJson => format!("{{\"Data\": {{\"{TRIGGER}\": {event}").into_bytes(),
                    _ if as_string => envelope(Value::String(event.to_string())),
                    _ => envelope(event),
                };
                Case {
                    body,
                    mutation,
                    call_id,
                    recording_id,
                    start_time,
                    archival,
                }
            },
        )
}

/// Runs one case through the real pipeline and an embedded store, asserts what it must become, and returns which
/// outcome it reached.
fn run_case(case: &Case) -> Result<Expected, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let sources = case
        .archival
        .then(acs_recording_handler::archive::sources::ArchiveSources::default_list);
    let pipeline = Pipeline::new(store.clone()).with_archival(sources);
    let runtime = runtime();
    let outcome = runtime.block_on(RecordingEvent::new(pipeline).handle(&case.body));
    let documents = support::documents(dir.path()); // fails on any invalid file
    let quarantined = support::quarantined(dir.path());
    let reached = match outcome {
        Ok(Outcome::Stored { call_id, id, .. }) => {
            let stored = runtime.block_on(store.read(&call_id, &id)).unwrap();
            prop_assert!(stored.is_some(), "reported stored, not in the store");
            prop_assert_eq!(&call_id, &case.call_id);
            match &case.recording_id {
                Some(recording_id) => prop_assert_eq!(&id, &document_id(recording_id)),
                None => prop_assert!(id.starts_with("rec-") && id.len() == 36, "{}", id),
            }
            prop_assert_eq!((documents.len(), quarantined.len()), (1, 0));
            Expected::Stored
        }
        Ok(Outcome::Ignored { .. }) => {
            prop_assert_eq!((documents.len(), quarantined.len()), (0, 0));
            Expected::Ignored
        }
        Ok(Outcome::Quarantined { id, reason }) => {
            let kept = runtime.block_on(store.read_quarantined(&id)).unwrap();
            prop_assert!(kept.is_some(), "reported quarantined, not in quarantine");
            prop_assert!(!reason.is_empty());
            prop_assert_eq!((documents.len(), quarantined.len()), (0, 1));
            Expected::Quarantined
        }
        Ok(Outcome::Erased { .. }) => {
            return Err(TestCaseError::fail("a fresh store has no erased recording"));
        }
        Err(e) => return Err(TestCaseError::fail(format!("the store failed: {e}"))),
    };
    prop_assert_eq!(reached, case.mutation.expected(), "{:?}", case.mutation);
    let outside = std::fs::read_dir(dir.path()).unwrap().count();
    prop_assert_eq!(outside, 2, "only recordings/ and quarantine/");
    Ok(reached)
}

/// Through the real pipeline and store: each payload becomes what it must (stored under the id its subject
/// gives, ignored, or quarantined and readable there), and every outcome is reached — the counts are printed.
#[test]
fn every_payload_is_stored_ignored_or_quarantined_as_it_must_be() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(192);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::<&str, usize>::new());
    let count = |name: &'static str| *counts.lock().unwrap().entry(name).or_default() += 1;
    let result = runner.run(&case(), |case| {
        let reached = run_case(&case)?;
        count(match reached {
            Expected::Stored => "stored",
            Expected::Ignored => "ignored",
            Expected::Quarantined => "quarantined",
        });
        let edge = |time: &str| time.starts_with("0000") || time.starts_with("0001") || time.starts_with("9999");
        if reached == Expected::Stored && case.recording_id.is_none() && case.start_time.as_deref().is_some_and(edge) {
            count("stored under an id derived from a start time at the calendar's edge");
        }
        Ok(())
    });
    let counts = counts.into_inner().unwrap();
    println!("outcomes of {cases} cases: {counts:?}");
    if let Err(failure) = result {
        panic!("{failure}");
    }
    for outcome in [
        "stored",
        "ignored",
        "quarantined",
        "stored under an id derived from a start time at the calendar's edge",
    ] {
        assert!(
            counts.get(outcome).is_some_and(|n| *n > 0),
            "no case was {outcome}: {counts:?}"
        );
    }
}

/// A chunk's locations as an event may announce them: none, at one of two allowed objects, outside the allowed
/// sources, or content and metadata of two objects.
fn locations(document_id: &str, kind: u8) -> Option<Value> {
    let object = |host: &str, object: &str| format!("https://{host}/v1/objects/{document_id}{object}");
    let (content, metadata, delete) = match kind {
        1 | 2 => {
            let at = object("us-storage.asm.skype.com", if kind == 1 { "a" } else { "b" });
            (format!("{at}/content/video"), format!("{at}/content/acsmetadata"), at)
        }
        3 => {
            let at = object("zz.evil.example", "");
            (format!("{at}/content/video"), format!("{at}/content/acsmetadata"), at)
        }
        4 => {
            let (a, b) = (
                object("us-storage.asm.skype.com", "a"),
                object("us-storage.asm.skype.com", "b"),
            );
            (format!("{a}/content/video"), format!("{b}/content/acsmetadata"), a)
        }
        _ => return None,
    };
    Some(json!({"contentLocation": content, "metadataLocation": metadata, "deleteLocation": delete}))
}

fn is_allowed_source(url: &str) -> bool {
    url.starts_with("https://us-storage.asm.skype.com/")
}

/// The moment the handler receives the events whose chunk times it clamps.
const RECEIVED: &str = "2026-11-27T15:20:01Z";

/// One recording's events with small value sets, so that times tie and values clash often; chunks announced at
/// allowed and refused locations, with planted links and times; stored with and without archival.
fn recording_events() -> impl Strategy<Value = Vec<RecordingDocument>> {
    let one = (
        "e[0-9]",
        // Ties, one instant spelled two ways, unreadable times (which rank oldest), and a time far in the future.
        prop::option::of(
            "2026-11-27T15:20:0[0-2]Z|2026-11-27T16:20:01\\+01:00|2026-11-27T15:20:01\\.0Z|yesterday|9999-12-31T23:59:59Z",
        ),
        prop::collection::vec(("d[0-3]", 0u64..4, prop::option::of("[ab]"), 0u8..5, any::<bool>()), 0..4),
        prop::option::of("[xyz]"),
        prop::option::of(0u64..3),
        // 0: archival off; 1: archival on; 2: archival on, chunk times clamped at their receipt.
        0u8..3,
        prop::collection::vec(("d[0-3]", 0u8..4, 0u32..3, "[pq]"), 0..3),
    )
        .prop_map(|(id, time, chunks, reason, duration, archival, results)| {
            let chunks: Vec<Value> = chunks
                .into_iter()
                .map(|(document_id, index, end, at, planted)| {
                    let mut c = json!({"documentId": document_id, "index": index});
                    if let Some(end) = end {
                        c["endReason"] = json!(end);
                    }
                    if let Some(Value::Object(at)) = locations(&document_id, at) {
                        c.as_object_mut().unwrap().extend(at);
                    }
                    if planted {
                        c["links"] = json!({"content": "https://evil.example/x"});
                        c["announcedAt"] = json!("0000-01-01T00:00:00Z");
                        c["locationsRefused"] = json!(false);
                    }
                    c
                })
                .collect();
            let mut data = json!({"recordingStorageInfo": {"recordingChunks": chunks}});
            if let Some(reason) = reason {
                data["sessionEndReason"] = json!(reason);
                data["id"] = json!(reason); // a clashing name, kept under extraData
            }
            if let Some(duration) = duration {
                data["recordingDurationMs"] = json!(duration);
            }
            let mut event = json!({"id": id, "subject": "/recording/call/c/recordingId/r",
                                   "eventType": "Microsoft.Communication.RecordingFileStatusUpdated", "data": data});
            if let Some(time) = time {
                event["eventTime"] = json!(time);
            }
            let mut document = RecordingDocument::from_event(Event::parse(&event.to_string()).unwrap()).unwrap();
            if archival == 2 {
                let received = time::OffsetDateTime::parse(RECEIVED, &time::format_description::well_known::Rfc3339);
                document.received_at(received.unwrap());
            }
            document = document.with_judged_locations(is_allowed_source);
            if archival > 0 {
                document = document.with_archive_states(is_allowed_source);
            }
            for (chunk, state, attempts, variant) in results {
                let at = document.chunk_locations(&chunk);
                // The archiver archives only files of one object.
                let one_object = at.as_ref().is_some_and(|at| match (&at.content, &at.metadata) {
                    (Some(c), Some(m)) => acs_recording_handler::recording::one_object(c, m).is_some(),
                    _ => false,
                });
                if state == 3 && !one_object {
                    continue;
                }
                let file = |kind: &str, source: Option<String>| ArchivedFile {
                    location: format!("file:///archive/{chunk}.{kind}.{variant}"),
                    bytes: 3,
                    sha256: variant.repeat(64),
                    source,
                };
                let result = match state {
                    0 => ChunkArchive::pending(),
                    1 => ChunkArchive::failed(format!("gave up {variant}"), attempts),
                    2 => ChunkArchive::expired(format!("404 {variant}"), attempts),
                    _ => ChunkArchive::archived(
                        file("mp4", at.as_ref().and_then(|at| at.content.clone())),
                        file("json", at.as_ref().and_then(|at| at.metadata.clone())),
                        format!("2026-11-28T00:00:0{attempts}Z"),
                        attempts,
                    ),
                };
                document.record_archive(&chunk, &result);
            }
            document
        });
    prop::collection::vec(one, 3)
}

/// Whether a chunk of a document was announced at files the archive can download.
fn announced_at_allowed_files(document: &RecordingDocument, chunk: &str) -> bool {
    let Some(at) = document.chunk_locations(chunk) else {
        return false;
    };
    let judged = document
        .chunk(chunk)
        .is_some_and(|c| c.contains_key("locationsRefused"));
    match (at.content, at.metadata) {
        (Some(content), Some(metadata)) => {
            !judged
                && is_allowed_source(&content)
                && is_allowed_source(&metadata)
                && acs_recording_handler::recording::one_object(&content, &metadata).is_some()
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn merging_is_commutative_associative_and_idempotent(docs in recording_events()) {
        let (a, b, c) = (docs[0].clone(), docs[1].clone(), docs[2].clone());
        prop_assert_eq!(a.clone().merge(b.clone()), b.clone().merge(a.clone()));
        prop_assert_eq!(a.clone().merge(b.clone()).merge(c.clone()), a.clone().merge(b.clone().merge(c.clone())));
        prop_assert_eq!(a.clone().merge(a.clone()), a.clone());
        let ab = a.clone().merge(b.clone());
        prop_assert_eq!(ab.clone().merge(b.clone()), ab.clone());
        // The in-place merge says whether it changed the document, exactly: stores write only then.
        for (x, y) in [(&a, &b), (&ab, &b), (&ab, &c), (&c, &ab)] {
            let mut merged = x.clone();
            let changed = merged.merge_from(y.clone());
            prop_assert_eq!(changed, merged != *x, "changed flag for {:?} into {:?}", y.event_ids, x.event_ids);
        }
    }

    #[test]
    fn no_event_takes_a_chunk_away_from_the_allowed_sources_plants_links_or_dates_it_later(docs in recording_events()) {
        let merged = docs[0].clone().merge(docs[1].clone()).merge(docs[2].clone());
        for chunk in &merged.chunks {
            prop_assert!(!chunk.contains_key("links"), "{:?}", chunk);
            let Some(id) = chunk.get("documentId").and_then(Value::as_str) else { continue };
            // Judged at allowed files by any delivery (with archival on): the merged chunk's files are allowed ones.
            if docs.iter().any(|d| d.chunk(id).is_some_and(|c| c.contains_key("archive")) && announced_at_allowed_files(d, id)) {
                prop_assert!(announced_at_allowed_files(&merged, id), "{:?}", chunk);
            }
            // No archived state holds files of two objects.
            if let Some((Some(content), Some(metadata))) = merged.chunk_archive(id).as_ref().and_then(|s| s.sources()) {
                prop_assert!(acs_recording_handler::recording::one_object(content, metadata).is_some(), "{:?}", chunk);
            }
            // A chunk no delivery dated in the future is not dated there by the merge.
            let future = |d: &RecordingDocument| d.chunk(id).and_then(|c| c.get("announcedAt")).and_then(Value::as_str).is_some_and(|t| t.starts_with("9999"));
            if !docs.iter().any(future) {
                prop_assert!(!future(&merged), "{:?}", chunk);
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(r#"{{"Data":{{"eventGridEvent":{{"id":"e","eventType":"T","data":{nested}}}}}}}"#);
    classify(body.as_bytes());
    let event = format!(r#"{{"id":"e","eventType":"T","data":{nested}}}"#);
    assert!(Event::parse(&event).is_err(), "serde_json's depth limit refuses it");
}

#[test]
fn numbers_out_of_range_and_duplicate_keys_are_refused_or_kept() {
    for event in [
        r#"{"id":"e","eventType":"T","data":{"recordingDurationMs":1e999}}"#,
        r#"{"id":"e","id":"f","eventType":"T"}"#,
    ] {
        assert!(Event::parse(event).is_err(), "{event}");
    }
    let big = r#"{"id":"e","eventType":"T","data":{"recordingDurationMs":184467440737095516150}}"#;
    assert!(Event::parse(big).is_ok(), "a large integer is kept as a float");
}

#[test]
fn a_hundred_thousand_chunks_are_handled() {
    let chunks: Vec<Value> = (0..100_000)
        .map(|i| json!({"documentId": format!("d{i}"), "index": i}))
        .collect();
    let event = json!({"id": "e", "subject": "/recording/call/c/recordingId/r",
                       "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
                       "data": {"recordingStorageInfo": {"recordingChunks": chunks}}});
    let doc = RecordingDocument::from_event(Event::parse(&event.to_string()).unwrap()).unwrap();
    assert_eq!(doc.chunks.len(), 100_000);
    assert_eq!(doc.clone().merge(doc.clone()), doc);
}
