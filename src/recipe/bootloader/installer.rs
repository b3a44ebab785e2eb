//! Running the target's own boot loader installer (grub-install, bootctl)
//! in the sandbox, journaled: every file below the planned trees is backed
//! up first, the disk's boot-code ranges too, and what the installer
//! created is recorded after it ran, so undo leaves the trees and the
//! ranges byte for byte as they were. Files it creates can only be named
//! once it has run: a crash in between leaves them behind after undo, while
//! everything it replaced is already in the journal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::attach::Target;
use crate::cmd::Cmd;
use crate::journal::{Journal, TargetDisk};
use crate::recipe::plan::DiskWrite;
use crate::rootfs::{EntryKind, RootDir};

/// grub-install copies a few hundred modules; bootctl one file.
const INSTALLER_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The files (with their bytes) and directories below some trees.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub dirs: BTreeSet<PathBuf>,
}

impl Snapshot {
    /// Reads every file and directory below `trees` (missing trees are empty).
    pub fn take(root: &RootDir, trees: &[PathBuf]) -> Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for tree in trees {
            if root.is_dir(tree) {
                snapshot.dirs.insert(tree.clone());
                snapshot.walk(root, tree)?;
            }
        }
        Ok(snapshot)
    }

    fn walk(&mut self, root: &RootDir, dir: &Path) -> Result<()> {
        for entry in root.list_dir(dir)? {
            let path = dir.join(&entry.name);
            match entry.kind {
                EntryKind::Dir => {
                    self.dirs.insert(path.clone());
                    self.walk(root, &path)?;
                }
                EntryKind::File => {
                    let bytes = root.read_boot_image(&path)?;
                    self.files.insert(path, bytes);
                }
                // Installers write regular files; a link or node in the
                // tree is left as it is (and not followed).
                EntryKind::Symlink | EntryKind::Other => {}
            }
        }
        Ok(())
    }
}

/// Runs the installer with its trees and disk ranges journaled.
pub fn run(
    argv: &[String],
    env: &[(String, String)],
    trees: &[PathBuf],
    disk: Option<&DiskWrite>,
    target: &Target,
    root: &RootDir,
    journal: &mut Journal,
) -> Result<()> {
    let display = argv.join(" ");
    let before = Snapshot::take(root, trees)?;
    let watched: Vec<PathBuf> = before.files.keys().cloned().collect();
    journal.before_command_watching(&display, &[], &watched)?;
    let disk = match disk {
        Some(write) => Some(journal_disk(write, target, journal)?),
        None => None,
    };
    let (program, args) = argv.split_first().context("empty command")?;
    let mut cmd = Cmd::new(program)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C");
    for (key, value) in env {
        cmd = cmd.env(key, value);
    }
    cmd.timeout(INSTALLER_TIMEOUT)
        .in_chroot(target.chroot_spec()?)
        .run()
        .with_context(|| format!("running {display} in the target"))?;
    record_changes(root, trees, &before, journal)?;
    if let Some((disk, before)) = disk {
        for (region, old) in &before {
            if crate::journal::read_region(&disk.device, region)? != *old {
                journal.note_disk_changed(&disk, region);
            }
        }
    }
    Ok(())
}

type DiskBefore = (TargetDisk, Vec<(crate::journal::DiskRegion, Vec<u8>)>);

/// Journals the disk's ranges; the device must be the target's own disk.
fn journal_disk(write: &DiskWrite, target: &Target, journal: &mut Journal) -> Result<DiskBefore> {
    let device = Path::new(&write.device);
    if target.disk() != Some(device) {
        anyhow::bail!(
            "the plan writes the boot code of {}, which is not the target disk ({}): plan again",
            write.device,
            target
                .disk()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "none".into())
        );
    }
    let disk = TargetDisk::probe(device)?;
    let saved = journal.before_disk_write(&disk, &write.regions)?;
    Ok((disk, write.regions.iter().cloned().zip(saved).collect()))
}

/// After the installer: files it changed or removed count as changed
/// (their backups restore them), files and directories it created are
/// recorded, parents first, so undo removes them.
fn record_changes(
    root: &RootDir,
    trees: &[PathBuf],
    before: &Snapshot,
    journal: &mut Journal,
) -> Result<()> {
    let after = Snapshot::take(root, trees)?;
    for (path, old) in &before.files {
        if after.files.get(path) != Some(old) {
            journal.note_changed(path)?;
        }
    }
    for dir in after.dirs.difference(&before.dirs) {
        journal.note_created(dir, true)?;
    }
    for path in after.files.keys() {
        if !before.files.contains_key(path) {
            journal.note_created(path, false)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_holds_every_file_and_directory_below_its_trees() {
        let dir = tempfile::tempdir().unwrap();
        let grub = dir.path().join("boot/grub/i386-pc");
        std::fs::create_dir_all(&grub).unwrap();
        std::fs::write(grub.join("normal.mod"), b"mod").unwrap();
        std::fs::write(dir.path().join("boot/grub/grub.cfg"), b"cfg").unwrap();
        std::fs::write(dir.path().join("boot/vmlinuz"), b"kernel").unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let snapshot =
            Snapshot::take(&root, &[PathBuf::from("/boot/grub"), PathBuf::from("/efi")]).unwrap();
        let files: Vec<_> = snapshot
            .files
            .keys()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            ["/boot/grub/grub.cfg", "/boot/grub/i386-pc/normal.mod"]
        );
        let dirs: Vec<_> = snapshot
            .dirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(dirs, ["/boot/grub", "/boot/grub/i386-pc"]);
        assert_eq!(snapshot.files[Path::new("/boot/grub/grub.cfg")], b"cfg");
    }
}
