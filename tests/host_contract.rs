//! The handler behind the stand-in Functions host: the app's files, startup, replies, log streams, stops, exit
//! statuses, timeouts, the data folder, limits and failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use acs_recording_handler::config::SETTINGS;
use serde_json::{Value, json};
use support::events::{call_ended, chunk, recording_event};
use support::host::Stream;
use support::{
    AppDir, EventGrid, FunctionApp, Host, Level, Phase, documents, project_root, read_json, run_handler, wait,
};

const T1: &str = "2026-11-27T15:20:34Z";

fn event(id: &str, call: &str) -> Value {
    recording_event(id, call, "rec-1", T1, &[chunk(0, &format!("{call}-d0"))])
}

#[test]
fn function_app_files_follow_the_host_contract() {
    let app = FunctionApp::load(&project_root());
    let recording_event = app.function("RecordingEvent");
    let trigger = recording_event.trigger();
    assert_eq!(
        (trigger.kind.as_str(), trigger.name.as_str()),
        ("eventGridTrigger", "eventGridEvent")
    );
    let host = read_json(project_root().join("host.json"));
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
    assert!(host["logging"].is_object());

    let settings = read_json(project_root().join("local.settings.json.example"));
    let values = &settings["Values"];
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "Custom");
    assert!(
        values["AzureWebJobsStorage"].is_string(),
        "Core Tools needs AzureWebJobsStorage"
    );
}

/// The settings the Functions host itself needs in `local.settings.json`, beside the handler's own.
const HOST_SETTINGS: [&str; 2] = ["FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"];

#[test]
fn the_example_settings_and_the_settings_reader_list_the_same_settings() {
    let read = |names: &mut dyn Iterator<Item = String>| names.collect::<BTreeSet<String>>();
    let listed = read(&mut SETTINGS.iter().map(|name| name.to_string()));

    let example = read_json(project_root().join("local.settings.json.example"));
    let Some(values) = example["Values"].as_object() else {
        panic!("local.settings.json.example has no Values object")
    };
    for (name, value) in values {
        assert!(
            value.is_string(),
            "{name} has a string placeholder in local.settings.json.example"
        );
    }
    let in_example = read(
        &mut values
            .keys()
            .filter(|name| !HOST_SETTINGS.contains(&name.as_str()))
            .cloned(),
    );
    assert_eq!(
        in_example, listed,
        "local.settings.json.example (left) and config::SETTINGS (right) differ"
    );
}

#[tokio::test]
async fn invocation_gets_the_hosts_json_reply_and_its_log_line_reaches_the_function_log() {
    let host = Host::start(&[]).await;
    let answer = host.invoke(&event("e1", "call-1")).await;
    assert!(answer.succeeded(), "{answer:?}");
    let reply = answer.reply();
    assert_eq!(reply["Outputs"], json!({}));
    assert_eq!(reply["ReturnValue"], Value::Null);
    let line = "stored recording rec-1 of call call-1 (created)";
    assert_eq!(answer.log(), line);
    assert_eq!(host.function_log(), [("RecordingEvent".to_owned(), line.to_owned())]);
}

#[tokio::test]
async fn readiness_poll_and_unknown_routes_get_json_answers() {
    let host = Host::start(&[]).await;
    let client = reqwest::Client::new();
    let ready = client.get(host.url("")).send().await.unwrap();
    assert!(ready.status().is_success());
    for path in ["api/RecordingEvent", "recordingevent", "Other"] {
        let answer = client.post(host.url(path)).body("{}").send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{path}");
        let reply: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert!(
            reply["Logs"][0].as_str().unwrap().contains("POST /RecordingEvent"),
            "{reply}"
        );
    }
    let wrong_method = client.get(host.url("RecordingEvent")).send().await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
}

#[tokio::test]
async fn readiness_answer_names_the_worker_the_host_started() {
    let host = Host::start(&[]).await;
    let ready: Value = reqwest::get(host.url("")).await.unwrap().json().await.unwrap();
    let id = ready["workerId"].as_str().unwrap();
    assert_eq!(id.len(), 36, "the id the host gave this process: {ready}");
    host.restart().await;
    let again: Value = reqwest::get(host.url("")).await.unwrap().json().await.unwrap();
    assert_ne!(again["workerId"].as_str(), Some(id), "each process gets its own id");
}

