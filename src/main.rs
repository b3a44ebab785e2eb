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

/// What the signal handler does goes to stderr even under `-q`: the run
/// ends early and the operator must know why.
fn say_on_signal(message: &str) {
    eprintln!("vmrescue: {message}");
}

fn main() -> ExitCode {
    if let Err(err) = vmrescue::signals::install(say_on_signal, exit_interrupted) {
        eprintln!("vmrescue: warning: cannot handle signals: {err:#}");
    }
    ExitCode::from(commands::main())
}
