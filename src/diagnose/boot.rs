//! Per-boot and per-event state built while streaming a log (see `findings` for the ranking).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufRead;

use anyhow::{Context, Result};

use super::known_bugs::{self, CompiledBug};
use super::line::{self, MAX_LINE_CHARS};
use super::parse;
use super::signatures::{Engine, Kind};
use super::{BootSummary, EvidenceLine, Finding, Frame, LinkedModule};

/// Boots kept; older ones are dropped (and counted).
const MAX_BOOTS: usize = 32;
/// Crash events kept per boot; later ones reuse the last slot.
const MAX_EVENTS: usize = 32;
/// Evidence lines kept per finding id and boot.
pub(super) const MAX_EVIDENCE: usize = 8;
const MAX_TAINTING_MODULES: usize = 64;
/// Lines after an event's last line that still belong to it.
const EVENT_GAP: u64 = 60;
/// Lines after an event within which a panic is its consequence.
const PANIC_GAP: u64 = 400;

#[derive(Debug)]
pub(super) struct Hit {
    pub(super) id: &'static str,
    pub(super) evidence: EvidenceLine,
    pub(super) event: Option<usize>,
    pub(super) params: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub(super) struct Event {
    pub(super) first_line: u64,
    pub(super) last_line: u64,
    pub(super) header: Option<String>,
    pub(super) panic_reason: Option<String>,
    pub(super) panic_evidence: Option<EvidenceLine>,
    pub(super) timestamp: Option<f64>,
    pub(super) cpu: Option<u32>,
    pub(super) pid: Option<u32>,
    pub(super) comm: Option<String>,
    pub(super) taint: Option<String>,
    pub(super) kernel_version: Option<String>,
    pub(super) kernel_build: Option<String>,
    pub(super) rip: Option<Frame>,
    pub(super) frames: Vec<Frame>,
    pub(super) modules: Vec<LinkedModule>,
    /// CPU/taint line, RIP line, `Modules linked in:` line, frames naming a module.
    pub(super) context_evidence: Vec<EvidenceLine>,
    pub(super) saw_call_trace: bool,
    pub(super) ended: bool,
}

impl Event {
    /// Still printing header lines (`BUG:`, `Oops:`, `kernel BUG at`…): no
    /// CPU line and no call trace yet. A frame on the header line itself
    /// (`WARNING: … at f+0x1/0x2 [m]`) does not end the header.
    fn fresh(&self) -> bool {
        self.pid.is_none() && !self.saw_call_trace && self.frames.len() <= 1
    }

    fn push_context(&mut self, evidence: EvidenceLine) {
        if self.context_evidence.len() < MAX_EVIDENCE {
            self.context_evidence.push(evidence);
        }
    }

