//! The line patterns the classifier reacts to and the findings they produce.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use anyhow::{Context, Result};
use regex::Regex;

use super::Severity;

/// What a kernel message line is, as far as the classifier cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    // Boot structure.
    BootVersion,
    CommandLine,
    KernelCommandLine,
    // Event structure.
    CutHere,
    EndTrace,
    CpuLine,
    HardwareName,
    CallTrace,
    Frame,
    ModulesLinked,
    TaintingModule,
    Panic,
    // Signatures.
    UnknownBlock,
    CannotOpenRoot,
    NoInit,
    DracutCouldNotBoot,
    DracutDoesNotExist,
    DracutTimeout,
    DracutEmergency,
    InitramfsAlert,
    InitramfsGaveUp,
    KillInit,
    Oops,
    SysRq,
    KernelBug,
    NullDeref,
    PageFault,
    Gpf,
    DivideError,
    InvalidOpcode,
    SoftLockup,
    HardLockup,
    HungTask,
    OomPanic,
    OomDeadlock,
    OomKill,
    NmiIoCheck,
    NmiUnknown,
    NmiSerr,
    NmiNotContinuing,
    MachineCheck,
    MachineCheckCorrected,
    ListCorruption,
    SlabObjectsRemaining,
    AllocationFailure,
    MemcgCache,
    Warning,
    RcuStall,
    // Stages that stop a boot without a panic.
    DependencyFailed,
    DeviceTimeout,
    MountFailed,
    EmergencyMode,
    FsckFailed,
    XfsCorruption,
    MkinitcpioNotFound,
    GrubError,
    GrubRescue,
    UefiBoot,
    NoBootable,
    SecureBoot,
    SelinuxPolicy,
    NoSpace,
}

