//! The fault campaign's archive phase: recordings whose chunks ACS serves badly — 503s, a 0-byte first answer,
//! connections cut mid-body, short bodies, slow reads, files gone, URLs outside the allowed sources — delivered by a
//! simulated Event Grid in batches, archived through the queue while the host kills and restarts the handler
//! (SIGKILL, downloads in flight). The verdict: every chunk archived byte for byte, or expired or failed exactly
//! where the test made it so; no file archived twice or under another name; no `archived` state without its file.
//! It runs with the embedded archive on both stores, and with Blob Storage (Azurite behind a proxy that cuts,
//! black-holes and slows its connections).
//!
//! `FAULT_CAMPAIGN_SEED` replays a campaign; `ARCHIVE_CAMPAIGN_RECORDINGS` sets its size (60 by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::acs::{AcsOptions, AcsServer, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, Fault, FileKind};
use support::archive_contract::{Container, Folder, Inspect};
use support::azurite::{BlobTarget, unique_container};
use support::cosmos::{CosmosTarget, unique_database};
use support::events::{chunk_at, recording_event};
use support::grid::{self, Subscription};
use support::proxy::{Disruptions, Proxy};
use support::rng::Rng;
use support::{Host, documents};

use acs_recording_handler::config::DEVELOPMENT_ACCOUNT;

/// The campaign must end by itself, well inside CI's budget.
const DEADLINE: Duration = Duration::from_secs(300);

/// What must become of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Archived,
    /// ACS answers 404: the files are gone.
    Expired,
    /// Its URLs are not allowed sources.
    Failed,
}

struct Workload {
    events: Vec<Value>,
    /// (recording, chunk) → what must become of it.
    chunks: BTreeMap<(String, String), Expected>,
    /// Chunks that a second event announces at another URL (ACS object): each archived file may hold either
    /// object's bytes — whichever URL the stored document named when the file was written.
    second_urls: BTreeMap<String, String>,
    /// ACS objects that some chunk's forged `deleteLocation` names: they must never be deleted.
    victims: Vec<String>,
    /// Events delivered once the first round is archived: they announce archived chunks again, earlier, at another
    /// object and in another format, and must change nothing of what was archived.
    late_events: Vec<Value>,
    /// Faults injected at ACS, by [`Fault::kind`].
    faults: BTreeMap<&'static str, usize>,
    /// What an event claimed against the handler, by kind: forged `archive` states, foreign `deleteLocation`s,
    /// second URLs, times at the calendar's edge.
    claims: BTreeMap<&'static str, usize>,
}

/// An `archive` state as an event might forge it: no job, no download, the files elsewhere.
fn forged_archive_state() -> Value {
    serde_json::json!({"state": "archived", "contentLocation": "https://evil.example/x", "contentBytes": 1,
                       "contentSha256": "00".repeat(32), "metadataLocation": "https://evil.example/m",
                       "metadataBytes": 1, "metadataSha256": "00".repeat(32), "archivedAt": "2026-01-01T00:00:00Z",
                       "attempts": 1})
}

