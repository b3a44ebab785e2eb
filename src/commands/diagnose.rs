//! `vmrescue diagnose`: why the VM does not boot, from console logs, the
//! target's own logs and offline checks of its files.

use anyhow::Result;
use vmrescue::diagnose::{self, Classifier};
use vmrescue::ExitCode;

use super::{open_target, Session};
use crate::cli::DiagnoseArgs;
use crate::output::{emit, Rendered};

pub(crate) fn run(session: &Session, args: &DiagnoseArgs) -> Result<ExitCode> {
    let mut classifier = Classifier::new()?;
    for log in &args.logs {
        let (reader, source) = diagnose::log_input::open(log)?;
        classifier.add_reader(reader, &source)?;
    }
    // With only console logs named, the disk is not needed (diagnosing a
    // log copied off the VM works anywhere).
    let wants_target = args.target_logs
        || args.logs.is_empty()
        || args.target.disk.is_some()
        || args.target.image.is_some()
        || args.target.root.is_some();
    let target = if wants_target {
        Some(open_target(&args.target)?)
    } else {
        None
    };
    let diagnosis = (|| -> Result<_> {
        if let Some(target) = &target {
            diagnose::target_logs::add_target_logs(&mut classifier, &target.rootdir()?)?;
        }
        let mut diagnosis = classifier.finish()?;
        if let Some(target) = &target {
            let root = target.rootdir()?;
            let snapshot = vmrescue::inspect::snapshot::snapshot(&root)?;
            diagnosis.extend(diagnose::offline::offline_findings(
                &root,
                &snapshot,
                Some(target.layout()),
            )?);
        }
        Ok(diagnosis)
    })();
    if let Some(target) = target {
        target.release()?;
    }
    let diagnosis = diagnosis?;
    let text = crate::ui::render_diagnosis(&diagnosis, session.style());
    emit(&session.sink, &Rendered::new(&diagnosis, text))
}
