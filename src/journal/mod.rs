//! Every write into the target goes through here (invariants 2, 3, 4).
//!
//! Paths are resolved inside the target root with `openat2(RESOLVE_IN_ROOT)`
//! (an absolute symlink such as `/etc/default/grub -> /etc/shadow` resolves
//! to the *target's* `/etc/shadow`, and the file actually written is recorded).
//! Before a file changes, an intent record is appended to the run's manifest
//! and fsynced, and the old file is copied (contents, owner, mode, xattrs
//! including `security.selinux`) into `/var/lib/vmrescue/journal/<run-id>/`
//! on the target. The new contents go to a temp file in the same directory,
//! which is fsynced, given the old metadata and renamed over the original, so
//! a crash leaves each file either old or new. [`undo`] restores in reverse
//! order and works after a crash mid-run.

mod disk;
mod fsops;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::failpoint;
use crate::rootfs::RootDir;
pub use disk::{read_region, DiskRegion, TargetDisk};
pub use fsops::FileMeta;

/// The real path of `path` inside the target, symlinks followed without
/// leaving the root (what a write to it would change).
pub fn resolve_in_root(root: &RootDir, path: &Path) -> Result<PathBuf> {
    Ok(fsops::resolve(root, path)?.path)
}

/// Where runs are journaled, inside the target.
pub const JOURNAL_DIR: &str = "/var/lib/vmrescue/journal";
const MANIFEST: &str = "manifest.jsonl";

/// What a change did to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// An existing file got new contents.
    Replace,
    /// A file that did not exist was created.
    Create,
    /// A file was removed (kept in the journal).
    Remove,
    /// A file was moved into the journal (e.g. a faulty `.ko`).
    Quarantine,
    /// A directory was created.
    CreateDir,
    /// A symlink was created.
    Symlink,
    /// A program run in the chroot may rewrite this file; backed up before.
    CommandRewrite,
    /// A regenerable file deleted to free space: no backup, undo cannot
    /// bring it back.
    Discard,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "record", rename_all = "kebab-case")]
