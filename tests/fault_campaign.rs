//! The fault campaign: a few hundred recordings, announced by events split, repeated and shuffled, delivered in
//! batches by a simulated Event Grid while the host kills and restarts the handler and — for Cosmos DB — the store
//! throttles, fails, times out, loses answers and drops off the network. The verdict: every recording complete, every
//! chunk once, no extra document, every unprocessable event in quarantine. Zero lost is the only pass.
//!
//! `FAULT_CAMPAIGN_SEED` replays a campaign; `FAULT_CAMPAIGN_RECORDINGS` sets its size (300 by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cosmos::{CosmosTarget, unique_database};
use support::events::{call_ended, chunk, cloud_event, event_grid, recording_data, subject};
use support::grid::{self, Subscription};
use support::proxy::{Disruptions, Proxy};
use support::rng::Rng;
use support::{Host, documents, json_files, quarantined};

/// The campaign must end by itself, well inside CI's budget.
const DEADLINE: Duration = Duration::from_secs(240);

/// What the store must hold once every event is delivered.
struct Workload {
    events: Vec<Value>,
    /// Per recording id: its call and its chunks' documentIds.
    recordings: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Per recording id: the indexes of its events.
    events_of: BTreeMap<String, Vec<usize>>,
    /// Events that must end in quarantine, verbatim.
    unprocessable: BTreeSet<String>,
    ignored: usize,
}

fn workload(rng: &mut Rng, recordings: usize) -> Workload {
    let mut w = Workload {
        events: Vec::new(),
        recordings: BTreeMap::new(),
        events_of: BTreeMap::new(),
        unprocessable: BTreeSet::new(),
        ignored: 0,
    };
    let mut event_number = 0;
    let mut next_event_id = || {
        event_number += 1;
        format!("evt-{event_number:05}")
    };
    for r in 0..recordings {
        let (call_id, recording_id) = (format!("call-{:03}", r / 3), format!("rec-{r:04}"));
        let chunk_count = rng.between(1, 7);
        let chunk_ids: Vec<String> = (0..chunk_count).map(|i| format!("{recording_id}-chunk-{i}")).collect();
        let event_count = rng.between(1, chunk_count.min(4) + 1);
        let mut per_event: Vec<Vec<Value>> = vec![Vec::new(); event_count as usize];
        for (i, id) in chunk_ids.iter().enumerate() {
            per_event[i % event_count as usize].push(chunk(i as u64, id));
            if rng.chance(0.15) {
                // ACS may announce a chunk again in a later event.
                let other = rng.below(event_count) as usize;
                per_event[other].push(chunk(i as u64, id));
            }
        }
        for (e, chunks) in per_event.iter().enumerate() {
            let time = format!("2026-11-27T15:{:02}:{:02}.{:07}Z", r % 60, e, rng.below(10_000_000));
            let id = next_event_id();
            let subject = subject(&call_id, &recording_id);
            let event = if rng.chance(0.3) {
                cloud_event(&id, &subject, &time, recording_data(chunks))
            } else {
                event_grid(&id, &subject, &time, recording_data(chunks))
            };
            w.events_of
                .entry(recording_id.clone())
                .or_default()
                .push(w.events.len());
            w.events.push(event);
        }
        w.recordings
            .insert(recording_id, (call_id, chunk_ids.into_iter().collect()));
    }
    for _ in 0..recordings / 15 {
        w.events.push(call_ended(&next_event_id()));
        w.ignored += 1;
    }
    for u in 0..recordings / 15 {
        let id = next_event_id();
        let broken = event_grid(
            &id,
            &subject("call-x", &format!("broken-{u}")),
            "2026-11-27T15:00:00Z",
            json!({"recordingDurationMs": u}),
        );
        w.unprocessable.insert(broken.to_string());
        w.events.push(broken);
    }
    w
}

