//! Root-only integration tests of `vmrescue mount/umount/chroot` on loop images.

use crate::common::*;

#[test]
fn gpt_separate_boot_xfs_root_mounts_reports_missing_fstab_source_and_cleans_up() {
    if !root_or_skip("gpt_separate_boot_xfs_root_mounts") {
        return;
    }
    let _serial = serial();
    let image = gpt_boot_xfs_root();
    let before = host_snapshot(&image);
    let out = vmrescue()
        .args(["mount", "--json", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let layout = json_data(&out, "mount");
    let root = layout["root"].as_str().unwrap().to_string();
    let points: Vec<&str> = layout["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mount_point"].as_str().unwrap())
        .collect();
    assert_eq!(points, vec!["/", "/boot"]);
    assert_eq!(layout["unresolved"][0]["mount_point"], "/data");
    assert_eq!(layout["unresolved"][0]["nofail"], true);
    assert_eq!(layout["skipped"][0]["reason"], "network filesystem");
    assert!(std::path::Path::new(&root)
        .join("boot/vmlinuz-6.1.0-9-amd64")
        .exists());
    // Read-only until a change is confirmed.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(root.as_str()))
        .unwrap();
    assert!(
        root_line.split(' ').nth(5).unwrap().starts_with("ro"),
        "{root_line}"
    );

    // umount finds the target by the image it was mounted from.
    let out = vmrescue()
        .args(["umount", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("unmounted {}", layout["key"].as_str().unwrap())),
        "{}",
        text(&out)
    );
    assert_eq!(host_snapshot(&image), before);
    let out = vmrescue()
        .args(["umount", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "nothing left: {}", text(&out));
}

#[test]
fn chroot_mounts_stay_out_of_the_host_mount_table_and_exit_status_passes_through() {
    if !root_or_skip("chroot_mounts_stay_private") {
        return;
    }
    let _serial = serial();
    let image = gpt_boot_xfs_root();
    let before = host_snapshot(&image);
    let mut child = vmrescue()
        .args(["chroot", "--image"])
        .arg(&image.path)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "test -e /proc/self/mountinfo && sleep 2; exit 7",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let during = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount_root = format!("/mnt/vmrescue/{}", image.key());
    assert!(
        during.contains(&format!("{mount_root} ")),
        "the target is mounted while the chroot runs"
    );
    assert!(
        !during.contains(&format!("{mount_root}/proc")),
        "chroot binds leaked into the host"
    );
    assert!(
        !during.contains(&format!("{mount_root}/dev ")),
        "chroot binds leaked into the host"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(host_snapshot(&image), before);
}

/// The chroot's `/dev` is private: the target's loop device and its
/// partitions, the basic character devices, nothing of the host's disks.
#[test]
fn a_chroot_sees_only_the_target_disk_in_dev() {
    if !root_or_skip("a_chroot_sees_only_the_target_disk") {
        return;
    }
    let _serial = serial();
    let image = gpt_boot_xfs_root();
    let out = vmrescue()
        .args(["chroot", "--image"])
        .arg(&image.path)
        .args(["--", "/bin/busybox", "ls", "/dev"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = stdout.split_whitespace().collect();
    names.sort();
    let disks: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("loop"))
        .collect();
    let disk = disks
        .iter()
        .find(|n| !n["loop".len()..].contains('p'))
        .expect("the target's loop device");
    assert_eq!(
        disks,
        [disk.to_string(), format!("{disk}p1"), format!("{disk}p2")],
        "{stdout}"
    );
    let others: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !n.starts_with("loop"))
        .filter(|n| {
            ![
                "null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
                "stderr", "ptmx", "pts", "shm", "block", "disk",
            ]
            .contains(n)
        })
        .collect();
    assert!(
        others.is_empty(),
        "host entries in the chroot's /dev: {others:?}"
    );
}

#[test]
fn btrfs_root_with_subvolumes_mounts_the_fstab_subvolumes() {
    if !root_or_skip("btrfs_root_with_subvolumes") {
        return;
    }
    let _serial = serial();
    let image = TestImage::new(400, "label: dos\\ntype=83\\n", &[Some("mkfs.btrfs -q -f")]);
    let uuid = image.uuid(1);
    image.with_partition(1, |top| {
        sh(&format!(
            "btrfs -q subvolume create {0}/@ && btrfs -q subvolume create {0}/@/home",
            top.display()
        ));
        let id = sh(&format!(
            "btrfs inspect-internal rootid {}/@",
            top.display()
        ));
        sh(&format!(
            "btrfs subvolume set-default {} {}",
            id.trim(),
            top.display()
        ));
        let fstab = format!(
            "UUID={uuid} / btrfs defaults 0 0\nUUID={uuid} /home btrfs subvol=@/home 0 0\n"
        );
        write_os_tree(&top.join("@"), &fstab);
        std::fs::create_dir_all(top.join("@/home/alice")).unwrap();
    });
    let before = host_snapshot(&image);
    let out = vmrescue()
        .args(["mount", "--json", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let layout = json_data(&out, "mount");
    let root = layout["root"].as_str().unwrap();
    assert!(
        std::path::Path::new(root).join("home/alice").is_dir(),
        "{layout}"
    );
    assert_eq!(layout["mounts"][1]["mount_point"], "/home");
    let out = vmrescue()
        .args(["umount", layout["key"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(host_snapshot(&image), before);
}

#[test]
fn luks_image_is_refused_with_exit_4_and_nothing_left_mounted() {
    if !root_or_skip("luks_image_is_refused") {
        return;
    }
    let _serial = serial();
    let image = TestImage::new(64, "label: gpt\\nsize=+, type=linux\\n", &[None]);
    image.with_loop(|dev| {
        sh(&format!(
            "printf secret > {d}/key && cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 \
             --pbkdf-force-iterations 1000 {dev}p1 {d}/key",
            d = image.dir.path().display()
        ))
    });
    let before = host_snapshot(&image);
    let out = vmrescue()
        .args(["mount", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("encrypted"),
        "{}",
        text(&out)
    );
    assert_eq!(host_snapshot(&image), before);
}

#[test]
fn the_host_disk_is_refused_and_no_candidate_exits_3() {
    if !root_or_skip("the_host_disk_is_refused") {
        return;
    }
    let _serial = serial();
    let root_source = sh("findmnt -n -o SOURCE /").trim().to_string();
    let out = vmrescue()
        .args(["mount", "--disk", &root_source])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rescue host's own disk"),
        "{}",
        text(&out)
    );
    let has_candidate =
        String::from_utf8_lossy(&vmrescue().args(["scan"]).output().unwrap().stdout)
            .contains("candidate ");
    if !has_candidate {
        let out = vmrescue().args(["scan", "--pick"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    }
}

#[test]
fn sigkill_at_each_mount_step_then_umount_restores_the_host_exactly() {
    if !root_or_skip("sigkill_at_each_mount_step") {
        return;
    }
    let _serial = serial();
    let image = gpt_boot_xfs_root();
    let before = host_snapshot(&image);
    for failpoint in [
        "mount-after-loop",
        "mount-after-root",
        "mount-after-fstab-entry",
    ] {
        let out = vmrescue()
            .env("VMRESCUE_FAILPOINT", failpoint)
            .args(["mount", "--image"])
            .arg(&image.path)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{failpoint}: {}",
            text(&out)
        );
        // Only this test's target: a leftover of another run must not be touched.
        let out = vmrescue().args(["umount", &image.key()]).output().unwrap();
        assert!(out.status.success(), "{failpoint}: {}", text(&out));
        assert_eq!(host_snapshot(&image), before, "after a kill at {failpoint}");
    }
}

#[test]
fn fsck_is_read_only_by_default_and_reports_planted_ext4_damage() {
    if !root_or_skip("fsck_is_read_only_by_default") {
        return;
    }
    let _serial = serial();
    let image = TestImage::new(64, "label: dos\\ntype=83\\n", &[Some("mkfs.ext4 -q")]);
    image.with_loop(|dev| sh(&format!("debugfs -w -R 'clri <11>' {dev}p1 2>/dev/null")));
    let checksum = || sh(&format!("sha256sum {}", image.path.display()));
    let before = checksum();
    let out = vmrescue()
        .args(["fsck", "--json", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json_data(&out, "fsck");
    assert_eq!(report["filesystems"][0]["verdict"], "errors", "{report}");
    assert_eq!(checksum(), before, "a read-only check changed the disk");

    let out = vmrescue()
        .args(["fsck", "--repair", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "unconfirmed repair must be refused: {}",
        text(&out)
    );
    assert_eq!(checksum(), before);
    let out = vmrescue()
        .args(["fsck", "--repair", "--yes", "--json", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = vmrescue()
        .args(["fsck", "--json", "--image"])
        .arg(&image.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "after repair the check is clean: {}",
        text(&out)
    );
}

/// The files a sysctl recipe touches on the image, as (path, contents or None).
fn sysctl_state(image: &TestImage) -> Vec<(String, Option<String>)> {
    image.with_partition(1, |root| {
        let mut files: Vec<(String, Option<String>)> = ["etc/sysctl.conf"]
            .iter()
            .map(|p| (p.to_string(), std::fs::read_to_string(root.join(p)).ok()))
            .collect();
        for entry in std::fs::read_dir(root.join("etc/sysctl.d")).unwrap() {
            let path = entry.unwrap().path();
            let name = format!(
                "etc/sysctl.d/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            files.push((name, std::fs::read_to_string(&path).ok()));
        }
        files.sort();
        files
    })
}

/// Kills `vmrescue` (SIGKILL from a failpoint) at every step of writing a
/// change and of undoing it, on a real loop-mounted image: afterwards
/// `vmrescue umount` leaves no mount, loop device or state file, each file
/// is either its old or its new version (no temp file left), and a later
/// `undo` restores the original exactly.
#[test]
fn sigkill_at_each_step_of_repair_and_undo_leaves_old_or_new_files_and_no_mounts() {
    if !root_or_skip("sigkill_at_each_step_of_repair_and_undo") {
        return;
    }
    let _serial = serial();
    let image = TestImage::new(64, "label: dos\\ntype=83\\n", &[Some("mkfs.ext4 -q")]);
    let uuid = image.uuid(1);
    image.with_partition(1, |root| {
        write_os_tree(root, &format!("UUID={uuid} / ext4 defaults 0 1\n"));
        std::fs::create_dir_all(root.join("etc/sysctl.d")).unwrap();
        std::fs::write(root.join("etc/sysctl.conf"), "kernel.panic = 0\n").unwrap();
    });
    let before = host_snapshot(&image);
    let original = sysctl_state(&image);
    let run = |args: &[&str], failpoint: Option<&str>| {
        let mut cmd = vmrescue();
        if let Some(failpoint) = failpoint {
            cmd.env("VMRESCUE_FAILPOINT", failpoint);
        }
        cmd.args(args)
            .arg("--image")
            .arg(&image.path)
            .output()
            .unwrap()
    };
    let repair = ["repair", "panic-autoreboot", "--yes", "--no-verify-boot"];
    let undo = ["undo", "--yes"];
    let killed = |out: &std::process::Output, what: &str| {
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{what} was not killed: {}",
            text(out)
        );
    };
    let cleanup = |what: &str| {
        let out = vmrescue().args(["umount", &image.key()]).output().unwrap();
        assert!(out.status.success(), "umount after {what}: {}", text(&out));
        assert_eq!(
            host_snapshot(&image),
            before,
            "mounts, loops or state left after {what}"
        );
    };
    let no_temp_files = |what: &str| {
        image.with_partition(1, |root| {
            for dir in ["etc", "etc/sysctl.d"] {
                for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    assert!(
                        !name.contains("vmrescue-tmp"),
                        "{what}: temp file {dir}/{name} left"
                    );
                }
            }
        })
    };

    // The new version of every file, from an uninterrupted run.
    let out = run(&repair, None);
    assert!(out.status.success(), "{}", text(&out));
    let repaired = sysctl_state(&image);
    assert_ne!(
        repaired, original,
        "the repair changed nothing: the test proves nothing"
    );
    let out = run(&undo, None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sysctl_state(&image), original);
    let old_or_new = |what: &str| {
        let now = sysctl_state(&image);
        for (path, contents) in &now {
            let old = original.iter().find(|(p, _)| p == path).map(|(_, c)| c);
            let new = repaired.iter().find(|(p, _)| p == path).map(|(_, c)| c);
            assert!(
                Some(contents) == old || Some(contents) == new,
                "{what}: {path} is neither its old nor its new version: {contents:?}"
            );
        }
    };

    let mut steps = 0;
    for failpoint in [
        "mount-after-root",
        "journal-after-intent",
        "journal-backup-after-temp",
        "journal-backup-after-rename",
        "journal-after-backup",
        "journal-write-after-temp",
        "journal-write-after-rename",
        "journal-before-done",
    ] {
        let what = format!("repair killed at {failpoint}");
        killed(&run(&repair, Some(failpoint)), &what);
        cleanup(&what);
        old_or_new(&what);
        let out = run(&undo, None);
        // Nothing to undo when the kill came before the journal existed.
        assert!(
            out.status.success() || sysctl_state(&image) == original,
            "undo after {what}: {}",
            text(&out)
        );
        assert_eq!(sysctl_state(&image), original, "undo after {what}");
        no_temp_files(&what);
        steps += 1;
    }
    for failpoint in ["journal-undo-after-temp", "journal-undo-after-rename"] {
        let what = format!("undo killed at {failpoint}");
        let out = run(&repair, None);
        assert!(out.status.success(), "{}", text(&out));
        killed(&run(&undo, Some(failpoint)), &what);
        cleanup(&what);
        old_or_new(&what);
        let out = run(&undo, None);
        assert!(
            out.status.success(),
            "undo again after {what}: {}",
            text(&out)
        );
        assert_eq!(
            sysctl_state(&image),
            original,
            "after {what} and a second undo"
        );
        no_temp_files(&what);
        steps += 1;
    }
    assert_eq!(steps, 10);
    assert_eq!(host_snapshot(&image), before);
}
