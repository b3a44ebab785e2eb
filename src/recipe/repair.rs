//! One repair run as the front ends drive it: choose recipes (or `auto`
//! from the diagnosis), plan, confirm, apply, verify, report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::engine::{self, Applied, ParamHints};
use super::facts::Facts;
use super::leaks::{self, RescueNames};
use super::plan::CheckResult;
use super::plan::{Plan, PlannedChange};
use super::{Catalog, Recipe};
use crate::attach::Target;
use crate::diagnose::{Diagnosis, Finding, Severity};
use crate::error::{ExitCode, Failure};
use crate::rootfs::RootDir;

pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct RepairRequest {
    /// A recipe id, or `auto` for the recipes the diagnosis suggests.
    pub recipe: String,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecipeStatus {
    Applied,
    NothingToDo,
    DryRun,
    NotConfirmed,
    VerifyFailed,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RecipeOutcome {
    pub recipe: String,
    pub params: BTreeMap<String, String>,
    pub status: RecipeStatus,
    pub plan: Plan,
    pub applied: Option<Applied>,
    pub verify: Vec<CheckResult>,
    /// The controller this recipe's boot proof must use (`nvme-ready`).
    pub boot_controller: Option<crate::verify_boot::initramfs::Controller>,
}

/// The final report (`--json`), versioned.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RepairReport {
    pub version: u32,
    pub target: PathBuf,
    pub disk: Option<String>,
    pub findings: Vec<Finding>,
    pub recipes: Vec<RecipeOutcome>,
    pub exit_code: u8,
}

impl RepairReport {
    pub fn exit_code(&self) -> ExitCode {
        if self
            .recipes
            .iter()
            .any(|r| r.status == RecipeStatus::VerifyFailed)
        {
            ExitCode::VerifyFailed
        } else if self
            .recipes
            .iter()
            .any(|r| r.status == RecipeStatus::NotConfirmed)
        {
            ExitCode::Refused
        } else {
            ExitCode::Success
        }
    }
}

/// Hints for parameter defaults taken from a diagnosis.
pub fn hints_from(diagnosis: Option<&Diagnosis>) -> ParamHints {
    let mut hints = ParamHints::default();
    if let Some(diagnosis) = diagnosis {
        hints.diagnosed_module = diagnosis
            .findings
            .iter()
            .find_map(|f| f.culprit_module.clone());
        hints.avoid_kernel = diagnosis
            .findings
            .iter()
            .flat_map(|f| &f.suggestions)
            .find(|s| s.recipe == "older-kernel")
            .and_then(|s| s.params.get("avoid_kernel").cloned());
    }
    hints
}

/// The recipes `repair auto` applies: those the diagnosis suggests that are
/// marked safe for unattended use, once each, in recipe order.
pub fn auto_recipes<'a>(
    catalog: &'a Catalog,
    diagnosis: &Diagnosis,
) -> Vec<(&'a Recipe, BTreeMap<String, String>)> {
    let mut chosen: Vec<(&Recipe, BTreeMap<String, String>)> = Vec::new();
    for finding in &diagnosis.findings {
        for suggestion in &finding.suggestions {
            let Ok(recipe) = catalog.get(&suggestion.recipe) else {
                continue;
            };
            if !recipe.spec.auto || chosen.iter().any(|(r, _)| r.spec.id == recipe.spec.id) {
                continue;
            }
            let params = suggestion
                .params
                .iter()
                .filter(|(k, _)| recipe.spec.params.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            chosen.push((recipe, params));
        }
    }
    chosen.sort_by_key(|(r, _)| r.spec.order);
    chosen
}

/// Why `repair auto` stops when no unattended recipe fits the problems
/// found: each error finding's own next step ("no recipe: …"), or its
/// suggested recipes that need an operator.
pub fn nothing_fits(diagnosis: &Diagnosis) -> Option<String> {
    let problems: Vec<String> = diagnosis
        .findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Critical | Severity::Error))
        .map(|f| {
            let manual: Vec<&str> = f.suggestions.iter().map(|s| s.recipe.as_str()).collect();
            let step = match (&f.next_step, manual.is_empty()) {
                (Some(step), _) => step.clone(),
                (None, false) => format!(
                    "no unattended recipe: choose one of {} (`vmrescue repair RECIPE`)",
                    manual.join(", ")
                ),
                (None, true) => "no recipe: see the explanation with `vmrescue diagnose`".into(),
            };
            format!("{}: {step}", f.id)
        })
        .collect();
    if problems.is_empty() {
        return None;
    }
    let mut seen = Vec::new();
    for problem in problems {
        if !seen.contains(&problem) {
            seen.push(problem);
        }
    }
    Some(format!(
        "no recipe safe to run unattended fits what was found; {}",
        seen.join("; ")
    ))
}

