//! The in-process cost of one invocation — body → event → recording → merged document → JSON — beside a bare
//! `serde_json::Value` parse of the same bytes, on the sample event and on a 50-chunk event.
//!
//! `cargo bench --bench pipeline`. The target: the pipeline within 2× the bare parse. Its four stages are measured
//! alone too, to show where the time goes. On a shared machine the two medians can drift apart between their runs,
//! so the ratio is also measured in alternation ([`alternating_ratio`]): short rounds of each in turn, the median of
//! their ratios printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use acs_recording_handler::event::{Event, WireEvent};
use acs_recording_handler::functions::recording_event::TRIGGER;
use acs_recording_handler::host::invocation;
use acs_recording_handler::recording::RecordingDocument;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::Value;
use support::events::{chunk, recording_event};

/// What the handler does with one invocation body before the store: read the envelope, the event and the recording,
/// merge it into the stored document of its recording, and serialize the result as a store would write it.
fn pipeline(body: &[u8], mut stored: RecordingDocument) -> Vec<u8> {
    let document = RecordingDocument::from_event(event_of(body)).unwrap();
    stored.merge_from(document);
    serde_json::to_vec(&stored).unwrap()
}

/// The event of an invocation body, read as `RecordingEvent` reads it: in the one pass over the envelope.
fn event_of(body: &[u8]) -> Event {
    Event::from_wire(invocation::parse_binding::<WireEvent>(body, TRIGGER).unwrap()).unwrap()
}

/// A host invocation body for a recording event with these chunk indexes, and the stored document of an earlier
/// event of the same recording with as many other chunks.
fn case(chunks: u64) -> (Vec<u8>, RecordingDocument) {
    let event_of = |id: &str, time: &str, indexes: std::ops::Range<u64>| {
        let chunks: Vec<Value> = indexes.map(|i| chunk(i, &format!("0-eus-d12-{i:032x}"))).collect();
        recording_event(id, "4b1d8a9e-0c2f-4a6b-9a57-3f0c2d1e8b77", "rec-1", time, &chunks)
    };
    let event = event_of("e2", "2026-11-27T15:20:34.2199328Z", chunks..2 * chunks);
    let earlier = event_of("e1", "2026-11-27T15:20:30.0000000Z", 0..chunks);
    (
        support::envelope::event_grid("RecordingEvent", TRIGGER, &event.to_string()),
        support::contract::document(&earlier),
    )
}

fn sample() -> (Vec<u8>, RecordingDocument) {
    let event = support::read_json(support::project_root().join("samples/recording-file-status-updated.json"));
    let mut earlier = event.clone();
    earlier["id"] = "earlier".into();
    earlier["eventTime"] = "2026-11-27T15:20:30.0000000Z".into();
    earlier["data"]["recordingStorageInfo"]["recordingChunks"][0]["index"] = 1.into();
    earlier["data"]["recordingStorageInfo"]["recordingChunks"][0]["documentId"] = "earlier-chunk".into();
    (
        support::envelope::event_grid("RecordingEvent", TRIGGER, &event.to_string()),
        support::contract::document(&earlier),
    )
}

/// Rounds of one pipeline measurement and one `Value` parse measurement in turn, each over `per_round` invocations;
/// returns the median of the rounds' ratios. Slow drift on a shared machine affects both sides of a round alike.
fn alternating_ratio(body: &[u8], stored: &RecordingDocument, rounds: usize, per_round: usize) -> f64 {
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|_| {
            let inputs: Vec<RecordingDocument> = (0..per_round).map(|_| stored.clone()).collect();
            let start = Instant::now();
            let outputs: Vec<Vec<u8>> = inputs.into_iter().map(|s| pipeline(black_box(body), s)).collect();
            let pipeline_time = start.elapsed();
            drop(black_box(outputs));
            // Each parsed value is dropped within the measurement, as in criterion's `iter`; the pipeline drops its
            // merged document within it too.
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(serde_json::from_slice::<Value>(black_box(body)).unwrap());
            }
            let parse_time = start.elapsed();
            pipeline_time.as_secs_f64() / parse_time.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[rounds / 2]
}

/// Inputs made per batch. A store hands the merge a document it has just read, so warm in the caches; criterion's
/// `SmallInput` makes thousands of clones per batch, which spill out of the caches and measure memory instead, by an
/// amount that varies with whatever else the machine runs.
const WARM_BATCH: BatchSize = BatchSize::NumIterations(200);

fn benches(c: &mut Criterion) {
    for (name, (body, stored)) in [("sample event", sample()), ("50-chunk event", case(50))] {
        let per_round = if body.len() > 10_000 { 20 } else { 200 };
        println!(
            "{name}: pipeline / Value parse, median of 201 alternating rounds: {:.2}x",
            alternating_ratio(&body, &stored, 201, per_round)
        );
        let mut group = c.benchmark_group(name);
        group.throughput(criterion::Throughput::Bytes(body.len() as u64));
        group.bench_function("serde_json::Value parse", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).unwrap())
        });
        group.bench_function("pipeline", |b| {
            b.iter_batched(
                || stored.clone(),
                |stored| pipeline(black_box(&body), stored),
                WARM_BATCH,
            )
        });
        group.bench_function("1 envelope and event", |b| b.iter(|| event_of(black_box(&body))));
        let event = event_of(&body);
        group.bench_function("2 recording document", |b| {
            b.iter_batched(
                || event.clone(),
                |e| RecordingDocument::from_event(e).unwrap(),
                WARM_BATCH,
            )
        });
        let doc = RecordingDocument::from_event(event.clone()).unwrap();
        group.bench_function("3 merge", |b| {
            b.iter_batched(
                || (stored.clone(), doc.clone()),
                |(mut s, d)| s.merge_from(d),
                WARM_BATCH,
            )
        });
        let merged = stored.clone().merge(doc.clone());
        group.bench_function("4 serialize", |b| {
            b.iter(|| serde_json::to_vec(black_box(&merged)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
