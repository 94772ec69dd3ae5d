//! Test support: a stand-in for the Azure Functions host and for Event Grid, and real-shaped events.
//!
//! Core Tools cannot run here, so [`Host`] does what the host does, from its documented and source-level behaviour:
//! it reads `host.json` and `RecordingEvent/function.json`, starts the executable they name with the port in
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, polls `GET /` until any HTTP answer, posts each invocation to `/RecordingEvent`
//! with the host's headers and a chunked body, and judges the answer as the host does: a non-2xx status, a
//! non-JSON or an empty body fails the invocation. [`EventGrid`] delivers events through it at least once,
//! retrying failures on Event Grid's schedule compressed in time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod contract;
pub mod cosmos;
pub mod events;
pub mod grid;
pub mod proxy;
pub mod rng;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The project's root, where the function app's files live.
pub fn app_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the host learns from the function app's files.
#[derive(Debug)]
pub struct FunctionApp {
    pub executable: PathBuf,
    pub function_name: String,
    pub binding_name: String,
}

impl FunctionApp {
    /// Reads `host.json` and the one function folder as the host does, and finds the built executable it names.
    pub fn load() -> Self {
        let root = app_root();
        let host = read_json(root.join("host.json"));
        assert_eq!(host["version"], "2.0", "host.json version");
        let executable_name = host["customHandler"]["description"]["defaultExecutablePath"]
            .as_str()
            .expect("host.json names customHandler.description.defaultExecutablePath");
        // The host runs `defaultExecutablePath` from the app root; in tests that file is cargo's build of it.
        let executable = PathBuf::from(env!("CARGO_BIN_EXE_handler"));
        assert_eq!(
            executable.file_name().and_then(|n| n.to_str()),
            Some(executable_name),
            "host.json must name the binary cargo builds"
        );
        let function_name = "RecordingEvent".to_owned();
        let function = read_json(root.join(&function_name).join("function.json"));
        let bindings = function["bindings"].as_array().expect("function.json has bindings");
        assert_eq!(bindings.len(), 1, "one trigger binding");
        assert_eq!(bindings[0]["type"], "eventGridTrigger");
        assert_eq!(bindings[0]["direction"], "in");
        let binding_name = bindings[0]["name"].as_str().expect("binding name").to_owned();
        Self {
            executable,
            function_name,
            binding_name,
        }
    }
}

/// Ports handed out by [`free_port`] and still owned by a handler or proxy of this test process.
static PORTS_IN_USE: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free port on the loopback interface, as the host picks one, reserved until [`release_port`]. A handler
/// being restarted leaves its port unbound for a moment; without the reservation another test could take it, and
/// deliveries meant for one handler would reach another's store.
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if PORTS_IN_USE.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Marks a port from [`free_port`] as free again.
pub fn release_port(port: u16) {
    PORTS_IN_USE.lock().unwrap().remove(&port);
}

/// One run of the handler under the stand-in host. Dropping it kills the process.
pub struct Host {
    app: FunctionApp,
    child: Mutex<Option<Child>>,
    env: Vec<(String, String)>,
    pub port: u16,
    pub workdir: PathBuf,
    output: Arc<Mutex<String>>,
    client: reqwest::Client,
}

/// The answer to one invocation, as the host sees it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl Invocation {
    /// The host's verdict: 2xx with a JSON object body succeeds; anything else fails the invocation.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
            && self
                .content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json"))
            && serde_json::from_str::<Value>(&self.body).is_ok_and(|v| v.is_object())
    }

    pub fn reply(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The reply's first `Logs` line.
    pub fn log(&self) -> String {
        self.reply()["Logs"][0].as_str().unwrap_or_default().to_owned()
    }
}

impl Host {
    /// Starts the handler in `workdir` with the given app settings and waits until it answers `GET /`.
    pub async fn start(workdir: &Path, settings: &[(&str, &str)]) -> Host {
        let port = free_port();
        let port_text = port.to_string();
        let mut env: Vec<(&str, &str)> = vec![("FUNCTIONS_CUSTOMHANDLER_PORT", &port_text)];
        env.extend_from_slice(settings);
        Self::start_with_env(workdir, &env, port).await
    }

