//! What the recipe actions need to know about the target OS, gathered once
//! from the mounted root (read-only). Data flows one way: inspect → facts →
//! plan.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::inspect::bls::{expand_grub_vars, BlsEntry};
use crate::inspect::grub_cfg::GrubCfg;
use crate::inspect::grubenv::Grubenv;
use crate::rootfs::RootDir;

pub use crate::inspect::os::Family;

/// One installed kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct KernelFacts {
    pub version: String,
    pub image: PathBuf,
    pub initramfs: PathBuf,
    pub initramfs_present: bool,
    pub has_modules: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Facts {
    pub family: Family,
    pub os_id: String,
    pub version_id: String,
    /// grub.cfg files present (BIOS and UEFI).
    pub grub_cfgs: Vec<PathBuf>,
    pub grubenv: Option<PathBuf>,
    /// BLS entries drive the menu (RHEL 8+, Fedora, AL2023).
    pub uses_bls: bool,
    /// systemd-boot's loader.conf on the ESP (or /boot), when it is the boot loader.
    pub systemd_boot_conf: Option<PathBuf>,
    /// What builds the initramfs on this target (Debian may use dracut).
    pub initramfs_generator: InitramfsGenerator,
    pub kernels: Vec<KernelFacts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InitramfsGenerator {
    UpdateInitramfs,
    Dracut,
}

impl InitramfsGenerator {
    /// initramfs-tools on Debian/Ubuntu unless only dracut is installed;
    /// dracut everywhere else.
    fn detect(root: &RootDir, family: Family) -> Self {
        let installed = |tool: &str| root.has_program(tool);
        match family {
            Family::Debian if !installed("update-initramfs") && installed("dracut") => {
                InitramfsGenerator::Dracut
            }
            Family::Debian => InitramfsGenerator::UpdateInitramfs,
            _ => InitramfsGenerator::Dracut,
        }
    }
}

/// Where the family keeps a kernel's initramfs.
pub fn initramfs_path(family: Family, version: &str) -> PathBuf {
    match family {
        Family::Debian => PathBuf::from(format!("/boot/initrd.img-{version}")),
        Family::Suse => PathBuf::from(format!("/boot/initrd-{version}")),
        Family::Rhel | Family::Amazon | Family::AzureLinux => {
            PathBuf::from(format!("/boot/initramfs-{version}.img"))
        }
    }
}

impl Facts {
    pub fn gather(root: &RootDir) -> Result<Facts> {
        let distro = crate::inspect::os::detect(root)?;
        let family = distro.family.ok_or_else(|| {
            crate::Failure::Unsupported(format!(
                "unknown distribution ({}): no recipe knows its boot tools",
                distro.describe()
            ))
        })?;
        let (os_id, version_id) = (distro.id.clone(), distro.version_id.clone());
        let mut grub_cfgs: Vec<PathBuf> = ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| root.is_file(p))
            .collect();
        for entry in root.list_dir("/boot/efi/EFI")? {
            let cfg = Path::new("/boot/efi/EFI")
                .join(&entry.name)
                .join("grub.cfg");
            if root.is_file(&cfg) {
                grub_cfgs.push(cfg);
            }
        }
        let grubenv = ["/boot/grub2/grubenv", "/boot/grub/grubenv"]
            .iter()
            .map(PathBuf::from)
            .find(|p| root.exists(p));
        let uses_bls = !root.list_dir("/boot/loader/entries")?.is_empty();
        let systemd_boot_conf = [
            "/boot/efi/loader/loader.conf",
            "/efi/loader/loader.conf",
            "/boot/loader/loader.conf",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| root.is_file(p));
        let mut kernels = Vec::new();
        for entry in root.list_dir("/boot")? {
            let name = entry.name.to_string_lossy();
            let Some(version) = name.strip_prefix("vmlinuz-") else {
                continue;
            };
            if version.contains("rescue") {
                continue;
            }
            let initramfs = initramfs_path(family, version);
            let initramfs_present = root
                .metadata(&initramfs)
                .map(|st| st.st_size > 0)
                .unwrap_or(false);
            let has_modules = root.is_dir(format!("/lib/modules/{version}"))
                || root.is_dir(format!("/usr/lib/modules/{version}"));
            kernels.push(KernelFacts {
                version: version.to_string(),
                image: PathBuf::from(format!("/boot/{name}")),
                initramfs,
                initramfs_present,
                has_modules,
            });
        }
        Ok(Facts {
            family,
            os_id,
            version_id,
            grub_cfgs,
            grubenv,
            uses_bls,
            systemd_boot_conf,
            initramfs_generator: InitramfsGenerator::detect(root, family),
            kernels,
        })
    }
}

