//! Dispatches a parsed command line to the library and turns the outcome
//! into an exit code. `main.rs` only calls [`main`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use crate::cli::{
    AzPayloadArgs, BootCheckArgs, ChrootArgs, Cli, Command, DiagnoseArgs, FsckArgs, GlobalArgs,
    OutputFormat, PlanArgs, RecipesArgs, RecipesCommand, RepairArgs, ScanArgs, TargetArgs,
    UndoArgs, VerifyArgs,
};
use crate::ui::{logging, Style};
use vmrescue::cmd::Cmd;
use vmrescue::error::{exit_code_for, ExitCode};
use vmrescue::target::{self, Target};

/// What every command gets: how to talk to the user and where the log is.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) run_id: String,
    pub(crate) style: Style,
    pub(crate) json: bool,
    pub(crate) output: OutputFormat,
    pub(crate) log_path: Option<PathBuf>,
    pub(crate) quiet: bool,
}

/// Parses the process arguments, runs the command, returns the exit code.
pub(crate) fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help/--version print and exit 0; usage errors exit 2, as one
            // JSON error object when --json is on the line.
            let code = err.exit_code().clamp(0, 255) as u8;
            if code != 0 && std::env::args().any(|a| a == "--json") {
                let report = serde_json::json!({
                    "version": 1,
                    "ok": false,
                    "exit_code": code,
                    "error": err.kind().to_string(),
                    "detail": err.render().to_string().trim_end(),
                });
                println!("{report}");
            } else {
                let _ = err.print();
            }
            return code;
        }
    };
    let output = if cli.global.json {
        OutputFormat::Json
    } else {
        cli.global.output
    };
    let started = std::time::Instant::now();
    let result = run(cli);
    let (tool, runs) = vmrescue::cmd::tool_time();
    tracing::info!(
        wall_ms = started.elapsed().as_millis() as u64,
        tool_ms = tool.as_millis() as u64,
        tool_runs = runs,
        "timing: {} ms in all, {} ms in {runs} external program(s)",
        started.elapsed().as_millis(),
        tool.as_millis()
    );
    match result {
        Ok(code) => code.code(),
        Err(err) => {
            let code = exit_code_for(&err);
            report_error(&err, code, output);
            code.code()
        }
    }
}

/// The run log of this process, for the last line of an error.
static RUN_LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn report_error(err: &anyhow::Error, code: ExitCode, output: OutputFormat) {
    tracing::debug!("error: {err:?}");
    eprintln!("vmrescue: error: {err:#}");
    if let Some(log) = RUN_LOG.get() {
        eprintln!("full log: {}", log.display());
    }
    if output == OutputFormat::Runcommand {
        let message = format!("vmrescue failed (exit {}): {err:#}", code.code());
        println!(
            "{}",
            crate::ui::runcommand::line(crate::ui::runcommand::Level::Error, &message)
        );
    }
    if output == OutputFormat::Json {
        let report = serde_json::json!({
            "version": 1,
            "ok": false,
            "exit_code": code.code(),
            "error": format!("{err:#}"),
        });
        println!("{report}");
    }
}

