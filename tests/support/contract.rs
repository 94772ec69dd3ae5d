//! The store contract every backend passes: the same deliveries give the same documents, in any order, repeated
//! or concurrent, and quarantining is idempotent.

use std::sync::Arc;

use acs_recording_handler::event::Event;
use acs_recording_handler::quarantine::QuarantineEntry;
use acs_recording_handler::recording::{ArchiveStatus, ArchivedFile, ChunkArchive, ChunkUpdate, RecordingDocument};
use acs_recording_handler::store::{Edited, MergeOutcome, RecordingStore};
use serde_json::Value;

use super::events::{chunk, recording_event};

pub fn document(event: &Value) -> RecordingDocument {
    RecordingDocument::from_event(Event::parse(&event.to_string()).unwrap()).unwrap()
}

fn chunked(event_id: &str, call: &str, recording: &str, time: &str, indexes: &[u64]) -> RecordingDocument {
    let chunks: Vec<Value> = indexes
        .iter()
        .map(|i| chunk(*i, &format!("{recording}-d{i:03}")))
        .collect();
    document(&recording_event(event_id, call, recording, time, &chunks))
}

pub async fn first_delivery_creates_and_redelivery_changes_nothing(store: Arc<dyn RecordingStore>) {
    let update = chunked("e1", "call-1", "rec-1", "2026-11-27T15:20:34Z", &[0]);
    assert_eq!(
        store.merge(update.clone()).await.unwrap().outcome,
        MergeOutcome::Created
    );
    assert_eq!(
        store.merge(update.clone()).await.unwrap().outcome,
        MergeOutcome::Unchanged
    );
    assert_eq!(store.read("call-1", "rec-1").await.unwrap(), Some(update));
    assert_eq!(store.read("call-1", "missing").await.unwrap(), None);
}

pub async fn any_delivery_order_gives_the_same_document(a: Arc<dyn RecordingStore>, b: Arc<dyn RecordingStore>) {
    let updates = [
        chunked("e1", "call-2", "rec-2", "2026-11-27T15:20:01Z", &[0]),
        chunked("e2", "call-2", "rec-2", "2026-11-27T15:20:02Z", &[1, 2]),
        chunked("e3", "call-2", "rec-2", "2026-11-27T15:20:03Z", &[3]),
    ];
    for update in &updates {
        a.merge(update.clone()).await.unwrap();
    }
    for i in [2, 0, 1, 2, 0] {
        b.merge(updates[i].clone()).await.unwrap();
    }
    let in_order = a.read("call-2", "rec-2").await.unwrap().unwrap();
    assert_eq!(b.read("call-2", "rec-2").await.unwrap().unwrap(), in_order);
    assert_eq!(in_order.chunks.len(), 4);
}

