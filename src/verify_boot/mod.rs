//! `vmrescue verify --boot`: boot the target disk in a throwaway QEMU VM
//! (copy-on-write: the disk is never written), read its serial console,
//! report how far it got and, when it fails, what the console-log
//! classifier makes of it and which recipe to run next.
//!
//! | module | job |
//! | --- | --- |
//! | [`target_disk`] | which disk, is it safe to boot now, its partition table |
//! | [`bootinfo`] | the default entry, kernel and initramfs copies, drivers, the extra module archive |
//! | [`initramfs`] | reading and writing `newc` cpio archives, storage drivers |
//! | [`qemu`] | QEMU/OVMF, the accelerator probe, the command line, watching the console |
//! | [`stage`] | pure: console lines → boot stage and failure, when to stop |
//! | [`secure_boot`] | does the ESP hold a shim (the target expects Secure Boot), did the kernel see it enforced |

pub mod bootinfo;
pub mod initramfs;
pub mod qemu;
pub mod secure_boot;
pub mod stage;
pub mod target_disk;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{ExitCode, Failure};
use crate::inspect::boot_default::Bootloader;
use initramfs::{Controller, DriverSupport};
use qemu::{AccelChoice, Boot, DirectBoot, VmSpec};
use secure_boot::{SecureBootChoice, SecureBootMode, SecureBootReport};
use stage::{FailureKind, FailureMark, Limits, Outcome, Stage};

pub const SCHEMA_VERSION: u32 = 1;
/// Console lines shown after a failed boot.
pub const TAIL_LINES: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// grub when the default entry's command line has console=ttyS0, else kernel.
    Auto,
    /// The disk's own boot loader (SeaBIOS, or OVMF for a UEFI disk).
    Grub,
    /// Direct boot of the default entry's kernel and initramfs.
    Kernel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub via: Via,
    pub timeout: Duration,
    pub add_drivers: bool,
    pub controller: Option<Controller>,
    pub accel: AccelChoice,
    /// Boot under enforced Secure Boot: when the ESP holds a shim (auto),
    /// always (refused, exit 4, when it cannot be done), or never.
    pub secure_boot: SecureBootChoice,
    pub run_id: String,
    pub mount_base: PathBuf,
}

/// The top classifier finding for a failed boot.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FindingSummary {
    pub id: String,
    pub title: String,
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub version: u32,
    pub ok: bool,
    /// The furthest stage reached.
    pub stage: Stage,
    pub stage_label: String,
    pub stage_line: Option<String>,
    pub failure: Option<FailureMark>,
    pub seconds: f64,
    /// `kvm` or `tcg`, and why.
    pub accelerator: String,
    pub accelerator_reason: String,
    pub controller: Controller,
    pub via: Via,
    pub firmware: Option<Firmware>,
    /// Secure Boot for a boot through UEFI firmware (None for BIOS without a
    /// shim on the ESP).
    pub secure_boot: Option<SecureBootReport>,
    pub disk: PathBuf,
    pub kernel_version: Option<String>,
    pub command_line: Option<String>,
    /// Storage drivers the initramfs (or the kernel) has, when it could be read.
    pub storage_drivers: Option<Vec<String>>,
    pub drivers_added: bool,
    pub console_log: PathBuf,
    /// The last console lines (on failure).
    pub last_lines: Vec<String>,
    pub finding: Option<FindingSummary>,
    pub suggested_recipe: Option<String>,
    pub suggested_params: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub exit_code: u8,
}

impl VerifyReport {
    pub fn exit_code(&self) -> ExitCode {
        if self.ok {
            ExitCode::Success
        } else {
            ExitCode::VerifyFailed
        }
    }

    /// The one-line verdict.
    pub fn verdict(&self) -> String {
        let result = if self.ok {
            format!("boot OK: reached {}", self.stage.label())
        } else {
            let why = self
                .failure
                .as_ref()
                .map(|f| f.kind.label())
                .unwrap_or("failed");
            format!("boot FAILED at {} ({why})", self.stage.label())
        };
        format!(
            "{result} after {:.0} s [accelerator {}, controller {}, via {}{}] console log: {}",
            self.seconds,
            self.accelerator,
            self.controller.id(),
            serde_json::to_value(self.via)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            match (self.firmware, &self.secure_boot) {
                (
                    Some(Firmware::Uefi),
                    Some(SecureBootReport {
                        mode: SecureBootMode::Enforced,
                        ..
                    }),
                ) => " (UEFI, Secure Boot enforced)",
                (Some(Firmware::Uefi), _) => " (UEFI)",
                _ => "",
            },
            self.console_log.display()
        )
    }
}

