//! Archival behind the stand-in host: `RecordingEvent` queues a job per chunk, `ArchiveRecording` downloads the
//! chunk's files from the ACS test server into the embedded archive (or Blob Storage: Azurite) and records the
//! result, the queue retries failures and gives up into the poison queue, where `ArchiveRecordingPoison` marks the
//! chunk failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use acs_recording_handler::archive::blob::BLOCK_BYTES;
use acs_recording_handler::archive::{Archive, FileKey};
use acs_recording_handler::config::DEVELOPMENT_KEY;
use azure_storage_blob::models::BlockListType;
use serde_json::{Value, json};
use support::acs::{AcsOptions, AcsServer, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, Fault, FileKind, Gate, Trap};
use support::archive_contract::{Container, Inspect};
use support::azurite::{BlobTarget, unique_container};
use support::events::{chunk, chunk_at, recording_event};
use support::{EventGrid, Host, Level, documents};

/// A time within ACS's 24 hours: now.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn connection() -> String {
    format!("endpoint=https://{DEFAULT_ACS_HOST}/;accesskey={DEFAULT_ACCESS_KEY}")
}

/// A host with archival on, downloading from `acs` only.
async fn archiving_host(acs: &AcsServer, extra: &[(&str, &str)]) -> Host {
    let connection = connection();
    let sources = acs.base_url();
    let mut settings = vec![
        ("AcsConnection", connection.as_str()),
        ("RECORDINGS_ARCHIVE_SOURCES", sources.as_str()),
    ];
    settings.extend_from_slice(extra);
    Host::start(&settings).await
}

/// An event of `rec-1` in `call-1` announcing these chunks, served by `acs` with content of these sizes.
fn event_of(acs: &AcsServer, event_id: &str, time: &str, chunks: &[(&str, u64)]) -> Value {
    let chunks: Vec<Value> = chunks
        .iter()
        .enumerate()
        .map(|(index, (id, bytes))| chunk_at(index as u64, id, &acs.add_chunk(id, *bytes)))
        .collect();
    recording_event(event_id, "call-1", "rec-1", time, &chunks)
}

/// ACS serves the chunk's content slowly, `millis` per frame, so that a test can act while it downloads.
fn slow_content(acs: &AcsServer, chunk: &str, millis: u64) {
    let delay_per_frame = std::time::Duration::from_millis(millis);
    acs.inject(chunk, FileKind::Content, Fault::Slow { delay_per_frame });
}

/// The archive state of each chunk of `rec-1`, by id.
fn states(host: &Host) -> Vec<(String, Value)> {
    let docs = documents(&host.data_dir());
    let doc = docs.iter().find(|d| d["id"] == "rec-1").expect("rec-1 is stored");
    doc["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["documentId"].as_str().unwrap().to_owned(), c["archive"].clone()))
        .collect()
}

/// The bytes in the embedded archive's partial files of `name` (one per source URL) in `folder`.
fn partial_bytes(folder: &std::path::Path, name: &str) -> u64 {
    let prefix = format!(".{name}.");
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    let file = entry.file_name().to_string_lossy().into_owned();
                    file.starts_with(&prefix) && file.ends_with(".partial")
                })
                .map(|entry| entry.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

fn file_of(location: &Value) -> PathBuf {
    url::Url::parse(location.as_str().unwrap())
        .unwrap()
        .to_file_path()
        .unwrap()
}

/// Checks a chunk is archived with exactly the bytes ACS serves, and returns its state.
fn assert_archived(host: &Host, acs: &AcsServer, chunk_id: &str) -> Value {
    let (_, state) = states(host).into_iter().find(|(id, _)| id == chunk_id).unwrap();
    assert_eq!(state["state"], "archived", "{chunk_id}: {state}");
    assert_eq!(state["contentSha256"], acs.content_sha256_hex(chunk_id));
    assert_eq!(state["contentBytes"], acs.content_len(chunk_id));
    assert_eq!(state["metadataSha256"], acs.metadata_sha256_hex(chunk_id));
    let content = file_of(&state["contentLocation"]);
    assert!(
        content.starts_with(host.data_dir().join("archive")),
        "{}",
        content.display()
    );
    let on_disk = support::acs::sha256_hex(std::fs::File::open(&content).unwrap());
    assert_eq!(on_disk, acs.content_sha256_hex(chunk_id), "the file holds ACS's bytes");
    assert_eq!(
        std::fs::read(file_of(&state["metadataLocation"])).unwrap(),
        acs.metadata_bytes(chunk_id)
    );
    state
}

#[tokio::test]
async fn without_an_acs_connection_archival_is_off_and_startup_says_so_once() {
    let host = Host::start(&[]).await;
    assert!(
        host.logged_at("archival is off", Some(Level::Warning)).await,
        "{}",
        host.output()
    );
    let answer = host
        .invoke(&recording_event("e1", "call-1", "rec-1", &now(), &[chunk(0, "d0")]))
        .await;
    assert_eq!(answer.reply()["Outputs"], json!({}), "no job without archival");
    assert!(host.queue_texts("recording-archive").is_empty());
    assert_eq!(host.output().matches("archival is off").count(), 1);
}

#[tokio::test]
async fn each_chunk_is_queued_downloaded_and_recorded_archived_with_acs_bytes() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 300_000), ("d1", 5)]);
    let answer = host.invoke(&event).await;
    assert!(answer.succeeded(), "{answer:?}");
    assert_eq!(
        answer.log(),
        "stored recording rec-1 of call call-1 (created); 2 chunk(s) queued for archiving"
    );
    let jobs = answer.output("archiveJobs");
    assert!(
        jobs.as_array().unwrap().iter().all(Value::is_object),
        "objects, never strings: {jobs}"
    );
    let queued = host.queue_texts("recording-archive");
    assert_eq!(queued.len(), 2);
    assert!(
        queued[0].contains("\n  \"callId\": \"call-1\""),
        "the host writes indented JSON: {}",
        queued[0]
    );
    for (_, state) in states(&host) {
        assert_eq!(state, json!({"state": "pending", "attempts": 0}));
    }

    let report = host.run_queues(|| false).await;
    assert_eq!((report.deliveries, report.failures), (2, 0), "{:?}", report.invocations);
    let state = assert_archived(&host, &acs, "d0");
    assert_eq!(state["attempts"], 1);
    assert!(state.get("reason").is_none());
    assert_archived(&host, &acs, "d1");
    assert!(
        report.invocations[0].log().contains("archived: content in file://"),
        "{}",
        report.invocations[0].log()
    );
    let metadata_first = acs
        .requests()
        .iter()
        .filter(|r| r.path.contains("/d0/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        metadata_first,
        ["acsmetadata", "video"],
        "the metadata file, then the content"
    );
    assert!(
        acs.requests()
            .iter()
            .all(|r| r.has_authorization && r.x_ms_host.as_deref() == Some(DEFAULT_ACS_HOST))
    );
}

