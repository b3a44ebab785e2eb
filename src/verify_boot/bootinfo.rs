//! What the boot needs from the mounted (read-only) target: the effective
//! default entry (the same logic as `inspect`), copies of its kernel and
//! initramfs in the work directory, what drivers that initramfs carries,
//! and — for `--add-drivers` — an extra archive with the target's own modules.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::initramfs::{self, Controller, CpioEntry, DriverSupport, ModulesDep};
use crate::inspect::boot_default::{effective_default, Bootloader};
use crate::rootfs::RootDir;

/// Module index files shipped with added modules so modprobe and udev
/// inside the initramfs find them (the target's own, never regenerated).
const MODULE_INDEXES: &[&str] = &[
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin",
    "modules.builtin.bin",
    "modules.builtin.modinfo",
    "modules.order",
    "modules.devname",
];

#[derive(Debug, Default)]
pub struct BootInfo {
    pub bootloader: Option<Bootloader>,
    pub kernel_version: Option<String>,
    /// The default entry's command line, boot loader variables expanded.
    pub cmdline: Option<String>,
    /// Copy of the kernel in the work directory.
    pub kernel: Option<PathBuf>,
    /// Copies of the initramfs files, in the order the entry loads them.
    pub initramfs: Vec<PathBuf>,
    /// The initramfs members, when it could be read.
    pub members: Option<Vec<String>>,
    /// Drivers in the initramfs plus built-in ones (None: no initramfs to read).
    pub support: Option<DriverSupport>,
    /// Built-in modules (`modules.builtin`).
    pub builtin: BTreeSet<String>,
    /// The target has GRUB's BIOS modules (`i386-pc`).
    pub grub_bios: bool,
    pub notes: Vec<String>,
}

impl BootInfo {
    /// `console=ttyS0…` on the command line: the boot loader's own boot is visible.
    pub fn has_serial_console(&self) -> bool {
        self.cmdline.as_deref().is_some_and(|c| {
            c.split_whitespace()
                .any(|a| a.starts_with("console=ttyS0") || a == "console=ttyS0")
        })
    }
}

/// Copies a target file to the host with `openat2(RESOLVE_IN_ROOT)`.
fn copy_out(root: &RootDir, target_path: &str, to: &Path) -> Result<()> {
    let fd = root
        .open_fd(target_path, OFlag::O_RDONLY, Mode::empty())
        .with_context(|| format!("opening {target_path} on the target"))?;
    let mut from = File::from(fd);
    let mut out = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut from, &mut out)
        .with_context(|| format!("copying {target_path} to {}", to.display()))?;
    out.flush()
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}

/// Reads everything the boot needs; problems become notes, not errors,
/// because a boot loader boot needs none of it.
pub fn read(root: &RootDir, work: &Path) -> Result<BootInfo> {
    let mut info = BootInfo {
        grub_bios: root.is_dir("/boot/grub/i386-pc") || root.is_dir("/boot/grub2/i386-pc"),
        ..Default::default()
    };
    let default = match effective_default(root) {
        Ok(default) => default,
        Err(err) => {
            info.notes
                .push(format!("no default boot entry could be read: {err:#}"));
            return Ok(info);
        }
    };
    info.bootloader = Some(default.bootloader);
    let entry = default.entry;
    info.kernel_version = entry.kernel_version.clone();
    info.cmdline = entry.cmdline.clone();
    if let Some(version) = &entry.kernel_version {
        if let Some(text) =
            root.read_string_optional(format!("/lib/modules/{version}/modules.builtin"))?
        {
            info.builtin = initramfs::parse_builtin(&text);
        }
    }
    match &entry.image_path {
        Some(image) => {
            let to = work.join("vmlinuz");
            match copy_out(root, image, &to) {
                Ok(()) => info.kernel = Some(to),
                Err(err) => info.notes.push(format!("{err:#}")),
            }
        }
        None => info.notes.push(format!(
            "the kernel of the default entry ({}) is not on the target",
            entry.image.as_deref().unwrap_or("none named")
        )),
    }
    let mut images = Vec::new();
    for (index, path) in entry.initramfs_paths.iter().enumerate() {
        let to = work.join(format!("initramfs-{index}.img"));
        match copy_out(root, path, &to) {
            Ok(()) => {
                info.initramfs.push(to.clone());
                images.push((path.clone(), to));
            }
            Err(err) => info.notes.push(format!(
                "the default entry's initramfs {path} cannot be read: {err:#}"
            )),
        }
    }
    if entry.initramfs_paths.len() < entry.initramfs.len() {
        info.notes.push(format!(
            "the default entry's initramfs ({}) is missing on the target",
            entry.initramfs.join(", ")
        ));
    } else if entry.initramfs.is_empty() {
        info.notes
            .push("the default entry loads no initramfs".to_string());
    }
    if !images.is_empty() {
        let mut members = Vec::new();
        let mut readable = true;
        for (target_path, copy) in &images {
            let bytes =
                std::fs::read(copy).with_context(|| format!("reading {}", copy.display()))?;
            match initramfs::list(&bytes) {
                Ok(names) => members.extend(names),
                Err(err) => {
                    readable = false;
                    info.notes.push(format!(
                        "cannot list {target_path}: {err:#} (drivers not checked)"
                    ));
                }
            }
        }
        if readable {
            let modules = initramfs::module_names(&members);
            info.support = Some(initramfs::driver_support(&modules, &info.builtin));
            info.members = Some(members);
        }
    }
    Ok(info)
}

