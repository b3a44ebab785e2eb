//! Classifying console logs and vmcore-dmesg into findings with evidence and suggested recipes.
//!
//! The classifier streams a log once ([`classify_reader`]), splits it into boots
//! ("Linux version …" starts one), groups crash reports into events (header,
//! `CPU:`/`Tainted:` line, `RIP:`, call trace, `Modules linked in:`) and turns
//! signature hits into [`Finding`]s. The most specific cause comes first; the
//! generic "Kernel panic - not syncing" finding appears only when nothing more
//! specific explains the panic. Call-trace signatures of known kernel bugs come
//! from the data file `known_bugs.toml`.
//!
//! Other findings producers (the offline checks of a mounted OS) can build
//! [`Finding`]s with the same types and merge them with [`Diagnosis::extend`].

mod boot;
pub mod boot_loader;
mod findings;
mod known_bugs;
mod line;
pub mod log_input;
pub mod lvm_devices;
pub mod nvme;
pub mod offline;
mod parse;
mod signatures;
pub mod target_logs;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Result;
use serde::Serialize;

pub use known_bugs::{load_known_bugs, KnownBug};

/// Version of the JSON shape of [`Diagnosis`]; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything learned from one or more logs.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Diagnosis {
    pub version: u32,
    /// The sources read, in the order given.
    pub sources: Vec<String>,
    /// One summary per boot found, the last boot first.
    pub boots: Vec<BootSummary>,
    /// Boots older than the retained window that were dropped to bound memory.
    pub boots_dropped: u64,
    /// Findings, the last boot first and within a boot the most specific cause first.
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// Findings from another producer (offline checks), appended after the log findings.
    pub fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.findings.extend(findings);
    }

    /// The first (most relevant) finding, if any.
    pub fn primary(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// Whether any finding has the given id.
    pub fn has(&self, id: &str) -> bool {
        self.findings.iter().any(|finding| finding.id == id)
    }
}

/// What is known about one boot of the logged machine.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BootSummary {
    pub boot_index: usize,
    pub source: String,
    pub first_line: u64,
    pub last_line: u64,
    pub kernel_version: Option<String>,
    pub hardware_name: Option<String>,
    pub command_line: Option<String>,
    /// Whether a "Kernel panic - not syncing" line was seen in this boot.
    pub panicked: bool,
    /// Modules known to taint the kernel (out-of-tree, unsigned or proprietary).
    pub tainting_modules: Vec<String>,
    /// Crash reports (oops, BUG, lockup, panic…) seen in this boot.
    pub events: Vec<EventSummary>,
}

/// One crash report inside a boot.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EventSummary {
    pub first_line: u64,
    pub header: Option<String>,
    pub panic_reason: Option<String>,
    pub timestamp: Option<f64>,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Taint flags as printed (`G OE` → "GOE"), or "" for "Not tainted".
    pub taint: Option<String>,
    pub rip: Option<Frame>,
    pub call_trace: Vec<Frame>,
    pub modules_linked_in: Vec<LinkedModule>,
    pub culprit_module: Option<String>,
}

/// One call-trace frame: `? tcp_v4_rcv+0x4f/0x1a0 [eudp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Frame {
    pub function: String,
    pub offset: String,
    pub module: Option<String>,
    /// Frames printed with a leading `?` are stale stack contents, not certain callers.
    pub uncertain: bool,
}

/// One entry of `Modules linked in:` with its taint markers (`eudp(OE)` → "OE").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LinkedModule {
    pub name: String,
    pub flags: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

/// A named cause with the lines that show it and what to do about it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// Stable kebab-case identifier, e.g. `initramfs-missing`, `known-bug-rhel7-blk-mq-timeout`.
    pub id: String,
    pub severity: Severity,
    pub title: String,
    pub explanation: String,
    pub evidence: Vec<EvidenceLine>,
    pub suggestions: Vec<RecipeSuggestion>,
    /// What to do by hand when no recipe repairs it (or when the suggested
    /// ones find nothing to change): "no recipe: …".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// Index of the boot in the order of appearance (0 = first boot in the first source).
    pub boot_index: Option<usize>,
    pub kernel_version: Option<String>,
    pub culprit_module: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EvidenceLine {
    pub source: String,
    pub line_number: u64,
    pub text: String,
}

