//! The recordings API in-process, through the handler's own routes, in both ways the host reaches it: the request
//! forwarded as it is (`/api/recordings/…`), and the invocation payload (`POST /Recordings` with `Data.req`,
//! answered in `Outputs.res`). Every case runs in both and must get the same answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acs_recording_handler::api::{Linker, RecordingsApi};
use acs_recording_handler::archive::acs::{DownloadError, RecordingFiles};
use acs_recording_handler::archive::sources::ArchiveSources;
use acs_recording_handler::archive::{ArchiveJob, Archiver, EmbeddedArchive, FileWriter, JobOutcome};
use acs_recording_handler::functions::{EraseRecordings, Function, Recordings};
use acs_recording_handler::health::{DEFAULT_AT_RISK, Health, Status};
use acs_recording_handler::host::server::routes;
use acs_recording_handler::host::{Forwarded, Readiness};
use acs_recording_handler::pipeline::{Outcome, Pipeline};
use acs_recording_handler::quarantine::QuarantineEntry;
use acs_recording_handler::recording::{RecordingDocument, Stored, Tombstone};
use acs_recording_handler::store::{
    Edit, Edited, Erasure, ListFilter, MemoryStore, Merged, Page, PageRequest, RecordingStore, StoreError,
};
use serde_json::{Value, json};
use support::events::{chunk, recording_event};
use time::OffsetDateTime;

/// An event time within ACS's 24 hours, so that its files are still there to delete.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// ACS as these tests need it: every chunk's files, and the deletions asked for.
#[derive(Default)]
struct FakeAcs {
    deleted: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl RecordingFiles for FakeAcs {
    fn allows(&self, url: &str) -> bool {
        url.starts_with("https://storage.asm.skype.com/")
    }

    async fn download(&self, url: &str, writer: &mut dyn FileWriter) -> Result<u64, DownloadError> {
        let bytes = format!("the bytes of {url}").into_bytes();
        writer.write(&bytes).await?;
        Ok(bytes.len() as u64)
    }

    async fn delete(&self, url: &str) -> Result<(), DownloadError> {
        self.deleted.lock().unwrap().push(url.to_owned());
        Ok(())
    }
}

/// The handler's pieces over one store and an embedded archive, and its routes with the two API functions.
struct App {
    store: Arc<dyn RecordingStore>,
    pipeline: Pipeline,
    archiver: Archiver,
    acs: Arc<FakeAcs>,
    _dir: tempfile::TempDir,
}

impl App {
    fn new() -> Self {
        Self::over(Arc::new(MemoryStore::new()))
    }

    fn over(store: Arc<dyn RecordingStore>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let archive = Arc::new(EmbeddedArchive::open(dir.path().join("archive")).unwrap());
        let acs = Arc::new(FakeAcs::default());
        let archiver = Archiver::new(store.clone(), archive, acs.clone(), false);
        let pipeline = Pipeline::new(store.clone()).with_archival(Some(ArchiveSources::default_list()));
        Self {
            store,
            pipeline,
            archiver,
            acs,
            _dir: dir,
        }
    }

    fn api(&self) -> RecordingsApi {
        let linker = Linker {
            archive: self.archiver.archive().clone(),
            lifetime: Duration::from_secs(900),
        };
        RecordingsApi::new(self.store.clone()).with_archive(linker, self.acs.clone())
    }

    /// Stores an event; returns its archive jobs.
    async fn deliver(&self, event: &Value) -> Outcome {
        self.pipeline.process_event(&event.to_string()).await.unwrap()
    }

    async fn archive(&self, jobs: &[ArchiveJob]) {
        for job in jobs {
            let outcome = self.archiver.run(job, 1).await.unwrap();
            assert!(matches!(outcome, JobOutcome::Archived { .. }), "{outcome}");
        }
    }

