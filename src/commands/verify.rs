//! `vmrescue verify`: boot the target copy-on-write in QEMU and report how
//! far it got.

use anyhow::Result;
use vmrescue::verify_boot::{self, VerifyOptions};
use vmrescue::ExitCode;

use super::Session;
use crate::cli::{BootCheckArgs, TargetArgs, VerifyArgs};
use crate::output::emit;

pub(crate) fn run(session: &Session, args: &VerifyArgs) -> Result<ExitCode> {
    let report = verify_boot::verify_boot(
        &args.target.spec(),
        &options(session, &args.target, &args.boot_check),
    )?;
    emit(&session.sink, &report)
}

/// The boot-check flags as the library's plain options.
pub(crate) fn options(
    session: &Session,
    target: &TargetArgs,
    check: &BootCheckArgs,
) -> VerifyOptions {
    VerifyOptions {
        via: check.via,
        timeout: std::time::Duration::from_secs(check.boot_timeout),
        add_drivers: check.add_drivers,
        controller: check.controller,
        accel: check.accel,
        secure_boot: check.secure_boot.into(),
        run_id: session.run_id.clone(),
        mount_base: target.mount_base.clone(),
    }
}
