use super::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A target root on a filesystem with user xattrs (ext4 /var/tmp here).
fn target() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::create_dir_all(dir.path().join("etc/default")).unwrap();
    std::fs::write(dir.path().join("etc/default/grub"), "GRUB_TIMEOUT=5\n").unwrap();
    dir
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let cname = CString::new(name).unwrap();
    unsafe {
        libc::setxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let cname = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let len = unsafe {
        libc::getxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

#[test]
fn write_then_undo_restores_bytes_owner_mode_and_xattrs() {
    let dir = target();
    let grub = dir.path().join("etc/default/grub");
    std::fs::set_permissions(&grub, std::fs::Permissions::from_mode(0o640)).unwrap();
    let has_xattrs = set_xattr(&grub, "user.vmrescue-test", b"label_t");
    if is_root() {
        std::os::unix::fs::chown(&grub, Some(12), Some(34)).unwrap();
    }
    let before = std::fs::metadata(&grub).unwrap();

    let mut journal = Journal::begin(dir.path(), "run-1", "cgroup-nokmem").unwrap();
    let change = journal
        .write_file(Path::new("/etc/default/grub"), b"GRUB_TIMEOUT=1\n", 0o644)
        .unwrap();
    assert_eq!(
        change,
        Change::Written {
            path: "/etc/default/grub".into(),
            op: Op::Replace
        }
    );
    journal.finish("applied").unwrap();
    let after = std::fs::metadata(&grub).unwrap();
    assert_eq!(std::fs::read_to_string(&grub).unwrap(), "GRUB_TIMEOUT=1\n");
    assert_eq!(
        (after.mode(), after.uid(), after.gid()),
        (before.mode(), before.uid(), before.gid())
    );
    if has_xattrs {
        assert_eq!(
            get_xattr(&grub, "user.vmrescue-test").as_deref(),
            Some(&b"label_t"[..]),
            "xattrs kept on write"
        );
    }

    let report = undo(dir.path(), None, None).unwrap();
    assert_eq!(report.restored, vec![PathBuf::from("/etc/default/grub")]);
    assert_eq!(std::fs::read_to_string(&grub).unwrap(), "GRUB_TIMEOUT=5\n");
    let restored = std::fs::metadata(&grub).unwrap();
    assert_eq!(
        (restored.mode(), restored.uid(), restored.gid()),
        (before.mode(), before.uid(), before.gid())
    );
    if has_xattrs {
        assert_eq!(
            get_xattr(&grub, "user.vmrescue-test").as_deref(),
            Some(&b"label_t"[..])
        );
    }
    assert!(
        undo(dir.path(), Some("run-1"), None)
            .unwrap()
            .already_undone,
        "undo twice is harmless"
    );
}

#[test]
fn identical_contents_write_nothing() {
    let dir = target();
    let mut journal = Journal::begin(dir.path(), "run-1", "x").unwrap();
    let change = journal
        .write_file(Path::new("/etc/default/grub"), b"GRUB_TIMEOUT=5\n", 0o644)
        .unwrap();
    assert_eq!(change, Change::Unchanged);
    assert!(journal.changed().is_empty());
}

#[test]
fn absolute_symlink_to_a_host_path_is_written_inside_the_target() {
    let dir = target();
    let decoy_dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let decoy = decoy_dir.path().join("shadow");
    std::fs::write(&decoy, "host secret\n").unwrap();
    let grub = dir.path().join("etc/default/grub");
    std::fs::remove_file(&grub).unwrap();
    symlink(&decoy, &grub).unwrap();

    let mut journal = Journal::begin(dir.path(), "run-1", "x").unwrap();
    let change = journal
        .write_file(Path::new("/etc/default/grub"), b"GRUB_X=1\n", 0o644)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&decoy).unwrap(),
        "host secret\n",
        "the host file was touched"
    );
    let inside = dir.path().join(decoy.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "GRUB_X=1\n");
    assert_eq!(
        change,
        Change::Written {
            path: Path::new("/").join(decoy.strip_prefix("/").unwrap()),
            op: Op::Create
        }
    );
    assert!(
        std::fs::symlink_metadata(&grub)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link is kept"
    );

    undo(dir.path(), None, None).unwrap();
    assert!(!inside.exists());
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "host secret\n");
}

