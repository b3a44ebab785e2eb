//! The recipe file format (`recipes/*.toml`): what a repair does and why.
//! Recipes are data; the actions they name are typed Rust (`actions`).
//! Unknown keys, actions or parameters are load errors naming file and line.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    pub id: String,
    pub title: String,
    /// What and why, for the wizard and `recipes show`.
    pub summary: String,
    /// Console-log signatures that suggest this recipe (shown to the operator).
    #[serde(default)]
    pub symptoms: Vec<String>,
    /// OS families it applies to (`rhel`, `debian`, `suse`, `amazon`, `azurelinux`).
    pub families: Vec<String>,
    /// Safe for `repair auto` (applied when diagnosis suggests it).
    #[serde(default)]
    pub auto: bool,
    /// Deletes what undo cannot bring back: applied only with
    /// `--param confirm=true`, also by `repair auto` and the wizard.
    #[serde(default)]
    pub irreversible: bool,
    /// Order among recipes applied together (lower first).
    #[serde(default = "default_order")]
    pub order: u32,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    pub steps: Vec<StepSpec>,
    #[serde(default)]
    pub verify: Vec<VerifySpec>,
    /// What the operator should do once the VM boots again (shown with the result).
    #[serde(default)]
    pub after: Vec<String>,
    /// The storage controller the boot proof (`--verify-boot`) must use,
    /// when the recipe is about one (`nvme` for nvme-ready).
    #[serde(default)]
    pub boot_controller: Option<crate::verify_boot::initramfs::Controller>,
}

fn default_order() -> u32 {
    50
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub description: String,
    /// How the default is chosen from the inspected OS.
    #[serde(default)]
    pub default: ParamDefault,
    /// A fixed default value (with `default = "value"`).
    #[serde(default)]
    pub value: Option<String>,
}

/// Rules for a parameter's default value.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ParamDefault {
    /// No default: the operator must give it.
    #[default]
    Required,
    /// The fixed `value`.
    Value,
    /// The newest installed kernel older than the effective default, with
    /// modules and a non-empty initramfs.
    PreviousKernel,
    /// The kernel the boot configuration selects now.
    DefaultKernel,
    /// The culprit module named by the diagnosis.
    DiagnosedModule,
    /// No value unless the operator gives one; steps and checks that name
    /// it do only their audit part (or are skipped) without it.
    Optional,
    /// The `crashkernel=` value already on the target's command line, else
    /// the family's: `auto` on RHEL 7/8, a memory-size table otherwise.
    Crashkernel,
}

