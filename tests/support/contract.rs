//! The store contract every backend passes: the same deliveries give the same documents, in any order, repeated
//! or concurrent, and quarantining is idempotent; listings select and page recordings, each exactly once; an erased
//! recording leaves a tombstone that nothing brings back.

use std::sync::Arc;

use acs_recording_handler::event::Event;
use acs_recording_handler::quarantine::QuarantineEntry;
use acs_recording_handler::recording::{
    ArchiveStatus, ArchivedFile, ChunkArchive, ChunkUpdate, RecordingDocument, Stored, Tombstone,
};
use acs_recording_handler::store::{
    Edited, Erasure, ListFilter, MergeOutcome, Merged, PageRequest, RecordingStore, StoreError,
};
use serde_json::Value;

use super::events::{chunk, event_grid, recording_data, recording_event};

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

/// Every page of the sweep's reading, two recordings a page, each recording once; at most 1000 pages.
pub async fn every_unfinished_archive(store: &dyn RecordingStore) -> Vec<RecordingDocument> {
    let (mut documents, mut continuation) = (Vec::new(), None);
    for _ in 0..1000 {
        let page = store
            .unfinished_archives(&acs_recording_handler::store::PageRequest { limit: 2, continuation })
            .await
            .unwrap();
        assert!(page.documents.len() <= 2, "a page holds at most what was asked");
        documents.extend(page.documents);
        continuation = page.continuation;
        if continuation.is_none() {
            let mut keys: Vec<_> = documents.iter().map(|d| (d.call_id.clone(), d.id.clone())).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), documents.len(), "each recording on one page");
            return documents;
        }
    }
    panic!("the sweep's pages never ended: {} recordings read", documents.len());
}

