//! The `az` calls of a fleet repair, as argv for [`Cmd`], and what their
//! answers mean.
//!
//! Shapes, from the sources they come from:
//! - `az vm show/list --show-details -o json`: VM objects with `id`, `name`,
//!   `resourceGroup`, `powerState` (added by `--show-details`),
//!   `storageProfile.osDisk.{name,osType}`, `osProfile.linuxConfiguration`
//!   (azure-cli, command_modules/vm).
//! - `az vm boot-diagnostics get-boot-log`: the serial log as plain text on
//!   stdout, or `Please enable boot diagnostics.` and exit 1 (azure-cli,
//!   vm/custom.py `get_boot_log`, `BootLogStreamWriter`).
//! - `az vm repair create|run|restore -o json`: a dict with `status`
//!   (`SUCCESS`/`ERROR`), `message`, and on error `error_message`; create
//!   adds `repair_vm_name`, `copied_disk_name`, `copied_disk_uri`,
//!   `repair_resource_group`, `resource_tag`, `created_resources`; run adds
//!   `script_status`, `logs`, `log_full_path`, `output`, `vm_name`,
//!   `resource_group` (azure-cli-extensions src/vm-repair,
//!   azext_vm_repair/custom.py and command_helper_class.py
//!   `init_return_dict`). The extension turns failures of the `az` commands
//!   it runs into `status: ERROR` with their stderr in `error_message`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::Cmd;

use super::retry::is_transient;
use super::secret::Credentials;
use super::VmRef;

/// A failed `az` call: worth another try later, or not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

impl AzError {
    pub fn classify(text: &str) -> AzError {
        let text = text.trim().to_string();
        if is_transient(&text) {
            AzError::Transient(text)
        } else {
            AzError::Permanent(text)
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, AzError::Transient(_))
    }

    pub fn text(&self) -> &str {
        match self {
            AzError::Transient(t) | AzError::Permanent(t) => t,
        }
    }
}

/// The names of one VM's repair resources. Chosen by vmrescue (not left to
/// the extension's time-stamped defaults) so a resumed run knows what to
/// look for: they derive from the fleet id in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairNames {
    pub repair_vm_name: String,
    pub repair_resource_group: String,
    pub copied_disk_name: String,
}

fn fnv_hex(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash as u32)
}

/// `name` cut to `max` characters; when cut, the end is a hash of the whole
/// so two long names stay apart. Never ends in `-` or `.` (Azure refuses it).
fn bounded(name: &str, max: usize) -> String {
    let out = if name.len() <= max {
        name.to_string()
    } else {
        let keep: String = name.chars().take(max - 9).collect();
        format!("{}-{}", keep.trim_end_matches(['-', '.']), fnv_hex(name))
    };
    out.trim_end_matches(['-', '.']).to_string()
}

impl RepairNames {
    pub fn for_vm(vm: &VmRef, fleet_id: &str) -> Self {
        RepairNames {
            // Linux VM names: at most 64 characters.
            repair_vm_name: bounded(&format!("repair-{}", vm.name), 64),
            // Resource groups: 90; unique per source VM and fleet run.
            repair_resource_group: bounded(
                &format!("repair-{}-{}-{fleet_id}", vm.resource_group, vm.name),
                90,
            ),
            // Managed disks: 80; created in the source VM's resource group.
            copied_disk_name: bounded(&format!("{}-repair-{fleet_id}", vm.name), 80),
        }
    }
}

/// How to run `az`.
#[derive(Debug, Clone)]
pub struct Az {
    pub program: PathBuf,
    /// No single `az` call may take longer (a repair run with a boot check
    /// takes minutes; Run Command itself gives up after 90 minutes).
    pub timeout: Duration,
}

impl Default for Az {
    fn default() -> Self {
        Az {
            program: PathBuf::from("az"),
            timeout: Duration::from_secs(100 * 60),
        }
    }
}

