//! The recordings API behind the stand-in host, in both of its HTTP modes (the request forwarded, the invocation
//! payload), on the embedded store and Cosmos DB, with the archive embedded or on Azurite (Shared Key, and
//! Microsoft Entra ID over HTTPS): keys, listings, paging, filters, links that download with a plain HTTP client,
//! problems, erase with a redelivered event and an archive job in flight — and no key or signature in any log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::acs::{AcsOptions, AcsServer, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, Fault, FileKind};
use support::azurite::{BlobTarget, EntraBlob, unique_container};
use support::cosmos::{CosmosTarget, unique_database};
use support::events::{chunk_at, recording_event};
use support::http_front::HttpAnswer;
use support::proxy::Proxy;
use support::{AppDir, Host};

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Forwarded,
    Payload,
}

enum Store {
    Embedded,
    Cosmos(CosmosTarget),
}

enum Files {
    Embedded,
    SharedKey(BlobTarget),
    Entra(EntraBlob),
}

/// A host serving the API with archival on, and what it runs against.
struct Api {
    host: Host,
    acs: AcsServer,
    _store: Store,
    files: Files,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(mode: Mode, store: impl FnOnce() -> Store, files: impl FnOnce(&std::path::Path) -> Files) -> Api {
        Self::start_with(mode, store(), files, &[]).await
    }

    async fn start_with(
        mode: Mode,
        store: Store,
        files: impl FnOnce(&std::path::Path) -> Files,
        extra: &[(&str, &str)],
    ) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let acs = AcsServer::start(AcsOptions::default());
        let mut settings = vec![
            (
                "AcsConnection".to_owned(),
                format!("endpoint=https://{DEFAULT_ACS_HOST}/;accesskey={DEFAULT_ACCESS_KEY}"),
            ),
            ("RECORDINGS_ARCHIVE_SOURCES".to_owned(), acs.base_url()),
        ];
        if let Store::Cosmos(cosmos) = &store {
            settings.extend(cosmos.handler_settings(&unique_database(), None));
        }
        let files = files(dir.path());
        match &files {
            Files::Embedded => {}
            Files::SharedKey(blob) => {
                settings.extend(blob.handler_settings(&unique_container(), None));
                settings.push(("RECORDINGS_CREATE_IF_NOT_EXISTS".to_owned(), "true".to_owned()));
            }
            Files::Entra(entra) => settings.extend(entra.settings.iter().cloned()),
        }
        settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let app = AppDir::new().with_forwarding(mode == Mode::Forwarded);
        let host = Host::start_in(app, &support::str_pairs(&settings)).await;
        Api {
            host,
            acs,
            _store: store,
            files,
            _dir: dir,
        }
    }

    /// `GET` with the `Recordings` function's key.
    async fn get(&self, path: &str) -> HttpAnswer {
        let separator = if path.contains('?') { '&' } else { '?' };
        let key = self.host.function_key("Recordings");
        self.host.http("GET", &format!("{path}{separator}code={key}")).await
    }

    /// `DELETE` with the master key, as an `admin` function needs.
    async fn erase(&self, path: &str) -> HttpAnswer {
        let key = self.host.master_key();
        self.host
            .http_with("DELETE", path, &[("x-functions-key", key)], Vec::new())
            .await
    }

    /// Stores the events and runs the archive jobs they make until the queue is empty.
    async fn deliver_and_archive(&self, events: &[Value]) {
        for event in events {
            let invocation = self.host.invoke(event).await;
            assert!(invocation.succeeded(), "{invocation:?}\n{}", self.host.diagnosis());
        }
        let report = self.host.run_queues(|| false).await;
        assert_eq!(report.poisoned, 0, "{report:?}\n{}", self.host.diagnosis());
    }

    /// An event of `recording` in `call` with these chunks, each served by ACS with 30 000 bytes.
    fn event(&self, id: &str, call: &str, recording: &str, chunks: &[&str]) -> Value {
        self.event_of_size(id, call, recording, chunks, 30_000)
    }

    fn event_of_size(&self, id: &str, call: &str, recording: &str, chunks: &[&str], bytes: u64) -> Value {
        let chunks: Vec<Value> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| chunk_at(i as u64, chunk, &self.acs.add_chunk(chunk, bytes)))
            .collect();
        recording_event(id, call, recording, &now(), &chunks)
    }

    /// No function key, account key, link signature or delegation key in anything the handler or the host logged.
    fn assert_no_secret_logged(&self) {
        let output = self.host.output();
        for secret in [
            self.host.function_key("Recordings").as_str(),
            self.host.master_key(),
            DEFAULT_ACCESS_KEY,
            "sig=",
            "code=",
        ] {
            assert!(!output.contains(secret), "{secret} is in the log:\n{output}");
        }
        for line in self.host.http_log() {
            assert!(!line.contains("code="), "{line}");
        }
    }
}

