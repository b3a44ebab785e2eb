//! The text form of a `verify` (boot test) report.

use vmrescue::verify_boot::secure_boot::{SecureBootMode, SecureBootReport};
use vmrescue::verify_boot::VerifyReport;
use vmrescue::ExitCode;

use super::Style;
use crate::output::runcommand::Level;
use crate::output::Report;

/// The human report: notes, the tail and finding on failure, the verdict last.
pub(crate) fn render_verify(report: &VerifyReport, style: Style) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for note in &report.notes {
        let _ = writeln!(out, "{}: {note}", style.yellow("note"));
    }
    let _ = writeln!(
        out,
        "accelerator: {} ({})",
        report.accelerator, report.accelerator_reason
    );
    if let Some(secure) = &report.secure_boot {
        let _ = writeln!(out, "{}", secure_boot_line(secure));
    }
    if !report.ok {
        let _ = writeln!(out, "last {} console lines:", report.last_lines.len());
        for line in &report.last_lines {
            let _ = writeln!(out, "  | {line}");
        }
        if let Some(failure) = &report.failure {
            let _ = writeln!(
                out,
                "failure: {} at console line {}: {}",
                failure.kind.label(),
                failure.mark.line_number,
                failure.mark.text
            );
        }
        match &report.finding {
            Some(finding) => {
                let _ = writeln!(out, "finding: {} ({})", finding.title, finding.id);
            }
            None => {
                let _ = writeln!(out, "finding: none from the console log");
            }
        }
        if let Some(recipe) = &report.suggested_recipe {
            let params = super::param_flags(&report.suggested_params);
            let _ = writeln!(
                out,
                "next: vmrescue plan {recipe}{params}, then vmrescue repair {recipe}{params} --verify-boot"
            );
        }
    }
    let verdict = report.verdict();
    let _ = writeln!(
        out,
        "{}",
        if report.ok {
            style.green(&verdict)
        } else {
            style.red(&verdict)
        }
    );
    out
}

/// `secure boot: enforced (why; the kernel: "…Secure boot enabled")`.
fn secure_boot_line(secure: &SecureBootReport) -> String {
    let mode = match secure.mode {
        SecureBootMode::Enforced => "enforced",
        SecureBootMode::Off => "off",
    };
    let kernel = secure
        .kernel_line
        .as_deref()
        .map(|line| format!("; the kernel: {line:?}"))
        .unwrap_or_default();
    format!("secure boot: {mode} ({}{kernel})", secure.reason)
}

/// The Run Command form: on failure what failed and what to run next, then
/// the verdict.
pub(crate) fn runcommand(report: &VerifyReport) -> Vec<(Level, String)> {
    let mut lines = Vec::new();
    if !report.ok {
        if let Some(failure) = &report.failure {
            let line = format!(
                "boot failure: {}: {}",
                failure.kind.label(),
                failure.mark.text
            );
            lines.push((Level::Error, line));
        }
        if let Some(finding) = &report.finding {
            let next = report
                .suggested_recipe
                .as_deref()
                .map(|r| format!(", next recipe: {r}"))
                .unwrap_or_default();
            let line = format!("boot diagnosis: {} ({}){next}", finding.title, finding.id);
            lines.push((Level::Info, line));
        }
    }
    if let Some(secure) = &report.secure_boot {
        lines.push((Level::Info, secure_boot_line(secure)));
    }
    let level = if report.ok { Level::Info } else { Level::Error };
    lines.push((level, report.verdict()));
    lines
}

impl Report for VerifyReport {
    type Data = VerifyReport;

    fn data(&self) -> &VerifyReport {
        self
    }

    fn text(&self, style: Style) -> String {
        render_verify(self, style)
    }

    fn runcommand(&self) -> Vec<(Level, String)> {
        runcommand(self)
    }

    fn exit_code(&self) -> ExitCode {
        VerifyReport::exit_code(self)
    }
}
