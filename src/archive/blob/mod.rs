//! The archive in Azure Blob Storage, the production archive: each file a block blob in one container, through the
//! official `azure_storage_blob` client, signed with Microsoft Entra ID or, for a connection string, with the
//! account key by [`shared_key`].
//!
//! Names: `{callId}/{recording id}/{chunk documentId}/content.{ext}` and `…/metadata.json`, every id encoded as the
//! embedded archive encodes its file names (letters, digits, `-`, `_` and inner `.` kept, every other byte `%XX`,
//! overlong ids a digest), so no id can add a segment, climb out with `..` or exceed Blob Storage's name limit.
//!
//! A file goes up as staged blocks of [`BLOCK_BYTES`], one `Put Block` per block as the download fills it (memory
//! holds at most one block per writer), then one conditional `Put Block List` commits it with its SHA-256 and size
//! as metadata: `If-None-Match: *`, so that of two writers of one file exactly one commit wins and a blob, once
//! there, is never replaced. The writer whose commit finds the blob there (409 or 412: another writer, or its own
//! earlier try whose answer was lost) accepts it only if its metadata names exactly its own bytes, and otherwise
//! reports the file busy; it never commits over it, not even with `If-Match` when the bytes are the same — that
//! would gain nothing, and risk a mix if they were not. The block ids carry the running hash ([`blocks`]), so a
//! retried job lists the
//! uncommitted blocks, keeps the run it can vouch for and resumes the download after it. Before a file is reported
//! archived, the committed blob's length and metadata are read back and checked.
//!
//! Staged blocks are bytes of a recording too, and Blob Storage keeps them up to a week. Erasing lists a folder's
//! blobs with those that have staged blocks only (`List Blobs` with `include=uncommittedblobs`) and removes both
//! from each name (`purge`), then lists again, until nothing is left. Deleting a name that has staged
//! blocks only is not enough: Azurite 3.35.0 then hides the blocks and gives them back to the next writer.

pub mod blocks;
pub mod sas;
pub mod shared_key;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{Body, ClientOptions, ExponentialRetryOptions, RetryOptions, Transport, Url};
use azure_storage_blob::models::KeyInfo;
use azure_storage_blob::models::{
    AccessTier as BlobTier, BlobClientGetPropertiesResultHeaders, BlobContainerClientListBlobsOptions,
    BlockBlobClientCommitBlockListOptions, BlockListType, BlockLookupList, ListBlobsIncludeItem,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions, BlobServiceClient,
    BlobServiceClientOptions, BlockBlobClient, BlockBlobClientOptions,
};
use bytes::{Bytes, BytesMut};
use time::OffsetDateTime;

use super::{Archive, ArchiveError, FileKey, FileKind, FileWriter, LinkRequest, ReadLink};
use crate::config::{AccessTier, BlobAuth, BlobConfig};
use crate::digest::{HmacKey, file_name, hex};
use crate::identity;
use crate::recording::ArchivedFile;
use blocks::{BlockId, RunningSha256};
use shared_key::SharedKeyPolicy;

/// The size of every staged block but the last: the most memory a writer holds, and 128 requests per GiB. A
/// multiple of 64 bytes, so that the hash state can be carried in its id.
pub const BLOCK_BYTES: u32 = 8 * 1024 * 1024;

/// How long a connection may take to open, and stay silent, before the request counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The client's own retries of a transient failure (408, 429, 5xx, a cut connection) within one request, before
/// the job fails and its queue retries it later.
const RETRIES: u32 = 3;
const RETRY_PATIENCE: Duration = Duration::from_secs(30);

/// The metadata every archived blob carries: its SHA-256 (lowercase hex) and its size in bytes.
const SHA256_METADATA: &str = "sha256";
const BYTES_METADATA: &str = "bytes";
/// The URL the blob's bytes came from, percent-encoded where a header value cannot hold it.
const SOURCE_METADATA: &str = "source";

/// What a metadata value cannot hold: everything but printable ASCII, and `%` itself.
const NOT_IN_METADATA: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// How many times an erase removes what it lists under a folder before it reports the folder still being written.
const PURGE_ROUNDS: usize = 3;

