//! Dispatch only: parse the command line, start the session (run id, log,
//! output sink), hand the arguments to the verb's file, turn the outcome
//! into an exit code. Each verb's file turns its flags into plain
//! arguments, makes one library call and gives [`crate::output::emit`] a
//! report.

mod az_fleet;
mod az_payload;
mod diagnose;
mod fsck;
mod history;
mod inspect;
mod man;
mod mount;
mod recipes;
mod repair;
mod report;
mod scan;
#[cfg(test)]
mod schema;
mod shell;
mod undo;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use vmrescue::attach::{self, Target};
use vmrescue::error::{exit_code_for, ExitCode};

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat, TargetArgs};
use crate::output::{self, Sink};
use crate::ui::{logging, Style};

pub(crate) use az_payload::payload_download;

/// The types of each verb's JSON `data`, named for the schemas
/// (`schema.rs`).
#[cfg(test)]
pub(crate) mod data {
    pub(crate) use super::az_fleet::FleetData;
    pub(crate) use super::az_payload::Payload;
    pub(crate) use super::fsck::FsckReport;
    pub(crate) use super::history::History;
    pub(crate) use super::inspect::InspectReport;
    pub(crate) use super::man::DocsData;
    pub(crate) use super::mount::Unmounted;
    pub(crate) use super::recipes::RecipesData;
    pub(crate) use super::repair::RepairData;
    pub(crate) use super::report::Bundle;
    pub(crate) use super::scan::ScanData;
    pub(crate) use super::undo::Undone;
}

/// What every command gets: how to talk to the user and where the log is.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) run_id: String,
    pub(crate) sink: Sink,
    pub(crate) log_path: Option<PathBuf>,
    /// `-q`: nothing on stderr but errors (prompts still ask).
    pub(crate) quiet: bool,
}

impl Session {
    pub(crate) fn style(&self) -> Style {
        self.sink.style
    }

    pub(crate) fn json(&self) -> bool {
        self.sink.json()
    }

    /// True when notes and progress for people may go to stderr.
    pub(crate) fn chatty(&self) -> bool {
        self.sink.human() && !self.quiet
    }
}

/// Parses the process arguments, runs the command, returns the exit code.
pub(crate) fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let command = match cli.command {
        Some(command) => command,
        None if crate::ui::wizard::interactive_terminal() => {
            Command::Wizard(crate::cli::WizardArgs::default())
        }
        None => {
            let _ = Cli::command().print_help();
            return ExitCode::Usage.code();
        }
    };
    let sink = Sink {
        format: output_format(&cli.global),
        style: Style::resolve(cli.global.color),
        command: command.verb(),
    };
    let started = std::time::Instant::now();
    let result = run(&cli.global, sink, command);
    let (tool, runs) = vmrescue::cmd::tool_time();
    tracing::info!(
        wall_ms = started.elapsed().as_millis() as u64,
        tool_ms = tool.as_millis() as u64,
        tool_runs = runs,
        "timing: {} ms in all, {} ms in {runs} external program(s)",
        started.elapsed().as_millis(),
        tool.as_millis()
    );
    match result {
        Ok(code) => code.code(),
        Err(err) => {
            let code = exit_code_for(&err);
            report_error(&err, code, &sink);
            code.code()
        }
    }
}

/// `--help`/`--version` print and exit 0; usage errors exit 2, as one JSON
/// error envelope when `--json` or `--output json` is on the line.
fn usage_error(err: &clap::Error) -> u8 {
    let code = err.exit_code().clamp(0, 255) as u8;
    let args: Vec<String> = std::env::args().collect();
    let wants_json = args.iter().any(|a| a == "--json" || a == "--output=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json");
    if code != 0 && wants_json {
        let sink = Sink {
            format: OutputFormat::Json,
            style: Style { color: false },
            command: crate::cli::verb_in(&args),
        };
        let message = err.render().to_string();
        output::emit_error(&sink, ExitCode::Usage, message.trim_end());
    } else {
        let _ = err.print();
    }
    code
}

