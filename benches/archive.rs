//! Archiving one large chunk, measured: the handler's `handler archive` into the embedded archive and into Blob
//! Storage (Azurite), against a bare streaming copy of the same bytes from the same ACS test server in the same run,
//! with the handler's peak memory while it copies and the requests it makes per chunk.
//!
//! `cargo bench --bench archive` serves chunks of each size from the ACS test server (`tests/support/acs.rs`, in
//! this process) and starts Azurite (`tests/support/azurite.rs`, blobs on disk), then for each size and round:
//! copies the chunk with a bare signed GET streamed to a file and flushed to disk (the floor: network, copy and disk,
//! nothing else), and archives it with the handler into each archive — metadata, content, SHA-256, the flushed and
//! renamed file or the staged and committed blob, the document updated — timing the command and reading its peak RSS
//! (`VmHWM`) from `/proc` as it runs. Without Node.js the Blob target is left out. It prints a table, and writes
//! `target/perf/archive.csv` and `target/perf/archive.svg`.
//!
//! Each copy follows a throwaway write of its size (deleted just before it), and which copy goes first alternates
//! from round to round: this machine writes into memory it has not touched lately several times slower than into
//! memory just freed, and without both the first copy of a round paid for the second.
//!
//! Settings: `ARCHIVE_SIZES` in MiB (`256,1024`), `ARCHIVE_ROUNDS` (3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use serde_json::json;
use support::acs::{AcsOptions, AcsServer, DEFAULT_ACCESS_KEY, DEFAULT_ACS_HOST, hmac_headers};
use support::archive_contract::{Container, Inspect};
use support::azurite::{BlobTarget, Persistence};
use support::events::{chunk_at, recording_event};

const MIB: u64 = 1024 * 1024;

struct Point {
    /// Where the handler archived: `embedded` or `blob`.
    target: &'static str,
    size_mib: u64,
    round: usize,
    /// The floor: the same bytes copied bare into the same kind of archive (a file; staged blocks in Azurite).
    bare_mib_s: f64,
    handler_mib_s: f64,
    handler_peak_rss_mib: f64,
    /// Requests to ACS, and to Blob Storage (0 for the embedded archive), for the whole chunk.
    acs_requests: usize,
    blob_requests: usize,
}

/// Where `handler archive` keeps the files.
enum Target<'a> {
    Embedded,
    Blob {
        server: &'a BlobTarget,
        container: &'a Container,
    },
}