/// Where the console log is kept: `/var/log/vmrescue/`, else the temp directory.
fn console_log_path(run_id: &str) -> PathBuf {
    let name = format!("verify-boot-{run_id}.console.log");
    let dir = Path::new(crate::runlog::LOG_DIR);
    if std::fs::create_dir_all(dir).is_ok() {
        let path = dir.join(&name);
        if std::fs::File::create(&path).is_ok() {
            return path;
        }
    }
    std::env::temp_dir().join(format!("vmrescue-{name}"))
}

/// A work directory for copies of the kernel and initramfs, removed on drop
/// (and by the signal handler).
fn work_dir() -> Result<(tempfile::TempDir, crate::signals::CleanupDir)> {
    let base = Path::new("/var/tmp");
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("vmrescue-verify-");
        b
    };
    let dir = builder()
        .tempdir_in(base)
        .or_else(|_| builder().tempdir())
        .context("creating a work directory for the boot")?;
    let guard = crate::signals::CleanupDir::register(dir.path());
    Ok((dir, guard))
}

/// What the controller decision came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerChoice {
    pub controller: Controller,
    /// The controller's modules must be appended (`--add-drivers`).
    pub add_drivers: bool,
    pub note: Option<String>,
}

/// Picks the storage controller from the drivers the initramfs (or the
/// kernel) has. `available` tells whether the target's modules tree has
/// everything a controller needs.
pub fn choose_controller(
    forced: Option<Controller>,
    support: Option<&DriverSupport>,
    builtin: &std::collections::BTreeSet<String>,
    direct: bool,
    add_drivers: bool,
    available: &dyn Fn(Controller) -> bool,
) -> Result<ControllerChoice> {
    let can_add = direct && add_drivers;
    if let Some(controller) = forced {
        let missing = support.is_some_and(|s| !s.usable.contains(&controller));
        return Ok(ControllerChoice {
            controller,
            add_drivers: missing && can_add,
            note: (missing && !can_add).then(|| {
                format!(
                    "the initramfs lacks {} drivers ({}): expect the boot to fail",
                    controller.id(),
                    controller.modules().join(" ")
                )
            }),
        });
    }
    let Some(support) = support else {
        let builtin_ok = initramfs::CONTROLLERS
            .iter()
            .copied()
            .find(|c| c.modules().iter().all(|m| builtin.contains(*m)));
        return Ok(ControllerChoice {
            controller: builtin_ok.unwrap_or(Controller::VirtioBlk),
            add_drivers: false,
            note: Some(format!(
                "no initramfs to read drivers from: using {}{}",
                builtin_ok.unwrap_or(Controller::VirtioBlk).id(),
                if builtin_ok.is_some() {
                    " (built into the kernel)"
                } else {
                    ""
                }
            )),
        });
    };
    if let Some(controller) = support.usable.first() {
        return Ok(ControllerChoice {
            controller: *controller,
            add_drivers: false,
            note: None,
        });
    }
    let drivers = if support.storage_drivers.is_empty() {
        "no storage driver QEMU can emulate".to_string()
    } else {
        format!(
            "only {} (not emulated by QEMU)",
            support.storage_drivers.join(", ")
        )
    };
    if can_add {
        if let Some(controller) = initramfs::CONTROLLERS
            .iter()
            .copied()
            .find(|c| available(*c))
        {
            return Ok(ControllerChoice {
                controller,
                add_drivers: true,
                note: Some(format!(
                    "the initramfs has {drivers}: adding the target's own {} modules in an extra archive",
                    controller.id()
                )),
            });
        }
        return Err(Failure::Unsupported(format!(
            "the initramfs has {drivers}, and the kernel's modules tree has none of virtio_blk, virtio_scsi, nvme, ahci, ata_piix either: this disk cannot be booted here"
        ))
        .into());
    }
    Err(Failure::Unsupported(format!(
        "the initramfs has {drivers}, so it cannot find its disk in QEMU: boot it with --via kernel --add-drivers \
         (adds the target's own virtio/NVMe modules for this boot only), or add the drivers for good with recipe rebuild-initramfs"
    ))
    .into())
}

