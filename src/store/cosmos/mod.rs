//! The Cosmos DB store: recording documents in a container partitioned by `/callId`, quarantine entries in a
//! container partitioned by `/id`, through the official `azure_data_cosmos` SDK.
//!
//! Many Function instances write at once, so a merge is optimistic: the first delivery of a new recording is one
//! create; when the document exists, it is read, merged in memory, and replaced only if the merge changed it, with
//! `If-Match` on the ETag that was read — a 412 means another instance wrote first, and the merge starts over from
//! a fresh read. No instance ever overwrites another's chunks — provided the account takes writes in one region
//! only, which [`account`] checks at startup.

mod account;
mod continuation;
mod error;
pub mod queries;

pub use error::Error;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{Secret as AzureSecret, TokenCredential};
use azure_data_cosmos::clients::{ContainerClient, DatabaseClient};
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyDefinition};
use azure_data_cosmos::options::{
    EndToEndOperationLatencyPolicy, ItemWriteOptions, MaxItemCountHint, OperationOptions, Precondition, QueryOptions,
    Region, ThrottlingRetryOptionsBuilder,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosError, FeedScope, Query, RoutingStrategy,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::{debug, error, warn};

use super::{Edit, Edited, Erasure, ListFilter, MergeOutcome, Merged, Page, PageRequest, RecordingStore, StoreError};
use crate::config::{CosmosAuth, CosmosConfig};
use crate::health::{RecordingSummary, Status, Tally};
use crate::identity;
use crate::quarantine::QuarantineEntry;
use crate::recording::{RecordingDocument, Stored, Tombstone};
use queries::{ALL_RECORDINGS, QUARANTINE_NAMING, STATUS_QUARANTINED, STATUS_ROWS, TOMBSTONES, UNFINISHED_ARCHIVES};

/// The recordings container's partition key path: all recordings of a call live together. The deployment
/// templates (`infra/`) create the container with it, and `tests/deployment/` holds them to it.
pub const RECORDINGS_PARTITION_KEY: &str = "/callId";

/// The quarantine container's partition key path: each entry is its own partition.
pub const QUARANTINE_PARTITION_KEY: &str = "/id";

/// Merge attempts before giving up on a recording under heavy contention (the invocation then fails and Event Grid
/// retries later). Each lost race costs one read and one failed replace, and a short random pause so that the
/// writers of one recording spread out.
const MERGE_ATTEMPTS: usize = 32;
const MAX_CONTENTION_PAUSE_MS: u64 = 50;

/// Limits on the SDK's own retries, so that an invocation answers well inside Event Grid's 30 s: by default the SDK
/// retries throttling for up to 9 times and 30 s of waiting per operation.
const THROTTLE_RETRIES: u32 = 3;
const THROTTLE_WAIT: Duration = Duration::from_secs(4);
const OPERATION_DEADLINE: Duration = Duration::from_secs(8);

/// How much of a quarantined payload too large for one item is kept (items are at most 2 MB, JSON-escaped).
const QUARANTINE_KEPT_BYTES: usize = 1024 * 1024;

/// What a conditional replace did.
enum Replaced {
    Yes,
    /// Another writer changed the document since it was read.
    Raced,
    /// The document was deleted since it was read.
    Gone,
}

#[derive(Clone)]
pub struct CosmosStore {
    recordings: ContainerClient,
    quarantine: ContainerClient,
    /// `endpoint database/container`, for operators.
    place: String,
}

/// The most requests one page of a listing makes, so that a page answers within the API's time even when Cosmos DB
/// returns many empty pages for a sparse filter.
const REQUESTS_PER_PAGE: usize = 8;

/// Rows a request of the health summary asks for: they are small (ids and counts), so that a request carries many.
pub const STATUS_PAGE: u32 = 1000;

/// How long a tombstone is kept, in seconds (Cosmos DB's per-item `ttl`, honoured when the container has time to
/// live on — `defaultTtl` -1, as the deployment template sets it; otherwise tombstones are kept for good). 30 days
/// outlast every redelivery: Event Grid retries for at most 24 hours, and a queued archive job lives 7 days.
pub const TOMBSTONE_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;

/// A tombstone as Cosmos DB keeps it: with its time to live.
#[derive(serde::Serialize)]
struct StoredTombstone<'a> {
    #[serde(flatten)]
    tombstone: &'a Tombstone,
    ttl: u64,
}

