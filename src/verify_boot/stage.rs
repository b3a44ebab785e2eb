//! How far a boot got, read from its serial console. Pure: lines in, a
//! stage and (maybe) a failure out; [`decide`] says when to stop the VM.
//!
//! Stages, in order: firmware/bootloader → kernel ("Linux version …") →
//! root mounted (the real root: switch_root, "Run /sbin/init", the
//! initramfs-tools bottom scripts, "VFS: Mounted root", "Freeing unused
//! kernel memory" when no initramfs ran) → userspace (systemd's
//! "Reached target … System Initialization / Basic System" or units it
//! starts, outside the initramfs) → login (multi-user target, a login
//! prompt, the vm-tests marker `VMRESCUE-BOOT-OK`).

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Firmware,
    Kernel,
    RootMounted,
    Userspace,
    Login,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Firmware => "firmware/bootloader",
            Stage::Kernel => "kernel",
            Stage::RootMounted => "root mounted",
            Stage::Userspace => "userspace",
            Stage::Login => "login",
        }
    }

    /// Userspace or beyond counts as a successful boot.
    pub fn is_success(self) -> bool {
        self >= Stage::Userspace
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// "Kernel panic - not syncing".
    Panic,
    /// dracut / initramfs-tools (BusyBox) emergency shell, dracut timeout.
    InitramfsShell,
    /// systemd emergency or rescue mode after the root was mounted.
    EmergencyMode,
    /// The boot loader gave up ("grub rescue>", "No bootable device").
    Bootloader,
    /// Secure Boot refused a boot loader or kernel: the firmware or shim
    /// ("Security Violation", "Verification failed: (0x1A)") or GRUB
    /// ("bad shim signature").
    SecureBoot,
    /// Nothing decisive within the time limit.
    Timeout,
    /// QEMU ended (reboot under -no-reboot, triple fault) before userspace.
    Exited,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Panic => "kernel panic",
            FailureKind::InitramfsShell => "initramfs emergency shell",
            FailureKind::EmergencyMode => "systemd emergency mode",
            FailureKind::Bootloader => "boot loader error",
            FailureKind::SecureBoot => "Secure Boot verification failed",
            FailureKind::Timeout => "timeout",
            FailureKind::Exited => "VM stopped",
        }
    }
}

/// A console line that moved the boot forward or ended it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Mark {
    /// 1-based line number in the console log.
    pub line_number: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FailureMark {
    pub kind: FailureKind,
    #[serde(flatten)]
    pub mark: Mark,
}

/// What a fed line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Stage(Stage),
    Failure(FailureKind),
}

/// Follows a console log line by line.
#[derive(Debug, Clone)]
pub struct StageTracker {
    stage: Stage,
    stage_mark: Option<Mark>,
    /// An initramfs was unpacked or is running (until the real root).
    initramfs_seen: bool,
    in_initramfs: bool,
    failure: Option<FailureMark>,
    line_number: u64,
}

impl Default for StageTracker {
    fn default() -> Self {
        Self::new()
    }
}

const KERNEL: &[&str] = &[
    "Linux version ",
    "Decompressing Linux",
    "Booting the kernel",
    "EFI stub: ",
];

/// The kernel is handing over to an initramfs.
const INITRAMFS: &[&str] = &[
    "Trying to unpack rootfs image as initramfs",
    "Unpacking initramfs",
    "Freeing initrd memory",
    "Run /init as init process",
    "Loading, please wait...",
    "Running in initial RAM disk",
    "Running in initrd",
    "(Initramfs)",
    "initrd.target",
];

/// The real root filesystem is mounted and its init is starting.
const ROOT_MOUNTED: &[&str] = &[
    "Switching root",
    "switch_root",
    "VFS: Mounted root",
    "Run /sbin/init as init process",
    "Run /etc/init as init process",
    "Run /bin/init as init process",
    "Run /bin/sh as init process",
    "Run /lib/systemd/systemd as init process",
    "Run /usr/lib/systemd/systemd as init process",
    "Running /scripts/local-bottom",
    "Running /scripts/init-bottom",
];

