//! `vmrescue verify --boot` on real disks: a healthy copy of the vm-tests
//! bios-ext4 image reaches userspace; the same copy with its default
//! kernel's initrd deleted fails at the kernel stage and the classifier
//! suggests rebuild-initramfs. Each run leaves the image byte-identical.
//!
//! Root only; skipped (SKIP line) without qemu-system-x86_64 or without
//! the cached image (`${VMRESCUE_CACHE:-~/.cache/vmrescue}/vm-tests/images/bios-ext4-*.raw`,
//! built by `vm-tests/build-image bios-ext4`). Two TCG boots, about a minute.

use std::path::{Path, PathBuf};

use crate::common::{root_or_skip, sh, text, vmrescue};

fn cached_image() -> Option<(PathBuf, String)> {
    let cache = std::env::var_os("VMRESCUE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/vmrescue")
        });
    let dir = cache.join("vm-tests/images");
    let mut images: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bios-ext4-"))
                && p.extension().is_some_and(|e| e == "raw")
                && p.with_extension("env").is_file()
        })
        .collect();
    images.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let image = images.pop()?;
    let env = std::fs::read_to_string(image.with_extension("env")).ok()?;
    Some((image, env))
}

fn env_value(env: &str, key: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{key} missing from the image's .env"))
}

fn sha256(path: &Path) -> String {
    sh(&format!("sha256sum '{}' | cut -d' ' -f1", path.display()))
        .trim()
        .to_string()
}

fn verify_json(image: &Path) -> (Option<i32>, serde_json::Value, String) {
    let started = std::time::Instant::now();
    let out = vmrescue()
        .args(["--json", "verify", "--boot", "--image"])
        .arg(image)
        .output()
        .unwrap();
    let all = text(&out);
    println!(
        "verify --boot took {:.0} s: exit {:?}",
        started.elapsed().as_secs_f64(),
        out.status.code()
    );
    let json = crate::common::json_data(&out, "verify");
    (out.status.code(), json, all)
}

/// Deletes the default kernel's initrd inside the copy (loop device + mount).
fn delete_initrd(image: &Path, partition: &str, kernel: &str, mnt: &Path) {
    sh(&format!(
        r#"dev=$(losetup --find --show --partscan '{image}')
trap 'losetup --detach "$dev"' EXIT
partx --add "$dev" 2>/dev/null || partx --update "$dev" 2>/dev/null || true
for i in $(seq 100); do [ -b "${{dev}}p{partition}" ] && break; sleep 0.1; done
mount "${{dev}}p{partition}" '{mnt}'
rm '{mnt}/boot/initrd.img-{kernel}'
umount '{mnt}'
partx --delete "$dev" 2>/dev/null || true"#,
        image = image.display(),
        mnt = mnt.display(),
    ));
}

#[test]
fn verify_boot_healthy_then_missing_initrd() {
    if !root_or_skip("verify_boot_healthy_then_missing_initrd") {
        return;
    }
    if sh("command -v qemu-system-x86_64 || true")
        .trim()
        .is_empty()
    {
        println!(
            "SKIP verify_boot_healthy_then_missing_initrd: qemu-system-x86_64 is not installed"
        );
        return;
    }
    let Some((cached, env)) = cached_image() else {
        println!(
            "SKIP verify_boot_healthy_then_missing_initrd: no cached bios-ext4 image (vm-tests/build-image bios-ext4)"
        );
        return;
    };
    let _serial = crate::common::serial();

    let work = tempfile::Builder::new()
        .prefix("vmrescue-verify-test-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let copy = work.path().join("bios-ext4.raw");
    sh(&format!(
        "cp --sparse=always '{}' '{}'",
        cached.display(),
        copy.display()
    ));
    let kernel = env_value(&env, "DEFAULT_KERNEL");
    let partition = env_value(&env, "ROOT_PARTITION");

    // 1. Healthy: reaches userspace (the image's marker unit), exit 0.
    let sum = sha256(&copy);
    let (code, json, all) = verify_json(&copy);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(json["version"], 1, "{all}");
    assert_eq!(json["ok"], true, "{all}");
    assert!(
        ["userspace", "login"].contains(&json["stage"].as_str().unwrap_or("")),
        "{all}"
    );
    assert!(["kvm", "tcg"].contains(&json["accelerator"].as_str().unwrap_or("")));
    assert_eq!(json["via"], "grub", "the image has console=ttyS0: {all}");
    assert_eq!(json["kernel_version"], kernel.as_str(), "{all}");
    let log = PathBuf::from(json["console_log"].as_str().unwrap());
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(
        console.contains("VMRESCUE-BOOT-OK") || console.contains("Reached target"),
        "{console}"
    );
    assert_eq!(sha256(&copy), sum, "verify --boot changed the image");

    // 2. The default kernel's initrd deleted: fails at the kernel stage, exit 6,
    //    and the classifier points at rebuild-initramfs.
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    delete_initrd(&copy, &partition, &kernel, &mnt);
    let sum = sha256(&copy);
    let (code, json, all) = verify_json(&copy);
    assert_eq!(code, Some(6), "{all}");
    assert_eq!(json["ok"], false, "{all}");
    assert_eq!(json["stage"], "kernel", "{all}");
    assert_eq!(json["failure"]["kind"], "panic", "{all}");
    assert_eq!(json["suggested_recipe"], "rebuild-initramfs", "{all}");
    assert!(
        json["last_lines"].as_array().is_some_and(|l| !l.is_empty()),
        "{all}"
    );
    assert_eq!(sha256(&copy), sum, "verify --boot changed the image");

    // Nothing of this run is left: no loop device on the copy, no mount of
    // it, no state file naming it (the host may be busy with other runs, so
    // only this image's traces are checked).
    assert_eq!(
        sh(&format!("losetup -j '{}'", copy.display())).trim(),
        "",
        "loop device left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("img-bios-ext4"), "mount left:\n{mounts}");
    for entry in std::fs::read_dir("/run/vmrescue")
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(&copy.display().to_string()),
            "state file {} left",
            entry.path().display()
        );
    }
}

#[test]
fn verify_boot_refuses_a_root_directory() {
    let out = vmrescue()
        .args(["verify", "--boot", "--root", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--disk or --image"));
}
