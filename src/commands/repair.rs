//! `vmrescue plan` and `vmrescue repair`: show what a recipe would change;
//! apply it (journaled), then prove it by booting the disk.

use std::path::PathBuf;

use anyhow::Result;
use vmrescue::error::exit_code_for;
use vmrescue::recipe::repair::{RecipeStatus, RepairReport, RepairRequest};
use vmrescue::recipe::Catalog;
use vmrescue::verify_boot::{self, VerifyReport};
use vmrescue::ExitCode;

use super::{open_target, parse_params, Session};
use crate::cli::{PlanArgs, RepairArgs};
use crate::output::runcommand::Level;
use crate::output::{emit, Report};
use crate::ui::Style;

/// What `repair --json` gives: the repair report and, beside it, the boot
/// check's report, error or reason for not running.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct RepairData {
    #[serde(flatten)]
    pub(crate) report: RepairReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verify_boot: Option<BootProof>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum BootProof {
    Booted(Box<VerifyReport>),
    Failed { error: String },
    Skipped { skipped: String },
}

struct RepairOutput {
    data: RepairData,
    log_path: Option<PathBuf>,
    plan_only: bool,
    code: ExitCode,
    /// The Run Command outcome token, when the run succeeded.
    outcome: Option<&'static str>,
}

impl Report for RepairOutput {
    type Data = RepairData;

    fn data(&self) -> &RepairData {
        &self.data
    }

    fn text(&self, style: Style) -> String {
        let report = &self.data.report;
        let mut text =
            crate::ui::repair::text(report, style, self.log_path.as_deref(), self.plan_only);
        if let Some(BootProof::Booted(verified)) = &self.data.verify_boot {
            text.push_str(&crate::ui::verify::render_verify(verified, style));
        }
        text
    }

    fn runcommand(&self) -> Vec<(Level, String)> {
        let mut lines = crate::ui::repair::runcommand(&self.data.report, self.log_path.as_deref());
        if let Some(BootProof::Booted(verified)) = &self.data.verify_boot {
            lines.extend(crate::ui::verify::runcommand(verified));
        }
        // The payload reads this token to tell a repaired disk from one left
        // unchanged (Run Command must not report success for the latter).
        lines.extend(self.outcome.map(|o| (Level::Info, format!("outcome={o}"))));
        lines
    }

    fn exit_code(&self) -> ExitCode {
        self.code
    }
}

pub(crate) fn plan(session: &Session, args: &PlanArgs) -> Result<ExitCode> {
    let request = RepairRequest {
        recipe: args.recipe.clone(),
        params: parse_params(&args.params)?,
        dry_run: true,
    };
    let catalog = Catalog::load(args.recipes_dir.as_deref())?;
    let target = open_target(&args.target)?;
    let report = (|| {
        let diagnosis = vmrescue::diagnose::diagnose_target(&args.logs, &target)?;
        vmrescue::recipe::repair::run(
            &target,
            &catalog,
            &request,
            Some(&diagnosis),
            &session.run_id,
            &mut |_| Ok(false),
        )
    })();
    target.release()?;
    let output = RepairOutput {
        data: RepairData {
            report: report?,
            verify_boot: None,
        },
        log_path: session.log_path.clone(),
        plan_only: true,
        code: ExitCode::Success,
        outcome: None,
    };
    emit(&session.sink, &output)
}

pub(crate) fn run(session: &Session, args: &RepairArgs) -> Result<ExitCode> {
    let report = apply(session, args)?;
    let repaired = report.exit_code();
    if args.verify_boot && !args.dry_run && repaired != ExitCode::Success && !session.quiet {
        eprintln!("vmrescue: not booting the disk: the repair did not succeed");
    }
    let check = boot_check_mode(args);
    let boot = post_repair_boot(session, args, &check, &report);
    let (verify_boot, code, boot_error) = match boot {
        None => {
            let skipped = match check {
                BootCheck::Skipped(reason) if !args.dry_run && repaired == ExitCode::Success => {
                    Some(BootProof::Skipped { skipped: reason })
                }
                _ => None,
            };
            (skipped, repaired, None)
        }
        Some(Ok(verified)) => {
            let code = verified.exit_code();
            (Some(BootProof::Booted(Box::new(verified))), code, None)
        }
        Some(Err(err)) => {
            let error = format!("{err:#}");
            (
                Some(BootProof::Failed { error }),
                exit_code_for(&err),
                Some(err),
            )
        }
    };
    let booted = matches!(&verify_boot, Some(BootProof::Booted(v)) if v.ok);
    let outcome = (code == ExitCode::Success).then(|| outcome_token(args.dry_run, &report, booted));
    let output = RepairOutput {
        data: RepairData {
            report,
            verify_boot,
        },
        log_path: session.log_path.clone(),
        plan_only: args.dry_run,
        code,
        outcome,
    };
    emit(&session.sink, &output)?;
    match boot_error {
        // The envelope already carries the error: one JSON document only.
        Some(err) if session.json() => {
            eprintln!("vmrescue: error: verifying the boot after the repair: {err:#}");
            Ok(code)
        }
        Some(err) => Err(err.context("verifying the boot after the repair")),
        None => Ok(code),
    }
}

