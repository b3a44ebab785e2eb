//! The `bootloader` action: puts back what runs before the kernel, from the
//! target's own installed packages (nothing comes from the rescue VM):
//! - UEFI with shim and GRUB ([`shim`]): the signed files copied to the ESP;
//! - UEFI with systemd-boot ([`systemd_boot`]): the target's bootctl;
//! - BIOS with GRUB ([`bios`]): the target's grub-install onto the target
//!   disk, its boot code journaled ([`installer`]);
//! - a missing or empty grub.cfg: the target's grub-mkconfig.
//!
//! The firmware kinds are independent: an Azure image made for Gen1 and
//! Gen2 has both a BIOS boot partition and an ESP, and gets both.

mod bios;
pub(crate) mod installer;
mod shim;
mod systemd_boot;

pub use shim::{esp_files, EspFile};

use std::path::PathBuf;

use anyhow::Result;

use super::facts::{Facts, Family};
use super::plan::{ActionContext, Planned, PlannedChange, Workspace};
use crate::attach::Layout;
use crate::error::Failure;
use crate::inspect::grub_cfg::GrubCfg;
use crate::rootfs::RootDir;

/// Plans every boot loader the target has. Refuses what it cannot do
/// right: no disk, no loader it knows how to put back.
pub fn reinstall_boot_loader(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
) -> Result<()> {
    let layout = ctx.layout.ok_or_else(|| {
        Failure::Refused(
            "bootloader writes the boot loader of a disk: name the disk (--disk or --image)".into(),
        )
    })?;
    let mut grub = false;
    let mut planned_any = false;
    let mut esp_skipped = None;
    if let Some(esp) = mounted_esp(layout) {
        match esp_loader(ws.root(), ctx.facts, &esp) {
            EspLoader::SystemdBoot => systemd_boot::plan(&esp, planned),
            EspLoader::Shim => {
                shim::plan(ws, ctx, layout, &esp, planned)?;
                grub = true;
            }
            EspLoader::Unavailable(why) => esp_skipped = Some(why),
        }
        planned_any = esp_skipped.is_none();
    }
    if let Some((bios_grub, disk, regions)) = bios_target(ws.root(), layout)? {
        bios::plan(ws.root(), &bios_grub, &disk, regions, planned)?;
        grub = true;
        planned_any = true;
    }
    match (planned_any, esp_skipped) {
        (false, why) => {
            return Err(Failure::Refused(why.unwrap_or_else(|| {
                "no boot loader to put back: no EFI System Partition is mounted (an fstab line that does not find \
                 it: repair fix-mounts first; or a rescue VM without vfat) and the target has no GRUB for BIOS \
                 (/usr/lib/grub/i386-pc and grub-install) on a disk with room for it"
                    .into()
            }))
            .into())
        }
        (true, Some(why)) => planned
            .notes
            .push(format!("the EFI System Partition is left as it is: {why}")),
        (true, None) => {}
    }
    if grub {
        regenerate_missing_grub_cfg(ws, ctx, planned)?;
    }
    Ok(())
}

/// The boot loader on a mounted ESP, as this recipe can put it back.
enum EspLoader {
    SystemdBoot,
    Shim,
    /// Not from here: why, for the plan or the refusal.
    Unavailable(String),
}

fn esp_loader(root: &RootDir, facts: &Facts, esp: &std::path::Path) -> EspLoader {
    if systemd_boot::in_use(root, esp, facts.systemd_boot_conf.as_deref()) {
        if systemd_boot::installed(root).is_some() {
            return EspLoader::SystemdBoot;
        }
        return EspLoader::Unavailable(format!(
            "systemd-boot is the boot loader on the ESP at {} but the target has no bootctl and systemd-boot image \
             (/usr/bin/bootctl, /usr/lib/systemd/boot/efi/systemd-bootx64.efi: Debian's systemd-boot package): \
             install it in the target, then run bootloader again",
            esp.display()
        ));
    }
    if facts.family != Family::Debian {
        return EspLoader::Unavailable(format!(
            "bootloader restores shim and GRUB from Debian-family packages only; on {} their files live on the ESP \
             alone: reinstall the shim and grub2-efi packages in a chroot with network access",
            facts.os_id
        ));
    }
    EspLoader::Shim
}