    /// Sends `method path` as the host would in `mode`; returns the status, content type and JSON body.
    async fn request(&self, mode: Mode, method: &str, path: &str) -> Answer {
        let api = self.api();
        let health = Health::new(self.store.clone(), DEFAULT_AT_RISK);
        let functions: Vec<Arc<dyn Function>> = vec![
            Arc::new(Recordings::new(api.clone())),
            Arc::new(EraseRecordings::new(api.clone())),
            Arc::new(acs_recording_handler::functions::Status::new(health.clone())),
        ];
        let filter = routes(functions, Forwarded { api, health }, Readiness::default());
        match mode {
            Mode::Forwarded => {
                let response = warp::test::request()
                    .method(method)
                    .path(path)
                    .header("x-azure-functions-invocationid", "invocation-1")
                    .reply(&filter)
                    .await;
                Answer {
                    status: response.status().as_u16(),
                    content_type: header(response.headers(), "content-type"),
                    retry_after: header(response.headers(), "retry-after"),
                    body: serde_json::from_slice(response.body()).unwrap_or(Value::Null),
                }
            }
            Mode::Payload => {
                let function = if method == "DELETE" {
                    "EraseRecordings"
                } else if path.to_ascii_lowercase().starts_with("/api/status") {
                    "Status"
                } else {
                    "Recordings"
                };
                let url = url::Url::parse(&format!("http://localhost:7071{path}")).unwrap();
                let segments: Vec<String> = url.path_segments().unwrap().skip(2).map(str::to_owned).collect();
                let params = json!({
                    "callId": segments.first().cloned().unwrap_or_default(),
                    "recordingId": segments.get(1).cloned().unwrap_or_default(),
                });
                let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
                let body = json!({
                    "Data": {"req": {"Url": url.as_str(), "Method": method, "Query": query, "Headers": {},
                                      "Params": params, "Identities": [], "Body": null}},
                    "Metadata": {}
                });
                let response = warp::test::request()
                    .method("POST")
                    .path(&format!("/{function}"))
                    .header("x-azure-functions-invocationid", "invocation-1")
                    .body(body.to_string())
                    .reply(&filter)
                    .await;
                assert_eq!(response.status(), 200, "an API answer is a successful invocation");
                let reply: Value = serde_json::from_slice(response.body()).unwrap();
                let res = &reply["Outputs"]["res"];
                Answer {
                    status: res["statusCode"].as_u64().unwrap() as u16,
                    content_type: res["headers"]["Content-Type"].as_str().map(str::to_owned),
                    retry_after: res["headers"]["Retry-After"].as_str().map(str::to_owned),
                    body: serde_json::from_str(res["body"].as_str().unwrap()).unwrap_or(Value::Null),
                }
            }
        }
    }
}

fn header(headers: &warp::http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Forwarded,
    Payload,
}

const MODES: [Mode; 2] = [Mode::Forwarded, Mode::Payload];

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn ids(&self) -> Vec<String> {
        self.body["recordings"]
            .as_array()
            .unwrap_or_else(|| panic!("no recordings in {self:?}"))
            .iter()
            .map(|r| format!("{}/{}", r["callId"].as_str().unwrap(), r["id"].as_str().unwrap()))
            .collect()
    }

    fn is_problem(&self, status: u16) -> bool {
        self.status == status
            && self.content_type.as_deref() == Some("application/problem+json")
            && self.body["status"] == status
            && self.body["type"] == "about:blank"
            && self.body["title"].is_string()
            && self.body["detail"].is_string()
    }
}

