//! Does the target expect Secure Boot, and did its boot run under it?
//!
//! The heuristic (documented in the README): the target expects Secure
//! Boot when its EFI System Partition holds a shim, the Microsoft-signed
//! first stage every Secure Boot Linux boots through:
//!
//! 1. a file named `shim*.efi` in a vendor directory (`EFI/debian/shimx64.efi`,
//!    `EFI/ubuntu/shimx64.efi`, `EFI/redhat/shimx64.efi`…), or
//! 2. the removable path `EFI/BOOT/BOOTX64.EFI` being a shim (its `.sbat`
//!    section names the component `shim`), as on images that boot from the
//!    removable path only.
//!
//! The ESP is read straight from the disk (a read-only file, a FAT reader in
//! the process), not mounted: the rescue VM's kernel may lack vfat, and a
//! mount would be one more thing to undo (invariant 8).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::target_disk::EspLocation;

/// The caller's choice (`--secure-boot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecureBootChoice {
    /// Enforce it when the ESP holds a shim (the heuristic above).
    #[default]
    Auto,
    /// Enforce it; a disk that cannot be booted that way is refused (exit 4).
    On,
    /// Boot with Secure Boot off.
    Off,
}

/// Whether the firmware enforced Secure Boot during the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecureBootMode {
    /// OVMF's Secure Boot build with Microsoft's keys enrolled.
    Enforced,
    /// Firmware without Secure Boot (or no firmware: a direct kernel boot).
    Off,
}

/// What the report says about Secure Boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SecureBootReport {
    pub mode: SecureBootMode,
    /// Why this mode: the shim found on the ESP, or the flag.
    pub reason: String,
    /// The booted kernel's own line saying it runs under Secure Boot
    /// (`Secure boot enabled`, or the lockdown line).
    pub kernel_line: Option<String>,
}

/// Console lines of a Linux kernel that found Secure Boot enforced, the
/// most telling first (as Debian 12's 6.12 kernel prints them:
/// `secureboot: Secure boot enabled`, `Kernel is locked down from EFI
/// Secure Boot; see man kernel_lockdown.7`, and its EFI stub's `EFI stub:
/// UEFI Secure Boot is enabled.`).
pub const KERNEL_CONFIRMS: &[&str] = &[
    "Secure boot enabled",
    "Kernel is locked down from EFI Secure Boot",
    "EFI stub: UEFI Secure Boot is enabled",
];

/// The console line confirming Secure Boot, by the order of [`KERNEL_CONFIRMS`].
pub fn kernel_confirmation(console: &str) -> Option<String> {
    let lines: Vec<String> = console
        .split(['\n', '\r'])
        .map(super::stage::clean_line)
        .collect();
    KERNEL_CONFIRMS.iter().find_map(|needle| {
        lines
            .iter()
            .find(|line| line.contains(needle))
            .map(|line| line.trim().to_string())
    })
}

/// One file on the ESP, as the heuristic sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFile {
    /// Path on the ESP, `/`-separated, as stored (`EFI/debian/shimx64.efi`).
    pub path: String,
    /// The file's `.sbat` data names the component `shim`.
    pub is_shim_binary: bool,
}

/// The heuristic: the evidence that the target expects Secure Boot, or None.
pub fn shim_evidence(files: &[EspFile]) -> Option<String> {
    let named = files.iter().find(|f| {
        let name = f
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        name.starts_with("shim") && name.ends_with(".efi")
    });
    if let Some(file) = named {
        return Some(format!("the ESP holds the shim {}", file.path));
    }
    files
        .iter()
        .find(|f| f.path.eq_ignore_ascii_case("EFI/BOOT/BOOTX64.EFI") && f.is_shim_binary)
        .map(|f| format!("the ESP's removable boot loader {} is a shim", f.path))
}

/// SBAT data (`.sbat`, CSV) of a shim names its component `shim`
/// (`shim,4,UEFI shim,shim,1,https://github.com/rhboot/shim`).
pub fn is_shim_binary(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\nshim,").is_some()
        && memchr::memmem::find(bytes, b"sbat,").is_some()
}

/// The largest file read to look at its SBAT data (shim is ~1 MB).
const MAX_READ: u64 = 8 << 20;

/// Lists `EFI/<dir>/<file>` on the ESP, reading the removable boot loader
/// to tell whether it is a shim.
pub fn scan_esp(disk: &Path, esp: &EspLocation) -> Result<Vec<EspFile>> {
    let file = File::open(disk).with_context(|| format!("opening {} read-only", disk.display()))?;
    let slice = ReadOnlySlice::new(file, esp.start, esp.size).with_context(|| {
        format!(
            "reading the ESP (partition {}) of {}",
            esp.number,
            disk.display()
        )
    })?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new().update_accessed_date(false))
        .with_context(|| {
            format!(
                "the ESP (partition {}) of {} is not a FAT filesystem",
                esp.number,
                disk.display()
            )
        })?;
    let mut files = Vec::new();
    let root = fs.root_dir();
    let Some(efi) = root
        .iter()
        .filter_map(|e| e.ok())
        .find(|e| e.is_dir() && e.file_name().eq_ignore_ascii_case("EFI"))
    else {
        return Ok(files);
    };
    for vendor in efi.to_dir().iter().filter_map(|e| e.ok()) {
        let vendor_name = vendor.file_name();
        if !vendor.is_dir() || vendor_name == "." || vendor_name == ".." {
            continue;
        }
        for entry in vendor.to_dir().iter().filter_map(|e| e.ok()) {
            if !entry.is_file() {
                continue;
            }
            let path = format!("EFI/{vendor_name}/{}", entry.file_name());
            let removable = path.eq_ignore_ascii_case("EFI/BOOT/BOOTX64.EFI");
            let is_shim_binary = if removable && entry.len() <= MAX_READ {
                let mut bytes = Vec::new();
                entry
                    .to_file()
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("reading {path} on the ESP"))?;
                is_shim_binary(&bytes)
            } else {
                false
            };
            files.push(EspFile {
                path,
                is_shim_binary,
            });
        }
    }
    Ok(files)
}

