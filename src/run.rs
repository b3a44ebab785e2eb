//! Dispatches a parsed command line to the library and turns the outcome
//! into an exit code. `main.rs` only calls [`main`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, GlobalArgs, ScanArgs};
use crate::error::{exit_code_for, ExitCode};
use crate::ui::{logging, Style};

/// What every command gets: how to talk to the user and where the log is.
#[derive(Debug)]
pub struct Session {
    pub run_id: String,
    pub style: Style,
    pub json: bool,
    pub log_path: Option<PathBuf>,
}

/// Parses the process arguments, runs the command, returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help/--version print and exit 0; usage errors exit 2.
            let _ = err.print();
            return err.exit_code().clamp(0, 255) as u8;
        }
    };
    let json = cli.global.json;
    match run(cli) {
        Ok(code) => code.code(),
        Err(err) => {
            let code = exit_code_for(&err);
            report_error(&err, code, json);
            code.code()
        }
    }
}

fn report_error(err: &anyhow::Error, code: ExitCode, json: bool) {
    tracing::debug!("error: {err:?}");
    eprintln!("vmrescue: error: {err:#}");
    if json {
        let report = serde_json::json!({
            "version": 1,
            "ok": false,
            "exit_code": code.code(),
            "error": format!("{err:#}"),
        });
        println!("{report}");
    }
}

fn start_session(global: &GlobalArgs, with_log_file: bool) -> Result<Session> {
    let run_id = logging::new_run_id();
    let verbosity = if global.quiet { -1 } else { global.verbose.min(3) as i8 };
    let (log_path, log_file) = if with_log_file {
        let (path, file) = logging::open_log_file(global.log_file.as_deref(), &run_id)?;
        (Some(path), Some(file))
    } else {
        (None, None)
    };
    logging::init(verbosity, log_file);
    tracing::debug!(run_id = %run_id, argv = ?std::env::args().collect::<Vec<_>>(), "vmrescue {}", env!("CARGO_PKG_VERSION"));
    Ok(Session { run_id, style: Style::resolve(global.color), json: global.json, log_path })
}

fn run(cli: Cli) -> Result<ExitCode> {
    let Some(command) = cli.command else {
        Cli::command().print_help().context("printing help")?;
        return Ok(ExitCode::Usage);
    };
    match command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "vmrescue", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
        Command::Man => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .context("writing man page")?;
            Ok(ExitCode::Success)
        }
        Command::Scan(args) => {
            let session = start_session(&cli.global, true)?;
            scan(&session, &args)
        }
    }
}

fn scan(session: &Session, args: &ScanArgs) -> Result<ExitCode> {
    let scan = crate::disk::scan()?;
    let mut out = std::io::stdout().lock();
    if args.pick {
        let disk = scan.pick_target()?;
        if session.json {
            writeln!(out, "{}", serde_json::to_string_pretty(disk)?)?;
        } else {
            writeln!(out, "{}", disk.path)?;
        }
        return Ok(ExitCode::Success);
    }
    if session.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&scan)?)?;
    } else {
        write!(out, "{}", scan.render_text())?;
        let candidates = scan.candidates();
        let summary = match candidates.len() {
            0 => "no candidate OS disk attached".to_string(),
            1 => format!("target: {}", candidates[0].path),
            n => format!("{n} candidate disks: choose one with --disk"),
        };
        writeln!(out, "{}", session.style.bold(&summary))?;
    }
    Ok(ExitCode::Success)
}
