//! The `az-payload` generator: a shell script for `az vm repair run`.
//!
//! Run Command returns the payload's stdout as `echo $(cat log)`: one line,
//! whitespace collapsed, glob characters expanded on the repair VM, and only
//! the last 4096 bytes. Entries are split at `[Level MM/DD/YYYY HH:MM:SS]`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::Engine;

use vmrescue::cmd::Cmd;
use vmrescue::error::Failure;
use vmrescue::release::Arch;

/// Whether the payload's repair boots the disk in QEMU afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum PayloadBootCheck {
    /// `repair`'s own rule: boot when QEMU is installed on the repair VM.
    #[default]
    Default,
    Required,
    Off,
}

/// Where a repair VM without vmrescue gets the binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Download {
    /// One URL and its sha256 (any architecture).
    Url { url: String, sha256: String },
    /// The release folder; the asset for `uname -m`, checked against the
    /// sum baked in for that architecture.
    Release {
        url: String,
        sums: BTreeMap<Arch, String>,
    },
    /// Only a vmrescue already on the repair VM is used.
    #[default]
    None,
}

/// Settings baked into a generated payload.
#[derive(Debug, Clone, Default)]
pub(crate) struct PayloadSettings {
    pub(crate) recipe: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) dry_run: bool,
    pub(crate) boot_check: PayloadBootCheck,
    pub(crate) download: Download,
    /// Console logs of the broken VM (already cut to the wanted tail).
    pub(crate) console_logs: Vec<Vec<u8>>,
}

/// Run Command's limit on a script.
pub(crate) const PAYLOAD_LIMIT: usize = 256 * 1024;

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

/// A console log as the payload carries it: gzip, then base64.
fn pack_log(log: &[u8]) -> Result<String> {
    let gz = Cmd::new("gzip")
        .args(["-c", "-n", "-9"])
        .stdin_bytes(log)
        .run()
        .map(|out| out.stdout)
        .context("compressing a console log for the payload")?;
    Ok(base64::engine::general_purpose::STANDARD.encode(gz))
}

/// The shell assignments of the baked-settings block.
fn baked_settings(settings: &PayloadSettings) -> Result<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    for (key, value) in &settings.params {
        if key.is_empty() || value.chars().chain(key.chars()).any(char::is_whitespace) {
            bail!("--param {key}={value}: a payload parameter may not contain whitespace");
        }
        params.push(format!("{key}={value}"));
    }
    let (binary_url, binary_sha256, release_url, sums) = match &settings.download {
        Download::Url { url, sha256 } => (url.clone(), sha256.clone(), String::new(), None),
        Download::Release { url, sums } => (String::new(), String::new(), url.clone(), Some(sums)),
        Download::None => Default::default(),
    };
    let sum_of = |arch| {
        sums.and_then(|s: &BTreeMap<Arch, String>| s.get(&arch).cloned())
            .unwrap_or_default()
    };
    let logs = settings
        .console_logs
        .iter()
        .map(|log| pack_log(log))
        .collect::<Result<Vec<_>>>()?;
    let verify = match settings.boot_check {
        PayloadBootCheck::Default => "",
        PayloadBootCheck::Required => "boot",
        PayloadBootCheck::Off => "off",
    };
    Ok(vec![
        ("RECIPE", settings.recipe.clone()),
        ("PARAMS", params.join(" ")),
        ("DRY_RUN", if settings.dry_run { "1" } else { "0" }.into()),
        ("VERIFY", verify.into()),
        ("BINARY_URL", binary_url),
        ("BINARY_SHA256", binary_sha256),
        ("RELEASE_URL", release_url),
        ("SHA256_X86_64", sum_of(Arch::X86_64)),
        ("SHA256_AARCH64", sum_of(Arch::Aarch64)),
        ("CONSOLE_LOGS", logs.join(" ")),
        ("EXPECTED_VERSION", vmrescue::release::VERSION.to_string()),
    ])
}

/// The payload script with the settings baked in (the generic script's
/// defaults replaced). Past Run Command's 256 KiB it is a usage error that
/// says how much room the console logs had.
pub(crate) fn render_payload(settings: &PayloadSettings) -> Result<String> {
    let baked = baked_settings(settings)?;
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
    if out.len() > PAYLOAD_LIMIT {
        let logs: usize = baked
            .iter()
            .find(|(name, _)| *name == "CONSOLE_LOGS")
            .map_or(0, |(_, v)| v.len());
        let room = PAYLOAD_LIMIT.saturating_sub(out.len() - logs);
        return Err(Failure::Usage(format!(
            "the payload would be {} KiB, over Run Command's 256 KiB limit: the console logs take {} KiB packed and there is room for {} KiB; keep the end of a long log with --log-tail-kib N",
            out.len().div_ceil(1024),
            logs.div_ceil(1024),
            room / 1024
        ))
        .into());
    }
    Ok(out)
}