/// Many tasks, possibly on several store handles sharing one backing store, each add a chunk to one recording.
pub async fn concurrent_merges_lose_no_chunk(stores: Vec<Arc<dyn RecordingStore>>, merges: u64) {
    let tasks: Vec<_> = (0..merges)
        .map(|i| {
            let store = stores[i as usize % stores.len()].clone();
            let update = chunked(&format!("e{i}"), "call-3", "rec-3", "2026-11-27T15:20:01Z", &[i]);
            tokio::spawn(async move { store.merge(update).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = stores[0].read("call-3", "rec-3").await.unwrap().unwrap();
    assert_eq!(stored.chunks.len() as u64, merges, "every chunk kept");
    assert_eq!(stored.event_ids.len() as u64, merges);
}

pub async fn quarantine_keeps_each_payload_once(store: Arc<dyn RecordingStore>) {
    let entry = QuarantineEntry::new(b"not json", "the invocation body is not JSON", "2026-11-28T00:00:00Z");
    store.quarantine(entry.clone()).await.unwrap();
    let later = QuarantineEntry::new(b"not json", "the invocation body is not JSON", "2026-11-29T00:00:00Z");
    store.quarantine(later).await.unwrap();
    assert_eq!(
        store.read_quarantined(&entry.id).await.unwrap(),
        Some(entry),
        "the first receipt is kept"
    );
    assert_eq!(store.read_quarantined("0000").await.unwrap(), None);
}

fn archived(chunk_id: &str) -> ChunkArchive {
    let file = |kind: &str| ArchivedFile {
        location: format!("file:///archive/{chunk_id}.{kind}"),
        bytes: 10,
        sha256: "0f".repeat(32),
    };
    ChunkArchive::archived(
        file("content.mp4"),
        file("metadata.json"),
        "2026-11-28T12:00:00Z".into(),
        1,
    )
}

fn state(document: &RecordingDocument, chunk_id: &str) -> Option<ArchiveStatus> {
    document
        .chunk(chunk_id)
        .and_then(|chunk| chunk.get("archive"))
        .and_then(ChunkArchive::from_value)
        .map(|archive| archive.state)
}

/// Records an archive result in one chunk, as the archiver does.
pub async fn record(store: &dyn RecordingStore, call: &str, id: &str, chunk_id: &str, result: ChunkArchive) -> Edited {
    let chunk_id = chunk_id.to_owned();
    store
        .edit(
            call,
            id,
            std::sync::Arc::new(move |doc: &mut RecordingDocument| {
                doc.record_archive(&chunk_id, &result) == ChunkUpdate::Changed
            }),
        )
        .await
        .unwrap()
}

pub async fn merges_report_the_chunks_still_to_archive_and_edits_record_results(store: Arc<dyn RecordingStore>) {
    let update = chunked("e1", "call-4", "rec-4", "2026-11-27T15:20:01Z", &[0, 1]).with_pending_archives();
    let merged = store.merge(update.clone()).await.unwrap();
    assert_eq!(merged.to_archive, ["rec-4-d000", "rec-4-d001"]);
    let edited = record(store.as_ref(), "call-4", "rec-4", "rec-4-d000", archived("rec-4-d000")).await;
    assert!(edited.changed());
    let returned = edited.document().unwrap().clone();
    assert_eq!(
        state(&returned, "rec-4-d000"),
        Some(ArchiveStatus::Archived),
        "the edit returns the document as stored"
    );
    let again = record(store.as_ref(), "call-4", "rec-4", "rec-4-d000", archived("rec-4-d000")).await;
    assert_eq!(
        again,
        Edited::Unchanged(Box::new(returned)),
        "the same result twice writes nothing, and returns the stored document"
    );
    let again = store.merge(update).await.unwrap();
    assert_eq!(
        again.outcome,
        MergeOutcome::Unchanged,
        "a redelivery never turns archived back into pending"
    );
    assert_eq!(again.to_archive, ["rec-4-d001"], "only the chunk not archived yet");
    let stored = store.read("call-4", "rec-4").await.unwrap().unwrap();
    assert_eq!(state(&stored, "rec-4-d000"), Some(ArchiveStatus::Archived));
    assert_eq!(
        record(store.as_ref(), "call-4", "missing", "rec-4-d000", archived("x")).await,
        Edited::Missing
    );
    let without_archival = chunked("e2", "call-4", "rec-5", "2026-11-27T15:20:01Z", &[0]);
    assert!(store.merge(without_archival).await.unwrap().to_archive.is_empty());
    let mut listed: Vec<String> = store
        .documents(Some("call-4"))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    listed.sort();
    assert_eq!(listed, ["rec-4", "rec-5"]);
    assert!(store.documents(None).await.unwrap().len() >= 2);
    assert!(store.documents(Some("no-such-call")).await.unwrap().is_empty());
}

/// Events adding chunks and archive results for earlier chunks, all at once, possibly through several handles:
/// neither ever loses the other.
pub async fn archive_results_and_concurrent_events_never_lose_each_other(
    stores: Vec<Arc<dyn RecordingStore>>,
    chunks: u64,
) {
    let first = chunked("e0", "call-6", "rec-6", "2026-11-27T15:20:01Z", &[0]).with_pending_archives();
    stores[0].merge(first).await.unwrap();
    let mut tasks = Vec::new();
    for i in 1..chunks {
        let store = stores[i as usize % stores.len()].clone();
        let update = chunked(&format!("e{i}"), "call-6", "rec-6", "2026-11-27T15:20:01Z", &[i]).with_pending_archives();
        tasks.push(tokio::spawn(async move {
            store.merge(update).await.unwrap();
        }));
        let store = stores[(i as usize + 1) % stores.len()].clone();
        let earlier = format!("rec-6-d{:03}", i - 1);
        tasks.push(tokio::spawn(async move {
            // The chunk may not be stored yet when its event is still in flight: record again until it is.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !record(store.as_ref(), "call-6", "rec-6", &earlier, archived(&earlier))
                .await
                .changed()
            {
                let doc = store.read("call-6", "rec-6").await.unwrap().unwrap();
                if state(&doc, &earlier) == Some(ArchiveStatus::Archived) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{earlier} was never stored");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = stores[0].read("call-6", "rec-6").await.unwrap().unwrap();
    assert_eq!(stored.chunks.len() as u64, chunks, "every chunk kept");
    for i in 0..chunks - 1 {
        assert_eq!(
            state(&stored, &format!("rec-6-d{i:03}")),
            Some(ArchiveStatus::Archived),
            "chunk {i}"
        );
    }
    assert_eq!(
        state(&stored, &format!("rec-6-d{:03}", chunks - 1)),
        Some(ArchiveStatus::Pending)
    );
}

/// An event's chunks that claim an archive state (forged, or copied from a stored document) are stored with the
/// handler's own state — `pending` — and every one is reported still to archive, on a new document and on one that
/// already holds a real result for another chunk, which the claims never change.
pub async fn an_events_archive_claims_are_never_stored_as_states(store: Arc<dyn RecordingStore>) {
    let claims = [
        serde_json::json!({"state": "archived", "contentLocation": "https://evil.example/x", "attempts": 1}),
        serde_json::json!({"state": "expired", "reason": "trust me"}),
        serde_json::json!("x"),
    ];
    let forged = |event_id: &str, ids: &[&str]| {
        let chunks: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut chunk = chunk(i as u64, id);
                chunk["archive"] = claims[i % claims.len()].clone();
                chunk
            })
            .collect();
        document(&recording_event(
            event_id,
            "call-7",
            "rec-7",
            "2026-11-27T15:20:01Z",
            &chunks,
        ))
        .with_pending_archives()
    };
    let merged = store.merge(forged("e1", &["d0", "d1", "d2"])).await.unwrap();
    assert_eq!(
        merged.to_archive,
        ["d0", "d1", "d2"],
        "a job for every chunk, whatever it claims"
    );
    assert!(
        record(store.as_ref(), "call-7", "rec-7", "d0", archived("d0"))
            .await
            .changed()
    );

    let again = store.merge(forged("e2", &["d0", "d1", "d2"])).await.unwrap();
    assert_eq!(
        again.to_archive,
        ["d1", "d2"],
        "the real result stands; the claims queue the rest again"
    );
    let stored = store.read("call-7", "rec-7").await.unwrap().unwrap();
    assert_eq!(stored.chunk_archive("d0"), Some(archived("d0")));
    for id in ["d1", "d2"] {
        assert_eq!(state(&stored, id), Some(ArchiveStatus::Pending), "{id}");
    }
    assert_eq!(stored.chunk("d1").unwrap()["extraData"]["archive"], claims[1]);
}

/// The archive sweep's question: the recordings with a chunk still `pending`, or `failed` and retryable — and no
/// other (every chunk archived, expired, or failed for good).
pub async fn unfinished_archives_are_the_recordings_with_a_chunk_to_sweep(store: Arc<dyn RecordingStore>) {
    let stored = |recording: &str, indexes: &[u64]| {
        chunked(
            &format!("e-{recording}"),
            "call-8",
            recording,
            "2026-11-27T15:20:01Z",
            indexes,
        )
        .with_pending_archives()
    };
    for (recording, indexes) in [
        ("pending", &[0, 1][..]),
        ("done", &[0]),
        ("gave-up", &[0]),
        ("refused", &[0]),
    ] {
        store.merge(stored(recording, indexes)).await.unwrap();
    }
    record(
        store.as_ref(),
        "call-8",
        "pending",
        "pending-d000",
        archived("pending-d000"),
    )
    .await;
    record(store.as_ref(), "call-8", "done", "done-d000", archived("done-d000")).await;
    record(
        store.as_ref(),
        "call-8",
        "gave-up",
        "gave-up-d000",
        ChunkArchive::gave_up("the queue gave up", 10),
    )
    .await;
    record(
        store.as_ref(),
        "call-8",
        "refused",
        "refused-d000",
        ChunkArchive::failed("not an allowed source", 1),
    )
    .await;
    let mut found: Vec<String> = store
        .unfinished_archives()
        .await
        .unwrap()
        .into_iter()
        .filter(|document| document.call_id == "call-8")
        .map(|document| document.id)
        .collect();
    found.sort();
    assert_eq!(found, ["gave-up", "pending"]);
}
