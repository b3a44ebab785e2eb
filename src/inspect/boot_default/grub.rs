//! GRUB's default entry: grub.cfg's menu and `set default`, the grubenv that
//! `load_env` reads, BLS entries spliced in by `blscfg`, and a comparison with
//! /etc/default/grub.

use std::collections::BTreeMap;

use serde::Serialize;

use super::entry::{entry_from_candidate, Candidate};
use super::{BootDefault, BootEntry, Bootloader};
use crate::inspect::bls::{self, expand_grub_vars, BlsEntry};
use crate::inspect::default_grub::{self, GrubSettings, Setting};
use crate::inspect::grub_cfg::{GrubCfg, MenuEntry, MenuNode};
use crate::inspect::grubenv::Grubenv;

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
///
/// The steps follow what GRUB does at boot, in its order: read the
/// variables, build the menu, pick the `default` value, then walk the menu
/// path it names. /etc/default/grub is only compared with the result: GRUB
/// never reads it, but the next grub-mkconfig will.
pub fn resolve_grub(mut inputs: GrubInputs<'_>, exists: &dyn Fn(&str) -> bool) -> BootDefault {
    let mut warnings: Vec<String> = inputs
        .grub_cfg
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", inputs.grub_cfg_path))
        .collect();
    let mut decided_by = vec![inputs.grub_cfg_path.to_string()];

    let vars = Variables::read(&inputs, &mut warnings);
    let lookup = |name: &str| vars.env.get(name).cloned();
    let bls_entries = std::mem::take(&mut inputs.bls_entries);
    let menu = grub_menu(
        &inputs,
        bls_entries,
        &lookup,
        &mut warnings,
        &mut decided_by,
    );
    let default = DefaultSetting::read(&inputs, &vars, &lookup, &mut warnings, &mut decided_by);
    let grub_settings = match inputs.default_grub {
        Some(default_grub) => compare_default_grub(
            default_grub,
            &default,
            &vars.grubenv,
            &mut warnings,
            &mut decided_by,
        ),
        None => Vec::new(),
    };

    // Resolve: a one-shot next_entry wins for the next boot; the persistent
    // default is resolved too, as what boots after it.
    let one_shot = default.one_shot();
    let regular = default.regular;
    let persistent_spec = regular
        .map(|r| expand_grub_vars(r, &lookup))
        .unwrap_or_default();
    let (spec, selected_by_prefix) = match one_shot {
        Some(next) => (
            next.to_string(),
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
        check_entry(&menu, entry, &vars, &mut warnings, &mut decided_by);
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
        next_entry: one_shot.map(str::to_string),
        after_next_entry: after_next_entry.flatten(),
        grubby_default_kernel,
        decided_by,
        grub_settings,
        warnings,
    }
}

/// GRUB's variables at the time the menu is built.
struct Variables {
    /// What `load_env` put in the environment (empty without `load_env`).
    grubenv: BTreeMap<String, String>,
    /// That, plus grub.cfg's top-level `set`s that apply.
    env: BTreeMap<String, String>,
}

impl Variables {
    fn read(inputs: &GrubInputs<'_>, warnings: &mut Vec<String>) -> Self {
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
        let grubenv = env.clone();
        // A `set x=…` guarded by `[ -z ${x} ]` is a fallback (RHEL's
        // kernelopts): it applies when grubenv left x empty. Any other
        // condition depends on the machine at boot, so is not applied.
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
        Self { grubenv, env }
    }
}

/// The menu, with BLS entries spliced in where blscfg runs.
fn grub_menu(
    inputs: &GrubInputs<'_>,
    mut bls_entries: Vec<BlsEntry>,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
    decided_by: &mut Vec<String>,
) -> Vec<Item> {
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
        lookup,
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
    menu
}

/// The `set default=…` lines of grub.cfg, as grub-mkconfig generates them.
struct DefaultSetting<'a> {
    /// The value GRUB uses when no one-shot entry is pending.
    regular: Option<&'a str>,
    /// grub.cfg has the `if [ "${next_entry}" ]` block that reads next_entry.
    reads_next_entry: bool,
    /// grubenv's non-empty next_entry.
    next_entry: Option<String>,
}