#[tokio::test]
async fn handler_listens_on_the_loopback_address_only() {
    let host = Host::start(&[]).await;
    // 127.0.0.2 is this machine too: a server bound to all interfaces would answer there.
    let elsewhere = tokio::net::TcpStream::connect(("127.0.0.2", host.port())).await;
    assert!(elsewhere.is_err(), "the handler answered on 127.0.0.2");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", host.port())).await.is_ok());
}

#[test]
fn older_hosts_port_variable_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::ports::Port::reserve();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .current_dir(dir.path())
        .env_clear()
        .env("FUNCTIONS_HTTPWORKER_PORT", port.0.to_string())
        .env("RECORDINGS_STORE", "memory")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let answered = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port.0)).is_ok() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "the handler listened on FUNCTIONS_HTTPWORKER_PORT");
}

/// The level in a line of either log format.
fn level_of(line: &str) -> Option<String> {
    match serde_json::from_str::<Value>(line) {
        Ok(json) => json["level"].as_str().map(str::to_owned),
        Err(_) => line.split_whitespace().nth(1).map(str::to_owned),
    }
}

async fn logs_go_to_the_stream_the_host_expects(format: &str) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let host = Host::start(&[
        ("RECORDINGS_LOG_FORMAT", format),
        ("RECORDINGS_DATA_DIR", data_dir),
        ("RUST_LOG", "debug"),
    ])
    .await;
    assert!(host.invoke(&event("e1", "call-1")).await.succeeded());
    assert!(
        host.post(b"not json".to_vec()).await.succeeded(),
        "quarantined, with a warning"
    );
    // Break one call's folder (a file where the folder should be): the store fails, an error is logged.
    std::fs::write(data.path().join("recordings/call-broken"), b"").unwrap();
    assert!(!host.invoke(&event("e2", "call-broken")).await.succeeded());

    for (needle, stream, level) in [
        ("listening on 127.0.0.1", Stream::Stdout, Level::Information),
        (
            "stored recording rec-1 of call call-1",
            Stream::Stdout,
            Level::Information,
        ),
        ("payload_quarantined", Stream::Stderr, Level::Warning),
        ("invocation failed", Stream::Stderr, Level::Error),
    ] {
        assert!(host.logged(needle).await, "{needle}:\n{}", host.output());
        let line = host.logs().into_iter().find(|l| l.text.contains(needle)).unwrap();
        assert_eq!((line.stream, line.level), (stream, level), "{format}: {}", line.text);
    }
    let logs = host.logs();
    assert!(logs.len() > 4, "{logs:?}");
    for line in logs {
        let level = level_of(&line.text).unwrap_or_else(|| panic!("a log line: {}", line.text));
        let expected = match level.as_str() {
            "TRACE" | "DEBUG" | "INFO" => Stream::Stdout,
            "WARN" | "ERROR" => Stream::Stderr,
            other => panic!("unknown level {other} in {}", line.text),
        };
        assert_eq!(line.stream, expected, "{format}: {}", line.text);
    }
}

#[tokio::test]
async fn text_logs_go_to_stdout_up_to_info_and_to_stderr_from_warn() {
    logs_go_to_the_stream_the_host_expects("text").await;
}

#[tokio::test]
async fn json_logs_go_to_stdout_up_to_info_and_to_stderr_from_warn() {
    logs_go_to_the_stream_the_host_expects("json").await;
}

#[tokio::test]
async fn log_lines_are_not_held_back_when_the_host_kills_the_worker() {
    let host = Host::start(&[("RUST_LOG", "debug")]).await;
    assert!(host.invoke(&event("e1", "call-1")).await.succeeded());
    // The host's SIGKILL comes at any moment, here as soon as the invocation that logs is answered: a line held in
    // a buffer then is lost.
    host.crash().await;
    let written = host
        .logs()
        .into_iter()
        .filter(|l| l.worker == 1)
        .map(|l| l.text)
        .collect::<Vec<_>>();
    assert!(
        written
            .iter()
            .any(|l| l.contains("stored recording rec-1 of call call-1 (created)")),
        "{written:#?}"
    );
}

#[tokio::test]
async fn host_stops_and_restarts_the_worker_with_sigkill_and_counts_no_error() {
    let host = Host::start(&[]).await;
    let first = host.pid().unwrap();
    host.restart().await;
    assert_ne!(host.pid(), Some(first));
    assert_eq!(host.workers_started(), 2);
    assert!(
        host.exits().is_empty(),
        "a stop the host made is not an exit it reacts to"
    );
    assert!(
        !host.output().contains("shutting down"),
        "SIGKILL gives no chance to shut down:\n{}",
        host.output()
    );
    assert!(host.invoke(&event("e1", "call-1")).await.succeeded());
}

