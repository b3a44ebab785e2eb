//! What the recipe actions need to know about the target OS, gathered once
//! from the mounted root (read-only). Data flows one way: inspect → facts →
//! plan.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::rootfs::RootDir;

/// The distribution family, which decides the tools and file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Rhel,
    Debian,
    Suse,
    Amazon,
    AzureLinux,
}

impl Family {
    pub fn id(self) -> &'static str {
        match self {
            Family::Rhel => "rhel",
            Family::Debian => "debian",
            Family::Suse => "suse",
            Family::Amazon => "amazon",
            Family::AzureLinux => "azurelinux",
        }
    }
}

/// One installed kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelFacts {
    pub version: String,
    pub image: PathBuf,
    pub initramfs: PathBuf,
    pub initramfs_present: bool,
    pub has_modules: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub family: Family,
    pub os_id: String,
    pub version_id: String,
    /// grub.cfg files present (BIOS and UEFI).
    pub grub_cfgs: Vec<PathBuf>,
    pub grubenv: Option<PathBuf>,
    /// BLS entries drive the menu (RHEL 8+, Fedora, AL2023).
    pub uses_bls: bool,
    pub kernels: Vec<KernelFacts>,
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

fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

fn family_of(id: &str, id_like: &str) -> Option<Family> {
    let words: Vec<&str> = std::iter::once(id)
        .chain(id_like.split_whitespace())
        .collect();
    for word in words {
        let family = match word {
            "rhel" | "centos" | "fedora" | "almalinux" | "rocky" | "ol" => Family::Rhel,
            "debian" | "ubuntu" => Family::Debian,
            "sles" | "suse" | "opensuse" | "opensuse-leap" => Family::Suse,
            "amzn" => Family::Amazon,
            "azurelinux" | "mariner" => Family::AzureLinux,
            _ => continue,
        };
        return Some(family);
    }
    None
}

impl Facts {
    pub fn gather(root: &RootDir) -> Result<Facts> {
        let os_release = match root.read_string_optional("/etc/os-release")? {
            Some(text) => text,
            None => root
                .read_string_optional("/usr/lib/os-release")?
                .unwrap_or_default(),
        };
        let os_id = os_release_value(&os_release, "ID").unwrap_or_default();
        let id_like = os_release_value(&os_release, "ID_LIKE").unwrap_or_default();
        let family = family_of(&os_id, &id_like).ok_or_else(|| {
            crate::Failure::Unsupported(format!(
                "unknown distribution (ID={os_id:?} ID_LIKE={id_like:?} in /etc/os-release): no recipe knows its boot tools"
            ))
        })?;
        let version_id = os_release_value(&os_release, "VERSION_ID").unwrap_or_default();
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
            kernels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_os_release_ids() {
        assert_eq!(
            family_of("almalinux", "rhel centos fedora"),
            Some(Family::Rhel)
        );
        assert_eq!(family_of("ubuntu", "debian"), Some(Family::Debian));
        assert_eq!(family_of("sles", ""), Some(Family::Suse));
        assert_eq!(
            family_of("amzn", "centos rhel fedora"),
            Some(Family::Amazon)
        );
        assert_eq!(family_of("mariner", ""), Some(Family::AzureLinux));
        assert_eq!(family_of("gentoo", ""), None);
    }

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

/// Kernel version order, rpm-style: digit runs compare as numbers, letter
/// runs as strings, other characters separate segments.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn segments(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let digit = bytes[i].is_ascii_digit();
            let start = i;
            while i < bytes.len()
                && bytes[i].is_ascii_alphanumeric()
                && bytes[i].is_ascii_digit() == digit
            {
                i += 1;
            }
            out.push((digit, &s[start..i]));
        }
        out
    }
    let (sa, sb) = (segments(a), segments(b));
    for ((da, va), (db, vb)) in sa.iter().zip(&sb) {
        let ord = match (da, db) {
            (true, true) => {
                let (x, y) = (va.trim_start_matches('0'), vb.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (false, false) => va.cmp(vb),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
        };
        if ord.is_ne() {
            return ord;
        }
    }
    sa.len().cmp(&sb.len())
}

/// A boot menu entry of grub.cfg, in menu order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub title: String,
    pub id: Option<String>,
    /// Titles/ids of the enclosing submenu, if any.
    pub submenu: Option<(String, Option<String>)>,
    /// Index within its menu level.
    pub index: usize,
    pub submenu_index: Option<usize>,
    pub kernel_version: Option<String>,
}