#[test]
fn dotdot_chains_stay_in_the_target() {
    let dir = target();
    symlink(
        "../../../../../../../etc/hostname",
        dir.path().join("etc/default/hostlink"),
    )
    .unwrap();
    let host_before = std::fs::read("/etc/hostname").ok();
    let mut journal = Journal::begin(dir.path(), "run-1", "x").unwrap();
    journal
        .write_file(Path::new("/etc/default/hostlink"), b"target\n", 0o644)
        .unwrap();
    journal
        .write_file(Path::new("/../../../etc/motd"), b"motd\n", 0o644)
        .unwrap();
    assert_eq!(std::fs::read("/etc/hostname").ok(), host_before);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/hostname")).unwrap(),
        "target\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/motd")).unwrap(),
        "motd\n"
    );
}

#[test]
fn created_files_and_directories_are_removed_by_undo() {
    let dir = target();
    let mut journal = Journal::begin(dir.path(), "run-1", "x").unwrap();
    journal
        .write_file(
            Path::new("/etc/modprobe.d/vmrescue.conf"),
            b"blacklist eudp\n",
            0o644,
        )
        .unwrap();
    journal
        .create_symlink(
            Path::new("/etc/systemd/system/x.wants/kdump.service"),
            Path::new("/usr/lib/systemd/system/kdump.service"),
        )
        .unwrap();
    journal.finish("applied").unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join("etc/modprobe.d/vmrescue.conf"))
            .unwrap()
            .mode()
            & 0o777,
        0o644
    );
    let report = undo(dir.path(), None, None).unwrap();
    assert_eq!(report.removed.len(), 2);
    assert!(!dir.path().join("etc/modprobe.d").exists());
    assert!(!dir.path().join("etc/systemd").exists());
}

#[test]
fn quarantine_and_command_rewrites_are_restored() {
    let dir = target();
    let ko_dir = dir.path().join("lib/modules/6.1.0-9-amd64/extra");
    std::fs::create_dir_all(&ko_dir).unwrap();
    std::fs::write(ko_dir.join("eudp.ko"), b"\x7fELF module").unwrap();
    std::fs::create_dir_all(dir.path().join("boot")).unwrap();
    std::fs::write(
        dir.path().join("boot/initrd.img-6.1.0-9-amd64"),
        b"old initrd",
    )
    .unwrap();

    let mut journal = Journal::begin(dir.path(), "run-1", "remove-faulty-modules").unwrap();
    journal
        .quarantine(Path::new("/lib/modules/6.1.0-9-amd64/extra/eudp.ko"))
        .unwrap();
    assert!(!ko_dir.join("eudp.ko").exists());
    let rewrites = [
        PathBuf::from("/boot/initrd.img-6.1.0-9-amd64"),
        PathBuf::from("/boot/initrd.img-6.1.0-10-amd64"),
    ];
    journal
        .before_command("update-initramfs -u -k 6.1.0-9-amd64", &rewrites)
        .unwrap();
    // What the command would do:
    std::fs::write(
        dir.path().join("boot/initrd.img-6.1.0-9-amd64"),
        b"new initrd",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("boot/initrd.img-6.1.0-10-amd64"),
        b"created",
    )
    .unwrap();
    journal.finish("applied").unwrap();

    undo(dir.path(), None, None).unwrap();
    assert_eq!(
        std::fs::read(ko_dir.join("eudp.ko")).unwrap(),
        b"\x7fELF module"
    );
    assert_eq!(
        std::fs::read(dir.path().join("boot/initrd.img-6.1.0-9-amd64")).unwrap(),
        b"old initrd"
    );
    assert!(!dir.path().join("boot/initrd.img-6.1.0-10-amd64").exists());
}

