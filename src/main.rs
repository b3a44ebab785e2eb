use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(vmrescue::run::main())
}
