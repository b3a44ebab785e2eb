//! The `lvm-devices` action: LVM's devices file lists the disk's PVs again,
//! and the initramfs images that carry a stale copy are rebuilt.
//!
//! A pure file edit (no target program writes the file): the entry of a PV
//! is `IDTYPE=devname` with its PV UUID. LVM matches such an entry by PV
//! UUID whatever the device is called at boot (`search_for_devnames`), so
//! it survives the disk moving between SCSI, NVMe and virtio controllers,
//! which a `sys_wwid` or `sys_serial` ID of the rescue VM's view would not.

use std::collections::BTreeSet;

use anyhow::Result;

use super::plan::{ActionContext, Planned, Workspace};
use crate::attach::lvm::PvIdentity;
use crate::diagnose::lvm_devices::stale_in_initramfs;
use crate::error::Failure;
use crate::inspect::lvm_devices::{self, partition_number, DeviceEntry, DevicesFile};

/// Plans the devices file's rewrite and the rebuild of the initramfs of
/// `versions` whose copy misses a PV of the disk.
pub fn lvm_devices(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    versions: &[String],
) -> Result<()> {
    let Some(layout) = ctx.layout else {
        return Err(Failure::Refused(
            "lvm-devices compares the devices file with the disk's PVs: name the disk (--disk or --image), not a directory".into(),
        )
        .into());
    };
    let pvs: Vec<&PvIdentity> = layout.volume_groups.iter().flat_map(|g| &g.pvs).collect();
    if pvs.is_empty() {
        return Err(Failure::Refused("the disk has no LVM physical volume".into()).into());
    }
    let Some(text) = ws.read(lvm_devices::PATH)? else {
        planned.notes.push(format!(
            "{} does not exist: LVM uses every device it sees, nothing to list",
            lvm_devices::PATH
        ));
        return Ok(());
    };
    if ws
        .read(lvm_devices::LVM_CONF)?
        .is_some_and(|conf| lvm_devices::turned_off(&conf))
    {
        planned.notes.push(format!(
            "{} turns the devices file off (use_devicesfile = 0): nothing to change",
            lvm_devices::LVM_CONF
        ));
        return Ok(());
    }
    let file = DevicesFile::parse(&text);
    match listing(&file, &pvs) {
        Some(new) => planned.push(ws.write(
            lvm_devices::PATH,
            new.render(),
            "list the disk's PVs by the UUIDs they have (IDTYPE=devname: LVM finds them by PV UUID under any device name, SCSI, NVMe or virtio)",
        )?),
        None => planned.notes.push(format!(
            "{} lists every PV of the disk",
            lvm_devices::PATH
        )),
    }
    let pvids: BTreeSet<String> = pvs.iter().map(|p| p.pvid()).collect();
    let mut stale = Vec::new();
    for version in versions {
        let Some(kernel) = ctx.facts.kernels.iter().find(|k| &k.version == version) else {
            continue;
        };
        if stale_in_initramfs(ws.root(), &kernel.initramfs, &pvids)?.is_some() {
            stale.push(version.clone());
        } else {
            planned.notes.push(format!(
                "the initramfs of {version} lists the disk's PVs (or carries no devices file): not rebuilt"
            ));
        }
    }
    super::actions::rebuild_initramfs(ws, ctx, planned, &stale, false, true)
}

