//! The interactive wizard (`sudo vmrescue` on a terminal): find the disk →
//! mount → diagnose → choose a recipe → parameters → plan → confirm → apply
//! → verify → summary, then another recipe, a shell, undo, or unmount.
//! It drives the same engine as `vmrescue repair`; Ctrl-C at any prompt
//! unwinds through the target's guard, which unmounts (exit 130).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::ProgressBar;

use crate::ui::progress::{ProgressMode, StepProgress};

use super::prompt::Prompter;
use super::Style;
use vmrescue::attach::{self, Target, TargetSpec};
use vmrescue::diagnose::Diagnosis;
use vmrescue::disk::{human_size, ScannedDisk};
use vmrescue::error::{ExitCode, Failure};
use vmrescue::recipe::facts::Facts;
use vmrescue::recipe::repair::{Progress, RecipeStatus, RepairRequest};
use vmrescue::recipe::spec::ParamDefault;
use vmrescue::recipe::{engine, repair, Catalog, Recipe};

pub(crate) struct Wizard<'a> {
    pub(crate) prompter: &'a mut dyn Prompter,
    pub(crate) style: Style,
    pub(crate) run_id: String,
    pub(crate) log_path: Option<PathBuf>,
    pub(crate) mount_base: PathBuf,
    pub(crate) recipes_dir: Option<PathBuf>,
}

/// What the operator can do once the target is mounted and diagnosed.
enum MenuChoice<'c> {
    Recipe(&'c Recipe),
    ReadLog,
    Shell,
    Undo,
    Bundle,
    Quit,
}

