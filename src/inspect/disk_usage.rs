//! How full the target's filesystems are and which files the system would
//! make again if they were gone (archived journals, package caches, rotated
//! logs), plus the large files that are not regenerable but worth naming
//! (old kernels). Read-only; the `free-space` recipe and the offline check
//! both start from [`scan`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::Serialize;

use crate::rootfs::{EntryKind, RootDir};

/// Files looked at per directory tree, so a huge cache cannot stall a scan.
const MAX_FILES: usize = 20_000;
/// Directory depth below a cache root.
const MAX_DEPTH: usize = 6;

/// What a consumer of space is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerKind {
    /// Archived systemd journal files (`system@….journal`, `*.journal~`).
    ArchivedJournal,
    /// Downloaded packages and repository metadata (apt, dnf, yum, zypper).
    PackageCache,
    /// Rotated and compressed logs (`messages-20240101`, `syslog.2.gz`).
    RotatedLog,
    /// An installed kernel that is not the default one (not regenerable).
    OldKernel,
}

impl ConsumerKind {
    /// Whether the system makes the file again when it is needed, so that
    /// deleting it loses nothing but history.
    pub fn regenerable(self) -> bool {
        self != ConsumerKind::OldKernel
    }

    pub fn describe(self) -> &'static str {
        match self {
            ConsumerKind::ArchivedJournal => "archived journal files",
            ConsumerKind::PackageCache => "package caches",
            ConsumerKind::RotatedLog => "rotated logs",
            ConsumerKind::OldKernel => "old kernels",
        }
    }
}

/// One file that takes space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Consumer {
    pub path: PathBuf,
    pub bytes: u64,
    pub kind: ConsumerKind,
}

/// Free space of the filesystem holding a directory of the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FsSpace {
    pub path: PathBuf,
    pub total_bytes: u64,
    pub free_bytes: u64,
}

impl FsSpace {
    /// Less than 2% or 100 MiB left: services fail to write at boot.
    pub fn nearly_full(&self) -> bool {
        self.free_bytes < 100 << 20 || self.free_bytes * 50 < self.total_bytes
    }
}

/// The space of `/`, `/var` and `/boot` (each once per filesystem) and the
/// consumers found, largest first.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct DiskUsage {
    pub filesystems: Vec<FsSpace>,
    pub consumers: Vec<Consumer>,
}

impl DiskUsage {
    pub fn regenerable(&self) -> impl Iterator<Item = &Consumer> {
        self.consumers.iter().filter(|c| c.kind.regenerable())
    }

    /// Bytes per kind, largest first.
    pub fn by_kind(&self) -> Vec<(ConsumerKind, u64, usize)> {
        let mut totals: Vec<(ConsumerKind, u64, usize)> = Vec::new();
        for consumer in &self.consumers {
            match totals.iter_mut().find(|(k, _, _)| *k == consumer.kind) {
                Some(entry) => {
                    entry.1 += consumer.bytes;
                    entry.2 += 1;
                }
                None => totals.push((consumer.kind, consumer.bytes, 1)),
            }
        }
        totals.sort_by_key(|t| std::cmp::Reverse(t.1));
        totals
    }
}

/// Reads the target's free space and its regenerable files.
pub fn scan(root: &RootDir, default_kernel: Option<&str>) -> Result<DiskUsage> {
    let mut usage = DiskUsage {
        filesystems: filesystems(root)?,
        consumers: Vec::new(),
    };
    journals(root, &mut usage.consumers)?;
    let package_cache: Select<'_> = &|path| {
        let keep = path
            .file_name()
            .is_some_and(|n| n == "lock" || n == "partial");
        (!keep).then_some(ConsumerKind::PackageCache)
    };
    for cache in [
        "/var/cache/apt/archives",
        "/var/cache/dnf",
        "/var/cache/yum",
        "/var/cache/zypp/packages",
    ] {
        walk(root, cache, MAX_DEPTH, package_cache, &mut usage.consumers)?;
    }
    let rotated: Select<'_> = &|path| {
        let name = path.file_name()?.to_string_lossy();
        is_rotated_log(&name).then_some(ConsumerKind::RotatedLog)
    };
    walk(root, "/var/log", 4, rotated, &mut usage.consumers)?;
    old_kernels(root, default_kernel, &mut usage.consumers)?;
    usage
        .consumers
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
    Ok(usage)
}

