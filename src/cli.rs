//! Command-line interface (clap derive). Parsing only: `run` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "vmrescue",
    version,
    about = "Rescue a Linux VM that panics at boot: find and mount its OS disk from a rescue VM, \
             diagnose why it does not boot, and apply reversible repairs.",
    propagate_version = true,
    after_help = "Without a command on a terminal, vmrescue starts the interactive wizard (`vmrescue wizard`).",
    after_long_help = concat!(
        "Without a command on a terminal, vmrescue starts the interactive wizard (`vmrescue wizard`).\n\n",
        "Exit status:\n",
        "    0  repaired, or nothing to do\n",
        "    1  error\n",
        "    2  usage error\n",
        "    3  no target disk found, several candidates, or a refused target (the rescue VM itself)\n",
        "    4  unsupported target (encrypted without a key, unknown layout), or cannot be booted here\n",
        "    5  recipe refused (preconditions unmet, or not confirmed)\n",
        "    6  verification failed: the changes are kept, `vmrescue undo` restores them\n",
        "  130  interrupted (Ctrl-C, SIGTERM, hang-up): everything vmrescue mounted is released"
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// More detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub(crate) quiet: bool,
    /// Print one JSON envelope on stdout (the same as --output json; schemas in docs/schema/).
    #[arg(
        long,
        global = true,
        conflicts_with = "output",
        help_heading = "Global options"
    )]
    pub(crate) json: bool,
    /// Full debug log [default: /var/log/vmrescue/<run-id>.log, else /tmp].
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub(crate) log_file: Option<PathBuf>,
    /// Output style: human text, one JSON object, or Azure Run Command log lines.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, help_heading = "Global options")]
    pub(crate) output: OutputFormat,
    /// Colour in human output (NO_COLOR and a non-terminal stdout turn it off in auto).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, help_heading = "Global options")]
    pub(crate) color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
    Runcommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The interactive wizard: find, mount, diagnose, choose and apply repairs (the default on a terminal).
    Wizard(WizardArgs),
    /// List block devices and tell the rescue host's disks from candidate OS disks.
    Scan(ScanArgs),
    /// Find, assemble and mount the target OS read-only under one directory, and leave it mounted.
    Mount(TargetArgs),
    /// Undo everything `vmrescue mount` (or an interrupted run) did: unmount,
    /// deactivate and rename back VGs, detach loop devices.
    Umount {
        /// The target key (see the state files in /run/vmrescue); default: all.
        #[arg(conflicts_with_all = ["disk", "image"])]
        key: Option<String>,
        /// The target mounted from this disk.
        #[arg(long, value_name = "DEV", conflicts_with = "image")]
        disk: Option<PathBuf>,
        /// The target mounted from this image file.
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
    },
    /// Run a command (default: a shell) chrooted into the target, in a private mount namespace.
    Chroot(ChrootArgs),
    /// Check the target's filesystems (read-only unless --repair).
    Fsck(FsckArgs),
    /// Show how the target boots: distribution, default entry and command line, kernels, problems.
    Inspect(TargetArgs),
    /// Show what a recipe would change (unified diffs and chroot commands); changes nothing.
    Plan(PlanArgs),
    /// Apply a recipe (or `auto`: what the diagnosis suggests) after showing the plan.
    Repair(RepairArgs),
    /// Explain why the VM does not boot, from console logs and the target's own logs.
    Diagnose(DiagnoseArgs),
    /// Prove the target boots: `--boot` boots it in a throwaway QEMU VM
    /// (copy-on-write, the disk is never written) and reports how far it got.
    Verify(VerifyArgs),
    /// Restore what a repair run changed (default: the newest run not yet undone).
    Undo(UndoArgs),
    /// List the repair runs journaled on the target.
    History(TargetArgs),
    /// List the repair recipes, or show one in full.
    Recipes(RecipesArgs),
    /// Write an `az vm repair run` payload with the repair's settings baked in.
    AzPayload(AzPayloadArgs),
    /// Repair many VMs through `az vm repair` (create, run, restore) with bounded
    /// parallelism and a resumable state file; run where `az` is logged in.
    AzFleet(AzFleetArgs),
    /// Write a support bundle (.tar.gz): scan, inspect, diagnose and history reports, run and
    /// console logs, the target's boot configuration; secrets are left out or redacted.
    Report(ReportArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write every page into a directory.
    Man {
        /// Write vmrescue.1 and vmrescue-<command>.1 for every command here.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

impl Command {
    /// The verb as typed, for the JSON envelope's `command`.
    pub(crate) fn verb(&self) -> &'static str {
        match self {
            Command::Wizard(_) => "wizard",
            Command::Scan(_) => "scan",
            Command::Mount(_) => "mount",
            Command::Umount { .. } => "umount",
            Command::Chroot(_) => "chroot",
            Command::Fsck(_) => "fsck",
            Command::Inspect(_) => "inspect",
            Command::Plan(_) => "plan",
            Command::Repair(_) => "repair",
            Command::Diagnose(_) => "diagnose",
            Command::Verify(_) => "verify",
            Command::Undo(_) => "undo",
            Command::History(_) => "history",
            Command::Recipes(_) => "recipes",
            Command::AzPayload(_) => "az-payload",
            Command::AzFleet(_) => "az-fleet",
            Command::Report(_) => "report",
            Command::Completions { .. } => "completions",
            Command::Man { .. } => "man",
        }
    }
}

/// Every verb [`Command::verb`] gives (a test keeps it in step with clap).
pub(crate) const VERBS: &[&str] = &[
    "wizard",
    "scan",
    "mount",
    "umount",
    "chroot",
    "fsck",
    "inspect",
    "plan",
    "repair",
    "diagnose",
    "verify",
    "undo",
    "history",
    "recipes",
    "az-payload",
    "az-fleet",
    "report",
    "completions",
    "man",
];

/// The verb of a command line clap refused, for its JSON usage error: the
/// first argument that is one, else `vmrescue`.
pub(crate) fn verb_in(args: &[String]) -> &'static str {
    args.iter()
        .skip(1)
        .find_map(|a| VERBS.iter().find(|v| **v == a.as_str()))
        .copied()
        .unwrap_or("vmrescue")
}