impl Az {
    fn base(&self, words: &[&str]) -> Cmd {
        Cmd::new(&self.program)
            .args(words)
            .timeout(self.timeout)
            // No prompts and no colour codes: az runs unattended here.
            .env("AZURE_CORE_NO_COLOR", "1")
            .env("AZURE_CORE_ONLY_SHOW_ERRORS", "1")
    }

    pub fn show(&self, vm: &VmRef) -> Cmd {
        self.base(&["vm", "show"])
            .args(vm.az_args())
            .args(["--show-details", "-o", "json"])
    }

    pub fn list(&self, resource_group: &str) -> Cmd {
        self.base(&[
            "vm",
            "list",
            "-g",
            resource_group,
            "--show-details",
            "-o",
            "json",
        ])
    }

    pub fn boot_log(&self, vm: &VmRef) -> Cmd {
        self.base(&["vm", "boot-diagnostics", "get-boot-log"])
            .args(vm.az_args())
    }

    pub fn repair_create(&self, vm: &VmRef, names: &RepairNames, creds: &Credentials) -> Cmd {
        self.base(&["vm", "repair", "create"])
            .args(vm.az_args())
            .args(["--repair-vm-name", &names.repair_vm_name])
            .args(["--repair-group-name", &names.repair_resource_group])
            .args(["--copy-disk-name", &names.copied_disk_name])
            .arg("--repair-username")
            .secret_arg(creds.username.expose())
            .arg("--repair-password")
            .secret_arg(creds.password.expose())
            // --yes: no prompt (public IP, clean-up); the repair VM gets no public IP.
            .args(["--yes", "-o", "json"])
    }

    pub fn repair_run(&self, vm: &VmRef, repair_vm_id: &str, payload: &Path) -> Cmd {
        self.base(&["vm", "repair", "run"])
            .args(vm.az_args())
            .arg("--custom-script-file")
            .arg(payload)
            .args([
                "--run-on-repair",
                "--repair-vm-id",
                repair_vm_id,
                "-o",
                "json",
            ])
    }

    pub fn repair_restore(&self, vm: &VmRef, repair_vm_id: &str, disk: &str) -> Cmd {
        self.base(&["vm", "repair", "restore"])
            .args(vm.az_args())
            .args(["--repair-vm-id", repair_vm_id, "--disk-name", disk])
            .args(["--yes", "-o", "json"])
    }

    pub fn start(&self, vm: &VmRef) -> Cmd {
        self.base(&["vm", "start"]).args(vm.az_args())
    }

    /// The repair VM, to find out on resume whether an interrupted `create`
    /// made it.
    pub fn show_repair_vm(&self, vm: &VmRef, names: &RepairNames) -> Cmd {
        let mut repair = VmRef::new(&names.repair_resource_group, &names.repair_vm_name);
        repair.subscription = vm.subscription.clone();
        self.show(&repair)
    }
}

/// Runs an `az` command: its stdout, or the classified error (stderr).
pub fn invoke(cmd: &Cmd) -> Result<String, AzError> {
    let output = cmd
        .run_unchecked()
        .map_err(|e| AzError::Permanent(format!("{e:#}")))?;
    if output.success() {
        return Ok(output.stdout_string());
    }
    if output.timed_out {
        return Err(AzError::Permanent(format!(
            "`{}` timed out",
            cmd.display_argv()
        )));
    }
    let stderr = output.stderr_tail.trim();
    Err(AzError::classify(if stderr.is_empty() {
        "az failed without a message"
    } else {
        stderr
    }))
}

/// Runs `call` until it succeeds, fails for good, or the policy's attempts
/// are used up; transient failures wait with backoff and jitter first.
pub fn with_retry<T>(
    policy: &super::retry::RetryPolicy,
    mut call: impl FnMut() -> Result<T, AzError>,
) -> Result<T, AzError> {
    let mut jitter = super::secret::Jitter::new();
    let mut tries = 0;
    loop {
        tries += 1;
        match call() {
            Err(err) if err.is_transient() && tries < policy.attempts => {
                std::thread::sleep(policy.delay(tries, &mut jitter));
            }
            other => return other,
        }
    }
}