fn quoted_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for ch in line.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => current.push(ch),
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                has = true;
            }
            None if ch.is_whitespace() => {
                if has || !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                    has = false;
                }
            }
            None => current.push(ch),
        }
    }
    if has || !current.is_empty() {
        words.push(current);
    }
    words
}

/// The menu entries of a generated grub.cfg (top level and one submenu level).
pub fn menu_entries(cfg: &str) -> Vec<MenuEntry> {
    let mut entries = Vec::new();
    let mut top_index = 0;
    let mut submenu: Option<(String, Option<String>, usize, usize)> = None; // title, id, index, child count
    let mut depth = 0i32;
    let mut submenu_depth = 0i32;
    let mut current: Option<MenuEntry> = None;
    let mut entry_depth = 0i32;
    for line in cfg.lines() {
        let trimmed = line.trim();
        let words = quoted_words(trimmed);
        let first = words.first().map(String::as_str).unwrap_or("");
        if first == "menuentry" || first == "submenu" {
            let title = words.get(1).cloned().unwrap_or_default();
            let id = words
                .iter()
                .position(|w| w == "$menuentry_id_option" || w == "--id")
                .and_then(|i| words.get(i + 1).cloned());
            if first == "submenu" {
                submenu = Some((title, id, top_index, 0));
                top_index += 1;
                submenu_depth = depth + 1;
            } else {
                let (index, submenu_ref, submenu_index) = match &mut submenu {
                    Some((t, i, si, count)) => {
                        let index = *count;
                        *count += 1;
                        (index, Some((t.clone(), i.clone())), Some(*si))
                    }
                    None => {
                        top_index += 1;
                        (top_index - 1, None, None)
                    }
                };
                current = Some(MenuEntry {
                    title,
                    id,
                    submenu: submenu_ref,
                    index,
                    submenu_index,
                    kernel_version: None,
                });
                entry_depth = depth + 1;
            }
        } else if matches!(first, "linux" | "linuxefi" | "linux16") {
            if let (Some(entry), Some(path)) = (current.as_mut(), words.get(1)) {
                entry.kernel_version = path
                    .rsplit('/')
                    .next()
                    .and_then(|f| f.strip_prefix("vmlinuz-"))
                    .map(str::to_string);
            }
        }
        depth += trimmed.matches('{').count() as i32 - trimmed.matches('}').count() as i32;
        if current.is_some() && depth < entry_depth {
            entries.extend(current.take());
        }
        if submenu.is_some() && depth < submenu_depth {
            submenu = None;
        }
    }
    entries
}

/// Finds the entry a GRUB default value (`0`, `1>2`, a title, an id, or a
/// `submenu>entry` path of either) selects.
pub fn select_entry<'a>(entries: &'a [MenuEntry], default: &str) -> Option<&'a MenuEntry> {
    let matches = |name: &str, title: &str, id: &Option<String>, index: usize| {
        name == title || id.as_deref() == Some(name) || name.parse::<usize>().ok() == Some(index)
    };
    match default.split_once('>') {
        Some((outer, inner)) => entries.iter().find(|e| {
            e.submenu
                .as_ref()
                .is_some_and(|(t, i)| matches(outer, t, i, e.submenu_index.unwrap_or(usize::MAX)))
                && matches(inner, &e.title, &e.id, e.index)
        }),
        None => entries.iter().find(|e| match &e.submenu {
            None => matches(default, &e.title, &e.id, e.index),
            // A submenu selected by index/title alone boots its first entry.
            Some((t, i)) => {
                e.index == 0 && matches(default, t, i, e.submenu_index.unwrap_or(usize::MAX))
            }
        }),
    }
}

/// The BLS entries (id = file name without .conf) with their kernel versions, newest first.
pub fn bls_entries(root: &RootDir) -> Result<Vec<(String, String)>> {
    let mut entries = Vec::new();
    for entry in root.list_dir("/boot/loader/entries")? {
        let name = entry.name.to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".conf") else {
            continue;
        };
        let text = root
            .read_string_optional(Path::new("/boot/loader/entries").join(&entry.name))?
            .unwrap_or_default();
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("version").map(|v| v.trim().to_string()))
            .or_else(|| {
                text.lines().find_map(|l| {
                    let path = l.strip_prefix("linux")?.trim();
                    path.rsplit('/')
                        .next()?
                        .strip_prefix("vmlinuz-")
                        .map(str::to_string)
                })
            });
        if let Some(version) = version {
            entries.push((id.to_string(), version));
        }
    }
    entries.sort_by(|a, b| compare_versions(&b.1, &a.1));
    Ok(entries)
}

