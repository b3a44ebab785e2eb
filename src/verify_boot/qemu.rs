//! Running the throwaway VM: finding QEMU and OVMF, choosing the
//! accelerator (KVM only when a probe boot proves it works), building the
//! command line, and watching the serial console until the outcome is known.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::initramfs::Controller;
use super::stage::{decide, Change, Clock, Decision, Limits, Outcome, StageTracker};
use crate::cmd::Cmd;
use crate::error::Failure;

pub const QEMU: &str = "qemu-system-x86_64";

/// How long the accelerator probe may take per attempt.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

const INSTALL_QEMU: &str = "install it: Ubuntu/Debian `apt install qemu-system-x86`, \
     RHEL/CentOS/Alma/Rocky/Fedora `dnf install qemu-kvm`, SLES `zypper install qemu-x86`";

/// The QEMU binary on PATH, or exit 4 with how to install it.
pub fn find_qemu() -> Result<PathBuf> {
    find_on_path(QEMU).ok_or_else(|| {
        Failure::Unsupported(format!(
            "{QEMU} is not installed, so the disk cannot be booted here: {INSTALL_QEMU}"
        ))
        .into()
    })
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// UEFI firmware: the code (read-only) and a variable store to copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Ovmf {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// Non-secure-boot OVMF builds, as Debian/Ubuntu, Fedora/RHEL and SUSE ship them.
const OVMF_PAIRS: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    (
        "/usr/share/qemu/ovmf-x86_64-code.bin",
        "/usr/share/qemu/ovmf-x86_64-vars.bin",
    ),
    (
        "/usr/share/qemu/OVMF_CODE.fd",
        "/usr/share/qemu/OVMF_VARS.fd",
    ),
];

/// The first (code, vars) pair whose two files are installed.
fn first_installed(pairs: &[(&str, &str)]) -> Option<Ovmf> {
    pairs
        .iter()
        .map(|(code, vars)| (Path::new(code), Path::new(vars)))
        .find(|(code, vars)| code.is_file() && vars.is_file())
        .map(|(code, vars)| Ovmf {
            code: code.to_path_buf(),
            vars: vars.to_path_buf(),
        })
}

pub fn find_ovmf() -> Result<Ovmf> {
    first_installed(OVMF_PAIRS)
        .ok_or_else(|| {
            Failure::Unsupported(
                "the target boots with UEFI but no OVMF firmware is installed here (looked in /usr/share/OVMF, \
                 /usr/share/edk2/ovmf, /usr/share/qemu): `apt install ovmf`, `dnf install edk2-ovmf` or \
                 `zypper install qemu-ovmf-x86_64` — or use --via kernel"
                    .into(),
            )
            .into()
        })
}

/// Secure Boot OVMF builds (code that enforces it when the variables hold
/// keys) with a variable store that has Microsoft's UEFI CA enrolled, which
/// signs every distribution's shim: Debian/Ubuntu, Fedora/RHEL, SUSE.
const OVMF_SECBOOT_PAIRS: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.secboot.fd",
        "/usr/share/OVMF/OVMF_VARS.ms.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd",
    ),
    (
        "/usr/share/qemu/ovmf-x86_64-smm-ms-code.bin",
        "/usr/share/qemu/ovmf-x86_64-smm-ms-vars.bin",
    ),
];

/// The Secure Boot firmware, or exit 4: a disk that expects Secure Boot is
/// never booted without it behind the caller's back.
pub fn find_ovmf_secboot() -> Result<Ovmf> {
    find_secboot_in(OVMF_SECBOOT_PAIRS)
}

fn find_secboot_in(pairs: &[(&str, &str)]) -> Result<Ovmf> {
    first_installed(pairs)
        .ok_or_else(|| {
            Failure::Unsupported(
                "the target expects Secure Boot but no Secure Boot OVMF build with Microsoft's keys is installed here \
                 (looked for OVMF_CODE*.secboot.fd with OVMF_VARS*.ms.fd in /usr/share/OVMF, /usr/share/edk2/ovmf, \
                 /usr/share/qemu): `apt install ovmf`, `dnf install edk2-ovmf` or `zypper install qemu-ovmf-x86_64` — \
                 or boot it without Secure Boot with --secure-boot off"
                    .into(),
            )
            .into()
        })
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM when a short probe boot shows it works, else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// The accelerator chosen and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Accel {
    /// `kvm` or `tcg`.
    pub name: String,
    pub args: Vec<String>,
    pub reason: String,
}

