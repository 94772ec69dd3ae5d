//! The store contract, run against every backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use acs_recording_handler::store::{EmbeddedStore, MemoryStore, RecordingStore};
use support::contract;

fn embedded(dir: &tempfile::TempDir) -> Arc<dyn RecordingStore> {
    Arc::new(EmbeddedStore::open(dir.path()).unwrap())
}

#[tokio::test]
async fn embedded_first_delivery_creates_and_redelivery_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    contract::first_delivery_creates_and_redelivery_changes_nothing(embedded(&dir)).await;
}

#[tokio::test]
async fn embedded_any_delivery_order_gives_the_same_document() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    contract::any_delivery_order_gives_the_same_document(embedded(&a), embedded(&b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_concurrent_merges_through_two_handles_lose_no_chunk() {
    let dir = tempfile::tempdir().unwrap();
    // Two handles on one folder behave like two processes: each merge opens and locks the call folder itself.
    contract::concurrent_merges_lose_no_chunk(vec![embedded(&dir), embedded(&dir)], 64).await;
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("recordings/call-3"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["rec-3.json"], "no temporary file is left behind");
}

#[tokio::test]
async fn embedded_quarantine_keeps_each_payload_once() {
    let dir = tempfile::tempdir().unwrap();
    contract::quarantine_keeps_each_payload_once(embedded(&dir)).await;
    let entries = support::quarantined(dir.path());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["payload"], "not json");
}

#[tokio::test]
async fn memory_first_delivery_creates_and_redelivery_changes_nothing() {
    contract::first_delivery_creates_and_redelivery_changes_nothing(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn memory_any_delivery_order_gives_the_same_document() {
    contract::any_delivery_order_gives_the_same_document(Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_merges_lose_no_chunk() {
    let store: Arc<dyn RecordingStore> = Arc::new(MemoryStore::new());
    contract::concurrent_merges_lose_no_chunk(vec![store.clone(), store], 64).await;
}

#[tokio::test]
async fn memory_quarantine_keeps_each_payload_once() {
    contract::quarantine_keeps_each_payload_once(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn embedded_merges_report_the_chunks_still_to_archive_and_edits_record_results() {
    let dir = tempfile::tempdir().unwrap();
    contract::merges_report_the_chunks_still_to_archive_and_edits_record_results(embedded(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_archive_results_and_concurrent_events_never_lose_each_other() {
    let dir = tempfile::tempdir().unwrap();
    contract::archive_results_and_concurrent_events_never_lose_each_other(vec![embedded(&dir), embedded(&dir)], 32)
        .await;
}

#[tokio::test]
async fn memory_merges_report_the_chunks_still_to_archive_and_edits_record_results() {
    contract::merges_report_the_chunks_still_to_archive_and_edits_record_results(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_archive_results_and_concurrent_events_never_lose_each_other() {
    let store: Arc<dyn RecordingStore> = Arc::new(MemoryStore::new());
    contract::archive_results_and_concurrent_events_never_lose_each_other(vec![store.clone(), store], 32).await;
}

#[tokio::test]
async fn embedded_an_events_archive_claims_are_never_stored_as_states() {
    let dir = tempfile::tempdir().unwrap();
    contract::an_events_archive_claims_are_never_stored_as_states(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_an_events_archive_claims_are_never_stored_as_states() {
    contract::an_events_archive_claims_are_never_stored_as_states(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn embedded_unfinished_archives_are_the_recordings_with_a_chunk_to_sweep() {
    let dir = tempfile::tempdir().unwrap();
    contract::unfinished_archives_are_the_recordings_with_a_chunk_to_sweep(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_unfinished_archives_are_the_recordings_with_a_chunk_to_sweep() {
    contract::unfinished_archives_are_the_recordings_with_a_chunk_to_sweep(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn embedded_listings_select_by_call_server_call_and_archive_state() {
    let dir = tempfile::tempdir().unwrap();
    contract::listings_select_by_call_server_call_and_archive_state(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_listings_select_by_call_server_call_and_archive_state() {
    contract::listings_select_by_call_server_call_and_archive_state(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn embedded_paging_gives_every_recording_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    contract::paging_gives_every_recording_exactly_once(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_paging_gives_every_recording_exactly_once() {
    contract::paging_gives_every_recording_exactly_once(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn embedded_a_continuation_the_store_did_not_give_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    contract::a_continuation_the_store_did_not_give_is_refused(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_a_continuation_the_store_did_not_give_is_refused() {
    contract::a_continuation_the_store_did_not_give_is_refused(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn embedded_erasing_leaves_a_tombstone_that_nothing_brings_back() {
    let dir = tempfile::tempdir().unwrap();
    contract::erasing_leaves_a_tombstone_that_nothing_brings_back(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_erasing_leaves_a_tombstone_that_nothing_brings_back() {
    contract::erasing_leaves_a_tombstone_that_nothing_brings_back(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_merges_racing_an_erasure_through_two_handles_never_bring_the_recording_back() {
    let dir = tempfile::tempdir().unwrap();
    contract::merges_racing_an_erasure_never_bring_the_recording_back(vec![embedded(&dir), embedded(&dir)], 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_merges_racing_an_erasure_never_bring_the_recording_back() {
    let store: Arc<dyn RecordingStore> = Arc::new(MemoryStore::new());
    contract::merges_racing_an_erasure_never_bring_the_recording_back(vec![store.clone(), store], 64).await;
}

#[tokio::test]
async fn embedded_erasing_a_calls_quarantined_payloads_removes_exactly_those_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    contract::erasing_a_calls_quarantined_payloads_removes_exactly_those_naming_it(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_erasing_a_calls_quarantined_payloads_removes_exactly_those_naming_it() {
    contract::erasing_a_calls_quarantined_payloads_removes_exactly_those_naming_it(Arc::new(MemoryStore::new())).await;
}

/// The memory store keeps no earlier version's files; the embedded store finds them where that version wrote them.
#[tokio::test]
async fn embedded_documents_of_earlier_versions_still_read_as_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(&dir);
    let call_dir = dir.path().join("recordings/old-call");
    std::fs::create_dir_all(&call_dir).unwrap();
    for document in contract::earlier_versions_documents() {
        let id = document["id"].as_str().unwrap();
        std::fs::write(call_dir.join(format!("{id}.json")), document.to_string()).unwrap();
    }
    contract::documents_of_earlier_versions_still_read_as_recordings(store).await;
}

#[tokio::test]
async fn embedded_status_counts_every_state_tombstone_and_quarantined_payload() {
    let dir = tempfile::tempdir().unwrap();
    contract::status_counts_every_state_tombstone_and_quarantined_payload(embedded(&dir)).await;
}

#[tokio::test]
async fn memory_status_counts_every_state_tombstone_and_quarantined_payload() {
    contract::status_counts_every_state_tombstone_and_quarantined_payload(Arc::new(MemoryStore::new())).await;
}