/// GRUB for BIOS, the target disk and its boot-code regions, when the
/// target has GRUB for BIOS and the disk can boot it.
fn bios_target(
    root: &RootDir,
    layout: &Layout,
) -> Result<Option<(bios::BiosGrub, String, Vec<crate::journal::DiskRegion>)>> {
    let (Some(grub), Some(disk)) = (bios::installed(root), layout.disk.as_ref()) else {
        return Ok(None);
    };
    Ok(bios::boot_regions(layout, disk)?.map(|regions| (grub, disk.clone(), regions)))
}

/// A GRUB whose grub.cfg is missing, empty or has nothing to boot stops
/// at its prompt: the target's own grub-mkconfig writes it again.
fn regenerate_missing_grub_cfg(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
) -> Result<()> {
    let (generator, cfg) = match ctx.facts.family {
        Family::Debian => ("grub-mkconfig", "/boot/grub/grub.cfg"),
        _ => ("grub2-mkconfig", "/boot/grub2/grub.cfg"),
    };
    let text = ws.read(cfg)?.unwrap_or_default();
    let parsed = GrubCfg::parse(&text);
    // A file that chains to or sources another one is not ours to replace.
    let chains = text.lines().any(|line| {
        let word = line.split_whitespace().next().unwrap_or("");
        word == "configfile" || word == "source"
    });
    if !parsed.linux_commands().is_empty() || parsed.uses_blscfg() || chains {
        return Ok(());
    }
    // The boot loader itself is still worth putting back: say plainly that
    // GRUB will stop at its prompt until grub.cfg is written.
    if !ws.root().has_program(generator) {
        planned.notes.push(format!(
            "{cfg} is missing or has no boot entry and the target has no {generator} to write it: GRUB will stop \
             at its prompt until it is written (install grub2-common in the target, then run bootloader again)"
        ));
        return Ok(());
    }
    planned.changes.push(PlannedChange::Command {
        argv: vec![generator.into(), "-o".into(), cfg.into()],
        rewrites: vec![PathBuf::from(cfg)],
        kernel: None,
        why: format!(
            "{cfg} is missing or has no boot entry: the target's own {generator} writes it"
        ),
    });
    Ok(())
}

/// The ESP's mount point in the target (`/boot/efi`, `/efi`, or `/boot`
/// for systemd-boot), when vmrescue mounted it.
fn mounted_esp(layout: &Layout) -> Option<PathBuf> {
    ["/boot/efi", "/efi", "/boot"].iter().find_map(|point| {
        layout
            .mounts
            .iter()
            .find(|m| m.mount_point == *point && m.fstype == "vfat")
            .map(|m| PathBuf::from(&m.mount_point))
    })
}

