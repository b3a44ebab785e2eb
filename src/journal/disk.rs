//! Byte ranges of the target disk outside any filesystem: the MBR's boot
//! code and GRUB's embedding area (the gap after the MBR, or the BIOS boot
//! partition on GPT). `grub-install --target=i386-pc` writes them; the
//! journal keeps their old bytes so that `undo` writes them back, byte for
//! byte, onto the same disk and no other.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One byte range of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskRegion {
    pub offset: u64,
    pub length: u64,
    /// What lives there: "the MBR boot code", "the BIOS boot partition"…
    pub what: String,
}

impl DiskRegion {
    /// The largest region journaled: a BIOS boot partition is 1 MiB, the
    /// MBR gap at most a few; more means the layout was misread.
    pub const MAX_LENGTH: u64 = 32 << 20;

    pub fn describe(&self) -> String {
        format!(
            "bytes {}..{} ({})",
            self.offset,
            self.offset + self.length,
            self.what
        )
    }
}

/// The target disk as undo must find it again: its device now and the
/// partition table's identifier (GPT disk GUID or MBR disk signature),
/// which a loop device number or a rescue VM's `sdX` letter does not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDisk {
    pub device: PathBuf,
    pub id: String,
}

impl TargetDisk {
    /// Probes `device`'s partition table identifier with blkid.
    pub fn probe(device: &Path) -> Result<TargetDisk> {
        let name = device.display().to_string();
        let probe = crate::disk::blkid::probe(&name)?;
        let id = probe
            .as_ref()
            .and_then(|p| p.get("PTUUID"))
            .filter(|id| !id.trim_start_matches('0').is_empty())
            .with_context(|| {
                format!(
                    "{name} has no partition table identifier (PTUUID): its boot code cannot be journaled safely"
                )
            })?;
        Ok(TargetDisk {
            device: device.to_path_buf(),
            id: id.to_string(),
        })
    }

    /// A short name for reports: `/dev/loop3 bytes 0..440 (the MBR boot code)`.
    pub fn label(&self, region: &DiskRegion) -> PathBuf {
        PathBuf::from(format!("{} {}", self.device.display(), region.describe()))
    }
}

/// Reads one region of the disk.
pub fn read_region(device: &Path, region: &DiskRegion) -> Result<Vec<u8>> {
    check_length(region)?;
    let file = File::open(device).with_context(|| format!("opening {}", device.display()))?;
    let mut bytes = vec![0u8; region.length as usize];
    file.read_exact_at(&mut bytes, region.offset)
        .with_context(|| format!("reading {} of {}", region.describe(), device.display()))?;
    Ok(bytes)
}

/// Writes one region back and flushes it to the disk.
pub fn write_region(device: &Path, region: &DiskRegion, bytes: &[u8]) -> Result<()> {
    check_length(region)?;
    if bytes.len() as u64 != region.length {
        bail!(
            "the journaled copy of {} has {} bytes, not {}",
            region.describe(),
            bytes.len(),
            region.length
        );
    }
    let file = OpenOptions::new()
        .write(true)
        .open(device)
        .with_context(|| format!("opening {} to write", device.display()))?;
    file.write_all_at(bytes, region.offset)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {} of {}", region.describe(), device.display()))
}

fn check_length(region: &DiskRegion) -> Result<()> {
    if region.length == 0 || region.length > DiskRegion::MAX_LENGTH {
        bail!(
            "{} is not a boot-code region (1 byte to {} MiB)",
            region.describe(),
            DiskRegion::MAX_LENGTH >> 20
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_reads_and_writes_back_only_its_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.img");
        let original: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&disk, &original).unwrap();
        let region = DiskRegion {
            offset: 512,
            length: 1024,
            what: "test".into(),
        };
        let saved = read_region(&disk, &region).unwrap();
        assert_eq!(saved, original[512..1536]);
        let mut changed = original.clone();
        changed[0..2048].fill(0);
        std::fs::write(&disk, &changed).unwrap();
        write_region(&disk, &region, &saved).unwrap();
        let now = std::fs::read(&disk).unwrap();
        assert_eq!(now[512..1536], original[512..1536]);
        assert!(now[0..512].iter().all(|&b| b == 0), "outside the region");
        assert!(
            now[1536..2048].iter().all(|&b| b == 0),
            "outside the region"
        );
        let err = write_region(&disk, &region, &saved[..10]).unwrap_err();
        assert!(err.to_string().contains("not 1024"), "{err}");
        let huge = DiskRegion {
            offset: 0,
            length: DiskRegion::MAX_LENGTH + 1,
            what: "too much".into(),
        };
        assert!(read_region(&disk, &huge).is_err());
    }
}