/// Line patterns, matched against the message with prefixes removed. Handled in
/// this order on a line: boot boundaries, then crash headers (which open an
/// event), then the structure lines that fill the current event.
///
/// Each pattern names literals of which every line it matches contains at
/// least one (for `(?i)` patterns, in the spellings kernels print). Their union is the
/// prefilter run over whole chunks, so that uninteresting lines cost almost
/// nothing; on a line that passes it, only the patterns whose literals occur
/// in the line are tried.
///
/// The last field is the finding of a bare crash header: a line that opens
/// (or joins) an event and records that finding with no parameters. Kept
/// here rather than in the line handler so that a new header signature is one
/// table row, not one more match arm that must repeat the same three calls.
const PATTERNS: &[(Kind, &str, &[&str], Option<&str>)] = &[
    (
        Kind::BootVersion,
        r"Linux version \d",
        &["Linux version"],
        None,
    ),
    (
        Kind::CommandLine,
        r"^Command line: ",
        &["ommand line:"],
        None,
    ),
    (
        Kind::KernelCommandLine,
        r"^Kernel command line: ",
        &["ommand line:"],
        None,
    ),
    (
        Kind::Panic,
        r"(?i)Kernel panic - not syncing",
        &["anic - not syncing"],
        None,
    ),
    (
        Kind::CutHere,
        r"-{4}\[ cut here \]-{4}",
        &["cut here"],
        None,
    ),
    (
        Kind::UnknownBlock,
        r"unknown-block\((\d+),(\d+)\)",
        &["unknown-block"],
        None,
    ),
    (
        Kind::CannotOpenRoot,
        r"Cannot open root device",
        &["Cannot open root device"],
        None,
    ),
    (
        Kind::NoInit,
        r"not syncing: No (?:working )?init found|Requested init \S+ failed|Failed to execute /init",
        &[
            "anic - not syncing",
            "Requested init",
            "Failed to execute /init",
        ],
        None,
    ),
    (
        Kind::DracutCouldNotBoot,
        r"Could not boot\.?$|Warning: Could not boot",
        &["Could not boot"],
        None,
    ),
    (
        Kind::DracutDoesNotExist,
        r"Warning: /dev/\S+ does not exist",
        &["does not exist"],
        None,
    ),
    (
        Kind::DracutTimeout,
        r"dracut-initqueue:? timeout",
        &["dracut-initqueue"],
        None,
    ),
    (
        Kind::DracutEmergency,
        r"rdsosreport\.txt|Starting Dracut Emergency Shell|dracut:/#|Entering emergency mode",
        &["rdsosreport", "mergency", "dracut:/#"],
        None,
    ),
    (
        Kind::InitramfsAlert,
        r"ALERT! .* does not exist",
        &["does not exist"],
        None,
    ),
    (
        Kind::InitramfsGaveUp,
        r"Gave up waiting for root (?:file system )?device|Dropping to a shell",
        &["Gave up waiting", "Dropping to a shell"],
        None,
    ),
    (
        Kind::KillInit,
        r"not syncing: Attempted to kill init!?",
        &["anic - not syncing"],
        None,
    ),
    (
        Kind::Oops,
        r"\bOops\b.*\[#\d+\]|Internal error: Oops",
        &["Oops"],
        None,
    ),
    (
        Kind::SysRq,
        r"sysrq\s*:.*(?i:trigger a crash)|sysrq_handle_crash|sysrq triggered crash",
        &["sysrq"],
        None,
    ),
    (Kind::KernelBug, r"kernel BUG at ", &["BUG at "], None),
    (
        Kind::NullDeref,
        r"NULL pointer dereference",
        &["NULL pointer"],
        Some("null-pointer-dereference"),
    ),
    (
        Kind::PageFault,
        r"(?i)unable to handle (?:kernel )?(?:page fault|paging request)",
        &["nable to handle"],
        Some("page-fault"),
    ),
    (
        Kind::Gpf,
        r"general protection fault",
        &["general protection"],
        Some("general-protection-fault"),
    ),
    (
        Kind::DivideError,
        r"divide error: |Oops: divide error",
        &["divide error"],
        Some("divide-error"),
    ),
    (
        Kind::InvalidOpcode,
        r"invalid opcode: ",
        &["invalid opcode"],
        None,
    ),
    (
        Kind::SoftLockup,
        r"soft lockup - CPU#?\d+ stuck|softlockup: hung tasks",
        &["lockup"],
        None,
    ),
    (
        Kind::HardLockup,
        // Not the routine "Shutting down hard lockup detector" of a VM
        // without performance counters.
        r"(?i)hard lockup(?:$|[^ a-z]| [^d]| d[^e])",
        &["LOCKUP", "lockup"],
        Some("hard-lockup"),
    ),
    (
        Kind::HungTask,
        r"blocked for more than \d+ seconds|not syncing: hung_task: blocked tasks",
        &["blocked for more than", "anic - not syncing"],
        None,
    ),
    (
        Kind::OomPanic,
        r"not syncing.*panic_on_oom",
        &["anic - not syncing"],
        None,
    ),
    (
        Kind::OomDeadlock,
        r"not syncing: System is deadlocked on memory|ut of memory and no killable process",
        &["anic - not syncing", "ut of memory"],
        None,
    ),
    (
        Kind::OomKill,
        r"Out of memory: Kill|Out of memory \(oom_kill_allocating_task\)|invoked oom-killer|Memory cgroup out of memory",
        &["ut of memory", "oom-killer"],
        Some("oom-kill"),
    ),
    (
        Kind::NmiIoCheck,
        r"NMI.*(?i:iock error)",
        &["NMI"],
        Some("nmi-io-check"),
    ),
    (
        Kind::NmiUnknown,
        r"NMI received for unknown reason",
        &["NMI"],
        Some("nmi-unknown"),
    ),
    (
        Kind::NmiSerr,
        r"NMI: PCI system error",
        &["NMI"],
        Some("nmi-unrecovered"),
    ),
    (
        Kind::NmiNotContinuing,
        r"NMI: Not continuing|not syncing: NMI|not syncing: An NMI occurred",
        &["NMI"],
        None,
    ),
    (
        Kind::MachineCheck,
        r"(?i)machine check exception|fatal machine check|machine check from unknown source|processor context corrupt|not syncing: Timeout: Not all CPUs entered broadcast exception handler|\[Hardware Error\]: (?:CPU \d+: )?Machine Check|Oops: Machine check",
        &["achine check", "Machine Check", "anic - not syncing"],
        Some("machine-check"),
    ),
    (
        Kind::MachineCheckCorrected,
        r"Machine check events logged",
        &["achine check"],
        None,
    ),
    (
        Kind::ListCorruption,
        r"list_(?:del|add) corruption",
        &["corruption"],
        Some("list-corruption"),
    ),
    (
        Kind::SlabObjectsRemaining,
        r"Objects remaining in kmalloc|Slab cache still has objects",
        &["Objects remaining", "still has objects"],
        Some("slab-objects-remaining"),
    ),
    (
        Kind::AllocationFailure,
        r"page allocation failure|SLUB: Unable to allocate memory on node",
        &["page allocation failure", "Unable to allocate memory"],
        Some("page-allocation-failure"),
    ),
    (Kind::MemcgCache, r"cache: \S+\(\d+:", &["cache: "], None),
    (
        Kind::Warning,
        r"WARNING: (?:CPU: \d+ PID: \d+ )?at ",
        &["WARNING:"],
        Some("kernel-warning"),
    ),
    (
        Kind::RcuStall,
        r"detected stalls? on CPU|self-detected stall on CPU|rcu_sched kthread starved",
        &["detected stall", "kthread starved"],
        Some("rcu-stall"),
    ),
    (
        Kind::DependencyFailed,
        r"Dependency failed for \S",
        &["Dependency failed"],
        None,
    ),
    (
        Kind::DeviceTimeout,
        r"Timed out waiting for device",
        &["Timed out waiting"],
        None,
    ),
    (
        Kind::MountFailed,
        r"Failed to mount \S",
        &["Failed to mount"],
        None,
    ),
    (
        Kind::EmergencyMode,
        r"You are in emergency mode|Welcome to emergency mode|dropped into an emergency shell|Give root password for maintenance",
        &["mergency", "for maintenance"],
        None,
    ),
    (
        Kind::FsckFailed,
        r"(?i)run fsck manually|requires a manual fsck|fsck (?:exited with status code [248]|failed)|wrong fs type, bad option",
        &["fsck", "wrong fs type"],
        None,
    ),
    (
        Kind::XfsCorruption,
        r"XFS\b.*(?:[Cc]orruption (?:of in-memory data )?(?:detected|warning)|Internal error|run xfs_repair|log mount failed)",
        &["XFS"],
        None,
    ),
    (
        Kind::MkinitcpioNotFound,
        r"ERROR: device '[^']*' not found\. Skipping fsck",
        &["fsck"],
        None,
    ),
    (
        Kind::GrubError,
        r"error: (?:file [`'][^'`]+' not found|you need to load the kernel first|.*bad shim signature|.*has invalid signature|no such partition|unknown filesystem|no such device)",
        &["error: "],
        None,
    ),
    (
        Kind::GrubRescue,
        r"grub rescue>|Entering rescue mode",
        &["rescue"],
        None,
    ),
    (
        Kind::UefiBoot,
        r"BdsDxe: (?:failed to load|starting) Boot",
        &["BdsDxe"],
        None,
    ),
    (
        Kind::NoBootable,
        r"No bootable (?:option or )?device",
        &["No bootable"],
        None,
    ),
    (
        Kind::SecureBoot,
        r"Security (?:Policy )?Violation",
        &["Violation"],
        None,
    ),
    (
        Kind::SelinuxPolicy,
        r"Failed to load SELinux policy|SELinux policy load failed",
        &["SELinux"],
        None,
    ),
    (
        Kind::NoSpace,
        r"No space left on device",
        &["No space left"],
        None,
    ),
    (
        Kind::TaintingModule,
        r"loading out-of-tree module taints kernel|module verification failed: signature|module license '[^']*' taints kernel",
        &["taint"],
        None,
    ),
    (
        Kind::CpuLine,
        r"[Cc]omm: .*(?:Not tainted|Tainted: )",
        &["Tainted", "taint"],
        None,
    ),
    (
        Kind::HardwareName,
        r"^Hardware name: ",
        &["Hardware "],
        None,
    ),
    (
        Kind::CallTrace,
        r"^(?:Call Trace|Call trace|Backtrace):?",
        &["Call Trace", "Call trace", "Backtrace"],
        None,
    ),
    (
        Kind::Frame,
        r"\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+",
        &["+0x"],
        None,
    ),
    (
        Kind::ModulesLinked,
        r"Modules linked in:",
        &["Modules linked in"],
        None,
    ),
    (Kind::EndTrace, r"---\[ end trace", &["[ end trace"], None),
];

