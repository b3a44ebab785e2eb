//! `vmrescue report`: a support bundle, even when the target cannot be
//! mounted (then with the scan, the logs and why the mount failed).

use anyhow::Result;
use vmrescue::bundle::BundleReport;
use vmrescue::ExitCode;

use super::{open_target, Session};
use crate::cli::ReportArgs;
use crate::output::runcommand::Level;
use crate::output::{emit, Report};
use crate::ui::Style;

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Bundle {
    pub(crate) bundle: BundleReport,
}

impl Report for Bundle {
    type Data = Bundle;

    fn data(&self) -> &Bundle {
        self
    }

    fn text(&self, _style: Style) -> String {
        format!("{}\n", self.bundle.summary())
    }

    /// The payload's summary names where the bundle is on the repair VM.
    fn runcommand(&self) -> Vec<(Level, String)> {
        vec![(
            Level::Info,
            format!(
                "support bundle on the repair VM: {}",
                self.bundle.path.display()
            ),
        )]
    }
}

pub(crate) fn run(session: &Session, args: &ReportArgs) -> Result<ExitCode> {
    let out = args
        .output_file
        .clone()
        .unwrap_or_else(|| vmrescue::bundle::default_path(&session.run_id));
    let target = open_target(&args.target);
    if let Err(err) = &target {
        tracing::warn!("the bundle has no target reports: {err:#}");
    }
    let written = vmrescue::bundle::write_bundle(target.as_ref(), &args.logs, &out);
    if let Ok(target) = target {
        target.release()?;
    }
    emit(&session.sink, &Bundle { bundle: written? })
}
