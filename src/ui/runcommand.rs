//! The Azure Run Command log format and the `az-payload` generator.
//!
//! Run Command returns the payload's stdout as `echo $(cat log)`: one line,
//! whitespace collapsed, glob characters expanded on the repair VM, and only
//! the last 4096 bytes. Entries are split at `[Level MM/DD/YYYY HH:MM:SS]`.

use anyhow::{bail, Result};

/// Levels the Run Command client recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Output,
    Info,
    Warning,
    Error,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Output => "Output",
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
            Level::Debug => "Debug",
        }
    }
}

/// Replaces what a shell would expand when the log is echoed unquoted.
pub fn glob_safe(message: &str) -> String {
    message
        .replace('*', "<star>")
        .replace('?', "<q>")
        .replace('[', "(")
        .replace(']', ")")
        .replace('\n', " ")
}

/// One log line: `[Info 11/24/2026 19:50:37]message`.
pub fn line(level: Level, message: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[month]/[day]/[year] [hour]:[minute]:[second]");
    let stamp = now.format(&format).unwrap_or_default();
    format!("[{} {stamp}]{}", level.name(), glob_safe(message))
}

/// Settings baked into a generated payload.
#[derive(Debug, Clone, Default)]
pub struct PayloadSettings {
    pub recipe: String,
    pub kernel: Option<String>,
    pub module: Option<String>,
    pub dry_run: bool,
    pub verify_boot: bool,
    pub binary_url: Option<String>,
    pub binary_sha256: Option<String>,
    /// The broken VM's serial log, written to a file on the repair VM and
    /// passed to `repair --log` (its tail, so the payload stays small).
    pub console_log: Option<String>,
}

/// How much of a console log a payload carries: the end, where the panic is,
/// well under Run Command's 256 KiB script limit.
pub const CONSOLE_LOG_MAX: usize = 160 * 1024;

/// The script lines that write the console log on the repair VM: a quoted
/// here-document (no expansion), its delimiter absent from the log.
fn console_log_block(log: &str) -> String {
    let mut start = log.len().saturating_sub(CONSOLE_LOG_MAX);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    let text: String = log[start..]
        .chars()
        .filter(|c| *c != '\0' && *c != '\r')
        .collect();
    let mut delimiter = String::from("VMRESCUE_CONSOLE_LOG_END");
    while text.lines().any(|l| l == delimiter) {
        delimiter.push('_');
    }
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str("CONSOLE_LOG=\"$LOG_DIR/console-$STAMP.log\"\n");
    out.push_str(&format!("cat >\"$CONSOLE_LOG\" <<'{delimiter}'\n"));
    out.push_str(&text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&delimiter);
    out.push('\n');
    out
}

const TEMPLATE: &str = include_str!("../../scripts/az-vm-repair.sh");

/// A value safe inside double quotes in sh without any expansion.
fn sh_value(name: &str, value: &str) -> Result<String> {
    if value
        .chars()
        .any(|c| matches!(c, '"' | '$' | '`' | '\\' | '\n'))
    {
        bail!("{name} may not contain quotes, $, backquotes, backslashes or newlines: {value:?}");
    }
    Ok(value.to_string())
}

