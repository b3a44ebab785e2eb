//! Which of the target's fstab entries to mount, and from which device of
//! the target disk. Sources are resolved against the target disk's devices
//! only: the host may have filesystems with the very same UUIDs.

use serde::Serialize;

use super::{FstabNote, VolumeGroupUse};
use crate::disk::BlockDevice;
use crate::inspect::fstab::{Fstab, FstabEntry};

/// An fstab entry to mount under the target root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FstabMount {
    pub line: usize,
    pub spec: String,
    pub device: String,
    pub mount_point: String,
    pub fstype: String,
    /// Filesystem options that decide what is mounted (btrfs `subvol=`).
    pub data: String,
}

#[derive(Debug, Default)]
pub struct MountPlan {
    pub mounts: Vec<FstabMount>,
    pub skipped: Vec<FstabNote>,
    pub unresolved: Vec<FstabNote>,
}

const NETWORK_FSTYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "smb3",
    "glusterfs",
    "ceph",
    "sshfs",
    "9p",
    "afs",
    "davfs",
];
const VIRTUAL_FSTYPES: &[&str] = &[
    "tmpfs",
    "proc",
    "sysfs",
    "devpts",
    "devtmpfs",
    "none",
    "cgroup",
    "cgroup2",
    "securityfs",
    "efivarfs",
    "debugfs",
    "hugetlbfs",
    "mqueue",
];

/// Decides, for every fstab line, mount / skip / unresolved.
pub fn plan(
    fstab_text: &str,
    nodes: &[BlockDevice],
    volume_groups: &[VolumeGroupUse],
) -> MountPlan {
    let mut plan = MountPlan::default();
    for entry in Fstab::parse(fstab_text).entries() {
        let note = |reason: String| FstabNote {
            line: entry.line,
            spec: entry.spec.clone(),
            mount_point: entry.mount_point.clone(),
            fstype: entry.fstype.clone(),
            nofail: entry.options.iter().any(|o| o == "nofail"),
            reason,
        };
        if entry.mount_point == "/" {
            continue;
        }
        if let Some(reason) = skip_reason(entry) {
            plan.skipped.push(note(reason.into()));
            continue;
        }
        match resolve_spec(&entry.spec, nodes, volume_groups) {
            Some(node) => {
                // The type blkid found, not fstab's: a line with the wrong
                // type must not keep the target from being mounted (the
                // fix-mounts recipe corrects the line).
                let fstype = node.fstype.clone().unwrap_or_else(|| entry.fstype.clone());
                let data: Vec<&str> = entry
                    .options
                    .iter()
                    .map(String::as_str)
                    .filter(|o| o.starts_with("subvol=") || o.starts_with("subvolid="))
                    .collect();
                plan.mounts.push(FstabMount {
                    line: entry.line,
                    spec: entry.spec.clone(),
                    device: node.dev_path(),
                    mount_point: entry.mount_point.clone(),
                    fstype,
                    data: data.join(","),
                });
            }
            None => plan
                .unresolved
                .push(note("source not found on the target disk".into())),
        }
    }
    plan.mounts
        .sort_by_key(|m| m.mount_point.split('/').filter(|c| !c.is_empty()).count());
    plan
}

/// Why an fstab entry is not a local filesystem to mount from the disk
/// (swap, network, virtual, bind), or `None` for a local one.
pub fn skip_reason(entry: &FstabEntry) -> Option<&'static str> {
    if entry.fstype == "swap" || entry.mount_point == "none" || entry.mount_point == "swap" {
        return Some("swap");
    }
    if NETWORK_FSTYPES.contains(&entry.fstype.as_str())
        || entry.fstype.starts_with("fuse")
        || entry.has_option("_netdev")
    {
        return Some("network filesystem");
    }
    if VIRTUAL_FSTYPES.contains(&entry.fstype.as_str())
        || entry.has_option("bind")
        || entry.has_option("rbind")
    {
        return Some("virtual filesystem or bind mount");
    }
    if !entry.mount_point.starts_with('/') {
        return Some("mount point is not an absolute path");
    }
    None
}

/// The target-disk device an fstab source names, if it is on the disk.
pub fn resolve_spec<'a>(
    spec: &str,
    nodes: &'a [BlockDevice],
    volume_groups: &[VolumeGroupUse],
) -> Option<&'a BlockDevice> {
    let by = |value: &str, get: fn(&BlockDevice) -> Option<&str>| {
        nodes
            .iter()
            .find(|n| get(n).is_some_and(|v| v.eq_ignore_ascii_case(value)))
    };
    let tagged = [
        ("UUID=", "/dev/disk/by-uuid/"),
        ("LABEL=", "/dev/disk/by-label/"),
        ("PARTUUID=", "/dev/disk/by-partuuid/"),
        ("PARTLABEL=", "/dev/disk/by-partlabel/"),
    ];
    for (index, (tag, link_dir)) in tagged.iter().enumerate() {
        let value = spec
            .strip_prefix(tag)
            .or_else(|| spec.strip_prefix(link_dir));
        if let Some(value) = value {
            let value = value.trim_matches('"');
            return match index {
                0 => by(value, |n| n.uuid.as_deref()),
                1 => by(value, |n| n.label.as_deref()),
                2 => by(value, |n| n.partuuid.as_deref()),
                _ => by(value, |n| n.partlabel.as_deref()),
            };
        }
    }
    if let Some((vg, lv)) = lv_of(spec) {
        let active_vg = volume_groups
            .iter()
            .find(|g| g.name == vg)
            .map(|g| g.temporary_name.clone().unwrap_or_else(|| g.name.clone()))
            .unwrap_or(vg);
        let dm_name = format!("{}-{}", active_vg.replace('-', "--"), lv.replace('-', "--"));
        return nodes.iter().find(|n| n.kind == "lvm" && n.name == dm_name);
    }
    // /dev/sda2 on the broken VM: the same partition number on the target disk.
    let number = partition_number(spec)?;
    nodes
        .iter()
        .find(|n| n.kind == "part" && partition_number(&n.dev_path()) == Some(number))
}

