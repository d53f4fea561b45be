//! Watching files for changes: the config files of `portcullis run` and `portcullis proxy
//! --config`, and the mounted Secret files (`DataPlane::watch_secrets`). Polls modification
//! times (no inotify needed, works on every filesystem and with editors that replace files).

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

/// A fingerprint of files: every (path, modification time, size) under the watched paths.
pub type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The fingerprint of `paths` (files, or folders walked recursively).
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for path in paths {
        collect(path, &mut out, 0);
    }
    out.sort();
    out
}

fn collect(path: &Path, out: &mut Fingerprint, depth: usize) {
    let Ok(meta) = std::fs::metadata(path) else {
        out.push((path.to_path_buf(), None, 0));
        return;
    };
    if meta.is_dir() {
        if depth > 16 {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                collect(&entry.path(), out, depth + 1);
            }
        }
    } else {
        out.push((path.to_path_buf(), meta.modified().ok(), meta.len()));
    }
}

/// Calls `changed` whenever the fingerprint of `paths` changes, checking every `interval`.
pub async fn poll(paths: Vec<PathBuf>, interval: Duration, mut changed: impl FnMut() + Send) {
    let mut last = fingerprint(&paths);
    loop {
        tokio::time::sleep(interval).await;
        let now = fingerprint(&paths);
        if now != last {
            last = now;
            changed();
        }
    }
}