/// Seven recordings over three calls; the first call's server call id is `s-1`.
async fn seven_recordings(app: &App) -> Vec<ArchiveJob> {
    let mut jobs = Vec::new();
    for (n, (call, recording)) in [
        ("c1", "r1"),
        ("c1", "r2"),
        ("c1", "r3"),
        ("c2", "r4"),
        ("c2", "r5"),
        ("c3", "r6"),
        ("c3", "r7"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = recording_event(&format!("e{n}"), call, recording, &now(), &[chunk(0, &format!("d{n}"))]);
        if call == "c1" {
            event["subject"] = json!(format!(
                "/recording/call/{call}/serverCallId/s-1/recordingId/{recording}"
            ));
        }
        if let Outcome::Stored { jobs: made, .. } = app.deliver(&event).await {
            jobs.extend(made);
        }
    }
    jobs
}

#[tokio::test]
async fn a_listing_pages_every_recording_exactly_once_in_both_modes() {
    let app = App::new();
    seven_recordings(&app).await;
    for mode in MODES {
        for limit in [1, 2, 3, 7, 200] {
            let mut pages: Vec<Vec<String>> = Vec::new();
            let mut path = format!("/api/recordings?limit={limit}&code=the-function-key");
            loop {
                // Seven recordings take at most seven pages: a token that never ends fails here, not by hanging.
                assert!(
                    pages.len() < 7,
                    "{mode:?} limit {limit}: the listing never ended: {pages:?}"
                );
                let page = app.request(mode, "GET", &path).await;
                assert_eq!(page.status, 200, "{mode:?} {page:?}");
                assert!(page.ids().len() <= limit);
                pages.push(page.ids());
                match page.body["continuationToken"].as_str() {
                    Some(token) => path = format!("/api/recordings?limit={limit}&continuationToken={token}"),
                    None => break,
                }
            }
            let seen: Vec<String> = pages.concat();
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((seen.len(), unique.len()), (7, 7), "{mode:?} limit {limit}: {seen:?}");
        }
    }
}

#[tokio::test]
async fn filters_select_a_call_a_server_call_and_an_archive_state_and_combine() {
    let app = App::new();
    let jobs = seven_recordings(&app).await;
    // r2's chunk (of call c1) archived; every other chunk still pending.
    app.archive(&jobs[1..2]).await;
    for mode in MODES {
        let ids = |path: &'static str| {
            let app = &app;
            async move {
                let answer = app.request(mode, "GET", path).await;
                assert_eq!(answer.status, 200, "{path}: {answer:?}");
                answer.ids()
            }
        };
        assert_eq!(ids("/api/recordings/c2").await, ["c2/r4", "c2/r5"]);
        assert_eq!(
            ids("/api/recordings?serverCallId=s-1").await,
            ["c1/r1", "c1/r2", "c1/r3"]
        );
        assert_eq!(ids("/api/recordings?archiveState=archived").await, ["c1/r2"]);
        assert_eq!(
            ids("/api/recordings?archiveState=pending&serverCallId=s-1").await,
            ["c1/r1", "c1/r3"]
        );
        assert_eq!(
            ids("/api/recordings/c3?archiveState=archived").await,
            Vec::<String>::new()
        );
        assert_eq!(ids("/api/recordings/no-such-call").await, Vec::<String>::new());
    }
}

#[tokio::test]
async fn one_recording_is_found_by_its_id_with_links_to_its_archived_files_and_an_unknown_one_is_404() {
    let app = App::new();
    let jobs = seven_recordings(&app).await;
    app.archive(&jobs[0..1]).await;
    for mode in MODES {
        let answer = app.request(mode, "GET", "/api/recordings/c1/r1").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body["recordingId"], "r1");
        let links = &answer.body["chunks"][0]["links"];
        let content = url::Url::parse(links["content"].as_str().unwrap()).unwrap();
        assert_eq!(content.scheme(), "file");
        let bytes = std::fs::read(content.to_file_path().unwrap()).unwrap();
        assert_eq!(
            bytes,
            b"the bytes of https://storage.asm.skype.com/v1/objects/d0/content/video"
        );
        assert!(
            links.get("expiresOn").is_none(),
            "an embedded archive's link does not expire"
        );

        let pending = app.request(mode, "GET", "/api/recordings/c1/r2").await;
        assert!(
            pending.body["chunks"][0].get("links").is_none(),
            "a pending chunk has no links"
        );

        assert!(app.request(mode, "GET", "/api/recordings/c1/r9").await.is_problem(404));
        assert!(app.request(mode, "GET", "/api/recordings/c9/r1").await.is_problem(404));
    }
}

