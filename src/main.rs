use std::process::ExitCode;

fn exit_interrupted(code: i32) -> ! {
    std::process::exit(code)
}

fn main() -> ExitCode {
    if let Err(err) = vmrescue::signals::install(exit_interrupted) {
        eprintln!("vmrescue: warning: cannot handle signals: {err:#}");
    }
    ExitCode::from(vmrescue::run::main())
}