/// A partition of a disk or image as a read-only storage for the FAT
/// reader: writes fail, so nothing on the target can change.
struct ReadOnlySlice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl ReadOnlySlice {
    fn new(mut file: File, start: u64, len: u64) -> std::io::Result<Self> {
        file.seek(SeekFrom::Start(start))?;
        Ok(ReadOnlySlice {
            file,
            start,
            len,
            pos: 0,
        })
    }
}

impl Read for ReadOnlySlice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ReadOnlySlice {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )
        })?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}

impl Write for ReadOnlySlice {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the ESP is read, never written",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, shim: bool) -> EspFile {
        EspFile {
            path: path.into(),
            is_shim_binary: shim,
        }
    }

    #[test]
    fn a_vendor_shim_means_secure_boot() {
        let files = [
            file("EFI/debian/grubx64.efi", false),
            file("EFI/debian/shimx64.efi", false),
            file("EFI/BOOT/BOOTX64.EFI", true),
        ];
        assert_eq!(
            shim_evidence(&files).as_deref(),
            Some("the ESP holds the shim EFI/debian/shimx64.efi")
        );
    }

    #[test]
    fn a_removable_shim_alone_means_secure_boot() {
        let files = [
            file("EFI/BOOT/BOOTX64.EFI", true),
            file("EFI/BOOT/grubx64.efi", false),
        ];
        assert!(shim_evidence(&files).unwrap().contains("removable"));
    }

    #[test]
    fn grub_or_systemd_boot_alone_is_not_secure_boot() {
        let files = [
            file("EFI/BOOT/BOOTX64.EFI", false),
            file("EFI/systemd/systemd-bootx64.efi", false),
            file("EFI/debian/grubx64.efi", false),
        ];
        assert_eq!(shim_evidence(&files), None);
        assert_eq!(shim_evidence(&[]), None);
    }

    #[test]
    fn shim_sbat_data_is_recognised() {
        // The .sbat section of Debian 12's shimx64.efi (shim 15.8).
        let shim =
            b"\0\0sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
shim,4,UEFI shim,shim,1,https://github.com/rhboot/shim\n\
shim.debian,1,Debian,shim,15.8,https://tracker.debian.org/pkg/shim\n\0";
        assert!(is_shim_binary(shim));
        // GRUB's SBAT names grub, not shim.
        let grub = b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
grub,4,Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\n";
        assert!(!is_shim_binary(grub));
    }

    #[test]
    fn the_esp_is_read_from_the_partition_without_mounting() {
        let path = format!(
            "{}/tests/fixtures/esp/removable-shim.fat",
            env!("CARGO_MANIFEST_DIR")
        );
        let size = std::fs::metadata(&path).unwrap().len();
        let esp = EspLocation {
            number: 1,
            start: 0,
            size,
        };
        let mut files = scan_esp(Path::new(&path), &esp).unwrap();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            files,
            [
                file("EFI/BOOT/BOOTX64.EFI", true),
                file("EFI/BOOT/grubx64.efi", false),
                file("EFI/debian/grubx64.efi", false),
            ]
        );
        assert_eq!(
            shim_evidence(&files).as_deref(),
            Some("the ESP's removable boot loader EFI/BOOT/BOOTX64.EFI is a shim")
        );
    }

    #[test]
    fn a_real_secure_boot_console_confirms_it() {
        let path = format!(
            "{}/tests/fixtures/boot-logs/debian12-uefi-shim-secureboot-ok.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let console = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        assert_eq!(
            kernel_confirmation(&console).as_deref(),
            Some("[    0.000000] secureboot: Secure boot enabled")
        );
        // Without the secureboot line the lockdown line, then the EFI stub's, say it.
        let no_secureboot_line = console.replace("secureboot: Secure boot enabled", "");
        assert!(kernel_confirmation(&no_secureboot_line)
            .unwrap()
            .contains("Kernel is locked down from EFI Secure Boot"));
    }

    #[test]
    fn the_kernel_confirms_secure_boot() {
        let log = "[    0.000000] Linux version 6.12\r\n\u{1b}[0m[    0.000000] secureboot: Secure boot enabled\r\n";
        assert_eq!(
            kernel_confirmation(log).as_deref(),
            Some("[    0.000000] secureboot: Secure boot enabled")
        );
        assert_eq!(
            kernel_confirmation("Linux version 6.12\nsecureboot: Secure boot disabled\n"),
            None
        );
    }
}
