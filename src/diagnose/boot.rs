//! Per-boot and per-event state built while streaming, and turning it into findings.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufRead;

use anyhow::{Context, Result};

use super::known_bugs::{self, CompiledBug};
use super::line::{self, MAX_LINE_CHARS};
use super::parse;
use super::signatures::{self, Engine, FindingInfo, Kind};
use super::{
    BootSummary, EventSummary, EvidenceLine, Finding, Frame, LinkedModule, RecipeSuggestion,
    Severity,
};

/// Boots kept; older ones are dropped (and counted).
const MAX_BOOTS: usize = 32;
/// Crash events kept per boot; later ones reuse the last slot.
const MAX_EVENTS: usize = 32;
/// Evidence lines kept per finding id and boot.
const MAX_EVIDENCE: usize = 8;
const MAX_TAINTING_MODULES: usize = 64;
/// Lines after an event's last line that still belong to it.
const EVENT_GAP: u64 = 60;
/// Lines after an event within which a panic is its consequence.
const PANIC_GAP: u64 = 400;

#[derive(Debug)]
struct Hit {
    id: &'static str,
    evidence: EvidenceLine,
    event: Option<usize>,
    params: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Event {
    first_line: u64,
    last_line: u64,
    header: Option<String>,
    panic_reason: Option<String>,
    panic_evidence: Option<EvidenceLine>,
    timestamp: Option<f64>,
    cpu: Option<u32>,
    pid: Option<u32>,
    comm: Option<String>,
    taint: Option<String>,
    kernel_version: Option<String>,
    kernel_build: Option<String>,
    rip: Option<Frame>,
    frames: Vec<Frame>,
    modules: Vec<LinkedModule>,
    /// CPU/taint line, RIP line, `Modules linked in:` line, frames naming a module.
    context_evidence: Vec<EvidenceLine>,
    saw_call_trace: bool,
    ended: bool,
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

    fn functions(&self) -> impl Iterator<Item = &str> {
        self.rip
            .iter()
            .chain(self.frames.iter())
            .map(|frame| parse::base_function(&frame.function))
    }
}

#[derive(Debug)]
struct Boot {
    index: usize,
    source: String,
    first_line: u64,
    last_line: u64,
    kernel_version: Option<String>,
    kernel_build: Option<String>,
    hardware_name: Option<String>,
    command_line: Option<String>,
    saw_version: bool,
    saw_command_line: bool,
    saw_kernel_command_line: bool,
    panicked: bool,
    tainting: BTreeSet<String>,
    events: Vec<Event>,
    hits: Vec<Hit>,
    hit_counts: BTreeMap<&'static str, u64>,
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
        evidence: &EvidenceLine,
        event: Option<usize>,
        params: BTreeMap<String, String>,
    ) {
        let count = self.hit_counts.entry(id).or_insert(0);
        *count += 1;
        if *count as usize <= MAX_EVIDENCE {
            self.hits.push(Hit {
                id,
                evidence: evidence.clone(),
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
        let matches = self.engine.set.matches(text);
        if !matches.matched_any() {
            return;
        }
        let evidence = EvidenceLine {
            source: source.to_string(),
            line_number,
            text: truncate(raw.trim(), MAX_LINE_CHARS),
        };
        let kinds: Vec<Kind> = matches.iter().map(|i| self.engine.kinds[i]).collect();

        // Boot boundaries first.
        for kind in &kinds {
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
        for kind in kinds {
            handle(engine, boot, kind, line_number, message, text, &evidence);
        }
    }

    pub fn finish(self) -> Result<(Vec<BootSummary>, u64, Vec<Finding>)> {
        let mut summaries = Vec::new();
        let mut findings = Vec::new();
        for boot in self.boots.iter().rev().filter(|boot| !boot.is_empty()) {
            findings.extend(boot_findings(boot, self.known_bugs));
            summaries.push(summarize(boot));
        }
        Ok((summaries, self.boots_dropped, findings))
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

fn params<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

fn handle(
    engine: &Engine,
    boot: &mut Boot,
    kind: Kind,
    line_number: u64,
    message: line::Message<'_>,
    text: &str,
    evidence: &EvidenceLine,
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
                    event.push_context(evidence.clone());
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
                        event.push_context(evidence.clone());
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
                    event.push_context(evidence.clone());
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
                    event.push_context(evidence.clone());
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
                        evidence: evidence.clone(),
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
            event.panic_evidence = Some(evidence.clone());
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
    evidence: &EvidenceLine,
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

fn tainting_modules_of(boot: &Boot, event: &Event) -> BTreeSet<String> {
    let mut set = boot.tainting.clone();
    set.extend(
        event
            .modules
            .iter()
            .filter(|m| parse::flags_taint(&m.flags))
            .map(|m| m.name.clone()),
    );
    set
}

/// The module the crash is in: RIP first, then certain frames, then uncertain
/// ones; a module known to taint the kernel wins over an in-tree one.
fn culprit(boot: &Boot, event: &Event) -> (Option<String>, bool) {
    let tainting = tainting_modules_of(boot, event);
    let ordered = event
        .rip
        .iter()
        .chain(event.frames.iter().filter(|f| !f.uncertain))
        .chain(event.frames.iter().filter(|f| f.uncertain))
        .filter_map(|frame| frame.module.as_deref());
    let mut first_module = None;
    for module in ordered {
        if tainting.contains(module) {
            return (Some(module.to_string()), true);
        }
        first_module.get_or_insert(module);
    }
    // Without module-level taint information (a `Modules linked in:` list with
    // markers, or the load-time taint lines) an in-tree module cannot be told
    // from a third-party one, so none is named as faulty.
    (first_module.map(str::to_string), false)
}

fn evidence_for(boot: &Boot, id: &str) -> Vec<EvidenceLine> {
    boot.hits
        .iter()
        .filter(|hit| hit.id == id)
        .map(|hit| hit.evidence.clone())
        .collect()
}

fn suggestions(
    info: &FindingInfo,
    kernel: Option<&str>,
    extra: &BTreeMap<String, String>,
) -> Vec<RecipeSuggestion> {
    info.recipes
        .iter()
        .map(|(recipe, why)| {
            let mut p = BTreeMap::new();
            match *recipe {
                "older-kernel" => {
                    if let Some(kernel) = kernel {
                        p.insert("avoid_kernel".into(), kernel.to_string());
                    }
                }
                "rebuild-initramfs" => {
                    if let Some(kernel) = kernel {
                        p.insert("kernel".into(), kernel.to_string());
                    }
                }
                "fix-root-fs" => {
                    if let Some(root) = extra.get("root") {
                        p.insert("root".into(), root.clone());
                    }
                }
                "panic-knobs" => {
                    if let Some(knob) = extra.get("knob") {
                        p.insert("knob".into(), knob.clone());
                    }
                }
                "remove-faulty-modules" => {
                    if let Some(module) = extra.get("module") {
                        p.insert("module".into(), module.clone());
                    }
                }
                _ => {}
            }
            RecipeSuggestion {
                recipe: recipe.to_string(),
                params: p,
                why: why.to_string(),
            }
        })
        .collect()
}

/// Which panic-knob turned this finding into a panic, read from the panic reason.
fn knob_for(id: &str) -> Option<&'static str> {
    Some(match id {
        "soft-lockup" => "softlockup_panic",
        "hard-lockup" => "hardlockup_panic",
        "hung-task" => "hung_task_panic",
        "rcu-stall" => "panic_on_rcu_stall",
        "nmi-io-check" => "panic_on_io_nmi",
        "nmi-unknown" => "unknown_nmi_panic",
        "nmi-unrecovered" => "panic_on_unrecovered_nmi",
        _ => return None,
    })
}

/// Whether a panic reason says this finding caused the panic.
fn panic_caused_by(id: &str, reason: &str) -> bool {
    let reason_lower = reason.to_ascii_lowercase();
    match id {
        "soft-lockup" => {
            reason_lower.contains("softlockup") || reason_lower.contains("soft lockup")
        }
        "hard-lockup" => reason_lower.contains("hard lockup"),
        "hung-task" => reason_lower.contains("hung_task") || reason_lower.contains("hung task"),
        "rcu-stall" => reason_lower.contains("rcu"),
        "nmi-io-check" | "nmi-unknown" | "nmi-unrecovered" => reason_lower.contains("nmi"),
        "machine-check" => {
            reason_lower.contains("machine check")
                || reason_lower.contains("mce")
                || reason_lower.contains("broadcast exception")
        }
        "oom-kill" => reason_lower.contains("out of memory") || reason_lower.contains("oom"),
        "kernel-warning" => reason_lower.contains("panic_on_warn"),
        _ => {
            reason_lower.contains("fatal exception")
                || reason_lower.contains("oops")
                || reason_lower.contains("bug")
                || reason_lower.contains("corruption")
        }
    }
}

struct Draft {
    finding: Finding,
    rank: u32,
    event: Option<usize>,
    explains_panic: bool,
}

fn boot_findings(boot: &Boot, known_bugs: &[CompiledBug]) -> Vec<Finding> {
    let boot_kernel = boot.kernel_version.as_deref();
    let panic_reasons: Vec<&str> = boot
        .events
        .iter()
        .filter_map(|e| e.panic_reason.as_deref())
        .collect();
    let culprits: Vec<(Option<String>, bool)> =
        boot.events.iter().map(|e| culprit(boot, e)).collect();

    let mut drafts: Vec<Draft> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut ids_present: BTreeSet<&str> = boot.hits.iter().map(|h| h.id).collect();
    let memcg = ids_present.contains("memcg-cache")
        || boot.events.iter().any(|e| {
            e.functions()
                .any(|f| f.contains("memcg") || f.contains("mem_cgroup"))
        });
    if memcg && ids_present.contains("page-allocation-failure") {
        ids_present.insert("memcg-allocation-failure");
    }

    for hit in &boot.hits {
        if seen.contains(&hit.id) {
            continue;
        }
        seen.push(hit.id);
        let mut id = hit.id;
        if id == "tainting-module-loaded" || id == "memcg-cache" {
            continue;
        }
        if id == "page-allocation-failure" && memcg {
            id = "memcg-allocation-failure";
        }
        let Some(info) = signatures::info(id) else {
            continue;
        };
        let event = hit.event.and_then(|i| boot.events.get(i));
        let kernel = event
            .and_then(|e| e.kernel_version.as_deref())
            .or(boot_kernel);
        let mut extra = hit.params.clone();
        for other in boot.hits.iter().filter(|h| h.id == hit.id) {
            for (key, value) in &other.params {
                extra.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        let corrected = extra.contains_key("corrected");
        let caused_panic = !corrected && panic_reasons.iter().any(|r| panic_caused_by(id, r))
            || (info.severity == info.survived);
        let severity = if id == "sysrq-crash" {
            Severity::Info
        } else if caused_panic {
            info.severity
        } else {
            info.survived
        };
        if caused_panic {
            if let Some(knob) = knob_for(id) {
                extra.insert("knob".into(), knob.to_string());
            }
        }
        let mut evidence = evidence_for(boot, hit.id);
        if id == "memcg-allocation-failure" {
            evidence.extend(evidence_for(boot, "memcg-cache"));
            evidence.truncate(MAX_EVIDENCE);
        }
        let mut explanation = info.explanation.to_string();
        if let Some(count) = boot
            .hit_counts
            .get(hit.id)
            .filter(|&&c| c as usize > MAX_EVIDENCE)
        {
            explanation.push_str(&format!(" (seen {count} times in this boot)"));
        }
        if let Some(code) = extra.get("exitcode") {
            explanation.push_str(&format!(
                " Exit code here: {code} ({}).",
                describe_exit_code(code)
            ));
        }
        if let Some(knob) = extra.get("knob") {
            explanation.push_str(&format!(" The panic was caused by kernel.{knob}."));
        }
        let culprit_module = hit
            .event
            .and_then(|i| culprits.get(i))
            .and_then(|c| c.0.clone());
        drafts.push(Draft {
            finding: Finding {
                id: id.to_string(),
                severity,
                title: info.title.to_string(),
                explanation,
                evidence,
                suggestions: suggestions(info, kernel, &extra),
                boot_index: Some(boot.index),
                kernel_version: kernel.map(str::to_string),
                culprit_module,
            },
            rank: info.rank,
            event: hit.event,
            explains_panic: severity == Severity::Critical || id == "sysrq-crash",
        });
    }

    // A module that taints the kernel in a crash trace.
    let mut named: BTreeSet<String> = BTreeSet::new();
    if let Some(info) = signatures::info("faulty-module") {
        for (index, event) in boot.events.iter().enumerate() {
            let (Some(module), true) = &culprits[index] else {
                continue;
            };
            if !named.insert(module.clone()) {
                continue;
            }
            let worst = drafts
                .iter()
                .filter(|d| d.event == Some(index) && d.finding.id != "sysrq-crash")
                .map(|d| d.finding.severity)
                .min();
            let crashed = event.panic_reason.is_some() || worst == Some(Severity::Critical);
            let severity = match worst {
                _ if crashed => Severity::Critical,
                Some(Severity::Error) => Severity::Error,
                _ => info.survived,
            };
            let mut evidence: Vec<EvidenceLine> = boot
                .hits
                .iter()
                .filter(|h| {
                    h.id == "tainting-module-loaded" && h.params.get("module") == Some(module)
                })
                .map(|h| h.evidence.clone())
                .collect();
            evidence.extend(event.context_evidence.iter().cloned());
            evidence.truncate(MAX_EVIDENCE);
            let kernel = event.kernel_version.as_deref().or(boot_kernel);
            let extra = params([("module", module.clone())]);
            drafts.push(Draft {
                finding: Finding {
                    id: "faulty-module".into(),
                    severity,
                    title: format!("{} ({module})", info.title),
                    explanation: format!(
                        "{} The module `{module}` is in the crash trace{}.",
                        info.explanation,
                        event
                            .taint
                            .as_deref()
                            .filter(|t| !t.is_empty())
                            .map(|t| format!(" and the kernel is tainted ({t})"))
                            .unwrap_or_default()
                    ),
                    evidence,
                    suggestions: suggestions(info, kernel, &extra),
                    boot_index: Some(boot.index),
                    kernel_version: kernel.map(str::to_string),
                    culprit_module: Some(module.clone()),
                },
                rank: info.rank,
                event: Some(index),
                explains_panic: crashed,
            });
        }
    }

    // Known bugs.
    for bug in known_bugs {
        let matched_event = if bug.bug.functions.is_empty() {
            let all = bug
                .bug
                .requires
                .iter()
                .all(|r| ids_present.contains(r.as_str()));
            all.then(|| {
                boot.hits
                    .iter()
                    .find(|h| bug.bug.requires.iter().any(|r| r == h.id))
                    .and_then(|h| h.event)
            })
        } else {
            boot.events
                .iter()
                .enumerate()
                .find(|(index, event)| {
                    event
                        .functions()
                        .any(|f| bug.bug.functions.iter().any(|b| b == f))
                        && bug.bug.requires.iter().all(|r| {
                            boot.hits
                                .iter()
                                .any(|h| h.id == r && h.event == Some(*index))
                        })
                })
                .map(|(index, _)| Some(index))
        };
        let Some(event_index) = matched_event else {
            continue;
        };
        let event = event_index.and_then(|i| boot.events.get(i));
        let kernel = event
            .and_then(|e| e.kernel_version.as_deref())
            .or(boot_kernel);
        let build = event
            .and_then(|e| e.kernel_build.as_deref())
            .or(boot.kernel_build.as_deref());
        if !bug.affects(kernel, build) {
            continue;
        }
        let mut evidence: Vec<EvidenceLine> = Vec::new();
        if let Some(i) = event_index {
            evidence.extend(
                boot.hits
                    .iter()
                    .filter(|h| h.event == Some(i) && h.id != "kernel-panic")
                    .map(|h| h.evidence.clone()),
            );
            if let Some(e) = event {
                evidence.extend(e.context_evidence.iter().cloned());
            }
        } else {
            for required in &bug.bug.requires {
                evidence.extend(evidence_for(boot, required));
            }
        }
        evidence.truncate(MAX_EVIDENCE);
        let mut older = BTreeMap::new();
        if let Some(kernel) = kernel {
            older.insert("avoid_kernel".to_string(), kernel.to_string());
        }
        older.insert("fixed_in".to_string(), bug.bug.fixed_in.clone());
        let mut suggestions = vec![RecipeSuggestion {
            recipe: "older-kernel".into(),
            params: older,
            why: format!(
                "boot a kernel without this bug now; after boot update to {} or later",
                bug.bug.fixed_in
            ),
        }];
        if bug
            .bug
            .requires
            .iter()
            .any(|r| r == "memcg-allocation-failure")
        {
            suggestions.insert(
                0,
                RecipeSuggestion {
                    recipe: "cgroup-nokmem".into(),
                    params: BTreeMap::new(),
                    why: "avoid the leak until the kernel is updated".into(),
                },
            );
        }
        let version_note = match kernel {
            Some(kernel) => format!("The kernel {kernel} is older than the fix."),
            None => {
                "The kernel version is not in the log; the bug applies if it is older than the fix."
                    .into()
            }
        };
        drafts.push(Draft {
            finding: Finding {
                id: bug.finding_id(),
                severity: Severity::Critical,
                title: bug.bug.title.clone(),
                explanation: format!(
                    "{} Affected: {}. Fixed in {} ({}). {version_note}",
                    bug.bug.explanation, bug.bug.distribution, bug.bug.fixed_in, bug.bug.reference
                ),
                evidence,
                suggestions,
                boot_index: Some(boot.index),
                kernel_version: kernel.map(str::to_string),
                culprit_module: event_index
                    .and_then(|i| culprits.get(i))
                    .and_then(|c| c.0.clone()),
            },
            rank: 10,
            event: event_index,
            explains_panic: true,
        });
    }

    let present: BTreeSet<String> = drafts.iter().map(|d| d.finding.id.clone()).collect();
    let has = |id: &str| present.contains(id);
    // A deliberate SysRq crash explains the oops that it produces.
    let sysrq = has("sysrq-crash");
    let specific_oops = [
        "kernel-bug",
        "null-pointer-dereference",
        "page-fault",
        "general-protection-fault",
        "divide-error",
        "list-corruption",
    ]
    .iter()
    .any(|id| has(id));
    drafts.retain(|d| {
        let info = signatures::info(&d.finding.id);
        let oops_family = info.is_some_and(|i| i.oops_family) && d.finding.id != "sysrq-crash";
        if sysrq && oops_family {
            return false;
        }
        if d.finding.id == "oops" && specific_oops {
            return false;
        }
        if d.finding.id == "kernel-bug"
            && has("list-corruption")
            && d.finding
                .evidence
                .iter()
                .all(|e| e.text.contains("list_debug"))
        {
            return false;
        }
        // A divide error that is a known bug is reported once, as the bug.
        true
    });

    // The generic panic finding only when nothing specific explains it.
    let explained = drafts
        .iter()
        .any(|d| d.finding.id != "kernel-panic" && d.explains_panic);
    if explained {
        let panic_evidence: Vec<EvidenceLine> = evidence_for(boot, "kernel-panic");
        drafts.retain(|d| d.finding.id != "kernel-panic");
        // The panic lines still belong in the evidence of the top finding.
        drafts.sort_by_key(|d| (group(&d.finding), d.rank));
        if let Some(top) = drafts.first_mut() {
            for line in panic_evidence {
                if top.finding.evidence.len() < MAX_EVIDENCE + 2
                    && !top.finding.evidence.contains(&line)
                {
                    top.finding.evidence.push(line);
                }
            }
        }
    }
    drafts.sort_by_key(|d| (group(&d.finding), d.rank));
    drafts.into_iter().map(|d| d.finding).collect()
}

fn group(finding: &Finding) -> u8 {
    match finding.severity {
        Severity::Critical | Severity::Error => 0,
        _ if finding.id == "sysrq-crash" => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    }
}

fn describe_exit_code(code: &str) -> &'static str {
    let value = u32::from_str_radix(code.trim_start_matches("0x"), 16).unwrap_or(u32::MAX);
    match value {
        0x0000_0000 => "init exited normally, which it must never do",
        0x0000_7f00 => "exit status 127: a program or shared library was not found",
        0x0000_0100 => "exit status 1: init failed, often the initramfs could not set up root",
        0x0000_0200 => "exit status 2",
        0x0000_0009 => "killed by SIGKILL",
        0x0000_000b | 0x0000_008b => {
            "SIGSEGV: init crashed (corrupt binary or library, or SELinux)"
        }
        0x0000_0004 | 0x0000_0084 => "SIGILL: init uses instructions this CPU lacks",
        0x0000_0007 | 0x0000_0087 => "SIGBUS: I/O error reading init",
        0x0000_0006 | 0x0000_0086 => "SIGABRT: init aborted",
        _ => "see the exit status of the init process",
    }
}

fn summarize(boot: &Boot) -> BootSummary {
    BootSummary {
        boot_index: boot.index,
        source: boot.source.clone(),
        first_line: boot.first_line,
        last_line: boot.last_line,
        kernel_version: boot.kernel_version.clone(),
        hardware_name: boot.hardware_name.clone(),
        command_line: boot.command_line.clone(),
        panicked: boot.panicked,
        tainting_modules: boot.tainting.iter().cloned().collect(),
        events: boot
            .events
            .iter()
            .map(|event| EventSummary {
                first_line: event.first_line,
                header: event.header.clone(),
                panic_reason: event.panic_reason.clone(),
                timestamp: event.timestamp,
                cpu: event.cpu,
                pid: event.pid,
                comm: event.comm.clone(),
                taint: event.taint.clone(),
                rip: event.rip.clone(),
                call_trace: event.frames.clone(),
                modules_linked_in: event.modules.clone(),
                culprit_module: culprit(boot, event).0,
            })
            .collect(),
    }
}
