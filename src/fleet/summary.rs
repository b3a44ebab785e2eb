//! One row per VM, what to do next, and the fleet's exit code.

use serde::Serialize;

use crate::error::ExitCode;

use super::state::Created;
use super::VmRef;

/// Where a VM ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Repaired, verified and restored (and, with `--start`, booted to a login prompt).
    Repaired,
    /// Restored after a verified repair, but the serial log shows no login prompt.
    NotBooting,
    /// The run did not prove a repair; the repair VM is left for a person.
    Unverified,
    /// The payload found nothing it recognises; the repair VM is left.
    NothingRecognised,
    /// The run reported an error; the repair VM is left.
    RunFailed,
    /// `az vm repair create` failed (quota, SKU …); nothing was left behind.
    CreateFailed,
    /// A `create` was interrupted and its repair VM is not there: it is not
    /// run again automatically.
    CreateUnknown,
    /// `az vm repair restore` failed; the repaired copy is still on the repair VM.
    RestoreFailed,
    /// Not started: `--max-failures` was reached.
    NotStarted,
    /// Deallocated or not Linux.
    Skipped,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Repaired => "repaired",
            Outcome::NotBooting => "not-booting",
            Outcome::Unverified => "unverified",
            Outcome::NothingRecognised => "nothing-recognised",
            Outcome::RunFailed => "run-failed",
            Outcome::CreateFailed => "create-failed",
            Outcome::CreateUnknown => "create-unknown",
            Outcome::RestoreFailed => "restore-failed",
            Outcome::NotStarted => "not-started",
            Outcome::Skipped => "skipped",
        }
    }

    /// Counts towards `--max-failures`.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            Outcome::Repaired | Outcome::NotStarted | Outcome::Skipped
        )
    }
}

/// The summary row of one VM (also one JSON line with `--json`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VmReport {
    pub vm: String,
    pub outcome: Outcome,
    pub diagnosis: Option<String>,
    pub recipe: Option<String>,
    pub verified: bool,
    pub restored: bool,
    /// `None`: not checked (no `--start`, or never restored).
    pub boots: Option<bool>,
    /// Seconds this process spent on the VM.
    pub seconds: f64,
    /// Why it ended here, in one line.
    pub detail: String,
    /// The next step in a few words.
    pub next: String,
    /// The commands to continue or clean up, ready to paste.
    pub commands: Vec<String>,
    pub serial_log: Option<String>,
    pub repair_vm_id: Option<String>,
}

impl VmReport {
    /// A row for a VM that got no further than `outcome`: nothing verified,
    /// restored or checked.
    pub fn bare(vm: String, outcome: Outcome, detail: String, next: String) -> VmReport {
        VmReport {
            vm,
            outcome,
            diagnosis: None,
            recipe: None,
            verified: false,
            restored: false,
            boots: None,
            seconds: 0.0,
            detail,
            next,
            commands: Vec::new(),
            serial_log: None,
            repair_vm_id: None,
        }
    }
}

/// The commands for a person taking over a VM whose repair VM was left.
pub fn takeover_commands(vm: &VmRef, created: &Created) -> Vec<String> {
    let sub = vm
        .subscription
        .as_ref()
        .map(|s| format!(" --subscription {s}"))
        .unwrap_or_default();
    vec![
        format!(
            "az vm repair restore -g {} -n {}{sub} --repair-vm-id {} --disk-name {} --yes   # after checking the disk on the repair VM",
            vm.resource_group, vm.name, created.repair_vm_id, created.copied_disk_name
        ),
        format!(
            "az group delete -n {}{sub} --yes --no-wait && az disk delete -g {} -n {}{sub} --yes   # to give up and clean up",
            created.repair_resource_group, vm.resource_group, created.copied_disk_name
        ),
    ]
}

/// Totals, and the exit code of the whole run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FleetTotals {
    pub version: u32,
    pub kind: &'static str,
    pub selected: usize,
    pub skipped: usize,
    pub repaired: usize,
    pub needs_attention: usize,
    pub exit_code: u8,
}

/// 0: every selected VM repaired, verified and restored (and booting, with
/// `--start`). 3: no VM selected. 6: each VM that is not repaired stopped at
/// verification (unverified, nothing recognised, run failed, not booting). 1:
/// anything else (create, restore, interrupted create, `--max-failures`).
pub fn exit_code(reports: &[VmReport]) -> ExitCode {
    let selected: Vec<&VmReport> = reports
        .iter()
        .filter(|r| r.outcome != Outcome::Skipped)
        .collect();
    if selected.is_empty() {
        return ExitCode::NoTarget;
    }
    let failed: Vec<Outcome> = selected
        .iter()
        .map(|r| r.outcome)
        .filter(|o| *o != Outcome::Repaired)
        .collect();
    if failed.is_empty() {
        return ExitCode::Success;
    }
    let verification = |o: &Outcome| {
        matches!(
            o,
            Outcome::Unverified
                | Outcome::NothingRecognised
                | Outcome::RunFailed
                | Outcome::NotBooting
        )
    };
    if failed.iter().all(verification) {
        ExitCode::VerifyFailed
    } else {
        ExitCode::Error
    }
}

pub fn totals(reports: &[VmReport]) -> FleetTotals {
    let skipped = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .count();
    let repaired = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Repaired)
        .count();
    FleetTotals {
        version: 1,
        kind: "fleet-summary",
        selected: reports.len() - skipped,
        skipped,
        repaired,
        needs_attention: reports.len() - skipped - repaired,
        exit_code: exit_code(reports).code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: Outcome) -> VmReport {
        VmReport::bare("rg/vm".into(), outcome, String::new(), String::new())
    }

    #[test]
    fn exit_codes_follow_the_worst_outcome() {
        use Outcome::*;
        assert_eq!(exit_code(&[row(Repaired), row(Skipped)]), ExitCode::Success);
        assert_eq!(exit_code(&[row(Skipped)]), ExitCode::NoTarget);
        assert_eq!(
            exit_code(&[row(Repaired), row(Unverified), row(NotBooting)]),
            ExitCode::VerifyFailed
        );
        assert_eq!(
            exit_code(&[row(Unverified), row(CreateFailed)]),
            ExitCode::Error
        );
        assert_eq!(exit_code(&[row(NotStarted)]), ExitCode::Error);
        let t = totals(&[row(Repaired), row(Skipped), row(RunFailed)]);
        assert_eq!(
            (t.selected, t.skipped, t.repaired, t.needs_attention),
            (2, 1, 1, 1)
        );
    }
}
