//! The load bench's report: the CSV, the plot (drawn by `scripts/plot_performance.py`) and the machine it ran on.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The machine, for the plot's caption: cores and memory.
pub fn machine() -> String {
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
pub fn plot(out: &Path, caption: &str) {
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
