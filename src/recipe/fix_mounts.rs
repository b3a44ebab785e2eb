//! `fix-mounts`: every local line of /etc/fstab held against the disk's
//! block devices as blkid sees them (UUID, LABEL, PARTUUID, type). A
//! `/boot` or `/boot/efi` line whose device changed is pointed at the
//! partition that holds that content, a line for a device that is not on
//! the disk gets `nofail` (and a short device timeout), a wrong filesystem
//! type is corrected. Each change keeps the other bytes of /etc/fstab.

use anyhow::Result;

use super::plan::{ActionContext, Planned, Workspace};
use crate::attach::fstab_mounts::{resolve_spec, skip_reason};
use crate::attach::nodes::DiskNode;
use crate::attach::{Layout, VolumeGroupUse};
use crate::disk::BlockDevice;
use crate::error::Failure;
use crate::inspect::fstab::{Fstab, FstabEntry};
use crate::rootfs::RootDir;

/// What a line for a missing device gets besides `nofail`: systemd waits
/// 90 s for a device by default, even for a `nofail` line.
pub const DEVICE_TIMEOUT: &str = "x-systemd.device-timeout=10s";

/// Where an EFI system partition is mounted.
const ESP_MOUNT_POINTS: &[&str] = &["/boot/efi", "/efi"];

/// Filesystems a separate /boot is made of.
const BOOT_FSTYPES: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs"];

/// Types blkid reports that fstab can mount; anything else on the device
/// (swap, an LVM PV, LUKS) is not corrected into the type field.
const MOUNTABLE: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "exfat", "ntfs", "f2fs", "jfs", "reiserfs",
    "iso9660", "udf",
];

/// Mount options only one filesystem family accepts: a mount with the
/// type corrected fails on the other family's options (XFS refuses
/// `errors=remount-ro`), so they go when the type changes.
const FAMILY_OPTIONS: &[(&str, &[&str])] = &[
    (
        "ext",
        &[
            "errors=",
            "data=",
            "commit=",
            "journal_checksum",
            "journal_async_commit",
            "barrier=",
            "nodelalloc",
            "user_xattr",
            "acl",
            "noacl",
            "stripe=",
            "resuid=",
            "resgid=",
        ],
    ),
    (
        "xfs",
        &[
            "allocsize=",
            "logbufs=",
            "logbsize=",
            "inode32",
            "inode64",
            "largeio",
            "nouuid",
            "swalloc",
            "sunit=",
            "swidth=",
            "attr2",
            "noattr2",
            "ikeep",
        ],
    ),
    (
        "vfat",
        &[
            "umask=",
            "dmask=",
            "fmask=",
            "shortname=",
            "codepage=",
            "iocharset=",
            "utf8",
            "flush",
        ],
    ),
];

/// The disk as fix-mounts sees it: its nodes in lsblk's shape (what the
/// mount's resolver takes), its VGs, the root filesystem's device.
pub struct DiskView<'a> {
    pub nodes: Vec<BlockDevice>,
    pub volume_groups: &'a [VolumeGroupUse],
    pub root_device: Option<&'a str>,
}

impl<'a> DiskView<'a> {
    pub fn of(layout: &'a Layout) -> Self {
        DiskView {
            nodes: layout.nodes.iter().map(DiskNode::to_block_device).collect(),
            volume_groups: &layout.volume_groups,
            root_device: layout.root_device.as_deref(),
        }
    }

    fn resolve(&self, spec: &str) -> Option<&BlockDevice> {
        resolve_spec(spec, &self.nodes, self.volume_groups)
    }
}

/// The correction of one fstab line: the fields that change, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFix {
    pub line: usize,
    pub mount_point: String,
    pub spec: Option<String>,
    pub fstype: Option<String>,
    pub options: Option<Vec<String>>,
    pub why: String,
}

/// Every line's correction, and what the operator should know about lines
/// left as they are.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    pub fixes: Vec<LineFix>,
    pub notes: Vec<String>,
}