/// One `#` line for `az-fleet --dry-run`: where each payload gets vmrescue
/// and the sha256 it checks the download against, so the operator sees the
/// sum before any VM is touched. A URL's query (a SAS token) is not shown.
pub(crate) fn download_note(download: &Download) -> String {
    let shown = |url: &str| match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_string(),
    };
    match download {
        Download::None => {
            "# each payload runs the vmrescue installed on the repair VM (--no-download)".into()
        }
        Download::Url { url, sha256 } => {
            format!(
                "# each payload downloads {} and checks its sha256 {sha256}",
                shown(url)
            )
        }
        Download::Release { url, sums } => {
            let sums: Vec<String> = sums
                .iter()
                .map(|(arch, sum)| format!("{} sha256 {sum}", vmrescue::release::asset_name(*arch)))
                .collect();
            format!(
                "# each payload downloads the repair VM's architecture's asset from {} and checks it: {}",
                shown(url),
                sums.join(", ")
            )
        }
    }
}

/// The last `kib` KiB of a log, starting at a line.
pub(crate) fn log_tail(log: &[u8], kib: usize) -> &[u8] {
    let keep = kib * 1024;
    if log.len() <= keep {
        return log;
    }
    let cut = &log[log.len() - keep..];
    match memchr::memchr(b'\n', cut) {
        Some(newline) => &cut[newline + 1..],
        None => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bakes_settings_and_drops_positional_values() {
        let payload = render_payload(&PayloadSettings {
            recipe: "rebuild-initramfs".into(),
            params: vec![("kernel".into(), "5.15.0-1051-azure".into())],
            ..Default::default()
        })
        .unwrap();
        assert!(payload.contains("RECIPE=\"rebuild-initramfs\"\n"));
        assert!(payload.contains("PARAMS=\"kernel=5.15.0-1051-azure\"\n"));
        assert!(!payload.contains("RECIPE=\"auto\""));
        assert!(!payload.contains("[ $# -ge 1 ]"));
        assert!(payload.starts_with("#!/bin/sh"));
    }

    #[test]
    fn payload_bakes_the_release_sums_and_packed_logs() {
        let sums: BTreeMap<Arch, String> = [(Arch::Aarch64, "c".repeat(64))].into();
        let payload = render_payload(&PayloadSettings {
            recipe: "auto".into(),
            download: Download::Release {
                url: "https://blob.example/rel?sv=1&sig=x".into(),
                sums,
            },
            console_logs: vec![b"Kernel panic - not syncing\n".to_vec()],
            ..Default::default()
        })
        .unwrap();
        assert!(payload.contains(&format!("SHA256_AARCH64=\"{}\"", "c".repeat(64))));
        assert!(payload.contains("SHA256_X86_64=\"\"\n"));
        assert!(payload.contains("RELEASE_URL=\"https://blob.example/rel?sv=1&sig=x\""));
        let logs = payload
            .lines()
            .find_map(|l| l.strip_prefix("CONSOLE_LOGS=\""))
            .unwrap()
            .trim_end_matches('"');
        let gz = base64::engine::general_purpose::STANDARD
            .decode(logs)
            .unwrap();
        let log = Cmd::new("gzip").arg("-dc").stdin_bytes(gz).read().unwrap();
        assert_eq!(log, "Kernel panic - not syncing\n");
    }

    #[test]
    fn the_download_note_names_each_sum_and_hides_a_sas_token() {
        let sums: BTreeMap<Arch, String> = [
            (Arch::X86_64, "a".repeat(64)),
            (Arch::Aarch64, "b".repeat(64)),
        ]
        .into();
        let note = download_note(&Download::Release {
            url: "https://blob.example/rel?sv=1&sig=secret".into(),
            sums,
        });
        let x86 = vmrescue::release::asset_name(Arch::X86_64);
        assert!(
            note.contains(&format!("{x86} sha256 {}", "a".repeat(64))),
            "{note}"
        );
        assert!(note.contains(&"b".repeat(64)), "{note}");
        assert!(
            note.contains("https://blob.example/rel?<redacted>"),
            "{note}"
        );
        assert!(!note.contains("secret"), "{note}");
        let url = download_note(&Download::Url {
            url: "https://example.invalid/vmrescue".into(),
            sha256: "c".repeat(64),
        });
        assert!(url.ends_with(&"c".repeat(64)), "{url}");
        assert!(download_note(&Download::None).contains("--no-download"));
    }

    #[test]
    fn a_log_tail_starts_at_a_line() {
        let log = b"first line\nsecond line\nthird\n".repeat(100);
        let tail = log_tail(&log, 1);
        assert!(tail.len() <= 1024);
        assert!(
            tail.starts_with(b"first") || tail.starts_with(b"second") || tail.starts_with(b"third")
        );
        assert_eq!(log_tail(b"short", 1), b"short");
    }

    #[test]
    fn payload_refuses_shell_metacharacters_and_unverified_urls() {
        let bad = PayloadSettings {
            recipe: "x\"; rm -rf /".into(),
            ..Default::default()
        };
        assert!(render_payload(&bad).is_err());
        let spaced = PayloadSettings {
            recipe: "auto".into(),
            params: vec![("kernel".into(), "a b".into())],
            ..Default::default()
        };
        assert!(render_payload(&spaced).is_err());
        let quoted = PayloadSettings {
            recipe: "auto".into(),
            download: Download::Url {
                url: "https://example.invalid/\"x".into(),
                sha256: "0".repeat(64),
            },
            ..Default::default()
        };
        assert!(render_payload(&quoted).is_err());
    }
}