impl CosmosStore {
    /// The recording documents a query selects, every page of it.
    async fn query_recordings(&self, query: &str, scope: FeedScope) -> Result<Vec<RecordingDocument>, StoreError> {
        Ok(self
            .query_stored(query, scope)
            .await?
            .into_iter()
            .filter_map(Stored::into_recording)
            .collect())
    }

    /// The documents and tombstones a query selects, every page of it.
    async fn query_stored(&self, query: impl Into<Query>, scope: FeedScope) -> Result<Vec<Stored>, StoreError> {
        use futures_util::TryStreamExt;
        let items: Vec<Map<String, Value>> = self
            .recordings
            .query_items(query, scope, None)
            .await
            .map_err(|e| cosmos_error("query the recordings", e))?
            .try_collect()
            .await
            .map_err(|e| cosmos_error("query the recordings", e))?;
        stored_items(items)
    }

    /// One page of a listing's query from where `continuation` left off: one request to Cosmos DB, for at most
    /// `limit` items (Cosmos DB never answers one request with more than its `x-ms-max-item-count`). `None` when
    /// the query had nothing left; otherwise the page's documents and the SDK's token for what follows it.
    async fn list_once(
        &self,
        (query, scope): (&Query, &FeedScope),
        limit: std::num::NonZeroU32,
        continuation: Option<continuation::Token>,
    ) -> Result<Option<(Vec<RecordingDocument>, continuation::Token)>, StoreError> {
        use futures_util::TryStreamExt;
        let resumed = continuation.is_some();
        let mut options = QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(limit));
        if let Some(token) = continuation {
            options = options.with_continuation_token(token);
        }
        let failed = |e: CosmosError| listing_error(e, resumed);
        let mut pages = self
            .recordings
            .query_items::<Map<String, Value>>(query.clone(), scope.clone(), Some(options))
            .await
            .map_err(failed)?
            .into_pages();
        let Some(page) = pages.try_next().await.map_err(failed)? else {
            return Ok(None);
        };
        let next = pages.to_continuation_token().map_err(failed)?;
        let documents = stored_items(page.into_items())?
            .into_iter()
            .filter_map(Stored::into_recording)
            .collect();
        Ok(Some((documents, next)))
    }

    /// One page of a query's recordings (see [`RecordingStore::list`]).
    async fn page(&self, listing: (Query, FeedScope), page: &PageRequest) -> Result<Page, StoreError> {
        let mut continuation = page.continuation.as_deref().map(continuation::parse).transpose()?;
        let mut documents = Vec::new();
        for _ in 0..REQUESTS_PER_PAGE {
            let room = u32::try_from(page.limit.saturating_sub(documents.len())).unwrap_or(u32::MAX);
            let Some(room) = std::num::NonZeroU32::new(room) else {
                // Only when asked for no recordings at all: where the listing stands is unchanged.
                return Ok(Page {
                    documents,
                    continuation: continuation.map(|token| token.as_str().to_owned()),
                });
            };
            let Some((found, next)) = self.list_once((&listing.0, &listing.1), room, continuation).await? else {
                return Ok(Page {
                    documents,
                    continuation: None,
                });
            };
            documents.extend(found);
            if continuation::is_drained(&next) {
                return Ok(Page {
                    documents,
                    continuation: None,
                });
            }
            if documents.len() >= page.limit {
                return Ok(Page {
                    documents,
                    continuation: Some(next.as_str().to_owned()),
                });
            }
            continuation = Some(next);
        }
        Ok(Page {
            documents,
            continuation: continuation.map(|token| token.as_str().to_owned()),
        })
    }

    /// Reads what is stored under a recording's id, with its ETag.
    async fn read_stored(
        &self,
        call_id: &str,
        id: &str,
    ) -> Result<Option<(Stored, Option<azure_core::http::Etag>)>, StoreError> {
        let Some((fields, etag)) = Self::read_item::<Map<String, Value>>(&self.recordings, call_id, id).await? else {
            return Ok(None);
        };
        let stored = Stored::from_json(fields).map_err(|source| StoreError::Invalid {
            what: format!("Cosmos DB document {id:?} of partition {call_id:?}"),
            source,
        })?;
        Ok(Some((stored, etag)))
    }

    /// Builds the one client of the process from the configuration, checks that the account takes writes in one
    /// region (or that the configuration accepts several), then opens the containers.
    pub async fn connect(config: &CosmosConfig) -> Result<Self, StoreError> {
        let credential = credential(&config.auth)?;
        let signer = match (&config.auth, &credential) {
            (CosmosAuth::Key(key), _) => account::Signer::Key(key.clone()),
            (_, Some(credential)) => account::Signer::Token(credential.clone()),
            (_, None) => return Err(Error::Credential("no credential for Cosmos DB".to_owned()).into()),
        };
        let properties = account::read(&config.endpoint, &signer).await?;
        if let Some(regions) = properties.multi_region_writes() {
            if !config.allow_multi_region_writes {
                return Err(Error::MultiRegionWrites { regions }.into());
            }
            warn!(
                regions = %regions.join(", "),
                "the Cosmos DB account takes writes in several regions and RECORDINGS_ALLOW_MULTI_REGION_WRITES=true: \
                 two instances writing one recording through different regions can silently drop one write"
            );
        }
        let client = client(config, credential).await?;
        Self::open(&client, config).await
    }

    /// Opens the containers with an existing client, creating them first when configured to. A missing database
    /// or container, or one partitioned on another path, is reported here rather than on the first event.
    pub async fn open(client: &CosmosClient, config: &CosmosConfig) -> Result<Self, StoreError> {
        if config.create_if_not_exists {
            ignore_conflict(client.create_database(&config.database, None).await)
                .map_err(|e| cosmos_error("create the database", e))?;
        }
        let database = client.database_client(config.database.as_str());
        Ok(Self {
            recordings: open_container(&database, config, &config.container, RECORDINGS_PARTITION_KEY).await?,
            quarantine: open_container(
                &database,
                config,
                &config.quarantine_container,
                QUARANTINE_PARTITION_KEY,
            )
            .await?,
            place: format!("{} {}/{}", config.endpoint, config.database, config.container),
        })
    }

    /// Replaces a document only if it still has the ETag read, so that no other instance's write is overwritten.
    async fn replace(
        &self,
        call_id: &str,
        id: &str,
        document: &(impl serde::Serialize + Send + Sync),
        etag: Option<azure_core::http::Etag>,
    ) -> Result<Replaced, StoreError> {
        // Without an ETag the replace would be last-writer-wins and could drop another instance's chunks.
        let etag = etag.ok_or(Error::NoEtag)?;
        let options = ItemWriteOptions::default().with_precondition(Precondition::if_match(etag));
        match self
            .recordings
            .replace_item(call_id.to_owned(), id, document, Some(options))
            .await
        {
            Ok(_) => Ok(Replaced::Yes),
            Err(e) if e.status().is_precondition_failed() => {
                debug!(recording_id = %id, "another writer updated the recording first; merging again");
                Ok(Replaced::Raced)
            }
            Err(e) if e.status().is_not_found() => Ok(Replaced::Gone),
            Err(e) => Err(write_error(e)),
        }
    }

    /// Reads a document without Cosmos DB's system properties (`_rid`, `_etag`, `_ts`, …), with its ETag.
    async fn read_item<T: DeserializeOwned>(
        container: &ContainerClient,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<(T, Option<azure_core::http::Etag>)>, StoreError> {
        let response = match container.read_item(partition_key.to_owned(), id, None).await {
            Ok(response) => response,
            Err(e) if e.status().is_not_found() => return Ok(None),
            Err(e) => return Err(cosmos_error("read a document", e)),
        };
        let etag = response.headers().etag().cloned();
        let mut fields: Map<String, Value> = response.into_model().map_err(|e| cosmos_error("read a document", e))?;
        fields.retain(|name, _| !name.starts_with('_'));
        let item = serde_json::from_value(Value::Object(fields)).map_err(|e| StoreError::Invalid {
            what: format!("Cosmos DB document {id:?} of partition {partition_key:?}"),
            source: e,
        })?;
        Ok(Some((item, etag)))
    }
}

