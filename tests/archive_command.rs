//! `handler archive` and archiving in `handler replay`: the way to archive on a machine with no Functions host, and
//! to retry failed chunks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::acs::{AcsOptions, AcsServer, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, Fault, FileKind};
use support::events::{chunk_at, recording_event};
use support::{documents, run_handler};

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The settings that turn archival on against `acs`.
fn archival(acs: &AcsServer) -> Vec<(String, String)> {
    vec![
        (
            "AcsConnection".into(),
            format!("endpoint=https://{DEFAULT_ACS_HOST}/;accesskey={DEFAULT_ACCESS_KEY}"),
        ),
        ("RECORDINGS_ARCHIVE_SOURCES".into(), acs.base_url()),
    ]
}

fn run(dir: &std::path::Path, settings: &[(String, String)], args: &[&str]) -> (Option<i32>, String, String) {
    let (status, stdout, stderr) = run_handler(dir, &support::str_pairs(settings), args);
    (status.code(), stdout, stderr)
}

/// A file with one event of `call-1`/`rec-1` announcing these chunks, served by `acs`.
fn event_file(dir: &std::path::Path, acs: &AcsServer, time: &str, chunks: &[&str]) -> String {
    let chunks: Vec<Value> = chunks
        .iter()
        .enumerate()
        .map(|(i, id)| chunk_at(i as u64, id, &acs.add_chunk(id, 20_000)))
        .collect();
    let path = dir.join("events.json");
    std::fs::write(
        &path,
        json!([recording_event("e1", "call-1", "rec-1", time, &chunks)]).to_string(),
    )
    .unwrap();
    path.display().to_string()
}

fn chunk_states(dir: &std::path::Path) -> Vec<String> {
    let docs = documents(&dir.join(".data"));
    docs[0]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["archive"]["state"].as_str().unwrap_or("none").to_owned())
        .collect()
}

#[test]
fn replay_says_when_archival_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let sample = support::project_root().join("samples/recording-file-status-updated.json");
    let (code, stdout, _) = run(dir.path(), &[], &["replay", sample.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("archival is off: ACS deletes recording files 24 hours after the event"),
        "{stdout}"
    );
}

#[test]
fn replay_archives_each_stored_chunk_inline_and_prints_where_its_files_landed() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let file = event_file(dir.path(), &acs, &now(), &["d0", "d1"]);
    let (code, stdout, stderr) = run(dir.path(), &archival(&acs), &["replay", &file]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("stored (created) in .data/recordings/call-1/rec-1.json"),
        "{stdout}"
    );
    for chunk in ["d0", "d1"] {
        assert!(
            stdout.contains(&format!("  chunk {chunk}: archived: content in file://"))
                && stdout.contains(&format!("/archive/call-1/rec-1/{chunk}.content.mp4 (20000 bytes)")),
            "{stdout}"
        );
    }
    assert!(
        stdout
            .trim_end()
            .ends_with("2 chunk(s) archived, 0 already done, 0 expired, 0 failed, 0 not finished"),
        "{stdout}"
    );
    assert_eq!(chunk_states(dir.path()), ["archived", "archived"]);
    let content = dir.path().join(".data/archive/call-1/rec-1/d0.content.mp4");
    assert_eq!(
        support::acs::sha256_hex(std::fs::File::open(content).unwrap()),
        acs.content_sha256_hex("d0")
    );
}

