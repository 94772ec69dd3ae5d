//! Archiving each recording chunk's files before ACS deletes them, 24 hours after the event that announced them.
//!
//! `RecordingEvent` queues one [`job::ArchiveJob`] per chunk; `ArchiveRecording` runs it with the [`archiver`]:
//! the chunk's metadata, then its content, are downloaded from ACS ([`acs`], signed, only from allowed
//! [`sources`]) into the [`Archive`] — Azure Blob Storage ([`blob`]) in production, the [`embedded`] folder on a
//! developer's machine — and the result is recorded
//! in the recording document's chunk (`archive`: archived, expired or failed). Every step can be repeated: a file is
//! resumed where an earlier attempt stopped, a complete file is never written twice, and the document's merge rule
//! keeps the best state whatever order results arrive in.

pub mod acs;
pub mod archiver;
pub mod blob;
pub mod embedded;
pub mod job;
pub mod sources;
pub mod sweep;

use std::sync::Arc;

use async_trait::async_trait;
use tracing::{info, warn};

use crate::config::{AcsConnection, ArchiveConfig, ArchiveLocation};
use crate::error::error_chain;
use crate::identity;
use crate::recording::ArchivedFile;
use crate::store::RecordingStore;

pub use archiver::{Archiver, JobOutcome};
pub use blob::BlobArchive;
pub use embedded::EmbeddedArchive;
pub use job::ArchiveJob;

/// Sets archival up as configured: the archive, and the ACS client signing as the connection says. A Blob Storage
/// archive whose container is missing, or that refuses the credential, stops here; one that cannot be reached yet
/// is only warned about — events are still stored meanwhile, and archive jobs retry until it is back.
pub async fn open(config: &ArchiveConfig, store: Arc<dyn RecordingStore>) -> Result<Archiver, SetupError> {
    let auth = match &config.acs {
        AcsConnection::Key { host, key } => acs::AcsAuth::Key(acs::hmac::HmacSigner::new(host, key)?),
        AcsConnection::ManagedIdentity { client_id } => {
            acs::AcsAuth::Token(identity::managed_identity(client_id.as_deref()).map_err(SetupError::Credential)?)
        }
        AcsConnection::DeveloperCredential => {
            acs::AcsAuth::Token(identity::developer().map_err(SetupError::Credential)?)
        }
    };
    let client = acs::AcsClient::new(auth, config.sources.clone())?;
    let archive: Arc<dyn Archive> = match &config.location {
        ArchiveLocation::Embedded { data_dir } => {
            let archive = EmbeddedArchive::open(data_dir)?;
            info!(archive = %archive.root().display(), "chunks are archived in the embedded archive");
            Arc::new(archive)
        }
        ArchiveLocation::Blob(blob) => {
            let archive = BlobArchive::new(blob)?;
            match archive.prepare(blob.create_container).await {
                Ok(()) => {}
                Err(e) if e.needs_operator() => return Err(SetupError::Archive(e)),
                Err(e) => warn!(
                    container = %archive.container_url(),
                    error = %error_chain(&e),
                    "cannot reach the archive container yet; archive jobs fail and retry until it answers"
                ),
            }
            info!(container = %archive.container_url(), "chunks are archived in Blob Storage");
            Arc::new(archive)
        }
    };
    Ok(Archiver::new(
        store,
        archive,
        Arc::new(client),
        config.delete_after_archive,
    ))
}

/// An HTTP client for moving files: the bytes exactly as stored, never decompressed on the way, over connections
/// that must open within `connect` and never stay silent longer than `read`. ACS downloads and Blob Storage both use
/// one.
fn file_transfer_client(connect: std::time::Duration, read: std::time::Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_gzip()
        .no_deflate()
        .no_brotli()
        .no_zstd()
        .connect_timeout(connect)
        .read_timeout(read)
}

/// Why archival could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Key(#[from] acs::hmac::InvalidKey),
    #[error("cannot sign in to ACS: {0}")]
    Credential(String),
    #[error("cannot make the HTTP client for ACS")]
    Client(#[from] acs::DownloadError),
    #[error("cannot open the archive")]
    Archive(#[from] ArchiveError),
}

/// One file of a chunk in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    pub call_id: String,
    pub recording_id: String,
    pub chunk_id: String,
    pub kind: FileKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// The recording itself, with the extension of its format (`mp4`, `mp3`, `wav`).
    Content { extension: String },
    /// ACS's metadata JSON for the chunk.
    Metadata,
}