/// Which target to work on. Without any: the target `vmrescue mount` left
/// mounted, else the single candidate disk.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// The broken OS disk (or one of its partitions), e.g. /dev/sdc.
    #[arg(long, value_name = "DEV", conflicts_with_all = ["image", "root"], help_heading = "Target")]
    pub(crate) disk: Option<PathBuf>,
    /// A disk image file, attached as a loop device for the run.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "root",
        help_heading = "Target"
    )]
    pub(crate) image: Option<PathBuf>,
    /// An already mounted root directory (e.g. /investigateroot): nothing is mounted.
    #[arg(long, value_name = "DIR", help_heading = "Target")]
    pub(crate) root: Option<PathBuf>,
    /// Where targets are mounted.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/mnt/vmrescue",
        help_heading = "Target"
    )]
    pub(crate) mount_base: PathBuf,
}

/// `VMRESCUE_ACCEL` for the wizard's boot check, which has no flags: the
/// same values `--accel` takes.
pub(crate) fn accel_from_env() -> vmrescue::verify_boot::qemu::AccelChoice {
    std::env::var("VMRESCUE_ACCEL")
        .ok()
        .and_then(|v| clap::ValueEnum::from_str(&v, true).ok())
        .unwrap_or(vmrescue::verify_boot::qemu::AccelChoice::Auto)
}

impl TargetArgs {
    /// The flags as the library's plain [`TargetSpec`](vmrescue::attach::TargetSpec).
    pub(crate) fn spec(&self) -> vmrescue::attach::TargetSpec {
        use vmrescue::attach::TargetSpec;
        if let Some(disk) = &self.disk {
            TargetSpec::Disk(disk.clone())
        } else if let Some(image) = &self.image {
            TargetSpec::Image(image.clone())
        } else if let Some(root) = &self.root {
            TargetSpec::Root(root.clone())
        } else {
            TargetSpec::Auto
        }
    }
}