    /// Starts the handler with exactly these variables (plus PATH), for tests of the port variables themselves.
    pub async fn start_with_env(workdir: &Path, env: &[(&str, &str)], port: u16) -> Host {
        let app = FunctionApp::load();
        let output = Arc::new(Mutex::new(String::new()));
        let child = spawn(&app.executable, workdir, env, &[], &output);
        let host = Host {
            app,
            child: Mutex::new(Some(child)),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            port,
            workdir: workdir.to_owned(),
            output,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        host.wait_until_ready().await;
        host
    }

    /// Kills the handler with SIGKILL, as a crash would, and starts it again as the host restarts a dead worker.
    pub async fn kill_and_restart(&self) {
        self.respawn();
        self.wait_until_ready().await;
    }

    fn respawn(&self) {
        let mut child = self.child.lock().unwrap();
        if let Some(mut old) = child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let env = str_pairs(&self.env);
        *child = Some(spawn(&self.app.executable, &self.workdir, &env, &[], &self.output));
    }

    /// Polls `GET /` until any answer. Like the host, it starts a worker that exits again, a few times.
    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut restarts = 0;
        loop {
            if self.client.get(self.url("")).send().await.is_ok() {
                return;
            }
            let exited = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                assert!(
                    restarts < 5,
                    "the handler exited with {status} before answering:\n{}",
                    self.output()
                );
                restarts += 1;
                self.respawn();
            }
            assert!(
                Instant::now() < deadline,
                "the handler never answered GET /:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Everything the handler wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Whether the handler writes `needle` within a few seconds (its log lines arrive just after its answers).
    pub async fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Invokes the function with an event given as the host gives an object.
    pub async fn invoke(&self, event: &Value) -> Invocation {
        self.post(envelope(&self.app.binding_name, event.clone(), event)).await
    }

    /// Invokes the function with the event turned into a JSON string holding the JSON, as the host does for
    /// non-object values.
    pub async fn invoke_as_string(&self, event: &Value) -> Invocation {
        self.post(envelope(
            &self.app.binding_name,
            Value::String(event.to_string()),
            event,
        ))
        .await
    }

    /// Posts a raw body to the function, chunked, with the host's headers.
    pub async fn post(&self, body: impl Into<Vec<u8>>) -> Invocation {
        match self.try_post(body).await {
            Ok(invocation) => invocation,
            Err(e) => panic!("the handler did not answer: {e}\n{}", self.output()),
        }
    }

    /// Posts like [`Host::post`]; an error means no answer at all (the host counts it as a failed invocation).
    pub async fn try_post(&self, body: impl Into<Vec<u8>>) -> Result<Invocation, reqwest::Error> {
        let response = host_request(&self.client, &self.url(&self.app.function_name), body.into())
            .send()
            .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        Ok(Invocation {
            status,
            content_type,
            body,
        })
    }

    /// Sends a signal to the handler (`TERM`, `INT`, …).
    pub fn signal(&self, name: &str) {
        signal(self.child.lock().unwrap().as_ref().expect("running"), name);
    }

    /// Sends SIGTERM, as the host does when it stops a worker, and waits for the exit.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.signal("TERM");
        self.wait_for_exit()
    }

    /// Waits for the handler to exit by itself.
    pub fn wait_for_exit(self) -> (ExitStatus, String) {
        let mut child = self.child.lock().unwrap().take().expect("running");
        let status = wait_with_deadline(&mut child, Duration::from_secs(20));
        // The output readers finish once the pipes close, just after the exit.
        std::thread::sleep(Duration::from_millis(200));
        (status, self.output())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        release_port(self.port);
    }
}

/// Owned settings as the `(&str, &str)` pairs [`Host::start`] takes.
pub fn str_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Starts the handler binary with exactly `env` (plus PATH), appending its output to `output`.
pub fn spawn(
    executable: &Path,
    workdir: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    output: &Arc<Mutex<String>>,
) -> Child {
    let mut command = Command::new(executable);
    command
        .args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start the handler");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut output = output.lock().unwrap();
                output.push_str(&line);
                output.push('\n');
            }
        });
    }
    child
}