#[tokio::test]
async fn a_redelivered_event_queues_again_only_the_chunks_not_archived() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 10), ("d1", 10)]);
    assert!(host.invoke(&event).await.succeeded());
    acs.expire("d1");
    host.run_queues(|| false).await;
    let again = host.invoke(&event).await;
    assert_eq!(again.log(), "stored recording rec-1 of call call-1 (unchanged)");
    assert_eq!(
        again.reply()["Outputs"],
        json!({}),
        "d0 is archived and d1 expired: nothing to queue"
    );
    let later = recording_event(
        "e2",
        "call-1",
        "rec-1",
        &now(),
        &[chunk_at(2, "d2", &acs.add_chunk("d2", 10))],
    );
    let answer = host.invoke(&later).await;
    let jobs = answer.output("archiveJobs");
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs[0]["chunkDocumentId"], "d2");
    let states = states(&host);
    assert_eq!(states[0].1["state"], "archived", "never turned back into pending");
    assert_eq!(states[1].1["state"], "expired");
    assert!(
        states[1].1["reason"].as_str().unwrap().contains("404"),
        "{}",
        states[1].1
    );
}

#[tokio::test]
async fn transient_acs_failures_are_retried_by_the_queue_and_downloads_resume() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 1_000_000)]);
    acs.inject("d0", FileKind::Metadata, Fault::Status(503));
    acs.inject("d0", FileKind::Content, Fault::EmptyBody);
    acs.inject("d0", FileKind::Content, Fault::ShortBody(300_000));
    acs.inject("d0", FileKind::Content, Fault::CutAfter(100_000));
    acs.inject("d0", FileKind::Content, Fault::CutAfter(100_000));
    acs.inject("d0", FileKind::Content, Fault::CutAfter(100_000));
    acs.inject("d0", FileKind::Content, Fault::CutAfter(100_000));
    assert!(host.invoke(&event).await.succeeded());
    let report = host.run_queues(|| false).await;
    assert!(
        report.failures >= 2,
        "503, then a 0-byte body: {:?}",
        report.invocations
    );
    let state = assert_archived(&host, &acs, "d0");
    assert!(state["attempts"].as_u64().unwrap() >= 3, "{state}");
    let ranges = content_ranges(&acs);
    assert!(
        ranges.len() >= 3,
        "a broken download resumes where it stopped: {ranges:?}"
    );
    assert!(ranges.iter().all(|r| r != "bytes=0-"), "{ranges:?}");
    let leftovers = support::files_under(&host.data_dir().join("archive"));
    assert!(
        leftovers.iter().all(|f| f.extension().is_none_or(|e| e != "partial")),
        "{leftovers:?}"
    );
}

/// The `Range` of every content request ACS answered, in order.
fn content_ranges(acs: &AcsServer) -> Vec<String> {
    acs.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/video"))
        .filter_map(|r| r.range)
        .collect()
}

#[tokio::test]
async fn a_job_failing_on_every_delivery_ends_in_the_poison_queue_and_the_chunk_is_marked_failed() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 10)]);
    let max = host.app().queues.max_dequeue_count;
    for _ in 0..max {
        acs.inject("d0", FileKind::Metadata, Fault::Status(503));
    }
    assert!(host.invoke(&event).await.succeeded());
    let report = host.run_queues(|| false).await;
    assert_eq!(report.poisoned, 1);
    assert_eq!(report.failures as u32, max, "delivered maxDequeueCount times");
    let poison: Vec<_> = report
        .invocations
        .iter()
        .filter(|i| i.function == "ArchiveRecordingPoison")
        .collect();
    assert_eq!(poison.len(), 1);
    assert!(poison[0].succeeded(), "{:?}", poison[0]);
    let (_, state) = states(&host).remove(0);
    assert_eq!(state["state"], "failed");
    assert!(state["reason"].as_str().unwrap().contains("every attempt"), "{state}");
    assert!(host.logged_at("archive_job_poisoned", Some(Level::Error)).await);
}