#[async_trait]
impl RecordingStore for CosmosStore {
    async fn merge(&self, update: RecordingDocument) -> Result<Merged, StoreError> {
        let archivable = update.archivable_chunk_ids();
        let (call_id, id) = (update.call_id.clone(), update.id.clone());
        let mut try_create = true;
        for attempt in 0..MERGE_ATTEMPTS {
            if try_create {
                match self.recordings.create_item(call_id.clone(), &id, &update, None).await {
                    Ok(_) => return Ok(Merged::new(MergeOutcome::Created, &archivable, &update)),
                    Err(e) if e.status().is_conflict() => {}
                    Err(e) => return Err(write_error(e)),
                }
            }
            let (mut merged, etag) = match self.read_stored(&call_id, &id).await? {
                Some((Stored::Recording(stored), etag)) => (stored, etag),
                Some((Stored::Erased(_), _)) => {
                    return Ok(Merged {
                        outcome: MergeOutcome::Erased,
                        to_archive: Vec::new(),
                    });
                }
                None => {
                    try_create = true; // deleted since the create failed: start over
                    continue;
                }
            };
            if !merged.merge_from(update.clone()) {
                return Ok(Merged::new(MergeOutcome::Unchanged, &archivable, &merged));
            }
            match self.replace(&call_id, &id, &merged, etag).await? {
                Replaced::Yes => return Ok(Merged::new(MergeOutcome::Updated, &archivable, &merged)),
                Replaced::Raced => {
                    try_create = false;
                    tokio::time::sleep(contention_pause(attempt)).await;
                }
                Replaced::Gone => try_create = true,
            }
        }
        Err(StoreError::Contended {
            attempts: MERGE_ATTEMPTS,
        })
    }

