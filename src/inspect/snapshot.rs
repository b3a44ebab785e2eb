//! `vmrescue inspect`: one typed snapshot of what decides how the target
//! boots, leading with what matters (default kernel, its initramfs, root=,
//! problems seen). Read-only.

use anyhow::Result;
use serde::Serialize;

use super::boot_default::{effective_default, BootDefault};
use super::kernels::{installed_kernels, InitramfsState, InstalledKernel};
use super::os::{detect, Distro, Family};
use crate::rootfs::RootDir;

pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// The commands this family uses for the boot chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Toolset {
    /// `{version}` stands for an explicit kernel version.
    pub initramfs_generator: String,
    pub grub_mkconfig: String,
    pub initramfs_lister: String,
    pub forced_drivers_in: String,
}

pub fn toolset(family: Family) -> Toolset {
    match family {
        Family::Debian => Toolset {
            initramfs_generator: "update-initramfs -c -k {version}".into(),
            grub_mkconfig: "grub-mkconfig -o /boot/grub/grub.cfg".into(),
            initramfs_lister: "lsinitramfs".into(),
            forced_drivers_in: "/etc/initramfs-tools/modules".into(),
        },
        Family::Suse => Toolset {
            initramfs_generator: "dracut -f /boot/initrd-{version} {version}".into(),
            grub_mkconfig: "grub2-mkconfig -o /boot/grub2/grub.cfg".into(),
            initramfs_lister: "lsinitrd".into(),
            forced_drivers_in: "/etc/dracut.conf.d/".into(),
        },
        Family::Rhel | Family::Amazon | Family::AzureLinux => Toolset {
            initramfs_generator: "dracut -f /boot/initramfs-{version}.img {version}".into(),
            grub_mkconfig: "grub2-mkconfig -o /boot/grub2/grub.cfg".into(),
            initramfs_lister: "lsinitrd".into(),
            forced_drivers_in: "/etc/dracut.conf.d/".into(),
        },
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Snapshot {
    pub version: u32,
    pub distro: Distro,
    pub tools: Option<Toolset>,
    /// The entry the boot loader picks, with its full command line.
    pub boot: Option<BootDefault>,
    pub boot_error: Option<String>,
    pub kernels: Vec<InstalledKernel>,
    /// root= of the default entry and the `/` line of fstab.
    pub root_arg: Option<String>,
    pub fstab_root: Option<String>,
    pub problems: Vec<String>,
}

/// Whether root= and fstab's `/` name different filesystems, as far as the
/// two names tell. Names of different kinds (Ubuntu cloud images boot with
/// `root=PARTUUID=…` and mount `UUID=…`) can only be compared against the
/// disk's devices, so they do not count as a conflict here.
pub fn root_specs_conflict(root_arg: &str, fstab_root: &str) -> bool {
    fn kind(spec: &str) -> &str {
        match spec.split_once('=') {
            Some((tag, _)) if !spec.starts_with('/') => tag,
            _ => "path",
        }
    }
    kind(root_arg).eq_ignore_ascii_case(kind(fstab_root))
        && !root_arg.eq_ignore_ascii_case(fstab_root)
}

fn fstab_root(text: &str) -> Option<String> {
    super::fstab::Fstab::parse(text)
        .root()
        .map(|e| e.spec.clone())
}

/// Inspects a mounted (or fixture) root.
pub fn snapshot(root: &RootDir) -> Result<Snapshot> {
    let distro = detect(root)?;
    let kernels = installed_kernels(root)?;
    let (boot, boot_error) = match effective_default(root) {
        Ok(boot) => (Some(boot), None),
        // A config file the disk cannot read is not a boot problem to list.
        Err(err) if crate::rootfs::is_read_failure(&err) => return Err(err),
        Err(err) => (None, Some(format!("{err:#}"))),
    };
    let fstab_root = root
        .read_string_optional("/etc/fstab")?
        .as_deref()
        .and_then(fstab_root);
    let mut problems = Vec::new();
    if distro.family.is_none() {
        problems.push(format!(
            "unknown distribution ({}): recipes cannot run on it",
            distro.describe()
        ));
    }
    let default_version = boot.as_ref().and_then(|b| b.entry.kernel_version.clone());
    match (&default_version, &boot_error) {
        (_, Some(err)) => problems.push(format!("no default boot entry: {err}")),
        (None, None) => {
            problems.push("the default boot entry names no kernel vmrescue can identify".into())
        }
        (Some(version), None) => match kernels.iter().find(|k| &k.version == version) {
            None => problems.push(format!(
                "the default kernel {version} is not installed in /boot"
            )),
            Some(kernel) => {
                if kernel.modules_dir.is_none() {
                    problems.push(format!(
                        "the default kernel {version} has no /lib/modules/{version}"
                    ));
                }
                let state = match kernel.initramfs.state {
                    InitramfsState::Present => None,
                    InitramfsState::Missing => Some("is missing"),
                    InitramfsState::Empty => Some("is empty"),
                    InitramfsState::OlderThanModules => Some("is older than its modules"),
                };
                if let Some(state) = state {
                    problems.push(format!(
                        "the initramfs of the default kernel {version} ({}) {state}: expect `VFS: Unable to mount root fs` (recipe rebuild-initramfs)",
                        kernel.initramfs.path
                    ));
                }
            }
        },
    }
    let root_arg = boot.as_ref().and_then(|b| b.entry.root.clone());
    if let (Some(arg), Some(fstab)) = (&root_arg, &fstab_root) {
        if root_specs_conflict(arg, fstab) {
            problems.push(format!(
                "root={arg} differs from fstab's / ({fstab}): check with recipe fix-root-fs"
            ));
        }
    }
    if let Some(boot) = &boot {
        problems.extend(boot.warnings.iter().cloned());
    }
    Ok(Snapshot {
        version: SNAPSHOT_SCHEMA_VERSION,
        tools: distro.family.map(toolset),
        distro,
        boot,
        boot_error,
        kernels,
        root_arg,
        fstab_root,
        problems,
    })
}

impl Snapshot {
    /// A screen's worth of text, most important first.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let family = self.distro.family.map(|f| f.id()).unwrap_or("unknown");
        let _ = writeln!(out, "OS:             {} [{family}]", self.distro.describe());
        match &self.boot {
            Some(boot) => {
                let entry = &boot.entry;
                let _ = writeln!(
                    out,
                    "default kernel: {}",
                    entry.kernel_version.as_deref().unwrap_or("?")
                );
                let _ = writeln!(
                    out,
                    "  entry:        {}",
                    entry
                        .title
                        .as_deref()
                        .or(entry.id.as_deref())
                        .unwrap_or("?")
                );
                let _ = writeln!(out, "  chosen by:    {}", boot.selected_by);
                let _ = writeln!(out, "  initramfs:    {}", entry.initramfs_paths.join(", "));
                let _ = writeln!(
                    out,
                    "  command line: {}",
                    entry.cmdline.as_deref().unwrap_or("")
                );
                let _ = writeln!(out, "  decided by:   {}", boot.decided_by.join(", "));
            }
            None => {
                let _ = writeln!(
                    out,
                    "default kernel: unknown ({})",
                    self.boot_error.as_deref().unwrap_or("")
                );
            }
        }
        let _ = writeln!(
            out,
            "root=:          {}   fstab /: {}",
            self.root_arg.as_deref().unwrap_or("-"),
            self.fstab_root.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out, "kernels:");
        for kernel in &self.kernels {
            let state = serde_json::to_value(kernel.initramfs.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let modules = if kernel.modules_dir.is_some() {
                "modules ok"
            } else {
                "NO MODULES"
            };
            let extra = if kernel.out_of_tree_modules.is_empty() {
                String::new()
            } else {
                format!(", out-of-tree: {}", kernel.out_of_tree_modules.join(" "))
            };
            let _ = writeln!(
                out,
                "  {:<36} initramfs {state}, {modules}{extra}",
                kernel.version
            );
        }
        if let Some(tools) = &self.tools {
            let _ = writeln!(
                out,
                "tools:          {} | {}",
                tools.initramfs_generator, tools.grub_mkconfig
            );
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "problems:       none seen");
        } else {
            let _ = writeln!(out, "problems:");
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::root_specs_conflict;

    #[test]
    fn root_specs_of_different_kinds_do_not_conflict() {
        assert!(!root_specs_conflict("PARTUUID=1a2b-01", "UUID=9c1d"));
        assert!(!root_specs_conflict("UUID=9C1D", "UUID=9c1d"));
        assert!(root_specs_conflict("UUID=aaaa", "UUID=bbbb"));
        assert!(root_specs_conflict("/dev/sda1", "/dev/mapper/vg-root"));
        assert!(!root_specs_conflict("/dev/sda1", "LABEL=root"));
    }
}
