//! The handler behind the stand-in Functions host: the app's files, startup, replies, limits, failures, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::events::{call_ended, chunk, recording_event};
use support::{EventGrid, FunctionApp, Host, app_root, documents, free_port, read_json, run_handler};

#[test]
fn function_app_files_follow_the_host_contract() {
    let app = FunctionApp::load();
    assert_eq!(app.binding_name, "eventGridEvent");
    let host = read_json(app_root().join("host.json"));
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
    assert!(host["logging"].is_object());

    let settings = read_json(app_root().join("local.settings.json.example"));
    let values = &settings["Values"];
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "Custom");
    assert!(
        values["AzureWebJobsStorage"].is_string(),
        "Core Tools needs AzureWebJobsStorage"
    );
    for ours in [
        "CosmosDbConnection",
        "CosmosDbConnection__accountEndpoint",
        "CosmosDbConnection__credential",
        "CosmosDbConnection__clientId",
        "RECORDINGS_DATABASE",
        "RECORDINGS_CONTAINER",
        "RECORDINGS_QUARANTINE_CONTAINER",
        "RECORDINGS_CREATE_IF_NOT_EXISTS",
        "RECORDINGS_ALLOWED_SOURCES",
        "RECORDINGS_DATA_DIR",
        "RECORDINGS_LOG_FORMAT",
        "RECORDINGS_STORE",
        "RUST_LOG",
    ] {
        assert!(values[ours].is_string(), "{ours} is listed with a placeholder");
    }
}

#[tokio::test]
async fn invocation_gets_the_hosts_json_reply_with_a_summary_log() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    let answer = host
        .invoke(&recording_event(
            "e1",
            "call-1",
            "rec-1",
            "2026-11-27T15:20:34Z",
            &[chunk(0, "d0")],
        ))
        .await;
    assert!(answer.succeeded(), "{answer:?}");
    let reply = answer.reply();
    assert_eq!(reply["Outputs"], json!({}));
    assert_eq!(reply["ReturnValue"], Value::Null);
    assert_eq!(answer.log(), "stored recording rec-1 of call call-1 (created)");
}

#[tokio::test]
async fn readiness_poll_and_unknown_routes_get_json_answers() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let ready = client.get(host.url("")).send().await.unwrap();
    assert!(ready.status().is_success());
    for path in ["api/RecordingEvent", "recordingevent", "Other"] {
        let answer = client.post(host.url(path)).body("{}").send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{path}");
        let reply: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert!(reply["Logs"].is_array());
    }
    let wrong_method = client.get(host.url("RecordingEvent")).send().await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
}

#[tokio::test]
async fn handler_listens_on_the_loopback_address_only() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    // 127.0.0.2 is this machine too: a server bound to all interfaces would answer there.
    let elsewhere = tokio::net::TcpStream::connect(("127.0.0.2", host.port)).await;
    assert!(elsewhere.is_err(), "the handler answered on 127.0.0.2");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", host.port)).await.is_ok());
}

#[tokio::test]
async fn older_hosts_port_variable_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let port_text = port.to_string();
    let host = Host::start_with_env(dir.path(), &[("FUNCTIONS_HTTPWORKER_PORT", &port_text)], port).await;
    assert!(host.invoke(&call_ended("e1")).await.succeeded());
}

#[tokio::test]
async fn sigterm_finishes_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    assert!(host.invoke(&call_ended("e1")).await.succeeded());
    let (status, output) = host.terminate();
    assert!(status.success(), "exit status {status}:\n{output}");
    assert!(output.contains("shutting down"), "{output}");
}