fn start_session(global: &GlobalArgs, with_log_file: bool) -> Result<Session> {
    let run_id = vmrescue::runlog::new_run_id();
    let verbosity = if global.quiet {
        -1
    } else {
        global.verbose.min(3) as i8
    };
    let (log_path, log_file) = if with_log_file {
        let (path, file) = vmrescue::runlog::open_log_file(global.log_file.as_deref(), &run_id)?;
        (Some(path), Some(file))
    } else {
        (None, None)
    };
    logging::init(verbosity, log_file);
    if let Some(path) = &log_path {
        let _ = RUN_LOG.set(path.clone());
    }
    tracing::debug!(run_id = %run_id, argv = ?std::env::args().collect::<Vec<_>>(), "vmrescue {}", env!("CARGO_PKG_VERSION"));
    let output = if global.json {
        OutputFormat::Json
    } else {
        global.output
    };
    Ok(Session {
        run_id,
        style: Style::resolve(global.color),
        json: output == OutputFormat::Json,
        output,
        log_path,
        quiet: global.quiet,
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    let command = match cli.command {
        Some(command) => command,
        None if crate::ui::wizard::interactive_terminal() => {
            Command::Wizard(crate::cli::WizardArgs::default())
        }
        None => {
            Cli::command().print_help().context("printing help")?;
            return Ok(ExitCode::Usage);
        }
    };
    match command {
        Command::Wizard(args) => {
            let session = start_session(&cli.global, true)?;
            wizard(&session, &args)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "vmrescue", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
        Command::AzPayload(args) => az_payload(&args),
        Command::AzFleet(args) => {
            let session = start_session(&cli.global, true)?;
            az_fleet(&session, &args)
        }
        Command::Report(args) => {
            let session = start_session(&cli.global, true)?;
            report(&session, &args)
        }
        Command::Man { dir: Some(dir) } => {
            for page in crate::ui::manpages::write_all(Cli::command(), &dir)? {
                println!("{}", page.display());
            }
            Ok(ExitCode::Success)
        }
        Command::Man { dir: None } => {
            let page = crate::ui::manpages::top_page(Cli::command())?;
            std::io::stdout()
                .lock()
                .write_all(&page)
                .context("writing man page")?;
            Ok(ExitCode::Success)
        }
        Command::Scan(args) => {
            let session = start_session(&cli.global, true)?;
            scan(&session, &args)
        }
        Command::Mount(args) => {
            let session = start_session(&cli.global, true)?;
            mount(&session, &args)
        }
        Command::Umount { key, disk, image } => {
            let session = start_session(&cli.global, true)?;
            let key = match (key, disk, image) {
                (Some(key), _, _) => Some(key),
                (None, Some(disk), _) => Some(target::key_for_source(&disk)?),
                (None, None, Some(image)) => Some(target::key_for_source(&image)?),
                (None, None, None) => None,
            };
            umount(&session, key.as_deref())
        }
        Command::Inspect(args) => {
            let session = start_session(&cli.global, true)?;
            inspect(&session, &args)
        }
        Command::Plan(args) => {
            let session = start_session(&cli.global, true)?;
            plan(&session, &args)
        }
        Command::Repair(args) => {
            let session = start_session(&cli.global, true)?;
            repair(&session, &args)
        }
        Command::Diagnose(args) => {
            let session = start_session(&cli.global, true)?;
            diagnose(&session, &args)
        }
        Command::Verify(args) => {
            let session = start_session(&cli.global, true)?;
            verify(&session, &args)
        }
        Command::Undo(args) => {
            let session = start_session(&cli.global, true)?;
            undo(&session, &args)
        }
        Command::History(args) => {
            let session = start_session(&cli.global, true)?;
            history(&session, &args)
        }
        Command::Recipes(args) => {
            let session = start_session(&cli.global, false)?;
            recipes(&session, &args)
        }
        Command::Fsck(args) => {
            let session = start_session(&cli.global, true)?;
            fsck(&session, &args)
        }
        Command::Chroot(args) => {
            let _session = start_session(&cli.global, true)?;
            chroot(&args)
        }
    }
}

/// The target the flags name, by the one target rule
/// ([`target::choose`]).
pub(crate) fn open_target(args: &TargetArgs) -> Result<Target> {
    target::open_chosen(&args.spec(), &args.mount_base)
}

fn wizard(session: &Session, args: &crate::cli::WizardArgs) -> Result<ExitCode> {
    crate::ui::wizard::require_terminal()?;
    let mut prompter = crate::ui::prompt::for_terminal(session.style.color);
    let mut wizard = crate::ui::wizard::Wizard {
        prompter: prompter.as_mut(),
        style: session.style,
        run_id: session.run_id.clone(),
        log_path: session.log_path.clone(),
        mount_base: args.target.mount_base.clone(),
        recipes_dir: args.recipes_dir.clone(),
    };
    wizard.run(args.target.spec())
}

fn mount(session: &Session, args: &TargetArgs) -> Result<ExitCode> {
    let target = open_target(args)?;
    let layout = target.keep()?;
    let mut out = std::io::stdout().lock();
    if session.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&layout)?)?;
        return Ok(ExitCode::Success);
    }
    for mount in &layout.mounts {
        eprintln!(
            "mounted {} ({}) on {}",
            mount.device,
            mount.fstype,
            mount.path.display()
        );
    }
    for note in &layout.unresolved {
        eprintln!(
            "{}: /etc/fstab line {}: {} for {} is not on the target disk{}",
            session.style.yellow("warning"),
            note.line,
            note.spec,
            note.mount_point,
            if note.nofail {
                " (nofail)"
            } else {
                " and has no nofail: the VM will stop at boot (see the fix-root-fs recipe)"
            }
        );
    }
    writeln!(out, "{}", layout.root.display())?;
    Ok(ExitCode::Success)
}