/// `file` listing every PV of `pvs` (`None` when it already does): an
/// entry whose PV UUID is not on the disk but whose partition number is
/// that of an unlisted PV is that PV's old entry and is replaced; other
/// entries (PVs of other disks) stay.
fn listing(file: &DevicesFile, pvs: &[&PvIdentity]) -> Option<DevicesFile> {
    let listed = file.pvids();
    let on_disk: BTreeSet<String> = pvs.iter().map(|p| p.pvid()).collect();
    let unlisted: Vec<&PvIdentity> = pvs
        .iter()
        .copied()
        .filter(|p| !listed.contains(&p.pvid()))
        .collect();
    if unlisted.is_empty() {
        return None;
    }
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let new = file.rewrite(|entry| {
        if entry.pvid().is_some_and(|id| on_disk.contains(id)) {
            return None;
        }
        let part = entry.get("PART").and_then(|p| p.parse::<u32>().ok());
        let pv = unlisted
            .iter()
            .find(|pv| !placed.contains(&pv.pvid()) && partition_number(&pv.device) == part)?;
        placed.insert(pv.pvid());
        let name = entry
            .get("DEVNAME")
            .filter(|n| n.starts_with("/dev/"))
            .map(str::to_string)
            .unwrap_or_else(|| boot_name(file, &pv.device));
        Some(Some(DeviceEntry::devname(&name, &pv.uuid, part)))
    });
    let added: Vec<DeviceEntry> = unlisted
        .iter()
        .filter(|pv| !placed.contains(&pv.pvid()))
        .map(|pv| {
            DeviceEntry::devname(
                &boot_name(file, &pv.device),
                &pv.uuid,
                partition_number(&pv.device),
            )
        })
        .collect();
    Some(new.append(&added))
}

