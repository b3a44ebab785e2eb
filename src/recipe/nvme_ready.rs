//! The `nvme-ready` action: a disk that boots on an NVMe controller. fstab
//! lines and `root=`/`resume=` that name a filesystem of this disk by a
//! SCSI, IDE, Xen or virtio path get its `UUID=` (through the fstab and
//! kernel-argument editors), and the initramfs of each chosen kernel that
//! lacks the `nvme` driver is rebuilt with the platform drivers forced in.

use anyhow::Result;

use super::plan::{ActionContext, Planned, Workspace};
use crate::attach::Layout;
use crate::diagnose::nvme::{controller_names, initramfs_has_nvme, ControllerName};
use crate::inspect::fstab::Fstab;
use crate::inspect::lvm_devices::partition_number;

pub fn nvme_ready(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    versions: &[String],
) -> Result<()> {
    let snapshot = crate::inspect::snapshot::snapshot(ws.root())?;
    let (_, cmdline) = crate::diagnose::offline::default_boot(&snapshot);
    let fstab = ws.read("/etc/fstab")?.unwrap_or_default();
    let names = controller_names(&fstab, cmdline);
    if !names.is_empty() {
        match ctx.layout {
            Some(layout) => rename(ws, ctx, planned, layout, &fstab, &names)?,
            None => planned.notes.push(format!(
                "{} name a disk by a controller path; they can be mapped to UUIDs only with the disk attached (--disk or --image)",
                describe(&names)
            )),
        }
    }
    let mut without = Vec::new();
    for version in versions {
        let Some(kernel) = ctx.facts.kernels.iter().find(|k| &k.version == version) else {
            continue;
        };
        match initramfs_has_nvme(ws.root(), &kernel.initramfs, version)? {
            Some(false) => without.push(version.clone()),
            Some(true) => planned
                .notes
                .push(format!("the initramfs of {version} has the nvme driver")),
            None => planned.notes.push(format!(
                "{} is missing or unreadable: rebuild-initramfs makes it",
                kernel.initramfs.display()
            )),
        }
    }
    super::actions::rebuild_initramfs(ws, ctx, planned, &without, true, true)
}

fn describe(names: &[ControllerName]) -> String {
    names
        .iter()
        .map(|n| format!("{} ({})", n.name, n.used_as))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each name mapped to the `UUID=` of the filesystem it meant on this disk,
/// where that is certain: root= gets the root filesystem's UUID; an fstab
/// line or `resume=` gets the partition with the same number on this disk
/// when its type matches (`swap` for resume). Others are named in a note.
fn rename(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    layout: &Layout,
    fstab_text: &str,
    names: &[ControllerName],
) -> Result<()> {
    let mut fstab = Fstab::parse(fstab_text);
    let mut unmapped = Vec::new();
    for name in names {
        let fstype = match name.used_as.as_str() {
            "root" => None,
            "resume" => Some("swap".to_string()),
            _ => fstab
                .entries()
                .iter()
                .find(|e| e.line as u64 == name.line)
                .map(|e| e.fstype.clone()),
        };
        let uuid = match name.used_as.as_str() {
            "root" => root_uuid(layout)?,
            _ => same_partition_uuid(layout, &name.name, fstype.as_deref())?,
        };
        let Some(uuid) = uuid else {
            unmapped.push(name.clone());
            continue;
        };
        if name.line > 0 {
            fstab.set_spec(name.line as usize, &format!("UUID={uuid}"));
        } else {
            let arg = format!("{}=UUID={uuid}", name.used_as);
            super::actions::edit_kernel_arg(ws, ctx, planned, &arg, true)?;
        }
    }
    planned.push(ws.write(
        "/etc/fstab",
        fstab.render(),
        "name filesystems by UUID: /dev/sd*, /dev/xvd* and Azure's scsi1/lun* links do not exist on an NVMe controller",
    )?);
    if !unmapped.is_empty() {
        planned.notes.push(format!(
            "left as they are (not a filesystem of this disk, or its type differs): {}; on NVMe sizes Azure links data disks as /dev/disk/azure/data/by-lun/N: name them by UUID= or add nofail",
            describe(&unmapped)
        ));
    }
    Ok(())
}

fn root_uuid(layout: &Layout) -> Result<Option<String>> {
    let Some(device) = layout.root_device.as_deref() else {
        return Ok(None);
    };
    probe_uuid(device, None)
}

/// The UUID of this disk's partition numbered like `name` (`/dev/sda2` →
/// partition 2), when its filesystem type is `fstype` (any when `None` or
/// `auto`). Azure's `scsi1/lunN` links name data disks, never this one.
fn same_partition_uuid(
    layout: &Layout,
    name: &str,
    fstype: Option<&str>,
) -> Result<Option<String>> {
    if name.starts_with("/dev/disk/azure/scsi") {
        return Ok(None);
    }
    let (Some(disk), Some(number)) = (layout.disk.as_deref(), partition_number(name)) else {
        return Ok(None);
    };
    let separator = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    probe_uuid(&format!("{disk}{separator}{number}"), fstype)
}

fn probe_uuid(device: &str, fstype: Option<&str>) -> Result<Option<String>> {
    let Some(probe) = crate::disk::blkid::probe(device)? else {
        return Ok(None);
    };
    let type_ok = match fstype {
        None | Some("auto") => true,
        Some(want) => probe.values.get("TYPE").map(String::as_str) == Some(want),
    };
    Ok(probe.values.get("UUID").filter(|_| type_ok).cloned())
}
