//! Azure Communication Services' recording storage, for tests: a loopback server that serves recording chunks'
//! content and metadata and deletes them, checks every request's HMAC-SHA256 signature (or Entra ID bearer token)
//! as ACS does, and misbehaves on demand; and a [`Trap`], a server that only records what reaches it, to prove that
//! a request (or a credential) never went somewhere.
//!
//! Each server runs in its own thread with its own tokio runtime, so that sync tests, async tests of any flavour and
//! benches can all use it; dropping it stops it and releases its port.
//!
//! A chunk's content is generated from its document id and the offset asked for, so a chunk of any size costs no
//! memory and every answer is streamed in [`FRAME`]-sized pieces; tests compare against [`ContentReader`] or the
//! `*_sha256_hex` helpers.

mod files;
mod reply;
pub(crate) mod serve;
mod signature;
mod trap;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::{Method, Request};

pub use files::{ContentReader, RESOURCE_ID, metadata_json, sha256_hex};
pub use signature::{
    AuthError, DATE_TOLERANCE, EMPTY_BODY_SHA256, SIGNED_HEADERS, content_sha256, expected_signature, hmac_headers,
    string_to_sign, verify,
};
pub use trap::{TRAP_BODY, Trap, TrapRecord};

use files::Generator;
use reply::{Ending, FileHead, Ranged, Reply, Source, Stated, Transfer, parse_range};
use serve::{Answer, Background, Hangup};

/// The access key of the signature vectors (`tests/fixtures/acs-hmac.json`): base64 of the bytes 0..63.
pub const DEFAULT_ACCESS_KEY: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
/// The ACS endpoint host of the signature vectors.
pub const DEFAULT_ACS_HOST: &str = "contoso-acs.communication.azure.com";
/// The size of the pieces every file is streamed in.
pub const FRAME: usize = 64 * 1024;

/// The resource the server stands for.
#[derive(Debug, Clone)]
pub struct AcsOptions {
    /// The resource's access key, base64 as the portal shows it; requests are signed with its decoded bytes.
    pub access_key: String,
    /// The ACS endpoint host (`contoso-acs.communication.azure.com`): what `x-ms-host` must say and what the string
    /// to sign names, whatever host the request was sent to.
    pub acs_host: String,
    /// When set, `Authorization: Bearer <token>` (Microsoft Entra ID) is accepted too.
    pub bearer_token: Option<String>,
}

impl Default for AcsOptions {
    fn default() -> Self {
        Self {
            access_key: DEFAULT_ACCESS_KEY.to_owned(),
            acs_host: DEFAULT_ACS_HOST.to_owned(),
            bearer_token: None,
        }
    }
}

/// Where a chunk's files are, on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkUrls {
    pub content: String,
    pub metadata: String,
    pub delete: String,
}

/// Which request of a chunk a fault is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `GET …/content/video`.
    Content,
    /// `GET …/content/acsmetadata`.
    Metadata,
    /// `DELETE /v1/objects/{id}`.
    Delete,
}

/// A misbehaviour, consumed by one request that would otherwise have been served: requests refused (401) or
/// answered 404/410/416 leave it queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a JSON error body (and `Retry-After: 1` for 429 and 503).
    Status(u16),
    /// Answer this status with `Retry-After: seconds`.
    RetryAfter { status: u16, seconds: u64 },
    /// Send the headers promising the full length, then this many bytes, then reset the connection. A DELETE is
    /// done, then its connection reset without an answer.
    CutAfter(u64),
    /// Send the headers promising the full length, then this many bytes, then close the connection cleanly. A DELETE
    /// is done, then its connection closed without an answer.
    ShortBody(u64),
    /// 200 with `Content-Length: 0`: ACS's known empty first answer after a while idle.
    EmptyBody,
    /// Serve normally, sleeping between frames (a DELETE sleeps once before answering).
    Slow { delay_per_frame: Duration },
    /// 302 to this `Location`.
    Redirect(String),
    /// Serve the first this-many bytes without `Content-Length` (chunked), ending cleanly: a body whose length
    /// no header states.
    UnstatedLength(u64),
    /// 206 with `Content-Range: bytes START-END/*` for the first this-many bytes of what was asked: a part of a
    /// file whose total no header states.
    UnknownTotal(u64),
    /// Send the headers and the first frame, then hold the rest until the gate opens: a download a test can see in
    /// progress for as long as it needs.
    Held(Gate),
}

