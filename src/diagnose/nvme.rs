//! Whether the disk boots on an NVMe controller, as on NVMe-only sizes
//! (Azure v6 and Boost sizes, AWS Nitro, GCE C3): the default kernel's
//! initramfs must carry the `nvme` driver (or the kernel has it built in),
//! and nothing that finds a filesystem may name it by a SCSI, IDE, Xen or
//! virtio device path (`/dev/sda2`, `/dev/xvda1`, Azure's
//! `/dev/disk/azure/scsi1/lun0-part1`): on NVMe the disk is `nvme0n1`.

use std::path::Path;

use anyhow::Result;

use crate::inspect::cmdline::KernelCmdline;
use crate::inspect::fstab::Fstab;
use crate::rootfs::RootDir;
use crate::verify_boot::initramfs;

/// A kernel version and its initramfs image.
pub type KernelImage<'a> = (&'a str, &'a Path);
/// A kernel command line and the file that holds it.
pub type SourcedCmdline<'a> = (&'a str, &'a str);

/// A name that only exists on another controller, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerName {
    /// `/etc/fstab` or the file holding the default entry's command line.
    pub file: String,
    /// 1-based fstab line; 0 for a kernel argument.
    pub line: u64,
    /// `/dev/sda2` as written.
    pub name: String,
    /// `/boot` (fstab) or `root` / `resume` (kernel argument).
    pub used_as: String,
}

/// What keeps the disk from booting on NVMe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvmeReadiness {
    /// The default kernel's initramfs, when it has no `nvme` driver.
    pub initramfs_without_nvme: Option<String>,
    pub names: Vec<ControllerName>,
}

impl NvmeReadiness {
    pub fn ready(&self) -> bool {
        self.initramfs_without_nvme.is_none() && self.names.is_empty()
    }
}

/// True for device paths that name a disk by a non-NVMe controller.
pub fn controller_bound(name: &str) -> bool {
    let Some(dev) = name.strip_prefix("/dev/") else {
        return false;
    };
    if dev.starts_with("disk/azure/scsi") {
        return true;
    }
    let letters = ["sd", "xvd", "hd", "vd"]
        .iter()
        .find_map(|prefix| dev.strip_prefix(prefix));
    letters.is_some_and(|rest| {
        let disk: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !disk.is_empty() && rest[disk.len()..].chars().all(|c| c.is_ascii_digit())
    })
}

/// Whether `image` (the initramfs of kernel `version`) can drive NVMe:
/// `nvme` inside it or built into the kernel. `None` without an image.
pub fn initramfs_has_nvme(root: &RootDir, image: &Path, version: &str) -> Result<Option<bool>> {
    if !root.is_file(image) {
        return Ok(None);
    }
    let bytes = root.read_boot_image(image)?;
    // An empty or unreadable image is another finding's business
    // (`offline-initramfs-missing`, a boot that panics): say nothing here.
    let members = match initramfs::list(&bytes) {
        Ok(members) if !members.is_empty() => members,
        Ok(_) => return Ok(None),
        Err(err) => {
            tracing::debug!("{} is not a readable initramfs: {err:#}", image.display());
            return Ok(None);
        }
    };
    if initramfs::module_names(&members).contains("nvme") {
        return Ok(Some(true));
    }
    let builtin = root
        .read_string_optional(format!("/lib/modules/{version}/modules.builtin"))?
        .map(|text| initramfs::parse_builtin(&text))
        .unwrap_or_default();
    Ok(Some(builtin.contains("nvme")))
}

