//! A test seam, never used in production: a test can hold every store's erase of one recording after the store has
//! read the document and before it writes the tombstone, so that merges race the erase at its one delicate moment
//! (`merges_racing_an_erasure_…` in `tests/support/contract.rs`). Until a test registers a hold, an erase only finds
//! that no registry was ever made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// What a held erase runs before it writes the tombstone; it may block for as long as the test needs. It runs on a
/// thread that may block (the embedded store's, or one of Tokio's blocking threads for Cosmos DB), but the memory
/// store runs it with its map locked, on the thread that called `erase`.
pub type Hold = Arc<dyn Fn() + Send + Sync>;

type Holds = Mutex<HashMap<(String, String), Hold>>;

static HOLDS: OnceLock<Holds> = OnceLock::new();

/// Holds this process's erases of `call_id`/`id` in `hold` until the returned guard is dropped. Every attempt of an
/// erase runs it (Cosmos DB's erase reads again and retries when a merge wrote first).
#[must_use = "the hold ends when the guard is dropped"]
pub fn hold_erases(call_id: &str, id: &str, hold: Hold) -> HeldErases {
    let key = (call_id.to_owned(), id.to_owned());
    lock(HOLDS.get_or_init(Holds::default)).insert(key.clone(), hold);
    HeldErases(key)
}

/// Ends a hold when dropped.
pub struct HeldErases((String, String));

impl Drop for HeldErases {
    fn drop(&mut self) {
        if let Some(holds) = HOLDS.get() {
            lock(holds).remove(&self.0);
        }
    }
}

/// The hold a test registered for this recording's erase, if any.
pub(crate) fn hold(call_id: &str, id: &str) -> Option<Hold> {
    let holds = lock(HOLDS.get()?);
    holds.get(&(call_id.to_owned(), id.to_owned())).cloned()
}

fn lock(holds: &Holds) -> std::sync::MutexGuard<'_, HashMap<(String, String), Hold>> {
    holds.lock().unwrap_or_else(PoisonError::into_inner)
}
