//! The handler under load, driven as the Functions host drives it, beside the HTTP floor, plus its cold start and
//! memory.
//!
//! `cargo bench --bench load` starts each target in turn on 127.0.0.1, posts invocations exactly as the host does
//! (the envelope, the host's headers, a chunked body) from `concurrency` parallel callers, and prints throughput and
//! p50/p99/max latency per target and concurrency. It writes the figures to `target/perf/load.csv` and
//! `target/perf/summary.txt`, and the plot to `target/perf/performance.svg` (with `scripts/plot_performance.py`, when
//! Python 3 is installed).
//!
//! Targets: `floor` (a bare hyper server answering the host's reply to every request: the cost of HTTP alone, this
//! same executable started again), and the handler on the `memory`, `embedded` and `cosmos` stores (`cosmos`: the
//! local Cosmos DB test server, or `COSMOS_TEST_ENDPOINT`). Settings, from the environment:
//! - `LOAD_TARGETS` (`floor,memory,embedded,cosmos`; without Node.js, `cosmos` is left out), `LOAD_CONCURRENCY` (`1,4,16,64`), `LOAD_SECONDS` per point (3);
//! - the event mix: `LOAD_EVENTS_PER_RECORDING` (3), `LOAD_MAX_CHUNKS` per event (3), `LOAD_DUPLICATES`, the share of
//!   deliveries that repeat an earlier event (0.1), `LOAD_UNRELATED`, the share of other ACS events (0.05);
//! - `LOAD_STARTS`, cold starts measured per store (20);
//! - `LOAD_HANDLER`, another build of the handler to measure instead of this one's (to compare two versions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cosmos::CosmosTarget;
use support::events::{call_ended, chunk, recording_event};

/// The floor's child process finds its port here.
const FLOOR_PORT_VARIABLE: &str = "LOAD_FLOOR_PORT";

fn main() {
    if let Ok(port) = std::env::var(FLOOR_PORT_VARIABLE) {
        return floor::serve(port.parse().expect("a port"));
    }
    // `cargo test --benches` runs benches once as tests; a load run is minutes long, so it runs only under
    // `cargo bench` (which passes `--bench`).
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: run with `cargo bench --bench load`");
        return;
    }
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/perf");
    std::fs::create_dir_all(&out).unwrap();

    let mut summary = String::new();
    let executable = handler_executable();
    let size = std::fs::metadata(&executable).map(|m| m.len()).unwrap_or(0);
    writeln!(
        summary,
        "handler executable: {} ({:.1} MiB)",
        executable.display(),
        mib(size)
    )
    .unwrap();
    for store in ["memory", "embedded"] {
        let starts = cold_starts(&executable, store, settings.starts);
        writeln!(
            summary,
            "cold start, {store} store (exec to first answer on GET /, {} starts): median {:.1} ms, min {:.1} ms, \
             max {:.1} ms",
            starts.len(),
            ms(percentile(&starts, 0.5)),
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
    for target in &settings.targets {
        let server = runtime.block_on(Server::start(target));
        let idle_kib = server.rss_kib().0;
        let requests_before = runtime.block_on(server.store_requests());
        let mut events = 0;
        for &concurrency in &settings.concurrency {
            let run = runtime.block_on(drive(&server, &settings, concurrency));
            events += run.delivered;
            println!(
                "{:<9} {:>5} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                target,
                concurrency,
                run.requests,
                run.throughput(),
                ms(run.percentile(0.5)),
                ms(run.percentile(0.99)),
                ms(run.percentile(1.0)),
                run.errors
            );
            writeln!(
                csv,
                "{target},{concurrency},{},{:.3},{:.1},{},{},{},{}",
                run.requests,
                run.elapsed.as_secs_f64(),
                run.throughput(),
                run.percentile(0.5).as_micros(),
                run.percentile(0.99).as_micros(),
                run.percentile(1.0).as_micros(),
                run.errors
            )
            .unwrap();
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
                "{target}: {requests} Cosmos DB document requests for {events} deliveries ({:.2} per delivery)",
                requests as f64 / events.max(1) as f64
            )
            .unwrap();
        }
        drop(server);
    }
    println!("\n{summary}");
    std::fs::write(out.join("load.csv"), csv).unwrap();
    std::fs::write(out.join("summary.txt"), &summary).unwrap();
    println!("wrote {}", out.join("load.csv").display());
    plot(&out, &machine());
}

