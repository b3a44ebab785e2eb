//! Running a recipe: parameters → plan (diff + commands, nothing written)
//! → apply through the journal (after confirmation) → verify by inspecting
//! the target again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::actions;
use super::facts::{command_lines, effective_sysctl, Facts};
use super::leaks::{self, RescueNames};
use super::plan::{ActionContext, CheckResult, Plan, Planned, PlannedChange, Workspace};
use super::spec::{
    param_refs, substitute, substitute_optional, ParamDefault, ParamSpec, StepSpec, VerifySpec,
};
use super::Recipe;
use crate::attach::{Layout, Target};
use crate::cmd::Cmd;
use crate::error::Failure;
use crate::inspect::cmdline::KernelCmdline;
use crate::journal::Journal;
use crate::rootfs::RootDir;

/// Longest a generator (dracut, grub2-mkconfig) may run in the chroot.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Hints for parameter defaults that come from the diagnosis.
#[derive(Debug, Clone, Default)]
pub struct ParamHints {
    pub diagnosed_module: Option<String>,
    pub avoid_kernel: Option<String>,
}

/// The kernel the boot configuration selects now.
pub fn default_kernel(root: &RootDir, facts: &Facts) -> Result<Option<String>> {
    super::facts::default_kernel(root, facts)
}

fn newest_complete_kernel(facts: &Facts) -> Option<&str> {
    facts
        .kernels
        .iter()
        .filter(|k| k.has_modules && k.initramfs_present)
        .map(|k| k.version.as_str())
        .max_by(|a, b| super::facts::compare_versions(a, b))
}

/// The newest installed kernel older than `than` with modules and an initramfs.
fn previous_kernel(facts: &Facts, than: &str) -> Option<String> {
    let mut complete: Vec<&str> = facts
        .kernels
        .iter()
        .filter(|k| k.has_modules && k.initramfs_present && k.version != than)
        .map(|k| k.version.as_str())
        .filter(|v| super::facts::compare_versions(v, than).is_lt())
        .collect();
    complete.sort_by(|a, b| super::facts::compare_versions(b, a));
    complete.first().map(|v| v.to_string())
}

/// `--param regenerate=true`: taken by every recipe with a
/// `regenerate-grub-config` step (without it, grub.cfg is regenerated only
/// when an edit in place cannot carry the change).
pub const REGENERATE_PARAM: &str = "regenerate";

fn takes_regenerate(recipe: &Recipe) -> bool {
    recipe
        .spec
        .steps
        .iter()
        .any(|s| matches!(s, StepSpec::RegenerateGrubConfig { .. }))
}

