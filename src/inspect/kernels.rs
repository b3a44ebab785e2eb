//! Installed kernels of the target: `/boot/vmlinuz-*` (also `vmlinux-*`,
//! `Image-*`) matched to `/lib/modules/<v>` or `/usr/lib/modules/<v>`, the
//! initramfs each one boots with and its state, and out-of-tree modules
//! (`extra/`, `updates/` incl. `updates/dkms/`, `weak-updates/`).

use std::cmp::Ordering;
use std::ffi::OsStr;

use anyhow::{Context, Result};
use serde::Serialize;

use super::version::compare_versions;
use crate::rootfs::{EntryKind, RootDir};

const IMAGE_PREFIXES: [&str; 3] = ["vmlinuz-", "vmlinux-", "Image-"];
const MODULE_ROOTS: [&str; 2] = ["/lib/modules", "/usr/lib/modules"];
const OUT_OF_TREE_DIRS: [&str; 3] = ["extra", "updates", "weak-updates"];
const MAX_MODULE_WALK_DEPTH: usize = 8;
const MAX_MODULES_LISTED: usize = 2000;

/// Initramfs naming conventions, in the order they are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InitramfsNaming {
    /// `initramfs-<v>.img`: RHEL, Fedora, Alma, Rocky, Oracle, Amazon, Azure Linux (dracut).
    InitramfsImg,
    /// `initrd.img-<v>`: Debian, Ubuntu (initramfs-tools).
    InitrdImg,
    /// `initrd-<v>`: SUSE (dracut via mkinitrd).
    InitrdDash,
}

impl InitramfsNaming {
    const ALL: [InitramfsNaming; 3] = [Self::InitramfsImg, Self::InitrdImg, Self::InitrdDash];

    pub fn path_for(self, version: &str) -> String {
        match self {
            Self::InitramfsImg => format!("/boot/initramfs-{version}.img"),
            Self::InitrdImg => format!("/boot/initrd.img-{version}"),
            Self::InitrdDash => format!("/boot/initrd-{version}"),
        }
    }

