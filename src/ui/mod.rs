//! Presentation: output style, logging set-up, report rendering. No business logic.

pub mod logging;

use std::io::IsTerminal;

use crate::cli::ColorChoice;

/// How human-readable output looks on this terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn resolve(choice: ColorChoice) -> Self {
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

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// Asks a yes/no question on the terminal; without a terminal the answer is
/// no (unattended runs must say `--yes`).
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|err| match err {
            dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
                anyhow::Error::new(crate::Failure::Interrupted)
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
