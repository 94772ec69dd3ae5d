//! The Cosmos DB store's own errors: what the service answered, and what setting the store up can run into. The
//! store interface sees them as [`crate::store::StoreError::Cosmos`], and asks only whether an operator must act.

/// Why the Cosmos DB store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action}: Cosmos DB answered {status}")]
    Service {
        action: &'static str,
        status: u16,
        /// Authorization, a missing container, a request Cosmos DB calls malformed: someone must fix the account
        /// or the settings before a retry can succeed.
        needs_operator: bool,
        #[source]
        source: azure_data_cosmos::CosmosError,
    },
    #[error(
        "Cosmos DB container {container:?} in database {database:?} does not exist; create it (partition key \
         {partition_key}) or set RECORDINGS_CREATE_IF_NOT_EXISTS=true with key authentication"
    )]
    MissingContainer {
        container: String,
        database: String,
        partition_key: &'static str,
    },
    #[error("Cosmos DB container {container:?} is partitioned by {paths:?}; it must be partitioned by {expected}")]
    WrongPartitionKey {
        container: String,
        paths: Vec<String>,
        expected: &'static str,
    },
    #[error("Cosmos DB returned a document without an ETag; cannot merge safely")]
    NoEtag,
    #[error("{0:?} is not a Cosmos DB account endpoint")]
    InvalidEndpoint(String),
    #[error("cannot sign in to Cosmos DB: {0}")]
    Credential(String),
    #[error("cannot read the Cosmos DB account's properties")]
    AccountUnreachable(#[source] reqwest::Error),
    #[error("cannot read the Cosmos DB account's properties: Cosmos DB answered {status}")]
    AccountRefused { status: u16 },
    #[error(
        "the Cosmos DB account takes writes in several regions ({}): there, two instances writing one recording \
         through different regions can silently drop one write, so the handler refuses such an account; use an \
         account with a single write region, or set RECORDINGS_ALLOW_MULTI_REGION_WRITES=true to accept the risk",
        regions.join(", ")
    )]
    MultiRegionWrites { regions: Vec<String> },
}

impl Error {
    /// True when retries alone will not help: an operator must fix the account or the settings.
    pub fn needs_operator(&self) -> bool {
        match self {
            Error::MissingContainer { .. }
            | Error::WrongPartitionKey { .. }
            | Error::NoEtag
            | Error::InvalidEndpoint(_)
            | Error::Credential(_)
            | Error::MultiRegionWrites { .. } => true,
            Error::Service { needs_operator, .. } => *needs_operator,
            Error::AccountRefused { status } => matches!(status, 400 | 401 | 403 | 404),
            Error::AccountUnreachable(_) => false,
        }
    }
}