    fn version_of(self, file_name: &str) -> Option<&str> {
        match self {
            Self::InitramfsImg => file_name.strip_prefix("initramfs-")?.strip_suffix(".img"),
            Self::InitrdImg => file_name.strip_prefix("initrd.img-"),
            Self::InitrdDash => file_name
                .strip_prefix("initrd-")
                .filter(|v| !v.ends_with(".img")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InitramfsState {
    Present,
    Missing,
    Empty,
    /// Built before the kernel's `modules.dep` was last written (stale after
    /// a module update or an interrupted rebuild).
    OlderThanModules,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Initramfs {
    /// The file found, or the path expected under the system's naming.
    pub path: String,
    pub state: InitramfsState,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InstalledKernel {
    pub version: String,
    /// `/boot/vmlinuz-<v>` etc.; `None` when only the modules are installed.
    pub image: Option<String>,
    pub image_size: Option<u64>,
    pub modules_dir: Option<String>,
    pub initramfs: Initramfs,
    /// Module files below `extra/`, `updates/`, `weak-updates/` (relative to the modules dir).
    pub out_of_tree_modules: Vec<String>,
    /// RHEL-style `0-rescue-<machine-id>` kernel.
    pub rescue: bool,
}

/// Lists the installed kernels, newest first (rescue kernels last).
pub fn installed_kernels(root: &RootDir) -> Result<Vec<InstalledKernel>> {
    let boot = root
        .list_dir("/boot")
        .context("listing /boot of the target")?;
    let boot_names: Vec<String> = boot.iter().map(|e| lossy(&e.name)).collect();

    let mut images: Vec<(String, String)> = Vec::new();
    for name in &boot_names {
        if let Some(version) = image_version(name) {
            if !images.iter().any(|(v, _)| v == version) {
                images.push((version.to_string(), format!("/boot/{name}")));
            }
        }
    }

    let mut module_versions: Vec<(String, String)> = Vec::new();
    for module_root in MODULE_ROOTS {
        for entry in root
            .list_dir(module_root)
            .with_context(|| format!("listing {module_root} of the target"))?
        {
            let version = lossy(&entry.name);
            let dir = format!("{module_root}/{version}");
            let has_content =
                root.exists(format!("{dir}/modules.dep")) || root.exists(format!("{dir}/vmlinuz"));
            if root.is_dir(&dir)
                && has_content
                && !module_versions.iter().any(|(v, _)| *v == version)
            {
                module_versions.push((version, dir));
            }
        }
    }

    // The naming most initramfs files in /boot follow (for expected paths).
    let naming = InitramfsNaming::ALL
        .into_iter()
        .max_by_key(|n| {
            boot_names
                .iter()
                .filter(|f| n.version_of(f).is_some())
                .count()
        })
        .unwrap_or(InitramfsNaming::InitramfsImg);

    let mut versions: Vec<String> = images.iter().map(|(v, _)| v.clone()).collect();
    for (v, _) in &module_versions {
        if !versions.contains(v) {
            versions.push(v.clone());
        }
    }

    let mut kernels = Vec::new();
    for version in versions {
        let image = images
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, p)| p.clone());
        let image_size = image
            .as_ref()
            .and_then(|p| root.metadata(p).ok())
            .map(|st| st.st_size as u64);
        let modules_dir = module_versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, d)| d.clone());
        let initramfs = initramfs_of(root, &version, &boot_names, naming, modules_dir.as_deref());
        let out_of_tree_modules = match &modules_dir {
            Some(dir) => out_of_tree_modules(root, dir)?,
            None => Vec::new(),
        };
        kernels.push(InstalledKernel {
            rescue: version.starts_with("0-rescue-"),
            version,
            image,
            image_size,
            modules_dir,
            initramfs,
            out_of_tree_modules,
        });
    }
    kernels.sort_by(|a, b| match (a.rescue, b.rescue) {
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        _ => compare_versions(&b.version, &a.version),
    });
    Ok(kernels)
}

/// The version in a kernel image file name (`vmlinuz-6.1.0-18-amd64`).
pub fn image_version(file_name: &str) -> Option<&str> {
    let version = IMAGE_PREFIXES
        .iter()
        .find_map(|p| file_name.strip_prefix(p))?;
    let is_side_file = [".hmac", ".sig", ".bak", ".old", ".dpkg-tmp", ".dpkg-new"]
        .iter()
        .any(|suffix| version.ends_with(suffix));
    (!version.is_empty() && !is_side_file).then_some(version)
}

fn initramfs_of(
    root: &RootDir,
    version: &str,
    boot_names: &[String],
    naming: InitramfsNaming,
    modules_dir: Option<&str>,
) -> Initramfs {
    let found = InitramfsNaming::ALL
        .into_iter()
        .find(|n| boot_names.iter().any(|f| n.version_of(f) == Some(version)));
    let Some(found) = found else {
        return Initramfs {
            path: naming.path_for(version),
            state: InitramfsState::Missing,
            size: None,
        };
    };
    let path = found.path_for(version);
    let Ok(stat) = root.metadata(&path) else {
        // A dangling symlink, or unreadable: the bootloader cannot load it either.
        return Initramfs {
            path,
            state: InitramfsState::Missing,
            size: None,
        };
    };
    let size = stat.st_size as u64;
    let state = if size == 0 {
        InitramfsState::Empty
    } else {
        let modules_dep = modules_dir.and_then(|d| root.metadata(format!("{d}/modules.dep")).ok());
        match modules_dep {
            Some(dep)
                if (stat.st_mtime, stat.st_mtime_nsec) < (dep.st_mtime, dep.st_mtime_nsec) =>
            {
                InitramfsState::OlderThanModules
            }
            _ => InitramfsState::Present,
        }
    };
    Initramfs {
        path,
        state,
        size: Some(size),
    }
}

fn out_of_tree_modules(root: &RootDir, modules_dir: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending: Vec<(String, usize)> = OUT_OF_TREE_DIRS
        .iter()
        .map(|d| (d.to_string(), 0))
        .collect();
    while let Some((relative, depth)) = pending.pop() {
        let dir = format!("{modules_dir}/{relative}");
        for entry in root
            .list_dir(&dir)
            .with_context(|| format!("listing {dir} of the target"))?
        {
            let name = lossy(&entry.name);
            let path = format!("{relative}/{name}");
            match entry.kind {
                EntryKind::Dir if depth < MAX_MODULE_WALK_DEPTH => pending.push((path, depth + 1)),
                EntryKind::File | EntryKind::Symlink if name.contains(".ko") => found.push(path),
                _ => {}
            }
            if found.len() >= MAX_MODULES_LISTED {
                found.sort();
                return Ok(found);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn lossy(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn touch(root: &Path, path: &str, content: &[u8], mtime: i64) {
        let full = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, content).unwrap();
        let t = nix::sys::time::TimeSpec::new(mtime, 0);
        nix::sys::stat::utimensat(
            None,
            &full,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }

    #[test]
    fn debian_kernels_with_each_initramfs_state() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for v in [
            "6.1.0-18-amd64",
            "6.1.0-9-amd64",
            "5.10.0-28-amd64",
            "6.1.0-20-amd64",
        ] {
            touch(r, &format!("/boot/vmlinuz-{v}"), b"kernel", 1000);
            touch(r, &format!("/lib/modules/{v}/modules.dep"), b"", 2000);
        }
        touch(r, "/boot/initrd.img-6.1.0-18-amd64", b"cpio", 3000);
        touch(r, "/boot/initrd.img-6.1.0-9-amd64", b"", 3000);
        touch(r, "/boot/initrd.img-5.10.0-28-amd64", b"cpio", 1500);
        touch(
            r,
            "/lib/modules/6.1.0-18-amd64/updates/dkms/eudp.ko",
            b"",
            1,
        );
        touch(
            r,
            "/lib/modules/6.1.0-18-amd64/extra/tampercore.ko.xz",
            b"",
            1,
        );
        touch(r, "/boot/vmlinuz-6.1.0-9-amd64.sig", b"", 1);
        touch(r, "/lib/modules/4.19.0-1-amd64/kernel/leftover", b"", 1);
        std::os::unix::fs::symlink("vmlinuz-6.1.0-18-amd64", r.join("boot/vmlinuz")).unwrap();

        let kernels = installed_kernels(&RootDir::open(r).unwrap()).unwrap();
        let summary: Vec<_> = kernels
            .iter()
            .map(|k| (k.version.as_str(), k.initramfs.state))
            .collect();
        assert_eq!(
            summary,
            [
                ("6.1.0-20-amd64", InitramfsState::Missing),
                ("6.1.0-18-amd64", InitramfsState::Present),
                ("6.1.0-9-amd64", InitramfsState::Empty),
                ("5.10.0-28-amd64", InitramfsState::OlderThanModules),
            ]
        );
        assert_eq!(
            kernels[0].initramfs.path, "/boot/initrd.img-6.1.0-20-amd64",
            "expected path follows Debian naming"
        );
        assert_eq!(
            kernels[1].out_of_tree_modules,
            ["extra/tampercore.ko.xz", "updates/dkms/eudp.ko"]
        );
        assert_eq!(
            kernels[1].modules_dir.as_deref(),
            Some("/lib/modules/6.1.0-18-amd64")
        );
    }

    #[test]
    fn rhel_kernels_in_usr_lib_modules_with_rescue_last() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let rescue = "0-rescue-7b92728670d64c65879a91ae405012ed";
        for v in [
            "4.18.0-553.el8_10.x86_64",
            "4.18.0-553.22.1.el8_10.x86_64",
            rescue,
        ] {
            touch(r, &format!("/boot/vmlinuz-{v}"), b"k", 10);
            touch(r, &format!("/boot/initramfs-{v}.img"), b"i", 30);
        }
        touch(r, "/boot/.vmlinuz-4.18.0-553.el8_10.x86_64.hmac", b"", 1);
        for v in ["4.18.0-553.el8_10.x86_64", "4.18.0-553.22.1.el8_10.x86_64"] {
            touch(r, &format!("/usr/lib/modules/{v}/modules.dep"), b"", 20);
        }
        touch(
            r,
            "/usr/lib/modules/4.18.0-553.el8_10.x86_64/weak-updates/hv/hv_netvsc.ko",
            b"",
            1,
        );
        let kernels = installed_kernels(&RootDir::open(r).unwrap()).unwrap();
        let versions: Vec<_> = kernels.iter().map(|k| k.version.as_str()).collect();
        assert_eq!(
            versions,
            [
                "4.18.0-553.22.1.el8_10.x86_64",
                "4.18.0-553.el8_10.x86_64",
                rescue
            ]
        );
        assert!(kernels[2].rescue);
        assert_eq!(kernels[2].initramfs.state, InitramfsState::Present);
        assert_eq!(
            kernels[1].out_of_tree_modules,
            ["weak-updates/hv/hv_netvsc.ko"]
        );
        assert_eq!(
            kernels[0].initramfs.path,
            "/boot/initramfs-4.18.0-553.22.1.el8_10.x86_64.img"
        );
    }

    #[test]
    fn image_version_skips_side_files() {
        assert_eq!(
            image_version("vmlinuz-5.14.21-150500.55.19-default"),
            Some("5.14.21-150500.55.19-default")
        );
        assert_eq!(
            image_version("Image-6.1.0-18-arm64"),
            Some("6.1.0-18-arm64")
        );
        assert_eq!(image_version("vmlinuz"), None);
        assert_eq!(image_version("vmlinuz-"), None);
        assert_eq!(image_version("vmlinuz-6.1.0.sig"), None);
    }
}