/// The machine, for the plot's caption: cores and memory.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0);
    format!(
        "{cores} cores, {:.0} GiB; load generator, server and store on the same machine",
        memory_kib as f64 / (1024.0 * 1024.0)
    )
}

/// Draws `performance.svg` beside the CSV with `scripts/plot_performance.py`, when Python 3 is installed.
fn plot(out: &Path, caption: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/plot_performance.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(out.join("load.csv"))
        .arg(out.join("performance.svg"))
        .arg(caption)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("no plot: python3 scripts/plot_performance.py did not run");
    }
}

struct Settings {
    targets: Vec<String>,
    concurrency: Vec<usize>,
    seconds: f64,
    events_per_recording: u64,
    max_chunks: u64,
    duplicates: f64,
    unrelated: f64,
    starts: usize,
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
            starts: var("LOAD_STARTS", 20usize).max(1),
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

/// One target, running on its own port until dropped.
struct Server {
    child: Child,
    port: u16,
    _workdir: tempfile::TempDir,
    cosmos: Option<CosmosTarget>,
}

impl Server {
    async fn start(target: &str) -> Server {
        let workdir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let port_text = port.to_string();
        let mut cosmos = None;
        let mut command = match target {
            "floor" => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.env(FLOOR_PORT_VARIABLE, &port_text);
                command
            }
            store => {
                let mut command = handler_command(&handler_executable(), &port_text);
                match store {
                    "memory" | "embedded" => {
                        command.env("RECORDINGS_STORE", store);
                    }
                    "cosmos" => {
                        let server = CosmosTarget::start();
                        let database = support::cosmos::unique_database();
                        command.envs(server.handler_settings(&database, None));
                        cosmos = Some(server);
                    }
                    other => panic!("unknown target {other:?}: floor, memory, embedded or cosmos"),
                }
                command
            }
        };
        let log = std::fs::File::create(workdir.path().join("output.log")).unwrap();
        let child = command
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            port,
            _workdir: workdir,
            cosmos,
        };
        first_answer(port, Duration::from_secs(60)).unwrap_or_else(|| panic!("{target} never answered GET /"));
        server
    }

    /// Resident memory now and at its peak, in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Document requests the local Cosmos DB test server has answered, when that is the store.
    async fn store_requests(&self) -> Option<usize> {
        let cosmos = self.cosmos.as_ref().filter(|c| c.is_local())?;
        let settled = cosmos.requests_since(0).await;
        Some(settled.iter().filter(|r| r.contains("/docs")).count())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        support::release_port(self.port);
    }
}

/// The handler built with this bench, or `LOAD_HANDLER`.
fn handler_executable() -> PathBuf {
    std::env::var_os("LOAD_HANDLER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_handler")))
}

fn handler_command(executable: &Path, port: &str) -> Command {
    let mut command = Command::new(executable);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port);
    command
}

/// Exec to the first answer on `GET /`, `starts` times, sorted.
fn cold_starts(executable: &Path, store: &str, starts: usize) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..starts)
        .map(|_| {
            let workdir = tempfile::tempdir().unwrap();
            let port = support::free_port();
            let started = Instant::now();
            let mut child = handler_command(executable, &port.to_string())
                .env("RECORDINGS_STORE", store)
                .current_dir(workdir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let answered = first_answer(port, Duration::from_secs(10)).map(|_| started.elapsed());
            let _ = child.kill();
            let _ = child.wait();
            support::release_port(port);
            answered.expect("the handler never answered GET /")
        })
        .collect();
    times.sort();
    times
}

