//! The stand-in host itself, held to the real host's behaviour: how it judges replies and classifies output, the
//! envelopes it builds, and what it does with workers that exit, never get ready, answer nothing useful, or are
//! impersonated. The workers here are small shell scripts, with the test answering HTTP on their behalf where needed,
//! so that each behaviour can be produced on demand.
//!
//! Each expectation names, in a `Host:` comment, where the real host does it: paths are in the Azure Functions host
//! (github.com/Azure/azure-functions-host), so a reader can check the stand-in against the host, not against itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::host::{Stream, Verdict, classify, judge};
use support::{AppDir, Host, Level, Phase, envelope};
use tokio::io::AsyncWriteExt;

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest`
// (`EnsureSuccessStatusCode`, then `GetHttpScriptInvocationResult`: `ReadAsAsync<HttpScriptInvocationResult>`, whose
// JSON formatter takes `application/json` and `text/json` and binds names in any case); a null result sets no
// result, so the invocation waits for the function timeout (`ResultSource` is never completed).
#[test]
fn replies_are_judged_as_the_host_reads_them() {
    let json = Some("application/json; charset=utf-8");
    let ok = r#"{"Outputs":{},"Logs":["done"],"ReturnValue":null}"#;
    assert_eq!(judge(200, json, ok), Verdict::Succeeded);
    assert_eq!(judge(204, Some("text/json"), ok), Verdict::Succeeded);
    assert_eq!(
        judge(200, json, r#"{"outputs":{},"logs":[]}"#),
        Verdict::Succeeded,
        "names in any case"
    );
    assert_eq!(judge(200, json, "{}"), Verdict::Succeeded);
    assert!(
        matches!(judge(503, json, ok), Verdict::Failed(_)),
        "EnsureSuccessStatusCode"
    );
    assert!(matches!(judge(200, Some("text/plain"), ok), Verdict::Failed(_)));
    assert!(matches!(judge(200, None, ok), Verdict::Failed(_)));
    assert!(matches!(judge(200, json, r#"{"Logs":"x"}"#), Verdict::Failed(_)));
    assert!(matches!(judge(200, json, r#"{"Outputs":"x"}"#), Verdict::Failed(_)));
    assert!(matches!(judge(200, json, "[1]"), Verdict::Failed(_)));
    assert!(matches!(judge(200, json, "{"), Verdict::Failed(_)));
    assert_eq!(judge(200, json, ""), Verdict::Hangs, "an empty body is a null result");
    assert_eq!(judge(200, json, "null"), Verdict::Hangs);
    assert_eq!(judge(200, None, ""), Verdict::Hangs, "no content at all");
}

// Host: src/WebJobs.Script/Workers/ProcessManagement/WorkerProcess.cs, `OnOutputDataReceived` (stdout at
// Information) and `ParseErrorMessageAndLog` (stderr: "warn" in any case at Warning, otherwise Error when
// `UseStdErrorStreamForErrorsOnly`), which src/WebJobs.Script/Workers/Http/HttpWorkerDescription.cs sets `true`
// for custom handlers and src/WebJobs.Script/Workers/Http/HttpWorkerProcess.cs passes on.
#[test]
fn output_lines_are_classified_as_the_host_logs_them() {
    assert_eq!(
        classify(Stream::Stdout, "ERROR everything is on fire"),
        Level::Information
    );
    assert_eq!(
        classify(Stream::Stderr, "2026-11-29T00:00:00Z  WARN x: y"),
        Level::Warning
    );
    assert_eq!(classify(Stream::Stderr, "a Warning in mixed case"), Level::Warning);
    assert_eq!(
        classify(Stream::Stderr, "2026-11-29T00:00:00Z  INFO x: y"),
        Level::Error
    );
}

// Host: src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs,
// `ToHttpScriptInvocationContext` (each input under its binding name in `Data`, the binding data in `Metadata`, with
// `sys.MethodName`).
#[test]
fn event_grid_envelope_carries_the_event_and_its_data_as_the_host_does() {
    let body = |event: &str| -> Value { serde_json::from_slice(&envelope::event_grid("F", "ev", event)).unwrap() };
    let with_object = body(r#"{"id":"1","data":{"a":1}}"#);
    assert_eq!(with_object["Data"]["ev"], json!({"id": "1", "data": {"a": 1}}));
    assert_eq!(with_object["Metadata"]["data"], json!({"a": 1}));
    assert_eq!(with_object["Metadata"]["sys"]["MethodName"], "F");
    assert!(
        body(r#"{"id":"1"}"#)["Metadata"].get("data").is_none(),
        "absent without data"
    );
    assert_eq!(body(r#"{"id":"1","data":null}"#)["Metadata"]["data"], "null");
    assert_eq!(body(r#"{"id":"1","data":"text"}"#)["Metadata"]["data"], r#""text""#);
    assert_eq!(body(r#"{"id":"1","data":[1,2]}"#)["Metadata"]["data"], "[1,2]");
}

// Host: src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs,
// `ToHttpScriptInvocationContext`: the trigger's JSON goes through Newtonsoft.Json's `JObject`/`JToken` and is
// written again, which keeps key order and the last duplicate, unescapes, and writes floats with a fraction.
#[test]
fn the_host_rewrites_json_keeping_key_order_and_normalizing_escapes_and_numbers() {
    assert_eq!(
        envelope::normalized(r#"{ "z": 1.50, "a": "\u0041\/", "m": [1E2, -5, 7], "z": 2 }"#),
        r#"{"z":2,"a":"A/","m":[100.0,-5,7]}"#
    );
    assert_eq!(envelope::normalized("not json"), "not json");
}

/// An app root whose worker is the shell script `script` instead of the handler.
fn app_with_worker(script: &str) -> AppDir {
    let app = AppDir::new();
    let path = app.root().join("worker.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    app.edit_host_json(|host| {
        host["customHandler"]["description"]["defaultExecutablePath"] = json!("worker.sh");
        host["functionTimeout"] = json!("00:00:02");
    });
    app
}

async fn settle(host: &Host) -> Phase {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let phase = host.phase();
        if phase != Phase::Starting || std::time::Instant::now() > deadline {
            return phase;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Host: src/WebJobs.Script/Workers/ProcessManagement/WorkerProcess.cs, `OnProcessExited`: exit code 0
// (`SuccessExitCode`) only closes the process, raising no error or restart event.
#[tokio::test]
async fn a_worker_that_exits_with_0_stays_down() {
    let host = Host::start_in(app_with_worker("exit 0"), &[]).await;
    assert_eq!(settle(&host).await, Phase::Down);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(host.workers_started(), 1, "not restarted");
    assert_eq!(host.exits().iter().map(|s| s.code()).collect::<Vec<_>>(), [Some(0)]);
    assert!(!host.post(b"{}".to_vec()).await.succeeded(), "the function stays down");
}

// Host: src/WebJobs.Script/Workers/ProcessManagement/WorkerProcess.cs, `OnProcessExited` (a non-zero exit) →
// src/WebJobs.Script/Workers/Http/HttpWorkerProcess.cs, `HandleWorkerProcessExitError` (an `HttpWorkerErrorEvent`)
// → src/WebJobs.Script/Workers/Http/HttpFunctionInvocationDispatcher.cs, `WorkerError`, `AddOrUpdateErrorBucket`
// (errors within `WorkerRestartErrorIntervalThresholdInMinutes`) and `RestartWorkerChannel` (`ErrorEventsThreshold`
// 3, then `StopApplication`).
#[tokio::test]
async fn a_worker_that_keeps_failing_is_restarted_twice_then_the_host_shuts_down() {
    let host = Host::start_in(app_with_worker("echo 'cannot start' >&2; exit 3"), &[]).await;
    assert_eq!(settle(&host).await, Phase::ShutDown);
    assert_eq!(host.workers_started(), 3);
    assert_eq!(host.exits().iter().map(|s| s.code()).collect::<Vec<_>>(), [Some(3); 3]);
    assert!(host.logged_at("cannot start", Some(Level::Error)).await);
}

/// Answers HTTP on the host's port on behalf of a script worker: `GET /` with the id in `workerId` (the id the
/// script last wrote to `worker-id`, unless `impostor`), and every `POST` with `reply`.
async fn answer_for_the_worker(port: u16, dir: &Path, impostor: Arc<AtomicBool>, reply: String) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let dir = dir.to_owned();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (dir, impostor, reply) = (dir.clone(), impostor.clone(), reply.clone());
            tokio::spawn(async move {
                let Some(request) = support::read_request_head(&mut socket).await else {
                    return;
                };
                let answer = if request.starts_with(b"GET / ") {
                    let id = if impostor.load(Ordering::SeqCst) {
                        "someone-else".to_owned()
                    } else {
                        std::fs::read_to_string(dir.join("worker-id"))
                            .unwrap_or_default()
                            .trim()
                            .to_owned()
                    };
                    let body = json!({ "workerId": id }).to_string();
                    http("200 OK", "application/json", &body)
                } else {
                    reply
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
}

/// A worker that records its id and waits; the test answers for it.
const WAITING_WORKER: &str = "echo \"$FUNCTIONS_CUSTOMHANDLER_WORKER_ID\" > worker-id; exec sleep 600";

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `IsWorkerReady`, takes any HTTP answer on the
// port for readiness; the worker id it checks against is the one src/WebJobs.Script/Workers/Http/HttpWorkerProcess.cs
// `CreateWorkerProcess` passes (`FUNCTIONS_CUSTOMHANDLER_WORKER_ID`). Checking it is the stand-in's own rule, stricter
// than the host's, so that a test never takes another test's handler for its own.
#[tokio::test]
async fn another_process_answering_on_the_port_is_never_taken_for_the_worker() {
    let app = app_with_worker(WAITING_WORKER);
    let root = app.root();
    let impostor = Arc::new(AtomicBool::new(true));
    let host = Host::launch(app, &[]);
    answer_for_the_worker(host.port(), &root, impostor.clone(), String::new()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        host.phase(),
        Phase::Starting,
        "an answer with another worker's id is not readiness"
    );
    impostor.store(false, Ordering::SeqCst);
    assert_eq!(settle(&host).await, Phase::Ready);
}

/// An HTTP answer with this status line, content type and body.
fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn reply_is(reply: String) -> (Host, support::Invocation) {
    let app = app_with_worker(WAITING_WORKER);
    let root = app.root();
    let host = Host::launch(app, &[]);
    answer_for_the_worker(host.port(), &root, Arc::default(), reply).await;
    assert_eq!(settle(&host).await, Phase::Ready);
    let invocation = host.post(b"{}".to_vec()).await;
    (host, invocation)
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest` (an empty
// body reads as a null result, which completes nothing); the kill and restart after `functionTimeout`
// (documented in https://learn.microsoft.com/azure/azure-functions/functions-host-json#functiontimeout and
// https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers; through
// src/WebJobs.Script/Workers/Http/HttpFunctionInvocationDispatcher.cs `RestartWorkerWithInvocationIdAsync`, whose
// caller on a timeout we could not confirm in the source searched).
#[tokio::test]
async fn an_empty_reply_hangs_until_the_function_timeout_then_the_worker_is_killed_and_restarted() {
    let started = std::time::Instant::now();
    let (host, invocation) = reply_is(http("200 OK", "application/json", "")).await;
    assert!(invocation.timed_out && !invocation.succeeded(), "{invocation:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited for functionTimeout"
    );
    support::wait::until(
        "the host to start a second worker after the timeout",
        Duration::from_secs(60),
        || host.diagnosis(),
        || host.workers_started() >= 2,
    )
    .await;
    assert_eq!(settle(&host).await, Phase::Ready);
    assert!(host.exits().is_empty(), "the host's own kill is not counted");
    assert_eq!(host.timeouts(), 1);
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest`
// (`httpScriptInvocationResult != null` guards setting the result).
#[tokio::test]
async fn a_null_reply_hangs_until_the_function_timeout() {
    let (_host, invocation) = reply_is(http("200 OK", "application/json", "null")).await;
    assert!(invocation.timed_out, "{invocation:?}");
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `GetHttpScriptInvocationResult` (a body that
// does not bind throws `InvalidOperationException`, failing the invocation before `ProcessLogsFromHttpResponse`).
#[tokio::test]
async fn a_reply_with_wrong_types_fails_the_invocation_and_its_logs_are_dropped() {
    let (host, invocation) = reply_is(http("200 OK", "application/json", r#"{"Logs":"x"}"#)).await;
    assert!(matches!(invocation.verdict, Verdict::Failed(_)), "{invocation:?}");
    assert!(!invocation.timed_out);
    assert!(host.function_log().is_empty());
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest`
// (`EnsureSuccessStatusCode` throws before the body is read; `ProcessLogsFromHttpResponse` logs `Logs` at
// Information only after it).
#[tokio::test]
async fn a_failed_reply_is_not_read_and_its_logs_never_reach_the_function_log() {
    let (host, invocation) = reply_is(http(
        "500 Internal Server Error",
        "application/json",
        r#"{"Logs":["never logged!"]}"#,
    ))
    .await;
    assert_eq!(invocation.status, 500);
    assert!(!invocation.succeeded());
    assert!(host.function_log().is_empty());
}