/// Is the UEFI firmware needed for the disk's own boot loader?
fn firmware_for(table: &target_disk::PartitionTable, info: &bootinfo::BootInfo) -> Firmware {
    if !table.has_esp {
        return Firmware::Bios;
    }
    let bios_capable = table.label.as_deref() == Some("dos") || table.has_bios_boot;
    if info.bootloader == Some(Bootloader::SystemdBoot) || !bios_capable || !info.grub_bios {
        Firmware::Uefi
    } else {
        Firmware::Bios
    }
}

/// A known-good kernel for the accelerator probe: the host's own, else the target's.
fn probe_kernel(target_kernel: Option<&Path>) -> Option<PathBuf> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let host = PathBuf::from(format!("/boot/vmlinuz-{}", release.trim()));
    if std::fs::File::open(&host).is_ok() {
        return Some(host);
    }
    target_kernel.map(Path::to_path_buf)
}

/// Boots the target and reports. A failed boot is a report (exit 6), not an error.
pub fn verify_boot(spec: &crate::attach::TargetSpec, opts: &VerifyOptions) -> Result<VerifyReport> {
    let qemu = qemu::find_qemu()?;
    let disk = target_disk::resolve(spec)?;
    target_disk::refuse_if_mounted_rw(&disk)?;
    let table = target_disk::partition_table(&disk.path)?;
    let (work, _cleanup) = work_dir()?;
    let setup = read_setup(&disk, opts, work.path())?;
    let mut notes = setup_notes(&setup, opts);
    let secure = secure_boot_plan(opts.secure_boot, &disk.path, &table, &setup, &mut notes)?;
    let enforce = secure.as_ref().is_some_and(|p| p.enforce);
    let (boot, firmware, cmdline) = boot_method(&setup, &table, enforce, work.path())?;
    let accel = qemu::choose_accel(
        opts.accel,
        &qemu,
        probe_kernel(setup.info.kernel.as_deref()).as_deref(),
        work.path(),
    )?;
    let console_log = console_log_path(&opts.run_id);
    let vm = VmSpec {
        disk: disk.path.clone(),
        controller: setup.choice.controller,
        boot,
        memory_mib: qemu::memory_mib(),
        cpus: qemu::cpus(),
        console_log: console_log.clone(),
    };
    let watched = watch_boot(&qemu, &vm, &accel, opts, &disk.path, work.path())?;
    let failure = failure_mark(&watched, opts.timeout);
    let mut report = VerifyReport {
        version: SCHEMA_VERSION,
        ok: watched.outcome == Outcome::Success,
        stage: watched.tracker.stage(),
        stage_label: watched.tracker.stage().label().to_string(),
        stage_line: watched.tracker.stage_mark().map(|m| m.text.clone()),
        failure,
        seconds: (watched.elapsed.as_secs_f64() * 10.0).round() / 10.0,
        accelerator: accel.name.clone(),
        accelerator_reason: accel.reason.clone(),
        controller: setup.choice.controller,
        via: if setup.direct { Via::Kernel } else { Via::Grub },
        firmware,
        secure_boot: None,
        disk: disk.path.clone(),
        kernel_version: setup.info.kernel_version.clone(),
        command_line: cmdline,
        storage_drivers: setup
            .info
            .support
            .as_ref()
            .map(|s| s.storage_drivers.clone()),
        drivers_added: setup.extra.is_some(),
        console_log: console_log.clone(),
        last_lines: Vec::new(),
        finding: None,
        suggested_recipe: None,
        suggested_params: BTreeMap::new(),
        notes,
        exit_code: 0,
    };
    if !report.ok {
        report.last_lines = tail_lines(&console_log, TAIL_LINES)?;
        classify_into(&mut report, &console_log)?;
    }
    report.secure_boot = secure.map(|plan| secure_boot_report(plan, &console_log, &mut report));
    report.exit_code = report.exit_code().code();
    Ok(report)
}