enum Record {
    Begin {
        run_id: String,
        recipe: String,
        time: String,
        version: String,
    },
    Intent {
        seq: u32,
        op: Op,
        /// The target path as resolved inside the root (symlinks followed).
        path: PathBuf,
        /// The path the recipe asked for, when a symlink led elsewhere.
        requested: Option<PathBuf>,
        /// Did the path exist before? (`CommandRewrite` of a missing file.)
        existed: bool,
        meta: Option<FileMeta>,
        /// Backed up in case the command touches it; it counts as changed
        /// only once a `Changed` record says so.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        watched: bool,
    },
    /// A watched file the command did change.
    Changed {
        path: PathBuf,
    },
    Done {
        seq: u32,
    },
    /// A byte range of the target disk (boot code) about to be written;
    /// its old bytes are in `backups/<seq>`.
    DiskIntent {
        seq: u32,
        /// The partition table identifier undo must find on the disk.
        disk_id: String,
        /// The device it was at, for reports (loop numbers change).
        device: PathBuf,
        region: DiskRegion,
    },
    Command {
        argv: String,
    },
    Finish {
        outcome: String,
    },
    Undone {
        time: String,
        restored: usize,
    },
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Change {
    /// The file already had these contents: nothing written.
    Unchanged,
    Written {
        path: PathBuf,
        op: Op,
    },
}

/// An open journal for one run of one recipe.
#[derive(Debug)]
pub struct Journal {
    root: RootDir,
    run_id: String,
    dir: PathBuf,
    manifest: File,
    next_seq: u32,
    changed: Vec<PathBuf>,
}

fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Journal {
    /// Starts the journal of a run inside the target root (mounted read-write).
    pub fn begin(target_root: &Path, run_id: &str, recipe: &str) -> Result<Journal> {
        let root = RootDir::open(target_root)?;
        let dir = Path::new(JOURNAL_DIR).join(run_id);
        fsops::create_dirs(&root, &dir.join("backups"))
            .with_context(|| format!("creating the journal {} in the target", dir.display()))?;
        let manifest_fd = root
            .open_fd(
                dir.join(MANIFEST),
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            )
            .with_context(|| format!("opening {}/{MANIFEST} in the target", dir.display()))?;
        let mut journal = Journal {
            root,
            run_id: run_id.to_string(),
            dir,
            manifest: File::from(manifest_fd),
            next_seq: 0,
            changed: Vec::new(),
        };
        journal.append(&Record::Begin {
            run_id: run_id.to_string(),
            recipe: recipe.to_string(),
            time: now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        })?;
        Ok(journal)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Target paths changed so far, in order, each once.
    pub fn changed(&self) -> Vec<PathBuf> {
        let mut seen = Vec::new();
        for path in &self.changed {
            if !seen.contains(path) {
                seen.push(path.clone());
            }
        }
        seen
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record).context("serialising a journal record")?;
        line.push(b'\n');
        self.manifest
            .write_all(&line)
            .and_then(|()| self.manifest.sync_all())
            .with_context(|| format!("writing the journal manifest in {}", self.dir.display()))
    }

    fn backup_name(&self, seq: u32) -> PathBuf {
        self.dir.join("backups").join(seq.to_string())
    }

    /// Records the intent to change `path`, backing up its current version.
    fn intend(&mut self, op: Op, requested: &Path) -> Result<(u32, fsops::Resolved)> {
        self.intend_as(op, requested, false)
    }

    fn intend_as(
        &mut self,
        op: Op,
        requested: &Path,
        watched: bool,
    ) -> Result<(u32, fsops::Resolved)> {
        let resolved = fsops::resolve(&self.root, requested)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let meta = if resolved.exists {
            Some(fsops::read_meta(&self.root, &resolved.path)?)
        } else {
            None
        };
        self.append(&Record::Intent {
            seq,
            op,
            path: resolved.path.clone(),
            requested: (resolved.path != requested).then(|| requested.to_path_buf()),
            existed: resolved.exists,
            meta,
            watched,
        })?;
        failpoint::hit("journal-after-intent");
        if resolved.exists && op != Op::CreateDir && op != Op::Discard {
            fsops::copy_file(&self.root, &resolved.path, &self.backup_name(seq)).with_context(
                || format!("backing up {} into the journal", resolved.path.display()),
            )?;
            failpoint::hit("journal-after-backup");
        }
        Ok((seq, resolved))
    }

    /// Replaces (or creates) a file atomically; unchanged contents write nothing.
    pub fn write_file(&mut self, path: &Path, contents: &[u8], mode_if_new: u32) -> Result<Change> {
        let resolved = fsops::resolve(&self.root, path)?;
        if resolved.exists && fsops::read_all(&self.root, &resolved.path)? == contents {
            return Ok(Change::Unchanged);
        }
        let op = if resolved.exists {
            Op::Replace
        } else {
            Op::Create
        };
        if !resolved.exists {
            if let Some(parent) = resolved.path.parent() {
                self.create_dirs(parent)?;
            }
        }
        let (seq, resolved) = self.intend(op, path)?;
        let meta = if resolved.exists {
            Some(fsops::read_meta(&self.root, &resolved.path)?)
        } else {
            None
        };
        fsops::atomic_write(
            "write",
            &self.root,
            &resolved.path,
            contents,
            meta.as_ref(),
            mode_if_new,
        )
        .with_context(|| {
            format!(
                "writing {}",
                self.root.display_path(&resolved.path).display()
            )
        })?;
        failpoint::hit("journal-before-done");
        self.append(&Record::Done { seq })?;
        self.changed.push(resolved.path.clone());
        Ok(Change::Written {
            path: resolved.path,
            op,
        })
    }

    /// Creates missing directories (each recorded so undo removes them).
    pub fn create_dirs(&mut self, dir: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut current = Some(dir);
        while let Some(path) = current {
            if path.as_os_str().is_empty() || path == Path::new("/") || self.root.exists(path) {
                break;
            }
            missing.push(path.to_path_buf());
            current = path.parent();
        }
        for path in missing.into_iter().rev() {
            let (seq, resolved) = self.intend(Op::CreateDir, &path)?;
            fsops::mkdir(&self.root, &resolved.path)?;
            self.append(&Record::Done { seq })?;
        }
        Ok(())
    }

    /// Creates a symlink (e.g. a systemd wants link); an identical one is left alone.
    pub fn create_symlink(&mut self, path: &Path, link_target: &Path) -> Result<Change> {
        if self.root.read_link(path)?.as_deref() == Some(link_target) {
            return Ok(Change::Unchanged);
        }
        if self.root.symlink_metadata(path).is_ok() {
            anyhow::bail!(
                "{} exists and is not the symlink to {}",
                path.display(),
                link_target.display()
            );
        }
        if let Some(parent) = path.parent() {
            self.create_dirs(parent)?;
        }
        let (seq, resolved) = self.intend(Op::Symlink, path)?;
        fsops::symlink(&self.root, link_target, &resolved.path)?;
        self.append(&Record::Done { seq })?;
        self.changed.push(resolved.path.clone());
        Ok(Change::Written {
            path: resolved.path,
            op: Op::Symlink,
        })
    }

    /// Removes a file, keeping it in the journal.
    pub fn remove_file(&mut self, path: &Path) -> Result<Change> {
        self.take_away(path, Op::Remove)
    }

    /// Deletes a regenerable file without a backup (freeing its space is
    /// the point); the journal records it, undo leaves it gone.
    pub fn discard(&mut self, path: &Path) -> Result<Change> {
        self.take_away(path, Op::Discard)
    }

    /// Moves a file (a faulty `.ko`) into the journal, restorable by undo.
    pub fn quarantine(&mut self, path: &Path) -> Result<Change> {
        self.take_away(path, Op::Quarantine)
    }

    fn take_away(&mut self, path: &Path, op: Op) -> Result<Change> {
        if self.root.symlink_metadata(path).is_err() {
            return Ok(Change::Unchanged);
        }
        let (seq, resolved) = self.intend(op, path)?;
        fsops::unlink(&self.root, &resolved.path)?;
        self.append(&Record::Done { seq })?;
        self.changed.push(resolved.path.clone());
        Ok(Change::Written {
            path: resolved.path,
            op,
        })
    }

    /// Backs up files a chroot command is about to rewrite (an initramfs,
    /// grub.cfg), so undo restores them (or removes them if they were new).
    pub fn before_command(&mut self, argv: &str, rewrites: &[PathBuf]) -> Result<()> {
        self.before_command_watching(argv, rewrites, &[])
    }

    /// [`Journal::before_command`], also backing up `watched` files the
    /// command may or may not touch (grub2-mkconfig rewrites grubenv on
    /// RHEL 8, not elsewhere). They count as changed only once
    /// [`Journal::note_changed`] says so; undo restores them either way.
    pub fn before_command_watching(
        &mut self,
        argv: &str,
        rewrites: &[PathBuf],
        watched: &[PathBuf],
    ) -> Result<()> {
        self.append(&Record::Command {
            argv: argv.to_string(),
        })?;
        for path in rewrites {
            let (seq, resolved) = self.intend(Op::CommandRewrite, path)?;
            self.append(&Record::Done { seq })?;
            self.changed.push(resolved.path);
        }
        for path in watched {
            let (seq, _) = self.intend_as(Op::CommandRewrite, path, true)?;
            self.append(&Record::Done { seq })?;
        }
        Ok(())
    }

    /// Backs up byte ranges of the target disk a command is about to write
    /// (the boot code grub-install puts outside any filesystem); returns
    /// their bytes as backed up.
    pub fn before_disk_write(
        &mut self,
        disk: &TargetDisk,
        regions: &[DiskRegion],
    ) -> Result<Vec<Vec<u8>>> {
        let mut saved = Vec::new();
        for region in regions {
            let bytes = disk::read_region(&disk.device, region)?;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.append(&Record::DiskIntent {
                seq,
                disk_id: disk.id.clone(),
                device: disk.device.clone(),
                region: region.clone(),
            })?;
            fsops::atomic_write(
                "backup",
                &self.root,
                &self.backup_name(seq),
                &bytes,
                None,
                0o600,
            )
            .with_context(|| format!("backing up {} into the journal", region.describe()))?;
            self.append(&Record::Done { seq })?;
            saved.push(bytes);
        }
        Ok(saved)
    }

    /// Records a disk region the command changed, for the report.
    pub fn note_disk_changed(&mut self, disk: &TargetDisk, region: &DiskRegion) {
        self.changed.push(disk.label(region));
    }

    /// Records a file or directory a command created (undo removes it).
    /// Directories must come before what they hold.
    pub fn note_created(&mut self, path: &Path, dir: bool) -> Result<()> {
        let resolved = fsops::resolve(&self.root, path)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let op = if dir { Op::CreateDir } else { Op::Create };
        self.append(&Record::Intent {
            seq,
            op,
            path: resolved.path.clone(),
            requested: None,
            existed: false,
            meta: None,
            watched: false,
        })?;
        self.append(&Record::Done { seq })?;
        if !dir {
            self.changed.push(resolved.path);
        }
        Ok(())
    }

    /// Records that a watched file was changed by the command.
    pub fn note_changed(&mut self, path: &Path) -> Result<()> {
        let resolved = fsops::resolve(&self.root, path)?;
        self.append(&Record::Changed {
            path: resolved.path.clone(),
        })?;
        self.changed.push(resolved.path);
        Ok(())
    }

    /// Closes the run with an outcome line (`applied`, `verify-failed`…).
    pub fn finish(mut self, outcome: &str) -> Result<()> {
        self.append(&Record::Finish {
            outcome: outcome.to_string(),
        })
    }
}

/// One run in the target's journal.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub recipe: String,
    pub time: String,
    pub files: Vec<PathBuf>,
    pub outcome: Option<String>,
    pub undone: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UndoReport {
    pub run_id: String,
    pub restored: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub already_undone: bool,
}

fn read_records(root: &RootDir, run_id: &str) -> Result<Vec<Record>> {
    let path = Path::new(JOURNAL_DIR).join(run_id).join(MANIFEST);
    let fd = root
        .open_fd(&path, OFlag::O_RDONLY | OFlag::O_NOFOLLOW, Mode::empty())
        .with_context(|| format!("opening journal {run_id} in the target"))?;
    let mut records = Vec::new();
    for (number, line) in BufReader::new(File::from(fd)).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        // A crash can leave a torn last line: everything before it is whole.
        match serde_json::from_str(&line) {
            Ok(record) => records.push(record),
            Err(err) => {
                tracing::warn!("{} line {}: {err}; ignoring it", path.display(), number + 1)
            }
        }
    }
    Ok(records)
}

