//! Offline checks of what runs before the kernel, so that `diagnose` and
//! `repair auto` see a damaged boot loader without a console log:
//! - an ESP that is mounted but holds no boot file the firmware could start;
//! - on a BIOS-bootable disk with the target's GRUB for i386-pc, a first
//!   sector without GRUB's boot code;
//! - GRUB's BIOS module directory without `normal.mod` (`grub rescue>`).
//!
//! Each suggests `bootloader`. The disk is only ever read (invariant 8).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use super::offline::{evidence, finding, suggest};
use super::{Finding, Severity};
use crate::attach::nodes::DiskNode;
use crate::attach::Layout;
use crate::rootfs::{EntryKind, RootDir};

/// Where an ESP is mounted: `/boot` only when it is vfat (systemd-boot).
const ESP_MOUNT_POINTS: &[&str] = &["/boot/efi", "/efi", "/boot"];

/// The boot code area of an MBR: the bytes before the disk signature.
const BOOT_CODE_LEN: usize = 440;

/// GRUB's BIOS module directories (Debian family, RHEL family).
const GRUB_PC_DIRS: &[&str] = &["/boot/grub/i386-pc", "/boot/grub2/i386-pc"];

/// Every boot loader finding for the mounted target.
pub fn findings(root: &RootDir, layout: &Layout) -> Result<Vec<Finding>> {
    let mut found = Vec::new();
    for mount in layout
        .mounts
        .iter()
        .filter(|m| m.fstype == "vfat" && ESP_MOUNT_POINTS.contains(&m.mount_point.as_str()))
    {
        found.extend(esp_finding(
            root,
            Path::new(&mount.mount_point),
            &mount.device,
        )?);
    }
    if let Some(disk) = layout.disk.as_deref() {
        found.extend(bios_boot_code_finding(root, layout, Path::new(disk))?);
    }
    found.extend(grub_modules_finding(root)?);
    Ok(found)
}

/// Whether a file name in `EFI/<dir>/` is something firmware boots: the
/// removable path's `BOOT<arch>.EFI`, or a shim, GRUB or systemd-boot
/// binary (the vendor directory's name is the distribution's, so any
/// directory counts: RHEL's `EFI/redhat`, Ubuntu's `EFI/ubuntu`).
fn is_boot_file(dir: &str, file: &str) -> bool {
    let (dir, file) = (dir.to_ascii_lowercase(), file.to_ascii_lowercase());
    if !file.ends_with(".efi") {
        return false;
    }
    (dir == "boot" && file.starts_with("boot"))
        || ["shim", "grub", "systemd-boot"]
            .iter()
            .any(|p| file.starts_with(p))
}

/// The non-empty boot files under `esp/EFI/*/`. FAT is case-insensitive
/// and tools write `EFI`, `efi`, `BOOT` or `boot`: names are compared
/// without case. An empty file (a truncated copy) does not count.
pub fn esp_boot_files(root: &RootDir, esp: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for efi in root.list_dir(esp)? {
        if efi.kind != EntryKind::Dir || !efi.name.eq_ignore_ascii_case("efi") {
            continue;
        }
        let efi_path = esp.join(&efi.name);
        for dir in root.list_dir(&efi_path)? {
            if dir.kind != EntryKind::Dir {
                continue;
            }
            let dir_path = efi_path.join(&dir.name);
            for file in root.list_dir(&dir_path)? {
                let path = dir_path.join(&file.name);
                let boots = file.kind == EntryKind::File
                    && is_boot_file(&dir.name.to_string_lossy(), &file.name.to_string_lossy());
                let size = root.metadata(&path).map(|st| st.st_size).unwrap_or(0);
                if boots && size > 0 {
                    files.push(path.display().to_string());
                }
            }
        }
    }
    Ok(files)
}