    async fn edit(&self, call_id: &str, id: &str, edit: Edit) -> Result<Edited, StoreError> {
        for attempt in 0..MERGE_ATTEMPTS {
            let (mut edited, etag) = match self.read_stored(call_id, id).await? {
                Some((Stored::Recording(stored), etag)) => (stored, etag),
                Some((Stored::Erased(_), _)) => return Ok(Edited::Erased),
                None => return Ok(Edited::Missing),
            };
            if !edit(&mut edited) {
                return Ok(Edited::Unchanged(edited));
            }
            match self.replace(call_id, id, &*edited, etag).await? {
                Replaced::Yes => return Ok(Edited::Changed(edited)),
                Replaced::Raced => tokio::time::sleep(contention_pause(attempt)).await,
                Replaced::Gone => return Ok(Edited::Missing),
            }
        }
        Err(StoreError::Contended {
            attempts: MERGE_ATTEMPTS,
        })
    }

    async fn documents(&self, call_id: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError> {
        let scope = match call_id {
            Some(call_id) => FeedScope::partition(call_id.to_owned()),
            None => FeedScope::full_container(),
        };
        self.query_recordings(ALL_RECORDINGS, scope).await
    }

    /// One query: on the call's partition when the filter names a call, over the container otherwise; the other
    /// filters in SQL, with parameters. Paged with the SDK's own continuation: a page is filled from up to
    /// [`REQUESTS_PER_PAGE`] requests (Cosmos DB may answer a request with fewer items than asked, even none, and a
    /// continuation), each asking for no more than the page still has room for — usually one. A sparse filter over
    /// a large container may so give a short page, with the continuation to go on from.
    async fn list(&self, filter: &ListFilter, page: &PageRequest) -> Result<Page, StoreError> {
        self.page(listing(filter)?, page).await
    }

    async fn erase(&self, call_id: &str, id: &str, erased_at: &str) -> Result<Erasure, StoreError> {
        for attempt in 0..MERGE_ATTEMPTS {
            let (document, etag) = match self.read_stored(call_id, id).await? {
                Some((Stored::Recording(document), etag)) => (document, etag),
                Some((Stored::Erased(tombstone), _)) => return Ok(Erasure::AlreadyErased(tombstone)),
                None => return Ok(Erasure::Missing),
            };
            if let Some(hold) = super::erase_hold::hold(call_id, id) {
                let _ = tokio::task::spawn_blocking(move || hold()).await;
            }
            let tombstone = Tombstone::of(&document, erased_at);
            let stored = StoredTombstone {
                tombstone: &tombstone,
                ttl: TOMBSTONE_TTL_SECONDS,
            };
            match self.replace(call_id, id, &stored, etag).await? {
                Replaced::Yes => return Ok(Erasure::Erased(document)),
                Replaced::Raced => tokio::time::sleep(contention_pause(attempt)).await,
                Replaced::Gone => return Ok(Erasure::Missing),
            }
        }
        Err(StoreError::Contended {
            attempts: MERGE_ATTEMPTS,
        })
    }

    async fn tombstones(&self, call_id: &str) -> Result<Vec<Tombstone>, StoreError> {
        let stored = self
            .query_stored(TOMBSTONES, FeedScope::partition(call_id.to_owned()))
            .await?;
        Ok(stored.into_iter().filter_map(Stored::into_tombstone).collect())
    }

    async fn erase_quarantined(&self, call_id: &str) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        let utf16le: String = call_id.chars().flat_map(|c| [c, '\0']).collect();
        let utf16be: String = call_id.chars().flat_map(|c| ['\0', c]).collect();
        let query = Query::from(QUARANTINE_NAMING)
            .with_parameter("@call", call_id)
            .and_then(|query| query.with_parameter("@utf16le", utf16le))
            .and_then(|query| query.with_parameter("@utf16be", utf16be))
            .map_err(|e| cosmos_error("query the quarantine", e))?;
        let entries: Vec<QuarantineEntry> = self
            .quarantine
            .query_items(query, FeedScope::full_container(), None)
            .await
            .map_err(|e| cosmos_error("query the quarantine", e))?
            .try_collect()
            .await
            .map_err(|e| cosmos_error("query the quarantine", e))?;
        let mut removed = 0;
        for entry in entries.iter().filter(|entry| entry.names_call(call_id)) {
            match self.quarantine.delete_item(entry.id.clone(), &entry.id, None).await {
                Ok(_) => removed += 1,
                Err(e) if e.status().is_not_found() => {}
                Err(e) => return Err(cosmos_error("remove a quarantined payload", e)),
            }
        }
        Ok(removed)
    }