fn run_ids(root: &RootDir) -> Result<Vec<String>> {
    let mut ids: Vec<String> = root
        .list_dir(JOURNAL_DIR)?
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The runs journaled in the target, oldest first.
pub fn history(target_root: &Path) -> Result<Vec<RunSummary>> {
    let root = RootDir::open(target_root)?;
    let mut runs = Vec::new();
    for run_id in run_ids(&root)? {
        let records = read_records(&root, &run_id)?;
        let mut summary = RunSummary {
            run_id: run_id.clone(),
            recipe: String::new(),
            time: String::new(),
            files: Vec::new(),
            outcome: None,
            undone: false,
        };
        for record in records {
            match record {
                Record::Begin { recipe, time, .. } => {
                    summary.recipe = recipe;
                    summary.time = time;
                }
                Record::Intent {
                    path, op, watched, ..
                } if op != Op::CreateDir && !watched => summary.files.push(path),
                Record::Changed { path } => summary.files.push(path),
                Record::DiskIntent { device, region, .. } => summary.files.push(
                    TargetDisk {
                        device,
                        id: String::new(),
                    }
                    .label(&region),
                ),
                Record::Finish { outcome } => summary.outcome = Some(outcome),
                Record::Undone { .. } => summary.undone = true,
                _ => {}
            }
        }
        runs.push(summary);
    }
    Ok(runs)
}

/// Restores what a run changed (the newest run not yet undone when `run_id`
/// is `None`), in reverse order. Undoing an undone run changes nothing.
///
/// A run that wrote boot code outside the filesystems needs `disk`, the
/// target disk's device now: its partition table identifier must be the
/// one journaled, so the bytes go back onto that disk and no other.
pub fn undo(target_root: &Path, run_id: Option<&str>, disk: Option<&Path>) -> Result<UndoReport> {
    let root = RootDir::open(target_root)?;
    let run_id = match run_id {
        Some(id) => id.to_string(),
        None => {
            let runs = history(target_root)?;
            runs.iter()
                .rev()
                .find(|r| !r.undone)
                .map(|r| r.run_id.clone())
                .ok_or_else(|| {
                    anyhow::anyhow!("no journaled run to undo in {}", target_root.display())
                })?
        }
    };
    let records = read_records(&root, &run_id)?;
    let mut report = UndoReport {
        run_id: run_id.clone(),
        restored: Vec::new(),
        removed: Vec::new(),
        already_undone: false,
    };
    if records.iter().any(|r| matches!(r, Record::Undone { .. })) {
        report.already_undone = true;
        return Ok(report);
    }
    let dir = Path::new(JOURNAL_DIR).join(&run_id);
    // The disk is checked before anything is put back: a wrong disk must
    // leave the run whole, not half undone.
    let target_disk = match records.iter().find_map(|r| match r {
        Record::DiskIntent { disk_id, .. } => Some(disk_id),
        _ => None,
    }) {
        Some(disk_id) => Some(disk_for_undo(disk, disk_id)?),
        None => None,
    };
    for record in records.iter().rev() {
        match record {
            Record::Intent {
                seq,
                op,
                path,
                existed,
                meta,
                ..
            } => {
                let backup = dir.join("backups").join(seq.to_string());
                undo_file(
                    &root,
                    &backup,
                    *op,
                    path,
                    *existed,
                    meta.as_ref(),
                    &mut report,
                )?;
            }
            Record::DiskIntent { seq, region, .. } => {
                let backup = dir.join("backups").join(seq.to_string());
                // Found above whenever the run has a DiskIntent record.
                if let Some(target) = &target_disk {
                    undo_disk_region(&root, &backup, target, region, &mut report)?;
                }
            }
            _ => {}
        }
    }
    mark_undone(&root, &dir, &run_id, report.restored.len())?;
    Ok(report)
}

/// Writes one journaled byte range back onto the (checked) target disk.
fn undo_disk_region(
    root: &RootDir,
    backup: &Path,
    target: &TargetDisk,
    region: &DiskRegion,
    report: &mut UndoReport,
) -> Result<()> {
    // No backup means the crash came before the disk was touched.
    if !root.is_file(backup) {
        return Ok(());
    }
    let bytes = fsops::read_all(root, backup)?;
    if disk::read_region(&target.device, region)? != bytes {
        disk::write_region(&target.device, region, &bytes)?;
        report.restored.push(target.label(region));
    }
    Ok(())
}

/// Appends the `Undone` record to the run's manifest, flushed.
fn mark_undone(root: &RootDir, dir: &Path, run_id: &str, restored: usize) -> Result<()> {
    let manifest_fd: OwnedFd = root
        .open_fd(
            dir.join(MANIFEST),
            OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .with_context(|| format!("opening the manifest of {run_id}"))?;
    let mut manifest = File::from(manifest_fd);
    let mut line = serde_json::to_vec(&Record::Undone {
        time: now(),
        restored,
    })?;
    line.push(b'\n');
    manifest
        .write_all(&line)
        .and_then(|()| manifest.sync_all())
        .context("marking the run undone")
}

/// Puts one journaled file change back.
fn undo_file(
    root: &RootDir,
    backup: &Path,
    op: Op,
    path: &Path,
    existed: bool,
    meta: Option<&FileMeta>,
    report: &mut UndoReport,
) -> Result<()> {
    match op {
        Op::CreateDir => fsops::rmdir_if_empty(root, path)?,
        // Deleted for the space it took; nothing kept to restore.
        Op::Discard => {}
        Op::Create | Op::Symlink => {
            if fsops::unlink_if_exists(root, path)? {
                report.removed.push(path.to_path_buf());
            }
        }
        Op::CommandRewrite if !existed => {
            if fsops::unlink_if_exists(root, path)? {
                report.removed.push(path.to_path_buf());
            }
        }
        Op::Replace | Op::Remove | Op::Quarantine | Op::CommandRewrite => {
            // No backup means the crash came before the original was touched.
            if !root.is_file(backup) {
                return Ok(());
            }
            let contents = fsops::read_all(root, backup)?;
            // A watched file the command left alone needs no restoring.
            if op == Op::CommandRewrite
                && fsops::read_all(root, path).ok().as_deref() == Some(&contents[..])
            {
                return Ok(());
            }
            fsops::atomic_write("undo", root, path, &contents, meta, 0o644)
                .with_context(|| format!("restoring {}", root.display_path(path).display()))?;
            report.restored.push(path.to_path_buf());
        }
    }
    Ok(())
}

/// The disk a run's boot code goes back to: the one named now, if its
/// partition table identifier is the journaled one.
fn disk_for_undo(disk: Option<&Path>, journaled_id: &str) -> Result<TargetDisk> {
    let device = disk.context(
        "this run wrote the disk's boot code: undo it with the disk attached (--disk or --image), not a --root directory",
    )?;
    let now = TargetDisk::probe(device)?;
    if now.id != journaled_id {
        anyhow::bail!(
            "{} has partition table {} but the run wrote the boot code of {journaled_id}: not writing another disk's boot code",
            device.display(),
            now.id
        );
    }
    Ok(now)
}

#[cfg(test)]
mod tests;
