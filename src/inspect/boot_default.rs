//! The effective default boot entry, computed the way the boot loader does.
//!
//! GRUB: grub.cfg's top-level `set default=…` (as `grub-mkconfig` generated
//! it from `GRUB_DEFAULT`), with `${saved_entry}` / `${next_entry}` taken
//! from the grubenv that `load_env` reads; `next_entry` wins once. The value
//! is a `>`-separated path whose parts are each an index, a title or an id
//! at that menu level; anything that does not resolve makes GRUB boot entry
//! 0. With `blscfg` (RHEL 8/9, Fedora) the BLS entries are spliced into the
//! menu in blscfg order, their ids are the file names, and `$kernelopts`
//! comes from grubenv (or grub.cfg's fallback). systemd-boot: loader.conf
//! `default` glob over the entries in menu order.
//!
//! [`resolve_grub`] and [`resolve_systemd_boot`] are pure; [`effective_default`]
//! finds and reads the files through [`RootDir`].

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::bls::{self, expand_grub_vars, BlsEntry};
use super::cmdline::KernelCmdline;
use super::default_grub::{GrubSettings, Setting};
use super::grub_cfg::{GrubCfg, MenuEntry, MenuNode};
use super::grubenv::Grubenv;
use super::kernels::image_version;
use super::loader_conf::{self, LoaderConf};
use crate::rootfs::RootDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Bootloader {
    Grub,
    SystemdBoot,
}

/// One bootable entry with everything needed to judge it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BootEntry {
    pub title: Option<String>,
    pub id: Option<String>,
    /// GRUB menu path of indexes (`1>0`).
    pub menu_path: Option<String>,
    pub kernel_version: Option<String>,
    /// The kernel as the boot loader names it (relative to its boot partition).
    pub image: Option<String>,
    /// Where that file is on the mounted target (`/boot/vmlinuz-…`), if found.
    pub image_path: Option<String>,
    pub initramfs: Vec<String>,
    pub initramfs_paths: Vec<String>,
    /// The kernel command line with boot loader variables expanded.
    pub cmdline: Option<String>,
    pub root: Option<String>,
    /// The file (and line) defining the entry.
    pub defined_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BootDefault {
    pub bootloader: Bootloader,
    #[serde(flatten)]
    pub entry: BootEntry,
    /// The raw default setting and its expansion, e.g. `${saved_entry}` → `…-4.18.0-553.el8_10.x86_64`.
    pub default_setting: Option<String>,
    pub default_value: Option<String>,
    /// How the entry was chosen, in words.
    pub selected_by: String,
    /// A pending one-shot `next_entry` (GRUB) that the next boot uses once.
    pub next_entry: Option<String>,
    /// The entry booted after the one-shot boot (when `next_entry` is set).
    pub after_next_entry: Option<BootEntry>,
    /// What `grubby --default-kernel` prints on BLS systems.
    pub grubby_default_kernel: Option<String>,
    /// Files whose content decided the result.
    pub decided_by: Vec<String>,
    /// The /etc/default/grub settings that shape the boot entries, each with
    /// the file (/etc/default/grub or a grub.d drop-in) whose assignment wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grub_settings: Vec<GrubSettingOrigin>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GrubSettingOrigin {
    pub name: String,
    pub value: String,
    /// `path line N` of the assignment that takes effect.
    pub decided_in: String,
    /// Earlier files that also assign it (overridden, or extended by `$NAME`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_in: Vec<String>,
}

/// The GRUB_* variables that change which entries grub-mkconfig writes and
/// what they boot with.
pub const GRUB_SETTINGS_THAT_MATTER: &[&str] = &[
    "GRUB_DEFAULT",
    "GRUB_SAVEDEFAULT",
    "GRUB_CMDLINE_LINUX",
    "GRUB_CMDLINE_LINUX_DEFAULT",
    "GRUB_FORCE_PARTUUID",
    "GRUB_DISABLE_LINUX_UUID",
    "GRUB_DISABLE_LINUX_PARTUUID",
    "GRUB_DISABLE_RECOVERY",
    "GRUB_DISABLE_SUBMENU",
    "GRUB_ENABLE_BLSCFG",
    "GRUB_TIMEOUT",
    "GRUB_TIMEOUT_STYLE",
    "GRUB_RECORDFAIL_TIMEOUT",
    "GRUB_TERMINAL",
];

fn setting_origins(settings: &GrubSettings) -> Vec<GrubSettingOrigin> {
    GRUB_SETTINGS_THAT_MATTER
        .iter()
        .filter_map(|name| {
            let setting: &Setting = settings.get(name)?;
            Some(GrubSettingOrigin {
                name: name.to_string(),
                value: setting.value.clone(),
                decided_in: format!("{} line {}", setting.path, setting.line),
                also_in: settings
                    .files_assigning(name)
                    .iter()
                    .filter(|p| **p != setting.path)
                    .cloned()
                    .collect(),
            })
        })
        .collect()
}

/// Inputs of the GRUB computation (already read and parsed).
pub struct GrubInputs<'a> {
    pub grub_cfg_path: &'a str,
    pub grub_cfg: &'a GrubCfg,
    pub grubenv_path: Option<&'a str>,
    pub grubenv: Option<&'a Grubenv>,
    /// /etc/default/grub merged with its grub.d drop-ins.
    pub default_grub: Option<&'a GrubSettings>,
    /// BLS entries as read (any order) and the directory they came from.
    pub bls_entries: Vec<BlsEntry>,
    pub bls_dir: &'a str,
}

#[derive(Debug, Clone)]
enum Item {
    Entry(Candidate),
    Submenu {
        title: String,
        id: Option<String>,
        children: Vec<Item>,
    },
}

#[derive(Debug, Clone)]
struct Candidate {
    title: String,
    id: Option<String>,
    image: Option<String>,
    args: Option<String>,
    initrds: Vec<String>,
    defined_in: String,
    from_bls: bool,
    /// Set when the entry picks its kernel/initramfs by a condition at boot.
    branch_note: Option<String>,
}

impl Item {
    fn title(&self) -> &str {
        match self {
            Item::Entry(c) => &c.title,
            Item::Submenu { title, .. } => title,
        }
    }
    fn id(&self) -> Option<&str> {
        match self {
            Item::Entry(c) => c.id.as_deref(),
            Item::Submenu { id, .. } => id.as_deref(),
        }
    }
}

