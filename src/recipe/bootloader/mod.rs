//! The `bootloader` action: puts back what runs before the kernel, from the
//! target's own installed packages (nothing comes from the rescue VM):
//! - UEFI with shim and GRUB ([`shim`]): the signed files copied to the ESP;
//! - BIOS with GRUB ([`bios`], when added): the target's grub-install in the
//!   sandbox, the disk's boot code and embedding area journaled.
//!
//! The firmware kinds are independent: an Azure Gen1/Gen2 hybrid image has
//! both a BIOS boot partition and an ESP, and gets both.

mod shim;

pub use shim::{esp_files, EspFile};

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::plan::{ActionContext, Planned, Workspace};
use crate::attach::Layout;
use crate::error::Failure;
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
    let esp = mounted_esp(layout).ok_or_else(|| {
        Failure::Refused(
            "no EFI System Partition is mounted at /boot/efi: a BIOS target (this recipe does not write BIOS \
             boot code: run the target's grub-install --target=i386-pc DISK in `vmrescue chroot --rw`), an \
             fstab line that does not find the ESP (repair fix-mounts first), or a rescue VM without vfat"
                .into(),
        )
    })?;
    shim::plan(ws, ctx, layout, &esp, planned)
}

/// The ESP's mount point in the target (`/boot/efi` or `/efi`), when
/// vmrescue mounted it.
fn mounted_esp(layout: &Layout) -> Option<PathBuf> {
    layout
        .mounts
        .iter()
        .find(|m| (m.mount_point == "/boot/efi" || m.mount_point == "/efi") && m.fstype == "vfat")
        .map(|m| PathBuf::from(&m.mount_point))
}

/// The `boot-loader-installed` check: each boot loader the plan would put
/// back is in place.
pub fn check_installed(
    root: &RootDir,
    layout: Option<&Layout>,
    vendor: &str,
) -> Result<(bool, String)> {
    let Some(layout) = layout else {
        return Ok((false, "no disk: the boot loader was not checked".into()));
    };
    let Some(esp) = mounted_esp(layout) else {
        return Ok((false, "no EFI System Partition is mounted".into()));
    };
    shim::check_installed(root, Path::new(&esp), vendor)
}