/// A recipe id (see `recipes/*.toml`) with parameters filled in from the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RecipeSuggestion {
    pub recipe: String,
    pub params: BTreeMap<String, String>,
    pub why: String,
}

/// Streaming classifier: feed one or more sources, then [`Classifier::finish`].
/// Memory stays bounded whatever the input size.
pub struct Classifier {
    state: boot::LogState,
    sources: Vec<String>,
}

impl Classifier {
    pub fn new() -> Result<Self> {
        Ok(Self {
            state: boot::LogState::new()?,
            sources: Vec::new(),
        })
    }

    /// Reads one source to its end. A new source always starts a new boot.
    pub fn add_reader<R: BufRead>(&mut self, reader: R, source: &str) -> Result<()> {
        self.sources.push(source.to_string());
        self.state.read_source(reader, source)
    }

    pub fn finish(self) -> Result<Diagnosis> {
        let kernel_lines = self.state.kernel_lines();
        let (read, boots_dropped, known_bugs) = self.state.into_boots();
        let mut findings: Vec<Finding> = read
            .iter()
            .flat_map(|boot| findings::boot_findings(boot, known_bugs))
            .collect();
        if !self.sources.is_empty() && !kernel_lines {
            findings.extend(findings::no_kernel_output(&read, &findings, &self.sources));
        }
        let boots = read.iter().map(findings::summarize).collect();
        Ok(Diagnosis {
            version: SCHEMA_VERSION,
            sources: self.sources,
            boots,
            boots_dropped,
            findings,
        })
    }
}

/// Every finding id the log classifier can report (known bugs as
/// `known-bug-<id>`), e.g. to validate the `symptoms` of recipe files.
pub fn known_finding_ids() -> Result<Vec<String>> {
    let mut ids: Vec<String> = signatures::FINDINGS
        .iter()
        .map(|f| f.id.to_string())
        .collect();
    ids.extend(known_bugs::embedded()?.iter().map(|b| b.finding_id()));
    Ok(ids)
}

/// The findings of the stages that stop a boot without a panic (firmware,
/// GRUB, initramfs, emergency mode, fsck, SELinux, a full disk, no kernel
/// output).
pub fn stage_finding_ids() -> &'static [&'static str] {
    signatures::STAGE_IDS
}

/// Classifies one log read line by line; `source` names it in the evidence.
pub fn classify_reader<R: BufRead>(reader: R, source: &str) -> Result<Diagnosis> {
    let mut classifier = Classifier::new()?;
    classifier.add_reader(reader, source)?;
    classifier.finish()
}

/// Classifies a log held in memory.
pub fn classify_str(log: &str, source: &str) -> Result<Diagnosis> {
    classify_reader(log.as_bytes(), source)
}

/// The diagnosis a repair starts from: the given console logs, the target's
/// own logs, and the offline checks of the mounted OS.
pub fn diagnose_target(
    logs: &[std::path::PathBuf],
    target: &crate::attach::Target,
) -> Result<Diagnosis> {
    let mut classifier = Classifier::new()?;
    let root = target.rootdir()?;
    target_logs::add_target_logs(&mut classifier, &root)?;
    for log in logs {
        let (reader, source) = log_input::open(log)?;
        classifier.add_reader(reader, &source)?;
    }
    let mut diagnosis = classifier.finish()?;
    let snapshot = crate::inspect::snapshot::snapshot(&root)?;
    diagnosis.extend(offline::offline_findings(
        &root,
        &snapshot,
        Some(target.layout()),
    )?);
    Ok(diagnosis)
}
