//! Where recording documents and quarantined payloads are kept: one small async interface, one module per backend.
//!
//! Every backend passes the same contract tests (`tests/store_contract.rs`): the same deliveries give the same
//! documents, concurrent merges of one recording never lose a chunk, and quarantining is idempotent.

pub mod cosmos;
pub mod embedded;
pub mod memory;

use std::path::PathBuf;

use async_trait::async_trait;

use crate::quarantine::QuarantineEntry;
use crate::recording::RecordingDocument;

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
}

impl MergeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeOutcome::Created => "created",
            MergeOutcome::Updated => "updated",
            MergeOutcome::Unchanged => "unchanged",
        }
    }
}

#[async_trait]
pub trait RecordingStore: Send + Sync {
    /// Merges `update` into the stored document with the same `callId` and `id`, creating it if needed.
    ///
    /// Implementations must lose no chunk when called concurrently for one recording, from this process or from
    /// other processes sharing the store, and must write nothing when the merge changes nothing.
    async fn merge(&self, update: RecordingDocument) -> Result<MergeOutcome, StoreError>;

    /// Keeps a payload in quarantine. Quarantining an entry whose id is already kept changes nothing.
    async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError>;

    /// Reads a stored document, for tools and tests.
    async fn read(&self, call_id: &str, id: &str) -> Result<Option<RecordingDocument>, StoreError>;

    /// Reads a quarantined entry, for tools and tests.
    async fn read_quarantined(&self, id: &str) -> Result<Option<QuarantineEntry>, StoreError>;

    /// Where a document is kept, in an operator's words (a path, a container).
    fn location(&self, call_id: &str, id: &str) -> String;
}

/// A store operation that failed. Every variant but [`StoreError::Refused`] is worth a retry: the payload was not
/// kept, so the invocation must fail for Event Grid to deliver it again; [`StoreError::needs_operator`] says whether
/// someone must act first.
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
    #[error("cannot {action}: Cosmos DB answered {status}")]
    Cosmos {
        action: &'static str,
        status: u16,
        /// Authorization, a missing container, a request Cosmos DB calls malformed: someone must fix the account
        /// or the settings before a retry can succeed.
        needs_operator: bool,
        #[source]
        source: azure_data_cosmos::CosmosError,
    },
    #[error("other writers kept changing the document; gave up after {attempts} attempts")]
    Contended { attempts: usize },
    #[error("{0}")]
    Configuration(String),
}

impl StoreError {
    /// True when retries alone will not help: an operator must fix the store or its configuration.
    pub fn needs_operator(&self) -> bool {
        match self {
            StoreError::Invalid { .. } | StoreError::Configuration(_) => true,
            StoreError::Cosmos { needs_operator, .. } => *needs_operator,
            _ => false,
        }
    }
}