fn archived(chunk_id: &str) -> ChunkArchive {
    let file = |kind: &str| ArchivedFile {
        location: format!("file:///archive/{chunk_id}.{kind}"),
        bytes: 10,
        sha256: "0f".repeat(32),
        source: None,
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
    let mut found: Vec<String> = every_unfinished_archive(store.as_ref())
        .await
        .into_iter()
        .filter(|document| document.call_id == "call-8")
        .map(|document| document.id)
        .collect();
    found.sort();
    assert_eq!(found, ["gave-up", "pending"]);
}

/// A recording of `call` on server call `server_call`, its chunks `{recording}-d000`, … pending archival.
pub fn recording_on(call: &str, server_call: &str, recording: &str, indexes: &[u64]) -> RecordingDocument {
    let chunks: Vec<Value> = indexes
        .iter()
        .map(|i| chunk(*i, &format!("{recording}-d{i:03}")))
        .collect();
    let subject = format!("/recording/call/{call}/serverCallId/{server_call}/recordingId/{recording}");
    let event = event_grid(
        &format!("e-{recording}-{indexes:?}"),
        &subject,
        "2026-11-27T15:20:01Z",
        recording_data(&chunks),
    );
    document(&event).with_pending_archives()
}

/// Seven recordings across three calls and two server calls, their chunks in every archive state:
///
/// | call     | recording | server call | chunks                   |
/// |----------|-----------|-------------|--------------------------|
/// | `list-a` | `a1`      | `srv-1`     | archived, pending        |
/// | `list-a` | `a2`      | `srv-1`     | archived                 |
/// | `list-a` | `a3`      | `srv-1`     | failed                   |
/// | `list-b` | `b1`      | `srv-1`     | pending                  |
/// | `list-b` | `b2`      | `srv-2`     | archived                 |
/// | `list-c` | `c1`      | `srv-2`     | expired                  |
/// | `list-c` | `c2`      | `srv-2`     | pending, pending         |
pub async fn seven_recordings(store: &dyn RecordingStore) {
    for (call, server_call, recording, indexes) in [
        ("list-a", "srv-1", "a1", &[0, 1][..]),
        ("list-a", "srv-1", "a2", &[0]),
        ("list-a", "srv-1", "a3", &[0]),
        ("list-b", "srv-1", "b1", &[0]),
        ("list-b", "srv-2", "b2", &[0]),
        ("list-c", "srv-2", "c1", &[0]),
        ("list-c", "srv-2", "c2", &[0, 1]),
    ] {
        store
            .merge(recording_on(call, server_call, recording, indexes))
            .await
            .unwrap();
    }
    // The archiver's own edit puts the chunks in their states.
    for (call, recording, result) in [
        ("list-a", "a1", archived("a1-d000")),
        ("list-a", "a2", archived("a2-d000")),
        ("list-a", "a3", ChunkArchive::gave_up("every retry failed", 10)),
        ("list-b", "b2", archived("b2-d000")),
        ("list-c", "c1", ChunkArchive::expired("ACS answered 404", 1)),
    ] {
        let edited = record(store, call, recording, &format!("{recording}-d000"), result).await;
        assert!(edited.changed(), "{call}/{recording}");
    }
}

/// Every page of a listing, as `call/id` per page, checking on the way that no page holds more than `limit` and
/// that only the last page is short.
pub async fn pages(store: &dyn RecordingStore, filter: &ListFilter, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut continuation = None;
    loop {
        assert!(pages.len() < 1000, "the listing never ended: {pages:?}");
        let page = store.list(filter, &PageRequest { limit, continuation }).await.unwrap();
        assert!(page.documents.len() <= limit, "{filter:?}, limit {limit}: {page:?}");
        let keys: Vec<String> = page
            .documents
            .iter()
            .map(|document| format!("{}/{}", document.call_id, document.id))
            .collect();
        for document in &page.documents {
            assert!(filter.matches(document), "{filter:?} listed {}", document.id);
        }
        pages.push(keys);
        match page.continuation {
            Some(next) => {
                assert_eq!(page.documents.len(), limit, "only the last page is short: {pages:?}");
                continuation = Some(next);
            }
            None => return pages,
        }
    }
}

/// Every recording a listing gives, sorted, checking that none is given twice.
pub async fn listed(store: &dyn RecordingStore, filter: &ListFilter, limit: usize) -> Vec<String> {
    let mut all: Vec<String> = pages(store, filter, limit).await.into_iter().flatten().collect();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "a recording listed twice: {filter:?}, limit {limit}");
    all
}

fn filter(call: Option<&str>, server_call: Option<&str>, state: Option<ArchiveStatus>) -> ListFilter {
    ListFilter {
        call_id: call.map(str::to_owned),
        server_call_id: server_call.map(str::to_owned),
        archive_state: state,
    }
}

pub async fn listings_select_by_call_server_call_and_archive_state(store: Arc<dyn RecordingStore>) {
    let store = store.as_ref();
    seven_recordings(store).await;
    use ArchiveStatus::{Archived, Expired, External, Failed, Pending};
    let cases: [(ListFilter, &[&str]); 13] = [
        (
            filter(Some("list-a"), None, None),
            &["list-a/a1", "list-a/a2", "list-a/a3"],
        ),
        (filter(Some("no-such-call"), None, None), &[]),
        (
            filter(None, Some("srv-1"), None),
            &["list-a/a1", "list-a/a2", "list-a/a3", "list-b/b1"],
        ),
        (filter(None, Some("srv-3"), None), &[]),
        (
            filter(None, None, Some(Archived)),
            &["list-a/a1", "list-a/a2", "list-b/b2"],
        ),
        (
            filter(None, None, Some(Pending)),
            &["list-a/a1", "list-b/b1", "list-c/c2"],
        ),
        (filter(None, None, Some(Failed)), &["list-a/a3"]),
        (filter(None, None, Some(Expired)), &["list-c/c1"]),
        (filter(None, None, Some(External)), &[]),
        (
            filter(Some("list-a"), None, Some(Archived)),
            &["list-a/a1", "list-a/a2"],
        ),
        (filter(None, Some("srv-2"), Some(Pending)), &["list-c/c2"]),
        (filter(Some("list-b"), Some("srv-1"), Some(Pending)), &["list-b/b1"]),
        (filter(Some("list-c"), Some("srv-1"), None), &[]),
    ];
    for (filter, expected) in cases {
        assert_eq!(listed(store, &filter, 200).await, expected, "{filter:?}");
    }
    assert_eq!(
        listed(store, &ListFilter::default(), 200).await,
        [
            "list-a/a1",
            "list-a/a2",
            "list-a/a3",
            "list-b/b1",
            "list-b/b2",
            "list-c/c1",
            "list-c/c2"
        ],
        "no filter lists every recording"
    );
}

