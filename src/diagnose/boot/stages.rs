//! The stages that stop a boot without a panic: firmware, GRUB, the
//! initramfs's wait for root, systemd's mounts and emergency mode,
//! filesystem checks, SELinux and a full disk. Each line records a hit whose
//! parameters name what failed (the device, the mount point, the file).

use std::collections::BTreeMap;

use super::super::signatures::{Engine, Kind};
use super::{params, Boot, LineRef};

/// Findings of the stages before the kernel: a kernel line after them
/// belongs to the same boot (see `LogState::process`).
pub(in crate::diagnose) const FIRMWARE_IDS: &[&str] = &[
    "uefi-boot-failed",
    "secure-boot-refused",
    "bootloader-damaged",
    "grub-kernel-missing",
    "grub-initrd-missing",
];

/// Dispatches one stage line.
pub(super) fn stage_line(engine: &Engine, boot: &mut Boot, kind: Kind, line: &LineRef<'_>) {
    let found = match kind {
        Kind::DependencyFailed => dependency_failed(engine, line.text),
        Kind::DeviceTimeout => device_timeout(engine, line.text),
        Kind::MountFailed => mount_failed(engine, line.text),
        Kind::EmergencyMode => Some(emergency(line.text)),
        Kind::FsckFailed | Kind::XfsCorruption => Some(filesystem(engine, kind, line.text)),
        Kind::MkinitcpioNotFound => {
            let device = capture(&engine.stage.mkinitcpio_device, line.text);
            Some(("initrd-root-not-found", opt("root", device)))
        }
        Kind::GrubError => grub_error(engine, line.text),
        Kind::GrubRescue => Some(("bootloader-damaged", BTreeMap::new())),
        Kind::UefiBoot => uefi_boot(engine, boot, line),
        Kind::NoBootable => Some(("uefi-boot-failed", BTreeMap::new())),
        Kind::SecureBoot => Some(("secure-boot-refused", BTreeMap::new())),
        Kind::SelinuxPolicy => Some(("selinux-policy-failed", BTreeMap::new())),
        Kind::NoSpace => Some(("disk-full", BTreeMap::new())),
        _ => None,
    };
    if let Some((id, p)) = found {
        boot.record(id, line, None, p);
    }
}