fn json_of(answer: &HttpAnswer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

fn ids(answer: &HttpAnswer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{answer:?}");
    json_of(answer)["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_problem(answer: &HttpAnswer, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json")),
        "{answer:?}"
    );
    let problem = json_of(answer);
    assert_eq!(problem["status"], status);
    assert!(
        problem["title"].is_string() && problem["detail"].is_string(),
        "{problem}"
    );
}

/// The whole API on one host: keys, listings, paging, filters, one recording with links that download ACS's exact
/// bytes, problems, then erase with a redelivered event.
async fn tour(api: &Api) {
    let first = api.event("e1", "call-1", "rec-1", &["d0", "d1"]);
    let second = api.event("e2", "call-1", "rec-2", &["d2"]);
    let other = api.event("e3", "call-2", "rec-3", &["d3"]);
    api.deliver_and_archive(&[first.clone(), second, other]).await;
    let host = &api.host;

    // The host checks keys before the handler sees a request.
    assert_eq!(host.http("GET", "/api/recordings/call-1").await.status, 401);
    let function_key = host.function_key("Recordings");
    let with_function_key = host
        .http("DELETE", &format!("/api/recordings/call-1?code={function_key}"))
        .await;
    assert_eq!(with_function_key.status, 401, "erasing needs the master key");

    assert_eq!(ids(&api.get("/api/recordings/call-1").await), ["rec-1", "rec-2"]);
    assert_eq!(
        ids(&api.get("/api/recordings/no-such-call").await),
        Vec::<String>::new()
    );
    assert_eq!(ids(&api.get("/api/recordings?archiveState=archived").await).len(), 3);
    assert_eq!(ids(&api.get("/api/recordings?archiveState=pending").await).len(), 0);
    let server_call = ids(&api
        .get("/api/recordings?serverCallId=c2VydmVyLWNhbGwtaWQ&archiveState=archived")
        .await);
    assert_eq!(server_call.len(), 3, "the test events share one server call id");

    // Pages of one: every recording once. Cosmos DB may answer a page with none and a token all the same, so the
    // listing gets more pages than recordings, but not without end: a token that never ends fails here.
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut path = "/api/recordings?limit=1".to_owned();
    loop {
        assert!(pages.len() < 20, "the listing never ended: {pages:?}");
        let page = api.get(&path).await;
        pages.push(ids(&page));
        match json_of(&page)["continuationToken"].as_str() {
            Some(token) => path = format!("/api/recordings?limit=1&continuationToken={token}"),
            None => break,
        }
    }
    let mut seen = pages.concat();
    seen.sort();
    assert_eq!(seen, ["rec-1", "rec-2", "rec-3"]);

    // Every archived file, through its links, with no other credential: ACS's exact bytes.
    let mut links = 0;
    for (call, recording) in [("call-1", "rec-1"), ("call-1", "rec-2"), ("call-2", "rec-3")] {
        let answer = api.get(&format!("/api/recordings/{call}/{recording}")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        for chunk in json_of(&answer)["chunks"].as_array().unwrap() {
            let id = chunk["documentId"].as_str().unwrap();
            for (file, sha256) in [
                ("content", api.acs.content_sha256_hex(id)),
                ("metadata", api.acs.metadata_sha256_hex(id)),
            ] {
                let link = url::Url::parse(chunk["links"][file].as_str().unwrap()).unwrap();
                let bytes = download(&api.files, &link, recording).await;
                assert_eq!(support::acs::sha256_hex(&bytes[..]), sha256, "{link}");
                links += 1;
            }
        }
    }
    assert_eq!(links, 8, "two files of each of the four chunks");

    // Problems, never a 5xx.
    assert_problem(&api.get("/api/recordings?limit=abc").await, 400);
    assert_problem(&api.get("/api/recordings?limit=0").await, 400);
    assert_problem(&api.get("/api/recordings?archiveState=lost").await, 400);
    assert_problem(&api.get("/api/recordings?continuationToken=not-ours").await, 400);
    assert_problem(&api.get("/api/recordings/call-1/rec-9").await, 404);

    // Erase the call: documents, archived files, ACS's files; again: zeros.
    let erased = api.erase("/api/recordings/call-1").await;
    assert_eq!(erased.status, 200, "{erased:?}");
    assert_eq!(
        json_of(&erased),
        json!({"erased": {"recordings": 2, "files": 6, "acsFiles": 3, "quarantined": 0}})
    );
    assert!(["d0", "d1", "d2"].iter().all(|chunk| api.acs.deleted(chunk)));
    assert_eq!(ids(&api.get("/api/recordings/call-1").await), Vec::<String>::new());
    assert_problem(&api.get("/api/recordings/call-1/rec-1").await, 404);
    assert_eq!(
        ids(&api.get("/api/recordings/call-2").await),
        ["rec-3"],
        "another call stays"
    );

    // Event Grid delivers the first event again: acknowledged, not stored, no archive job.
    let redelivered = host.invoke(&first).await;
    assert!(redelivered.succeeded(), "{redelivered:?}");
    assert!(redelivered.log().contains("was erased"), "{}", redelivered.log());
    assert!(
        host.queue_texts("recording-archive").is_empty(),
        "no job for an erased recording"
    );
    assert_eq!(ids(&api.get("/api/recordings/call-1").await), Vec::<String>::new());

    let again = api.erase("/api/recordings/call-1").await;
    assert_eq!(
        json_of(&again),
        json!({"erased": {"recordings": 0, "files": 0, "acsFiles": 0, "quarantined": 0}})
    );
    let audit_lines = || -> Vec<String> {
        host.output()
            .lines()
            .filter(|l| l.contains("audit"))
            .map(str::to_owned)
            .collect()
    };
    // The host reads the worker's log as it comes: the second erase's line may follow its answer.
    support::wait::until(
        "one audit line per erase",
        Duration::from_secs(10),
        || host.diagnosis(),
        || audit_lines().len() >= 2,
    )
    .await;
    let audit = audit_lines();
    assert_eq!(audit.len(), 2, "one audit line per erase: {audit:?}");
    assert!(
        audit[0].contains("call-1") && audit[0].contains("invocation_id"),
        "{audit:?}"
    );
    api.assert_no_secret_logged();
}

/// The file a link of `recording` reads: from the embedded archive's folder, or from Azurite with a client that holds
/// no credential (Azurite judges the service SAS or the user delegation SAS, and refuses the link tampered with, and
/// a write or a delete through it: [`support::azurite::read_through_link`]).
async fn download(files: &Files, link: &url::Url, recording: &str) -> Vec<u8> {
    let blob = match files {
        Files::Embedded => {
            assert_eq!(link.scheme(), "file");
            return std::fs::read(link.to_file_path().unwrap()).unwrap();
        }
        Files::SharedKey(blob) => {
            assert!(
                link.query_pairs().all(|(name, _)| name != "skoid"),
                "a service SAS: {link}"
            );
            blob
        }
        Files::Entra(entra) => {
            assert!(
                link.query_pairs().any(|(name, _)| name == "skoid"),
                "a user delegation SAS: {link}"
            );
            &entra.blob
        }
    };
    let (disposition, bytes) = support::azurite::read_through_link(&blob.client(), link).await;
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"{recording}-")),
        "{disposition}"
    );
    bytes
}