fn fsck(session: &Session, args: &FsckArgs) -> Result<ExitCode> {
    if !target::state::StateFile::list()?.is_empty() {
        return Err(vmrescue::Failure::Refused(
            "a target is mounted by vmrescue: run `vmrescue umount` before checking filesystems"
                .into(),
        )
        .into());
    }
    if args.repair && !args.yes && !crate::ui::confirm("Repair the target's filesystems now?")? {
        return Err(vmrescue::Failure::Refused("repair not confirmed".into()).into());
    }
    let assembly = target::assemble(&args.target.spec(), &args.target.mount_base)?;
    let results = target::fsck::check_all(&assembly.nodes(), args.repair);
    assembly.teardown()?;
    let results = results?;
    if session.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 1, "filesystems": results})
            )?
        );
    } else {
        for result in &results {
            println!(
                "{:<20} {:<6} {:?}  ({})",
                result.device, result.fstype, result.verdict, result.command
            );
            if let Some(advice) = &result.advice {
                println!("    {advice}");
            }
        }
    }
    let bad = results.iter().any(|r| {
        matches!(
            r.verdict,
            target::fsck::FsckVerdict::Errors | target::fsck::FsckVerdict::CheckFailed
        )
    });
    Ok(if bad {
        ExitCode::Error
    } else {
        ExitCode::Success
    })
}

fn inspect(session: &Session, args: &TargetArgs) -> Result<ExitCode> {
    let target = open_target(args)?;
    let snapshot = vmrescue::inspect::snapshot::snapshot(&target.rootdir()?);
    let layout = target.layout().clone();
    target.release()?;
    let mut snapshot = snapshot?;
    for note in layout.unresolved.iter().filter(|n| !n.nofail) {
        snapshot.problems.push(format!(
            "/etc/fstab line {}: {} for {} is not on the disk and has no nofail: boot stops in emergency mode (recipe fix-root-fs)",
            note.line, note.spec, note.mount_point
        ));
    }
    if session.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"layout": layout, "snapshot": snapshot})
            )?
        );
    } else {
        print!("{}", snapshot.render_text());
    }
    Ok(ExitCode::Success)
}