pub async fn paging_gives_every_recording_exactly_once(store: Arc<dyn RecordingStore>) {
    let store = store.as_ref();
    seven_recordings(store).await;
    for filter in [
        ListFilter::default(),
        filter(Some("list-a"), None, None),
        filter(None, Some("srv-1"), None),
        filter(None, None, Some(ArchiveStatus::Pending)),
    ] {
        let whole = listed(store, &filter, 200).await;
        assert_eq!(pages(store, &filter, 200).await.len(), 1, "one page holds them all");
        for limit in [1, 2] {
            let paged = pages(store, &filter, limit).await;
            assert!(
                paged.len() <= whole.len().div_ceil(limit) + 1,
                "{filter:?}, limit {limit}: {paged:?}"
            );
            assert_eq!(listed(store, &filter, limit).await, whole, "{filter:?}, limit {limit}");
        }
    }
}

pub async fn a_continuation_the_store_did_not_give_is_refused(store: Arc<dyn RecordingStore>) {
    seven_recordings(store.as_ref()).await;
    for filter in [ListFilter::default(), filter(Some("list-a"), None, None)] {
        for garbage in ["garbage", "", "{}", "c1.Zm9v", "c1.!!", "[\"list-a\"]"] {
            let page = PageRequest {
                limit: 2,
                continuation: Some(garbage.to_owned()),
            };
            let refused = store.list(&filter, &page).await;
            assert!(
                matches!(refused, Err(StoreError::BadContinuation)),
                "{filter:?}, {garbage:?}: {refused:?}"
            );
        }
    }
}

