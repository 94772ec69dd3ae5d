//! `handler replay`: the newcomer's demo and the operator's path for dead-lettered events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::events::{call_ended, chunk, recording_event};
use support::{chunk_ids, documents, project_root, quarantined, run_handler};

fn samples() -> Vec<String> {
    [
        "recording-file-status-updated.json",
        "recording-cloudevent.json",
        "dead-letter-blob.json",
    ]
    .iter()
    .map(|name| project_root().join("samples").join(name).display().to_string())
    .collect()
}

fn replay(dir: &std::path::Path, files: &[String]) -> (Option<i32>, String, String) {
    let mut args = vec!["replay"];
    args.extend(files.iter().map(String::as_str));
    let (status, stdout, stderr) = run_handler(dir, &[], &args);
    (status.code(), stdout, stderr)
}

#[test]
fn replaying_the_samples_stores_them_and_reports_where() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = replay(dir.path(), &samples());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.ends_with("replayed 7 event(s) from 3 file(s): 5 stored, 1 ignored, 1 quarantined, 0 failed\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stored (created) in .data/recordings/4b1d8a9e-0c2f-4a6b-9a57-3f0c2d1e8b77/"),
        "{stdout}"
    );
    let data = dir.path().join(".data");
    let docs = documents(&data);
    assert_eq!(
        docs.len(),
        4,
        "the dead-letter blob's two events of one recording share a document"
    );
    let split = docs
        .iter()
        .find(|d| d["callId"] == "d41f0b6c-7a2e-4c95-b38d-5e9f1a0c7d26")
        .unwrap();
    assert_eq!(split["chunks"].as_array().unwrap().len(), 2);
    assert_eq!(split["chunks"][0]["index"], 0);
    let entries = quarantined(&data);
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]["payload"].as_str().unwrap().contains("deadLetterReason"),
        "kept verbatim"
    );
}

#[test]
fn replaying_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &samples());
    let before = documents(&dir.path().join(".data"));
    let (code, stdout, _) = replay(dir.path(), &samples());
    assert_eq!(code, Some(0));
    assert_eq!(stdout.matches("stored (unchanged)").count(), 5, "{stdout}");
    assert_eq!(documents(&dir.path().join(".data")), before);
}

#[test]
fn dead_letter_blob_with_events_as_strings_and_either_schema_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = recording_event("e1", "call-1", "rec-1", "2026-11-27T15:20:01Z", &[chunk(1, "d1")]);
    first["deadLetterReason"] = json!("MaxDeliveryAttemptsExceeded");
    first["deliveryAttempts"] = json!(30);
    let second = recording_event("e2", "call-1", "rec-1", "2026-11-27T15:20:02Z", &[chunk(0, "d0")]);
    let blob = json!([first, Value::String(second.to_string()), call_ended("e3"), 42]);
    let file = dir.path().join("blob.json");
    std::fs::write(&file, blob.to_string()).unwrap();

    let (code, stdout, stderr) = replay(dir.path(), &[file.display().to_string()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("2 stored, 1 ignored, 1 quarantined, 0 failed"),
        "{stdout}"
    );
    let docs = documents(&dir.path().join(".data"));
    assert_eq!(chunk_ids(&docs[0]), ["d0", "d1"]);
}

#[test]
fn unreadable_files_are_reported_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("notes.txt");
    std::fs::write(&not_json, "hello").unwrap();
    let missing = dir.path().join("missing.json").display().to_string();
    let mut files = vec![not_json.display().to_string(), missing];
    files.push(samples()[0].clone());
    let (code, stdout, _) = replay(dir.path(), &files);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("notes.txt: not an Event Grid JSON file"), "{stdout}");
    assert!(stdout.contains("missing.json: cannot read"), "{stdout}");
    assert!(
        stdout.contains("1 stored") && stdout.contains("2 file(s) unreadable"),
        "{stdout}"
    );
}

#[test]
fn replay_without_files_explains_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = replay(dir.path(), &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("Usage: handler replay <FILE>..."), "{stderr}");
}