/// One typed action of a recipe. `{param}` in strings is replaced by the
/// parameter's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepSpec {
    /// Make a kernel the default boot entry the way the family does it.
    SetDefaultKernel {
        kernel: String,
        /// Boot it once only (grubenv `next_entry`), then fall back.
        #[serde(default)]
        once: Option<String>,
    },
    /// Add (or replace the value of) a kernel argument everywhere the command line lives.
    AddKernelArg { arg: String },
    /// Remove a kernel argument everywhere.
    RemoveKernelArg { arg: String },
    /// Regenerate grub.cfg with the target's own generator, when an earlier step changed its inputs.
    RegenerateGrubConfig {
        #[serde(default)]
        always: bool,
    },
    /// Regenerate the initramfs for an explicit kernel version with the target's own generator.
    RebuildInitramfs {
        /// `default`, `all`, or a version.
        kernel: String,
        /// Make sure the platform's storage drivers are forced in.
        #[serde(default)]
        ensure_platform_drivers: bool,
        /// Rebuild even when the initramfs looks complete.
        #[serde(default)]
        always: bool,
    },
    /// Keep a module from loading: modprobe.d blacklist + install /bin/false,
    /// kernel arguments, the `.ko` quarantined in the journal.
    BlacklistModule { module: String },
    /// Point `root=` and fstab's root at the filesystem really on the disk.
    FixRootReferences {},
    /// Add `nofail` to non-essential fstab entries whose source is missing.
    FstabNofail {},
    /// Hold every local fstab line against the disk: /boot and the ESP
    /// pointed at their partitions, `nofail` for missing devices, types
    /// corrected.
    FixMounts {},
    /// Set a sysctl in a vmrescue drop-in, commenting out conflicting settings.
    SetSysctl { key: String, value: String },
    /// Report a sysctl's effective value with what it does; set it (as
    /// set-sysctl) only when `value` names a parameter the operator gave.
    AuditSysctl {
        key: String,
        /// One line: which hang or error the knob turns into a panic.
        explain: String,
        #[serde(default)]
        value: Option<String>,
    },
    /// Refuse unless the target has its family's kdump tools (and, with
    /// `kdump_conf`, an /etc/kdump.conf).
    RequireKdump {
        #[serde(default)]
        kdump_conf: bool,
    },
    /// Set a directive of /etc/kdump.conf in place; `list` adds words to a
    /// list directive instead of replacing it. Directives that dracut-based
    /// kexec-tools refuses are written where it reads them instead.
    SetKdumpOption {
        directive: String,
        value: String,
        #[serde(default)]
        list: bool,
    },
    /// Enable the kdump service: the systemd wants symlink inside the target
    /// (and USE_KDUMP=1 for Debian's kdump-tools).
    EnableKdumpService {},
    /// List the disk's PVs in LVM's devices file by their UUIDs, and rebuild
    /// the initramfs whose copy of the file misses one: the default
    /// kernel's, or every kernel's when `all` is `true`.
    LvmDevices { all: String },
    /// Make the disk boot on an NVMe controller: controller-bound device
    /// names become UUIDs, and the initramfs (`default`, `all`, or a
    /// version) that lacks `nvme` is rebuilt with it.
    NvmeReady { kernel: String },
    /// Put the target's signed shim, MokManager and GRUB back on the EFI
    /// System Partition (`EFI/<distro>/` and the removable `EFI/BOOT/`).
    ReinstallBootLoader {},
    /// Enable a login on a serial port: the `getty.target` wants link of
    /// `serial-getty@PORT.service` (what `systemctl enable` creates).
    EnableSerialGetty { port: String },
    /// Ask for a full SELinux relabel on the next boot (`/.autorelabel`);
    /// refused on a target without SELinux.
    RequestRelabel {},
    /// Delete regenerable files (archived journals, package caches, rotated
    /// logs) on the target's nearly full filesystems; not undoable.
    FreeSpace {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "check", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VerifySpec {
    DefaultKernelIs {
        kernel: String,
    },
    KernelArgPresent {
        arg: String,
    },
    KernelArgAbsent {
        arg: String,
    },
    InitramfsComplete {
        kernel: String,
    },
    ModuleNotLoadable {
        module: String,
    },
    RootResolves {},
    FstabResolves {},
    SysctlIs {
        key: String,
        value: String,
    },
    KdumpOptionIs {
        directive: String,
        value: String,
        #[serde(default)]
        list: bool,
    },
    KdumpServiceEnabled {},
    /// The default kernel's initramfs has `nvme` and no fstab line or
    /// root=/resume= names a disk by a controller-bound path.
    NvmeReady {},
    /// Every boot file the bootloader action puts on the ESP equals the
    /// target's signed package file.
    BootLoaderInstalled {},
    SerialGettyEnabled {
        port: String,
    },
    RelabelRequested {},
}

impl StepSpec {
    pub fn action_name(&self) -> &'static str {
        match self {
            StepSpec::SetDefaultKernel { .. } => "set-default-kernel",
            StepSpec::AddKernelArg { .. } => "add-kernel-arg",
            StepSpec::RemoveKernelArg { .. } => "remove-kernel-arg",
            StepSpec::RegenerateGrubConfig { .. } => "regenerate-grub-config",
            StepSpec::RebuildInitramfs { .. } => "rebuild-initramfs",
            StepSpec::BlacklistModule { .. } => "blacklist-module",
            StepSpec::FixRootReferences {} => "fix-root-references",
            StepSpec::FstabNofail {} => "fstab-nofail",
            StepSpec::FixMounts {} => "fix-mounts",
            StepSpec::SetSysctl { .. } => "set-sysctl",
            StepSpec::AuditSysctl { .. } => "audit-sysctl",
            StepSpec::RequireKdump { .. } => "require-kdump",
            StepSpec::SetKdumpOption { .. } => "set-kdump-option",
            StepSpec::EnableKdumpService {} => "enable-kdump-service",
            StepSpec::LvmDevices { .. } => "lvm-devices",
            StepSpec::NvmeReady { .. } => "nvme-ready",
            StepSpec::ReinstallBootLoader {} => "reinstall-boot-loader",
            StepSpec::EnableSerialGetty { .. } => "enable-serial-getty",
            StepSpec::RequestRelabel {} => "request-relabel",
            StepSpec::FreeSpace {} => "free-space",
        }
    }

    /// Every string field, for parameter checks.
    pub fn strings(&self) -> Vec<&str> {
        match self {
            StepSpec::SetDefaultKernel { kernel, once } => {
                let mut v = vec![kernel.as_str()];
                v.extend(once.as_deref());
                v
            }
            StepSpec::AddKernelArg { arg } | StepSpec::RemoveKernelArg { arg } => vec![arg],
            StepSpec::RebuildInitramfs { kernel, .. } | StepSpec::NvmeReady { kernel } => {
                vec![kernel]
            }
            StepSpec::LvmDevices { all } => vec![all],
            StepSpec::BlacklistModule { module } => vec![module],
            StepSpec::EnableSerialGetty { port } => vec![port],
            StepSpec::SetSysctl { key, value } => vec![key, value],
            StepSpec::AuditSysctl {
                key,
                explain,
                value,
            } => {
                let mut v = vec![key.as_str(), explain.as_str()];
                v.extend(value.as_deref());
                v
            }
            StepSpec::SetKdumpOption {
                directive, value, ..
            } => vec![directive, value],
            StepSpec::RegenerateGrubConfig { .. }
            | StepSpec::FixRootReferences {}
            | StepSpec::FstabNofail {}
            | StepSpec::FixMounts {}
            | StepSpec::RequireKdump { .. }
            | StepSpec::ReinstallBootLoader {}
            | StepSpec::EnableKdumpService {}
            | StepSpec::RequestRelabel {}
            | StepSpec::FreeSpace {} => {
                vec![]
            }
        }
    }
}

