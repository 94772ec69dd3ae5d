//! The server's answers: errors, redirects, and files streamed frame by frame, whole or in a range, ending early
//! when a fault says so.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::files::Generator;
use super::serve::{Answer, Body, Hangup, full};
use super::{FRAME, Fault};

/// How long an answer that ends its connection early waits first, so that the bytes it did send have left hyper's
/// buffer and reached the client before the connection goes: a reset discards whatever the kernel still holds.
const HANG_UP_GRACE: Duration = Duration::from_millis(50);

/// What a `Range` header asks of a file of `total` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ranged {
    Whole,
    /// Bytes `first..=last`, `last` already clamped to the file.
    Part {
        first: u64,
        last: u64,
    },
    Unsatisfiable,
}

/// Reads `bytes=N-`, `bytes=N-M` and `bytes=-N`; anything else is ignored, as HTTP lets a server do.
pub(super) fn parse_range(header: Option<&str>, total: u64) -> Ranged {
    let Some((first, last)) = header
        .and_then(|h| h.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
        .and_then(|spec| spec.split_once('-'))
    else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return match last.parse::<u64>() {
            Ok(0) => Ranged::Unsatisfiable,
            Ok(_) if total == 0 => Ranged::Unsatisfiable,
            Ok(n) => Ranged::Part {
                first: total - n.min(total),
                last: total - 1,
            },
            Err(_) => Ranged::Whole,
        };
    }
    let Ok(first) = first.parse::<u64>() else {
        return Ranged::Whole;
    };
    let last = if last.is_empty() {
        Ok(u64::MAX)
    } else {
        last.parse::<u64>()
    };
    match last {
        Ok(last) if last >= first => {
            if first >= total {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part {
                    first,
                    last: last.min(total - 1),
                }
            }
        }
        _ => Ranged::Whole,
    }
}

/// What the server answers to one request.
pub(super) enum Reply {
    Error {
        status: u16,
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    Unsatisfiable {
        total: u64,
    },
    Redirect(String),
    /// 200 with `Content-Length: 0`, after `delay`.
    Empty {
        content_type: Option<&'static str>,
        delay: Option<Duration>,
    },
    File {
        head: FileHead,
        transfer: Transfer,
    },
    /// No answer: the connection is reset or closed.
    HangUp {
        reset: bool,
    },
}

pub(super) struct FileHead {
    pub(super) content_type: &'static str,
    pub(super) start: u64,
    /// Exclusive.
    pub(super) end: u64,
    pub(super) total: u64,
    pub(super) partial: bool,
    pub(super) stated: Stated,
}

/// What the headers of a file's answer state about its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stated {
    /// `Content-Length`, and on a 206 `Content-Range` with the total: as ACS answers.
    Length,
    /// No `Content-Length` (the body is chunked) and no `Content-Range`.
    Nothing,
    /// `Content-Length`, and `Content-Range` with `*` for the total.
    NoTotal,
}