#[test]
fn history_lists_runs_with_their_files_and_state() {
    let dir = target();
    let mut first = Journal::begin(dir.path(), "20261124-100000-0001", "cgroup-nokmem").unwrap();
    first
        .write_file(Path::new("/etc/default/grub"), b"A\n", 0o644)
        .unwrap();
    first.finish("applied").unwrap();
    let mut second = Journal::begin(dir.path(), "20261124-110000-0002", "older-kernel").unwrap();
    second
        .write_file(Path::new("/etc/default/grub"), b"B\n", 0o644)
        .unwrap();
    second.finish("applied").unwrap();
    undo(dir.path(), None, None).unwrap();
    let runs = history(dir.path()).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].recipe, "cgroup-nokmem");
    assert!(!runs[0].undone && runs[1].undone);
    assert_eq!(runs[1].files, vec![PathBuf::from("/etc/default/grub")]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/default/grub")).unwrap(),
        "A\n"
    );
}

/// Run by `kill_at_every_step_leaves_old_or_new_and_undo_restores` in a child process.
#[test]
fn failpoint_child() {
    let Some(root) = std::env::var_os("VMRESCUE_JOURNAL_CHILD_ROOT") else {
        return;
    };
    let mut journal = Journal::begin(Path::new(&root), "run-crash", "x").unwrap();
    journal
        .write_file(
            Path::new("/etc/default/grub"),
            b"GRUB_TIMEOUT=1\nNEW=1\n",
            0o644,
        )
        .unwrap();
    journal.finish("applied").unwrap();
}

#[test]
fn kill_at_every_step_leaves_old_or_new_and_undo_restores() {
    let old = "GRUB_TIMEOUT=5\n";
    let new = "GRUB_TIMEOUT=1\nNEW=1\n";
    for failpoint in [
        "journal-after-intent",
        "journal-backup-after-temp",
        "journal-backup-after-rename",
        "journal-after-backup",
        "journal-write-after-temp",
        "journal-write-after-rename",
        "journal-before-done",
    ] {
        let dir = target();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "journal::tests::failpoint_child",
                "--test-threads=1",
            ])
            .env("VMRESCUE_JOURNAL_CHILD_ROOT", dir.path())
            .env("VMRESCUE_FAILPOINT", failpoint)
            .output()
            .unwrap()
            .status;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{failpoint} not reached"
        );
        let grub = dir.path().join("etc/default/grub");
        let now = std::fs::read_to_string(&grub).unwrap();
        assert!(now == old || now == new, "{failpoint}: torn file {now:?}");
        undo(dir.path(), None, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&grub).unwrap(),
            old,
            "{failpoint}: undo did not restore"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("etc/default"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            leftovers
                .iter()
                .all(|n| !n.to_string_lossy().contains("vmrescue-tmp"))
                || failpoint.contains("temp"),
            "{failpoint}: {leftovers:?}"
        );
    }
}

