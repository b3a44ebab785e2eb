//! The one way a command's result reaches stdout. Every command hands a
//! [`Report`] to [`emit`], which writes it in the format the flags chose:
//! human text, one JSON envelope, or Azure Run Command log lines. One file
//! per format: `json.rs` (the envelope) and `runcommand.rs` (log lines);
//! the text forms live with the renderers in `ui`.

pub(crate) mod json;
pub(crate) mod runcommand;

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use vmrescue::ExitCode;

use crate::cli::OutputFormat;
use crate::ui::Style;
use runcommand::Level;

/// What a command produced, in every form it can be written in.
pub(crate) trait Report {
    /// The `data` member of the JSON envelope.
    type Data: Serialize;

    fn data(&self) -> &Self::Data;

    /// The human form (stdout); empty when the command already said all it
    /// had to on stderr.
    fn text(&self, style: Style) -> String;

    /// The Run Command form: by default the text's lines, as Info.
    fn runcommand(&self) -> Vec<(Level, String)> {
        self.text(Style { color: false })
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| (Level::Info, l.to_string()))
            .collect()
    }

    /// How the command ends: a report can be a failure (a boot that failed,
    /// a repair that changed nothing) and still be printed whole.
    fn exit_code(&self) -> ExitCode {
        ExitCode::Success
    }
}

/// How and where output goes for this run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sink {
    pub(crate) format: OutputFormat,
    pub(crate) style: Style,
    /// The verb that runs, for the envelope's `command`.
    pub(crate) command: &'static str,
}

impl Sink {
    pub(crate) fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// True for the human text form (progress and notes on stderr are
    /// meant for people only).
    pub(crate) fn human(&self) -> bool {
        self.format == OutputFormat::Text
    }
}

/// Writes `report` to stdout in the sink's format; returns its exit code.
pub(crate) fn emit<R: Report>(sink: &Sink, report: &R) -> Result<ExitCode> {
    let code = report.exit_code();
    let mut out = std::io::stdout().lock();
    let written = match sink.format {
        OutputFormat::Json => {
            let envelope = json::Envelope::data(sink.command, code, report.data());
            writeln!(out, "{}", serde_json::to_string_pretty(&envelope)?)
        }
        OutputFormat::Text => write!(out, "{}", report.text(sink.style)),
        OutputFormat::Runcommand => report.runcommand().iter().try_for_each(|(level, message)| {
            writeln!(out, "{}", runcommand::line(*level, message))
        }),
    };
    ignore_closed_pipe(written).context("writing the report to stdout")?;
    Ok(code)
}

/// Writes a failure in the sink's format (the human form goes to stderr).
pub(crate) fn emit_error(sink: &Sink, code: ExitCode, message: &str) {
    match sink.format {
        OutputFormat::Json => {
            let envelope = json::Envelope::<()>::error(sink.command, code, message);
            if let Ok(text) = serde_json::to_string_pretty(&envelope) {
                println!("{text}");
            }
        }
        OutputFormat::Runcommand => {
            let message = format!("vmrescue failed (exit {}): {message}", code.code());
            println!("{}", runcommand::line(Level::Error, &message));
        }
        OutputFormat::Text => {}
    }
}

/// `vmrescue … | head` closes stdout early: that is the reader's choice,
/// not an error of the run.
fn ignore_closed_pipe(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A report whose text was rendered up front: for commands whose human
/// form is a few lines built from the same data.
pub(crate) struct Rendered<T> {
    pub(crate) data: T,
    pub(crate) text: String,
    pub(crate) code: ExitCode,
}

impl<T: Serialize> Rendered<T> {
    pub(crate) fn new(data: T, text: String) -> Self {
        Rendered {
            data,
            text,
            code: ExitCode::Success,
        }
    }
}

impl<T: Serialize> Report for Rendered<T> {
    type Data = T;

    fn data(&self) -> &T {
        &self.data
    }

    fn text(&self, _style: Style) -> String {
        self.text.clone()
    }

    fn exit_code(&self) -> ExitCode {
        self.code
    }
}