#[tokio::test]
async fn urls_outside_the_allowed_sources_are_never_requested_and_the_chunk_fails_with_the_reason() {
    let acs = AcsServer::start(AcsOptions::default());
    let trap = Trap::start();
    let host = archiving_host(&acs, &[("RUST_LOG", "trace")]).await;
    let mut foreign = chunk(0, "d0");
    foreign["contentLocation"] = json!(trap.url("/v1/objects/d0/content/video"));
    foreign["metadataLocation"] = json!("http://169.254.169.254/metadata/identity/oauth2/token");
    assert!(
        host.invoke(&recording_event("e1", "call-1", "rec-1", &now(), &[foreign]))
            .await
            .succeeded()
    );
    let report = host.run_queues(|| false).await;
    assert_eq!(report.failures, 0, "a refusal is final: {:?}", report.invocations);
    let (_, state) = states(&host).remove(0);
    assert_eq!(state["state"], "failed");
    assert!(
        state["reason"]
            .as_str()
            .unwrap()
            .contains("not in RECORDINGS_ARCHIVE_SOURCES"),
        "{state}"
    );
    assert!(trap.requests().is_empty(), "nothing was sent to a foreign address");
    assert!(
        !host.output().contains("169.254.169.254:80"),
        "no connection was attempted"
    );
}

#[tokio::test]
async fn a_redirect_never_carries_the_credential_to_another_host() {
    let acs = AcsServer::start(AcsOptions::default());
    let trap = Trap::start();
    // The trap is an allowed source, so the redirect is followed — without any credential.
    let sources = format!("{},{}", acs.base_url(), trap.url("").trim_end_matches('/'));
    let connection = connection();
    let host = Host::start(&[("AcsConnection", &connection), ("RECORDINGS_ARCHIVE_SOURCES", &sources)]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 10), ("d1", 10)]);
    acs.inject("d0", FileKind::Content, Fault::Redirect(trap.url("/elsewhere/video")));
    let outside = "https://attacker.example/video?sig=from-the-redirect";
    acs.inject("d1", FileKind::Content, Fault::Redirect(outside.to_owned()));
    assert!(host.invoke(&event).await.succeeded());
    let report = host.run_queues(|| false).await;
    let requests = trap.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    for header in ["authorization", "x-ms-host", "x-ms-date", "x-ms-content-sha256"] {
        assert_eq!(requests[0].header(header), None, "{header} went to another host");
    }
    // A redirect outside the sources is never followed; the attempt fails and the queue retries it (ACS may
    // answer otherwise next time: here it serves the file), and only the redirect's origin is ever written down.
    assert_eq!(
        report.failures, 1,
        "the refused redirect failed one attempt: {:?}",
        report.invocations
    );
    assert_archived(&host, &acs, "d1");
    assert!(
        host.logged_at("https://attacker.example", None).await,
        "the refused redirect's origin is logged: {}",
        host.output()
    );
    let everything = format!(
        "{}{}",
        host.output(),
        serde_json::to_string(&documents(&host.data_dir())).unwrap()
    );
    assert!(
        !everything.contains("from-the-redirect"),
        "the redirect's query is never written down"
    );
    assert!(!everything.contains("attacker.example/video"), "nor its path");
}

#[tokio::test]
async fn files_are_deleted_at_acs_once_archived_when_asked() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[("RECORDINGS_DELETE_AFTER_ARCHIVE", "true")]).await;
    assert!(
        host.invoke(&event_of(&acs, "e1", &now(), &[("d0", 10)]))
            .await
            .succeeded()
    );
    host.run_queues(|| false).await;
    assert_archived(&host, &acs, "d0");
    assert!(acs.deleted("d0"));
    let delete = acs.requests().into_iter().find(|r| r.method == "DELETE").unwrap();
    assert!(delete.has_authorization, "the deletion is signed like the downloads");
}

#[tokio::test]
async fn a_job_past_acs_deadline_is_tried_once_then_marked_expired() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let two_days_ago = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let time = two_days_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let urls = acs.add_chunk("d0", 10);
    acs.inject("d0", FileKind::Metadata, Fault::Status(503));
    let event = recording_event("e1", "call-1", "rec-1", &time, &[chunk_at(0, "d0", &urls)]);
    assert!(host.invoke(&event).await.succeeded());
    let report = host.run_queues(|| false).await;
    assert_eq!(report.deliveries, 1, "tried once: {:?}", report.invocations);
    assert_eq!(report.failures, 0);
    let (_, state) = states(&host).remove(0);
    assert_eq!(state["state"], "expired", "{state}");
    assert!(state["reason"].as_str().unwrap().contains("24 hours"), "{state}");
}

