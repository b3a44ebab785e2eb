//! A menu entry as the boot loader would boot it, mapped onto the target's
//! files; shared by the GRUB and systemd-boot resolvers.

use super::BootEntry;
use crate::inspect::bls::expand_grub_vars;
use crate::inspect::cmdline::KernelCmdline;
use crate::inspect::kernels::image_version;

#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) title: String,
    pub(super) id: Option<String>,
    pub(super) image: Option<String>,
    pub(super) args: Option<String>,
    pub(super) initrds: Vec<String>,
    pub(super) defined_in: String,
    pub(super) from_bls: bool,
    /// Set when the entry picks its kernel/initramfs by a condition at boot.
    pub(super) branch_note: Option<String>,
}

pub(super) fn entry_from_candidate(
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
pub(super) fn target_path(path: &str, exists: &dyn Fn(&str) -> bool) -> Option<String> {
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