impl Accel {
    fn tcg(reason: impl Into<String>) -> Self {
        Accel {
            name: "tcg".into(),
            args: vec!["-accel".into(), "tcg".into()],
            reason: reason.into(),
        }
    }
    fn kvm(host_cpu: bool, reason: impl Into<String>) -> Self {
        let mut args = vec!["-accel".to_string(), "kvm".to_string()];
        if host_cpu {
            args.extend(["-cpu".to_string(), "host".to_string()]);
        }
        Accel {
            name: "kvm".into(),
            args,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct AccelCache {
    boot_id: String,
    accel: Accel,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The accelerator: forced by the caller's choice, else the
/// cached probe result of this host boot, else a probe boot of
/// `probe_kernel` (a kernel without root= or initrd panics right after
/// its whole init: reaching that line proves the accelerator works).
pub fn choose_accel(
    choice: AccelChoice,
    qemu: &Path,
    probe_kernel: Option<&Path>,
    work: &Path,
) -> Result<Accel> {
    match choice {
        AccelChoice::Kvm => return Ok(Accel::kvm(true, "forced")),
        AccelChoice::Tcg => return Ok(Accel::tcg("forced")),
        AccelChoice::Auto => {}
    }
    if !kvm_usable() {
        return Ok(Accel::tcg("no usable /dev/kvm"));
    }
    // Not `.json`: those are the target state files.
    let cache_path = crate::attach::state::state_dir().join("accel-probe.cache");
    let id = boot_id();
    if let Ok(text) = std::fs::read_to_string(&cache_path) {
        if let Ok(cache) = serde_json::from_str::<AccelCache>(&text) {
            if cache.boot_id == id && !id.is_empty() {
                let mut accel = cache.accel;
                accel.reason = format!("{} (probed earlier in this host boot)", accel.reason);
                return Ok(accel);
            }
        }
    }
    let Some(kernel) = probe_kernel else {
        return Ok(Accel::tcg("no kernel to probe KVM with"));
    };
    let accel = probe(qemu, kernel, work)?;
    let cache = AccelCache {
        boot_id: id,
        accel: accel.clone(),
    };
    if let Err(err) = std::fs::create_dir_all(crate::attach::state::state_dir())
        .and_then(|()| std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap_or_default()))
    {
        tracing::debug!(
            "not caching the accelerator probe in {}: {err}",
            cache_path.display()
        );
    }
    Ok(accel)
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn probe(qemu: &Path, kernel: &Path, work: &Path) -> Result<Accel> {
    let mut why = Vec::new();
    for host_cpu in [true, false] {
        let candidate = Accel::kvm(host_cpu, "");
        let log = work.join(format!("accel-probe-{host_cpu}.log"));
        let started = Instant::now();
        let output = Cmd::new(qemu)
            .args(&candidate.args)
            .args([
                "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none",
            ])
            .args(["-no-reboot", "-nic", "none", "-nodefaults", "-serial"])
            .arg(format!("file:{}", log.display()))
            .arg("-kernel")
            .arg(kernel)
            .args(["-append", "console=ttyS0 panic=-1"])
            .timeout(PROBE_TIMEOUT)
            .run_unchecked()
            .context("running the KVM probe boot")?;
        let console = std::fs::read(&log).unwrap_or_default();
        let console = String::from_utf8_lossy(&console);
        let cpu = if host_cpu { "host" } else { "default" };
        if console.contains("Kernel panic") {
            return Ok(Accel::kvm(
                host_cpu,
                format!(
                    "KVM probe (cpu {cpu}) reached the kernel's panic line in {:.0} s",
                    started.elapsed().as_secs_f64()
                ),
            ));
        }
        if output.timed_out {
            let last = console
                .lines()
                .map(super::stage::clean_line)
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or_default();
            why.push(format!(
                "cpu {cpu}: hung, no panic line within {} s (last console line {:?})",
                PROBE_TIMEOUT.as_secs(),
                last.chars().take(60).collect::<String>()
            ));
        } else {
            let error = output
                .stderr_tail
                .lines()
                .find(|l| l.contains("error") || l.contains("failed"))
                .unwrap_or(output.stderr_tail.trim())
                .chars()
                .take(120)
                .collect::<String>();
            why.push(format!("cpu {cpu}: QEMU failed: {error}"));
        }
    }
    Ok(Accel::tcg(format!("KVM probe failed ({})", why.join("; "))))
}

/// Memory for the VM: 1 GiB, or half of what the host has available when
/// that is less (never under 256 MiB).
pub fn memory_mib() -> u64 {
    let available_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        });
    match available_kib {
        Some(kib) => (kib / 1024 / 2).clamp(256, 1024),
        None => 1024,
    }
}

pub fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get().min(2) as u32)
        .unwrap_or(1)
}

/// Direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// The disk's own boot loader through SeaBIOS.
    Bios,
    /// The disk's own boot loader through OVMF, with a private copy of the
    /// variables; `secure`: the Secure Boot build, enforcing.
    Uefi {
        code: PathBuf,
        vars_copy: PathBuf,
        secure: bool,
    },
    Direct(DirectBoot),
}

/// Everything that shapes the VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The target disk or image: attached read-only, the guest's writes
    /// going to QEMU's temporary overlay (`snapshot=on`).
    pub disk: PathBuf,
    pub controller: Controller,
    pub boot: Boot,
    pub memory_mib: u64,
    pub cpus: u32,
    pub console_log: PathBuf,
}

/// The QEMU arguments (after the program name) for a spec and accelerator.
pub fn qemu_args(spec: &VmSpec, accel: &Accel) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    let secure = matches!(spec.boot, Boot::Uefi { secure: true, .. });
    // OVMF's Secure Boot build needs SMM (q35), and the variable flash
    // writable only from SMM, or the guest could change the keys.
    let machine = if secure {
        "q35,smm=on"
    } else if spec.controller == Controller::Ahci {
        "q35"
    } else {
        "pc"
    };
    push(&["-machine", machine]);
    if secure {
        push(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    }
    let accel_args: Vec<&str> = accel.args.iter().map(String::as_str).collect();
    push(&accel_args);
    let memory = spec.memory_mib.to_string();
    let cpus = spec.cpus.to_string();
    push(&["-m", &memory, "-smp", &cpus]);
    push(&["-nodefaults", "-display", "none", "-monitor", "none"]);
    push(&["-no-reboot", "-nic", "none"]);
    let serial = format!("file:{}", spec.console_log.display());
    push(&["-serial", &serial]);
    let drive = format!(
        "file={},format=raw,if=none,id=target,snapshot=on,cache=unsafe",
        escape_option(&spec.disk.display().to_string())
    );
    push(&["-drive", &drive]);
    // With -kernel QEMU's own loader ROM takes boot index 0.
    let boot_index = if matches!(spec.boot, Boot::Direct(_)) {
        ""
    } else {
        ",bootindex=0"
    };
    let device = match spec.controller {
        Controller::VirtioBlk => vec![format!("virtio-blk-pci,drive=target{boot_index}")],
        Controller::VirtioScsi => vec![
            "virtio-scsi-pci,id=scsi0".to_string(),
            format!("scsi-hd,drive=target,bus=scsi0.0{boot_index}"),
        ],
        Controller::Nvme => vec![format!("nvme,drive=target,serial=vmrescue0{boot_index}")],
        Controller::Ahci => vec![format!("ide-hd,drive=target,bus=ide.0{boot_index}")],
        Controller::Ide => vec![format!("ide-hd,drive=target,bus=ide.0,unit=0{boot_index}")],
    };
    for item in &device {
        push(&["-device", item]);
    }
    match &spec.boot {
        Boot::Bios => {}
        Boot::Uefi {
            code, vars_copy, ..
        } => {
            let code = format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                escape_option(&code.display().to_string())
            );
            let vars = format!(
                "if=pflash,format=raw,unit=1,file={}",
                escape_option(&vars_copy.display().to_string())
            );
            push(&["-drive", &code, "-drive", &vars]);
        }
        Boot::Direct(direct) => {
            args.push("-kernel".into());
            args.push(direct.kernel.clone().into_os_string());
            if let Some(initrd) = &direct.initrd {
                args.push("-initrd".into());
                args.push(initrd.clone().into_os_string());
            }
            args.push("-append".into());
            args.push(direct.cmdline.clone().into());
        }
    }
    args
}

/// Commas are doubled inside QEMU option values.
fn escape_option(value: &str) -> String {
    value.replace(',', ",,")
}

/// How a watched boot ended.
#[derive(Debug)]
pub struct Watched {
    pub tracker: StageTracker,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// How QEMU ended when it ended by itself (not stopped by us).
    pub qemu_status: Option<ExitStatus>,
    pub qemu_stderr: String,
}

