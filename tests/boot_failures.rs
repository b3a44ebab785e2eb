//! The boot failures that do not panic, end to end: a real console log of
//! each family (tests/fixtures/boot-failures), `diagnose`, then
//! `repair auto --dry-run` on a fixture tree: the expected finding and the
//! recipe `auto` picks, or exit 5 with the finding's next step when no
//! unattended recipe fits. Healthy logs give no error finding.

use std::path::{Path, PathBuf};

use crate::common::tree::{copy_fixture_tree, write};
use crate::common::{envelope, json_data, text};

fn vmrescue() -> std::process::Command {
    let mut cmd = crate::common::vmrescue();
    cmd.args(["--log-file", "/dev/null"])
        .stdin(std::process::Stdio::null());
    cmd
}

fn log(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/boot-failures")
        .join(name)
}

/// The AlmaLinux 9 fixture tree made whole, so that its own offline checks
/// find nothing: complete initramfs images, an init, the generators, the
/// serial getty, SELinux enforcing, and an archived journal to delete.
fn healthy_alma9(dir: &Path) -> PathBuf {
    let root = copy_fixture_tree("alma9", dir);
    for version in [
        "5.14.0-284.11.1.el9_2.x86_64",
        "5.14.0-362.8.1.el9_3.x86_64",
    ] {
        write(
            &root,
            &format!("boot/initramfs-{version}.img"),
            "an initramfs\n",
        );
    }
    for program in [
        "usr/lib/systemd/systemd",
        "usr/bin/dracut",
        "usr/sbin/grub2-mkconfig",
    ] {
        write(&root, program, "#!/bin/sh\n");
    }
    std::os::unix::fs::symlink("../lib/systemd/systemd", root.join("usr/sbin/init")).ok();
    write(
        &root,
        "usr/lib/systemd/system/serial-getty@.service",
        "[Unit]\nDescription=Serial Getty on %I\n",
    );
    write(
        &root,
        "etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    write(&root, "etc/selinux/targeted/.policy", "");
    write(
        &root,
        "var/log/journal/3f8a1c6e/system@0001-0002.journal",
        &"j".repeat(64 * 1024),
    );
    root
}

fn diagnose(name: &str) -> serde_json::Value {
    let out = vmrescue()
        .args(["--json", "diagnose", "--log"])
        .arg(log(name))
        .output()
        .unwrap();
    json_data(&out, "diagnose")
}

fn first_error(diagnosis: &serde_json::Value) -> String {
    diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "critical" || f["severity"] == "error")
        .map(|f| f["id"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn auto_dry_run(root: &Path, name: &str) -> std::process::Output {
    vmrescue()
        .args(["--json", "repair", "auto", "--dry-run", "--root"])
        .arg(root)
        .arg("--console-log")
        .arg(log(name))
        .output()
        .unwrap()
}

/// (log, finding, the recipe `repair auto` plans)
const WITH_RECIPE: &[(&str, &str, &str)] = &[
    (
        "initrd-mkosi-rocky-raid-by-label.log",
        "initrd-root-not-found",
        "fix-root-fs",
    ),
    (
        "initrd-mkinitcpio-archinstall-uuid.log",
        "initrd-root-not-found",
        "fix-root-fs",
    ),
    (
        "emergency-ovirt-node-var-crash.log",
        "emergency-mode",
        "fix-root-fs",
    ),
    (
        "selinux-aws-dracut-policy-load-failed.log",
        "selinux-policy-failed",
        "selinux-relabel",
    ),
    (
        "diskfull-balena-journal-flush.log",
        "disk-full",
        "free-space",
    ),
    (
        "noevidence-dockur-firmware-only.log",
        "no-kernel-output",
        "enable-serial-console",
    ),
];

/// (log, finding, words of its next step) where no unattended recipe fits.
const NO_RECIPE: &[(&str, &str, &str)] = &[
    (
        "fsck-mynode-initramfs-manual-fsck.log",
        "filesystem-damaged",
        "vmrescue fsck --repair",
    ),
    (
        "grub-supergrub-no-such-partition.log",
        "bootloader-damaged",
        // bootloader is suggested but refuses a target without GRUB for BIOS.
        "bootloader does not fit: no boot loader to put back",
    ),
    (
        "grub-fedup-upgrade-vmlinuz-not-found.log",
        "grub-kernel-missing",
        "vmrescue repair older-kernel",
    ),
    // bootloader fits a Debian-family disk with its ESP mounted; on this
    // RHEL tree it does not, and the next step says what to do instead.
    (
        "uefi-qemu-arm-bdsdxe-not-found.log",
        "uefi-boot-failed",
        "reinstall the shim-x64",
    ),
    (
        "secureboot-shim-0x1a-security-violation.log",
        "secure-boot-refused",
        "signed",
    ),
];

#[test]
fn each_family_gives_its_finding_and_auto_plans_its_recipe() {
    for (name, finding, recipe) in WITH_RECIPE {
        assert_eq!(&first_error(&diagnose(name)), finding, "{name}");
        let dir = tempfile::tempdir().unwrap();
        let root = healthy_alma9(dir.path());
        let out = auto_dry_run(&root, name);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        let data = json_data(&out, "repair");
        let planned: Vec<&str> = data["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["recipe"].as_str().unwrap())
            .collect();
        assert!(planned.contains(recipe), "{name}: planned {planned:?}");
        assert!(
            data["recipes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "dry-run"),
            "{name}: {data}"
        );
        assert_eq!(data["findings"][0]["id"], *finding, "{name}");
    }
}

#[test]
fn without_an_unattended_recipe_auto_stops_with_exit_5_and_the_next_step() {
    for (name, finding, step) in NO_RECIPE {
        assert_eq!(&first_error(&diagnose(name)), finding, "{name}");
        let dir = tempfile::tempdir().unwrap();
        let root = healthy_alma9(dir.path());
        let out = auto_dry_run(&root, name);
        assert_eq!(out.status.code(), Some(5), "{name}: {}", text(&out));
        let doc = envelope(&out, "repair");
        let message = doc["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(finding) && message.contains(step),
            "{name}: {message}"
        );
    }
}

#[test]
fn free_space_lists_what_it_deletes_and_needs_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let root = healthy_alma9(dir.path());
    let plan = vmrescue()
        .args(["plan", "free-space", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let shown = text(&plan);
    assert!(plan.status.success(), "{shown}");
    assert!(
        shown.contains("system@0001-0002.journal") && shown.contains("not restorable by undo"),
        "{shown}"
    );
    let refused = vmrescue()
        .args(["repair", "free-space", "--yes", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused));
    assert!(root
        .join("var/log/journal/3f8a1c6e/system@0001-0002.journal")
        .exists());
    let done = vmrescue()
        .args([
            "repair",
            "free-space",
            "--yes",
            "--param",
            "confirm=true",
            "--root",
        ])
        .arg(&root)
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", text(&done));
    assert!(!root
        .join("var/log/journal/3f8a1c6e/system@0001-0002.journal")
        .exists());
}

#[test]
fn serial_console_and_relabel_are_undone() {
    let dir = tempfile::tempdir().unwrap();
    let root = healthy_alma9(dir.path());
    for recipe in ["enable-serial-console", "selinux-relabel"] {
        let out = vmrescue()
            .args(["repair", recipe, "--yes", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{recipe}: {}", text(&out));
    }
    let link = root.join("etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service");
    assert!(std::fs::symlink_metadata(&link).is_ok());
    assert!(root.join(".autorelabel").exists());
    let entries = std::fs::read_dir(root.join("boot/loader/entries")).unwrap();
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(text.contains("console=ttyS0,115200"), "{text}");
    }
    for _ in 0..2 {
        let out = vmrescue()
            .args(["undo", "--yes", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(std::fs::symlink_metadata(&link).is_err());
    assert!(!root.join(".autorelabel").exists());
}

#[test]
fn healthy_logs_give_no_error_finding() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let logs = [
        fixtures.join("boot-failures/healthy-cirros-nmi-watchdog-shutdown.log"),
        fixtures.join("boot-failures/healthy-ubuntu-sr0-buffer-io-error.log"),
        fixtures.join("boot-failures/healthy-lkml-fsck-clean.log"),
        fixtures.join("boot-failures/healthy-go-daemon-panic-journal.log"),
        fixtures.join("boot-logs/debian12-bios-ext4-ok.log"),
        fixtures.join("panics/warn-machine-check-corrected-haos.log"),
    ];
    for path in logs {
        let out = vmrescue()
            .args(["--json", "diagnose", "--log"])
            .arg(&path)
            .output()
            .unwrap();
        let data = json_data(&out, "diagnose");
        assert_eq!(first_error(&data), "", "{}: {data}", path.display());
    }
}