#[tokio::test]
async fn a_duplicate_job_running_at_the_same_time_archives_the_chunk_once() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 4_000_000)]);
    // The first download of the metadata — the first file a job fetches — is held after its first frame until the
    // other job has met it there: the two jobs overlap whatever order the queue starts them in.
    let gate = Gate::new();
    acs.inject("d0", FileKind::Metadata, Fault::Held(gate.clone()));
    // The same event twice (Event Grid's at-least-once): two jobs for one chunk, delivered together.
    assert!(host.invoke(&event).await.succeeded());
    assert!(host.invoke(&event).await.succeeded());
    assert_eq!(host.queue_texts("recording-archive").len(), 2);
    let release = async {
        support::wait::until(
            "the second job to find the first one archiving the chunk",
            std::time::Duration::from_secs(60),
            || host.diagnosis(),
            || host.output().contains("another worker is archiving"),
        )
        .await;
        // Both jobs are running now: one holds the file, with the download in flight; the other was turned away.
        assert_eq!(served(&acs, "/acsmetadata").len(), 1, "{:?}", acs.requests());
        gate.open();
    };
    let (report, ()) = tokio::join!(host.run_queues(|| false), release);
    assert!(
        report.failures >= 1,
        "the job turned away failed, to be retried: {report:?}"
    );
    assert_archived(&host, &acs, "d0");
    for file in ["/acsmetadata", "/video"] {
        let served = served(&acs, file);
        assert_eq!(served.len(), 1, "ACS served {file} once: {served:?}");
    }
    let files = support::files_under(&host.data_dir().join("archive"));
    assert_eq!(files.len(), 2, "one content and one metadata file: {files:?}");
}

/// The requests for a chunk's file (its URL ending so) that ACS answered with the file.
fn served(acs: &AcsServer, ending: &str) -> Vec<support::acs::RequestRecord> {
    acs.requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(ending))
        .filter(|r| r.status.is_some_and(|status| (200..300).contains(&status)))
        .collect()
}
#[tokio::test]
async fn a_download_killed_midway_resumes_in_the_next_worker() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 8_000_000)]);
    slow_content(&acs, "d0", 5);
    assert!(host.invoke(&event).await.succeeded());
    let folder = host.data_dir().join("archive/call-1/rec-1");
    let restart = async {
        // Wait until part of the content is on disk, then have the host kill the worker (a restart, or a timeout).
        support::wait::until(
            "part of the content on disk",
            std::time::Duration::from_secs(60),
            || host.diagnosis(),
            || partial_bytes(&folder, "d0.content.mp4") > 0,
        )
        .await;
        host.restart().await;
    };
    let (report, ()) = tokio::join!(host.run_queues(|| false), restart);
    assert!(report.failures >= 1, "the killed invocation failed");
    assert_archived(&host, &acs, "d0");
    let ranges = content_ranges(&acs);
    assert_eq!(
        ranges.len(),
        1,
        "the second attempt resumed after the kept bytes: {ranges:?}"
    );
}

#[tokio::test]
async fn the_access_key_never_appears_in_any_output_even_at_trace_level() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[("RUST_LOG", "trace")]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 10)]);
    acs.inject("d0", FileKind::Content, Fault::Status(401));
    assert!(host.invoke(&event).await.succeeded());
    host.run_queues(|| false).await;
    let output = host.output();
    assert!(output.len() > 1000, "trace logging produced output");
    let replies: String = host.function_log().into_iter().map(|(_, line)| line).collect();
    for fragment in [
        DEFAULT_ACCESS_KEY,
        &DEFAULT_ACCESS_KEY[..16],
        &DEFAULT_ACCESS_KEY[40..60],
    ] {
        assert!(
            !output.contains(fragment) && !replies.contains(fragment),
            "the access key leaked"
        );
    }
}

#[tokio::test]
async fn event_grid_deliveries_and_queues_together_archive_every_chunk() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let events: Vec<Value> = (0..4)
        .map(|i| {
            let id = format!("d{i}");
            let urls = acs.add_chunk(&id, 50_000 + i);
            recording_event(&format!("e{i}"), "call-1", "rec-1", &now(), &[chunk_at(i, &id, &urls)])
        })
        .collect();
    EventGrid::new(&host).deliver_all(&events).await;
    host.run_queues(|| false).await;
    for i in 0..4 {
        assert_archived(&host, &acs, &format!("d{i}"));
    }
}

#[tokio::test]
async fn with_entra_id_the_apps_managed_identity_token_signs_the_downloads() {
    let token = "entra-token-for-acs";
    let acs = AcsServer::start(AcsOptions {
        bearer_token: Some(token.to_owned()),
        ..AcsOptions::default()
    });
    let identity = support::identity::IdentityEndpoint::start(token);
    let mut settings = identity.settings();
    settings.extend([
        (
            "AcsConnection__endpoint".to_owned(),
            format!("https://{DEFAULT_ACS_HOST}/"),
        ),
        ("AcsConnection__credential".to_owned(), "managedidentity".to_owned()),
        (
            "AcsConnection__clientId".to_owned(),
            "11111111-2222-3333-4444-555555555555".to_owned(),
        ),
        ("RECORDINGS_ARCHIVE_SOURCES".to_owned(), acs.base_url()),
    ]);
    let host = Host::start(&support::str_pairs(&settings)).await;
    assert!(
        host.invoke(&event_of(&acs, "e1", &now(), &[("d0", 1000)]))
            .await
            .succeeded()
    );
    let report = host.run_queues(|| false).await;
    assert_eq!(report.failures, 0, "{:?}", report.invocations);
    assert_archived(&host, &acs, "d0");
    let asked = identity.requests();
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|r| r.header_ok));
    assert_eq!(
        asked[0].resource.as_deref(),
        Some("https://communication.azure.com/"),
        "ACS's scope"
    );
    assert_eq!(
        asked[0].client_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert!(
        acs.requests()
            .iter()
            .all(|r| r.has_authorization && r.x_ms_host.is_none()),
        "a bearer token, no HMAC"
    );
}

