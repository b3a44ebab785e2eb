//! Run ids and run logs: every run that can change a target gets an id
//! (its journal and its log are named by it) and a full debug log under
//! [`LOG_DIR`], of which the newest [`KEEP_RUN_LOGS`] are kept.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Default directory for full logs on the rescue VM.
pub const LOG_DIR: &str = "/var/log/vmrescue";

/// How many run logs (`<run-id>.log`) stay in [`LOG_DIR`]: the newest.
pub const KEEP_RUN_LOGS: usize = 100;

/// Removes all but the newest `keep` run logs. Run ids sort by time, so
/// the names alone order them; other files in the directory (the payload's
/// logs, support bundles) are left alone.
pub fn prune_run_logs(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let is_run_log = |name: &str| {
        name.strip_suffix(".log").is_some_and(|id| {
            id.len() == 20 && id.as_bytes()[8] == b'-' && id.as_bytes()[15] == b'-'
        })
    };
    let mut logs: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_run_log(n))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(keep);
    for name in &logs[..excess] {
        if let Err(err) = std::fs::remove_file(dir.join(name)) {
            tracing::debug!("keeping {name}: {err}");
        }
    }
}

/// A run identifier: UTC time plus the process id, sortable and unique enough
/// for journals and log names (`20261124-192150-1a2b`).
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let stamp = now
        .format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    format!("{stamp}-{:04x}", std::process::id() & 0xffff)
}

/// Opens the log file: the requested path, else `/var/log/vmrescue/<run-id>.log`,
/// falling back to `/tmp` when that is not writable.
pub fn open_log_file(requested: Option<&Path>, run_id: &str) -> Result<(PathBuf, File)> {
    if let Some(path) = requested {
        let file = append(path).with_context(|| format!("opening log file {}", path.display()))?;
        return Ok((path.to_path_buf(), file));
    }
    let name = format!("{run_id}.log");
    let preferred = Path::new(LOG_DIR).join(&name);
    if std::fs::create_dir_all(LOG_DIR).is_ok() {
        if let Ok(file) = append(&preferred) {
            prune_run_logs(Path::new(LOG_DIR), KEEP_RUN_LOGS);
            return Ok((preferred, file));
        }
    }
    let fallback = std::env::temp_dir().join(format!("vmrescue-{name}"));
    let file =
        append(&fallback).with_context(|| format!("opening log file {}", fallback.display()))?;
    Ok((fallback, file))
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_run_logs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for id in [
            "20261201-000000-0001",
            "20261202-000000-0002",
            "20261203-000000-0003",
        ] {
            std::fs::write(dir.path().join(format!("{id}.log")), "x").unwrap();
        }
        std::fs::write(dir.path().join("runcommand-20261201-000000.log"), "x").unwrap();
        prune_run_logs(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "20261202-000000-0002.log",
                "20261203-000000-0003.log",
                "runcommand-20261201-000000.log"
            ]
        );
    }

    #[test]
    fn run_ids_sort_by_time() {
        let id = new_run_id();
        assert_eq!(id.len(), "20261124-192150-1a2b".len(), "{id}");
        assert!(id.starts_with("20"));
    }

    #[test]
    fn requested_log_file_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (got, _) = open_log_file(Some(&path), "id").unwrap();
        assert_eq!(got, path);
        assert!(path.exists());
    }
}
