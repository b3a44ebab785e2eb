//! `vmrescue mount` and `vmrescue umount`: a target that stays mounted
//! between commands, and taking it down again.

use std::path::PathBuf;

use anyhow::Result;
use vmrescue::attach;
use vmrescue::ExitCode;

use super::{open_target, Session};
use crate::cli::TargetArgs;
use crate::output::{emit, Rendered};

pub(crate) fn mount(session: &Session, args: &TargetArgs) -> Result<ExitCode> {
    let layout = open_target(args)?.keep()?;
    if session.chatty() {
        for mount in &layout.mounts {
            eprintln!(
                "mounted {} ({}) on {}",
                mount.device,
                mount.fstype,
                mount.path.display()
            );
        }
    }
    if !session.json() && !session.quiet {
        for note in &layout.unresolved {
            eprintln!(
                "{}: /etc/fstab line {}: {} for {} is not on the target disk{}",
                session.style().yellow("warning"),
                note.line,
                note.spec,
                note.mount_point,
                if note.nofail {
                    " (nofail)"
                } else {
                    " and has no nofail: the VM will stop at boot (see the fix-mounts recipe)"
                }
            );
        }
    }
    let text = format!("{}\n", layout.root.display());
    emit(&session.sink, &Rendered::new(&layout, text))
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Unmounted {
    /// The keys of the targets taken down.
    pub(crate) unmounted: Vec<String>,
}

pub(crate) fn umount(
    session: &Session,
    key: Option<String>,
    disk: Option<PathBuf>,
    image: Option<PathBuf>,
) -> Result<ExitCode> {
    let key = match (key, disk.or(image)) {
        (Some(key), _) => Some(key),
        (None, Some(source)) => Some(attach::key_for_source(&source)?),
        (None, None) => None,
    };
    let unmounted = attach::umount(key.as_deref())?;
    let text = if unmounted.is_empty() {
        "nothing mounted by vmrescue\n".to_string()
    } else {
        unmounted
            .iter()
            .map(|k| format!("unmounted {k}\n"))
            .collect()
    };
    emit(&session.sink, &Rendered::new(Unmounted { unmounted }, text))
}
