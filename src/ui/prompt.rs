//! Questions to the operator at a terminal. Two styles: dialoguer's menus on
//! a capable terminal, and plain numbered prompts (no cursor movement, no
//! alternate screen) on a serial console, `TERM=dumb`/`vt100`, or without
//! colour. Ctrl-C or end of input at any prompt is [`Failure::Interrupted`].

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result};

use vmrescue::error::Failure;

pub(crate) trait Prompter {
    /// One of `items`; `default` is preselected (plain: chosen by an empty answer).
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize>;
    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool>;
    /// A line of text; an empty answer takes `default` when there is one.
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String>;
    /// True when progress may redraw a line in place.
    fn can_redraw(&self) -> bool;
}

/// Terminals on which cursor movement cannot be trusted (serial consoles).
pub(crate) fn wants_plain_prompts(term: Option<&str>, color: bool) -> bool {
    let term = term.unwrap_or("");
    !color
        || term.is_empty()
        || term == "dumb"
        || term == "unknown"
        || term.starts_with("vt1")
        || term.starts_with("vt2")
        || term == "linux-serial"
}

/// The prompter for this process's terminal.
pub(crate) fn for_terminal(color: bool) -> Box<dyn Prompter> {
    let term = std::env::var("TERM").ok();
    if wants_plain_prompts(term.as_deref(), color) {
        Box::new(Plain::stdio())
    } else {
        Box::new(Fancy)
    }
}

/// Numbered menus and line input, written to stderr, read from stdin.
pub(crate) struct Plain<R: BufRead, W: Write> {
    input: R,
    output: W,
}

impl Plain<std::io::StdinLock<'static>, std::io::Stderr> {
    pub(crate) fn stdio() -> Self {
        Plain {
            input: std::io::stdin().lock(),
            output: std::io::stderr(),
        }
    }
}

impl<R: BufRead, W: Write> Plain<R, W> {
    #[cfg(test)]
    pub(crate) fn new(input: R, output: W) -> Self {
        Plain { input, output }
    }

    fn ask(&mut self, prompt: &str) -> Result<String> {
        write!(self.output, "{prompt}").context("writing a prompt")?;
        self.output.flush().context("writing a prompt")?;
        let mut line = String::new();
        let read = self
            .input
            .read_line(&mut line)
            .context("reading the answer")?;
        if read == 0 {
            return Err(Failure::Interrupted.into());
        }
        Ok(line.trim().to_string())
    }
}

impl<R: BufRead, W: Write> Prompter for Plain<R, W> {
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize> {
        writeln!(self.output, "{prompt}").context("writing a menu")?;
        for (index, item) in items.iter().enumerate() {
            let mark = if index == default { '*' } else { ' ' };
            writeln!(self.output, "{mark}{:>3}) {item}", index + 1).context("writing a menu")?;
        }
        loop {
            let answer = self.ask(&format!(
                "choice [1-{}, default {}]: ",
                items.len(),
                default + 1
            ))?;
            if answer.is_empty() {
                return Ok(default);
            }
            match answer.parse::<usize>() {
                Ok(n) if (1..=items.len()).contains(&n) => return Ok(n - 1),
                _ => writeln!(
                    self.output,
                    "please answer with a number from 1 to {}",
                    items.len()
                )
                .context("writing a prompt")?,
            }
        }
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool> {
        let hint = if default { "[Y/n]" } else { "[y/N]" };
        loop {
            let answer = self.ask(&format!("{prompt} {hint} "))?.to_lowercase();
            match answer.as_str() {
                "" => return Ok(default),
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => writeln!(self.output, "please answer y or n").context("writing a prompt")?,
            }
        }
    }

    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String> {
        let shown = match default {
            Some(value) if !value.is_empty() => format!("{prompt} [{value}]: "),
            _ => format!("{prompt}: "),
        };
        let answer = self.ask(&shown)?;
        Ok(if answer.is_empty() {
            default.unwrap_or_default().to_string()
        } else {
            answer
        })
    }

    fn can_redraw(&self) -> bool {
        false
    }
}

/// dialoguer's menus (arrow keys, Enter), on stderr.
pub(crate) struct Fancy;

fn interrupted_or(err: dialoguer::Error, what: &str) -> anyhow::Error {
    match err {
        dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
            // dialoguer hides the cursor while a menu is up.
            let _ = write!(std::io::stderr(), "\x1b[?25h");
            anyhow::Error::new(Failure::Interrupted)
        }
        other => anyhow::Error::new(other).context(what.to_string()),
    }
}

impl Prompter for Fancy {
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize> {
        dialoguer::Select::new()
            .with_prompt(prompt)
            .items(items)
            .default(default)
            .interact()
            .map_err(|err| interrupted_or(err, "asking for a choice"))
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool> {
        dialoguer::Confirm::new()
            .with_prompt(prompt)
            .default(default)
            .interact()
            .map_err(|err| interrupted_or(err, "asking for confirmation"))
    }

    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String> {
        let mut question = dialoguer::Input::<String>::new()
            .with_prompt(prompt)
            .allow_empty(true);
        if let Some(value) = default {
            question = question.default(value.to_string());
        }
        question
            .interact_text()
            .map_err(|err| interrupted_or(err, "asking for a value"))
    }

    fn can_redraw(&self) -> bool {
        std::io::stderr().is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(answers: &str) -> Plain<&[u8], Vec<u8>> {
        Plain::new(answers.as_bytes(), Vec::new())
    }

    #[test]
    fn serial_consoles_and_no_colour_get_plain_prompts() {
        assert!(wants_plain_prompts(Some("dumb"), true));
        assert!(wants_plain_prompts(Some("vt100"), true));
        assert!(wants_plain_prompts(Some("vt220"), true));
        assert!(wants_plain_prompts(None, true));
        assert!(wants_plain_prompts(Some("xterm-256color"), false));
        assert!(!wants_plain_prompts(Some("xterm-256color"), true));
        assert!(!wants_plain_prompts(Some("tmux-256color"), true));
    }

    #[test]
    fn plain_select_takes_numbers_retries_on_nonsense_and_defaults_on_empty() {
        let items = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let mut p = plain("7\nx\n3\n");
        assert_eq!(p.select("pick", &items, 0).unwrap(), 2);
        let shown = String::from_utf8(p.output.clone()).unwrap();
        assert!(shown.contains("*  1) a"), "{shown}");
        assert!(shown.contains("please answer with a number from 1 to 3"));
        let mut p = plain("\n");
        assert_eq!(p.select("pick", &items, 1).unwrap(), 1);
    }

    #[test]
    fn plain_confirm_and_input_defaults() {
        let mut p = plain("\nyes\nmaybe\nn\n");
        assert!(!p.confirm("go?", false).unwrap());
        assert!(p.confirm("go?", false).unwrap());
        assert!(!p.confirm("go?", true).unwrap());
        let mut p = plain("\nvalue\n");
        assert_eq!(p.input("name", Some("dflt")).unwrap(), "dflt");
        assert_eq!(p.input("name", Some("dflt")).unwrap(), "value");
    }

    #[test]
    fn end_of_input_is_an_interruption() {
        let mut p = plain("");
        let err = p.confirm("go?", false).unwrap_err();
        assert_eq!(
            vmrescue::error::exit_code_for(&err),
            vmrescue::error::ExitCode::Interrupted
        );
    }
}