/// fstab lines and `root=`/`resume=` of the default command line that name
/// a device by a controller-bound path.
pub fn controller_names(fstab: &str, cmdline: Option<SourcedCmdline>) -> Vec<ControllerName> {
    let mut names: Vec<ControllerName> = Fstab::parse(fstab)
        .entries()
        .iter()
        .filter(|e| controller_bound(&e.spec))
        .map(|e| ControllerName {
            file: "/etc/fstab".into(),
            line: e.line as u64,
            name: e.spec.clone(),
            used_as: e.mount_point.clone(),
        })
        .collect();
    if let Some((file, text)) = cmdline {
        let args = KernelCmdline::parse(text);
        for key in ["root", "resume"] {
            for value in args.values(key).into_iter().flatten() {
                if controller_bound(&value) {
                    names.push(ControllerName {
                        file: file.to_string(),
                        line: 0,
                        name: value,
                        used_as: key.into(),
                    });
                }
            }
        }
    }
    names
}

/// The whole check: the default kernel's initramfs and every name.
pub fn readiness(
    root: &RootDir,
    default_kernel: Option<KernelImage>,
    cmdline: Option<SourcedCmdline>,
) -> Result<NvmeReadiness> {
    let mut result = NvmeReadiness::default();
    if let Some((version, image)) = default_kernel {
        if initramfs_has_nvme(root, image, version)? == Some(false) {
            result.initramfs_without_nvme = Some(image.display().to_string());
        }
    }
    let fstab = root.read_string_optional("/etc/fstab")?.unwrap_or_default();
    result.names = controller_names(&fstab, cmdline);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify_boot::initramfs::{write_newc, CpioEntry};

    #[test]
    fn controller_bound_names() {
        for name in [
            "/dev/sda2",
            "/dev/sdb",
            "/dev/xvda1",
            "/dev/vdb3",
            "/dev/hda1",
            "/dev/disk/azure/scsi1/lun0-part1",
        ] {
            assert!(controller_bound(name), "{name}");
        }
        for name in [
            "/dev/nvme0n1p2",
            "UUID=1234",
            "/dev/mapper/rootvg-rootlv",
            "/dev/disk/by-uuid/1234",
            "/dev/sdx-weird",
            "LABEL=root",
        ] {
            assert!(!controller_bound(name), "{name}");
        }
    }

    #[test]
    fn names_in_fstab_and_on_the_command_line() {
        let fstab = "UUID=abc / ext4 defaults 0 1\n/dev/sda1 /boot ext4 defaults 0 2\n/dev/disk/azure/scsi1/lun0-part1 /data xfs defaults,nofail 0 2\n";
        let names = controller_names(
            fstab,
            Some((
                "/boot/grub/grub.cfg",
                "BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro resume=UUID=x",
            )),
        );
        let found: Vec<(&str, &str, u64)> = names
            .iter()
            .map(|n| (n.name.as_str(), n.used_as.as_str(), n.line))
            .collect();
        assert_eq!(
            found,
            vec![
                ("/dev/sda1", "/boot", 2),
                ("/dev/disk/azure/scsi1/lun0-part1", "/data", 3),
                ("/dev/sda2", "root", 0)
            ]
        );
    }

    #[test]
    fn nvme_in_the_initramfs_or_built_in() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, bytes: &[u8]| {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        };
        let module = |name: &str| CpioEntry {
            name: format!("usr/lib/modules/6.1.0-1-amd64/kernel/drivers/{name}"),
            mode: 0o100644,
            data: Vec::new(),
        };
        write(
            "boot/with.img",
            &write_newc(&[module("nvme/host/nvme.ko"), module("block/virtio_blk.ko")]),
        );
        write(
            "boot/without.img",
            &write_newc(&[module("block/virtio_blk.ko")]),
        );
        let root = RootDir::open(dir.path()).unwrap();
        let has =
            |image: &str| initramfs_has_nvme(&root, Path::new(image), "6.1.0-1-amd64").unwrap();
        assert_eq!(has("/boot/with.img"), Some(true));
        assert_eq!(has("/boot/without.img"), Some(false));
        assert_eq!(has("/boot/missing.img"), None);
        write(
            "lib/modules/6.1.0-1-amd64/modules.builtin",
            b"kernel/drivers/nvme/host/nvme.ko\n",
        );
        assert_eq!(has("/boot/without.img"), Some(true));
    }
}