    /// One query over the container, paged like a listing.
    async fn unfinished_archives(&self, page: &PageRequest) -> Result<Page, StoreError> {
        self.page((Query::from(UNFINISHED_ARCHIVES), FeedScope::full_container()), page)
            .await
    }

    async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError> {
        let mut entry = entry;
        loop {
            let created = self
                .quarantine
                .create_item(entry.id.clone(), &entry.id, &entry, None)
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(e) if e.status().is_conflict() => return Ok(()), // already kept: a redelivery
                Err(e) if is_too_large(&e) && entry.truncated_from_bytes.is_none() => {
                    error!(
                        quarantine_id = %entry.id,
                        kept_bytes = QUARANTINE_KEPT_BYTES,
                        "the quarantined payload exceeds Cosmos DB's item limit; keeping only its start"
                    );
                    entry = entry.truncated(QUARANTINE_KEPT_BYTES);
                }
                Err(e) => return Err(cosmos_error("quarantine a payload", e)),
            }
        }
    }

    async fn lookup(&self, call_id: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        Ok(self.read_stored(call_id, id).await?.map(|(stored, _)| stored))
    }

    async fn read_quarantined(&self, id: &str) -> Result<Option<QuarantineEntry>, StoreError> {
        Ok(Self::read_item(&self.quarantine, id, id).await?.map(|(entry, _)| entry))
    }

    /// Two queries over the containers, read a page of [`STATUS_PAGE`] rows at a time and added up as they come.
    async fn status(&self, now: OffsetDateTime, at_risk: time::Duration) -> Result<Status, StoreError> {
        use futures_util::TryStreamExt;
        let options = || {
            let page = std::num::NonZeroU32::new(STATUS_PAGE).unwrap_or(std::num::NonZeroU32::MIN);
            QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(page))
        };
        let failed = |e| cosmos_error("read the health summary", e);
        let mut tally = Tally::new(now, at_risk);
        let mut rows = self
            .recordings
            .query_items::<Value>(STATUS_ROWS, FeedScope::full_container(), Some(options()))
            .await
            .map_err(failed)?;
        while let Some(row) = rows.try_next().await.map_err(failed)? {
            let summary: RecordingSummary = serde_json::from_value(row).map_err(|source| StoreError::Invalid {
                what: "a row of the health summary's query".to_owned(),
                source,
            })?;
            tally.add(&summary);
        }
        let mut entries = self
            .quarantine
            .query_items::<Value>(STATUS_QUARANTINED, FeedScope::full_container(), Some(options()))
            .await
            .map_err(failed)?;
        let mut quarantined = 0;
        while entries.try_next().await.map_err(failed)?.is_some() {
            quarantined += 1;
        }
        tally.add_quarantined(quarantined);
        Ok(tally.finish())
    }

    fn location(&self, call_id: &str, id: &str) -> String {
        format!("{} (partition {call_id:?}, id {id:?})", self.place)
    }
}