/// An ESP without any boot file: the firmware finds nothing to start
/// (`BdsDxe: No bootable option or device was found`).
fn esp_finding(root: &RootDir, esp: &Path, device: &str) -> Result<Option<Finding>> {
    if !esp_boot_files(root, esp)?.is_empty() {
        return Ok(None);
    }
    let listing: Vec<String> = root
        .list_dir(esp)?
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    let holds = if listing.is_empty() {
        "is empty".to_string()
    } else {
        format!("holds only {}", listing.join(", "))
    };
    let mut f = finding(
        "offline-esp-boot-files-missing",
        Severity::Critical,
        format!("The EFI System Partition at {} has no boot files", esp.display()),
        "UEFI firmware starts the file an NVRAM entry names (EFI/<vendor>/shimx64.efi or grubx64.efi) or the \
         removable path EFI/BOOT/BOOTX64.EFI. With neither on the ESP (reformatted, emptied by a failed update) \
         the firmware prints `No bootable option or device was found` or `BdsDxe: failed to load Boot…`.",
        vec![evidence(
            device,
            0,
            format!(
                "{} ({device}) {holds}: no EFI/BOOT/BOOT*.EFI and no shim, GRUB or systemd-boot under EFI/*/",
                esp.display()
            ),
        )],
    );
    f.suggestions.push(suggest(
        "bootloader",
        &[],
        "copy the target's own signed shim and GRUB back to the ESP (vendor and removable paths)",
    ));
    Ok(Some(f))
}

/// What the first sector's boot code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootCode {
    Zero,
    NotGrub,
    Grub,
}

/// Classifies the boot code area. GRUB's boot.img carries the string
/// `GRUB ` (its error message prefix) inside the first 440 bytes.
pub fn classify_boot_code(code: &[u8]) -> BootCode {
    let code = &code[..code.len().min(BOOT_CODE_LEN)];
    if code.iter().all(|b| *b == 0) {
        BootCode::Zero
    } else if code.windows(4).any(|w| w == b"GRUB") {
        BootCode::Grub
    } else {
        BootCode::NotGrub
    }
}

/// Whether the first sector is an MBR (msdos) label: the 0x55AA signature
/// and no protective 0xEE entry (a GPT disk's MBR has one).
pub fn is_msdos_label(sector: &[u8]) -> bool {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return false;
    }
    (0..4).all(|i| sector[446 + 16 * i + 4] != 0xEE)
}

/// The disk's first sector, read-only.
fn first_sector(disk: &Path) -> Result<Vec<u8>> {
    let mut sector = vec![0u8; 512];
    std::fs::File::open(disk)
        .and_then(|mut f| f.read_exact(&mut sector))
        .with_context(|| format!("reading the first sector of {}", disk.display()))?;
    Ok(sector)
}

/// A disk the firmware can boot through BIOS, whose target has GRUB for
/// i386-pc installed, but whose first sector is not GRUB's boot code.
fn bios_boot_code_finding(root: &RootDir, layout: &Layout, disk: &Path) -> Result<Option<Finding>> {
    if !root.is_dir("/usr/lib/grub/i386-pc") {
        return Ok(None);
    }
    // An unreadable disk hides this check only, not the whole diagnosis.
    let sector = match first_sector(disk) {
        Ok(sector) => sector,
        Err(err) => {
            tracing::warn!("boot code not checked: {err:#}");
            return Ok(None);
        }
    };
    let bios_boot_partition = layout.nodes.iter().any(DiskNode::is_bios_boot);
    if !is_msdos_label(&sector) && !bios_boot_partition {
        return Ok(None);
    }
    let what = match classify_boot_code(&sector) {
        BootCode::Grub => return Ok(None),
        BootCode::Zero => "all zero",
        BootCode::NotGrub => "not GRUB's boot code (no \"GRUB\" string)",
    };
    let label = if bios_boot_partition {
        "GPT with a BIOS boot partition"
    } else {
        "MBR (msdos) label"
    };
    // An image is attached as a loop device: name the file the user gave.
    let name = layout
        .image
        .as_deref()
        .unwrap_or(disk)
        .display()
        .to_string();
    let mut f = finding(
        "offline-bios-boot-code-missing",
        Severity::Critical,
        format!("{name} has no GRUB boot code in its first sector"),
        "A BIOS (Generation 1) VM starts the code in the disk's first 440 bytes; GRUB's boot.img there loads \
         core.img. Without it the firmware finds no boot code and the console stays silent or prints \
         `Booting from Hard Disk...` and nothing more.",
        vec![evidence(
            &name,
            0,
            format!(
                "{label}, target has /usr/lib/grub/i386-pc; bytes 0-439 are {what}"
            ),
        )],
    );
    f.suggestions.push(suggest(
        "bootloader",
        &[],
        "run the target's own grub-install for i386-pc on the disk (journaled boot code)",
    ));
    Ok(Some(f))
}

