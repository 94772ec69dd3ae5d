//! Where recording documents and quarantined payloads are kept: one small async interface, one module per backend.
//!
//! Every backend passes the same contract tests (`tests/store_contract.rs`): the same deliveries give the same
//! documents, concurrent merges of one recording never lose a chunk, and quarantining is idempotent.

pub mod cosmos;
pub mod embedded;
pub mod erase_hold;
pub mod memory;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use backon::Retryable;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::config::StoreConfig;
use crate::error::error_chain;
use crate::health::Status;
use crate::quarantine::QuarantineEntry;
use crate::recording::{ArchiveStatus, RecordingDocument, Stored, Tombstone};

pub use cosmos::CosmosStore;
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;

/// What a merge did to the stored document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The document did not exist; the event's document was written.
    Created,
    /// The event added something; the merged document was written.
    Updated,
    /// The event was already fully recorded; nothing was written.
    Unchanged,
    /// The recording was erased: its tombstone stays, nothing was written.
    Erased,
}

impl MergeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeOutcome::Created => "created",
            MergeOutcome::Updated => "updated",
            MergeOutcome::Unchanged => "unchanged",
            MergeOutcome::Erased => "erased, so ignored",
        }
    }
}

/// What a merge did, and which of the update's chunks still call for an archive job afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub outcome: MergeOutcome,
    /// The `documentId`s of the update's chunks whose archive state in the stored document is still `pending` or
    /// `failed` (empty when the update carries no archive states).
    pub to_archive: Vec<String>,
}

impl Merged {
    /// The result for `outcome`, given the update's archivable chunks and the document as stored afterwards.
    pub fn new(outcome: MergeOutcome, archivable: &[String], stored: &RecordingDocument) -> Self {
        let to_archive = if archivable.is_empty() {
            Vec::new()
        } else {
            stored.still_to_archive(archivable)
        };
        Self { outcome, to_archive }
    }
}

/// What an edit did to a stored document, with the document as stored afterwards.
#[derive(Debug, Clone, PartialEq)]
pub enum Edited {
    Changed(Box<RecordingDocument>),
    Unchanged(Box<RecordingDocument>),
    /// No such document.
    Missing,
    /// The recording was erased; nothing was written.
    Erased,
}

impl Edited {
    /// The document as stored after the edit; `None` when there is no such document.
    pub fn document(&self) -> Option<&RecordingDocument> {
        match self {
            Edited::Changed(document) | Edited::Unchanged(document) => Some(document),
            Edited::Missing | Edited::Erased => None,
        }
    }

    pub fn changed(&self) -> bool {
        matches!(self, Edited::Changed(_))
    }
}

/// Which recordings a listing selects; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// The call's recordings only (one partition on Cosmos DB).
    pub call_id: Option<String>,
    /// Recordings whose `serverCallId` is this one.
    pub server_call_id: Option<String>,
    /// Recordings with at least one chunk in this archive state.
    pub archive_state: Option<ArchiveStatus>,
}

impl ListFilter {
    pub fn matches(&self, document: &RecordingDocument) -> bool {
        self.call_id.as_deref().is_none_or(|wanted| document.call_id == wanted)
            && self
                .server_call_id
                .as_deref()
                .is_none_or(|wanted| document.server_call_id.as_deref() == Some(wanted))
            && self.archive_state.is_none_or(|wanted| {
                document
                    .archive_states()
                    .any(|(_, state)| state.is_some_and(|state| state.state == wanted))
            })
    }
}

/// One page of a listing: at most `limit` recordings, after where `continuation` (from the previous page) left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// The store's own continuation, exactly as an earlier [`Page`] of the same filter gave it.
    pub continuation: Option<String>,
}

/// Recordings of a listing, and where the next page starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub documents: Vec<RecordingDocument>,
    pub continuation: Option<String>,
}

/// What erasing one recording found.
#[derive(Debug, Clone, PartialEq)]
pub enum Erasure {
    /// The document, as it was when its tombstone replaced it.
    Erased(Box<RecordingDocument>),
    /// A tombstone was there already.
    AlreadyErased(Tombstone),
    /// No such recording.
    Missing,
}

/// A change to a stored document: applied to the current document in place, it returns whether it changed it — and
/// leaves it as it was when it returns false. It may run more than once (when another writer got there first, it
/// runs again on the fresh document), so it must depend on nothing but the document.
pub type Edit = Arc<dyn Fn(&mut RecordingDocument) -> bool + Send + Sync>;