#[tokio::test]
async fn forwarded_on_the_embedded_store_and_archive() {
    let api = Api::start(Mode::Forwarded, || Store::Embedded, |_| Files::Embedded).await;
    tour(&api).await;
}

#[tokio::test]
async fn as_a_payload_on_the_embedded_store_and_archive() {
    let api = Api::start(Mode::Payload, || Store::Embedded, |_| Files::Embedded).await;
    tour(&api).await;
}

#[tokio::test]
async fn forwarded_on_cosmos_db_with_blob_storage_and_a_shared_key() {
    let api = Api::start(
        Mode::Forwarded,
        || Store::Cosmos(CosmosTarget::start()),
        |_| Files::SharedKey(BlobTarget::start()),
    )
    .await;
    tour(&api).await;
}

#[tokio::test]
async fn as_a_payload_on_cosmos_db_with_blob_storage_and_a_shared_key() {
    let api = Api::start(
        Mode::Payload,
        || Store::Cosmos(CosmosTarget::start()),
        |_| Files::SharedKey(BlobTarget::start()),
    )
    .await;
    tour(&api).await;
}

#[tokio::test]
async fn forwarded_on_cosmos_db_with_blob_storage_and_microsoft_entra_id() {
    let api = Api::start(
        Mode::Forwarded,
        || Store::Cosmos(CosmosTarget::start()),
        |dir| Files::Entra(EntraBlob::start(dir)),
    )
    .await;
    tour(&api).await;
}

