//! The stand-in Functions host. Core Tools cannot run here, so this does what the host does, from its documented and
//! source-level behaviour (azure-functions-host 4.x: `HttpWorkerProcess`, `WorkerProcess`, `DefaultHttpWorkerService`,
//! `HttpFunctionInvocationDispatcher`, `FileMonitoringService`):
//!
//! - **Startup.** It starts the executable `host.json` names, in the app root, with no arguments, with its own
//!   environment (the test process's, plus `local.settings.json`'s values not already set, plus the test's settings)
//!   and `FUNCTIONS_CUSTOMHANDLER_PORT`, `FUNCTIONS_HTTPWORKER_PORT`, `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`,
//!   `FUNCTIONS_HTTPWORKER_ID` and `FUNCTIONS_APP_ROOT_PATH`. The port is chosen once; each process gets a new
//!   worker id. It polls `GET /` every 25 ms for up to 30 s: any HTTP answer means ready — and, beyond the host, the
//!   answer must echo this process's worker id and the process must be alive, so that another process answering on
//!   the port is never taken for the worker.
//! - **Exits.** A worker that exits with 0 stays down. Any other exit (or a start not ready within 30 s) is an error:
//!   the worker is restarted at once, and the third error within 30 minutes shuts the host down.
//! - **Stops.** The host stops a worker with SIGKILL, never SIGTERM: on its own shutdown, on its restart (when a
//!   folder appears in the app root, or `host.json` or a `function.json` changes), and after a function timeout.
//!   Those restarts are not errors.
//! - **Logs.** Each stdout line is logged at Information; each stderr line at Warning when it contains "warn" (any
//!   case), otherwise at Error.
//! - **Invocations.** `POST /{function}` with the host's headers and a chunked body. The reply must be 2xx (a
//!   failed reply's body is never read), with media type `application/json` or `text/json`, holding a JSON object
//!   whose `Outputs`, `Logs` and `ReturnValue` have the right types; its `Logs` lines go to the function's log at
//!   Information. An empty body or `null` is a null result: the invocation hangs until `functionTimeout`. An
//!   invocation not answered within `functionTimeout` fails, and the worker is killed and restarted, losing every
//!   invocation in flight.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::app::{AppDir, FunctionApp};
use super::envelope::{self, uuid_like};
use super::http_front::{self, HttpAnswer, HttpFront};
use super::invoker::{self, Invoker, WAIT_FOR_WORKER};
use super::ports::Port;
use super::queues::Queues;
use super::wait;

/// The host's readiness polling: every 25 ms, for up to 30 s.
const READY_POLL: Duration = Duration::from_millis(25);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors (non-zero exits, failed starts) within this window that shut the host down.
const ERRORS_TO_SHUT_DOWN: usize = 3;
const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The level the host logs a worker's output line at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Information,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the worker's output, as the host logs it.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Which worker process wrote it (1 for the first started).
    pub worker: u64,
    pub stream: Stream,
    pub level: Level,
    pub text: String,
}

/// The host's rule for a worker's output (`UseStdErrorStreamForErrorsOnly`).
pub fn classify(stream: Stream, line: &str) -> Level {
    match stream {
        Stream::Stdout => Level::Information,
        Stream::Stderr if line.to_ascii_lowercase().contains("warn") => Level::Warning,
        Stream::Stderr => Level::Error,
    }
}

/// Where the worker is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Ready,
    /// Exited with status 0: the host does not restart it.
    Down,
    /// Too many errors: the host shut itself down.
    ShutDown,
    /// The host was dropped.
    Stopped,
}

/// The longest [`Host::run_queues`] keeps delivering: the campaigns' own deadline is 300 s, and a test that needs
/// this long has hung.
pub const QUEUE_PATIENCE: Duration = Duration::from_secs(280);