#[async_trait]
pub trait RecordingStore: Send + Sync {
    /// Merges `update` into the stored document with the same `callId` and `id`, creating it if needed.
    ///
    /// Implementations must lose no chunk when called concurrently for one recording, from this process or from
    /// other processes sharing the store, and must write nothing when the merge changes nothing.
    async fn merge(&self, update: RecordingDocument) -> Result<Merged, StoreError>;

    /// Applies `edit` to the stored document, with the same guarantees as [`RecordingStore::merge`]: concurrent
    /// merges and edits never lose each other, and nothing is written when the edit changes nothing. Returns the
    /// document as stored afterwards.
    async fn edit(&self, call_id: &str, id: &str, edit: Edit) -> Result<Edited, StoreError>;

    /// Keeps a payload in quarantine. Quarantining an entry whose id is already kept changes nothing.
    async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError>;

    /// Reads what is stored under a recording's id: its document or its tombstone.
    async fn lookup(&self, call_id: &str, id: &str) -> Result<Option<Stored>, StoreError>;

    /// Reads a stored document; an erased recording reads as none.
    async fn read(&self, call_id: &str, id: &str) -> Result<Option<RecordingDocument>, StoreError> {
        Ok(self.lookup(call_id, id).await?.and_then(Stored::into_recording))
    }