const USERSPACE: &[&str] = &[
    "Reached target System Initialization",
    "Reached target sysinit.target",
    "Reached target Basic System",
    "Reached target basic.target",
    "INIT: version ",
    "INIT: Entering runlevel",
];

const LOGIN: &[&str] = &[
    "Reached target Multi-User System",
    "Reached target multi-user.target",
    "Reached target Graphical Interface",
    "Reached target graphical.target",
];

const MARKER: &str = "VMRESCUE-BOOT-OK";

const PANIC: &[&str] = &["Kernel panic - not syncing"];

const INITRAMFS_SHELL: &[&str] = &[
    "Dropping to a shell",
    "dracut-initqueue timeout",
    "dracut-initqueue: timeout",
    "Warning: Could not boot",
    "Starting Dracut Emergency Shell",
    "Gave up waiting for root",
    "built-in shell (ash)",
];

/// systemd's emergency / rescue mode (dracut prints "Entering emergency
/// mode" too: which one it is depends on the stage).
const EMERGENCY: &[&str] = &[
    "You are in emergency mode",
    "Entering emergency mode",
    "Reached target Emergency Mode",
    "Reached target emergency.target",
    "You are in rescue mode",
    "Give root password for maintenance",
    "Press Enter for maintenance",
    "Cannot open access to console, the root account is locked",
];

const BOOTLOADER: &[&str] = &[
    "grub rescue>",
    "No bootable device",
    "Boot failed: not a bootable disk",
    "Boot failed: could not read the boot disk",
];

/// The firmware, shim or GRUB refusing an image under Secure Boot: shim's
/// `Verification failed: (0x1A) Security Violation` and `Failed to load
/// image: Security Violation`, OVMF's `BdsDxe: failed to load Boot0001 …:
/// Security Violation`, GRUB's `error: bad shim signature.`
const SECURE_BOOT: &[&str] = &[
    "Security Violation",
    "Verification failed: (0x1A)",
    "bad shim signature",
];

/// What to run when Secure Boot refused the boot: put the target's own
/// signed shim and GRUB back in the ESP and on the removable path.
pub const SECURE_BOOT_RECIPE: &str = "bootloader";

fn any(line: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| line.contains(n))
}

