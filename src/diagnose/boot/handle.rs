//! What one classified line does to the boot and the crash event being built.
//!
//! A kernel prints a crash as a burst of lines: a header (`BUG:`, `Oops:`,
//! `general protection fault`…), then the CPU/taint line, registers, the call
//! trace and the module list, and maybe a panic. The handlers below attach
//! each of those lines to the event its header opened, so that findings can
//! later quote the header, the faulting function and the modules in one place.

use std::collections::BTreeMap;

use super::super::line::MAX_LINE_CHARS;
use super::super::parse;
use super::super::signatures::{Engine, Kind};
use super::{params, truncate, Boot, LineRef, MAX_TAINTING_MODULES, PANIC_GAP};

/// Dispatches one kind of one line. `header_finding` is the finding the
/// signature table gives a bare crash header (see `signatures::PATTERNS`).
pub(super) fn handle(
    engine: &Engine,
    boot: &mut Boot,
    (kind, header_finding): (Kind, Option<&'static str>),
    line: &LineRef<'_>,
) {
    match kind {
        Kind::BootVersion | Kind::CommandLine | Kind::KernelCommandLine | Kind::HardwareName => {
            boot_line(boot, kind, line.text)
        }
        Kind::CutHere
        | Kind::EndTrace
        | Kind::CpuLine
        | Kind::CallTrace
        | Kind::Frame
        | Kind::ModulesLinked => event_line(boot, kind, line),
        Kind::TaintingModule => tainting_module(boot, line),
        Kind::Panic => panic_line(boot, line),
        Kind::UnknownBlock
        | Kind::CannotOpenRoot
        | Kind::NoInit
        | Kind::DracutCouldNotBoot
        | Kind::DracutDoesNotExist
        | Kind::DracutTimeout
        | Kind::DracutEmergency
        | Kind::InitramfsAlert
        | Kind::InitramfsGaveUp
        | Kind::KillInit => root_failure(engine, boot, kind, line),
        Kind::SysRq
        | Kind::KernelBug
        | Kind::Oops
        | Kind::InvalidOpcode
        | Kind::SoftLockup
        | Kind::HungTask => header_with_params(engine, boot, kind, line),
        Kind::DependencyFailed
        | Kind::DeviceTimeout
        | Kind::MountFailed
        | Kind::EmergencyMode
        | Kind::FsckFailed
        | Kind::XfsCorruption
        | Kind::MkinitcpioNotFound
        | Kind::GrubError
        | Kind::GrubRescue
        | Kind::UefiBoot
        | Kind::NoBootable
        | Kind::SecureBoot
        | Kind::SelinuxPolicy
        | Kind::NoSpace => super::stages::stage_line(engine, boot, kind, line),
        Kind::OomPanic
        | Kind::OomDeadlock
        | Kind::NmiNotContinuing
        | Kind::MachineCheckCorrected
        | Kind::MemcgCache => aftermath(boot, kind, line),
        // Bare crash headers: the finding id comes from the signature table.
        Kind::NullDeref
        | Kind::PageFault
        | Kind::Gpf
        | Kind::DivideError
        | Kind::ListCorruption
        | Kind::HardLockup
        | Kind::RcuStall
        | Kind::OomKill
        | Kind::NmiIoCheck
        | Kind::NmiUnknown
        | Kind::NmiSerr
        | Kind::MachineCheck
        | Kind::SlabObjectsRemaining
        | Kind::AllocationFailure
        | Kind::Warning => {
            if let Some(id) = header_finding {
                let event = boot.event_for_header(line.line_number, line.timestamp, kind);
                set_header(boot, event, line.text);
                boot.record(id, line, Some(event), BTreeMap::new());
            }
        }
    }
}

/// Lines that describe the boot itself (version, command line, machine).
fn boot_line(boot: &mut Boot, kind: Kind, text: &str) {
    match kind {
        Kind::BootVersion => {
            boot.saw_version = true;
            if let Some((version, build)) = parse::version_line(text) {
                boot.kernel_version = Some(version);
                boot.kernel_build = build;
            }
        }
        Kind::CommandLine | Kind::KernelCommandLine => {
            // Both are remembered separately because each one, seen a second
            // time, marks a new boot (see `LogState::process`); x86 prints
            // both once per boot, other architectures only the second.
            if kind == Kind::CommandLine {
                boot.saw_command_line = true;
            } else {
                boot.saw_kernel_command_line = true;
            }
            if boot.command_line.is_none() {
                let value = text.split_once(": ").map_or("", |(_, v)| v);
                boot.command_line = Some(truncate(value, MAX_LINE_CHARS));
            }
        }
        Kind::HardwareName => {
            let value = text.trim_start_matches("Hardware name:").trim();
            boot.hardware_name = Some(truncate(value, 256));
        }
        _ => {}
    }
}

/// The structure lines of a crash report. `cut here` starts a report (the
/// header line after it joins that event); the others only fill the current
/// event (one whose last line is near), so a call trace with no header
/// before it makes no event.
fn event_line(boot: &mut Boot, kind: Kind, line: &LineRef<'_>) {
    let line_number = line.line_number;
    match kind {
        Kind::CutHere => {
            boot.event_for_header(line_number, line.timestamp, kind);
        }
        Kind::EndTrace => {
            if let Some(current) = boot.current_event(line_number) {
                boot.events[current].ended = true;
                boot.events[current].last_line = line_number;
            }
        }
        Kind::CpuLine => cpu_line(boot, line),
        Kind::CallTrace => {
            if let Some(current) = boot.current_event(line_number) {
                boot.events[current].last_line = line_number;
                boot.events[current].saw_call_trace = true;
            }
        }
        Kind::Frame => frame_line(boot, line),
        Kind::ModulesLinked => modules_linked(boot, line),
        _ => {}
    }
}

fn cpu_line(boot: &mut Boot, line: &LineRef<'_>) {
    let Some(cpu) = parse::cpu_line(line.text) else {
        return;
    };
    // A log cut before `Linux version` still names the kernel here.
    if boot.kernel_version.is_none() {
        boot.kernel_version = Some(cpu.kernel_version.clone());
        boot.kernel_build = cpu.kernel_build.clone();
    }
    if let Some(current) = boot.current_event(line.line_number) {
        let event = &mut boot.events[current];
        event.last_line = line.line_number;
        // The first CPU line is the crashing task's; later ones in the same
        // event (other CPUs' backtraces) do not replace it.
        if event.pid.is_none() {
            event.cpu = cpu.cpu;
            event.pid = cpu.pid;
            event.comm = Some(cpu.comm);
            event.taint = Some(cpu.taint);
            event.kernel_version = Some(cpu.kernel_version);
            event.kernel_build = cpu.kernel_build;
            event.push_context(line.to_evidence());
        }
    }
}

fn frame_line(boot: &mut Boot, line: &LineRef<'_>) {
    let Some(frame) = parse::frame(line.text) else {
        return;
    };
    let Some(current) = boot.current_event(line.line_number) else {
        return;
    };
    let event = &mut boot.events[current];
    event.last_line = line.line_number;
    // Each architecture spells the faulting instruction differently.
    let is_rip = ["RIP", "EIP", "IP:", "pc :", "pc:", "NIP", "PC is at"]
        .iter()
        .any(|prefix| line.text.starts_with(prefix));
    if is_rip {
        if event.rip.is_none() {
            if frame.module.is_some() {
                event.push_context(line.to_evidence());
            }
            event.rip = Some(frame);
        }
    } else if event.frames.len() < parse::MAX_FRAMES {
        // Quote the first frame of each module: that is the line a reader
        // needs to see which driver was on the stack, without every frame.
        if frame.module.is_some()
            && event
                .frames
                .iter()
                .all(|f| f.module.is_none() || f.module != frame.module)
        {
            event.push_context(line.to_evidence());
        }
        event.frames.push(frame);
    }
}

fn modules_linked(boot: &mut Boot, line: &LineRef<'_>) {
    let list = line
        .text
        .split_once("Modules linked in:")
        .map_or("", |(_, l)| l);
    let mut modules = Vec::new();
    parse::linked_modules(list, &mut modules);
    for module in modules.iter().filter(|m| parse::flags_taint(&m.flags)) {
        if boot.tainting.len() < MAX_TAINTING_MODULES {
            boot.tainting.insert(module.name.clone());
        }
    }
    if let Some(current) = boot.current_event(line.line_number) {
        let event = &mut boot.events[current];
        event.last_line = line.line_number;
        if event.modules.is_empty() {
            event.modules = modules;
            event.push_context(line.to_evidence());
        }
    }
}

fn tainting_module(boot: &mut Boot, line: &LineRef<'_>) {
    let Some(name) = parse::tainting_module_name(line.text) else {
        return;
    };
    if boot.tainting.len() < MAX_TAINTING_MODULES {
        boot.tainting.insert(name.to_string());
    }
    let p = params([("module", name.to_string())]);
    boot.record("tainting-module-loaded", line, None, p);
}

fn panic_line(boot: &mut Boot, line: &LineRef<'_>) {
    let text = line.text;
    // The closing `---[ end Kernel panic` repeats the reason: not a new panic.
    if text.contains("end Kernel panic") && boot.panicked {
        return;
    }
    boot.panicked = true;
    let reason = text
        .split_once("not syncing")
        .map(|(_, r)| r.trim_start_matches(':').trim().trim_end_matches(" ]---"))
        .unwrap_or("")
        .to_string();
    // A panic shortly after an event is its consequence ("Fatal exception"
    // after an oops): attach it there so the oops is ranked as the cause.
    let attach = boot.events.len().checked_sub(1).filter(|&last| {
        line.line_number.saturating_sub(boot.events[last].last_line) <= PANIC_GAP
            && boot.events[last].panic_reason.is_none()
    });
    let index = attach.unwrap_or_else(|| boot.new_event(line.line_number, line.timestamp));
    let event = &mut boot.events[index];
    event.ended = false;
    event.last_line = line.line_number;
    event.panic_reason = Some(truncate(&reason, 256));
    event.panic_evidence = Some(line.to_evidence());
    boot.record(
        "kernel-panic",
        line,
        Some(index),
        params([("reason", reason)]),
    );
}

/// The ways a boot fails to find or start its root file system and init.
fn root_failure(engine: &Engine, boot: &mut Boot, kind: Kind, line: &LineRef<'_>) {
    let text = line.text;
    let (id, event, found) = match kind {
        Kind::UnknownBlock => {
            let Some(caps) = engine.unknown_block.captures(text) else {
                return;
            };
            let (major, minor) = (caps[1].to_string(), caps[2].to_string());
            // Block 0,0 means the kernel never got a root device number:
            // nothing in an initramfs named one, usually no initramfs at all.
            let id = if major == "0" && minor == "0" {
                "initramfs-missing"
            } else {
                "root-device-unavailable"
            };
            let mut p = params([("block", format!("{major},{minor}"))]);
            if let Some(root) = root_device(engine, boot, text) {
                p.insert("root".into(), root);
            }
            let event = boot.current_event(line.line_number);
            boot.record(id, line, event, p);
            return;
        }
        Kind::CannotOpenRoot => {
            if engine.unknown_block.is_match(text) {
                return; // handled as UnknownBlock
            }
            let root = root_device(engine, boot, text);
            ("root-device-not-found", None, root.map(|r| ("root", r)))
        }
        Kind::NoInit => ("no-init-found", None, None),
        Kind::DracutCouldNotBoot
        | Kind::DracutDoesNotExist
        | Kind::DracutTimeout
        | Kind::DracutEmergency => {
            let root = capture(&engine.dracut_device, text);
            ("dracut-root-not-found", None, root.map(|r| ("root", r)))
        }
        Kind::InitramfsAlert | Kind::InitramfsGaveUp => {
            let root = capture(&engine.alert_device, text);
            ("initramfs-root-not-found", None, root.map(|r| ("root", r)))
        }
        Kind::KillInit => {
            let code = capture(&engine.exit_code, text);
            let event = boot.events.len().checked_sub(1);
            ("init-killed", event, code.map(|c| ("exitcode", c)))
        }
        _ => return,
    };
    let p = found.map_or_else(BTreeMap::new, |(key, value)| params([(key, value)]));
    boot.record(id, line, event, p);
}

/// Crash headers whose finding carries values read from the header line.
fn header_with_params(engine: &Engine, boot: &mut Boot, kind: Kind, line: &LineRef<'_>) {
    let text = line.text;
    let event = boot.event_for_header(line.line_number, line.timestamp, kind);
    // The SysRq line leaves the event's header to the oops or NULL-pointer
    // line that the crash it triggers prints next.
    if kind != Kind::SysRq {
        set_header(boot, event, text);
    }
    let mut p = BTreeMap::new();
    let id = match kind {
        Kind::SysRq => "sysrq-crash",
        Kind::KernelBug => {
            if let Some(caps) = engine.kernel_bug_at.captures(text) {
                let at = match caps.get(2) {
                    Some(line) => format!("{}:{}", &caps[1], line.as_str()),
                    None => caps[1].to_string(),
                };
                p.insert("at".into(), at);
            }
            "kernel-bug"
        }
        Kind::SoftLockup => {
            if let Some(caps) = engine.soft_lockup.captures(text) {
                p.insert("cpu".into(), caps[1].to_string());
                p.insert("seconds".into(), caps[2].to_string());
            }
            "soft-lockup"
        }
        Kind::HungTask => {
            if let Some(caps) = engine.hung_task.captures(text) {
                p.insert("task".into(), caps[1].to_string());
                p.insert("seconds".into(), caps[3].to_string());
            }
            "hung-task"
        }
        // Oops and InvalidOpcode: the header alone says it all.
        _ => "oops",
    };
    boot.record(id, line, Some(event), p);
}

/// Lines that follow a crash and name its consequence or cause, rather than
/// opening an event of their own.
fn aftermath(boot: &mut Boot, kind: Kind, line: &LineRef<'_>) {
    let last_event = boot.events.len().checked_sub(1);
    match kind {
        Kind::OomPanic => boot.record("oom-panic", line, last_event, BTreeMap::new()),
        Kind::OomDeadlock => boot.record("oom-deadlock", line, last_event, BTreeMap::new()),
        Kind::NmiNotContinuing => {
            // The panic line after an NMI we already classified adds nothing;
            // alone, it is the only trace of an unrecovered NMI.
            let known = ["nmi-io-check", "nmi-unknown", "nmi-unrecovered"]
                .iter()
                .any(|id| boot.hit_counts.contains_key(id));
            if !known {
                boot.record("nmi-unrecovered", line, last_event, BTreeMap::new());
            }
        }
        Kind::MachineCheckCorrected => boot.record(
            "machine-check",
            line,
            None,
            params([("corrected", "true".into())]),
        ),
        // The slab dump's `cache: name(cgroup:…)` line, not any mention.
        Kind::MemcgCache if line.text.starts_with("cache:") || line.text.contains(" cache: ") => {
            boot.record("memcg-cache", line, last_event, BTreeMap::new());
        }
        _ => {}
    }
}

fn capture(pattern: &regex::Regex, text: &str) -> Option<String> {
    pattern.captures(text).map(|caps| caps[1].to_string())
}

fn set_header(boot: &mut Boot, event: usize, text: &str) {
    let event = &mut boot.events[event];
    if event.header.is_none() {
        event.header = Some(truncate(text, 256));
    }
}

/// The root device a failure names, else the one on the boot's command line.
fn root_device(engine: &Engine, boot: &Boot, text: &str) -> Option<String> {
    if let Some(caps) = engine.root_device.captures(text) {
        return Some(caps[1].to_string());
    }
    let cmdline = boot.command_line.as_deref()?;
    engine
        .cmdline_root
        .captures(cmdline)
        .map(|caps| caps[1].to_string())
}