/// Items a query returned, without Cosmos DB's system properties: documents and tombstones.
fn stored_items(items: Vec<Map<String, Value>>) -> Result<Vec<Stored>, StoreError> {
    items
        .into_iter()
        .map(|mut fields| {
            fields.retain(|name, _| !name.starts_with('_'));
            Stored::from_json(fields).map_err(|source| StoreError::Invalid {
                what: "a Cosmos DB recording document".to_owned(),
                source,
            })
        })
        .collect()
}

/// The query of a listing and where it runs.
fn listing(filter: &ListFilter) -> Result<(Query, FeedScope), StoreError> {
    let sql = queries::listing(filter.server_call_id.is_some(), filter.archive_state.is_some());
    let mut query = Query::from(sql);
    let parameter = |e| cosmos_error("build the listing query", e);
    if let Some(server_call_id) = &filter.server_call_id {
        query = query
            .with_parameter("@serverCallId", server_call_id)
            .map_err(parameter)?;
    }
    if let Some(state) = filter.archive_state {
        query = query
            .with_parameter("@archiveState", state.as_str())
            .map_err(parameter)?;
    }
    let scope = match &filter.call_id {
        Some(call_id) => FeedScope::partition(call_id.clone()),
        None => FeedScope::full_container(),
    };
    Ok((query, scope))
}

/// A listing's failure. When resuming, a refusal of the request (400: Cosmos DB's answer to a malformed
/// continuation; the SDK's too, for a token of another container) or the SDK failing to resume from the token's
/// state is the caller's continuation's fault.
fn listing_error(e: CosmosError, resumed: bool) -> StoreError {
    let status = e.status();
    let bad_state = status
        .sub_status()
        .is_some_and(|sub| continuation::REFUSED_STATES.contains(&sub.value()));
    if resumed && (status.status_code() == azure_core::http::StatusCode::BadRequest || bad_state) {
        debug!(error = %e, "the listing's continuation was refused");
        return StoreError::BadContinuation;
    }
    cosmos_error("list the recordings", e)
}