fn az_payload(args: &AzPayloadArgs) -> Result<ExitCode> {
    use crate::ui::runcommand::{self, PayloadBootCheck, PayloadSettings};
    let recipe = args
        .recipe
        .clone()
        .unwrap_or_else(|| args.recipe_arg.clone());
    if recipe != "auto" {
        vmrescue::recipe::Catalog::load(None)?.get(&recipe)?;
    }
    let mut params: Vec<(String, String)> = parse_params(&args.params)?.into_iter().collect();
    params.extend(args.kernel.clone().map(|k| ("kernel".to_string(), k)));
    params.extend(args.module.clone().map(|m| ("module".to_string(), m)));
    let mut console_logs = Vec::new();
    for path in &args.logs {
        let log = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        console_logs.push(match args.log_tail_kib {
            Some(kib) => runcommand::log_tail(&log, kib).to_vec(),
            None => log,
        });
    }
    let settings = PayloadSettings {
        recipe,
        params,
        dry_run: args.dry_run,
        boot_check: if args.verify_boot {
            PayloadBootCheck::Required
        } else if args.no_verify_boot {
            PayloadBootCheck::Off
        } else {
            PayloadBootCheck::Default
        },
        download: payload_download(&args.download)?,
        console_logs,
    };
    let payload = runcommand::render_payload(&settings)?;
    match &args.output_file {
        Some(path) => {
            std::fs::write(path, &payload)
                .with_context(|| format!("writing {}", path.display()))?;
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), payload.len());
        }
        None => print!("{payload}"),
    }
    Ok(ExitCode::Success)
}

/// `vmrescue az-fleet`: the engine is `vmrescue::fleet`, the flags, progress and
/// summary are `crate::ui::fleet`.
fn az_fleet(session: &Session, args: &crate::cli::AzFleetArgs) -> Result<ExitCode> {
    let params = parse_params(&args.params)?;
    crate::ui::fleet::run(session, args, &params)
}

/// How the payload gets vmrescue onto a fresh repair VM. A payload that
/// could only stop with "no usable vmrescue binary" is refused here.
pub(crate) fn payload_download(
    args: &crate::cli::DownloadArgs,
) -> Result<crate::ui::runcommand::Download> {
    use crate::ui::runcommand::Download;
    if args.no_download {
        return Ok(Download::None);
    }
    if let (Some(url), Some(sha256)) = (&args.binary_url, &args.binary_sha256) {
        return Ok(Download::Url {
            url: url.clone(),
            sha256: sha256.to_ascii_lowercase(),
        });
    }
    let sums_text = match &args.sha256sums {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let sums = vmrescue::release::known_sums(sums_text.as_deref())?;
    if sums.is_empty() {
        return Err(vmrescue::Failure::Usage(
            "this vmrescue is not a release build, so a payload would have nothing verified to download: pass --sha256sums SHA256SUMS (with --release-url URL when not the project's releases), --binary-url URL --binary-sha256 SUM, or --no-download when vmrescue is installed on the repair VM".into(),
        )
        .into());
    }
    Ok(Download::Release {
        url: args
            .release_url
            .clone()
            .unwrap_or_else(vmrescue::release::default_release_url)
            .trim_end_matches('/')
            .to_string(),
        sums,
    })
}

/// `vmrescue report`: a bundle even when the target cannot be mounted
/// (then with the scan, the logs and why the mount failed).
fn report(session: &Session, args: &crate::cli::ReportArgs) -> Result<ExitCode> {
    let out = args
        .output_file
        .clone()
        .unwrap_or_else(|| vmrescue::bundle::default_path(&session.run_id));
    let target = open_target(&args.target);
    if let Err(err) = &target {
        tracing::warn!("the bundle has no target reports: {err:#}");
    }
    let written = vmrescue::bundle::write_bundle(target.as_ref(), &args.logs, &out);
    if let Ok(target) = target {
        target.release()?;
    }
    let written = written?;
    match session.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "bundle": written}))?
        ),
        OutputFormat::Runcommand => {
            let line = crate::ui::runcommand::line(
                crate::ui::runcommand::Level::Info,
                &format!(
                    "support bundle on the repair VM: {}",
                    written.path.display()
                ),
            );
            println!("{line}");
        }
        OutputFormat::Text => println!("{}", written.summary()),
    }
    Ok(ExitCode::Success)
}

fn parse_params(raw: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    vmrescue::Failure::Usage(format!("--param {p}: expected NAME=VALUE")).into()
                })
        })
        .collect()
}

