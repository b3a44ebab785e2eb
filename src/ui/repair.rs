//! The text and Run Command forms of a repair (or plan) report.

use std::fmt::Write as _;
use std::path::Path;

use vmrescue::recipe::repair::{RecipeOutcome, RecipeStatus, RepairReport};

use super::Style;
use crate::output::runcommand::Level;

/// The status as the JSON gives it (`applied`, `nothing-to-do`…).
fn status_name(status: RecipeStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn failed(status: RecipeStatus) -> bool {
    matches!(
        status,
        RecipeStatus::VerifyFailed | RecipeStatus::NotConfirmed
    )
}

/// Plans (with `plan_only`) and outcomes, one block per recipe, then where
/// the full log is.
pub(crate) fn text(
    report: &RepairReport,
    style: Style,
    log_path: Option<&Path>,
    plan_only: bool,
) -> String {
    let mut out = String::new();
    if report.recipes.is_empty() {
        out.push_str(
            "no recipe to apply: the diagnosis suggests none that is safe to run unattended\n",
        );
    }
    for outcome in &report.recipes {
        if plan_only {
            out.push_str(&outcome.plan.render());
        }
        let status = status_name(outcome.status);
        let status = if failed(outcome.status) {
            style.red(&status)
        } else {
            style.green(&status)
        };
        let _ = writeln!(out, "{}: {status}", style.bold(&outcome.recipe));
        outcome_text(&mut out, outcome, style, plan_only);
    }
    if let Some(log) = log_path {
        let _ = writeln!(out, "full log: {}", log.display());
    }
    out
}

/// What one recipe did: the audit when there was nothing to do, the files
/// and programs of an applied change, its checks and what to do after boot.
fn outcome_text(out: &mut String, outcome: &RecipeOutcome, style: Style, plan_only: bool) {
    if !plan_only && outcome.status == RecipeStatus::NothingToDo {
        for line in &outcome.plan.audit {
            out.push_str(&line.render());
        }
        if let Some(reason) = &outcome.plan.noop_reason {
            let _ = writeln!(out, "  {reason}");
        }
    }
    if let Some(applied) = &outcome.applied {
        for path in &applied.changed {
            let _ = writeln!(out, "  changed {}", path.display());
        }
        for command in &applied.commands {
            let _ = writeln!(out, "  ran {command}");
        }
        for found in &applied.names_put_back {
            let _ = writeln!(out, "  put back the original names in {found}");
        }
        let _ = writeln!(
            out,
            "  journal {}: undo with `vmrescue undo {}`",
            applied.run_id, applied.run_id
        );
    }
    for check in &outcome.verify {
        let mark = if check.ok {
            style.green("ok")
        } else {
            style.red("FAILED")
        };
        let _ = writeln!(out, "  verify {}: {mark} ({})", check.check, check.detail);
    }
    if outcome.applied.is_some() {
        for line in &outcome.plan.after {
            let _ = writeln!(out, "  after boot: {line}");
        }
    }
}

/// Run Command shows only the last 4 KiB of one collapsed line, so the
/// compact `summary:` lines come last, after the diagnosis and the checks.
pub(crate) fn runcommand(report: &RepairReport, log_path: Option<&Path>) -> Vec<(Level, String)> {
    let mut lines: Vec<(Level, String)> = report
        .findings
        .iter()
        .take(3)
        .map(|f| (Level::Info, format!("diagnosis: {} ({})", f.title, f.id)))
        .collect();
    let mut summary = Vec::new();
    for outcome in &report.recipes {
        for check in &outcome.verify {
            let level = if check.ok { Level::Info } else { Level::Error };
            let line = format!(
                "verify {} {}: {}",
                outcome.recipe, check.check, check.detail
            );
            lines.push((level, line));
        }
        summary.extend(summary_lines(outcome));
    }
    if report.recipes.is_empty() {
        summary.push((Level::Info, "nothing to repair: no recipe suggested".into()));
    }
    if let Some(log) = log_path {
        let line = format!("vmrescue log on the repair VM: {}", log.display());
        lines.push((Level::Info, line));
    }
    lines.extend(
        summary
            .into_iter()
            .map(|(level, line)| (level, format!("summary: {line}"))),
    );
    lines
}

fn summary_lines(outcome: &RecipeOutcome) -> Vec<(Level, String)> {
    let level = if failed(outcome.status) {
        Level::Error
    } else {
        Level::Info
    };
    let mut line = format!("{} {}", outcome.recipe, status_name(outcome.status));
    if let Some(applied) = &outcome.applied {
        let _ = write!(
            line,
            ", {} file(s) changed, journal {}, undo: vmrescue undo {} --yes",
            applied.changed.len(),
            applied.run_id,
            applied.run_id
        );
    }
    let mut lines = vec![(level, line)];
    if outcome.applied.is_some() {
        lines.extend(
            outcome
                .plan
                .after
                .iter()
                .map(|after| (Level::Info, format!("after boot: {after}"))),
        );
    }
    lines
}
