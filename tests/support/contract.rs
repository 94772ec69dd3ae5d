//! The store contract every backend passes: the same deliveries give the same documents, in any order, repeated
//! or concurrent, and quarantining is idempotent.

use std::sync::Arc;

use acs_recording_handler::event::Event;
use acs_recording_handler::quarantine::QuarantineEntry;
use acs_recording_handler::recording::RecordingDocument;
use acs_recording_handler::store::{MergeOutcome, RecordingStore};
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
    assert_eq!(store.merge(update.clone()).await.unwrap(), MergeOutcome::Created);
    assert_eq!(store.merge(update.clone()).await.unwrap(), MergeOutcome::Unchanged);
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