impl Reply {
    pub(super) fn error(status: u16, code: &'static str, message: String) -> Reply {
        Reply::Error {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    /// The answer of a fault that refuses the request outright, whatever it asked for.
    pub(super) fn refusal(fault: &Fault) -> Option<Reply> {
        let injected = || "fault injected by the test".to_owned();
        match fault {
            Fault::Status(status) => Some(Reply::Error {
                status: *status,
                code: "InjectedFault",
                message: injected(),
                retry_after: matches!(status, 429 | 503).then_some(1),
            }),
            Fault::RetryAfter { status, seconds } => Some(Reply::Error {
                status: *status,
                code: "InjectedFault",
                message: injected(),
                retry_after: Some(*seconds),
            }),
            Fault::Redirect(location) => Some(Reply::Redirect(location.clone())),
            _ => None,
        }
    }

    pub(super) fn status(&self) -> Option<u16> {
        match self {
            Reply::Error { status, .. } => Some(*status),
            Reply::Unsatisfiable { .. } => Some(416),
            Reply::Redirect(_) => Some(302),
            Reply::Empty { .. } => Some(200),
            Reply::File { head, .. } => Some(if head.partial { 206 } else { 200 }),
            Reply::HangUp { .. } => None,
        }
    }

    pub(super) async fn send(self, hangup: Hangup) -> Answer {
        let status = self.status();
        let mut response = match self {
            Reply::Error {
                status: _,
                code,
                message,
                retry_after,
            } => {
                let mut response = json_error(code, &message);
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert("retry-after", seconds.into());
                }
                response
            }
            Reply::Unsatisfiable { total } => {
                let mut response = json_error("InvalidRange", "the range starts past the end");
                response
                    .headers_mut()
                    .insert("content-range", header_value(format!("bytes */{total}")));
                response
            }
            Reply::Redirect(location) => {
                let mut response = empty();
                response.headers_mut().insert("location", header_value(location));
                response
            }
            Reply::Empty { content_type, delay } => {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let mut response = empty();
                if let Some(content_type) = content_type {
                    response
                        .headers_mut()
                        .insert("content-type", HeaderValue::from_static(content_type));
                }
                response
            }
            Reply::File { head, mut transfer } => {
                transfer.hangup = Some(hangup);
                let body = StreamBody::new(futures_util::stream::unfold(transfer, Transfer::next_frame));
                let mut response = Response::new(BodyExt::boxed_unsync(body));
                let headers = response.headers_mut();
                headers.insert("content-type", HeaderValue::from_static(head.content_type));
                if head.stated != Stated::Nothing {
                    headers.insert("content-length", (head.end - head.start).into());
                }
                headers.insert("accept-ranges", HeaderValue::from_static("bytes"));
                if head.partial {
                    let total = match head.stated {
                        Stated::NoTotal => "*".to_owned(),
                        _ => head.total.to_string(),
                    };
                    let range = format!("bytes {}-{}/{total}", head.start, head.end - 1);
                    headers.insert("content-range", header_value(range));
                }
                response
            }
            Reply::HangUp { reset } => {
                tokio::time::sleep(HANG_UP_GRACE).await;
                if reset {
                    hangup.reset();
                }
                return Err(io::Error::other("fault: hung up without answering"));
            }
        };
        if let Some(status) = status {
            *response.status_mut() = StatusCode::from_u16(status).expect("a status code");
        }
        Ok(response)
    }
}

fn json_error(code: &str, message: &str) -> Response<Body> {
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    let mut response = Response::new(full(Bytes::from(body)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn empty() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    response.headers_mut().insert("content-length", 0.into());
    response
}

fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("a valid header value")
}

/// A file's bytes.
#[derive(Clone)]
pub(super) enum Source {
    /// Generated content, this long.
    Generated {
        generator: Generator,
        len: u64,
    },
    Bytes(Arc<[u8]>),
}

impl Source {
    pub(super) fn len(&self) -> u64 {
        match self {
            Source::Generated { len, .. } => *len,
            Source::Bytes(bytes) => bytes.len() as u64,
        }
    }

    fn fill(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Source::Generated { generator, .. } => generator.fill(offset, buf),
            Source::Bytes(bytes) => {
                let start = offset as usize;
                buf.copy_from_slice(&bytes[start..start + buf.len()]);
            }
        }
    }
}

/// How an answer's body ends once its budget is sent.
#[derive(Clone, Copy)]
pub(super) enum Ending {
    Complete,
    /// Reset the connection: the client sees an error.
    Reset,
    /// Close the connection cleanly, short of the length promised.
    Close,
}

/// One transfer counted among those in flight, for as long as this lives.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A body being sent, frame by frame.
pub(super) struct Transfer {
    source: Source,
    position: u64,
    /// Bytes still to send before `ending`.
    budget: u64,
    ending: Ending,
    delay: Option<Duration>,
    /// Held after the first frame until this gate opens.
    gate: Option<super::Gate>,
    /// Counts this transfer among those in flight while it lives.
    in_flight: Option<InFlight>,
    first: bool,
    hangup: Option<Hangup>,
}

impl Transfer {
    /// Sends `budget` bytes of `source` from `position` on, then ends as `ending` says.
    pub(super) fn new(source: Source, position: u64, budget: u64, ending: Ending, delay: Option<Duration>) -> Self {
        Self {
            source,
            position,
            budget,
            ending,
            delay,
            gate: None,
            in_flight: None,
            first: true,
            hangup: None,
        }
    }

    /// Counts this transfer in `downloads` until it ends or is dropped (the client went away).
    pub(super) fn count_in(&mut self, downloads: &Arc<AtomicUsize>) {
        downloads.fetch_add(1, Ordering::SeqCst);
        self.in_flight = Some(InFlight(downloads.clone()));
    }

    /// The same transfer, held after its first frame until `gate` opens.
    pub(super) fn held_by(self, gate: super::Gate) -> Self {
        Self {
            gate: Some(gate),
            ..self
        }
    }

    async fn next_frame(mut self) -> Option<(Result<Frame<Bytes>, io::Error>, Transfer)> {
        if self.budget == 0 {
            return match self.ending {
                Ending::Complete => None,
                // hyper sees the body end short of its length and closes the connection.
                Ending::Close => {
                    tokio::time::sleep(HANG_UP_GRACE).await;
                    None
                }
                Ending::Reset => {
                    tokio::time::sleep(HANG_UP_GRACE).await;
                    if let Some(hangup) = self.hangup.take() {
                        hangup.reset();
                    }
                    self.ending = Ending::Complete;
                    Some((Err(io::Error::other("fault: connection cut")), self))
                }
            };
        }
        if let Some(delay) = self.delay.filter(|_| !self.first) {
            tokio::time::sleep(delay).await;
        }
        if !self.first
            && let Some(gate) = self.gate.take()
        {
            gate.passed().await;
        }
        self.first = false;
        let n = self.budget.min(FRAME as u64) as usize;
        let mut frame = vec![0; n];
        self.source.fill(self.position, &mut frame);
        self.position += n as u64;
        self.budget -= n as u64;
        Some((Ok(Frame::data(Bytes::from(frame))), self))
    }
}