/// A host archiving to a container of its own in `blob`, and an archive client of the test's on that container.
async fn blob_archiving_host(acs: &AcsServer, blob: &BlobTarget, extra: &[(&str, &str)]) -> (Host, Container) {
    let container = unique_container();
    let mut settings = blob.handler_settings(&container, None);
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let host = archiving_host(acs, &support::str_pairs(&settings)).await;
    let archive = blob.archive(&container).await;
    (host, Container { archive })
}

/// Checks a chunk is archived in Blob Storage with exactly the bytes ACS serves, and returns its state.
async fn assert_archived_in_blob_storage(host: &Host, acs: &AcsServer, container: &Container, chunk_id: &str) -> Value {
    let archive = &container.archive;
    let (_, state) = states(host).into_iter().find(|(id, _)| id == chunk_id).unwrap();
    assert_eq!(state["state"], "archived", "{chunk_id}: {state}");
    let content = state["contentLocation"].as_str().unwrap();
    let container_url = archive.container_url().as_str();
    assert!(
        content.starts_with(container_url),
        "{content} is a blob of {container_url}"
    );
    assert!(!content.contains('?'), "no SAS or query in a location: {content}");
    assert_eq!(
        content,
        archive.location(&FileKey {
            call_id: "call-1".into(),
            recording_id: "rec-1".into(),
            chunk_id: chunk_id.into(),
            kind: acs_recording_handler::archive::FileKind::Content {
                extension: "mp4".into()
            },
        })
    );
    assert_eq!(
        container.read(content).await,
        Some((acs.content_sha256_hex(chunk_id), acs.content_len(chunk_id))),
        "the blob holds ACS's bytes"
    );
    assert_eq!(state["contentSha256"], acs.content_sha256_hex(chunk_id));
    let metadata = state["metadataLocation"].as_str().unwrap();
    assert!(metadata.ends_with("/metadata.json"), "{metadata}");
    assert_eq!(
        container.read(metadata).await,
        Some((
            acs.metadata_sha256_hex(chunk_id),
            acs.metadata_bytes(chunk_id).len() as u64
        ))
    );
    state
}

#[tokio::test]
async fn with_blob_storage_each_chunk_is_archived_as_a_blob_with_acs_bytes_and_the_key_never_shows() {
    let acs = AcsServer::start(AcsOptions::default());
    let blob = BlobTarget::start();
    let (host, container) = blob_archiving_host(&acs, &blob, &[("RUST_LOG", "trace")]).await;
    assert!(
        host.logged_at("chunks are archived in Blob Storage", Some(Level::Information))
            .await,
        "{}",
        host.output()
    );
    assert!(
        host.invoke(&event_of(&acs, "e1", &now(), &[("d0", 300_000), ("d1", 5)]))
            .await
            .succeeded()
    );
    let report = host.run_queues(|| false).await;
    assert_eq!((report.deliveries, report.failures), (2, 0), "{:?}", report.invocations);
    for chunk in ["d0", "d1"] {
        assert_archived_in_blob_storage(&host, &acs, &container, chunk).await;
    }
    assert_eq!(container.names().await.len(), 4, "two files per chunk, nothing else");
    assert!(
        !host.data_dir().join("archive").exists(),
        "the embedded archive is never used"
    );
    let output = host.output();
    for fragment in [DEVELOPMENT_KEY, &DEVELOPMENT_KEY[..16], &DEVELOPMENT_KEY[40..60]] {
        assert!(!output.contains(fragment), "the storage account key leaked");
    }
}

#[tokio::test]
async fn with_blob_storage_a_download_killed_midway_resumes_after_the_staged_blocks() {
    let acs = AcsServer::start(AcsOptions::default());
    let blob = BlobTarget::start();
    let (host, container) = blob_archiving_host(&acs, &blob, &[]).await;
    let archive = &container.archive;
    let size = 2 * u64::from(BLOCK_BYTES) + 1_000_000;
    let event = event_of(&acs, "e1", &now(), &[("d0", size)]);
    slow_content(&acs, "d0", 4);
    assert!(host.invoke(&event).await.succeeded());
    let content = FileKey {
        call_id: "call-1".into(),
        recording_id: "rec-1".into(),
        chunk_id: "d0".into(),
        kind: acs_recording_handler::archive::FileKind::Content {
            extension: "mp4".into(),
        },
    };
    let blocks = archive
        .blob_client(url::Url::parse(&archive.location(&content)).unwrap())
        .unwrap()
        .block_blob_client();
    let restart = async {
        // Wait until a block is staged, then have the host kill the worker (a restart, or a timeout).
        support::wait::until_async(
            "a block of the content staged in Blob Storage",
            std::time::Duration::from_secs(60),
            || host.diagnosis(),
            || async {
                match blocks.get_block_list(BlockListType::Uncommitted, None).await {
                    Ok(list) => !list
                        .into_model()
                        .unwrap()
                        .uncommitted_blocks
                        .unwrap_or_default()
                        .is_empty(),
                    Err(_) => false,
                }
            },
        )
        .await;
        host.restart().await;
    };
    let (report, ()) = tokio::join!(host.run_queues(|| false), restart);
    assert!(report.failures >= 1, "the killed invocation failed");
    assert_archived_in_blob_storage(&host, &acs, &container, "d0").await;
    let ranges = content_ranges(&acs);
    assert!(!ranges.is_empty(), "the second attempt resumed");
    let from: u64 = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        from > 0 && from.is_multiple_of(u64::from(BLOCK_BYTES)),
        "resumed after whole staged blocks: {ranges:?}"
    );
}