/// An extra `newc` archive carrying the modules `controller` needs (and
/// their dependencies from modules.dep) from the target's own
/// `/lib/modules/<version>`, plus the module indexes, laid out where the
/// initramfs keeps its modules. Nothing on the target changes.
pub fn driver_archive(root: &RootDir, info: &BootInfo, controller: Controller) -> Result<Vec<u8>> {
    let version = info
        .kernel_version
        .as_deref()
        .context("the default entry names no kernel version: cannot pick its modules")?;
    let base = format!("/lib/modules/{version}");
    let dep_text = root
        .read_string_optional(format!("{base}/modules.dep"))?
        .with_context(|| format!("{base}/modules.dep is missing on the target"))?;
    let dep = ModulesDep::parse(&dep_text);
    let missing: Vec<&str> = controller
        .modules()
        .iter()
        .copied()
        .filter(|m| !dep.contains(m) && !info.builtin.contains(*m))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "kernel {version} has no {} module for {}",
            missing.join(", "),
            controller.id()
        );
    }
    let prefix = format!(
        "{}/{version}",
        info.members
            .as_deref()
            .map(initramfs::modules_prefix)
            .unwrap_or("lib/modules")
    );
    let files = dep.closure(controller.modules().iter().copied());
    let mut names: Vec<String> = files.iter().map(|f| format!("{prefix}/{f}")).collect();
    let indexes: Vec<&str> = MODULE_INDEXES
        .iter()
        .copied()
        .filter(|name| root.is_file(format!("{base}/{name}")))
        .collect();
    names.extend(indexes.iter().map(|i| format!("{prefix}/{i}")));
    let mut entries = initramfs::parent_dirs(names.iter().map(String::as_str));
    for relative in files
        .iter()
        .map(String::as_str)
        .chain(indexes.iter().copied())
    {
        let data = root
            .read(format!("{base}/{relative}"))
            .with_context(|| format!("reading {base}/{relative} on the target"))?;
        entries.push(CpioEntry {
            name: format!("{prefix}/{relative}"),
            mode: 0o100644,
            data,
        });
    }
    tracing::info!(
        "extra initramfs archive for {}: {}",
        controller.id(),
        files.join(" ")
    );
    Ok(initramfs::write_newc(&entries))
}