/// Computes GRUB's default entry from parsed files; `exists` tells whether
/// a target path exists (to map `/vmlinuz-…` to `/boot/vmlinuz-…`).
pub fn resolve_grub(inputs: GrubInputs<'_>, exists: &dyn Fn(&str) -> bool) -> BootDefault {
    let mut warnings: Vec<String> = inputs
        .grub_cfg
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", inputs.grub_cfg_path))
        .collect();
    let mut decided_by = vec![inputs.grub_cfg_path.to_string()];

    // 1. Variables: grubenv (if grub.cfg loads it), then top-level sets.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    match (inputs.grubenv, inputs.grub_cfg.load_env_line) {
        (Some(grubenv), Some(_)) => {
            // As load_env at boot: every complete variable, a later duplicate winning.
            let boot = grubenv.boot_env();
            for (name, value) in boot.vars {
                env.insert(name, value);
            }
            let path = inputs.grubenv_path.unwrap_or("grubenv");
            warnings.extend(boot.anomalies.iter().map(|w| format!("{path}: {w}")));
            if grubenv
                .warnings()
                .iter()
                .any(|w| w.contains("invalid UTF-8"))
            {
                warnings.push(format!("{path}: contains invalid UTF-8; read lossily"));
            }
        }
        (Some(_), None) => warnings.push(format!(
            "{} has no load_env: GRUB does not read {}",
            inputs.grub_cfg_path,
            inputs.grubenv_path.unwrap_or("grubenv")
        )),
        (None, _) => {}
    }
    let grubenv_vars: BTreeMap<String, String> = env.clone();
    for set in inputs.grub_cfg.sets.iter().filter(|s| s.name != "default") {
        let guard = format!("[ -z ${{{}}} ]", set.name);
        let applies = match set.conditions.as_slice() {
            [] => true,
            [only] if *only == guard => env.get(&set.name).is_none_or(|v| v.is_empty()),
            _ => false,
        };
        if applies {
            env.insert(set.name.clone(), set.value.clone());
        }
    }
    let lookup = |name: &str| env.get(name).cloned();

    // 2. The menu, with BLS entries spliced in where blscfg runs.
    let mut bls_entries = inputs.bls_entries;
    let dropped = bls::sort_for_grub_blscfg(&mut bls_entries);
    for id in dropped {
        warnings.push(format!(
            "BLS entry {id} duplicates another entry's id order; GRUB skips it"
        ));
    }
    let menu = build_menu(
        &inputs.grub_cfg.menu,
        inputs.grub_cfg_path,
        &bls_entries,
        inputs.bls_dir,
        &lookup,
    );
    if inputs.grub_cfg.uses_blscfg() {
        decided_by.push(inputs.bls_dir.to_string());
        if bls_entries.is_empty() {
            warnings.push(format!(
                "grub.cfg uses blscfg but {} has no usable entries: the menu is empty",
                inputs.bls_dir
            ));
        }
    }

    // 3. The default setting as generated by grub-mkconfig.
    let settings: Vec<_> = inputs.grub_cfg.default_settings().collect();
    let one_shot_setting = settings.iter().find(|s| s.value.contains("next_entry"));
    let mut regular: Option<&str> = None;
    for setting in &settings {
        if setting.value.contains("next_entry") {
            continue;
        }
        let known = setting
            .conditions
            .iter()
            .all(|c| c.starts_with("not ") && c.contains("next_entry"));
        if known {
            regular = Some(setting.value.as_str());
        } else if setting
            .conditions
            .iter()
            .any(|c| c.contains("boot_counter"))
        {
            if lookup("boot_counter").is_some_and(|v| !v.is_empty())
                && lookup("boot_success").as_deref() == Some("0")
            {
                warnings.push(format!(
                    "boot counting is active (boot_counter={}, boot_success=0): GRUB may boot entry {} instead (grub.cfg line {})",
                    lookup("boot_counter").unwrap_or_default(),
                    setting.value,
                    setting.line
                ));
            }
        } else {
            warnings.push(format!(
                "grub.cfg line {}: `set default={}` depends on a runtime condition ({}); not applied",
                setting.line,
                setting.value,
                setting.conditions.join(" and ")
            ));
        }
    }
    if regular.is_none() && settings.is_empty() {
        if let Some(default) = grubenv_vars.get("default") {
            warnings.push(
                "grub.cfg sets no default; the `default` variable comes from grubenv".to_string(),
            );
            regular = Some(default.as_str());
        }
    }
    let regular_value = regular.map(|r| expand_grub_vars(r, &lookup));
    let next_entry = grubenv_vars
        .get("next_entry")
        .filter(|v| !v.is_empty())
        .cloned();
    if next_entry.is_some() && one_shot_setting.is_none() {
        warnings.push("grubenv next_entry is set but grub.cfg never reads it".to_string());
    }
    let uses_env = regular.is_some_and(|r| r.contains('$'))
        || next_entry.is_some()
        || inputs.grub_cfg.uses_blscfg();
    match inputs.grubenv_path {
        Some(path)
            if uses_env && inputs.grubenv.is_some() && inputs.grub_cfg.load_env_line.is_some() =>
        {
            decided_by.push(path.to_string())
        }
        None if uses_env => warnings.push(
            "no grubenv was found: saved_entry, next_entry and kernelopts are unset at boot"
                .to_string(),
        ),
        _ => {}
    }

    // 4. Consistency with /etc/default/grub (what the next grub-mkconfig would generate).
    let mut grub_settings = Vec::new();
    if let Some(default_grub) = inputs.default_grub {
        grub_settings = setting_origins(default_grub);
        for source in default_grub.sources() {
            let decides = source == super::default_grub::PATH
                || GRUB_SETTINGS_THAT_MATTER
                    .iter()
                    .any(|name| default_grub.get(name).is_some_and(|s| &s.path == source));
            if decides {
                decided_by.push(source.clone());
            }
        }
        for name in GRUB_SETTINGS_THAT_MATTER {
            if let Some(Setting {
                path,
                line,
                unexpanded: Some(why),
                ..
            }) = default_grub.get(name)
            {
                warnings.push(format!(
                    "{path} line {line}: {name} uses {why}, which vmrescue does not evaluate; its text is taken literally"
                ));
            }
        }
        check_default_grub(default_grub, regular, &grubenv_vars, &mut warnings);
    }

    // 5. Resolve.
    let one_shot = next_entry.as_ref().filter(|_| one_shot_setting.is_some());
    let persistent_spec = regular_value.clone().unwrap_or_default();
    let (spec, selected_by_prefix) = match one_shot {
        Some(next) => (
            next.clone(),
            format!("one-shot grubenv next_entry {next:?}"),
        ),
        None => match regular {
            Some(raw) if raw.contains("saved_entry") => (
                persistent_spec.clone(),
                format!("grubenv saved_entry {persistent_spec:?} (grub.cfg default={raw})"),
            ),
            Some(raw) => (persistent_spec.clone(), format!("grub.cfg default={raw}")),
            None => (
                String::new(),
                "no default set: GRUB boots entry 0".to_string(),
            ),
        },
    };
    let (entry, explanation) = resolve_spec(&menu, &spec, &lookup, exists, &mut warnings);
    let after_next_entry =
        one_shot.map(|_| resolve_spec(&menu, &persistent_spec, &lookup, exists, &mut warnings).0);

    if let Some(entry) = &entry {
        if let Some(candidate) = find_candidate(&menu, entry.menu_path.as_deref()) {
            if candidate.from_bls {
                decided_by.push(candidate.defined_in.clone());
            }
            let uses_kernelopts = candidate
                .args
                .as_deref()
                .is_some_and(|a| a.contains("kernelopts"));
            if uses_kernelopts && lookup("kernelopts").is_none_or(|v| v.trim().is_empty()) {
                warnings.push("the entry's options use $kernelopts but it is defined neither in grubenv nor in grub.cfg: the kernel gets no root=".to_string());
            } else if uses_kernelopts && !grubenv_vars.contains_key("kernelopts") {
                warnings.push(
                    "$kernelopts is not in grubenv; GRUB uses grub.cfg's fallback value"
                        .to_string(),
                );
            }
        }
        if entry.root.is_none() && entry.image.is_some() {
            warnings.push("the default entry's command line has no root=".to_string());
        }
    }

    let grubby_style =
        inputs.grub_cfg.uses_blscfg() || regular.is_some_and(|r| r.contains("saved_entry"));
    let grubby_default_kernel = grubby_style
        .then(|| {
            entry
                .as_ref()
                .and_then(|e| e.image_path.clone().or_else(|| e.image.clone()))
        })
        .flatten();
    decided_by.dedup();
    BootDefault {
        bootloader: Bootloader::Grub,
        entry: entry.unwrap_or_default(),
        default_setting: one_shot
            .map(|_| "${next_entry}".to_string())
            .or(regular.map(str::to_string)),
        default_value: (!spec.is_empty()).then(|| spec.clone()),
        selected_by: format!("{selected_by_prefix}: {explanation}"),
        next_entry: one_shot.cloned(),
        after_next_entry: after_next_entry.flatten(),
        grubby_default_kernel,
        decided_by,
        grub_settings,
        warnings,
    }
}

