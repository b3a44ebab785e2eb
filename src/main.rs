//! The `vmrescue` command: flags are parsed in `cli`, turned into plain
//! arguments and library calls in `run`, and rendered by `ui`. The library
//! (`vmrescue::…`) cannot name any of these modules.

mod cli;
mod commands;
mod output;
mod ui;

use std::process::ExitCode;

fn exit_interrupted(code: i32) -> ! {
    std::process::exit(code)
}

fn main() -> ExitCode {
    if let Err(err) = vmrescue::signals::install(exit_interrupted) {
        eprintln!("vmrescue: warning: cannot handle signals: {err:#}");
    }
    ExitCode::from(commands::main())
}
