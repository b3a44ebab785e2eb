//! What an `az vm repair run` answered, and whether it proves a verified
//! repair.
//!
//! The vm-repair extension returns `{"status", "message", "script_status",
//! "logs", "log_full_path", "output", ...}` (azext_vm_repair/custom.py,
//! `run`). `logs` is the driver's log collapsed to one line by
//! `echo $(cat log)` (linux-run-driver.sh), of which Run Command keeps the
//! last 4 KiB: `[Log-Start …]`, the payload's `[Level MM/DD/YYYY
//! HH:MM:SS]message` lines, `[STATUS]::SUCCESS` only when the payload exited
//! 0 (else an `[Error …]` line), and `[Log-End …]PATH`. The payload
//! (`vmrescue az-payload`) prints `diagnosis: …`, `verify …`, `boot OK: …`
//! and `summary: RECIPE STATUS, …` lines, then `result: repaired and
//! verified` — or `result: nothing recognised: disk unchanged` at Error level
//! and exit 5 (so no SUCCESS) when it left the disk unchanged.

use serde::{Deserialize, Serialize};

/// One log entry of the tail: its level (`Info`, `Error`, `Log-Start`,
/// `STATUS` …) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub level: String,
    pub message: String,
}

const LEVELS: &[&str] = &[
    "Log-Start",
    "Log-End",
    "Output",
    "Info",
    "Warning",
    "Error",
    "Debug",
];

/// Splits the collapsed log at `[Level MM/DD/YYYY HH:MM:SS]` and `[STATUS]`,
/// as the extension's `_parse_run_script_raw_logs` does.
pub fn entries(tail: &str) -> Vec<Entry> {
    let pattern = format!(
        r"\[(?:{}) \d\d/\d\d/\d{{4}} \d\d:\d\d:\d\d\]|\[STATUS\]",
        LEVELS.join("|")
    );
    let Ok(re) = regex::Regex::new(&pattern) else {
        return Vec::new();
    };
    let starts: Vec<(usize, usize)> = re.find_iter(tail).map(|m| (m.start(), m.end())).collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let stop = starts.get(i + 1).map(|s| s.0).unwrap_or(tail.len());
            let head = &tail[start..end];
            let level = if head == "[STATUS]" {
                "STATUS".to_string()
            } else {
                head[1..].split(' ').next().unwrap_or_default().to_string()
            };
            Entry {
                level,
                message: tail[end..stop].trim().to_string(),
            }
        })
        .collect()
}

/// Whether the run proved a repair that may be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    /// The payload exited 0, the whole log is visible, a recipe was applied
    /// (or, on a resumed run, found already applied), no check failed, and
    /// (with `--verify-boot`) the disk booted.
    Verified,
    /// The payload recognised nothing to repair.
    NothingRecognised,
    /// The recipe found nothing to change on a first run: the copy is the
    /// broken disk as it was, so restoring it would repair nothing.
    NothingChanged,
    /// The payload (or the driver) reported an error.
    Failed { reason: String },
    /// The 4 KiB tail has no `Log-Start`: lines before it (checks, errors)
    /// are lost, so success cannot be proven from here.
    CutOff,
    /// Success was reported but not proven (no summary, a failed check, no
    /// boot proof with `--verify-boot`, a dry run).
    Unverified { reason: String },
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified)
    }

    /// A short phrase for the summary table.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Verified => "verified".into(),
            Verdict::NothingRecognised => "nothing recognised".into(),
            Verdict::NothingChanged => "nothing changed".into(),
            Verdict::Failed { reason } => format!("failed: {reason}"),
            Verdict::CutOff => "log cut off (no Log-Start in the 4 KiB tail)".into(),
            Verdict::Unverified { reason } => format!("unverified: {reason}"),
        }
    }
}

/// What one run showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Assessment {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub diagnosis: Option<String>,
    pub recipe: Option<String>,
    /// `applied`, `nothing-to-do`, `verify-failed` … from the summary line.
    pub recipe_status: Option<String>,
    /// The payload's `boot OK` / `boot FAILED` line.
    pub boot: Option<String>,
    /// Where the full log is on the repair VM (`[Log-End …]PATH`).
    pub log_full_path: Option<String>,
}

