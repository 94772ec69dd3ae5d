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
use acs_recording_handler::recording::{ArchivedFile, ChunkArchive, RecordingDocument};
use acs_recording_handler::store::{EmbeddedStore, RecordingStore};
use acs_recording_handler::subject::RecordingSubject;
use proptest::prelude::*;
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

/// The pure path every payload takes; it must never panic, whatever the input.
fn classify(body: &[u8]) {
    if let Ok(event) = invocation::binding_object(body, TRIGGER)
        && let Ok(event) = Event::parse(&event)
    {
        let _ = RecordingDocument::from_event(event);
    }
    let _ = invocation::quarantine_payload(body);
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
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        classify(&body);
    }

    #[test]
    fn arbitrary_subjects_never_panic_and_keep_one_segment_call_ids(subject in ".{0,80}") {
        if let Ok(parsed) = RecordingSubject::parse(&subject) {
            prop_assert!(!parsed.call_id.is_empty() && !parsed.call_id.contains('/'));
        }
    }

    #[test]
    fn event_shaped_input_never_panics_in_either_envelope_form(event in event_like(), as_string in any::<bool>()) {
        let value = if as_string { Value::String(event.to_string()) } else { event.clone() };
        classify(&envelope(value));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Through the real pipeline and store: every payload is stored, ignored or quarantined, and what is reported
    /// quarantined can be read back from quarantine.
    #[test]
    fn every_payload_is_stored_ignored_or_quarantined(event in event_like(), garbage in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let pipeline = Pipeline::new(store.clone());
        let body = if garbage {
            event.to_string().into_bytes()
        } else {
            envelope(event.clone())
        };
        let outcome = runtime().block_on(RecordingEvent::new(pipeline).handle(&body));
        match outcome {
            Ok(Outcome::Stored { call_id, id, .. }) => {
                let stored = runtime().block_on(store.read(&call_id, &id)).unwrap();
                prop_assert!(stored.is_some());
            }
            Ok(Outcome::Ignored { .. }) => {}
            Ok(Outcome::Quarantined { id, .. }) => {
                let kept = runtime().block_on(store.read_quarantined(&id)).unwrap();
                prop_assert!(kept.is_some());
            }
            Err(e) => prop_assert!(false, "the store failed: {e}"),
        }
        let written = support::json_files(dir.path()); // fails on any invalid file
        let outside = std::fs::read_dir(dir.path()).unwrap().count();
        prop_assert_eq!(outside, 2, "only recordings/ and quarantine/: {:?}", written);
    }
}

/// One recording's events with small value sets, so that times tie and values clash often.
fn recording_events() -> impl Strategy<Value = Vec<RecordingDocument>> {
    let one = (
        "e[0-9]",
        // Ties, one instant spelled two ways, and unreadable times, which rank oldest.
        prop::option::of("2026-11-27T15:20:0[0-2]Z|2026-11-27T16:20:01\\+01:00|2026-11-27T15:20:01\\.0Z|yesterday"),
        prop::collection::vec(("d[0-3]", 0u64..4, prop::option::of("[ab]")), 0..4),
        prop::option::of("[xyz]"),
        prop::option::of(0u64..3),
        // Archive states: stored with archival on, then results recorded for some chunks.
        any::<bool>(),
        prop::collection::vec(("d[0-3]", 0u8..4, 0u32..3, "[pq]"), 0..3),
    )
        .prop_map(|(id, time, chunks, reason, duration, archival, results)| {
            let chunks: Vec<Value> = chunks
                .into_iter()
                .map(|(document_id, index, end)| {
                    let mut c = json!({"documentId": document_id, "index": index});
                    if let Some(end) = end {
                        c["endReason"] = json!(end);
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
            if archival {
                document = document.with_pending_archives();
            }
            for (chunk, state, attempts, variant) in results {
                let file = |kind: &str| ArchivedFile {
                    location: format!("file:///archive/{chunk}.{kind}.{variant}"),
                    bytes: 3,
                    sha256: variant.repeat(64),
                };
                let result = match state {
                    0 => ChunkArchive::pending(),
                    1 => ChunkArchive::failed(format!("gave up {variant}"), attempts),
                    2 => ChunkArchive::expired(format!("404 {variant}"), attempts),
                    _ => ChunkArchive::archived(
                        file("mp4"),
                        file("json"),
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
