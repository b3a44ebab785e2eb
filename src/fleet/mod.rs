//! Repairing many VMs at once through Azure's own engine: `az vm repair
//! create → run → restore` (Run Command underneath), with bounded
//! parallelism, retries on throttling, a resumable JSON-lines state file, and
//! a restore only after a repair the payload verified.
//!
//! This is a library: it takes plain values (which VMs, how many at once, a
//! way to make each VM's payload, an observer for progress) and returns one
//! [`summary::VmReport`] per VM. The CLI flags and the printing live in the
//! binary (`run.rs`, `ui::fleet`). Every `az` call goes through
//! [`crate::cmd::Cmd`] as argv; per-VM repair credentials are passed as
//! secret arguments and never logged.

pub mod az;
pub mod engine;
pub mod retry;
pub mod secret;
pub mod select;
pub mod state;
pub mod summary;
pub mod verdict;

use serde::{Deserialize, Serialize};

/// A VM as `az` addresses it: resource group and name, and the subscription
/// when a resource ID named one.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct VmRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    pub resource_group: String,
    pub name: String,
}

impl VmRef {
    pub fn new(resource_group: &str, name: &str) -> Self {
        VmRef {
            subscription: None,
            resource_group: resource_group.to_string(),
            name: name.to_string(),
        }
    }

    /// `RG/NAME`: the key of this VM in the state file and the summary.
    pub fn key(&self) -> String {
        format!("{}/{}", self.resource_group, self.name)
    }

    /// `-g RG -n NAME` (and `--subscription S`) for an `az` command line.
    pub fn az_args(&self) -> Vec<String> {
        let mut args = vec![
            "-g".to_string(),
            self.resource_group.clone(),
            "-n".to_string(),
            self.name.clone(),
        ];
        if let Some(sub) = &self.subscription {
            args.push("--subscription".to_string());
            args.push(sub.clone());
        }
        args
    }
}

impl std::fmt::Display for VmRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// The steps of one VM's repair, in order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// `az vm boot-diagnostics get-boot-log`, kept as evidence.
    Evidence,
    /// `az vm repair create`.
    Create,
    /// `az vm repair run --custom-script-file PAYLOAD --run-on-repair`.
    Run,
    /// `az vm repair restore`, only after a verified run.
    Restore,
    /// `az vm start` (with `--start`).
    Start,
    /// The serial log read again after the start: did it reach a login prompt?
    BootCheck,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Step::Evidence => "evidence",
            Step::Create => "create",
            Step::Run => "run",
            Step::Restore => "restore",
            Step::Start => "start",
            Step::BootCheck => "boot-check",
        }
    }
}