#[tokio::test]
async fn every_bad_value_is_a_400_problem_and_never_a_5xx() {
    let app = App::new();
    seven_recordings(&app).await;
    let first = app.request(Mode::Forwarded, "GET", "/api/recordings/c1?limit=1").await;
    let token = first.body["continuationToken"].as_str().unwrap().to_owned();
    for mode in MODES {
        for path in [
            "/api/recordings?limit=abc".to_owned(),
            "/api/recordings?limit=0".to_owned(),
            "/api/recordings?limit=201".to_owned(),
            "/api/recordings?archiveState=lost".to_owned(),
            "/api/recordings?continuationToken=not-ours".to_owned(),
            // A token is taken back only for the listing it was given for.
            format!("/api/recordings/c2?limit=1&continuationToken={token}"),
            format!(
                "/api/recordings/c1?limit=1&continuationToken={}x",
                &token[..token.len() - 1]
            ),
        ] {
            let answer = app.request(mode, "GET", &path).await;
            assert!(answer.is_problem(400), "{mode:?} {path}: {answer:?}");
        }
        let next = app
            .request(
                mode,
                "GET",
                &format!("/api/recordings/c1?limit=1&continuationToken={token}"),
            )
            .await;
        assert_eq!(next.status, 200, "the token works for its own listing: {next:?}");
    }
}

/// A store that cannot be reached.
struct Unreachable;