/// Fills in every declared parameter: given values, else the recipe's default rule.
pub fn resolve_params(
    recipe: &Recipe,
    given: &BTreeMap<String, String>,
    root: &RootDir,
    facts: &Facts,
    hints: &ParamHints,
) -> Result<BTreeMap<String, String>> {
    let spec = &recipe.spec;
    for (name, value) in given {
        if name == REGENERATE_PARAM && takes_regenerate(recipe) {
            if !matches!(value.as_str(), "true" | "false" | "1" | "0") {
                return Err(Failure::Usage(format!(
                    "--param {REGENERATE_PARAM}= takes true or false, not `{value}`"
                ))
                .into());
            }
            continue;
        }
        if !spec.params.contains_key(name) {
            let known: Vec<&str> = spec.params.keys().map(String::as_str).collect();
            return Err(Failure::Usage(format!(
                "recipe {} has no parameter `{name}` (it has: {})",
                spec.id,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
            .into());
        }
    }
    // A failing kernel named on the command line outranks the diagnosis's.
    let mut hints = hints.clone();
    if let Some(kernel) = given.get("avoid_kernel").filter(|k| !k.is_empty()) {
        hints.avoid_kernel = Some(kernel.clone());
    }
    let mut params = BTreeMap::new();
    for (name, param) in &spec.params {
        let value = match given.get(name) {
            Some(value) => value.clone(),
            None => match param_default(recipe, name, param, root, facts, &hints)? {
                Some(value) => value,
                None => continue,
            },
        };
        params.insert(name.clone(), value);
    }
    if let Some(value) = given
        .get(REGENERATE_PARAM)
        .filter(|_| takes_regenerate(recipe))
    {
        params.insert(REGENERATE_PARAM.to_string(), value.clone());
    }
    Ok(params)
}

/// One parameter's default by its recipe's rule (`None` for an optional
/// parameter, which has none); a refusal says why there is none.
pub fn param_default(
    recipe: &Recipe,
    name: &str,
    param: &ParamSpec,
    root: &RootDir,
    facts: &Facts,
    hints: &ParamHints,
) -> Result<Option<String>> {
    let id = &recipe.spec.id;
    Ok(Some(match param.default {
        ParamDefault::Optional => return Ok(None),
        ParamDefault::Crashkernel => super::kdump::default_crashkernel(root, facts)?,
        ParamDefault::Value => param.value.clone().unwrap_or_default(),
        ParamDefault::Required => {
            return Err(Failure::Refused(format!(
                "recipe {id} needs --param {name}=… ({})",
                param.description
            ))
            .into())
        }
        ParamDefault::DefaultKernel => default_kernel(root, facts)?
            .ok_or_else(|| Failure::Refused("cannot tell which kernel boots by default".into()))?,
        ParamDefault::PreviousKernel => {
            let current = match &hints.avoid_kernel {
                Some(kernel) => kernel.clone(),
                None => {
                    let default = default_kernel(root, facts)?.ok_or_else(|| {
                        Failure::Refused("cannot tell which kernel boots by default".into())
                    })?;
                    // Already booting an older kernel than the newest complete
                    // one (a previous run did it): keep it, so a second run
                    // changes nothing instead of going back one more kernel.
                    if newest_complete_kernel(facts).is_some_and(|newest| {
                        super::facts::compare_versions(&default, newest).is_lt()
                    }) {
                        return Ok(Some(default));
                    }
                    default
                }
            };
            previous_kernel(facts, &current).ok_or_else(|| {
                let installed: Vec<&str> =
                    facts.kernels.iter().map(|k| k.version.as_str()).collect();
                Failure::Refused(format!(
                    "no complete kernel older than {current} is installed (installed: {}): choose one with --param {name}=VERSION",
                    installed.join(", ")
                ))
            })?
        }
        ParamDefault::DiagnosedModule => match hints.diagnosed_module.clone() {
            Some(module) => module,
            None => return Err(no_module_diagnosed(name, root, facts)),
        },
    }))
}

/// The refusal when no module was diagnosed names the modules installed
/// outside the kernel's own tree: the ones worth suspecting.
fn no_module_diagnosed(name: &str, root: &RootDir, facts: &Facts) -> anyhow::Error {
    let suspects = match super::facts::third_party_modules(root, facts) {
        Ok(found) if found.is_empty() => "none outside the kernel's own tree".to_string(),
        Ok(found) => format!("outside the kernel's own tree: {}", found.join(", ")),
        Err(err) => format!("could not list them: {err:#}"),
    };
    Failure::Refused(format!(
        "no faulty module was diagnosed: give it with --param {name}=MODULE (modules installed {suspects}), or run with --console-log SERIAL-LOG"
    ))
    .into()
}

fn kernel_versions(which: &str, root: &RootDir, facts: &Facts) -> Result<Vec<String>> {
    Ok(match which {
        "default" => vec![default_kernel(root, facts)?
            .ok_or_else(|| Failure::Refused("cannot tell which kernel boots by default".into()))?],
        "all" => facts
            .kernels
            .iter()
            .filter(|k| k.has_modules)
            .map(|k| k.version.clone())
            .collect(),
        version => vec![version.to_string()],
    })
}

/// Plans a recipe: the exact changes and commands, nothing written.
pub fn plan(
    recipe: &Recipe,
    params: &BTreeMap<String, String>,
    root: &RootDir,
    facts: &Facts,
    layout: Option<&Layout>,
) -> Result<Plan> {
    if !recipe.spec.families.iter().any(|f| f == facts.family.id()) {
        return Err(Failure::Refused(format!(
            "recipe {} does not apply to the {} family",
            recipe.spec.id,
            facts.family.id()
        ))
        .into());
    }
    let ctx = ActionContext { facts, layout };
    // One workspace for all steps: each step sees the files as the earlier
    // steps left them, as it will when the plan is applied in order.
    let mut ws = Workspace::new(root);
    let mut planned = Planned::default();
    for step in &recipe.spec.steps {
        plan_step(step, params, &mut ws, &ctx, &mut planned)?;
    }
    let audit_only = !planned.audit.is_empty() && planned.audit.iter().all(|a| a.new.is_none());
    let noop_reason = audit_only.then(|| {
        "audit only: no setting was named as a parameter (e.g. --param softlockup_panic=1), so nothing is changed".to_string()
    });
    Ok(Plan {
        recipe: recipe.spec.id.clone(),
        params: params.clone(),
        changes: planned.changes,
        notes: planned.notes,
        audit: planned.audit,
        noop_reason,
        after: recipe.spec.after.clone(),
    })
}

/// Plans one step, its `{param}` references replaced by the parameters.
fn plan_step(
    step: &StepSpec,
    params: &BTreeMap<String, String>,
    ws: &mut Workspace<'_>,
    ctx: &ActionContext<'_>,
    planned: &mut Planned,
) -> Result<()> {
    let s = |text: &str| substitute(text, params);
    let on = |value: &str| value == "true" || value == "1";
    match step {
        StepSpec::AddKernelArg { arg } => {
            actions::edit_kernel_arg(ws, ctx, planned, &s(arg)?, true)
        }
        StepSpec::RemoveKernelArg { arg } => {
            actions::edit_kernel_arg(ws, ctx, planned, &s(arg)?, false)
        }
        StepSpec::RegenerateGrubConfig { always } => {
            let asked = params.get(REGENERATE_PARAM).is_some_and(|v| on(v));
            actions::regenerate_grub_config(ws, ctx, planned, *always || asked)
        }
        StepSpec::SetSysctl { key, value } => {
            actions::set_sysctl(ws, planned, &s(key)?, &s(value)?)
        }
        StepSpec::BlacklistModule { module } => {
            actions::blacklist_module(ws, ctx, planned, &s(module)?)
        }
        StepSpec::FstabNofail {} => actions::fstab_nofail(ws, ctx, planned),
        StepSpec::FixMounts {} => super::fix_mounts::fix_mounts(ws, ctx, planned),
        StepSpec::RebuildInitramfs {
            kernel,
            ensure_platform_drivers,
            always,
        } => {
            let versions = kernel_versions(&s(kernel)?, ws.root(), ctx.facts)?;
            actions::rebuild_initramfs(
                ws,
                ctx,
                planned,
                &versions,
                *ensure_platform_drivers,
                *always,
            )
        }
        StepSpec::SetDefaultKernel { kernel, once } => {
            let once = once.as_deref().map(s).transpose()?.is_some_and(|v| on(&v));
            actions::set_default_kernel(ws, ctx, planned, &s(kernel)?, once)
        }
        StepSpec::FixRootReferences {} => actions::fix_root_references(ws, ctx, planned),
        StepSpec::AuditSysctl {
            key,
            explain,
            value,
        } => {
            // An optional parameter left unset means "report, change nothing".
            let value = value
                .as_deref()
                .map(|v| substitute_optional(v, params))
                .transpose()?
                .flatten();
            actions::audit_sysctl(ws, planned, &s(key)?, &s(explain)?, value.as_deref())
        }
        StepSpec::RequireKdump { kdump_conf } => {
            super::kdump::require_kdump(ws, ctx, planned, *kdump_conf)
        }
        StepSpec::SetKdumpOption {
            directive,
            value,
            list,
        } => super::kdump::set_kdump_option(ws, ctx, planned, &s(directive)?, &s(value)?, *list),
        StepSpec::EnableKdumpService {} => super::kdump::enable_kdump_service(ws, ctx, planned),
        StepSpec::LvmDevices { all } => {
            let which = if on(&s(all)?) { "all" } else { "default" };
            let versions = kernel_versions(which, ws.root(), ctx.facts)?;
            super::lvm_devices::lvm_devices(ws, ctx, planned, &versions)
        }
        StepSpec::NvmeReady { kernel } => {
            let versions = kernel_versions(&s(kernel)?, ws.root(), ctx.facts)?;
            super::nvme_ready::nvme_ready(ws, ctx, planned, &versions)
        }
        StepSpec::ReinstallBootLoader {} => {
            super::bootloader::reinstall_boot_loader(ws, ctx, planned)
        }
        StepSpec::EnableSerialGetty { port } => {
            super::serial_console::enable_serial_getty(ws, planned, &s(port)?)
        }
        StepSpec::RequestRelabel {} => super::relabel::request_relabel(ws, planned),
        StepSpec::FreeSpace {} => super::free_space::free_space(ws, ctx, planned),
    }
}

/// What an applied plan changed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Applied {
    pub run_id: String,
    pub changed: Vec<PathBuf>,
    pub commands: Vec<String>,
    /// Boot files in which rescue-VM names a generator wrote were put back
    /// (`FILE: NAME, …` as the generator left them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names_put_back: Vec<String>,
}

/// Applies a plan through the journal; the target is remounted read-write first.
pub fn apply(plan: &Plan, target: &Target, run_id: &str) -> Result<Applied> {
    apply_with_progress(plan, target, run_id, &mut |_, _| {})
}

/// [`apply`], calling `progress` with each change's index before it is made.
pub fn apply_with_progress(
    plan: &Plan,
    target: &Target,
    run_id: &str,
    progress: &mut dyn FnMut(usize, &PlannedChange),
) -> Result<Applied> {
    target.make_writable()?;
    let mut journal = Journal::begin(target.root(), run_id, &plan.recipe)?;
    let mut ran = Ran::default();
    let result = apply_changes(plan, target, &mut journal, &mut ran, progress);
    let changed = journal.changed();
    match result {
        Ok(()) => {
            journal.finish("applied")?;
            Ok(Applied {
                run_id: run_id.to_string(),
                changed,
                commands: ran.commands,
                names_put_back: ran.names_put_back,
            })
        }
        Err(err) => {
            let _ = journal.finish(&format!("failed: {err:#}"));
            Err(err.context(format!(
                "applying {} (run {run_id}; `vmrescue undo {run_id}` restores what was changed)",
                plan.recipe
            )))
        }
    }
}

fn apply_changes(
    plan: &Plan,
    target: &Target,
    journal: &mut Journal,
    ran: &mut Ran,
    progress: &mut dyn FnMut(usize, &PlannedChange),
) -> Result<()> {
    let root = target.rootdir()?;
    for (index, change) in plan.changes.iter().enumerate() {
        progress(index, change);
        match change {
            PlannedChange::Write { path, after, .. } => {
                journal.write_file(path, after.as_bytes(), 0o644)?;
            }
            PlannedChange::Quarantine { path, .. } => {
                journal.quarantine(path)?;
            }
            PlannedChange::Symlink { path, target, .. } => {
                journal.create_symlink(path, target)?;
            }
            PlannedChange::Copy {
                from, path, sha256, ..
            } => {
                let bytes = root.read(from)?;
                let now = crate::release::sha256_reader(bytes.as_slice())?;
                if &now != sha256 {
                    anyhow::bail!(
                        "{} changed since the plan (sha256 {now}, planned {sha256}): plan again",
                        from.display()
                    );
                }
                journal.write_file(path, &bytes, 0o644)?;
            }
            PlannedChange::Discard { path, .. } => {
                journal.discard(path)?;
            }
            PlannedChange::Command { argv, rewrites, .. } => {
                run_command(argv, rewrites, target, &root, journal, ran)?;
                ran.commands.push(argv.join(" "));
            }
            PlannedChange::InstallBootLoader {
                argv,
                env,
                trees,
                disk,
                ..
            } => {
                super::bootloader::installer::run(
                    argv,
                    env,
                    trees,
                    disk.as_ref(),
                    target,
                    &root,
                    journal,
                )?;
                ran.commands.push(argv.join(" "));
            }
        }
    }
    Ok(())
}

/// What the chroot commands of a run did.
#[derive(Debug, Default)]
struct Ran {
    commands: Vec<String>,
    names_put_back: Vec<String>,
}

/// A file's bytes, `None` when it does not exist.
fn read_optional(root: &RootDir, path: &Path) -> Result<Option<Vec<u8>>> {
    if root.is_file(path) {
        root.read(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Runs one generator in the target's chroot, then puts back the rescue-only
/// names it may have written into the boot files (see [`leaks`]). Every boot
/// file is backed up first, so undo restores whatever the generator touched.
fn run_command(
    argv: &[String],
    rewrites: &[PathBuf],
    target: &Target,
    root: &RootDir,
    journal: &mut Journal,
    ran: &mut Ran,
) -> Result<()> {
    let display = argv.join(" ");
    let names = RescueNames::from_layout(Some(target.layout()));
    let mut before = Vec::new();
    for path in leaks::boot_files(root)? {
        let old = read_optional(root, &path)?;
        before.push((path, old));
    }
    let watched: Vec<PathBuf> = before
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| !rewrites.contains(p))
        .collect();
    journal.before_command_watching(&display, rewrites, &watched)?;
    let (program, args) = argv.split_first().context("empty command")?;
    Cmd::new(program)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .timeout(COMMAND_TIMEOUT)
        .in_chroot(target.chroot_spec()?)
        .run()
        .with_context(|| format!("running {display} in the target"))?;
    for (path, old) in before {
        let Some(new) = read_optional(root, &path)? else {
            continue;
        };
        if old.as_deref() == Some(&new[..]) {
            continue;
        }
        if watched.contains(&path) {
            journal.note_changed(&path)?;
        }
        if let Some(fixed) = names.scrub(&path, old.as_deref(), &new)? {
            let found = format!("{}: {}", path.display(), names.traces(&new).join(", "));
            tracing::info!("{program} wrote rescue-VM names, put back: {found}");
            journal.write_file(&path, &fixed, 0o644)?;
            ran.names_put_back.push(found);
        }
    }
    Ok(())
}

/// Checks the recipe's promises by inspecting the target again.
pub fn verify(
    recipe: &Recipe,
    params: &BTreeMap<String, String>,
    root: &RootDir,
    layout: Option<&Layout>,
) -> Result<Vec<CheckResult>> {
    // Gathered again rather than reused from planning: the checks must see
    // the target as the apply (and its chroot commands) left it.
    let facts = Facts::gather(root)?;
    let mut results = Vec::new();
    for check in &recipe.spec.verify {
        // A check of an optional parameter the operator did not give has nothing to check.
        let unset = check
            .strings()
            .iter()
            .flat_map(|text| param_refs(text))
            .any(|name| !params.contains_key(name));
        if unset {
            continue;
        }
        let (ok, detail) = run_check(check, params, root, &facts, layout)?;
        results.push(CheckResult {
            check: check.check_name().to_string(),
            ok,
            detail,
        });
    }
    Ok(results)
}

/// The `lvm-devices-file` check every recipe gets on a disk with LVM: the
/// devices file on the root fs and in the default kernel's initramfs must
/// list each PV of the disk by the UUID it has at rest, or the VM stops in
/// the initramfs shell. `None` on a disk without LVM.
pub fn lvm_devices_check(
    root: &RootDir,
    facts: &Facts,
    layout: &Layout,
) -> Result<Option<CheckResult>> {
    let pvids = crate::diagnose::lvm_devices::disk_pvids(layout);
    if pvids.is_empty() {
        return Ok(None);
    }
    let default = default_kernel(root, facts)?;
    let initramfs = facts
        .kernels
        .iter()
        .find(|k| Some(&k.version) == default.as_ref())
        .map(|k| k.initramfs.as_path());
    let stale = crate::diagnose::lvm_devices::stale_copies(root, initramfs, &pvids)?;
    let ok = stale.is_empty();
    let pv_list = pvids.iter().cloned().collect::<Vec<_>>().join(", ");
    Ok(Some(CheckResult {
        check: "lvm-devices-file".into(),
        ok,
        detail: if ok {
            format!("the LVM devices file (where in use) lists the disk's PVID {pv_list}")
        } else {
            stale
                .iter()
                .map(crate::diagnose::lvm_devices::describe)
                .collect::<Vec<_>>()
                .join("; ")
        },
    }))
}

/// The `nvme-ready` check: the default kernel's initramfs and the names.
fn nvme_ready(root: &RootDir) -> Result<(bool, String)> {
    let snapshot = crate::inspect::snapshot::snapshot(root)?;
    let (kernel, cmdline) = crate::diagnose::offline::default_boot(&snapshot);
    let readiness = crate::diagnose::nvme::readiness(root, kernel, cmdline)?;
    let mut problems: Vec<String> = readiness
        .initramfs_without_nvme
        .iter()
        .map(|image| format!("{image} has no nvme driver"))
        .collect();
    problems.extend(
        readiness
            .names
            .iter()
            .map(|n| format!("{} names {} ({})", n.file, n.name, n.used_as)),
    );
    Ok(if problems.is_empty() {
        (
            true,
            "the default kernel's initramfs has nvme and no filesystem is named by a controller path".into(),
        )
    } else {
        (false, problems.join("; "))
    })
}

/// One check: whether it holds, and what was found, in words.
fn run_check(
    check: &VerifySpec,
    params: &BTreeMap<String, String>,
    root: &RootDir,
    facts: &Facts,
    layout: Option<&Layout>,
) -> Result<(bool, String)> {
    let s = |text: &str| substitute(text, params);
    Ok(match check {
        VerifySpec::KernelArgPresent { arg } => {
            let arg = s(arg)?;
            let missing = command_lines_where(root, facts, |args| !args.holds(&arg))?;
            if missing.is_empty() {
                (true, format!("{arg} is on every boot entry's command line"))
            } else {
                (false, format!("{arg} missing in {}", missing.join(", ")))
            }
        }
        VerifySpec::KernelArgAbsent { arg } => {
            let arg = s(arg)?;
            let present = command_lines_where(root, facts, |args| args.holds(&arg))?;
            if present.is_empty() {
                (true, format!("{arg} is on no command line"))
            } else {
                (false, format!("{arg} still in {}", present.join(", ")))
            }
        }
        VerifySpec::InitramfsComplete { kernel } => {
            let versions = kernel_versions(&s(kernel)?, root, facts)?;
            initramfs_complete(root, facts, &versions)
        }
        VerifySpec::ModuleNotLoadable { module } => {
            module_not_loadable(root, &s(module)?.replace('-', "_"))?
        }
        VerifySpec::SysctlIs { key, value } => {
            let (key, value) = (s(key)?, s(value)?);
            let effective = effective_sysctl(root, &key)?;
            (
                effective.as_deref() == Some(value.as_str()),
                format!("{key} = {}", effective.unwrap_or_else(|| "(unset)".into())),
            )
        }
        VerifySpec::DefaultKernelIs { kernel } => {
            let kernel = s(kernel)?;
            let now = default_kernel(root, facts)?;
            (
                now.as_deref() == Some(kernel.as_str()),
                format!(
                    "default kernel: {}",
                    now.unwrap_or_else(|| "unknown".into())
                ),
            )
        }
        VerifySpec::RootResolves {} => {
            let (_, ok, detail) = actions::check_root_resolves(root, facts, layout)?;
            (ok, detail)
        }
        VerifySpec::FstabResolves {} => super::fix_mounts::check_fstab_resolves(root, layout)?,
        VerifySpec::KdumpOptionIs {
            directive,
            value,
            list,
        } => super::kdump::check_option(root, facts, &s(directive)?, &s(value)?, *list)?,
        VerifySpec::KdumpServiceEnabled {} => super::kdump::check_service(root, facts)?,
        VerifySpec::NvmeReady {} => nvme_ready(root)?,
        VerifySpec::BootLoaderInstalled {} => {
            super::bootloader::check_installed(root, layout, facts)?
        }
        VerifySpec::SerialGettyEnabled { port } => {
            super::serial_console::check_getty(root, &s(port)?)
        }
        VerifySpec::RelabelRequested {} => super::relabel::check_relabel(root),
    })
}

/// Where (see [`command_lines`]) the kernel command lines that `select` picks are.
fn command_lines_where(
    root: &RootDir,
    facts: &Facts,
    select: impl Fn(&KernelCmdline) -> bool,
) -> Result<Vec<String>> {
    Ok(command_lines(root, facts)?
        .into_iter()
        .filter(|(_, args)| select(&KernelCmdline::parse(args)))
        .map(|(place, _)| place)
        .collect())
}

/// Each kernel's initramfs exists and is not older than its modules.dep: an
/// initramfs built before the last depmod may lack or mismatch modules.
fn initramfs_complete(root: &RootDir, facts: &Facts, versions: &[String]) -> (bool, String) {
    let mut problems = Vec::new();
    for version in versions {
        match facts.kernels.iter().find(|k| &k.version == version) {
            Some(k) if k.initramfs_present => {
                // Without both times nothing says it is stale.
                let newer = match (
                    root.metadata(&k.initramfs),
                    root.metadata(format!("/lib/modules/{version}/modules.dep")),
                ) {
                    (Ok(i), Ok(m)) => i.st_mtime >= m.st_mtime,
                    _ => true,
                };
                if !newer {
                    problems.push(format!(
                        "{} is older than the modules of {version}",
                        k.initramfs.display()
                    ));
                }
            }
            Some(k) => problems.push(format!("{} is missing or empty", k.initramfs.display())),
            None => problems.push(format!("kernel {version} is not installed")),
        }
    }
    if problems.is_empty() {
        (
            true,
            format!("initramfs present and current for {}", versions.join(", ")),
        )
    } else {
        (false, problems.join("; "))
    }
}

/// Both halves of the blacklist: the install-false rule (which also stops
/// explicit modprobe, unlike `blacklist`) and no .ko left to load.
fn module_not_loadable(root: &RootDir, module: &str) -> Result<(bool, String)> {
    let ws = Workspace::new(root);
    let left = actions::module_files(&ws, module)?;
    let conf = root
        .read_string_optional(format!("/etc/modprobe.d/vmrescue-blacklist-{module}.conf"))?
        .unwrap_or_default();
    let blocked = conf
        .lines()
        .any(|l| l.trim() == format!("install {module} /bin/false"));
    let ok = left.is_empty() && blocked;
    let detail = if ok {
        format!("{module} is blacklisted and no .ko is left in the modules tree")
    } else {
        format!(
            "{module}: {} .ko file(s) left, install-false rule {}",
            left.len(),
            if blocked { "present" } else { "missing" }
        )
    };
    Ok((ok, detail))
}