/// GRUB's BIOS modules directory without `normal.mod`: GRUB stops at
/// `grub rescue>` with `normal.mod not found`.
fn grub_modules_finding(root: &RootDir) -> Result<Option<Finding>> {
    let Some(dir) = GRUB_PC_DIRS
        .iter()
        .find(|d| root.is_dir(d) && !root.is_file(format!("{d}/normal.mod")))
    else {
        return Ok(None);
    };
    let count = root
        .list_dir(dir)?
        .iter()
        .filter(|e| e.name.to_string_lossy().ends_with(".mod"))
        .count();
    let mut f = finding(
        "offline-grub-modules-missing",
        Severity::Critical,
        format!("GRUB's modules in {dir} lack normal.mod"),
        "GRUB's core.img loads `normal.mod` from its prefix to read grub.cfg; without it GRUB stops at \
         `grub rescue>` (`error: file '…/normal.mod' not found`).",
        vec![evidence(
            dir,
            0,
            format!("{dir}: {count} .mod files, no normal.mod"),
        )],
    );
    f.suggestions.push(suggest(
        "bootloader",
        &[],
        "reinstall GRUB's modules and core.img with the target's own grub-install",
    ));
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::MountedFs;
    use crate::testutil::tree;

    fn layout(disk: Option<&Path>, nodes: Vec<DiskNode>, esp_fstype: &str) -> Layout {
        Layout {
            version: 1,
            key: "t".into(),
            root: "/t".into(),
            disk: disk.map(|d| d.display().to_string()),
            image: None,
            root_device: Some("/dev/vdb2".into()),
            read_only_device: true,
            mounts: vec![MountedFs {
                device: "/dev/vdb1".into(),
                mount_point: "/boot/efi".into(),
                fstype: esp_fstype.into(),
                path: "/t/boot/efi".into(),
            }],
            skipped: Vec::new(),
            unresolved: Vec::new(),
            volume_groups: Vec::new(),
            nodes,
        }
    }

    fn ids(dir: &Path, layout: &Layout) -> Vec<String> {
        let root = RootDir::open(dir).unwrap();
        findings(&root, layout)
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect()
    }

    const ESP_MISSING: &str = "offline-esp-boot-files-missing";

    #[test]
    fn an_esp_without_boot_files_suggests_bootloader() {
        let dir = tree(&[("boot/efi/System Volume Information/x", b"x")]);
        let root = RootDir::open(dir.path()).unwrap();
        let found = findings(&root, &layout(None, vec![], "vfat")).unwrap();
        let f = found.iter().find(|f| f.id == ESP_MISSING).unwrap();
        assert_eq!(f.suggestions[0].recipe, "bootloader");
        assert!(
            f.evidence[0].text.contains("System Volume Information"),
            "{:?}",
            f.evidence
        );
        // An empty ESP directory, and one whose files are truncated to zero.
        let dir = tree(&[("boot/efi/EFI/BOOT/BOOTX64.EFI", b"")]);
        assert!(ids(dir.path(), &layout(None, vec![], "vfat")).contains(&ESP_MISSING.into()));
        // Not vfat at /boot/efi: not an ESP this check reads.
        assert!(!ids(dir.path(), &layout(None, vec![], "ext4")).contains(&ESP_MISSING.into()));
    }

    #[test]
    fn any_removable_path_or_vendor_loader_is_enough() {
        for file in [
            "boot/efi/EFI/BOOT/BOOTX64.EFI",
            "boot/efi/efi/boot/bootaa64.efi",
            "boot/efi/EFI/debian/shimx64.efi",
            "boot/efi/EFI/redhat/grubx64.efi",
            "boot/efi/EFI/systemd/systemd-bootx64.efi",
        ] {
            let dir = tree(&[(file, b"MZ")]);
            assert!(
                !ids(dir.path(), &layout(None, vec![], "vfat")).contains(&ESP_MISSING.into()),
                "{file}"
            );
        }
        // A grub.cfg and BOOTX64.CSV alone boot nothing.
        let dir = tree(&[
            ("boot/efi/EFI/debian/grub.cfg", b"x"),
            ("boot/efi/EFI/debian/BOOTX64.CSV", b"x"),
        ]);
        assert!(ids(dir.path(), &layout(None, vec![], "vfat")).contains(&ESP_MISSING.into()));
    }

    fn sector(code: &[u8], gpt: bool) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[..code.len()].copy_from_slice(code);
        s[446 + 4] = if gpt { 0xEE } else { 0x83 };
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    fn grub_code() -> Vec<u8> {
        let mut code = vec![0xEBu8, 0x63, 0x90];
        code.resize(0x180, 0x90);
        code.extend_from_slice(b"GRUB \0Geom\0Hard Disk\0Read\0 Error\r\n");
        code
    }

    const BIOS_MISSING: &str = "offline-bios-boot-code-missing";

    /// A target with GRUB for i386-pc and a disk file holding `sector`.
    fn bios_ids(sector: &[u8], nodes: Vec<DiskNode>, grub_pc: bool) -> Vec<String> {
        let mut files: Vec<(&str, &[u8])> = vec![("boot/efi/EFI/BOOT/BOOTX64.EFI", b"MZ")];
        if grub_pc {
            files.push(("usr/lib/grub/i386-pc/boot.img", b"x"));
        }
        let dir = tree(&files);
        let disk = dir.path().join("disk.raw");
        std::fs::write(&disk, sector).unwrap();
        ids(dir.path(), &layout(Some(&disk), nodes, "vfat"))
    }

    fn bios_boot_node() -> DiskNode {
        DiskNode {
            device: "/dev/vdb14".into(),
            name: "vdb14".into(),
            kind: "part".into(),
            fstype: None,
            uuid: None,
            label: None,
            partuuid: None,
            partlabel: None,
            parttype: Some("21686148-6449-6e6f-744e-656564454649".into()),
        }
    }

    #[test]
    fn an_mbr_disk_without_grub_boot_code_suggests_bootloader() {
        assert!(bios_ids(&sector(&[], false), vec![], true).contains(&BIOS_MISSING.into()));
        assert!(
            bios_ids(&sector(b"\xfa\x31\xc0SYSLINUX", false), vec![], true)
                .contains(&BIOS_MISSING.into())
        );
        assert!(
            !bios_ids(&sector(&grub_code(), false), vec![], true).contains(&BIOS_MISSING.into())
        );
        // No GRUB for i386-pc in the target: not a BIOS GRUB disk.
        assert!(!bios_ids(&sector(&[], false), vec![], false).contains(&BIOS_MISSING.into()));
    }

    #[test]
    fn a_gpt_disk_counts_only_with_a_bios_boot_partition() {
        assert!(!bios_ids(&sector(&[], true), vec![], true).contains(&BIOS_MISSING.into()));
        assert!(bios_ids(&sector(&[], true), vec![bios_boot_node()], true)
            .contains(&BIOS_MISSING.into()));
        assert!(
            !bios_ids(&sector(&grub_code(), true), vec![bios_boot_node()], true)
                .contains(&BIOS_MISSING.into())
        );
    }

    #[test]
    fn boot_code_and_labels_are_told_apart() {
        assert_eq!(classify_boot_code(&[0; 512]), BootCode::Zero);
        assert_eq!(classify_boot_code(&grub_code()), BootCode::Grub);
        // "GRUB" after byte 440 (in the partition table) is not boot code.
        let mut late = vec![1u8; 512];
        late[450..454].copy_from_slice(b"GRUB");
        assert_eq!(classify_boot_code(&late), BootCode::NotGrub);
        assert!(is_msdos_label(&sector(&[], false)));
        assert!(!is_msdos_label(&sector(&[], true)));
        assert!(!is_msdos_label(&[0; 512]), "no 0x55AA: no label");
    }

    #[test]
    fn grub_modules_without_normal_mod_suggest_bootloader() {
        const MISSING: &str = "offline-grub-modules-missing";
        let esp = ("boot/efi/EFI/BOOT/BOOTX64.EFI", &b"MZ"[..]);
        let dir = tree(&[esp, ("boot/grub/i386-pc/linux.mod", b"x")]);
        let root = RootDir::open(dir.path()).unwrap();
        let found = findings(&root, &layout(None, vec![], "vfat")).unwrap();
        let f = found.iter().find(|f| f.id == MISSING).unwrap();
        assert_eq!(f.suggestions[0].recipe, "bootloader");
        assert!(
            f.evidence[0].text.contains("1 .mod files"),
            "{:?}",
            f.evidence
        );
        let dir = tree(&[esp, ("boot/grub2/i386-pc/normal.mod", b"x")]);
        assert!(!ids(dir.path(), &layout(None, vec![], "vfat")).contains(&MISSING.into()));
        // No BIOS modules at all (a UEFI-only GRUB): nothing to say.
        let dir = tree(&[esp, ("boot/grub/grub.cfg", b"x")]);
        assert!(!ids(dir.path(), &layout(None, vec![], "vfat")).contains(&MISSING.into()));
    }
}
