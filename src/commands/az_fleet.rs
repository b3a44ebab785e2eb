//! `vmrescue az-fleet`: turns the flags into the fleet engine's plain
//! values (`vmrescue::fleet`), runs it with the progress of `ui::fleet`,
//! and reports every VM's row and the totals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{parse_params, payload_download, Session};
use crate::cli::AzFleetArgs;
use crate::output::{emit, Report};
use crate::ui::fleet::{render_table, Progress};
use crate::ui::payload::{
    download_note, log_tail, render_payload, PayloadBootCheck, PayloadSettings,
};
use crate::ui::Style;
use vmrescue::error::{ExitCode, Failure};
use vmrescue::fleet::az::Az;
use vmrescue::fleet::engine::{self, FleetConfig, Payloads};
use vmrescue::fleet::retry::RetryPolicy;
use vmrescue::fleet::select::{self, Source};
use vmrescue::fleet::state::StateFile;
use vmrescue::fleet::summary::{self, Outcome, VmReport};
use vmrescue::fleet::VmRef;

/// Runs the command; the exit code follows `fleet::summary::exit_code`.
pub(crate) fn run(session: &Session, args: &AzFleetArgs) -> Result<ExitCode> {
    let params = &parse_params(&args.params)?;
    let settings = payload_settings(args, params)?;
    let source = source(args)?;
    let evidence_dir = args
        .evidence_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.d", args.state.display())));
    let config = FleetConfig {
        parallel: usize::from(args.parallel),
        max_failures: args.max_failures,
        start: args.start,
        boot_proof: args.verify_boot,
        retry: RetryPolicy {
            base: Duration::from_millis(args.retry_base_ms),
            cap: Duration::from_millis(args.retry_base_ms.saturating_mul(60)),
            ..RetryPolicy::default()
        },
        az: Az::default(),
        evidence_dir: evidence_dir.clone(),
        boot_wait: Duration::from_secs(args.boot_wait),
        poll: Duration::from_millis(args.poll_ms),
        probe_wait: Duration::from_secs(30 * 60),
    };
    if args.dry_run {
        return dry_run(session, &config, &source, &settings);
    }
    std::fs::create_dir_all(&evidence_dir)
        .with_context(|| format!("creating {}", evidence_dir.display()))?;
    let state = StateFile::open(&args.state)?;
    let selection = select::resolve(&config.az, &source, &config.retry, config.parallel)?;
    if session.chatty() {
        eprintln!(
            "az-fleet: {} VM(s) selected, {} skipped, {} at once; state {}{}",
            selection.selected.len(),
            selection.skipped.len(),
            config.parallel,
            state.path().display(),
            if state.resumed { " (resuming)" } else { "" }
        );
    }
    let payloads = PayloadFiles {
        settings,
        dir: evidence_dir,
    };
    let observer = Progress::new(selection.selected.len(), !session.chatty());
    let mut reports = engine::run(&config, &selection.selected, &state, &payloads, &observer);
    observer.clear();
    reports.extend(selection.skipped.iter().map(|(vm, why)| skipped(vm, why)));
    let totals = summary::totals(&reports);
    emit(
        &session.sink,
        &FleetData::Report(FleetReport {
            vms: reports,
            totals,
        }),
    )
}

fn payload_settings(
    args: &AzFleetArgs,
    params: &BTreeMap<String, String>,
) -> Result<PayloadSettings> {
    if args.recipe != "auto" {
        vmrescue::recipe::Catalog::load(None)?.get(&args.recipe)?;
    }
    let settings = PayloadSettings {
        recipe: args.recipe.clone(),
        params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        dry_run: false,
        boot_check: if args.verify_boot {
            PayloadBootCheck::Required
        } else {
            PayloadBootCheck::Default
        },
        download: payload_download(&args.download)?,
        console_logs: Vec::new(),
    };
    // Refuse bad values now, not once per VM.
    render_payload(&settings)?;
    Ok(settings)
}

fn source(args: &AzFleetArgs) -> Result<Source> {
    if let Some(path) = &args.vms {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let vms = select::parse_vm_list(&text)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        return Ok(Source::List(vms));
    }
    let name = args
        .resource_group
        .clone()
        .ok_or_else(|| Failure::Usage("give --vms FILE or --resource-group RG".into()))?;
    let tag = match &args.tag {
        Some(t) => Some(
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Failure::Usage(format!("--tag {t}: expected KEY=VALUE")))?,
        ),
        None => None,
    };
    Ok(Source::ResourceGroup { name, tag })
}

fn payload_path(dir: &Path, vm: &VmRef) -> PathBuf {
    dir.join(format!("{}__{}.payload.sh", vm.resource_group, vm.name))
}

/// `az-fleet --json`: the rows and totals, or with `--dry-run` the commands.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum FleetData {
    Report(FleetReport),
    DryRun(DryRun),
}

/// What `--dry-run` would run, as `az` command lines and `#` notes.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct DryRun {
    pub(crate) commands: Vec<String>,
}

fn dry_run(
    session: &Session,
    config: &FleetConfig,
    source: &Source,
    settings: &PayloadSettings,
) -> Result<ExitCode> {
    let mut commands = vec![download_note(&settings.download)];
    let vms = match source {
        Source::List(vms) => vms.clone(),
        Source::ResourceGroup { name, tag } => {
            commands.push(config.az.list(name).display_argv());
            if let Some((k, v)) = tag {
                commands.push(format!(
                    "# keep the VMs tagged {k}={v}; skip deallocated and non-Linux VMs"
                ));
            }
            vec![VmRef::new(name, "<each selected VM>")]
        }
    };
    if matches!(source, Source::List(_)) {
        commands.extend(vms.iter().map(|vm| config.az.show(vm).display_argv()));
    }
    for vm in &vms {
        commands.push(format!("# {vm}"));
        let payload = payload_path(&config.evidence_dir, vm);
        commands.extend(engine::dry_run_plan(config, vm, "<fleet-id>", &payload)?);
    }
    emit(&session.sink, &FleetData::DryRun(DryRun { commands }))
}

/// Writes each VM's payload beside its evidence.
struct PayloadFiles {
    settings: PayloadSettings,
    dir: PathBuf,
}

impl Payloads for PayloadFiles {
    fn make(&self, vm: &VmRef, serial_log: Option<&Path>) -> Result<PathBuf> {
        let mut settings = self.settings.clone();
        if let Some(log) = serial_log {
            let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
            // The end of the log, where the panic is: well inside 256 KiB once packed.
            settings.console_logs = vec![log_tail(&bytes, 160).to_vec()];
        }
        let payload = render_payload(&settings)?;
        let path = payload_path(&self.dir, vm);
        std::fs::write(&path, payload).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

fn skipped(vm: &VmRef, why: &str) -> VmReport {
    VmReport::bare(
        vm.key(),
        Outcome::Skipped,
        why.to_string(),
        "none (skipped)".into(),
    )
}

/// Every VM's row and the totals.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct FleetReport {
    pub(crate) vms: Vec<VmReport>,
    pub(crate) totals: summary::FleetTotals,
}

impl Report for FleetData {
    type Data = FleetData;

    fn data(&self) -> &FleetData {
        self
    }

    fn text(&self, _style: Style) -> String {
        match self {
            FleetData::Report(report) => render_table(&report.vms),
            FleetData::DryRun(dry) => dry.commands.iter().map(|c| format!("{c}\n")).collect(),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            FleetData::Report(report) => summary::exit_code(&report.vms),
            FleetData::DryRun(_) => ExitCode::Success,
        }
    }
}
