//! LVM through its JSON reports. Commands that look at the target never use
//! the host's devices file (RHEL 9 `system.devices`), and see only the
//! devices they are given, so the host's VGs are neither seen nor changed.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cmd::Cmd;

#[derive(Debug, Deserialize)]
struct Report<T> {
    report: Vec<ReportSection<T>>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct ReportSection<T> {
    #[serde(default = "Vec::new", alias = "pv", alias = "vg", alias = "lv")]
    rows: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhysicalVolume {
    pub pv_name: String,
    #[serde(default)]
    pub vg_name: String,
    #[serde(default)]
    pub pv_uuid: String,
    #[serde(default)]
    pub vg_uuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogicalVolume {
    pub lv_name: String,
    pub vg_name: String,
    #[serde(default)]
    pub lv_path: String,
    #[serde(default)]
    pub lv_dm_path: String,
    #[serde(default)]
    pub lv_uuid: String,
}

/// One PV of a VG as the disk holds it at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PvIdentity {
    /// The PV's device on the rescue VM.
    pub device: String,
    /// Its UUID as `pvs` prints it (with dashes).
    pub uuid: String,
}

impl PvIdentity {
    /// The UUID as LVM's devices file writes it (`PVID=`, no dashes).
    pub fn pvid(&self) -> String {
        self.uuid.replace('-', "")
    }
}

/// What names a VG on its own disk: the VG's name and UUID, its PVs' and
/// LVs' UUIDs, and its metadata as `vgcfgbackup` wrote it. Recorded before a
/// same-image clone gets new UUIDs, and put back at umount, so that nothing
/// holding the old ones (the devices file, its copies in every initramfs,
/// `/etc/lvm/backup`) goes stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VgIdentity {
    pub vg_name: String,
    pub vg_uuid: String,
    pub pvs: Vec<PvIdentity>,
    pub lv_uuids: Vec<String>,
    /// `vgcfgbackup`'s text of the VG before anything changed.
    pub metadata: String,
}

impl VgIdentity {
    pub fn devices(&self) -> Vec<String> {
        self.pvs.iter().map(|p| p.device.clone()).collect()
    }
}

fn parse_rows<T: for<'de> Deserialize<'de>>(json: &str) -> Result<Vec<T>> {
    let report: Report<T> = serde_json::from_str(json).context("parsing LVM JSON report")?;
    Ok(report.report.into_iter().flat_map(|s| s.rows).collect())
}

pub fn parse_pvs(json: &str) -> Result<Vec<PhysicalVolume>> {
    parse_rows(json)
}

pub fn parse_lvs(json: &str) -> Result<Vec<LogicalVolume>> {
    parse_rows(json)
}

/// `--config` that limits LVM to `devices` and ignores any devices file.
/// Automatic metadata backups are off: they would go to the host's
/// `/etc/lvm/backup/<vg>`, which in a same-image rescue is the file of the
/// host's own VG of the same name.
fn only_devices_config(devices: &[String]) -> String {
    let accept: Vec<String> = devices
        .iter()
        .map(|d| format!("\"a|^{}$|\"", regex::escape(d)))
        .collect();
    format!(
        "devices {{ use_devicesfile=0 filter=[{}, \"r|.*|\"] global_filter=[{}, \"r|.*|\"] }} backup {{ backup=0 archive=0 }}",
        accept.join(", "),
        accept.join(", ")
    )
}

/// An LVM command restricted to the target's devices.
fn target_lvm(program: &str, devices: &[String]) -> Cmd {
    Cmd::new("lvm")
        .arg(program)
        .args(["--config", &only_devices_config(devices)])
}

/// An LVM command that sees only the host's devices, as the host configures them.
fn host_lvm(program: &str) -> Cmd {
    Cmd::new("lvm").arg(program)
}

pub fn target_pvs(devices: &[String]) -> Result<Vec<PhysicalVolume>> {
    let json = target_lvm("pvs", devices)
        .args([
            "--reportformat",
            "json",
            "-o",
            "pv_name,vg_name,pv_uuid,vg_uuid",
        ])
        .read()
        .context("listing the target's LVM physical volumes")?;
    parse_pvs(&json)
}

pub fn target_lvs(devices: &[String], vg: &str) -> Result<Vec<LogicalVolume>> {
    let json = target_lvm("lvs", devices)
        .args([
            "--reportformat",
            "json",
            "-o",
            "lv_name,vg_name,lv_path,lv_dm_path,lv_uuid",
            vg,
        ])
        .read()
        .with_context(|| format!("listing logical volumes of {vg}"))?;
    parse_lvs(&json)
}

/// The VGs the host itself sees (its own configuration and devices file),
/// each with the PVs it is on. The attached target's own VG shows up here
/// when the host's LVM scans its disk too.
pub fn host_vg_pvs() -> Result<BTreeMap<String, Vec<String>>> {
    let output = host_lvm("pvs")
        .args(["--reportformat", "json", "-o", "pv_name,vg_name"])
        .run_unchecked()?;
    if !output.success() {
        return Ok(BTreeMap::new());
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pv in parse_pvs(&output.stdout_string())? {
        if !pv.vg_name.is_empty() {
            groups.entry(pv.vg_name).or_default().push(pv.pv_name);
        }
    }
    Ok(groups)
}

/// True when a host VG of that name lives (also) on devices outside the target.
pub fn clashes_with_host(
    host: &BTreeMap<String, Vec<String>>,
    vg: &str,
    target_pvs: &[String],
) -> bool {
    host.get(vg)
        .is_some_and(|pvs| pvs.iter().any(|pv| !target_pvs.contains(pv)))
}

/// True when every LV of the VG already has its device-mapper node (udev
/// activated the VG when the disk was attached).
pub fn all_active(devices: &[String], vg: &str) -> Result<bool> {
    let lvs = target_lvs(devices, vg)?;
    Ok(!lvs.is_empty()
        && lvs
            .iter()
            .all(|lv| !lv.lv_dm_path.is_empty() && std::path::Path::new(&lv.lv_dm_path).exists()))
}

pub fn activate(devices: &[String], vg: &str) -> Result<()> {
    let _progress = crate::progress::start(format!("activating volume group {vg}"));
    target_lvm("vgchange", devices)
        .args(["-ay", vg])
        .run()
        .with_context(|| format!("activating volume group {vg}"))?;
    Ok(())
}

pub fn deactivate(devices: &[String], vg: &str) -> Result<()> {
    target_lvm("vgchange", devices)
        .args(["-an", vg])
        .run()
        .with_context(|| format!("deactivating volume group {vg}"))?;
    Ok(())
}

/// Gives a cloned VG (same name and UUIDs as the host's) new UUIDs and a temporary name.
pub fn import_clone(pvs: &[String], temporary: &str) -> Result<()> {
    let _progress = crate::progress::start(format!(
        "giving the cloned volume group new UUIDs and the name {temporary}"
    ));
    Cmd::new("vgimportclone")
        .args(["--config", &only_devices_config(pvs)])
        .args(["--basevgname", temporary])
        .args(pvs)
        .run()
        .with_context(|| {
            format!("renaming the target's volume group to {temporary} (vgimportclone)")
        })?;
    Ok(())
}

/// The identity of target VG `vg` on `devices`, its metadata included.
pub fn read_identity(devices: &[String], vg: &str) -> Result<VgIdentity> {
    let pvs: Vec<PhysicalVolume> = target_pvs(devices)?
        .into_iter()
        .filter(|p| p.vg_name == vg)
        .collect();
    let vg_uuid = pvs
        .first()
        .map(|p| p.vg_uuid.clone())
        .with_context(|| format!("volume group {vg} has no physical volume on the target"))?;
    let backup = tempfile::NamedTempFile::new().context("creating a file for vgcfgbackup")?;
    target_lvm("vgcfgbackup", devices)
        .arg("-f")
        .arg(backup.path())
        .arg(vg)
        .run()
        .with_context(|| format!("saving the metadata of volume group {vg} (vgcfgbackup)"))?;
    let metadata = std::fs::read_to_string(backup.path())
        .with_context(|| format!("reading the vgcfgbackup of {vg}"))?;
    Ok(VgIdentity {
        vg_name: vg.to_string(),
        vg_uuid,
        pvs: pvs
            .iter()
            .map(|p| PvIdentity {
                device: p.pv_name.clone(),
                uuid: p.pv_uuid.clone(),
            })
            .collect(),
        lv_uuids: lv_uuids(devices, vg)?,
        metadata,
    })
}

fn lv_uuids(devices: &[String], vg: &str) -> Result<Vec<String>> {
    let mut uuids: Vec<String> = target_lvs(devices, vg)?
        .into_iter()
        .map(|lv| lv.lv_uuid)
        .collect();
    uuids.sort();
    Ok(uuids)
}

/// What differs between the disk as it is now and `identity` (empty when
/// the disk holds exactly that identity).
pub fn identity_differences(identity: &VgIdentity) -> Result<Vec<String>> {
    let devices = identity.devices();
    let now = target_pvs(&devices)?;
    let mut differences = Vec::new();
    for pv in &identity.pvs {
        match now.iter().find(|n| n.pv_name == pv.device) {
            None => differences.push(format!("{} is not a physical volume", pv.device)),
            Some(n) if n.pv_uuid != pv.uuid => differences.push(format!(
                "{} has PV UUID {} (was {})",
                pv.device, n.pv_uuid, pv.uuid
            )),
            Some(n) if n.vg_name != identity.vg_name || n.vg_uuid != identity.vg_uuid => {
                differences.push(format!(
                    "{} is in VG {} {} (was {} {})",
                    pv.device, n.vg_name, n.vg_uuid, identity.vg_name, identity.vg_uuid
                ))
            }
            Some(_) => {}
        }
    }
    if differences.is_empty() && lv_uuids(&devices, &identity.vg_name)? != identity.lv_uuids {
        differences.push(format!("the LV UUIDs of {} differ", identity.vg_name));
    }
    Ok(differences)
}

/// Puts `identity` back on its PVs, the LVM-documented way: each PV
/// re-labelled with its old UUID from the saved metadata (`pvcreate --uuid
/// --restorefile`), then the metadata itself (`vgcfgrestore`). The VG must
/// not be active. Always restricted to the target's devices, so the host's
/// clone with the same UUIDs is neither seen nor touched.
pub fn restore_identity(identity: &VgIdentity) -> Result<()> {
    let devices = identity.devices();
    let vg = &identity.vg_name;
    let _progress = crate::progress::start(format!(
        "putting back the UUIDs and the name of volume group {vg}"
    ));
    let mut file = tempfile::NamedTempFile::new().context("creating a file for vgcfgrestore")?;
    std::io::Write::write_all(&mut file, identity.metadata.as_bytes())
        .context("writing the saved metadata for vgcfgrestore")?;
    for pv in &identity.pvs {
        target_lvm("pvcreate", &devices)
            .args(["-ff", "-y", "--uuid", &pv.uuid, "--restorefile"])
            .arg(file.path())
            .arg(&pv.device)
            .run()
            .with_context(|| format!("giving {} its PV UUID {} back", pv.device, pv.uuid))?;
    }
    // In a same-image rescue vgcfgrestore counts the host's own active LVs
    // (same UUIDs) as the VG's and asks; `-y` answers, since it only writes
    // metadata to the target's PVs (the filter) and touches no active LV.
    target_lvm("vgcfgrestore", &devices)
        .arg("-y")
        .arg("-f")
        .arg(file.path())
        .arg(vg)
        .run()
        .with_context(|| format!("restoring the metadata of volume group {vg} (vgcfgrestore)"))?;
    let left = identity_differences(identity)?;
    if !left.is_empty() {
        anyhow::bail!(
            "volume group {vg} was restored but still differs: {}",
            left.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_host_vg_on_other_devices_is_a_clash() {
        let host: BTreeMap<String, Vec<String>> = [
            ("rootvg".to_string(), vec!["/dev/sda4".to_string()]),
            ("datavg".to_string(), vec!["/dev/sdc2".to_string()]),
        ]
        .into();
        let target = ["/dev/sdc2".to_string()];
        assert!(
            clashes_with_host(&host, "rootvg", &target),
            "same name, other disk"
        );
        assert!(
            !clashes_with_host(&host, "datavg", &target),
            "the target's own VG, seen by the host"
        );
        assert!(!clashes_with_host(&host, "othervg", &target));
    }

    // Captured from `pvs --reportformat json -o pv_name,vg_name,pv_uuid,vg_uuid` (lvm2 2.03.16).
    const PVS: &str = r#"  {
      "report": [
          {
              "pv": [
                  {"pv_name":"/dev/vdb3", "vg_name":"rootvg", "pv_uuid":"3bXkqX-1Xl4-Ew3t-ZxkD-Bv1M-lZ2a-J8tM1q", "vg_uuid":"5ObyA4-uK0d-5sPL-gHk3-OFte-uyOB-mmB8oC"}
              ]
          }
      ]
  }
"#;

    #[test]
    fn parses_pvs_report() {
        let pvs = parse_pvs(PVS).unwrap();
        assert_eq!(pvs.len(), 1);
        assert_eq!(pvs[0].vg_name, "rootvg");
        assert_eq!(pvs[0].pv_name, "/dev/vdb3");
    }

    #[test]
    fn parses_lvs_report() {
        let json = r#"{"report":[{"lv":[{"lv_name":"rootlv","vg_name":"rootvg","lv_path":"/dev/rootvg/rootlv","lv_dm_path":"/dev/mapper/rootvg-rootlv"}]}]}"#;
        let lvs = parse_lvs(json).unwrap();
        assert_eq!(lvs[0].lv_dm_path, "/dev/mapper/rootvg-rootlv");
    }

    #[test]
    fn filter_accepts_only_listed_devices() {
        let config = only_devices_config(&["/dev/vdb3".to_string()]);
        assert!(config.contains("use_devicesfile=0"));
        assert!(config.contains(r#""a|^/dev/vdb3$|""#));
        assert!(config.contains(r#""r|.*|""#));
    }
}