fn workload(rng: &mut Rng, acs: &AcsServer, recordings: usize) -> Workload {
    let now = time::OffsetDateTime::now_utc();
    let mut w = Workload {
        events: Vec::new(),
        chunks: BTreeMap::new(),
        second_urls: BTreeMap::new(),
        victims: Vec::new(),
        late_events: Vec::new(),
        faults: BTreeMap::new(),
        claims: BTreeMap::new(),
    };
    for r in 0..recordings {
        let (call_id, recording_id) = (format!("call-{:03}", r / 3), format!("rec-{r:03}"));
        let count = rng.between(1, 4);
        let mut chunks = Vec::new();
        let mut second_announcements = Vec::new();
        for i in 0..count {
            let id = format!("{recording_id}-chunk-{i}");
            let roll = rng.below(100);
            let (value, expected) = if roll < 6 {
                // Outside the sources: never requested, marked failed.
                let foreign = format!("http://127.0.0.2:9/v1/objects/{id}");
                let urls = support::acs::ChunkUrls {
                    content: format!("{foreign}/content/video"),
                    metadata: format!("{foreign}/content/acsmetadata"),
                    delete: foreign,
                };
                (chunk_at(i, &id, &urls), Expected::Failed)
            } else {
                let bytes = rng.between(1_000, 1_500_000);
                let urls = acs.add_chunk(&id, bytes);
                if roll < 14 {
                    acs.expire(&id);
                    (chunk_at(i, &id, &urls), Expected::Expired)
                } else {
                    for _ in 0..rng.below(4) {
                        let (file, fault) = random_fault(rng, bytes);
                        *w.faults.entry(fault.kind()).or_default() += 1;
                        acs.inject(&id, file, fault);
                    }
                    let mut chunk = chunk_at(i, &id, &urls);
                    // What an event can claim, and must not get: a state of its own, another object deleted.
                    if rng.chance(0.1) {
                        chunk["archive"] = forged_archive_state();
                        *w.claims.entry("forged archive state").or_default() += 1;
                    }
                    if rng.chance(0.1) {
                        let victim = format!("{id}-victim");
                        chunk["deleteLocation"] = Value::String(acs.add_chunk(&victim, 1_000).delete);
                        w.victims.push(victim);
                        *w.claims.entry("foreign deleteLocation").or_default() += 1;
                    }
                    if rng.chance(0.1) {
                        // Announced again, earlier, outside the allowed sources (a URL that sorts after ACS's):
                        // it must never take the chunk away.
                        let foreign = format!("http://127.0.0.2:9/v1/objects/{id}");
                        let urls = support::acs::ChunkUrls {
                            content: format!("{foreign}/content/video"),
                            metadata: format!("{foreign}/content/acsmetadata"),
                            delete: foreign,
                        };
                        let time = (now - time::Duration::hours(2))
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap();
                        w.events.push(recording_event(
                            &format!("evt-{id}-outside"),
                            &call_id,
                            &recording_id,
                            &time,
                            &[chunk_at(i, &id, &urls)],
                        ));
                        *w.claims.entry("earlier announcement outside the sources").or_default() += 1;
                    }
                    if rng.chance(0.1) {
                        // Once archived, announced again at another allowed object: earlier (its locations win) and
                        // later, as another format (the recording's format becomes Wav).
                        let late = acs.add_chunk(&format!("{id}-late"), 1_000);
                        for (suffix, age, format) in [("early", 3, "Mp4"), ("wav", 0, "Wav")] {
                            let time = (now - time::Duration::hours(age))
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap();
                            let mut event = recording_event(
                                &format!("evt-{id}-late-{suffix}"),
                                &call_id,
                                &recording_id,
                                &time,
                                &[chunk_at(i, &id, &late)],
                            );
                            event["data"]["recordingFormatType"] = Value::String(format.to_owned());
                            w.late_events.push(event);
                        }
                        *w.claims
                            .entry("announced again once archived, elsewhere and as Wav")
                            .or_default() += 1;
                    }
                    if rng.chance(0.1) {
                        let second = format!("{id}-second");
                        let second_urls = acs.add_chunk(&second, rng.between(1_000, 200_000));
                        second_announcements.push(chunk_at(i, &id, &second_urls));
                        w.second_urls.insert(id.clone(), second);
                        *w.claims.entry("second URL for a chunk").or_default() += 1;
                    }
                    (chunk, Expected::Archived)
                }
            };
            chunks.push(value);
            w.chunks.insert((recording_id.clone(), id), expected);
        }
        // The chunks split across one or two events, some announced twice.
        let events = rng.between(1, 3) as usize;
        for e in 0..events {
            let mut announced: Vec<Value> = chunks.iter().skip(e).step_by(events).cloned().collect();
            if rng.chance(0.2) {
                announced.push(chunks[0].clone());
            }
            let time = event_time(rng, now, &mut w.claims);
            let id = format!("evt-{r:03}-{e}");
            w.events
                .push(recording_event(&id, &call_id, &recording_id, &time, &announced));
        }
        if !second_announcements.is_empty() {
            let time = event_time(rng, now, &mut w.claims);
            let id = format!("evt-{r:03}-second");
            w.events.push(recording_event(
                &id,
                &call_id,
                &recording_id,
                &time,
                &second_announcements,
            ));
        }
    }
    w
}