    pub(super) fn functions(&self) -> impl Iterator<Item = &str> {
        self.rip
            .iter()
            .chain(self.frames.iter())
            .map(|frame| parse::base_function(&frame.function))
    }
}

#[derive(Debug)]
pub(super) struct Boot {
    pub(super) index: usize,
    pub(super) source: String,
    pub(super) first_line: u64,
    pub(super) last_line: u64,
    pub(super) kernel_version: Option<String>,
    pub(super) kernel_build: Option<String>,
    pub(super) hardware_name: Option<String>,
    pub(super) command_line: Option<String>,
    pub(super) saw_version: bool,
    pub(super) saw_command_line: bool,
    pub(super) saw_kernel_command_line: bool,
    pub(super) panicked: bool,
    pub(super) tainting: BTreeSet<String>,
    pub(super) events: Vec<Event>,
    pub(super) hits: Vec<Hit>,
    pub(super) hit_counts: BTreeMap<&'static str, u64>,
}

impl Boot {
    fn new(index: usize, source: &str, first_line: u64) -> Self {
        Self {
            index,
            source: source.to_string(),
            first_line,
            last_line: first_line,
            kernel_version: None,
            kernel_build: None,
            hardware_name: None,
            command_line: None,
            saw_version: false,
            saw_command_line: false,
            saw_kernel_command_line: false,
            panicked: false,
            tainting: BTreeSet::new(),
            events: Vec::new(),
            hits: Vec::new(),
            hit_counts: BTreeMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.saw_version
            && !self.saw_command_line
            && !self.saw_kernel_command_line
            && self.events.is_empty()
            && self.hits.is_empty()
            && self.tainting.is_empty()
    }

    fn record(
        &mut self,
        id: &'static str,
        evidence: &LineRef<'_>,
        event: Option<usize>,
        params: BTreeMap<String, String>,
    ) {
        let count = self.hit_counts.entry(id).or_insert(0);
        *count += 1;
        if *count as usize <= MAX_EVIDENCE {
            self.hits.push(Hit {
                id,
                evidence: evidence.to_evidence(),
                event,
                params,
            });
        }
    }

    fn current_event(&mut self, line_number: u64) -> Option<usize> {
        let last = self.events.len().checked_sub(1)?;
        let event = &self.events[last];
        (!event.ended && line_number.saturating_sub(event.last_line) <= EVENT_GAP).then_some(last)
    }

    fn new_event(&mut self, line_number: u64, timestamp: Option<f64>) -> usize {
        let event = Event {
            first_line: line_number,
            last_line: line_number,
            timestamp,
            ..Event::default()
        };
        if self.events.len() >= MAX_EVENTS {
            let last = self.events.len() - 1;
            self.events[last] = event;
            last
        } else {
            self.events.push(event);
            self.events.len() - 1
        }
    }

    /// The event a crash header line belongs to: the current one while it is
    /// still printing its header lines, else a new one.
    fn event_for_header(&mut self, line_number: u64, timestamp: Option<f64>, kind: Kind) -> usize {
        if let Some(current) = self.current_event(line_number) {
            let event = &self.events[current];
            let close = line_number.saturating_sub(event.last_line) <= 12;
            if event.fresh() && (close || kind != Kind::CutHere) {
                self.events[current].last_line = line_number;
                return current;
            }
        }
        self.new_event(line_number, timestamp)
    }
}

pub(super) struct LogState {
    engine: Engine,
    known_bugs: &'static [CompiledBug],
    boots: VecDeque<Boot>,
    boots_dropped: u64,
    next_boot_index: usize,
}

impl LogState {
    pub fn new() -> Result<Self> {
        Ok(Self {
            engine: Engine::new()?,
            known_bugs: known_bugs::embedded()?,
            boots: VecDeque::new(),
            boots_dropped: 0,
            next_boot_index: 0,
        })
    }