/// Boots QEMU and reads its console log as it grows, until [`decide`]
/// says stop; then stops QEMU (it also dies with vmrescue).
pub fn boot_and_watch(
    qemu: &Path,
    args: &[OsString],
    console_log: &Path,
    stderr_log: &Path,
    limits: Limits,
) -> Result<Watched> {
    std::fs::File::create(console_log)
        .with_context(|| format!("creating the console log {}", console_log.display()))?;
    let console = std::fs::File::open(console_log)
        .with_context(|| format!("opening the console log {}", console_log.display()))?;
    let stdout = std::fs::File::create(stderr_log)
        .with_context(|| format!("creating {}", stderr_log.display()))?;
    let stderr = stdout
        .try_clone()
        .with_context(|| format!("opening {}", stderr_log.display()))?;
    let started = Instant::now();
    let mut vm = Cmd::new(qemu).args(args).spawn_to_files(stdout, stderr)?;
    tracing::info!("booting: {}", vm.argv());

    let mut progress = Progress {
        tracker: StageTracker::new(),
        span: crate::progress::start("boot"),
        started,
        stage_at: started,
        failure_at: started,
    };
    let mut lines = ConsoleLines {
        file: console,
        pending: Vec::new(),
        pending_since: Instant::now(),
        chunk: vec![0u8; 64 * 1024],
    };
    let mut exit_status = None;
    let outcome = loop {
        if exit_status.is_none() {
            exit_status = vm.try_wait()?;
        }
        let exited = exit_status.is_some();
        lines
            .read(exited, |line| progress.feed(line))
            .with_context(|| format!("reading {}", console_log.display()))?;
        if let Decision::Stop(outcome) = decide(&progress.tracker, progress.clock(exited), limits) {
            break outcome;
        }
        // Polling, not blocking reads: the log is a plain file QEMU appends
        // to, and the clock must advance even when the guest prints nothing.
        std::thread::sleep(Duration::from_millis(200));
    };
    let tracker = progress.tracker;
    let elapsed = started.elapsed();
    let stopped = vm.stop(Duration::from_secs(3))?;
    tracing::debug!("QEMU stopped: {stopped}");
    let qemu_stderr = std::fs::read(stderr_log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Ok(Watched {
        tracker,
        outcome,
        elapsed,
        qemu_status: exit_status,
        qemu_stderr,
    })
}

/// The console log as QEMU writes it, handed on in lines.
struct ConsoleLines {
    file: std::fs::File,
    /// Bytes read but not yet handed on: the start of an unfinished line.
    pending: Vec<u8>,
    pending_since: Instant,
    chunk: Vec<u8>,
}

impl ConsoleLines {
    /// Reads everything written so far and hands on each complete line. An
    /// unfinished one is handed on too once QEMU has exited or the log has
    /// not grown for a second: prompts ("login: ", "grub rescue> ") end
    /// without a newline.
    fn read(&mut self, exited: bool, mut line: impl FnMut(&[u8])) -> std::io::Result<()> {
        loop {
            let n = self.file.read(&mut self.chunk)?;
            if n == 0 {
                break;
            }
            self.pending.extend_from_slice(&self.chunk[..n]);
            self.pending_since = Instant::now();
        }
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let complete: Vec<u8> = self.pending.drain(..=newline).collect();
            line(&complete);
        }
        if !self.pending.is_empty()
            && (exited || self.pending_since.elapsed() >= Duration::from_secs(1))
        {
            let partial = std::mem::take(&mut self.pending);
            line(&partial);
        }
        Ok(())
    }
}

/// The boot's stages as the console shows them, with when the last stage
/// and the last failure were seen: [`decide`] waits a grace period after
/// each (a failure report to finish printing, userspace to stay out of
/// emergency mode) before it calls the outcome.
struct Progress {
    tracker: StageTracker,
    /// Shows the stages as they come (`crate::progress`).
    span: crate::progress::Span,
    started: Instant,
    stage_at: Instant,
    failure_at: Instant,
}

impl Progress {
    fn feed(&mut self, line: &[u8]) {
        let seconds = self.started.elapsed().as_secs_f64();
        match self.tracker.feed(&String::from_utf8_lossy(line)) {
            Change::Stage(stage) => {
                self.stage_at = Instant::now();
                self.span.reached(stage.label());
                tracing::info!("boot stage: {} ({seconds:.0} s)", stage.label());
            }
            Change::Failure(kind) => {
                self.failure_at = Instant::now();
                self.span.reached(&format!("FAILED ({})", kind.label()));
                tracing::info!("boot failure: {} ({seconds:.0} s)", kind.label());
            }
            Change::None => {}
        }
    }

