//! The npm-installed test servers (`tests/cosmos-server`, `tests/azurite`): each folder pins its server in a
//! lockfile, and the first test that needs it installs it with `npm ci`.

use std::path::Path;
use std::process::Command;

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
