//! Names that exist only while the disk sits on the rescue VM, and must not
//! outlive the repair: the temporary name of a volume group renamed because
//! the rescue VM has one of the same name (same-image rescue, `rootvg` →
//! `rootvg_vmrescue`), and the rescue VM's device names for the disk
//! (`/dev/sdc2`, `/dev/loop3p1`).
//!
//! The target's own generators (grub-mkconfig, dracut, update-initramfs) run
//! while the disk is mounted that way and ask the running system what the
//! root device is called, so they can write either kind of name into the
//! boot configuration. Hiding the names from them is not possible in a
//! chroot: grub-probe and dracut read device-mapper names from the kernel,
//! and the rescue VM's own VG holds the original name. So the repair
//! (1) keeps dracut from baking the host's view into the initramfs
//! (`--no-hostonly-cmdline`: root= and rd.lvm.lv= then come from the boot
//! entry, which is the target's), (2) puts the original names back through
//! the journal after every generator run ([`RescueNames::scrub`]), and
//! (3) fails verification if a trace is left anywhere, the regenerated
//! initramfs included ([`check`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::plan::CheckResult;
use crate::attach::Layout;
use crate::inspect::cmdline::KernelCmdline;
use crate::inspect::grubenv::Grubenv;
use crate::rootfs::RootDir;

/// The rescue-only names of one mounted target.
#[derive(Debug, Clone, Default)]
pub struct RescueNames {
    /// `(temporary, original)` volume group names.
    volume_groups: Vec<(String, String)>,
    /// The device path under which the rescue VM sees the disk (`/dev/sdc`).
    devices: Vec<String>,
}

/// The device-mapper spelling of a VG or LV name: `-` doubled.
fn dm_escape(name: &str) -> String {
    name.replace('-', "--")
}

impl RescueNames {
    pub fn from_layout(layout: Option<&Layout>) -> Self {
        let Some(layout) = layout else {
            return Self::default();
        };
        let volume_groups = layout
            .volume_groups
            .iter()
            .filter_map(|g| Some((g.temporary_name.clone()?, g.name.clone())))
            .collect();
        // The disk's own name covers its partitions; device-mapper names of
        // its LVs are the target's own (unless renamed, see above).
        let devices: Vec<String> = layout
            .disk
            .iter()
            .filter(|d| d.starts_with("/dev/") && !d.starts_with("/dev/mapper/"))
            .cloned()
            .collect();
        Self {
            volume_groups,
            devices,
        }
    }

    #[cfg(test)]
    fn new(volume_groups: &[(&str, &str)], devices: &[&str]) -> Self {
        Self {
            volume_groups: volume_groups
                .iter()
                .map(|(t, o)| (t.to_string(), o.to_string()))
                .collect(),
            devices: devices.iter().map(|d| d.to_string()).collect(),
        }
    }

    pub fn has_renamed_vgs(&self) -> bool {
        !self.volume_groups.is_empty()
    }

    /// Every spelling of each temporary name with its original: the
    /// device-mapper one (`/dev/mapper/vg--x_vmrescue-lv`) first, then the
    /// plain one (`/dev/vg-x_vmrescue/lv`, `rd.lvm.lv=vg-x_vmrescue/lv`).
    fn vg_spellings(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for (temporary, original) in &self.volume_groups {
            let escaped = dm_escape(temporary);
            if escaped != *temporary {
                pairs.push((escaped, dm_escape(original)));
            }
            pairs.push((temporary.clone(), original.clone()));
        }
        pairs
    }

    /// `text` with every temporary VG name put back to the original.
    pub fn restore_vg_names(&self, text: &str) -> String {
        self.vg_spellings()
            .iter()
            .fold(text.to_string(), |acc, (temporary, original)| {
                acc.replace(temporary.as_str(), original)
            })
    }