impl<'a> DefaultSetting<'a> {
    fn read(
        inputs: &GrubInputs<'a>,
        vars: &'a Variables,
        lookup: &dyn Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
        decided_by: &mut Vec<String>,
    ) -> Self {
        let grub_cfg: &'a GrubCfg = inputs.grub_cfg;
        let settings: Vec<_> = grub_cfg.default_settings().collect();
        let reads_next_entry = settings.iter().any(|s| s.value.contains("next_entry"));
        let mut regular: Option<&'a str> = None;
        for setting in &settings {
            if setting.value.contains("next_entry") {
                continue;
            }
            // Unconditional, or the `else` branch of grub-mkconfig's
            // next_entry test: the regular default. Other conditions are
            // runtime ones, reported rather than guessed.
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
            if let Some(default) = vars.grubenv.get("default") {
                warnings.push(
                    "grub.cfg sets no default; the `default` variable comes from grubenv"
                        .to_string(),
                );
                regular = Some(default.as_str());
            }
        }
        let next_entry = vars
            .grubenv
            .get("next_entry")
            .filter(|v| !v.is_empty())
            .cloned();
        if next_entry.is_some() && !reads_next_entry {
            warnings.push("grubenv next_entry is set but grub.cfg never reads it".to_string());
        }
        let default = Self {
            regular,
            reads_next_entry,
            next_entry,
        };
        default.note_grubenv(inputs, warnings, decided_by);
        default
    }

    /// grubenv decides the result only when something reads it: a `$var`
    /// default, a pending next_entry, or BLS options (`$kernelopts`).
    fn note_grubenv(
        &self,
        inputs: &GrubInputs<'_>,
        warnings: &mut Vec<String>,
        decided_by: &mut Vec<String>,
    ) {
        let uses_env = self.regular.is_some_and(|r| r.contains('$'))
            || self.next_entry.is_some()
            || inputs.grub_cfg.uses_blscfg();
        match inputs.grubenv_path {
            Some(path)
                if uses_env
                    && inputs.grubenv.is_some()
                    && inputs.grub_cfg.load_env_line.is_some() =>
            {
                decided_by.push(path.to_string())
            }
            None if uses_env => warnings.push(
                "no grubenv was found: saved_entry, next_entry and kernelopts are unset at boot"
                    .to_string(),
            ),
            _ => {}
        }
    }

    /// The next_entry the next boot takes, if grub.cfg reads it.
    fn one_shot(&self) -> Option<&str> {
        self.next_entry.as_deref().filter(|_| self.reads_next_entry)
    }
}

/// Consistency with /etc/default/grub (what the next grub-mkconfig would
/// generate); returns the settings that shape the entries, with their origin.
fn compare_default_grub(
    default_grub: &GrubSettings,
    default: &DefaultSetting<'_>,
    grubenv: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
    decided_by: &mut Vec<String>,
) -> Vec<GrubSettingOrigin> {
    for source in default_grub.sources() {
        // A drop-in counts only when it decides a setting that matters;
        // /etc/default/grub itself always counts.
        let decides = source == default_grub::PATH
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
    check_default_grub(default_grub, default.regular, grubenv, warnings);
    setting_origins(default_grub)
}

/// What the chosen entry needs from the environment, and the file that
/// defines it when that is a BLS entry.
fn check_entry(
    menu: &[Item],
    entry: &BootEntry,
    vars: &Variables,
    warnings: &mut Vec<String>,
    decided_by: &mut Vec<String>,
) {
    let lookup = |name: &str| vars.env.get(name).cloned();
    if let Some(candidate) = find_candidate(menu, entry.menu_path.as_deref()) {
        if candidate.from_bls {
            decided_by.push(candidate.defined_in.clone());
        }
        let uses_kernelopts = candidate
            .args
            .as_deref()
            .is_some_and(|a| a.contains("kernelopts"));
        if uses_kernelopts && lookup("kernelopts").is_none_or(|v| v.trim().is_empty()) {
            warnings.push("the entry's options use $kernelopts but it is defined neither in grubenv nor in grub.cfg: the kernel gets no root=".to_string());
        } else if uses_kernelopts && !vars.grubenv.contains_key("kernelopts") {
            warnings.push(
                "$kernelopts is not in grubenv; GRUB uses grub.cfg's fallback value".to_string(),
            );
        }
    }
    if entry.root.is_none() && entry.image.is_some() {
        warnings.push("the default entry's command line has no root=".to_string());
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
        .map_or(default_grub::PATH, |s| s.path.as_str());
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
pub(super) fn test_condition(
    condition: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<bool> {
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