/// An event's time: within the last hour, or now and then the last instant of the calendar.
fn event_time(rng: &mut Rng, now: time::OffsetDateTime, claims: &mut BTreeMap<&'static str, usize>) -> String {
    if rng.chance(0.15) {
        *claims.entry("event time at the calendar's edge").or_default() += 1;
        return support::events::LAST_INSTANT.to_owned();
    }
    (now - time::Duration::minutes(rng.between(1, 60) as i64))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The kinds of claim [`workload`] makes: each must be made at least once.
const CLAIM_KINDS: [&str; 6] = [
    "forged archive state",
    "foreign deleteLocation",
    "second URL for a chunk",
    "event time at the calendar's edge",
    "earlier announcement outside the sources",
    "announced again once archived, elsewhere and as Wav",
];

fn random_fault(rng: &mut Rng, bytes: u64) -> (FileKind, Fault) {
    let fault = match rng.below(8) {
        0 => Fault::Status(503),
        1 => Fault::Status(500),
        2 => Fault::EmptyBody,
        3 => Fault::CutAfter(rng.below(bytes)),
        4 => Fault::ShortBody(rng.below(bytes)),
        5 => Fault::UnstatedLength(rng.below(bytes)),
        6 => Fault::UnknownTotal(rng.below(bytes)),
        _ => Fault::Slow {
            delay_per_frame: Duration::from_millis(rng.between(1, 4)),
        },
    };
    let file = if rng.chance(0.25) {
        FileKind::Metadata
    } else {
        FileKind::Content
    };
    (file, fault)
}

fn size() -> usize {
    std::env::var("ARCHIVE_CAMPAIGN_RECORDINGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// The kinds of fault [`random_fault`] injects: each must strike at least once.
const FAULT_KINDS: [&str; 8] = [
    "503",
    "500",
    "empty",
    "cut",
    "short",
    "slow",
    "unstated-length",
    "unknown-total",
];

/// Whether a download is under way: the stand-in ACS is sending a file's body right now.
fn download_under_way(acs: &AcsServer) -> bool {
    acs.downloads_in_flight() > 0
}

/// What the recordings API would link, and when the sweep would see each chunk: a link only for an archived chunk,
/// naming exactly the files its state recorded; no chunk announced later than now (beyond the clocks' skew), so
/// none is too recent for the sweep for ever.
async fn links_and_times(
    stored: &[Value],
    archive: std::sync::Arc<dyn acs_recording_handler::archive::Archive>,
) -> Vec<String> {
    use acs_recording_handler::recording::{CLOCK_SKEW, RecordingDocument};
    let linker = acs_recording_handler::api::Linker {
        archive,
        lifetime: Duration::from_secs(15 * 60),
    };
    let now = time::OffsetDateTime::now_utc();
    let mut problems = Vec::new();
    let mut documents = Vec::new();
    for value in stored.iter().filter(|value| value.get("chunks").is_some()) {
        let document: RecordingDocument = serde_json::from_value(value.clone()).unwrap();
        let mut linked = serde_json::to_value(&document).unwrap();
        acs_recording_handler::api::links::remove_stored_links(&mut linked);
        linker.add_links(&document, &mut linked).await.unwrap();
        for chunk in linked["chunks"].as_array().unwrap() {
            let id = chunk["documentId"].as_str().unwrap_or_default();
            let state = &chunk["archive"];
            match (chunk.get("links"), state["state"].as_str()) {
                (None, Some("archived")) => problems.push(format!("{}/{id}: archived, and no links", document.id)),
                (None, _) => {}
                (Some(links), Some("archived")) => {
                    for (link, location) in [("content", "contentLocation"), ("metadata", "metadataLocation")] {
                        let linked = path_of(links[link].as_str().unwrap_or_default());
                        if linked != path_of(state[location].as_str().unwrap_or_default()) {
                            problems.push(format!(
                                "{}/{id}: its {link} link {linked} is not its archived file",
                                document.id
                            ));
                        }
                    }
                }
                (Some(links), _) => problems.push(format!(
                    "{}/{id}: a link to a file never archived: {links}",
                    document.id
                )),
            }
            let announced = document
                .chunk_announced_at(id)
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            if announced.is_none_or(|at| at > now + CLOCK_SKEW) {
                problems.push(format!(
                    "{}/{id}: announced at {announced:?}, later than now",
                    document.id
                ));
            }
        }
        documents.push(document);
    }
    let swept = acs_recording_handler::archive::sweep::sweep(
        &documents,
        now + acs_recording_handler::archive::sweep::SETTLE + CLOCK_SKEW,
    );
    if swept.settling > 0 {
        problems.push(format!(
            "{} chunk(s) still too recent for the sweep: {swept}",
            swept.settling
        ));
    }
    problems
}

/// A location's path: the handler reaches Blob Storage through a proxy, the judge directly.
fn path_of(location: &str) -> String {
    url::Url::parse(location).map_or_else(|_| location.to_owned(), |url| url.path().to_owned())
}

/// Every way the stored documents and the archive differ from what the campaign made happen.
async fn judge(
    w: &Workload,
    acs: &AcsServer,
    stored: &[Value],
    archive: &dyn Inspect,
) -> (Vec<String>, BTreeMap<&'static str, usize>) {
    let mut problems = Vec::new();
    let mut tally = BTreeMap::new();
    let mut states = BTreeMap::new();
    for doc in stored {
        let recording = doc["id"].as_str().unwrap().to_owned();
        for chunk in doc["chunks"].as_array().unwrap() {
            let id = chunk["documentId"].as_str().unwrap().to_owned();
            states.insert((recording.clone(), id), chunk["archive"].clone());
        }
    }
    let mut expected_files = Vec::new();
    for ((recording, chunk), expected) in &w.chunks {
        let Some(state) = states.get(&(recording.clone(), chunk.clone())) else {
            problems.push(format!("{recording}/{chunk}: not in the document"));
            continue;
        };
        let actual = state["state"].as_str().unwrap_or("none");
        *tally
            .entry(match actual {
                "archived" => "archived",
                "expired" => "expired",
                "failed" => "failed",
                _ => "other",
            })
            .or_insert(0) += 1;
        let wanted = match expected {
            Expected::Archived => "archived",
            Expected::Expired => "expired",
            Expected::Failed => "failed",
        };
        if actual != wanted {
            problems.push(format!("{recording}/{chunk}: {actual}, expected {wanted}: {state}"));
            continue;
        }
        if *expected != Expected::Archived {
            continue;
        }
        // The objects whose bytes the chunk's files may hold: its own, and a second URL's when an event named one.
        let objects: Vec<&str> = std::iter::once(chunk.as_str())
            .chain(w.second_urls.get(chunk).map(String::as_str))
            .collect();
        // Both files of one object: the content's and the metadata's hashes are the same object's, and the state's
        // sources name it.
        let object_of = |field: &str, sha: fn(&AcsServer, &str) -> String| {
            objects
                .iter()
                .copied()
                .find(|object| state[field] == sha(acs, object).as_str())
        };
        let content_object = object_of("contentSha256", |acs, o| acs.content_sha256_hex(o));
        let metadata_object = object_of("metadataSha256", |acs, o| acs.metadata_sha256_hex(o));
        if content_object != metadata_object {
            problems.push(format!(
                "{recording}/{chunk}: archived from two objects, {content_object:?} and {metadata_object:?}"
            ));
        }
        for (field, file) in [
            ("contentSource", "/content/video"),
            ("metadataSource", "/content/acsmetadata"),
        ] {
            let named = content_object.map(|object| format!("/v1/objects/{object}{file}"));
            if !state[field]
                .as_str()
                .is_some_and(|source| named.as_deref().is_some_and(|n| source.ends_with(n)))
            {
                problems.push(format!(
                    "{recording}/{chunk}: {field} is not the archived object's file: {state}"
                ));
            }
        }
        for (location, sha, sources) in [
            (
                "contentLocation",
                "contentSha256",
                objects.iter().map(|o| acs.content_sha256_hex(o)).collect::<Vec<_>>(),
            ),
            (
                "metadataLocation",
                "metadataSha256",
                objects.iter().map(|o| acs.metadata_sha256_hex(o)).collect(),
            ),
        ] {
            let Some(source_sha) = sources.iter().find(|source| state[sha] == source.as_str()) else {
                problems.push(format!(
                    "{recording}/{chunk}: {sha} {} is no source's {sources:?}",
                    state[sha]
                ));
                continue;
            };
            let location = state[location].as_str().unwrap_or_default().to_owned();
            match archive.read(&location).await {
                Some((kept, _)) if kept == *source_sha => expected_files.push(path_of(&location)),
                Some(_) => problems.push(format!("{recording}/{chunk}: {location} differs from the source")),
                None => problems.push(format!("{recording}/{chunk}: archived, but nothing is at {location}")),
            }
        }
    }
    for victim in &w.victims {
        if acs.deleted(victim) {
            problems.push(format!(
                "{victim}: deleted at ACS through another chunk's deleteLocation"
            ));
        }
    }
    // Chunks outside the sources were never added to ACS: nothing there to delete.
    for ((recording, chunk), expected) in w.chunks.iter().filter(|(_, expected)| **expected != Expected::Failed) {
        let archived = states
            .get(&(recording.clone(), chunk.clone()))
            .is_some_and(|state| state["state"] == "archived");
        if acs.deleted(chunk) && (*expected != Expected::Archived || !archived) {
            problems.push(format!("{recording}/{chunk}: deleted at ACS but not archived"));
        }
    }
    for extra in archive
        .names()
        .await
        .iter()
        .filter(|name| !expected_files.contains(&path_of(name)))
    {
        problems.push(format!("a file no archived chunk names: {extra}"));
    }
    (problems, tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_phase_on_the_embedded_store_archives_every_chunk_byte_for_byte_through_faults_and_crashes() {
    campaign("embedded", &[], None, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_phase_on_cosmos_archives_every_chunk_byte_for_byte_through_faults_and_crashes() {
    // Faults are injected by the local server.
    let target = CosmosTarget::start_local();
    let database = unique_database();
    let settings = target.handler_settings(&database, None);
    campaign(
        "Cosmos DB",
        &support::str_pairs(&settings),
        Some((&target, &database)),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_phase_on_blob_storage_archives_every_chunk_byte_for_byte_through_faults_crashes_and_network_cuts() {
    // The proxy stands in front of the local server.
    let target = BlobTarget::start_local();
    let proxy = Proxy::start(([127, 0, 0, 1], target.port()).into()).await;
    let container = unique_container();
    let archive = target.archive(&container).await;
    let through_proxy = format!("http://127.0.0.1:{}/{}", proxy.port, DEVELOPMENT_ACCOUNT);
    let settings = target.handler_settings(&container, Some(&through_proxy));
    let blob = BlobStorage {
        container: Container { archive },
        proxy: &proxy,
    };
    campaign("embedded", &support::str_pairs(&settings), None, Some(&blob)).await;
}

/// The Blob Storage archive a campaign archives into, and the proxy between the handler and it.
struct BlobStorage<'a> {
    container: Container,
    proxy: &'a Proxy,
}

/// Runs the archive phase with the store and archive these settings choose; `cosmos` names the Cosmos DB target to
/// read the documents back from (the embedded store's are read from its folder), `blob` the Blob Storage archive
/// and its proxy (the embedded archive's files are read from its folder).
async fn campaign(
    store: &str,
    store_settings: &[(&str, &str)],
    cosmos: Option<(&CosmosTarget, &str)>,
    blob: Option<&BlobStorage<'_>>,
) {
    let seed = Rng::seed_from_env();
    let mut rng = Rng::new(seed);
    let acs = AcsServer::start(AcsOptions::default());
    let w = workload(&mut rng, &acs, size());
    let connection = format!("endpoint=https://{DEFAULT_ACS_HOST}/;accesskey={DEFAULT_ACCESS_KEY}");
    let sources = acs.base_url();
    let mut settings = vec![
        ("AcsConnection", connection.as_str()),
        ("RECORDINGS_ARCHIVE_SOURCES", sources.as_str()),
        ("RECORDINGS_DELETE_AFTER_ARCHIVE", "true"),
        ("RUST_LOG", "warn"),
    ];
    settings.extend_from_slice(store_settings);
    let host = Host::start(&settings).await;
    if let Some((target, _)) = cosmos {
        target
            .faults(serde_json::json!({"throttle": 0.02, "unavailable": 0.01}))
            .await;
    }
    let (delivered, done, restarts) = (AtomicBool::new(false), AtomicBool::new(false), AtomicUsize::new(0));
    let kills_mid_download = AtomicUsize::new(0);
    let disruptions = Disruptions::default();
    let started = Instant::now();
    let (chaos_seed, network_seed) = (rng.next_u64(), rng.next_u64());
    let deliver = async {
        let report = grid::deliver(&host, "RecordingEvent", &w.events, &Subscription::default(), &mut rng).await;
        delivered.store(true, Ordering::SeqCst);
        report
    };
    let archive = async {
        let report = host.run_queues(|| !delivered.load(Ordering::SeqCst)).await;
        done.store(true, Ordering::SeqCst);
        report
    };
    let chaos = async {
        let mut rng = Rng::new(chaos_seed);
        let mut first = true;
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(rng.between(400, 1200))).await;
            // The first kill waits for a download under way, so that at least one lands mid-download; the rest
            // fall where they fall.
            if std::mem::take(&mut first) {
                while !done.load(Ordering::SeqCst) && !download_under_way(&acs) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            if !done.load(Ordering::SeqCst) {
                // Seen just before the kill: a download that was under way then is cut by it.
                if download_under_way(&acs) {
                    kills_mid_download.fetch_add(1, Ordering::SeqCst);
                }
                host.restart().await;
                restarts.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    let network = async {
        if let Some(blob) = blob {
            blob.proxy.disrupt(network_seed, &done, &disruptions).await;
        }
    };
    let (grid_report, queue_report, (), ()) =
        tokio::time::timeout(DEADLINE, async { tokio::join!(deliver, archive, chaos, network) })
            .await
            .unwrap_or_else(|_| panic!("the campaign overran its deadline:\n{}", host.diagnosis()));

    // The late round: archived chunks announced again — earlier, at another object, as another format — change
    // nothing of what was archived.
    let late = tokio::time::timeout(DEADLINE, async {
        let delivered = grid::deliver(
            &host,
            "RecordingEvent",
            &w.late_events,
            &Subscription::default(),
            &mut rng,
        )
        .await;
        let ran = host.run_queues(|| false).await;
        (delivered, ran)
    })
    .await
    .unwrap_or_else(|_| panic!("the late round overran its deadline:\n{}", host.diagnosis()));
    assert!(
        late.0.dead_lettered.is_empty(),
        "dead-lettered: {:?}",
        late.0.dead_lettered
    );

    let stored = match cosmos {
        Some((target, database)) => {
            target
                .faults(serde_json::json!({"throttle": 0, "unavailable": 0}))
                .await;
            target.all_items(database, "recordings").await
        }
        None => documents(&host.data_dir()),
    };
    let folder = Folder {
        root: host.data_dir().join("archive"),
    };
    let inspect: &dyn Inspect = match blob {
        Some(blob) => &blob.container,
        None => &folder,
    };
    let (mut problems, tally) = judge(&w, &acs, &stored, inspect).await;
    let links_archive: std::sync::Arc<dyn acs_recording_handler::archive::Archive> = match blob {
        Some(blob) => std::sync::Arc::new(blob.container.archive.clone()),
        None => std::sync::Arc::new(acs_recording_handler::archive::EmbeddedArchive::open(host.data_dir()).unwrap()),
    };
    problems.extend(links_and_times(&stored, links_archive).await);
    let count = |state: &str| tally.get(state).copied().unwrap_or(0);
    let archive_name = if blob.is_some() {
        "Blob Storage"
    } else {
        "the embedded archive"
    };
    let served = acs.faults_served();
    let fault_rows: Vec<(String, usize)> = FAULT_KINDS
        .iter()
        .map(|kind| {
            let (injected, struck) = (
                w.faults.get(kind).copied().unwrap_or(0),
                served.get(kind).copied().unwrap_or(0),
            );
            (format!("ACS fault {kind}: injected {injected}, struck"), struck)
        })
        .collect();
    let claim_rows: Vec<(String, usize)> = CLAIM_KINDS
        .iter()
        .map(|kind| (format!("event claim: {kind}"), w.claims.get(kind).copied().unwrap_or(0)))
        .collect();
    let deleted = w
        .chunks
        .iter()
        .filter(|((_, chunk), expected)| **expected != Expected::Failed && acs.deleted(chunk))
        .count();
    println!("\narchive campaign on the {store} store, into {archive_name} (seed {seed})");
    let network_rows = blob.map(|_| disruptions.rows()).into_iter().flatten();
    for (label, value) in [
        (
            "recordings",
            w.chunks
                .keys()
                .map(|(r, _)| r)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        ),
        ("chunks", w.chunks.len()),
        ("events", w.events.len()),
        ("batch deliveries by Event Grid", grid_report.deliveries),
        ("archive job deliveries", queue_report.deliveries),
        ("  of which failed and retried", queue_report.failures),
        ("  moved to the poison queue", queue_report.poisoned),
        ("handler killed by the host (SIGKILL)", restarts.load(Ordering::SeqCst)),
        ("  of which mid-download", kills_mid_download.load(Ordering::SeqCst)),
    ]
    .into_iter()
    .chain(fault_rows.iter().map(|(label, n)| (label.as_str(), *n)))
    .chain(claim_rows.iter().map(|(label, n)| (label.as_str(), *n)))
    .chain(network_rows)
    .chain([
        ("late announcements delivered", w.late_events.len()),
        ("  archive job deliveries they made", late.1.deliveries),
        ("chunks archived (byte-identical)", count("archived")),
        ("chunks expired (404 at ACS)", count("expired")),
        ("chunks failed (outside the sources)", count("failed")),
        ("chunks deleted at ACS once archived", deleted),
        ("lost or wrong", problems.len()),
    ]) {
        println!("  {label:<58} {value:>7}");
    }
    for problem in problems.iter().take(20) {
        println!("    {problem}");
    }
    println!("  {:<58} {:>7.1}", "seconds", started.elapsed().as_secs_f64());
    assert!(
        grid_report.dead_lettered.is_empty(),
        "dead-lettered: {:?}",
        grid_report.dead_lettered
    );
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
    assert!(
        kills_mid_download.load(Ordering::SeqCst) > 0,
        "seed {seed}: no kill landed mid-download ({} kills)",
        restarts.load(Ordering::SeqCst)
    );
    let never: Vec<_> = FAULT_KINDS.iter().filter(|kind| !served.contains_key(**kind)).collect();
    assert!(
        never.is_empty(),
        "seed {seed}: these ACS faults never struck: {never:?}"
    );
    if let Some(disruptions) = blob.map(|_| disruptions.rows()) {
        let never: Vec<_> = disruptions
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(kind, _)| kind)
            .collect();
        assert!(
            never.is_empty(),
            "seed {seed}: these network faults never struck: {never:?}"
        );
    }
    let unmade: Vec<_> = CLAIM_KINDS
        .iter()
        .filter(|kind| !w.claims.contains_key(**kind))
        .collect();
    assert!(
        unmade.is_empty(),
        "seed {seed}: these claims were never made: {unmade:?}"
    );
    assert_eq!(queue_report.poisoned, 0, "no job needed every retry");
}
