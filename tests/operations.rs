//! What an operator is told, made to happen behind the stand-in host on the embedded store and on Cosmos DB: each
//! condition that loses a recording or puts one at risk — a chunk ACS no longer has, a source outside the allow-list,
//! a job that never runs, a payload without storage info, a job that exhausts its retries, files left at ACS, an
//! erase — writes its record (its `event`, its fields, at the level the host files it), and the health summary
//! (`GET /api/status`, `handler status`) counts it. The embedded store's handler writes text lines, the Cosmos DB
//! store's JSON lines: the records are read from both formats as an alert query reads them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Map, Value, json};
use support::acs::{AcsOptions, AcsServer, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, Fault, FileKind};
use support::cosmos::{CosmosTarget, unique_database};
use support::events::{chunk, chunk_at, event_grid, recording_event, subject};
use support::host::{Level, Stream};
use support::{AppDir, Host};
use time::format_description::well_known::Rfc3339;

/// An RFC 3339 time `ago` before now.
fn ago(ago: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() - ago).format(&Rfc3339).unwrap()
}

fn now() -> String {
    ago(time::Duration::ZERO)
}

/// The store behind the host.
enum Store {
    Embedded,
    Cosmos(CosmosTarget, String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Embedded,
    Cosmos,
}

/// A host with archival on (from `acs` only), on the store of `kind`: text log lines on the embedded store, JSON on
/// Cosmos DB.
struct Ops {
    host: Host,
    acs: AcsServer,
    store: Store,
}

/// One record as the host filed it: its stream and level, and its fields as the handler wrote them.
#[derive(Debug)]
struct Record {
    stream: Stream,
    level: Level,
    fields: Map<String, Value>,
    line: String,
}

impl Record {
    fn field(&self, name: &str) -> &Value {
        self.fields.get(name).unwrap_or(&Value::Null)
    }

    fn text(&self, name: &str) -> &str {
        self.field(name).as_str().unwrap_or_default()
    }
}

impl Ops {
    async fn start(kind: Kind, extra: &[(&str, &str)]) -> Ops {
        Self::start_in(kind, AppDir::new(), extra).await
    }

    async fn start_in(kind: Kind, app: AppDir, extra: &[(&str, &str)]) -> Ops {
        let acs = AcsServer::start(AcsOptions::default());
        let mut settings = vec![
            (
                "AcsConnection".to_owned(),
                format!("endpoint=https://{DEFAULT_ACS_HOST}/;accesskey={DEFAULT_ACCESS_KEY}"),
            ),
            ("RECORDINGS_ARCHIVE_SOURCES".to_owned(), acs.base_url()),
        ];
        let store = match kind {
            Kind::Embedded => {
                settings.push(("RECORDINGS_LOG_FORMAT".to_owned(), "text".to_owned()));
                Store::Embedded
            }
            Kind::Cosmos => {
                let target = CosmosTarget::start();
                let database = unique_database();
                settings.extend(target.handler_settings(&database, None));
                settings.push(("RECORDINGS_LOG_FORMAT".to_owned(), "json".to_owned()));
                Store::Cosmos(target, database)
            }
        };
        settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let host = Host::start_in(app, &support::str_pairs(&settings)).await;
        Ops { host, acs, store }
    }

    /// Stores an event; the invocation must succeed.
    async fn deliver(&self, event: &Value) {
        let answer = self.host.invoke(event).await;
        assert!(answer.succeeded(), "{answer:?}\n{}", self.host.diagnosis());
    }

    /// Runs the archive jobs until the queues are empty.
    async fn run_jobs(&self) -> support::host::QueueReport {
        self.host.run_queues(|| false).await
    }

    /// `GET /api/status` with the `Status` function's key: the summary.
    async fn status(&self) -> Value {
        let key = self.host.function_key("Status");
        let answer = self.host.http("GET", &format!("/api/status?code={key}")).await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        let media = answer.header("content-type").and_then(|t| t.split(';').next());
        assert_eq!(media, Some("application/json"));
        serde_json::from_slice(&answer.body).unwrap()
    }