/// The `boot-loader-installed` check: each boot loader the plan would put
/// back is in place.
pub fn check_installed(
    root: &RootDir,
    layout: Option<&Layout>,
    facts: &Facts,
) -> Result<(bool, String)> {
    let Some(layout) = layout else {
        return Ok((false, "no disk: the boot loader was not checked".into()));
    };
    let mut results = Vec::new();
    if let Some(esp) = mounted_esp(layout) {
        match esp_loader(root, facts, &esp) {
            EspLoader::SystemdBoot => results.push(systemd_boot::check(root, &esp)?),
            EspLoader::Shim => results.push(shim::check_installed(root, &esp, &facts.os_id)?),
            EspLoader::Unavailable(_) => {}
        }
    }
    if let Some((grub, disk, regions)) = bios_target(root, layout)? {
        results.push(bios::check(root, &grub, &disk, &regions)?);
    }
    if results.is_empty() {
        return Ok((
            false,
            "no EFI System Partition is mounted and no GRUB for BIOS was found".into(),
        ));
    }
    let ok = results.iter().all(|(ok, _)| *ok);
    let detail: Vec<String> = results.into_iter().map(|(_, d)| d).collect();
    Ok((ok, detail.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian(grub_cfg: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let put = |path: &str, text: &str| {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        put("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        put("usr/sbin/grub-mkconfig", "");
        if let Some(text) = grub_cfg {
            put("boot/grub/grub.cfg", text);
        }
        dir
    }

    fn regenerates(grub_cfg: Option<&str>) -> bool {
        let dir = debian(grub_cfg);
        let root = RootDir::open(dir.path()).unwrap();
        let facts = Facts::gather(&root).unwrap();
        let ctx = ActionContext {
            facts: &facts,
            layout: None,
        };
        let mut ws = Workspace::new(&root);
        let mut planned = Planned::default();
        regenerate_missing_grub_cfg(&mut ws, &ctx, &mut planned).unwrap();
        match planned.changes.as_slice() {
            [] => false,
            [PlannedChange::Command { argv, .. }] => {
                assert_eq!(argv, &["grub-mkconfig", "-o", "/boot/grub/grub.cfg"]);
                true
            }
            other => panic!("unexpected plan {other:?}"),
        }
    }

    #[test]
    fn grub_mkconfig_writes_a_missing_or_empty_grub_cfg_only() {
        assert!(regenerates(None), "missing");
        assert!(regenerates(Some("")), "empty");
        assert!(
            regenerates(Some("set timeout=5\n### BEGIN /etc/grub.d/10_linux ###\n")),
            "truncated"
        );
        let full = "menuentry 'Debian' {\n\tlinux /boot/vmlinuz-6.1.0-50-amd64 root=UUID=x ro\n}\n";
        assert!(!regenerates(Some(full)));
        // Without the generator: a note, and the boot loader is still planned.
        let dir = crate::testutil::tree(&[("etc/os-release", b"ID=debian\n")]);
        let root = RootDir::open(dir.path()).unwrap();
        let facts = Facts::gather(&root).unwrap();
        let ctx = ActionContext {
            facts: &facts,
            layout: None,
        };
        let mut planned = Planned::default();
        regenerate_missing_grub_cfg(&mut Workspace::new(&root), &ctx, &mut planned).unwrap();
        assert!(planned.changes.is_empty());
        assert!(
            planned.notes[0].contains("no grub-mkconfig"),
            "{:?}",
            planned.notes
        );
        assert!(
            !regenerates(Some(
                "search --fs-uuid x\nconfigfile ($root)/grub2/grub.cfg\n"
            )),
            "a stub"
        );
    }

    #[test]
    fn the_esp_loader_is_systemd_boot_shim_or_not_from_here() {
        let loader = |files: &[(&str, &[u8])], esp: &str| {
            let dir = crate::testutil::tree(files);
            let root = RootDir::open(dir.path()).unwrap();
            let facts = Facts::gather(&root).unwrap();
            match esp_loader(&root, &facts, std::path::Path::new(esp)) {
                EspLoader::SystemdBoot => "systemd-boot".to_string(),
                EspLoader::Shim => "shim".to_string(),
                EspLoader::Unavailable(why) => why,
            }
        };
        let debian: (&str, &[u8]) = ("etc/os-release", b"ID=debian\n");
        let rhel: (&str, &[u8]) = ("etc/os-release", b"ID=rhel\nID_LIKE=\"fedora\"\n");
        let conf: (&str, &[u8]) = ("boot/loader/loader.conf", b"timeout 1\n");
        let bootctl: (&str, &[u8]) = ("usr/bin/bootctl", b"");
        let image: (&str, &[u8]) = ("usr/lib/systemd/boot/efi/systemd-bootx64.efi", b"sd");
        assert_eq!(
            loader(&[debian, conf, bootctl, image], "/boot"),
            "systemd-boot"
        );
        assert!(loader(&[debian, conf, image], "/boot").contains("no bootctl"));
        assert_eq!(loader(&[debian], "/boot/efi"), "shim");
        assert!(loader(&[rhel], "/boot/efi").contains("Debian-family packages only"));
    }
}