fn plan(session: &Session, args: &PlanArgs) -> Result<ExitCode> {
    let request = vmrescue::recipe::repair::RepairRequest {
        recipe: args.recipe.clone(),
        params: parse_params(&args.params)?,
        dry_run: true,
    };
    let catalog = vmrescue::recipe::Catalog::load(args.recipes_dir.as_deref())?;
    let target = open_target(&args.target)?;
    let diagnosis = vmrescue::diagnose::diagnose_target(&args.logs, &target)?;
    let report = vmrescue::recipe::repair::run(
        &target,
        &catalog,
        &request,
        Some(&diagnosis),
        &session.run_id,
        &mut |_| Ok(false),
    )?;
    target.release()?;
    crate::ui::print_repair_report(
        session.output,
        session.style,
        session.log_path.as_deref(),
        &report,
        true,
    )?;
    Ok(ExitCode::Success)
}

fn repair(session: &Session, args: &RepairArgs) -> Result<ExitCode> {
    let report = apply_repair(session, args)?;
    let repaired = report.exit_code();
    let check = boot_check_mode(args);
    let boot = post_repair_boot(session, args, &check, repaired);
    if session.output == OutputFormat::Json {
        let mut value = serde_json::to_value(&report)?;
        match &boot {
            Some(Ok(verified)) => value["verify_boot"] = serde_json::to_value(verified)?,
            Some(Err(err)) => {
                value["verify_boot"] = serde_json::json!({"error": format!("{err:#}")})
            }
            None => {
                if let BootCheck::Skipped(reason) = &check {
                    value["verify_boot"] = serde_json::json!({ "skipped": reason });
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        crate::ui::print_repair_report(
            session.output,
            session.style,
            session.log_path.as_deref(),
            &report,
            args.dry_run,
        )?;
    }
    if args.verify_boot && !args.dry_run && repaired != ExitCode::Success {
        eprintln!("vmrescue: not booting the disk: the repair did not succeed");
    }
    let booted = boot
        .as_ref()
        .is_some_and(|b| b.as_ref().is_ok_and(|v| v.exit_code() == ExitCode::Success));
    let code = match boot {
        None => repaired,
        Some(Err(err)) => return Err(err.context("verifying the boot after the repair")),
        Some(Ok(verified)) => {
            print_verify_report(session, &verified, false)?;
            verified.exit_code()
        }
    };
    if session.output == OutputFormat::Runcommand && code == ExitCode::Success {
        print_outcome_token(args.dry_run, &report, booted);
    }
    Ok(code)
}

/// Plans, confirms and applies (with step progress), then unmounts.
fn apply_repair(
    session: &Session,
    args: &RepairArgs,
) -> Result<vmrescue::recipe::repair::RepairReport> {
    let request = vmrescue::recipe::repair::RepairRequest {
        recipe: args.plan.recipe.clone(),
        params: parse_params(&args.plan.params)?,
        dry_run: args.dry_run,
    };
    let catalog = vmrescue::recipe::Catalog::load(args.plan.recipes_dir.as_deref())?;
    let target = open_target(&args.plan.target)?;
    let diagnosis = vmrescue::diagnose::diagnose_target(&args.plan.logs, &target)?;
    let yes = args.yes;
    let human = session.output == OutputFormat::Text;
    let quiet = session.quiet;
    let mut confirm = |plan: &vmrescue::recipe::plan::Plan| -> Result<bool> {
        // The plan is shown before any question; with --yes, -q hides it.
        if (human && !quiet) || !yes {
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
        crate::ui::progress::ProgressMode::for_stderr(human && !session.quiet),
    );
    let result = vmrescue::recipe::repair::run_with_progress(
        &target,
        &catalog,
        &request,
        Some(&diagnosis),
        &session.run_id,
        &mut confirm,
        &mut |event| steps.event(event),
    );
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
    repaired: ExitCode,
) -> Option<Result<vmrescue::verify_boot::VerifyReport>> {
    if args.dry_run || repaired != ExitCode::Success {
        return None;
    }
    let required = match check {
        BootCheck::Skipped(reason) => {
            skipped_boot_check(session, reason);
            return None;
        }
        BootCheck::Run { required } => *required,
    };
    // The target is unmounted now: boot what the repair left.
    let boot = vmrescue::verify_boot::verify_boot(
        &args.plan.target.spec(),
        &verify_options(session, &args.plan.target, &args.boot_check),
    );
    match boot {
        Err(err) if !required && vmrescue::error::exit_code_for(&err) == ExitCode::Unsupported => {
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

/// The token the az payload reads to tell a repaired disk from one left
/// unchanged (Run Command must not report success for the latter).
fn print_outcome_token(
    dry_run: bool,
    report: &vmrescue::recipe::repair::RepairReport,
    booted: bool,
) {
    let outcome = if dry_run {
        "dry-run"
    } else if report
        .recipes
        .iter()
        .any(|r| r.status == vmrescue::recipe::repair::RecipeStatus::Applied)
    {
        "repaired"
    } else if booted {
        "boots-as-is"
    } else {
        "unchanged"
    };
    let line = crate::ui::runcommand::line(
        crate::ui::runcommand::Level::Info,
        &format!("outcome={outcome}"),
    );
    println!("{line}");
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
    if args.verify_boot {
        return BootCheck::Run { required: true };
    }
    if args.no_verify_boot {
        return BootCheck::Skipped("--no-verify-boot".into());
    }
    if args.plan.target.root.is_some() {
        return BootCheck::Skipped("the target is a mounted directory (--root), not a disk".into());
    }
    if vmrescue::verify_boot::qemu::find_on_path(vmrescue::verify_boot::qemu::QEMU).is_none() {
        return BootCheck::Skipped(format!(
            "{} is not installed",
            vmrescue::verify_boot::qemu::QEMU
        ));
    }
    BootCheck::Run { required: false }
}

fn skipped_boot_check(session: &Session, reason: &str) {
    if session.output != OutputFormat::Json {
        eprintln!("vmrescue: the repair was not boot-tested: {reason}");
    }
}

fn verify_options(
    session: &Session,
    target: &TargetArgs,
    check: &BootCheckArgs,
) -> vmrescue::verify_boot::VerifyOptions {
    vmrescue::verify_boot::VerifyOptions {
        via: check.via,
        timeout: std::time::Duration::from_secs(check.boot_timeout),
        add_drivers: check.add_drivers,
        controller: check.controller,
        accel: check.accel,
        run_id: session.run_id.clone(),
        mount_base: target.mount_base.clone(),
    }
}

fn verify(session: &Session, args: &VerifyArgs) -> Result<ExitCode> {
    let report = vmrescue::verify_boot::verify_boot(
        &args.target.spec(),
        &verify_options(session, &args.target, &args.boot_check),
    )?;
    print_verify_report(session, &report, true)?;
    Ok(report.exit_code())
}

/// `standalone`: the JSON object is the whole output (else it was embedded in the repair's).
fn print_verify_report(
    session: &Session,
    report: &vmrescue::verify_boot::VerifyReport,
    standalone: bool,
) -> Result<()> {
    use crate::ui::runcommand::{line, Level};
    match session.output {
        OutputFormat::Json => {
            if standalone {
                println!("{}", serde_json::to_string_pretty(report)?);
            }
        }
        OutputFormat::Text => print!(
            "{}",
            crate::ui::verify::render_verify(report, session.style)
        ),
        OutputFormat::Runcommand => {
            if !report.ok {
                if let Some(failure) = &report.failure {
                    println!(
                        "{}",
                        line(
                            Level::Error,
                            &format!(
                                "boot failure: {}: {}",
                                failure.kind.label(),
                                failure.mark.text
                            )
                        )
                    );
                }
                if let Some(finding) = &report.finding {
                    let next = report
                        .suggested_recipe
                        .as_deref()
                        .map(|r| format!(", next recipe: {r}"))
                        .unwrap_or_default();
                    println!(
                        "{}",
                        line(
                            Level::Info,
                            &format!("boot diagnosis: {} ({}){next}", finding.title, finding.id)
                        )
                    );
                }
            }
            let level = if report.ok { Level::Info } else { Level::Error };
            println!("{}", line(level, &report.verdict()));
        }
    }
    Ok(())
}

fn diagnose(session: &Session, args: &DiagnoseArgs) -> Result<ExitCode> {
    let mut classifier = vmrescue::diagnose::Classifier::new()?;
    for log in &args.logs {
        let (reader, source) = vmrescue::diagnose::log_input::open(log)?;
        classifier.add_reader(reader, &source)?;
    }
    let wants_target = args.target_logs
        || args.logs.is_empty()
        || args.target.disk.is_some()
        || args.target.image.is_some()
        || args.target.root.is_some();
    let target = if wants_target {
        Some(open_target(&args.target)?)
    } else {
        None
    };
    if let Some(target) = &target {
        let root = target.rootdir()?;
        vmrescue::diagnose::target_logs::add_target_logs(&mut classifier, &root)?;
    }
    let mut diagnosis = classifier.finish()?;
    if let Some(target) = &target {
        let root = target.rootdir()?;
        let snapshot = vmrescue::inspect::snapshot::snapshot(&root)?;
        diagnosis.extend(vmrescue::diagnose::offline::offline_findings(
            &root,
            &snapshot,
            Some(target.layout()),
        )?);
    }
    if let Some(target) = target {
        target.release()?;
    }
    if session.json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print!("{}", crate::ui::render_diagnosis(&diagnosis, session.style));
    }
    Ok(ExitCode::Success)
}

fn undo(session: &Session, args: &UndoArgs) -> Result<ExitCode> {
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
        return Err(vmrescue::Failure::Refused(format!(
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
            return Err(vmrescue::Failure::Refused(
                "undo not confirmed (use --yes when unattended)".into(),
            )
            .into());
        }
        target.make_writable()?;
    }
    let report = vmrescue::journal::undo(target.root(), Some(&run.run_id))?;
    target.release()?;
    if session.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "undo": report}))?
        );
    } else if report.already_undone {
        println!("run {} was already undone: nothing changed", report.run_id);
    } else {
        println!(
            "undid run {}: restored {} file(s), removed {} created file(s)",
            report.run_id,
            report.restored.len(),
            report.removed.len()
        );
        for path in report.restored.iter().chain(&report.removed) {
            println!("  {}", path.display());
        }
    }
    Ok(ExitCode::Success)
}

fn history(session: &Session, args: &TargetArgs) -> Result<ExitCode> {
    let target = open_target(args)?;
    let runs = vmrescue::journal::history(target.root())?;
    target.release()?;
    if session.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "runs": runs}))?
        );
    } else if runs.is_empty() {
        println!("no repair runs journaled on this target");
    } else {
        for run in &runs {
            let state = if run.undone {
                "undone".to_string()
            } else {
                run.outcome.clone().unwrap_or_else(|| "interrupted".into())
            };
            println!(
                "{:<22} {:<22} {:<14} {} file(s)",
                run.run_id,
                run.recipe,
                state,
                run.files.len()
            );
        }
    }
    Ok(ExitCode::Success)
}

