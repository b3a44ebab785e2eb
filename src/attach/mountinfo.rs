//! `/proc/self/mountinfo`, to know what is mounted where before touching it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// Mounted read-only (per-mount or superblock option `ro`).
    pub read_only: bool,
}

/// Octal escapes (`\040` for a space) as the kernel writes them.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Some(value) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
            {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = left.split(' ');
            let mount_point = fields.nth(4)?;
            let mount_options = fields.next().unwrap_or("");
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let source = right.next().unwrap_or("");
            let super_options = right.next().unwrap_or("");
            let read_only = [mount_options, super_options]
                .iter()
                .any(|opts| opts.split(',').any(|o| o == "ro"));
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: fstype.to_string(),
                source: unescape(source),
                read_only,
            })
        })
        .collect()
}

pub fn read() -> Result<Vec<MountEntry>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(parse(&text))
}

/// True when something is mounted exactly on `path`.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(read()?.iter().any(|m| m.mount_point == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines_with_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    22 1 8:1 / / rw shared:1 - xfs /dev/sda1 rw\n";
        let entries = parse(text);
        assert_eq!(entries[0].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(entries[0].fstype, "ext3");
        assert_eq!(entries[1].source, "/dev/sda1");
        assert!(!entries[0].read_only && !entries[1].read_only);
        let ro = parse("40 35 7:1 / /mnt/vmrescue/img ro,relatime - ext4 /dev/loop0p1 ro\n");
        assert!(ro[0].read_only);
    }

    #[test]
    fn root_is_a_mount_point_here() {
        assert!(is_mount_point(Path::new("/")).unwrap());
    }
}