impl FileKind {
    /// The file's media type, as it is stored and served.
    pub fn content_type(&self) -> &'static str {
        match self {
            FileKind::Metadata => "application/json",
            FileKind::Content { extension } => match extension.as_str() {
                "mp4" => "video/mp4",
                "mp3" => "audio/mpeg",
                "wav" => "audio/wav",
                _ => "application/octet-stream",
            },
        }
    }
}

impl FileKey {
    pub fn content(job: &ArchiveJob) -> Self {
        Self::of(
            job,
            FileKind::Content {
                extension: job.content_extension(),
            },
        )
    }

    pub fn metadata(job: &ArchiveJob) -> Self {
        Self::of(job, FileKind::Metadata)
    }

    fn of(job: &ArchiveJob, kind: FileKind) -> Self {
        Self {
            call_id: job.call_id.clone(),
            recording_id: job.recording_document_id.clone(),
            chunk_id: job.chunk_document_id.clone(),
            kind,
        }
    }
}

/// Where archived files are kept. Every implementation passes the archive contract tests
/// (`tests/archive_contract.rs`): resumable writes, one whole file however many writers race for it, a file complete
/// under its final name or not there at all, and no name an id can turn into another.
#[async_trait]
pub trait Archive: Send + Sync {
    /// Where the file is kept, as the URL the recording document records.
    fn location(&self, key: &FileKey) -> String;

    /// The file, when an earlier attempt archived it whole.
    async fn existing(&self, key: &FileKey) -> Result<Option<ArchivedFile>, ArchiveError>;

    /// Starts writing the file, or resumes an earlier attempt's bytes — only bytes an attempt at the same `source`
    /// (the URL they come from) kept: bytes of another source are never continued. Of two writers of one file at
    /// once, at most one commits: the other gets [`ArchiveError::Busy`] here (the embedded archive's lock) or at its
    /// commit (Blob Storage's conditional commit), unless the file committed holds exactly its bytes.
    async fn writer(&self, key: &FileKey, source: &str) -> Result<Box<dyn FileWriter>, ArchiveError>;

    /// A link that reads the file with no other credential: for Blob Storage a read-only URL that works until
    /// `lifetime` from now (a shared access signature); for the embedded archive the file's `file://` URL, for use on
    /// this machine only, which never expires.
    async fn read_link(&self, key: &FileKey, request: &LinkRequest) -> Result<ReadLink, ArchiveError>;

    /// Removes the file and the bytes unfinished attempts kept for it (the embedded archive's partial files, Blob
    /// Storage's staged blocks). Returns whether a whole file was there. For a job whose recording was erased.
    async fn remove(&self, key: &FileKey) -> Result<bool, ArchiveError>;

    /// Removes every file of a call, or of one of its recordings (`recording_id` being the document's id), and
    /// every byte unfinished attempts kept for them; returns how many whole files there were. `Ok` only when
    /// nothing is left, committed or not: a writer still writing there makes it [`ArchiveError::Busy`].
    async fn erase(&self, call_id: &str, recording_id: Option<&str>) -> Result<u64, ArchiveError>;
}

/// What a read link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    pub lifetime: std::time::Duration,
    /// The file name a browser saves the download as (`Content-Disposition: attachment`).
    pub file_name: String,
    /// The download's `Content-Type`.
    pub content_type: String,
}

