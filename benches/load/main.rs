//! The handler under load, driven as the Functions host drives it, beside the HTTP floor, plus its cold start and
//! memory.
//!
//! `cargo bench --bench load` starts each target in turn on 127.0.0.1 ([`targets`]) and loads it with `wrk`
//! ([`generator`]): invocations in the host's envelope with the host's headers, from `concurrency` open connections,
//! each waiting for its answer before its next request, as the host's invocations of one worker do. The bodies are
//! the event mix ([`mix`]), fresh for every point. It prints throughput and p50/p99/max latency per target and
//! concurrency, and writes `target/perf/load.csv`, `target/perf/summary.txt` and `target/perf/performance.svg`
//! ([`report`]).
//!
//! Targets: `floor` (a bare hyper server answering the host's reply to every request: the cost of HTTP alone), and
//! the handler on the `memory`, `embedded` and `cosmos` stores (`cosmos`: the local Cosmos DB test server, or
//! `COSMOS_TEST_ENDPOINT`). The floor is measured by the same generator in the same run, so it is also the proof that
//! the generator is not what limits the handler's figures. Settings, from the environment:
//! - `LOAD_TARGETS` (`floor,memory,embedded,cosmos`; without Node.js, `cosmos` is left out), `LOAD_CONCURRENCY`
//!   (`1,4,16,64`), `LOAD_SECONDS` per point (3), `LOAD_WRK_THREADS` (1: one core for the generator, one for the
//!   server);
//! - the event mix: `LOAD_EVENTS_PER_RECORDING` (3), `LOAD_MAX_CHUNKS` per event (3), `LOAD_DUPLICATES`, the share of
//!   deliveries that repeat an earlier event (0.1), `LOAD_UNRELATED`, the share of other ACS events (0.05),
//!   `LOAD_BODIES`, distinct bodies per point (50,000; sent in turn, again from the first when they run out);
//! - `LOAD_STARTS`, cold starts measured per store (20);
//! - `LOAD_HANDLER`, another build of the handler to measure instead of this one's (to compare two versions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod generator;
mod mix;
mod report;
mod targets;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mix::Mix;
use targets::{FLOOR_PORT_VARIABLE, Server};

fn main() {
    if let Ok(port) = std::env::var(FLOOR_PORT_VARIABLE) {
        return targets::floor::serve(port.parse().expect("a port"));
    }
    // `cargo test --benches` runs benches once as tests; a load run is minutes long, so it runs only under
    // `cargo bench` (which passes `--bench`).
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: run with `cargo bench --bench load`");
        return;
    }
    generator::ensure_installed();
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/perf");
    std::fs::create_dir_all(&out).unwrap();

    let mut summary = String::new();
    let executable = targets::handler_executable();
    let size = std::fs::metadata(&executable).map(|m| m.len()).unwrap_or(0);
    writeln!(
        summary,
        "handler executable: {} ({:.1} MiB)\ngenerator: {}, {} thread(s)",
        executable.display(),
        size as f64 / (1024.0 * 1024.0),
        generator::wrk_version().unwrap_or_default(),
        settings.wrk_threads
    )
    .unwrap();
    for store in ["memory", "embedded"] {
        let starts = targets::cold_starts(&executable, store, settings.starts);
        writeln!(
            summary,
            "cold start, {store} store (exec to first answer on GET /, {} starts): median {:.1} ms, min {:.1} ms, \
             max {:.1} ms",
            starts.len(),
            ms(starts[starts.len() / 2]),
            ms(starts[0]),
            ms(starts[starts.len() - 1]),
        )
        .unwrap();
    }
    print!("{summary}");

    let mut csv = String::from("target,concurrency,requests,seconds,throughput_rps,p50_us,p99_us,max_us,errors\n");
    println!(
        "\n{:<9} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "target", "conc.", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut floor_at = std::collections::BTreeMap::new();
    let mut ratios = Vec::new();
    for target in &settings.targets {
        let server = runtime.block_on(Server::start(target));
        let idle_kib = server.rss_kib().0;
        let requests_before = runtime.block_on(server.store_requests());
        let mut delivered = 0;
        for &concurrency in &settings.concurrency {
            // A short warm-up (connections, first documents), then the measured run, each with bodies of its own.
            point(&server, &settings, concurrency, 1.0);
            let run = point(&server, &settings, concurrency, settings.seconds);
            delivered += run.requests;
            println!(
                "{:<9} {:>5} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                target,
                concurrency,
                run.requests,
                run.throughput,
                ms(run.p50),
                ms(run.p99),
                ms(run.max),
                run.errors
            );
            writeln!(
                csv,
                "{target},{concurrency},{},{:.3},{:.1},{},{},{},{}",
                run.requests,
                run.seconds,
                run.throughput,
                run.p50.as_micros(),
                run.p99.as_micros(),
                run.max.as_micros(),
                run.errors
            )
            .unwrap();
            if target == "floor" {
                floor_at.insert(concurrency, run.throughput);
            } else if let Some(floor) = floor_at.get(&concurrency) {
                ratios.push(format!(
                    "{target} at {concurrency}: {:.2}× the floor",
                    run.throughput / floor
                ));
            }
        }
        let (now_kib, peak_kib) = server.rss_kib();
        writeln!(
            summary,
            "{target}: RSS idle {:.1} MiB, at the end {:.1} MiB, peak {:.1} MiB",
            idle_kib as f64 / 1024.0,
            now_kib as f64 / 1024.0,
            peak_kib as f64 / 1024.0
        )
        .unwrap();
        if let Some(requests) = runtime
            .block_on(server.store_requests())
            .zip(requests_before)
            .map(|(after, before)| after - before)
        {
            writeln!(
                summary,
                "{target}: {requests} Cosmos DB document requests for about {delivered} measured deliveries \
                 (warm-ups not counted; {:.2} per delivery at most)",
                requests as f64 / delivered.max(1) as f64
            )
            .unwrap();
        }
        drop(server);
    }
    for ratio in ratios {
        writeln!(summary, "{ratio}").unwrap();
    }
    println!("\n{summary}");
    std::fs::write(out.join("load.csv"), csv).unwrap();
    std::fs::write(out.join("summary.txt"), &summary).unwrap();
    println!("wrote {}", out.join("load.csv").display());
    report::plot(&out, &report::machine());
}