impl Target<'_> {
    fn name(&self) -> &'static str {
        match self {
            Target::Embedded => "embedded",
            Target::Blob { .. } => "blob",
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("archive: run with `cargo bench --bench archive`");
        return;
    }
    let sizes: Vec<u64> = std::env::var("ARCHIVE_SIZES")
        .unwrap_or_else(|_| "256,1024".to_owned())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes in MiB"))
        .collect();
    let rounds: usize = std::env::var("ARCHIVE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acs = AcsServer::start(AcsOptions::default());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let blob = node.then(|| BlobTarget::start_with(Persistence::Disk));
    let container = blob.as_ref().map(|server| {
        let archive = runtime.block_on(server.archive("bench"));
        (server, Container { archive })
    });
    if container.is_none() {
        println!("Node.js is not installed: the Blob Storage target (Azurite) is left out");
    }
    let mut targets = vec![Target::Embedded];
    if let Some((server, container)) = &container {
        targets.push(Target::Blob { server, container });
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/perf");
    std::fs::create_dir_all(&out).unwrap();

    let mut points = Vec::new();
    for round in 1..=rounds {
        for &size_mib in &sizes {
            let id = format!("bench-{size_mib}-{round}");
            let urls = acs.add_chunk(&id, size_mib * MIB);
            // The server computes the hash once; not part of either measurement.
            let expected = acs.content_sha256_hex(&id);
            for target in &targets {
                let bare = || match target {
                    Target::Embedded => runtime.block_on(bare_copy(&urls.content, size_mib * MIB)),
                    Target::Blob { container, .. } => {
                        runtime.block_on(bare_blob_copy(&urls.content, size_mib * MIB, container, &id))
                    }
                };
                // This machine writes into memory (or disk blocks) it has not touched for a while several times
                // slower than into memory just freed (dd, 1 GiB: 0.3 GB/s, then 2.4 GB/s; tmpfs alike), so whichever
                // copy came first paid for both. Each copy now follows a throwaway write of the same size, deleted
                // just before it, and the order alternates from round to round.
                let bare_first = round % 2 == 1;
                let bare_time = bare_first.then(|| {
                    prime(size_mib * MIB);
                    bare()
                });
                prime(size_mib * MIB);
                let before = acs.requests().len();
                let (handler, peak_rss, blob_requests) = handler_archive(&runtime, &acs, &id, &urls, &expected, target);
                let acs_requests = acs.requests().len() - before;
                let bare = bare_time.unwrap_or_else(|| {
                    prime(size_mib * MIB);
                    bare()
                });
                let point = Point {
                    target: target.name(),
                    size_mib,
                    round,
                    bare_mib_s: size_mib as f64 / bare.as_secs_f64(),
                    handler_mib_s: size_mib as f64 / handler.as_secs_f64(),
                    handler_peak_rss_mib: peak_rss as f64 / 1024.0,
                    acs_requests,
                    blob_requests,
                };
                println!(
                    "{size_mib:>5} MiB round {round} into {:<8}: bare copy {:>7.1} MiB/s, handler {:>7.1} MiB/s ({:.2}×), peak RSS {:.1} MiB, {} ACS + {} Blob Storage requests",
                    point.target,
                    point.bare_mib_s,
                    point.handler_mib_s,
                    point.handler_mib_s / point.bare_mib_s,
                    point.handler_peak_rss_mib,
                    point.acs_requests,
                    point.blob_requests
                );
                points.push(point);
            }
        }
    }

    let mut csv = String::from(
        "target,size_mib,round,bare_mib_s,handler_mib_s,ratio,handler_peak_rss_mib,acs_requests,blob_requests\n",
    );
    for p in &points {
        writeln!(
            csv,
            "{},{},{},{:.1},{:.1},{:.3},{:.1},{},{}",
            p.target,
            p.size_mib,
            p.round,
            p.bare_mib_s,
            p.handler_mib_s,
            p.handler_mib_s / p.bare_mib_s,
            p.handler_peak_rss_mib,
            p.acs_requests,
            p.blob_requests
        )
        .unwrap();
    }
    std::fs::write(out.join("archive.csv"), &csv).unwrap();
    let mut summary = String::from(
        "\n| Archive | Size | bare copy into it (MiB/s) | handler (MiB/s) | ratio | handler peak RSS | requests (ACS + Blob) |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (target, &size_mib) in targets.iter().flat_map(|t| sizes.iter().map(move |s| (t.name(), s))) {
        let of_size: Vec<&Point> = points
            .iter()
            .filter(|p| p.size_mib == size_mib && p.target == target)
            .collect();
        let median = |f: &dyn Fn(&Point) -> f64| {
            let mut values: Vec<f64> = of_size.iter().map(|p| f(p)).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        writeln!(
            summary,
            "| {target} | {size_mib} MiB | {:.0} | {:.0} | {:.2}× | {:.1} MiB | {:.0} + {:.0} |",
            median(&|p| p.bare_mib_s),
            median(&|p| p.handler_mib_s),
            median(&|p| p.handler_mib_s / p.bare_mib_s),
            of_size.iter().map(|p| p.handler_peak_rss_mib).fold(0.0, f64::max),
            median(&|p| p.acs_requests as f64),
            median(&|p| p.blob_requests as f64),
        )
        .unwrap();
    }
    println!("{summary}(medians of {rounds} rounds; peak RSS is the largest seen)");
    std::fs::write(out.join("archive.svg"), plot(&points, &sizes)).unwrap();
    println!(
        "wrote {} and {}",
        out.join("archive.csv").display(),
        out.join("archive.svg").display()
    );
}

/// The floor: the same bytes, signed GET, streamed to a file and flushed to disk.
/// Writes `bytes` of zeros to a temporary file, flushes it to disk and deletes it: the memory and blocks a copy
/// right after it writes into are then ones this machine has just used.
fn prime(bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut file =
        std::io::BufWriter::with_capacity(1024 * 1024, std::fs::File::create(dir.path().join("prime")).unwrap());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..bytes.div_ceil(zeros.len() as u64) {
        file.write_all(&zeros).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

async fn bare_copy(url: &str, bytes: u64) -> Duration {
    let (started, mut body) = signed_get(url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut file =
        std::io::BufWriter::with_capacity(1024 * 1024, std::fs::File::create(dir.path().join("copy")).unwrap());
    let mut received = 0u64;
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        received += piece.len() as u64;
        file.write_all(&piece).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(received, bytes);
    elapsed
}

/// The Blob Storage floor: the same bytes, signed GET, staged in 8 MiB blocks one after the other into Azurite and
/// committed — no hash, no metadata, no checks.
async fn bare_blob_copy(url: &str, bytes: u64, container: &Container, id: &str) -> Duration {
    use acs_recording_handler::archive::blob::BLOCK_BYTES;
    use azure_storage_blob::models::BlockLookupList;
    let mut blob_url = container.archive.container_url().clone();
    blob_url.path_segments_mut().unwrap().extend(["bare", id]);
    let client = container.archive.blob_client(blob_url).unwrap().block_blob_client();
    let (started, mut body) = signed_get(url).await;
    let (mut buffer, mut ids, mut received) = (bytes::BytesMut::new(), Vec::new(), 0u64);
    loop {
        let piece = body.next().await.map(Result::unwrap);
        if let Some(piece) = &piece {
            received += piece.len() as u64;
            buffer.extend_from_slice(piece);
        }
        if buffer.len() >= BLOCK_BYTES as usize || (piece.is_none() && !buffer.is_empty()) {
            let block = buffer.split_to(buffer.len().min(BLOCK_BYTES as usize)).freeze();
            let block_id = format!("{:032}", ids.len()).into_bytes();
            client
                .stage_block(
                    &block_id,
                    block.len() as u64,
                    azure_core::http::Body::from(block).into(),
                    None,
                )
                .await
                .unwrap();
            ids.push(block_id);
        }
        if piece.is_none() && buffer.is_empty() {
            break;
        }
    }
    let list = BlockLookupList {
        latest: Some(ids),
        ..Default::default()
    };
    client.commit_block_list(list.try_into().unwrap(), None).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(received, bytes);
    elapsed
}

/// A signed GET of the whole file from the ACS test server: when it started, and its body.
async fn signed_get(
    url: &str,
) -> (
    Instant,
    impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut request = client.get(url);
    for (name, value) in hmac_headers(&AcsOptions::default(), "GET", url, b"", SystemTime::now()) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success());
    (started, Box::pin(response.bytes_stream()))
}

/// Requests Blob Storage has answered so far, once its log has caught up; 0 for the embedded archive.
fn blob_requests(target: &Target) -> usize {
    let Target::Blob { server, .. } = target else {
        return 0;
    };
    let mut seen = usize::MAX;
    loop {
        let count = server.request_count();
        if count == seen {
            return count;
        }
        seen = count;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Archives the chunk with the handler (`replay --no-archive`, then the timed `archive`) into `target`; returns the
/// archive command's time, its peak RSS in KiB and its requests to Blob Storage, after checking the archived file's
/// hash.
fn handler_archive(
    runtime: &tokio::runtime::Runtime,
    acs: &AcsServer,
    id: &str,
    urls: &support::acs::ChunkUrls,
    expected: &str,
    target: &Target,
) -> (Duration, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let event = recording_event("e1", "call-1", "rec-1", &now, &[chunk_at(0, id, urls)]);
    std::fs::write(dir.path().join("event.json"), json!([event]).to_string()).unwrap();
    let connection = format!("endpoint=https://{DEFAULT_ACS_HOST}/;accesskey={DEFAULT_ACCESS_KEY}");
    let mut env: Vec<(String, String)> = [
        ("AcsConnection", connection.as_str()),
        ("RECORDINGS_ARCHIVE_SOURCES", &acs.base_url()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    if let Target::Blob { server, .. } = target {
        env.extend(server.handler_settings("bench", None));
    }
    let run = |args: &[&str]| {
        Command::new(handler_executable())
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    assert!(run(&["replay", "--no-archive", "event.json"]).wait().unwrap().success());
    let before = blob_requests(target);
    let started = Instant::now();
    let mut child = run(&["archive"]);
    let mut peak = 0;
    let status = loop {
        peak = peak.max(peak_rss_kib(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    assert!(status.success(), "handler archive failed");
    let requests = blob_requests(target) - before;
    let kept = match target {
        Target::Embedded => {
            let archived = dir.path().join(format!(".data/archive/call-1/rec-1/{id}.content.mp4"));
            support::acs::sha256_hex(std::fs::File::open(&archived).unwrap())
        }
        Target::Blob { container, .. } => {
            let mut location = container.archive.container_url().clone();
            location
                .path_segments_mut()
                .unwrap()
                .extend(["call-1", "rec-1", id, "content.mp4"]);
            runtime.block_on(container.read(location.as_str())).unwrap().0
        }
    };
    assert_eq!(kept, expected, "the archived file holds the chunk's bytes");
    (elapsed, peak, requests)
}

fn handler_executable() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handler"))
}

/// The peak resident set (`VmHWM`) of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One bar series: its label, colour, the target its points come from, and its value.
type Series = (&'static str, &'static str, &'static str, fn(&Point) -> f64);

/// Two panels of bars per size: throughput (bare copy beside the handler) and the handler's peak RSS.
fn plot(points: &[Point], sizes: &[u64]) -> String {
    let median = |size: u64, target: &str, f: fn(&Point) -> f64| {
        let mut values: Vec<f64> = points
            .iter()
            .filter(|p| p.size_mib == size && p.target == target)
            .map(f)
            .collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let measured = |target: &str| points.iter().any(|p| p.target == target);
    let (width, height, top, bottom) = (760.0, 380.0, 50.0, 270.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" fill="#222"><rect width="{width}" height="{height}" fill="white"/>"##
    );
    let panels: [(&str, &str, Vec<Series>); 2] = [
        (
            "Archiving throughput (MiB/s)",
            "",
            vec![
                ("bare copy → disk", "#7f7f7f", "embedded", |p| p.bare_mib_s),
                ("handler → embedded", "#1f77b4", "embedded", |p| p.handler_mib_s),
                ("bare copy → Azurite", "#bcbcbc", "blob", |p| p.bare_mib_s),
                ("handler → Blob (Azurite)", "#2ca02c", "blob", |p| p.handler_mib_s),
            ],
        ),
        (
            "Handler peak RSS (MiB)",
            "target 64 MiB",
            vec![
                ("embedded", "#ff7f0e", "embedded", |p| p.handler_peak_rss_mib),
                ("Blob (Azurite)", "#d4a017", "blob", |p| p.handler_peak_rss_mib),
            ],
        ),
    ];
    let panels = panels.map(|(title, note, series)| {
        let series: Vec<Series> = series.into_iter().filter(|s| measured(s.2)).collect();
        (title, note, series)
    });
    for (i, (title, note, series)) in panels.iter().enumerate() {
        let x0 = 60.0 + i as f64 * 370.0;
        let max = sizes
            .iter()
            .flat_map(|s| series.iter().map(move |(_, _, target, f)| median(*s, target, *f)))
            .fold(if note.is_empty() { 1.0 } else { 64.0 }, f64::max)
            * 1.15;
        let to_y = |v: f64| bottom - v / max * (bottom - top);
        write!(
            svg,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>"#,
            x0 + 150.0
        )
        .unwrap();
        write!(
            svg,
            r##"<polyline points="{x0},{top} {x0},{bottom} {},{bottom}" fill="none" stroke="#333"/>"##,
            x0 + 300.0
        )
        .unwrap();
        if !note.is_empty() {
            let y = to_y(64.0);
            write!(svg, r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="#d62728" text-anchor="end">{note}</text>"##, x0 + 300.0, x0 + 298.0, y - 4.0).unwrap();
        }
        let group = 300.0 / sizes.len() as f64;
        let bar = (group - 30.0) / series.len() as f64;
        for (g, size) in sizes.iter().enumerate() {
            let gx = x0 + 15.0 + g as f64 * group;
            for (b, (_, colour, target, f)) in series.iter().enumerate() {
                let v = median(*size, target, *f);
                let (x, y) = (gx + b as f64 * bar, to_y(v));
                write!(svg, r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.0}</text>"#, bar - 4.0, bottom - y, x + bar / 2.0 - 2.0, y - 4.0).unwrap();
            }
            write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{size} MiB</text>"#,
                gx + (group - 30.0) / 2.0,
                bottom + 18.0
            )
            .unwrap();
        }
        for (b, (label, colour, _, _)) in series.iter().enumerate() {
            let ly = bottom + 40.0 + b as f64 * 16.0;
            write!(svg, r#"<rect x="{x0}" y="{:.1}" width="12" height="10" fill="{colour}"/><text x="{}" y="{ly:.1}">{label}</text>"#, ly - 9.0, x0 + 18.0).unwrap();
        }
    }
    svg.push_str("</svg>\n");
    svg
}
