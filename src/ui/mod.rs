//! Presentation: output style, logging set-up, report rendering. No business logic.

pub(crate) mod fleet;
pub(crate) mod logging;
pub(crate) mod manpages;
pub(crate) mod payload;
pub(crate) mod progress;
pub(crate) mod prompt;
pub(crate) mod repair;
pub(crate) mod verify;
pub(crate) mod wizard;

use std::io::IsTerminal;

use crate::cli::ColorChoice;

/// How human-readable output looks on this terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    pub(crate) fn resolve(choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
                    && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false)
            }
        };
        Style { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub(crate) fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub(crate) fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub(crate) fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// ` --param K=V` for each parameter, as a command line to copy takes them.
pub(crate) fn param_flags(params: &std::collections::BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!(" --param {k}={v}"))
        .collect()
}

/// `vmrescue diagnose`: findings first, most relevant on top, with evidence
/// and the recipes to run.
pub(crate) fn render_diagnosis(diagnosis: &vmrescue::diagnose::Diagnosis, style: Style) -> String {
    use std::fmt::Write as _;
    use vmrescue::diagnose::Severity;
    let mut out = String::new();
    if diagnosis.findings.is_empty() {
        let _ = writeln!(
            out,
            "no known cause found in {}",
            diagnosis.sources.join(", ")
        );
        return out;
    }
    for finding in &diagnosis.findings {
        let severity = format!("{:?}", finding.severity).to_lowercase();
        let severity = match finding.severity {
            Severity::Critical | Severity::Error => style.red(&severity),
            Severity::Warning => style.yellow(&severity),
            Severity::Info => severity,
        };
        let _ = writeln!(
            out,
            "{severity}: {} [{}]",
            style.bold(&finding.title),
            finding.id
        );
        if let Some(kernel) = &finding.kernel_version {
            let _ = writeln!(out, "  kernel {kernel}");
        }
        let _ = writeln!(out, "  {}", finding.explanation.trim());
        for line in finding.evidence.iter().take(4) {
            let _ = writeln!(
                out,
                "  > {}:{}: {}",
                line.source,
                line.line_number,
                line.text.trim()
            );
        }
        for suggestion in &finding.suggestions {
            let _ = writeln!(
                out,
                "  fix: vmrescue repair {}{}  ({})",
                suggestion.recipe,
                param_flags(&suggestion.params),
                suggestion.why
            );
        }
        if let Some(step) = &finding.next_step {
            let _ = writeln!(out, "  next: {step}");
        }
        out.push('\n');
    }
    out
}

/// `vmrescue recipes show ID`.
pub(crate) fn render_recipe(recipe: &vmrescue::recipe::Recipe, style: Style) -> String {
    use std::fmt::Write as _;
    let spec = &recipe.spec;
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", style.bold(&spec.id), spec.title);
    let _ = writeln!(out, "\n{}\n", spec.summary.trim());
    let _ = writeln!(out, "families: {}", spec.families.join(", "));
    let _ = writeln!(
        out,
        "unattended (repair auto): {}",
        if spec.auto { "yes" } else { "no" }
    );
    if !spec.symptoms.is_empty() {
        let _ = writeln!(out, "symptoms:");
        for symptom in &spec.symptoms {
            let _ = writeln!(out, "  - {symptom}");
        }
    }
    if !spec.params.is_empty() {
        let _ = writeln!(out, "parameters:");
        for (name, param) in &spec.params {
            let default = match (&param.default, &param.value) {
                (vmrescue::recipe::spec::ParamDefault::Value, Some(value)) => value.clone(),
                (vmrescue::recipe::spec::ParamDefault::Optional, _) => "not changed".to_string(),
                (rule, _) => serde_json::to_value(rule)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            let _ = writeln!(out, "  {name}: {} [default: {default}]", param.description);
        }
    }
    let _ = writeln!(out, "steps:");
    for step in &spec.steps {
        use vmrescue::recipe::spec::StepSpec;
        match step {
            StepSpec::AuditSysctl {
                key,
                explain,
                value,
            } => {
                let set = value
                    .as_deref()
                    .map(|v| format!(" (set with --param {})", v.trim_matches(['{', '}'])))
                    .unwrap_or_default();
                let _ = writeln!(out, "  - audit-sysctl {key}{set}: {explain}");
            }
            StepSpec::SetKdumpOption {
                directive, value, ..
            } => {
                let _ = writeln!(out, "  - set-kdump-option {directive} {value}");
            }
            StepSpec::AddKernelArg { arg } | StepSpec::RemoveKernelArg { arg } => {
                let _ = writeln!(out, "  - {} {arg}", step.action_name());
            }
            StepSpec::SetSysctl { key, value } => {
                let _ = writeln!(out, "  - set-sysctl {key} = {value}");
            }
            _ => {
                let _ = writeln!(out, "  - {}", step.action_name());
            }
        }
    }
    if !spec.after.is_empty() {
        let _ = writeln!(out, "after boot:");
        for line in &spec.after {
            let _ = writeln!(out, "  - {line}");
        }
    }
    let _ = writeln!(out, "source: {}", recipe.source);
    out
}

/// Asks a yes/no question on the terminal; without a terminal the answer is
/// no (unattended runs must say `--yes`).
pub(crate) fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|err| match err {
            dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
                anyhow::Error::new(vmrescue::Failure::Interrupted)
            }
            other => anyhow::Error::new(other).context("asking for confirmation"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_means_plain_text() {
        let style = Style::resolve(ColorChoice::Never);
        assert_eq!(style.red("x"), "x");
        let style = Style::resolve(ColorChoice::Always);
        assert_eq!(style.red("x"), "\x1b[31mx\x1b[0m");
    }
}