fn check_default_grub(
    default_grub: &GrubSettings,
    generated: Option<&str>,
    grubenv: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) {
    let grub_default = default_grub.value("GRUB_DEFAULT").unwrap_or("0");
    let default_file = default_grub
        .get("GRUB_DEFAULT")
        .map_or(super::default_grub::PATH, |s| s.path.as_str());
    let expected = if grub_default == "saved" {
        "${saved_entry}"
    } else {
        grub_default
    };
    if let Some(generated) = generated {
        if generated != expected {
            warnings.push(format!(
                "{default_file} has GRUB_DEFAULT={grub_default} but grub.cfg sets default={generated}: grub.cfg was not regenerated since the change (the next grub-mkconfig will change the default)"
            ));
        }
        if grub_default != "saved" && grubenv.get("saved_entry").is_some_and(|s| !s.is_empty()) {
            warnings.push(format!(
                "grubenv saved_entry={:?} is ignored because GRUB_DEFAULT is {grub_default}, not saved",
                grubenv.get("saved_entry").cloned().unwrap_or_default()
            ));
        }
    }
    if default_grub.value("GRUB_SAVEDEFAULT") == Some("true") {
        warnings.push(
            "GRUB_SAVEDEFAULT=true: every boot stores the entry it booted as saved_entry"
                .to_string(),
        );
    }
}

fn build_menu(
    nodes: &[MenuNode],
    cfg_path: &str,
    bls: &[BlsEntry],
    bls_dir: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<Item> {
    let mut items = Vec::new();
    for node in nodes {
        match node {
            MenuNode::Entry(entry) => {
                items.push(Item::Entry(candidate_from_cfg(entry, cfg_path, lookup)))
            }
            MenuNode::Submenu(submenu) => items.push(Item::Submenu {
                title: submenu.title.clone(),
                id: submenu.id.clone(),
                children: build_menu(&submenu.children, cfg_path, bls, bls_dir, lookup),
            }),
            MenuNode::Blscfg { .. } => {
                for entry in bls {
                    items.push(Item::Entry(Candidate {
                        title: entry
                            .title()
                            .or(entry.linux())
                            .unwrap_or_default()
                            .to_string(),
                        id: Some(entry.id().to_string()),
                        image: entry.linux().map(str::to_string),
                        args: entry
                            .options()
                            .map(str::to_string)
                            .or_else(|| Some("$default_kernelopts".into())),
                        initrds: entry
                            .get_all("initrd")
                            .into_iter()
                            .map(str::to_string)
                            .collect(),
                        defined_in: format!("{bls_dir}/{}", entry.file_name),
                        from_bls: true,
                        branch_note: None,
                    }))
                }
            }
        }
    }
    items
}

fn candidate_from_cfg(
    entry: &MenuEntry,
    cfg_path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Candidate {
    let holds = |condition: &str| test_condition(condition, lookup);
    let (linux, initrds) = entry.boot_files(&holds);
    let branch_note = entry.has_conditional_loads().then(|| {
        let conditions: Vec<&str> = entry
            .loads
            .iter()
            .flat_map(|l| l.conditions.iter().map(String::as_str))
            .filter(|c| !c.starts_with("not "))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let initrdfail = lookup("initrdfail").unwrap_or_default();
        format!(
            "the default entry picks its linux/initrd lines at boot ({}); shown is the branch taken with grubenv initrdfail={initrdfail:?}{}",
            conditions.join("; "),
            if initrds.is_empty() {
                " (Ubuntu initrdless boot: after a failed boot GRUB retries with the initramfs)"
            } else {
                ""
            }
        )
    });
    Candidate {
        title: entry.title.clone(),
        id: entry.id.clone(),
        image: linux.map(|l| l.image.clone()),
        args: linux.map(|l| l.args.clone()),
        initrds,
        defined_in: format!("{cfg_path} line {}", entry.line),
        from_bls: false,
        branch_note,
    }
}

/// Evaluates a GRUB `[ … ]` test as written in an `if` (`[ ${x} = 1 ]`,
/// `!=`, `-n`, `-z`, a bare word); `None` for anything else.
fn test_condition(condition: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<bool> {
    let words: Vec<String> = condition
        .split_whitespace()
        .map(|w| expand_grub_vars(w, lookup))
        .collect();
    let inner = match words.as_slice() {
        [open, inner @ .., close] if open == "[" && close == "]" => inner,
        _ => return None,
    };
    match inner {
        [a, op, b] if op == "=" || op == "==" => Some(a == b),
        [a, op, b] if op == "!=" => Some(a != b),
        [op, a] if op == "-n" => Some(!a.is_empty()),
        [op, a] if op == "-z" => Some(a.is_empty()),
        [op] if op == "-z" => Some(true),
        [op] if op == "-n" => Some(false),
        [a] => Some(!a.is_empty()),
        [] => Some(false),
        _ => None,
    }
}

/// Splits a GRUB default value at `>` (`>>` is a literal `>`).
fn split_path(spec: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '>' {
            if chars.peek() == Some(&'>') {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push('>');
                }
            } else {
                parts.push(String::new());
            }
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// Finds the item a default value names; falls back to entry 0 like GRUB.
fn resolve_spec(
    menu: &[Item],
    spec: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&str) -> bool,
    warnings: &mut Vec<String>,
) -> (Option<BootEntry>, String) {
    let mut level = menu;
    let mut path: Vec<usize> = Vec::new();
    let mut explanation = String::new();
    let mut failed = spec.is_empty();
    if !failed {
        for part in split_path(spec) {
            let index = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<usize>().ok().filter(|&i| i < level.len())
            } else {
                level
                    .iter()
                    .position(|item| item.id() == Some(part.as_str()) || item.title() == part)
            };
            match index {
                Some(i) => {
                    path.push(i);
                    match &level[i] {
                        Item::Submenu { children, .. } => level = children,
                        Item::Entry(_) => level = &[],
                    }
                }
                None => {
                    let hint = nested_hint(menu, &part);
                    warnings.push(format!(
                        "default {spec:?} names no entry at that menu level{hint}; GRUB falls back to entry 0"
                    ));
                    failed = true;
                    break;
                }
            }
        }
    }
    if failed {
        path = vec![0];
        explanation = "entry 0".to_string();
    }
    // A path ending at a submenu opens it; its first entry boots after the timeout.
    loop {
        let Some(item) = item_at(menu, &path) else {
            warnings.push("the GRUB menu is empty: nothing boots".to_string());
            return (None, "empty menu".to_string());
        };
        match item {
            Item::Entry(candidate) => {
                if explanation.is_empty() {
                    explanation = format!(
                        "matched {:?}",
                        candidate.id.as_deref().unwrap_or(&candidate.title)
                    );
                }
                let entry = entry_from_candidate(candidate, &path, lookup, exists, warnings);
                return (Some(entry), explanation);
            }
            Item::Submenu { title, .. } => {
                warnings.push(format!(
                    "the default is the submenu {title:?}: GRUB opens it and boots its first entry"
                ));
                path.push(0);
            }
        }
    }
}

fn item_at<'a>(menu: &'a [Item], path: &[usize]) -> Option<&'a Item> {
    let (first, rest) = path.split_first()?;
    let mut item = menu.get(*first)?;
    for &index in rest {
        match item {
            Item::Submenu { children, .. } => item = children.get(index)?,
            Item::Entry(_) => return None,
        }
    }
    Some(item)
}