#[async_trait::async_trait]
impl RecordingStore for Unreachable {
    async fn merge(&self, _: RecordingDocument) -> Result<Merged, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn edit(&self, _: &str, _: &str, _: Edit) -> Result<Edited, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn quarantine(&self, _: QuarantineEntry) -> Result<(), StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn lookup(&self, _: &str, _: &str) -> Result<Option<Stored>, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn documents(&self, _: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn list(&self, _: &ListFilter, _: &PageRequest) -> Result<Page, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn erase(&self, _: &str, _: &str, _: &str) -> Result<Erasure, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn tombstones(&self, _: &str) -> Result<Vec<Tombstone>, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn erase_quarantined(&self, _: &str) -> Result<usize, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn read_quarantined(&self, _: &str) -> Result<Option<QuarantineEntry>, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    async fn status(&self, _: OffsetDateTime, _: time::Duration) -> Result<Status, StoreError> {
        Err(StoreError::TimedOut(Duration::from_secs(8)))
    }
    fn location(&self, call_id: &str, id: &str) -> String {
        format!("{call_id}/{id}")
    }
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_a_503_with_retry_after_that_tells_no_internals() {
    let app = App::over(Arc::new(Unreachable));
    for mode in MODES {
        for (method, path) in [
            ("GET", "/api/recordings"),
            ("GET", "/api/recordings/c1"),
            ("GET", "/api/recordings/c1/r1"),
            ("DELETE", "/api/recordings/c1"),
            ("GET", "/api/status"),
        ] {
            let answer = app.request(mode, method, path).await;
            assert!(answer.is_problem(503), "{mode:?} {method} {path}: {answer:?}");
            assert_eq!(answer.retry_after.as_deref(), Some("5"));
            assert!(
                !answer.body.to_string().contains("8s"),
                "the cause is logged, not told: {answer:?}"
            );
        }
    }
}

/// A store that answers every request after `delay`, as the memory store answers it.
struct Late {
    delay: Duration,
    store: MemoryStore,
}

impl Late {
    async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }
}

#[async_trait::async_trait]
impl RecordingStore for Late {
    async fn merge(&self, document: RecordingDocument) -> Result<Merged, StoreError> {
        self.wait().await;
        self.store.merge(document).await
    }
    async fn edit(&self, call_id: &str, id: &str, edit: Edit) -> Result<Edited, StoreError> {
        self.wait().await;
        self.store.edit(call_id, id, edit).await
    }
    async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError> {
        self.wait().await;
        self.store.quarantine(entry).await
    }
    async fn lookup(&self, call_id: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        self.wait().await;
        self.store.lookup(call_id, id).await
    }
    async fn documents(&self, call_id: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError> {
        self.wait().await;
        self.store.documents(call_id).await
    }
    async fn list(&self, filter: &ListFilter, page: &PageRequest) -> Result<Page, StoreError> {
        self.wait().await;
        self.store.list(filter, page).await
    }
    async fn erase(&self, call_id: &str, id: &str, erased_at: &str) -> Result<Erasure, StoreError> {
        self.wait().await;
        self.store.erase(call_id, id, erased_at).await
    }
    async fn tombstones(&self, call_id: &str) -> Result<Vec<Tombstone>, StoreError> {
        self.wait().await;
        self.store.tombstones(call_id).await
    }
    async fn erase_quarantined(&self, call_id: &str) -> Result<usize, StoreError> {
        self.wait().await;
        self.store.erase_quarantined(call_id).await
    }
    async fn read_quarantined(&self, id: &str) -> Result<Option<QuarantineEntry>, StoreError> {
        self.wait().await;
        self.store.read_quarantined(id).await
    }
    async fn status(&self, now: OffsetDateTime, at_risk: time::Duration) -> Result<Status, StoreError> {
        self.wait().await;
        self.store.status(now, at_risk).await
    }
    fn location(&self, call_id: &str, id: &str) -> String {
        self.store.location(call_id, id)
    }
}

/// On tokio's paused clock, which moves on by itself whenever every task waits: the store's delays, the API's
/// budgets and the host's function timeout pass in no time, and in the order their deadlines say.
#[tokio::test(start_paused = true)]
async fn a_store_that_answers_too_late_is_a_503_problem_before_the_function_times_out_in_both_modes() {
    let requests = [
        ("GET", "/api/recordings"),
        ("GET", "/api/recordings/c1"),
        ("GET", "/api/recordings/c1/r1"),
        ("DELETE", "/api/recordings/c1"),
        ("GET", "/api/status"),
    ];
    let late = App::over(Arc::new(Late {
        delay: Duration::from_secs(3600),
        store: MemoryStore::new(),
    }));
    for mode in MODES {
        for (method, path) in requests {
            let answer = late.request(mode, method, path).await;
            assert!(answer.is_problem(503), "{mode:?} {method} {path}: {answer:?}");
            assert_eq!(answer.retry_after.as_deref(), Some("5"));
        }
    }
    // A store that answers in time is answered as usual.
    let prompt = App::over(Arc::new(Late {
        delay: Duration::from_secs(1),
        store: MemoryStore::new(),
    }));
    let event = recording_event("e1", "c1", "r1", &now(), &[chunk(0, "d0")]);
    assert!(matches!(prompt.deliver(&event).await, Outcome::Stored { .. }));
    for mode in MODES {
        for (method, path) in requests {
            let answer = prompt.request(mode, method, path).await;
            assert!(
                answer.status == 200 || answer.is_problem(404),
                "{mode:?} {method} {path}: {answer:?}"
            );
        }
    }
}

#[tokio::test]
async fn erasing_a_call_removes_its_documents_files_acs_files_and_quarantine_and_again_removes_nothing() {
    for mode in MODES {
        let app = App::new();
        let jobs = seven_recordings(&app).await;
        app.archive(&jobs[..3]).await; // c1's three chunks
        let quarantined = app
            .pipeline
            .quarantine(
                br#"{"subject":"/recording/call/c1/recordingId/r1","data":"unreadable"}"#,
                "test".into(),
            )
            .await
            .unwrap();
        let other = app
            .pipeline
            .quarantine(br#"{"subject":"/recording/call/c10/recordingId/r1"}"#, "test".into())
            .await
            .unwrap();

        let answer = app.request(mode, "DELETE", "/api/recordings/c1").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            answer.body,
            json!({"erased": {"recordings": 3, "files": 6, "acsFiles": 3, "quarantined": 1}})
        );
        assert_eq!(app.acs.deleted.lock().unwrap().len(), 3);
        assert!(app.request(mode, "GET", "/api/recordings/c1").await.ids().is_empty());
        assert!(app.request(mode, "GET", "/api/recordings/c1/r1").await.is_problem(404));
        assert_eq!(
            app.request(mode, "GET", "/api/recordings/c2").await.ids().len(),
            2,
            "other calls stay"
        );
        let Outcome::Quarantined { id: kept, .. } = other else {
            panic!()
        };
        let Outcome::Quarantined { id: gone, .. } = quarantined else {
            panic!()
        };
        assert!(app.store.read_quarantined(&kept).await.unwrap().is_some());
        assert!(app.store.read_quarantined(&gone).await.unwrap().is_none());
        for job in &jobs[..3] {
            let key = acs_recording_handler::archive::FileKey::content(job);
            let file = app.archiver.archive().existing(&key).await.unwrap();
            assert!(file.is_none(), "the archived content is gone");
        }

        let again = app.request(mode, "DELETE", "/api/recordings/c1").await;
        assert_eq!(
            again.body,
            json!({"erased": {"recordings": 0, "files": 0, "acsFiles": 0, "quarantined": 0}})
        );
    }
}

#[tokio::test]
async fn erasing_sends_acs_deletes_only_to_the_object_both_files_of_a_chunk_lie_under() {
    for mode in MODES {
        let app = App::new();
        let object = |id: &str| format!("https://storage.asm.skype.com/v1/objects/{id}");
        let with_delete = |index: u64, id: &str, delete: String| {
            let mut chunk = chunk(index, id);
            chunk["deleteLocation"] = Value::String(delete);
            chunk
        };
        let chunks = [
            chunk(0, "d0"),
            // Another recording's object, the parent of every object, another host, the object with a query.
            with_delete(1, "d1", object("victim")),
            with_delete(2, "d2", "https://storage.asm.skype.com/v1/objects".to_owned()),
            with_delete(3, "d3", "https://attacker.example/v1/objects/d3".to_owned()),
            with_delete(4, "d4", format!("{}?comp=all", object("d4"))),
        ];
        let event = recording_event("e1", "c1", "r1", &now(), &chunks);
        assert!(matches!(app.deliver(&event).await, Outcome::Stored { .. }));

        let answer = app.request(mode, "DELETE", "/api/recordings/c1").await;
        assert_eq!(answer.status, 200, "{mode:?}: {answer:?}");
        assert_eq!(answer.body["erased"]["acsFiles"], 1, "{mode:?}: {answer:?}");
        assert_eq!(
            *app.acs.deleted.lock().unwrap(),
            [object("d0")],
            "{mode:?}: a DELETE only where a chunk's own files lie"
        );
    }
}

#[tokio::test]
async fn an_erased_recording_stays_erased_for_a_redelivered_event_and_an_archive_job_in_flight() {
    let app = App::new();
    let event = recording_event("e1", "c1", "r1", &now(), &[chunk(0, "d0")]);
    let Outcome::Stored { jobs, .. } = app.deliver(&event).await else {
        panic!()
    };
    let archive = app.archiver.archive().clone();
    let key = acs_recording_handler::archive::FileKey::content(&jobs[0]);
    let source = "https://storage.asm.skype.com/v1/objects/d0/content/video";
    // A job downloading across the erase: the embedded archive's erase takes its partial file with the folder, so it
    // cannot commit (Blob Storage's erase drops the blocks staged so far, but a writer still holds its last block in
    // memory, and a file within one block commits all the same: see below).
    let mut across = archive.writer(&key, source).await.unwrap();
    across.write(b"late bytes").await.unwrap();

    let quarantined = app
        .pipeline
        .quarantine(br#"{"subject":"/recording/call/c1/recordingId/r2"}"#, "test".into())
        .await
        .unwrap();
    let Outcome::Quarantined { id: quarantined, .. } = quarantined else {
        panic!()
    };

    let answer = app.request(Mode::Forwarded, "DELETE", "/api/recordings/c1/r1").await;
    assert_eq!(answer.body["erased"]["recordings"], 1, "{answer:?}");
    assert_eq!(
        answer.body["erased"]["quarantined"], 0,
        "only erasing the whole call removes quarantined payloads"
    );
    assert!(app.store.read_quarantined(&quarantined).await.unwrap().is_some());
    assert!(across.commit(Some(10)).await.is_err(), "its bytes went with the erase");

    // A job that commits the file after the erase.
    let mut late = archive.writer(&key, source).await.unwrap();
    late.write(b"late bytes").await.unwrap();
    late.commit(Some(10)).await.unwrap();
    assert!(
        archive.existing(&key).await.unwrap().is_some(),
        "committed after the erase"
    );

    // The redelivered event is acknowledged and neither stored nor archived.
    let redelivered = app.deliver(&event).await;
    assert!(matches!(redelivered, Outcome::Erased { .. }), "{redelivered:?}");
    assert!(app.store.read("c1", "r1").await.unwrap().is_none());
    // The job in flight finds the tombstone, and removes the file it committed.
    let outcome = app.archiver.run(&jobs[0], 1).await.unwrap();
    assert_eq!(outcome, JobOutcome::Erased { files_removed: 1 });
    assert!(archive.existing(&key).await.unwrap().is_none());
    let tombstone = app.store.lookup("c1", "r1").await.unwrap();
    assert!(
        matches!(tombstone, Some(Stored::Erased(ref t)) if t.recording_id.as_deref() == Some("r1")),
        "{tombstone:?}"
    );
}

#[tokio::test]
async fn wrong_methods_and_deeper_paths_get_problems_not_server_errors() {
    let app = App::new();
    assert!(
        app.request(Mode::Forwarded, "POST", "/api/recordings/c1")
            .await
            .is_problem(405)
    );
    assert!(
        app.request(Mode::Forwarded, "GET", "/api/recordings/c1/r1/extra")
            .await
            .is_problem(404)
    );
    assert!(
        app.request(Mode::Forwarded, "DELETE", "/api/recordings")
            .await
            .is_problem(404)
    );
}

#[tokio::test]
async fn the_api_path_in_another_case_is_served_problems_included() {
    let app = App::new();
    seven_recordings(&app).await;
    // The host matches routes without regard to case, and forwards the path as the caller spelled it.
    let lower = app.request(Mode::Forwarded, "GET", "/api/recordings/c1").await;
    assert_eq!(lower.ids().len(), 3, "{lower:?}");
    for path in ["/API/Recordings/c1", "/Api/RECORDINGS/c1/"] {
        let answer = app.request(Mode::Forwarded, "GET", path).await;
        assert_eq!((answer.status, answer.ids()), (200, lower.ids()), "{path}: {answer:?}");
    }
    let one = app.request(Mode::Forwarded, "GET", "/API/RECORDINGS/c1/r1").await;
    assert_eq!(one.body["recordingId"], "r1", "{one:?}");
    for (method, path, status) in [
        ("GET", "/API/Recordings/c1/r1/extra", 404),
        ("GET", "/API/Recordings/c1/r9", 404),
        ("GET", "/Api/Recordings?limit=0", 400),
        ("PUT", "/API/RECORDINGS/c1", 405),
    ] {
        let answer = app.request(Mode::Forwarded, method, path).await;
        assert!(answer.is_problem(status), "{method} {path}: {answer:?}");
    }
}

#[tokio::test]
async fn the_health_summary_is_the_same_json_in_both_modes_and_only_read_with_get() {
    let app = App::new();
    let jobs = seven_recordings(&app).await;
    app.archive(&jobs[..3]).await;
    app.pipeline.quarantine(b"not an event", "test".into()).await.unwrap();
    let erase = app.request(Mode::Forwarded, "DELETE", "/api/recordings/c2/r4").await;
    assert_eq!(erase.status, 200, "{erase:?}");
    for mode in MODES {
        for path in ["/api/status", "/API/Status/"] {
            let answer = app.request(mode, "GET", path).await;
            assert_eq!(answer.status, 200, "{mode:?} {path}: {answer:?}");
            assert_eq!(answer.content_type.as_deref(), Some("application/json"));
            let oldest = &answer.body["oldestPending"];
            assert_eq!(
                (&oldest["callId"], &oldest["documentId"]),
                (&json!("c2"), &json!("d4")),
                "{oldest}"
            );
            assert_eq!(
                answer.body,
                json!({"recordings": 6,
                       "chunks": {"pending": 3, "archived": 3, "failed": 0, "expired": 0, "external": 0},
                       "oldestPending": oldest.clone(), "atRisk": 0, "quarantined": 1, "tombstones": 1}),
                "{mode:?} {path}"
            );
        }
    }
    let post = app.request(Mode::Forwarded, "POST", "/api/status").await;
    assert!(post.is_problem(405), "{post:?}");
}
