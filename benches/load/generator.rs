//! The load generator: `wrk`, driven with a Lua script that posts pre-built invocation bodies, in turn, with the
//! host's headers. A generator written with a general HTTP client saturates long before a bare hyper server does on
//! these two cores (the first version of this bench measured its own ceiling, about 11,000 requests/s, as the
//! "floor"); wrk is C with a single event loop, and the script does no work per request beyond picking the next body.
//!
//! What differs from the host: wrk sends each body with `Content-Length` in one piece, where the host streams it
//! chunked; the handler reads both the same way (one buffer, the same limit). The headers, the envelope and the
//! body's content are the host's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The result of one wrk run, from its report.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub requests: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
}

/// Makes sure `wrk` is installed: Debian's package, installed here when missing (benches run on a developer's
/// machine with the package registry reachable, never in CI).
pub fn ensure_installed() {
    if wrk_version().is_some() {
        return;
    }
    println!("wrk is missing: installing Debian's package");
    let installed = Command::new("apt-get").args(["install", "-y", "wrk"]).status();
    if !installed.is_ok_and(|s| s.success()) {
        let _ = Command::new("apt-get").arg("update").status();
        let _ = Command::new("apt-get").args(["install", "-y", "wrk"]).status();
    }
    assert!(
        wrk_version().is_some(),
        "cannot install wrk; install it (`apt-get install wrk`) and run the bench again"
    );
}

pub fn wrk_version() -> Option<String> {
    let output = Command::new("wrk").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    text.lines().next().filter(|l| l.starts_with("wrk")).map(str::to_owned)
}

/// The Lua script: reads the bodies (one per line) at startup, then sends them in turn, each with the host's
/// headers and an invocation id of its own.
const SCRIPT: &str = r#"
local bodies, next_body, sent = {}, 0, 0
local headers = {
  ["Content-Type"] = "application/json; charset=utf-8",
  ["X-Azure-Functions-HostVersion"] = "4.1041.200.25064",
  ["User-Agent"] = "Azure-Functions-Host/4.1041.200.25064",
}
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  next_body = next_body % #bodies + 1
  sent = sent + 1
  headers["X-Azure-Functions-InvocationId"] = "00000000-0000-4000-8000-" .. string.format("%012d", sent)
  return wrk.format("POST", nil, headers, bodies[next_body])
end
"#;

/// Writes the bodies (one JSON text per line) and the script into `dir`.
pub fn prepare(dir: &Path, bodies: impl Iterator<Item = Vec<u8>>) -> (PathBuf, PathBuf) {
    let (script, lines) = (dir.join("load.lua"), dir.join("bodies.jsonl"));
    std::fs::write(&script, SCRIPT).unwrap();
    let mut text = Vec::new();
    for body in bodies {
        assert!(!body.contains(&b'\n'), "a body is one line");
        text.extend_from_slice(&body);
        text.push(b'\n');
    }
    std::fs::write(&lines, text).unwrap();
    (script, lines)
}

/// Runs wrk against `url` with `connections` open connections for `seconds`.
pub fn run(url: &str, script: &Path, bodies: &Path, threads: usize, connections: usize, seconds: f64) -> Run {
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", connections.max(threads)))
        .arg(format!("-d{}s", seconds.ceil() as u64))
        .arg("--latency")
        .arg("--timeout")
        .arg("30s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .arg("--")
        .arg(bodies)
        .output()
        .expect("run wrk");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&report)
}

/// Reads wrk's report (`--latency`).
pub fn parse(report: &str) -> Run {
    let mut run = Run::default();
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", _avg, _stdev, max, ..] => run.max = duration(max),
            ["50%", value] => run.p50 = duration(value),
            ["99%", value] => run.p99 = duration(value),
            [requests, "requests", "in", seconds, ..] => {
                run.requests = requests.parse().unwrap_or(0);
                run.seconds = duration(seconds.trim_end_matches(',')).as_secs_f64();
            }
            ["Requests/sec:", value] => run.throughput = value.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", count] => run.errors += count.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    run
}

/// wrk's durations: `480.00us`, `1.20ms`, `3.00s`, `1.00m`.
fn duration(text: &str) -> Duration {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().unwrap_or(0.0);
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => 0.0,
    };
    Duration::from_secs_f64(seconds)
}