/// Runs the handler binary to completion (e.g. `replay`), returning its status, stdout and stderr.
pub fn run_handler(workdir: &Path, env: &[(&str, &str)], args: &[&str]) -> (ExitStatus, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
    command
        .args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run the handler");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} failed");
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the handler did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An invocation request as the host sends it: its headers, and the body streamed in several chunks, without
/// Content-Length (Transfer-Encoding: chunked).
pub fn host_request(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    let third = body.len().div_ceil(3).max(1);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(third).map(|c| Ok(c.to_vec())).collect();
    client
        .post(url)
        .header("X-Azure-Functions-InvocationId", uuid_like())
        .header("X-Azure-Functions-HostVersion", "4.1041.200.25064")
        .header("User-Agent", "Azure-Functions-Host/4.1041.200.25064")
        .header("traceparent", format!("00-{}-{}-01", hex(16), hex(8)))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
}

/// The body the host posts for one Event Grid trigger invocation.
pub fn envelope(binding: &str, event_value: Value, event: &Value) -> Vec<u8> {
    json!({
        "Data": { binding: event_value },
        "Metadata": {
            "data": event.get("data").cloned().unwrap_or(Value::Null),
            "sys": {
                "MethodName": "RecordingEvent",
                "UtcNow": "2026-11-28T12:00:00.0000000Z",
                "RandGuid": uuid_like(),
            }
        }
    })
    .to_string()
    .into_bytes()
}

/// Distinct hex digits for ids and trace contexts.
fn hex(bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) | (u128::from(std::process::id()) << 64);
    let digits = format!("{n:032x}");
    digits[32 - bytes * 2..].to_owned()
}

fn uuid_like() -> String {
    let h = hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Event Grid's side: delivers through the host, retrying failed deliveries on its schedule compressed in time.
pub struct EventGrid<'a> {
    pub host: &'a Host,
    /// Event Grid waits 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h… between attempts; here milliseconds.
    pub schedule: Vec<Duration>,
}

/// What became of one delivery.
#[derive(Debug)]
pub struct Delivery {
    pub attempts: usize,
    pub delivered: bool,
    pub last: Invocation,
}

impl<'a> EventGrid<'a> {
    pub fn new(host: &'a Host) -> Self {
        let schedule = [10, 30, 60, 300, 600, 1800].map(Duration::from_millis).to_vec();
        Self { host, schedule }
    }

    /// Delivers an event until the handler accepts it or the schedule runs out (Event Grid would dead-letter it).
    pub async fn deliver(&self, event: &Value) -> Delivery {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = self.host.invoke(event).await;
            if last.succeeded() {
                return Delivery {
                    attempts,
                    delivered: true,
                    last,
                };
            }
            match self.schedule.get(attempts - 1) {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => {
                    return Delivery {
                        attempts,
                        delivered: false,
                        last,
                    };
                }
            }
        }
    }

    /// Delivers every event, asserting each was accepted.
    pub async fn deliver_all(&self, events: &[Value]) {
        for event in events {
            let delivery = self.deliver(event).await;
            assert!(
                delivery.delivered,
                "not delivered: {:?}\n{}",
                delivery.last,
                self.host.output()
            );
        }
    }
}

/// Every stored recording document under a data directory, sorted by path.
pub fn documents(data_dir: &Path) -> Vec<Value> {
    json_files(&data_dir.join("recordings"))
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Every quarantined entry under a data directory.
pub fn quarantined(data_dir: &Path) -> Vec<Value> {
    json_files(&data_dir.join("quarantine"))
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Every stored file under `dir` (recursively) with its parsed JSON, sorted by path; panics on a torn or invalid
/// file. Hidden files — a writer's temporary files, which a crash may leave half-written — are not stored files.
pub fn json_files(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_dir() {
                stack.push(path);
            } else if !hidden {
                let value = read_json(&path);
                found.push((path, value));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The chunk `documentId`s of a document, in stored order.
pub fn chunk_ids(document: &Value) -> Vec<String> {
    document["chunks"]
        .as_array()
        .map(|chunks| {
            chunks
                .iter()
                .map(|c| c["documentId"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
