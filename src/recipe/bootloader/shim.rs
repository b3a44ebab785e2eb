//! The `bootloader` action for UEFI with shim and GRUB: the target's own
//! signed shim, MokManager and GRUB go back into the EFI System Partition,
//! under `EFI/<distro>/` and under the removable path `EFI/BOOT/` (which
//! firmware boots without an NVRAM entry: a rescue VM cannot reach the
//! broken VM's NVRAM). Every file comes from the target's installed
//! packages (`shim-signed`, `shim-helpers-*-signed`, `grub-efi-*-signed`);
//! nothing comes from the rescue VM, and an unsigned GRUB is never written.
//! Pure file copies through the journal: no program of the target runs.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::attach::Layout;
use crate::error::Failure;
use crate::recipe::plan::{ActionContext, Planned, PlannedChange, Workspace};
use crate::rootfs::RootDir;

/// Where the target's packages keep signed EFI binaries, per architecture:
/// (EFI suffix, shim/MokManager directory, signed GRUB directory).
const SIGNED_SOURCES: &[(&str, &str, &str)] = &[
    ("x64", "/usr/lib/shim", "/usr/lib/grub/x86_64-efi-signed"),
    ("aa64", "/usr/lib/shim", "/usr/lib/grub/arm64-efi-signed"),
];

/// One file to put on the ESP, and the package file it is a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFile {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// The target's signed files and where they go on an ESP mounted at `esp`.
pub fn esp_files(root: &RootDir, esp: &Path, vendor: &str) -> Result<Vec<EspFile>, Failure> {
    for (arch, shim_dir, grub_dir) in SIGNED_SOURCES {
        let signed = |dir: &str, name: &str| {
            [".signed.latest", ".signed"]
                .iter()
                .map(|suffix| PathBuf::from(format!("{dir}/{name}{suffix}")))
                .find(|p| root.is_file(p))
        };
        let shim = signed(shim_dir, &format!("shim{arch}.efi"));
        let grub = signed(grub_dir, &format!("grub{arch}.efi"));
        let (Some(shim), Some(grub)) = (shim, grub) else {
            continue;
        };
        let mm = signed(shim_dir, &format!("mm{arch}.efi"));
        let boot_name = format!("BOOT{}.EFI", arch.to_ascii_uppercase());
        let mut files = Vec::new();
        for dir in [format!("EFI/{vendor}"), "EFI/BOOT".to_string()] {
            let shim_name = if dir == "EFI/BOOT" {
                boot_name.clone()
            } else {
                format!("shim{arch}.efi")
            };
            let mut put = |from: &PathBuf, name: &str| {
                files.push(EspFile {
                    from: from.clone(),
                    to: esp.join(&dir).join(name),
                })
            };
            put(&shim, &shim_name);
            put(&grub, &format!("grub{arch}.efi"));
            if let Some(mm) = &mm {
                put(mm, &format!("mm{arch}.efi"));
            }
        }
        return Ok(files);
    }
    Err(Failure::Refused(
        "the target has no signed shim and GRUB to copy (/usr/lib/shim/shimx64.efi.signed and \
         /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed, from shim-signed and grub-efi-amd64-signed): \
         install them in the target, then run bootloader again"
            .into(),
    ))
}

/// Plans the signed shim and GRUB of a Debian-family target on the ESP
/// mounted at `esp`.
pub fn plan(
    ws: &mut Workspace,
    ctx: &ActionContext,
    layout: &Layout,
    esp: &Path,
    planned: &mut Planned,
) -> Result<()> {
    let vendor = ctx.facts.os_id.clone();
    let files = esp_files(ws.root(), esp, &vendor)?;
    for file in &files {
        plan_copy(ws, planned, file)?;
    }
    let cfg = esp.join(format!("EFI/{vendor}/grub.cfg"));
    if !ws.exists(&cfg) {
        let text = grub_stub(layout)?;
        planned.push(ws.write(
            &cfg,
            text,
            "the small grub.cfg the signed GRUB reads first: it finds /boot/grub/grub.cfg by filesystem UUID",
        )?);
    }
    planned.notes.push(
        "the broken VM's NVRAM cannot be reached from a rescue VM: the removable path EFI/BOOT/BOOTX64.EFI is what \
         makes the disk boot on any UEFI firmware"
            .into(),
    );
    Ok(())
}