/// Files in one Blob Storage container.
#[derive(Clone)]
pub struct BlobArchive {
    /// The container's URL; every blob's URL starts with it.
    container: Url,
    /// Microsoft Entra ID; `None` when a connection string's key signs (through `client_options`).
    credential: Option<Arc<dyn TokenCredential>>,
    /// One transport (connection pool) for every client, the retry policy, and the Shared Key policy if any.
    client_options: ClientOptions,
    access_tier: Option<AccessTier>,
    block_bytes: u32,
    /// The account's name, as shared access signatures name it.
    account: String,
    /// What signs read links: the account key of a Shared Key connection, or else user delegation keys.
    link_key: Option<HmacKey>,
    /// The user delegation key last obtained, kept until shortly before it expires.
    delegation: Arc<tokio::sync::Mutex<Option<sas::UserDelegationKey>>>,
}

/// How long a user delegation key is asked for: the longest Blob Storage gives, so that one key signs a week of
/// links.
const DELEGATION_KEY_LIFETIME: time::Duration = time::Duration::days(7);
/// How far a link's start is set back, for clocks that run behind this one.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
/// The most a link may end before the lifetime asked for, so that the kept key signs it: a tenth of the lifetime,
/// at most an hour. Without it a week-long link, which needs a key lasting a week from now, could never use a key
/// obtained even a second ago. A key is then asked for at most once an hour for week-long links, and about once a
/// week for short ones; a link's `expiresOn` says when it really stops working.
const KEY_REUSE_MARGIN: time::Duration = time::Duration::hours(1);

/// Whether a kept key that expires at `key_expires_on` signs a link asked to last `lifetime` from `now`.
fn key_signs(key_expires_on: OffsetDateTime, now: OffsetDateTime, lifetime: time::Duration) -> bool {
    let margin = (lifetime / 10_i32).min(KEY_REUSE_MARGIN);
    key_expires_on >= now + lifetime - margin
}

impl std::fmt::Debug for BlobArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobArchive")
            .field("container", &self.container.as_str())
            .finish_non_exhaustive()
    }
}

impl BlobArchive {
    /// The archive the settings describe; nothing is requested yet (see [`BlobArchive::prepare`]).
    pub fn new(config: &BlobConfig) -> Result<Self, ArchiveError> {
        let mut client_options = ClientOptions::default();
        let mut link_key = None;
        let credential = match &config.auth {
            BlobAuth::SharedKey { account, key } => {
                let policy = SharedKeyPolicy::new(account, key).map_err(|e| ArchiveError::Setup(e.to_string()))?;
                client_options.per_try_policies.push(policy);
                link_key = HmacKey::from_base64(key);
                None
            }
            BlobAuth::ManagedIdentity { client_id } => {
                Some(identity::managed_identity(client_id.as_deref()).map_err(ArchiveError::Setup)?)
            }
            BlobAuth::DeveloperCredential => Some(identity::developer().map_err(ArchiveError::Setup)?),
        };
        let http = super::file_transfer_client(CONNECT_TIMEOUT, READ_TIMEOUT)
            .build()
            .map_err(|e| ArchiveError::Setup(format!("cannot make the HTTP client for Blob Storage: {e}")))?;
        client_options.transport = Some(Transport::new(Arc::new(http)));
        client_options.retry = RetryOptions::exponential(ExponentialRetryOptions {
            max_retries: RETRIES,
            max_total_elapsed: azure_core::time::Duration::seconds(RETRY_PATIENCE.as_secs() as i64),
            ..Default::default()
        });
        let mut container = config.service_uri.clone();
        container
            .path_segments_mut()
            .map_err(|()| ArchiveError::Setup(format!("{} is not a blob service URL", config.service_uri)))?
            .pop_if_empty()
            .push(&config.container);
        let account = match &config.auth {
            BlobAuth::SharedKey { account, .. } => account.clone(),
            BlobAuth::ManagedIdentity { .. } | BlobAuth::DeveloperCredential => account_of(&config.service_uri)
                .ok_or_else(|| ArchiveError::Setup(format!("{} names no storage account", config.service_uri)))?,
        };
        Ok(Self {
            container,
            credential,
            client_options,
            access_tier: config.access_tier,
            block_bytes: BLOCK_BYTES,
            account,
            link_key,
            delegation: Arc::default(),
        })
    }

