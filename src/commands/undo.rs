//! `vmrescue undo`: restore what a repair run changed, from the target's
//! journal.

use anyhow::Result;
use vmrescue::journal::UndoReport;
use vmrescue::{ExitCode, Failure};

use super::{open_target, Session};
use crate::cli::UndoArgs;
use crate::output::{emit, Rendered};

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Undone {
    pub(crate) undo: UndoReport,
}

pub(crate) fn run(session: &Session, args: &UndoArgs) -> Result<ExitCode> {
    let target = open_target(&args.target)?;
    let runs = vmrescue::journal::history(target.root())?;
    let run = match &args.run_id {
        Some(id) => runs.iter().find(|r| &r.run_id == id),
        None => runs.iter().rev().find(|r| !r.undone),
    };
    let Some(run) = run else {
        let what = args
            .run_id
            .as_deref()
            .map(|id| format!("no run {id}"))
            .unwrap_or_else(|| "no run to undo".into());
        return Err(Failure::Refused(format!(
            "{what} in the target's journal (see `vmrescue history`)"
        ))
        .into());
    };
    if !run.undone {
        let question = format!(
            "Undo run {} ({}: {} file(s))?",
            run.run_id,
            run.recipe,
            run.files.len()
        );
        if !args.yes && !crate::ui::confirm(&question)? {
            return Err(
                Failure::Refused("undo not confirmed (use --yes when unattended)".into()).into(),
            );
        }
        target.make_writable()?;
    }
    let undo = vmrescue::journal::undo(target.root(), Some(&run.run_id), target.disk())?;
    target.release()?;
    let text = if undo.already_undone {
        format!("run {} was already undone: nothing changed\n", undo.run_id)
    } else {
        let mut text = format!(
            "undid run {}: restored {} file(s), removed {} created file(s)\n",
            undo.run_id,
            undo.restored.len(),
            undo.removed.len()
        );
        for path in undo.restored.iter().chain(&undo.removed) {
            text += &format!("  {}\n", path.display());
        }
        text
    };
    emit(&session.sink, &Rendered::new(Undone { undo }, text))
}