#[tokio::test]
async fn as_a_payload_on_the_embedded_store_with_blob_storage_and_microsoft_entra_id() {
    let api = Api::start(
        Mode::Payload,
        || Store::Embedded,
        |dir| Files::Entra(EntraBlob::start(dir)),
    )
    .await;
    tour(&api).await;
}

#[tokio::test]
async fn a_link_stops_working_when_it_expires() {
    let api = Api::start_with(
        Mode::Forwarded,
        Store::Embedded,
        |_| Files::SharedKey(BlobTarget::start()),
        &[("RECORDINGS_LINK_MINUTES", "1")],
    )
    .await;
    api.deliver_and_archive(&[api.event("e1", "call-1", "rec-1", &["d0"])])
        .await;
    let asked = time::OffsetDateTime::now_utc();
    let recording = json_of(&api.get("/api/recordings/call-1/rec-1").await);
    let answered = time::OffsetDateTime::now_utc();
    let links = &recording["chunks"][0]["links"];
    let link = links["content"].as_str().unwrap().to_owned();
    let expires_on = time::OffsetDateTime::parse(
        links["expiresOn"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // A minute from when the link was made, to the second (a SAS names whole seconds: the fraction is dropped).
    let minute = time::Duration::minutes(1);
    let earliest = (asked + minute).replace_nanosecond(0).unwrap();
    assert!(
        earliest <= expires_on && expires_on <= answered + minute,
        "RECORDINGS_LINK_MINUTES=1: made between {asked} and {answered}, expires on {expires_on}"
    );
    let client = reqwest::Client::new();
    assert_eq!(client.get(&link).send().await.unwrap().status(), 200);
    support::wait::until_async(
        "the link's expiry, and Azurite refusing it",
        Duration::from_secs(120),
        || format!("expires on {expires_on}"),
        || async { client.get(&link).send().await.unwrap().status() == 403 },
    )
    .await;
    assert!(
        time::OffsetDateTime::now_utc() >= expires_on,
        "refused only once expired"
    );
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_a_503_with_retry_after_in_both_modes() {
    for mode in [Mode::Forwarded, Mode::Payload] {
        let cosmos = CosmosTarget::start_local();
        let proxy = Proxy::start(([127, 0, 0, 1], cosmos.port()).into()).await;
        let endpoint = format!("http://127.0.0.1:{}/", proxy.port);
        let settings = cosmos.handler_settings(&unique_database(), Some(&endpoint));
        let host = Host::start_in(
            AppDir::new().with_forwarding(mode == Mode::Forwarded),
            &support::str_pairs(&settings),
        )
        .await;
        proxy.stop();
        let key = host.function_key("Recordings");
        let answer = host.http("GET", &format!("/api/recordings/call-1?code={key}")).await;
        assert_problem(&answer, 503);
        assert_eq!(answer.header("retry-after"), Some("5"), "{mode:?} {answer:?}");
        proxy.resume().await;
        let answer = host.http("GET", &format!("/api/recordings/call-1?code={key}")).await;
        assert_eq!(answer.status, 200, "{mode:?}: back once the store is: {answer:?}");
    }
}

#[tokio::test]
async fn an_archive_job_in_flight_during_an_erase_leaves_nothing_behind() {
    for files in ["embedded", "blob"] {
        let blob = (files == "blob").then(BlobTarget::start);
        let api = Api::start_with(
            Mode::Forwarded,
            Store::Embedded,
            |_| match blob {
                Some(blob) => Files::SharedKey(blob),
                None => Files::Embedded,
            },
            &[],
        )
        .await;
        let event = api.event_of_size("e1", "call-1", "rec-1", &["d0"], 4_000_000);
        api.acs.inject(
            "d0",
            FileKind::Content,
            Fault::Slow {
                delay_per_frame: Duration::from_millis(5),
            },
        );
        assert!(api.host.invoke(&event).await.succeeded());
        let erase = async {
            support::wait::until(
                "the archive job downloading the content",
                Duration::from_secs(60),
                || api.host.diagnosis(),
                || api.acs.downloads_in_flight() > 0,
            )
            .await;
            let erased = api.erase("/api/recordings/call-1").await;
            assert_eq!(json_of(&erased)["erased"]["recordings"], 1, "{erased:?}");
        };
        let (report, ()) = tokio::join!(api.host.run_queues(|| false), erase);
        assert_eq!(report.poisoned, 0, "{files}: {report:?}");
        support::wait::until(
            "the job's line: it ends as a no-op",
            Duration::from_secs(10),
            || api.host.diagnosis(),
            || api.host.output().contains("the recording was erased: nothing archived"),
        )
        .await;
        assert_eq!(ids(&api.get("/api/recordings/call-1").await), Vec::<String>::new());
        let again = json_of(&api.erase("/api/recordings/call-1").await);
        assert_eq!(
            again["erased"]["files"], 0,
            "{files}: nothing left in the archive: {again}"
        );
        if files == "embedded" {
            let archive = api.host.data_dir().join("archive");
            assert!(
                support::files_under(&archive).is_empty(),
                "{:?}",
                support::files_under(&archive)
            );
        }
    }
}

#[tokio::test]
async fn with_microsoft_entra_id_week_long_links_share_one_user_delegation_key() {
    let api = Api::start_with(
        Mode::Forwarded,
        Store::Embedded,
        |dir| Files::Entra(EntraBlob::start(dir)),
        &[("RECORDINGS_LINK_MINUTES", "10080")],
    )
    .await;
    api.deliver_and_archive(&[api.event("e1", "call-1", "rec-1", &["d0", "d1"])])
        .await;
    // Each link's key, by the times it names (Azurite issues a key for the times asked, to the second).
    let keys = |answer: &HttpAnswer| -> Vec<(String, String, time::OffsetDateTime)> {
        let recording = json_of(answer);
        let mut keys = Vec::new();
        for chunk in recording["recordings"][0]["chunks"].as_array().unwrap() {
            for file in ["content", "metadata"] {
                let link = url::Url::parse(chunk["links"][file].as_str().unwrap()).unwrap();
                let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
                let expires =
                    time::OffsetDateTime::parse(&query["se"], &time::format_description::well_known::Rfc3339).unwrap();
                keys.push((query["skt"].clone(), query["ske"].clone(), expires));
            }
        }
        keys
    };
    let first = keys(&api.get("/api/recordings/call-1").await);
    assert_eq!(first.len(), 4, "two chunks' content and metadata");
    // A key asked for a second later would name other times.
    let second_started = time::OffsetDateTime::now_utc().unix_timestamp();
    support::wait::until(
        "the clock to reach the next second",
        Duration::from_secs(5),
        || "the clock".to_owned(),
        || time::OffsetDateTime::now_utc().unix_timestamp() > second_started,
    )
    .await;
    let second = keys(&api.get("/api/recordings/call-1").await);
    let asked_for = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    for (start, expiry, link_expires) in first.iter().chain(&second) {
        assert_eq!(
            (start, expiry),
            (&first[0].0, &first[0].1),
            "one key signs every link: {first:?} {second:?}"
        );
        assert!(
            *link_expires > asked_for - time::Duration::hours(1) - time::Duration::minutes(1),
            "a link ends at most an hour before the week asked for: {link_expires}"
        );
    }
}