    /// A user delegation key for a link asked to last `lifetime` from `now`: the one kept while it lasts nearly as
    /// long ([`key_signs`]), or a new one from Blob Storage that lasts a week.
    async fn delegation_key(
        &self,
        now: OffsetDateTime,
        lifetime: time::Duration,
    ) -> Result<sas::UserDelegationKey, ArchiveError> {
        let mut kept = self.delegation.lock().await;
        if let Some(key) = kept.as_ref().filter(|key| key_signs(key.expires_on, now, lifetime)) {
            return Ok(key.clone());
        }
        let mut service = self.container.clone();
        if let Ok(mut segments) = service.path_segments_mut() {
            segments.pop();
        }
        let options = BlobServiceClientOptions {
            client_options: self.client_options.clone(),
            ..Default::default()
        };
        let client = BlobServiceClient::new(service, self.credential.clone(), Some(options))
            .map_err(|e| ArchiveError::Setup(format!("cannot make a Blob Storage client: {e}")))?;
        let info = KeyInfo {
            start: Some(now - CLOCK_SKEW),
            expiry: Some(now + DELEGATION_KEY_LIFETIME),
            ..Default::default()
        };
        let info = info
            .try_into()
            .map_err(|e| storage_error("ask for a user delegation key", e))?;
        let issued = client
            .get_user_delegation_key(info, None)
            .await
            .map_err(|e| storage_error("ask for a user delegation key", e))?
            .into_model()
            .map_err(|e| storage_error("read the user delegation key", e))?;
        let key = sas::UserDelegationKey::issued(issued).ok_or_else(|| {
            ArchiveError::Setup("Blob Storage answered with an incomplete user delegation key".into())
        })?;
        *kept = Some(key.clone());
        Ok(key)
    }

    /// The same archive with other blocks (rounded down to a multiple of 64 bytes), so that tests cross block
    /// boundaries cheaply.
    pub fn with_block_bytes(mut self, block_bytes: u32) -> Self {
        let hash_block = blocks::HASH_BLOCK as u32;
        self.block_bytes = (block_bytes / hash_block).max(1) * hash_block;
        self
    }

    /// Checks that the container is there and can be reached, creating it first when `create` says so. A missing
    /// container or a refused credential needs an operator; anything else may pass by itself.
    pub async fn prepare(&self, create: bool) -> Result<(), ArchiveError> {
        let container = self.container_client()?;
        if create
            && let Err(e) = container.create(None).await
            && e.http_status().map(u16::from) != Some(409)
        {
            return Err(storage_error("create the archive container", e));
        }
        match container.get_properties(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status().map(u16::from) == Some(404) => Err(ArchiveError::MissingContainer {
                container: self.container.to_string(),
            }),
            Err(e) => Err(storage_error("reach the archive container", e)),
        }
    }

    /// The container's URL.
    pub fn container_url(&self) -> &Url {
        &self.container
    }

    /// A client for a blob of this archive's account, signed as the archive signs: for tools and tests.
    pub fn blob_client(&self, url: Url) -> Result<BlobClient, ArchiveError> {
        let options = BlobClientOptions {
            client_options: self.client_options.clone(),
            ..Default::default()
        };
        BlobClient::new(url, self.credential.clone(), Some(options))
            .map_err(|e| ArchiveError::Setup(format!("cannot make a Blob Storage client: {e}")))
    }

    /// A client for the container, signed as the archive signs: for tools and tests.
    pub fn container_client(&self) -> Result<BlobContainerClient, ArchiveError> {
        let options = BlobContainerClientOptions {
            client_options: self.client_options.clone(),
            ..Default::default()
        };
        BlobContainerClient::new(self.container.clone(), self.credential.clone(), Some(options))
            .map_err(|e| ArchiveError::Setup(format!("cannot make a Blob Storage client: {e}")))
    }