fn recipes(session: &Session, args: &RecipesArgs) -> Result<ExitCode> {
    let catalog = vmrescue::recipe::Catalog::load(args.recipes_dir.as_deref())?;
    match &args.show {
        None => {
            if session.json {
                let specs: Vec<_> = catalog.recipes.iter().map(|r| &r.spec).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"version": 1, "recipes": specs})
                    )?
                );
            } else {
                for recipe in &catalog.recipes {
                    let auto = if recipe.spec.auto { " (auto)" } else { "" };
                    println!("{:<24} {}{auto}", recipe.spec.id, recipe.spec.title);
                }
            }
        }
        Some(RecipesCommand::Show { id, target }) => {
            let recipe = catalog.get(id)?;
            let wants_target =
                target.disk.is_some() || target.image.is_some() || target.root.is_some();
            let audit = if wants_target {
                let target = open_target(target)?;
                let audit = current_audit(recipe, &target);
                target.release()?;
                Some(audit?)
            } else {
                None
            };
            if session.json {
                let mut value = serde_json::to_value(&recipe.spec)?;
                if let (Some(audit), Some(object)) = (&audit, value.as_object_mut()) {
                    object.insert("current".into(), serde_json::to_value(audit)?);
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", crate::ui::render_recipe(recipe, session.style));
                if let Some(audit) = audit {
                    println!("on this target:");
                    for line in &audit {
                        print!("{}", line.render());
                    }
                }
            }
        }
    }
    Ok(ExitCode::Success)
}

