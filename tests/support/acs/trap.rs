//! The trap: a server that records every request it receives and answers 200, to stand for a host that nothing
//! should reach, or reach with a credential.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, Response};

use super::serve::{Background, full};

/// A server that records every request it receives, headers included, and answers 200 with a small body: the
/// foreign host of a redirect, or a source outside the allowed ones, that nothing should reach with a credential.
pub struct Trap {
    requests: Arc<Mutex<Vec<TrapRecord>>>,
    server: Background,
}

/// One request a [`Trap`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapRecord {
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Every header, names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
}

impl TrapRecord {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a trap answers.
pub const TRAP_BODY: &str = "trapped";

impl Trap {
    pub fn start() -> Trap {
        Self::answering(200)
    }

    /// A trap that answers every request with `status` (and its small body): a host a redirect leads to that has
    /// nothing, say.
    pub fn answering(status: u16) -> Trap {
        let status = hyper::StatusCode::from_u16(status).expect("a status code");
        let requests: Arc<Mutex<Vec<TrapRecord>>> = Arc::default();
        let log = requests.clone();
        let server = Background::start("acs-trap", move |request: Request<Bytes>, _hangup| {
            let record = TrapRecord {
                method: request.method().to_string(),
                path: request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned(),
                headers: request
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
            };
            log.lock().unwrap().push(record);
            async move {
                let mut response = Response::new(full(Bytes::from_static(TRAP_BODY.as_bytes())));
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static("text/plain"));
                Ok(response)
            }
        });
        Trap { requests, server }
    }

    pub fn port(&self) -> u16 {
        self.server.port.0
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<TrapRecord> {
        self.requests.lock().unwrap().clone()
    }
}
