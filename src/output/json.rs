//! The JSON envelope every command writes under `--json`:
//! `{"version", "command", "ok", "exit_code", "data" | "error"}`.
//! Its schema, one per command, is in `docs/schema/` (see `commands/schema.rs`).

use serde::Serialize;
use vmrescue::ExitCode;

/// The envelope's version. Bump it with any change to a schema in
/// `docs/schema/` (the schema test refuses a change without a bump).
pub(crate) const VERSION: u32 = 3;

#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) struct Envelope<'a, T: Serialize> {
    pub(crate) version: u32,
    /// The subcommand that wrote it (`inspect`, `repair`…).
    pub(crate) command: &'a str,
    /// True exactly when `exit_code` is 0.
    pub(crate) ok: bool,
    /// The process exit status (see EXIT STATUS in `vmrescue --help`).
    pub(crate) exit_code: u8,
    #[serde(flatten)]
    pub(crate) body: Body<'a, T>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Body<'a, T: Serialize> {
    /// What the command produced.
    Data(&'a T),
    /// Why it failed (no `data`).
    Error(ErrorBody),
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ErrorBody {
    /// The exit status by name (`usage`, `refused`, `no-target`…).
    pub(crate) kind: String,
    /// The error and its causes, outermost first, as one line.
    pub(crate) message: String,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    pub(crate) fn data(command: &'a str, code: ExitCode, data: &'a T) -> Self {
        Envelope {
            version: VERSION,
            command,
            ok: code == ExitCode::Success,
            exit_code: code.code(),
            body: Body::Data(data),
        }
    }

    pub(crate) fn error(command: &'a str, code: ExitCode, message: &str) -> Self {
        Envelope {
            version: VERSION,
            command,
            ok: false,
            exit_code: code.code(),
            body: Body::Error(ErrorBody {
                kind: code.name().to_string(),
                message: message.to_string(),
            }),
        }
    }
}
