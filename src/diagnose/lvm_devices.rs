//! Whether LVM's devices file still lists the disk's PVs: the copy on the
//! root filesystem and the copy inside the default kernel's initramfs (the
//! one that must find root at boot). A RHEL 9 disk that was restored,
//! cloned, moved or given new PV UUIDs by a tool stops in the initramfs
//! shell when they do not.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use crate::attach::Layout;
use crate::inspect::lvm_devices::{self, DevicesFile};
use crate::rootfs::RootDir;

/// One copy of the devices file that does not list every PV of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCopy {
    /// `/etc/lvm/devices/system.devices`, or `INITRAMFS: etc/lvm/…`.
    pub file: String,
    /// The disk's PV UUIDs the file does not list (LVM ignores those PVs).
    pub missing: Vec<String>,
    /// The PV UUIDs the file lists that are not on this disk (stale
    /// entries, or PVs of other disks).
    pub unknown: Vec<String>,
}

/// The PV UUIDs of every VG on the disk, as the disk holds them at rest.
pub fn disk_pvids(layout: &Layout) -> BTreeSet<String> {
    layout
        .volume_groups
        .iter()
        .flat_map(|g| g.pvs.iter().map(|p| p.pvid()))
        .collect()
}

/// The copies in use that miss a PV of the disk. `initramfs` is the
/// default kernel's image, when it has one.
pub fn stale_copies(
    root: &RootDir,
    initramfs: Option<&Path>,
    pvids: &BTreeSet<String>,
) -> Result<Vec<StaleCopy>> {
    if pvids.is_empty() {
        return Ok(Vec::new());
    }
    let mut stale = Vec::new();
    let lvm_conf = root.read_string_optional(lvm_devices::LVM_CONF)?;
    if let Some(text) = root.read_string_optional(lvm_devices::PATH)? {
        if !lvm_conf.as_deref().is_some_and(lvm_devices::turned_off) {
            stale.extend(compare(lvm_devices::PATH.to_string(), &text, pvids));
        }
    }
    if let Some(image) = initramfs {
        stale.extend(stale_in_initramfs(root, image, pvids)?);
    }
    Ok(stale)
}

/// The devices file inside one initramfs image, if it is in use there and
/// misses a PV of the disk.
pub fn stale_in_initramfs(
    root: &RootDir,
    image: &Path,
    pvids: &BTreeSet<String>,
) -> Result<Option<StaleCopy>> {
    if !root.is_file(image) {
        return Ok(None);
    }
    let bytes = root.read_boot_image(image)?;
    // An unreadable image cannot hold a stale copy LVM would read; that it
    // does not boot at all is another check's finding.
    let (devices, conf) = match initramfs_copy(&bytes) {
        Ok(copy) => copy,
        Err(err) => {
            tracing::debug!("{} is not a readable initramfs: {err:#}", image.display());
            return Ok(None);
        }
    };
    let in_use = devices.filter(|_| !conf.as_deref().is_some_and(lvm_devices::turned_off));
    Ok(in_use.and_then(|text| {
        let name = format!("{}: {}", image.display(), &lvm_devices::PATH[1..]);
        compare(name, &text, pvids)
    }))
}

fn compare(file: String, text: &str, pvids: &BTreeSet<String>) -> Option<StaleCopy> {
    let listed = DevicesFile::parse(text).pvids();
    let missing: Vec<String> = pvids.difference(&listed).cloned().collect();
    if missing.is_empty() {
        return None;
    }
    Some(StaleCopy {
        file,
        missing,
        unknown: listed.difference(pvids).cloned().collect(),
    })
}

/// The devices file and lvm.conf inside an initramfs image.
fn initramfs_copy(image: &[u8]) -> Result<(Option<String>, Option<String>)> {
    let (mut devices, mut conf) = (None, None);
    crate::verify_boot::initramfs::for_each_member(image, &mut |member, mode, data| {
        if mode & 0o170000 != 0o100000 {
            return;
        }
        let text = || Some(String::from_utf8_lossy(data).into_owned());
        match member.trim_start_matches("./") {
            m if m == &lvm_devices::PATH[1..] => devices = text(),
            m if m == &lvm_devices::LVM_CONF[1..] => conf = text(),
            _ => {}
        }
    })?;
    Ok((devices, conf))
}

/// One line for a report: which file misses which PV.
pub fn describe(copy: &StaleCopy) -> String {
    let mut line = format!(
        "{} does not list PVID {}",
        copy.file,
        copy.missing.join(", ")
    );
    if !copy.unknown.is_empty() {
        line.push_str(&format!(
            " (it lists {}, not on this disk)",
            copy.unknown.join(", ")
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tree;
    use crate::verify_boot::initramfs::{write_newc, CpioEntry};

    fn pvids(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    const OLD: &str =
        "VERSION=1.1.1\nIDTYPE=devname IDNAME=/dev/sda2 DEVNAME=/dev/sda2 PVID=oldpvid PART=2\n";

    fn initramfs(devices: &str, conf: &str) -> Vec<u8> {
        let file = |name: &str, data: &str| CpioEntry {
            name: name.to_string(),
            mode: 0o100644,
            data: data.as_bytes().to_vec(),
        };
        write_newc(&[
            file("etc/lvm/devices/system.devices", devices),
            file("etc/lvm/lvm.conf", conf),
        ])
    }

    #[test]
    fn a_copy_without_the_disks_pv_is_stale_in_both_places() {
        let image = initramfs(OLD, "devices {\n}\n");
        let dir = tree(&[
            ("etc/lvm/devices/system.devices", OLD.as_bytes()),
            ("boot/initramfs-5.14.img", &image),
        ]);
        let root = RootDir::open(dir.path()).unwrap();
        let stale = stale_copies(
            &root,
            Some(Path::new("/boot/initramfs-5.14.img")),
            &pvids(&["newpvid"]),
        )
        .unwrap();
        assert_eq!(stale.len(), 2, "{stale:?}");
        assert_eq!(stale[0].file, "/etc/lvm/devices/system.devices");
        assert_eq!(stale[0].missing, vec!["newpvid"]);
        assert_eq!(stale[0].unknown, vec!["oldpvid"]);
        assert_eq!(
            stale[1].file,
            "/boot/initramfs-5.14.img: etc/lvm/devices/system.devices"
        );
        assert!(describe(&stale[1]).contains("does not list PVID newpvid"));
    }

    #[test]
    fn a_matching_file_an_extra_entry_or_a_file_turned_off_is_not_stale() {
        let dir = tree(&[
            ("etc/lvm/devices/system.devices", OLD.as_bytes()),
            ("etc/lvm/lvm.conf", b"devices {\n use_devicesfile = 0\n}\n"),
        ]);
        let root = RootDir::open(dir.path()).unwrap();
        assert!(stale_copies(&root, None, &pvids(&["newpvid"]))
            .unwrap()
            .is_empty());
        let dir = tree(&[("etc/lvm/devices/system.devices", OLD.as_bytes())]);
        let root = RootDir::open(dir.path()).unwrap();
        assert!(stale_copies(&root, None, &pvids(&["oldpvid"]))
            .unwrap()
            .is_empty());
        assert!(stale_copies(&root, None, &pvids(&[])).unwrap().is_empty());
    }
}