/// Checks the stored documents and quarantine against the workload; returns the lines of the verdict.
fn judge(w: &Workload, documents: &[Value], quarantined: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for doc in documents {
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        let Some((call_id, expected)) = w.recordings.get(&id) else {
            problems.push(format!("extra document {id}"));
            continue;
        };
        seen.insert(id.clone());
        let chunk_ids: Vec<String> = support::chunk_ids(doc);
        let unique: BTreeSet<String> = chunk_ids.iter().cloned().collect();
        if doc["callId"] != call_id.as_str() {
            problems.push(format!("{id}: wrong call {}", doc["callId"]));
        }
        if unique.len() != chunk_ids.len() {
            problems.push(format!("{id}: a chunk is stored twice: {chunk_ids:?}"));
        }
        if &unique != expected {
            problems.push(format!("{id}: chunks {unique:?}, expected {expected:?}"));
        }
    }
    for id in w.recordings.keys().filter(|id| !seen.contains(*id)) {
        problems.push(format!("recording {id} is missing"));
    }
    let kept: BTreeSet<String> = quarantined
        .iter()
        .filter_map(|q| q["payload"].as_str().map(str::to_owned))
        .collect();
    for payload in w.unprocessable.difference(&kept) {
        problems.push(format!("not in quarantine: {payload}"));
    }
    for payload in kept.difference(&w.unprocessable) {
        problems.push(format!("quarantined but processable: {payload}"));
    }
    problems
}

/// Prints the verdict table and fails the test unless nothing was lost.
fn verdict(
    store: &str,
    seed: u64,
    w: &Workload,
    report: &grid::Report,
    faults: &[(&str, usize)],
    problems: &[String],
    started: Instant,
) {
    let chunks: usize = w.recordings.values().map(|(_, c)| c.len()).sum();
    println!("\nfault campaign on the {store} store (seed {seed})");
    println!("  {:<44} {:>7}", "recordings", w.recordings.len());
    println!("  {:<44} {:>7}", "chunks", chunks);
    println!("  {:<44} {:>7}", "events sent", report.events);
    println!("  {:<44} {:>7}", "  of which unrelated (ignored)", w.ignored);
    println!("  {:<44} {:>7}", "  of which unprocessable", w.unprocessable.len());
    println!("  {:<44} {:>7}", "batches (1 to 4 events)", report.batches);
    println!("  {:<44} {:>7}", "batch deliveries", report.deliveries);
    println!("  {:<44} {:>7}", "  of which retries of a failed batch", report.retries);
    println!("  {:<44} {:>7}", "  of which duplicates", report.duplicates);
    for (fault, count) in faults {
        println!("  {:<44} {:>7}", format!("faults: {fault}"), count);
    }
    println!("  {:<44} {:>7}", "dead-lettered", report.dead_lettered.len());
    println!("  {:<44} {:>7}", "lost or wrong", problems.len());
    for problem in problems.iter().take(20) {
        println!("    {problem}");
        let recording = problem.split(':').next().unwrap_or_default();
        for index in w.events_of.get(recording).into_iter().flatten() {
            let event = &w.events[*index];
            println!(
                "      event {} at {}: chunks {:?}, answers {:?}",
                event["id"],
                event.get("eventTime").or(event.get("time")).unwrap_or(&Value::Null),
                event["data"]["recordingStorageInfo"]["recordingChunks"]
                    .as_array()
                    .map(|c| c.iter().map(|c| c["documentId"].clone()).collect::<Vec<_>>()),
                report.accepted[*index]
            );
        }
    }
    println!("  {:<44} {:>7.1}", "seconds", started.elapsed().as_secs_f64());
    assert!(
        report.dead_lettered.is_empty(),
        "dead-lettered: {:?}",
        report.dead_lettered
    );
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
}