/// The kinds of one line, in `PATTERNS` order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineKinds(u64);

impl LineKinds {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Each kind with the finding its line records when it is a bare crash
    /// header (see `PATTERNS`).
    pub fn iter(self) -> impl Iterator<Item = (Kind, Option<&'static str>)> {
        (0..PATTERNS.len())
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(|i| (PATTERNS[i].0, PATTERNS[i].3))
    }
}

/// Compiled patterns, built once.
pub struct Engine {
    /// The union of the patterns' literals, searched over whole chunks.
    pub keywords: AhoCorasick,
    /// The same literals, all occurrences in one line (overlapping).
    line_literals: AhoCorasick,
    /// For each literal of `line_literals`, the patterns (bit per index) that name it.
    literal_patterns: Vec<u64>,
    patterns: Vec<Regex>,
    pub unknown_block: Regex,
    pub root_device: Regex,
    pub exit_code: Regex,
    pub kernel_bug_at: Regex,
    pub soft_lockup: Regex,
    pub hung_task: Regex,
    pub alert_device: Regex,
    pub dracut_device: Regex,
    pub cmdline_root: Regex,
    /// The stages before and around the root mount (`boot/stages.rs`).
    pub stage: StageRegexes,
}

/// Values read from the lines of the stages that stop a boot without a panic.
pub struct StageRegexes {
    pub dependency: Regex,
    pub device_timeout: Regex,
    pub mount_failed: Regex,
    pub mkinitcpio_device: Regex,
    pub grub_file: Regex,
    pub bds: Regex,
    pub fs_device: Regex,
}

impl StageRegexes {
    fn new(compile: impl Fn(&str) -> Result<Regex>) -> Result<Self> {
        Ok(Self {
            dependency: compile(r"Dependency failed for (.+?)\.?\s*$")?,
            device_timeout: compile(
                r"Timed out waiting for device (\S+?)\.?(?:\s+-\s+(\S+?)\.?)?\s*$",
            )?,
            mount_failed: compile(r"Failed to mount '?([^'\s]+?)'?\.?(?:\s|$)")?,
            mkinitcpio_device: compile(r"ERROR: device '([^']*)' not found")?,
            grub_file: compile(r"file [`']([^'`]+)' not found")?,
            bds: compile(
                r#"BdsDxe: (failed to load|starting) (Boot\w+)(?: "([^"]*)")?[^:]*(?::\s*(.*?))?\s*$"#,
            )?,
            fs_device: compile(r"(?:XFS \(([^)]+)\)|(/dev/[\w/.-]+?):?\s)")?,
        })
    }
}

/// The union of the patterns' literals, each once, in table order.
fn literals() -> Vec<&'static str> {
    let mut literals: Vec<&str> = Vec::new();
    for literal in PATTERNS
        .iter()
        .flat_map(|(_, _, literals, _)| literals.iter())
    {
        if !literals.contains(literal) {
            literals.push(literal);
        }
    }
    teddy_order(literals)
}