    fn block_blob_client(&self, url: Url) -> Result<BlockBlobClient, ArchiveError> {
        let options = BlockBlobClientOptions {
            client_options: self.client_options.clone(),
            ..Default::default()
        };
        BlockBlobClient::new(url, self.credential.clone(), Some(options))
            .map_err(|e| ArchiveError::Setup(format!("cannot make a Blob Storage client: {e}")))
    }

    /// Deletes a blob; whether it was there.
    async fn delete_blob(&self, url: Url) -> Result<bool, ArchiveError> {
        match self.blob_client(url)?.delete(None).await {
            Ok(_) => Ok(true),
            Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(false),
            Err(e) => Err(storage_error("delete a file", e)),
        }
    }

    /// Removes everything kept under a blob's name — the committed blob, and the blocks an unfinished writer staged
    /// for it — and says whether a committed blob was there. A `Put Block List` removes every uncommitted block it
    /// does not name, so an empty one, committed only where no blob is (`If-None-Match: *`), drops the staged blocks
    /// and leaves an empty blob, which is then deleted; where a blob is committed, the commit is refused and changes
    /// nothing, and the blob is deleted.
    async fn purge(&self, url: Url) -> Result<bool, ArchiveError> {
        let empty = BlockLookupList {
            latest: Some(Vec::new()),
            ..Default::default()
        };
        let empty = empty
            .try_into()
            .map_err(|e| storage_error("drop the staged blocks", e))?;
        let options = BlockBlobClientCommitBlockListOptions {
            if_none_match: Some("*".into()),
            ..Default::default()
        };
        let committed = match self
            .block_blob_client(url.clone())?
            .commit_block_list(empty, Some(options))
            .await
        {
            Ok(_) => false,
            Err(e) if matches!(e.http_status().map(u16::from), Some(409 | 412)) => true,
            Err(e) => return Err(storage_error("drop the staged blocks", e)),
        };
        Ok(self.delete_blob(url).await? && committed)
    }

    /// The name of every blob under `prefix`, committed or with staged blocks only (`include=uncommittedblobs`).
    async fn names_under(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        use futures_util::TryStreamExt;
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            include: Some(vec![ListBlobsIncludeItem::UncommittedBlobs]),
            ..Default::default()
        };
        let mut pages = self
            .container_client()?
            .list_blobs(Some(options))
            .map_err(|e| storage_error("list a call's files", e))?
            .into_pages();
        let mut names = Vec::new();
        while let Some(page) = pages
            .try_next()
            .await
            .map_err(|e| storage_error("list a call's files", e))?
        {
            let page = page.into_model().map_err(|e| storage_error("list a call's files", e))?;
            names.extend(page.blob_items.into_iter().filter_map(|item| item.name));
        }
        Ok(names)
    }

    /// The blob's URL: the container's, then one segment per encoded id, then the file's name.
    fn url(&self, key: &FileKey) -> Url {
        let mut url = self.container.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(blob_name(key));
        }
        url
    }
}

/// The account a blob service URL names: `ACCOUNT` of `https://ACCOUNT.blob.core.windows.net`, or the first path
/// segment of a local server's (`http://127.0.0.1:10000/devstoreaccount1`).
fn account_of(service: &Url) -> Option<String> {
    let local = service
        .host()
        .is_some_and(|host| super::sources::is_loopback_host(&host));
    let account = if local {
        service.path_segments()?.find(|segment| !segment.is_empty())?
    } else {
        service.host_str()?.split('.').next()?
    };
    (!account.is_empty()).then(|| account.to_owned())
}

/// The segments of a file's blob name.
pub fn blob_name(key: &FileKey) -> [String; 4] {
    let file = match &key.kind {
        FileKind::Content { extension } => format!("content.{extension}"),
        FileKind::Metadata => "metadata.json".to_owned(),
    };
    [
        file_name(&key.call_id),
        file_name(&key.recording_id),
        file_name(&key.chunk_id),
        file,
    ]
}

#[async_trait]
impl Archive for BlobArchive {
    fn location(&self, key: &FileKey) -> String {
        self.url(key).to_string()
    }

    async fn remove(&self, key: &FileKey) -> Result<bool, ArchiveError> {
        self.purge(self.url(key)).await
    }

