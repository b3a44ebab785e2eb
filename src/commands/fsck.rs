//! `vmrescue fsck`: check (or repair) the target's filesystems while
//! nothing of it is mounted.

use anyhow::Result;
use vmrescue::attach::fsck::{FsckResult, FsckVerdict};
use vmrescue::attach::{self, state::StateFile};
use vmrescue::{ExitCode, Failure};

use super::Session;
use crate::cli::FsckArgs;
use crate::output::{emit, Rendered};

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct FsckReport {
    pub(crate) filesystems: Vec<FsckResult>,
}

pub(crate) fn run(session: &Session, args: &FsckArgs) -> Result<ExitCode> {
    if !StateFile::list()?.is_empty() {
        return Err(Failure::Refused(
            "a target is mounted by vmrescue: run `vmrescue umount` before checking filesystems"
                .into(),
        )
        .into());
    }
    if args.repair && !args.yes && !crate::ui::confirm("Repair the target's filesystems now?")? {
        return Err(Failure::Refused("repair not confirmed".into()).into());
    }
    let assembly = attach::assemble(&args.target.spec(), &args.target.mount_base)?;
    let results = attach::fsck::check_all(&assembly.nodes(), args.repair);
    assembly.teardown()?;
    let filesystems = results?;
    let mut text = String::new();
    for result in &filesystems {
        text += &format!(
            "{:<20} {:<6} {:?}  ({})\n",
            result.device, result.fstype, result.verdict, result.command
        );
        if let Some(advice) = &result.advice {
            text += &format!("    {advice}\n");
        }
    }
    let bad = filesystems
        .iter()
        .any(|r| matches!(r.verdict, FsckVerdict::Errors | FsckVerdict::CheckFailed));
    let mut report = Rendered::new(FsckReport { filesystems }, text);
    if bad {
        report.code = ExitCode::Error;
    }
    emit(&session.sink, &report)
}
