//! Which disk (or image) to boot, whether it is safe to boot it now, and
//! what its partition table says about its firmware.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::attach::mountinfo;
use crate::attach::state::StateFile;
use crate::attach::{Chosen, TargetSpec};
use crate::cmd::Cmd;
use crate::error::Failure;

/// The disk to boot and how to mount it to read its boot configuration.
#[derive(Debug, Clone)]
pub struct BootDisk {
    /// What QEMU opens (an image file or a whole disk).
    pub path: PathBuf,
    pub spec: TargetSpec,
    /// A `vmrescue mount` of this target that stays mounted (read-only):
    /// the boot configuration is read there instead of mounting again.
    pub kept_key: Option<String>,
}

/// The disk to boot for `spec`, by the one target rule
/// ([`crate::attach::choose`]): a mounted directory cannot be booted.
pub fn resolve(spec: &TargetSpec) -> Result<BootDisk> {
    let (path, spec) = match crate::attach::choose(spec)? {
        Chosen::Named(TargetSpec::Root(root)) => {
            return Err(Failure::Usage(format!(
            "--root {} is a mounted directory: verify boots a disk, name it with --disk or --image",
            root.display()
        ))
            .into())
        }
        Chosen::Named(TargetSpec::Image(image)) => {
            let path = std::fs::canonicalize(&image)
                .with_context(|| format!("opening image {}", image.display()))?;
            if !path.is_file() {
                return Err(Failure::Usage(format!(
                    "--image {}: not a regular file (use --disk for a block device)",
                    image.display()
                ))
                .into());
            }
            (path.clone(), TargetSpec::Image(path))
        }
        Chosen::Named(TargetSpec::Disk(disk)) => {
            let whole = crate::attach::host_safe_disk(&crate::disk::scan()?, &disk)?;
            (
                PathBuf::from(&whole),
                TargetSpec::Disk(PathBuf::from(whole)),
            )
        }
        Chosen::Named(TargetSpec::Auto) => {
            anyhow::bail!("internal: the target rule left the target unnamed")
        }
        Chosen::Kept(target) => kept_source(&target)?,
    };
    let kept_key = vmrescue_state_for(&path)?.map(|(key, _)| key);
    Ok(BootDisk {
        path,
        spec,
        kept_key,
    })
}

/// The disk or image a `vmrescue mount` was made from.
fn kept_source(target: &crate::attach::Target) -> Result<(PathBuf, TargetSpec)> {
    let layout = target.layout();
    if let Some(image) = &layout.image {
        return Ok((image.clone(), TargetSpec::Image(image.clone())));
    }
    match &layout.disk {
        Some(disk) => Ok((PathBuf::from(disk), TargetSpec::Disk(PathBuf::from(disk)))),
        None => Err(Failure::Usage(format!(
            "the mounted target at {} is a directory, not a disk: verify boots a disk, name it with --disk or --image",
            layout.root.display()
        ))
        .into()),
    }
}

/// The vmrescue state file (key, state) naming this disk or image.
fn vmrescue_state_for(disk: &Path) -> Result<Option<(String, StateFile)>> {
    for path in StateFile::list()? {
        let file = StateFile::load(&path)?;
        let names_it = match &file.state.layout {
            Some(layout) => {
                layout.image.as_deref() == Some(disk)
                    || layout.disk.as_deref().map(Path::new) == Some(disk)
            }
            // Still being set up: only the loop step names the image.
            None => file.state.steps.iter().any(|step| {
                matches!(step, crate::attach::state::Step::LoopAttached { image, .. } if image == disk)
            }),
        };
        if names_it {
            return Ok(Some((file.state.key.clone(), file)));
        }
    }
    Ok(None)
}

