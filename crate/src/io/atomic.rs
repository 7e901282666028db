//! Files and folders written whole or not at all: bytes go to a temporary name beside the
//! target, are flushed and synced, and the temporary is renamed over the target. A kill or a
//! full disk mid-write leaves the old target as it was (and no temporary behind, where the
//! process lives to clean up); readers never see a half-written file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `.NAME.partial` beside `path`: hidden, and never taken for the real thing.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Syncs a folder, so that a rename inside it is durable (a no-op where folders cannot be opened).
fn sync_folder(dir: &Path) {
    if let Ok(d) = File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
        let _ = d.sync_all();
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    let half = bytes.len() / 2;
    f.write_all(&bytes[..half])?;
    pause_for_tests(path);
    f.write_all(&bytes[half..])?;
    f.sync_all()
}

/// Crash tests set `WEBLORA_TEST_PAUSE_WRITING=NAME` to hold every write of a file whose
/// temporary is named `.NAME.partial` half-way for two seconds, time enough to kill the process
/// mid-write.
fn pause_for_tests(path: &Path) {
    if let Ok(name) = std::env::var("WEBLORA_TEST_PAUSE_WRITING") {
        if path.file_name().is_some_and(|n| n.to_string_lossy() == format!(".{name}.partial")) {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }
}

/// Writes `bytes` to `path` atomically (see the module docs). Errors name `path`.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary(path);
    if let Err(e) = write_synced(&tmp, bytes).and_then(|_| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_folder(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Writes `files` (name, bytes) as the folder `dir`, atomically as a whole: into a temporary
/// folder beside it, then renamed. An existing `dir` is replaced when `replace`, else refused.
pub fn write_folder(dir: &Path, files: &[(&str, &[u8])], replace: bool) -> Result<()> {
    let tmp = temporary(dir);
    let _ = fs::remove_dir_all(&tmp);
    let written = fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e)).and_then(|_| {
        for (name, bytes) in files {
            let path = tmp.join(name);
            write_synced(&path, bytes).map_err(|e| Error::io(dir.join(name), e))?;
        }
        sync_folder(&tmp);
        Ok(())
    });
    if let Err(e) = written.and_then(|_| replace_folder(&tmp, dir, replace)) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Renames the complete folder `from` to `to`. An existing `to` is first renamed aside and
/// removed only once `from` is in its place.
pub fn replace_folder(from: &Path, to: &Path, replace: bool) -> Result<()> {
    let old = to.with_file_name(format!(
        ".{}.old",
        to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let exists = to.exists();
    if exists && !replace {
        return Err(Error::Run(format!("{} exists already", to.display())));
    }
    if exists {
        let _ = fs::remove_dir_all(&old);
        fs::rename(to, &old).map_err(|e| Error::io(to, e))?;
    }
    if let Err(e) = fs::rename(from, to) {
        if exists {
            let _ = fs::rename(&old, to);
        }
        return Err(Error::io(to, e));
    }
    sync_folder(to.parent().unwrap_or(Path::new(".")));
    if exists {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Fails, naming `dir`, unless a file can be created there (checked by writing one and
/// removing it).
pub fn check_writable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let probe = dir.join(".weblora-write-check");
    write_synced(&probe, b"ok").map_err(|e| Error::io(dir, e))?;
    fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weblora-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let d = scratch("file");
        let p = d.join("a.json");
        write_file(&p, b"old").unwrap();
        write_file(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("a.json")]);
        // A write that cannot happen names the path and leaves nothing behind.
        let e = write_file(&d.join("missing/b.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing/b.json"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_folder_is_replaced_whole() {
        let d = scratch("folder");
        let f = d.join("checkpoint-2");
        write_folder(&f, &[("a", b"1"), ("b", b"2")], false).unwrap();
        assert!(write_folder(&f, &[("a", b"3")], false).is_err());
        write_folder(&f, &[("a", b"3")], true).unwrap();
        assert_eq!(fs::read(f.join("a")).unwrap(), b"3");
        assert!(!f.join("b").exists(), "the old folder's files are gone");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }
}
