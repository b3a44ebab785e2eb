//! GRUB on BIOS: the target's own `grub-install --target=i386-pc DISK`
//! (grub2-install on RHEL) in the sandbox, onto the target disk only. It
//! writes the MBR's boot code, core.img into the embedding area (the gap
//! after the MBR, or the BIOS boot partition on GPT) and the modules into
//! /boot/grub/i386-pc; all three are journaled (see
//! [`super::installer`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::attach::Layout;
use crate::error::Failure;
use crate::journal::{read_region, DiskRegion};
use crate::recipe::plan::{DiskWrite, Planned, PlannedChange};
use crate::rootfs::RootDir;

/// Where the package keeps GRUB for BIOS (boot.img and the modules).
const MODULES: &str = "/usr/lib/grub/i386-pc";
/// The MBR's boot code: everything before the disk signature (0x1B8).
const BOOT_CODE: u64 = 440;
/// Below this, core.img (about 30 KiB with the usual modules) does not fit.
const MIN_EMBED: u64 = 31 << 10;

/// The target's GRUB for BIOS: the installer and the directory it fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiosGrub {
    pub installer: &'static str,
    /// `/boot/grub` (Debian, SUSE) or `/boot/grub2` (RHEL).
    pub dir: PathBuf,
}

/// The target's GRUB for BIOS, when it is installed: an installer and
/// the i386-pc modules it copies from.
pub fn installed(root: &RootDir) -> Option<BiosGrub> {
    if !root.is_file(Path::new(MODULES).join("boot.img")) {
        return None;
    }
    [
        ("grub-install", "/boot/grub"),
        ("grub2-install", "/boot/grub2"),
    ]
    .into_iter()
    .find(|(tool, _)| root.has_program(tool))
    .map(|(installer, dir)| BiosGrub {
        installer,
        dir: PathBuf::from(dir),
    })
}

/// Where GRUB puts its boot code on `layout`'s disk: the MBR's first 440
/// bytes and the embedding area. `Ok(None)` for a disk GRUB cannot boot
/// from BIOS (GPT without a BIOS boot partition: a UEFI-only disk).
pub fn boot_regions(layout: &Layout, disk: &str) -> Result<Option<Vec<DiskRegion>>> {
    let table = crate::disk::blkid::probe(disk)?
        .and_then(|p| p.get("PTTYPE").map(str::to_string))
        .unwrap_or_default();
    let code = DiskRegion {
        offset: 0,
        length: BOOT_CODE,
        what: "the MBR boot code".into(),
    };
    let parts: Vec<_> = layout.nodes.iter().filter(|n| n.kind == "part").collect();
    let embed = match table.as_str() {
        "dos" => {
            let mut first = u64::MAX;
            for part in &parts {
                first = first.min(sysfs_sectors(&part.name, "start")?);
            }
            let end = first.saturating_mul(512);
            if first == u64::MAX || end < 512 + MIN_EMBED {
                return Err(Failure::Refused(format!(
                    "{disk}'s first partition starts at sector {first}: no room after the MBR for GRUB's core.img"
                ))
                .into());
            }
            DiskRegion {
                offset: 512,
                length: end - 512,
                what: "the gap between the MBR and the first partition (core.img)".into(),
            }
        }
        "gpt" => {
            let Some(part) = parts.iter().find(|n| n.is_bios_boot()) else {
                return Ok(None);
            };
            DiskRegion {
                offset: sysfs_sectors(&part.name, "start")? * 512,
                length: sysfs_sectors(&part.name, "size")? * 512,
                what: format!("the BIOS boot partition {} (core.img)", part.device),
            }
        }
        other => {
            return Err(Failure::Refused(format!(
                "{disk} has no partition table GRUB knows (blkid PTTYPE {other:?})"
            ))
            .into())
        }
    };
    Ok(Some(vec![code, embed]))
}

/// A partition's `start` or `size` in 512-byte sectors, from sysfs.
fn sysfs_sectors(name: &str, field: &str) -> Result<u64> {
    let path = Path::new("/sys/class/block").join(name).join(field);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{}: not a sector count: {text:?}", path.display()))
}

/// Plans grub-install onto the target disk, unless GRUB is in place: its
/// boot code and core.img on the disk (see [`check`]) and every module of
/// the package in `<dir>/i386-pc`.
pub fn plan(
    root: &RootDir,
    grub: &BiosGrub,
    disk: &str,
    regions: Vec<DiskRegion>,
    planned: &mut Planned,
) -> Result<()> {
    if check(root, grub, disk, &regions)?.0 && modules_in_place(root, grub)? {
        planned.notes.push(format!(
            "GRUB for BIOS is in place on {disk}: its boot code, core.img and every module in {}/i386-pc",
            grub.dir.display()
        ));
        return Ok(());
    }
    planned.changes.push(PlannedChange::InstallBootLoader {
        argv: vec![
            grub.installer.to_string(),
            "--target=i386-pc".to_string(),
            disk.to_string(),
        ],
        env: Vec::new(),
        trees: vec![grub.dir.clone()],
        disk: Some(DiskWrite {
            device: disk.to_string(),
            regions,
        }),
        why: format!(
            "the target's own GRUB for BIOS: boot code in the MBR, core.img after it, modules in {}/i386-pc",
            grub.dir.display()
        ),
    });
    Ok(())
}

