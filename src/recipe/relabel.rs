//! A full SELinux relabel on the next boot: `/.autorelabel`, which
//! selinux-autorelabel (RHEL, Fedora, SUSE) reads early in the boot, relabels
//! every filesystem with the policy's `setfiles`, removes and reboots.
//!
//! Labelling offline with the target's own `setfiles` is not done here: it
//! needs the target's policy loaded in a sandbox that runs no SELinux-aware
//! program yet. The relabel at the next boot takes minutes on a large disk.

use anyhow::Result;

use super::plan::{Planned, Workspace};
use crate::error::Failure;
use crate::inspect::default_grub::DefaultGrub;
use crate::rootfs::RootDir;

const SELINUX_CONFIG: &str = "/etc/selinux/config";
const AUTORELABEL: &str = "/.autorelabel";

/// `SELINUX=` and `SELINUXTYPE=` of /etc/selinux/config.
fn selinux_mode(ws: &Workspace) -> Result<Option<(String, String)>> {
    let Some(text) = ws.read(SELINUX_CONFIG)? else {
        return Ok(None);
    };
    let config = DefaultGrub::parse(&text);
    let mode = config
        .get("SELINUX")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let policy = config.get("SELINUXTYPE").unwrap_or_default().to_string();
    Ok(Some((mode, policy)))
}

/// Plans `/.autorelabel` (empty); refused on a target without SELinux.
pub fn request_relabel(ws: &mut Workspace, planned: &mut Planned) -> Result<()> {
    let Some((mode, policy)) = selinux_mode(ws)? else {
        return Err(Failure::Refused(format!(
            "the target has no {SELINUX_CONFIG}: it does not use SELinux, so there is nothing to relabel"
        ))
        .into());
    };
    if mode == "disabled" {
        return Err(Failure::Refused(format!(
            "SELinux is disabled in {SELINUX_CONFIG}: a relabel would not run"
        ))
        .into());
    }
    if !policy.is_empty() && !ws.exists(format!("/etc/selinux/{policy}")) {
        planned.notes.push(format!(
            "{SELINUX_CONFIG} names the policy `{policy}`, which is not installed: reinstall selinux-policy-{policy} in a chroot as well"
        ));
    }
    planned.notes.push(
        "the relabel runs on the next boot (minutes on a large filesystem) and reboots once; offline labelling with the target's setfiles is not done".into(),
    );
    planned.push(ws.write(
        AUTORELABEL,
        String::new(),
        "relabel every file with the SELinux policy on the next boot",
    )?);
    Ok(())
}

/// Verification: `/.autorelabel` is there.
pub fn check_relabel(root: &RootDir) -> (bool, String) {
    if root.is_file(AUTORELABEL) {
        (
            true,
            format!("{AUTORELABEL} present: the next boot relabels"),
        )
    } else {
        (false, format!("{AUTORELABEL} missing"))
    }
}