/// Whether the boot runs under enforced Secure Boot, and why.
#[derive(Debug, Clone)]
struct SecureBootPlan {
    enforce: bool,
    reason: String,
}

/// Decides Secure Boot for this boot (None: a BIOS boot of a disk without
/// a shim, where the question does not arise). `--secure-boot on` that
/// cannot be honoured is refused (exit 4): the proof is made the way the
/// VM boots, or not at all.
fn secure_boot_plan(
    choice: SecureBootChoice,
    disk: &Path,
    table: &target_disk::PartitionTable,
    setup: &BootSetup,
    notes: &mut Vec<String>,
) -> Result<Option<SecureBootPlan>> {
    let uefi = !setup.direct && firmware_for(table, &setup.info) == Firmware::Uefi;
    let evidence = match &table.esp {
        Some(esp) => match secure_boot::scan_esp(disk, esp) {
            Ok(files) => secure_boot::shim_evidence(&files),
            Err(err) => {
                notes.push(format!("no shim looked for: {err:#}"));
                None
            }
        },
        None => None,
    };
    let why_not = if setup.direct {
        "a direct kernel boot bypasses the firmware (boot it with --via grub)"
    } else {
        "the disk boots through BIOS here"
    };
    let with_evidence = |what: &str| match &evidence {
        Some(e) => format!("{what} ({e})"),
        None => what.to_string(),
    };
    let plan = |enforce, reason| Ok(Some(SecureBootPlan { enforce, reason }));
    match choice {
        SecureBootChoice::On if !uefi => Err(Failure::Unsupported(format!(
            "--secure-boot on: {why_not}, so Secure Boot cannot be enforced: this proof cannot be made here"
        ))
        .into()),
        SecureBootChoice::On => plan(true, with_evidence("--secure-boot on")),
        SecureBootChoice::Off if uefi || evidence.is_some() => {
            plan(false, with_evidence("--secure-boot off"))
        }
        SecureBootChoice::Auto => match &evidence {
            Some(e) if uefi => plan(true, e.clone()),
            Some(e) => {
                notes.push(format!(
                    "{e}: the VM expects Secure Boot, but {why_not}, so this boot does not enforce it"
                ));
                plan(false, format!("{e}, but {why_not}"))
            }
            None if uefi => plan(false, "no shim on the ESP".to_string()),
            None => Ok(None),
        },
        SecureBootChoice::Off => Ok(None),
    }
}

/// The report's Secure Boot part: the kernel's own confirmation from the
/// console, and after a refused image the next step (recipe `bootloader`).
fn secure_boot_report(
    plan: SecureBootPlan,
    console_log: &Path,
    report: &mut VerifyReport,
) -> SecureBootReport {
    let refused = report
        .failure
        .as_ref()
        .is_some_and(|f| f.kind == FailureKind::SecureBoot);
    if refused {
        report.suggested_recipe = Some(stage::SECURE_BOOT_RECIPE.to_string());
        report.suggested_params.clear();
        report.notes.push(format!(
            "Secure Boot refused an unsigned or revoked boot loader or kernel: recipe `{}` puts the target's own signed shim and GRUB back in the ESP and on the removable path",
            stage::SECURE_BOOT_RECIPE
        ));
    }
    let kernel_line = if plan.enforce {
        let console = std::fs::read(console_log).unwrap_or_default();
        secure_boot::kernel_confirmation(&String::from_utf8_lossy(&console))
    } else {
        None
    };
    if plan.enforce && report.ok && kernel_line.is_none() {
        report.notes.push(format!(
            "the firmware enforced Secure Boot, but the kernel did not say so on the console (no {:?})",
            secure_boot::KERNEL_CONFIRMS
        ));
    }
    SecureBootReport {
        mode: if plan.enforce {
            SecureBootMode::Enforced
        } else {
            SecureBootMode::Off
        },
        reason: plan.reason,
        kernel_line,
    }
}

/// What the target's files decide about the boot, read before it is booted.
struct BootSetup {
    info: bootinfo::BootInfo,
    /// Boot the kernel directly (`--via kernel`) instead of the boot loader.
    direct: bool,
    choice: ControllerChoice,
    /// An extra cpio archive with the target's own storage drivers.
    extra: Option<Vec<u8>>,
}

