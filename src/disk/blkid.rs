//! Low-level probing with `blkid -p -o export`, for what lsblk cannot say
//! without a udev database (rescue VMs' early shells, containers, this CI).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::BlockDevice;
use crate::cmd::Cmd;

/// One device's `KEY=value` lines from `blkid -p -o export`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub values: BTreeMap<String, String>,
}

impl Probe {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Parses export output; `# /dev/x` comment lines start a new device (the
/// format of captured fixtures), and so does a `DEVNAME=` line.
pub fn parse_export(text: &str) -> BTreeMap<String, Probe> {
    let mut probes: BTreeMap<String, Probe> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(dev) = line.strip_prefix('#') {
            current = Some(dev.trim().to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key == "DEVNAME" {
            current = Some(value.to_string());
        }
        if let Some(dev) = &current {
            probes
                .entry(dev.clone())
                .or_default()
                .values
                .insert(key.to_string(), value.to_string());
        }
    }
    probes
}

/// Probes one device; `None` when blkid finds nothing on it (exit status 2).
pub fn probe(device: &str) -> Result<Option<Probe>> {
    let cmd = Cmd::new("blkid").args(["-p", "-o", "export", device]);
    let output = cmd.run_unchecked()?;
    match output.status.code() {
        Some(0) => Ok(parse_export(&output.stdout_string()).into_values().next()),
        Some(2) => Ok(None),
        _ => Err(cmd.failure(&output)).with_context(|| format!("probing {device}")),
    }
}

/// Fills in fstype, UUID, label, partition UUID and type where lsblk left them empty.
pub fn enrich(
    devices: &mut [BlockDevice],
    probe: &mut dyn FnMut(&str) -> Result<Option<Probe>>,
) -> Result<()> {
    for dev in devices {
        let wants_probe = dev.fstype.is_none()
            && dev.children.is_empty()
            && matches!(
                dev.kind.as_str(),
                "part" | "disk" | "loop" | "lvm" | "crypt"
            )
            && dev.size != Some(0);
        if wants_probe {
            if let Some(found) = probe(&dev.dev_path())? {
                dev.fstype = found.get("TYPE").map(str::to_string);
                dev.uuid = dev
                    .uuid
                    .take()
                    .or_else(|| found.get("UUID").map(str::to_string));
                dev.label = dev
                    .label
                    .take()
                    .or_else(|| found.get("LABEL").map(str::to_string));
                dev.partuuid = dev
                    .partuuid
                    .take()
                    .or_else(|| found.get("PART_ENTRY_UUID").map(str::to_string));
                dev.partlabel = dev
                    .partlabel
                    .take()
                    .or_else(|| found.get("PART_ENTRY_NAME").map(str::to_string));
                dev.parttype = dev
                    .parttype
                    .take()
                    .or_else(|| found.get("PART_ENTRY_TYPE").map(str::to_string));
            }
        }
        enrich(&mut dev.children, probe)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture_export() {
        let text = "# /dev/loop0p1\nDEVNAME=/dev/loop0p1\nUUID=abc\nTYPE=ext4\n# /dev/loop0p2\nDEVNAME=/dev/loop0p2\nTYPE=xfs\n";
        let probes = parse_export(text);
        assert_eq!(probes["/dev/loop0p1"].get("TYPE"), Some("ext4"));
        assert_eq!(probes["/dev/loop0p2"].get("TYPE"), Some("xfs"));
    }
}