impl Fault {
    /// The fault's kind, for tallies: `503`, `500` (any other status is `status`), `retry-after`, `cut`, `short`,
    /// `empty`, `slow`, `redirect`, `held`, `unstated-length`, `unknown-total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Status(503) => "503",
            Fault::Status(500) => "500",
            Fault::Status(_) => "status",
            Fault::RetryAfter { .. } => "retry-after",
            Fault::CutAfter(_) => "cut",
            Fault::ShortBody(_) => "short",
            Fault::EmptyBody => "empty",
            Fault::Slow { .. } => "slow",
            Fault::Redirect(_) => "redirect",
            Fault::Held(_) => "held",
            Fault::UnstatedLength(_) => "unstated-length",
            Fault::UnknownTotal(_) => "unknown-total",
        }
    }
}

/// Holds [`Fault::Held`] transfers until opened; every transfer it holds then goes on.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    pub fn open(&self) {
        self.0.close();
    }

    /// Returns once the gate is open.
    pub(crate) async fn passed(&self) {
        // A semaphore without permits: acquiring fails, and so returns, only once it is closed.
        let _ = self.0.acquire().await;
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

/// One request the server answered, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The path with its query, as requested.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// Whether an `Authorization` header was sent, whatever it said.
    pub has_authorization: bool,
    pub x_ms_host: Option<String>,
    /// The status answered; `None` when the connection was dropped without an answer (a faulted DELETE).
    pub status: Option<u16>,
}

/// ACS's recording storage on a loopback port; stopped on drop.
pub struct AcsServer {
    shared: Arc<Shared>,
    server: Background,
}

struct Shared {
    options: AcsOptions,
    state: Mutex<State>,
    /// File bodies being sent right now.
    downloads: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Default)]
struct State {
    chunks: HashMap<String, Chunk>,
    requests: Vec<RequestRecord>,
}

struct Chunk {
    content_len: u64,
    generator: Generator,
    metadata: Arc<[u8]>,
    faults: HashMap<FileKind, VecDeque<Fault>>,
    /// The kind of each fault that shaped an answer, in order.
    faults_served: Vec<&'static str>,
    deleted: bool,
    /// Set once the recording has expired or is gone: every request then answers 404 or 410.
    ended: Option<End>,
    /// The content's hash, once computed: a large chunk takes a while to hash.
    content_sha256_hex: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Expired,
    Gone,
}

impl AcsServer {
    /// Starts a server for the resource `options` describes; panics on an access key that is not base64.
    pub fn start(options: AcsOptions) -> AcsServer {
        assert!(
            BASE64.decode(&options.access_key).is_ok(),
            "the access key must be base64"
        );
        let shared = Arc::new(Shared {
            options,
            state: Mutex::default(),
            downloads: Arc::default(),
        });
        let handler = shared.clone();
        let server = Background::start("acs-server", move |request, hangup| {
            answer(handler.clone(), request, hangup)
        });
        AcsServer { shared, server }
    }

