//! Per-boot and per-event state built while streaming a log (see `findings` for the ranking).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufRead;

use anyhow::{Context, Result};

use super::known_bugs::{self, CompiledBug};
use super::line::{self, MAX_LINE_CHARS};
use super::parse;
use super::signatures::{Engine, Kind};
use super::{EvidenceLine, Frame, LinkedModule};

mod handle;
mod stages;

pub(super) use stages::FIRMWARE_IDS;

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
    /// The last line on which the firmware started a boot option
    /// (`BdsDxe: starting Boot0002`): failures before it were fallbacks.
    pub(super) firmware_started: Option<u64>,
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
            firmware_started: None,
        }
    }

    /// Whether the kernel printed anything of this boot yet.
    pub(super) fn kernel_seen(&self) -> bool {
        self.saw_version || self.saw_command_line || self.saw_kernel_command_line
    }

    /// Only firmware and boot-loader lines so far: the kernel that follows
    /// belongs to this same boot.
    fn before_kernel(&self) -> bool {
        !self.kernel_seen()
            && self.events.is_empty()
            && self.tainting.is_empty()
            && self.hit_counts.keys().all(|id| FIRMWARE_IDS.contains(id))
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
        line: &LineRef<'_>,
        event: Option<usize>,
        params: BTreeMap<String, String>,
    ) {
        let count = self.hit_counts.entry(id).or_insert(0);
        *count += 1;
        if *count as usize <= MAX_EVIDENCE {
            self.hits.push(Hit {
                id,
                evidence: line.to_evidence(),
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
    /// Some source had a kernel message (timestamped or syslog `kernel:`).
    kernel_lines: bool,
}

impl LogState {
    pub fn new() -> Result<Self> {
        Ok(Self {
            engine: Engine::new()?,
            known_bugs: known_bugs::embedded()?,
            boots: VecDeque::new(),
            boots_dropped: 0,
            next_boot_index: 0,
            kernel_lines: false,
        })
    }

    pub fn read_source<R: BufRead>(&mut self, reader: R, source: &str) -> Result<()> {
        self.start_boot(source, 1);
        let mut pending: Option<anyhow::Error> = None;
        let keywords = self.engine.keywords.clone();
        let mut kernel_lines = false;
        let on_chunk = |chunk: &[u8]| {
            if !kernel_lines {
                kernel_lines = line::has_kernel_line(chunk);
            }
        };
        let total = line::scan_keyword_lines(reader, &keywords, on_chunk, |line_number, bytes| {
            let text = line::decode(bytes);
            for segment in text.split('\r') {
                if !segment.trim().is_empty() {
                    self.process(source, line_number, segment);
                }
            }
            Ok(())
        })
        .with_context(|| format!("reading {source}"));
        self.kernel_lines |= kernel_lines;
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
        let line = LineRef {
            source,
            line_number,
            raw,
            text,
            timestamp: message.timestamp,
        };
        // Boot boundaries first, so that the line's other kinds land in the
        // boot it starts.
        for (kind, _) in kinds.iter() {
            let starts_boot = {
                let boot = self.boot(source, line_number);
                match kind {
                    Kind::BootVersion => !boot.is_empty() && !boot.before_kernel(),
                    // Firmware and GRUB print before the kernel: after
                    // kernel lines they are the next boot (a reboot).
                    Kind::GrubError
                    | Kind::GrubRescue
                    | Kind::UefiBoot
                    | Kind::NoBootable
                    | Kind::SecureBoot => boot.kernel_seen(),
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
            handle::handle(engine, boot, kind, &line);
        }
    }

    /// The boots read, newest first (empty ones left out), how many were
    /// dropped, and the known bugs to match them against; the caller turns
    /// them into findings (`findings.rs` reads boots, never the other way).
    pub fn kernel_lines(&self) -> bool {
        self.kernel_lines
    }

    pub fn into_boots(self) -> (Vec<Boot>, u64, &'static [CompiledBug]) {
        let boots = self
            .boots
            .into_iter()
            .rev()
            .filter(|boot| !boot.is_empty())
            .collect();
        (boots, self.boots_dropped, self.known_bugs)
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
    /// The message with its prefixes removed (what the patterns matched).
    text: &'a str,
    timestamp: Option<f64>,
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