/// A recipe chosen to run, with the parameters it was given.
type Chosen<'a> = (&'a Recipe, BTreeMap<String, String>);

/// The suggested recipes that can be planned on this target; each one
/// that refuses (a BIOS disk for `bootloader`, a directory for
/// `lvm-devices`) does not fit, and its reason is returned instead.
fn drop_refused<'a>(
    chosen: Vec<Chosen<'a>>,
    root: &RootDir,
    facts: &Facts,
    hints: &ParamHints,
    target: &Target,
) -> Result<(Vec<Chosen<'a>>, Vec<String>)> {
    let mut fitting = Vec::new();
    let mut refusals = Vec::new();
    for (recipe, params) in chosen {
        let planned =
            engine::resolve_params(recipe, &params, root, facts, hints).and_then(|resolved| {
                engine::plan(recipe, &resolved, root, facts, Some(target.layout()))
            });
        match planned {
            Ok(_) => fitting.push((recipe, params)),
            Err(err) if matches!(err.downcast_ref::<Failure>(), Some(Failure::Refused(_))) => {
                tracing::warn!("repair auto leaves out {}: {err:#}", recipe.spec.id);
                refusals.push(format!("{} does not fit: {err:#}", recipe.spec.id));
            }
            Err(err) => return Err(err),
        }
    }
    Ok((fitting, refusals))
}

/// A recipe whose changes undo cannot restore runs only with
/// `--param confirm=true`, whoever asks (a person, `repair auto`, a fleet).
fn refuse_unconfirmed(
    recipe: &Recipe,
    params: &BTreeMap<String, String>,
    plan: &Plan,
) -> Result<()> {
    if !recipe.spec.irreversible || params.get("confirm").map(String::as_str) == Some("true") {
        return Ok(());
    }
    Err(Failure::Refused(format!(
        "{} makes {} changes that undo cannot restore (see `vmrescue plan {}`); run it with --param confirm=true",
        recipe.spec.id,
        plan.changes.len(),
        recipe.spec.id
    ))
    .into())
}

/// The recipes a request runs: the one it names, or for `auto` those the
/// diagnosis suggests that fit this target (exit 5 with each finding's
/// next step when none does).
fn select<'a>(
    catalog: &'a Catalog,
    request: &RepairRequest,
    diagnosis: Option<&Diagnosis>,
    root: &RootDir,
    facts: &Facts,
    hints: &ParamHints,
    target: &Target,
) -> Result<Vec<Chosen<'a>>> {
    if request.recipe != "auto" {
        return Ok(vec![(
            catalog.get(&request.recipe)?,
            request.params.clone(),
        )]);
    }
    let diagnosis =
        diagnosis.ok_or_else(|| Failure::Usage("repair auto needs a diagnosis".into()))?;
    let (mut chosen, refusals) =
        drop_refused(auto_recipes(catalog, diagnosis), root, facts, hints, target)?;
    if chosen.is_empty() {
        if let Some(refusal) = nothing_fits(diagnosis) {
            let refused: String = refusals.iter().map(|r| format!("; {r}")).collect();
            return Err(Failure::Refused(format!("{refusal}{refused}")).into());
        }
    }
    for (_, params) in &mut chosen {
        params.extend(request.params.clone());
    }
    Ok(chosen)
}

/// The recipe's own checks, then those every run gets: no rescue-VM name
/// left by a generator, and on LVM a devices file that lists the disk.
fn verify_outcome(
    outcome: &mut RecipeOutcome,
    recipe: &Recipe,
    params: &BTreeMap<String, String>,
    root: &RootDir,
    facts: &Facts,
    target: &Target,
) -> Result<()> {
    outcome.verify = engine::verify(recipe, params, root, Some(target.layout()))?;
    if let Some(applied) = &outcome.applied {
        let names = RescueNames::from_layout(Some(target.layout()));
        outcome
            .verify
            .push(leaks::check(root, &names, &applied.changed)?);
    }
    outcome
        .verify
        .extend(engine::lvm_devices_check(root, facts, target.layout())?);
    if outcome.verify.iter().any(|c| !c.ok) {
        outcome.status = RecipeStatus::VerifyFailed;
    }
    Ok(())
}