impl VerifySpec {
    pub fn check_name(&self) -> &'static str {
        match self {
            VerifySpec::DefaultKernelIs { .. } => "default-kernel-is",
            VerifySpec::KernelArgPresent { .. } => "kernel-arg-present",
            VerifySpec::KernelArgAbsent { .. } => "kernel-arg-absent",
            VerifySpec::InitramfsComplete { .. } => "initramfs-complete",
            VerifySpec::ModuleNotLoadable { .. } => "module-not-loadable",
            VerifySpec::RootResolves {} => "root-resolves",
            VerifySpec::FstabResolves {} => "fstab-resolves",
            VerifySpec::SysctlIs { .. } => "sysctl-is",
            VerifySpec::KdumpOptionIs { .. } => "kdump-option-is",
            VerifySpec::KdumpServiceEnabled {} => "kdump-service-enabled",
            VerifySpec::NvmeReady {} => "nvme-ready",
            VerifySpec::BootLoaderInstalled {} => "boot-loader-installed",
            VerifySpec::SerialGettyEnabled { .. } => "serial-getty-enabled",
            VerifySpec::RelabelRequested {} => "relabel-requested",
        }
    }

    /// Every string field, for parameter checks.
    pub fn strings(&self) -> Vec<&str> {
        match self {
            VerifySpec::DefaultKernelIs { kernel } | VerifySpec::InitramfsComplete { kernel } => {
                vec![kernel]
            }
            VerifySpec::KernelArgPresent { arg } | VerifySpec::KernelArgAbsent { arg } => vec![arg],
            VerifySpec::ModuleNotLoadable { module } => vec![module],
            VerifySpec::SysctlIs { key, value } => vec![key, value],
            VerifySpec::KdumpOptionIs {
                directive, value, ..
            } => vec![directive, value],
            VerifySpec::SerialGettyEnabled { port } => vec![port],
            VerifySpec::RootResolves {}
            | VerifySpec::FstabResolves {}
            | VerifySpec::KdumpServiceEnabled {}
            | VerifySpec::NvmeReady {}
            | VerifySpec::BootLoaderInstalled {}
            | VerifySpec::RelabelRequested {} => vec![],
        }
    }
}

pub const FAMILIES: &[&str] = &["rhel", "debian", "suse", "amazon", "azurelinux"];

/// `{name}` references in a string.
pub fn param_refs(text: &str) -> Vec<&str> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        refs.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    refs
}

/// Like [`substitute`], but `None` when a referenced parameter has no value
/// (an optional one the operator did not give).
pub fn substitute_optional(
    text: &str,
    params: &BTreeMap<String, String>,
) -> Result<Option<String>> {
    if param_refs(text)
        .iter()
        .any(|name| !params.contains_key(*name))
    {
        return Ok(None);
    }
    substitute(text, params).map(Some)
}