async fn in_flight_invocation_finishes_after(signal: &str, status: i32) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = Host::start(&[]).await;
    let first = event("e1", "call-1");
    let body = support::envelope::event_grid("RecordingEvent", "eventGridEvent", &first.to_string());
    // The request is written by hand, so that the test sees the worker take it in: with `Expect: 100-continue`, the
    // worker's HTTP server answers `100 Continue` once the function has begun reading the body.
    let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", host.port()))
        .await
        .unwrap();
    let head = format!(
        "POST /RecordingEvent HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    let interim = tokio::time::timeout(Duration::from_secs(30), async {
        while !answer.ends_with(b"\r\n\r\n") {
            let read = connection.read(&mut buffer).await.unwrap();
            assert!(
                read > 0,
                "the worker closed the connection: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("waited 30 s for the worker to begin reading the request's body, in vain");
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    connection.write_all(&body[..20]).await.unwrap();
    host.signal(signal); // while the body is still arriving
    support::wait::until(
        "the worker to begin shutting down",
        Duration::from_secs(30),
        || host.output(),
        || host.output().contains("shutting down"),
    )
    .await;
    connection.write_all(&body[20..]).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(30), connection.read_to_string(&mut response))
        .await
        .expect("waited 30 s for the answer, in vain")
        .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "the in-flight invocation answered: {response:?}"
    );
    let exit = host.wait_for_exit().await;
    assert_eq!(exit.code(), Some(status), "{}", host.output());
    assert!(host.output().contains("shutting down"), "{}", host.output());
    assert_eq!(documents(&host.data_dir()).len(), 1);
    // A stop the host did not ask for: the non-zero status makes it start the worker again.
    assert_eq!(host.wait_until_ready().await, Phase::Ready);
    assert_eq!(host.workers_started(), 2);
    assert!(host.invoke(&event("e2", "call-2")).await.succeeded());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_invocations_and_exits_143_so_the_host_restarts_the_worker() {
    in_flight_invocation_finishes_after("TERM", 143).await;
}

#[tokio::test]
async fn sigint_finishes_in_flight_invocations_and_exits_130_so_the_host_restarts_the_worker() {
    in_flight_invocation_finishes_after("INT", 130).await;
}

#[tokio::test]
async fn invocation_past_the_function_timeout_fails_and_the_worker_is_killed_and_restarted() {
    let app = AppDir::new();
    app.edit_host_json(|host| host["functionTimeout"] = json!("00:00:02"));
    let data = tempfile::tempdir().unwrap();
    let host = Host::start_in(app, &[("RECORDINGS_DATA_DIR", data.path().to_str().unwrap())]).await;
    // Hold the call's lock, as a stuck writer would: the handler's merge waits for it.
    let call = data.path().join("recordings/call-1");
    std::fs::create_dir_all(&call).unwrap();
    let lock = std::fs::File::open(&call).unwrap();
    lock.lock().unwrap();

    let stuck = host.invoke(&event("e1", "call-1")).await;
    assert!(!stuck.succeeded() && stuck.timed_out, "{stuck:?}");
    drop(lock);
    wait::until(
        "the host to start a second worker after the timeout",
        Duration::from_secs(60),
        || host.diagnosis(),
        || host.workers_started() >= 2,
    )
    .await;
    assert_eq!(host.wait_until_ready().await, Phase::Ready);
    assert!(host.exits().is_empty(), "the host's own kill is not an error exit");
    let delivery = EventGrid::new(&host).deliver(&event("e1", "call-1")).await;
    assert!(delivery.delivered, "{delivery:?}");
    assert_eq!(documents(data.path()).len(), 1);
}

#[test]
fn bad_configuration_is_reported_at_once_and_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_handler(
        dir.path(),
        &[("RECORDINGS_LOG_FORMAT", "xml"), ("WEBSITE_INSTANCE_ID", "abc123")],
        &[],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FUNCTIONS_CUSTOMHANDLER_PORT is not set"), "{stderr}");
    assert!(stderr.contains("RECORDINGS_LOG_FORMAT"), "{stderr}");
    assert!(stderr.contains("WEBSITE_INSTANCE_ID"), "{stderr}");
    assert!(
        !dir.path().join(".data").exists(),
        "nothing written before the configuration is valid"
    );
}

#[tokio::test]
async fn the_example_settings_keep_the_data_folder_outside_the_app_root() {
    let host = Host::start(&[]).await;
    assert!(
        !host.data_dir().starts_with(host.app_root()),
        "{}",
        host.data_dir().display()
    );
    assert!(host.invoke(&event("e1", "call-1")).await.succeeded());
    assert!(host.data_dir().join("recordings/call-1/rec-1.json").is_file());
    host.app_root_checked().await;
    assert_eq!(host.host_restarts(), 0, "no folder appeared in the app root");
    assert!(
        !host.output().contains("inside the function app's root"),
        "{}",
        host.output()
    );
}

#[tokio::test]
async fn a_data_folder_inside_the_app_root_restarts_the_host_and_is_warned_about() {
    let host = Host::start(&[("RECORDINGS_DATA_DIR", ".data")]).await;
    support::wait::until(
        "the new .data folder to restart the host",
        Duration::from_secs(10),
        || host.diagnosis(),
        || host.host_restarts() > 0,
    )
    .await;
    assert_eq!(host.host_restarts(), 1, "the new .data folder restarts the host once");
    assert!(
        host.logged_at(
            "RECORDINGS_DATA_DIR is inside the function app's root",
            Some(Level::Warning)
        )
        .await,
        "{}",
        host.output()
    );
    assert_eq!(host.wait_until_ready().await, Phase::Ready);
    assert!(host.invoke(&event("e1", "call-1")).await.succeeded());
    assert!(host.app_root().join(".data/recordings/call-1/rec-1.json").is_file());
}

#[tokio::test]
async fn memory_store_warns_that_nothing_is_kept_and_writes_no_file() {
    let host = Host::start(&[("RECORDINGS_STORE", "memory")]).await;
    let first = event("e1", "call-1");
    assert_eq!(
        host.invoke(&first).await.log(),
        "stored recording rec-1 of call call-1 (created)"
    );
    assert_eq!(
        host.invoke(&first).await.log(),
        "stored recording rec-1 of call call-1 (unchanged)"
    );
    assert!(
        host.logged_at("LOST when the handler stops", Some(Level::Warning))
            .await,
        "{}",
        host.output()
    );
    assert!(!host.data_dir().exists(), "no file written");
}

#[tokio::test]
async fn temporary_files_of_a_crashed_writer_are_swept_after_startup() {
    let data = tempfile::tempdir().unwrap();
    let call = data.path().join("recordings/call-1");
    std::fs::create_dir_all(&call).unwrap();
    let abandoned = call.join(".rec-1.json.4000000-0.tmp"); // no such process: pids stay below 2^22
    std::fs::write(&abandoned, b"{\"torn").unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let _host = Host::start(&[("RECORDINGS_DATA_DIR", data.path().to_str().unwrap())]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while abandoned.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!abandoned.exists(), "the background sweep removed the abandoned file");
}

#[tokio::test]
async fn oversized_body_fails_the_invocation_with_a_log_line() {
    let host = Host::start(&[]).await;
    let huge = format!(
        r#"{{"Data":{{"eventGridEvent":{{"id":"x","padding":"{}"}}}}}}"#,
        "a".repeat(5 << 20)
    );
    let answer = host.post(huge).await;
    assert_eq!(answer.status, 413);
    assert!(!answer.succeeded());
    assert!(
        host.logged_at("larger than the limit", Some(Level::Error)).await,
        "{}",
        host.output()
    );
    assert!(documents(&host.data_dir()).is_empty());
}

#[tokio::test]
async fn store_failure_fails_the_invocation_and_redelivery_stores_it() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(&[("RECORDINGS_DATA_DIR", data.path().to_str().unwrap())]).await;
    // Break the store: the recordings folder becomes a file, so no call folder can be made in it.
    std::fs::remove_dir(data.path().join("recordings")).unwrap();
    std::fs::write(data.path().join("recordings"), b"").unwrap();

    let first = event("e1", "call-1");
    let failed = host.invoke(&first).await;
    assert_eq!(failed.status, 503, "{failed:?}");
    assert!(!failed.succeeded());
    assert!(
        !failed.body.contains("recordings"),
        "no internal detail in the reply: {}",
        failed.body
    );
    assert!(host.logged("its trigger will retry it").await, "{}", host.output());
    assert!(
        host.function_log().is_empty(),
        "a failed reply's Logs never reach the function log"
    );

    // The store is repaired once Event Grid's first attempt has met it broken (the handler said so a second time);
    // its next attempt stores the event. Attempts to spare, so that a slow repair is not what the test measures.
    let failures_logged = || {
        host.logs()
            .iter()
            .filter(|line| line.text.contains("its trigger will retry it"))
            .count()
    };
    let grid = EventGrid::with_schedule(&host, vec![Duration::from_millis(300); 30]);
    let repair = async {
        wait::until(
            "Event Grid's first attempt to fail on the broken store",
            Duration::from_secs(30),
            || host.diagnosis(),
            || failures_logged() >= 2,
        )
        .await;
        std::fs::remove_file(data.path().join("recordings")).unwrap();
        std::fs::create_dir(data.path().join("recordings")).unwrap();
    };
    let (delivery, ()) = tokio::join!(grid.deliver(&first), repair);
    assert!(delivery.delivered, "{delivery:?}");
    assert!(delivery.attempts >= 2, "the first attempt met the broken store");
    assert_eq!(documents(data.path()).len(), 1);
}

