//! systemd-boot's default entry: loader.conf's `default` glob over the
//! entries in systemd-boot's menu order.

use super::entry::{entry_from_candidate, target_path, Candidate};
use super::{BootDefault, Bootloader};
use crate::inspect::bls::{self, BlsEntry};
use crate::inspect::loader_conf::{self, LoaderConf};

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