/// What the run must show to count as verified.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// `--verify-boot` was baked into the payload: a `boot OK` line is required.
    pub boot_proof: bool,
    /// An earlier run on this repair VM may have applied the repair already
    /// (it was interrupted before its answer was recorded).
    pub resumed: bool,
}

/// Judges a run from its collapsed log tail.
pub fn assess(tail: &str, expect: Expect) -> Assessment {
    let entries = entries(tail);
    let find = |prefix: &str| {
        entries
            .iter()
            .find(|e| e.message.starts_with(prefix))
            .map(|e| e.message[prefix.len()..].trim().to_string())
    };
    let summary = entries
        .iter()
        .rev()
        .filter_map(|e| e.message.strip_prefix("summary: "))
        .find(|m| !m.starts_with("after boot:"))
        .map(str::to_string);
    let (recipe, recipe_status) = match summary.as_deref() {
        Some(s) if !s.starts_with("nothing to repair") => {
            let head = s.split(',').next().unwrap_or_default();
            let mut words = head.split_whitespace();
            (
                words.next().map(str::to_string),
                words.next().map(str::to_string),
            )
        }
        _ => (None, None),
    };
    let boot = entries
        .iter()
        .find(|e| e.message.starts_with("boot OK") || e.message.starts_with("boot FAILED"))
        .map(|e| e.message.clone());
    let log_full_path = entries
        .iter()
        .find(|e| e.level == "Log-End")
        .map(|e| e.message.clone())
        .filter(|p| !p.is_empty());
    let verdict = judge(
        &entries,
        summary.as_deref(),
        recipe_status.as_deref(),
        boot.as_deref(),
        expect,
    );
    Assessment {
        verdict,
        diagnosis: find("diagnosis: "),
        recipe,
        recipe_status,
        boot,
        log_full_path,
    }
}

fn judge(
    entries: &[Entry],
    summary: Option<&str>,
    recipe_status: Option<&str>,
    boot: Option<&str>,
    expect: Expect,
) -> Verdict {
    let success = entries
        .iter()
        .any(|e| e.level == "STATUS" && e.message.starts_with("::SUCCESS"));
    let first_error = entries
        .iter()
        .find(|e| e.level == "Error" && !e.message.is_empty())
        .map(|e| e.message.clone());
    // The payload exits 5 ("result: nothing recognised: disk unchanged")
    // when it left the disk as it was: no SUCCESS for an unchanged disk.
    let unchanged = entries
        .iter()
        .any(|e| e.message.starts_with("result: nothing recognised"));
    let full = entries.iter().any(|e| e.level == "Log-Start");
    if !success && unchanged && !full {
        // Whether an earlier, cut-short run applied the repair cannot be
        // told from a cut tail: as for any cut-off log, not verified.
        return Verdict::CutOff;
    }
    if !success && unchanged {
        return match (summary, recipe_status) {
            // An earlier run, cut short, applied the repair; this one found it in place.
            (_, Some("nothing-to-do")) if expect.resumed => boot_proven(boot, expect),
            (_, Some("nothing-to-do")) => Verdict::NothingChanged,
            _ => Verdict::NothingRecognised,
        };
    }
    if !success {
        return Verdict::Failed {
            reason: first_error.unwrap_or_else(|| "the payload did not exit 0".into()),
        };
    }
    if !full {
        return Verdict::CutOff;
    }
    if let Some(error) = first_error {
        return Verdict::Unverified { reason: error };
    }
    match (summary, recipe_status) {
        (Some(s), _) if s.starts_with("nothing to repair") => return Verdict::NothingRecognised,
        (_, Some("applied")) => {}
        (_, Some("nothing-to-do")) if expect.resumed => {}
        (_, Some("nothing-to-do")) => return Verdict::NothingChanged,
        (_, Some(other)) => {
            return Verdict::Unverified {
                reason: format!("recipe status {other}"),
            }
        }
        (_, None) => {
            return Verdict::Unverified {
                reason: "no summary line in the log".into(),
            }
        }
    }
    boot_proven(boot, expect)
}