#[tokio::test]
async fn sigterm_lets_an_invocation_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    let event = recording_event("e1", "call-1", "rec-1", "2026-11-27T15:20:34Z", &[chunk(0, "d0")]);
    let body = support::envelope("eventGridEvent", event.clone(), &event);
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(receive, |mut r| async { r.recv().await.map(|item| (item, r)) });
    let request = reqwest::Client::new()
        .post(host.url("RecordingEvent"))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let in_flight = tokio::spawn(request);
    send.send(Ok(body[..20].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.signal("TERM"); // while the body is still arriving
    tokio::time::sleep(Duration::from_millis(300)).await;
    send.send(Ok(body[20..].to_vec())).await.unwrap();
    drop(send);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, output) = host.wait_for_exit();
    assert!(status.success(), "exit status {status}:\n{output}");
    assert_eq!(documents(&dir.path().join(".data")).len(), 1);
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
async fn default_data_directory_is_dot_data_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    let event = recording_event("e1", "call-1", "rec-1", "2026-11-27T15:20:34Z", &[chunk(0, "d0")]);
    assert!(host.invoke(&event).await.succeeded());
    assert!(dir.path().join(".data/recordings/call-1/rec-1.json").is_file());
}

#[tokio::test]
async fn memory_store_warns_that_nothing_is_kept_and_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[("RECORDINGS_STORE", "memory")]).await;
    let event = recording_event("e1", "call-1", "rec-1", "2026-11-27T15:20:34Z", &[chunk(0, "d0")]);
    assert_eq!(
        host.invoke(&event).await.log(),
        "stored recording rec-1 of call call-1 (created)"
    );
    assert_eq!(
        host.invoke(&event).await.log(),
        "stored recording rec-1 of call call-1 (unchanged)"
    );
    assert!(
        host.logged("WARN").await && host.logged("LOST when the handler stops").await,
        "{}",
        host.output()
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file written");
}

#[tokio::test]
async fn temporary_files_of_a_crashed_writer_are_swept_after_startup() {
    let dir = tempfile::tempdir().unwrap();
    let call = dir.path().join(".data/recordings/call-1");
    std::fs::create_dir_all(&call).unwrap();
    let abandoned = call.join(".rec-1.json.4000000-0.tmp"); // no such process: pids stay below 2^22
    std::fs::write(&abandoned, b"{\"torn").unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let _host = Host::start(dir.path(), &[]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while abandoned.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!abandoned.exists(), "the background sweep removed the abandoned file");
}

#[tokio::test]
async fn oversized_body_fails_the_invocation_with_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]).await;
    let huge = format!(
        r#"{{"Data":{{"eventGridEvent":{{"id":"x","padding":"{}"}}}}}}"#,
        "a".repeat(5 << 20)
    );
    let answer = host.post(huge).await;
    assert_eq!(answer.status, 413);
    assert!(!answer.succeeded());
    assert!(host.logged("larger than the limit").await, "{}", host.output());
    assert!(documents(&dir.path().join(".data")).is_empty());
}

#[tokio::test]
async fn store_failure_fails_the_invocation_and_redelivery_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = Host::start(dir.path(), &[("RECORDINGS_DATA_DIR", data.to_str().unwrap())]).await;
    // Break the store: the recordings folder becomes a file, so no call folder can be made in it.
    std::fs::remove_dir(data.join("recordings")).unwrap();
    std::fs::write(data.join("recordings"), b"").unwrap();

    let event = recording_event("e1", "call-1", "rec-1", "2026-11-27T15:20:34Z", &[chunk(0, "d0")]);
    let failed = host.invoke(&event).await;
    assert_eq!(failed.status, 503, "{failed:?}");
    assert!(!failed.succeeded());
    assert!(
        !failed.body.contains("recordings"),
        "no internal detail in the reply: {}",
        failed.body
    );
    assert!(host.logged("Event Grid will retry").await, "{}", host.output());

    // The store is repaired while Event Grid waits; its next attempt stores the event.
    let grid = EventGrid {
        host: &host,
        schedule: vec![Duration::from_millis(300); 5],
    };
    let repair = {
        let data = data.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::remove_file(data.join("recordings")).unwrap();
            std::fs::create_dir(data.join("recordings")).unwrap();
        })
    };
    let delivery = grid.deliver(&event).await;
    repair.await.unwrap();
    assert!(delivery.delivered, "{delivery:?}");
    assert!(delivery.attempts >= 2, "the first attempt met the broken store");
    assert_eq!(documents(&data).len(), 1);
}