    /// The temporary VG names found in `bytes`.
    fn vg_traces(&self, bytes: &[u8]) -> Vec<String> {
        self.volume_groups
            .iter()
            .map(|(temporary, _)| temporary)
            .chain(
                self.vg_spellings()
                    .iter()
                    .map(|(t, _)| t)
                    .collect::<Vec<_>>(),
            )
            .filter(|t| memchr::memmem::find(bytes, t.as_bytes()).is_some())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The rescue-only names in a boot file: temporary VG names and rescue
    /// device names given as root=, resume=… or as a device path.
    pub fn traces(&self, bytes: &[u8]) -> Vec<String> {
        let mut found = self.vg_traces(bytes);
        found.extend(self.device_traces(&String::from_utf8_lossy(bytes)));
        found
    }

    /// True for a device path that only the rescue VM has: a loop or nbd
    /// device, or the attached disk and what was mounted from it.
    pub fn is_rescue_device(&self, value: &str) -> bool {
        let value = value.trim_matches('"');
        value.starts_with("/dev/loop")
            || value.starts_with("/dev/nbd")
            || self.devices.iter().any(|d| {
                value == d
                    || value.strip_prefix(d.as_str()).is_some_and(|rest| {
                        rest.starts_with(|c: char| c.is_ascii_digit() || c == 'p')
                    })
            })
    }

    /// The values of device-naming kernel arguments and fstab/crypttab
    /// sources in `text` that are rescue-VM device names.
    fn device_traces(&self, text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            let value = ["root=", "resume=", "rd.lvm.lv=", "REAL_ROOT=", "RESUME="]
                .iter()
                .find_map(|key| word.strip_prefix(key))
                .unwrap_or(word);
            if value.starts_with("/dev/") && self.is_rescue_device(value) {
                found.push(value.to_string());
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// The fixed contents of a boot file a generator just rewrote from
    /// `old` to `new`, or `None` when nothing needs putting back.
    pub fn scrub(&self, path: &Path, old: Option<&[u8]>, new: &[u8]) -> Result<Option<Vec<u8>>> {
        let fixed = if path.file_name().is_some_and(|n| n == "grubenv") {
            self.scrub_grubenv(old, new)?
        } else {
            let Ok(text) = std::str::from_utf8(new) else {
                return Ok(None);
            };
            let mut fixed = text.to_string();
            if path.file_name().is_some_and(|n| n == "grub.cfg") {
                if let Some(old) = old.and_then(|o| std::str::from_utf8(o).ok()) {
                    if let Some(roots) = super::actions::fix_leaked_root(old, &fixed) {
                        fixed = roots;
                    }
                }
            }
            self.restore_vg_names(&fixed).into_bytes()
        };
        Ok((fixed != new).then_some(fixed))
    }

    /// grubenv keeps its 1024-byte block: values are edited through the
    /// grubenv editor, never as text. `kernelopts` (RHEL 8) gets its old
    /// root= back when grub2-mkconfig wrote a rescue device name there.
    fn scrub_grubenv(&self, old: Option<&[u8]>, new: &[u8]) -> Result<Vec<u8>> {
        let mut env = Grubenv::parse(new).context("reading the regenerated grubenv")?;
        let old_env = old.and_then(|o| Grubenv::parse(o).ok());
        let mut edits = Vec::new();
        for (name, value) in env.vars() {
            let mut fixed = self.restore_vg_names(value);
            if name == "kernelopts" {
                if let Some(old_opts) = old_env.as_ref().and_then(|e| e.get("kernelopts")) {
                    fixed = self.restore_root_arg(old_opts, &fixed);
                }
            }
            if fixed != value {
                edits.push((name.to_string(), fixed));
            }
        }
        if edits.is_empty() {
            return Ok(new.to_vec());
        }
        for (name, value) in edits {
            env.set(&name, &value)
                .with_context(|| format!("putting grubenv {name} back"))?;
        }
        env.render().context("writing grubenv")
    }

    /// `new`'s root= replaced by `old`'s when `new` names a rescue device.
    fn restore_root_arg(&self, old: &str, new: &str) -> String {
        let old_root = KernelCmdline::parse(old)
            .values("root")
            .into_iter()
            .flatten()
            .find(|v| !self.is_rescue_device(v));
        let mut cmdline = KernelCmdline::parse(new);
        let leaked = cmdline
            .values("root")
            .into_iter()
            .flatten()
            .any(|v| self.is_rescue_device(&v));
        match old_root {
            Some(old_root) if leaked => {
                cmdline.set_only(&format!("root={old_root}"));
                cmdline.to_string()
            }
            _ => new.to_string(),
        }
    }
}

/// Every file that decides how the target boots and that a generator run
/// in the chroot may write a device name into: grub.cfg files, grubenv,
/// BLS entries, `/etc/kernel/cmdline`, `/etc/default/grub` and its
/// drop-ins, fstab and crypttab. Only files that exist.
pub fn boot_files(root: &RootDir) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = [
        "/boot/grub2/grub.cfg",
        "/boot/grub/grub.cfg",
        "/boot/grub2/grubenv",
        "/boot/grub/grubenv",
        "/etc/kernel/cmdline",
        "/etc/default/grub",
        "/etc/fstab",
        "/etc/crypttab",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for efi in ["/boot/efi/EFI", "/efi/EFI"] {
        for vendor in root.list_dir(efi)? {
            let dir = Path::new(efi).join(&vendor.name);
            files.push(dir.join("grub.cfg"));
            files.push(dir.join("grubenv"));
        }
    }
    let dirs = [
        ("/etc/default/grub.d", ".cfg"),
        ("/boot/loader/entries", ".conf"),
        ("/boot/efi/loader/entries", ".conf"),
        ("/efi/loader/entries", ".conf"),
    ];
    for (dir, suffix) in dirs {
        for entry in root.list_dir(dir)? {
            if entry.name.to_string_lossy().ends_with(suffix) {
                files.push(Path::new(dir).join(&entry.name));
            }
        }
    }
    files.retain(|f| root.is_file(f));
    Ok(files)
}

fn is_initramfs(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with("initrd") || n.starts_with("initramfs"))
}

/// Members of an initramfs where a generator records device names
/// (dracut's cmdline.d, initramfs-tools' conf.d).
fn records_devices(member: &str) -> bool {
    ["etc/cmdline.d/", "conf/", "etc/cmdline"]
        .iter()
        .any(|p| member.trim_start_matches("./").starts_with(p))
}

/// Rescue-only names inside one initramfs image.
fn initramfs_traces(names: &RescueNames, image: &[u8]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    crate::verify_boot::initramfs::for_each_member(image, &mut |member, mode, data| {
        if mode & 0o170000 != 0o100000 {
            return;
        }
        for trace in names.vg_traces(data) {
            found.push(format!("{member}: {trace}"));
        }
        if records_devices(member) {
            for trace in names.device_traces(&String::from_utf8_lossy(data)) {
                found.push(format!("{member}: {trace}"));
            }
        }
    })?;
    Ok(found)
}

/// The `no-rescue-names` verification: no temporary VG name in any boot
/// file, no rescue-VM device name in a boot file this run changed, neither
/// inside an initramfs this run regenerated.
pub fn check(root: &RootDir, names: &RescueNames, changed: &[PathBuf]) -> Result<CheckResult> {
    let mut problems = Vec::new();
    for file in boot_files(root)? {
        let bytes = root.read(&file)?;
        let mut traces = names.vg_traces(&bytes);
        if changed.contains(&file) {
            traces.extend(names.device_traces(&String::from_utf8_lossy(&bytes)));
        }
        if !traces.is_empty() {
            problems.push(format!("{}: {}", file.display(), traces.join(", ")));
        }
    }
    for image in changed.iter().filter(|p| is_initramfs(p)) {
        let Ok(bytes) = root.read_boot_image(image) else {
            continue;
        };
        let traces = initramfs_traces(names, &bytes)
            .with_context(|| format!("reading {} for rescue-VM names", image.display()))?;
        for trace in traces {
            problems.push(format!("{} {trace}", image.display()));
        }
    }
    let ok = problems.is_empty();
    Ok(CheckResult {
        check: "no-rescue-names".into(),
        ok,
        detail: if ok {
            "no temporary volume group name or rescue-VM device name in the boot files or the regenerated initramfs".into()
        } else {
            format!("rescue-VM names left: {}", problems.join("; "))
        },
    })
}

#[cfg(test)]
mod tests;
