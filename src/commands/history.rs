//! `vmrescue history`: the repair runs journaled on the target.

use anyhow::Result;
use vmrescue::journal::RunSummary;
use vmrescue::ExitCode;

use super::{open_target, Session};
use crate::cli::TargetArgs;
use crate::output::{emit, Rendered};

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct History {
    /// Oldest first.
    pub(crate) runs: Vec<RunSummary>,
}

pub(crate) fn run(session: &Session, args: &TargetArgs) -> Result<ExitCode> {
    let target = open_target(args)?;
    let runs = vmrescue::journal::history(target.root());
    target.release()?;
    let runs = runs?;
    let mut text = String::new();
    if runs.is_empty() {
        text.push_str("no repair runs journaled on this target\n");
    }
    for run in &runs {
        let state = if run.undone {
            "undone".to_string()
        } else {
            run.outcome.clone().unwrap_or_else(|| "interrupted".into())
        };
        text += &format!(
            "{:<22} {:<22} {:<14} {} file(s)\n",
            run.run_id,
            run.recipe,
            state,
            run.files.len()
        );
    }
    emit(&session.sink, &Rendered::new(History { runs }, text))
}
