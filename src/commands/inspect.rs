//! `vmrescue inspect`: how the target boots, read from its files.

use anyhow::Result;
use vmrescue::attach::Layout;
use vmrescue::inspect::snapshot::Snapshot;
use vmrescue::ExitCode;

use super::{open_target, Session};
use crate::cli::TargetArgs;
use crate::output::{emit, Rendered};

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct InspectReport {
    /// How the target is mounted.
    pub(crate) layout: Layout,
    /// What its files say about how it boots.
    pub(crate) snapshot: Snapshot,
}

pub(crate) fn run(session: &Session, args: &TargetArgs) -> Result<ExitCode> {
    let target = open_target(args)?;
    let snapshot = vmrescue::inspect::snapshot::snapshot(&target.rootdir()?);
    let layout = target.layout().clone();
    target.release()?;
    let mut snapshot = snapshot?;
    // An fstab entry the mount could not place stops the boot as surely as
    // a problem the files show, so it is reported with them.
    for note in layout.unresolved.iter().filter(|n| !n.nofail) {
        snapshot.problems.push(format!(
            "/etc/fstab line {}: {} for {} is not on the disk and has no nofail: boot stops in emergency mode (recipe fix-mounts)",
            note.line, note.spec, note.mount_point
        ));
    }
    let text = snapshot.render_text();
    emit(
        &session.sink,
        &Rendered::new(InspectReport { layout, snapshot }, text),
    )
}