    pub fn read_source<R: BufRead>(&mut self, reader: R, source: &str) -> Result<()> {
        self.start_boot(source, 1);
        let mut pending: Option<anyhow::Error> = None;
        let keywords = self.engine.keywords.clone();
        let total = line::scan_keyword_lines(reader, &keywords, |line_number, bytes| {
            let text = line::decode(bytes);
            for segment in text.split('\r') {
                if !segment.trim().is_empty() {
                    self.process(source, line_number, segment);
                }
            }
            Ok(())
        })
        .with_context(|| format!("reading {source}"));
        if let Err(err) = total {
            pending = Some(err);
        }
        if let Some(boot) = self.boots.back_mut() {
            boot.last_line = boot.last_line.max(boot.first_line);
        }
        match pending {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn start_boot(&mut self, source: &str, line_number: u64) {
        if self.boots.len() >= MAX_BOOTS {
            self.boots.pop_front();
            self.boots_dropped += 1;
        }
        self.boots
            .push_back(Boot::new(self.next_boot_index, source, line_number));
        self.next_boot_index += 1;
    }

    fn boot(&mut self, source: &str, line_number: u64) -> &mut Boot {
        if self.boots.is_empty() {
            self.start_boot(source, line_number);
        }
        let len = self.boots.len();
        &mut self.boots[len - 1]
    }

    fn process(&mut self, source: &str, line_number: u64, raw: &str) {
        let message = line::message(raw);
        let text = message.text;
        let kinds = self.engine.classify(text);
        if kinds.is_empty() {
            return;
        }
        let evidence = LineRef {
            source,
            line_number,
            raw,
        };
        // Boot boundaries first.
        for kind in kinds.iter() {
            let starts_boot = {
                let boot = self.boot(source, line_number);
                match kind {
                    Kind::BootVersion => !boot.is_empty(),
                    Kind::CommandLine => boot.saw_command_line,
                    Kind::KernelCommandLine => boot.saw_kernel_command_line,
                    _ => false,
                }
            };
            if starts_boot {
                self.start_boot(source, line_number);
            }
        }

        if self.boots.is_empty() {
            self.start_boot(source, line_number);
        }
        let engine = &self.engine;
        let Some(boot) = self.boots.back_mut() else {
            return;
        };
        boot.last_line = line_number;
        for kind in kinds.iter() {
            handle(engine, boot, kind, line_number, message, text, &evidence);
        }
    }

    pub fn finish(self) -> Result<(Vec<BootSummary>, u64, Vec<Finding>)> {
        let mut summaries = Vec::new();
        let mut findings = Vec::new();
        for boot in self.boots.iter().rev().filter(|boot| !boot.is_empty()) {
            findings.extend(super::findings::boot_findings(boot, self.known_bugs));
            summaries.push(super::findings::summarize(boot));
        }
        Ok((summaries, self.boots_dropped, findings))
    }
}

pub(super) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

pub(super) fn params<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

/// The line being handled; turned into evidence only when a finding or an
/// event keeps it (most matched lines, such as trace frames, are not kept).
struct LineRef<'a> {
    source: &'a str,
    line_number: u64,
    raw: &'a str,
}

impl LineRef<'_> {
    fn to_evidence(&self) -> EvidenceLine {
        EvidenceLine {
            source: self.source.to_string(),
            line_number: self.line_number,
            text: truncate(self.raw.trim(), MAX_LINE_CHARS),
        }
    }
}

fn handle(
    engine: &Engine,
    boot: &mut Boot,
    kind: Kind,
    line_number: u64,
    message: line::Message<'_>,
    text: &str,
    evidence: &LineRef<'_>,
) {
    let timestamp = message.timestamp;
    match kind {
        Kind::BootVersion => {
            boot.saw_version = true;
            if let Some((version, build)) = parse::version_line(text) {
                boot.kernel_version = Some(version);
                boot.kernel_build = build;
            }
        }
        Kind::CommandLine | Kind::KernelCommandLine => {
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
        Kind::CutHere => {
            boot.event_for_header(line_number, timestamp, kind);
        }
        Kind::EndTrace => {
            if let Some(current) = boot.current_event(line_number) {
                boot.events[current].ended = true;
                boot.events[current].last_line = line_number;
            }
        }
        Kind::CpuLine => {
            let Some(cpu) = parse::cpu_line(text) else {
                return;
            };
            if boot.kernel_version.is_none() {
                boot.kernel_version = Some(cpu.kernel_version.clone());
                boot.kernel_build = cpu.kernel_build.clone();
            }
            if let Some(current) = boot.current_event(line_number) {
                let event = &mut boot.events[current];
                event.last_line = line_number;
                if event.pid.is_none() {
                    event.cpu = cpu.cpu;
                    event.pid = cpu.pid;
                    event.comm = Some(cpu.comm);
                    event.taint = Some(cpu.taint);
                    event.kernel_version = Some(cpu.kernel_version);
                    event.kernel_build = cpu.kernel_build;
                    event.push_context(evidence.to_evidence());
                }
            }
        }
        Kind::CallTrace => {
            if let Some(current) = boot.current_event(line_number) {
                boot.events[current].last_line = line_number;
                boot.events[current].saw_call_trace = true;
            }
        }
        Kind::Frame => {
            let Some(frame) = parse::frame(text) else {
                return;
            };
            let Some(current) = boot.current_event(line_number) else {
                return;
            };
            let event = &mut boot.events[current];
            event.last_line = line_number;
            let is_rip = ["RIP", "EIP", "IP:", "pc :", "pc:", "NIP", "PC is at"]
                .iter()
                .any(|prefix| text.starts_with(prefix));
            if is_rip {
                if event.rip.is_none() {
                    if frame.module.is_some() {
                        event.push_context(evidence.to_evidence());
                    }
                    event.rip = Some(frame);
                }
            } else if event.frames.len() < parse::MAX_FRAMES {
                if frame.module.is_some()
                    && event
                        .frames
                        .iter()
                        .all(|f| f.module.is_none() || f.module != frame.module)
                {
                    event.push_context(evidence.to_evidence());
                }
                event.frames.push(frame);
            }
        }
        Kind::ModulesLinked => {
            let list = text.split_once("Modules linked in:").map_or("", |(_, l)| l);
            let mut modules = Vec::new();
            parse::linked_modules(list, &mut modules);
            for module in modules.iter().filter(|m| parse::flags_taint(&m.flags)) {
                if boot.tainting.len() < MAX_TAINTING_MODULES {
                    boot.tainting.insert(module.name.clone());
                }
            }
            if let Some(current) = boot.current_event(line_number) {
                let event = &mut boot.events[current];
                event.last_line = line_number;
                if event.modules.is_empty() {
                    event.modules = modules;
                    event.push_context(evidence.to_evidence());
                }
            }
        }
        Kind::TaintingModule => {
            if let Some(name) = parse::tainting_module_name(text) {
                if boot.tainting.len() < MAX_TAINTING_MODULES {
                    boot.tainting.insert(name.to_string());
                }
                let id = "tainting-module-loaded";
                let count = boot.hit_counts.entry(id).or_insert(0);
                *count += 1;
                if *count as usize <= MAX_EVIDENCE {
                    boot.hits.push(Hit {
                        id,
                        evidence: evidence.to_evidence(),
                        event: None,
                        params: params([("module", name.to_string())]),
                    });
                }
            }
        }
        Kind::Panic => {
            if text.contains("end Kernel panic") && boot.panicked {
                return;
            }
            boot.panicked = true;
            let reason = text
                .split_once("not syncing")
                .map(|(_, r)| r.trim_start_matches(':').trim().trim_end_matches(" ]---"))
                .unwrap_or("")
                .to_string();
            let attach = boot.events.len().checked_sub(1).filter(|&last| {
                line_number.saturating_sub(boot.events[last].last_line) <= PANIC_GAP
                    && boot.events[last].panic_reason.is_none()
            });
            let index = attach.unwrap_or_else(|| boot.new_event(line_number, timestamp));
            let event = &mut boot.events[index];
            event.ended = false;
            event.last_line = line_number;
            event.panic_reason = Some(truncate(&reason, 256));
            event.panic_evidence = Some(evidence.to_evidence());
            boot.record(
                "kernel-panic",
                evidence,
                Some(index),
                params([("reason", reason)]),
            );
        }
        Kind::UnknownBlock => {
            let Some(caps) = engine.unknown_block.captures(text) else {
                return;
            };
            let (major, minor) = (caps[1].to_string(), caps[2].to_string());
            let id = if major == "0" && minor == "0" {
                "initramfs-missing"
            } else {
                "root-device-unavailable"
            };
            let mut p = params([("block", format!("{major},{minor}"))]);
            if let Some(root) = root_device(engine, boot, text) {
                p.insert("root".into(), root);
            }
            let event = boot.current_event(line_number);
            boot.record(id, evidence, event, p);
        }
        Kind::CannotOpenRoot => {
            if engine.unknown_block.is_match(text) {
                return; // handled as UnknownBlock
            }
            let mut p = BTreeMap::new();
            if let Some(root) = root_device(engine, boot, text) {
                p.insert("root".into(), root);
            }
            boot.record("root-device-not-found", evidence, None, p);
        }
        Kind::NoInit => boot.record("no-init-found", evidence, None, BTreeMap::new()),
        Kind::DracutCouldNotBoot
        | Kind::DracutDoesNotExist
        | Kind::DracutTimeout
        | Kind::DracutEmergency => {
            let mut p = BTreeMap::new();
            if let Some(caps) = engine.dracut_device.captures(text) {
                p.insert("root".into(), caps[1].to_string());
            }
            boot.record("dracut-root-not-found", evidence, None, p);
        }
        Kind::InitramfsAlert | Kind::InitramfsGaveUp => {
            let mut p = BTreeMap::new();
            if let Some(caps) = engine.alert_device.captures(text) {
                p.insert("root".into(), caps[1].to_string());
            }
            boot.record("initramfs-root-not-found", evidence, None, p);
        }
        Kind::KillInit => {
            let mut p = BTreeMap::new();
            if let Some(caps) = engine.exit_code.captures(text) {
                p.insert("exitcode".into(), caps[1].to_string());
            }
            let event = boot.events.len().checked_sub(1);
            boot.record("init-killed", evidence, event, p);
        }
        Kind::SysRq => {
            let event = boot.event_for_header(line_number, timestamp, kind);
            boot.record("sysrq-crash", evidence, Some(event), BTreeMap::new());
        }
        Kind::KernelBug => {
            let event = boot.event_for_header(line_number, timestamp, kind);
            set_header(boot, event, text);
            let mut p = BTreeMap::new();
            if let Some(caps) = engine.kernel_bug_at.captures(text) {
                let at = match caps.get(2) {
                    Some(line) => format!("{}:{}", &caps[1], line.as_str()),
                    None => caps[1].to_string(),
                };
                p.insert("at".into(), at);
            }
            boot.record("kernel-bug", evidence, Some(event), p);
        }
        Kind::Oops | Kind::InvalidOpcode => {
            let event = boot.event_for_header(line_number, timestamp, kind);
            set_header(boot, event, text);
            boot.record("oops", evidence, Some(event), BTreeMap::new());
        }
        Kind::NullDeref => header_hit(
            boot,
            line_number,
            message,
            kind,
            "null-pointer-dereference",
            evidence,
        ),
        Kind::PageFault => header_hit(boot, line_number, message, kind, "page-fault", evidence),
        Kind::Gpf => header_hit(
            boot,
            line_number,
            message,
            kind,
            "general-protection-fault",
            evidence,
        ),
        Kind::DivideError => header_hit(boot, line_number, message, kind, "divide-error", evidence),
        Kind::ListCorruption => header_hit(
            boot,
            line_number,
            message,
            kind,
            "list-corruption",
            evidence,
        ),
        Kind::HardLockup => header_hit(boot, line_number, message, kind, "hard-lockup", evidence),
        Kind::RcuStall => header_hit(boot, line_number, message, kind, "rcu-stall", evidence),
        Kind::SoftLockup => {
            let event = boot.event_for_header(line_number, timestamp, kind);
            set_header(boot, event, text);
            let mut p = BTreeMap::new();
            if let Some(caps) = engine.soft_lockup.captures(text) {
                p.insert("cpu".into(), caps[1].to_string());
                p.insert("seconds".into(), caps[2].to_string());
            }
            boot.record("soft-lockup", evidence, Some(event), p);
        }
        Kind::HungTask => {
            let event = boot.event_for_header(line_number, timestamp, kind);
            set_header(boot, event, text);
            let mut p = BTreeMap::new();
            if let Some(caps) = engine.hung_task.captures(text) {
                p.insert("task".into(), caps[1].to_string());
                p.insert("seconds".into(), caps[3].to_string());
            }
            boot.record("hung-task", evidence, Some(event), p);
        }
        Kind::OomPanic => {
            let event = boot.events.len().checked_sub(1);
            boot.record("oom-panic", evidence, event, BTreeMap::new());
        }
        Kind::OomDeadlock => {
            let event = boot.events.len().checked_sub(1);
            boot.record("oom-deadlock", evidence, event, BTreeMap::new());
        }
        Kind::OomKill => header_hit(boot, line_number, message, kind, "oom-kill", evidence),
        Kind::NmiIoCheck => header_hit(boot, line_number, message, kind, "nmi-io-check", evidence),
        Kind::NmiUnknown => header_hit(boot, line_number, message, kind, "nmi-unknown", evidence),
        Kind::NmiSerr => header_hit(
            boot,
            line_number,
            message,
            kind,
            "nmi-unrecovered",
            evidence,
        ),
        Kind::NmiNotContinuing => {
            let known = ["nmi-io-check", "nmi-unknown", "nmi-unrecovered"]
                .iter()
                .any(|id| boot.hit_counts.contains_key(id));
            if !known {
                let event = boot.events.len().checked_sub(1);
                boot.record("nmi-unrecovered", evidence, event, BTreeMap::new());
            }
        }
        Kind::MachineCheck => {
            header_hit(boot, line_number, message, kind, "machine-check", evidence)
        }
        Kind::MachineCheckCorrected => {
            boot.record(
                "machine-check",
                evidence,
                None,
                params([("corrected", "true".into())]),
            );
        }
        Kind::SlabObjectsRemaining => header_hit(
            boot,
            line_number,
            message,
            kind,
            "slab-objects-remaining",
            evidence,
        ),
        Kind::AllocationFailure => header_hit(
            boot,
            line_number,
            message,
            kind,
            "page-allocation-failure",
            evidence,
        ),
        Kind::MemcgCache => {
            if text.starts_with("cache:") || text.contains(" cache: ") {
                boot.record(
                    "memcg-cache",
                    evidence,
                    boot.events.len().checked_sub(1),
                    BTreeMap::new(),
                );
            }
        }
        Kind::Warning => header_hit(boot, line_number, message, kind, "kernel-warning", evidence),
    }
}

fn header_hit(
    boot: &mut Boot,
    line_number: u64,
    message: line::Message<'_>,
    kind: Kind,
    id: &'static str,
    evidence: &LineRef<'_>,
) {
    let event = boot.event_for_header(line_number, message.timestamp, kind);
    set_header(boot, event, message.text);
    boot.record(id, evidence, Some(event), BTreeMap::new());
}

fn set_header(boot: &mut Boot, event: usize, text: &str) {
    let event = &mut boot.events[event];
    if event.header.is_none() {
        event.header = Some(truncate(text, 256));
    }
}

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