/// Every module of the package has an equal copy where GRUB loads it from.
fn modules_in_place(root: &RootDir, grub: &BiosGrub) -> Result<bool> {
    let source = Path::new(MODULES);
    for entry in root.list_dir(source)? {
        let name = Path::new(&entry.name);
        if name.extension().is_none_or(|ext| ext != "mod") {
            continue;
        }
        let copy = grub.dir.join("i386-pc").join(name);
        if !root.is_file(&copy) || root.read(&copy)? != root.read(source.join(name))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The BIOS half of `boot-loader-installed`: GRUB's boot code in the MBR,
/// the embedded core.img equal to `<dir>/i386-pc/core.img` (which
/// grub-install made for the prefix `<dir>`), and that prefix holding
/// normal.mod, which core.img loads next.
pub fn check(
    root: &RootDir,
    grub: &BiosGrub,
    disk: &str,
    regions: &[DiskRegion],
) -> Result<(bool, String)> {
    let device = Path::new(disk);
    let mut wrong = Vec::new();
    let code = read_region(device, &regions[0])?;
    if !code.windows(4).any(|w| w == b"GRUB") {
        wrong.push(format!("{disk}'s boot code is not GRUB's"));
    }
    let core_path = grub.dir.join("i386-pc/core.img");
    let normal = grub.dir.join("i386-pc/normal.mod");
    if !root.is_file(&normal) {
        wrong.push(format!("{} is missing", normal.display()));
    }
    if root.is_file(&core_path) {
        let core = root.read(&core_path)?;
        let embedded = read_region(device, &regions[1])?;
        if !same_core(&core, &embedded) {
            wrong.push(format!(
                "the core.img embedded in {} is not {}",
                regions[1].what,
                core_path.display()
            ));
        }
    } else {
        wrong.push(format!("{} is missing", core_path.display()));
    }
    Ok(if wrong.is_empty() {
        (
            true,
            format!(
                "{disk} starts GRUB's boot code; the embedded core.img is {} (prefix {}, normal.mod present)",
                core_path.display(),
                grub.dir.display()
            ),
        )
    } else {
        (false, wrong.join("; "))
    })
}

/// core.img as grub-bios-setup embeds it, byte for byte except what it
/// patches: diskboot's blocklist (the last 12 bytes of the first sector)
/// and the Reed-Solomon length (bytes 16..20 of the second sector).
fn same_core(core: &[u8], embedded: &[u8]) -> bool {
    if core.len() < 1024 || embedded.len() < core.len() {
        return false;
    }
    let ranges = [0..500, 512..528, 532..core.len()];
    ranges.into_iter().all(|r| core[r.clone()] == embedded[r])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_core_may_differ_only_where_grub_bios_setup_patches_it() {
        let core: Vec<u8> = (0..27026u32).map(|i| (i % 253) as u8).collect();
        let mut embedded = core.clone();
        embedded.extend_from_slice(&[0xAA; 4096]); // Reed-Solomon bytes after it
        embedded[508] ^= 0xFF; // blocklist length
        embedded[528] ^= 0xFF; // redundancy
        embedded[529] ^= 0xFF;
        assert!(same_core(&core, &embedded));
        embedded[2000] ^= 1;
        assert!(!same_core(&core, &embedded), "a changed module byte");
        assert!(!same_core(&core, &core[..1000]), "too short");
    }

    #[test]
    fn grub_for_bios_needs_its_modules_and_an_installer() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        assert_eq!(installed(&root), None);
        std::fs::create_dir_all(dir.path().join("usr/lib/grub/i386-pc")).unwrap();
        std::fs::write(dir.path().join("usr/lib/grub/i386-pc/boot.img"), [0u8; 512]).unwrap();
        assert_eq!(installed(&root), None, "modules without an installer");
        std::fs::create_dir_all(dir.path().join("usr/sbin")).unwrap();
        std::fs::write(dir.path().join("usr/sbin/grub2-install"), b"").unwrap();
        assert_eq!(
            installed(&root),
            Some(BiosGrub {
                installer: "grub2-install",
                dir: PathBuf::from("/boot/grub2")
            })
        );
        std::fs::write(dir.path().join("usr/sbin/grub-install"), b"").unwrap();
        assert_eq!(installed(&root).unwrap().dir, PathBuf::from("/boot/grub"));
    }
}
