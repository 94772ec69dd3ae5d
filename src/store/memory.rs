//! The memory store: documents in a map that dies with the process. For benchmarks and tests only — never a
//! default, and the handler warns at startup that nothing it acknowledges is kept.
//!
//! It isolates the handler's own cost from the cost of a real store, so it follows the same merge rule and contract
//! as the others (one writer at a time per process; nothing written when a merge changes nothing).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Edit, Edited, Erasure, MergeOutcome, Merged, RecordingStore, StoreError};
use crate::health::{RecordingSummary, Status, Tally};
use crate::quarantine::QuarantineEntry;
use crate::recording::{RecordingDocument, Stored, Tombstone};

/// Documents and quarantined payloads in maps guarded by a lock each; a merge holds the lock from read to write, so
/// concurrent merges of one recording are serialized.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Documents by `callId`, then `id`: the key Cosmos DB and the embedded store use, looked up without copying it.
    recordings: Mutex<HashMap<String, HashMap<String, Stored>>>,
    quarantine: Mutex<HashMap<String, QuarantineEntry>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The merge and the edits change documents in place, but none of them has a path that panics, so a poisoned map
/// (a panic elsewhere while the lock was held) still holds whole documents.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl RecordingStore for MemoryStore {
    async fn merge(&self, update: RecordingDocument) -> Result<Merged, StoreError> {
        let archivable = update.archivable_chunk_ids();
        let mut recordings = lock(&self.recordings);
        match recordings
            .get_mut(&update.call_id)
            .and_then(|call| call.get_mut(&update.id))
        {
            Some(Stored::Recording(stored)) => {
                let outcome = if stored.merge_from(update) {
                    MergeOutcome::Updated
                } else {
                    MergeOutcome::Unchanged
                };
                Ok(Merged::new(outcome, &archivable, stored))
            }
            Some(Stored::Erased(_)) => Ok(Merged {
                outcome: MergeOutcome::Erased,
                to_archive: Vec::new(),
            }),
            None => {
                let merged = Merged::new(MergeOutcome::Created, &archivable, &update);
                let call = recordings.entry(update.call_id.clone()).or_default();
                call.insert(update.id.clone(), Stored::Recording(Box::new(update)));
                Ok(merged)
            }
        }
    }

    async fn edit(&self, call_id: &str, id: &str, edit: Edit) -> Result<Edited, StoreError> {
        let mut recordings = lock(&self.recordings);
        let stored = match recordings.get_mut(call_id).and_then(|call| call.get_mut(id)) {
            None => return Ok(Edited::Missing),
            Some(Stored::Erased(_)) => return Ok(Edited::Erased),
            Some(Stored::Recording(stored)) => stored,
        };
        if edit(stored) {
            Ok(Edited::Changed(stored.clone()))
        } else {
            Ok(Edited::Unchanged(stored.clone()))
        }
    }

    async fn documents(&self, call_id: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError> {
        Ok(lock(&self.recordings)
            .iter()
            .filter(|(call, _)| call_id.is_none_or(|wanted| wanted == call.as_str()))
            .flat_map(|(_, documents)| documents.values().filter_map(|stored| stored.recording().cloned()))
            .collect())
    }

    async fn erase(&self, call_id: &str, id: &str, erased_at: &str) -> Result<Erasure, StoreError> {
        let mut recordings = lock(&self.recordings);
        let Some(stored) = recordings.get_mut(call_id).and_then(|call| call.get_mut(id)) else {
            return Ok(Erasure::Missing);
        };
        let document = match &*stored {
            Stored::Erased(tombstone) => return Ok(Erasure::AlreadyErased(tombstone.clone())),
            Stored::Recording(document) => document.clone(),
        };
        if let Some(hold) = super::erase_hold::hold(call_id, id) {
            hold();
        }
        *stored = Stored::Erased(Tombstone::of(&document, erased_at));
        Ok(Erasure::Erased(document))
    }

    async fn tombstones(&self, call_id: &str) -> Result<Vec<Tombstone>, StoreError> {
        Ok(lock(&self.recordings)
            .get(call_id)
            .into_iter()
            .flat_map(|call| call.values())
            .filter_map(|stored| stored.clone().into_tombstone())
            .collect())
    }

    async fn erase_quarantined(&self, call_id: &str) -> Result<usize, StoreError> {
        let mut quarantine = lock(&self.quarantine);
        let before = quarantine.len();
        quarantine.retain(|_, entry| !entry.names_call(call_id));
        Ok(before - quarantine.len())
    }

    async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError> {
        lock(&self.quarantine).entry(entry.id.clone()).or_insert(entry);
        Ok(())
    }

    async fn lookup(&self, call_id: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        Ok(lock(&self.recordings)
            .get(call_id)
            .and_then(|call| call.get(id))
            .cloned())
    }

    async fn read_quarantined(&self, id: &str) -> Result<Option<QuarantineEntry>, StoreError> {
        Ok(lock(&self.quarantine).get(id).cloned())
    }

    async fn status(&self, now: OffsetDateTime, at_risk: time::Duration) -> Result<Status, StoreError> {
        let mut tally = Tally::new(now, at_risk);
        for (call_id, documents) in lock(&self.recordings).iter() {
            for (id, stored) in documents {
                match stored {
                    Stored::Recording(document) => tally.add(&RecordingSummary::of(document)),
                    Stored::Erased(_) => tally.add(&RecordingSummary::tombstone(call_id, id)),
                }
            }
        }
        tally.add_quarantined(lock(&self.quarantine).len() as u64);
        Ok(tally.finish())
    }

    fn location(&self, call_id: &str, id: &str) -> String {
        format!("memory (not kept): call {call_id}, recording {id}")
    }
}