impl Wizard<'_> {
    /// Runs the whole session; `spec` is the target named on the command
    /// line (`TargetSpec::Auto`: ask).
    pub(crate) fn run(&mut self, spec: TargetSpec) -> Result<ExitCode> {
        eprintln!(
            "{} — rescue wizard. Nothing is written before you confirm a plan; Ctrl-C at any prompt unmounts and exits.",
            self.style.bold(&format!("vmrescue {}", env!("CARGO_PKG_VERSION")))
        );
        let catalog = Catalog::load(self.recipes_dir.as_deref())?;
        let Some(target) = self.open_target(spec)? else {
            return Ok(ExitCode::Success);
        };
        let mut logs: Vec<PathBuf> = Vec::new();
        self.ask_for_log(&mut logs)?;
        let mut diagnosis = self.diagnose(&target, &logs, true, &[])?;
        let mut outcome = ExitCode::Success;
        let mut repaired = false;
        // Recipes applied in this session, with their run: console-log
        // findings they answer are shown as addressed, not suggested again.
        let mut addressed: Vec<(String, String)> = Vec::new();
        loop {
            match self.menu(&catalog, &diagnosis)? {
                MenuChoice::Recipe(recipe) => {
                    if let Some(code) = self.repair(&target, &catalog, recipe, &diagnosis)? {
                        repaired = true;
                        outcome = code;
                        if code == ExitCode::Success {
                            addressed.push((recipe.spec.id.clone(), self.run_id.clone()));
                        }
                        // The offline checks see the repaired files now.
                        diagnosis = self.diagnose(&target, &logs, false, &addressed)?;
                    }
                }
                MenuChoice::ReadLog => {
                    self.ask_for_log(&mut logs)?;
                    diagnosis = self.diagnose(&target, &logs, true, &addressed)?;
                }
                MenuChoice::Shell => self.shell(&target)?,
                MenuChoice::Undo => {
                    if self.undo(&target)? {
                        outcome = ExitCode::Success;
                    }
                }
                MenuChoice::Bundle => self.write_bundle(&target, &logs)?,
                MenuChoice::Quit => break,
            }
        }
        let name = target.layout().key.clone();
        let boot_target = bootable_target(target.layout());
        target.release()?;
        eprintln!("unmounted {name}: everything vmrescue mounted is released");
        if let (true, Some(boot_target)) = (repaired, boot_target) {
            if let Some(code) = self.offer_boot_test(boot_target)? {
                outcome = code;
            }
        }
        Ok(outcome)
    }

    /// Writes the support bundle beside the run logs and says where it is.
    fn write_bundle(&mut self, target: &Target, logs: &[PathBuf]) -> Result<()> {
        let out = vmrescue::bundle::default_path(&self.run_id);
        let spinner = self.spinner("writing the support bundle…");
        let report = vmrescue::bundle::write_bundle(Ok(target), logs, &out);
        spinner.finish_and_clear();
        match report {
            Ok(report) => eprintln!("{}", report.summary()),
            Err(err) => eprintln!("{}: {err:#}", self.style.yellow("no support bundle")),
        }
        Ok(())
    }

    /// After a repair: boot the disk copy-on-write in QEMU if the operator wants.
    fn offer_boot_test(&mut self, target: crate::cli::TargetArgs) -> Result<Option<ExitCode>> {
        use vmrescue::verify_boot::qemu::{find_on_path, QEMU};
        if find_on_path(QEMU).is_none() {
            eprintln!("the repair was not boot-tested: {QEMU} is not installed");
            return Ok(None);
        }
        if !self.prompter.confirm(
            "Boot-test the disk now in a throwaway QEMU VM (copy-on-write, about 40 s without KVM)?",
            true,
        )? {
            return Ok(None);
        }
        let options = vmrescue::verify_boot::VerifyOptions {
            via: vmrescue::verify_boot::Via::Auto,
            timeout: Duration::from_secs(180),
            add_drivers: false,
            controller: None,
            accel: crate::cli::accel_from_env(),
            secure_boot: vmrescue::verify_boot::secure_boot::SecureBootChoice::Auto,
            run_id: self.run_id.clone(),
            mount_base: self.mount_base.clone(),
        };
        let spinner = self.spinner("booting the disk in QEMU…");
        let report = vmrescue::verify_boot::verify_boot(&target.spec(), &options);
        spinner.finish_and_clear();
        match report {
            Ok(report) => {
                eprint!("{}", super::verify::render_verify(&report, self.style));
                Ok(Some(report.exit_code()))
            }
            Err(err) if vmrescue::error::exit_code_for(&err) == ExitCode::Interrupted => Err(err),
            Err(err) => {
                eprintln!("{}: {err:#}", self.style.yellow("boot test not run"));
                Ok(None)
            }
        }
    }

    fn open_target(&mut self, spec: TargetSpec) -> Result<Option<Target>> {
        let spec = match spec {
            TargetSpec::Auto => match attach::kept()? {
                Some(mounted) => {
                    eprintln!(
                        "using the target `vmrescue mount` left mounted at {}",
                        mounted.root().display()
                    );
                    return Ok(Some(mounted));
                }
                None => match self.choose_disk()? {
                    Some(spec) => spec,
                    None => return Ok(None),
                },
            },
            named => named,
        };
        let what = match &spec {
            TargetSpec::Disk(d) => d.display().to_string(),
            TargetSpec::Image(i) => i.display().to_string(),
            TargetSpec::Root(r) => r.display().to_string(),
            TargetSpec::Auto => "the candidate disk".into(),
        };
        let spinner = self.spinner(&format!("mounting {what} read-only…"));
        let opened = attach::open(&spec, &self.mount_base);
        spinner.finish_and_clear();
        let target = opened?;
        for mount in &target.layout().mounts {
            eprintln!(
                "  mounted {} ({}) on {} read-only",
                mount.device,
                mount.fstype,
                mount.path.display()
            );
        }
        for note in &target.layout().unresolved {
            eprintln!(
                "  {}: fstab line {}: {} for {} is not on this disk{}",
                self.style.yellow("warning"),
                note.line,
                note.spec,
                note.mount_point,
                if note.nofail { " (nofail)" } else { "" }
            );
        }
        Ok(Some(target))
    }

    fn choose_disk(&mut self) -> Result<Option<TargetSpec>> {
        let spinner = self.spinner("looking for the broken VM's disk…");
        let scan = vmrescue::disk::scan();
        spinner.finish_and_clear();
        let scan = scan?;
        let candidates: Vec<&ScannedDisk> = scan.candidates();
        for disk in scan
            .disks
            .iter()
            .filter(|d| d.class == vmrescue::disk::DiskClass::Host)
        {
            eprintln!("  {} is the rescue VM's own disk: never touched", disk.path);
        }
        let mut items: Vec<String> = candidates.iter().map(|d| describe_disk(d)).collect();
        items.push("another disk or a disk image file (type its path)".into());
        items.push("quit".into());
        let prompt = match candidates.len() {
            0 => "No candidate OS disk is attached. What should vmrescue work on?".to_string(),
            1 => "The disk to rescue (the rescue VM's own disks are left alone):".to_string(),
            n => format!("{n} candidate disks are attached. Which one belongs to the broken VM?"),
        };
        let choice = self.prompter.select(&prompt, &items, 0)?;
        if choice < candidates.len() {
            return Ok(Some(TargetSpec::Disk(PathBuf::from(
                &candidates[choice].path,
            ))));
        }
        if choice == items.len() - 1 {
            return Ok(None);
        }
        loop {
            let path = self.prompter.input(
                "Path of the disk device or image file (empty to quit)",
                None,
            )?;
            if path.is_empty() {
                return Ok(None);
            }
            let path = PathBuf::from(path);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => return Ok(Some(TargetSpec::Image(path))),
                Ok(_) => return Ok(Some(TargetSpec::Disk(path))),
                Err(err) => eprintln!("  {}: {err}", path.display()),
            }
        }
    }

    fn ask_for_log(&mut self, logs: &mut Vec<PathBuf>) -> Result<()> {
        loop {
            let answer = self.prompter.input(
                // One line on an 80-column console: dialoguer clears only the
                // last line when it redraws the answer, so a wrapped prompt
                // showed twice.
                "Console log to read (serial, boot diagnostics, vmcore-dmesg; empty: none)",
                None,
            )?;
            if answer.is_empty() {
                return Ok(());
            }
            let path = PathBuf::from(&answer);
            if path.is_file() {
                logs.push(path);
                return Ok(());
            }
            eprintln!("  {answer}: no such file");
        }
    }

    /// Diagnoses the target; `full` prints every finding, else one line each.
    fn diagnose(
        &mut self,
        target: &Target,
        logs: &[PathBuf],
        full: bool,
        addressed: &[(String, String)],
    ) -> Result<Diagnosis> {
        let spinner =
            self.spinner("diagnosing: console logs, the target's own logs, offline checks…");
        let diagnosis = vmrescue::diagnose::diagnose_target(logs, target);
        spinner.finish_and_clear();
        let mut diagnosis = diagnosis?;
        // Most severe first (Severity orders Critical first); the stable sort
        // keeps the classifier's order (most specific cause first) among equals.
        diagnosis.findings.sort_by_key(|f| f.severity);
        set_aside_addressed(&mut diagnosis, addressed);
        if full {
            eprintln!("\n{}", self.style.bold("Diagnosis"));
            eprint!("{}", super::render_diagnosis(&diagnosis, self.style));
        } else {
            eprintln!(
                "\ndiagnosed again: {} finding(s) remain",
                diagnosis.findings.len()
            );
            for finding in &diagnosis.findings {
                eprintln!("  {:?}: {}", finding.severity, finding.title);
            }
        }
        Ok(diagnosis)
    }

    fn menu<'c>(&mut self, catalog: &'c Catalog, diagnosis: &Diagnosis) -> Result<MenuChoice<'c>> {
        let mut suggested: Vec<(&Recipe, String)> = Vec::new();
        for finding in &diagnosis.findings {
            for suggestion in &finding.suggestions {
                if let Ok(recipe) = catalog.get(&suggestion.recipe) {
                    if !suggested.iter().any(|(r, _)| r.spec.id == recipe.spec.id) {
                        suggested.push((recipe, suggestion.why.clone()));
                    }
                }
            }
        }
        let mut choices: Vec<MenuChoice<'c>> = Vec::new();
        let mut items = Vec::new();
        for (recipe, why) in &suggested {
            items.push(format!(
                "{} — {} (suggested: {why})",
                recipe.spec.id, recipe.spec.title
            ));
            choices.push(MenuChoice::Recipe(recipe));
        }
        for recipe in &catalog.recipes {
            if !suggested.iter().any(|(r, _)| r.spec.id == recipe.spec.id) {
                items.push(format!("{} — {}", recipe.spec.id, recipe.spec.title));
                choices.push(MenuChoice::Recipe(recipe));
            }
        }
        items.push("read another console log and diagnose again".into());
        choices.push(MenuChoice::ReadLog);
        items.push("open a shell in the target (chroot, read-only)".into());
        choices.push(MenuChoice::Shell);
        items.push("undo a repair run".into());
        choices.push(MenuChoice::Undo);
        items.push("write a support bundle (for escalating the case)".into());
        choices.push(MenuChoice::Bundle);
        items.push("unmount and exit".into());
        choices.push(MenuChoice::Quit);
        // Problems no recipe repairs: say what to do by hand.
        for finding in &diagnosis.findings {
            if let Some(step) = &finding.next_step {
                eprintln!("{}: {step}", finding.id);
            }
        }
        let default = if suggested.is_empty() {
            items.len() - 1
        } else {
            0
        };
        let index =
            self.prompter
                .select("\nWhat next? (suggested repairs first)", &items, default)?;
        Ok(choices.swap_remove(index))
    }

    /// Parameters, plan, confirmation, apply, verify, summary. `None`: nothing was run.
    fn repair(
        &mut self,
        target: &Target,
        catalog: &Catalog,
        recipe: &Recipe,
        diagnosis: &Diagnosis,
    ) -> Result<Option<ExitCode>> {
        eprintln!(
            "\n{} — {}\n{}\n",
            self.style.bold(&recipe.spec.id),
            recipe.spec.title,
            recipe.spec.summary.trim()
        );
        let Some(params) = self.ask_params(target, recipe, diagnosis)? else {
            return Ok(None);
        };
        let request = RepairRequest {
            recipe: recipe.spec.id.clone(),
            params,
            dry_run: false,
        };
        let style = self.style;
        let redraw = self.prompter.can_redraw();
        let prompter = &mut *self.prompter;
        let mut confirm = |plan: &vmrescue::recipe::plan::Plan| -> Result<bool> {
            eprintln!("{}", style.bold("Plan (nothing is changed yet):"));
            eprint!("{}", plan.render());
            prompter.confirm(&format!("Apply {} now?", plan.recipe), false)
        };
        let mode = if redraw {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        };
        let mut steps = StepProgress::new(mode);
        let mut progress = |event: Progress| steps.event(event);
        let report = repair::run_with_progress(
            target,
            catalog,
            &request,
            Some(diagnosis),
            &self.run_id,
            &mut confirm,
            &mut progress,
        );
        let report = match report {
            Ok(report) => report,
            Err(err) if vmrescue::error::exit_code_for(&err) == ExitCode::Interrupted => {
                return Err(err)
            }
            Err(err) => {
                eprintln!("{}: {err:#}", self.style.red("repair failed"));
                return Ok(Some(vmrescue::error::exit_code_for(&err)));
            }
        };
        // Each applied recipe gets a journal id of its own.
        self.run_id = vmrescue::runlog::new_run_id();
        if report
            .recipes
            .iter()
            .all(|r| r.status == RecipeStatus::NotConfirmed)
        {
            eprintln!("not applied: nothing was changed");
            return Ok(None);
        }
        eprintln!("\n{}", self.style.bold("Summary"));
        print!(
            "{}",
            super::repair::text(&report, self.style, self.log_path.as_deref(), false)
        );
        if report
            .recipes
            .iter()
            .any(|r| r.status == RecipeStatus::NothingToDo && r.plan.noop_reason.is_none())
        {
            eprintln!("already done: nothing needed changing");
        }
        if report.exit_code() == ExitCode::VerifyFailed {
            eprintln!(
                "{}: the changes are kept; choose `undo a repair run` to restore the files",
                self.style.red("verification failed")
            );
        }
        Ok(Some(report.exit_code()))
    }

    fn ask_params(
        &mut self,
        target: &Target,
        recipe: &Recipe,
        diagnosis: &Diagnosis,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        let mut params = std::collections::BTreeMap::new();
        if recipe.spec.params.is_empty() {
            return Ok(Some(params));
        }
        let root = target.rootdir()?;
        let facts = Facts::gather(&root)?;
        let mut hints = repair::hints_from(Some(diagnosis));
        for (name, param) in &recipe.spec.params {
            let default = engine::param_default(recipe, name, param, &root, &facts, &hints);
            let picks_kernel = matches!(
                param.default,
                ParamDefault::PreviousKernel | ParamDefault::DefaultKernel
            ) || name == "kernel";
            let value = if picks_kernel {
                // A kernel parameter whose default is a word (`rebuild-initramfs`:
                // `default`) also takes the words `default` and `all`.
                let words: &[&str] = match param.value.as_deref() {
                    Some("default" | "all") if param.default == ParamDefault::Value => {
                        &["default", "all"]
                    }
                    _ => &[],
                };
                let Some(kernel) = self.choose_kernel(
                    &root,
                    &facts,
                    param,
                    default.ok().flatten().as_deref(),
                    words,
                )?
                else {
                    return Ok(None);
                };
                kernel
            } else {
                let suggestion = match &default {
                    Ok(value) => value.clone(),
                    Err(why) => {
                        eprintln!("  ({why:#})");
                        None
                    }
                };
                let optional = param.default == ParamDefault::Optional;
                let prompt = if optional {
                    format!("{name}: {} (empty: none)", param.description)
                } else {
                    format!("{name}: {}", param.description)
                };
                let value = self.prompter.input(&prompt, suggestion.as_deref())?;
                if value.is_empty() && optional {
                    continue;
                }
                if value.is_empty() && suggestion.is_none() {
                    eprintln!("no value for {name}: recipe not run");
                    return Ok(None);
                }
                value
            };
            if name == "avoid_kernel" && !value.is_empty() {
                hints.avoid_kernel = Some(value.clone());
            }
            params.insert(name.clone(), value);
        }
        Ok(Some(params))
    }

    fn choose_kernel(
        &mut self,
        root: &vmrescue::rootfs::RootDir,
        facts: &Facts,
        param: &vmrescue::recipe::spec::ParamSpec,
        default: Option<&str>,
        words: &[&str],
    ) -> Result<Option<String>> {
        if facts.kernels.is_empty() {
            eprintln!("no kernel is installed on the target");
            return Ok(None);
        }
        let booting = engine::default_kernel(root, facts).ok().flatten();
        let mut values: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut items: Vec<String> = words
            .iter()
            .map(|w| match (*w, booting.as_deref()) {
                ("default", Some(kernel)) => {
                    format!("default  (the kernel that boots by default: {kernel})")
                }
                ("all", _) => "all  (every installed kernel with modules)".to_string(),
                (word, _) => word.to_string(),
            })
            .collect();
        values.extend(facts.kernels.iter().map(|k| k.version.clone()));
        items.extend(facts.kernels.iter().map(|k| {
            let mut notes = vec![if k.initramfs_present {
                "initramfs present"
            } else {
                "initramfs MISSING"
            }];
            if !k.has_modules {
                notes.push("modules MISSING");
            }
            if booting.as_deref() == Some(k.version.as_str()) {
                notes.push("boots by default now");
            }
            format!("{}  ({})", k.version, notes.join(", "))
        }));
        let preselected = default
            .and_then(|d| values.iter().position(|v| v == d))
            .unwrap_or(0);
        let index = self
            .prompter
            .select(&param.description, &items, preselected)?;
        Ok(values.get(index).cloned())
    }

    fn shell(&mut self, target: &Target) -> Result<()> {
        eprintln!(
            "a shell in {} (read-only; `exit` returns here; for journaled changes use a recipe)",
            target.root().display()
        );
        let cmd = vmrescue::cmd::Cmd::new("/bin/sh")
            .env("PS1", "(vmrescue chroot) # ")
            .in_chroot(target.chroot_spec()?);
        let _interactive = vmrescue::signals::InteractiveGuard::new();
        let status = cmd.run_interactive()?;
        eprintln!("shell exited ({status})");
        Ok(())
    }

    /// True when a run was undone.
    fn undo(&mut self, target: &Target) -> Result<bool> {
        let runs: Vec<_> = vmrescue::journal::history(target.root())?
            .into_iter()
            .filter(|r| !r.undone)
            .collect();
        if runs.is_empty() {
            eprintln!("no repair run to undo on this target");
            return Ok(false);
        }
        let mut items: Vec<String> = runs
            .iter()
            .map(|r| format!("{}  {}  {} file(s)", r.run_id, r.recipe, r.files.len()))
            .collect();
        items.push("back".into());
        let index = self
            .prompter
            .select("Which run? (newest last)", &items, runs.len() - 1)?;
        let Some(run) = runs.get(index) else {
            return Ok(false);
        };
        if !self.prompter.confirm(
            &format!(
                "Restore the {} file(s) run {} changed?",
                run.files.len(),
                run.run_id
            ),
            false,
        )? {
            return Ok(false);
        }
        target.make_writable()?;
        let report = vmrescue::journal::undo(target.root(), Some(&run.run_id), target.disk())?;
        eprintln!(
            "undid run {}: restored {} file(s), removed {} created file(s)",
            report.run_id,
            report.restored.len(),
            report.removed.len()
        );
        Ok(true)
    }

    fn spinner(&self, message: &str) -> ProgressBar {
        if self.prompter.can_redraw() {
            let spinner = ProgressBar::new_spinner();
            spinner.set_message(message.to_string());
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        } else {
            eprintln!("{message}");
            ProgressBar::hidden()
        }
    }
}

