//! What the load bench measures: the HTTP floor (a bare hyper server, this bench's executable started again) and
//! the handler on each store, each a process of its own on 127.0.0.1; and their cold starts and memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support;
use support::cosmos::CosmosTarget;

/// The floor's child process finds its port here.
pub const FLOOR_PORT_VARIABLE: &str = "LOAD_FLOOR_PORT";

/// One target, running on its own port until dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    _workdir: tempfile::TempDir,
    cosmos: Option<CosmosTarget>,
}

impl Server {
    pub async fn start(target: &str) -> Server {
        let workdir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let port_text = port.to_string();
        let mut cosmos = None;
        let mut command = match target {
            "floor" => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.env(FLOOR_PORT_VARIABLE, &port_text);
                command
            }
            store => {
                let mut command = handler_command(&handler_executable(), &port_text);
                match store {
                    "memory" | "embedded" => {
                        command.env("RECORDINGS_STORE", store);
                    }
                    "cosmos" => {
                        let server = CosmosTarget::start();
                        let database = support::cosmos::unique_database();
                        command.envs(server.handler_settings(&database, None));
                        cosmos = Some(server);
                    }
                    other => panic!("unknown target {other:?}: floor, memory, embedded or cosmos"),
                }
                command
            }
        };
        let log = std::fs::File::create(workdir.path().join("output.log")).unwrap();
        let child = command
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            port,
            _workdir: workdir,
            cosmos,
        };
        first_answer(port, Duration::from_secs(60)).unwrap_or_else(|| panic!("{target} never answered GET /"));
        server
    }

    /// Resident memory now and at its peak, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Document requests the local Cosmos DB test server has answered, when that is the store.
    pub async fn store_requests(&self) -> Option<usize> {
        let cosmos = self.cosmos.as_ref().filter(|c| c.is_local())?;
        let settled = cosmos.requests_since(0).await;
        Some(settled.iter().filter(|r| r.contains("/docs")).count())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        support::release_port(self.port);
    }
}

/// The handler built with this bench, or `LOAD_HANDLER`.
pub fn handler_executable() -> PathBuf {
    std::env::var_os("LOAD_HANDLER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_handler")))
}

fn handler_command(executable: &Path, port: &str) -> Command {
    let mut command = Command::new(executable);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port);
    command
}

/// Exec to the first answer on `GET /`, `starts` times, sorted.
pub fn cold_starts(executable: &Path, store: &str, starts: usize) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..starts)
        .map(|_| {
            let workdir = tempfile::tempdir().unwrap();
            let port = support::free_port();
            let started = Instant::now();
            let mut child = handler_command(executable, &port.to_string())
                .env("RECORDINGS_STORE", store)
                .current_dir(workdir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let answered = first_answer(port, Duration::from_secs(10)).map(|_| started.elapsed());
            let _ = child.kill();
            let _ = child.wait();
            support::release_port(port);
            answered.expect("the handler never answered GET /")
        })
        .collect();
    times.sort();
    times
}

/// Polls `GET /` as fast as the loopback allows until an HTTP answer arrives.
fn first_answer(port: u16, limit: Duration) -> Option<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let mut answer = Vec::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_end(&mut answer).is_ok()
                && answer.starts_with(b"HTTP/1.1 ")
            {
                return Some(());
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// The HTTP floor: a bare hyper server that reads each request's body and answers with the host's reply, fixed.
pub mod floor {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    const REPLY: &[u8] = br#"{"Outputs":{},"Logs":["stored"],"ReturnValue":null}"#;

    async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let _body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from_static(REPLY)));
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    pub fn serve(port: u16) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
    }
}