/// Buckets of the packed (Teddy) searcher that `keywords` runs on: the
/// literal at index `i` goes to bucket `15 - i % 16` (aho-corasick 1.1), and
/// a bucket's literals share one nibble mask per position, so that literals
/// with unlike prefixes in one bucket let through many false candidates.
/// Sorting by the third byte, then the first two, and placing neighbours of
/// that order in the same bucket keeps each bucket's masks narrow: on the
/// benchmark logs this halves the prefilter's instructions against table
/// order. Only speed depends on it; any order finds the same lines.
fn teddy_order(mut literals: Vec<&'static str>) -> Vec<&'static str> {
    const BUCKETS: usize = 16;
    literals.sort_by_key(|literal| {
        let bytes = literal.as_bytes();
        (bytes.get(2).copied(), bytes.get(..2).map(<[u8]>::to_vec))
    });
    let count = literals.len();
    let slots = (0..BUCKETS)
        .flat_map(|bucket| (0..count).filter(move |index| BUCKETS - 1 - index % BUCKETS == bucket));
    let mut ordered = vec![""; count];
    for (literal, slot) in literals.into_iter().zip(slots) {
        ordered[slot] = literal;
    }
    ordered
}

impl Engine {
    pub fn new() -> Result<Self> {
        let literals = literals();
        let compile = |pattern: &str| {
            Regex::new(pattern).with_context(|| format!("compiling pattern {pattern:?}"))
        };
        let literal_patterns = literals
            .iter()
            .map(|literal| {
                PATTERNS
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, _, names, _))| names.contains(literal))
                    .fold(0u64, |mask, (index, _)| mask | 1 << index)
            })
            .collect();
        Ok(Self {
            // Leftmost-first lets the SIMD literal searcher report matches
            // without a second automaton pass.
            keywords: AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&literals)
                .context("compiling the keyword filter")?,
            line_literals: AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::DFA))
                .build(&literals)
                .context("compiling the per-line literal matcher")?,
            literal_patterns,
            patterns: PATTERNS
                .iter()
                .map(|(_, pattern, _, _)| compile(pattern))
                .collect::<Result<_>>()?,
            unknown_block: compile(r"unknown-block\((\d+),(\d+)\)")?,
            root_device: compile(r#"Cannot open root device "?([^"\s]+)"?"#)?,
            exit_code: compile(r"exitcode=(0x[0-9a-fA-F]+)")?,
            kernel_bug_at: compile(r"kernel BUG at ([^\s!]+?)(?::(\d+))?!?(?:\s|$)")?,
            soft_lockup: compile(r"CPU#?(\d+) stuck for (\d+)s")?,
            hung_task: compile(r"task (\S+?):?(\d+)? blocked for more than (\d+) seconds")?,
            alert_device: compile(r"ALERT!\s+(\S+) does not exist")?,
            dracut_device: compile(r"Warning: (/dev/\S+) does not exist")?,
            cmdline_root: compile(r"(?:^|\s)root=(\S+)")?,
            stage: StageRegexes::new(compile)?,
        })
    }

    /// The kinds of a message: the patterns whose literals occur in it and
    /// that match it.
    pub fn classify(&self, text: &str) -> LineKinds {
        let candidates = self
            .line_literals
            .find_overlapping_iter(text)
            .fold(0u64, |mask, hit| {
                mask | self.literal_patterns[hit.pattern().as_usize()]
            });
        let mut kinds = 0u64;
        let mut rest = candidates;
        while rest != 0 {
            let index = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if self.patterns[index].is_match(text) {
                kinds |= 1 << index;
            }
        }
        LineKinds(kinds)
    }
}

/// Static description of a finding id.
pub struct FindingInfo {
    pub id: &'static str,
    pub title: &'static str,
    /// Severity when the boot panicked because of it (or always, for boot failures).
    pub severity: Severity,
    /// Severity when the system survived it (no panic attributable to it).
    pub survived: Severity,
    /// Lower ranks are reported first.
    pub rank: u32,
    pub explanation: &'static str,
    /// (recipe id, why)
    pub recipes: &'static [(&'static str, &'static str)],
    /// Crash reports whose generic `oops` finding is superseded by this one.
    pub oops_family: bool,
}

macro_rules! finding {
    ($id:literal, $sev:ident / $surv:ident, $rank:literal, $oops:literal, $title:literal, $expl:literal, [$(($r:literal, $why:expr)),* $(,)?]) => {
        FindingInfo {
            id: $id,
            title: $title,
            severity: Severity::$sev,
            survived: Severity::$surv,
            rank: $rank,
            explanation: $expl,
            recipes: &[$(($r, $why)),*],
            oops_family: $oops,
        }
    };
}

pub const OLDER_KERNEL_WHY: &str =
    "boot the previous kernel, which did not crash, until a fixed kernel is installed";