type Found = (&'static str, BTreeMap<String, String>);

fn opt(key: &str, value: Option<String>) -> BTreeMap<String, String> {
    value.map_or_else(BTreeMap::new, |v| params([(key, v)]))
}

fn capture(pattern: &regex::Regex, text: &str) -> Option<String> {
    pattern.captures(text).map(|caps| caps[1].to_string())
}

/// `Dependency failed for X`: the root in the initramfs, or a local mount.
/// Other units (network waits, relabel marks, the initrd's later steps)
/// only follow from these.
fn dependency_failed(engine: &Engine, text: &str) -> Option<Found> {
    let target = capture(&engine.stage.dependency, text)?;
    // Newer systemd: `unit.mount - /data`, `initrd-root-fs.target - Initrd Root File System`.
    let described = target
        .split_once(" - ")
        .map_or(target.as_str(), |(_, d)| d)
        .trim_end_matches('.');
    if target.contains("Initrd Root")
        || target.contains("sysroot")
        || target.contains("Initrd File Systems")
    {
        return Some(("initrd-root-not-found", BTreeMap::new()));
    }
    if described.starts_with('/') {
        let p = params([("mount", described.to_string()), ("stopped", "true".into())]);
        return Some(("emergency-mode", p));
    }
    if described.starts_with("Local File Systems") {
        return Some(("emergency-mode", params([("stopped", "true".into())])));
    }
    None
}

/// `Timed out waiting for device dev-disk-by\x2duuid-….device`: only the
/// device; the root or mount finding it explains takes it from here.
fn device_timeout(engine: &Engine, text: &str) -> Option<Found> {
    let caps = engine.stage.device_timeout.captures(text)?;
    let device = match caps.get(2) {
        Some(described) if described.as_str().starts_with('/') => described.as_str().to_string(),
        _ => unescape_unit(&caps[1]),
    };
    Some(("device-timeout", params([("device", device)])))
}

/// A systemd device unit name as the path it stands for:
/// `dev-disk-by\x2duuid-12ab.device` → `/dev/disk/by-uuid/12ab`.
pub(super) fn unescape_unit(unit: &str) -> String {
    let name = unit.trim_end_matches(".device");
    if name.starts_with('/') {
        return name.to_string();
    }
    let mut out = String::from("/");
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(hex) = rest.strip_prefix("\\x").and_then(|r| r.get(..2)) {
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(char::from(byte));
                rest = &rest[4..];
                continue;
            }
        }
        out.push(if c == '-' { '/' } else { c });
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `Failed to mount /data.`: the root (`/sysroot`, mkinitcpio's "on real
/// root") or a local mount.
fn mount_failed(engine: &Engine, text: &str) -> Option<Found> {
    let what = capture(&engine.stage.mount_failed, text)?;
    if what.starts_with("/sysroot") || text.contains("real root") {
        let root = (!what.starts_with("/sysroot")).then_some(what);
        return Some(("initrd-root-not-found", opt("root", root)));
    }
    what.starts_with('/')
        .then(|| ("emergency-mode", params([("mount", what)])))
}

/// The emergency shell: mkinitcpio's is the initramfs's (no root), the
/// others systemd's on the real root.
fn emergency(text: &str) -> Found {
    if text.contains("dropped into an emergency shell") {
        return ("initrd-root-not-found", BTreeMap::new());
    }
    ("emergency-mode", params([("stopped", "true".into())]))
}

fn filesystem(engine: &Engine, kind: Kind, text: &str) -> Found {
    let mut p = BTreeMap::new();
    if let Some(caps) = engine.stage.fs_device.captures(text) {
        if let Some(device) = caps.get(1).or_else(|| caps.get(2)) {
            p.insert("device".to_string(), device.as_str().to_string());
        }
    }
    // fsck asking for a manual run stops the boot; XFS complaints and a
    // refused mount may not.
    if kind == Kind::FsckFailed && !text.contains("wrong fs type") {
        p.insert("stopped".to_string(), "true".to_string());
    }
    ("filesystem-damaged", p)
}

/// GRUB's `error: …` lines.
fn grub_error(engine: &Engine, text: &str) -> Option<Found> {
    if text.contains("bad shim signature") || text.contains("invalid signature") {
        return Some(("secure-boot-refused", BTreeMap::new()));
    }
    if text.contains("you need to load the kernel first") {
        return Some(("grub-kernel-missing", BTreeMap::new()));
    }
    let Some(file) = capture(&engine.stage.grub_file, text) else {
        // no such partition / unknown filesystem / no such device
        return Some(("bootloader-damaged", BTreeMap::new()));
    };
    let name = file.rsplit('/').next().unwrap_or(&file);
    if name.ends_with(".mod") || name.ends_with(".cfg") {
        return Some(("bootloader-damaged", params([("file", file.clone())])));
    }
    let version = kernel_version_of(name);
    let mut p = params([("file", file.clone())]);
    if let Some(version) = version {
        p.insert("kernel".into(), version);
    }
    if name.starts_with("initrd") || name.starts_with("initramfs") {
        Some(("grub-initrd-missing", p))
    } else {
        Some(("grub-kernel-missing", p))
    }
}

/// `vmlinuz-5.14.0-70.el9.x86_64` → `5.14.0-70.el9.x86_64`;
/// `initramfs-5.14.0-70.el9.x86_64.img`, `initrd.img-6.1.0-18-amd64` likewise.
fn kernel_version_of(name: &str) -> Option<String> {
    let rest = ["vmlinuz-", "initrd.img-", "initramfs-", "initrd-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))?;
    let version = rest.trim_end_matches(".img").trim_end_matches("kdump");
    let version = version.trim_end_matches('.').trim_end_matches('-');
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_string())
}

/// `BdsDxe: failed to load Boot0001 "…" from …: Not Found` (or `Access
/// Denied`, Secure Boot), `BdsDxe: starting Boot0002 …`.
fn uefi_boot(engine: &Engine, boot: &mut Boot, line: &LineRef<'_>) -> Option<Found> {
    let caps = engine.stage.bds.captures(line.text)?;
    if &caps[1] == "starting" {
        boot.firmware_started = Some(line.line_number);
        return None;
    }
    let mut p = params([("entry", caps[2].to_string())]);
    if let Some(name) = caps.get(3) {
        p.insert("description".into(), name.as_str().trim().to_string());
    }
    let status = caps.get(4).map_or("", |s| s.as_str());
    if status.contains("Access Denied") || status.contains("Security Violation") {
        return Some(("secure-boot-refused", p));
    }
    Some(("uefi-boot-failed", p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_become_paths() {
        assert_eq!(
            unescape_unit("dev-disk-by\\x2duuid-5e6f\\x2d12.device"),
            "/dev/disk/by-uuid/5e6f-12"
        );
        assert_eq!(
            unescape_unit("dev-mapper-rhel\\x2droot.device"),
            "/dev/mapper/rhel-root"
        );
    }

    #[test]
    fn kernel_versions_from_file_names() {
        assert_eq!(
            kernel_version_of("vmlinuz-5.14.0-70.el9.x86_64").as_deref(),
            Some("5.14.0-70.el9.x86_64")
        );
        assert_eq!(
            kernel_version_of("initrd.img-6.1.0-18-amd64").as_deref(),
            Some("6.1.0-18-amd64")
        );
        assert_eq!(kernel_version_of("vmlinuz"), None);
    }
}