/// Block devices that are this disk: the disk (or the loop devices backed
/// by the image), their partitions and the devices stacked on them.
fn device_nodes(disk: &Path) -> Result<Vec<PathBuf>> {
    let mut roots: Vec<String> = Vec::new();
    if disk.is_file() {
        if let Ok(entries) = std::fs::read_dir("/sys/block") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let backing = entry.path().join("loop/backing_file");
                if let Ok(text) = std::fs::read_to_string(&backing) {
                    if Path::new(text.trim()) == disk {
                        roots.push(name);
                    }
                }
            }
        }
    } else if let Some(name) = disk.file_name() {
        roots.push(name.to_string_lossy().into_owned());
    }
    let mut names: Vec<String> = Vec::new();
    let mut queue = roots;
    while let Some(name) = queue.pop() {
        if names.contains(&name) {
            continue;
        }
        let sys = Path::new("/sys/class/block").join(&name);
        for sub in ["holders"] {
            if let Ok(entries) = std::fs::read_dir(sys.join(sub)) {
                queue.extend(
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        // Partitions are subdirectories of the disk's sysfs directory.
        if let Ok(entries) = std::fs::read_dir(&sys) {
            for entry in entries.flatten() {
                if entry.path().join("partition").exists() {
                    queue.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names.push(name);
    }
    Ok(names.iter().map(|n| Path::new("/dev").join(n)).collect())
}

/// Refuses to boot a disk that is mounted read-write (by vmrescue or
/// anyone): the VM would see a filesystem that changes under it, and a
/// repair in progress would be booted half done.
pub fn refuse_if_mounted_rw(disk: &BootDisk) -> Result<()> {
    let nodes = device_nodes(&disk.path)?;
    let canonical =
        |source: &str| std::fs::canonicalize(source).unwrap_or_else(|_| PathBuf::from(source));
    let writable: Vec<mountinfo::MountEntry> = mountinfo::read()?
        .into_iter()
        .filter(|m| !m.read_only && m.source.starts_with("/dev/"))
        .filter(|m| nodes.contains(&canonical(&m.source)))
        .collect();
    let state = vmrescue_state_for(&disk.path)?;
    if let Some((key, file)) = &state {
        if file.state.layout.is_none() && file.state.pid != std::process::id() {
            return Err(Failure::Refused(format!(
                "{} is being mounted by another vmrescue run (pid {}, state {}): wait for it to finish",
                disk.path.display(),
                file.state.pid,
                file.path().display()
            ))
            .into());
        }
        if let Some(mount) = writable.first() {
            return Err(Failure::Refused(format!(
                "{} is mounted read-write by vmrescue ({} on {}, state {}): finish the repair and run `vmrescue umount {key}` before booting it",
                disk.path.display(),
                mount.source,
                mount.mount_point.display(),
                file.path().display()
            ))
            .into());
        }
    }
    if let Some(mount) = writable.first() {
        return Err(Failure::Refused(format!(
            "{} is mounted read-write ({} on {}): unmount it before booting it",
            disk.path.display(),
            mount.source,
            mount.mount_point.display()
        ))
        .into());
    }
    Ok(())
}

/// What the partition table says about booting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PartitionTable {
    /// `gpt`, `dos`, or none for a disk without a table.
    pub label: Option<String>,
    pub has_esp: bool,
    /// A GPT "BIOS boot" partition (GRUB's core image for BIOS).
    pub has_bios_boot: bool,
    /// Where the (first) EFI System Partition lies on the disk.
    pub esp: Option<EspLocation>,
}

/// An EFI System Partition's place on the disk, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EspLocation {
    /// The partition number (`1` for `/dev/sda1`).
    pub number: u32,
    pub start: u64,
    pub size: u64,
}

/// The partition number at the end of an sfdisk node name
/// (`disk.raw1`, `/dev/nvme0n1p1`).
fn partition_number(node: &str) -> Option<u32> {
    let digits: String = node
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const BIOS_BOOT_GUID: &str = "21686148-6449-6E6F-744E-656564454649";

/// `sfdisk --json` output → the facts above.
pub fn parse_sfdisk(json: &str) -> Result<PartitionTable> {
    let value: serde_json::Value = serde_json::from_str(json).context("parsing sfdisk --json")?;
    let table = &value["partitiontable"];
    let label = table["label"].as_str().map(str::to_string);
    let parts = table["partitions"].as_array().cloned().unwrap_or_default();
    let type_of = |p: &serde_json::Value| p["type"].as_str().map(|t| t.to_ascii_uppercase());
    let is_esp = |t: &str| t == ESP_GUID || t == "EF";
    // sfdisk counts in sectors of the table's sector size (512 unless it says).
    let sector = table["sectorsize"].as_u64().unwrap_or(512);
    let esp = parts
        .iter()
        .find(|p| type_of(p).is_some_and(|t| is_esp(&t)))
        .and_then(|p| {
            Some(EspLocation {
                number: partition_number(p["node"].as_str()?)?,
                start: p["start"].as_u64()?.checked_mul(sector)?,
                size: p["size"].as_u64()?.checked_mul(sector)?,
            })
        });
    Ok(PartitionTable {
        label,
        has_esp: parts.iter().filter_map(type_of).any(|t| is_esp(&t)),
        has_bios_boot: parts
            .iter()
            .filter_map(type_of)
            .any(|t| t == BIOS_BOOT_GUID),
        esp,
    })
}

pub fn partition_table(disk: &Path) -> Result<PartitionTable> {
    let output = Cmd::new("sfdisk").arg("--json").arg(disk).run_unchecked()?;
    if !output.success() {
        // No partition table (a bare filesystem image): nothing to boot from firmware.
        tracing::info!(
            "sfdisk found no partition table on {}: {}",
            disk.display(),
            output.stderr_tail.trim()
        );
        return Ok(PartitionTable::default());
    }
    parse_sfdisk(&output.stdout_string())
        .with_context(|| format!("reading the partition table of {}", disk.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_with_an_esp() {
        let json = r#"{"partitiontable":{"label":"gpt","id":"X","device":"u.raw","unit":"sectors",
            "partitions":[{"node":"u.raw1","start":2048,"size":1048576,"type":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
                          {"node":"u.raw2","start":1050624,"size":3145728,"type":"0FC63DAF-8483-4772-8E79-3D69D8477DE4"}]}}"#;
        let table = parse_sfdisk(json).unwrap();
        assert_eq!(table.label.as_deref(), Some("gpt"));
        assert!(table.has_esp && !table.has_bios_boot);
        assert_eq!(
            table.esp,
            Some(EspLocation {
                number: 1,
                start: 2048 * 512,
                size: 1048576 * 512
            })
        );
    }

    #[test]
    fn mbr_linux_only() {
        let json = r#"{"partitiontable":{"label":"dos","id":"0x1","device":"b.raw","unit":"sectors",
            "partitions":[{"node":"b.raw1","start":2048,"size":4192256,"type":"83","bootable":true}]}}"#;
        let table = parse_sfdisk(json).unwrap();
        assert!(!table.has_esp && !table.has_bios_boot);
    }

    #[test]
    fn a_root_directory_is_a_usage_error() {
        let err = resolve(&TargetSpec::Root("/investigateroot".into())).unwrap_err();
        assert_eq!(crate::exit_code_for(&err), crate::ExitCode::Usage);
    }
}