/// Reads the boot configuration with the target mounted read-only, then
/// unmounts it: QEMU must be the only user of the disk while it boots.
fn read_setup(
    disk: &target_disk::BootDisk,
    opts: &VerifyOptions,
    work: &Path,
) -> Result<BootSetup> {
    let target = match &disk.kept_key {
        Some(key) => crate::attach::from_state(Some(key))?
            .with_context(|| format!("the vmrescue mount {key} has no layout yet"))?,
        None => crate::attach::open(&disk.spec, &opts.mount_base).with_context(|| {
            format!(
                "mounting {} read-only to read its boot configuration",
                disk.path.display()
            )
        })?,
    };
    let setup = target
        .rootdir()
        .and_then(|root| setup_from(&root, opts, work));
    let released = target.release();
    let setup = setup?;
    released.context("unmounting the target after reading its boot configuration")?;
    Ok(setup)
}

fn setup_from(
    root: &crate::rootfs::RootDir,
    opts: &VerifyOptions,
    work: &Path,
) -> Result<BootSetup> {
    let info = bootinfo::read(root, work)?;
    let direct = match opts.via {
        Via::Kernel => true,
        Via::Grub => false,
        Via::Auto => !info.has_serial_console() && info.kernel.is_some(),
    };
    if direct && info.kernel.is_none() {
        return Err(anyhow::Error::new(Failure::Unsupported(format!(
            "--via kernel: the default entry's kernel cannot be read from the target ({})",
            info.notes.join("; ")
        ))));
    }
    // The target's own modules.dep tells which controller drivers could be
    // added to a direct boot when its initramfs lacks them.
    let dep = match &info.kernel_version {
        Some(version) if opts.add_drivers && direct => root
            .read_string_optional(format!("/lib/modules/{version}/modules.dep"))?
            .map(|t| initramfs::ModulesDep::parse(&t)),
        _ => None,
    };
    let available = |c: Controller| {
        dep.as_ref().is_some_and(|d| {
            c.modules()
                .iter()
                .all(|m| d.contains(m) || info.builtin.contains(*m))
        })
    };
    let choice = choose_controller(
        opts.controller,
        info.support.as_ref(),
        &info.builtin,
        direct,
        opts.add_drivers,
        &available,
    )?;
    let extra = if choice.add_drivers {
        Some(bootinfo::driver_archive(root, &info, choice.controller)?)
    } else {
        None
    };
    Ok(BootSetup {
        info,
        direct,
        choice,
        extra,
    })
}

/// What the report says about how the boot was set up.
fn setup_notes(setup: &BootSetup, opts: &VerifyOptions) -> Vec<String> {
    let mut notes = Vec::new();
    if opts.add_drivers && !setup.direct {
        notes.push(
            "--add-drivers works only with --via kernel (the disk's own boot loader loads its own initramfs)"
                .to_string(),
        );
    }
    notes.extend(setup.info.notes.iter().cloned());
    notes.extend(setup.choice.note.clone());
    let quiet = setup
        .info
        .cmdline
        .as_deref()
        .is_some_and(|c| c.split_whitespace().any(|a| a == "quiet"));
    if quiet {
        notes.push(if setup.direct {
            format!(
                "the command line has `quiet`: the direct boot appends {} so that the stages show",
                bootinfo::QUIET_OVERRIDES.join(" ")
            )
        } else {
            "the command line has `quiet`: stages show only from the boot loader, a login prompt or a failure (--via kernel shows them all)"
                .to_string()
        });
    }
    notes
}

