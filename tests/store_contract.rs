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