/// Takes out of `diagnosis` the findings from console logs (written before
/// the repair, so they cannot change) whose every suggested recipe was
/// applied in this session, and says so. Offline findings stay: they are
/// checked on the repaired files, so one still there was not fixed.
fn set_aside_addressed(diagnosis: &mut Diagnosis, addressed: &[(String, String)]) {
    diagnosis.findings.retain(|finding| {
        let run = finding.suggestions.iter().try_fold(None, |_, s| {
            addressed
                .iter()
                .find(|(recipe, _)| *recipe == s.recipe)
                .map(|(_, run)| Some(run))
        });
        match run.flatten() {
            Some(run) if !finding.id.starts_with("offline-") => {
                eprintln!(
                    "  {:?}: {} — addressed by run {run} (its evidence predates the repair)",
                    finding.severity, finding.title
                );
                false
            }
            _ => true,
        }
    });
}

/// The disk or image a boot test can use (not an already mounted `--root`).
fn bootable_target(layout: &vmrescue::attach::Layout) -> Option<crate::cli::TargetArgs> {
    let mut args = crate::cli::TargetArgs::default();
    if let Some(image) = &layout.image {
        args.image = Some(image.clone());
    } else {
        args.disk = Some(PathBuf::from(layout.disk.as_ref()?));
    }
    Some(args)
}