/// Plans, confirms and applies (with step progress), then unmounts.
fn apply(session: &Session, args: &RepairArgs) -> Result<RepairReport> {
    let request = RepairRequest {
        recipe: args.plan.recipe.clone(),
        params: parse_params(&args.plan.params)?,
        dry_run: args.dry_run,
    };
    let catalog = Catalog::load(args.plan.recipes_dir.as_deref())?;
    let target = open_target(&args.plan.target)?;
    let yes = args.yes;
    let chatty = session.chatty();
    let mut confirm = |plan: &vmrescue::recipe::plan::Plan| -> Result<bool> {
        // The plan is shown before any question; with --yes, -q hides it.
        if chatty || !yes {
            eprint!("{}", plan.render());
        }
        if yes {
            return Ok(true);
        }
        crate::ui::confirm(&format!(
            "Apply {} to {}?",
            plan.recipe,
            target.root().display()
        ))
    };
    let mut steps = crate::ui::progress::StepProgress::new(
        crate::ui::progress::ProgressMode::for_stderr(chatty),
    );
    let result = vmrescue::diagnose::diagnose_target(&args.plan.logs, &target).and_then(|d| {
        vmrescue::recipe::repair::run_with_progress(
            &target,
            &catalog,
            &request,
            Some(&d),
            &session.run_id,
            &mut confirm,
            &mut |event| steps.event(event),
        )
    });
    let release = target.release();
    let report = result?;
    release?;
    Ok(report)
}

/// The boot check after a successful repair, when it runs. The default
/// check only adds proof: a disk that cannot be booted here keeps the
/// repair's own result, with one line saying so.
fn post_repair_boot(
    session: &Session,
    args: &RepairArgs,
    check: &BootCheck,
    report: &RepairReport,
) -> Option<Result<VerifyReport>> {
    if args.dry_run || report.exit_code() != ExitCode::Success {
        return None;
    }
    let required = match check {
        BootCheck::Skipped(reason) => {
            skipped_boot_check(session, reason);
            return None;
        }
        BootCheck::Run { required } => *required,
    };
    // The target is unmounted now: boot what the repair left, on the
    // controller a recipe asks for (nvme-ready) unless one was named.
    let mut options = super::verify::options(session, &args.plan.target, &args.boot_check);
    options.controller = options
        .controller
        .or_else(|| report.recipes.iter().find_map(|r| r.boot_controller));
    let boot = verify_boot::verify_boot(&args.plan.target.spec(), &options);
    match boot {
        Err(err) if !required && exit_code_for(&err) == ExitCode::Unsupported => {
            skipped_boot_check(session, &format!("{err:#}"));
            None
        }
        Ok(verified) if !required && verified.exit_code() == ExitCode::Unsupported => {
            skipped_boot_check(session, "the disk cannot be booted in QEMU here");
            None
        }
        boot => Some(boot),
    }
}

/// `repaired`, `boots-as-is`, `unchanged` or `dry-run`.
fn outcome_token(dry_run: bool, report: &RepairReport, booted: bool) -> &'static str {
    if dry_run {
        "dry-run"
    } else if report
        .recipes
        .iter()
        .any(|r| r.status == RecipeStatus::Applied)
    {
        "repaired"
    } else if booted {
        "boots-as-is"
    } else {
        "unchanged"
    }
}

/// Whether `repair` boots the disk afterwards.
enum BootCheck {
    /// `required`: asked for with --verify-boot, so its failures count.
    Run {
        required: bool,
    },
    Skipped(String),
}

/// A boot is the only proof that catches what file checks miss, so it runs
/// by default wherever it can: a disk or image (not a mounted directory)
/// and QEMU installed.
fn boot_check_mode(args: &RepairArgs) -> BootCheck {
    use vmrescue::verify_boot::qemu::{find_on_path, QEMU};
    if args.verify_boot {
        return BootCheck::Run { required: true };
    }
    if args.no_verify_boot {
        return BootCheck::Skipped("--no-verify-boot".into());
    }
    if args.plan.target.root.is_some() {
        return BootCheck::Skipped("the target is a mounted directory (--root), not a disk".into());
    }
    if find_on_path(QEMU).is_none() {
        return BootCheck::Skipped(format!("{QEMU} is not installed"));
    }
    BootCheck::Run { required: false }
}

fn skipped_boot_check(session: &Session, reason: &str) {
    if !session.json() && !session.quiet {
        eprintln!("vmrescue: the repair was not boot-tested: {reason}");
    }
}
