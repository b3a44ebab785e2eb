//! `vmrescue scan`: the block devices, and which one is the target.

use anyhow::Result;
use vmrescue::ExitCode;

use super::Session;
use crate::cli::ScanArgs;
use crate::output::{emit, Rendered};

/// `scan --json`: every disk, or with `--pick` the one target.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum ScanData<'a> {
    Scan(&'a vmrescue::disk::Scan),
    Picked(&'a vmrescue::disk::ScannedDisk),
}

pub(crate) fn run(session: &Session, args: &ScanArgs) -> Result<ExitCode> {
    let scan = vmrescue::disk::scan()?;
    if args.pick {
        let disk = scan.pick_target()?;
        return emit(
            &session.sink,
            &Rendered::new(ScanData::Picked(disk), format!("{}\n", disk.path)),
        );
    }
    let candidates = scan.candidates();
    let summary = match candidates.len() {
        0 => "no candidate OS disk attached".to_string(),
        1 => format!("target: {}", candidates[0].path),
        n => format!("{n} candidate disks: choose one with --disk"),
    };
    let text = format!("{}{}\n", scan.render_text(), session.style().bold(&summary));
    emit(&session.sink, &Rendered::new(ScanData::Scan(&scan), text))
}
