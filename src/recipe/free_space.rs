//! `free-space`: delete the regenerable files (archived journals, package
//! caches, rotated logs) of a target whose filesystems are nearly full. The
//! plan lists every file and the total; the files are deleted without a
//! backup, since keeping one would free nothing, so undo cannot restore
//! them. Old kernels are named, never deleted (a package manager's job).

use anyhow::Result;

use super::plan::{ActionContext, Planned, PlannedChange, Workspace};
use crate::error::Failure;
use crate::inspect::disk_usage::{self, human_bytes};

/// Plans the deletions; refused when nothing regenerable is there.
pub fn free_space(ws: &mut Workspace, ctx: &ActionContext, planned: &mut Planned) -> Result<()> {
    let default = super::facts::default_kernel(ws.root(), ctx.facts)?;
    let usage = disk_usage::scan(ws.root(), default.as_deref())?;
    for fs in &usage.filesystems {
        planned.notes.push(format!(
            "{}: {} free of {}{}",
            fs.path.display(),
            human_bytes(fs.free_bytes),
            human_bytes(fs.total_bytes),
            if fs.nearly_full() {
                " (nearly full)"
            } else {
                ""
            }
        ));
    }
    let regenerable: Vec<_> = usage.regenerable().cloned().collect();
    if regenerable.is_empty() {
        return Err(Failure::Refused(
            "no archived journals, package caches or rotated logs to delete: free space by hand (`vmrescue chroot --rw`)".into(),
        )
        .into());
    }
    let total: u64 = regenerable.iter().map(|c| c.bytes).sum();
    for (kind, bytes, count) in usage.by_kind() {
        let what = if kind.regenerable() {
            "deleted"
        } else {
            "kept (remove with the package manager once the VM boots)"
        };
        planned.notes.push(format!(
            "{}: {count} files, {} — {what}",
            kind.describe(),
            human_bytes(bytes)
        ));
    }
    planned.notes.push(format!(
        "{} files, {} in all, are deleted for good: undo cannot restore them (the system makes them again when needed)",
        regenerable.len(),
        human_bytes(total)
    ));
    for consumer in regenerable {
        planned.changes.push(PlannedChange::Discard {
            why: format!("regenerable: {}", consumer.kind.describe()),
            path: consumer.path,
            bytes: consumer.bytes,
        });
    }
    Ok(())
}