fn output_format(global: &GlobalArgs) -> OutputFormat {
    if global.json {
        OutputFormat::Json
    } else {
        global.output
    }
}

/// The run log of this process, for the last line of an error.
static RUN_LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn report_error(err: &anyhow::Error, code: ExitCode, sink: &Sink) {
    tracing::debug!("error: {err:?}");
    eprintln!("vmrescue: error: {err:#}");
    if let Some(log) = RUN_LOG.get() {
        eprintln!("full log: {}", log.display());
    }
    output::emit_error(sink, code, &format!("{err:#}"));
}

/// Sets up logging: `with_log_file` for commands whose runs are worth a
/// full debug log under /var/log/vmrescue.
fn start_session(global: &GlobalArgs, sink: Sink, with_log_file: bool) -> Result<Session> {
    let run_id = vmrescue::runlog::new_run_id();
    let verbosity = if global.quiet {
        -1
    } else {
        global.verbose.min(3) as i8
    };
    let (log_path, log_file) = if with_log_file {
        let (path, file) = vmrescue::runlog::open_log_file(global.log_file.as_deref(), &run_id)?;
        (Some(path), Some(file))
    } else {
        (None, None)
    };
    logging::init(verbosity, log_file);
    if let Some(path) = &log_path {
        let _ = RUN_LOG.set(path.clone());
    }
    tracing::debug!(run_id = %run_id, argv = ?std::env::args().collect::<Vec<_>>(), "vmrescue {}", env!("CARGO_PKG_VERSION"));
    Ok(Session {
        run_id,
        sink,
        log_path,
        quiet: global.quiet,
    })
}

fn run(global: &GlobalArgs, sink: Sink, command: Command) -> Result<ExitCode> {
    // Printing help, completions and man pages needs no run log.
    let logged = !matches!(
        command,
        Command::Completions { .. } | Command::Man { .. } | Command::Recipes(_)
    );
    let session = start_session(global, sink, logged)?;
    // The wizard shows its own spinners.
    if !matches!(command, Command::Wizard(_)) {
        crate::ui::progress::show_activities(crate::ui::progress::ProgressMode::for_stderr(
            session.chatty(),
        ));
    }
    let s = &session;
    match command {
        Command::Wizard(args) => shell::wizard(s, &args),
        Command::Chroot(args) => shell::chroot(s, &args),
        Command::Completions { shell } => man::completions(s, shell),
        Command::Man { dir } => man::man(s, dir.as_deref()),
        Command::AzPayload(args) => az_payload::run(s, &args),
        Command::AzFleet(args) => az_fleet::run(s, &args),
        Command::Report(args) => report::run(s, &args),
        Command::Scan(args) => scan::run(s, &args),
        Command::Mount(args) => mount::mount(s, &args),
        Command::Umount { key, disk, image } => mount::umount(s, key, disk, image),
        Command::Inspect(args) => inspect::run(s, &args),
        Command::Plan(args) => repair::plan(s, &args),
        Command::Repair(args) => repair::run(s, &args),
        Command::Diagnose(args) => diagnose::run(s, &args),
        Command::Verify(args) => verify::run(s, &args),
        Command::Undo(args) => undo::run(s, &args),
        Command::History(args) => history::run(s, &args),
        Command::Recipes(args) => recipes::run(s, &args),
        Command::Fsck(args) => fsck::run(s, &args),
    }
}

/// The target the flags name, by the one target rule
/// ([`attach::choose`]).
pub(crate) fn open_target(args: &TargetArgs) -> Result<Target> {
    attach::open_chosen(&args.spec(), &args.mount_base)
}

/// `--param NAME=VALUE` flags as a map.
pub(crate) fn parse_params(raw: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    vmrescue::Failure::Usage(format!("--param {p}: expected NAME=VALUE")).into()
                })
        })
        .collect()
}

/// Reads a file the user named, with its name in the error.
pub(crate) fn read_named(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