fn size() -> usize {
    std::env::var("FAULT_CAMPAIGN_RECORDINGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

/// How many times the events are delivered again, at most, until every kind of fault has struck.
const MORE_WAVES: usize = 3;

/// Has the host kill (SIGKILL) and restart the handler at random moments until `done`, as it does when it restarts
/// itself or a function times out; counts the kills.
async fn chaos_kills(host: &Host, seed: u64, done: &AtomicBool, restarts: &AtomicUsize, every_ms: (u64, u64)) {
    let mut rng = Rng::new(seed);
    while !done.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.between(every_ms.0, every_ms.1))).await;
        if done.load(Ordering::SeqCst) {
            break;
        }
        host.restart().await;
        restarts.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_loses_nothing_through_crashes_duplicates_and_disorder() {
    let seed = Rng::seed_from_env();
    let mut rng = Rng::new(seed);
    let w = workload(&mut rng, size());
    let host = Host::start(&[("RUST_LOG", "warn")]).await;
    let (done, restarts) = (AtomicBool::new(false), AtomicUsize::new(0));
    let started = Instant::now();
    let chaos_seed = rng.next_u64();
    let run = async {
        let report = grid::deliver(&host, "RecordingEvent", &w.events, &Subscription::default(), &mut rng).await;
        done.store(true, Ordering::SeqCst);
        report
    };
    let (report, ()) = tokio::time::timeout(DEADLINE, async {
        tokio::join!(run, chaos_kills(&host, chaos_seed, &done, &restarts, (100, 400)))
    })
    .await
    .unwrap_or_else(|_| panic!("the campaign overran its deadline:\n{}", host.diagnosis()));

    let data = host.data_dir();
    // Every file must be a whole, valid document (json_files fails on a torn one); temporary files aside.
    let files = json_files(&data.join("recordings"));
    let problems = judge(&w, &documents(&data), &quarantined(&data));
    let faults = [("handler killed by the host (SIGKILL)", restarts.load(Ordering::SeqCst))];
    verdict("embedded", seed, &w, &report, &faults, &problems, started);
    assert_eq!(files.len(), w.recordings.len());
    assert!(
        restarts.load(Ordering::SeqCst) > 0,
        "the campaign killed the handler at least once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cosmos_store_loses_nothing_through_faults_crashes_duplicates_and_disorder() {
    // Faults are injected by the local server.
    let target = CosmosTarget::start_local();
    let seed = Rng::seed_from_env();
    let mut rng = Rng::new(seed);
    let w = workload(&mut rng, size());
    let proxy = Proxy::start(([127, 0, 0, 1], target.port()).into()).await;
    let database = unique_database();
    let endpoint = format!("http://127.0.0.1:{}/", proxy.port);
    let mut settings = target.handler_settings(&database, Some(&endpoint));
    settings.push(("RUST_LOG".into(), "warn".into()));
    let settings = support::str_pairs(&settings);
    let host = Host::start(&settings).await;
    let (done, restarts, disruptions) = (AtomicBool::new(false), AtomicUsize::new(0), Disruptions::default());
    let started = Instant::now();
    let (kill_seed, net_seed) = (rng.next_u64(), rng.next_u64());
    target
        .faults(json!({"throttle": 0.04, "unavailable": 0.02, "timeout": 0.02, "lostResponse": 0.02}))
        .await;
    let network = proxy.disrupt(net_seed, &done, &disruptions);
    let rates = json!({"throttle": 0.04, "unavailable": 0.02, "timeout": 0.02, "lostResponse": 0.02});
    let every_fault_struck = || async {
        let injected = target.faults(rates.clone()).await;
        let kinds = ["throttle", "unavailable", "timeout", "lostResponse"];
        kinds
            .iter()
            .all(|kind| injected["injected"][kind].as_u64().unwrap_or(0) > 0)
            && disruptions.rows().iter().all(|(_, n)| *n > 0)
            && restarts.load(Ordering::SeqCst) > 0
    };
    let run = async {
        let mut report = grid::deliver(&host, "RecordingEvent", &w.events, &Subscription::default(), &mut rng).await;
        // Event Grid delivers at least once: a run over before every kind of fault has struck delivers the events
        // again (which changes nothing stored), so that each kind strikes while events are in flight.
        for _ in 0..MORE_WAVES {
            if every_fault_struck().await {
                break;
            }
            let again = grid::deliver(&host, "RecordingEvent", &w.events, &Subscription::default(), &mut rng).await;
            report.deliveries += again.deliveries;
            report.dead_lettered.extend(again.dead_lettered);
        }
        done.store(true, Ordering::SeqCst);
        report
    };
    let (report, (), ()) = tokio::time::timeout(DEADLINE, async {
        tokio::join!(
            run,
            chaos_kills(&host, kill_seed, &done, &restarts, (800, 2000)),
            network
        )
    })
    .await
    .unwrap_or_else(|_| panic!("the campaign overran its deadline:\n{}", host.diagnosis()));
    let injected = target
        .faults(json!({"throttle": 0, "unavailable": 0, "timeout": 0, "lostResponse": 0}))
        .await;

    let documents = target.all_items(&database, "recordings").await;
    let quarantined = target.all_items(&database, "quarantine").await;
    let problems = judge(&w, &documents, &quarantined);
    let count = |kind: &str| injected["injected"][kind].as_u64().unwrap_or(0) as usize;
    let faults = [
        ("429 throttled", count("throttle")),
        ("503 unavailable", count("unavailable")),
        ("408 timeout", count("timeout")),
        ("answer lost after the write", count("lostResponse")),
        disruptions.rows()[0],
        disruptions.rows()[1],
        disruptions.rows()[2],
        ("handler killed by the host (SIGKILL)", restarts.load(Ordering::SeqCst)),
    ];
    verdict("Cosmos DB", seed, &w, &report, &faults, &problems, started);
    // Each kind of fault struck at least once, or the campaign did not test surviving it.
    let never: Vec<_> = faults.iter().filter(|(_, n)| *n == 0).map(|(kind, _)| kind).collect();
    assert!(never.is_empty(), "seed {seed}: these faults never struck: {never:?}");
}

/// Events `e0…` of one recording (`call-1`/`rec-1`), each announcing one chunk of its own.
fn chunk_per_event(count: u64) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let chunks = [chunk(i, &format!("d{i:03}"))];
            support::events::recording_event(&format!("e{i}"), "call-1", "rec-1", "2026-11-27T15:20:34Z", &chunks)
        })
        .collect()
}