/// The local entries: what the target's boot mounts from its disks.
fn local_entries(fstab: &Fstab) -> impl Iterator<Item = &FstabEntry> {
    fstab
        .entries()
        .iter()
        .filter(|e| e.mount_point == "/" || skip_reason(e).is_none())
}

/// Decides every local line of `fstab` against the disk.
pub fn decide(fstab: &Fstab, view: &DiskView) -> Decisions {
    // Devices already spoken for: root and every line that resolves. A
    // /boot partition is looked for among the others.
    let mut claimed: Vec<String> = view.root_device.map(str::to_string).into_iter().collect();
    claimed.extend(
        local_entries(fstab)
            .filter_map(|e| view.resolve(&e.spec))
            .map(BlockDevice::dev_path),
    );
    let mut decisions = Decisions::default();
    for entry in local_entries(fstab) {
        match view.resolve(&entry.spec) {
            Some(node) => match not_a_filesystem(entry, node) {
                Some(note) => decisions.notes.push(note),
                None => decisions.fixes.extend(type_fix(entry, node)),
            },
            None => decide_missing(entry, view, &claimed, &mut decisions),
        }
    }
    decisions
}

/// A note when the line's source holds something fstab cannot mount (swap,
/// an LVM PV, LUKS): which device was meant is not for a program to guess.
fn not_a_filesystem(entry: &FstabEntry, node: &BlockDevice) -> Option<String> {
    let found = node.fstype.as_deref()?;
    (!MOUNTABLE.contains(&found) && entry.fstype != found).then(|| {
        format!(
            "line {} ({}): {} is {} and holds {found}, not a filesystem to mount: check the line by hand",
            entry.line,
            entry.mount_point,
            entry.spec,
            node.dev_path()
        )
    })
}

/// A line whose source is not on the disk.
fn decide_missing(entry: &FstabEntry, view: &DiskView, claimed: &[String], out: &mut Decisions) {
    let at = format!("line {} ({})", entry.line, entry.mount_point);
    if entry.mount_point == "/" {
        out.notes.push(format!(
            "{at}: {} is not on the disk; the root line is fix-root-fs's to correct",
            entry.spec
        ));
        return;
    }
    let is_boot =
        entry.mount_point == "/boot" || ESP_MOUNT_POINTS.contains(&entry.mount_point.as_str());
    if is_boot {
        match boot_candidate(entry, view, claimed) {
            Ok((node, how)) => {
                out.fixes.push(point_at(entry, node, &how));
                return;
            }
            Err(why) => out
                .notes
                .push(format!("{at}: {} is not on the disk and {why}", entry.spec)),
        }
    }
    if optional(entry) {
        return;
    }
    if entry.mount_point == "/usr" {
        out.notes.push(format!(
            "{at}: {} is not on the disk; /usr cannot be made optional (the system's programs are on it): find the disk it was on",
            entry.spec
        ));
        return;
    }
    let mut options = entry.options.clone();
    options.push("nofail".into());
    if !options
        .iter()
        .any(|o| o.starts_with("x-systemd.device-timeout="))
    {
        options.push(DEVICE_TIMEOUT.into());
    }
    out.fixes.push(LineFix {
        line: entry.line,
        mount_point: entry.mount_point.clone(),
        spec: None,
        fstype: None,
        options: Some(options),
        why: format!(
            "{at}: {} is not on the disk -> nofail, {DEVICE_TIMEOUT}: boot goes on without it instead of stopping in emergency mode",
            entry.spec
        ),
    });
}

/// A line boot does not wait for: `nofail`, or `noauto` (not mounted at boot).
fn optional(entry: &FstabEntry) -> bool {
    entry.has_option("nofail") || entry.has_option("noauto")
}