/// A console line without escape sequences, carriage returns or other
/// control characters.
pub fn clean_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Lines longer than this are full-screen drawings (shim's error box).
const SCREEN_LINE: usize = 240;

/// A console line as a report shows it: the line, or for a full-screen drawing (shim's
/// `Verification failed` box is one 4 KB console line of CP437 frame
/// bytes) just its plain ASCII words: frame bytes decode to stray
/// non-ASCII characters, so a word with any of them is frame.
pub fn readable_line(line: &str) -> String {
    if line.chars().count() <= SCREEN_LINE {
        return line.to_string();
    }
    line.split_whitespace()
        .filter(|word| word.chars().all(|c| c.is_ascii_graphic()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl StageTracker {
    pub fn new() -> Self {
        StageTracker {
            stage: Stage::Firmware,
            stage_mark: None,
            initramfs_seen: false,
            in_initramfs: false,
            failure: None,
            line_number: 0,
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The line that reached the current stage.
    pub fn stage_mark(&self) -> Option<&Mark> {
        self.stage_mark.as_ref()
    }

    pub fn failure(&self) -> Option<&FailureMark> {
        self.failure.as_ref()
    }

    pub fn lines(&self) -> u64 {
        self.line_number
    }

    /// Feeds one console line (raw: escapes are removed here).
    pub fn feed(&mut self, raw: &str) -> Change {
        self.line_number += 1;
        let line = clean_line(raw);
        let line = line.trim();
        if line.is_empty() {
            return Change::None;
        }
        if self.failure.is_none() {
            if let Some(kind) = self.failure_kind(line) {
                self.failure = Some(FailureMark {
                    kind,
                    mark: self.mark(line),
                });
                return Change::Failure(kind);
            }
        }
        match self.next_stage(line) {
            Some(stage) if stage > self.stage => {
                self.stage = stage;
                self.stage_mark = Some(self.mark(line));
                if stage >= Stage::RootMounted {
                    self.in_initramfs = false;
                }
                Change::Stage(stage)
            }
            _ => Change::None,
        }
    }

    fn mark(&self, line: &str) -> Mark {
        Mark {
            line_number: self.line_number,
            text: readable_line(line),
        }
    }

    fn failure_kind(&self, line: &str) -> Option<FailureKind> {
        if any(line, PANIC) {
            return Some(FailureKind::Panic);
        }
        if any(line, INITRAMFS_SHELL) || line.starts_with("(initramfs)") {
            return Some(FailureKind::InitramfsShell);
        }
        if any(line, EMERGENCY) {
            return Some(if self.stage >= Stage::RootMounted && !self.in_initramfs {
                FailureKind::EmergencyMode
            } else {
                FailureKind::InitramfsShell
            });
        }
        if any(line, SECURE_BOOT) {
            return Some(FailureKind::SecureBoot);
        }
        if any(line, BOOTLOADER) {
            return Some(FailureKind::Bootloader);
        }
        None
    }

    fn next_stage(&mut self, line: &str) -> Option<Stage> {
        if line.contains(MARKER) {
            return Some(Stage::Login);
        }
        if any(line, KERNEL) {
            return Some(Stage::Kernel);
        }
        if self.stage < Stage::RootMounted && any(line, INITRAMFS) {
            self.initramfs_seen = true;
            self.in_initramfs = true;
            return Some(Stage::Kernel);
        }
        if any(line, ROOT_MOUNTED) || self.root_mounted_by_context(line) {
            return Some(Stage::RootMounted);
        }
        // Userspace markers count only for the real root's init: dracut
        // reaches "Basic System" inside the initramfs too.
        let real_root = self.stage >= Stage::RootMounted
            || (self.stage >= Stage::Kernel && !self.initramfs_seen);
        if !real_root || self.in_initramfs {
            return None;
        }
        if any(line, LOGIN) || line.ends_with(" login:") {
            return Some(Stage::Login);
        }
        if any(line, USERSPACE) || (line.contains("systemd[1]: Started ")) {
            return Some(Stage::Userspace);
        }
        None
    }

    /// Root-mounted evidence that depends on what came before.
    fn root_mounted_by_context(&self, line: &str) -> bool {
        if self.stage < Stage::Kernel {
            return false;
        }
        // Without an initramfs the kernel mounts root, frees its init
        // memory and runs init.
        if !self.initramfs_seen && line.contains("Freeing unused kernel") {
            return true;
        }
        // The initramfs mounted the root filesystem.
        if self.initramfs_seen
            && ((line.contains("EXT4-fs (") && line.contains("mounted filesystem"))
                || (line.contains("XFS (") && line.contains("Ending clean mount")))
        {
            return true;
        }
        // systemd of the real root greets without "(Initramfs)".
        line.contains("Welcome to ") && line.ends_with('!') && !line.contains("Initramfs")
    }
}

/// What the watcher should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Stop(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(FailureKind),
}

/// Timing of the watch loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit of the whole boot.
    pub timeout: Duration,
    /// After userspace without login: how long to watch for emergency mode.
    pub userspace_grace: Duration,
    /// After a failure line: how long to let the console finish its report.
    pub failure_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(180),
            userspace_grace: Duration::from_secs(20),
            failure_grace: Duration::from_secs(3),
        }
    }
}

/// Where the watch stands.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Since QEMU started.
    pub elapsed: Duration,
    /// Since the tracker's current stage was reached (userspace must stay
    /// out of emergency mode this long).
    pub since_stage: Duration,
    /// Since the first failure line (a panic report gets time to finish).
    pub since_failure: Duration,
    pub vm_exited: bool,
}

/// Stop as soon as the outcome is certain: a login-stage line, a failure
/// report that had time to finish, userspace that stayed out of emergency
/// mode for the grace period, the VM ending, or the time limit.
pub fn decide(tracker: &StageTracker, clock: Clock, limits: Limits) -> Decision {
    if let Some(failure) = tracker.failure() {
        if clock.vm_exited || clock.since_failure >= limits.failure_grace {
            return Decision::Stop(Outcome::Failure(failure.kind));
        }
        return Decision::Continue;
    }
    let stage = tracker.stage();
    if stage == Stage::Login {
        return Decision::Stop(Outcome::Success);
    }
    if stage.is_success() && (clock.vm_exited || clock.since_stage >= limits.userspace_grace) {
        return Decision::Stop(Outcome::Success);
    }
    if clock.vm_exited {
        return Decision::Stop(Outcome::Failure(FailureKind::Exited));
    }
    if clock.elapsed >= limits.timeout {
        return Decision::Stop(if stage.is_success() {
            Outcome::Success
        } else {
            Outcome::Failure(FailureKind::Timeout)
        });
    }
    Decision::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(log: &str) -> StageTracker {
        let mut tracker = StageTracker::new();
        for line in log.lines() {
            tracker.feed(line);
        }
        tracker
    }

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/boot-logs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        // Consoles carry undecodable bytes (CP437 frames): read them as the watcher does.
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn escapes_and_carriage_returns_are_removed() {
        assert_eq!(
            clean_line("\u{1b}[0;32m  OK  \u{1b}[0m] Reached target\r"),
            "  OK  ] Reached target"
        );
        assert_eq!(clean_line("\u{1b}c\u{1b}[2J\u{1b}[01;01Hx"), "x");
    }

    #[test]
    fn an_empty_console_is_the_firmware_stage() {
        let tracker = track("");
        assert_eq!(tracker.stage(), Stage::Firmware);
        assert!(tracker.failure().is_none());
    }

    #[test]
    fn debian_initramfs_tools_boot_reaches_the_marker() {
        let tracker = track(&fixture("debian12-bios-ext4-ok.log"));
        assert_eq!(tracker.stage(), Stage::Login, "{:?}", tracker.stage_mark());
        assert!(tracker.failure().is_none(), "{:?}", tracker.failure());
    }

    #[test]
    fn debian_boot_passes_every_stage_in_order() {
        let mut tracker = StageTracker::new();
        let mut seen = vec![];
        for line in fixture("debian12-bios-ext4-ok.log").lines() {
            if let Change::Stage(stage) = tracker.feed(line) {
                seen.push(stage);
            }
        }
        assert_eq!(
            seen,
            [
                Stage::Kernel,
                Stage::RootMounted,
                Stage::Userspace,
                Stage::Login
            ]
        );
    }

    #[test]
    fn a_secure_boot_boot_through_shim_reaches_the_marker() {
        let tracker = track(&fixture("debian12-uefi-shim-secureboot-ok.log"));
        assert_eq!(tracker.stage(), Stage::Login, "{:?}", tracker.stage_mark());
        assert!(tracker.failure().is_none(), "{:?}", tracker.failure());
    }

    #[test]
    fn an_unsigned_grub_under_secure_boot_is_a_secure_boot_failure() {
        let tracker = track(&fixture(
            "debian12-uefi-shim-unsigned-grub-security-violation.log",
        ));
        assert_eq!(tracker.stage(), Stage::Firmware);
        let failure = tracker.failure().unwrap();
        assert_eq!(failure.kind, FailureKind::SecureBoot);
        assert_eq!(
            failure.mark.text,
            "ERROR Verification failed: (0x1A) Security Violation OK"
        );
        assert_eq!(failure.mark.line_number, 3);
    }

    #[test]
    fn secure_boot_refusals_of_firmware_and_grub() {
        let firmware = track(
            "BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Security Violation",
        );
        assert_eq!(firmware.failure().unwrap().kind, FailureKind::SecureBoot);
        let grub = track("Loading Linux 6.1.0-28-amd64 ...\nerror: bad shim signature.\n");
        assert_eq!(grub.failure().unwrap().kind, FailureKind::SecureBoot);
        assert_eq!(
            grub.failure().unwrap().kind.label(),
            "Secure Boot verification failed"
        );
    }

    #[test]
    fn missing_initramfs_panics_at_the_kernel_stage() {
        let tracker = track(&fixture("debian12-missing-initrd-panic.log"));
        assert_eq!(tracker.stage(), Stage::Kernel);
        let failure = tracker.failure().unwrap();
        assert_eq!(failure.kind, FailureKind::Panic);
        assert!(failure.mark.text.contains("VFS: Unable to mount root fs"));
    }

    #[test]
    fn dracut_initrd_targets_are_not_userspace() {
        // An excerpt from the emergency prompt on (no kernel banner in it).
        let tracker = track(&fixture("dracut-initrd-emergency.log"));
        assert!(tracker.stage() < Stage::RootMounted);
        let failure = tracker.failure().unwrap();
        assert_eq!(failure.kind, FailureKind::InitramfsShell);
        assert!(
            failure
                .mark
                .text
                .contains("Starting Dracut Emergency Shell"),
            "{failure:?}"
        );
    }

    #[test]
    fn dracut_switch_root_then_userspace() {
        let log = "Linux version 4.18.0-553.el8_10.x86_64 (mockbuild@x) (gcc) #1 SMP\n\
                   Unpacking initramfs...\n\
                   systemd[1]: systemd 239 running in system mode.\n\
                   systemd[1]: Running in initial RAM disk.\n\
                   Welcome to Rocky Linux 8.10 (Green Obsidian) dracut-049-233 (Initramfs)!\n\
                   [  OK  ] Reached target Basic System.\n\
                   [  OK  ] Reached target Initrd Root File System.\n\
                   systemd[1]: Switching root.\n\
                   Welcome to Rocky Linux 8.10 (Green Obsidian)!\n\
                   [  OK  ] Reached target System Initialization.\n";
        let mut tracker = StageTracker::new();
        let mut seen = vec![];
        for line in log.lines() {
            if let Change::Stage(stage) = tracker.feed(line) {
                seen.push((stage, tracker.stage_mark().unwrap().line_number));
            }
        }
        assert_eq!(
            seen,
            [
                (Stage::Kernel, 1),
                (Stage::RootMounted, 8),
                (Stage::Userspace, 10)
            ]
        );
    }

    #[test]
    fn initramfs_tools_alert_is_an_initramfs_shell() {
        let tracker = track(&fixture("initramfs-tools-alert-uuid.log"));
        assert!(tracker.stage() < Stage::RootMounted);
        assert_eq!(tracker.failure().unwrap().kind, FailureKind::InitramfsShell);
    }

    #[test]
    fn systemd_emergency_mode_after_root_is_emergency_mode() {
        let log = "Linux version 6.1.0-18-amd64\n\
                   Run /init as init process\n\
                   EXT4-fs (vda1): mounted filesystem with ordered data mode.\n\
                   Welcome to Debian GNU/Linux 12 (bookworm)!\n\
                   [DEPEND] Dependency failed for Local File Systems.\n\
                   You are in emergency mode. After logging in, type \"journalctl -xb\" to view\n";
        let tracker = track(log);
        assert_eq!(tracker.stage(), Stage::RootMounted);
        assert_eq!(tracker.failure().unwrap().kind, FailureKind::EmergencyMode);
    }

    #[test]
    fn a_kernel_without_initramfs_mounting_root_itself() {
        let log = "[    0.000000] Linux version 5.3.0-26-generic (buildd@lgw01-amd64-039)\n\
                   [    1.500000] VFS: Mounted root (ext4 filesystem) readonly on device 253:1.\n\
                   [    1.600000] Freeing unused kernel image memory: 2712K\n\
                   [    1.700000] Run /sbin/init as init process\n\
                   INIT: version 2.96 booting\n";
        let tracker = track(log);
        assert_eq!(tracker.stage(), Stage::Userspace);
        let freeing_only =
            track("Linux version 5.3.0\nFreeing unused kernel image memory: 2712K\n");
        assert_eq!(freeing_only.stage(), Stage::RootMounted);
        let with_initramfs =
            track("Linux version 5.3.0\nTrying to unpack rootfs image as initramfs...\nFreeing unused kernel image memory: 2712K\n");
        assert_eq!(with_initramfs.stage(), Stage::Kernel);
    }

    #[test]
    fn grub_rescue_is_a_boot_loader_failure() {
        let tracker = track("error: no such partition.\nEntering rescue mode...\ngrub rescue> ");
        assert_eq!(tracker.stage(), Stage::Firmware);
        assert_eq!(tracker.failure().unwrap().kind, FailureKind::Bootloader);
    }

    #[test]
    fn a_login_prompt_is_the_login_stage() {
        let log = "Linux version 5.15.0\nVFS: Mounted root (ext4 filesystem) readonly\n\
                   Ubuntu 22.04.4 LTS vm ttyS0\n\nvm login: ";
        assert_eq!(track(log).stage(), Stage::Login);
    }

    fn clock(elapsed: u64, since_stage: u64, since_failure: u64, exited: bool) -> Clock {
        Clock {
            elapsed: Duration::from_secs(elapsed),
            since_stage: Duration::from_secs(since_stage),
            since_failure: Duration::from_secs(since_failure),
            vm_exited: exited,
        }
    }

    #[test]
    fn decisions() {
        let limits = Limits::default();
        let kernel = track("Linux version 6.1.0");
        assert_eq!(
            decide(&kernel, clock(10, 5, 0, false), limits),
            Decision::Continue
        );
        assert_eq!(
            decide(&kernel, clock(180, 5, 0, false), limits),
            Decision::Stop(Outcome::Failure(FailureKind::Timeout))
        );
        assert_eq!(
            decide(&kernel, clock(10, 5, 0, true), limits),
            Decision::Stop(Outcome::Failure(FailureKind::Exited))
        );
        let panic = track("Linux version 6.1.0\nKernel panic - not syncing: VFS");
        assert_eq!(
            decide(&panic, clock(10, 5, 1, false), limits),
            Decision::Continue
        );
        assert_eq!(
            decide(&panic, clock(10, 5, 3, false), limits),
            Decision::Stop(Outcome::Failure(FailureKind::Panic))
        );
        let userspace =
            track("Linux version 6.1.0\nVFS: Mounted root (ext4)\nReached target Basic System.");
        assert_eq!(userspace.stage(), Stage::Userspace);
        assert_eq!(
            decide(&userspace, clock(30, 5, 0, false), limits),
            Decision::Continue
        );
        assert_eq!(
            decide(&userspace, clock(30, 20, 0, false), limits),
            Decision::Stop(Outcome::Success)
        );
        assert_eq!(
            decide(&userspace, clock(30, 1, 0, true), limits),
            Decision::Stop(Outcome::Success)
        );
        let login = track("VMRESCUE-BOOT-OK 6.12.95+deb12-amd64");
        assert_eq!(
            decide(&login, clock(30, 0, 0, false), limits),
            Decision::Stop(Outcome::Success)
        );
    }
}