fn find_candidate<'a>(menu: &'a [Item], menu_path: Option<&str>) -> Option<&'a Candidate> {
    let path: Vec<usize> = menu_path?
        .split('>')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match item_at(menu, &path)? {
        Item::Entry(c) => Some(c),
        Item::Submenu { .. } => None,
    }
}

/// " (it exists as 'Advanced options…>title')" when the name is inside a submenu.
fn nested_hint(menu: &[Item], name: &str) -> String {
    for item in menu {
        if let Item::Submenu {
            title, children, ..
        } = item
        {
            if children
                .iter()
                .any(|c| c.title() == name || c.id() == Some(name))
            {
                return format!(
                    " (it is inside submenu {title:?}; GRUB needs \"{}>{name}\")",
                    title.replace('>', ">>")
                );
            }
        }
    }
    String::new()
}

fn entry_from_candidate(
    candidate: &Candidate,
    path: &[usize],
    lookup: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&str) -> bool,
    warnings: &mut Vec<String>,
) -> BootEntry {
    let cmdline = candidate
        .args
        .as_deref()
        .map(|a| expand_grub_vars(a, lookup));
    let root = cmdline
        .as_deref()
        .and_then(|c| KernelCmdline::parse(c).value("root").flatten());
    let initramfs: Vec<String> = candidate
        .initrds
        .iter()
        .flat_map(|i| {
            expand_grub_vars(i, lookup)
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let image_path = candidate
        .image
        .as_deref()
        .and_then(|i| target_path(i, exists));
    if let (Some(image), None) = (&candidate.image, &image_path) {
        warnings.push(format!(
            "the default entry's kernel {image} is not on the target"
        ));
    }
    let mut initramfs_paths = Vec::new();
    for initrd in &initramfs {
        match target_path(initrd, exists) {
            Some(p) => initramfs_paths.push(p),
            None => warnings.push(format!(
                "the default entry's initramfs {initrd} is not on the target"
            )),
        }
    }
    if let Some(note) = &candidate.branch_note {
        warnings.push(note.clone());
    }
    if candidate.image.is_some() && initramfs.is_empty() {
        warnings.push("the default entry loads no initramfs".to_string());
    }
    let kernel_version = candidate
        .image
        .as_deref()
        .and_then(|i| i.rsplit('/').next())
        .and_then(image_version)
        .map(str::to_string);
    BootEntry {
        title: Some(candidate.title.clone()),
        id: candidate.id.clone(),
        menu_path: Some(
            path.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(">"),
        ),
        kernel_version,
        image: candidate.image.clone(),
        image_path,
        initramfs,
        initramfs_paths,
        cmdline,
        root,
        defined_in: Some(candidate.defined_in.clone()),
    }
}

/// Maps a boot-loader path to the target: `/boot` + path when /boot is its
/// own partition, else the path itself. Strips a leading `(hd0,gpt2)`.
fn target_path(path: &str, exists: &dyn Fn(&str) -> bool) -> Option<String> {
    let path = match path.strip_prefix('(') {
        Some(rest) => rest.split_once(')').map_or(path, |(_, p)| p),
        None => path,
    };
    if !path.starts_with('/') {
        return None;
    }
    let under_boot = format!("/boot{path}");
    if !path.starts_with("/boot/") && exists(&under_boot) {
        Some(under_boot)
    } else if exists(path) {
        Some(path.to_string())
    } else {
        None
    }
}

/// systemd-boot's default entry.
pub fn resolve_systemd_boot(
    loader_conf_path: &str,
    conf: Option<&LoaderConf>,
    entries_dir: &str,
    mut entries: Vec<BlsEntry>,
    esp: &str,
    exists: &dyn Fn(&str) -> bool,
) -> BootDefault {
    bls::sort_for_systemd_boot(&mut entries);
    let mut warnings = Vec::new();
    let mut decided_by = vec![loader_conf_path.to_string(), entries_dir.to_string()];
    let choice = loader_conf::systemd_boot_default(conf, &entries);
    let entry = choice.as_ref().and_then(|c| entries.get(c.index)).map(|e| {
        let no_env = |_: &str| None;
        let esp_exists = |p: &str| exists(&format!("{esp}{p}")) || exists(p);
        let candidate = Candidate {
            title: e.title().unwrap_or(e.id()).to_string(),
            id: Some(e.file_name.clone()),
            image: e.linux().map(str::to_string),
            args: e.options().map(str::to_string),
            initrds: e
                .get_all("initrd")
                .into_iter()
                .map(str::to_string)
                .collect(),
            defined_in: format!("{entries_dir}/{}", e.file_name),
            from_bls: true,
            branch_note: None,
        };
        decided_by.push(candidate.defined_in.clone());
        let index = choice.as_ref().map_or(0, |c| c.index);
        let mut entry =
            entry_from_candidate(&candidate, &[index], &no_env, &esp_exists, &mut warnings);
        entry.image_path = entry.image.as_deref().and_then(|i| {
            let on_esp = format!("{esp}{i}");
            if exists(&on_esp) {
                Some(on_esp)
            } else {
                target_path(i, exists)
            }
        });
        entry
    });
    if let Some(choice) = &choice {
        warnings.extend(choice.warnings.iter().cloned());
    } else {
        warnings.push(format!(
            "{entries_dir} has no entries: systemd-boot has nothing to boot"
        ));
    }
    BootDefault {
        bootloader: Bootloader::SystemdBoot,
        entry: entry.unwrap_or_default(),
        default_setting: conf.and_then(|c| c.default_pattern()).map(str::to_string),
        default_value: None,
        selected_by: choice
            .map(|c| c.reason)
            .unwrap_or_else(|| "no entries".into()),
        next_entry: None,
        after_next_entry: None,
        grubby_default_kernel: None,
        decided_by,
        grub_settings: Vec::new(),
        warnings,
    }
}

/// Where GRUB's config may be, in the order they are tried. UEFI configs
/// that only chain to the boot partition (`configfile`) are skipped.
const GRUB_CFG_PATHS: [&str; 2] = ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"];
const ESP_DIRS: [&str; 2] = ["/boot/efi", "/efi"];
const BLS_DIR: &str = "/boot/loader/entries";

/// Reads the target's boot configuration and computes its default entry.
pub fn effective_default(root: &RootDir) -> Result<BootDefault> {
    let exists = |p: &str| root.is_file(p);
    let mut notes = Vec::new();
    let grub = find_grub_cfg(root, &mut notes)?;
    if let Some((cfg_path, cfg)) = grub {
        let cfg_dir = cfg_path
            .rsplit_once('/')
            .map_or("/", |(d, _)| d)
            .to_string();
        let mut grubenv_path = None;
        let mut grubenv = None;
        let beside = format!("{cfg_dir}/grubenv");
        for candidate in [beside.as_str(), "/boot/grub2/grubenv", "/boot/grub/grubenv"] {
            if !root.exists(candidate) {
                continue;
            }
            let bytes = root
                .read(candidate)
                .with_context(|| format!("reading {candidate}"))?;
            match Grubenv::parse(&bytes) {
                Ok(env) => {
                    grubenv = Some(env);
                    grubenv_path = Some(candidate.to_string());
                }
                Err(err) => notes.push(format!("{candidate}: {err}; GRUB ignores it")),
            }
            break;
        }
        if grubenv_path.as_deref().is_some_and(|p| p != beside) && cfg.load_env_line.is_some() {
            notes.push(format!(
                "no grubenv beside {cfg_path}; using {}",
                grubenv_path.clone().unwrap_or_default()
            ));
        }
        let sourced = super::default_grub::load_all(root)?;
        for file in &sourced {
            notes.extend(
                file.file
                    .warnings()
                    .iter()
                    .map(|w| format!("{}: {w}", file.path)),
            );
        }
        let default_grub = (!sourced.is_empty()).then(|| GrubSettings::merge(&sourced));
        let bls_entries = if cfg.uses_blscfg() {
            bls::read_entries(root, BLS_DIR)?
        } else {
            Vec::new()
        };
        let mut result = resolve_grub(
            GrubInputs {
                grub_cfg_path: &cfg_path,
                grub_cfg: &cfg,
                grubenv_path: grubenv_path.as_deref(),
                grubenv: grubenv.as_ref(),
                default_grub: default_grub.as_ref(),
                bls_entries,
                bls_dir: BLS_DIR,
            },
            &exists,
        );
        notes.append(&mut result.warnings);
        result.warnings = notes;
        return Ok(result);
    }
    for esp in ESP_DIRS.iter().copied().chain(["/boot"]) {
        let conf_path = format!("{esp}/loader/loader.conf");
        let entries_dir = format!("{esp}/loader/entries");
        let conf_text = root
            .read_string_optional(&conf_path)
            .with_context(|| format!("reading {conf_path}"))?;
        if conf_text.is_none() || esp == "/boot" && !root.is_dir(&entries_dir) {
            continue;
        }
        let conf = conf_text.map(|t| LoaderConf::parse(&t));
        let entries = bls::read_entries(root, &entries_dir)?;
        let mut result = resolve_systemd_boot(
            &conf_path,
            conf.as_ref(),
            &entries_dir,
            entries,
            esp,
            &exists,
        );
        notes.append(&mut result.warnings);
        result.warnings = notes;
        return Ok(result);
    }
    bail!(
        "no boot loader configuration on the target: none of {}, /boot/efi/EFI/*/grub.cfg or a systemd-boot loader/loader.conf exists",
        GRUB_CFG_PATHS.join(", ")
    )
}

/// The grub.cfg GRUB reads: a full config on the ESP (RHEL 7/8 UEFI) wins
/// over /boot/grub2 and /boot/grub; chain-loading stubs are skipped.
pub fn find_grub_cfg(root: &RootDir, notes: &mut Vec<String>) -> Result<Option<(String, GrubCfg)>> {
    let mut candidates: Vec<String> = Vec::new();
    for esp in ESP_DIRS {
        let efi = format!("{esp}/EFI");
        for entry in root
            .list_dir(&efi)
            .with_context(|| format!("listing {efi}"))?
        {
            let path = format!("{efi}/{}/grub.cfg", entry.name.to_string_lossy());
            if root.is_file(&path) {
                candidates.push(path);
            }
        }
    }
    candidates.extend(
        GRUB_CFG_PATHS
            .iter()
            .map(|p| p.to_string())
            .filter(|p| root.is_file(p)),
    );
    let mut real: Vec<(String, GrubCfg)> = Vec::new();
    for path in candidates {
        let bytes = root
            .read(&path)
            .with_context(|| format!("reading {path}"))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{path} is not valid UTF-8; read lossily"));
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        let cfg = GrubCfg::parse(&text);
        let is_stub = cfg.menu.is_empty() && text.contains("configfile");
        if !is_stub {
            real.push((path, cfg));
        }
    }
    if real.len() > 1 {
        let others: Vec<_> = real[1..].iter().map(|(p, _)| p.as_str()).collect();
        notes.push(format!(
            "several GRUB configs exist; using {} (UEFI configs first), also found {}",
            real[0].0,
            others.join(", ")
        ));
    }
    Ok(real.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::super::default_grub::{DefaultGrub, SourcedFile};
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/boot/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
    fn text(name: &str) -> String {
        String::from_utf8(fixture(name)).unwrap()
    }
    fn block(vars: &str) -> Grubenv {
        let mut b = format!("# GRUB Environment Block\n{vars}").into_bytes();
        b.resize(1024, b'#');
        Grubenv::parse(&b).unwrap()
    }
    fn bls_dir(dir: &str) -> Vec<BlsEntry> {
        let full = format!("{}/tests/fixtures/boot/{dir}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_dir(full)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                BlsEntry::parse(&name, &std::fs::read_to_string(e.path()).unwrap())
            })
            .collect()
    }
    fn etc_default_grub(text: &str) -> GrubSettings {
        GrubSettings::merge(&[SourcedFile {
            path: super::super::default_grub::PATH.to_string(),
            file: DefaultGrub::parse(text),
        }])
    }
    fn everything_exists(_: &str) -> bool {
        true
    }
    fn grub(
        cfg: &GrubCfg,
        env: Option<&Grubenv>,
        default_grub: Option<&GrubSettings>,
        bls: Vec<BlsEntry>,
    ) -> BootDefault {
        resolve_grub(
            GrubInputs {
                grub_cfg_path: "/boot/grub2/grub.cfg",
                grub_cfg: cfg,
                grubenv_path: env.map(|_| "/boot/grub2/grubenv"),
                grubenv: env,
                default_grub,
                bls_entries: bls,
                bls_dir: BLS_DIR,
            },
            &everything_exists,
        )
    }

    #[test]
    fn ubuntu_saved_entry_as_submenu_path_of_ids() {
        let cfg = GrubCfg::parse(
            &text("ubuntu2404/grub.cfg")
                .replace("set default=\"0\"", "set default=\"${saved_entry}\""),
        );
        let env = block("saved_entry=gnulinux-advanced-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb>gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb\n");
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
        assert_eq!(
            r.entry.title.as_deref(),
            Some("Ubuntu, with Linux 6.8.0-88-generic (recovery mode)")
        );
        assert_eq!(r.entry.kernel_version.as_deref(), Some("6.8.0-88-generic"));
        assert_eq!(
            r.entry.root.as_deref(),
            Some("/dev/mapper/ubuntu--otus-ubuntu--lv")
        );
        assert!(r
            .entry
            .cmdline
            .as_deref()
            .unwrap()
            .ends_with("recovery nomodeset dis_ucode_ldr"));
        assert_eq!(
            r.decided_by,
            ["/boot/grub2/grub.cfg", "/boot/grub2/grubenv"]
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn ubuntu_index_and_title_paths_and_next_entry_one_shot() {
        let cfg = GrubCfg::parse(&text("ubuntu2404/grub.cfg"));
        let env = Grubenv::parse(&fixture("ubuntu2404/grubenv")).unwrap();
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(
            r.next_entry.as_deref(),
            Some("gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb")
        );
        // next_entry names an entry inside the submenu without its path: GRUB falls back to 0.
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("inside submenu \"Advanced options for Ubuntu\"")),
            "{:?}",
            r.warnings
        );
        assert_eq!(r.after_next_entry.unwrap().title.as_deref(), Some("Ubuntu"));

        let cfg = GrubCfg::parse(
            &text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"1>0\""),
        );
        let r = grub(&cfg, None, None, vec![]);
        assert_eq!(
            r.entry.title.as_deref(),
            Some("Ubuntu, with Linux 6.8.0-88-generic")
        );
        let cfg = GrubCfg::parse(&text("ubuntu2404/grub.cfg").replace(
            "set default=\"0\"",
            "set default=\"Advanced options for Ubuntu>Ubuntu, with Linux 6.8.0-88-generic (recovery mode)\"",
        ));
        let r = grub(&cfg, None, None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
    }

    #[test]
    fn rhel7_title_saved_entry_and_stale_title_fallback() {
        let cfg = GrubCfg::parse(&text("rhel7/grub.cfg"));
        let env = block(
            "saved_entry=Red Hat Enterprise Linux Server (3.10.0-327.el7.x86_64) 7.2 (Maipo)\n",
        );
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("1"));
        assert_eq!(
            r.entry.kernel_version.as_deref(),
            Some("3.10.0-327.el7.x86_64")
        );
        assert_eq!(
            r.entry.root.as_deref(),
            Some("/dev/mapper/rhel_team--area--222-root")
        );

        // grubby's fixture: saved_entry carries a title that no longer exists.
        let env = Grubenv::parse(&fixture("rhel7/grubenv")).unwrap();
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("falls back to entry 0")));
    }

    #[test]
    fn rhel8_expanded_bls_menu_with_saved_id_and_kernelopts() {
        let cfg = GrubCfg::parse(&text("rhel8/grub.cfg"));
        let env = Grubenv::parse(&fixture("rhel8/grubenv")).unwrap();
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(
            r.entry.id.as_deref(),
            Some("8e15296c9cc14deb9e3f8548d49fd6fc-4.18.0-80.el8.ppc64le")
        );
        assert_eq!(r.entry.menu_path.as_deref(), Some("1"));
        assert_eq!(r.entry.root.as_deref(), Some("/dev/mapper/rhel-root"));
        assert_eq!(r.entry.initramfs, ["/initramfs-4.18.0-80.el8.ppc64le.img"]);
        assert_eq!(
            r.entry.image_path.as_deref(),
            Some("/boot/vmlinuz-4.18.0-80.el8.ppc64le")
        );
    }

    #[test]
    fn rhel9_blscfg_saved_entry_is_bls_id_and_grubby_agrees() {
        let cfg = GrubCfg::parse(
            "load_env -f ${config_directory}/grubenv\nif [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\nelse\n   set default=\"${saved_entry}\"\nfi\ninsmod blscfg\nblscfg\n",
        );
        let env = block("saved_entry=7b92728670d64c65879a91ae405012ed-4.18.0-553.el8_10.x86_64\nkernelopts=root=UUID=2f64 ro crashkernel=auto\n");
        let r = grub(&cfg, Some(&env), None, bls_dir("rocky8/loader/entries"));
        assert_eq!(
            r.entry.menu_path.as_deref(),
            Some("1"),
            "blscfg lists the newer 553.22.1 first"
        );
        assert_eq!(
            r.entry.cmdline.as_deref(),
            Some("root=UUID=2f64 ro crashkernel=auto ")
        );
        assert_eq!(
            r.grubby_default_kernel.as_deref(),
            Some("/boot/vmlinuz-4.18.0-553.el8_10.x86_64")
        );
        assert!(
            r.decided_by
                .iter()
                .any(|d| d
                    .ends_with("7b92728670d64c65879a91ae405012ed-4.18.0-553.el8_10.x86_64.conf"))
        );

        let env = block("saved_entry=7b92728670d64c65879a91ae405012ed-4.18.0-477.el8_8.x86_64\n");
        let r = grub(&cfg, Some(&env), None, bls_dir("rocky8/loader/entries"));
        assert_eq!(
            r.entry.kernel_version.as_deref(),
            Some("4.18.0-553.22.1.el8_10.x86_64")
        );
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("falls back to entry 0")));
        assert!(
            r.warnings.iter().any(|w| w.contains("no root=")),
            "no kernelopts anywhere: {:?}",
            r.warnings
        );
    }

    #[test]
    fn rocky8_grub_default_0_ignores_saved_entry() {
        let cfg = GrubCfg::parse(&text("rocky8/grub.cfg"));
        let env = Grubenv::parse(&fixture("rocky8/grubenv")).unwrap();
        let default_grub = etc_default_grub("GRUB_DEFAULT=0\nGRUB_ENABLE_BLSCFG=true\n");
        let r = grub(
            &cfg,
            Some(&env),
            Some(&default_grub),
            bls_dir("rocky8/loader/entries"),
        );
        assert_eq!(
            r.entry.kernel_version.as_deref(),
            Some("4.18.0-553.22.1.el8_10.x86_64")
        );
        assert_eq!(
            r.entry.root.as_deref(),
            Some("UUID=2f64394d-a847-4c1a-bda9-e658edc017ad")
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("is ignored because GRUB_DEFAULT is 0")),
            "{:?}",
            r.warnings
        );

        let default_grub = etc_default_grub("GRUB_DEFAULT=saved\n");
        let r = grub(
            &cfg,
            Some(&env),
            Some(&default_grub),
            bls_dir("rocky8/loader/entries"),
        );
        assert!(
            r.warnings.iter().any(|w| w.contains("was not regenerated")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn systemd_boot_default_from_loader_conf() {
        let entries = vec![
            BlsEntry::parse("abc-6.1.0.conf", "title Debian\nversion 6.1.0\nlinux /abc/6.1.0/linux\ninitrd /abc/6.1.0/initrd.img-6.1.0\noptions root=UUID=1 ro\n"),
            BlsEntry::parse("abc-6.5.0.conf", "title Debian\nversion 6.5.0\nlinux /abc/6.5.0/linux\noptions root=UUID=2 ro\n"),
        ];
        let conf = LoaderConf::parse("default abc-6.1*\ntimeout 3\n");
        let exists = |p: &str| p == "/boot/efi/abc/6.1.0/linux";
        let r = resolve_systemd_boot(
            "/boot/efi/loader/loader.conf",
            Some(&conf),
            "/boot/efi/loader/entries",
            entries,
            "/boot/efi",
            &exists,
        );
        assert_eq!(r.entry.id.as_deref(), Some("abc-6.1.0.conf"));
        assert_eq!(r.entry.root.as_deref(), Some("UUID=1"));
        assert_eq!(
            r.entry.image_path.as_deref(),
            Some("/boot/efi/abc/6.1.0/linux")
        );
    }

    #[test]
    fn sles15_title_saved_entry_and_btrfs_snapshot_source() {
        let cfg = GrubCfg::parse(&text("sles15/grub.cfg"));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let env = Grubenv::parse(&fixture("sles15/grubenv")).unwrap();
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert_eq!(r.entry.title.as_deref(), Some("SLES 15-SP4"));
        assert_eq!(
            r.entry.kernel_version.as_deref(),
            Some("5.14.21-150400.24.46-default")
        );
        assert_eq!(
            r.entry.initramfs,
            ["/boot/initrd-5.14.21-150400.24.46-default"]
        );
        assert_eq!(
            r.entry.root.as_deref(),
            Some("UUID=3c5b7fb5-8f5c-4d4c-9a2d-3b2a6b1e8f11")
        );
        assert!(!r
            .entry
            .cmdline
            .as_deref()
            .unwrap()
            .contains("extra_cmdline"));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);

        // grub2-set-default with the older kernel's submenu path.
        let env = block("saved_entry=Advanced options for SLES 15-SP4>SLES 15-SP4, with Linux 5.14.21-150400.24.41-default\n");
        let r = grub(&cfg, Some(&env), None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("1>2"));
        assert_eq!(
            r.entry.kernel_version.as_deref(),
            Some("5.14.21-150400.24.41-default")
        );
    }

    #[test]
    fn debian_default_with_a_space_is_not_a_path() {
        // GRUB_DEFAULT="1 >0" as written on a real Debian 12 host: "1 " is neither
        // an index nor a title, so GRUB boots entry 0.
        let cfg = GrubCfg::parse(
            &text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"1 >0\""),
        );
        let r = grub(&cfg, None, None, vec![]);
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("\"1 >0\" names no entry")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn oversized_grub_cfg_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot/grub/grub.cfg");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(100 * 1024 * 1024)
            .unwrap();
        let err = effective_default(&RootDir::open(dir.path()).unwrap()).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("/boot/grub/grub.cfg") && message.contains("larger than"),
            "{message}"
        );
    }

    fn put(root: &Path, path: &str, content: &[u8]) {
        let full = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    #[test]
    fn effective_default_reads_rhel8_uefi_layout_with_grubenv_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // RHEL 8 UEFI: the real grub.cfg and grubenv on the ESP, /boot/grub2/grubenv a symlink to it.
        let cfg =
            text("rocky8/grub.cfg").replace("set default=\"0\"", "set default=\"${saved_entry}\"");
        put(r, "/boot/efi/EFI/redhat/grub.cfg", cfg.as_bytes());
        put(
            r,
            "/boot/efi/EFI/redhat/grubenv",
            &fixture("rocky8/grubenv"),
        );
        std::fs::create_dir_all(r.join("boot/grub2")).unwrap();
        std::os::unix::fs::symlink("../efi/EFI/redhat/grubenv", r.join("boot/grub2/grubenv"))
            .unwrap();
        put(r, "/boot/efi/EFI/BOOT/grub.cfg", b"search --fs-uuid --set=dev 2f64\nset prefix=($dev)/grub2\nconfigfile $prefix/grub.cfg\n");
        for e in bls_dir("rocky8/loader/entries") {
            put(
                r,
                &format!("/boot/loader/entries/{}", e.file_name),
                e.render().as_bytes(),
            );
        }
        put(r, "/boot/vmlinuz-4.18.0-553.el8_10.x86_64", b"k");
        put(r, "/boot/initramfs-4.18.0-553.el8_10.x86_64.img", b"i");
        put(
            r,
            "/etc/default/grub",
            b"GRUB_DEFAULT=saved\nGRUB_CMDLINE_LINUX=\"crashkernel=auto\"\n",
        );
        let result = effective_default(&RootDir::open(r).unwrap()).unwrap();
        assert_eq!(
            result.entry.kernel_version.as_deref(),
            Some("4.18.0-553.el8_10.x86_64")
        );
        assert_eq!(
            result.entry.image_path.as_deref(),
            Some("/boot/vmlinuz-4.18.0-553.el8_10.x86_64")
        );
        assert_eq!(
            result.entry.initramfs_paths,
            ["/boot/initramfs-4.18.0-553.el8_10.x86_64.img"]
        );
        assert_eq!(result.decided_by[0], "/boot/efi/EFI/redhat/grub.cfg");
        assert!(result
            .decided_by
            .contains(&"/boot/efi/EFI/redhat/grubenv".to_string()));
        assert!(result.warnings.is_empty(), "{:?}", result.warnings);
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["kernel_version"], "4.18.0-553.el8_10.x86_64");
        assert_eq!(json["bootloader"], "grub");
    }

    const RECOVERY: &str = "gnulinux-advanced-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb>gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb";

    /// ubuntu2404's grub.cfg as GRUB_DEFAULT=saved generates it, with a grubenv of these bytes.
    fn saved_default_with_grubenv(bytes: &[u8]) -> BootDefault {
        let cfg = GrubCfg::parse(
            &text("ubuntu2404/grub.cfg")
                .replace("set default=\"0\"", "set default=\"${saved_entry}\""),
        );
        let env = Grubenv::parse(bytes).unwrap();
        grub(
            &cfg,
            Some(&env),
            Some(&etc_default_grub("GRUB_DEFAULT=saved\n")),
            vec![],
        )
    }

    fn has_warning(result: &BootDefault, parts: &[&str]) -> bool {
        result
            .warnings
            .iter()
            .any(|w| parts.iter().all(|p| w.contains(p)))
    }

    #[test]
    fn short_grubenv_without_padding_still_gives_its_complete_saved_entry() {
        // GRUB's envblk accepts any size once the signature matches.
        let mut bytes = format!("# GRUB Environment Block\nsaved_entry={RECOVERY}\n").into_bytes();
        bytes.resize(700, b'#');
        let r = saved_default_with_grubenv(&bytes);
        assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
        assert!(
            has_warning(&r, &["/boot/grub2/grubenv: size is 700 bytes"]),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn grubenv_cut_inside_saved_entry_boots_entry_0_with_a_warning_naming_the_file() {
        let bytes = format!("# GRUB Environment Block\nsaved_entry={}", &RECOVERY[..40]);
        let r = saved_default_with_grubenv(bytes.as_bytes());
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert_eq!(r.entry.title.as_deref(), Some("Ubuntu"));
        assert!(
            has_warning(&r, &["/boot/grub2/grubenv: ", "cut off", "GRUB drops it"]),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn grubenv_garbage_after_the_block_is_read_like_grub_does() {
        let mut bytes = block(&format!("saved_entry={RECOVERY}\n"))
            .render()
            .unwrap();
        // Binary junk with no newline continues the padding line: a comment.
        let mut junk = bytes.clone();
        junk.extend_from_slice(&[0xff, 0x00, b'x', b'=', b'1']);
        let r = saved_default_with_grubenv(&junk);
        assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
        assert!(has_warning(&r, &["size is 1029 bytes"]), "{:?}", r.warnings);
        // A later definition after the padding wins at boot.
        bytes.extend_from_slice(b"\nsaved_entry=0\n");
        let r = saved_default_with_grubenv(&bytes);
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert!(
            has_warning(
                &r,
                &["saved_entry is defined more than once", "keeps the last"]
            ),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn grubenv_junk_line_swallows_the_next_name_so_saved_entry_is_unset() {
        let mut bytes =
            format!("# GRUB Environment Block\njunk\nsaved_entry={RECOVERY}\n").into_bytes();
        bytes.resize(1024, b'#');
        let r = saved_default_with_grubenv(&bytes);
        assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
        assert!(
            has_warning(
                &r,
                &["/boot/grub2/grubenv: \"junk\"", "saved_entry is not set"]
            ),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn grubenv_without_signature_is_ignored_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let cfg = text("ubuntu2404/grub.cfg")
            .replace("set default=\"0\"", "set default=\"${saved_entry}\"");
        put(r, "/boot/grub/grub.cfg", cfg.as_bytes());
        put(
            r,
            "/boot/grub/grubenv",
            format!("saved_entry={RECOVERY}\n").as_bytes(),
        );
        let result = effective_default(&RootDir::open(r).unwrap()).unwrap();
        assert_eq!(result.entry.menu_path.as_deref(), Some("0"));
        assert!(
            has_warning(
                &result,
                &[
                    "/boot/grub/grubenv: not a GRUB environment block",
                    "GRUB ignores it"
                ]
            ),
            "{:?}",
            result.warnings
        );
    }

    #[test]
    fn grub_d_dropins_decide_settings_and_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(
            r,
            "/boot/grub/grub.cfg",
            text("ubuntu2404/grub.cfg").as_bytes(),
        );
        put(
            r,
            "/etc/default/grub",
            b"GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n",
        );
        put(
            r,
            "/etc/default/grub.d/kdump-tools.cfg",
            b"GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M\"\n",
        );
        // Sourced last (byte order: '9' < 'k'); decides GRUB_DEFAULT.
        put(
            r,
            "/etc/default/grub.d/99-default.cfg",
            b"GRUB_DEFAULT=saved\n",
        );
        put(r, "/etc/default/grub.d/README", b"GRUB_DEFAULT=2\n");
        put(
            r,
            "/etc/default/grub.d/50-distributor.cfg",
            b"GRUB_CMDLINE_LINUX=\"$(cat /etc/cmdline)\"\n",
        );
        let result = effective_default(&RootDir::open(r).unwrap()).unwrap();
        assert_eq!(
            result.decided_by,
            [
                "/boot/grub/grub.cfg",
                "/etc/default/grub",
                "/etc/default/grub.d/50-distributor.cfg",
                "/etc/default/grub.d/99-default.cfg",
                "/etc/default/grub.d/kdump-tools.cfg",
            ]
        );
        let by_name = |name: &str| {
            result
                .grub_settings
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name}: {:?}", result.grub_settings))
        };
        let default = by_name("GRUB_DEFAULT");
        assert_eq!(default.value, "saved");
        assert_eq!(
            default.decided_in,
            "/etc/default/grub.d/99-default.cfg line 1"
        );
        let cmdline = by_name("GRUB_CMDLINE_LINUX_DEFAULT");
        assert_eq!(cmdline.value, "quiet crashkernel=384M-:128M");
        assert_eq!(cmdline.also_in, ["/etc/default/grub"]);
        assert!(
            result.warnings.iter().any(|w| w.starts_with(
                "/etc/default/grub.d/99-default.cfg has GRUB_DEFAULT=saved but grub.cfg sets default=0"
            )),
            "{:?}",
            result.warnings
        );
        assert!(
            result.warnings.iter().any(|w| w.starts_with(
                "/etc/default/grub.d/50-distributor.cfg line 1: GRUB_CMDLINE_LINUX uses a command substitution"
            )),
            "{:?}",
            result.warnings
        );
    }

    #[test]
    fn effective_default_on_garbage_and_missing_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let err = effective_default(&root).unwrap_err();
        assert!(format!("{err:#}").contains("no boot loader configuration"));
        put(
            dir.path(),
            "/boot/grub/grub.cfg",
            &[0xff, 0xfe, b'{', b'}', b'\n', 0x00, b'm', b'e', b'n', b'u'],
        );
        put(dir.path(), "/boot/grub/grubenv", b"garbage");
        let result = effective_default(&root).unwrap();
        assert!(result
            .warnings
            .iter()
            .any(|w| w.contains("not valid UTF-8")));
        assert!(result
            .warnings
            .iter()
            .any(|w| w.contains("GRUB ignores it")));
        assert!(result.warnings.iter().any(|w| w.contains("menu is empty")));
    }
    /// Ubuntu cloud images (`GRUB_FORCE_PARTUUID`): the `else` branch boots
    /// without an initramfs; grubenv `initrdfail=1` (left by a boot that did
    /// not finish) selects the retry with it.
    #[test]
    fn initrdless_boot_branch_follows_grubenv_initrdfail() {
        let tree = format!(
            "{}/tests/fixtures/trees/ubuntu2004-azure/boot/grub/grub.cfg",
            env!("CARGO_MANIFEST_DIR")
        );
        let cfg = GrubCfg::parse(&std::fs::read_to_string(tree).unwrap());
        let healthy = grub(&cfg, Some(&block("")), None, Vec::new());
        assert_eq!(
            healthy.entry.kernel_version.as_deref(),
            Some("5.15.0-1089-azure")
        );
        assert!(healthy.entry.initramfs.is_empty(), "{:?}", healthy.entry);
        assert!(healthy
            .entry
            .cmdline
            .as_deref()
            .unwrap()
            .ends_with(" panic=-1"));
        assert!(
            healthy
                .warnings
                .iter()
                .any(|w| w.contains("initrdless boot")),
            "{:?}",
            healthy.warnings
        );

        let retry = grub(&cfg, Some(&block("initrdfail=1\n")), None, Vec::new());
        assert_eq!(
            retry.entry.initramfs,
            ["/boot/initrd.img-5.15.0-1089-azure"]
        );
        assert!(!retry.entry.cmdline.as_deref().unwrap().contains("panic=-1"));
    }

    #[test]
    fn grub_test_conditions() {
        let env = |name: &str| (name == "x").then(|| "1".to_string());
        assert_eq!(test_condition("[ ${x} = 1 ]", &env), Some(true));
        assert_eq!(test_condition("[ ${y} = 1 ]", &env), Some(false));
        assert_eq!(test_condition("[ ${x} != 1 ]", &env), Some(false));
        assert_eq!(test_condition("[ -n ${x} ]", &env), Some(true));
        assert_eq!(test_condition("[ -z ${y} ]", &env), Some(true));
        assert_eq!(test_condition("hwmatch foo 3", &env), None);
        assert_eq!(test_condition("[ a -lt b ]", &env), None);
    }
}
