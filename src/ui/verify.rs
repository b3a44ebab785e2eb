//! The text form of a `verify` (boot test) report.

use vmrescue::verify_boot::VerifyReport;

use super::Style;

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
            let params: String = report
                .suggested_params
                .iter()
                .map(|(k, v)| format!(" --param {k}={v}"))
                .collect();
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