/// The payload script with the settings baked in (the generic script's
/// defaults replaced), small enough for Run Command's 256 KiB limit.
pub fn render_payload(settings: &PayloadSettings) -> Result<String> {
    if settings.binary_url.is_some() != settings.binary_sha256.is_some() {
        bail!("--binary-url and --binary-sha256 go together: a download is only run after its checksum matches");
    }
    let baked = [
        ("RECIPE", settings.recipe.clone()),
        ("KERNEL", settings.kernel.clone().unwrap_or_default()),
        ("MODULE", settings.module.clone().unwrap_or_default()),
        (
            "DRY_RUN",
            if settings.dry_run { "1" } else { "0" }.to_string(),
        ),
        (
            "VERIFY",
            if settings.verify_boot { "boot" } else { "" }.to_string(),
        ),
        (
            "BINARY_URL",
            settings.binary_url.clone().unwrap_or_default(),
        ),
        (
            "BINARY_SHA256",
            settings.binary_sha256.clone().unwrap_or_default(),
        ),
        ("EXPECTED_VERSION", env!("CARGO_PKG_VERSION").to_string()),
    ];
    let mut out = String::with_capacity(TEMPLATE.len() + 256);
    let mut in_settings = false;
    for text_line in TEMPLATE.lines() {
        if text_line.starts_with("# --- baked settings") {
            in_settings = true;
            out.push_str(text_line);
            out.push('\n');
            for (name, value) in &baked {
                out.push_str(&format!("{name}=\"{}\"\n", sh_value(name, value)?));
            }
            continue;
        }
        if text_line.starts_with("# --- end of baked settings") {
            in_settings = false;
        }
        if text_line.starts_with("# --- baked console log") {
            in_settings = true;
            out.push_str(text_line);
            out.push('\n');
            match &settings.console_log {
                Some(log) => out.push_str(&console_log_block(log)),
                None => out.push_str("CONSOLE_LOG=\"\"\n"),
            }
            continue;
        }
        if text_line.starts_with("# --- end of baked console log") {
            in_settings = false;
        }
        if in_settings {
            continue;
        }
        // A generated payload takes no positional values.
        if text_line.starts_with("[ $# -ge ") {
            continue;
        }
        out.push_str(text_line);
        out.push('\n');
    }
    if out.len() > 256 * 1024 {
        bail!(
            "payload is {} bytes, over Run Command's 256 KiB limit",
            out.len()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_client_prefix_and_no_glob_characters() {
        let text = line(Level::Info, "removed /boot/initrd.img-* and [x]?");
        let re = regex::Regex::new(r"^\[Info \d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}\]").unwrap();
        assert!(re.is_match(&text), "{text}");
        let message = re.replace(&text, "");
        assert!(!message.contains(['*', '?', '[']), "{message}");
    }

    #[test]
    fn payload_bakes_settings_and_drops_positional_values() {
        let payload = render_payload(&PayloadSettings {
            recipe: "rebuild-initramfs".into(),
            kernel: Some("5.15.0-1051-azure".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(payload.contains("RECIPE=\"rebuild-initramfs\"\n"));
        assert!(payload.contains("KERNEL=\"5.15.0-1051-azure\"\n"));
        assert!(!payload.contains("RECIPE=\"auto\""));
        assert!(!payload.contains("[ $# -ge 1 ]"));
        assert!(payload.starts_with("#!/bin/sh"));
    }

    #[test]
    fn payload_carries_the_console_log_verbatim() {
        let log = "[    1.2] Kernel panic - not syncing: $(rm -rf /) `x` \"q\"\nVMRESCUE_CONSOLE_LOG_END\nend\r\n";
        let payload = render_payload(&PayloadSettings {
            recipe: "auto".into(),
            console_log: Some(log.into()),
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("p.sh");
        // Only the here-document part: run it and compare what it wrote.
        let start = payload.find("CONSOLE_LOG=\"$LOG_DIR").unwrap();
        let end = payload.find("# --- end of baked console log").unwrap();
        let part = format!(
            "LOG_DIR={}\nSTAMP=t\n{}echo \"$CONSOLE_LOG\"\n",
            dir.path().display(),
            &payload[start..end]
        );
        std::fs::write(&script, part).unwrap();
        let out = std::process::Command::new("sh")
            .arg(&script)
            .output()
            .unwrap();
        let written = String::from_utf8(out.stdout).unwrap();
        let text = std::fs::read_to_string(written.trim()).unwrap();
        assert_eq!(text, log.replace('\r', ""));
        assert!(payload.contains("--log \"$CONSOLE_LOG\""));
        let plain = render_payload(&PayloadSettings {
            recipe: "auto".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(plain.contains("CONSOLE_LOG=\"\"\n"));
    }

    #[test]
    fn payload_refuses_shell_metacharacters_and_unverified_urls() {
        let bad = PayloadSettings {
            recipe: "x\"; rm -rf /".into(),
            ..Default::default()
        };
        assert!(render_payload(&bad).is_err());
        let unverified = PayloadSettings {
            recipe: "auto".into(),
            binary_url: Some("https://example.invalid/vmrescue".into()),
            ..Default::default()
        };
        assert!(render_payload(&unverified).is_err());
    }
}