/// `/dev/mapper/rootvg-rootlv` or `/dev/rootvg/rootlv` → ("rootvg", "rootlv").
fn lv_of(spec: &str) -> Option<(String, String)> {
    if let Some(dm) = spec.strip_prefix("/dev/mapper/") {
        // `--` escapes a dash inside a name; a single dash separates VG and LV.
        let bytes = dm.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'-' {
                if bytes.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let vg = dm[..i].replace("--", "-");
                let lv = dm[i + 1..].replace("--", "-");
                return Some((vg, lv));
            }
            i += 1;
        }
        return None;
    }
    let rest = spec.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    if vg == "disk" || vg == "mapper" || lv.contains('/') {
        return None;
    }
    Some((vg.to_string(), lv.to_string()))
}

/// `/dev/sda2` → 2, `/dev/nvme0n1p3` → 3, `/dev/loop0p1` → 1.
fn partition_number(path: &str) -> Option<u32> {
    let name = path.strip_prefix("/dev/")?;
    let digits_at = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits_at == name.len() {
        return None;
    }
    let stem = &name[..digits_at];
    let is_partition = if let Some(base) = stem.strip_suffix('p') {
        (base.starts_with("nvme") || base.starts_with("loop") || base.starts_with("mmcblk"))
            && base.ends_with(|c: char| c.is_ascii_digit())
    } else {
        ["sd", "vd", "xvd", "hd"]
            .iter()
            .any(|p| stem.starts_with(p))
            && stem.len() > 2
    };
    if is_partition {
        name[digits_at..].parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, fstype: &str, uuid: &str) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: Some(format!("/dev/{name}")),
            kind: "part".into(),
            fstype: Some(fstype.into()),
            uuid: Some(uuid.into()),
            ..Default::default()
        }
    }

    fn lv(dm_name: &str, fstype: &str) -> BlockDevice {
        BlockDevice {
            name: dm_name.into(),
            path: Some(format!("/dev/mapper/{dm_name}")),
            kind: "lvm".into(),
            fstype: Some(fstype.into()),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_uuid_lv_and_device_names_on_the_target_only() {
        let nodes = vec![
            part("loop0p1", "ext4", "1db6fa09-2f85-4d4c-803e-10b8050b3d25"),
            part("loop0p2", "LVM2_member", "pv"),
            lv("rootvg_vmrescue-rootlv", "xfs"),
            lv("rootvg_vmrescue-var--log", "xfs"),
        ];
        let groups = vec![VolumeGroupUse {
            name: "rootvg".into(),
            temporary_name: Some("rootvg_vmrescue".into()),
            pvs: Vec::new(),
        }];
        let fstab = "\
# /etc/fstab
/dev/mapper/rootvg-rootlv /      xfs  defaults 0 0
UUID=1DB6FA09-2F85-4D4C-803E-10B8050B3D25 /boot ext4 defaults 1 2
/dev/rootvg/var-log /var/log xfs defaults 0 0
UUID=0000-not-here /data ext4 defaults,nofail 0 2
/dev/sda1 /boot2 ext4 defaults 0 0
server:/export /mnt/nfs nfs defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
/dev/mapper/rootvg-swaplv swap swap defaults 0 0
";
        let plan = plan(fstab, &nodes, &groups);
        let mounted: Vec<(&str, &str)> = plan
            .mounts
            .iter()
            .map(|m| (m.mount_point.as_str(), m.device.as_str()))
            .collect();
        assert_eq!(
            mounted,
            vec![
                ("/boot", "/dev/loop0p1"),
                ("/boot2", "/dev/loop0p1"),
                ("/var/log", "/dev/mapper/rootvg_vmrescue-var--log"),
            ]
        );
        assert_eq!(plan.unresolved.len(), 1);
        assert!(plan.unresolved[0].nofail);
        assert_eq!(plan.unresolved[0].line, 5);
        assert_eq!(plan.skipped.len(), 3);
    }

    #[test]
    fn btrfs_subvolumes_keep_their_subvol_option() {
        let nodes = vec![part("sdc2", "btrfs", "b-uuid")];
        let fstab = "UUID=b-uuid / btrfs defaults 0 0\nUUID=b-uuid /home btrfs subvol=@/home,compress=zstd 0 0\n";
        let plan = plan(fstab, &nodes, &[]);
        assert_eq!(plan.mounts[0].data, "subvol=@/home");
    }

    #[test]
    fn partition_numbers() {
        assert_eq!(partition_number("/dev/sda2"), Some(2));
        assert_eq!(partition_number("/dev/nvme0n1p3"), Some(3));
        assert_eq!(partition_number("/dev/loop0p1"), Some(1));
        assert_eq!(partition_number("/dev/loop0"), None);
        assert_eq!(partition_number("/dev/nvme0n1"), None);
        assert_eq!(partition_number("/dev/sda"), None);
    }

    #[test]
    fn lv_names_with_dashes() {
        assert_eq!(
            lv_of("/dev/mapper/my--vg-root--lv"),
            Some(("my-vg".into(), "root-lv".into()))
        );
        assert_eq!(
            lv_of("/dev/rootvg/rootlv"),
            Some(("rootvg".into(), "rootlv".into()))
        );
        assert_eq!(lv_of("/dev/disk/by-uuid/x"), None);
    }
}