#[test]
fn archive_command_archives_what_replay_left_pending_and_then_has_nothing_left() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let file = event_file(dir.path(), &acs, &now(), &["d0", "d1"]);
    let settings = archival(&acs);
    let (code, stdout, _) = run(dir.path(), &settings, &["replay", "--no-archive", &file]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(chunk_states(dir.path()), ["pending", "pending"]);
    assert!(acs.requests().is_empty(), "--no-archive downloads nothing");

    acs.inject("d1", FileKind::Metadata, Fault::Status(404));
    let (code, stdout, stderr) = run(dir.path(), &settings, &["archive", "--call", "call-1"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("call-1/rec-1 chunk d0: archived: content in file://"),
        "{stdout}"
    );
    assert!(
        stdout.contains("call-1/rec-1 chunk d1: expired: ACS answered 404"),
        "{stdout}"
    );
    assert_eq!(chunk_states(dir.path()), ["archived", "expired"]);

    let (code, stdout, _) = run(dir.path(), &settings, &["archive"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("0 chunk(s) archived, 0 already done"),
        "nothing left to do: {stdout}"
    );
    let (_, stdout, _) = run(dir.path(), &settings, &["archive", "--call", "another-call"]);
    assert!(stdout.starts_with("0 chunk(s) archived"), "{stdout}");
}

#[test]
fn archive_command_leaves_chunks_past_the_deadline_alone_and_fails_on_unfinished_work() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let old = (time::OffsetDateTime::now_utc() - time::Duration::days(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let file = event_file(dir.path(), &acs, &old, &["d0"]);
    let settings = archival(&acs);
    run(dir.path(), &settings, &["replay", "--no-archive", &file]);
    let (code, stdout, _) = run(dir.path(), &settings, &["archive"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("chunk d0: past ACS's 24-hour deadline; left as it is"),
        "{stdout}"
    );
    assert!(acs.requests().is_empty());

    let recent = tempfile::tempdir().unwrap();
    let file = event_file(recent.path(), &acs, &now(), &["d9"]);
    run(recent.path(), &settings, &["replay", "--no-archive", &file]);
    for _ in 0..5 {
        acs.inject("d9", FileKind::Metadata, Fault::Status(503));
    }
    let (code, stdout, _) = run(recent.path(), &settings, &["archive"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("chunk d9: not finished (run the command again): ACS answered 503"),
        "{stdout}"
    );
    assert_eq!(
        chunk_states(recent.path()),
        ["pending"],
        "still pending, for the next run"
    );
}

#[test]
fn archive_command_needs_archival_to_be_on() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(dir.path(), &[], &["archive"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("archival is off: set AcsConnection"), "{stderr}");
}

#[test]
fn replay_and_archive_survive_times_at_the_edges_of_the_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let late = recording_event(
        "e1",
        "call-1",
        "rec-1",
        support::events::LAST_INSTANT,
        &[chunk_at(0, "d0", &acs.add_chunk("d0", 20_000))],
    );
    let unnamed = support::events::recording_starting_at_the_calendars_edge(
        "e2",
        "call-2",
        &now(),
        &[chunk_at(0, "d1", &acs.add_chunk("d1", 20_000))],
    );
    let path = dir.path().join("edges.json");
    std::fs::write(&path, json!([late, unnamed]).to_string()).unwrap();
    // Stored first without archiving, so that `handler archive` finds both chunks pending in the store.
    let (code, stdout, stderr) = run(
        dir.path(),
        &archival(&acs),
        &["replay", "--no-archive", path.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("2 stored"), "{stdout}");
    let (code, stdout, stderr) = run(dir.path(), &archival(&acs), &["archive"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let states: Vec<String> = documents(&dir.path().join(".data"))
        .iter()
        .map(|doc| {
            doc["chunks"][0]["archive"]["state"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    assert_eq!(states, ["archived", "archived"], "{stdout}");
    // And replayed again, archiving inline: nothing left to do, nothing crashes.
    let (code, stdout, stderr) = run(dir.path(), &archival(&acs), &["replay", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

/// `handler recordings` with these settings and arguments: its JSON answer.
fn recordings(dir: &std::path::Path, settings: &[(String, String)], args: &[&str]) -> Value {
    let mut all = vec!["recordings"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(dir, settings, &all);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Replays one event of two chunks with archival on, into `dir`; the settings and the event file.
fn replayed(dir: &std::path::Path, acs: &AcsServer) -> (Vec<(String, String)>, String) {
    let file = event_file(dir, acs, &now(), &["d0", "d1"]);
    let settings = archival(acs);
    let (code, stdout, stderr) = run(dir, &settings, &["replay", &file]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    (settings, file)
}

#[test]
fn recordings_lists_a_calls_recordings_with_links_to_the_archived_files() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let (settings, _) = replayed(dir.path(), &acs);

    let listed = recordings(dir.path(), &settings, &["--call", "call-1", "--links"]);
    assert_eq!(listed["continuationToken"], Value::Null);
    let listed = listed["recordings"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], "rec-1");
    for chunk in listed[0]["chunks"].as_array().unwrap() {
        let id = chunk["documentId"].as_str().unwrap();
        let links = &chunk["links"];
        assert!(
            links.get("expiresOn").is_none(),
            "a local file's link does not expire: {links}"
        );
        let content = url::Url::parse(links["content"].as_str().unwrap()).unwrap();
        assert_eq!(content.scheme(), "file");
        let bytes = std::fs::read(content.to_file_path().unwrap()).unwrap();
        assert_eq!(support::acs::sha256_hex(&bytes[..]), acs.content_sha256_hex(id));
    }

    let count = |args: &[&str]| {
        recordings(dir.path(), &settings, args)["recordings"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&["--call", "no-such-call"]), 0, "an unknown call lists nothing");
    assert_eq!(count(&["--archive-state", "archived"]), 1);
    assert_eq!(count(&["--archive-state", "pending"]), 0);
    assert_eq!(count(&["--server-call", "c2VydmVyLWNhbGwtaWQ"]), 1);
    assert_eq!(count(&["--server-call", "another"]), 0);
    let without_links = recordings(dir.path(), &settings, &[]);
    assert!(without_links["recordings"][0]["chunks"][0].get("links").is_none());
    let (code, _, _) = run(dir.path(), &settings, &["recordings", "--archive-state", "lost"]);
    assert_eq!(code, Some(2), "an unknown state is refused");
}

#[test]
fn erase_removes_a_call_everywhere_and_a_replay_of_its_event_brings_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let (settings, file) = replayed(dir.path(), &acs);
    assert_eq!(support::files_under(&dir.path().join(".data/archive")).len(), 4);

    let (code, stdout, stderr) = run(dir.path(), &settings, &["erase", "--call", "call-1"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let erased: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        erased,
        json!({"erased": {"recordings": 1, "files": 4, "acsFiles": 2, "quarantined": 0}})
    );
    assert!(
        acs.deleted("d0") && acs.deleted("d1"),
        "the files still at ACS are deleted"
    );
    assert!(support::files_under(&dir.path().join(".data/archive")).is_empty());
    assert!(
        recordings(dir.path(), &settings, &[])["recordings"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let audit = stderr
        .lines()
        .find(|line| line.contains("audit"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(audit.contains("call-1") && audit.contains("recordings=1"), "{audit}");

    // The same event again (a dead-lettered copy, say): acknowledged, not stored, not archived.
    let (code, stdout, stderr) = run(dir.path(), &settings, &["replay", &file]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("was erased"), "{stdout}");
    assert!(
        recordings(dir.path(), &settings, &[])["recordings"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(support::files_under(&dir.path().join(".data/archive")).is_empty());

    let (code, stdout, _) = run(dir.path(), &settings, &["erase", "--call", "call-1"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({"erased": {"recordings": 0, "files": 0, "acsFiles": 0, "quarantined": 0}})
    );
}

/// Archives one chunk into Blob Storage with these settings, then lists it with links; the content link's URL.
fn blob_link(settings: &[(String, String)], acs: &AcsServer, dir: &std::path::Path) -> url::Url {
    let file = event_file(dir, acs, &now(), &["d0"]);
    let (code, stdout, stderr) = run(dir, settings, &["replay", &file]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let listed = recordings(dir, settings, &["--links"]);
    let links = &listed["recordings"][0]["chunks"][0]["links"];
    assert!(links["expiresOn"].is_string(), "{links}");
    url::Url::parse(links["content"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn with_a_shared_key_a_link_reads_the_archived_blob_and_only_as_granted() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let blob = support::azurite::BlobTarget::start_local();
    let mut settings = archival(&acs);
    settings.extend(blob.handler_settings(&support::azurite::unique_container(), None));
    settings.push(("RECORDINGS_LINK_MINUTES".into(), "5".into()));
    let link = blob_link(&settings, &acs, dir.path());
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    assert_eq!(query["sp"], "r", "read only");
    assert!(
        query.contains_key("sig") && !query.contains_key("skoid"),
        "a service SAS: {link}"
    );
    let (disposition, bytes) = support::azurite::read_through_link(&blob.client(), &link).await;
    assert_eq!(disposition, "attachment; filename=\"rec-1-0.mp4\"");
    assert_eq!(support::acs::sha256_hex(&bytes[..]), acs.content_sha256_hex("d0"));
    let widened = link.as_str().replace("sp=r", "sp=rwd");
    assert_eq!(reqwest::get(widened).await.unwrap().status(), 403);
}

#[tokio::test]
async fn with_entra_id_a_link_is_a_user_delegation_sas_that_reads_the_archived_blob_and_only_as_granted() {
    let dir = tempfile::tempdir().unwrap();
    let entra = support::azurite::EntraBlob::start(dir.path());
    let acs = AcsServer::start(AcsOptions::default());
    let mut settings = archival(&acs);
    settings.extend(entra.settings.iter().cloned());
    let link = blob_link(&settings, &acs, dir.path());
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    assert_eq!(
        query["skoid"], "66666666-7777-8888-9999-000000000000",
        "a user delegation SAS: {link}"
    );
    assert_eq!(query["sktid"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(
        query["spr"], "https,http",
        "a loopback endpoint may be reached over http too"
    );
    let time =
        |name: &str| time::OffsetDateTime::parse(&query[name], &time::format_description::well_known::Rfc3339).unwrap();
    assert!(time("ske") - time("skt") <= time::Duration::days(7) + time::Duration::minutes(5));
    assert!(time("se") <= time("ske"), "no link outlives its key");
    assert!(
        time("se") - time("st") <= time::Duration::minutes(20),
        "RECORDINGS_LINK_MINUTES (15) from now"
    );

    // Azurite judges the signature by the key it issued.
    let (disposition, bytes) = support::azurite::read_through_link(&entra.blob.client(), &link).await;
    assert_eq!(disposition, "attachment; filename=\"rec-1-0.mp4\"");
    assert_eq!(support::acs::sha256_hex(&bytes[..]), acs.content_sha256_hex("d0"));
}

/// A data folder as the previous version left it (`tests/fixtures/stored-v1`: an archived and an expired chunk, a
/// pending chunk whose event planted `links`, a recording stored with archival off), its ACS URLs pointing at `acs`.
fn stored_by_the_previous_version(dir: &std::path::Path, acs: &AcsServer) {
    let fixtures = support::project_root().join("tests/fixtures/stored-v1");
    let data = dir.join(".data");
    std::fs::create_dir_all(&data).unwrap();
    let data_text = data.canonicalize().unwrap().display().to_string();
    // The events' time moved to an hour ago, so that ACS still keeps the files.
    let an_hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for file in support::files_under(&fixtures) {
        let target = data.join(file.strip_prefix(&fixtures).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if target.starts_with(data.join("recordings")) {
            let text = std::fs::read_to_string(&file)
                .unwrap()
                .replace("{acs}", &acs.base_url())
                .replace("{data}", &data_text)
                .replace("2026-11-27T15:20:34.2199328Z", &an_hour_ago);
            std::fs::write(&target, text).unwrap();
        } else {
            std::fs::copy(&file, &target).unwrap();
        }
    }
    for (chunk, bytes) in [("d0", 2_000), ("d1", 1_000), ("d2", 1_000), ("d3", 1_000)] {
        acs.add_chunk(chunk, bytes);
    }
}

#[test]
fn documents_of_the_previous_version_read_merge_archive_link_and_erase() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    stored_by_the_previous_version(dir.path(), &acs);
    let settings = archival(&acs);
    let chunk = |listed: &Value, recording: &str| -> Value {
        listed["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == recording)
            .unwrap_or_else(|| panic!("{recording}: {listed}"))["chunks"][0]
            .clone()
    };

    // Read, with links: the archived chunk's files as its state recorded them; the planted links never.
    let listed = recordings(dir.path(), &settings, &["--links"]);
    let archived = chunk(&listed, "rec-1");
    let content = url::Url::parse(archived["links"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content.as_str(),
        archived["archive"]["contentLocation"].as_str().unwrap()
    );
    let fixture = support::project_root().join("tests/fixtures/stored-v1/archive/call-1/rec-1/d0.content.mp4");
    assert_eq!(
        std::fs::read(content.to_file_path().unwrap()).unwrap(),
        std::fs::read(fixture).unwrap()
    );
    let planted = chunk(&listed, "rec-2");
    assert!(
        planted.get("links").is_none(),
        "an event's links are not served: {planted}"
    );
    assert!(chunk(&listed, "rec-3").get("links").is_none());

    // Merge: the pending chunk announced again, at another object and later; a chunk added.
    let elsewhere = chunk_at(0, "d2", &acs.add_chunk("d2-elsewhere", 1_000));
    let added = chunk_at(1, "d4", &acs.add_chunk("d4", 1_000));
    let path = dir.path().join("again.json");
    std::fs::write(
        &path,
        json!([recording_event("e9", "call-1", "rec-2", &now(), &[elsewhere, added])]).to_string(),
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &settings,
        &["replay", "--no-archive", path.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let stored = support::read_json(dir.path().join(".data/recordings/call-1/rec-2.json"));
    let d2 = &stored["chunks"][0];
    assert_eq!(
        d2["contentLocation"],
        format!("{}/v1/objects/d2/content/video", acs.base_url()),
        "the location stored before keeps the chunk"
    );
    assert!(
        d2.get("announcedAt").is_none(),
        "no time of its own: the recording's first event's counts"
    );
    assert_eq!(stored["chunks"][1]["documentId"], "d4");

    // Archive: from the locations as stored, and links to what was archived.
    let (code, stdout, stderr) = run(dir.path(), &settings, &["archive", "--call", "call-1"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("rec-2 chunk d2: archived"), "{stdout}");
    assert_eq!(
        support::acs::sha256_hex(
            std::fs::File::open(dir.path().join(".data/archive/call-1/rec-2/d2.content.mp4")).unwrap()
        ),
        acs.content_sha256_hex("d2")
    );
    let listed = recordings(dir.path(), &settings, &["--call", "call-1", "--links"]);
    assert!(
        chunk(&listed, "rec-2")["links"]["content"]
            .as_str()
            .unwrap()
            .ends_with("/d2.content.mp4")
    );

    // Erase: the earlier version's files and the new ones.
    let (code, stdout, stderr) = run(dir.path(), &settings, &["erase", "--call", "call-1"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let erased: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(erased["erased"]["recordings"], 2, "{erased}");
    assert!(support::files_under(&dir.path().join(".data/archive/call-1")).is_empty());
}

#[test]
fn links_name_the_archived_file_whatever_format_a_later_event_claims() {
    let dir = tempfile::tempdir().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let (settings, _) = replayed(dir.path(), &acs);
    // A later event says the recording is Wav, and plants links on a chunk.
    let mut planted = chunk_at(0, "d0", &acs.add_chunk("d0", 20_000));
    planted["links"] = json!({"content": "https://evil.example/x.wav"});
    let mut event = recording_event("e2", "call-1", "rec-1", &now(), &[planted]);
    event["data"]["recordingFormatType"] = json!("Wav");
    let path = dir.path().join("wav.json");
    std::fs::write(&path, json!([event]).to_string()).unwrap();
    let (code, stdout, stderr) = run(dir.path(), &settings, &["replay", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let listed = recordings(dir.path(), &settings, &["--links"]);
    assert_eq!(listed["recordings"][0]["recordingFormatType"], "Wav");
    for chunk in listed["recordings"][0]["chunks"].as_array().unwrap() {
        let content = chunk["links"]["content"].as_str().unwrap();
        assert!(content.ends_with(".content.mp4"), "{content}");
        let path = url::Url::parse(content).unwrap().to_file_path().unwrap();
        assert!(path.exists(), "the link names a file that is there: {content}");
    }
}