#[tokio::test]
async fn a_batch_with_a_failed_event_is_answered_500_and_redelivered_whole() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(&[("RECORDINGS_DATA_DIR", data.path().to_str().unwrap())]).await;
    std::fs::write(data.path().join("recordings/call-broken"), b"").unwrap();
    let batch = json!([event("e1", "call-1"), event("e2", "call-broken"), call_ended("e3")]).to_string();

    let (status, invocations) = host.event_grid_webhook("RecordingEvent", &batch).await;
    assert_eq!(status, 500, "one failed invocation fails the batch");
    let succeeded: Vec<bool> = invocations.iter().map(|i| i.succeeded()).collect();
    assert_eq!(succeeded, [true, false, true], "each event is its own invocation");

    std::fs::remove_file(data.path().join("recordings/call-broken")).unwrap();
    let (status, invocations) = host.event_grid_webhook("RecordingEvent", &batch).await;
    assert_eq!(status, 202);
    let logs: Vec<String> = invocations.iter().map(|i| i.log()).collect();
    assert_eq!(
        logs,
        [
            "stored recording rec-1 of call call-1 (unchanged)",
            "stored recording rec-1 of call call-broken (created)",
            "ignored Microsoft.Communication.CallEnded event",
        ],
        "the redelivered batch repeats the events that had succeeded, and they change nothing"
    );
    assert_eq!(documents(data.path()).len(), 2);
}

