//! The real test model, SmolLM2-135M-Instruct as a Q4_1 GGUF in the git-ignored `cache/`,
//! fetched by `scripts/fetch_model.sh` the first time a test asks for it. Test binaries run in
//! parallel, so the fetch runs under a lock file (`cache/.fetch.lock`): one process fetches, the
//! others wait for it and then find the file (fetch_model.sh moves it into place whole).
//!
//! The `weblora` crate's own tests compile this file too (`#[path]`), so it uses std only.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// A lock older than this was left by a fetch that died (the 93 MB wheel takes seconds to a
/// minute or two); it is removed and the fetch tried again.
const STALE_LOCK: Duration = Duration::from_secs(15 * 60);

/// The repository root (both `crate/` and `tests/` sit one level below it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("a crate folder inside the repository").to_path_buf()
}

/// The test model's path, fetched first when it is missing. Panics, saying why, only when
/// fetching fails.
pub fn smollm2_gguf() -> PathBuf {
    let root = repo_root();
    let model = root.join("cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if model.is_file() {
        return model;
    }
    let cache = root.join("cache");
    std::fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("cannot create {}: {e}", cache.display()));
    let lock = Lock::acquire(&cache.join(".fetch.lock"));
    if !model.is_file() {
        let script = root.join("scripts/fetch_model.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        if !out.status.success() || !model.is_file() {
            panic!(
                "the test model {} is missing and {} could not fetch it ({}):\n{}",
                model.display(),
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    drop(lock);
    model
}

/// A lock file made with `create_new`, removed on drop.
struct Lock {
    path: PathBuf,
    _file: File,
}

impl Lock {
    fn acquire(path: &Path) -> Lock {
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(file) => return Lock { path: path.to_path_buf(), _file: file },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
                    if matches!(age, Ok(a) if a > STALE_LOCK) {
                        let _ = std::fs::remove_file(path);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create the lock file {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