    pub fn port(&self) -> u16 {
        self.server.port.0
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    pub fn options(&self) -> &AcsOptions {
        &self.shared.options
    }

    /// Adds a chunk whose content is `content_bytes` long (any size: it is generated as it is sent), replacing any
    /// chunk of that id with its faults and deletion.
    pub fn add_chunk(&self, document_id: &str, content_bytes: u64) -> ChunkUrls {
        let chunk = Chunk {
            content_len: content_bytes,
            generator: Generator::new(document_id),
            metadata: metadata_json(document_id).into(),
            faults: HashMap::new(),
            faults_served: Vec::new(),
            deleted: false,
            ended: None,
            content_sha256_hex: None,
        };
        self.state().chunks.insert(document_id.to_owned(), chunk);
        let object = format!("{}/v1/objects/{document_id}", self.base_url());
        ChunkUrls {
            content: format!("{object}/content/video"),
            metadata: format!("{object}/content/acsmetadata"),
            delete: object,
        }
    }

    /// Queues a fault for the next request of this chunk's `file` that would have been served; faults queued for
    /// the same file are consumed in order.
    pub fn inject(&self, document_id: &str, file: FileKind, fault: Fault) {
        self.with_chunk(document_id, |chunk| {
            chunk.faults.entry(file).or_default().push_back(fault)
        });
    }

    /// From now on every request for this chunk answers 404, as ACS does once a recording has expired.
    pub fn expire(&self, document_id: &str) {
        self.with_chunk(document_id, |chunk| chunk.ended = Some(End::Expired));
    }

    /// From now on every request for this chunk answers 410.
    pub fn gone(&self, document_id: &str) {
        self.with_chunk(document_id, |chunk| chunk.ended = Some(End::Gone));
    }

    /// Whether a DELETE of this chunk has been done.
    pub fn deleted(&self, document_id: &str) -> bool {
        self.with_chunk(document_id, |chunk| chunk.deleted)
    }

    /// How many file bodies are being sent right now: a download in flight.
    pub fn downloads_in_flight(&self) -> usize {
        self.shared.downloads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many injected faults shaped an answer so far, by [`Fault::kind`]; a fault still queued is not counted.
    pub fn faults_served(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut served = std::collections::BTreeMap::new();
        for chunk in self.state().chunks.values() {
            for kind in &chunk.faults_served {
                *served.entry(*kind).or_default() += 1;
            }
        }
        served
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    pub fn content_len(&self, document_id: &str) -> u64 {
        self.with_chunk(document_id, |chunk| chunk.content_len)
    }

    /// The chunk's content, generated as it is read.
    pub fn content_reader(&self, document_id: &str) -> ContentReader {
        ContentReader::new(document_id, self.content_len(document_id))
    }

    /// Bytes `range` of the chunk's content.
    pub fn content_bytes(&self, document_id: &str, range: std::ops::Range<u64>) -> Vec<u8> {
        assert!(range.end <= self.content_len(document_id), "a range inside the content");
        let mut bytes = vec![0; (range.end - range.start) as usize];
        Generator::new(document_id).fill(range.start, &mut bytes);
        bytes
    }

    /// The lowercase hex SHA-256 of the chunk's content (computed once per chunk).
    pub fn content_sha256_hex(&self, document_id: &str) -> String {
        if let Some(hash) = self.with_chunk(document_id, |chunk| chunk.content_sha256_hex.clone()) {
            return hash;
        }
        let hash = sha256_hex(self.content_reader(document_id));
        self.with_chunk(document_id, |chunk| chunk.content_sha256_hex = Some(hash.clone()));
        hash
    }

    pub fn metadata_bytes(&self, document_id: &str) -> Vec<u8> {
        self.with_chunk(document_id, |chunk| chunk.metadata.to_vec())
    }

    /// The lowercase hex SHA-256 of the chunk's metadata.
    pub fn metadata_sha256_hex(&self, document_id: &str) -> String {
        sha256_hex(&self.metadata_bytes(document_id)[..])
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Runs `f` on a chunk; panics on an id never added, which is a mistake in the test.
    fn with_chunk<T>(&self, document_id: &str, f: impl FnOnce(&mut Chunk) -> T) -> T {
        let mut state = self.state();
        let chunk = state
            .chunks
            .get_mut(document_id)
            .unwrap_or_else(|| panic!("no chunk {document_id:?} was added"));
        f(chunk)
    }
}

/// Answers one request: decides under the lock, logs, then sends.
async fn answer(shared: Arc<Shared>, request: Request<Bytes>, hangup: Hangup) -> Answer {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut record = RequestRecord {
        method: request.method().to_string(),
        path: request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        range: header("range"),
        has_authorization: request.headers().contains_key("authorization"),
        x_ms_host: header("x-ms-host"),
        status: None,
    };
    let mut reply = shared.decide(&request);
    if let Reply::File { transfer, .. } = &mut reply {
        transfer.count_in(&shared.downloads);
    }
    record.status = reply.status();
    shared.state.lock().unwrap().requests.push(record);
    reply.send(hangup).await
}

impl Shared {
    fn decide(&self, request: &Request<Bytes>) -> Reply {
        if let Err(refused) = verify(&self.options, request, SystemTime::now()) {
            return Reply::error(401, "Unauthorized", refused.to_string());
        }
        let Some((document_id, file)) = route(request.uri().path()) else {
            return Reply::error(404, "NotFound", "no such path".to_owned());
        };
        let expected = if file == FileKind::Delete {
            Method::DELETE
        } else {
            Method::GET
        };
        if request.method() != expected {
            return Reply::error(405, "MethodNotAllowed", format!("{file:?} takes {expected}"));
        }
        let mut state = self.state.lock().unwrap();
        let Some(chunk) = state.chunks.get_mut(document_id) else {
            return Reply::error(404, "NotFound", "no such recording chunk".to_owned());
        };
        match chunk.ended {
            Some(End::Expired) => return Reply::error(404, "NotFound", "the recording has expired".to_owned()),
            Some(End::Gone) => return Reply::error(410, "Gone", "the recording is gone".to_owned()),
            None => {}
        }
        if chunk.deleted {
            return Reply::error(404, "NotFound", "the recording chunk was deleted".to_owned());
        }
        if file == FileKind::Delete {
            return chunk.delete();
        }
        let range = request.headers().get("range").and_then(|v| v.to_str().ok());
        chunk.serve(file, range)
    }
}

impl Chunk {
    fn delete(&mut self) -> Reply {
        let fault = self.next_fault(FileKind::Delete);
        if let Some(reply) = fault.as_ref().and_then(Reply::refusal) {
            return reply;
        }
        self.deleted = true;
        match fault {
            Some(Fault::CutAfter(_)) => Reply::HangUp { reset: true },
            Some(Fault::ShortBody(_)) => Reply::HangUp { reset: false },
            Some(Fault::Slow { delay_per_frame }) => Reply::Empty {
                content_type: None,
                delay: Some(delay_per_frame),
            },
            _ => Reply::Empty {
                content_type: None,
                delay: None,
            },
        }
    }

    fn serve(&mut self, file: FileKind, range: Option<&str>) -> Reply {
        let (source, content_type) = match file {
            FileKind::Metadata => (Source::Bytes(self.metadata.clone()), "application/json"),
            _ => (
                Source::Generated {
                    generator: self.generator,
                    len: self.content_len,
                },
                "video/mp4",
            ),
        };
        let total = source.len();
        let (start, end, partial) = match parse_range(range, total) {
            Ranged::Whole => (0, total, false),
            Ranged::Part { first, last } => (first, last + 1, true),
            Ranged::Unsatisfiable => return Reply::Unsatisfiable { total },
        };
        let fault = self.next_fault(file);
        if let Some(reply) = fault.as_ref().and_then(Reply::refusal) {
            return reply;
        }
        let length = end - start;
        let mut stated = Stated::Length;
        let (start, end, partial) = match fault {
            Some(Fault::UnstatedLength(n)) => {
                stated = Stated::Nothing;
                (start, start + n.min(length), partial)
            }
            Some(Fault::UnknownTotal(n)) => {
                stated = Stated::NoTotal;
                (start, start + n.min(length), true)
            }
            _ => (start, end, partial),
        };
        let length = end - start;
        let (budget, ending, delay) = match fault {
            Some(Fault::EmptyBody) => {
                return Reply::Empty {
                    content_type: Some(content_type),
                    delay: None,
                };
            }
            Some(Fault::CutAfter(n)) => (n.min(length), Ending::Reset, None),
            Some(Fault::ShortBody(n)) => (n.min(length), Ending::Close, None),
            Some(Fault::Slow { delay_per_frame }) => (length, Ending::Complete, Some(delay_per_frame)),
            _ => (length, Ending::Complete, None),
        };
        let mut transfer = Transfer::new(source, start, budget, ending, delay);
        if let Some(Fault::Held(gate)) = fault {
            transfer = transfer.held_by(gate);
        }
        Reply::File {
            head: FileHead {
                content_type,
                start,
                end,
                total,
                partial,
                stated,
            },
            transfer,
        }
    }

    fn next_fault(&mut self, file: FileKind) -> Option<Fault> {
        let fault = self.faults.get_mut(&file).and_then(VecDeque::pop_front);
        if let Some(fault) = &fault {
            self.faults_served.push(fault.kind());
        }
        fault
    }
}

/// The chunk and file a storage path names.
fn route(path: &str) -> Option<(&str, FileKind)> {
    let object = path.strip_prefix("/v1/objects/")?;
    let (document_id, file) = match object.split_once('/') {
        None => (object, FileKind::Delete),
        Some((id, "content/video")) => (id, FileKind::Content),
        Some((id, "content/acsmetadata")) => (id, FileKind::Metadata),
        Some(_) => return None,
    };
    (!document_id.is_empty()).then_some((document_id, file))
}
