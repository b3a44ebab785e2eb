//! LVM's devices file (`/etc/lvm/devices/system.devices`, on by default
//! since RHEL 9): the only PVs LVM uses, each named by an ID (`IDTYPE`,
//! `IDNAME`), its last device name and its PV UUID (`PVID`). A PV whose
//! UUID is not listed is ignored, so a VG whose PV got a new UUID is not
//! found at boot. Parse → edit → render; lines not edited stay as they were.

use std::collections::BTreeSet;

/// Where the file lives in the target (and inside an initramfs, without `/`).
pub const PATH: &str = "/etc/lvm/devices/system.devices";
/// LVM's configuration, which may turn the devices file off.
pub const LVM_CONF: &str = "/etc/lvm/lvm.conf";

/// One `IDTYPE=… IDNAME=… DEVNAME=… PVID=… PART=…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The `KEY=value` fields in their order.
    pub fields: Vec<(String, String)>,
}

impl DeviceEntry {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The PV UUID without dashes (LVM writes it so), if the line has one.
    pub fn pvid(&self) -> Option<&str> {
        self.get("PVID").filter(|p| !p.is_empty() && *p != ".")
    }

    /// The entry LVM writes for a device it matches by name and PV UUID.
    pub fn devname(devname: &str, pvid: &str, part: Option<u32>) -> Self {
        let mut fields = vec![
            ("IDTYPE".to_string(), "devname".to_string()),
            ("IDNAME".to_string(), devname.to_string()),
            ("DEVNAME".to_string(), devname.to_string()),
            ("PVID".to_string(), pvid.replace('-', "")),
        ];
        if let Some(part) = part {
            fields.push(("PART".to_string(), part.to_string()));
        }
        DeviceEntry { fields }
    }

    fn render(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Entry { entry: DeviceEntry, raw: String },
    Other(String),
}

/// A parsed devices file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicesFile {
    lines: Vec<Line>,
}

impl DevicesFile {
    pub fn parse(text: &str) -> Self {
        let lines = text
            .split_inclusive('\n')
            .map(|raw| {
                let body = raw.trim();
                if body.starts_with("IDTYPE=") {
                    let fields = body
                        .split_whitespace()
                        .filter_map(|f| f.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    Line::Entry {
                        entry: DeviceEntry { fields },
                        raw: raw.to_string(),
                    }
                } else {
                    Line::Other(raw.to_string())
                }
            })
            .collect();
        DevicesFile { lines }
    }

    pub fn entries(&self) -> impl Iterator<Item = &DeviceEntry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { entry, .. } => Some(entry),
            Line::Other(_) => None,
        })
    }

    /// Every PV UUID the file lists.
    pub fn pvids(&self) -> BTreeSet<String> {
        self.entries()
            .filter_map(|e| e.pvid().map(str::to_string))
            .collect()
    }

    /// Replaces the entries for which `replace` returns a new one, drops
    /// those it maps to `Some(None)`, and bumps `VERSION`'s counter as LVM
    /// does on every write. A `HASH=` comment (newer LVM) is dropped: it
    /// would no longer match the file.
    pub fn rewrite(
        &self,
        mut replace: impl FnMut(&DeviceEntry) -> Option<Option<DeviceEntry>>,
    ) -> DevicesFile {
        let mut lines = Vec::new();
        for line in &self.lines {
            match line {
                Line::Entry { entry, raw } => match replace(entry) {
                    None => lines.push(Line::Entry {
                        entry: entry.clone(),
                        raw: raw.clone(),
                    }),
                    Some(Some(new)) => lines.push(entry_line(new)),
                    Some(None) => {}
                },
                Line::Other(raw) if raw.trim_start().starts_with("# HASH=") => {}
                Line::Other(raw) => lines.push(Line::Other(bump_version(raw))),
            }
        }
        DevicesFile { lines }
    }

    /// The file with `added` entries after its last line, nothing else changed.
    pub fn append(mut self, added: &[DeviceEntry]) -> DevicesFile {
        if let Some(Line::Other(last) | Line::Entry { raw: last, .. }) = self.lines.last_mut() {
            if !last.ends_with('\n') {
                last.push('\n');
            }
        }
        self.lines.extend(added.iter().cloned().map(entry_line));
        self
    }

    pub fn render(&self) -> String {
        self.lines
            .iter()
            .map(|l| match l {
                Line::Entry { raw, .. } | Line::Other(raw) => raw.as_str(),
            })
            .collect()
    }
}

fn entry_line(entry: DeviceEntry) -> Line {
    let raw = format!("{}\n", entry.render());
    Line::Entry { entry, raw }
}

/// `VERSION=1.1.N` → `VERSION=1.1.N+1`; any other line as it is.
fn bump_version(raw: &str) -> String {
    let Some(version) = raw.trim().strip_prefix("VERSION=") else {
        return raw.to_string();
    };
    let Some((head, counter)) = version.rsplit_once('.') else {
        return raw.to_string();
    };
    match counter.parse::<u64>() {
        Ok(n) => format!("VERSION={head}.{}\n", n + 1),
        Err(_) => raw.to_string(),
    }
}