/// A device name for a PV as the VM may see it at boot: the disk another
/// entry names, with this PV's partition, else `/dev/sda<N>`. Only a hint:
/// LVM finds a devname entry by its PV UUID when the name is wrong.
fn boot_name(file: &DevicesFile, rescue_device: &str) -> String {
    let disk = file
        .entries()
        .filter_map(|e| e.get("DEVNAME"))
        .find_map(|name| {
            let part = partition_number(name)?;
            let stem = name.strip_suffix(&part.to_string())?;
            Some(stem.to_string())
        })
        .unwrap_or_else(|| "/dev/sda".to_string());
    match partition_number(rescue_device) {
        Some(part) => format!("{disk}{part}"),
        None => disk
            .trim_end_matches('p')
            .trim_end_matches(char::is_numeric)
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::attach::{Layout, VolumeGroupUse};
    use crate::recipe::facts::Facts;
    use crate::recipe::plan::PlannedChange;
    use crate::recipe::{engine, fixture_copy, Catalog};
    use crate::rootfs::RootDir;
    use crate::verify_boot::initramfs::{write_newc, CpioEntry};

    const STALE: &str =
        "VERSION=1.1.1\nIDTYPE=devname IDNAME=/dev/sda2 DEVNAME=/dev/sda2 PVID=OLDPVID PART=2\n";

    fn layout(root: &std::path::Path) -> Layout {
        Layout {
            version: 1,
            key: "sdc".into(),
            root: root.to_path_buf(),
            disk: Some("/dev/sdc".into()),
            image: None,
            root_device: Some("/dev/mapper/rootvg-rootlv".into()),
            read_only_device: false,
            mounts: Vec::new(),
            skipped: Vec::new(),
            unresolved: Vec::new(),
            volume_groups: vec![VolumeGroupUse {
                name: "rootvg".into(),
                temporary_name: None,
                pvs: vec![pv("/dev/sdc2", "NEWPVA-0000-1111-2222-3333-4444-555555")],
            }],
            nodes: Vec::new(),
        }
    }

    /// The alma9 tree with the stale file, both initramfs images carrying
    /// `image_copy`, and a dracut to run.
    fn alma9(image_copy: &str) -> tempfile::TempDir {
        let dir = fixture_copy("alma9");
        let put = |path: &str, bytes: &[u8]| {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        };
        put("etc/lvm/devices/system.devices", STALE.as_bytes());
        put("usr/bin/dracut", b"");
        let image = write_newc(&[CpioEntry {
            name: "etc/lvm/devices/system.devices".into(),
            mode: 0o100644,
            data: image_copy.as_bytes().to_vec(),
        }]);
        for version in [
            "5.14.0-284.11.1.el9_2.x86_64",
            "5.14.0-362.8.1.el9_3.x86_64",
        ] {
            put(&format!("boot/initramfs-{version}.img"), &image);
        }
        dir
    }

    fn plan_for(dir: &tempfile::TempDir, all: &str) -> super::super::plan::Plan {
        let root = RootDir::open(dir.path()).unwrap();
        let facts = Facts::gather(&root).unwrap();
        let catalog = Catalog::load(None).unwrap();
        let recipe = catalog.get("lvm-devices").unwrap();
        let params = BTreeMap::from([("all".to_string(), all.to_string())]);
        engine::plan(recipe, &params, &root, &facts, Some(&layout(dir.path()))).unwrap()
    }

    #[test]
    fn plans_the_file_and_rebuilds_only_stale_initramfs_images() {
        let dir = alma9(STALE);
        let plan = plan_for(&dir, "false");
        let written: Vec<&String> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                PlannedChange::Write { path, after, .. }
                    if path == &PathBuf::from(lvm_devices::PATH) =>
                {
                    Some(after)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            written,
            vec!["VERSION=1.1.2\nIDTYPE=devname IDNAME=/dev/sda2 DEVNAME=/dev/sda2 PVID=NEWPVA00001111222233334444555555 PART=2\n"]
        );
        let rebuilt = |plan: &super::super::plan::Plan| -> Vec<String> {
            plan.changes
                .iter()
                .filter_map(|c| match c {
                    PlannedChange::Command { argv, kernel, .. } if argv[0] == "dracut" => {
                        kernel.clone()
                    }
                    _ => None,
                })
                .collect()
        };
        assert_eq!(rebuilt(&plan).len(), 1, "the default kernel's only");
        assert_eq!(rebuilt(&plan_for(&dir, "true")).len(), 2, "all=true");
        // An initramfs whose copy lists the PV is not rebuilt.
        let fresh =
            alma9("IDTYPE=devname IDNAME=/dev/sda2 PVID=NEWPVA00001111222233334444555555\n");
        assert!(rebuilt(&plan_for(&fresh, "true")).is_empty());
    }

    fn pv(device: &str, uuid: &str) -> PvIdentity {
        PvIdentity {
            device: device.into(),
            uuid: uuid.into(),
        }
    }

    #[test]
    fn a_stale_entry_is_replaced_in_place_with_its_boot_name() {
        let file = DevicesFile::parse(
            "VERSION=1.1.4\nIDTYPE=sys_wwid IDNAME=naa.6002 DEVNAME=/dev/sda4 PVID=OLDOLD PART=4\n",
        );
        let new = listing(&file, &[&pv("/dev/sdc4", "NEW-NEW")]).unwrap();
        assert_eq!(
            new.render(),
            "VERSION=1.1.5\nIDTYPE=devname IDNAME=/dev/sda4 DEVNAME=/dev/sda4 PVID=NEWNEW PART=4\n"
        );
    }

    #[test]
    fn other_disks_entries_stay_and_a_missing_pv_is_added() {
        let file = DevicesFile::parse(
            "VERSION=1.1.1\nIDTYPE=sys_wwid IDNAME=naa.data DEVNAME=/dev/sdb1 PVID=DATAPV PART=1\n",
        );
        let text = listing(&file, &[&pv("/dev/vdb2", "ROOT-PV")])
            .unwrap()
            .render();
        assert!(text.starts_with("VERSION=1.1.2\n"), "{text}");
        assert!(text.contains("PVID=DATAPV PART=1\n"), "{text}");
        assert!(
            text.ends_with(
                "IDTYPE=devname IDNAME=/dev/sdb2 DEVNAME=/dev/sdb2 PVID=ROOTPV PART=2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_file_that_lists_the_disk_is_left_as_it_is() {
        let text =
            "VERSION=1.1.1\nIDTYPE=devname IDNAME=/dev/sda2 DEVNAME=/dev/sda2 PVID=ROOTPV PART=2\n";
        let file = DevicesFile::parse(text);
        assert_eq!(listing(&file, &[&pv("/dev/vdb2", "ROOT-PV")]), None);
    }

    #[test]
    fn boot_names() {
        let empty = DevicesFile::parse("");
        assert_eq!(boot_name(&empty, "/dev/vdb3"), "/dev/sda3");
        assert_eq!(boot_name(&empty, "/dev/vdb"), "/dev/sda");
        let nvme = DevicesFile::parse("IDTYPE=devname DEVNAME=/dev/nvme0n1p1 PVID=x PART=1\n");
        assert_eq!(boot_name(&nvme, "/dev/sdc2"), "/dev/nvme0n1p2");
    }
}
