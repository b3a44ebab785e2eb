//! `lsblk -J` parsed into typed structs.
//!
//! util-linux before 2.37 prints every value as a string (`"size": "1024"`,
//! `"ro": "0"`) and a single `mountpoint`; newer versions print numbers,
//! booleans and a `mountpoints` array. Both parse into the same struct.

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer, Serialize};

use crate::cmd::Cmd;

/// The columns vmrescue asks `lsblk` for.
pub const LSBLK_COLUMNS: &str = "NAME,PATH,TYPE,SIZE,FSTYPE,UUID,PARTUUID,PARTTYPE,LABEL,PARTLABEL,MOUNTPOINTS,PKNAME,RO,MODEL,SERIAL,WWN";

#[derive(Debug, Deserialize)]
struct LsblkOutput {
    blockdevices: Vec<BlockDevice>,
}

/// One node of lsblk's tree: a disk, partition, LV, crypt mapping, loop device…
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BlockDevice {
    pub name: String,
    #[serde(default)]
    pub path: Option<String>,
    /// `disk`, `part`, `lvm`, `crypt`, `loop`, `rom`, `raid1`…
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "number_or_string")]
    pub size: Option<u64>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub partuuid: Option<String>,
    /// The partition type: a GPT type GUID, or `0x83`-style on MBR.
    #[serde(default)]
    pub parttype: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub partlabel: Option<String>,
    #[serde(default, deserialize_with = "mountpoint_list")]
    pub mountpoints: Vec<String>,
    /// Old util-linux name for a single mount point; merged into `mountpoints`.
    #[serde(default, skip_serializing)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub pkname: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub ro: bool,
    #[serde(default, deserialize_with = "trimmed")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "trimmed")]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    #[serde(default)]
    pub children: Vec<BlockDevice>,
}

impl BlockDevice {
    /// `/dev/NAME` when lsblk did not print a path (old versions).
    pub fn dev_path(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("/dev/{}", self.name))
    }

    /// This device and every descendant, depth first.
    pub fn walk(&self) -> Vec<&BlockDevice> {
        let mut out = vec![self];
        for child in &self.children {
            out.extend(child.walk());
        }
        out
    }

    pub fn is_mounted(&self) -> bool {
        !self.mountpoints.is_empty()
    }

    fn normalize(&mut self) {
        if let Some(mp) = self.mountpoint.take() {
            if !self.mountpoints.contains(&mp) {
                self.mountpoints.push(mp);
            }
        }
        for child in &mut self.children {
            child.normalize();
        }
    }
}

/// Parses `lsblk -J` output.
pub fn parse(json: &str) -> Result<Vec<BlockDevice>> {
    let mut out: LsblkOutput = serde_json::from_str(json).context("parsing lsblk JSON output")?;
    for dev in &mut out.blockdevices {
        dev.normalize();
    }
    Ok(out.blockdevices)
}

/// Runs `lsblk` on the whole machine (or the listed devices) and parses it.
pub fn list(devices: &[String]) -> Result<Vec<BlockDevice>> {
    let json = Cmd::new("lsblk")
        .args(["-J", "-b", "-o", LSBLK_COLUMNS])
        .args(devices)
        .read()
        .context("listing block devices")?;
    parse(&json)
}

fn number_or_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(de)? {
        Some(Raw::Number(n)) => Some(n),
        Some(Raw::Text(s)) => s.trim().parse().ok(),
        None => None,
    })
}

fn bool_or_string<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(de)? {
        Some(Raw::Bool(b)) => b,
        Some(Raw::Number(n)) => n != 0,
        Some(Raw::Text(s)) => matches!(s.trim(), "1" | "true"),
        None => false,
    })
}

fn mountpoint_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let raw = Option::<Vec<Option<String>>>::deserialize(de)?;
    Ok(raw.unwrap_or_default().into_iter().flatten().collect())
}

fn trimmed<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let raw = Option::<String>::deserialize(de)?;
    Ok(raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_new_style_numbers_and_mountpoints() {
        let json = r#"{"blockdevices":[{"name":"vda","path":"/dev/vda","type":"disk","size":274877906944,
            "fstype":null,"uuid":null,"mountpoints":["/"],"ro":false,"model":null}]}"#;
        let devs = parse(json).unwrap();
        assert_eq!(devs[0].size, Some(274_877_906_944));
        assert_eq!(devs[0].mountpoints, vec!["/".to_string()]);
        assert!(!devs[0].ro);
    }

    #[test]
    fn parses_old_style_strings_and_single_mountpoint() {
        let json = r#"{"blockdevices":[{"name":"sda","type":"disk","size":"1024","ro":"1",
            "mountpoint":null,"model":"Virtual Disk    ",
            "children":[{"name":"sda1","type":"part","size":"512","ro":"0","mountpoint":"/boot"}]}]}"#;
        let devs = parse(json).unwrap();
        assert_eq!(devs[0].size, Some(1024));
        assert!(devs[0].ro);
        assert_eq!(devs[0].model.as_deref(), Some("Virtual Disk"));
        assert_eq!(devs[0].dev_path(), "/dev/sda");
        assert_eq!(devs[0].children[0].mountpoints, vec!["/boot".to_string()]);
        assert!(devs[0].mountpoints.is_empty());
    }

    #[test]
    fn null_mountpoints_entries_are_dropped() {
        let json = r#"{"blockdevices":[{"name":"zram0","type":"disk","mountpoints":[null]}]}"#;
        assert!(!parse(json).unwrap()[0].is_mounted());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"nope":[]}"#).is_err());
    }
}