    async fn erase(&self, call_id: &str, recording_id: Option<&str>) -> Result<u64, ArchiveError> {
        let mut prefix = format!("{}/", file_name(call_id));
        if let Some(recording_id) = recording_id {
            prefix.push_str(&file_name(recording_id));
            prefix.push('/');
        }
        let mut removed = 0;
        for round in 0..=PURGE_ROUNDS {
            let names = self.names_under(&prefix).await?;
            if names.is_empty() {
                return Ok(removed);
            }
            if round == PURGE_ROUNDS {
                break;
            }
            for name in names {
                let mut url = self.container.clone();
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.extend(name.split('/'));
                }
                if self.purge(url).await? {
                    removed += 1;
                }
            }
        }
        // Something keeps staging blocks there: a job still downloading a file of the erased recording. It fails
        // at its commit and removes what it staged when it finds the tombstone; erasing again then finds nothing.
        Err(ArchiveError::Busy(format!("{}/{prefix}", self.container)))
    }

    async fn existing(&self, key: &FileKey) -> Result<Option<ArchivedFile>, ArchiveError> {
        read_back(&self.blob_client(self.url(key))?, &self.location(key)).await
    }

    async fn read_link(&self, key: &FileKey, request: &LinkRequest) -> Result<ReadLink, ArchiveError> {
        let now = OffsetDateTime::now_utc();
        let lifetime = time::Duration::try_from(request.lifetime)
            .unwrap_or(DELEGATION_KEY_LIFETIME)
            .min(DELEGATION_KEY_LIFETIME);
        let mut expiry = now + lifetime;
        let delegation = match &self.link_key {
            Some(_) => None,
            None => {
                let key = self.delegation_key(now, lifetime).await?;
                expiry = expiry.min(key.expires_on);
                Some(key)
            }
        };
        // A SAS names its expiry to the second: the link's `expiresOn` is that time, never a fraction later.
        let expiry = expiry.replace_nanosecond(0).unwrap_or(expiry);
        let container = self
            .container
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .unwrap_or_default()
            .to_owned();
        let blob = blob_name(key).join("/");
        let disposition = request.content_disposition();
        let https_only = !self
            .container
            .host()
            .is_some_and(|host| super::sources::is_loopback_host(&host));
        let grant = sas::ReadGrant {
            container: &container,
            blob: &blob,
            start: now - CLOCK_SKEW,
            expiry,
            https_only,
            content_disposition: Some(&disposition),
            content_type: Some(&request.content_type),
            version: sas::SAS_VERSION,
        };
        let signer = match (&self.link_key, &delegation) {
            (Some(key), _) => sas::SasSigner::AccountKey {
                account: &self.account,
                key,
            },
            (None, Some(key)) => sas::SasSigner::UserDelegation {
                account: &self.account,
                key,
            },
            (None, None) => return Err(ArchiveError::Setup("no key signs read links".into())),
        };
        Ok(ReadLink {
            url: sas::read_link(&self.url(key), &sas::blob_sas(&grant, signer)),
            expires_on: Some(expiry),
        })
    }

    async fn writer(&self, key: &FileKey, source: &str) -> Result<Box<dyn FileWriter>, ArchiveError> {
        let url = self.url(key);
        let client = self.block_blob_client(url.clone())?;
        let listed = match client.get_block_list(BlockListType::Uncommitted, None).await {
            Ok(response) => {
                let list = response
                    .into_model()
                    .map_err(|e| storage_error("read the blocks staged earlier", e))?;
                list.uncommitted_blocks
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|block| Some((block.name?, u64::try_from(block.size?).ok()?)))
                    .collect()
            }
            Err(e) if is_blob_not_found(&e) => Vec::new(),
            Err(e) => return Err(storage_error("read the blocks staged earlier", e)),
        };
        let resumed = blocks::resumable(&listed, self.block_bytes, source);
        let hasher = match resumed.state {
            Some(state) => RunningSha256::resume(state, resumed.bytes),
            None => RunningSha256::default(),
        };
        Ok(Box::new(BlobWriter {
            reader: self.blob_client(url)?,
            client,
            location: self.location(key),
            content_type: key.kind.content_type(),
            access_tier: self.access_tier,
            block_bytes: self.block_bytes,
            source: source.to_owned(),
            ids: resumed.ids,
            staged: resumed.bytes,
            buffer: BytesMut::new(),
            hasher,
        }))
    }
}