pub async fn erasing_leaves_a_tombstone_that_nothing_brings_back(store: Arc<dyn RecordingStore>) {
    let store = store.as_ref();
    store.merge(recording_on("erase-1", "srv", "rec", &[0])).await.unwrap();
    store.merge(recording_on("erase-1", "srv", "rec", &[1])).await.unwrap();
    store
        .merge(recording_on("erase-1", "srv", "sibling", &[0]))
        .await
        .unwrap();
    assert!(
        record(store, "erase-1", "rec", "rec-d000", archived("rec-d000"))
            .await
            .changed()
    );
    let before = store.read("erase-1", "rec").await.unwrap().unwrap();

    let erased_at = "2026-12-02T12:00:00Z";
    let Erasure::Erased(document) = store.erase("erase-1", "rec", erased_at).await.unwrap() else {
        panic!("the recording was there to erase");
    };
    assert_eq!(
        *document, before,
        "the erased document, with every chunk merged and archived"
    );
    assert_eq!(document.chunks.len(), 2);
    let tombstone = Tombstone {
        id: "rec".to_owned(),
        call_id: "erase-1".to_owned(),
        recording_id: Some("rec".to_owned()),
        erased_at: erased_at.to_owned(),
    };
    assert_eq!(
        store.lookup("erase-1", "rec").await.unwrap(),
        Some(Stored::Erased(tombstone.clone())),
        "the ids and the time, nothing else"
    );
    assert_eq!(store.read("erase-1", "rec").await.unwrap(), None);

    // Gone from every way of finding recordings, the sweep's too (a chunk was still pending).
    let ids = |documents: Vec<RecordingDocument>| -> Vec<String> {
        let mut ids: Vec<String> = documents.into_iter().map(|d| d.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(store.documents(Some("erase-1")).await.unwrap()), ["sibling"]);
    assert_eq!(ids(store.documents(None).await.unwrap()), ["sibling"]);
    assert_eq!(ids(every_unfinished_archive(store).await), ["sibling"]);
    for filter in [
        filter(Some("erase-1"), None, None),
        ListFilter::default(),
        filter(None, Some("srv"), None),
        filter(None, None, Some(ArchiveStatus::Archived)),
    ] {
        let expected: &[&str] = match filter.archive_state {
            Some(_) => &[],
            None => &["erase-1/sibling"],
        };
        assert_eq!(listed(store, &filter, 1).await, expected, "{filter:?}");
    }
    assert_eq!(
        store.tombstones("erase-1").await.unwrap(),
        std::slice::from_ref(&tombstone)
    );
    assert!(store.tombstones("erase-2").await.unwrap().is_empty());

    assert_eq!(
        store.erase("erase-1", "rec", "2026-12-03T00:00:00Z").await.unwrap(),
        Erasure::AlreadyErased(tombstone.clone()),
        "erasing again keeps the first erasure's time"
    );
    assert_eq!(
        store.erase("erase-1", "missing", erased_at).await.unwrap(),
        Erasure::Missing
    );
    assert_eq!(
        store.erase("erase-2", "rec", erased_at).await.unwrap(),
        Erasure::Missing,
        "the same id in another call is another recording"
    );

    // A redelivered event, and one with a new chunk: nothing written, nothing to archive.
    for update in [
        recording_on("erase-1", "srv", "rec", &[0]),
        recording_on("erase-1", "srv", "rec", &[2]),
    ] {
        let merged = store.merge(update).await.unwrap();
        assert_eq!(merged.outcome, MergeOutcome::Erased);
        assert!(merged.to_archive.is_empty(), "{merged:?}");
    }
    assert_eq!(
        record(store, "erase-1", "rec", "rec-d001", archived("rec-d001")).await,
        Edited::Erased,
        "a late archive result writes nothing"
    );
    assert_eq!(
        store.lookup("erase-1", "rec").await.unwrap(),
        Some(Stored::Erased(tombstone)),
        "the tombstone is as it was"
    );
    assert!(store.read("erase-1", "sibling").await.unwrap().is_some());
}

/// How long merges started while an erase is held may run before the erase goes on, if they have not all returned.
/// A store that locks the recording from the erase's read to its write makes them wait behind it, as it must, and a
/// merge waiting on a lock cannot be seen waiting; so the erase is let go after this window. It cannot make a correct
/// store fail (a merge that waits finds the tombstone, however long it waited). A store whose lock left a gap between
/// the erase's read and its write would let a held merge land during the window, and be caught — unless no held
/// merge at all got a thread to run on for the whole second.
const HELD_MERGES_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a store's erase is held (`erase_hold`): it counts the erase's arrivals and keeps each one until opened.
#[derive(Default)]
struct EraseGate {
    arrivals: std::sync::atomic::AtomicUsize,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl EraseGate {
    /// Runs on the erase's thread, between its read and its write: waits until the test opens the gate (or, should
    /// the test have failed without opening it, two minutes).
    fn hold(&self) {
        self.arrivals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let _ = self
            .opened
            .wait_timeout_while(open, std::time::Duration::from_secs(120), |open| !*open)
            .unwrap();
    }

    fn arrivals(&self) -> usize {
        self.arrivals.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so that a failing test never leaves an erase held.
struct OpenOnDrop(Arc<EraseGate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Runs a store call on a blocking thread of its own: a held erase blocks its thread, and so does a merge waiting
/// behind it in a store that locks.
fn on_own_thread<T: Send + 'static>(
    call: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(call))
}

/// Merges adding chunks race an erasure, possibly through several handles. The erase is held after it has read the
/// recording and before it writes the tombstone (the store's `erase_hold` seam), and half the merges start then:
/// each lands while the erase is held — and is in the document the erase returns, so the erase read again before
/// writing — or waits for the erase and finds the tombstone. The other half start as the erase is let go and race
/// its write. Whatever the order, each chunk is in the erased document or its merge reports the recording erased,
/// and the recording never comes back.
pub async fn merges_racing_an_erasure_never_bring_the_recording_back(
    stores: Vec<Arc<dyn RecordingStore>>,
    merges: u64,
) {
    // A call of its own: holds apply to this whole test process.
    let call = format!("race-{}", super::npm::unique_name());
    stores[0].merge(recording_on(&call, "srv", "rec", &[0])).await.unwrap();
    let gate = Arc::new(EraseGate::default());
    let _hold = {
        let gate = gate.clone();
        acs_recording_handler::store::erase_hold::hold_erases(&call, "rec", Arc::new(move || gate.hold()))
    };
    let _open_on_drop = OpenOnDrop(gate.clone());
    let merge = |i: u64| {
        let (store, call) = (stores[i as usize % stores.len()].clone(), call.clone());
        on_own_thread(async move { store.merge(recording_on(&call, "srv", "rec", &[i])).await.unwrap() })
    };
    let erasure = {
        let (store, call) = (stores[stores.len() - 1].clone(), call.clone());
        on_own_thread(async move { store.erase(&call, "rec", "2026-12-02T12:00:00Z").await.unwrap() })
    };
    super::wait::until(
        "the erase to read the recording and reach its hold",
        std::time::Duration::from_secs(60),
        || format!("{call}/rec"),
        || gate.arrivals() >= 1,
    )
    .await;

    let held: Vec<(u64, tokio::task::JoinHandle<Merged>)> = (1..merges / 2).map(|i| (i, merge(i))).collect();
    let started = std::time::Instant::now();
    while !held.iter().all(|(_, task)| task.is_finished()) && started.elapsed() < HELD_MERGES_WINDOW {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Which held merges returned while the erase was still held: they landed between its read and its write.
    let landed: Vec<u64> = held
        .iter()
        .filter(|(_, task)| task.is_finished())
        .map(|(i, _)| *i)
        .collect();
    let racing: Vec<(u64, tokio::task::JoinHandle<Merged>)> = (merges / 2..merges).map(|i| (i, merge(i))).collect();
    gate.open();

    let Erasure::Erased(document) = erasure.await.unwrap() else {
        panic!("the recording was there to erase");
    };
    let kept: Vec<String> = document
        .chunks
        .iter()
        .filter_map(|chunk| chunk.get("documentId").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut found_the_tombstone = 0;
    for (i, task) in held.into_iter().chain(racing) {
        let merged = task.await.unwrap();
        let chunk = format!("rec-d{i:03}");
        if landed.contains(&i) {
            assert_eq!(
                merged.outcome,
                MergeOutcome::Updated,
                "{chunk} landed while the erase was held"
            );
        }
        match merged.outcome {
            MergeOutcome::Erased => {
                assert!(merged.to_archive.is_empty());
                found_the_tombstone += 1;
            }
            MergeOutcome::Updated | MergeOutcome::Unchanged => {
                assert!(
                    kept.contains(&chunk),
                    "{chunk} was merged but is not in the erased document"
                );
            }
            MergeOutcome::Created => panic!("{chunk}'s merge created the recording again"),
        }
    }
    if !landed.is_empty() {
        assert!(
            gate.arrivals() >= 2,
            "merges landed after the erase read the recording, so it must have read it again"
        );
    }
    for store in &stores {
        assert!(
            store.lookup(&call, "rec").await.unwrap().unwrap().is_erased(),
            "the recording came back"
        );
    }
    println!(
        "{} of {} merges started while the erase was held: {} landed then (the erase read {} times); \
         {found_the_tombstone} merges found the tombstone",
        merges / 2 - 1,
        merges - 1,
        landed.len(),
        gate.arrivals(),
    );
}

pub async fn erasing_a_calls_quarantined_payloads_removes_exactly_those_naming_it(store: Arc<dyn RecordingStore>) {
    let entry =
        |payload: &str| QuarantineEntry::new(payload.as_bytes(), "no recordingStorageInfo", "2026-11-28T00:00:00Z");
    let bytes = |payload: &[u8]| QuarantineEntry::new(payload, "not UTF-8", "2026-11-28T00:00:00Z");
    let utf16: Vec<u8> = r#"{"subject":"/recording/call/q-1"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let naming = [
        entry(r#"{"subject":"/recording/call/q-1/serverCallId/c2Vy","data":{}}"#),
        entry(r#"{"subject":"\/recording\/call\/q-1","data":{}}"#),
        // The subject parser takes `recording` and `call` in any case.
        entry(r#"{"subject":"/Recording/Call/q-1/recordingId/r","data":{}}"#),
        // Kept as base64 (not UTF-8: a Latin-1 `é`), and UTF-16, which reads as text with zeros.
        bytes(b"{\"subject\":\"/recording/call/q-1\",\"data\":\"caf\xe9\"}"),
        bytes(&utf16),
    ];
    let others = [
        entry(r#"{"subject":"/recording/call/q-10/serverCallId/c2Vy","data":{}}"#),
        entry(r#"{"subject":"/recording/call/q-2","data":{"note":"q-1"}}"#),
        entry(r#"{"subject":"/Recording/Call/Q-1","data":{}}"#),
        bytes(b"{\"subject\":\"/recording/call/q-2\",\"data\":\"caf\xe9\"}"),
        entry("not json"),
    ];
    assert!(naming[3].payload_base64.is_some(), "kept as base64");
    for entry in naming.iter().chain(&others) {
        store.quarantine(entry.clone()).await.unwrap();
    }
    assert_eq!(store.erase_quarantined("q-1").await.unwrap(), naming.len());
    for entry in &naming {
        assert_eq!(store.read_quarantined(&entry.id).await.unwrap(), None);
    }
    for entry in &others {
        assert_eq!(
            store.read_quarantined(&entry.id).await.unwrap().as_ref(),
            Some(entry),
            "a call whose id merely starts alike, another call, a call id in another case, a payload naming none"
        );
    }
    assert_eq!(
        store.erase_quarantined("q-1").await.unwrap(),
        0,
        "nothing left to remove"
    );
    assert_eq!(store.erase_quarantined("q-10").await.unwrap(), 1);
}

/// A recording document as an earlier version stored it, `planted` in the store under `old-call`: without the
/// tombstone's fields, or (`old-2`) with an event's `erasedAt` at the top level beside its `chunks`. Each still reads,
/// lists, merges and erases as a recording.
pub fn earlier_versions_documents() -> Vec<Value> {
    let plain = serde_json::to_value(recording_on("old-call", "srv", "old-1", &[0])).unwrap();
    let mut with_erased_at = serde_json::to_value(recording_on("old-call", "srv", "old-2", &[0])).unwrap();
    with_erased_at["erasedAt"] = Value::from("2026-11-27T15:20:01Z");
    vec![plain, with_erased_at]
}

pub async fn documents_of_earlier_versions_still_read_as_recordings(store: Arc<dyn RecordingStore>) {
    let store = store.as_ref();
    for id in ["old-1", "old-2"] {
        let found = store.lookup("old-call", id).await.unwrap();
        assert!(
            matches!(&found, Some(Stored::Recording(document)) if document.id == id && document.chunks.len() == 1),
            "{id}: {found:?}"
        );
        assert!(store.read("old-call", id).await.unwrap().is_some(), "{id}");
    }
    assert_eq!(
        listed(store, &filter(Some("old-call"), None, None), 1).await,
        ["old-call/old-1", "old-call/old-2"]
    );
    assert_eq!(store.documents(Some("old-call")).await.unwrap().len(), 2);
    assert!(store.tombstones("old-call").await.unwrap().is_empty());
    let merged = store
        .merge(recording_on("old-call", "srv", "old-2", &[1]))
        .await
        .unwrap();
    assert_eq!(merged.outcome, MergeOutcome::Updated, "a new chunk is merged in");
    assert_eq!(store.read("old-call", "old-2").await.unwrap().unwrap().chunks.len(), 2);
    assert!(matches!(
        store.erase("old-call", "old-2", "2026-12-02T12:00:00Z").await.unwrap(),
        Erasure::Erased(_)
    ));
}

/// The moment the health summary contract reads the store at: 5 h 20 min before the seven recordings' chunks'
/// deadline (they were announced at 2026-11-27T15:20:01Z).
pub const STATUS_NOW: &str = "2026-11-28T10:00:00Z";

/// Fills the store for the health summary: [`seven_recordings`], `b2` erased (a tombstone), a recording whose chunk
/// is in the customer's own storage (`external`), a chunk an earlier version stored without its own announcement
/// (it counts from its recording's first event, `2026-11-27T09:00:00Z`: past its deadline at [`STATUS_NOW`]), and two
/// quarantined payloads.
pub async fn status_contents(store: &dyn RecordingStore) {
    seven_recordings(store).await;
    assert!(matches!(
        store.erase("list-b", "b2", "2026-11-28T09:00:00Z").await.unwrap(),
        Erasure::Erased(_)
    ));
    let mut external = recording_event(
        "e-ext",
        "list-d",
        "ext",
        "2026-11-27T15:20:01Z",
        &[chunk(0, "ext-d000")],
    );
    external["data"]["storageType"] = Value::from("AzureBlob");
    store
        .merge(document(&external).with_archive_states(|_| false))
        .await
        .unwrap();
    let mut old = recording_on("list-e", "srv-3", "old", &[0]);
    old.chunks[0].remove("announcedAt");
    old.first_event_time = Some("2026-11-27T09:00:00Z".to_owned());
    store.merge(old).await.unwrap();
    for payload in ["not json", r#"{"subject":"/recording/call/list-f"}"#] {
        let entry = QuarantineEntry::new(payload.as_bytes(), "no recordingStorageInfo", "2026-11-28T09:00:00Z");
        store.quarantine(entry).await.unwrap();
    }
}

/// The health summary of [`status_contents`]: every recording, chunk state, tombstone and quarantined payload
/// counted once; pending chunks at risk by the window; the oldest pending chunk named with its deadline.
pub async fn status_counts_every_state_tombstone_and_quarantined_payload(store: Arc<dyn RecordingStore>) {
    status_contents(store.as_ref()).await;
    let now = time::OffsetDateTime::parse(STATUS_NOW, &time::format_description::well_known::Rfc3339).unwrap();
    let status = store.status(now, time::Duration::hours(6)).await.unwrap();
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        serde_json::json!({
            "recordings": 8,
            "chunks": {"pending": 5, "archived": 2, "failed": 1, "expired": 1, "external": 1},
            "oldestPending": {"callId": "list-e", "recordingId": "old", "documentId": "old-d000",
                              "announcedAt": "2026-11-27T09:00:00Z", "deadline": "2026-11-28T09:00:00Z"},
            "atRisk": 5, "quarantined": 2, "tombstones": 1
        })
    );
    let narrow = store.status(now, time::Duration::hours(1)).await.unwrap();
    assert_eq!(
        narrow.at_risk, 1,
        "only the chunk past its deadline with a window of one hour"
    );
}