    /// `handler status` on the same store, as an operator runs it: its JSON.
    fn status_command(&self) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = self.host.data_dir();
        let mut env = vec![("RECORDINGS_DATA_DIR".to_owned(), data_dir.display().to_string())];
        if let Store::Cosmos(target, database) = &self.store {
            env = target.handler_settings(database, None);
        }
        let (status, stdout, stderr) = support::run_handler(dir.path(), &support::str_pairs(&env), &["status"]);
        assert!(status.success(), "{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Every record of `event` the workers wrote so far, read as an alert query reads it.
    fn records(&self, event: &str) -> Vec<Record> {
        self.host
            .logs()
            .into_iter()
            .filter_map(|line| {
                let fields = fields_of(&line.text)?;
                (fields.get("event").and_then(Value::as_str) == Some(event)).then_some(Record {
                    stream: line.stream,
                    level: line.level,
                    fields,
                    line: line.text,
                })
            })
            .collect()
    }

    /// The one record of `event`, once it is written (a record may arrive just after the answer it belongs to).
    async fn record(&self, event: &str) -> Record {
        support::wait::until(
            &format!("a {event} record"),
            Duration::from_secs(10),
            || self.host.diagnosis(),
            || !self.records(event).is_empty(),
        )
        .await;
        let mut records = self.records(event);
        assert_eq!(records.len(), 1, "one {event} record: {records:#?}");
        records.remove(0)
    }
}

/// The fields of a record line: a JSON line's `fields`, or a text line's `name=value` pairs (values quoted as the
/// text format quotes them) — `None` for a line that names no `event`. A text line's event is read as the alert
/// queries read it: `event="NAME"` at the start or after a space.
fn fields_of(line: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(mut json)) = serde_json::from_str::<Value>(line) {
        let fields = json.remove("fields")?.as_object()?.clone();
        return fields.contains_key("event").then_some(fields);
    }
    let at = line
        .match_indices("event=\"")
        .find(|(at, _)| *at == 0 || line[..*at].ends_with(' '))?
        .0;
    let mut fields = Map::new();
    // What precedes the fields: the time, the level, the target and the message.
    fields.insert("message".to_owned(), Value::String(line[..at].to_owned()));
    let mut rest = &line[at..];
    while let Some(equals) = rest.find('=') {
        let name = rest[..equals].trim().to_owned();
        let value = &rest[equals + 1..];
        let (value, after) = if let Some(quoted) = value.strip_prefix('"') {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match (c, escaped) {
                    ('\\', false) => escaped = true,
                    ('"', false) => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            let text: String = serde_json::from_str(&format!("\"{}\"", &quoted[..end])).ok()?;
            (Value::String(text), &quoted[end + 1..])
        } else {
            let end = value.find(' ').unwrap_or(value.len());
            let bare = &value[..end];
            let parsed = serde_json::from_str(bare).unwrap_or_else(|_| Value::String(bare.to_owned()));
            (parsed, &value[end..])
        };
        fields.insert(name, value);
        rest = after;
    }
    Some(fields)
}

/// The summary with everything zero but what `changes` says.
fn summary(changes: Value) -> Value {
    let mut summary = json!({
        "recordings": 0,
        "chunks": {"pending": 0, "archived": 0, "failed": 0, "expired": 0, "external": 0},
        "oldestPending": null, "atRisk": 0, "quarantined": 0, "tombstones": 0
    });
    for (name, value) in changes.as_object().unwrap() {
        if name == "chunks" {
            for (state, count) in value.as_object().unwrap() {
                summary["chunks"][state] = count.clone();
            }
        } else {
            summary[name] = value.clone();
        }
    }
    summary
}

/// Checks a chunk record names `call-1`'s `recording` and `chunk`.
fn names_chunk(record: &Record, recording: &str, chunk: &str) {
    assert_eq!(
        (
            record.text("call_id"),
            record.text("recording_id"),
            record.text("chunk_id")
        ),
        ("call-1", recording, chunk),
        "{}",
        record.line
    );
}

/// Checks where the host filed a record: WARN and ERROR on stderr, at Warning and Error.
fn filed_at(record: &Record, level: Level) {
    let stream = if level == Level::Information {
        Stream::Stdout
    } else {
        Stream::Stderr
    };
    assert_eq!((record.stream, record.level), (stream, level), "{}", record.line);
}

// A chunk ACS no longer has: `chunk_expired`, at Error, and the summary counts it expired.
async fn a_chunk_acs_no_longer_has(kind: Kind) {
    let ops = Ops::start(kind, &[]).await;
    let kept = ops.acs.add_chunk("d0", 10_000);
    let gone = ops.acs.add_chunk("d1", 10_000);
    ops.acs.expire("d1");
    ops.deliver(&recording_event(
        "e1",
        "call-1",
        "rec-1",
        &now(),
        &[chunk_at(0, "d0", &kept), chunk_at(1, "d1", &gone)],
    ))
    .await;
    let report = ops.run_jobs().await;
    assert_eq!((report.failures, report.poisoned), (0, 0), "{report:?}");
    let record = ops.record("chunk_expired").await;
    filed_at(&record, Level::Error);
    names_chunk(&record, "rec-1", "d1");
    assert!(record.text("reason").contains("404"), "{}", record.line);
    assert!(ops.records("chunk_failed").is_empty());
    let expected = summary(json!({"recordings": 1, "chunks": {"archived": 1, "expired": 1}}));
    assert_eq!(ops.status().await, expected);
    assert_eq!(ops.status_command(), expected, "handler status says the same");
}

#[tokio::test]
async fn a_chunk_acs_no_longer_has_is_recorded_expired_and_counted_on_the_embedded_store() {
    a_chunk_acs_no_longer_has(Kind::Embedded).await;
}

#[tokio::test]
async fn a_chunk_acs_no_longer_has_is_recorded_expired_and_counted_on_cosmos_db() {
    a_chunk_acs_no_longer_has(Kind::Cosmos).await;
}

// A source outside the allow-list: `chunk_failed`, at Error, for good, and counted failed.
async fn a_source_outside_the_allow_list(kind: Kind) {
    let ops = Ops::start(kind, &[]).await;
    let mut foreign = chunk(0, "d0");
    foreign["contentLocation"] = json!("https://elsewhere.example/v1/objects/d0/content/video");
    foreign["metadataLocation"] = json!("https://elsewhere.example/v1/objects/d0/content/acsmetadata");
    ops.deliver(&recording_event("e1", "call-1", "rec-1", &now(), &[foreign]))
        .await;
    let report = ops.run_jobs().await;
    assert_eq!(report.failures, 0, "a refusal is final: {report:?}");
    let record = ops.record("chunk_failed").await;
    filed_at(&record, Level::Error);
    names_chunk(&record, "rec-1", "d0");
    assert_eq!(record.field("retryable"), &json!(false), "{}", record.line);
    assert!(
        record.text("reason").contains("not in RECORDINGS_ARCHIVE_SOURCES"),
        "{}",
        record.line
    );
    assert!(
        !record.text("message").contains("elsewhere.example"),
        "the URL is in the reason, never in the message: {}",
        record.line
    );
    assert_eq!(
        ops.status().await,
        summary(json!({"recordings": 1, "chunks": {"failed": 1}}))
    );
}

#[tokio::test]
async fn a_source_outside_the_allow_list_is_recorded_failed_and_counted_on_the_embedded_store() {
    a_source_outside_the_allow_list(Kind::Embedded).await;
}

#[tokio::test]
async fn a_source_outside_the_allow_list_is_recorded_failed_and_counted_on_cosmos_db() {
    a_source_outside_the_allow_list(Kind::Cosmos).await;
}

// Jobs that never run: announced 20 and 25 hours ago, their jobs lost, the sweep writes `chunk_at_risk` (Warning)
// and `chunk_past_deadline` (Error); the summary counts both at risk and names the older as the oldest pending.
async fn jobs_that_never_run(kind: Kind) {
    let ops = Ops::start(kind, &[]).await;
    let (twenty, twenty_five, fresh) = (ago(time::Duration::hours(20)), ago(time::Duration::hours(25)), now());
    for (event, recording, chunk_id, time) in [
        ("e1", "rec-1", "d0", &twenty),
        ("e2", "rec-2", "d1", &twenty_five),
        ("e3", "rec-3", "d2", &fresh),
    ] {
        let urls = ops.acs.add_chunk(chunk_id, 10_000);
        ops.deliver(&recording_event(
            event,
            "call-1",
            recording,
            time,
            &[chunk_at(0, chunk_id, &urls)],
        ))
        .await;
    }
    assert_eq!(ops.host.drain_queue("recording-archive").len(), 3, "every job is lost");
    let tick = ops.host.fire_timer("ArchiveSweep", false).await;
    assert!(tick.succeeded(), "{}", tick.log());
    ops.host.drain_queue("recording-archive"); // and lost again: they never run

    let deadline = |time: &str| {
        let announced = time::OffsetDateTime::parse(time, &Rfc3339).unwrap();
        (announced + time::Duration::hours(24)).format(&Rfc3339).unwrap()
    };
    let at_risk = ops.record("chunk_at_risk").await;
    filed_at(&at_risk, Level::Warning);
    names_chunk(&at_risk, "rec-1", "d0");
    assert_eq!(at_risk.text("announced_at"), twenty);
    assert_eq!(at_risk.text("deadline"), deadline(&twenty));
    let past = ops.record("chunk_past_deadline").await;
    filed_at(&past, Level::Error);
    names_chunk(&past, "rec-2", "d1");
    assert_eq!(past.text("deadline"), deadline(&twenty_five));
    let sweep = ops.record("archive_sweep").await;
    filed_at(&sweep, Level::Information);
    let counts = ["pending", "at_risk", "past_deadline", "queued"].map(|name| sweep.field(name).clone());
    assert_eq!(counts, [json!(3), json!(1), json!(1), json!(2)], "{}", sweep.line);
    let age = sweep.field("oldest_pending_age_seconds").as_i64().unwrap();
    assert!((25 * 3600..25 * 3600 + 600).contains(&age), "{}", sweep.line);
    assert_eq!(sweep.field("complete"), &json!(true));

    let status = ops.status().await;
    assert_eq!(
        status,
        summary(json!({"recordings": 3, "chunks": {"pending": 3}, "atRisk": 2,
                       "oldestPending": {"callId": "call-1", "recordingId": "rec-2", "documentId": "d1",
                                         "announcedAt": twenty_five, "deadline": deadline(&twenty_five)}}))
    );
    assert_eq!(ops.status_command(), status, "handler status says the same");
}

#[tokio::test]
async fn jobs_that_never_run_are_recorded_at_risk_and_past_the_deadline_and_counted_on_the_embedded_store() {
    jobs_that_never_run(Kind::Embedded).await;
}

#[tokio::test]
async fn jobs_that_never_run_are_recorded_at_risk_and_past_the_deadline_and_counted_on_cosmos_db() {
    jobs_that_never_run(Kind::Cosmos).await;
}

#[tokio::test]
async fn the_at_risk_time_is_the_setting() {
    let ops = Ops::start(Kind::Embedded, &[("RECORDINGS_AT_RISK_HOURS", "3")]).await;
    let (twenty, twenty_two) = (ago(time::Duration::hours(20)), ago(time::Duration::hours(22)));
    for (event, recording, chunk_id, time) in [("e1", "rec-1", "d0", &twenty), ("e2", "rec-2", "d1", &twenty_two)] {
        let urls = ops.acs.add_chunk(chunk_id, 10_000);
        ops.deliver(&recording_event(
            event,
            "call-1",
            recording,
            time,
            &[chunk_at(0, chunk_id, &urls)],
        ))
        .await;
    }
    ops.host.drain_queue("recording-archive");
    assert!(ops.host.fire_timer("ArchiveSweep", false).await.succeeded());
    let record = ops.record("chunk_at_risk").await;
    names_chunk(&record, "rec-2", "d1");
    assert_eq!(
        ops.status().await["atRisk"],
        1,
        "four hours left is no risk with three hours set; two hours left is"
    );
}

// A payload without storage info: quarantined, `payload_quarantined` at Warning, naming the call and recording its
// subject names, and counted.
async fn a_payload_without_storage_info(kind: Kind) {
    let ops = Ops::start(kind, &[]).await;
    let event = event_grid(
        "e1",
        &subject("call-1", "rec-1"),
        &now(),
        json!({"recordingDurationMs": 6620}),
    );
    let answer = ops.host.invoke(&event).await;
    assert!(answer.succeeded(), "{answer:?}");
    assert!(answer.log().starts_with("quarantined as "), "{}", answer.log());
    let record = ops.record("payload_quarantined").await;
    filed_at(&record, Level::Warning);
    assert_eq!(
        (record.text("call_id"), record.text("recording_id")),
        ("call-1", "rec-1")
    );
    assert!(
        record.text("reason").contains("recordingStorageInfo"),
        "{}",
        record.line
    );
    assert!(
        answer.log().contains(record.text("quarantine_id")) && !record.text("quarantine_id").is_empty(),
        "the record names the entry the reply names: {}",
        record.line
    );
    assert_eq!(ops.status().await, summary(json!({"quarantined": 1})));
}

#[tokio::test]
async fn a_payload_without_storage_info_is_recorded_quarantined_and_counted_on_the_embedded_store() {
    a_payload_without_storage_info(Kind::Embedded).await;
}

#[tokio::test]
async fn a_payload_without_storage_info_is_recorded_quarantined_and_counted_on_cosmos_db() {
    a_payload_without_storage_info(Kind::Cosmos).await;
}

// A job that exhausts its retries: the poison function writes `archive_job_poisoned` at Error, retryable while ACS
// keeps the files, and the chunk counts failed.
async fn a_job_that_exhausts_its_retries(kind: Kind) {
    let ops = Ops::start(kind, &[]).await;
    let urls = ops.acs.add_chunk("d0", 10_000);
    for _ in 0..ops.host.app().queues.max_dequeue_count {
        ops.acs.inject("d0", FileKind::Metadata, Fault::Status(503));
    }
    ops.deliver(&recording_event(
        "e1",
        "call-1",
        "rec-1",
        &now(),
        &[chunk_at(0, "d0", &urls)],
    ))
    .await;
    let report = ops.run_jobs().await;
    assert_eq!(report.poisoned, 1, "{report:?}");
    let record = ops.record("archive_job_poisoned").await;
    filed_at(&record, Level::Error);
    names_chunk(&record, "rec-1", "d0");
    assert_eq!(record.field("retryable"), &json!(true), "{}", record.line);
    assert!(record.text("reason").contains("every attempt"), "{}", record.line);
    assert_eq!(
        ops.status().await,
        summary(json!({"recordings": 1, "chunks": {"failed": 1}}))
    );
}

#[tokio::test]
async fn a_job_that_exhausts_its_retries_is_recorded_poisoned_and_counted_on_the_embedded_store() {
    a_job_that_exhausts_its_retries(Kind::Embedded).await;
}

#[tokio::test]
async fn a_job_that_exhausts_its_retries_is_recorded_poisoned_and_counted_on_cosmos_db() {
    a_job_that_exhausts_its_retries(Kind::Cosmos).await;
}

// Files left at ACS: a deleteLocation that is not the archived files' object is never requested, and
// `acs_delete_skipped` (Warning) says why; the chunk is archived.
async fn files_left_at_acs(kind: Kind) {
    let ops = Ops::start(kind, &[("RECORDINGS_DELETE_AFTER_ARCHIVE", "true")]).await;
    let own = ops.acs.add_chunk("d0", 10_000);
    let other = ops.acs.add_chunk("another-recordings-chunk", 10_000);
    let chunk = json!({"documentId": "d0", "index": 0, "contentLocation": own.content,
                       "metadataLocation": own.metadata, "deleteLocation": other.delete});
    ops.deliver(&recording_event("e1", "call-1", "rec-1", &now(), &[chunk]))
        .await;
    ops.run_jobs().await;
    let record = ops.record("acs_delete_skipped").await;
    filed_at(&record, Level::Warning);
    names_chunk(&record, "rec-1", "d0");
    assert!(record.text("reason").contains("nothing was deleted"), "{}", record.line);
    assert!(ops.acs.requests().iter().all(|r| r.method != "DELETE"));
    assert_eq!(
        ops.status().await,
        summary(json!({"recordings": 1, "chunks": {"archived": 1}}))
    );
}

#[tokio::test]
async fn files_left_at_acs_are_recorded_and_the_chunk_counted_archived_on_the_embedded_store() {
    files_left_at_acs(Kind::Embedded).await;
}

#[tokio::test]
async fn files_left_at_acs_are_recorded_and_the_chunk_counted_archived_on_cosmos_db() {
    files_left_at_acs(Kind::Cosmos).await;
}

// An erase: the audit record `recording_erased` (Information, target `audit`), and a tombstone in the count.
async fn an_erase(kind: Kind) {
    let ops = Ops::start(kind, &[]).await;
    let urls = ops.acs.add_chunk("d0", 10_000);
    ops.deliver(&recording_event(
        "e1",
        "call-1",
        "rec-1",
        &now(),
        &[chunk_at(0, "d0", &urls)],
    ))
    .await;
    ops.run_jobs().await;
    let key = ops.host.master_key();
    let erase = ops
        .host
        .http_with(
            "DELETE",
            "/api/recordings/call-1",
            &[("x-functions-key", key)],
            Vec::new(),
        )
        .await;
    assert_eq!(erase.status, 200, "{}", String::from_utf8_lossy(&erase.body));
    let record = ops.record("recording_erased").await;
    filed_at(&record, Level::Information);
    assert_eq!(record.text("call_id"), "call-1");
    assert_eq!(
        (record.field("recordings"), record.field("files")),
        (&json!(1), &json!(2))
    );
    assert!(record.line.contains("audit"), "{}", record.line);
    assert_eq!(ops.status().await, summary(json!({"tombstones": 1})));
}

#[tokio::test]
async fn an_erase_is_audited_and_leaves_a_counted_tombstone_on_the_embedded_store() {
    an_erase(Kind::Embedded).await;
}

#[tokio::test]
async fn an_erase_is_audited_and_leaves_a_counted_tombstone_on_cosmos_db() {
    an_erase(Kind::Cosmos).await;
}

#[tokio::test]
async fn the_summary_is_the_same_when_the_host_posts_the_request_as_an_invocation() {
    let ops = Ops::start_in(Kind::Embedded, AppDir::new().with_forwarding(false), &[]).await;
    let urls = ops.acs.add_chunk("d0", 10_000);
    ops.deliver(&recording_event(
        "e1",
        "call-1",
        "rec-1",
        &now(),
        &[chunk_at(0, "d0", &urls)],
    ))
    .await;
    ops.run_jobs().await;
    assert!(
        ops.host.post(b"not an invocation".to_vec()).await.succeeded(),
        "quarantined"
    );
    let expected = summary(json!({"recordings": 1, "chunks": {"archived": 1}, "quarantined": 1}));
    assert_eq!(ops.status().await, expected);
    assert_eq!(ops.status_command(), expected);
    let without_key = ops.host.http("GET", "/api/status").await;
    assert_eq!(without_key.status, 401, "the summary takes a function key");
}