#[tokio::test]
async fn the_handler_never_depends_on_the_exact_text_event_grid_sent() {
    let host = Host::start(&[]).await;
    let plain = r#"{"id":"e1","topic":"/t","subject":"/recording/call/call-1/recordingId/rec-1","eventType":"Microsoft.Communication.RecordingFileStatusUpdated","eventTime":"2026-11-27T15:20:34Z","data":{"recordingDurationMs":6620.0,"recordingStorageInfo":{"recordingChunks":[{"documentId":"d0","index":0}]}}}"#;
    let respelled = r#"{"id":"e\u0031","topic":"\/t","subject":"\/recording\/call\/call-1\/recordingId\/rec-1","eventType":"Microsoft.Communication.RecordingFileStatusUpdated","eventTime":"2026-11-27T15:20:34Z","data":{"recordingDurationMs":6.62e3,"recordingStorageInfo":{"recordingChunks":[{"documentId":"d\u0030","index":0}]}}}"#;
    assert_eq!(
        host.invoke_event_text("RecordingEvent", plain).await.log(),
        "stored recording rec-1 of call call-1 (created)"
    );
    assert_eq!(
        host.invoke_event_text("RecordingEvent", respelled).await.log(),
        "stored recording rec-1 of call call-1 (unchanged)"
    );
    let broken = r#"{"id":"b1","subject":"/recording/call/call-2","eventType":"Microsoft.Communication.RecordingFileStatusUpdated","data":{"n":1.50}}"#;
    let broken_respelled = r#"{"id":"b\u0031","subject":"\/recording\/call\/call-2","eventType":"Microsoft.Communication.RecordingFileStatusUpdated","data":{"n":15e-1}}"#;
    let first = host.invoke_event_text("RecordingEvent", broken).await.log();
    let second = host.invoke_event_text("RecordingEvent", broken_respelled).await.log();
    assert!(first.starts_with("quarantined as "), "{first}");
    assert_eq!(
        first, second,
        "one quarantine entry for one event, however it was spelled"
    );
    assert_eq!(support::quarantined(&host.data_dir()).len(), 1);
}