fn boot_proven(boot: Option<&str>, expect: Expect) -> Verdict {
    if expect.boot_proof && !boot.is_some_and(|b| b.starts_with("boot OK")) {
        return Verdict::Unverified {
            reason: "no boot proof (--verify-boot)".into(),
        };
    }
    Verdict::Verified
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "[Log-Start 12/02/2026 06:00:00] [Info 12/02/2026 06:00:01]vmrescue Run Command payload: recipe auto on /dev/disk/azure/scsi1/lun0 [Info 12/02/2026 06:00:02]diagnosis: Initramfs missing (initramfs-missing) [Info 12/02/2026 06:00:09]verify rebuild-initramfs initramfs-present: /boot/initrd.img-6.1.0-18-amd64 [Info 12/02/2026 06:00:40]boot OK: reached login prompt after 31 s (accelerator tcg, controller virtio, via kernel) console log: /var/log/vmrescue/x [Info 12/02/2026 06:00:40]summary: rebuild-initramfs applied, 1 file(s) changed, journal 20261202-060001-ab12, undo: vmrescue undo 20261202-060001-ab12 --yes [STATUS]::SUCCESS [Log-End 12/02/2026 06:00:41]/root/repair-files-20261202060000/logs-20261202060000.txt";

    #[test]
    fn a_full_successful_log_is_verified_and_parsed() {
        let a = assess(
            OK,
            Expect {
                boot_proof: true,
                resumed: false,
            },
        );
        assert_eq!(a.verdict, Verdict::Verified);
        assert_eq!(a.recipe.as_deref(), Some("rebuild-initramfs"));
        assert_eq!(a.recipe_status.as_deref(), Some("applied"));
        assert_eq!(
            a.diagnosis.as_deref(),
            Some("Initramfs missing (initramfs-missing)")
        );
        assert!(a.boot.unwrap().starts_with("boot OK"));
        assert_eq!(
            a.log_full_path.as_deref(),
            Some("/root/repair-files-20261202060000/logs-20261202060000.txt")
        );
    }

    #[test]
    fn a_cut_off_log_is_never_verified() {
        let cut = &OK[OK.find("[Info 12/02/2026 06:00:02]").unwrap()..];
        assert_eq!(assess(cut, Expect::default()).verdict, Verdict::CutOff);
    }

    #[test]
    fn errors_nothing_recognised_and_nothing_to_do() {
        let failed = "[Log-Start 12/02/2026 06:00:00] [Error 12/02/2026 06:00:05]vmrescue exited 5 (see the exit codes in the vmrescue README) [Error 12/02/2026 06:00:05] [Log-End 12/02/2026 06:00:05]/x";
        assert!(matches!(
            assess(failed, Expect::default()).verdict,
            Verdict::Failed { reason } if reason.contains("exited 5")
        ));
        let nothing = "[Log-Start 12/02/2026 06:00:00] [Info 12/02/2026 06:00:01]summary: nothing to repair: no recipe suggested [Error 12/02/2026 06:00:01]result: nothing recognised: disk unchanged [Error 12/02/2026 06:00:02] [Log-End 12/02/2026 06:00:05]/x";
        assert_eq!(
            assess(nothing, Expect::default()).verdict,
            Verdict::NothingRecognised
        );
        let again = OK
            .replace("applied, 1 file(s) changed", "nothing-to-do")
            .replace(
                "[STATUS]::SUCCESS",
                "[Error 12/02/2026 06:00:40]result: nothing recognised: disk unchanged [Error 12/02/2026 06:00:41]",
            );
        assert_eq!(
            assess(&again, Expect::default()).verdict,
            Verdict::NothingChanged
        );
        let resumed = Expect {
            boot_proof: false,
            resumed: true,
        };
        assert_eq!(assess(&again, resumed).verdict, Verdict::Verified);
    }

    #[test]
    fn boot_proof_is_required_when_asked() {
        let no_boot = OK.replace(
            "boot OK: reached login prompt",
            "boot FAILED at kernel (panic)",
        );
        let expect = Expect {
            boot_proof: true,
            resumed: false,
        };
        assert!(matches!(
            assess(&no_boot, expect).verdict,
            Verdict::Unverified { .. }
        ));
        assert_eq!(
            assess(&no_boot, Expect::default()).verdict,
            Verdict::Verified
        );
    }
}