    /// Every stored document, or a call's, for tools (`handler archive`); tombstones are left out.
    async fn documents(&self, call_id: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError>;

    /// One page of the recordings `filter` selects, each recording on exactly one page of a listing. The embedded
    /// and memory stores read every document and page them in `(callId, id)` order, the continuation being the
    /// last key given; Cosmos DB answers one query (one partition when the filter names a call) and pages with its
    /// own continuation. A continuation this store did not give is [`StoreError::BadContinuation`].
    async fn list(&self, filter: &ListFilter, page: &PageRequest) -> Result<Page, StoreError> {
        let documents = self.documents(filter.call_id.as_deref()).await?;
        page_of(documents, |document| filter.matches(document), page)
    }

    /// Replaces a recording's document with its tombstone (erased at `erased_at`), so that nothing brings it back:
    /// merges and edits of an erased recording write nothing ([`MergeOutcome::Erased`], [`Edited::Erased`]). With
    /// the same guarantees as [`RecordingStore::merge`]: a concurrent merge or edit lands before the tombstone (and
    /// is in the document returned) or finds it.
    async fn erase(&self, call_id: &str, id: &str, erased_at: &str) -> Result<Erasure, StoreError>;

    /// The tombstones of a call's erased recordings.
    async fn tombstones(&self, call_id: &str) -> Result<Vec<Tombstone>, StoreError>;

    /// Removes the quarantined payloads that name the call ([`QuarantineEntry::names_call`]); returns how many.
    async fn erase_quarantined(&self, call_id: &str) -> Result<usize, StoreError>;

    /// One page of the documents with at least one chunk the archive sweep may queue a job for (`pending`, or
    /// `failed` and retryable; see [`crate::archive::sweep`]), each on exactly one page of a sweep, paged as
    /// [`RecordingStore::list`] pages. The embedded and memory stores read every document for a page; Cosmos DB
    /// answers one query over the container, a page at a time.
    async fn unfinished_archives(&self, page: &PageRequest) -> Result<Page, StoreError> {
        let documents = self.documents(None).await?;
        page_of(documents, RecordingDocument::has_chunks_to_sweep, page)
    }

    /// Reads a quarantined entry, for tools and tests.
    async fn read_quarantined(&self, id: &str) -> Result<Option<QuarantineEntry>, StoreError>;

    /// The health summary at `now` ([`crate::health`]), `at_risk` before ACS's deadline counting as at risk: every
    /// recording, tombstone and quarantined payload counted exactly once. The embedded and memory stores read every
    /// document and list the quarantine; Cosmos DB answers one query over each container, a page at a time, with
    /// one small row per item (see `docs/OPERATIONS.md` for what that costs).
    async fn status(&self, now: OffsetDateTime, at_risk: time::Duration) -> Result<Status, StoreError>;

    /// Where a document is kept, in an operator's words (a path, a container).
    fn location(&self, call_id: &str, id: &str) -> String;
}

/// The page of `documents` that `selected` keeps, in `(callId, id)` order after where the continuation (the last key
/// an earlier page gave) left off.
fn page_of(
    mut documents: Vec<RecordingDocument>,
    selected: impl Fn(&RecordingDocument) -> bool,
    page: &PageRequest,
) -> Result<Page, StoreError> {
    let after: Option<(String, String)> = match &page.continuation {
        Some(token) => Some(serde_json::from_str(token).map_err(|_| StoreError::BadContinuation)?),
        None => None,
    };
    documents.retain(|document| {
        selected(document)
            && after
                .as_ref()
                .is_none_or(|(call, id)| (&document.call_id, &document.id) > (call, id))
    });
    documents.sort_by(|a, b| (&a.call_id, &a.id).cmp(&(&b.call_id, &b.id)));
    let more = documents.len() > page.limit;
    documents.truncate(page.limit);
    let continuation = match documents.last() {
        Some(last) if more => Some(serde_json::json!([last.call_id, last.id]).to_string()),
        _ => None,
    };
    Ok(Page {
        documents,
        continuation,
    })
}

/// A store operation that failed. Every variant but [`StoreError::Refused`] means the payload was not kept, so the
/// invocation must fail for Event Grid to deliver it again; [`StoreError::needs_operator`] says whether someone must
/// act before a retry can succeed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store will never accept this document (it is too large, say); the event is quarantined instead.
    #[error("the store refuses the recording document: {0}")]
    Refused(String),
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not valid; repair or remove it")]
    Invalid {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the store did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("the continuation token was not given by this store for this listing")]
    BadContinuation,
    #[error("other writers kept changing the document; gave up after {attempts} attempts")]
    Contended { attempts: usize },
    /// The Cosmos DB store failed in its own terms.
    #[error(transparent)]
    Cosmos(#[from] cosmos::Error),
}

impl StoreError {
    /// True when retries alone will not help: an operator must fix the store or its configuration.
    pub fn needs_operator(&self) -> bool {
        match self {
            StoreError::Invalid { .. } => true,
            StoreError::Cosmos(e) => e.needs_operator(),
            StoreError::Refused(_)
            | StoreError::Io { .. }
            | StoreError::TimedOut(_)
            | StoreError::Contended { .. }
            | StoreError::BadContinuation => false,
        }
    }
}

/// Opens the configured store, trying again through transient failures for [`OPEN_PATIENCE`]; a problem an
/// operator must fix stops at once. `app_root` is the function app's folder when running under the host.
pub async fn open(config: &StoreConfig, app_root: Option<&Path>) -> Result<Arc<dyn RecordingStore>, StoreError> {
    match config {
        StoreConfig::Embedded { data_dir } => {
            let store = EmbeddedStore::open(data_dir)?;
            info!(data_dir = %data_dir.display(), "recordings are kept in the embedded store");
            if let Some(app_root) = app_root.filter(|root| embedded::is_inside(data_dir, root)) {
                warn!(
                    data_dir = %data_dir.display(),
                    app_root = %app_root.display(),
                    "RECORDINGS_DATA_DIR is inside the function app's root: func start restarts the host (killing \
                     this handler) when a folder appears there, or a file named host.json or function.json; set \
                     RECORDINGS_DATA_DIR to a folder outside it, as local.settings.json.example does"
                );
            }
            let sweeper = store.clone();
            tokio::task::spawn_blocking(move || sweeper.remove_abandoned_temp_files());
            Ok(Arc::new(store))
        }
        StoreConfig::Cosmos(cosmos) => {
            let store = (|| CosmosStore::connect(cosmos))
                .retry(crate::retry::store_open())
                .when(|e: &StoreError| !e.needs_operator())
                .notify(|e: &StoreError, _| warn!(error = %error_chain(e), "cannot reach Cosmos DB yet; trying again"))
                .await?;
            info!(
                endpoint = %cosmos.endpoint,
                database = %cosmos.database,
                container = %cosmos.container,
                quarantine_container = %cosmos.quarantine_container,
                "recordings are kept in Cosmos DB"
            );
            Ok(Arc::new(store))
        }
        StoreConfig::Memory => {
            warn!(
                "RECORDINGS_STORE=memory: recordings are kept in memory only and LOST when the handler stops; every \
                 event is acknowledged all the same. For benchmarks and tests only, never for real events"
            );
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}