/// How QEMU starts the disk: its kernel directly, or its own boot loader
/// under SeaBIOS or OVMF; with the command line the report shows.
fn boot_method(
    setup: &BootSetup,
    table: &target_disk::PartitionTable,
    secure: bool,
    work: &Path,
) -> Result<(Boot, Option<Firmware>, Option<String>)> {
    let info = &setup.info;
    if setup.direct {
        let initrd = match (info.initramfs.as_slice(), &setup.extra) {
            ([], None) => None,
            ([one], None) => Some(one.clone()),
            _ => {
                let to = work.join("initrd-combined.img");
                bootinfo::combined_initrd(&info.initramfs, setup.extra.as_deref(), &to)?;
                Some(to)
            }
        };
        let cmdline = bootinfo::direct_cmdline(info.cmdline.as_deref());
        let kernel = info
            .kernel
            .clone()
            .context("the kernel copy is gone from the work directory")?;
        let boot = Boot::Direct(DirectBoot {
            kernel,
            initrd,
            cmdline: cmdline.clone(),
        });
        return Ok((boot, None, Some(cmdline)));
    }
    match firmware_for(table, info) {
        Firmware::Bios => Ok((Boot::Bios, Some(Firmware::Bios), info.cmdline.clone())),
        Firmware::Uefi => {
            let ovmf = if secure {
                qemu::find_ovmf_secboot()?
            } else {
                qemu::find_ovmf()?
            };
            // OVMF writes its variables: a copy, so the host's stays clean.
            let vars_copy = work.join("OVMF_VARS.fd");
            std::fs::copy(&ovmf.vars, &vars_copy).with_context(|| {
                format!("copying {} to {}", ovmf.vars.display(), vars_copy.display())
            })?;
            let boot = Boot::Uefi {
                code: ovmf.code,
                vars_copy,
                secure,
            };
            Ok((boot, Some(Firmware::Uefi), info.cmdline.clone()))
        }
    }
}

/// Boots the VM and follows its console; a QEMU that dies before the VM
/// prints anything is an error of the check, not a failed boot.
fn watch_boot(
    qemu: &Path,
    vm: &VmSpec,
    accel: &qemu::Accel,
    opts: &VerifyOptions,
    disk: &Path,
    work: &Path,
) -> Result<qemu::Watched> {
    let args = qemu::qemu_args(vm, accel);
    let limits = Limits {
        timeout: opts.timeout,
        ..Limits::default()
    };
    let watched = qemu::boot_and_watch(
        qemu,
        &args,
        &vm.console_log,
        &work.join("qemu.stderr"),
        limits,
    )
    .with_context(|| format!("booting {} in QEMU", disk.display()))?;
    if watched.tracker.lines() == 0 {
        if let Some(status) = watched.qemu_status.filter(|s| !s.success()) {
            anyhow::bail!(
                "booting {} in QEMU: {} exited ({status}) before the VM printed anything: {}",
                disk.display(),
                qemu::QEMU,
                watched.qemu_stderr.trim()
            );
        }
    }
    Ok(watched)
}

