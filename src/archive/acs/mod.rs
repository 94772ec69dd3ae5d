//! Downloading (and deleting) a chunk's files at ACS, signed as ACS requires: HMAC with the resource's access key
//! ([`hmac`]), or a Microsoft Entra ID token.
//!
//! Downloads stream into an archive [`FileWriter`], so memory stays bounded whatever the file's size; they resume
//! with `Range` where an earlier attempt stopped, and check the bytes received against `Content-Length` or
//! `Content-Range`. A 0-byte or short body is a failure to retry, never a file. Every URL — the event's, and every
//! redirect's — must be an allowed source before anything is sent to it, and the credential only ever goes to the
//! host the event named.

pub mod hmac;

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode, header};
use url::Url;

use super::sources::ArchiveSources;
use super::{ArchiveError, FileWriter};
use hmac::HmacSigner;

/// The Microsoft Entra ID scope of ACS's data plane (the double slash is ACS's own).
pub const TOKEN_SCOPE: &str = "https://communication.azure.com//.default";

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// Requests one download sends before failing the job, whatever ACS answers: resumes after a connection broke
/// with bytes received, and starts over after a range ACS ignored or misplaced.
const ROUNDS: usize = 4;
/// How long a connection may stay silent before it counts as broken.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How requests to ACS are signed.
#[derive(Clone)]
pub enum AcsAuth {
    Key(HmacSigner),
    Token(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for AcsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcsAuth::Key(signer) => f.debug_tuple("Key").field(signer).finish(),
            AcsAuth::Token(_) => f.write_str("Token"),
        }
    }
}