fn describe_disk(disk: &ScannedDisk) -> String {
    let mut text = format!(
        "{}  {}",
        disk.path,
        disk.size.map(human_size).unwrap_or_else(|| "?".into())
    );
    if let Some(model) = &disk.model {
        text.push_str(&format!("  {}", model.trim()));
    }
    if let Some(lun) = &disk.azure_lun {
        text.push_str(&format!("  [{lun}]"));
    }
    let parts: Vec<String> = disk
        .partitions
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                Path::new(&p.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                p.fstype.as_deref().unwrap_or("-"),
                p.size.map(human_size).unwrap_or_default()
            )
        })
        .collect();
    if !parts.is_empty() {
        text.push_str(&format!("  ({})", parts.join(", ")));
    }
    if disk.encrypted {
        text.push_str("  ENCRYPTED");
    }
    text
}

/// `vmrescue` with no command: the wizard on a terminal, else help.
pub(crate) fn interactive_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Errors at the wizard's start that name what to do instead.
pub(crate) fn require_terminal() -> Result<()> {
    if interactive_terminal() {
        Ok(())
    } else {
        Err(Failure::Usage(
            "the wizard needs a terminal on stdin and stderr; unattended, use `vmrescue repair RECIPE|auto --yes`"
                .into(),
        ))
        .context("starting the wizard")
    }
}