/// A file being staged. Dropped without its commit, it leaves its full blocks staged for the next writer.
struct BlobWriter {
    client: BlockBlobClient,
    /// The same blob, to read its properties back after the commit.
    reader: BlobClient,
    location: String,
    content_type: &'static str,
    access_tier: Option<AccessTier>,
    block_bytes: u32,
    /// Where the bytes come from: every full block's id links to it (see [`blocks`]).
    source: String,
    /// The staged blocks, in file order.
    ids: Vec<Vec<u8>>,
    /// Bytes in the staged blocks.
    staged: u64,
    /// Bytes not yet staged: less than one block.
    buffer: BytesMut,
    /// The hash of every byte staged or buffered.
    hasher: RunningSha256,
}

impl BlobWriter {
    /// Stages the buffer as the block that starts at `self.staged`. On failure the buffer keeps its bytes, so that
    /// [`FileWriter::offset`] stays true.
    async fn stage(&mut self, id: BlockId) -> Result<(), ArchiveError> {
        let id = id.to_bytes();
        let block: Bytes = self.buffer.split().freeze();
        let length = block.len() as u64;
        let staged = self
            .client
            .stage_block(&id, length, Body::from(block.clone()).into(), None)
            .await;
        if let Err(e) = staged {
            self.buffer = block.try_into_mut().unwrap_or_else(|block| BytesMut::from(&block[..]));
            return Err(storage_error("stage a block", e));
        }
        self.ids.push(id);
        self.staged += length;
        Ok(())
    }

    /// The committed blob's own account of itself, once ours or another writer's commit has made it.
    async fn committed(&self, sha256: &str, bytes: u64) -> Result<ArchivedFile, ArchiveError> {
        match read_back(&self.reader, &self.location).await? {
            Some(file)
                if file.sha256 == sha256 && file.bytes == bytes && file.source.as_deref() == Some(&self.source) =>
            {
                Ok(file)
            }
            // Another writer's commit won with other bytes (ACS served something else then); it stays, and the
            // job's next try finds it.
            Some(_) | None => Err(ArchiveError::Busy(self.location.clone())),
        }
    }
}

