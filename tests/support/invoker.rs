//! One invocation as the host makes it — wait for a ready worker, send, wait at most `functionTimeout`, judge the
//! reply, log its `Logs`, write its queue outputs, restart the worker after a timeout — shared by the stand-in
//! host's own calls ([`super::host::Host::post_to`]) and its HTTP front door ([`super::http_front`]), which holds a
//! clone on a runtime of its own.
//!
//! Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest` (payload
//! mode: `EnsureSuccessStatusCode`, then the reply is read) and `ProcessHttpInAndOutInvocationRequest` (forwarding:
//! the worker's response is the result, whatever its status).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::app::FunctionApp;
use super::envelope::{host_request_with_id, uuid_like};
use super::host::{Command, Invocation, Phase, Shared, Verdict, judge};
use super::queues;

/// How long an invocation waits for a worker that is starting.
pub const WAIT_FOR_WORKER: Duration = Duration::from_secs(120);
/// How long after a function timeout the host kills the worker.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// What the worker answered to one request, within `functionTimeout`.
pub enum Exchange {
    Answered {
        status: u16,
        reason: Option<String>,
        headers: Vec<(String, Vec<u8>)>,
        body: Bytes,
    },
    /// No HTTP answer (refused, cut): the invocation fails.
    NoAnswer(String),
    /// Not answered within `functionTimeout`: the invocation fails and the worker is restarted.
    TimedOut,
}

/// What an invocation needs of the host; cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    pub(super) shared: Arc<Shared>,
    pub(super) app: Arc<FunctionApp>,
    pub(super) client: reqwest::Client,
    pub(super) worker_port: u16,
    pub(super) commands: mpsc::Sender<Command>,
}

impl Invoker {
    /// The same invoker with a client of its own, for use on another tokio runtime (a client's pooled connections
    /// belong to the runtime that opened them).
    pub fn for_another_runtime(&self) -> Invoker {
        Invoker {
            client: client(),
            ..self.clone()
        }
    }

    pub fn worker_url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.worker_port)
    }

    pub fn phase(&self) -> Phase {
        self.shared.state.lock().unwrap().phase.clone()
    }

    fn workers_started(&self) -> u64 {
        self.shared.state.lock().unwrap().started
    }

    /// Waits until the worker is ready, or has gone down for good.
    pub async fn wait_until_ready(&self) -> Phase {
        let deadline = Instant::now() + WAIT_FOR_WORKER;
        loop {
            let phase = self.phase();
            if phase != Phase::Starting {
                return phase;
            }
            assert!(
                Instant::now() < deadline,
                "the worker never became ready within {WAIT_FOR_WORKER:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn output(&self) -> String {
        let logs = self.shared.logs.lock().unwrap();
        logs.iter().map(|l| format!("{}\n", l.text)).collect()
    }

    /// Sends one request to the ready worker and waits for its whole answer, at most `functionTimeout`. A timeout
    /// restarts the worker that had the request, as the host does.
    pub async fn exchange(&self, request: reqwest::RequestBuilder) -> Exchange {
        let worker = self.workers_started();
        let timeout = self.app.function_timeout;
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let reason = response.status().canonical_reason().map(str::to_owned);
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(Exchange::Answered {
                status,
                reason,
                headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answered)) => answered,
            Ok(Err(e)) => Exchange::NoAnswer(format!("no answer: {e}")),
            Err(_) => {
                self.function_timed_out(worker);
                Exchange::TimedOut
            }
        }
    }

    /// Posts a body to a function, as one invocation, and judges the answer as the host does.
    pub async fn post_to(&self, function: &str, body: Vec<u8>) -> Invocation {
        let invocation_id = uuid_like();
        let mut invocation = Invocation {
            function: function.to_owned(),
            invocation_id: invocation_id.clone(),
            status: 0,
            content_type: None,
            body: String::new(),
            verdict: Verdict::Failed("no worker".to_owned()),
            timed_out: false,
        };
        match self.wait_until_ready().await {
            Phase::Ready => {}
            phase => {
                invocation.verdict = Verdict::Failed(format!("the worker is {phase:?}"));
                return invocation;
            }
        }
        let worker = self.workers_started();
        let started = Instant::now();
        let timeout = self.app.function_timeout;
        let request = host_request_with_id(
            &self.client,
            &self.worker_url(&format!("/{function}")),
            body,
            &invocation_id,
        );
        match self.exchange(request).await {
            Exchange::Answered {
                status, headers, body, ..
            } => {
                let content_type = headers
                    .iter()
                    .find(|(name, _)| name == "content-type")
                    .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
                let body = String::from_utf8_lossy(&body).into_owned();
                invocation.verdict = judge(status, content_type.as_deref(), &body);
                invocation.status = status;
                invocation.content_type = content_type;
                invocation.body = body;
            }
            Exchange::NoAnswer(why) => {
                invocation.verdict = Verdict::Failed(why);
                return invocation;
            }
            Exchange::TimedOut => {
                invocation.timed_out = true;
                invocation.verdict = Verdict::Failed(format!("timeout value of {timeout:?} was exceeded"));
                return invocation;
            }
        }
        match invocation.verdict {
            Verdict::Hangs => {
                tokio::time::sleep(timeout.saturating_sub(started.elapsed())).await;
                self.function_timed_out(worker);
                invocation.timed_out = true;
                invocation.verdict = Verdict::Failed(format!("timeout value of {timeout:?} was exceeded"));
            }
            Verdict::Succeeded => {
                self.write_outputs(function, &invocation.reply());
                let lines: Vec<String> = invocation.reply()["Logs"]
                    .as_array()
                    .map(|lines| {
                        lines
                            .iter()
                            .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut log = self.shared.function_log.lock().unwrap();
                log.extend(lines.into_iter().map(|line| (function.to_owned(), line)));
            }
            Verdict::Failed(_) => {}
        }
        invocation
    }

    /// Writes a successful reply's `Outputs` to the function's queue output bindings, as the host does.
    fn write_outputs(&self, function: &str, reply: &Value) {
        let function = self.app.function(function);
        let mut queues = self.shared.queues.lock().unwrap();
        for binding in function.outputs().filter(|b| b.kind == "queue") {
            let queue = binding.property("queueName").expect("a queue binding names its queue");
            let value = reply
                .get("Outputs")
                .and_then(|outputs| outputs.get(&binding.name))
                .cloned()
                .unwrap_or(Value::Null);
            for message in queues::messages_of(&value) {
                queues.push(queue, String::from_utf8_lossy(&message).into_owned());
            }
        }
    }

    /// After a function timeout the host waits a grace period, then kills and restarts the worker that ran it.
    fn function_timed_out(&self, worker: u64) {
        self.shared.state.lock().unwrap().timeouts += 1;
        let commands = self.commands.clone();
        std::thread::spawn(move || {
            std::thread::sleep(TIMEOUT_GRACE);
            let _ = commands.send(Command::Restart { worker: Some(worker) });
        });
    }
}

/// The host's HTTP client: no cookies, no redirects followed (src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs,
/// `CreateHttpClient`: `UseCookies = false`, `AllowAutoRedirect = !EnableForwardingHttpRequest`; a redirect in
/// payload mode would be a non-2xx-turned-2xx only for a worker that redirects its invocations, which none does).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
