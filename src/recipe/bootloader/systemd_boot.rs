//! systemd-boot on UEFI: the target's own `bootctl install --esp-path=ESP
//! --no-variables` in the sandbox. It copies the target's systemd-boot
//! (the signed build when the target has one) to `EFI/systemd/` and to the
//! removable path `EFI/BOOT/`, and adds `loader/` files it misses; the
//! ESP's `EFI` and `loader` trees and `/etc/kernel` are journaled (see
//! [`super::installer`]). No NVRAM variable is written: a rescue VM cannot
//! reach the broken VM's.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::recipe::plan::{Planned, PlannedChange};
use crate::rootfs::RootDir;

/// The target's systemd-boot builds: (EFI suffix, removable file name).
const ARCHES: &[(&str, &str)] = &[("x64", "BOOTX64.EFI"), ("aa64", "BOOTAA64.EFI")];
const SOURCE_DIR: &str = "/usr/lib/systemd/boot/efi";

/// The systemd-boot image `bootctl install` copies, when the target has
/// bootctl: the signed build first, as bootctl itself prefers it.
pub fn installed(root: &RootDir) -> Option<(PathBuf, &'static str)> {
    let bootctl = ["/usr/bin/bootctl", "/bin/bootctl", "/usr/sbin/bootctl"]
        .iter()
        .any(|p| root.is_file(p));
    if !bootctl {
        return None;
    }
    ARCHES.iter().find_map(|(arch, removable)| {
        [".efi.signed", ".efi"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{SOURCE_DIR}/systemd-boot{arch}{suffix}")))
            .find(|p| root.is_file(p))
            .map(|p| (p, *removable))
    })
}

/// Is systemd-boot the loader on this ESP? Its loader.conf or its own
/// directory says so (an emptied ESP with neither is GRUB's by default).
pub fn in_use(root: &RootDir, esp: &Path, loader_conf: Option<&Path>) -> bool {
    loader_conf.is_some()
        || root.is_dir(esp.join("EFI/systemd"))
        || root.is_file(esp.join("loader/loader.conf"))
}

/// Plans `bootctl install` onto the ESP mounted at `esp`.
pub fn plan(esp: &Path, planned: &mut Planned) {
    planned.changes.push(PlannedChange::InstallBootLoader {
        argv: vec![
            "bootctl".into(),
            "install".into(),
            format!("--esp-path={}", esp.display()),
            "--no-variables".into(),
            // The entry directory is the kernel-install's business, not the loader's.
            "--make-entry-directory=no".into(),
        ],
        // The sandbox has no udev database for bootctl to confirm the
        // partition type with; the ESP was identified by vmrescue's mount.
        env: vec![("SYSTEMD_RELAX_ESP_CHECKS".into(), "1".into())],
        trees: vec![
            esp.join("EFI"),
            esp.join("loader"),
            PathBuf::from("/etc/kernel"),
        ],
        disk: None,
        why: "the target's own systemd-boot, onto EFI/systemd/ and the removable path EFI/BOOT/"
            .into(),
    });
    planned.notes.push(
        "the broken VM's NVRAM cannot be reached from a rescue VM (bootctl runs with --no-variables): the removable \
         path EFI/BOOT/ is what makes the disk boot on any UEFI firmware"
            .into(),
    );
}

/// The systemd-boot half of `boot-loader-installed`: both ESP copies equal
/// the target's systemd-boot image.
pub fn check(root: &RootDir, esp: &Path) -> Result<(bool, String)> {
    let Some((source, removable)) = installed(root) else {
        return Ok((
            false,
            "the target has no bootctl and systemd-boot image".into(),
        ));
    };
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".signed").to_string())
        .unwrap_or_default();
    let image = root.read(&source)?;
    let mut wrong = Vec::new();
    for dest in [
        esp.join("EFI/systemd").join(&name),
        esp.join("EFI/BOOT").join(removable),
    ] {
        if !root.is_file(&dest) || root.read(&dest)? != image {
            wrong.push(dest.display().to_string());
        }
    }
    Ok(if wrong.is_empty() {
        (
            true,
            format!(
                "EFI/systemd/{name} and EFI/BOOT/{removable} equal {}",
                source.display()
            ),
        )
    } else {
        (
            false,
            format!(
                "missing or different from {}: {}",
                source.display(),
                wrong.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tree;

    #[test]
    fn the_signed_build_is_the_one_checked_on_both_esp_paths() {
        let dir = tree(&[
            ("usr/bin/bootctl", b""),
            ("usr/lib/systemd/boot/efi/systemd-bootx64.efi", b"unsigned"),
            (
                "usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed",
                b"signed",
            ),
            ("boot/EFI/systemd/systemd-bootx64.efi", b"signed"),
            ("boot/EFI/BOOT/BOOTX64.EFI", b"unsigned"),
        ]);
        let root = RootDir::open(dir.path()).unwrap();
        let (source, _) = installed(&root).unwrap();
        assert!(source.ends_with("systemd-bootx64.efi.signed"));
        let (ok, detail) = check(&root, Path::new("/boot")).unwrap();
        assert!(!ok);
        assert!(detail.ends_with("/boot/EFI/BOOT/BOOTX64.EFI"), "{detail}");
        std::fs::write(dir.path().join("boot/EFI/BOOT/BOOTX64.EFI"), b"signed").unwrap();
        assert!(check(&root, Path::new("/boot")).unwrap().0);
    }

    #[test]
    fn systemd_boot_is_in_use_where_its_files_are() {
        let dir = tree(&[("boot/loader/loader.conf", b"default @saved\n")]);
        let root = RootDir::open(dir.path()).unwrap();
        assert!(in_use(&root, Path::new("/boot"), None));
        assert!(!in_use(&root, Path::new("/boot/efi"), None));
        assert!(in_use(
            &root,
            Path::new("/boot/efi"),
            Some(Path::new("/boot/loader/loader.conf"))
        ));
    }
}
