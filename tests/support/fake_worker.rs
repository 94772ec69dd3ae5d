//! A worker for the harness's own tests: the host starts a shell script that records its worker id and waits, and
//! this server answers on the worker's port on its behalf — `GET /` with that id, every other request with what the
//! test's `reply` says — keeping every request it saw. It runs on the test's runtime and stops when dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::app::AppDir;

/// The worker script: records the id the host gave it, then waits to be killed.
const SCRIPT: &str = "#!/bin/sh\necho \"$FUNCTIONS_CUSTOMHANDLER_WORKER_ID\" > worker-id\nexec sleep 600\n";

/// Makes an app root's worker the waiting script (`functionTimeout` 5 s, so that a hang ends soon).
pub fn with_script_worker(app: AppDir) -> AppDir {
    let path = app.root().join("worker.sh");
    std::fs::write(&path, SCRIPT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    app.edit_host_json(|host| {
        host["customHandler"]["description"]["defaultExecutablePath"] = json!("worker.sh");
        host["functionTimeout"] = json!("00:00:05");
    });
    app
}

/// One request the worker received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    /// In order, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// Every value of a header, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("the worker got no JSON ({e})"))
    }
}

/// What the worker answers: status, headers, body.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A JSON reply with status 200, as a worker answers an invocation.
pub fn json_reply(value: &Value) -> Reply {
    (
        200,
        vec![("content-type".to_owned(), "application/json".to_owned())],
        value.to_string().into_bytes(),
    )
}

/// The server answering for the script worker.
pub struct FakeWorker {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeWorker {
    /// Listens on the host's worker port; `reply` answers every request but `GET /`.
    pub async fn start(
        port: u16,
        app_root: PathBuf,
        reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> FakeWorker {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the host's worker port is free");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let reply = Arc::new(reply);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (root, reply, record) = (app_root.clone(), reply.clone(), record.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (root, reply, record) = (root.clone(), reply.clone(), record.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let seen = Seen {
                            method: parts.method.as_str().to_owned(),
                            path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| {
                                    (
                                        n.as_str().to_owned(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect(),
                            body: body.to_vec(),
                        };
                        let (status, headers, body) = if seen.method == "GET" && seen.path_and_query == "/" {
                            let id = std::fs::read_to_string(root.join("worker-id")).unwrap_or_default();
                            json_reply(&json!({ "workerId": id.trim() }))
                        } else {
                            record.lock().unwrap().push(seen.clone());
                            reply(&seen)
                        };
                        let mut response = Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        for (name, value) in headers {
                            response.headers_mut().append(
                                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                                hyper::header::HeaderValue::from_str(&value).unwrap(),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                connections.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeWorker { seen, task }
    }

    /// Every request but the readiness probes, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request seen; panics when there was none.
    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the worker saw a request")
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