/// Why a download or a deletion at ACS did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0} is not in RECORDINGS_ARCHIVE_SOURCES; it is never requested")]
    NotAllowed(String),
    #[error("{0:?} is not a URL")]
    InvalidUrl(String),
    #[error("ACS answered {status}: the files are gone")]
    Gone { status: u16 },
    /// An answer from a host a redirect led to, not from ACS's own: it says nothing about the files.
    #[error("{origin}, where ACS redirected the download, answered {status}")]
    Elsewhere { origin: String, status: u16 },
    /// A redirect to a host that is not an allowed source; only its origin is kept, never its path or query.
    #[error("ACS redirected the download to {origin}, which is not in RECORDINGS_ARCHIVE_SOURCES; it was not followed")]
    RedirectRefused { origin: String },
    #[error("ACS refused the credential ({status}); check AcsConnection and, with Entra ID, the app's role")]
    Unauthorized { status: u16 },
    #[error("ACS answered {status}")]
    Status { status: u16 },
    #[error("cannot reach ACS")]
    Transport(#[source] reqwest::Error),
    #[error("ACS sent an empty body")]
    Empty,
    #[error("ACS sent {received} of the {expected} bytes it announced")]
    Short { received: u64, expected: u64 },
    /// A file is complete only when ACS stated its length and exactly that many bytes arrived.
    #[error("ACS did not state the file's total length ({0}), so a complete file cannot be told from a cut one")]
    UnknownLength(&'static str),
    #[error("ACS answered a range request for bytes from {asked} with bytes from {got}")]
    WrongRange { asked: u64, got: u64 },
    #[error("ACS's answers did not complete the file in {ROUNDS} requests")]
    TooManyRounds,
    #[error("ACS redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("cannot get a Microsoft Entra ID token for ACS: {0}")]
    Credential(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl DownloadError {
    /// True when retrying cannot help: the URL is not one the handler may request.
    pub fn is_refusal(&self) -> bool {
        matches!(self, DownloadError::NotAllowed(_) | DownloadError::InvalidUrl(_))
    }

    /// True when the error is ACS's own answer about the file — what, once ACS's 24-hour deadline has passed, is
    /// taken as the files being gone. Errors on this side (the archive, a credential, a refused redirect, a
    /// connection that could not be made) are never taken so.
    pub fn is_from_acs(&self) -> bool {
        matches!(
            self,
            DownloadError::Gone { .. }
                | DownloadError::Status { .. }
                | DownloadError::Empty
                | DownloadError::Short { .. }
                | DownloadError::UnknownLength(_)
                | DownloadError::WrongRange { .. }
                | DownloadError::TooManyRounds
                | DownloadError::TooManyRedirects
        )
    }

    /// True when someone must fix a credential or a role first (at ACS, or at the archive the bytes go to).
    pub fn needs_operator(&self) -> bool {
        match self {
            DownloadError::Unauthorized { .. } | DownloadError::Credential(_) => true,
            DownloadError::Archive(e) => e.needs_operator(),
            _ => false,
        }
    }
}

/// Where a chunk's files come from, as the archiver sees it: ACS's recording storage ([`AcsClient`]), or a stand-in
/// in tests of the archiver itself.
#[async_trait::async_trait]
pub trait RecordingFiles: Send + Sync {
    /// Whether a URL may be requested at all.
    fn allows(&self, url: &str) -> bool;

    /// Downloads `url` into `writer`, resuming after the bytes it already holds; returns the file's size, as the
    /// source stated it and as many bytes arrived.
    async fn download(&self, url: &str, writer: &mut dyn FileWriter) -> Result<u64, DownloadError>;

    /// Deletes the files at `url`; files already gone count as deleted.
    async fn delete(&self, url: &str) -> Result<(), DownloadError>;
}

#[async_trait::async_trait]
impl RecordingFiles for AcsClient {
    fn allows(&self, url: &str) -> bool {
        AcsClient::allows(self, url)
    }

    async fn download(&self, url: &str, writer: &mut dyn FileWriter) -> Result<u64, DownloadError> {
        AcsClient::download(self, url, writer).await
    }

    async fn delete(&self, url: &str) -> Result<(), DownloadError> {
        AcsClient::delete(self, url).await
    }
}

/// The one HTTP client for ACS.
#[derive(Debug, Clone)]
pub struct AcsClient {
    http: reqwest::Client,
    auth: AcsAuth,
    sources: ArchiveSources,
}

impl AcsClient {
    pub fn new(auth: AcsAuth, sources: ArchiveSources) -> Result<Self, DownloadError> {
        let http = super::file_transfer_client(CONNECT_TIMEOUT, READ_TIMEOUT)
            // Redirects are followed by hand, to check each target and keep the credential at home.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(DownloadError::Transport)?;
        Ok(Self { http, auth, sources })
    }

    /// Whether a URL may be requested at all.
    pub fn allows(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|url| self.sources.allows(&url))
    }

    /// Downloads `url` into `writer`, resuming after the bytes it already holds. Returns the file's size: a file is
    /// complete only when ACS stated its total length (`Content-Length` on 200, a numeric total in `Content-Range` on
    /// 206) and exactly that many bytes arrived.
    pub async fn download(&self, url: &str, writer: &mut dyn FileWriter) -> Result<u64, DownloadError> {
        let url = self.check(url)?;
        let mut last = DownloadError::TooManyRounds;
        for _ in 0..ROUNDS {
            let offset = writer.offset();
            let response = self.send(Method::GET, &url, (offset > 0).then_some(offset)).await?;
            let total = match response.status() {
                StatusCode::OK => {
                    let total = response
                        .content_length()
                        .ok_or(DownloadError::UnknownLength("a 200 without Content-Length"))?;
                    if offset > 0 {
                        writer.restart().await?; // the range was ignored: the whole file follows
                    }
                    total
                }
                StatusCode::PARTIAL_CONTENT => match content_range(&response) {
                    Some((start, Some(total))) if start == offset => total,
                    Some((_, None)) => return Err(DownloadError::UnknownLength("a Content-Range total of *")),
                    Some((start, Some(_))) => {
                        writer.restart().await?;
                        last = DownloadError::WrongRange {
                            asked: offset,
                            got: start,
                        };
                        continue;
                    }
                    None => {
                        writer.restart().await?;
                        last = DownloadError::UnknownLength("a 206 without a readable Content-Range");
                        continue;
                    }
                },
                StatusCode::RANGE_NOT_SATISFIABLE => match content_range_total(&response) {
                    Some(total) if total == offset && total > 0 => return Ok(total),
                    _ => {
                        writer.restart().await?;
                        last = DownloadError::Status { status: 416 };
                        continue;
                    }
                },
                _ => return Err(response_error(&response, &url)),
            };
            let mut body = response.bytes_stream();
            let mut broken = None;
            while let Some(piece) = body.next().await {
                match piece {
                    Ok(bytes) => writer.write(&bytes).await?,
                    Err(e) => {
                        broken = Some(DownloadError::Transport(e));
                        break;
                    }
                }
            }
            let have = writer.offset();
            last = match broken {
                None if have == total && total > 0 => return Ok(total),
                None if have == 0 => DownloadError::Empty,
                None => DownloadError::Short {
                    received: have,
                    expected: total,
                },
                Some(error) => error,
            };
            // A broken transfer that made progress resumes at once; anything else waits for the job's next try.
            if have <= offset || have >= total {
                return Err(last);
            }
        }
        Err(last)
    }

    /// Deletes the chunk's files at ACS; files already gone count as deleted.
    pub async fn delete(&self, url: &str) -> Result<(), DownloadError> {
        let url = self.check(url)?;
        let response = self.send(Method::DELETE, &url, None).await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE if response.url().origin() == url.origin() => Ok(()),
            _ => Err(response_error(&response, &url)),
        }
    }

    fn check(&self, url: &str) -> Result<Url, DownloadError> {
        let parsed = Url::parse(url).map_err(|_| DownloadError::InvalidUrl(url.to_owned()))?;
        if !self.sources.allows(&parsed) {
            return Err(DownloadError::NotAllowed(url.to_owned()));
        }
        Ok(parsed)
    }

    /// Sends one request, following redirects to allowed sources only; the credential goes only to the event's
    /// own host.
    async fn send(&self, method: Method, url: &Url, from: Option<u64>) -> Result<reqwest::Response, DownloadError> {
        let home = (url.host_str().map(str::to_ascii_lowercase), url.port_or_known_default());
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            if !self.sources.allows(&current) {
                return Err(DownloadError::RedirectRefused {
                    origin: current.origin().ascii_serialization(),
                });
            }
            let mut request = self.http.request(method.clone(), current.clone());
            if let Some(from) = from {
                request = request.header(header::RANGE, format!("bytes={from}-"));
            }
            let at_home = (
                current.host_str().map(str::to_ascii_lowercase),
                current.port_or_known_default(),
            ) == home;
            if at_home {
                request = self.sign(request, &method, &current).await?;
            }
            let response = request.send().await.map_err(DownloadError::Transport)?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let Some(location) = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| current.join(l).ok())
            else {
                return Err(response_error(&response, url));
            };
            current = location;
        }
        Err(DownloadError::TooManyRedirects)
    }

    async fn sign(
        &self,
        request: reqwest::RequestBuilder,
        method: &Method,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder, DownloadError> {
        match &self.auth {
            AcsAuth::Key(signer) => {
                let date = httpdate::fmt_http_date(std::time::SystemTime::now());
                let signed = signer.sign(method.as_str(), url, b"", &date);
                Ok(request
                    .header("x-ms-date", signed.date)
                    .header("x-ms-content-sha256", signed.content_sha256)
                    .header("x-ms-host", signed.host)
                    .header(header::AUTHORIZATION, signed.authorization))
            }
            AcsAuth::Token(credential) => {
                let token = credential
                    .get_token(&[TOKEN_SCOPE], None)
                    .await
                    .map_err(|e| DownloadError::Credential(e.to_string()))?;
                Ok(request.bearer_auth(token.token.secret()))
            }
        }
    }
}

