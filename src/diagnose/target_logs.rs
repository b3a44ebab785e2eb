//! Logs kept on the target disk that tell why it stopped booting: kdump's
//! vmcore-dmesg, kern.log/messages, boot.log and the systemd journal.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::Classifier;
use crate::cmd::Cmd;
use crate::rootfs::RootDir;

/// Text logs worth reading, newest first within each kind.
pub fn text_logs(root: &RootDir) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut crash_dirs: Vec<PathBuf> = root
        .list_dir("/var/crash")?
        .into_iter()
        .map(|e| Path::new("/var/crash").join(e.name))
        .collect();
    crash_dirs.sort();
    for dir in crash_dirs.into_iter().rev() {
        let dmesg = dir.join("vmcore-dmesg.txt");
        if root.is_file(&dmesg) {
            found.push(dmesg);
        }
    }
    for base in ["kern.log", "messages", "syslog", "boot.log"] {
        // `kern.log` is newest, then `kern.log.1`; compressed rotations are skipped.
        for candidate in [format!("/var/log/{base}"), format!("/var/log/{base}.1")] {
            if root.is_file(&candidate) {
                found.push(PathBuf::from(candidate));
            }
        }
    }
    Ok(found)
}

/// Feeds the target's logs to the classifier (oldest first, so the newest
/// boot ends up reported first) and returns the sources read.
pub fn add_target_logs(classifier: &mut Classifier, root: &RootDir) -> Result<Vec<String>> {
    let mut sources = Vec::new();
    let mut logs = text_logs(root)?;
    logs.reverse();
    for path in logs {
        let fd = root
            .open_fd(&path, OFlag::O_RDONLY | OFlag::O_NOFOLLOW, Mode::empty())
            .with_context(|| format!("opening {} in the target", path.display()))?;
        let source = path.display().to_string();
        classifier.add_reader(BufReader::new(std::fs::File::from(fd)), &source)?;
        sources.push(source);
    }
    if let Some(text) = journal_kernel_messages(root)? {
        let source = "/var/log/journal (kernel messages)".to_string();
        classifier.add_reader(text.as_bytes(), &source)?;
        sources.push(source);
    }
    Ok(sources)
}

/// Kernel messages of the last boots from the target's persistent journal,
/// read by the host's journalctl (absent journal or tool: `None`).
fn journal_kernel_messages(root: &RootDir) -> Result<Option<String>> {
    if !root.is_dir("/var/log/journal") || root.read_link("/var/log/journal")?.is_some() {
        return Ok(None);
    }
    let dir = root.display_path("/var/log/journal");
    let cmd = Cmd::new("journalctl")
        .arg("--directory")
        .arg(&dir)
        .args([
            "_TRANSPORT=kernel",
            "--no-pager",
            "-o",
            "short-monotonic",
            "-n",
            "20000",
        ])
        .timeout(std::time::Duration::from_secs(60));
    match cmd.run_unchecked() {
        Ok(output) if output.success() => Ok(Some(output.stdout_string())),
        Ok(output) => {
            tracing::warn!("reading the target's journal: {}", cmd.failure(&output));
            Ok(None)
        }
        Err(err) => {
            tracing::warn!("reading the target's journal: {err:#}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_vmcore_dmesg_newest_first_and_rotated_logs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in [
            "var/crash/127.0.0.1-2024-01-01-10:00:00",
            "var/crash/127.0.0.1-2024-02-01-10:00:00",
            "var/log",
        ] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(
            p.join("var/crash/127.0.0.1-2024-01-01-10:00:00/vmcore-dmesg.txt"),
            "old",
        )
        .unwrap();
        std::fs::write(
            p.join("var/crash/127.0.0.1-2024-02-01-10:00:00/vmcore-dmesg.txt"),
            "new",
        )
        .unwrap();
        std::fs::write(p.join("var/log/kern.log"), "k").unwrap();
        std::fs::write(p.join("var/log/kern.log.1"), "k1").unwrap();
        let logs = text_logs(&RootDir::open(p).unwrap()).unwrap();
        assert_eq!(
            logs[0],
            PathBuf::from("/var/crash/127.0.0.1-2024-02-01-10:00:00/vmcore-dmesg.txt")
        );
        assert_eq!(logs[2], PathBuf::from("/var/log/kern.log"));
        assert_eq!(logs[3], PathBuf::from("/var/log/kern.log.1"));
    }
}