#[tokio::test]
async fn with_blob_storage_erasing_a_call_after_a_download_killed_midway_leaves_no_staged_block() {
    let acs = AcsServer::start(AcsOptions::default());
    let blob = BlobTarget::start();
    let (host, container) = blob_archiving_host(&acs, &blob, &[]).await;
    let size = 2 * u64::from(BLOCK_BYTES) + 1_000_000;
    let event = event_of(&acs, "e1", &now(), &[("d0", size)]);
    slow_content(&acs, "d0", 4);
    // One delivery of the job, killed mid-download; its message is never delivered again (the queue's retries
    // could be hours apart, and once it is poisoned nothing runs it).
    let job = recording_job(&host, &event).await;
    host.drain_queue("recording-archive");
    let delivery = support::envelope::QueueMessage {
        id: "job-1".to_owned(),
        text: job,
        dequeue_count: 1,
        insertion_time: "2026-11-28T12:00:00+00:00".to_owned(),
    };
    let body = support::envelope::queue("ArchiveRecording", "archiveJob", &delivery);
    let content = "call-1/rec-1/d0/content.mp4";
    let kill = async {
        support::wait::until_async(
            "a block of the content staged in Blob Storage",
            std::time::Duration::from_secs(60),
            || host.diagnosis(),
            || async { container.everything().await.contains(&content.to_owned()) },
        )
        .await;
        host.restart().await;
    };
    let (killed, ()) = tokio::join!(host.post_to("ArchiveRecording", body), kill);
    assert!(!killed.succeeded(), "the download was killed: {}", killed.log());
    let committed = container.names().await;
    assert!(
        committed.iter().all(|location| !location.ends_with(content)),
        "the content's blocks are staged, not committed: {committed:?}"
    );

    let key = host.master_key();
    let erase = host
        .http_with(
            "DELETE",
            "/api/recordings/call-1",
            &[("x-functions-key", key)],
            Vec::new(),
        )
        .await;
    assert_eq!(erase.status, 200, "{}", String::from_utf8_lossy(&erase.body));
    let erased: Value = serde_json::from_slice(&erase.body).unwrap();
    assert_eq!(erased["erased"]["recordings"], 1, "{erased}");
    assert_eq!(
        erased["erased"]["files"], 1,
        "the metadata was archived whole: {erased}"
    );
    assert_eq!(
        container.everything().await,
        Vec::<String>::new(),
        "nothing of the call is left in the container, committed or staged"
    );
}

#[tokio::test]
async fn with_entra_id_the_apps_managed_identity_writes_to_blob_storage_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let entra = support::azurite::EntraBlob::start(dir.path());
    let (blob, identity, settings) = (&entra.blob, &entra.identity, &entra.settings);
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &support::str_pairs(settings)).await;
    assert!(
        host.logged_at("chunks are archived in Blob Storage", Some(Level::Information))
            .await,
        "{}",
        host.output()
    );
    assert!(
        host.invoke(&event_of(&acs, "e1", &now(), &[("d0", 100_000)]))
            .await
            .succeeded()
    );
    let report = host.run_queues(|| false).await;
    assert_eq!(report.failures, 0, "{:?}\n{}", report.invocations, host.output());
    let (_, state) = states(&host).remove(0);
    assert_eq!(state["state"], "archived", "{state}");
    // The handler committed the blob and read its length and metadata back before recording these.
    assert_eq!(state["contentSha256"], acs.content_sha256_hex("d0"));
    assert_eq!(state["contentBytes"], acs.content_len("d0"));
    let location = state["contentLocation"].as_str().unwrap();
    assert!(location.starts_with(&format!("{}/", blob.service_uri)), "{location}");
    let asked = identity.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.resource.as_deref() == Some("https://storage.azure.com")),
        "Blob Storage's scope: {asked:?}"
    );
}

// What an event cannot make the handler do: every field of an event comes from outside.

/// The stored chunk `chunk_id` of `recording` in `call`.
fn stored_chunk(host: &Host, call: &str, recording: &str, chunk_id: &str) -> Value {
    let docs = documents(&host.data_dir());
    let doc = docs
        .iter()
        .find(|d| d["callId"] == call && d["id"] == recording)
        .unwrap_or_else(|| panic!("{call}/{recording} is stored"));
    doc["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["documentId"] == chunk_id)
        .unwrap_or_else(|| panic!("{chunk_id} is stored"))
        .clone()
}

#[tokio::test]
async fn an_event_that_claims_its_chunks_are_archived_still_has_them_archived_from_acs() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let claims = [
        json!({"state": "archived", "contentLocation": "https://evil.example/x", "contentBytes": 1,
               "contentSha256": "00".repeat(32), "metadataLocation": "https://evil.example/m", "metadataBytes": 1,
               "metadataSha256": "00".repeat(32), "archivedAt": "2026-01-01T00:00:00Z", "attempts": 1}),
        json!({"state": "expired", "reason": "trust me", "attempts": 99}),
        json!("x"),
    ];
    let chunks: Vec<Value> = claims
        .iter()
        .enumerate()
        .map(|(index, claim)| {
            let id = format!("d{index}");
            let mut chunk = chunk_at(index as u64, &id, &acs.add_chunk(&id, 10_000));
            chunk["archive"] = claim.clone();
            chunk
        })
        .collect();
    let answer = host
        .invoke(&recording_event("e1", "call-1", "rec-1", &now(), &chunks))
        .await;
    assert!(answer.succeeded(), "{}", answer.log());
    assert_eq!(
        host.queue_texts("recording-archive").len(),
        claims.len(),
        "a job for every chunk, whatever it claims"
    );
    host.run_queues(|| false).await;
    for (index, claim) in claims.iter().enumerate() {
        let id = format!("d{index}");
        let state = assert_archived(&host, &acs, &id);
        assert!(
            state["contentLocation"].as_str().unwrap().starts_with("file://"),
            "{state}"
        );
        assert_eq!(
            stored_chunk(&host, "call-1", "rec-1", &id)["extraData"]["archive"],
            *claim,
            "the claim is kept aside, where nothing reads it"
        );
    }
}

