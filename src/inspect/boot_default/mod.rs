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

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::bls;
use super::default_grub::GrubSettings;
use super::grub_cfg::GrubCfg;
use super::grubenv::Grubenv;
use super::loader_conf::LoaderConf;
use crate::rootfs::RootDir;

mod entry;
mod grub;
mod systemd_boot;

pub use grub::{resolve_grub, GrubInputs, GrubSettingOrigin, GRUB_SETTINGS_THAT_MATTER};
pub use systemd_boot::resolve_systemd_boot;

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
        let mut result = read_grub_default(root, &cfg_path, &cfg, &mut notes)?;
        notes.append(&mut result.warnings);
        result.warnings = notes;
        return Ok(result);
    }
    for esp in ESP_DIRS.iter().copied().chain(["/boot"]) {
        let conf_path = format!("{esp}/loader/loader.conf");
        let entries_dir = format!("{esp}/loader/entries");
        let conf_text = root.read_string_optional(&conf_path)?;
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

/// GRUB's default entry, from the grub.cfg found and the files it and
/// grub-mkconfig read (grubenv, /etc/default/grub, BLS entries).
fn read_grub_default(
    root: &RootDir,
    cfg_path: &str,
    cfg: &GrubCfg,
    notes: &mut Vec<String>,
) -> Result<BootDefault> {
    let exists = |p: &str| root.is_file(p);
    let (grubenv_path, grubenv) = read_grubenv(root, cfg_path, cfg, notes)?;
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
    Ok(resolve_grub(
        GrubInputs {
            grub_cfg_path: cfg_path,
            grub_cfg: cfg,
            grubenv_path: grubenv_path.as_deref(),
            grubenv: grubenv.as_ref(),
            default_grub: default_grub.as_ref(),
            bls_entries,
            bls_dir: BLS_DIR,
        },
        &exists,
    ))
}

/// The grubenv `load_env` reads: the first that exists of the one beside
/// grub.cfg and the two usual places. A corrupt one is skipped as GRUB
/// skips it, leaving the variables unset rather than trying the next file.
fn read_grubenv(
    root: &RootDir,
    cfg_path: &str,
    cfg: &GrubCfg,
    notes: &mut Vec<String>,
) -> Result<(Option<String>, Option<Grubenv>)> {
    let cfg_dir = cfg_path.rsplit_once('/').map_or("/", |(d, _)| d);
    let beside = format!("{cfg_dir}/grubenv");
    let mut found = (None, None);
    for candidate in [beside.as_str(), "/boot/grub2/grubenv", "/boot/grub/grubenv"] {
        if !root.exists(candidate) {
            continue;
        }
        let bytes = root.read(candidate)?;
        match Grubenv::parse(&bytes) {
            Ok(env) => found = (Some(candidate.to_string()), Some(env)),
            Err(err) => notes.push(format!("{candidate}: {err}; GRUB ignores it")),
        }
        break;
    }
    if found.0.as_deref().is_some_and(|p| p != beside) && cfg.load_env_line.is_some() {
        notes.push(format!(
            "no grubenv beside {cfg_path}; using {}",
            found.0.clone().unwrap_or_default()
        ));
    }
    Ok(found)
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
        let bytes = root.read(&path)?;
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
mod tests;