impl Default for TargetArgs {
    fn default() -> Self {
        TargetArgs {
            disk: None,
            image: None,
            root: None,
            mount_base: PathBuf::from(vmrescue::attach::DEFAULT_MOUNT_BASE),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ChrootArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Mount the target read-write (needed to change anything from the shell).
    #[arg(long)]
    pub(crate) rw: bool,
    /// The command and its arguments (after `--`); default: the target's shell.
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct FsckArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Repair what the check finds (e2fsck -y, xfs_repair) after confirmation.
    #[arg(long)]
    pub(crate) repair: bool,
    /// Confirm without asking (unattended).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

#[derive(Debug, Args, Default)]
pub(crate) struct WizardArgs {
    /// Extra recipes (TOML) that add to or override the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub(crate) recipes_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// Takes any string, and offers `suggest()`'s words to shell completion:
/// recipe ids (`--recipes-dir` may add more) and `--param` names (the
/// recipe checks the value).
#[derive(Debug, Clone)]
pub(crate) struct Suggesting(fn() -> Vec<String>);

impl clap::builder::TypedValueParser for Suggesting {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            (self.0)()
                .into_iter()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

/// `auto` and the embedded recipe ids.
fn recipe_ids() -> Vec<String> {
    std::iter::once("auto")
        .chain(vmrescue::recipe::embedded_ids())
        .map(str::to_string)
        .collect()
}

/// `NAME=` for every parameter of the embedded recipes.
fn param_prefixes() -> Vec<String> {
    vmrescue::recipe::embedded_param_names()
        .into_iter()
        .map(|n| format!("{n}="))
        .collect()
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Recipe id (see `vmrescue recipes`), or `auto`.
    #[arg(value_parser = Suggesting(recipe_ids), hide_possible_values = true)]
    pub(crate) recipe: String,
    /// A recipe parameter, NAME=VALUE; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = Suggesting(param_prefixes), hide_possible_values = true)]
    pub(crate) params: Vec<String>,
    /// Console logs to diagnose for parameter defaults and `auto`.
    #[arg(long = "console-log", visible_alias = "log", value_name = "FILE")]
    pub(crate) logs: Vec<PathBuf>,
    /// Extra recipes (TOML) that add to or override the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub(crate) recipes_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    #[command(flatten)]
    pub(crate) plan: PlanArgs,
    /// Apply without asking (unattended); without it and without a terminal nothing changes (exit 5).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Print the plan only.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Require the boot check after the repair: boot the disk in QEMU as `verify --boot` does
    /// (a failed boot exits 6; no QEMU exits 4). Without either flag the check runs whenever a
    /// disk or image was repaired and qemu-system-x86_64 is installed.
    #[arg(long, conflicts_with = "no_verify_boot")]
    pub(crate) verify_boot: bool,
    /// Skip the boot check after the repair.
    #[arg(
        long,
        env = "VMRESCUE_NO_VERIFY_BOOT",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub(crate) no_verify_boot: bool,
    #[command(flatten)]
    pub(crate) boot_check: BootCheckArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Boot the target in a throwaway QEMU VM and read its serial console (the only
    /// check `verify` has, and its default; kept so `verify --boot` still works).
    #[arg(long)]
    pub(crate) boot: bool,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) boot_check: BootCheckArgs,
}

/// How `verify --boot` (and `repair --verify-boot`) boots the disk.
#[derive(Debug, Clone, Args)]
pub(crate) struct BootCheckArgs {
    /// grub: the disk's own boot loader (BIOS, or OVMF for a UEFI disk); kernel: direct boot of the
    /// default entry's kernel and initramfs with its command line plus console=ttyS0;
    /// auto: grub when that command line has console=ttyS0, else kernel.
    #[arg(long, value_enum, default_value_t = vmrescue::verify_boot::Via::Auto, help_heading = "Boot check")]
    pub(crate) via: vmrescue::verify_boot::Via,
    /// Wall-clock limit of the boot.
    #[arg(
        long = "timeout",
        value_name = "SECONDS",
        default_value_t = 180,
        help_heading = "Boot check"
    )]
    pub(crate) boot_timeout: u64,
    /// With --via kernel: append the target's own modules for a storage controller QEMU emulates
    /// (virtio, NVMe, AHCI, IDE) when its initramfs has none; the target is not changed.
    #[arg(long, help_heading = "Boot check")]
    pub(crate) add_drivers: bool,
    /// The disk's controller [default: the best one whose drivers the initramfs has].
    #[arg(long, value_enum, help_heading = "Boot check")]
    pub(crate) controller: Option<vmrescue::verify_boot::initramfs::Controller>,
    /// Accelerator: KVM only when a short probe boot shows it works.
    #[arg(long, value_enum, env = "VMRESCUE_ACCEL", default_value_t = vmrescue::verify_boot::qemu::AccelChoice::Auto, help_heading = "Boot check")]
    pub(crate) accel: vmrescue::verify_boot::qemu::AccelChoice,
    /// Boot under enforced Secure Boot (OVMF's Secure Boot build, Microsoft's keys): auto when the
    /// ESP holds a shim (shim*.efi, or a removable BOOTX64.EFI that is a shim); on: always (exit 4
    /// when it cannot be done here); off: never.
    #[arg(long, value_enum, default_value_t = SecureBootArg::Auto, help_heading = "Boot check")]
    pub(crate) secure_boot: SecureBootArg,
}

/// `--secure-boot`: the library's [`SecureBootChoice`](vmrescue::verify_boot::secure_boot::SecureBootChoice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SecureBootArg {
    Auto,
    On,
    Off,
}

impl From<SecureBootArg> for vmrescue::verify_boot::secure_boot::SecureBootChoice {
    fn from(arg: SecureBootArg) -> Self {
        match arg {
            SecureBootArg::Auto => Self::Auto,
            SecureBootArg::On => Self::On,
            SecureBootArg::Off => Self::Off,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DiagnoseArgs {
    /// A serial-console log, vmcore-dmesg.txt or kern.log (`-` for stdin); repeatable.
    #[arg(long = "console-log", visible_alias = "log", value_name = "FILE")]
    pub(crate) logs: Vec<PathBuf>,
    /// Also read the target's logs (implied when no --console-log is given).
    #[arg(long)]
    pub(crate) target_logs: bool,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct UndoArgs {
    /// The run to undo (see `vmrescue history`).
    pub(crate) run_id: Option<String>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Confirm without asking (unattended).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecipesArgs {
    #[command(subcommand)]
    pub(crate) show: Option<RecipesCommand>,
    /// Extra recipes (TOML) that add to or override the built-in ones.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) recipes_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecipesCommand {
    /// Everything about one recipe: summary, symptoms, parameters, steps, checks;
    /// with a target, also the current values of the settings it audits.
    Show {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AzPayloadArgs {
    /// Recipe id, or `auto` (the diagnosis of the disk and of the baked console logs decides).
    #[arg(
        value_name = "RECIPE",
        default_value = "auto",
        value_parser = Suggesting(recipe_ids),
        hide_possible_values = true
    )]
    pub(crate) recipe_arg: String,
    /// The recipe, as an option (same as the positional RECIPE).
    #[arg(long, hide = true, conflicts_with = "recipe_arg")]
    pub(crate) recipe: Option<String>,
    /// A recipe parameter, as in `repair` (e.g. kernel=5.14.0-427.el9.x86_64); repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub(crate) params: Vec<String>,
    /// Same as --param kernel=VERSION.
    #[arg(long)]
    pub(crate) kernel: Option<String>,
    /// Same as --param module=NAME.
    #[arg(long)]
    pub(crate) module: Option<String>,
    /// Only print the plan on the repair VM.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Require a boot test in QEMU on the repair VM after the repair (`repair --verify-boot`);
    /// by default it runs when the repair VM has qemu-system-x86_64.
    #[arg(long, conflicts_with_all = ["dry_run", "no_verify_boot"])]
    pub(crate) verify_boot: bool,
    /// Never boot-test on the repair VM.
    #[arg(long)]
    pub(crate) no_verify_boot: bool,
    /// The broken VM's console log (`az vm boot-diagnostics get-boot-log`), carried
    /// compressed in the payload and read by the repair; repeatable.
    #[arg(long = "console-log", visible_alias = "log", value_name = "FILE")]
    pub(crate) logs: Vec<PathBuf>,
    /// Keep only the last N KiB of each --console-log.
    #[arg(long, value_name = "N")]
    pub(crate) log_tail_kib: Option<usize>,
    #[command(flatten)]
    pub(crate) download: DownloadArgs,
    /// Write the payload here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output_file: Option<PathBuf>,
}

/// How a payload gets vmrescue onto a repair VM (`az-payload`, `az-fleet`).
#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// Download this binary on the repair VM (any architecture) instead of the release asset.
    #[arg(long, requires = "binary_sha256", conflicts_with = "no_download")]
    pub(crate) binary_url: Option<String>,
    /// The sha256 the --binary-url download must have.
    #[arg(long, requires = "binary_url")]
    pub(crate) binary_sha256: Option<String>,
    /// The release folder holding `vmrescue-VERSION-ARCH-linux-musl` (default: the project's
    /// GitHub release of this version), e.g. a storage blob URL with a SAS token.
    #[arg(long, env = "VMRESCUE_RELEASE_URL", conflicts_with = "no_download")]
    pub(crate) release_url: Option<String>,
    /// The release's SHA256SUMS file: the sums baked in for each architecture.
    #[arg(long, value_name = "FILE", conflicts_with = "no_download")]
    pub(crate) sha256sums: Option<PathBuf>,
    /// Use only a vmrescue already installed on the repair VM.
    #[arg(long)]
    pub(crate) no_download: bool,
}

/// `vmrescue az-fleet`: which VMs, what payload, how many at once.
#[derive(Debug, Args)]
pub(crate) struct AzFleetArgs {
    /// The VMs: a file of VM resource IDs or RG/NAME lines (# comments).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "resource_group",
        conflicts_with = "resource_group"
    )]
    pub(crate) vms: Option<PathBuf>,
    /// Every VM of this resource group (deallocated and non-Linux VMs are skipped).
    #[arg(long, short = 'g', value_name = "RG")]
    pub(crate) resource_group: Option<String>,
    /// With --resource-group: only the VMs with this tag.
    #[arg(long, value_name = "KEY=VALUE", requires = "resource_group")]
    pub(crate) tag: Option<String>,
    /// Recipe id, or `auto` (what the diagnosis on the repair VM suggests).
    #[arg(long, default_value = "auto")]
    pub(crate) recipe: String,
    /// A recipe parameter baked into the payload, as in `repair`; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = Suggesting(param_prefixes), hide_possible_values = true)]
    pub(crate) params: Vec<String>,
    /// The payload boots the repaired disk copy-on-write on the repair VM; a
    /// repair counts as verified only with its "boot OK".
    #[arg(long)]
    pub(crate) verify_boot: bool,
    #[command(flatten)]
    pub(crate) download: DownloadArgs,
    /// VMs repaired at once (quota and API limits decide; each needs a repair VM).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub(crate) parallel: u16,
    /// Start no new VM after this many failed ones.
    #[arg(long, value_name = "K")]
    pub(crate) max_failures: Option<usize>,
    /// After the restore, `az vm start` and read the serial log for a login prompt.
    #[arg(long)]
    pub(crate) start: bool,
    /// Print every `az` command that would run (credentials redacted); run nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The resumable state file (JSON lines); run again with the same file to resume.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "vmrescue-fleet.state.jsonl"
    )]
    pub(crate) state: PathBuf,
    /// Where serial logs and payloads are kept [default: <state>.d].
    #[arg(long, value_name = "DIR")]
    pub(crate) evidence_dir: Option<PathBuf>,
    /// The pause after the first throttled call (doubled each retry, with jitter).
    #[arg(long, value_name = "MS", default_value_t = 2000, hide = true)]
    pub(crate) retry_base_ms: u64,
    /// The pause between serial-log and repair-VM polls.
    #[arg(long, value_name = "MS", default_value_t = 15000, hide = true)]
    pub(crate) poll_ms: u64,
    /// How long a started VM has to show a login prompt.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub(crate) boot_wait: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// A console log of the broken VM to include and diagnose; repeatable.
    #[arg(long = "console-log", visible_alias = "log", value_name = "FILE")]
    pub(crate) logs: Vec<PathBuf>,
    /// Where to write the bundle [default: /var/log/vmrescue/vmrescue-report-RUN-ID.tar.gz].
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Print only the one disk vmrescue would work on; exit 3 when there is
    /// none or more than one.
    #[arg(long)]
    pub(crate) pick: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["vmrescue", "scan", "--json", "-vv"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.verbose, 2);
    }

    #[test]
    fn verify_needs_boot_and_takes_the_target_flags() {
        let cli = Cli::try_parse_from([
            "vmrescue",
            "verify",
            "--boot",
            "--image",
            "/var/tmp/x.raw",
            "--via",
            "kernel",
            "--timeout",
            "90",
            "--add-drivers",
        ])
        .unwrap();
        let Some(Command::Verify(args)) = cli.command else {
            panic!("not verify")
        };
        assert!(args.boot_check.add_drivers);
        assert_eq!(args.boot_check.boot_timeout, 90);
        assert_eq!(
            args.target.image.as_deref(),
            Some(std::path::Path::new("/var/tmp/x.raw"))
        );
        // The boot check is verify's only mode: no flag is needed for it.
        assert!(Cli::try_parse_from(["vmrescue", "verify", "--image", "x"]).is_ok());
        let cli =
            Cli::try_parse_from(["vmrescue", "repair", "auto", "--yes", "--verify-boot"]).unwrap();
        let Some(Command::Repair(args)) = cli.command else {
            panic!("not repair")
        };
        assert!(args.verify_boot);
        let err = Cli::try_parse_from([
            "vmrescue",
            "repair",
            "auto",
            "--verify-boot",
            "--no-verify-boot",
        ])
        .unwrap_err();
        assert_eq!(
            err.exit_code(),
            2,
            "the boot check is either required or skipped"
        );
    }

    #[test]
    fn verbs_are_clap_subcommands() {
        let clap: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(clap, VERBS);
        let args: Vec<String> = ["vmrescue", "--json", "repair", "--bogus"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(verb_in(&args), "repair");
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        let err = Cli::try_parse_from(["vmrescue", "scan", "--bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