/// Delivers every event at once, alternating between two handler processes, each with Event Grid's retries.
async fn deliver_through_both(first: &Host, second: &Host, events: &[Value]) {
    let deliveries = futures_util::future::join_all(events.iter().enumerate().map(|(i, event)| {
        let host = if i % 2 == 0 { first } else { second };
        async move { support::EventGrid::new(host).deliver(event).await }
    }))
    .await;
    assert!(deliveries.iter().all(|d| d.delivered), "{deliveries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handler_processes_sharing_one_embedded_store_lose_no_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let data_text = data.to_str().unwrap();
    let first = Host::start(&[("RECORDINGS_DATA_DIR", data_text)]).await;
    let second = Host::start(&[("RECORDINGS_DATA_DIR", data_text)]).await;
    let events = chunk_per_event(60);
    deliver_through_both(&first, &second, &events).await;
    let docs = documents(&data);
    assert_eq!(docs.len(), 1);
    assert_eq!(support::chunk_ids(&docs[0]).len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handler_processes_sharing_one_cosmos_database_lose_no_chunk() {
    let target = CosmosTarget::start();
    let database = unique_database();
    let settings = target.handler_settings(&database, None);
    let settings = support::str_pairs(&settings);
    let first = Host::start(&settings).await;
    let second = Host::start(&settings).await;
    let events = chunk_per_event(40);
    deliver_through_both(&first, &second, &events).await;
    let store = Arc::new(target.store(&database).await);
    use acs_recording_handler::store::RecordingStore;
    let doc = store.read("call-1", "rec-1").await.unwrap().unwrap();
    assert_eq!(doc.chunks.len(), 40);
    assert_eq!(doc.event_ids.len(), 40);
}