/// What [`Host::run_queues`] did.
#[derive(Debug, Default, Clone)]
pub struct QueueReport {
    pub deliveries: usize,
    pub failures: usize,
    /// Messages moved to a poison queue.
    pub poisoned: usize,
    pub invocations: Vec<Invocation>,
}

/// How the host judges a worker's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    Failed(String),
    /// A null result (empty body, `null`): the invocation waits until `functionTimeout`.
    Hangs,
}

/// The host's reading of a reply (`EnsureSuccessStatusCode`, then `ReadAsAsync<HttpScriptInvocationResult>` with
/// Json.NET, which matches property names in any case).
pub fn judge(status: u16, content_type: Option<&str>, body: &str) -> Verdict {
    if !(200..300).contains(&status) {
        return Verdict::Failed(format!("the worker answered {status}"));
    }
    let media = content_type.map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match media.as_deref() {
        None if body.is_empty() => return Verdict::Hangs,
        Some("application/json" | "text/json") => {}
        other => return Verdict::Failed(format!("no JSON formatter for media type {other:?}")),
    }
    let text = body.trim();
    if text.is_empty() || text == "null" {
        return Verdict::Hangs;
    }
    let fields = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => return Verdict::Failed(format!("the reply is not a JSON object: {other}")),
        Err(e) => return Verdict::Failed(format!("the reply is not JSON: {e}")),
    };
    for (name, value) in &fields {
        let well_typed = match name.to_ascii_lowercase().as_str() {
            "outputs" => value.is_object() || value.is_null(),
            "logs" => match value {
                Value::Null => true,
                Value::Array(lines) => lines.iter().all(|l| !l.is_object() && !l.is_array()),
                _ => false,
            },
            _ => true,
        };
        if !well_typed {
            return Verdict::Failed(format!("the reply's {name} has the wrong type: {value}"));
        }
    }
    Verdict::Succeeded
}

/// The answer to one invocation, as the host sees it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub invocation_id: String,
    /// The HTTP status; 0 when the worker gave no HTTP answer (refused, cut, timed out).
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
    pub verdict: Verdict,
    /// Whether the invocation ran past `functionTimeout` (and the worker was restarted for it).
    pub timed_out: bool,
}

impl Invocation {
    pub fn succeeded(&self) -> bool {
        self.verdict == Verdict::Succeeded
    }

    pub fn reply(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The reply's first `Logs` line.
    pub fn log(&self) -> String {
        self.reply()["Logs"][0].as_str().unwrap_or_default().to_owned()
    }

    /// The reply's value for an output binding.
    pub fn output(&self, name: &str) -> Value {
        self.reply()["Outputs"][name].clone()
    }
}

pub(super) enum Command {
    /// The host restarts the worker (SIGKILL, then a new process); `Some(n)` only if worker `n` still runs.
    Restart {
        worker: Option<u64>,
    },
    /// Kill the worker as something outside the host would: an error exit.
    Crash,
    Stop,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) phase: Phase,
    /// Worker processes started so far; the current one's number.
    pub(super) started: u64,
    worker_id: String,
    pid: Option<u32>,
    /// Every exit not caused by the host itself: (worker, status).
    exits: Vec<(u64, ExitStatus)>,
    errors: Vec<Instant>,
    host_restarts: u64,
    /// How often the watcher has compared the app root with what it last saw.
    app_root_checks: u64,
    pub(super) timeouts: u64,
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// The storage account's queues, fed by queue output bindings and read by queue triggers.
    pub(super) queues: Mutex<Queues>,
    /// Shared with the threads that read each worker's output.
    pub(super) logs: Arc<Mutex<Vec<LogLine>>>,
    /// The `Logs` lines of successful invocations: (function, line).
    pub(super) function_log: Mutex<Vec<(String, String)>>,
}

/// What it takes to start a worker process.
struct Spawn {
    executable: PathBuf,
    arguments: Vec<String>,
    working_directory: PathBuf,
    app_root: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
}

