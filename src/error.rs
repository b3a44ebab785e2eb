//! Failures the caller maps to documented exit codes (ARCHITECTURE.md, "Exit codes").
//!
//! Everything else is an `anyhow::Error` and exits 1.

use std::fmt;

/// Process exit codes shared by the unattended CLI and the Run Command payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum ExitCode {
    /// Repaired, or nothing to do.
    Success,
    /// Any error not listed below.
    Error,
    /// Bad command-line usage.
    Usage,
    /// No target disk found, or more than one and nobody to ask.
    NoTarget,
    /// The target cannot be handled (encrypted, unknown layout, no root filesystem).
    Unsupported,
    /// A recipe's preconditions are not met; nothing was changed.
    Refused,
    /// Changes were applied but verification failed; `undo` is offered.
    VerifyFailed,
    /// SIGINT/SIGTERM or Ctrl-C at a prompt.
    Interrupted,
    /// Passed through from a program the user ran (`vmrescue chroot`).
    Raw(u8),
}

impl ExitCode {
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Raw(code) => code,
            other => other.documented(),
        }
    }

    fn documented(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Error => 1,
            ExitCode::Usage => 2,
            ExitCode::NoTarget => 3,
            ExitCode::Unsupported => 4,
            ExitCode::Refused => 5,
            ExitCode::VerifyFailed => 6,
            ExitCode::Interrupted => 130,
            ExitCode::Raw(code) => code,
        }
    }

    /// The status by name, as the JSON error envelope's `kind` gives it.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Error => "error",
            ExitCode::Usage => "usage",
            ExitCode::NoTarget => "no-target",
            ExitCode::Unsupported => "unsupported",
            ExitCode::Refused => "refused",
            ExitCode::VerifyFailed => "verify-failed",
            ExitCode::Interrupted => "interrupted",
            ExitCode::Raw(_) => "program-exit",
        }
    }

    /// The exit status of a command run for the user (`vmrescue chroot -- CMD`).
    pub fn from_raw(code: u8) -> Self {
        ExitCode::Raw(code)
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// An error whose kind decides the exit code. Wrap it in `anyhow` freely:
/// [`exit_code_for`] finds it anywhere in the context chain.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NoTarget(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    VerifyFailed(String),
    #[error("interrupted")]
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::Usage,
            Failure::NoTarget(_) => ExitCode::NoTarget,
            Failure::Unsupported(_) => ExitCode::Unsupported,
            Failure::Refused(_) => ExitCode::Refused,
            Failure::VerifyFailed(_) => ExitCode::VerifyFailed,
            Failure::Interrupted => ExitCode::Interrupted,
        }
    }
}

/// The exit code for an error: the first [`Failure`] in its chain, else 1.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map(Failure::exit_code)
        .unwrap_or(ExitCode::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_codes_match_design_table() {
        let table = [
            (ExitCode::Success, 0),
            (ExitCode::Error, 1),
            (ExitCode::Usage, 2),
            (ExitCode::NoTarget, 3),
            (ExitCode::Unsupported, 4),
            (ExitCode::Refused, 5),
            (ExitCode::VerifyFailed, 6),
            (ExitCode::Interrupted, 130),
        ];
        for (code, number) in table {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }

    #[test]
    fn failure_is_found_under_context() {
        let err = anyhow::Error::new(Failure::Unsupported("LUKS".into()))
            .context("mounting /dev/sdc2")
            .context("preparing target");
        assert_eq!(exit_code_for(&err), ExitCode::Unsupported);
    }

    #[test]
    fn plain_error_exits_one() {
        let err: anyhow::Result<()> = Err(std::io::Error::other("boom")).context("reading");
        assert_eq!(exit_code_for(&err.unwrap_err()), ExitCode::Error);
    }

    #[test]
    fn each_failure_maps_to_its_code() {
        assert_eq!(Failure::Usage(String::new()).exit_code(), ExitCode::Usage);
        assert_eq!(
            Failure::NoTarget(String::new()).exit_code(),
            ExitCode::NoTarget
        );
        assert_eq!(
            Failure::Refused(String::new()).exit_code(),
            ExitCode::Refused
        );
        assert_eq!(
            Failure::VerifyFailed(String::new()).exit_code(),
            ExitCode::VerifyFailed
        );
        assert_eq!(Failure::Interrupted.exit_code(), ExitCode::Interrupted);
    }
}