#[tokio::test]
async fn delete_after_archive_deletes_only_the_object_the_archived_files_lie_under() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[("RECORDINGS_DELETE_AFTER_ARCHIVE", "true")]).await;
    let own = acs.add_chunk("d0", 10_000);
    let another_recordings = acs.add_chunk("another-recordings-chunk", 10_000);
    let chunk = json!({"documentId": "d0", "index": 0, "contentLocation": own.content,
                       "metadataLocation": own.metadata, "deleteLocation": another_recordings.delete});
    assert!(
        host.invoke(&recording_event("e1", "call-1", "rec-1", &now(), &[chunk]))
            .await
            .succeeded()
    );
    host.run_queues(|| false).await;
    let state = assert_archived(&host, &acs, "d0");
    assert!(
        !acs.deleted("another-recordings-chunk"),
        "another recording's files are untouched"
    );
    assert!(!acs.deleted("d0"));
    assert!(
        acs.requests().iter().all(|r| r.method != "DELETE"),
        "no DELETE was sent at all"
    );
    assert!(
        state["deleteSkipped"].as_str().unwrap().contains("nothing was deleted"),
        "the chunk says why: {state}"
    );
    assert!(
        host.logged_at("nothing was deleted at ACS", Some(Level::Warning)).await,
        "{}",
        host.output()
    );
}

#[tokio::test]
async fn a_file_whose_length_acs_did_not_state_is_never_archived_short() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[("RECORDINGS_DELETE_AFTER_ARCHIVE", "true")]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 2_000_000), ("d1", 2_000_000)]);
    // Half of each file, as a whole answer would look if nothing said how long the file is.
    acs.inject("d0", FileKind::Content, Fault::UnstatedLength(1_000_000));
    acs.inject("d1", FileKind::Content, Fault::UnknownTotal(1_000_000));
    assert!(host.invoke(&event).await.succeeded());
    let report = host.run_queues(|| false).await;
    assert_eq!(
        report.failures, 2,
        "each answer of unknown length failed its attempt: {:?}",
        report.invocations
    );
    for id in ["d0", "d1"] {
        assert_archived(&host, &acs, id);
        assert!(acs.deleted(id), "{id} is deleted at ACS only once archived whole");
    }
}

#[tokio::test]
async fn times_at_the_edges_of_the_calendar_are_stored_and_archived_and_never_crash_the_worker() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let late = event_of(&acs, "e1", support::events::LAST_INSTANT, &[("d0", 10_000)]);
    let unnamed = support::events::recording_starting_at_the_calendars_edge(
        "e2",
        "call-2",
        &now(),
        &[chunk_at(0, "d1", &acs.add_chunk("d1", 10_000))],
    );
    for event in [&late, &unnamed] {
        let answer = host.invoke(event).await;
        assert!(answer.succeeded(), "{}", answer.log());
    }
    let report = host.run_queues(|| false).await;
    assert_eq!(report.failures, 0, "{:?}", report.invocations);
    assert_archived(&host, &acs, "d0");
    let docs = documents(&host.data_dir());
    let unnamed_doc = docs.iter().find(|d| d["callId"] == "call-2").expect("call-2 is stored");
    assert_eq!(
        unnamed_doc["recordingStartTime"], "9999-12-31T23:30:00-01:00",
        "kept as given"
    );
    assert_eq!(unnamed_doc["chunks"][0]["archive"]["state"], "archived");
    assert_eq!(host.workers_started(), 1, "no worker died: {}", host.diagnosis());
}

#[tokio::test]
async fn a_404_from_a_host_acs_redirected_to_never_expires_the_chunk() {
    let acs = AcsServer::start(AcsOptions::default());
    let empty_handed = Trap::answering(404);
    let sources = format!("{},{}", acs.base_url(), empty_handed.url("").trim_end_matches('/'));
    let connection = connection();
    let host = Host::start(&[("AcsConnection", &connection), ("RECORDINGS_ARCHIVE_SOURCES", &sources)]).await;
    // Past ACS's deadline, where ACS's own 404 would expire the chunk.
    let two_days_ago = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let time = two_days_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let event = event_of(&acs, "e1", &time, &[("d0", 10_000)]);
    acs.inject(
        "d0",
        FileKind::Content,
        Fault::Redirect(empty_handed.url("/v1/objects/d0/content/video")),
    );
    assert!(host.invoke(&event).await.succeeded());
    let report = host.run_queues(|| false).await;
    assert_eq!(empty_handed.requests().len(), 1);
    assert_eq!(
        report.failures, 1,
        "the 404 failed one attempt: {:?}",
        report.invocations
    );
    assert_archived(&host, &acs, "d0");
}