/// The initrd QEMU loads: the entry's initramfs files in order, then the
/// extra archive, each padded to 4 bytes as the kernel expects.
pub fn combined_initrd(parts: &[PathBuf], extra: Option<&[u8]>, to: &Path) -> Result<()> {
    let mut out = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let mut written: u64 = 0;
    for part in parts {
        let mut input = File::open(part).with_context(|| format!("opening {}", part.display()))?;
        written += std::io::copy(&mut input, &mut out)
            .with_context(|| format!("copying {} into {}", part.display(), to.display()))?;
        let pad = (4 - written % 4) % 4;
        out.write_all(&vec![0; pad as usize])
            .with_context(|| format!("writing {}", to.display()))?;
        written += pad;
    }
    if let Some(extra) = extra {
        out.write_all(extra)
            .with_context(|| format!("writing {}", to.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", to.display()))
}

/// The direct-boot command line: the entry's, plus `console=ttyS0` unless
/// the last console already is the serial port.
pub fn direct_cmdline(cmdline: Option<&str>) -> String {
    let cmdline = cmdline.unwrap_or("").trim();
    let mut args: Vec<&str> = cmdline.split_whitespace().collect();
    let last_console = args
        .iter()
        .filter_map(|a| a.strip_prefix("console="))
        .next_back();
    if !last_console.is_some_and(|c| c.starts_with("ttyS0")) {
        args.push("console=ttyS0");
    }
    // `quiet` hides the kernel and systemd lines the stages are read from;
    // these come later on the line and only change what is printed.
    if args.contains(&"quiet") {
        args.extend(QUIET_OVERRIDES);
    }
    args.join(" ")
}

/// Appended after `quiet` for a direct boot (see [`direct_cmdline`]).
pub const QUIET_OVERRIDES: [&str; 2] = ["loglevel=6", "systemd.show_status=1"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_console_is_added_only_when_missing_last() {
        assert_eq!(
            direct_cmdline(Some("root=UUID=x ro quiet")),
            "root=UUID=x ro quiet console=ttyS0 loglevel=6 systemd.show_status=1"
        );
        assert_eq!(
            direct_cmdline(Some("root=UUID=x ro")),
            "root=UUID=x ro console=ttyS0"
        );
        assert_eq!(
            direct_cmdline(Some("root=/dev/sda1 console=ttyS0,115200 panic=-1")),
            "root=/dev/sda1 console=ttyS0,115200 panic=-1"
        );
        assert_eq!(
            direct_cmdline(Some("console=ttyS0,115200n8 console=tty1")),
            "console=ttyS0,115200n8 console=tty1 console=ttyS0"
        );
        assert_eq!(direct_cmdline(None), "console=ttyS0");
    }

    #[test]
    fn initrd_parts_are_padded_and_the_extra_archive_follows() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"12345").unwrap();
        let to = dir.path().join("out");
        combined_initrd(&[a], Some(b"XYZ"), &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"12345\0\0\0XYZ");
    }

    #[test]
    fn driver_archive_carries_the_closure_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("lib/modules/6.1.0-9-amd64");
        std::fs::create_dir_all(base.join("kernel/drivers/block")).unwrap();
        std::fs::create_dir_all(base.join("kernel/drivers/virtio")).unwrap();
        std::fs::write(
            base.join("modules.dep"),
            "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\n\
             kernel/drivers/virtio/virtio_ring.ko.xz:\n",
        )
        .unwrap();
        std::fs::write(
            base.join("modules.alias"),
            "alias virtio:d00000002v* virtio_blk\n",
        )
        .unwrap();
        std::fs::write(base.join("kernel/drivers/block/virtio_blk.ko.xz"), "blk").unwrap();
        std::fs::write(base.join("kernel/drivers/virtio/virtio_ring.ko.xz"), "ring").unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let info = BootInfo {
            kernel_version: Some("6.1.0-9-amd64".into()),
            builtin: ["virtio_pci".to_string()].into_iter().collect(),
            members: Some(vec!["usr/lib/modules/6.1.0-9-amd64/modules.dep".into()]),
            ..Default::default()
        };
        let archive = driver_archive(&root, &info, Controller::VirtioBlk).unwrap();
        let names = initramfs::list(&archive).unwrap();
        let p = "usr/lib/modules/6.1.0-9-amd64";
        for want in [
            format!("{p}/kernel/drivers/virtio/virtio_ring.ko.xz"),
            format!("{p}/kernel/drivers/block/virtio_blk.ko.xz"),
            format!("{p}/modules.dep"),
            format!("{p}/modules.alias"),
            "usr".to_string(),
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let err = driver_archive(&root, &info, Controller::Nvme).unwrap_err();
        assert!(format!("{err:#}").contains("no nvme module"), "{err:#}");
    }
}
