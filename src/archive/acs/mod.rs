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
/// Times one download resumes at once after its connection broke with bytes received, before failing the job.
const RESUMES: usize = 3;
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

    /// True when someone must fix a credential or a role first (at ACS, or at the archive the bytes go to).
    pub fn needs_operator(&self) -> bool {
        match self {
            DownloadError::Unauthorized { .. } | DownloadError::Credential(_) => true,
            DownloadError::Archive(e) => e.needs_operator(),
            _ => false,
        }
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

    /// Downloads `url` into `writer`, resuming after the bytes it already holds. Returns the file's size as ACS
    /// announced it, when it did.
    pub async fn download(&self, url: &str, writer: &mut dyn FileWriter) -> Result<Option<u64>, DownloadError> {
        let url = self.check(url)?;
        let mut resumes = 0;
        loop {
            let offset = writer.offset();
            let response = self.send(Method::GET, &url, (offset > 0).then_some(offset)).await?;
            let status = response.status();
            let total = match status {
                StatusCode::OK => {
                    if offset > 0 {
                        writer.restart().await?; // the range was ignored: the whole file follows
                    }
                    response.content_length()
                }
                StatusCode::PARTIAL_CONTENT => match content_range(&response) {
                    Some((start, total)) if start == offset => total,
                    _ => {
                        writer.restart().await?;
                        continue;
                    }
                },
                StatusCode::RANGE_NOT_SATISFIABLE => match content_range_total(&response) {
                    Some(total) if total == offset && total > 0 => return Ok(Some(total)),
                    _ => {
                        writer.restart().await?;
                        resumes += 1;
                        if resumes > RESUMES {
                            return Err(DownloadError::Status { status: 416 });
                        }
                        continue;
                    }
                },
                other => return Err(status_error(other)),
            };
            let before = writer.offset();
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
            let error = match (broken, total) {
                (None, _) if have == 0 => DownloadError::Empty,
                (None, Some(total)) if have == total => return Ok(Some(total)),
                (None, None) => return Ok(None),
                (None, Some(total)) => DownloadError::Short {
                    received: have,
                    expected: total,
                },
                (Some(error), _) => error,
            };
            // A broken transfer that made progress resumes at once; anything else waits for the job's next try.
            if have > before && resumes < RESUMES {
                resumes += 1;
                continue;
            }
            return Err(error);
        }
    }

    /// Deletes the chunk's files at ACS; files already gone count as deleted.
    pub async fn delete(&self, url: &str) -> Result<(), DownloadError> {
        let url = self.check(url)?;
        let response = self.send(Method::DELETE, &url, None).await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            other => Err(status_error(other)),
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
                return Err(DownloadError::NotAllowed(current.to_string()));
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
                return Err(status_error(response.status()));
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

fn status_error(status: StatusCode) -> DownloadError {
    let status = status.as_u16();
    match status {
        404 | 410 => DownloadError::Gone { status },
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