/// Replaces `{name}` with parameter values.
pub fn substitute(text: &str, params: &BTreeMap<String, String>) -> Result<String> {
    let mut out = text.to_string();
    for name in param_refs(text) {
        let value = params
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("parameter `{name}` has no value"))?;
        out = out.replace(&format!("{{{name}}}"), value);
    }
    Ok(out)
}

/// Parses one recipe file; errors name the file and (from toml) the line.
pub fn parse(file_name: &str, text: &str) -> Result<RecipeSpec> {
    let spec: RecipeSpec =
        toml::from_str(text).map_err(|err| anyhow::anyhow!("{file_name}: {err}"))?;
    validate(&spec).map_err(|err| anyhow::anyhow!("{file_name}: {err:#}"))?;
    Ok(spec)
}

fn validate(spec: &RecipeSpec) -> Result<()> {
    if spec.id.is_empty()
        || !spec
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("id `{}` must be lowercase kebab-case", spec.id);
    }
    for family in &spec.families {
        if !FAMILIES.contains(&family.as_str()) {
            bail!("unknown family `{family}` (known: {})", FAMILIES.join(", "));
        }
    }
    if spec.steps.is_empty() {
        bail!("a recipe needs at least one step");
    }
    for (name, param) in &spec.params {
        if param.default == ParamDefault::Value && param.value.is_none() {
            bail!("parameter `{name}`: default = \"value\" needs a `value`");
        }
    }
    for step in &spec.steps {
        let fixed: Vec<&str> = match step {
            StepSpec::AuditSysctl { key, explain, .. } => vec![key, explain],
            other => other.strings(),
        };
        for name in fixed.iter().flat_map(|t| param_refs(t)) {
            if spec.params.get(name).map(|p| p.default) == Some(ParamDefault::Optional) {
                bail!("optional parameter `{name}` can only be used in an audit-sysctl value or a check");
            }
        }
    }
    let strings = spec
        .steps
        .iter()
        .flat_map(StepSpec::strings)
        .chain(spec.verify.iter().flat_map(VerifySpec::strings));
    for text in strings {
        for name in param_refs(text) {
            if !spec.params.contains_key(name) {
                bail!("`{{{name}}}` names no parameter of this recipe");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id = "cgroup-nokmem"
title = "t"
summary = "s"
families = ["rhel"]
[[steps]]
action = "add-kernel-arg"
arg = "cgroup.memory=nokmem"
"#;

    #[test]
    fn parses_a_minimal_recipe() {
        let spec = parse("x.toml", MINIMAL).unwrap();
        assert_eq!(
            spec.steps[0],
            StepSpec::AddKernelArg {
                arg: "cgroup.memory=nokmem".into()
            }
        );
        assert_eq!(spec.order, 50);
    }

    #[test]
    fn unknown_key_is_an_error_with_file_and_line() {
        let text = MINIMAL.replace("summary = \"s\"", "summary = \"s\"\ncolour = \"red\"");
        let err = format!("{:#}", parse("x.toml", &text).unwrap_err());
        assert!(
            err.contains("x.toml") && err.contains("line 5") && err.contains("colour"),
            "{err}"
        );
    }

    #[test]
    fn unknown_action_is_an_error_with_file_and_line() {
        let text = MINIMAL.replace("add-kernel-arg", "format-disk");
        let err = format!("{:#}", parse("x.toml", &text).unwrap_err());
        assert!(
            err.contains("x.toml") && err.contains("line 7") && err.contains("format-disk"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_in_a_step_is_an_error() {
        let text = MINIMAL.replace(
            "arg = \"cgroup.memory=nokmem\"",
            "arg = \"x\"\nforce = true",
        );
        assert!(parse("x.toml", &text).is_err());
    }

    #[test]
    fn undeclared_parameter_reference_is_an_error() {
        let text = MINIMAL.replace("cgroup.memory=nokmem", "{value}");
        let err = format!("{:#}", parse("x.toml", &text).unwrap_err());
        assert!(err.contains("{value}"), "{err}");
    }

    #[test]
    fn substitution_replaces_every_reference() {
        let params = BTreeMap::from([("kernel".to_string(), "6.1.0-9-amd64".to_string())]);
        assert_eq!(
            substitute("vmlinuz-{kernel}", &params).unwrap(),
            "vmlinuz-6.1.0-9-amd64"
        );
        assert!(substitute("{nope}", &params).is_err());
    }
}
