//! The npm-installed test servers (`tests/cosmos-server`, `tests/azurite`): each folder pins its server in a
//! lockfile, the first test that needs it installs it with `npm ci`, and each test runs a server process of its own
//! that ends with it.

use std::path::Path;
use std::process::{Child, ChildStdin, Command};
use std::sync::atomic::{AtomicU64, Ordering};

/// A running server process. Its stdin stays open while this lives: the servers exit when it closes, so a server
/// never outlives its test process, however that ends; dropping this also kills it at once.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ServerProcess {
    /// Takes over a server spawned with a piped stdin.
    pub fn new(mut child: Child) -> Self {
        let stdin = child.stdin.take();
        Self { child, stdin }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name (database, container) no other test of any process uses: `test-{pid}-{n}`.
pub fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Installs the folder's pinned packages from its lockfile, unless `package` is installed already; test processes
/// running at the same time wait for each other.
pub fn install(dir: &Path, package: &str) {
    let installed = || dir.join("node_modules").join(package).join("package.json").is_file();
    if installed() {
        return;
    }
    let lock = std::fs::File::create(dir.join(".install.lock")).unwrap();
    lock.lock().unwrap();
    if installed() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("run npm: Node.js 20 or newer and npm must be installed");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}