/// Polls `GET /` as fast as the loopback allows until an HTTP answer arrives.
fn first_answer(port: u16, limit: Duration) -> Option<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let mut answer = Vec::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_end(&mut answer).is_ok()
                && answer.starts_with(b"HTTP/1.1 ")
            {
                return Some(());
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// The latencies of one timed run.
struct Run {
    /// Answers within the measured seconds.
    requests: u64,
    /// Every invocation sent, warm-up and the last in flight included: what the store saw.
    delivered: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// `concurrency` callers post invocations for `settings.seconds` (after a short warm-up), each waiting for its answer
/// before the next, as the host's invocations of one worker do.
async fn drive(server: &Server, settings: &Settings, concurrency: usize) -> Run {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let tag = format!("r{}", RUNS.fetch_add(1, Ordering::Relaxed));
    let mix = Arc::new(Mix {
        tag,
        events_per_recording: settings.events_per_recording,
        max_chunks: settings.max_chunks,
        duplicates: settings.duplicates,
        unrelated: settings.unrelated,
        next: AtomicU64::new(0),
    });
    let url = format!("http://127.0.0.1:{}/RecordingEvent", server.port);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (mix, url, client) = (mix.clone(), url.clone(), client.clone());
            let (measuring, stop) = (measuring.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let body = mix.next_body();
                    let sent = Instant::now();
                    let ok = match support::host_request(&client, &url, body).send().await {
                        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        latencies.push(sent.elapsed());
                        errors += u64::from(!ok);
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(settings.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut run = Run {
        requests: 0,
        delivered: 0,
        errors: 0,
        elapsed,
        latencies: Vec::new(),
    };
    for caller in callers {
        let (latencies, errors) = caller.await.unwrap();
        run.latencies.extend(latencies);
        run.errors += errors;
    }
    run.requests = run.latencies.len() as u64;
    run.delivered = mix.next.load(Ordering::Relaxed);
    run.latencies.sort();
    run
}

/// The event mix: deliveries of fresh recording events (one to `max_chunks` chunks, `events_per_recording` events per
/// recording), repeats of earlier ones, and events of other types.
struct Mix {
    tag: String,
    events_per_recording: u64,
    max_chunks: u64,
    duplicates: f64,
    unrelated: f64,
    next: AtomicU64,
}

impl Mix {
    fn next_body(&self) -> Vec<u8> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let roll = unit(n, 1);
        let event = if roll < self.unrelated {
            call_ended(&format!("{}-other-{n}", self.tag))
        } else if !self.is_fresh(n) {
            // A repeat of an earlier fresh event (the nearest at or below a random earlier slot).
            let mut earlier = (unit(n, 2) * n as f64) as u64;
            while earlier > 0 && !self.is_fresh(earlier) {
                earlier -= 1;
            }
            self.recording_event(if self.is_fresh(earlier) { earlier } else { n })
        } else {
            self.recording_event(n)
        };
        support::envelope::event_grid("RecordingEvent", "eventGridEvent", &event.to_string())
    }

    /// Whether delivery `n` is a recording event's first delivery (not an event of another type, not a repeat).
    fn is_fresh(&self, n: u64) -> bool {
        let roll = unit(n, 1);
        roll >= self.unrelated && (roll >= self.unrelated + self.duplicates || n == 0)
    }

    /// The `n`th recording event, the same every time it is asked for.
    fn recording_event(&self, n: u64) -> Value {
        let (recording, part) = (n / self.events_per_recording, n % self.events_per_recording);
        let count = 1 + (unit(n, 3) * self.max_chunks as f64) as u64 % self.max_chunks;
        let first = part * self.max_chunks;
        let chunks: Vec<Value> = (first..first + count)
            .map(|i| chunk(i, &format!("0-eus-d12-{}-{recording}-{i}", self.tag)))
            .collect();
        let second = part % 60;
        recording_event(
            &format!("{}-e{n}", self.tag),
            &format!("{}-call-{recording}", self.tag),
            &format!("{}-rec-{recording}", self.tag),
            &format!("2026-11-27T15:20:{second:02}Z"),
            &chunks,
        )
    }
}

/// A deterministic number in [0, 1) for `n` (splitmix64), one stream per `salt`.
fn unit(n: u64, salt: u64) -> f64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The HTTP floor: a bare hyper server that reads each request's body and answers with the host's reply, fixed.
mod floor {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    const REPLY: &[u8] = br#"{"Outputs":{},"Logs":["stored"],"ReturnValue":null}"#;

    async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let _body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from_static(REPLY)));
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    pub fn serve(port: u16) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
    }
}