#[async_trait]
impl FileWriter for BlobWriter {
    fn offset(&self) -> u64 {
        self.staged + self.buffer.len() as u64
    }

    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), ArchiveError> {
        while !bytes.is_empty() {
            let room = self.block_bytes as usize - self.buffer.len();
            let take = room.min(bytes.len());
            if self.buffer.capacity() == 0 {
                self.buffer.reserve(self.block_bytes as usize);
            }
            self.buffer.extend_from_slice(&bytes[..take]);
            self.hasher.update(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == self.block_bytes as usize {
                // A full block ends on a 64-byte boundary (`block_bytes` is a multiple of 64).
                let state = self.hasher.state().ok_or_else(|| {
                    ArchiveError::Setup("the block size is not a multiple of SHA-256's 64 bytes".to_owned())
                })?;
                let place = u32::try_from(self.ids.len()).map_err(|_| {
                    ArchiveError::Setup("a file of more than 4 294 967 295 blocks cannot be staged".to_owned())
                })?;
                let id = BlockId::Full {
                    place,
                    state,
                    link: blocks::link(&self.source, self.ids.last().map_or(&[][..], Vec::as_slice)),
                };
                self.stage(id).await?;
            }
        }
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), ArchiveError> {
        self.ids.clear();
        self.staged = 0;
        self.buffer.clear();
        self.hasher = RunningSha256::default();
        Ok(())
    }

    async fn commit(self: Box<Self>, expected_bytes: Option<u64>) -> Result<ArchivedFile, ArchiveError> {
        let mut this = *self;
        let bytes = this.offset();
        if let Some(expected) = expected_bytes.filter(|expected| *expected != bytes) {
            return Err(ArchiveError::WrongSize {
                what: this.location,
                expected,
                actual: bytes,
            });
        }
        let digest = this.hasher.finalize();
        let sha256 = hex(&digest);
        if !this.buffer.is_empty() {
            let id = BlockId::Last {
                offset: this.staged,
                length: this.buffer.len() as u32,
                sha256: digest,
            };
            this.stage(id).await?;
        }
        let list = BlockLookupList {
            latest: Some(this.ids.clone()),
            ..Default::default()
        };
        let options = BlockBlobClientCommitBlockListOptions {
            if_none_match: Some("*".into()),
            metadata: Some(HashMap::from([
                (SHA256_METADATA.to_owned(), sha256.clone()),
                (BYTES_METADATA.to_owned(), bytes.to_string()),
                (
                    SOURCE_METADATA.to_owned(),
                    percent_encoding::utf8_percent_encode(&this.source, NOT_IN_METADATA).to_string(),
                ),
            ])),
            blob_content_type: Some(this.content_type.to_owned()),
            tier: this.access_tier.map(tier),
            ..Default::default()
        };
        let list = list.try_into().map_err(|e| storage_error("write the block list", e))?;
        match this.client.commit_block_list(list, Some(options)).await {
            Ok(_) => {}
            // The blob exists: another writer committed first (or our own commit's answer was lost and the client
            // tried again). It is ours only if it holds exactly these bytes.
            Err(e) if matches!(e.http_status().map(u16::from), Some(409 | 412)) => {}
            Err(e) => return Err(storage_error("commit the blob", e)),
        }
        this.committed(&sha256, bytes).await
    }
}

/// The blob's size and hash as its metadata records them, checked against its length; `None` when there is no
/// committed blob.
async fn read_back(client: &BlobClient, location: &str) -> Result<Option<ArchivedFile>, ArchiveError> {
    let response = match client.get_properties(None).await {
        Ok(response) => response,
        Err(e) if is_blob_not_found(&e) => return Ok(None),
        Err(e) => return Err(storage_error("read an archived blob's properties", e)),
    };
    let unverified = |problem: String| ArchiveError::Unverified {
        location: location.to_owned(),
        problem,
    };
    let metadata = response
        .metadata()
        .map_err(|e| storage_error("read an archived blob's metadata", e))?;
    let length = response
        .content_length()
        .map_err(|e| storage_error("read an archived blob's length", e))?;
    verified(location, &metadata, length).map_err(unverified).map(Some)
}

