//! The login on the serial console: `serial-getty@PORT.service` enabled by
//! the `getty.target` wants link `systemctl enable` would create, so that a
//! VM whose kernel now writes to ttyS0 also offers a login there.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::plan::{Planned, PlannedChange, Workspace};
use crate::error::Failure;
use crate::rootfs::RootDir;

const TEMPLATE_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];
const ETC_UNITS: &str = "/etc/systemd/system";
const TEMPLATE: &str = "serial-getty@.service";

fn instance(port: &str) -> String {
    format!("serial-getty@{port}.service")
}

fn wants_link(port: &str) -> PathBuf {
    PathBuf::from(ETC_UNITS)
        .join("getty.target.wants")
        .join(instance(port))
}

fn template(root: &RootDir) -> Option<PathBuf> {
    TEMPLATE_DIRS
        .iter()
        .map(|dir| PathBuf::from(dir).join(TEMPLATE))
        .find(|path| root.is_file(path))
}

/// `/etc/systemd/system/serial-getty@PORT.service -> /dev/null`.
fn masked(root: &RootDir, port: &str) -> Result<bool> {
    let unit = PathBuf::from(ETC_UNITS).join(instance(port));
    Ok(root
        .read_link(&unit)?
        .is_some_and(|t| t == Path::new("/dev/null")))
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 16 && port.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Plans the wants link; nothing when it is there already.
pub fn enable_serial_getty(ws: &mut Workspace, planned: &mut Planned, port: &str) -> Result<()> {
    if !valid_port(port) {
        return Err(
            Failure::Usage(format!("`{port}` is not a serial port name such as ttyS0")).into(),
        );
    }
    let root = ws.root();
    let Some(unit) = template(root) else {
        return Err(Failure::Refused(format!(
            "the target has no {TEMPLATE} (in {}): it does not use systemd's getty",
            TEMPLATE_DIRS.join(" or ")
        ))
        .into());
    };
    if masked(root, port)? {
        return Err(Failure::Refused(format!(
            "{} is masked: unmask it first (`vmrescue chroot --rw -- systemctl unmask {}`)",
            instance(port),
            instance(port)
        ))
        .into());
    }
    let link = wants_link(port);
    if root.symlink_metadata(&link).is_ok() {
        planned.notes.push(format!(
            "{} is already enabled ({})",
            instance(port),
            link.display()
        ));
        return Ok(());
    }
    planned.changes.push(PlannedChange::Symlink {
        path: link,
        target: unit,
        why: format!(
            "enable {} (what `systemctl enable {}` creates): a login on the serial console",
            instance(port),
            instance(port)
        ),
    });
    Ok(())
}

/// Verification: the wants link exists and leads to the unit.
pub fn check_getty(root: &RootDir, port: &str) -> (bool, String) {
    let link = wants_link(port);
    if root.is_file(&link) {
        (
            true,
            format!("{} enabled ({})", instance(port), link.display()),
        )
    } else {
        (false, format!("{} is not enabled", instance(port)))
    }
}