/// The error an answer other than the file means. 404 and 410 mean the files are gone only when ACS's own host
/// says so: a host a redirect led to (and that got no credential) speaks only for itself.
fn response_error(response: &reqwest::Response, home: &Url) -> DownloadError {
    let status = response.status().as_u16();
    let origin = response.url().origin();
    match status {
        404 | 410 if origin == home.origin() => DownloadError::Gone { status },
        404 | 410 => DownloadError::Elsewhere {
            origin: origin.ascii_serialization(),
            status,
        },
        401 | 403 => DownloadError::Unauthorized { status },
        _ => DownloadError::Status { status },
    }
}

/// `Content-Range: bytes START-END/TOTAL` → (start, total); total is `None` for `*`.
fn content_range(response: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let value = response.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// The total of `Content-Range: bytes */TOTAL`, as a 416 answer carries it.
fn content_range_total(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    value.strip_prefix("bytes */")?.trim().parse().ok()
}

/// The URL to delete a chunk's files at, when `delete` names the object both files lie under, on their host:
/// ACS's `…/v1/objects/{id}` beside `…/v1/objects/{id}/content/{file}`. An event's `deleteLocation` comes from
/// outside; anything else — another host, another object, a parent of many — is never sent a `DELETE`, and the
/// error says why.
pub fn delete_target(content: &str, metadata: &str, delete: &str) -> Result<Url, String> {
    let parse = |field: &str, url: &str| {
        Url::parse(url).map_err(|_| format!("the chunk's {field} is not a URL, so nothing was deleted at ACS"))
    };
    let (content, metadata, target) = (
        parse("contentLocation", content)?,
        parse("metadataLocation", metadata)?,
        parse("deleteLocation", delete)?,
    );
    if target.origin() != content.origin() || target.origin() != metadata.origin() {
        return Err(format!(
            "the chunk's deleteLocation is on {}, not on the host its files were archived from ({}), so nothing \
             was deleted at ACS",
            target.origin().ascii_serialization(),
            content.origin().ascii_serialization()
        ));
    }
    let object = target.path().trim_end_matches('/');
    let lies_under = |file: &Url| {
        file.path()
            .strip_prefix(object)
            .and_then(|rest| rest.strip_prefix("/content/"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    };
    if object.is_empty() || target.query().is_some() || !lies_under(&content) || !lies_under(&metadata) {
        return Err(
            "the chunk's deleteLocation is not the object its archived files lie under (…/v1/objects/{id} \
                    beside …/v1/objects/{id}/content/…), so nothing was deleted at ACS"
                .to_owned(),
        );
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "https://us-storage.asm.skype.com";

    fn files(object: &str) -> (String, String) {
        (
            format!("{HOST}/v1/objects/{object}/content/video"),
            format!("{HOST}/v1/objects/{object}/content/acsmetadata"),
        )
    }

    #[test]
    fn only_the_object_both_files_lie_under_on_their_host_is_deleted() {
        let (content, metadata) = files("A");
        let own = format!("{HOST}/v1/objects/A");
        assert_eq!(delete_target(&content, &metadata, &own).unwrap().as_str(), own);
        assert!(delete_target(&content, &metadata, &format!("{own}/")).is_ok());
        for foreign in [
            format!("{HOST}/v1/objects/B"), // another recording's object
            format!("{HOST}/v1/objects"),   // a parent of every object
            format!("{HOST}/v1/objects/"),
            format!("{HOST}/v1"),
            format!("{HOST}/"),
            format!("{HOST}/v1/objects/A/content/video"), // one file, not the object
            format!("{HOST}/v1/objects/A?recursive=true"),
            "https://eu-storage.asm.skype.com/v1/objects/A".to_owned(), // another host
            "http://us-storage.asm.skype.com/v1/objects/A".to_owned(),  // another scheme
            "https://us-storage.asm.skype.com:8443/v1/objects/A".to_owned(),
            format!("{HOST}/v1/objects/AB"),
            "not a url".to_owned(),
        ] {
            let refused = delete_target(&content, &metadata, &foreign);
            assert!(refused.is_err(), "{foreign} must not be deleted");
            assert!(refused.unwrap_err().contains("nothing was deleted"));
        }
        let (_, other_metadata) = files("B");
        assert!(
            delete_target(&content, &other_metadata, &own).is_err(),
            "the files of two objects have no one object to delete"
        );
    }

    #[test]
    fn files_on_two_hosts_or_not_directly_under_content_have_no_object_to_delete() {
        let own = format!("{HOST}/v1/objects/A");
        let (content, metadata) = files("A");
        let elsewhere = metadata.replace("us-storage", "eu-storage");
        assert!(
            delete_target(&content, &elsewhere, &own).is_err(),
            "the metadata on another host than the object"
        );
        for file in [
            format!("{HOST}/v1/objects/A/content/"),           // no file name
            format!("{HOST}/v1/objects/A/content/more/video"), // deeper than the object's files
        ] {
            assert!(delete_target(&file, &metadata, &own).is_err(), "{file}");
            assert!(delete_target(&content, &file, &own).is_err(), "{file}");
        }
    }
}