/// The kernel version the boot configuration selects now, computed as GRUB
/// (or systemd-boot) does; `None` when it cannot be told.
pub fn default_kernel(root: &RootDir, _facts: &Facts) -> Result<Option<String>> {
    match crate::inspect::boot_default::effective_default(root) {
        Ok(default) => Ok(default.entry.kernel_version),
        Err(err) => {
            tracing::warn!("cannot tell the default boot entry: {err:#}");
            Ok(None)
        }
    }
}

pub use crate::inspect::version::compare_versions;

/// (where, arguments) of every kernel command line the boot configuration holds.
pub fn command_lines(root: &RootDir, facts: &Facts) -> Result<Vec<(String, String)>> {
    let mut lines = Vec::new();
    let grubenv = match &facts.grubenv {
        Some(path) => root
            .read_string_optional(path)?
            .and_then(|text| Grubenv::parse(text.as_bytes()).ok()),
        None => None,
    };
    // blscfg expands an entry's `$kernelopts` (and any other variable) from grubenv.
    let env = |name: &str| {
        grubenv
            .as_ref()
            .and_then(|e| e.get(name))
            .map(str::to_string)
    };
    if facts.uses_bls {
        for entry in root.list_dir("/boot/loader/entries")? {
            let path = Path::new("/boot/loader/entries").join(&entry.name);
            let text = root.read_string_optional(&path)?.unwrap_or_default();
            let parsed = BlsEntry::parse(&entry.name.to_string_lossy(), &text);
            for options in parsed.get_all("options") {
                lines.push((path.display().to_string(), expand_grub_vars(options, &env)));
            }
        }
    }
    for cfg in &facts.grub_cfgs {
        let text = root.read_string_optional(cfg)?.unwrap_or_default();
        let parsed = GrubCfg::parse(&text);
        let linux_lines = parsed
            .linux_commands()
            .into_iter()
            .filter(|l| matches!(l.command.as_str(), "linux" | "linuxefi" | "linux16"));
        for (index, linux) in linux_lines.enumerate() {
            let args = &linux.args;
            if args.contains("$kernelopts") || parsed.uses_blscfg() && args.trim().is_empty() {
                continue;
            }
            lines.push((
                format!("{} entry {}", cfg.display(), index + 1),
                args.trim().to_string(),
            ));
        }
    }
    Ok(lines)
}

/// The value the target's sysctl.d files give `key` (last file and line win,
/// as systemd-sysctl applies them); `None` when none sets it.
pub fn effective_sysctl(root: &RootDir, key: &str) -> Result<Option<String>> {
    let key = crate::inspect::sysctl::normalize_key(key);
    Ok(crate::inspect::sysctl::effective(root)?
        .remove(&key)
        .map(|setting| setting.value))
}

/// Subdirectories of `/lib/modules/VERSION` where modules that did not come
/// with the kernel are installed (DKMS, vendor drivers, kABI weak links).
const THIRD_PARTY_DIRS: &[&str] = &["extra", "updates", "weak-updates"];

/// The modules installed outside the kernel's own tree, by name, for every
/// installed kernel: the usual suspects when no module was diagnosed.
pub fn third_party_modules(root: &RootDir, facts: &Facts) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for kernel in &facts.kernels {
        for dir in THIRD_PARTY_DIRS {
            let mut stack = vec![PathBuf::from(format!(
                "/lib/modules/{}/{dir}",
                kernel.version
            ))];
            while let Some(dir) = stack.pop() {
                for entry in root.list_dir(&dir)? {
                    let name = entry.name.to_string_lossy();
                    match entry.kind {
                        crate::rootfs::EntryKind::Dir => stack.push(dir.join(&entry.name)),
                        _ if name.contains(".ko") => {
                            names.push(name.split(".ko").next().unwrap_or("").replace('-', "_"))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_kernels_and_grub_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["etc", "boot/grub", "lib/modules/6.1.0-9-amd64"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(p.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        std::fs::write(p.join("boot/grub/grub.cfg"), "menuentry 'Debian' {}\n").unwrap();
        std::fs::write(p.join("boot/vmlinuz-6.1.0-9-amd64"), "k").unwrap();
        std::fs::write(p.join("boot/vmlinuz-6.1.0-10-amd64"), "k").unwrap();
        std::fs::write(p.join("boot/initrd.img-6.1.0-9-amd64"), "i").unwrap();
        let facts = Facts::gather(&RootDir::open(p).unwrap()).unwrap();
        assert_eq!(facts.family, Family::Debian);
        assert_eq!(facts.grub_cfgs, vec![PathBuf::from("/boot/grub/grub.cfg")]);
        let k9 = facts
            .kernels
            .iter()
            .find(|k| k.version == "6.1.0-9-amd64")
            .unwrap();
        assert!(k9.initramfs_present && k9.has_modules);
        let k10 = facts
            .kernels
            .iter()
            .find(|k| k.version == "6.1.0-10-amd64")
            .unwrap();
        assert!(!k10.initramfs_present && !k10.has_modules);
    }
}
