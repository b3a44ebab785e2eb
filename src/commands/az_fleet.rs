//! `vmrescue az-fleet`: the engine is `vmrescue::fleet`; the flags,
//! progress and summary are `crate::ui::fleet`.

use anyhow::Result;
use vmrescue::ExitCode;

use super::{parse_params, Session};
use crate::cli::AzFleetArgs;

pub(crate) fn run(session: &Session, args: &AzFleetArgs) -> Result<ExitCode> {
    let params = parse_params(&args.params)?;
    crate::ui::fleet::run(session, args, &params)
}