/// One wrk run at `concurrency` for `seconds`, with a fresh set of bodies.
fn point(server: &Server, settings: &Settings, concurrency: usize, seconds: f64) -> generator::Run {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let mix = Mix {
        tag: format!("r{}", RUNS.fetch_add(1, Ordering::Relaxed)),
        events_per_recording: settings.events_per_recording,
        max_chunks: settings.max_chunks,
        duplicates: settings.duplicates,
        unrelated: settings.unrelated,
    };
    let dir = tempfile::tempdir().unwrap();
    let (script, bodies) = generator::prepare(dir.path(), mix.bodies(settings.bodies));
    let url = format!("http://127.0.0.1:{}/RecordingEvent", server.port);
    generator::run(&url, &script, &bodies, settings.wrk_threads, concurrency, seconds)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Settings {
    targets: Vec<String>,
    concurrency: Vec<usize>,
    seconds: f64,
    events_per_recording: u64,
    max_chunks: u64,
    duplicates: f64,
    unrelated: f64,
    bodies: u64,
    starts: usize,
    wrk_threads: usize,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            std::env::var(name)
                .ok()
                .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is not valid: {v:?}")))
                .unwrap_or(default)
        }
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Self {
            targets: list("LOAD_TARGETS", default_targets()),
            concurrency: list("LOAD_CONCURRENCY", "1,4,16,64")
                .iter()
                .map(|c| c.parse().expect("LOAD_CONCURRENCY lists numbers"))
                .collect(),
            seconds: var("LOAD_SECONDS", 3.0),
            events_per_recording: var("LOAD_EVENTS_PER_RECORDING", 3u64).max(1),
            max_chunks: var("LOAD_MAX_CHUNKS", 3u64).max(1),
            duplicates: var("LOAD_DUPLICATES", 0.1),
            unrelated: var("LOAD_UNRELATED", 0.05),
            bodies: var("LOAD_BODIES", 50_000u64).max(1),
            starts: var("LOAD_STARTS", 20usize).max(1),
            wrk_threads: var("LOAD_WRK_THREADS", 1usize).max(1),
        }
    }
}

/// Every target, less `cosmos` when Node.js (which runs the Cosmos DB test server) is missing and no
/// `COSMOS_TEST_ENDPOINT` is set.
fn default_targets() -> &'static str {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node || std::env::var_os("COSMOS_TEST_ENDPOINT").is_some() {
        "floor,memory,embedded,cosmos"
    } else {
        println!("no Node.js: the cosmos target is left out");
        "floor,memory,embedded"
    }
}