pub static FINDINGS: &[FindingInfo] = &[
    finding!("sysrq-crash", Info / Info, 5, true,
        "Crash triggered on purpose through SysRq",
        "Someone (or a kdump test) wrote 'c' to /proc/sysrq-trigger or sent SysRq-C; the kernel crashed as requested. Nothing is broken; no repair is needed.",
        []),
    finding!("initramfs-missing", Critical / Critical, 30, false,
        "No initramfs: the kernel cannot mount the root filesystem (unknown-block(0,0))",
        "The kernel found no block device for root= (device 0,0). Almost always the initramfs for this kernel is missing, empty or lacks the storage drivers (Hyper-V storvsc, virtio, NVMe), typically after an interrupted kernel update.",
        [("rebuild-initramfs", "regenerate the initramfs for this kernel with the storage drivers"),
         ("older-kernel", "boot a kernel whose initramfs is intact")]),
    finding!("root-device-unavailable", Critical / Critical, 31, false,
        "The kernel cannot mount the root filesystem",
        "The root device exists but could not be mounted: wrong root= device or filesystem type, a corrupted filesystem, or a driver missing from the initramfs.",
        [("fix-root-fs", "reconcile root= with the real filesystem and check it"),
         ("rebuild-initramfs", "make sure the filesystem and storage drivers are in the initramfs")]),
    finding!("root-device-not-found", Critical / Critical, 32, false,
        "The kernel cannot open the root device",
        "The device named by root= does not exist when the kernel tries to mount it: the root= value is wrong, or the initramfs does not contain the drivers to see the disk.",
        [("fix-root-fs", "point root= at the filesystem that really exists"),
         ("rebuild-initramfs", "include the storage drivers in the initramfs")]),
    finding!("dracut-root-not-found", Critical / Critical, 33, false,
        "dracut could not find the root filesystem and dropped to its emergency shell",
        "The dracut initramfs waited for the root device (root=, rd.lvm.lv=, UUIDs) and gave up: the device name or UUID in the boot configuration or fstab does not match the disk, an LV is missing, or the initramfs lacks the storage driver.",
        [("fix-root-fs", "reconcile root=, rd.lvm.lv= and fstab with the real UUIDs and LVs"),
         ("rebuild-initramfs", "regenerate the initramfs with the storage and LVM modules")]),
    finding!("initramfs-root-not-found", Critical / Critical, 34, false,
        "initramfs-tools could not find the root device and dropped to a shell",
        "The initramfs (initramfs-tools) gave up waiting for the root device named by root= (often a UUID that changed or an LV that is not activated) and started a BusyBox shell.",
        [("fix-root-fs", "point root= and fstab at the real UUID/LV"),
         ("rebuild-initramfs", "regenerate the initramfs with the storage drivers")]),
    finding!("init-killed", Critical / Critical, 36, false,
        "The init process died (Attempted to kill init)",
        "PID 1 exited or crashed, so the kernel panicked. Common causes: /sbin/init or a library it needs is missing or corrupt (exit code 0x7f00 = 127), the initramfs init failed (0x100 = exit 1), SELinux or a damaged root filesystem (0xb = SIGSEGV), or a kernel bug.",
        [("older-kernel", "if this started after a kernel update, boot the previous kernel"),
         ("rebuild-initramfs", "a broken initramfs /init is a frequent cause"),
         ("fix-root-fs", "check the root filesystem for damage")]),
    finding!("no-init-found", Critical / Critical, 37, false,
        "The kernel found no init program to run",
        "Neither the initramfs /init nor /sbin/init could be executed: the root filesystem is not the expected one, /sbin/init is missing, or the initramfs is damaged.",
        [("rebuild-initramfs", "a damaged initramfs has no /init"),
         ("fix-root-fs", "root= may point at the wrong filesystem")]),
    finding!("oom-panic", Critical / Critical, 40, false,
        "Out of memory with vm.panic_on_oom enabled",
        "The system ran out of memory and, because vm.panic_on_oom is set, the kernel panicked instead of killing a process.",
        [("panic-on-oom", "set vm.panic_on_oom=0 so the OOM killer frees memory instead of panicking")]),
    finding!("oom-deadlock", Critical / Critical, 41, false,
        "Out of memory and no process could be killed",
        "The kernel ran out of memory and found no killable process (every candidate is protected with oom_score_adj -1000 or memory is exhausted by the kernel itself), so it panicked. Give the VM more memory or lift the OOM protection of the big consumers.",
        [("panic-autoreboot", "reboot automatically after such a panic instead of hanging")]),
    finding!("machine-check", Critical / Warning, 45, false,
        "Hardware machine-check error",
        "The CPU reported a machine-check exception: a hardware (or virtual hardware) error. No change to the disk repairs this; redeploy or move the VM to other hardware.",
        [("enable-kdump", "capture a dump if it happens again")]),
    finding!("nmi-io-check", Critical / Error, 50, false,
        "NMI: I/O channel check (IOCK) error",
        "The platform raised an I/O-check NMI (a hardware or hypervisor-reported bus error). With kernel.panic_on_io_nmi set the kernel panics.",
        [("panic-knobs", "review kernel.panic_on_io_nmi")]),
    finding!("nmi-unknown", Critical / Warning, 51, false,
        "NMI received for unknown reason",
        "A non-maskable interrupt arrived that no driver claimed (\"Dazed and confused\"). On a VM this is usually an NMI injected by the host or the portal's serial console; with kernel.unknown_nmi_panic it becomes a panic.",
        [("panic-knobs", "review kernel.unknown_nmi_panic and kernel.panic_on_unrecovered_nmi")]),
    finding!("nmi-unrecovered", Critical / Error, 52, false,
        "Unrecovered NMI (PCI system error)",
        "A PCI system error (SERR) or otherwise unrecoverable NMI was raised; with kernel.panic_on_unrecovered_nmi the kernel stops.",
        [("panic-knobs", "review kernel.panic_on_unrecovered_nmi")]),
    finding!("list-corruption", Critical / Error, 55, true,
        "Kernel list corruption (list_del/list_add corruption)",
        "A kernel linked list was found corrupted: memory corruption by a kernel bug or a faulty module. Several distribution kernels had such bugs (see known-bug findings).",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("kernel-bug", Critical / Error, 60, true,
        "Kernel BUG assertion",
        "The kernel hit a BUG() assertion: an internal consistency check failed. This is a kernel or module bug, not a configuration problem.",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("null-pointer-dereference", Critical / Error, 61, true,
        "NULL pointer dereference in the kernel",
        "Kernel code dereferenced a NULL pointer: a bug in the kernel or in the module named in the RIP/call trace.",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("page-fault", Critical / Error, 62, true,
        "Kernel page fault (unable to handle paging request)",
        "Kernel code accessed an invalid address: a kernel or module bug, or memory corruption.",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("general-protection-fault", Critical / Error, 63, true,
        "General protection fault in the kernel",
        "Kernel code used a non-canonical or forbidden address: typically use-after-free or memory corruption in the kernel or a module.",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("divide-error", Critical / Error, 64, true,
        "Divide error in the kernel",
        "Kernel code divided by zero. Known in some CPU-frequency drivers on VMs (see known-bug findings).",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("oops", Critical / Error, 65, true,
        "Kernel oops",
        "The kernel detected an internal error (oops). Oopses after a kernel update usually mean a regression in that kernel or a module built for another kernel.",
        [("older-kernel", OLDER_KERNEL_WHY)]),
    finding!("hard-lockup", Critical / Error, 70, false,
        "Hard lockup: a CPU stopped responding to interrupts",
        "The NMI watchdog found a CPU spinning with interrupts disabled. On VMs this is often a starved vCPU on an overloaded host; with kernel.hardlockup_panic it becomes a panic.",
        [("panic-knobs", "review kernel.hardlockup_panic, kernel.nmi_watchdog and kernel.watchdog_thresh")]),
    finding!("soft-lockup", Critical / Warning, 71, false,
        "Soft lockup: a CPU was stuck in kernel mode",
        "A CPU ran kernel code without scheduling for longer than the watchdog threshold. On VMs this is often vCPU steal time from the host rather than a kernel bug; with kernel.softlockup_panic it becomes a panic.",
        [("panic-knobs", "review kernel.softlockup_panic and kernel.watchdog_thresh")]),
    finding!("hung-task", Critical / Warning, 72, false,
        "Hung task: a process blocked in the kernel for too long",
        "A task stayed in uninterruptible sleep (usually waiting for I/O) longer than kernel.hung_task_timeout_secs; slow or lost storage is the usual cause. With kernel.hung_task_panic it becomes a panic.",
        [("panic-knobs", "review kernel.hung_task_panic and kernel.hung_task_timeout_secs")]),
    finding!("rcu-stall", Critical / Warning, 73, false,
        "RCU stall detected",
        "A CPU did not pass through an RCU quiescent state for a long time: a stuck CPU, vCPU starvation on the host, or a kernel bug. With kernel.panic_on_rcu_stall it becomes a panic.",
        [("panic-knobs", "review kernel.panic_on_rcu_stall")]),
    finding!("slab-objects-remaining", Error / Error, 75, false,
        "Slab cache leak when a memory cgroup was destroyed (kmem accounting)",
        "Kernel objects were left in a per-cgroup kmalloc cache when it was destroyed. On RHEL/CentOS 7 kernels the kernel-memory accounting of memory cgroups leaks this way until allocations fail; booting with cgroup.memory=nokmem avoids it.",
        [("cgroup-nokmem", "disable kernel-memory accounting of memory cgroups")]),
    finding!("memcg-allocation-failure", Error / Error, 76, false,
        "Memory cgroup allocation failures (kmem accounting)",
        "Allocations in per-cgroup kernel caches failed although the system had memory: the kernel-memory accounting of memory cgroups on RHEL/CentOS 7 kernels exhausts its caches (or cgroup IDs). Booting with cgroup.memory=nokmem avoids it.",
        [("cgroup-nokmem", "disable kernel-memory accounting of memory cgroups")]),
    finding!("page-allocation-failure", Warning / Warning, 77, false,
        "Kernel page allocation failure",
        "The kernel could not satisfy a memory allocation (often a high-order or atomic one under memory pressure). Usually harmless by itself; repeated failures point at memory pressure or fragmentation.",
        []),
    finding!("oom-kill", Error / Warning, 80, false,
        "The OOM killer killed processes",
        "The system (or a memory cgroup) ran out of memory and the kernel killed a process to recover. The VM may need more memory or a service may leak memory.",
        []),
    finding!("faulty-module", Critical / Warning, 20, false,
        "A third-party (out-of-tree/unsigned) module is in the crash trace",
        "The crashing code path runs through a module that taints the kernel (out-of-tree 'O', unsigned 'E' or proprietary 'P'); such modules built for another kernel or with bugs are a common cause of panics after a kernel update. Keep it from loading at boot.",
        [("remove-faulty-modules", "blacklist the module, keep it out of the initramfs and boot without it")]),
    finding!("kernel-warning", Warning / Warning, 90, false,
        "Kernel warning",
        "The kernel printed a WARNING with a stack trace: something unexpected that it survived. Only a problem with kernel.panic_on_warn set.",
        []),
    finding!("uefi-boot-failed", Critical / Critical, 21, false,
        "The UEFI firmware found nothing it could boot",
        "The firmware's boot manager (BdsDxe) could not load the boot entries it tried, or found no bootable option: the EFI system partition is missing or damaged, its boot loader file (shim/GRUB) is gone, or the NVRAM boot entry points at a file that does not exist.",
        [("bootloader", "put the target's signed shim and GRUB back on the ESP, removable path included")]),
    finding!("secure-boot-refused", Critical / Critical, 22, false,
        "Secure Boot refused to run the boot loader or kernel",
        "A signature check failed under Secure Boot: shim or GRUB refused an unsigned or wrongly signed image (a self-built or third-party kernel, a stale shim revoked by SBAT, a GRUB not signed for this shim).",
        [("bootloader", "put the distribution's signed shim and GRUB back on the ESP")]),
    finding!("bootloader-damaged", Critical / Critical, 23, false,
        "GRUB cannot find its own files and stopped at the rescue prompt",
        "GRUB's core image could not find the partition or filesystem that holds /boot/grub (its modules and grub.cfg): the modules were half-deleted by a failed update, the partition was moved, resized or reformatted, or the boot code on the disk is from another installation.",
        [("bootloader", "run the target's own grub-install onto the disk: boot code, core.img and modules from its packages, all journaled")]),
    finding!("grub-kernel-missing", Critical / Critical, 24, false,
        "The boot entry names a kernel file that does not exist",
        "GRUB could not find the kernel the default entry names (`file not found`, then `you need to load the kernel first`): the kernel was removed or /boot was rebuilt while grub.cfg kept the old entry.",
        [("older-kernel", "make an installed, complete kernel the default entry")]),
    finding!("grub-initrd-missing", Critical / Critical, 25, false,
        "The boot entry names an initramfs file that does not exist",
        "GRUB could not load the initramfs of the default entry, so the kernel starts without one and cannot mount root.",
        [("rebuild-initramfs", "regenerate the missing initramfs for this kernel"),
         ("older-kernel", "or boot a kernel whose initramfs is there")]),
    finding!("initrd-root-not-found", Critical / Critical, 33, false,
        "The initramfs could not find or mount the root filesystem",
        "systemd (or mkinitcpio) in the initramfs waited for the root device and gave up (`Timed out waiting for device`, `Dependency failed for Initrd Root File System`): the root= UUID or LV does not match the disk, the LV is not activated (a stale LVM devices file), or the initramfs lacks the storage driver.",
        [("fix-root-fs", "point root= and fstab at the filesystem really on the disk"),
         ("rebuild-initramfs", "regenerate the initramfs with the storage and LVM modules"),
         ("lvm-devices", "list the disk's PVs in a RHEL 9 LVM devices file (changes nothing when it already does)")]),
    finding!("filesystem-damaged", Critical / Error, 35, false,
        "A filesystem check failed: the filesystem needs repair",
        "fsck found damage it will not fix unattended (`UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY`), or XFS reported metadata corruption, or a filesystem could not be mounted at all (`wrong fs type, bad superblock`). Boot stops until the filesystem is repaired offline.",
        []),
    finding!("selinux-policy-failed", Critical / Critical, 38, false,
        "SELinux policy could not be loaded: the system froze in enforcing mode",
        "systemd (or dracut) could not load the SELinux policy while SELinux is enforcing, and stops the boot (`Failed to load SELinux policy. Freezing.`): the policy package is missing or damaged, or /etc/selinux/config names a policy type that is not installed. Relabeling the filesystem on the next boot repairs wrong labels; a missing policy needs the selinux-policy package reinstalled.",
        [("selinux-relabel", "relabel the whole filesystem on the next boot (/.autorelabel)")]),
    finding!("emergency-mode", Critical / Warning, 39, false,
        "systemd stopped in emergency mode: a filesystem from fstab could not be mounted",
        "A non-root fstab entry (a data disk, /var, /home) did not mount, so local-fs.target failed and systemd started the emergency shell. Usually the disk was detached or its UUID changed and the entry lacks nofail.",
        [("fix-mounts", "check every fstab line against the disk: re-point /boot and the ESP, nofail for missing devices, fix wrong types"),
         ("fix-root-fs", "and point root= and fstab's / at the root filesystem on the disk")]),
    finding!("disk-full", Error / Error, 42, false,
        "A filesystem was full during boot",
        "Services could not write at boot (`No space left on device` from journald, dbus or other services); logins, package tools and services that need to write fail until space is freed.",
        [("free-space", "delete regenerable files (archived journals, package caches, rotated logs)")]),
    finding!("no-kernel-output", Error / Error, 95, false,
        "The console log has no kernel messages: the serial console is off",
        "The log holds no line from the kernel, so it cannot tell why the VM does not boot: the kernel command line has no console=ttyS0 (or GRUB hides everything). Enable the serial console so that the next failure leaves evidence, then look at the target's own logs.",
        [("enable-serial-console", "send kernel and login output to the serial console (console=ttyS0,115200 and serial-getty@ttyS0)")]),
    finding!("kernel-panic", Critical / Critical, 100, false,
        "Kernel panic",
        "The kernel panicked; no more specific cause was recognised in the log. If it started after a kernel update, boot the previous kernel; enable kdump to capture the next crash.",
        [("older-kernel", OLDER_KERNEL_WHY),
         ("enable-kdump", "capture a crash dump the next time it happens")]),
];

/// The findings of the stages that stop a boot without a panic; their
/// corpus is `tests/fixtures/boot-failures`.
pub const STAGE_IDS: &[&str] = &[
    "uefi-boot-failed",
    "secure-boot-refused",
    "bootloader-damaged",
    "grub-kernel-missing",
    "grub-initrd-missing",
    "initrd-root-not-found",
    "filesystem-damaged",
    "selinux-policy-failed",
    "emergency-mode",
    "disk-full",
    "no-kernel-output",
];

pub fn info(id: &str) -> Option<&'static FindingInfo> {
    FINDINGS.iter().find(|f| f.id == id)
}

/// What to do when no recipe repairs a finding (or before one can): the
/// explicit "no recipe: do X" of the stages that have no automatic repair.
pub fn next_step(id: &str, params: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let device = params
        .get("device")
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    Some(match id {
        "filesystem-damaged" => format!(
            "no recipe: repair the filesystem offline with `vmrescue fsck --repair` (e2fsck -y / xfs_repair on every filesystem of the disk{device}); then boot again"
        ),
        "bootloader-damaged" => "bootloader reinstalls GRUB for BIOS with the target's grub-install; when the partition holding /boot was moved or reformatted, fix-mounts and fix-root-fs first; a UEFI GRUB on RHEL needs its grub2-efi and shim packages reinstalled in a chroot".into(),
        "uefi-boot-failed" => "bootloader restores shim and GRUB from Debian-family packages, or systemd-boot with the target's bootctl; on RHEL reinstall the shim-x64 and grub2-efi-x64 packages in a chroot (their files live on the ESP only)".into(),
        "secure-boot-refused" => "bootloader puts the distribution's signed shim and GRUB back; a self-built or unsigned kernel needs `older-kernel` (or its module signed), or turn Secure Boot off for the VM while you repair it".into(),
        "selinux-policy-failed" => "if relabeling is not enough, reinstall the selinux-policy package in a chroot, or boot once with enforcing=0 to repair it".into(),
        "initrd-root-not-found" => "if fix-root-fs and rebuild-initramfs find nothing to change on a RHEL 9 LVM root, check /etc/lvm/devices/system.devices against the disk's PV".into(),
        "grub-kernel-missing" => "older-kernel is not run unattended: choose it with `vmrescue repair older-kernel` (or reinstall the kernel package in a chroot)".into(),
        "disk-full" => "free-space deletes regenerable files only after --param confirm=true; deleted files cannot be restored by undo".into(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::RegexSet;

    #[test]
    fn every_pattern_compiles_and_has_a_keyword_for_its_sample() {
        let engine = Engine::new().unwrap();
        let samples = [
            "Linux version 5.4.0-105-generic (buildd@x) #119-Ubuntu",
            "Command line: BOOT_IMAGE=/vmlinuz root=/dev/sda1",
            "------------[ cut here ]------------",
            "---[ end trace 0000000000000000 ]---",
            "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 5.4.0 #1",
            "Hardware name: Microsoft Corporation Virtual Machine/Virtual Machine",
            "Call Trace:",
            "dump_stack+0x6d/0x8b",
            "Modules linked in: xfs",
            "eudp: loading out-of-tree module taints kernel.",
            "Kernel panic - not syncing: Fatal exception",
            "VFS: Unable to mount root fs on unknown-block(0,0)",
            "VFS: Cannot open root device \"sda1\" or unknown-block(0,0): error -6",
            "Kernel panic - not syncing: No working init found.",
            "dracut-initqueue[295]: Warning: Could not boot.",
            "dracut-initqueue[295]: Warning: /dev/mapper/rhel-root does not exist",
            "dracut-initqueue[295]: Warning: dracut-initqueue timeout - starting timeout scripts",
            "Starting Dracut Emergency Shell...",
            "ALERT!  UUID=1234 does not exist.  Dropping to a shell!",
            "Gave up waiting for root device.  Common problems:",
            "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
            "Oops: 0002 [#1] SMP",
            "sysrq: SysRq : Trigger a crash",
            "kernel BUG at mm/slub.c:3873!",
            "BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "BUG: unable to handle page fault for address: ffffc90000a3c000",
            "general protection fault: 0000 [#1] SMP PTI",
            "divide error: 0000 [#1] SMP",
            "invalid opcode: 0000 [#1] SMP",
            "watchdog: BUG: soft lockup - CPU#2 stuck for 23s! [kworker/2:1:123]",
            "NMI watchdog: Watchdog detected hard LOCKUP on cpu 3",
            "INFO: task jbd2/sda1-8:123 blocked for more than 120 seconds.",
            "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled",
            "Kernel panic - not syncing: System is deadlocked on memory",
            "Out of memory: Killed process 123 (java)",
            "NMI: IOCK error (debug interrupt?) for reason 71 on CPU 0.",
            "Uhhuh. NMI received for unknown reason 30 on CPU 0.",
            "NMI: PCI system error (SERR) for reason a1 on CPU 0.",
            "Kernel panic - not syncing: NMI: Not continuing",
            "mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 4: b200000000070f0f",
            "mce: [Hardware Error]: Machine check events logged",
            "list_del corruption. prev->next should be ffff88, but was dead000000000100",
            "BUG kmalloc-64 (Tainted: G B): Objects remaining in kmalloc-64 on __kmem_cache_shutdown()",
            "SLUB: Unable to allocate memory on node -1 (gfp=0xd0)",
            "  cache: kmalloc-64(5:docker-1.scope), object size: 64",
            "WARNING: CPU: 1 PID: 1 at net/core/dev.c:1234 foo+0x1/0x2",
            "rcu: INFO: rcu_sched self-detected stall on CPU",
            "[DEPEND] Dependency failed for Initrd Root File System.",
            "[ TIME ] Timed out waiting for device dev-disk-by\\x2duuid-1234.device.",
            "[FAILED] Failed to mount /data.",
            "You are in emergency mode. After logging in, type \"journalctl -xb\"",
            "/dev/sda1: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.",
            "XFS (sda2): Corruption detected. Unmount and run xfs_repair",
            "ERROR: device 'UUID=1234' not found. Skipping fsck.",
            "error: no such partition.",
            "grub rescue>",
            "BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Not Found",
            "No bootable option or device was found.",
            "Verification failed: (0x1A) Security Violation",
            "systemd[1]: Failed to load SELinux policy. Freezing.",
            "systemd-journald[248]: Failed to create new system journal: No space left on device",
        ];
        assert!(samples.len() >= PATTERNS.len() - 2);
        assert!(PATTERNS.len() <= 64, "kinds of a line are a u64 bit set");
        assert!(literals().len() <= 64, "keep the prefilter small (Teddy)");
        for sample in samples {
            assert!(
                engine.keywords.is_match(sample.as_bytes()),
                "no keyword in {sample:?}"
            );
            assert!(
                !engine.classify(sample).is_empty(),
                "no pattern for {sample:?}"
            );
        }
    }

    /// Trying only the patterns whose literals occur in a line must find what
    /// trying every pattern finds, on every line of the real logs.
    #[test]
    fn literal_preselection_finds_what_all_patterns_find_on_the_corpus() {
        let engine = Engine::new().unwrap();
        let all = RegexSet::new(PATTERNS.iter().map(|(_, p, _, _)| *p)).unwrap();
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut lines_checked = 0;
        for dir in ["panics", "boot-logs"] {
            for entry in std::fs::read_dir(fixtures.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                for raw in String::from_utf8_lossy(&bytes).lines() {
                    let text = super::super::line::message(raw).text;
                    let expected: Vec<usize> = all.matches(text).iter().collect();
                    let found = engine.classify(text);
                    let found: Vec<usize> = (0..PATTERNS.len())
                        .filter(|i| found.0 & (1 << i) != 0)
                        .collect();
                    assert_eq!(found, expected, "{}: {raw:?}", path.display());
                    if !expected.is_empty() {
                        assert!(engine.keywords.is_match(raw.as_bytes()), "{raw:?}");
                    }
                    lines_checked += 1;
                }
            }
        }
        assert!(lines_checked > 1000, "{lines_checked}");
    }

    #[test]
    fn every_header_finding_is_a_described_finding() {
        let headers: Vec<_> = PATTERNS.iter().filter_map(|p| p.3).collect();
        assert!(!headers.is_empty());
        for id in headers {
            assert!(info(id).is_some(), "{id} has no FindingInfo");
        }
    }

    #[test]
    fn every_finding_id_is_kebab_case_and_unique() {
        let mut ids: Vec<_> = FINDINGS.iter().map(|f| f.id).collect();
        for id in &ids {
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{id}"
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), FINDINGS.len());
    }
}
