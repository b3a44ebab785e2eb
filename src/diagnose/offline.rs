//! Offline checks of the mounted OS: problems that stop a boot, found
//! without any console log.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{EvidenceLine, Finding, RecipeSuggestion, Severity};
use crate::attach::Layout;
use crate::inspect::kernels::InitramfsState;
use crate::inspect::snapshot::Snapshot;
use crate::rootfs::{EntryKind, RootDir};

/// Drivers a cloud VM needs to find its disk; blacklisting one stops the boot.
const ESSENTIAL_DRIVERS: &[&str] = &[
    "hv_vmbus",
    "hv_storvsc",
    "virtio_blk",
    "virtio_scsi",
    "virtio_pci",
    "nvme",
    "xen_blkfront",
    "ata_piix",
    "sd_mod",
];

pub(super) fn finding(
    id: &str,
    severity: Severity,
    title: String,
    explanation: &str,
    evidence: Vec<EvidenceLine>,
) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title,
        explanation: explanation.to_string(),
        evidence,
        suggestions: Vec::new(),
        next_step: None,
        boot_index: None,
        kernel_version: None,
        culprit_module: None,
    }
}

pub(super) fn evidence(source: &str, line_number: u64, text: impl Into<String>) -> EvidenceLine {
    EvidenceLine {
        source: source.to_string(),
        line_number,
        text: text.into(),
    }
}