    fn clock(&self, vm_exited: bool) -> Clock {
        let now = Instant::now();
        Clock {
            elapsed: now - self.started,
            since_stage: now - self.stage_at,
            since_failure: now - self.failure_at,
            vm_exited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cp` stands in for QEMU: it writes a recorded console log into the
    /// log being watched and exits, as a VM that powered off would.
    fn watch_recorded(fixture: &str) -> Watched {
        let recorded = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/boot-logs")
            .join(fixture);
        let dir = tempfile::tempdir().unwrap();
        let console = dir.path().join("console.log");
        let args = [recorded.into_os_string(), console.clone().into_os_string()];
        boot_and_watch(
            Path::new("cp"),
            &args,
            &console,
            &dir.path().join("qemu.stderr"),
            Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_recorded_healthy_boot_is_watched_to_success() {
        let watched = watch_recorded("debian12-bios-ext4-ok.log");
        assert!(matches!(watched.outcome, Outcome::Success), "{watched:?}");
    }

    #[test]
    fn a_recorded_panicking_boot_is_watched_to_its_failure() {
        let watched = watch_recorded("debian12-missing-initrd-panic.log");
        assert!(
            matches!(watched.outcome, Outcome::Failure(_)),
            "{watched:?}"
        );
        assert!(watched.tracker.failure().is_some());
    }

    fn spec(controller: Controller, boot: Boot) -> VmSpec {
        VmSpec {
            disk: PathBuf::from("/var/tmp/a,b.raw"),
            controller,
            boot,
            memory_mib: 1024,
            cpus: 2,
            console_log: PathBuf::from("/tmp/console.log"),
        }
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn bios_virtio_disk_is_attached_copy_on_write() {
        let args = qemu_args(
            &spec(Controller::VirtioBlk, Boot::Bios),
            &Accel::tcg("test"),
        );
        let line = joined(&args);
        assert!(line.contains("-accel tcg"), "{line}");
        assert!(
            line.contains("file=/var/tmp/a,,b.raw,format=raw,if=none,id=target,snapshot=on"),
            "{line}"
        );
        assert!(line.contains("virtio-blk-pci,drive=target"), "{line}");
        assert!(
            line.contains("-nic none") && line.contains("-no-reboot"),
            "{line}"
        );
        assert!(line.contains("-serial file:/tmp/console.log"), "{line}");
        assert!(!line.contains("-kernel"), "{line}");
    }

    #[test]
    fn ahci_uses_q35_and_direct_boot_passes_the_command_line_whole() {
        let direct = DirectBoot {
            kernel: "/tmp/k/vmlinuz".into(),
            initrd: Some("/tmp/k/initrd".into()),
            cmdline: "root=UUID=x ro quiet console=ttyS0".into(),
        };
        let args = qemu_args(
            &spec(Controller::Ahci, Boot::Direct(direct)),
            &Accel::kvm(true, ""),
        );
        let line = joined(&args);
        assert!(
            line.starts_with("-machine q35 -accel kvm -cpu host"),
            "{line}"
        );
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[append + 1], "root=UUID=x ro quiet console=ttyS0");
        assert!(line.contains("-initrd /tmp/k/initrd"), "{line}");
        assert!(
            line.contains("ide-hd,drive=target,bus=ide.0 ") && !line.contains("bootindex"),
            "{line}"
        );
    }

    #[test]
    fn uefi_firmware_code_is_read_only() {
        let boot = Boot::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars_copy: "/tmp/x/vars.fd".into(),
            secure: false,
        };
        let line = joined(&qemu_args(&spec(Controller::Nvme, boot), &Accel::tcg("")));
        assert!(line.contains(
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        ));
        assert!(line.contains("if=pflash,format=raw,unit=1,file=/tmp/x/vars.fd"));
        assert!(line.contains("nvme,drive=target"));
        assert!(
            line.starts_with("-machine pc ") && !line.contains("smm"),
            "{line}"
        );
    }

    #[test]
    fn no_secure_boot_firmware_is_exit_4() {
        let err = find_secboot_in(&[("/nonexistent/CODE.secboot.fd", "/nonexistent/VARS.ms.fd")])
            .unwrap_err();
        assert_eq!(crate::exit_code_for(&err), crate::ExitCode::Unsupported);
        assert!(format!("{err:#}").contains("--secure-boot off"), "{err:#}");
    }

    #[test]
    fn secure_boot_uses_q35_with_smm_and_a_secure_flash() {
        let boot = Boot::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd".into(),
            vars_copy: "/tmp/x/vars.fd".into(),
            secure: true,
        };
        let line = joined(&qemu_args(
            &spec(Controller::VirtioBlk, boot),
            &Accel::tcg(""),
        ));
        assert!(
            line.starts_with(
                "-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on -accel tcg"
            ),
            "{line}"
        );
        assert!(line.contains(
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
        ));
    }

    #[test]
    fn memory_is_bounded() {
        let mib = memory_mib();
        assert!((256..=1024).contains(&mib));
    }
}