/// Opens one container, creating it first when configured to, and checks its partition key.
async fn open_container(
    database: &DatabaseClient,
    config: &CosmosConfig,
    name: &str,
    partition_key: &'static str,
) -> Result<ContainerClient, StoreError> {
    if config.create_if_not_exists {
        let properties =
            ContainerProperties::new(name.to_owned(), PartitionKeyDefinition::from(partition_key.to_owned()));
        ignore_conflict(database.create_container(properties, None).await)
            .map_err(|e| cosmos_error("create a container", e))?;
    }
    let container = database.container_client(name, None).await.map_err(|e| {
        if e.status().status_code() == azure_core::http::StatusCode::NotFound {
            Error::MissingContainer {
                container: name.to_owned(),
                database: config.database.clone(),
                partition_key,
            }
            .into()
        } else {
            cosmos_error("open a container", e)
        }
    })?;
    let properties: ContainerProperties = container
        .read(None)
        .await
        .and_then(|r| r.into_model())
        .map_err(|e| cosmos_error("read a container's properties", e))?;
    let paths = properties.partition_key.paths();
    if paths.len() != 1 || paths[0] != partition_key {
        return Err(Error::WrongPartitionKey {
            container: name.to_owned(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            expected: partition_key,
        }
        .into());
    }
    Ok(container)
}

/// The Microsoft Entra ID credential the configuration names; `None` for key authentication.
fn credential(auth: &CosmosAuth) -> Result<Option<Arc<dyn TokenCredential>>, StoreError> {
    let credential = match auth {
        CosmosAuth::Key(_) => return Ok(None),
        CosmosAuth::ManagedIdentity { client_id } => identity::managed_identity(client_id.as_deref()),
        CosmosAuth::DeveloperCredential => identity::developer(),
    };
    Ok(credential.map(Some).map_err(Error::Credential)?)
}

/// The process's one Cosmos DB client. The SDK's own environment settings (binary encoding, HTTP/2, …) still apply.
async fn client(
    config: &CosmosConfig,
    credential: Option<Arc<dyn TokenCredential>>,
) -> Result<CosmosClient, StoreError> {
    let endpoint: AccountEndpoint = config
        .endpoint
        .parse()
        .map_err(|_| Error::InvalidEndpoint(config.endpoint.clone()))?;
    let account = match (&config.auth, credential) {
        (CosmosAuth::Key(key), _) => {
            AccountReference::with_authentication_key(endpoint, AzureSecret::new(key.expose().to_owned()))
        }
        (_, Some(credential)) => AccountReference::with_credential(endpoint, credential),
        (_, None) => return Err(Error::Credential("no credential for Cosmos DB".to_owned()).into()),
    };
    let mut operation = OperationOptions::default();
    operation.throttling_retry_options = Some(
        ThrottlingRetryOptionsBuilder::new()
            .with_max_retry_count(THROTTLE_RETRIES)
            .with_max_retry_wait_time(THROTTLE_WAIT)
            .build(),
    );
    operation.max_failover_retry_count = Some(1);
    operation.end_to_end_latency_policy = Some(EndToEndOperationLatencyPolicy::new(OPERATION_DEADLINE));
    let routing = match &config.region {
        Some(region) => RoutingStrategy::ProximityTo(Region::from(region.clone())),
        None => RoutingStrategy::PreferredRegions(Vec::new()),
    };
    CosmosClient::builder()
        .with_default_operation_options(operation)
        .build(account, routing)
        .await
        .map_err(|e| cosmos_error("connect to the account", e))
}

/// A random pause that grows with the attempts, up to [`MAX_CONTENTION_PAUSE_MS`].
fn contention_pause(attempt: usize) -> Duration {
    let ceiling = (5 * (attempt as u64 + 1)).min(MAX_CONTENTION_PAUSE_MS);
    Duration::from_millis(fastrand::u64(0..=ceiling))
}

fn ignore_conflict<T>(result: Result<T, CosmosError>) -> Result<(), CosmosError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_conflict() => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_too_large(e: &CosmosError) -> bool {
    u16::from(e.status().status_code()) == 413
}

/// A failed write of a recording document: too large means never (quarantine), anything else means retry.
fn write_error(e: CosmosError) -> StoreError {
    if is_too_large(&e) {
        StoreError::Refused("it is larger than Cosmos DB's 2 MB item limit".to_owned())
    } else {
        cosmos_error("write a document", e)
    }
}

fn cosmos_error(action: &'static str, source: CosmosError) -> StoreError {
    let status = u16::from(source.status().status_code());
    Error::Service {
        action,
        status,
        // Authorization, a missing database or container, or a request Cosmos DB calls malformed: retries alone
        // will not help until the account or the settings are fixed.
        needs_operator: matches!(status, 400 | 401 | 403 | 404),
        source,
    }
    .into()
}