/// Parses a vm-repair answer; `status: ERROR` becomes an error carrying
/// `error_message` and `message`.
pub fn extension_result(stdout: &str) -> Result<serde_json::Value, AzError> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        AzError::Permanent(format!(
            "az vm repair did not answer JSON ({e}): {}",
            stdout.trim()
        ))
    })?;
    let text = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if text("status").eq_ignore_ascii_case("SUCCESS") {
        return Ok(value);
    }
    let mut why = text("error_message");
    let message = text("message");
    if !message.is_empty() {
        why = if why.is_empty() {
            message
        } else {
            format!("{why} ({message})")
        };
    }
    Err(AzError::classify(&why))
}

/// The repair VM's resource ID from a `create` answer: the created resource
/// that is the repair VM itself.
pub fn repair_vm_id(created: &serde_json::Value, names: &RepairNames) -> Option<String> {
    let suffix = format!(
        "/virtualmachines/{}",
        names.repair_vm_name.to_ascii_lowercase()
    );
    created
        .get("created_resources")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str())
        .find(|id| id.to_ascii_lowercase().ends_with(&suffix))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_distinct_and_valid() {
        let long = "x".repeat(100);
        let a = RepairNames::for_vm(&VmRef::new("rg", &format!("{long}a")), "0a1b2c3d");
        let b = RepairNames::for_vm(&VmRef::new("rg", &format!("{long}b")), "0a1b2c3d");
        assert!(a.repair_vm_name.len() <= 64 && a.repair_resource_group.len() <= 90);
        assert!(a.copied_disk_name.len() <= 80);
        assert_ne!(a.repair_resource_group, b.repair_resource_group);
        let short = RepairNames::for_vm(&VmRef::new("prod", "web-01"), "0a1b2c3d");
        assert_eq!(short.repair_vm_name, "repair-web-01");
        assert_eq!(short.repair_resource_group, "repair-prod-web-01-0a1b2c3d");
        assert_eq!(short.copied_disk_name, "web-01-repair-0a1b2c3d");
    }

    #[test]
    fn the_password_is_passed_but_not_shown() {
        let creds = Credentials::generate().unwrap();
        let vm = VmRef::new("prod", "web-01");
        let cmd = Az::default().repair_create(&vm, &RepairNames::for_vm(&vm, "ab"), &creds);
        let shown = cmd.display_argv();
        assert!(!shown.contains(creds.password.expose()), "{shown}");
        assert!(!shown.contains(creds.username.expose()), "{shown}");
        assert!(shown.contains("--repair-password <redacted>"), "{shown}");
    }

    #[test]
    fn extension_errors_are_classified() {
        let quota = r#"{"status": "ERROR", "message": "Repair create failed. Cleaning up created resources.", "error_message": "ERROR: (OperationNotAllowed) Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota."}"#;
        assert!(matches!(
            extension_result(quota),
            Err(AzError::Permanent(_))
        ));
        let throttled = r#"{"status": "ERROR", "message": "Repair create failed.", "error_message": "ERROR: (TooManyRequests) The request is being throttled"}"#;
        assert!(matches!(
            extension_result(throttled),
            Err(AzError::Transient(_))
        ));
        let ok = serde_json::json!({"status": "SUCCESS", "created_resources": [
            "/subscriptions/s/resourceGroups/repair-rg/providers/Microsoft.Network/networkInterfaces/repair-vmVMNic",
            "/subscriptions/s/resourceGroups/repair-rg/providers/Microsoft.Compute/virtualMachines/repair-vm"]});
        let names = RepairNames {
            repair_vm_name: "repair-vm".into(),
            repair_resource_group: "repair-rg".into(),
            copied_disk_name: "d".into(),
        };
        assert!(extension_result(&ok.to_string()).is_ok());
        assert!(repair_vm_id(&ok, &names)
            .unwrap()
            .ends_with("virtualMachines/repair-vm"));
    }
}