/// The kernel version the boot configuration selects now, computed as GRUB
/// does: `next_entry`, then `set default` / `saved_entry` over the menu (BLS
/// entries on RHEL 8+); `None` when it cannot be told.
pub fn default_kernel(root: &RootDir, facts: &Facts) -> Result<Option<String>> {
    let env = match &facts.grubenv {
        Some(path) => root.read_string_optional(path)?.unwrap_or_default(),
        None => String::new(),
    };
    let env_value =
        |key: &str| super::cmdline_edit::grubenv_get(&env, key).filter(|v| !v.is_empty());
    if facts.uses_bls {
        let entries = bls_entries(root)?;
        let wanted = env_value("next_entry").or_else(|| env_value("saved_entry"));
        if let Some(found) = wanted.and_then(|w| entries.iter().find(|(id, _)| *id == w)) {
            return Ok(Some(found.1.clone()));
        }
        return Ok(entries.first().map(|(_, v)| v.clone()));
    }
    for cfg in &facts.grub_cfgs {
        let text = root.read_string_optional(cfg)?.unwrap_or_default();
        let entries = menu_entries(&text);
        if entries.is_empty() {
            continue;
        }
        let mut default = "0".to_string();
        for line in text.lines() {
            let words = quoted_words(line.trim());
            if words.first().map(String::as_str) == Some("set") {
                if let Some(value) = words.get(1).and_then(|w| w.strip_prefix("default=")) {
                    let value = if value.is_empty() {
                        words.get(2).cloned().unwrap_or_default()
                    } else {
                        value.to_string()
                    };
                    if value != "${next_entry}" {
                        default = value;
                    }
                }
            }
        }
        if let Some(next) = env_value("next_entry") {
            default = next;
        } else if default == "${saved_entry}" {
            default = env_value("saved_entry").unwrap_or_else(|| "0".into());
        }
        let selected = select_entry(&entries, &default).or_else(|| entries.first());
        return Ok(selected.and_then(|e| e.kernel_version.clone()));
    }
    Ok(None)
}

#[cfg(test)]
mod default_tests {
    use super::*;

    const DEBIAN_CFG: &str = r#"
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
else
   set default="0"
fi
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-abcd' {
	linux	/boot/vmlinuz-6.12.9+bpo-amd64 root=UUID=abcd ro console=ttyS0
	initrd	/boot/initrd.img-6.12.9+bpo-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-abcd' {
	menuentry 'Debian GNU/Linux, with Linux 6.12.9+bpo-amd64' $menuentry_id_option 'gnulinux-6.12.9+bpo-amd64-advanced-abcd' {
		linux	/boot/vmlinuz-6.12.9+bpo-amd64 root=UUID=abcd ro console=ttyS0
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-28-amd64' $menuentry_id_option 'gnulinux-6.1.0-28-amd64-advanced-abcd' {
		linux	/boot/vmlinuz-6.1.0-28-amd64 root=UUID=abcd ro console=ttyS0
	}
}
"#;

    #[test]
    fn versions_order_like_rpm() {
        use std::cmp::Ordering::*;
        assert_eq!(
            compare_versions("6.12.9+bpo-amd64", "6.1.0-28-amd64"),
            Greater
        );
        assert_eq!(
            compare_versions("4.18.0-513.5.1.el8_9.x86_64", "4.18.0-80.el8.x86_64"),
            Greater
        );
        assert_eq!(
            compare_versions("5.15.0-1051-azure", "5.15.0-1051-azure"),
            Equal
        );
    }

    #[test]
    fn menu_entries_and_submenu_paths_select_like_grub() {
        let entries = menu_entries(DEBIAN_CFG);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            select_entry(&entries, "0")
                .unwrap()
                .kernel_version
                .as_deref(),
            Some("6.12.9+bpo-amd64")
        );
        assert_eq!(
            select_entry(&entries, "1>1")
                .unwrap()
                .kernel_version
                .as_deref(),
            Some("6.1.0-28-amd64")
        );
        let by_id = select_entry(
            &entries,
            "gnulinux-advanced-abcd>gnulinux-6.1.0-28-amd64-advanced-abcd",
        )
        .unwrap();
        assert_eq!(by_id.kernel_version.as_deref(), Some("6.1.0-28-amd64"));
        let by_title = select_entry(
            &entries,
            "Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-28-amd64",
        )
        .unwrap();
        assert_eq!(by_title.kernel_version.as_deref(), Some("6.1.0-28-amd64"));
        assert!(select_entry(&entries, "7").is_none());
    }
}