fn filesystems(root: &RootDir) -> Result<Vec<FsSpace>> {
    let mut seen: Vec<(u64, FsSpace)> = Vec::new();
    for dir in ["/", "/var", "/boot"] {
        let Ok(meta) = root.metadata(dir) else {
            continue;
        };
        if seen.iter().any(|(dev, _)| *dev == meta.st_dev) {
            continue;
        }
        let fd = root
            .open_fd(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
            .with_context(|| format!("opening {dir} in the target"))?;
        let stat = nix::sys::statvfs::fstatvfs(&fd)
            .with_context(|| format!("reading the free space of {dir} in the target"))?;
        let fragment = stat.fragment_size() as u64;
        seen.push((
            meta.st_dev,
            FsSpace {
                path: PathBuf::from(dir),
                total_bytes: stat.blocks() as u64 * fragment,
                free_bytes: stat.blocks_available() as u64 * fragment,
            },
        ));
    }
    Ok(seen.into_iter().map(|(_, fs)| fs).collect())
}

/// Archived journal files; the active `system.journal` and `user-N.journal` stay.
fn journals(root: &RootDir, out: &mut Vec<Consumer>) -> Result<()> {
    for base in ["/var/log/journal", "/run/log/journal"] {
        for machine in root
            .list_dir(base)?
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir)
        {
            let dir = Path::new(base).join(&machine.name);
            for entry in root.list_dir(&dir)? {
                let name = entry.name.to_string_lossy();
                let archived = name.ends_with(".journal~")
                    || (name.ends_with(".journal") && name.contains('@'));
                if entry.kind == EntryKind::File && archived {
                    push(
                        root,
                        dir.join(&entry.name),
                        ConsumerKind::ArchivedJournal,
                        out,
                    );
                }
            }
        }
    }
    Ok(())
}

/// `messages-20240101`, `syslog.1`, `kern.log.2.gz`, `dmesg.0`, `*.old`.
fn is_rotated_log(name: &str) -> bool {
    let stem = ["gz", "xz", "bz2", "zst"]
        .iter()
        .find_map(|ext| name.strip_suffix(&format!(".{ext}")));
    if stem.is_some() {
        return true;
    }
    if name.ends_with(".old") {
        return true;
    }
    let numbered = name
        .rsplit_once('.')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let dated = name
        .rsplit_once('-')
        .is_some_and(|(_, d)| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    numbered || dated
}

fn old_kernels(
    root: &RootDir,
    default_kernel: Option<&str>,
    out: &mut Vec<Consumer>,
) -> Result<()> {
    let Some(default) = default_kernel else {
        return Ok(());
    };
    for entry in root.list_dir("/boot")? {
        let name = entry.name.to_string_lossy();
        let Some(version) = name.strip_prefix("vmlinuz-") else {
            continue;
        };
        if version != default && !version.contains("rescue") && entry.kind == EntryKind::File {
            push(
                root,
                Path::new("/boot").join(&entry.name),
                ConsumerKind::OldKernel,
                out,
            );
        }
    }
    Ok(())
}

fn push(root: &RootDir, path: PathBuf, kind: ConsumerKind, out: &mut Vec<Consumer>) {
    if let Ok(meta) = root.symlink_metadata(&path) {
        out.push(Consumer {
            path,
            bytes: meta.st_blocks as u64 * 512,
            kind,
        });
    }
}

/// Classifies a regular file by its path, or leaves it out.
type Select<'a> = &'a dyn Fn(&Path) -> Option<ConsumerKind>;

/// Regular files under a directory that a [`Select`] classifies, at most
/// [`MAX_FILES`] looked at and `max_depth` deep.
struct Walk<'a> {
    root: &'a RootDir,
    max_depth: usize,
    seen: usize,
    select: Select<'a>,
}

impl Walk<'_> {
    fn run(&mut self, dir: &Path, depth: usize, out: &mut Vec<Consumer>) -> Result<()> {
        if depth > self.max_depth {
            return Ok(());
        }
        for entry in self.root.list_dir(dir)? {
            self.seen += 1;
            if self.seen > MAX_FILES {
                return Ok(());
            }
            let path = dir.join(&entry.name);
            match entry.kind {
                EntryKind::Dir => self.run(&path, depth + 1, out)?,
                EntryKind::File => {
                    let Some(kind) = (self.select)(&path) else {
                        continue;
                    };
                    if let Ok(meta) = self.root.symlink_metadata(&path) {
                        out.push(Consumer {
                            path,
                            bytes: meta.st_blocks as u64 * 512,
                            kind,
                        });
                    }
                }
                EntryKind::Symlink | EntryKind::Other => {}
            }
        }
        Ok(())
    }
}

fn walk(
    root: &RootDir,
    dir: &str,
    max_depth: usize,
    select: Select<'_>,
    out: &mut Vec<Consumer>,
) -> Result<()> {
    Walk {
        root,
        max_depth,
        seen: 0,
        select,
    }
    .run(Path::new(dir), 0, out)
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_log_names() {
        for name in [
            "messages-20240101",
            "syslog.1",
            "kern.log.2.gz",
            "dmesg.0",
            "boot.log.old",
        ] {
            assert!(is_rotated_log(name), "{name}");
        }
        for name in [
            "messages",
            "syslog",
            "kern.log",
            "lastlog",
            "wtmp",
            "cloud-init.log",
        ] {
            assert!(!is_rotated_log(name), "{name}");
        }
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
    }
}