/// The console line that decided a failed boot, or a made-up mark saying
/// why there is none (a timeout, QEMU ending early).
fn failure_mark(watched: &qemu::Watched, timeout: Duration) -> Option<FailureMark> {
    let Outcome::Failure(kind) = watched.outcome else {
        return None;
    };
    if let Some(mark) = watched.tracker.failure() {
        return Some(mark.clone());
    }
    let text = match kind {
        FailureKind::Timeout => format!("no decisive console line within {} s", timeout.as_secs()),
        _ => format!(
            "QEMU ended before userspace{}",
            watched
                .qemu_status
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
    };
    Some(FailureMark {
        kind,
        mark: stage::Mark {
            line_number: watched.tracker.lines(),
            text,
        },
    })
}

/// The last `n` non-empty console lines, cleaned of escape sequences.
fn tail_lines(log: &Path, n: usize) -> Result<Vec<String>> {
    let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .split(['\n', '\r'])
        .map(|l| stage::readable_line(&stage::clean_line(l)))
        .filter(|l| !l.trim().is_empty())
        .collect();
    Ok(lines[lines.len().saturating_sub(n)..].to_vec())
}

/// Runs the console-log classifier over the whole log.
fn classify_into(report: &mut VerifyReport, log: &Path) -> Result<()> {
    let file = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let reader: Box<dyn BufRead> = Box::new(std::io::BufReader::new(file));
    let diagnosis = crate::diagnose::classify_reader(reader, &log.display().to_string())
        .with_context(|| format!("classifying the console log {}", log.display()))?;
    if let Some(finding) = diagnosis.primary() {
        report.finding = Some(FindingSummary {
            id: finding.id.clone(),
            title: finding.title.clone(),
            evidence: finding.evidence.first().map(|e| e.text.clone()),
        });
        if let Some(suggestion) = finding.suggestions.first() {
            report.suggested_recipe = Some(suggestion.recipe.clone());
            report.suggested_params = suggestion.params.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn support(usable: &[Controller], drivers: &[&str]) -> DriverSupport {
        DriverSupport {
            usable: usable.to_vec(),
            storage_drivers: drivers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_best_usable_controller_wins() {
        let s = support(
            &[Controller::VirtioScsi, Controller::Ide],
            &["virtio_scsi", "ata_piix"],
        );
        let choice =
            choose_controller(None, Some(&s), &BTreeSet::new(), false, false, &|_| true).unwrap();
        assert_eq!(choice.controller, Controller::VirtioScsi);
        assert!(!choice.add_drivers);
    }

    #[test]
    fn hyperv_only_initramfs_is_refused_unless_drivers_are_added() {
        let s = support(&[], &["hv_storvsc"]);
        let err = choose_controller(None, Some(&s), &BTreeSet::new(), false, false, &|_| true)
            .unwrap_err();
        assert_eq!(crate::exit_code_for(&err), ExitCode::Unsupported);
        let msg = format!("{err:#}");
        assert!(
            msg.contains("hv_storvsc") && msg.contains("--add-drivers"),
            "{msg}"
        );
        let choice = choose_controller(None, Some(&s), &BTreeSet::new(), true, true, &|c| {
            c == Controller::Nvme
        })
        .unwrap();
        assert_eq!(choice.controller, Controller::Nvme);
        assert!(choice.add_drivers);
    }

    #[test]
    fn no_initramfs_still_boots_to_show_the_failure() {
        let choice =
            choose_controller(None, None, &BTreeSet::new(), false, false, &|_| false).unwrap();
        assert_eq!(choice.controller, Controller::VirtioBlk);
        assert!(choice.note.unwrap().contains("no initramfs"));
        let builtin: BTreeSet<String> = ["nvme".to_string()].into_iter().collect();
        let choice = choose_controller(None, None, &builtin, false, false, &|_| false).unwrap();
        assert_eq!(choice.controller, Controller::Nvme);
    }

    #[test]
    fn firmware_follows_the_partition_table_and_boot_loader() {
        let mbr = target_disk::PartitionTable {
            label: Some("dos".into()),
            has_esp: false,
            has_bios_boot: false,
            esp: None,
        };
        let gpt_esp = target_disk::PartitionTable {
            label: Some("gpt".into()),
            has_esp: true,
            has_bios_boot: false,
            esp: None,
        };
        let hybrid = target_disk::PartitionTable {
            has_bios_boot: true,
            ..gpt_esp.clone()
        };
        let grub_bios = bootinfo::BootInfo {
            grub_bios: true,
            bootloader: Some(Bootloader::Grub),
            ..Default::default()
        };
        assert_eq!(firmware_for(&mbr, &grub_bios), Firmware::Bios);
        assert_eq!(firmware_for(&gpt_esp, &grub_bios), Firmware::Uefi);
        assert_eq!(firmware_for(&hybrid, &grub_bios), Firmware::Bios);
        assert_eq!(
            firmware_for(&hybrid, &bootinfo::BootInfo::default()),
            Firmware::Uefi
        );
    }

    fn setup(direct: bool) -> BootSetup {
        BootSetup {
            info: bootinfo::BootInfo {
                bootloader: Some(Bootloader::Grub),
                ..Default::default()
            },
            direct,
            choice: ControllerChoice {
                controller: Controller::VirtioBlk,
                add_drivers: false,
                note: None,
            },
            extra: None,
        }
    }

    /// A GPT disk whose ESP is the FAT fixture with a removable shim.
    fn shim_disk() -> (PathBuf, target_disk::PartitionTable) {
        let path = PathBuf::from(format!(
            "{}/tests/fixtures/esp/removable-shim.fat",
            env!("CARGO_MANIFEST_DIR")
        ));
        let size = std::fs::metadata(&path).unwrap().len();
        let table = target_disk::PartitionTable {
            label: Some("gpt".into()),
            has_esp: true,
            has_bios_boot: false,
            esp: Some(target_disk::EspLocation {
                number: 1,
                start: 0,
                size,
            }),
        };
        (path, table)
    }

    #[test]
    fn a_shim_on_the_esp_means_an_enforced_secure_boot() {
        let (disk, table) = shim_disk();
        let mut notes = vec![];
        let plan = secure_boot_plan(
            SecureBootChoice::Auto,
            &disk,
            &table,
            &setup(false),
            &mut notes,
        )
        .unwrap()
        .unwrap();
        assert!(plan.enforce);
        assert!(plan.reason.contains("BOOTX64.EFI is a shim"), "{plan:?}");
        let off = secure_boot_plan(
            SecureBootChoice::Off,
            &disk,
            &table,
            &setup(false),
            &mut notes,
        )
        .unwrap()
        .unwrap();
        assert!(!off.enforce && off.reason.starts_with("--secure-boot off ("));
        // A direct kernel boot cannot enforce it: said in a note, not silently.
        let direct = secure_boot_plan(
            SecureBootChoice::Auto,
            &disk,
            &table,
            &setup(true),
            &mut notes,
        )
        .unwrap()
        .unwrap();
        assert!(!direct.enforce);
        assert!(
            notes.iter().any(|n| n.contains("does not enforce it")),
            "{notes:?}"
        );
    }

    #[test]
    fn secure_boot_on_that_cannot_be_honoured_is_exit_4() {
        let (disk, table) = shim_disk();
        let err = secure_boot_plan(
            SecureBootChoice::On,
            &disk,
            &table,
            &setup(true),
            &mut vec![],
        )
        .unwrap_err();
        assert_eq!(crate::exit_code_for(&err), ExitCode::Unsupported);
        assert!(format!("{err:#}").contains("--via grub"), "{err:#}");
        let mbr = target_disk::PartitionTable {
            label: Some("dos".into()),
            ..Default::default()
        };
        let err = secure_boot_plan(
            SecureBootChoice::On,
            &disk,
            &mbr,
            &setup(false),
            &mut vec![],
        )
        .unwrap_err();
        assert_eq!(crate::exit_code_for(&err), ExitCode::Unsupported);
        // A BIOS disk without a shim: the question does not arise.
        let none = secure_boot_plan(
            SecureBootChoice::Auto,
            &disk,
            &mbr,
            &setup(false),
            &mut vec![],
        );
        assert!(none.unwrap().is_none());
    }

    #[test]
    fn verdict_names_stage_accelerator_controller_and_log() {
        let report = VerifyReport {
            version: SCHEMA_VERSION,
            ok: false,
            stage: Stage::Kernel,
            stage_label: "kernel".into(),
            stage_line: None,
            failure: Some(FailureMark {
                kind: FailureKind::Panic,
                mark: stage::Mark {
                    line_number: 300,
                    text: "Kernel panic - not syncing: VFS: Unable to mount root fs".into(),
                },
            }),
            seconds: 21.4,
            accelerator: "tcg".into(),
            accelerator_reason: "no usable /dev/kvm".into(),
            controller: Controller::VirtioBlk,
            via: Via::Grub,
            firmware: Some(Firmware::Bios),
            secure_boot: None,
            disk: "/var/tmp/x.raw".into(),
            kernel_version: None,
            command_line: None,
            storage_drivers: None,
            drivers_added: false,
            console_log: "/var/log/vmrescue/verify-boot-x.console.log".into(),
            last_lines: vec!["Kernel panic".into()],
            finding: None,
            suggested_recipe: Some("rebuild-initramfs".into()),
            suggested_params: BTreeMap::new(),
            notes: vec![],
            exit_code: 6,
        };
        assert_eq!(
            report.verdict(),
            "boot FAILED at kernel (kernel panic) after 21 s [accelerator tcg, controller virtio-blk, via grub] \
             console log: /var/log/vmrescue/verify-boot-x.console.log"
        );
        assert_eq!(report.exit_code(), ExitCode::VerifyFailed);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["stage"], "kernel");
        assert_eq!(json["controller"], "virtio-blk");
        assert_eq!(json["failure"]["kind"], "panic");
    }
}