/// The settings a recipe audits, as the target has them now (a plan with
/// no parameters given, which changes nothing).
fn current_audit(
    recipe: &vmrescue::recipe::Recipe,
    target: &Target,
) -> Result<Vec<vmrescue::recipe::plan::SysctlAudit>> {
    let root = target.rootdir()?;
    let facts = vmrescue::recipe::facts::Facts::gather(&root)?;
    let params = vmrescue::recipe::engine::resolve_params(
        recipe,
        &Default::default(),
        &root,
        &facts,
        &Default::default(),
    )?;
    let plan =
        vmrescue::recipe::engine::plan(recipe, &params, &root, &facts, Some(target.layout()))?;
    Ok(plan.audit)
}

fn umount(session: &Session, key: Option<&str>) -> Result<ExitCode> {
    let cleaned = target::umount(key)?;
    if session.json {
        println!(
            "{}",
            serde_json::json!({"version": 1, "unmounted": cleaned})
        );
    } else if cleaned.is_empty() {
        eprintln!("nothing mounted by vmrescue");
    } else {
        for key in cleaned {
            eprintln!("unmounted {key}");
        }
    }
    Ok(ExitCode::Success)
}

fn chroot(args: &ChrootArgs) -> Result<ExitCode> {
    let target = open_target(&args.target)?;
    if args.rw {
        target.make_writable()?;
    }
    let (program, rest) = match args.command.split_first() {
        Some((program, rest)) => (program.clone(), rest.to_vec()),
        None => ("/bin/sh".to_string(), Vec::new()),
    };
    let cmd = Cmd::new(&program)
        .args(&rest)
        .env("PS1", "(vmrescue chroot) # ")
        .in_chroot(target.chroot_spec()?);
    let status = {
        let _interactive = vmrescue::signals::InteractiveGuard::new();
        cmd.run_interactive()?
    };
    target.release()?;
    let code = status.code().unwrap_or(1).clamp(0, 255) as u8;
    Ok(ExitCode::from_raw(code))
}

fn scan(session: &Session, args: &ScanArgs) -> Result<ExitCode> {
    let scan = vmrescue::disk::scan()?;
    let mut out = std::io::stdout().lock();
    if args.pick {
        let disk = scan.pick_target()?;
        if session.json {
            writeln!(out, "{}", serde_json::to_string_pretty(disk)?)?;
        } else {
            writeln!(out, "{}", disk.path)?;
        }
        return Ok(ExitCode::Success);
    }
    if session.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&scan)?)?;
    } else {
        write!(out, "{}", scan.render_text())?;
        let candidates = scan.candidates();
        let summary = match candidates.len() {
            0 => "no candidate OS disk attached".to_string(),
            1 => format!("target: {}", candidates[0].path),
            n => format!("{n} candidate disks: choose one with --disk"),
        };
        writeln!(out, "{}", session.style.bold(&summary))?;
    }
    Ok(ExitCode::Success)
}