/// One run of the stand-in host. Dropping it stops the worker with SIGKILL.
pub struct Host {
    app: FunctionApp,
    _app_dir: Option<AppDir>,
    port: Port,
    env: BTreeMap<String, String>,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    invoker: Invoker,
    /// The public HTTP endpoint, started on first use.
    front: OnceLock<HttpFront>,
    /// Whether the front door checks function keys (the real host does; Core Tools does not).
    check_keys: Arc<AtomicBool>,
}

impl Host {
    /// Starts the host on a fresh app root with these settings, and waits until the worker is ready.
    pub async fn start(settings: &[(&str, &str)]) -> Host {
        Self::start_in(AppDir::new(), settings).await
    }

    /// Starts the host on a given app root (whose `host.json` a test may have changed), and waits until the
    /// worker is ready or has gone down for good.
    pub async fn start_in(app_dir: AppDir, settings: &[(&str, &str)]) -> Host {
        let host = Self::launch(app_dir, settings);
        host.wait_until_ready().await;
        host
    }

    /// Starts the host on a given app root without waiting for the worker.
    pub fn launch(app_dir: AppDir, settings: &[(&str, &str)]) -> Host {
        let mut host = Self::new(FunctionApp::load(&app_dir.root()), settings);
        host._app_dir = Some(app_dir);
        host
    }