fn plan_copy(ws: &Workspace, planned: &mut Planned, file: &EspFile) -> Result<()> {
    let bytes = ws.root().read(&file.from)?;
    let existing = if ws.root().is_file(&file.to) {
        Some(ws.root().read(&file.to)?)
    } else {
        None
    };
    if existing.as_deref() == Some(bytes.as_slice()) {
        return Ok(());
    }
    planned.changes.push(PlannedChange::Copy {
        from: file.from.clone(),
        path: file.to.clone(),
        bytes: bytes.len() as u64,
        sha256: crate::release::sha256_reader(bytes.as_slice())?,
        replaces: existing.is_some(),
        why: "the target's own signed boot file, from its package".into(),
    });
    Ok(())
}

/// Debian's ESP grub.cfg: find the filesystem holding /boot/grub by UUID.
fn grub_stub(layout: &Layout) -> Result<String> {
    let (device, prefix) = match layout.mounts.iter().find(|m| m.mount_point == "/boot") {
        Some(boot) => (boot.device.clone(), "/grub"),
        None => (
            layout
                .root_device
                .clone()
                .ok_or_else(|| Failure::Refused("the root device is not known".into()))?,
            "/boot/grub",
        ),
    };
    let uuid = crate::disk::blkid::probe(&device)?
        .and_then(|p| p.values.get("UUID").cloned())
        .ok_or_else(|| Failure::Refused(format!("{device} has no filesystem UUID")))?;
    Ok(format!(
        "search.fs_uuid {uuid} root\nset prefix=($root)'{prefix}'\nconfigfile $prefix/grub.cfg\n"
    ))
}

/// The `bootloader-installed` check for shim: every ESP file equals its
/// package file.
pub fn check_installed(root: &RootDir, esp: &Path, vendor: &str) -> Result<(bool, String)> {
    let files = esp_files(root, esp, vendor)?;
    let mut wrong = Vec::new();
    for file in &files {
        let same = root.is_file(&file.to) && root.read(&file.to)? == root.read(&file.from)?;
        if !same {
            wrong.push(file.to.display().to_string());
        }
    }
    Ok(if wrong.is_empty() {
        (
            true,
            format!(
                "{} ESP files equal the target's signed package files",
                files.len()
            ),
        )
    } else {
        (false, format!("missing or different: {}", wrong.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for path in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, path.as_bytes()).unwrap();
        }
        dir
    }

    #[test]
    fn the_signed_files_go_to_the_vendor_and_removable_paths() {
        let dir = tree(&[
            "usr/lib/shim/shimx64.efi.signed",
            "usr/lib/shim/mmx64.efi.signed",
            "usr/lib/shim/fbx64.efi.signed",
            "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        ]);
        let root = RootDir::open(dir.path()).unwrap();
        let files = esp_files(&root, Path::new("/boot/efi"), "debian").unwrap();
        let pairs: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.from.display().to_string(), f.to.display().to_string()))
            .collect();
        let shim = "/usr/lib/shim/shimx64.efi.signed".to_string();
        let grub = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed".to_string();
        let mm = "/usr/lib/shim/mmx64.efi.signed".to_string();
        assert_eq!(
            pairs,
            vec![
                (shim.clone(), "/boot/efi/EFI/debian/shimx64.efi".into()),
                (grub.clone(), "/boot/efi/EFI/debian/grubx64.efi".into()),
                (mm.clone(), "/boot/efi/EFI/debian/mmx64.efi".into()),
                (shim, "/boot/efi/EFI/BOOT/BOOTX64.EFI".into()),
                (grub, "/boot/efi/EFI/BOOT/grubx64.efi".into()),
                (mm, "/boot/efi/EFI/BOOT/mmx64.efi".into()),
            ],
            "no fbx64.efi: its reset would loop where NVRAM is not kept"
        );
    }

    #[test]
    fn the_latest_signed_shim_wins_and_unsigned_grub_is_refused() {
        let dir = tree(&[
            "usr/lib/shim/shimx64.efi.signed.latest",
            "usr/lib/shim/shimx64.efi.signed",
            "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        ]);
        let root = RootDir::open(dir.path()).unwrap();
        let files = esp_files(&root, Path::new("/boot/efi"), "ubuntu").unwrap();
        assert_eq!(
            files[0].from,
            PathBuf::from("/usr/lib/shim/shimx64.efi.signed.latest")
        );
        // Only the unsigned GRUB (grub-efi-amd64-bin): refused.
        let dir = tree(&[
            "usr/lib/shim/shimx64.efi.signed",
            "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi",
        ]);
        let root = RootDir::open(dir.path()).unwrap();
        let err = esp_files(&root, Path::new("/boot/efi"), "debian").unwrap_err();
        assert!(err.to_string().contains("no signed shim and GRUB"), "{err}");
    }
}