#[tokio::test]
async fn a_job_that_arrives_before_its_recording_is_stored_is_retried_until_it_is() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let event = event_of(&acs, "e1", &now(), &[("d0", 10_000)]);
    // The job the event's answer queues, delivered to an instance that cannot see the stored event yet (Cosmos DB's
    // session consistency holds per client): here, before the event is stored at all.
    let job = recording_job(&host, &event).await;
    std::fs::remove_dir_all(host.data_dir().join("recordings")).unwrap();
    let delivery = |dequeue_count: u32| support::envelope::QueueMessage {
        id: "job-1".to_owned(),
        text: job.clone(),
        dequeue_count,
        insertion_time: "2026-11-28T12:00:00+00:00".to_owned(),
    };
    let deliver = |count: u32| {
        let body = support::envelope::queue("ArchiveRecording", "archiveJob", &delivery(count));
        host.post_to("ArchiveRecording", body)
    };
    assert!(
        !deliver(1).await.succeeded(),
        "an early delivery without its recording fails, to be retried"
    );
    assert!(host.invoke(&event).await.succeeded());
    let second = deliver(2).await;
    assert!(second.succeeded(), "{}", second.log());
    assert_archived(&host, &acs, "d0");
    // A job whose recording never appears is acknowledged in the end, with nothing to do.
    let stranger = job.replace("\"rec-1\"", "\"rec-unknown\"");
    let late = support::envelope::QueueMessage {
        text: stranger,
        ..delivery(3)
    };
    let last = host
        .post_to(
            "ArchiveRecording",
            support::envelope::queue("ArchiveRecording", "archiveJob", &late),
        )
        .await;
    assert!(last.succeeded(), "{}", last.log());
    assert!(last.log().contains("no such recording"), "{}", last.log());
}

/// The archive job `RecordingEvent` answers `event` with, as the queue's message text (left in the queue, which
/// the test never runs).
async fn recording_job(host: &Host, event: &Value) -> String {
    let answer = host.invoke(event).await;
    assert!(answer.succeeded(), "{}", answer.log());
    let texts = host.queue_texts("recording-archive");
    assert_eq!(texts.len(), 1, "{texts:?}");
    texts[0].clone()
}

#[tokio::test]
async fn the_sweep_queues_again_the_chunks_whose_jobs_were_lost() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let twenty_minutes_ago = (time::OffsetDateTime::now_utc() - time::Duration::minutes(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let settled = event_of(&acs, "e1", &twenty_minutes_ago, &[("d0", 10_000), ("d1", 10_000)]);
    let recent = recording_event(
        "e2",
        "call-1",
        "rec-2",
        &now(),
        &[chunk_at(0, "d2", &acs.add_chunk("d2", 10_000))],
    );
    for event in [&settled, &recent] {
        assert!(host.invoke(event).await.succeeded());
    }
    assert_eq!(host.drain_queue("recording-archive").len(), 3, "every job is lost");

    let tick = host.fire_timer("ArchiveSweep", false).await;
    assert!(tick.succeeded(), "{}", tick.log());
    assert!(
        tick.log()
            .contains("2 chunk(s) queued again (0 past ACS's deadline, for a last try), 1 too recent"),
        "the recent chunk is left to its own job: {}",
        tick.log()
    );
    assert_eq!(host.queue_texts("recording-archive").len(), 2);
    host.run_queues(|| false).await;
    assert_archived(&host, &acs, "d0");
    assert_archived(&host, &acs, "d1");

    let again = host.fire_timer("ArchiveSweep", true).await;
    assert!(again.log().contains("0 chunk(s) queued again"), "{}", again.log());
    assert!(host.queue_texts("recording-archive").is_empty());
}

#[tokio::test]
async fn files_acs_wrote_to_the_customers_own_storage_are_recorded_external_with_nothing_to_download() {
    let acs = AcsServer::start(AcsOptions::default());
    let host = archiving_host(&acs, &[]).await;
    let blob = "https://contoso.blob.core.windows.net/recordings/call-1/d0";
    let own = json!({"documentId": "d0", "index": 0, "contentLocation": format!("{blob}/video.mp4"),
                     "metadataLocation": format!("{blob}/metadata.json")});
    // An export that failed leaves the files at ACS: that chunk is archived as usual.
    let at_acs = chunk_at(1, "d1", &acs.add_chunk("d1", 10_000));
    let mut event = recording_event("e1", "call-1", "rec-1", &now(), &[own, at_acs]);
    event["data"]["storageType"] = json!("AzureBlob");
    let answer = host.invoke(&event).await;
    assert!(answer.succeeded(), "{}", answer.log());
    assert_eq!(
        host.queue_texts("recording-archive").len(),
        1,
        "no job for the external chunk"
    );
    let report = host.run_queues(|| false).await;
    assert_eq!((report.failures, report.poisoned), (0, 0));
    let external = stored_chunk(&host, "call-1", "rec-1", "d0")["archive"].clone();
    assert_eq!(external["state"], "external", "{external}");
    assert_eq!(external["contentLocation"], format!("{blob}/video.mp4"));
    assert_archived(&host, &acs, "d1");
    assert!(
        acs.requests().iter().all(|r| !r.path.contains("/d0")),
        "nothing was requested for d0"
    );
}
