//! The typed actions recipes are made of. Each one plans changes on a
//! [`Workspace`] (nothing is written here); the engine applies the plan.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::facts::{Facts, Family, InitramfsGenerator};
use super::plan::{ActionContext, Planned, PlannedChange, SysctlAudit, Workspace};
use crate::attach::Layout;
use crate::error::Failure;
use crate::inspect::bls::BlsEntry;
use crate::inspect::cmdline::{self, CmdlineEdit, KernelCmdline};
use crate::inspect::default_grub::{
    self, DefaultGrub, GrubSettings, SourcedFile, CMDLINE_LINUX, CMDLINE_LINUX_DEFAULT,
};
use crate::inspect::grub_cfg::GrubCfg;
use crate::inspect::grubenv::Grubenv;
use crate::inspect::initramfs_modules::InitramfsModules;
use crate::rootfs::EntryKind;

// The plan-building half of `Planned` lives in plan.rs; these helpers only
// matter to the GRUB actions below, so they stay beside them.
impl Planned {
    /// Whether /etc/default/grub or one of its grub.d drop-ins is written.
    fn writes_grub_defaults(&self) -> bool {
        !self.grub_defaults_written().is_empty()
    }

    fn grub_defaults_written(&self) -> Vec<&Path> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                PlannedChange::Write { path, .. }
                    if path == Path::new(DEFAULT_GRUB)
                        || path.starts_with(default_grub::DROPIN_DIR) =>
                {
                    Some(path.as_path())
                }
                _ => None,
            })
            .collect()
    }

    /// Whether every GRUB defaults change of the plan is one that grub.cfg
    /// was already edited to match (see [`Self::grub_cfg_in_line_with`]).
    fn grub_cfg_follows_defaults(&self, ws: &Workspace) -> Result<bool> {
        for path in self.grub_defaults_written() {
            let now = ws.read(path)?;
            let in_line = self
                .grub_cfg_in_line_with
                .iter()
                .any(|(p, text)| p == path && *text == now);
            if !in_line {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// /etc/default/grub merged with the grub.d drop-ins grub-mkconfig sources
/// after it, as this plan has them so far.
fn grub_defaults(ws: &Workspace) -> Result<GrubSettings> {
    let mut files = Vec::new();
    for path in default_grub::source_paths(ws.root())? {
        if let Some(text) = ws.read(&path)? {
            files.push(SourcedFile {
                file: DefaultGrub::parse(&text),
                path,
            });
        }
    }
    Ok(GrubSettings::merge(&files))
}

/// `name`'s value in one file grub-mkconfig sources, edited with the
/// /etc/default/grub editor (shell quoting kept); the file's new text.
fn edit_grub_var(text: &str, name: &str, edit: &CmdlineEdit) -> String {
    let mut file = DefaultGrub::parse(text);
    file.edit_cmdline(name, edit);
    file.render()
}

/// grubenv's `kernelopts` (RHEL 8) edited with the grubenv editor, which
/// keeps GRUB's escapes and the 1024-byte block; `None` without kernelopts.
fn edit_grubenv_kernelopts(block: &str, edit: &CmdlineEdit) -> Result<Option<String>> {
    let mut env = Grubenv::parse(block.as_bytes()).context("reading grubenv")?;
    if env.get("kernelopts").is_none() {
        return Ok(None);
    }
    env.edit_cmdline_var("kernelopts", edit)
        .context("editing grubenv kernelopts")?;
    render_grubenv(&env).map(Some)
}

fn render_grubenv(env: &Grubenv) -> Result<String> {
    let bytes = env.render().context("writing grubenv")?;
    String::from_utf8(bytes).context("grubenv is not UTF-8")
}

/// A BLS entry's `options` edited with the BLS editor; the entry's new text.
fn edit_bls_options(path: &Path, text: &str, edit: &CmdlineEdit) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut entry = BlsEntry::parse(&name, text);
    entry.edit_options(edit);
    entry.render()
}

const DEFAULT_GRUB: &str = "/etc/default/grub";
const BLS_DIR: &str = "/boot/loader/entries";
/// systemd's kernel-install takes new kernels' command line from here.
const KERNEL_INSTALL_CMDLINE: &str = "/etc/kernel/cmdline";

fn bls_entries(ws: &Workspace) -> Result<Vec<PathBuf>> {
    Ok(ws
        .root()
        .list_dir(BLS_DIR)?
        .into_iter()
        .filter(|e| e.kind == EntryKind::File && e.name.to_string_lossy().ends_with(".conf"))
        .map(|e| Path::new(BLS_DIR).join(e.name))
        .collect())
}

/// Adds or removes a kernel argument in every place the command line is kept.
pub fn edit_kernel_arg(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    arg: &str,
    add: bool,
) -> Result<()> {
    let edit = if add {
        CmdlineEdit::add(arg)
    } else {
        CmdlineEdit::remove(arg)
    };
    let verb = if add { "add" } else { "remove" };
    let mut places = edit_grub_defaults(ws, planned, arg, add, &edit)?;
    if let Some(text) = ws.read(KERNEL_INSTALL_CMDLINE)? {
        places += 1;
        // The trailing newline is whitespace to the command-line editor and stays last.
        let (new, _) = cmdline::edit_text(&text, &edit);
        let why = format!("{verb} {arg} in {KERNEL_INSTALL_CMDLINE} (kernel-install writes it into new kernels' entries)");
        planned.push(ws.write(KERNEL_INSTALL_CMDLINE, new, &why)?);
    }
    let mut uses_kernelopts = false;
    for entry in bls_entries(ws)? {
        let Some(text) = ws.read(&entry)? else {
            continue;
        };
        places += 1;
        // Such an entry takes its arguments from grubenv, edited below.
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
        let parsed = BlsEntry::parse(&name.unwrap_or_default(), &text);
        if parsed
            .get_all("options")
            .iter()
            .any(|o| o.contains("$kernelopts"))
        {
            uses_kernelopts = true;
            continue;
        }
        let new = edit_bls_options(&entry, &text, &edit);
        planned.push(ws.write(
            &entry,
            new,
            &format!("{verb} {arg} in the BLS entry's options"),
        )?);
    }
    if let Some(grubenv) = &ctx.facts.grubenv {
        if let Some(block) = ws.read(grubenv)? {
            if let Some(new) = edit_grubenv_kernelopts(&block, &edit)? {
                places += 1;
                planned.push(ws.write(
                    grubenv,
                    new,
                    &format!("{verb} {arg} in grubenv kernelopts"),
                )?);
            } else if uses_kernelopts {
                planned
                    .notes
                    .push("BLS entries use $kernelopts but grubenv has no kernelopts".into());
            }
        }
    }
    places += edit_grub_cfgs_in_place(ws, ctx, planned, &edit, &format!("{verb} {arg}"))?;
    if places == 0 {
        return Err(Failure::Refused(format!(
            "no kernel command line found to {verb} {arg} in ({DEFAULT_GRUB}, {KERNEL_INSTALL_CMDLINE}, BLS entries, grubenv, grub.cfg)"
        ))
        .into());
    }
    Ok(())
}

/// GRUB_CMDLINE_LINUX (and, for a removal, GRUB_CMDLINE_LINUX_DEFAULT) in
/// the files grub-mkconfig sources, so a later update-grub keeps the
/// change. Returns how many command-line places were found (0 or 1).
fn edit_grub_defaults(
    ws: &mut Workspace,
    planned: &mut Planned,
    arg: &str,
    add: bool,
    edit: &CmdlineEdit,
) -> Result<usize> {
    let verb = if add { "add" } else { "remove" };
    let mut places = 0;
    let defaults = grub_defaults(ws)?;
    let dropin = defaults
        .get(CMDLINE_LINUX)
        .filter(|s| s.path != DEFAULT_GRUB)
        .cloned();
    match dropin {
        // A drop-in sourced after /etc/default/grub assigns the variable last:
        // an edit of /etc/default/grub alone would not reach grub.cfg.
        Some(setting) => {
            places += 1;
            if let Some(why) = &setting.unexpanded {
                planned.notes.push(format!(
                    "{} line {}: GRUB_CMDLINE_LINUX uses {why}; only its literal text is edited",
                    setting.path, setting.line
                ));
            }
            let targets: Vec<String> = if add {
                let already =
                    KernelCmdline::parse(&setting.value).holds(arg) && setting.unexpanded.is_none();
                if already {
                    Vec::new()
                } else {
                    vec![setting.path.clone()]
                }
            } else {
                defaults.files_assigning(CMDLINE_LINUX).to_vec()
            };
            for path in targets {
                let Some(text) = ws.read(&path)? else {
                    continue;
                };
                let new = edit_grub_var(&text, CMDLINE_LINUX, edit);
                let why = if path == setting.path {
                    format!("{verb} {arg} in GRUB_CMDLINE_LINUX of {path}: grub-mkconfig sources it after {DEFAULT_GRUB}, so its value is the one used")
                } else {
                    format!("{verb} {arg} in GRUB_CMDLINE_LINUX of {path}")
                };
                planned.push(ws.write(&path, new, &why)?);
            }
        }
        None => {
            if let Some(text) = ws.read(DEFAULT_GRUB)? {
                places += 1;
                let new = edit_grub_var(&text, CMDLINE_LINUX, edit);
                let why = format!(
                    "{verb} {arg} in GRUB_CMDLINE_LINUX (so a later update-grub or grub-mkconfig keeps it)"
                );
                planned.push(ws.write(DEFAULT_GRUB, new, &why)?);
            }
        }
    }
    // GRUB_CMDLINE_LINUX_DEFAULT follows GRUB_CMDLINE_LINUX on the normal
    // entries' command line, so its arguments win.
    if let Some(later) = defaults.get(CMDLINE_LINUX_DEFAULT) {
        let key = cmdline::key_of(arg);
        let later_args = KernelCmdline::parse(&later.value);
        if add && later_args.contains(&key) && !later_args.holds(arg) {
            planned.notes.push(format!(
                "{} line {} sets {key} in GRUB_CMDLINE_LINUX_DEFAULT, which comes later on the kernel command line and wins over {arg}",
                later.path,
                later.line,
            ));
        }
        let mut removed = later_args.clone();
        if !add && edit.apply(&mut removed) {
            for path in defaults.files_assigning(CMDLINE_LINUX_DEFAULT) {
                let Some(text) = ws.read(path)? else {
                    continue;
                };
                let new = edit_grub_var(&text, CMDLINE_LINUX_DEFAULT, edit);
                planned.push(ws.write(
                    path,
                    new,
                    &format!("{verb} {arg} in GRUB_CMDLINE_LINUX_DEFAULT of {path}"),
                )?);
            }
        }
    }
    Ok(places)
}

/// GRUB without BLS boots the `linux` lines of grub.cfg: they are edited
/// in place (every grub.cfg that has menu entries; chain-loading stubs and
/// blscfg menus have none), so the plan shows the exact change and no
/// target code runs. grub-mkconfig would also rewrite unrelated entries
/// (os-prober, the rescue VM's device names) and may be missing or broken.
/// Returns how many grub.cfg files hold linux lines.
fn edit_grub_cfgs_in_place(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    edit: &CmdlineEdit,
    what: &str,
) -> Result<usize> {
    let mut found = 0;
    for path in &ctx.facts.grub_cfgs {
        let Some(text) = ws.read(path)? else { continue };
        if is_stub(&text) {
            continue;
        }
        let mut cfg = GrubCfg::parse(&text);
        if cfg.uses_blscfg() || cfg.linux_commands().is_empty() {
            continue;
        }
        found += 1;
        // `$kernelopts` lines take their arguments from grubenv, edited on its own.
        cfg.edit_linux_cmdlines(
            |_| true,
            |line| !line.to_string().contains("$kernelopts") && edit.apply(line),
        );
        planned.push(ws.write(
            path,
            cfg.render().to_string(),
            &format!(
                "{what} on every linux line of {} (edited in place, as GRUB_CMDLINE_LINUX would generate it)",
                path.display()
            ),
        )?);
    }
    if found > 0 {
        // grub.cfg now matches the defaults as they stand: no regeneration for them.
        planned.grub_cfg_in_line_with.clear();
        for source in default_grub::source_paths(ws.root())? {
            let text = ws.read(&source)?;
            planned
                .grub_cfg_in_line_with
                .push((PathBuf::from(source), text));
        }
    }
    Ok(found)
}

/// A grub.cfg that only chains to the real one (RHEL 9 / Ubuntu UEFI stubs).
fn is_stub(text: &str) -> bool {
    text.len() < 2048 && text.contains("configfile") && !text.contains("menuentry")
}

/// root= values that leak from the rescue VM when grub-mkconfig runs in a chroot.
pub fn is_rescue_device_root(value: &str) -> bool {
    let device = value.strip_prefix("/dev/").unwrap_or("");
    ["loop", "nbd", "sd", "vd", "xvd", "nvme", "hd"]
        .iter()
        .any(|p| device.starts_with(p))
}

/// Regenerates grub.cfg with the target's own generator when an earlier
/// step changed its inputs in a way grub.cfg does not already show (or
/// always: `always = true`, or `--param regenerate=true`).
pub fn regenerate_grub_config(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    always: bool,
) -> Result<()> {
    if !always && !planned.writes_grub_defaults() {
        planned
            .notes
            .push("grub.cfg needs no regeneration: /etc/default/grub is unchanged".into());
        return Ok(());
    }
    // Kernel arguments were changed in grub.cfg itself: running the
    // generator would only add risk (see edit_grub_cfgs_in_place).
    if !always && planned.grub_cfg_follows_defaults(ws)? {
        planned.notes.push("grub.cfg is not regenerated: its linux lines were edited in place to match /etc/default/grub (--param regenerate=true runs grub-mkconfig anyway)".into());
        return Ok(());
    }
    if ctx.facts.uses_bls && !always {
        let mut blscfg = false;
        for cfg in &ctx.facts.grub_cfgs {
            let text = match ws.read(cfg) {
                Ok(text) => text,
                // A disk that fails reads must stop the repair, not pass for
                // a grub.cfg without blscfg (docs/safety.md, read errors).
                Err(err) if crate::rootfs::is_read_failure(&err) => return Err(err),
                Err(_) => None,
            };
            blscfg |= text.is_some_and(|t| GrubCfg::parse(&t).uses_blscfg());
        }
        if blscfg {
            planned.notes.push("grub.cfg reads the BLS entries (blscfg), which carry the command line: no regeneration needed".into());
            return Ok(());
        }
    }
    let generator = match ctx.facts.family {
        Family::Debian => "grub-mkconfig",
        _ => "grub2-mkconfig",
    };
    if !ws.root().has_program(generator) {
        return Err(Failure::Refused(format!(
            "the target has no {generator}: cannot regenerate grub.cfg"
        ))
        .into());
    }
    for cfg in &ctx.facts.grub_cfgs {
        let Some(text) = ws.read(cfg)? else { continue };
        if is_stub(&text) {
            planned.notes.push(format!(
                "{} only chains to another grub.cfg: left as is",
                cfg.display()
            ));
            continue;
        }
        planned.changes.push(PlannedChange::Command {
            argv: vec![
                generator.to_string(),
                "-o".to_string(),
                cfg.display().to_string(),
            ],
            rewrites: vec![cfg.clone()],
            kernel: None,
            why: format!(
                "regenerate {} from /etc/default/grub and /etc/grub.d",
                cfg.display()
            ),
        });
    }
    Ok(())
}

/// After grub-mkconfig ran in the chroot: put back root= values that the
/// rescue VM's device names replaced (`root=/dev/loop0p2`, `/dev/sdc2`…).
pub fn fix_leaked_root(old_cfg: &str, new_cfg: &str) -> Option<String> {
    let old_root = GrubCfg::parse(old_cfg)
        .linux_commands()
        .iter()
        .flat_map(|linux| linux.cmdline().values("root"))
        .flatten()
        .find(|v| !is_rescue_device_root(v))?;
    let mut cfg = GrubCfg::parse(new_cfg);
    let changed = cfg.edit_linux_cmdlines(
        |_| true,
        |line| {
            line.replace_values("root", |v| {
                is_rescue_device_root(v).then(|| old_root.clone())
            })
        },
    );
    (changed > 0).then(|| cfg.render().to_string())
}

/// Reports a sysctl's effective value (as the target has it now) and what
/// it does; sets it when the operator chose a value.
pub fn audit_sysctl(
    ws: &mut Workspace,
    planned: &mut Planned,
    key: &str,
    explain: &str,
    value: Option<&str>,
) -> Result<()> {
    let key = crate::inspect::sysctl::normalize_key(key);
    if let Some(value) = value {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
            return Err(
                Failure::Usage(format!("{key}: `{value}` is not a non-negative integer")).into(),
            );
        }
    }
    let current = crate::inspect::sysctl::effective(ws.root())?.remove(&key);
    planned.audit.push(SysctlAudit {
        key: key.clone(),
        explain: explain.to_string(),
        current: current.as_ref().map(|s| s.value.clone()),
        origin: current.as_ref().map(|s| s.origin()),
        new: value.map(str::to_string),
    });
    match value {
        Some(value) => set_sysctl(ws, planned, &key, value),
        None => Ok(()),
    }
}

/// Sets a sysctl in a vmrescue drop-in and comments out settings that
/// would override it.
pub fn set_sysctl(ws: &mut Workspace, planned: &mut Planned, key: &str, value: &str) -> Result<()> {
    if value.contains(['\n', '\r']) || key.contains(['\n', '\r', '=']) {
        return Err(Failure::Usage(format!(
            "`{key} = {value}` is not a one-line sysctl setting"
        ))
        .into());
    }
    let normalized = key.replace('/', ".");
    let drop_in = PathBuf::from("/etc/sysctl.d/99-vmrescue.conf");
    let mut files: Vec<PathBuf> = ws
        .root()
        .list_dir("/etc/sysctl.d")?
        .into_iter()
        .filter(|e| e.name.to_string_lossy().ends_with(".conf"))
        .map(|e| Path::new("/etc/sysctl.d").join(e.name))
        .filter(|p| p != &drop_in)
        .collect();
    files.push(PathBuf::from("/etc/sysctl.conf"));
    for file in files {
        let Some(text) = ws.read(&file)? else {
            continue;
        };
        let new: String = text
            .split_inclusive('\n')
            .map(|line| {
                let body = line.trim_start().trim_start_matches('-');
                let Some((k, v)) = body.split_once('=') else {
                    return line.to_string();
                };
                if k.trim().replace('/', ".") == normalized && v.trim() != value {
                    format!(
                        "# disabled by vmrescue (set in {}): {line}",
                        drop_in.display()
                    )
                } else {
                    line.to_string()
                }
            })
            .collect();
        planned.push(ws.write(
            &file,
            new,
            &format!("comment out a conflicting {normalized} setting"),
        )?);
    }
    let mut text = ws
        .read(&drop_in)?
        .unwrap_or_else(|| "# Written by vmrescue; `vmrescue undo` removes it.\n".into());
    let line = format!("{normalized} = {value}\n");
    let mut replaced = false;
    let mut new: String = text
        .split_inclusive('\n')
        .map(|l| {
            let k = l.split_once('=').map(|(k, _)| k.trim().replace('/', "."));
            if k.as_deref() == Some(normalized.as_str()) {
                replaced = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        if !new.ends_with('\n') && !new.is_empty() {
            new.push('\n');
        }
        new.push_str(&line);
    }
    text = new;
    planned.push(ws.write(&drop_in, text, &format!("set {normalized} = {value}"))?);
    Ok(())
}

fn normalize_module(name: &str) -> String {
    name.replace('-', "_")
}

/// `.ko` files of a module under the modules directories, found without
/// following symlinks out of the target.
pub fn module_files(ws: &Workspace, module: &str) -> Result<Vec<(String, PathBuf)>> {
    let wanted = normalize_module(module);
    let mut found = Vec::new();
    for base in ["/lib/modules", "/usr/lib/modules"] {
        for version in ws.root().list_dir(base)? {
            if version.kind != EntryKind::Dir {
                continue;
            }
            let version_name = version.name.to_string_lossy().into_owned();
            let mut stack = vec![Path::new(base).join(&version.name)];
            while let Some(dir) = stack.pop() {
                for entry in ws.root().list_dir(&dir)? {
                    let path = dir.join(&entry.name);
                    let name = entry.name.to_string_lossy();
                    match entry.kind {
                        EntryKind::Dir => stack.push(path),
                        EntryKind::File => {
                            let stem = name.split(".ko").next().unwrap_or("");
                            if name.contains(".ko") && normalize_module(stem) == wanted {
                                found.push((version_name.clone(), path));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    Ok(found)
}

const DEPMOD_OUTPUTS: &[&str] = &[
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
    "modules.softdep",
    "modules.weakdep",
];

fn depmod(version: &str) -> PlannedChange {
    PlannedChange::Command {
        argv: vec!["depmod".into(), "-a".into(), version.into()],
        rewrites: DEPMOD_OUTPUTS
            .iter()
            .map(|f| PathBuf::from(format!("/lib/modules/{version}/{f}")))
            .collect(),
        kernel: Some(version.to_string()),
        why: format!("refresh module dependencies of {version}"),
    }
}

/// Keeps a module from loading: modprobe.d, kernel arguments, quarantine.
pub fn blacklist_module(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    module: &str,
) -> Result<()> {
    if module.is_empty()
        || !module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Failure::Usage(format!("`{module}` is not a kernel module name")).into());
    }
    let name = normalize_module(module);
    let conf = PathBuf::from(format!("/etc/modprobe.d/vmrescue-blacklist-{name}.conf"));
    let text = format!(
        "# Written by vmrescue: {name} crashed the kernel. `vmrescue undo` removes this file.\nblacklist {name}\ninstall {name} /bin/false\n"
    );
    planned.push(ws.write(
        &conf,
        text,
        &format!("keep {name} from loading (modprobe.d)"),
    )?);
    edit_kernel_arg(ws, ctx, planned, &format!("module_blacklist={name}"), true)?;
    edit_kernel_arg(
        ws,
        ctx,
        planned,
        &format!("rd.driver.blacklist={name}"),
        true,
    )?;
    let files = module_files(ws, &name)?;
    let mut versions: Vec<String> = Vec::new();
    for (version, path) in files {
        planned.changes.push(PlannedChange::Quarantine {
            path: path.clone(),
            why: format!(
                "move {} out of the modules tree (kept in the journal)",
                path.display()
            ),
        });
        ws.mark_removed(&path);
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    for version in versions {
        planned.changes.push(depmod(&version));
    }
    Ok(())
}

/// Storage and bus drivers a cloud VM needs in its initramfs to find its disk.
pub const PLATFORM_DRIVERS: &[&str] = &[
    "hv_vmbus",
    "hv_storvsc",
    "hv_netvsc",
    "hv_utils",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "nvme",
    "xen_blkfront",
];

/// Module names listed in a kernel's modules.dep (not the built-in ones).
fn loadable_modules(ws: &Workspace, version: &str) -> Result<Vec<String>> {
    let text = ws
        .read(format!("/lib/modules/{version}/modules.dep"))?
        .unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter_map(|path| path.rsplit('/').next())
        .map(|file| normalize_module(file.split(".ko").next().unwrap_or("")))
        .collect())
}

/// Forces the platform drivers that exist as modules for `version` into the
/// initramfs through the family's configuration; returns whether it changed.
fn ensure_platform_drivers(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    version: &str,
) -> Result<bool> {
    let available = loadable_modules(ws, version)?;
    let wanted: Vec<&str> = PLATFORM_DRIVERS
        .iter()
        .copied()
        .filter(|d| available.iter().any(|a| a == d))
        .collect();
    if wanted.is_empty() {
        return Ok(false);
    }
    let before = planned.changes.len();
    match ctx.facts.initramfs_generator {
        InitramfsGenerator::UpdateInitramfs => {
            let path = "/etc/initramfs-tools/modules";
            let text = ws.read(path)?.unwrap_or_default();
            let mut modules = InitramfsModules::parse(&text);
            let missing = modules.add(&wanted);
            if !missing.is_empty() {
                planned.push(ws.write(
                    path,
                    modules.render(),
                    &format!("force {} into the initramfs", missing.join(" ")),
                )?);
            }
        }
        InitramfsGenerator::Dracut => {
            let path = "/etc/dracut.conf.d/90-vmrescue-platform-drivers.conf";
            let text = format!(
                "# Written by vmrescue: storage/bus drivers the VM needs to find its disk.\nadd_drivers+=\" {} \"\n",
                wanted.join(" ")
            );
            planned.push(ws.write(
                path,
                text,
                "force the platform's storage drivers into the initramfs (dracut)",
            )?);
        }
    }
    Ok(planned.changes.len() > before)
}

fn mtime(ws: &Workspace, path: &Path) -> Option<i64> {
    ws.root().metadata(path).ok().map(|st| st.st_mtime)
}

/// "Not installed", with the kernels that are and how to name one.
fn not_installed(facts: &Facts, version: &str) -> Failure {
    let installed: Vec<String> = facts
        .kernels
        .iter()
        .map(|k| {
            let state = match (k.has_modules, k.initramfs_present) {
                (true, true) => "complete",
                (true, false) => "initramfs missing",
                (false, _) => "modules missing",
            };
            format!("{} ({state})", k.version)
        })
        .collect();
    Failure::Refused(format!(
        "kernel {version} is not installed on the target; installed: {}; choose one with --param kernel=VERSION",
        if installed.is_empty() {
            "none".to_string()
        } else {
            installed.join(", ")
        }
    ))
}

/// Regenerates the initramfs of explicit kernel versions with the target's generator.
pub fn rebuild_initramfs(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    versions: &[String],
    with_platform_drivers: bool,
    always: bool,
) -> Result<()> {
    for version in versions {
        let kernel = ctx
            .facts
            .kernels
            .iter()
            .find(|k| &k.version == version)
            .ok_or_else(|| not_installed(ctx.facts, version))?;
        if !kernel.has_modules {
            return Err(Failure::Refused(format!(
                "kernel {version} has no /lib/modules/{version}: its initramfs cannot be built (reinstall the kernel package)"
            ))
            .into());
        }
        let config_changed =
            with_platform_drivers && ensure_platform_drivers(ws, ctx, planned, version)?;
        let modules_dep = PathBuf::from(format!("/lib/modules/{version}/modules.dep"));
        let stale = match (mtime(ws, &kernel.initramfs), mtime(ws, &modules_dep)) {
            (Some(initramfs), Some(modules)) => initramfs < modules,
            _ => false,
        };
        let needed = always
            || !kernel.initramfs_present
            || stale
            || config_changed
            || planned
                .changes
                .iter()
                .any(|c| matches!(c, PlannedChange::Quarantine { .. }));
        if !needed {
            planned.notes.push(format!(
                "the initramfs of {version} is present and newer than its modules"
            ));
            continue;
        }
        planned.changes.push(depmod(version));
        let initramfs = kernel.initramfs.display().to_string();
        let argv: Vec<String> = match ctx.facts.initramfs_generator {
            InitramfsGenerator::UpdateInitramfs => {
                let mode = if ws.exists(&kernel.initramfs) {
                    "-u"
                } else {
                    "-c"
                };
                vec![
                    "update-initramfs".into(),
                    mode.into(),
                    "-k".into(),
                    version.clone(),
                ]
            }
            InitramfsGenerator::Dracut => vec![
                "dracut".into(),
                "-f".into(),
                "--no-hostonly-cmdline".into(),
                initramfs.clone(),
                version.clone(),
            ],
        };
        let tool = &argv[0];
        if !ws.root().has_program(tool) {
            return Err(Failure::Refused(format!(
                "the target has no {tool}: cannot regenerate its initramfs"
            ))
            .into());
        }
        planned.changes.push(PlannedChange::Command {
            argv,
            rewrites: vec![kernel.initramfs.clone()],
            kernel: Some(version.clone()),
            why: format!("regenerate {initramfs} for kernel {version}"),
        });
    }
    Ok(())
}

/// Adds `nofail` to fstab entries whose source is not on the disk and that
/// boot does not need.
pub fn fstab_nofail(ws: &mut Workspace, ctx: &ActionContext, planned: &mut Planned) -> Result<()> {
    let Some(layout) = ctx.layout else {
        planned
            .notes
            .push("fstab sources can only be checked against a mounted disk".into());
        return Ok(());
    };
    let essential = ["/", "/usr", "/boot", "/var"];
    let lines: Vec<usize> = layout
        .unresolved
        .iter()
        .filter(|n| !n.nofail && !essential.contains(&n.mount_point.as_str()))
        .map(|n| n.line)
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    let text = ws
        .read("/etc/fstab")?
        .context("the target has no /etc/fstab")?;
    let new: String = text
        .split_inclusive('\n')
        .enumerate()
        .map(|(index, line)| {
            if lines.contains(&(index + 1)) {
                crate::inspect::fstab::add_option_to_line(line, "nofail")
            } else {
                line.to_string()
            }
        })
        .collect();
    planned.push(ws.write(
        "/etc/fstab",
        new,
        "add nofail to entries whose source is missing, so boot goes on without them",
    )?);
    Ok(())
}

/// Makes `kernel` the default boot entry the way the boot configuration
/// does it (BLS id or a grub.cfg `submenu>entry` path in grubenv), or the
/// next boot only with `once`.
pub fn set_default_kernel(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    kernel: &str,
    once: bool,
) -> Result<()> {
    let facts = ctx.facts;
    let installed = facts
        .kernels
        .iter()
        .find(|k| k.version == kernel)
        .ok_or_else(|| not_installed(facts, kernel))?;
    if !installed.has_modules || !installed.initramfs_present {
        return Err(Failure::Refused(format!(
            "kernel {kernel} is incomplete (modules: {}, initramfs: {}): it would not boot either",
            if installed.has_modules {
                "yes"
            } else {
                "missing"
            },
            if installed.initramfs_present {
                "yes"
            } else {
                "missing"
            }
        ))
        .into());
    }
    if facts.grub_cfgs.is_empty() {
        if let Some(conf) = &facts.systemd_boot_conf {
            return set_systemd_boot_default(ws, planned, conf, kernel, once);
        }
    }
    let entry_path = grub_entry_path(ws, facts, kernel)?;
    let key = if once { "next_entry" } else { "saved_entry" };
    save_grubenv_entry(ws, planned, facts, key, &entry_path, kernel)?;
    if once {
        return Ok(());
    }
    // The file whose GRUB_DEFAULT takes effect (a grub.d drop-in may override /etc/default/grub).
    let defaults = grub_defaults(ws)?;
    let decider = defaults
        .get("GRUB_DEFAULT")
        .map_or(DEFAULT_GRUB.to_string(), |s| s.path.clone());
    if let Some(text) = ws.read(&decider)? {
        if defaults.value("GRUB_DEFAULT") != Some("saved") {
            let mut file = DefaultGrub::parse(&text);
            file.set("GRUB_DEFAULT", "saved");
            let new = file.render();
            planned.push(ws.write(
                &decider,
                new,
                &format!("GRUB_DEFAULT=saved in {decider} so later grub.cfg regenerations keep the choice"),
            )?);
        }
    }
    if !facts.uses_bls {
        let (cfg, text) = primary_grub_cfg(ws, facts)?;
        let new = point_default_at_saved_entry(&text);
        planned.push(ws.write(
            &cfg,
            new,
            "make grub.cfg boot ${saved_entry} (as GRUB_DEFAULT=saved generates it)",
        )?);
    }
    Ok(())
}

/// What grubenv's saved_entry/next_entry must say to boot `kernel`: the BLS
/// id, else the grub.cfg entry's `>`-path of ids (or of indexes).
fn grub_entry_path(ws: &Workspace, facts: &Facts, kernel: &str) -> Result<String> {
    let image_name = format!("vmlinuz-{kernel}");
    Ok(if facts.uses_bls {
        let entries = crate::inspect::bls::read_entries(ws.root(), BLS_DIR)?;
        entries
            .iter()
            .find(|e| {
                e.version() == Some(kernel)
                    || e.linux().and_then(|l| l.rsplit('/').next()) == Some(image_name.as_str())
            })
            .map(|e| e.id().to_string())
            .ok_or_else(|| Failure::Refused(format!("no BLS entry boots kernel {kernel}")))?
    } else {
        let (cfg, text) = primary_grub_cfg(ws, facts)?;
        let parsed = crate::inspect::grub_cfg::GrubCfg::parse(&text);
        let entries = parsed.entries_with_ids();
        let (index_path, id_path, _) = entries
            .iter()
            .filter(|(_, _, e)| {
                e.linux.as_ref().and_then(|l| l.image.rsplit('/').next())
                    == Some(image_name.as_str())
            })
            .find(|(_, _, e)| !e.title.contains("recovery") && !e.title.contains("rescue"))
            .ok_or_else(|| {
                Failure::Refused(format!(
                    "no menu entry in {} boots kernel {kernel}",
                    cfg.display()
                ))
            })?;
        // Ids keep naming this kernel after a later kernel update shifts the menu.
        id_path.clone().unwrap_or_else(|| index_path.clone())
    })
}

/// Writes `key=entry_path` into the target's grubenv (next to the first
/// non-ESP grub.cfg when the target has none yet).
fn save_grubenv_entry(
    ws: &mut Workspace,
    planned: &mut Planned,
    facts: &Facts,
    key: &str,
    entry_path: &str,
    kernel: &str,
) -> Result<()> {
    let grubenv = facts.grubenv.clone().or_else(|| {
        facts
            .grub_cfgs
            .iter()
            .find(|c| !c.starts_with("/boot/efi"))
            .and_then(|c| c.parent().map(|p| p.join("grubenv")))
    });
    let grubenv =
        grubenv.ok_or_else(|| Failure::Refused("no GRUB directory found for grubenv".into()))?;
    let block = ws.read(&grubenv)?.unwrap_or_default();
    // GRUB ignores a block without its header (or no file): start a new one.
    let mut env = Grubenv::parse(block.as_bytes()).unwrap_or_else(|_| Grubenv::empty());
    env.set(key, entry_path)
        .with_context(|| format!("setting grubenv {key}"))?;
    let new = render_grubenv(&env)?;
    planned.push(ws.write(
        &grubenv,
        new,
        &format!("{key}={entry_path} (kernel {kernel})"),
    )?);
    Ok(())
}

/// systemd-boot: loader.conf `default` names the kernel's entry file.
fn set_systemd_boot_default(
    ws: &mut Workspace,
    planned: &mut Planned,
    conf_path: &Path,
    kernel: &str,
    once: bool,
) -> Result<()> {
    if once {
        return Err(Failure::Refused(
            "systemd-boot keeps a one-time choice in an EFI variable (LoaderEntryOneShot) of the VM's firmware, which cannot be set from its disk: make the kernel the default instead (once=false)".into(),
        )
        .into());
    }
    let entries_dir = conf_path
        .parent()
        .map(|p| p.join("entries"))
        .context("loader.conf has no parent directory")?;
    let entries = crate::inspect::bls::read_entries(ws.root(), &entries_dir.to_string_lossy())?;
    let image_name = format!("vmlinuz-{kernel}");
    let entry = entries
        .iter()
        .find(|e| {
            e.version() == Some(kernel)
                || e.linux().is_some_and(|l| {
                    l.rsplit('/').next() == Some(image_name.as_str())
                        || l.contains(&format!("/{kernel}/"))
                })
        })
        .ok_or_else(|| {
            Failure::Refused(format!(
                "no systemd-boot entry in {} boots kernel {kernel}",
                entries_dir.display()
            ))
        })?;
    let text = ws.read(conf_path)?.unwrap_or_default();
    let mut conf = crate::inspect::loader_conf::LoaderConf::parse(&text);
    conf.set("default", &entry.file_name);
    planned.push(ws.write(
        conf_path,
        conf.render(),
        &format!(
            "systemd-boot default entry {} (kernel {kernel})",
            entry.file_name
        ),
    )?);
    Ok(())
}

fn primary_grub_cfg(ws: &Workspace, facts: &Facts) -> Result<(PathBuf, String)> {
    for cfg in &facts.grub_cfgs {
        if let Some(text) = ws.read(cfg)? {
            if !is_stub(&text) {
                return Ok((cfg.clone(), text));
            }
        }
    }
    Err(Failure::Refused("no grub.cfg with menu entries found on the target".into()).into())
}

/// `set default="0"` (outside the next_entry branch) → `set default="${saved_entry}"`.
pub fn point_default_at_saved_entry(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            let is_default = trimmed.starts_with("set default=")
                && !trimmed.contains("next_entry")
                && !trimmed.contains("saved_entry");
            if is_default {
                let indent = &line[..line.len() - trimmed.len()];
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                format!("{indent}set default=\"${{saved_entry}}\"{newline}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// How the root filesystem really is named: `UUID=…` for a partition, the
/// `/dev/mapper/VG-LV` path (with the VG's original name) for an LV.
/// A target given as a directory (`--root`): no disk, no root device.
fn is_directory_target(layout: &Layout) -> bool {
    layout.disk.is_none() && layout.image.is_none() && layout.root_device.is_none()
}

fn actual_root(layout: &Layout) -> Result<Option<(String, Vec<String>)>> {
    let Some(device) = layout.root_device.as_deref() else {
        return Ok(None);
    };
    if let Some(dm_name) = device.strip_prefix("/dev/mapper/") {
        let mut name = dm_name.to_string();
        for group in &layout.volume_groups {
            if let Some(temporary) = &group.temporary_name {
                let escaped_tmp = temporary.replace('-', "--");
                if let Some(rest) = name.strip_prefix(&format!("{escaped_tmp}-")) {
                    name = format!("{}-{rest}", group.name.replace('-', "--"));
                }
            }
        }
        let (vg, lv) = name
            .split_once('-')
            .map(|(v, l)| (v.replace("--", "-"), l.replace("--", "-")))
            .unwrap_or_default();
        let path = format!("/dev/mapper/{name}");
        return Ok(Some((path.clone(), vec![path, format!("/dev/{vg}/{lv}")])));
    }
    let probe = crate::disk::blkid::probe(device)?;
    let Some(uuid) = probe
        .as_ref()
        .and_then(|p| p.get("UUID"))
        .map(str::to_string)
    else {
        return Ok(None);
    };
    let mut names = vec![format!("UUID={uuid}"), format!("/dev/disk/by-uuid/{uuid}")];
    if let Some(label) = probe.as_ref().and_then(|p| p.get("LABEL")) {
        names.push(format!("LABEL={label}"));
    }
    if let Some(partuuid) = probe.as_ref().and_then(|p| p.get("PART_ENTRY_UUID")) {
        names.push(format!("PARTUUID={partuuid}"));
    }
    Ok(Some((format!("UUID={uuid}"), names)))
}

fn names_root(value: &str, names: &[String]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(value))
}

/// Points root= (grub.cfg, BLS, grubenv kernelopts, GRUB_CMDLINE_LINUX) and
/// fstab's `/` line at the root filesystem found on the disk.
pub fn fix_root_references(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
) -> Result<()> {
    let Some(layout) = ctx.layout else {
        return Err(Failure::Refused("fix-root-fs needs the disk (not --root): it compares root= with the disk's filesystems".into()).into());
    };
    if is_directory_target(layout) {
        // A root directory (`--root`) has no disk to compare root= with;
        // the fstab steps still apply.
        planned.notes.push(
            "root= and fstab's / are not compared: --root names a directory, not a disk".into(),
        );
        return Ok(());
    }
    let Some((spec, names)) = actual_root(layout)? else {
        return Err(Failure::Refused("cannot tell the root filesystem's UUID".into()).into());
    };
    let fix = CmdlineEdit::ReplaceValue {
        key: "root".into(),
        keep: names.clone(),
        value: spec.clone(),
    };
    for cfg in ctx.facts.grub_cfgs.clone() {
        let Some(text) = ws.read(&cfg)? else { continue };
        let mut parsed = GrubCfg::parse(&text);
        parsed.edit_linux_args(|_| true, &fix);
        let new = parsed.render().to_string();
        planned.push(ws.write(&cfg, new, &format!("root={spec} in {}", cfg.display()))?);
    }
    for entry in bls_entries(ws)? {
        let Some(text) = ws.read(&entry)? else {
            continue;
        };
        let new = edit_bls_options(&entry, &text, &fix);
        planned.push(ws.write(&entry, new, &format!("root={spec} in the BLS entry"))?);
    }
    if let Some(grubenv) = ctx.facts.grubenv.clone() {
        if let Some(block) = ws.read(&grubenv)? {
            if let Some(new) = edit_grubenv_kernelopts(&block, &fix)? {
                planned.push(ws.write(
                    &grubenv,
                    new,
                    &format!("root={spec} in grubenv kernelopts"),
                )?);
            }
        }
    }
    // Every file grub-mkconfig sources that assigns root= in GRUB_CMDLINE_LINUX.
    for path in grub_defaults(ws)?.files_assigning(CMDLINE_LINUX) {
        let Some(text) = ws.read(path)? else {
            continue;
        };
        let new = edit_grub_var(&text, CMDLINE_LINUX, &fix);
        planned.push(ws.write(
            path,
            new,
            &format!("root={spec} in GRUB_CMDLINE_LINUX of {path}"),
        )?);
    }
    if let Some(text) = ws.read("/etc/fstab")? {
        let new: String = text
            .split_inclusive('\n')
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let is_root = fields.get(1) == Some(&"/") && !line.trim_start().starts_with('#');
                if is_root && !names_root(fields[0], &names) {
                    let start = line.find(fields[0]).unwrap_or(0);
                    format!(
                        "{}{spec}{}",
                        &line[..start],
                        &line[start + fields[0].len()..]
                    )
                } else {
                    line.to_string()
                }
            })
            .collect();
        planned.push(ws.write("/etc/fstab", new, &format!("mount / from {spec}"))?);
    }
    Ok(())
}

/// Verification for fix-root-fs: every root= and fstab's `/` name the root filesystem.
pub fn check_root_resolves(
    root: &crate::rootfs::RootDir,
    facts: &Facts,
    layout: Option<&Layout>,
) -> Result<(&'static str, bool, String)> {
    if layout.is_some_and(is_directory_target) {
        return Ok((
            "root-resolves",
            true,
            "not checked: --root names a directory, not a disk".into(),
        ));
    }
    let Some((spec, names)) = layout.map(actual_root).transpose()?.flatten() else {
        return Ok((
            "root-resolves",
            false,
            "the root filesystem's name is unknown".into(),
        ));
    };
    let mut wrong = Vec::new();
    for (place, args) in super::facts::command_lines(root, facts)? {
        for value in KernelCmdline::parse(&args)
            .values("root")
            .into_iter()
            .flatten()
        {
            if !names_root(&value, &names) {
                wrong.push(format!("{place}: root={value}"));
            }
        }
    }
    let fstab = root.read_string_optional("/etc/fstab")?.unwrap_or_default();
    for line in fstab.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"/") && !names_root(fields[0], &names) {
            wrong.push(format!("/etc/fstab: {}", fields[0]));
        }
    }
    let detail = if wrong.is_empty() {
        format!("every root reference names {spec}")
    } else {
        wrong.join("; ")
    };
    Ok(("root-resolves", wrong.is_empty(), detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaked_rescue_device_roots_are_put_back() {
        let old = "menuentry 'Debian' {\n\tlinux /boot/vmlinuz-6.1 root=UUID=abcd ro quiet\n}\n";
        let new = "menuentry 'Debian' {\n\tlinux /boot/vmlinuz-6.1 root=/dev/loop0p2 ro quiet cgroup.memory=nokmem\n}\n";
        let fixed = fix_leaked_root(old, new).unwrap();
        assert!(
            fixed.contains("root=UUID=abcd ro quiet cgroup.memory=nokmem"),
            "{fixed}"
        );
        assert!(fix_leaked_root(old, old).is_none());
        assert!(
            is_rescue_device_root("/dev/sdc2")
                && !is_rescue_device_root("/dev/mapper/rootvg-rootlv")
        );
    }

    #[test]
    fn stubs_are_recognised() {
        assert!(is_stub("search --no-floppy --fs-uuid --set=dev abc\nset prefix=($dev)/grub2\nconfigfile $prefix/grub.cfg\n"));
        assert!(!is_stub("menuentry 'x' {\n}\nconfigfile x\n"));
    }
}
