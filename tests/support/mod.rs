//! Test support, one concern per module:
//! - [`app`]: the function app on disk (app root, `host.json`, function folders, local settings);
//! - [`host`]: the stand-in Functions host — worker processes, logs, timeouts, restarts;
//! - [`invoker`]: one invocation as the host makes it, shared by the host and its HTTP front door;
//! - [`http_front`], [`http_route`], [`http_payload`]: HTTP triggers — the host's public endpoint, routes and keys,
//!   forwarding (`enableForwardingHttpRequest`) or the invocation payload and the response made of its reply;
//! - [`envelope`]: the requests the host sends (envelopes, headers, its JSON re-serialization);
//! - [`grid`]: Event Grid, delivering batches through the host's webhook at least once, with retries;
//! - [`queues`]: the host's Storage Queues bindings: output messages, queue triggers, retries and poison queues;
//! - [`cosmos`], [`azurite`], [`npm`], [`proxy`]: the Cosmos DB test server, Azurite's Blob service (both installed
//!   with npm on first use), and a proxy to cut, black-hole or slow a connection;
//! - [`acs`], [`identity`]: ACS's recording storage, and a managed identity endpoint for Microsoft Entra ID;
//! - [`acs`]: ACS recording storage (signed downloads and deletes, faults on demand) and a trap for foreign hosts;
//! - [`events`], [`contract`], [`archive_contract`], [`rng`], [`ports`]: real-shaped events, the store and archive
//!   contracts, seeded randomness, ports;
//! - [`fake_worker`]: a scripted worker for the harness's own tests;
//! - [`wait`]: waits with a deadline that say what they waited for.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod acs;
pub mod app;
pub mod archive_contract;
pub mod azurite;
pub mod contract;
pub mod cosmos;
pub mod envelope;
pub mod events;
pub mod fake_worker;
pub mod grid;
pub mod host;
pub mod http_front;
pub mod http_payload;
pub mod http_route;
pub mod identity;
pub mod invoker;
pub mod npm;
pub mod ports;
pub mod proxy;
pub mod queues;
pub mod rng;
pub mod wait;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;

pub use app::{AppDir, FunctionApp, project_root};
pub use envelope::host_request;
pub use grid::EventGrid;
pub use host::{Host, Invocation, Level, Phase};
pub use ports::{free_port, release_port};

pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Says loudly, on stderr, what a test could not check against the live account it was pointed at, and why.
pub fn skipped(test: &str, what: &str) {
    eprintln!("\n*** SKIPPED in {test} against the live account: {what} ***\n");
}

/// Owned settings as the `(&str, &str)` pairs [`Host::start`] takes.
pub fn str_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Runs the handler binary as a command (`replay`, …) in `workdir` with exactly `env` (plus PATH), to completion:
/// its status, stdout and stderr.
pub fn run_handler(workdir: &Path, env: &[(&str, &str)], args: &[&str]) -> (ExitStatus, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
    command
        .args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run the handler");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every stored recording document under a data directory, sorted by path.
pub fn documents(data_dir: &Path) -> Vec<Value> {
    json_files(&data_dir.join("recordings"))
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Every quarantined entry under a data directory.
pub fn quarantined(data_dir: &Path) -> Vec<Value> {
    json_files(&data_dir.join("quarantine"))
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Every stored file under `dir` (recursively) with its parsed JSON, sorted by path; panics on a torn or invalid
/// file. Hidden files — a writer's temporary files, which a crash may leave half-written — are not stored files.
pub fn json_files(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_dir() {
                stack.push(path);
            } else if !hidden {
                let value = read_json(&path);
                found.push((path, value));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every file under `dir`, recursively (hidden files included, but for the embedded archive's `.{name}.source`).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if !(name.starts_with('.') && name.ends_with(".source")) {
            // (Not the embedded archive's note of where a file's bytes came from.)
            found.push(path);
        }
    }
    found
}

/// Reads an HTTP request's head (up to the blank line) from a test server's socket; `None` when the client went
/// away first.
pub async fn read_request_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    Some(request)
}

/// The chunk `documentId`s of a document, in stored order.
pub fn chunk_ids(document: &Value) -> Vec<String> {
    document["chunks"]
        .as_array()
        .map(|chunks| {
            chunks
                .iter()
                .map(|c| c["documentId"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