/// An archived file from a blob's metadata and length, or what is wrong with them.
fn verified(location: &str, metadata: &HashMap<String, String>, length: Option<u64>) -> Result<ArchivedFile, String> {
    let field = |name: &str| {
        metadata
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let sha256 = field(SHA256_METADATA)
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .ok_or("its metadata holds no SHA-256")?;
    let bytes: u64 = field(BYTES_METADATA)
        .and_then(|b| b.parse().ok())
        .ok_or("its metadata holds no byte count")?;
    match length {
        Some(length) if length == bytes => Ok(ArchivedFile {
            location: location.to_owned(),
            bytes,
            sha256: sha256.to_owned(),
            source: field(SOURCE_METADATA)
                .and_then(|source| percent_encoding::percent_decode_str(source).decode_utf8().ok())
                .map(String::from),
        }),
        Some(length) => Err(format!("it holds {length} bytes, and its metadata says {bytes}")),
        None => Err("Blob Storage did not say its length".to_owned()),
    }
}

fn tier(tier: AccessTier) -> BlobTier {
    match tier {
        AccessTier::Hot => BlobTier::Hot,
        AccessTier::Cool => BlobTier::Cool,
        AccessTier::Cold => BlobTier::Cold,
        AccessTier::Archive => BlobTier::Archive,
    }
}

fn error_code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

/// A 404 for the blob itself; a missing container is another matter (an operator's).
fn is_blob_not_found(e: &azure_core::Error) -> bool {
    e.http_status().map(u16::from) == Some(404) && error_code(e) != Some("ContainerNotFound")
}

/// A failed request: authorization and a missing container need an operator; the rest (408, 429, 5xx, timeouts,
/// cut connections, …) may pass, and fail the job so that its queue retries it.
fn storage_error(action: &'static str, source: azure_core::Error) -> ArchiveError {
    let status = source.http_status().map(u16::from);
    let needs_operator = matches!(status, Some(401 | 403)) || error_code(&source) == Some("ContainerNotFound");
    ArchiveError::Storage {
        action,
        status,
        needs_operator,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_keep_every_id_in_its_own_segment() {
        let key = FileKey {
            call_id: "../..".into(),
            recording_id: "a/b%2Fc?d#e".into(),
            chunk_id: "é".repeat(300),
            kind: FileKind::Content {
                extension: "mp4".into(),
            },
        };
        let config = BlobConfig {
            service_uri: Url::parse("http://127.0.0.1:10000/devstoreaccount1").unwrap(),
            auth: BlobAuth::SharedKey {
                account: "devstoreaccount1".into(),
                key: crate::secret::Secret::new(crate::config::DEVELOPMENT_KEY),
            },
            container: "recordings".into(),
            create_container: false,
            access_tier: None,
        };
        let archive = BlobArchive::new(&config).unwrap();
        let url = Url::parse(&archive.location(&key)).unwrap();
        let segments: Vec<&str> = url.path_segments().unwrap().collect();
        assert_eq!(segments.len(), 6, "{url}");
        assert_eq!(&segments[..2], ["devstoreaccount1", "recordings"]);
        assert_eq!(segments[2], "%252E.%252F..", "{url}");
        assert_eq!(segments[3], "a%252Fb%25252Fc%253Fd%2523e");
        assert!(
            segments[4].starts_with("~") && segments[4].len() < 70,
            "a digest: {}",
            segments[4]
        );
        assert_eq!(segments[5], "content.mp4");
        assert!(url.query().is_none());
    }

    #[test]
    fn a_kept_key_signs_links_that_it_outlives_but_for_a_tenth_of_their_lifetime_at_most_an_hour() {
        let issued = time::macros::datetime!(2026-11-28 12:00 UTC);
        let expires = issued + DELEGATION_KEY_LIFETIME;
        let week = DELEGATION_KEY_LIFETIME;
        let minutes = |n| time::Duration::minutes(n);
        assert!(key_signs(expires, issued, week), "the week it was asked for");
        assert!(key_signs(expires, issued + minutes(60), week), "an hour later");
        assert!(
            !key_signs(expires, issued + minutes(61), week),
            "a link would end over an hour early"
        );
        let fifteen = minutes(15);
        assert!(key_signs(
            expires,
            expires - minutes(15) + time::Duration::seconds(90),
            fifteen
        ));
        assert!(!key_signs(
            expires,
            expires - minutes(15) + time::Duration::seconds(91),
            fifteen
        ));
        assert!(!key_signs(expires, expires, fifteen), "an expired key signs nothing");
    }

    #[test]
    fn a_blob_is_vouched_for_only_by_consistent_metadata() {
        let sha = "ab".repeat(32);
        let metadata = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let good = metadata(&[("sha256", &sha), ("bytes", "10")]);
        assert_eq!(
            verified("u", &good, Some(10)),
            Ok(ArchivedFile {
                location: "u".into(),
                bytes: 10,
                sha256: sha.clone(),
                source: None,
            })
        );
        let encoded = metadata(&[("sha256", &sha), ("bytes", "10"), ("source", "https://h%C3%A9/%25x")]);
        assert_eq!(
            verified("u", &encoded, Some(10)).unwrap().source.as_deref(),
            Some("https://hé/%x"),
            "the source as it was percent-encoded into the metadata"
        );
        assert!(verified("u", &good, Some(9)).unwrap_err().contains("holds 9 bytes"));
        assert!(verified("u", &metadata(&[("bytes", "10")]), Some(10)).is_err());
        assert!(verified("u", &metadata(&[("sha256", "xyz"), ("bytes", "10")]), Some(10)).is_err());
        assert!(verified("u", &metadata(&[("sha256", &sha)]), Some(10)).is_err());
    }
}