pub(super) fn suggest(recipe: &str, params: &[(&str, &str)], why: &str) -> RecipeSuggestion {
    RecipeSuggestion {
        recipe: recipe.to_string(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        why: why.to_string(),
    }
}

/// Findings about the target as it is on disk.
pub fn offline_findings(
    root: &RootDir,
    snapshot: &Snapshot,
    layout: Option<&Layout>,
) -> Result<Vec<Finding>> {
    // Every check runs, so that one broken thing does not hide another.
    let mut findings = default_kernel_findings(snapshot);
    findings.extend(root_mismatch_finding(snapshot));
    findings.extend(layout.and_then(fstab_source_finding));
    if let Some(layout) = layout {
        findings.extend(lvm_devices_finding(root, snapshot, layout)?);
        findings.extend(super::boot_loader::findings(root, layout)?);
    }
    findings.extend(nvme_finding(root, snapshot)?);
    findings.extend(init_finding(root));
    findings.extend(blacklisted_drivers(root)?);
    findings.extend(sysctl_findings(root)?);
    findings.extend(kdump_findings(root, snapshot)?);
    findings.extend(disk_full_finding(root, snapshot)?);
    Ok(findings)
}

/// A filesystem of the target nearly full: which, how full, and the largest
/// consumers (regenerable ones first named by kind, then old kernels).
fn disk_full_finding(root: &RootDir, snapshot: &Snapshot) -> Result<Option<Finding>> {
    use crate::inspect::disk_usage::{self, human_bytes};
    let default = snapshot
        .boot
        .as_ref()
        .and_then(|b| b.entry.kernel_version.as_deref());
    let usage = disk_usage::scan(root, default)?;
    let full: Vec<_> = usage
        .filesystems
        .iter()
        .filter(|fs| fs.nearly_full())
        .collect();
    if full.is_empty() {
        return Ok(None);
    }
    let mut lines: Vec<EvidenceLine> = full
        .iter()
        .map(|fs| {
            evidence(
                &fs.path.display().to_string(),
                0,
                format!(
                    "{} free of {}",
                    human_bytes(fs.free_bytes),
                    human_bytes(fs.total_bytes)
                ),
            )
        })
        .collect();
    for (kind, bytes, count) in usage.by_kind() {
        lines.push(evidence(
            kind.describe(),
            0,
            format!("{} in {count} files", human_bytes(bytes)),
        ));
    }
    lines.extend(
        usage
            .consumers
            .iter()
            .take(5)
            .map(|c| evidence(&c.path.display().to_string(), 0, human_bytes(c.bytes))),
    );
    let mut f = finding(
        "offline-disk-full",
        Severity::Error,
        format!("{} of the target's filesystems is nearly full", full.len()),
        "journald, dbus and other services fail to write at boot (`No space left on device`). Archived journals, package caches and rotated logs are made again when needed; old kernels are not (remove them with the package manager once the VM boots).",
        lines,
    );
    f.suggestions.push(suggest(
        "free-space",
        &[],
        "delete the regenerable files named here (needs --param confirm=true: they cannot be restored)",
    ));
    Ok(Some(f))
}

/// The default kernel's own files: initramfs, modules, third-party modules.
fn default_kernel_findings(snapshot: &Snapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    let default = snapshot
        .boot
        .as_ref()
        .and_then(|b| b.entry.kernel_version.clone());
    if let Some(version) = &default {
        if let Some(kernel) = snapshot.kernels.iter().find(|k| &k.version == version) {
            let state = match kernel.initramfs.state {
                InitramfsState::Missing => Some("missing"),
                InitramfsState::Empty => Some("empty"),
                InitramfsState::OlderThanModules => Some("older than the kernel's modules"),
                InitramfsState::Present => None,
            };
            if let Some(state) = state {
                let mut f = finding(
                    "offline-initramfs-missing",
                    Severity::Critical,
                    format!("The default kernel's initramfs is {state}"),
                    "Without a complete initramfs the kernel cannot load the storage drivers or find root, and panics with \
                     `VFS: Unable to mount root fs on unknown-block(0,0)`.",
                    vec![evidence(&kernel.initramfs.path, 0, format!("{} ({state})", kernel.initramfs.path))],
                );
                f.kernel_version = Some(version.clone());
                f.suggestions.push(suggest(
                    "rebuild-initramfs",
                    &[("kernel", version)],
                    "regenerate it for this kernel",
                ));
                f.suggestions.push(suggest(
                    "older-kernel",
                    &[("avoid_kernel", version)],
                    "or boot an older complete kernel",
                ));
                findings.push(f);
            }
            if kernel.modules_dir.is_none() {
                let mut f = finding(
                    "offline-kernel-modules-missing",
                    Severity::Critical,
                    format!("The default kernel {version} has no modules directory"),
                    "The kernel package was removed or half-installed: it cannot load drivers. Boot an older kernel and reinstall it.",
                    vec![evidence(&format!("/lib/modules/{version}"), 0, "missing")],
                );
                f.kernel_version = Some(version.clone());
                f.suggestions.push(suggest(
                    "older-kernel",
                    &[("avoid_kernel", version)],
                    "boot a complete older kernel",
                ));
                findings.push(f);
            }
            if !kernel.out_of_tree_modules.is_empty() {
                let mut f = finding(
                    "offline-out-of-tree-modules",
                    Severity::Info,
                    format!("Out-of-tree modules are installed for {version}"),
                    "Third-party modules (extra/, updates/, DKMS) taint the kernel and are a common cause of panics after a kernel update.",
                    kernel.out_of_tree_modules.iter().take(8).map(|m| evidence(m, 0, m.clone())).collect(),
                );
                f.kernel_version = Some(version.clone());
                findings.push(f);
            }
        }
    }
    findings
}

/// root= on the command line and `/` in fstab name different filesystems.
fn root_mismatch_finding(snapshot: &Snapshot) -> Option<Finding> {
    if let (Some(arg), Some(fstab)) = (&snapshot.root_arg, &snapshot.fstab_root) {
        if crate::inspect::snapshot::root_specs_conflict(arg, fstab) {
            let mut f = finding(
                "offline-root-mismatch",
                Severity::Error,
                "root= and fstab name different root filesystems".into(),
                "The kernel mounts root= while systemd remounts / from fstab; when they differ one of them usually does not exist.",
                vec![evidence("kernel command line", 0, format!("root={arg}")), evidence("/etc/fstab", 0, format!("{fstab} /"))],
            );
            f.suggestions.push(suggest(
                "fix-root-fs",
                &[],
                "point both at the filesystem on the disk",
            ));
            return Some(f);
        }
    }
    None
}

/// fstab entries without nofail whose source is not on the disk.
fn fstab_source_finding(layout: &Layout) -> Option<Finding> {
    let missing: Vec<_> = layout.unresolved.iter().filter(|n| !n.nofail).collect();
    if missing.is_empty() {
        return None;
    }
    let plural = if missing.len() == 1 { "y" } else { "ies" };
    let mut f = finding(
        "offline-fstab-source-missing",
        Severity::Error,
        format!("{} fstab entr{plural} name a source that is not on the disk", missing.len()),
        "systemd waits for these and drops to emergency mode (`Dependency failed for …`) unless they are marked nofail.",
        missing
            .iter()
            .map(|n| evidence("/etc/fstab", n.line as u64, format!("{} {} {}", n.spec, n.mount_point, n.fstype)))
            .collect(),
    );
    f.suggestions.push(suggest(
        "fix-mounts",
        &[],
        "point /boot and /boot/efi at their partitions, mark the others nofail",
    ));
    Some(f)
}

/// The default kernel's initramfs, as the target's snapshot names it.
fn default_initramfs(snapshot: &Snapshot) -> Option<&str> {
    let version = snapshot.boot.as_ref()?.entry.kernel_version.as_deref()?;
    let kernel = snapshot.kernels.iter().find(|k| k.version == version)?;
    Some(kernel.initramfs.path.as_str())
}

/// LVM's devices file (root fs or default initramfs) without the disk's PVs.
fn lvm_devices_finding(
    root: &RootDir,
    snapshot: &Snapshot,
    layout: &Layout,
) -> Result<Option<Finding>> {
    let pvids = super::lvm_devices::disk_pvids(layout);
    let initramfs = default_initramfs(snapshot).map(Path::new);
    let stale = super::lvm_devices::stale_copies(root, initramfs, &pvids)?;
    if stale.is_empty() {
        return Ok(None);
    }
    let mut f = finding(
        "offline-lvm-devices-stale",
        Severity::Critical,
        "LVM's devices file does not list the disk's physical volume".into(),
        "With a devices file (RHEL 9's default) LVM uses only the PVs it lists by PV UUID. The disk's PV has another \
         UUID (the disk was restored, cloned or its PV re-labelled), so the initramfs does not find the root VG and \
         stops with `/dev/mapper/… does not exist` or in the dracut shell.",
        stale
            .iter()
            .map(|copy| evidence(&copy.file, 0, super::lvm_devices::describe(copy)))
            .collect(),
    );
    f.suggestions.push(suggest(
        "lvm-devices",
        &[],
        "list the disk's PVs in the devices file and rebuild the initramfs",
    ));
    Ok(Some(f))
}

/// The default kernel's version, initramfs and command line (with the file
/// that holds it), as the snapshot names them.
pub fn default_boot(
    snapshot: &Snapshot,
) -> (
    Option<super::nvme::KernelImage<'_>>,
    Option<super::nvme::SourcedCmdline<'_>>,
) {
    let Some(entry) = snapshot.boot.as_ref().map(|b| &b.entry) else {
        return (None, None);
    };
    let kernel = entry.kernel_version.as_deref().and_then(|version| {
        let image = default_initramfs(snapshot)?;
        Some((version, Path::new(image)))
    });
    let file = entry.defined_in.as_deref().unwrap_or("the boot entry");
    (kernel, entry.cmdline.as_deref().map(|c| (file, c)))
}

/// A disk that would not boot on an NVMe controller (NVMe-only VM sizes).
fn nvme_finding(root: &RootDir, snapshot: &Snapshot) -> Result<Option<Finding>> {
    let (kernel, cmdline) = default_boot(snapshot);
    let readiness = super::nvme::readiness(root, kernel, cmdline)?;
    if readiness.ready() {
        return Ok(None);
    }
    let mut lines = Vec::new();
    if let Some(image) = &readiness.initramfs_without_nvme {
        lines.push(evidence(
            image,
            0,
            format!("{image}: no nvme driver (nor built into the kernel)"),
        ));
    }
    for name in &readiness.names {
        lines.push(evidence(
            &name.file,
            name.line,
            format!(
                "{} names {} by a controller-bound path",
                name.used_as, name.name
            ),
        ));
    }
    let mut f = finding(
        "offline-not-nvme-ready",
        Severity::Warning,
        "The disk would not boot on an NVMe controller".into(),
        "NVMe-only sizes (Azure v6 and Boost, AWS Nitro, GCE C3) present the disk as nvme0n1: without the nvme driver \
         in the initramfs, or with filesystems named /dev/sd*, /dev/xvd* or by Azure's scsi1/lun* links, the VM stops \
         in the initramfs or in emergency mode after a resize.",
        lines,
    );
    f.suggestions.push(suggest(
        "nvme-ready",
        &[],
        "force nvme into the initramfs and name filesystems by UUID",
    ));
    Ok(Some(f))
}

/// No init program where the kernel looks for one.
fn init_finding(root: &RootDir) -> Option<Finding> {
    let init = [
        "/sbin/init",
        "/usr/lib/systemd/systemd",
        "/lib/systemd/systemd",
    ];
    if !init.iter().any(|p| root.is_file(p)) {
        return Some(finding(
            "offline-init-missing",
            Severity::Critical,
            "No init program (/sbin/init, systemd) on the root filesystem".into(),
            "The kernel panics with `No working init found` / `Attempted to kill init!`: the root filesystem is damaged or is not the real root.",
            vec![evidence("/sbin/init", 0, "missing")],
        ));
    }
    None
}

/// Why the target looks like a Hyper-V (Azure) guest: the Azure agent or
/// cloud-init's Azure datasource, or hv_* drivers forced into the initramfs
/// or loaded at boot.
fn hyperv_evidence(root: &RootDir) -> Result<Option<EvidenceLine>> {
    for path in ["/etc/waagent.conf", "/usr/sbin/waagent", "/var/lib/waagent"] {
        if root.exists(path) {
            return Ok(Some(evidence(path, 0, "Azure guest agent (WALinuxAgent)")));
        }
    }
    let datasource = "/var/lib/cloud/instance/datasource";
    if let Some(text) = root.read_string_optional(datasource)? {
        if text.contains("Azure") {
            return Ok(Some(evidence(datasource, 1, text.trim())));
        }
    }
    let mut files: Vec<String> = vec![
        "/etc/dracut.conf".into(),
        "/etc/initramfs-tools/modules".into(),
        "/etc/modules".into(),
    ];
    for dir in ["/etc/dracut.conf.d", "/etc/modules-load.d"] {
        for entry in root.list_dir(dir)? {
            let name = entry.name.to_string_lossy();
            if name.ends_with(".conf") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    for file in files {
        let text = root.read_string_optional(&file)?.unwrap_or_default();
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let names_hv = line
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word.starts_with("hv_"));
            if names_hv {
                return Ok(Some(evidence(&file, index as u64 + 1, line.trim())));
            }
        }
    }
    Ok(None)
}

fn kdump_findings(root: &RootDir, snapshot: &Snapshot) -> Result<Vec<Finding>> {
    use crate::inspect::kdump::{self, Flavor, KDUMP_CONF, REFUSED_BY_KDUMPCTL};
    let Some(family) = snapshot.distro.family else {
        return Ok(Vec::new());
    };
    let setup = kdump::detect(root, family)?;
    if !setup.enabled() {
        return Ok(Vec::new());
    }
    let enabled = setup
        .enabled_links
        .first()
        .map(|link| evidence(&link.display().to_string(), 0, "kdump service enabled"))
        .into_iter()
        .collect::<Vec<_>>();
    let mut findings = Vec::new();
    let cmdline = snapshot.boot.as_ref().and_then(|b| b.entry.cmdline.clone());
    if let Some(cmdline) = cmdline {
        if !crate::inspect::cmdline::KernelCmdline::parse(&cmdline).contains("crashkernel") {
            let mut lines = enabled.clone();
            lines.push(evidence("default boot entry", 0, cmdline));
            let mut f = finding(
                "offline-kdump-no-crashkernel",
                Severity::Warning,
                "kdump is enabled but the default boot entry has no crashkernel= argument".into(),
                "Without crashkernel= no memory is reserved for the crash kernel: the kdump service fails at boot and a panic leaves no vmcore.",
                lines,
            );
            f.suggestions.push(suggest(
                "enable-kdump",
                &[],
                "reserve crash kernel memory (and check the rest of the kdump setup)",
            ));
            findings.push(f);
        }
    }
    if setup.flavor == Flavor::KexecTools {
        if let (Some(platform), Some(text)) = (
            hyperv_evidence(root)?,
            root.read_string_optional(KDUMP_CONF)?,
        ) {
            let conf = crate::inspect::kdump_conf::KdumpConf::parse(&text);
            let refused: Vec<EvidenceLine> = conf
                .directives()
                .filter(|(_, d)| {
                    setup.dracut_based && REFUSED_BY_KDUMPCTL.contains(&d.name.as_str())
                })
                .map(|(index, d)| {
                    evidence(
                        KDUMP_CONF,
                        index as u64 + 1,
                        format!("{} {}", d.name, d.value),
                    )
                })
                .collect();
            let has_ide = conf.has("extra_modules", "ata_piix sr_mod sd_mod", true);
            if !has_ide || !refused.is_empty() {
                let mut lines = enabled.clone();
                lines.push(platform);
                lines.extend(refused);
                let mut f = finding(
                    "offline-kdump-hyperv-settings-missing",
                    Severity::Warning,
                    "kdump enabled on a Hyper-V guest without the Hyper-V kdump settings".into(),
                    "In the kdump kernel of a Hyper-V guest the synthetic storage drivers often do not come up again, so the \
                     crash kernel finds no disk and the vmcore is lost; kdump.conf needs the emulated IDE drivers and the \
                     Hyper-V drivers kept out (and kdumpctl of RHEL 7+ refuses the old blacklist/options/disk_timeout lines).",
                    lines,
                );
                f.suggestions.push(suggest(
                    "kdump-hyperv",
                    &[],
                    "apply the Hyper-V kdump settings (Generation 1 VMs)",
                ));
                findings.push(f);
            }
        }
    }
    Ok(findings)
}

fn blacklisted_drivers(root: &RootDir) -> Result<Vec<Finding>> {
    use crate::inspect::modprobe_d::ModprobeConf;
    let mut evidence_lines = Vec::new();
    for dir in ["/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"] {
        for entry in root.list_dir(dir)? {
            if entry.kind != EntryKind::File || !entry.name.to_string_lossy().ends_with(".conf") {
                continue;
            }
            let path = Path::new(dir).join(&entry.name);
            let text = root.read_string_optional(&path)?.unwrap_or_default();
            let conf = ModprobeConf::parse(&text);
            let lines: Vec<&str> = text.lines().collect();
            for directive in conf.directives() {
                if directive.disables() && ESSENTIAL_DRIVERS.contains(&directive.module.as_str()) {
                    let line = lines.get(directive.line - 1).copied().unwrap_or_default();
                    evidence_lines.push(evidence(
                        &path.display().to_string(),
                        directive.line as u64,
                        line.trim(),
                    ));
                }
            }
        }
    }
    if evidence_lines.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![finding(
        "offline-storage-driver-blacklisted",
        Severity::Critical,
        "An essential storage/bus driver is blacklisted in modprobe.d".into(),
        "Hyper-V, virtio or NVMe drivers are how the VM sees its disk; blacklisted, the initramfs cannot find root. Remove these lines \
         (vmrescue chroot --rw, then rebuild-initramfs).",
        evidence_lines,
    )])
}