    fn new(app: FunctionApp, settings: &[(&str, &str)]) -> Host {
        let port = Port::reserve();
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        for (name, value) in &app.local_settings {
            // `func start` skips a local setting the environment already defines.
            env.entry(name.clone()).or_insert_with(|| value.clone());
        }
        for (name, value) in settings {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        let spawn = Spawn {
            executable: app.executable.clone(),
            arguments: app.arguments.clone(),
            working_directory: app.working_directory.clone(),
            app_root: app.root.clone(),
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            port: port.0,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Starting,
                started: 0,
                worker_id: String::new(),
                pid: None,
                exits: Vec::new(),
                errors: Vec::new(),
                host_restarts: 0,
                app_root_checks: 0,
                timeouts: 0,
            }),
            queues: Mutex::default(),
            logs: Arc::default(),
            function_log: Mutex::default(),
        });
        let (commands, receiver) = mpsc::channel();
        let supervisor = {
            let shared = shared.clone();
            std::thread::spawn(move || supervise(&shared, &spawn, &receiver))
        };
        let invoker = Invoker {
            shared: shared.clone(),
            app: Arc::new(app.clone()),
            client: invoker::client(),
            worker_port: port.0,
            commands: commands.clone(),
        };
        Host {
            app,
            _app_dir: None,
            port,
            env,
            shared,
            commands,
            supervisor: Some(supervisor),
            invoker,
            front: OnceLock::new(),
            check_keys: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn app(&self) -> &FunctionApp {
        &self.app
    }

    pub fn app_root(&self) -> &Path {
        &self.app.root
    }

    pub fn port(&self) -> u16 {
        self.port.0
    }

    /// The worker's value of a setting.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The embedded store's folder, as the worker resolves `RECORDINGS_DATA_DIR` from its working directory.
    pub fn data_dir(&self) -> PathBuf {
        let dir = self.setting("RECORDINGS_DATA_DIR").unwrap_or(".data");
        let mut resolved = PathBuf::new();
        for component in self.app.working_directory.join(dir).components() {
            match component {
                std::path::Component::ParentDir => {
                    resolved.pop();
                }
                std::path::Component::CurDir => {}
                other => resolved.push(other),
            }
        }
        resolved
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port.0)
    }

    pub fn phase(&self) -> Phase {
        self.shared.state.lock().unwrap().phase.clone()
    }

    /// Worker processes started so far.
    pub fn workers_started(&self) -> u64 {
        self.shared.state.lock().unwrap().started
    }

    /// The current worker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.shared.state.lock().unwrap().pid
    }

    /// Every worker exit the host did not cause itself, in order.
    pub fn exits(&self) -> Vec<ExitStatus> {
        self.shared
            .state
            .lock()
            .unwrap()
            .exits
            .iter()
            .map(|(_, s)| *s)
            .collect()
    }

    /// How often the host restarted itself (app root changes).
    pub fn host_restarts(&self) -> u64 {
        self.shared.state.lock().unwrap().host_restarts
    }

    /// Waits until the host's file watcher has looked at the app root afresh: everything in it before this call was
    /// seen, and a change would have restarted the host.
    pub async fn app_root_checked(&self) {
        let checks = || self.shared.state.lock().unwrap().app_root_checks;
        // The check running now may have read the folder before this call: the one after it did not.
        let wanted = checks() + 2;
        super::wait::until(
            "the host's watcher to look at the app root again",
            Duration::from_secs(10),
            || self.diagnosis(),
            || checks() >= wanted,
        )
        .await;
    }

    /// How many invocations ran past `functionTimeout`.
    pub fn timeouts(&self) -> u64 {
        self.shared.state.lock().unwrap().timeouts
    }

    /// Waits until the worker is ready, or has gone down for good.
    pub async fn wait_until_ready(&self) -> Phase {
        self.invoker.wait_until_ready().await
    }

    /// Starts the handler again the way the host restarts itself: SIGKILL, then a new process. Returns once the new
    /// worker is ready.
    pub async fn restart(&self) {
        let before = self.workers_started();
        self.commands.send(Command::Restart { worker: None }).unwrap();
        self.wait_for_start_after(before).await;
    }

    /// Kills the worker with SIGKILL from outside the host (a crash, the OOM killer): the host sees an error exit
    /// and restarts it. Returns once the host has reacted.
    pub async fn crash(&self) {
        let exits = self.exits().len();
        self.commands.send(Command::Crash).unwrap();
        wait::until(
            "the host to see the killed worker exit",
            WAIT_FOR_WORKER,
            || self.diagnosis(),
            || self.exits().len() > exits,
        )
        .await;
        self.wait_until_ready().await;
    }

    async fn wait_for_start_after(&self, before: u64) {
        wait::until(
            &format!("the host to start worker {}", before + 1),
            WAIT_FOR_WORKER,
            || self.diagnosis(),
            || self.workers_started() > before,
        )
        .await;
        self.wait_until_ready().await;
    }

    /// Sends a signal (`TERM`, `INT`, …) to the worker, as something other than the host would.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("a running worker");
        let status = Process::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until the worker process that is running now has exited, and returns its status.
    pub async fn wait_for_exit(&self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let worker = self.workers_started();
        loop {
            let exit = self
                .shared
                .state
                .lock()
                .unwrap()
                .exits
                .iter()
                .find(|(w, _)| *w == worker)
                .map(|(_, status)| *status);
            if let Some(status) = exit {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not exit:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What a test that went wrong should print: the worker's state and the end of its output.
    pub fn diagnosis(&self) -> String {
        let state = self.shared.state.lock().unwrap();
        let summary = format!(
            "phase {:?}, {} worker(s) started, exits {:?}, {} error(s) in the window, {} host restart(s), {} timeout(s)",
            state.phase,
            state.started,
            state.exits.iter().map(|(w, s)| (w, s.code())).collect::<Vec<_>>(),
            state.errors.len(),
            state.host_restarts,
            state.timeouts
        );
        drop(state);
        let logs = self.logs();
        let tail: Vec<String> = logs
            .iter()
            .skip(logs.len().saturating_sub(60))
            .map(|l| format!("[{} {:?}] {}", l.worker, l.level, l.text))
            .collect();
        format!("{summary}\n{}", tail.join("\n"))
    }

    /// Every line the workers wrote so far, classified.
    pub fn logs(&self) -> Vec<LogLine> {
        self.shared.logs.lock().unwrap().clone()
    }

    /// Every line the workers wrote so far, one per line, for failure messages and searches.
    pub fn output(&self) -> String {
        let mut text = String::new();
        for line in self.shared.logs.lock().unwrap().iter() {
            text.push_str(&line.text);
            text.push('\n');
        }
        text
    }

    /// Whether a worker writes `needle` within a few seconds (its log lines may arrive just after its answers).
    pub async fn logged(&self, needle: &str) -> bool {
        self.logged_at(needle, None).await
    }

    /// Whether a line holding `needle` is logged, at `level` when given, within a few seconds.
    pub async fn logged_at(&self, needle: &str, level: Option<Level>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let found = self
                .shared
                .logs
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.text.contains(needle) && level.is_none_or(|level| l.level == level));
            if found {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// The function log: every `Logs` line of successful invocations, as `(function, line)`.
    pub fn function_log(&self) -> Vec<(String, String)> {
        self.shared.function_log.lock().unwrap().clone()
    }

    /// Invokes `RecordingEvent` with an event, as the Event Grid extension does.
    pub async fn invoke(&self, event: &Value) -> Invocation {
        self.invoke_event_text("RecordingEvent", &event.to_string()).await
    }

    /// Invokes an Event Grid–triggered function with one event given as the text Event Grid sent.
    pub async fn invoke_event_text(&self, function: &str, event_text: &str) -> Invocation {
        let binding = self.app.function(function).trigger().name.clone();
        self.post_to(function, envelope::event_grid(function, &binding, event_text))
            .await
    }

    /// Invokes `RecordingEvent` with the event given as a JSON string holding its JSON (as dead-letter tools and
    /// some bindings pass values), to check the handler tolerates it.
    pub async fn invoke_as_string(&self, event: &Value) -> Invocation {
        let body = serde_json::json!({
            "Data": { "eventGridEvent": event.to_string() },
            "Metadata": { "sys": { "MethodName": "RecordingEvent" } },
        });
        self.post(body.to_string()).await
    }

    /// Posts a raw body to `RecordingEvent`.
    pub async fn post(&self, body: impl Into<Vec<u8>>) -> Invocation {
        self.post_to("RecordingEvent", body.into()).await
    }

    /// The Event Grid extension's webhook: invokes `function` once per event of the batch (a JSON array), all in
    /// parallel, and answers Event Grid 202 when every invocation succeeded, otherwise 500 (Event Grid then
    /// delivers the whole batch again).
    pub async fn event_grid_webhook(&self, function: &str, batch: &str) -> (u16, Vec<Invocation>) {
        let Ok(events) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(batch) else {
            return (400, Vec::new());
        };
        let invocations =
            futures_util::future::join_all(events.iter().map(|event| self.invoke_event_text(function, event.get())))
                .await;
        let status = if invocations.iter().all(Invocation::succeeded) {
            202
        } else {
            500
        };
        (status, invocations)
    }

    /// The host's public HTTP endpoint for HTTP-triggered functions, started on first use:
    /// `http://127.0.0.1:{port}{path_and_query}`, e.g. `host.http_url("/api/recordings/c1")`.
    pub fn http_url(&self, path_and_query: &str) -> String {
        self.front().url(path_and_query)
    }

    fn front(&self) -> &HttpFront {
        self.front
            .get_or_init(|| HttpFront::start(&self.invoker, self.check_keys.clone()))
    }

    /// Sends a request to the public HTTP endpoint, as any client would.
    pub async fn http(&self, method: &str, path_and_query: &str) -> HttpAnswer {
        self.http_with(method, path_and_query, &[], Vec::new()).await
    }

    /// [`Host::http`] with headers and a body (sent with `Content-Length`; none when empty).
    pub async fn http_with(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> HttpAnswer {
        let deadline = self.app.function_timeout + Duration::from_secs(60);
        self.front()
            .send(method, path_and_query, headers, body.into(), deadline)
            .await
            .unwrap_or_else(|why| panic!("{why}\n{}", self.diagnosis()))
    }

    /// A function's own key (`Function` level for that function only).
    pub fn function_key(&self, function: &str) -> String {
        http_front::function_key(function)
    }

    /// The host key `default` (`Function` level for every function).
    pub fn host_key(&self) -> &'static str {
        http_front::HOST_KEY
    }

    /// The master key (`Admin` level).
    pub fn master_key(&self) -> &'static str {
        http_front::MASTER_KEY
    }

    /// Turns the front door's key checks off (as Core Tools runs locally) or on again (the default).
    pub fn set_key_checks(&self, on: bool) {
        self.check_keys.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// The front door's log: one line as each request arrives (method and path, never the query) and one with its
    /// status.
    pub fn http_log(&self) -> Vec<String> {
        self.front.get().map(HttpFront::log).unwrap_or_default()
    }

    /// Posts a raw body to a function, as one invocation, and judges the answer as the host does.
    pub async fn post_to(&self, function: &str, body: Vec<u8>) -> Invocation {
        self.invoker.post_to(function, body).await
    }

    /// The texts of the messages waiting in a queue.
    pub fn queue_texts(&self, queue: &str) -> Vec<String> {
        self.shared.queues.lock().unwrap().texts(queue)
    }

    /// Removes every message of a queue, returning their texts: a message lost between the host and the queue.
    pub fn drain_queue(&self, queue: &str) -> Vec<String> {
        self.shared.queues.lock().unwrap().drain(queue)
    }

    /// Fires a timer trigger function once, as the host's timer does on its schedule, and writes its queue outputs.
    pub async fn fire_timer(&self, function: &str, past_due: bool) -> Invocation {
        let trigger = self.app.function(function).trigger();
        assert_eq!(trigger.kind, "timerTrigger", "{function} is not timer-triggered");
        let body = envelope::timer(function, &trigger.name, past_due);
        self.post_to(function, body).await
    }

    /// Runs the queue triggers as the host's queue listeners do (for at most [`QUEUE_PATIENCE`]): delivers each triggered queue's visible messages to
    /// its function, `batchSize` at a time, deletes a message when its invocation succeeds, makes it visible again
    /// after `visibilityTimeout` when it fails, and moves it to the poison queue after `maxDequeueCount` deliveries.
    /// Returns once every queue is empty and `keep_going` says so.
    pub async fn run_queues(&self, keep_going: impl Fn() -> bool) -> QueueReport {
        let triggers: Vec<(String, String, String)> = self
            .app
            .functions
            .values()
            .filter(|f| f.trigger().kind == "queueTrigger")
            .map(|f| {
                let trigger = f.trigger();
                let queue = trigger.property("queueName").expect("a queue trigger names its queue");
                (queue.to_owned(), f.name.clone(), trigger.name.clone())
            })
            .collect();
        let options = self.app.queues;
        let mut report = QueueReport::default();
        let deadline = Instant::now() + QUEUE_PATIENCE;
        loop {
            assert!(
                Instant::now() < deadline,
                "the queues still held messages (or keep_going held on) after {QUEUE_PATIENCE:?}: {:?}\n{}",
                self.shared.queues.lock().unwrap().texts("recording-archive"),
                self.diagnosis()
            );
            let mut deliveries = Vec::new();
            for (queue, function, binding) in &triggers {
                let taken = self.shared.queues.lock().unwrap().take(queue, options.batch_size);
                deliveries.extend(taken.into_iter().map(|message| (queue, function, binding, message)));
            }
            if deliveries.is_empty() {
                if self.shared.queues.lock().unwrap().idle() && !keep_going() {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let results = futures_util::future::join_all(deliveries.into_iter().map(
                |(queue, function, binding, message)| async move {
                    let body = envelope::queue(function, binding, &message);
                    let invocation = self.post_to(function, body).await;
                    (queue, message, invocation)
                },
            ))
            .await;
            for (queue, message, invocation) in results {
                report.deliveries += 1;
                let succeeded = invocation.succeeded();
                if !succeeded {
                    report.failures += 1;
                }
                let poisoned = self.shared.queues.lock().unwrap().settle(
                    queue,
                    message,
                    succeeded,
                    options.visibility_timeout,
                    options.max_dequeue_count,
                );
                report.poisoned += usize::from(poisoned);
                report.invocations.push(invocation);
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
    }
}

/// The worker as the supervisor tracks it.
enum Worker {
    /// Started, not yet ready: polled until `deadline`.
    Starting {
        child: Child,
        id: String,
        deadline: Instant,
        next_probe: Instant,
    },
    Running(Child),
    /// Down or shut down: nothing runs.
    None,
}

/// The supervisor thread: starts the worker, restarts it as the host does, and watches the app root. It never
/// blocks for long, so that a stop is always carried out at once.
fn supervise(shared: &Shared, spawn: &Spawn, commands: &mpsc::Receiver<Command>) {
    let mut snapshot = app_root_snapshot(&spawn.app_root);
    let mut worker = start(shared, spawn);
    loop {
        match commands.recv_timeout(Duration::from_millis(5)) {
            Ok(Command::Restart { worker: only }) => {
                let current = shared.state.lock().unwrap().started;
                if only.is_none_or(|n| n == current) {
                    kill(&mut worker);
                    worker = start(shared, spawn);
                }
            }
            Ok(Command::Crash) => {
                if let Worker::Starting { child, .. } | Worker::Running(child) = &mut worker {
                    let _ = child.kill();
                }
            }
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                kill(&mut worker);
                shared.state.lock().unwrap().phase = Phase::Stopped;
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = app_root_snapshot(&spawn.app_root);
        let changed = now != snapshot;
        {
            let mut state = shared.state.lock().unwrap();
            state.app_root_checks += 1;
            if changed {
                state.host_restarts += 1;
                state.errors.clear();
            }
        }
        if changed {
            snapshot = now;
            kill(&mut worker);
            worker = start(shared, spawn);
        }
        worker = step(shared, spawn, worker);
    }
}

/// Advances the worker: notices its exit, polls its readiness, gives up on a start that takes too long.
fn step(shared: &Shared, spawn: &Spawn, worker: Worker) -> Worker {
    match worker {
        Worker::None => Worker::None,
        Worker::Running(mut child) => match child.try_wait() {
            Ok(Some(status)) => after_exit(shared, spawn, status),
            _ => Worker::Running(child),
        },
        Worker::Starting {
            mut child,
            id,
            deadline,
            next_probe,
        } => {
            if let Ok(Some(status)) = child.try_wait() {
                return after_exit(shared, spawn, status);
            }
            let now = Instant::now();
            if now < next_probe {
                return Worker::Starting {
                    child,
                    id,
                    deadline,
                    next_probe,
                };
            }
            // Ready means: something answered over HTTP, with this process's id, and the process still runs.
            let answered_as_this_worker =
                probe(spawn.port).is_some_and(|answer| answer.as_deref() == Some(id.as_str()));
            if answered_as_this_worker && matches!(child.try_wait(), Ok(None)) {
                shared.state.lock().unwrap().phase = Phase::Ready;
                return Worker::Running(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                if error_event(&mut shared.state.lock().unwrap()) {
                    return start(shared, spawn);
                }
                return Worker::None;
            }
            Worker::Starting {
                child,
                id,
                deadline,
                next_probe: Instant::now() + READY_POLL,
            }
        }
    }
}

/// Records an exit the host did not cause, and starts the worker again when the host would.
fn after_exit(shared: &Shared, spawn: &Spawn, status: ExitStatus) -> Worker {
    let restart = {
        let mut state = shared.state.lock().unwrap();
        let worker = state.started;
        state.exits.push((worker, status));
        match status.code() {
            Some(0) => {
                state.phase = Phase::Down;
                false
            }
            Some(200) => true,
            _ => error_event(&mut state),
        }
    };
    if restart { start(shared, spawn) } else { Worker::None }
}

/// Counts an error; returns whether the worker may be restarted (false: the host shuts down).
fn error_event(state: &mut State) -> bool {
    let now = Instant::now();
    state.errors.retain(|at| now.duration_since(*at) < ERROR_WINDOW);
    state.errors.push(now);
    if state.errors.len() >= ERRORS_TO_SHUT_DOWN {
        state.phase = Phase::ShutDown;
        false
    } else {
        true
    }
}

/// Starts a worker process with a new id.
fn start(shared: &Shared, spawn: &Spawn) -> Worker {
    let id = uuid_like();
    let number = {
        let mut state = shared.state.lock().unwrap();
        state.started += 1;
        state.phase = Phase::Starting;
        state.worker_id = id.clone();
        state.started
    };
    let child = launch(shared, spawn, number, &id);
    shared.state.lock().unwrap().pid = Some(child.id());
    Worker::Starting {
        child,
        id,
        deadline: Instant::now() + READY_TIMEOUT,
        next_probe: Instant::now(),
    }
}

/// Starts one worker process with the host's environment, its output read line by line into the host's log.
fn launch(shared: &Shared, spawn: &Spawn, number: u64, worker_id: &str) -> Child {
    let port = spawn.port.to_string();
    let mut command = Process::new(&spawn.executable);
    command
        .args(&spawn.arguments)
        .current_dir(&spawn.working_directory)
        .env_clear()
        .envs(spawn.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", &port)
        .env("FUNCTIONS_HTTPWORKER_PORT", &port)
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", worker_id)
        .env("FUNCTIONS_HTTPWORKER_ID", worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &spawn.app_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start the handler");
    let streams: [(Stream, Box<dyn Read + Send>); 2] = [
        (Stream::Stdout, Box::new(child.stdout.take().expect("stdout"))),
        (Stream::Stderr, Box::new(child.stderr.take().expect("stderr"))),
    ];
    for (stream, pipe) in streams {
        let sink = shared.logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let lower = line.to_ascii_lowercase();
                if lower.contains("address already in use") || lower.contains("eaddrinuse") {
                    // The host replaces this line with its own.
                    sink.lock().unwrap().push(LogLine {
                        worker: number,
                        stream,
                        level: Level::Error,
                        text: "Port is already in use. Process cannot start.".to_owned(),
                    });
                    continue;
                }
                let level = classify(stream, &line);
                sink.lock().unwrap().push(LogLine {
                    worker: number,
                    stream,
                    level,
                    text: line,
                });
            }
        });
    }
    child
}

/// Kills the worker with SIGKILL, as the host stops it.
fn kill(worker: &mut Worker) {
    if let Worker::Starting { child, .. } | Worker::Running(child) = worker {
        let _ = child.kill();
        let _ = child.wait();
    }
    *worker = Worker::None;
}

/// One readiness poll: `GET /` on the port. `Some(worker id)` (which may be `None`) when anything answered over
/// HTTP, `None` when nothing did (yet).
fn probe(port: u16) -> Option<Option<String>> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    if !answer.starts_with("HTTP/1.") {
        return None;
    }
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    Some(
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["workerId"].as_str().map(str::to_owned)),
    )
}

/// What the host's file watcher reacts to: the app root's folders, and `host.json` and every `function.json`.
fn app_root_snapshot(root: &Path) -> Vec<(String, Option<SystemTime>)> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut snapshot = vec![("host.json".to_owned(), modified(&root.join("host.json")))];
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            snapshot.push((format!("{name}/"), None));
            let function = path.join("function.json");
            if function.exists() {
                snapshot.push((format!("{name}/function.json"), modified(&function)));
            }
        }
    }
    snapshot.sort();
    snapshot
}