/// The partition that holds what `/boot` or the ESP line mounts, and how it
/// was told. Decided from blkid's facts alone, without mounting: an
/// unresolved line left its partition unmounted, and this rescue host's
/// kernel may not even mount vfat. For the ESP, the one partition typed as
/// an ESP (else the one vfat partition); for /boot, the one Linux
/// filesystem partition that is neither root nor named by another fstab
/// line. More than one candidate is a note, never a guess.
fn boot_candidate<'a>(
    entry: &FstabEntry,
    view: &'a DiskView,
    claimed: &[String],
) -> std::result::Result<(&'a BlockDevice, String), String> {
    let parts = || view.nodes.iter().filter(|n| n.kind == "part");
    // systemd-boot mounts the ESP itself at /boot: a vfat /boot is an ESP line.
    let esp_line = entry.mount_point != "/boot" || entry.fstype == "vfat";
    let (found, what): (Vec<&BlockDevice>, &str) = if !esp_line {
        let found = parts()
            .filter(|n| {
                n.fstype
                    .as_deref()
                    .is_some_and(|t| BOOT_FSTYPES.contains(&t))
            })
            .filter(|n| !claimed.contains(&n.dev_path()))
            .filter(|n| !DiskNode::from_block_device(n).is_esp())
            .collect();
        (
            found,
            "Linux filesystem partition that is neither root nor named by another fstab line",
        )
    } else {
        let esp: Vec<_> = parts()
            .filter(|n| DiskNode::from_block_device(n).is_esp())
            .filter(|n| n.fstype.as_deref().is_none_or(|t| t == "vfat"))
            .collect();
        if esp.is_empty() {
            let vfat = parts()
                .filter(|n| n.fstype.as_deref() == Some("vfat"))
                .collect();
            (vfat, "vfat partition")
        } else {
            (esp, "EFI system partition")
        }
    };
    match found.as_slice() {
        [node] => Ok((
            *node,
            format!("{} is the disk's only {what}", node.dev_path()),
        )),
        [] => Err(format!("the disk has no {what}")),
        many => Err(format!(
            "the disk has several candidates ({}): point the line at the right one by hand",
            many.iter()
                .map(|n| n.dev_path())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The line pointed at `node` (in the style of its old source where the
/// node has that identifier), its type corrected if need be.
fn point_at(entry: &FstabEntry, node: &BlockDevice, how: &str) -> LineFix {
    let spec = spec_for(&entry.spec, node);
    let typed = type_fix(entry, node);
    let mut why = format!(
        "line {} ({}): {} is not on the disk; {how} -> {}",
        entry.line,
        entry.mount_point,
        entry.spec,
        spec.as_deref().unwrap_or("?")
    );
    if let Some(t) = &typed {
        why.push_str(&format!(" ({})", t.why));
    }
    LineFix {
        line: entry.line,
        mount_point: entry.mount_point.clone(),
        spec,
        fstype: typed.as_ref().and_then(|t| t.fstype.clone()),
        options: typed.and_then(|t| t.options),
        why,
    }
}

/// `LABEL=`/`PARTUUID=` when the old source used that and the node has
/// one, else `UUID=`, else `PARTUUID=`.
fn spec_for(old: &str, node: &BlockDevice) -> Option<String> {
    let upper = old.to_ascii_uppercase();
    if upper.starts_with("LABEL=") || upper.starts_with("/DEV/DISK/BY-LABEL/") {
        if let Some(label) = &node.label {
            return Some(format!("LABEL={label}"));
        }
    }
    if upper.starts_with("PARTUUID=") || upper.starts_with("/DEV/DISK/BY-PARTUUID/") {
        if let Some(partuuid) = &node.partuuid {
            return Some(format!("PARTUUID={partuuid}"));
        }
    }
    node.uuid
        .as_ref()
        .map(|u| format!("UUID={u}"))
        .or_else(|| node.partuuid.as_ref().map(|p| format!("PARTUUID={p}")))
}

/// Whether a line of type `fstab` mounts a filesystem blkid calls `found`.
pub fn type_compatible(fstab: &str, found: &str) -> bool {
    let ext = |t: &str| matches!(t, "ext2" | "ext3" | "ext4");
    fstab == "auto"
        || fstab == found
        // The ext4 driver mounts ext2 and ext3 too; "ext3" on an ext4 with
        // extents does not.
        || (fstab == "ext4" && ext(found))
        || (found == "ntfs" && fstab.starts_with("ntfs"))
}

fn family(fstype: &str) -> &str {
    if fstype.starts_with("ext") {
        "ext"
    } else {
        fstype
    }
}

/// The type correction of a line that resolves to `node`, if it needs one.
fn type_fix(entry: &FstabEntry, node: &BlockDevice) -> Option<LineFix> {
    let found = node.fstype.as_deref()?;
    if type_compatible(&entry.fstype, found) || !MOUNTABLE.contains(&found) {
        return None;
    }
    let old_family = family(&entry.fstype);
    let foreign: &[&str] = FAMILY_OPTIONS
        .iter()
        .find(|(f, _)| *f == old_family && old_family != family(found))
        .map(|(_, options)| *options)
        .unwrap_or(&[]);
    let is_foreign = |o: &String| {
        foreign
            .iter()
            .any(|f| o == f || (f.ends_with('=') && o.starts_with(f)))
    };
    let (dropped, mut kept): (Vec<String>, Vec<String>) =
        entry.options.iter().cloned().partition(is_foreign);
    if kept.is_empty() {
        kept.push("defaults".into());
    }
    let mut why = format!(
        "line {} ({}): fstab says {}, {} holds {found} -> {found}",
        entry.line,
        entry.mount_point,
        entry.fstype,
        node.dev_path()
    );
    if !dropped.is_empty() {
        why.push_str(&format!(
            ", without the {} option(s) {found} refuses",
            dropped.join(",")
        ));
    }
    Some(LineFix {
        line: entry.line,
        mount_point: entry.mount_point.clone(),
        spec: None,
        fstype: Some(found.to_string()),
        options: (!dropped.is_empty()).then_some(kept),
        why,
    })
}

/// `text` with the fixes made, and the fixes that took (a line without a
/// type field cannot take an options field).
pub fn apply<'a>(text: &str, fixes: &'a [LineFix]) -> (String, Vec<&'a LineFix>) {
    let mut fstab = Fstab::parse(text);
    let mut took = Vec::new();
    for fix in fixes {
        let mut changed = false;
        if let Some(spec) = &fix.spec {
            changed |= fstab.set_spec(fix.line, spec);
        }
        if let Some(fstype) = &fix.fstype {
            changed |= fstab.set_fstype(fix.line, fstype);
        }
        if let Some(options) = &fix.options {
            changed |= fstab.set_options(fix.line, options);
        }
        if changed {
            took.push(fix);
        }
    }
    (fstab.render(), took)
}

/// The `fix-mounts` action: one write of /etc/fstab whose reason lists
/// each line's.
pub fn fix_mounts(ws: &mut Workspace, ctx: &ActionContext, planned: &mut Planned) -> Result<()> {
    let layout = disk_layout(ctx.layout)?;
    let Some(text) = ws.read("/etc/fstab")? else {
        planned.notes.push("the target has no /etc/fstab".into());
        return Ok(());
    };
    let decisions = decide(&Fstab::parse(&text), &DiskView::of(layout));
    planned.notes.extend(decisions.notes.iter().cloned());
    let (new, took) = apply(&text, &decisions.fixes);
    for fix in decisions.fixes.iter().filter(|f| !took.contains(f)) {
        planned.notes.push(format!(
            "line {} ({}) has no type field to put options after: edit it by hand",
            fix.line, fix.mount_point
        ));
    }
    if took.is_empty() {
        return Ok(());
    }
    let why: Vec<&str> = took.iter().map(|f| f.why.as_str()).collect();
    planned.push(ws.write(
        "/etc/fstab",
        new,
        &format!("fstab lines held against the disk: {}", why.join("; ")),
    )?);
    Ok(())
}

/// The layout of a disk whose nodes were recorded, or a refusal.
fn disk_layout(layout: Option<&Layout>) -> Result<&Layout> {
    let Some(layout) = layout.filter(|l| l.disk.is_some()) else {
        return Err(Failure::Refused(
            "fix-mounts needs the disk (not --root): it holds each fstab line against the disk's block devices".into(),
        )
        .into());
    };
    if layout.nodes.is_empty() {
        return Err(Failure::Refused(
            "the disk's block devices were not recorded when it was mounted (an older vmrescue): run `vmrescue umount` and mount it again".into(),
        )
        .into());
    }
    Ok(layout)
}

/// What is wrong with the local lines that boot waits for: a source not on
/// the disk (root excepted: `root-resolves` checks it), a wrong type.
pub fn problems(fstab: &Fstab, view: &DiskView) -> Vec<String> {
    let mut found = Vec::new();
    for entry in local_entries(fstab) {
        let at = format!("line {} ({})", entry.line, entry.mount_point);
        match view.resolve(&entry.spec) {
            Some(node) => {
                if let Some(t) = node.fstype.as_deref() {
                    if !type_compatible(&entry.fstype, t) && MOUNTABLE.contains(&t) {
                        found.push(format!(
                            "{at}: type {} but {} holds {t}",
                            entry.fstype,
                            node.dev_path()
                        ));
                    }
                }
            }
            None if entry.mount_point != "/" && !optional(entry) => {
                found.push(format!("{at}: {} is not on the disk", entry.spec));
            }
            None => {}
        }
    }
    found
}

/// The `fstab-resolves` check: every local line without nofail names a
/// device of the disk, with the type blkid finds on it.
pub fn check_fstab_resolves(root: &RootDir, layout: Option<&Layout>) -> Result<(bool, String)> {
    let Some(layout) = layout.filter(|l| !l.nodes.is_empty()) else {
        return Ok((false, "the disk's block devices are unknown".into()));
    };
    let text = root.read_string_optional("/etc/fstab")?.unwrap_or_default();
    let found = problems(&Fstab::parse(&text), &DiskView::of(layout));
    Ok(if found.is_empty() {
        (
            true,
            "every local fstab line without nofail names a device of the disk, with its type"
                .into(),
        )
    } else {
        (false, found.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESP_GUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

    fn node(name: &str, kind: &str, fstype: &str, uuid: &str) -> DiskNode {
        DiskNode {
            device: format!("/dev/{name}"),
            name: name.into(),
            kind: kind.into(),
            fstype: (!fstype.is_empty()).then(|| fstype.into()),
            uuid: (!uuid.is_empty()).then(|| uuid.into()),
            partuuid: Some(format!("part-{name}")),
            parttype: Some("0fc63daf-8483-4772-8e79-3d69d8477de4".into()),
            ..DiskNode::default()
        }
    }

    /// sdc: ESP (vfat), /boot (ext4), root (xfs), /srv (ext4), swap.
    fn layout(nodes: Vec<DiskNode>) -> Layout {
        Layout {
            version: 1,
            key: "sdc".into(),
            root: "/mnt/vmrescue/sdc".into(),
            disk: Some("/dev/sdc".into()),
            image: None,
            root_device: Some("/dev/sdc3".into()),
            read_only_device: false,
            mounts: Vec::new(),
            skipped: Vec::new(),
            unresolved: Vec::new(),
            volume_groups: Vec::new(),
            nodes,
        }
    }

    fn disk() -> Vec<DiskNode> {
        let mut esp = node("sdc1", "part", "vfat", "7A3B-11C2");
        esp.parttype = Some(ESP_GUID.into());
        let mut boot = node("sdc2", "part", "ext4", "b007-new");
        boot.label = Some("boot".into());
        vec![
            node("sdc", "disk", "", ""),
            esp,
            boot,
            node("sdc3", "part", "xfs", "r007"),
            node("sdc4", "part", "ext4", "5e7v"),
            node("sdc5", "part", "swap", "5wap"),
        ]
    }

    const FSTAB: &str = "\
# /etc/fstab
UUID=r007 / xfs defaults 0 0
UUID=b007-old /boot ext4 defaults 0 2
UUID=DEAD-BEEF /boot/efi vfat umask=0077,shortname=winnt 0 2
UUID=5e7v /srv xfs defaults,allocsize=64k 0 2
UUID=0000-gone /data ext4 defaults 0 2
UUID=1111-gone /opt ext4 defaults,nofail 0 2
UUID=2222-gone none swap sw 0 0
srv:/export /mnt/nfs nfs defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
";

    fn decided(fstab: &str, nodes: Vec<DiskNode>) -> (Decisions, String) {
        let layout = layout(nodes);
        let view = DiskView::of(&layout);
        let decisions = decide(&Fstab::parse(fstab), &view);
        let (text, _) = apply(fstab, &decisions.fixes);
        (decisions, text)
    }

    #[test]
    fn each_line_is_held_against_the_disk() {
        let (d, text) = decided(FSTAB, disk());
        let lines: Vec<usize> = d.fixes.iter().map(|f| f.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6], "{d:?}");
        assert!(d.notes.is_empty(), "{:?}", d.notes);
        let changed: Vec<(&str, &str)> = FSTAB
            .lines()
            .zip(text.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
            vec![
                "UUID=b007-new /boot ext4 defaults 0 2",
                "UUID=7A3B-11C2 /boot/efi vfat umask=0077,shortname=winnt 0 2",
                "UUID=5e7v /srv ext4 defaults 0 2",
                "UUID=0000-gone /data ext4 defaults,nofail,x-systemd.device-timeout=10s 0 2",
            ]
        );
        assert!(d.fixes[0]
            .why
            .contains("/dev/sdc2 is the disk's only Linux filesystem partition"));
        assert!(d.fixes[1].why.contains("EFI system partition"));
        assert!(d.fixes[2]
            .why
            .contains("fstab says xfs, /dev/sdc4 holds ext4"));
        assert!(d.fixes[2].why.contains("allocsize=64k"));
        // Idempotent: the corrected text decides nothing.
        let (again, same) = decided(&text, disk());
        assert_eq!(again, Decisions::default());
        assert_eq!(same, text);
        let layout = layout(disk());
        assert!(problems(&Fstab::parse(&text), &DiskView::of(&layout)).is_empty());
        assert_eq!(
            problems(&Fstab::parse(FSTAB), &DiskView::of(&layout)).len(),
            4
        );
    }

    #[test]
    fn labels_stay_labels_and_ambiguity_is_a_note_not_a_guess() {
        let fstab = "LABEL=oldboot /boot ext4 defaults 0 2\nUUID=5e7v /srv ext4 defaults 0 2\n";
        let nodes = disk();
        let (d, text) = decided(fstab, nodes.clone());
        assert!(
            text.starts_with("LABEL=boot /boot ext4 defaults 0 2\n"),
            "{text}"
        );
        assert_eq!(d.fixes.len(), 1);
        // Without the /srv line, sdc4 is unclaimed too: which one is /boot
        // is not known.
        let fstab = "LABEL=oldboot /boot ext4 defaults 0 2\n";
        let (d, text) = decided(fstab, nodes);
        assert!(
            d.notes[0].contains("several candidates (/dev/sdc2, /dev/sdc4)"),
            "{:?}",
            d.notes
        );
        assert_eq!(
            text,
            "LABEL=oldboot /boot ext4 defaults,nofail,x-systemd.device-timeout=10s 0 2\n"
        );
    }

    #[test]
    fn an_esp_without_its_type_is_the_only_vfat_and_root_is_left_to_fix_root_fs() {
        let mut nodes = disk();
        nodes[1].parttype = Some("0x0c".into());
        let fstab = "UUID=gone / xfs defaults 0 0\nUUID=X /boot/efi vfat defaults 0 1\n/dev/sdc3 /usr xfs defaults 0 0\nUUID=nope /usr/local ext4 defaults 0 0\n";
        let (d, text) = decided(fstab, nodes);
        assert!(d.notes[0].contains("fix-root-fs"), "{:?}", d.notes);
        assert!(d.fixes[0].why.contains("the disk's only vfat partition"));
        assert!(text.contains("UUID=7A3B-11C2 /boot/efi vfat defaults 0 1\n"));
        // /usr resolves (by partition number), /usr/local is missing.
        assert!(text.contains("/usr/local ext4 defaults,nofail,x-systemd.device-timeout=10s 0 0"));
    }

    #[test]
    fn a_vfat_boot_is_the_esp_and_noauto_lines_are_optional() {
        let fstab =
            "UUID=GONE-0000 /boot vfat umask=0077 0 1\nUUID=gone /mnt/usb ext4 noauto 0 0\n";
        let (d, text) = decided(fstab, disk());
        assert_eq!(d.fixes.len(), 1, "{d:?}");
        assert!(
            text.starts_with("UUID=7A3B-11C2 /boot vfat umask=0077 0 1\n"),
            "{text}"
        );
        let layout = layout(disk());
        assert!(problems(&Fstab::parse(&text), &DiskView::of(&layout)).is_empty());
    }

    #[test]
    fn compatible_types_and_non_filesystems_are_left_alone() {
        assert!(type_compatible("ext4", "ext3"));
        assert!(!type_compatible("ext3", "ext4"));
        assert!(type_compatible("auto", "xfs"));
        assert!(type_compatible("ntfs-3g", "ntfs"));
        let fstab =
            "UUID=5wap /scratch ext4 defaults 0 0\nUUID=5e7v /srv ext3 errors=remount-ro 0 2\n";
        let (d, text) = decided(fstab, disk());
        assert_eq!(d.fixes.len(), 1, "{d:?}");
        assert!(d.notes[0].contains("holds swap, not a filesystem"), "{d:?}");
        assert!(
            text.ends_with("UUID=5e7v /srv ext4 errors=remount-ro 0 2\n"),
            "{text}"
        );
        let xfs = "UUID=r007 / ext4 errors=remount-ro 0 1\n";
        let (_, text) = decided(xfs, disk());
        assert_eq!(text, "UUID=r007 / xfs defaults 0 1\n");
    }

    #[test]
    fn lvm_sources_resolve_through_the_temporary_vg_name() {
        let nodes = vec![
            node("sdc", "disk", "", ""),
            node("sdc2", "part", "LVM2_member", "pv"),
            node("rootvg_vmrescue-rootlv", "lvm", "xfs", "r"),
            node("rootvg_vmrescue-homelv", "lvm", "xfs", "h"),
        ];
        let mut layout = layout(nodes);
        layout.root_device = Some("/dev/rootvg_vmrescue-rootlv".into());
        layout.volume_groups = vec![VolumeGroupUse {
            name: "rootvg".into(),
            temporary_name: Some("rootvg_vmrescue".into()),
            pvs: Vec::new(),
        }];
        let fstab = "/dev/mapper/rootvg-rootlv / xfs defaults 0 0\n/dev/mapper/rootvg-homelv /home ext4 defaults 0 0\n/dev/mapper/rootvg-gonelv /gone xfs defaults 0 0\n";
        let d = decide(&Fstab::parse(fstab), &DiskView::of(&layout));
        let whys: Vec<&str> = d.fixes.iter().map(|f| f.why.as_str()).collect();
        assert_eq!(whys.len(), 2, "{whys:?}");
        assert!(
            whys[0].contains("fstab says ext4")
                && whys[1].contains("rootvg-gonelv is not on the disk")
        );
    }
}