/// Whether an `lvm.conf` turns the devices file off (`use_devicesfile = 0`
/// in its `devices` section). LVM's built-in default on distributions that
/// ship a devices file is on, so a missing setting counts as on.
pub fn turned_off(lvm_conf: &str) -> bool {
    lvm_conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("use_devicesfile"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .next_back()
        .is_some_and(|value| value.trim() == "0")
}

/// The partition number of a device path (`/dev/sdc2` → 2,
/// `/dev/nvme0n1p3` → 3, `/dev/loop4p1` → 1); `None` for a whole disk.
pub fn partition_number(device: &str) -> Option<u32> {
    let name = device.rsplit('/').next()?;
    let digits_at = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, digits) = name.split_at(digits_at);
    if digits.is_empty() {
        return None;
    }
    let numbered_disk = ["nvme", "loop", "mmcblk", "nbd"]
        .iter()
        .any(|p| name.starts_with(p));
    if numbered_disk {
        // nvme0n1p3, loop4p1: the partition follows a `p`; nvme0n1 is a disk.
        let before_p = stem.strip_suffix('p')?;
        return before_p
            .ends_with(|c: char| c.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten();
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like a RHEL 9 file written by `vgimportdevices` (header, HASH
    // comment, a sys_wwid entry); the IDs are made up.
    const RHEL9: &str = "# LVM uses devices listed in this file.\n\
# Created by LVM command vgimportdevices pid 1190 at Tue Apr 30 08:13:26 2024\n\
# HASH=2930317165\n\
VERSION=1.1.2\n\
IDTYPE=sys_wwid IDNAME=naa.6002248071a87a48c3bc9cb9a1d3a0f3 DEVNAME=/dev/sda4 PVID=wm7F3vCJcIDAVAhpYHJrYhIKDBs8CPfe PART=4\n";

    #[test]
    fn parse_render_is_identity() {
        for text in [
            RHEL9,
            "",
            "VERSION=1.1.1",
            "IDTYPE=devname  IDNAME=/dev/vda2 PVID=x\n",
        ] {
            assert_eq!(DevicesFile::parse(text).render(), text);
        }
    }

    #[test]
    fn lists_pvids() {
        let file = DevicesFile::parse(RHEL9);
        assert_eq!(
            file.pvids().into_iter().collect::<Vec<_>>(),
            vec!["wm7F3vCJcIDAVAhpYHJrYhIKDBs8CPfe"]
        );
        assert_eq!(
            file.entries().next().unwrap().get("DEVNAME"),
            Some("/dev/sda4")
        );
    }

    #[test]
    fn rewrite_replaces_an_entry_bumps_the_version_and_drops_the_hash() {
        let file = DevicesFile::parse(RHEL9);
        let new = file.rewrite(|e| {
            Some(Some(DeviceEntry::devname(
                e.get("DEVNAME").unwrap(),
                "AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG",
                Some(4),
            )))
        });
        let text = new.render();
        assert!(text.contains("VERSION=1.1.3\n"), "{text}");
        assert!(!text.contains("HASH="), "{text}");
        assert!(text.starts_with("# LVM uses devices listed in this file.\n# Created by"));
        assert!(text.ends_with(
            "IDTYPE=devname IDNAME=/dev/sda4 DEVNAME=/dev/sda4 PVID=AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG PART=4\n"
        ));
    }

    #[test]
    fn rewrite_appends_after_a_file_without_final_newline() {
        let added = [DeviceEntry::devname("/dev/sda2", "p", Some(2))];
        let text = DevicesFile::parse("VERSION=1.1.9")
            .rewrite(|_| None)
            .append(&added)
            .render();
        assert_eq!(
            text,
            "VERSION=1.1.10\nIDTYPE=devname IDNAME=/dev/sda2 DEVNAME=/dev/sda2 PVID=p PART=2\n"
        );
    }

    #[test]
    fn lvm_conf_setting() {
        assert!(!turned_off("devices {\n\t# use_devicesfile = 0\n}\n"));
        assert!(turned_off("devices {\n\tuse_devicesfile = 0\n}\n"));
        assert!(!turned_off("devices {\n\tuse_devicesfile=1 # on\n}\n"));
        assert!(!turned_off(""));
    }

    #[test]
    fn partition_numbers() {
        assert_eq!(partition_number("/dev/sdc2"), Some(2));
        assert_eq!(partition_number("/dev/vdb3"), Some(3));
        assert_eq!(partition_number("/dev/nvme0n1p3"), Some(3));
        assert_eq!(partition_number("/dev/nvme0n1"), None);
        assert_eq!(partition_number("/dev/loop4p1"), Some(1));
        assert_eq!(partition_number("/dev/loop4"), None);
        assert_eq!(partition_number("/dev/sdc"), None);
    }
}
