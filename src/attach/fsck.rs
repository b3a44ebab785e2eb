//! Filesystem checks of the target's unmounted filesystems: read-only by
//! default (`e2fsck -n`, `xfs_repair -n`, `btrfs check --readonly`); the real
//! repair only after the operator confirmed it.

use anyhow::Result;
use serde::Serialize;

use crate::cmd::Cmd;
use crate::disk::BlockDevice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FsckVerdict {
    Clean,
    /// Problems found (read-only check) or left after a repair.
    Errors,
    /// A repair run fixed problems.
    Repaired,
    /// The checker could not run to the end (e.g. a dirty XFS log).
    CheckFailed,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FsckResult {
    pub device: String,
    pub fstype: String,
    pub command: String,
    pub exit_status: Option<i32>,
    pub verdict: FsckVerdict,
    pub advice: Option<String>,
    pub output_tail: String,
}

/// The argv that checks (or repairs) one filesystem, if vmrescue knows its checker.
pub fn checker(device: &str, fstype: &str, repair: bool) -> Option<Cmd> {
    let cmd = match (fstype, repair) {
        ("ext2" | "ext3" | "ext4", false) => Cmd::new("e2fsck").args(["-f", "-n", device]),
        ("ext2" | "ext3" | "ext4", true) => Cmd::new("e2fsck").args(["-f", "-y", device]),
        ("xfs", false) => Cmd::new("xfs_repair").args(["-n", device]),
        ("xfs", true) => Cmd::new("xfs_repair").arg(device),
        ("btrfs", false) => Cmd::new("btrfs").args(["check", "--readonly", device]),
        // btrfs check --repair is dangerous enough that it stays manual.
        _ => return None,
    };
    Some(cmd)
}

fn verdict(fstype: &str, repair: bool, code: Option<i32>) -> FsckVerdict {
    match (fstype, code) {
        (_, Some(0)) => FsckVerdict::Clean,
        // e2fsck: 1 and 2 mean errors were corrected; 4 errors left; 8+ operational error.
        ("ext2" | "ext3" | "ext4", Some(1 | 2)) if repair => FsckVerdict::Repaired,
        ("ext2" | "ext3" | "ext4", Some(c)) if c >= 8 => FsckVerdict::CheckFailed,
        // xfs_repair -n: 1 means corruption found; a dirty log makes the repair exit 2.
        ("xfs", Some(2)) => FsckVerdict::CheckFailed,
        _ => FsckVerdict::Errors,
    }
}

fn advice(fstype: &str, verdict: FsckVerdict, output: &str) -> Option<String> {
    if fstype == "xfs"
        && (output.contains("dirty log")
            || output.contains("log needs to be replayed")
            || output.contains("contains valuable metadata changes in a log"))
    {
        return Some(
            "the XFS log is dirty: mount the filesystem once so the kernel replays it (`vmrescue mount`, \
             then `vmrescue umount`) and check again; only if that mount fails, `xfs_repair -L` zeroes the \
             log and loses the changes in it"
                .into(),
        );
    }
    match verdict {
        FsckVerdict::Errors => {
            Some("run `vmrescue fsck --repair` to fix the problems found".into())
        }
        _ => None,
    }
}

/// Checks every ext/XFS/btrfs filesystem among `nodes`; none may be mounted.
pub fn check_all(nodes: &[BlockDevice], repair: bool) -> Result<Vec<FsckResult>> {
    let mut results = Vec::new();
    for node in nodes {
        let Some(fstype) = node.fstype.as_deref() else {
            continue;
        };
        let device = node.dev_path();
        let Some(cmd) = checker(&device, fstype, repair) else {
            continue;
        };
        if node.is_mounted() {
            anyhow::bail!(
                "{device} is mounted on {}: unmount it before checking",
                node.mountpoints.join(", ")
            );
        }
        let output = {
            let _progress = crate::progress::start(format!("checking {device} ({fstype})"));
            cmd.run_unchecked()?
        };
        let text = format!("{}{}", output.stdout_string(), output.stderr_tail);
        let code = output.status.code();
        let verdict = verdict(fstype, repair, code);
        let tail: String = text
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        results.push(FsckResult {
            device,
            fstype: fstype.to_string(),
            command: cmd.display_argv(),
            exit_status: code,
            verdict,
            advice: advice(fstype, verdict, &text),
            output_tail: tail,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_checkers_never_repair() {
        assert_eq!(
            checker("/dev/x", "ext4", false).unwrap().display_argv(),
            "e2fsck -f -n /dev/x"
        );
        assert_eq!(
            checker("/dev/x", "xfs", false).unwrap().display_argv(),
            "xfs_repair -n /dev/x"
        );
        assert!(checker("/dev/x", "btrfs", true).is_none());
        assert!(checker("/dev/x", "vfat", false).is_none());
    }

    #[test]
    fn exit_codes_map_to_verdicts() {
        assert_eq!(verdict("ext4", false, Some(0)), FsckVerdict::Clean);
        assert_eq!(verdict("ext4", false, Some(4)), FsckVerdict::Errors);
        assert_eq!(verdict("ext4", true, Some(1)), FsckVerdict::Repaired);
        assert_eq!(verdict("ext4", false, Some(8)), FsckVerdict::CheckFailed);
        assert_eq!(verdict("xfs", false, Some(1)), FsckVerdict::Errors);
        assert_eq!(verdict("xfs", true, Some(2)), FsckVerdict::CheckFailed);
    }
}