#[test]
fn full_and_read_only_targets_fail_cleanly_with_the_original_intact() {
    if !is_root() {
        println!("SKIP full_and_read_only_targets: needs root to mount a small tmpfs");
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mnt = dir.path();
    nix::mount::mount(
        Some("tmpfs"),
        mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )
    .unwrap();
    let result = std::panic::catch_unwind(|| {
        std::fs::create_dir_all(mnt.join("etc/default")).unwrap();
        std::fs::write(mnt.join("etc/default/grub"), "GRUB_TIMEOUT=5\n").unwrap();
        let mut journal = Journal::begin(mnt, "run-1", "x").unwrap();
        let filler = vec![b'x'; 16 * 1024];
        let mut n = 0;
        while std::fs::write(mnt.join(format!("fill{n}")), &filler).is_ok() {
            n += 1;
        }
        let err = journal
            .write_file(
                Path::new("/etc/default/grub"),
                &vec![b'y'; 32 * 1024],
                0o644,
            )
            .unwrap_err();
        assert!(format!("{err:#}").contains("full"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(mnt.join("etc/default/grub")).unwrap(),
            "GRUB_TIMEOUT=5\n"
        );
        let tmp_left = std::fs::read_dir(mnt.join("etc/default")).unwrap().count();
        assert_eq!(tmp_left, 1, "a temp file was left behind");
        for i in 0..n {
            let _ = std::fs::remove_file(mnt.join(format!("fill{i}")));
        }
        // A read-only directory (bind mount) holding the file to change.
        let etc_default = mnt.join("etc/default");
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some(&etc_default),
            &etc_default,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        nix::mount::mount(
            None::<&str>,
            &etc_default,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        let err = journal
            .write_file(Path::new("/etc/default/grub"), b"GRUB_TIMEOUT=1\n", 0o644)
            .unwrap_err();
        nix::mount::umount(&etc_default).unwrap();
        assert!(format!("{err:#}").contains("read-only"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(mnt.join("etc/default/grub")).unwrap(),
            "GRUB_TIMEOUT=5\n"
        );
    });
    nix::mount::umount(mnt).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A 4 MiB image partitioned by sfdisk from `dir/layout`, as blkid sees a disk.
fn mbr_image(dir: &Path, name: &str) -> PathBuf {
    let image = dir.join(name);
    std::fs::write(&image, vec![0u8; 4 << 20]).unwrap();
    let status = std::process::Command::new("sfdisk")
        .args(["-q", image.to_str().unwrap()])
        .stdin(std::fs::File::open(dir.join("layout")).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    image
}

#[test]
fn disk_regions_go_back_byte_for_byte_onto_the_journaled_disk_only() {
    let dir = target();
    let disks = tempfile::tempdir().unwrap();
    std::fs::write(
        disks.path().join("layout"),
        "label: dos\nlabel-id: 0x1234abcd\nstart=2048, type=83\n",
    )
    .unwrap();
    let image = mbr_image(disks.path(), "disk.img");
    let mut before = std::fs::read(&image).unwrap();
    before[..440].copy_from_slice(&[0xEB; 440]);
    before[512..4096].fill(0x5A);
    std::fs::write(&image, &before).unwrap();
    let disk = TargetDisk::probe(&image).unwrap();
    assert_eq!(disk.id, "1234abcd");
    let regions = [
        DiskRegion {
            offset: 0,
            length: 440,
            what: "the MBR boot code".into(),
        },
        DiskRegion {
            offset: 512,
            length: (1 << 20) - 512,
            what: "the gap before the first partition".into(),
        },
    ];
    let mut journal = Journal::begin(dir.path(), "run-disk", "bootloader").unwrap();
    journal.before_disk_write(&disk, &regions).unwrap();
    // What grub-install would do: new boot code and core.img.
    let mut after = before.clone();
    after[..440].fill(0x11);
    after[512..70_000].fill(0x22);
    std::fs::write(&image, &after).unwrap();
    std::fs::create_dir_all(dir.path().join("boot/grub")).unwrap();
    std::fs::write(dir.path().join("boot/grub/core.img"), b"core").unwrap();
    journal
        .note_created(Path::new("/boot/grub/core.img"), false)
        .unwrap();
    journal.finish("applied").unwrap();
    let runs = history(dir.path()).unwrap();
    assert!(runs[0].files[0].to_string_lossy().contains("bytes 0..440"));

    // Another disk (same size, another signature) is refused.
    std::fs::write(
        disks.path().join("layout"),
        "label: dos\nlabel-id: 0x99999999\nstart=2048, type=83\n",
    )
    .unwrap();
    let other = mbr_image(disks.path(), "other.img");
    let err = undo(dir.path(), None, Some(&other)).unwrap_err();
    assert!(
        err.to_string().contains("not writing another disk"),
        "{err:#}"
    );
    assert!(
        dir.path().join("boot/grub/core.img").exists(),
        "a refused undo changes nothing"
    );
    let err = undo(dir.path(), None, None).unwrap_err();
    assert!(err.to_string().contains("--disk"), "{err:#}");

    let report = undo(dir.path(), None, Some(&image)).unwrap();
    assert_eq!(report.restored.len(), 2, "{report:?}");
    assert!(!dir.path().join("boot/grub/core.img").exists());
    assert!(std::fs::read(&image).unwrap() == before, "byte for byte");
}