impl LinkRequest {
    /// The `Content-Disposition` a download gets: an attachment saved as `file_name`, as RFC 6266 writes it. No
    /// control character gets through (each becomes `_`: a CR or LF would end the header); a name that is not plain
    /// ASCII gets an ASCII `filename` (each other character `_`) and the exact name as `filename*=UTF-8''…`
    /// (RFC 8187), which browsers prefer.
    pub fn content_disposition(&self) -> String {
        let name: String = self
            .file_name
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        let plain = |c: char| c.is_ascii() && !matches!(c, '"' | '\\');
        let fallback: String = name.chars().map(|c| if plain(c) { c } else { '_' }).collect();
        if name.chars().all(plain) {
            return format!("attachment; filename=\"{fallback}\"");
        }
        let mut encoded = String::with_capacity(name.len() * 3);
        for byte in name.bytes() {
            // RFC 8187's attr-char: letters, digits and these are written as they are.
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

/// A link to an archived file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLink {
    pub url: url::Url,
    /// When the link stops working; `None` for a link that does not expire (the embedded archive's).
    pub expires_on: Option<time::OffsetDateTime>,
}

/// A file being written. Bytes written are kept for a later attempt even when this one fails; only
/// [`FileWriter::commit`] makes the file appear under its name.
#[async_trait]
pub trait FileWriter: Send {
    /// Bytes kept so far (from earlier attempts, then this one): where the download resumes.
    fn offset(&self) -> u64;

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ArchiveError>;

    /// Discards every byte kept: the download starts over (the server ignored the range asked for).
    async fn restart(&mut self) -> Result<(), ArchiveError>;

    /// Completes the file if it holds exactly `expected_bytes` (when known); returns its size and SHA-256.
    async fn commit(self: Box<Self>, expected_bytes: Option<u64>) -> Result<ArchivedFile, ArchiveError>;
}

/// Why the archive could not keep a file. The job fails and runs again later; [`ArchiveError::needs_operator`] says
/// whether someone must fix something before a retry can succeed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another worker is archiving {0} right now")]
    Busy(String),
    #[error("{what} holds {actual} bytes, not the {expected} ACS announced")]
    WrongSize { what: String, expected: u64, actual: u64 },
    /// A Blob Storage request failed.
    #[error("cannot {action} in Blob Storage{}", status.map(|s| format!(" (it answered {s})")).unwrap_or_default())]
    Storage {
        action: &'static str,
        status: Option<u16>,
        /// Authorization (401, 403) or a missing container: retries alone will not help.
        needs_operator: bool,
        #[source]
        source: azure_core::Error,
    },
    #[error(
        "the archive container {container} does not exist; create it (the app's identity needs the Storage Blob \
         Data Contributor role on it), or set RECORDINGS_CREATE_IF_NOT_EXISTS=true"
    )]
    MissingContainer { container: String },
    /// A blob under a file's name that the archive cannot vouch for: it is left alone for an operator to check.
    #[error("{location} is in the archive but cannot be vouched for: {problem}")]
    Unverified { location: String, problem: String },
    /// The archive's client could not be made (a credential, the HTTP client).
    #[error("cannot set the archive up: {0}")]
    Setup(String),
}

impl ArchiveError {
    /// True when someone must fix a credential, a role, the container or a blob before a retry can succeed.
    pub fn needs_operator(&self) -> bool {
        match self {
            ArchiveError::Storage { needs_operator, .. } => *needs_operator,
            ArchiveError::MissingContainer { .. } | ArchiveError::Unverified { .. } | ArchiveError::Setup(_) => true,
            ArchiveError::Io { .. } | ArchiveError::Busy(_) | ArchiveError::WrongSize { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(file_name: &str) -> String {
        LinkRequest {
            lifetime: std::time::Duration::from_secs(900),
            file_name: file_name.to_owned(),
            content_type: "video/mp4".to_owned(),
        }
        .content_disposition()
    }

    #[test]
    fn a_plain_download_name_is_a_quoted_filename() {
        assert_eq!(disposition("rec-1-0.mp4"), "attachment; filename=\"rec-1-0.mp4\"");
    }

    #[test]
    fn no_control_character_reaches_the_header_and_other_names_get_filename_star() {
        assert_eq!(
            disposition("rec\r\nSet-Cookie: a=b\t-0.mp4"),
            "attachment; filename=\"rec__Set-Cookie: a=b_-0.mp4\"",
        );
        assert_eq!(
            disposition("réc \"€\\ 1-0.mp4"),
            "attachment; filename=\"r_c ___ 1-0.mp4\"; filename*=UTF-8''r%C3%A9c%20%22%E2%82%AC%5C%201-0.mp4"
        );
        assert_eq!(
            disposition("é\u{85}\n.json"),
            "attachment; filename=\"___.json\"; filename*=UTF-8''%C3%A9__.json",
            "C1 controls too"
        );
        for name in ["a\rb", "\u{7f}x", "x\u{2028}y"] {
            let header = disposition(name);
            assert!(
                header.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{name:?}: {header:?} is printable ASCII"
            );
        }
    }
}
