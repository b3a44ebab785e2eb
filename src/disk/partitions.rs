//! Making partition device nodes appear without udev (rescue shells, CI).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cmd::Cmd;

/// Partition device paths the kernel knows for `disk` (from sysfs).
pub fn kernel_partitions(disk: &Path) -> Result<Vec<PathBuf>> {
    let name = disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sys = PathBuf::from(format!("/sys/block/{name}"));
    let mut parts = Vec::new();
    let entries = std::fs::read_dir(&sys).with_context(|| format!("listing {}", sys.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", sys.display()))?;
        if entry.path().join("partition").exists() {
            parts.push(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    parts.sort();
    Ok(parts)
}

/// Asks the kernel to re-read the partition table (`partx -u`, adding what is
/// missing with `partx -a`), then waits until every partition's device node exists.
pub fn rescan(disk: &Path) -> Result<()> {
    let _ = Cmd::new("partx")
        .args(["-u", &disk.display().to_string()])
        .run_unchecked()?;
    let _ = Cmd::new("partx")
        .args(["-a", &disk.display().to_string()])
        .run_unchecked()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let parts = kernel_partitions(disk)?;
        if parts.iter().all(|p| p.exists()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let missing: Vec<String> = parts
                .iter()
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string())
                .collect();
            anyhow::bail!(
                "partition device nodes did not appear: {}",
                missing.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