/// Where a repair run is, for a front end's progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// About to make change `step` (0-based) of `total`.
    Applying {
        recipe: &'a str,
        step: usize,
        total: usize,
        change: &'a PlannedChange,
    },
    /// Inspecting the target again to check the recipe's promises.
    Verifying { recipe: &'a str },
}

/// Plans, confirms (through `confirm`), applies and verifies each recipe.
pub fn run(
    target: &Target,
    catalog: &Catalog,
    request: &RepairRequest,
    diagnosis: Option<&Diagnosis>,
    run_id: &str,
    confirm: &mut dyn FnMut(&Plan) -> Result<bool>,
) -> Result<RepairReport> {
    run_with_progress(
        target,
        catalog,
        request,
        diagnosis,
        run_id,
        confirm,
        &mut |_| {},
    )
}

/// [`run`], reporting each step to `progress`.
pub fn run_with_progress(
    target: &Target,
    catalog: &Catalog,
    request: &RepairRequest,
    diagnosis: Option<&Diagnosis>,
    run_id: &str,
    confirm: &mut dyn FnMut(&Plan) -> Result<bool>,
    progress: &mut dyn FnMut(Progress),
) -> Result<RepairReport> {
    let root = target.rootdir()?;
    let facts = Facts::gather(&root)?;
    let hints = hints_from(diagnosis);
    let selected = select(catalog, request, diagnosis, &root, &facts, &hints, target)?;
    let mut outcomes = Vec::new();
    for (index, (recipe, given)) in selected.iter().enumerate() {
        let params = engine::resolve_params(recipe, given, &root, &facts, &hints)?;
        let plan = engine::plan(recipe, &params, &root, &facts, Some(target.layout()))?;
        let mut outcome = RecipeOutcome {
            recipe: recipe.spec.id.clone(),
            params: params.clone(),
            status: RecipeStatus::NothingToDo,
            plan: plan.clone(),
            applied: None,
            verify: Vec::new(),
            boot_controller: recipe.spec.boot_controller,
        };
        if request.dry_run {
            outcome.status = RecipeStatus::DryRun;
        } else if !plan.is_noop() {
            refuse_unconfirmed(recipe, &params, &plan)?;
            if !confirm(&plan)? {
                outcome.status = RecipeStatus::NotConfirmed;
                outcomes.push(outcome);
                break;
            }
            let recipe_run_id = if selected.len() > 1 {
                format!("{run_id}-{}", index + 1)
            } else {
                run_id.to_string()
            };
            let total = plan.changes.len();
            let recipe_id = recipe.spec.id.as_str();
            let applied =
                engine::apply_with_progress(&plan, target, &recipe_run_id, &mut |step, change| {
                    progress(Progress::Applying {
                        recipe: recipe_id,
                        step,
                        total,
                        change,
                    })
                });
            outcome.applied = Some(applied.map_err(|err| roll_back(target, &recipe_run_id, err))?);
            outcome.status = RecipeStatus::Applied;
        }
        if !request.dry_run {
            progress(Progress::Verifying {
                recipe: &recipe.spec.id,
            });
            verify_outcome(&mut outcome, recipe, &params, &root, &facts, target)?;
        }
        outcomes.push(outcome);
    }
    let mut report = RepairReport {
        version: REPORT_SCHEMA_VERSION,
        target: target.root().to_path_buf(),
        disk: target.layout().disk.clone(),
        findings: diagnosis.map(|d| d.findings.clone()).unwrap_or_default(),
        recipes: outcomes,
        exit_code: 0,
    };
    report.exit_code = report.exit_code().code();
    Ok(report)
}

/// A run that failed half-way (a generator that failed or was stopped by
/// its sandbox, a write error) is undone at once, so the target is left as
/// it was found; `vmrescue undo` stays the way out if that fails too.
fn roll_back(target: &crate::attach::Target, run_id: &str, err: anyhow::Error) -> anyhow::Error {
    match crate::journal::undo(target.root(), Some(run_id), target.disk()) {
        Ok(report) => err.context(format!(
            "run {run_id} failed and was undone ({} files restored, {} removed)",
            report.restored.len(),
            report.removed.len()
        )),
        Err(undo_err) => err.context(format!(
            "run {run_id} failed, and undoing it failed too ({undo_err:#}): run `vmrescue undo {run_id}`"
        )),
    }
}