fn sysctl_findings(root: &RootDir) -> Result<Vec<Finding>> {
    let settings: BTreeMap<String, (String, EvidenceLine)> =
        crate::inspect::sysctl::effective(root)?
            .into_iter()
            .map(|(key, setting)| {
                let line = evidence(
                    &setting.file.display().to_string(),
                    setting.line,
                    setting.text,
                );
                (key, (setting.value, line))
            })
            .collect();
    let mut findings = Vec::new();
    if let Some((value, line)) = settings.get("vm.panic_on_oom") {
        if value != "0" {
            let mut f = finding(
                "offline-panic-on-oom",
                Severity::Warning,
                format!("vm.panic_on_oom = {value}: running out of memory panics the kernel"),
                "With panic_on_oom set, the OOM killer is not used: any memory exhaustion becomes a kernel panic.",
                vec![line.clone()],
            );
            f.suggestions.push(suggest(
                "panic-on-oom",
                &[],
                "let the OOM killer handle memory exhaustion",
            ));
            findings.push(f);
        }
    }
    match settings.get("kernel.panic") {
        Some((value, line)) if value == "0" => {
            let mut f = finding(
                "offline-no-reboot-after-panic",
                Severity::Info,
                "kernel.panic = 0: a panicked VM hangs instead of rebooting".into(),
                "Set kernel.panic to a number of seconds so the VM reboots on its own after a panic.",
                vec![line.clone()],
            );
            f.suggestions.push(suggest(
                "panic-autoreboot",
                &[],
                "reboot automatically after a panic",
            ));
            findings.push(f);
        }
        _ => {}
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in [
            "etc/modprobe.d",
            "etc/sysctl.d",
            "sbin",
            "boot/grub",
            "lib/modules/6.1.0-9-amd64",
        ] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(p.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        std::fs::write(p.join("etc/fstab"), "UUID=abcd / ext4 defaults 0 1\n").unwrap();
        std::fs::write(p.join("sbin/init"), "").unwrap();
        std::fs::write(
            p.join("boot/grub/grub.cfg"),
            "set default=\"0\"\nmenuentry 'Debian' {\n\tlinux /boot/vmlinuz-6.1.0-9-amd64 root=UUID=abcd ro\n\tinitrd /boot/initrd.img-6.1.0-9-amd64\n}\n",
        )
        .unwrap();
        std::fs::write(p.join("boot/vmlinuz-6.1.0-9-amd64"), "k").unwrap();
        std::fs::write(p.join("lib/modules/6.1.0-9-amd64/modules.dep"), "").unwrap();
        dir
    }

    fn ids(dir: &Path) -> Vec<String> {
        let root = RootDir::open(dir).unwrap();
        let snap = crate::inspect::snapshot::snapshot(&root).unwrap();
        offline_findings(&root, &snap, None)
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect()
    }

    #[test]
    fn missing_initramfs_suggests_rebuilding_it_for_the_default_kernel() {
        let dir = tree();
        let root = RootDir::open(dir.path()).unwrap();
        let snap = crate::inspect::snapshot::snapshot(&root).unwrap();
        let findings = offline_findings(&root, &snap, None).unwrap();
        let f = findings
            .iter()
            .find(|f| f.id == "offline-initramfs-missing")
            .unwrap();
        assert_eq!(f.suggestions[0].recipe, "rebuild-initramfs");
        assert_eq!(f.suggestions[0].params["kernel"], "6.1.0-9-amd64");
        std::fs::write(
            dir.path().join("boot/initrd.img-6.1.0-9-amd64"),
            "initramfs",
        )
        .unwrap();
        assert!(!ids(dir.path()).contains(&"offline-initramfs-missing".to_string()));
    }

    /// A RHEL 8 tree with kdump enabled on Azure.
    fn rhel_kdump_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let write = |path: &str, text: &str| {
            let path = p.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("etc/os-release", "ID=\"rhel\"\nVERSION_ID=\"8.10\"\n");
        write("etc/fstab", "UUID=abcd / xfs defaults 0 0\n");
        write("sbin/init", "");
        write(
            "boot/grub2/grub.cfg",
            "set default=\"0\"\nmenuentry 'RHEL' {\n\tlinux /vmlinuz-4.18.0-553.el8_10.x86_64 root=UUID=abcd ro console=ttyS0\n\tinitrd /initramfs-4.18.0-553.el8_10.x86_64.img\n}\n",
        );
        write("boot/vmlinuz-4.18.0-553.el8_10.x86_64", "k");
        write("boot/initramfs-4.18.0-553.el8_10.x86_64.img", "i");
        write("lib/modules/4.18.0-553.el8_10.x86_64/modules.dep", "");
        write(
            "etc/kdump.conf",
            "path /var/crash\ncore_collector makedumpfile -l --message-level 1 -d 31\n",
        );
        write(
            "usr/lib/systemd/system/kdump.service",
            "[Install]\nWantedBy=multi-user.target\n",
        );
        write("usr/bin/kdumpctl", "");
        std::fs::create_dir_all(p.join("etc/systemd/system/multi-user.target.wants")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/kdump.service",
            p.join("etc/systemd/system/multi-user.target.wants/kdump.service"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn enabled_kdump_without_crashkernel_suggests_enable_kdump() {
        let dir = rhel_kdump_tree();
        let found = ids(dir.path());
        assert!(
            found.contains(&"offline-kdump-no-crashkernel".to_string()),
            "{found:?}"
        );
        assert!(
            !found.contains(&"offline-kdump-hyperv-settings-missing".to_string()),
            "not a Hyper-V guest yet: {found:?}"
        );
        let cfg = dir.path().join("boot/grub2/grub.cfg");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("console=ttyS0", "console=ttyS0 crashkernel=auto");
        std::fs::write(&cfg, text).unwrap();
        assert!(!ids(dir.path()).contains(&"offline-kdump-no-crashkernel".to_string()));
        std::fs::remove_file(
            dir.path()
                .join("etc/systemd/system/multi-user.target.wants/kdump.service"),
        )
        .unwrap();
        std::fs::write(
            &cfg,
            std::fs::read_to_string(&cfg)
                .unwrap()
                .replace(" crashkernel=auto", ""),
        )
        .unwrap();
        assert!(
            !ids(dir.path()).contains(&"offline-kdump-no-crashkernel".to_string()),
            "kdump not enabled"
        );
    }

    #[test]
    fn kdump_on_a_hyperv_guest_without_the_settings_suggests_kdump_hyperv() {
        let dir = rhel_kdump_tree();
        let p = dir.path();
        std::fs::create_dir_all(p.join("etc/dracut.conf.d")).unwrap();
        std::fs::write(
            p.join("etc/dracut.conf.d/azure.conf"),
            "add_drivers+=\" hv_vmbus hv_netvsc hv_storvsc \"\n",
        )
        .unwrap();
        let root = RootDir::open(p).unwrap();
        let snap = crate::inspect::snapshot::snapshot(&root).unwrap();
        let findings = offline_findings(&root, &snap, None).unwrap();
        let f = findings
            .iter()
            .find(|f| f.id == "offline-kdump-hyperv-settings-missing")
            .unwrap();
        assert_eq!(f.suggestions[0].recipe, "kdump-hyperv");
        assert!(f
            .evidence
            .iter()
            .any(|e| e.source == "/etc/dracut.conf.d/azure.conf" && e.line_number == 1));
        std::fs::write(
            p.join("etc/kdump.conf"),
            "path /var/crash\nextra_modules ata_piix sr_mod sd_mod\n",
        )
        .unwrap();
        assert!(!ids(p).contains(&"offline-kdump-hyperv-settings-missing".to_string()));
        // The old advice on RHEL 7+: kdumpctl refuses it, kdump does not start.
        std::fs::remove_file(p.join("etc/dracut.conf.d/azure.conf")).unwrap();
        std::fs::write(p.join("etc/waagent.conf"), "").unwrap();
        std::fs::write(
            p.join("etc/kdump.conf"),
            "path /var/crash\nextra_modules ata_piix sr_mod sd_mod\nblacklist hv_vmbus\n",
        )
        .unwrap();
        assert!(ids(p).contains(&"offline-kdump-hyperv-settings-missing".to_string()));
    }

    #[test]
    fn planted_problems_are_each_found() {
        let dir = tree();
        let p = dir.path();
        std::fs::write(p.join("boot/initrd.img-6.1.0-9-amd64"), "initramfs").unwrap();
        assert!(ids(p).is_empty(), "{:?}", ids(p));
        std::fs::write(
            p.join("etc/modprobe.d/bad.conf"),
            "# comment\nblacklist hv_storvsc\n",
        )
        .unwrap();
        std::fs::write(
            p.join("etc/sysctl.d/90-oom.conf"),
            "vm.panic_on_oom = 1\nkernel.panic = 0\n",
        )
        .unwrap();
        std::fs::remove_file(p.join("sbin/init")).unwrap();
        std::fs::write(p.join("etc/fstab"), "UUID=other / ext4 defaults 0 1\n").unwrap();
        let found = ids(p);
        for id in [
            "offline-storage-driver-blacklisted",
            "offline-panic-on-oom",
            "offline-no-reboot-after-panic",
            "offline-init-missing",
            "offline-root-mismatch",
        ] {
            assert!(found.contains(&id.to_string()), "{id} not in {found:?}");
        }
    }
}
