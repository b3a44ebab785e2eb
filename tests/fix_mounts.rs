//! `fix-mounts` on a loop image (root only): every local fstab line held
//! against the disk, the /boot and ESP lines re-pointed, a missing disk
//! made `nofail`, a wrong type corrected; a second run does nothing and
//! `undo` gives the fstab back byte for byte.

use crate::common::*;

const GONE_BOOT: &str = "deadbeef-0000-4000-8000-000000000000";
const GONE_DATA: &str = "0badf00d-0000-4000-8000-000000000000";

/// GPT: an ESP (vfat, which this host's kernel cannot mount), ext4 /boot,
/// ext4 root, ext4 /srv. The fstab names /boot and the ESP by UUIDs the
/// disk does not have, /srv as xfs, and a /data disk that is not there.
fn broken_mounts_image() -> (TestImage, String) {
    let image = TestImage::new(
        300,
        "label: gpt\\nsize=34M, type=uefi\\nsize=60M, type=linux\\nsize=150M, type=linux\\nsize=+, type=linux\\n",
        &[
            Some("mkfs.vfat"),
            Some("mkfs.ext4 -q -L boot"),
            Some("mkfs.ext4 -q -L root"),
            Some("mkfs.ext4 -q"),
        ],
    );
    let (root, srv) = (image.uuid(3), image.uuid(4));
    let fstab = format!(
        "# /etc/fstab: static file system information.\n\
         UUID={root} /               ext4    errors=remount-ro 0       1\n\
         # /boot was on /dev/sda2 during installation\n\
         UUID={GONE_BOOT} /boot ext4 defaults 0 2\n\
         UUID=ABCD-0000  /boot/efi       vfat    umask=0077      0       1\n\
         UUID={srv}\t/srv\txfs\tdefaults,allocsize=64k\t0 2\n\
         UUID={GONE_DATA} /data ext4 defaults 0 2\n\
         /swapfile none swap sw 0 0\n"
    );
    image.with_partition(3, |dir| {
        write_os_tree(dir, &fstab);
        for sub in ["boot", "srv", "data"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
    });
    image.with_partition(2, |dir| {
        std::fs::write(dir.join("vmlinuz-6.1.0-9-amd64"), "kernel").unwrap();
        // The ESP's mount point is on /boot, as on a real separate /boot.
        for sub in ["grub", "efi"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
    });
    (image, fstab)
}

fn fstab_of(image: &TestImage) -> String {
    image.with_partition(3, |dir| {
        std::fs::read_to_string(dir.join("etc/fstab")).unwrap()
    })
}

#[test]
fn fix_mounts_repoints_boot_and_esp_marks_the_missing_disk_nofail_fixes_the_type_and_undoes() {
    if !root_or_skip("fix_mounts_on_a_loop_image") {
        return;
    }
    let _serial = serial();
    let (image, original) = broken_mounts_image();
    let (boot, esp, srv) = (image.uuid(2), image.uuid(1), image.uuid(4));
    let before = host_snapshot(&image);
    let run = |args: &[&str]| {
        vmrescue()
            .args(args)
            .arg("--image")
            .arg(&image.path)
            .output()
            .unwrap()
    };

    // The diagnosis points at fix-mounts.
    let out = run(&["--json", "diagnose"]);
    let findings = json_data(&out, "diagnose")["findings"].to_string();
    assert!(
        findings.contains("offline-fstab-source-missing") && findings.contains("\"fix-mounts\""),
        "{findings}"
    );

    let out = run(&["plan", "fix-mounts"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    for why in [
        "line 4 (/boot)",
        "line 5 (/boot/efi)",
        "line 6 (/srv): fstab says xfs",
        "line 7 (/data)",
        "+UUID=0badf00d-0000-4000-8000-000000000000 /data ext4 defaults,nofail,x-systemd.device-timeout=10s 0 2",
    ] {
        assert!(plan.contains(why), "{why} missing from the plan:\n{plan}");
    }
    assert_eq!(fstab_of(&image), original, "plan changed the disk");

    let out = run(&[
        "--json",
        "repair",
        "fix-mounts",
        "--yes",
        "--no-verify-boot",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json_data(&out, "repair");
    let outcome = &report["recipes"][0];
    assert_eq!(outcome["status"], "applied", "{report}");
    let checks = outcome["verify"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "fstab-resolves" && c["ok"] == true),
        "{checks:?}"
    );
    let fixed = fstab_of(&image);
    let expected = original
        .replace(
            &format!("UUID={GONE_BOOT} /boot"),
            &format!("UUID={boot} /boot"),
        )
        .replace(
            "UUID=ABCD-0000  /boot/efi",
            &format!("UUID={esp}  /boot/efi"),
        )
        .replace("\txfs\tdefaults,allocsize=64k\t", "\text4\tdefaults\t")
        .replace(
            "/data ext4 defaults 0 2",
            "/data ext4 defaults,nofail,x-systemd.device-timeout=10s 0 2",
        );
    assert_eq!(fixed, expected);
    assert!(fixed.contains(&format!("UUID={srv}\t/srv\text4\tdefaults\t0 2\n")));

    let out = run(&[
        "--json",
        "repair",
        "fix-mounts",
        "--yes",
        "--no-verify-boot",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        json_data(&out, "repair")["recipes"][0]["status"],
        "nothing-to-do"
    );
    assert_eq!(fstab_of(&image), fixed);

    let out = run(&["undo", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fstab_of(&image),
        original,
        "undo must restore byte for byte"
    );
    assert_eq!(host_snapshot(&image), before);
}
