//! Turning the state of a finished boot into ranked findings: culprit module,
//! known bugs, suppression of consequences (the generic panic, the oops a SysRq
//! crash produces) and recipe suggestions with parameters.

use std::collections::{BTreeMap, BTreeSet};

use super::boot::{params, Boot, Event, Hit, MAX_EVIDENCE};
use super::known_bugs::CompiledBug;
use super::parse;
use super::signatures::{self, FindingInfo};
use super::{BootSummary, EventSummary, EvidenceLine, Finding, RecipeSuggestion, Severity};

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
                    // A kernel GRUB could not find is the one to avoid.
                    if let Some(kernel) = extra.get("kernel").map(String::as_str).or(kernel) {
                        p.insert("avoid_kernel".into(), kernel.to_string());
                    }
                }
                "rebuild-initramfs" => {
                    if let Some(kernel) = extra.get("kernel").map(String::as_str).or(kernel) {
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

/// What every finding of one boot reads: computed once per boot, not per hit.
struct BootFacts<'a> {
    boot: &'a Boot,
    /// The kernel named by the boot's `Linux version` (or first CPU) line.
    kernel: Option<&'a str>,
    panic_reasons: Vec<&'a str>,
    /// Per event: the culprit module, and whether it is known to taint.
    culprits: Vec<(Option<String>, bool)>,
    /// A memory-cgroup trace is in this boot, so that a page-allocation
    /// failure is the memcg leak rather than plain memory pressure.
    memcg: bool,
    /// The hit ids, plus the ids derived from them, that known bugs require.
    ids_present: BTreeSet<&'a str>,
}

impl<'a> BootFacts<'a> {
    fn new(boot: &'a Boot) -> Self {
        let mut ids_present: BTreeSet<&str> = boot.hits.iter().map(|h| h.id).collect();
        let memcg = ids_present.contains("memcg-cache")
            || boot.events.iter().any(|e| {
                e.functions()
                    .any(|f| f.contains("memcg") || f.contains("mem_cgroup"))
            });
        if memcg && ids_present.contains("page-allocation-failure") {
            ids_present.insert("memcg-allocation-failure");
        }
        Self {
            boot,
            kernel: boot.kernel_version.as_deref(),
            panic_reasons: boot
                .events
                .iter()
                .filter_map(|e| e.panic_reason.as_deref())
                .collect(),
            culprits: boot.events.iter().map(|e| culprit(boot, e)).collect(),
            memcg,
            ids_present,
        }
    }

    fn culprit_of(&self, event: Option<usize>) -> Option<String> {
        event
            .and_then(|i| self.culprits.get(i))
            .and_then(|c| c.0.clone())
    }
}

/// The findings of one boot, most important first. Drafts come from three
/// sources (the signatures' hits, tainting modules in crash traces, known
/// bugs); then the findings that are only consequences of another are dropped.
pub(super) fn boot_findings(boot: &Boot, known_bugs: &[CompiledBug]) -> Vec<Finding> {
    let facts = BootFacts::new(boot);
    let mut drafts = signature_drafts(&facts);
    let modules = faulty_module_drafts(&facts, &drafts);
    drafts.extend(modules);
    drafts.extend(
        known_bugs
            .iter()
            .filter_map(|bug| known_bug_draft(&facts, bug)),
    );
    drop_consequences(&mut drafts);
    drop_explained_panic(boot, &mut drafts);
    drafts.sort_by_key(|d| (group(&d.finding), d.rank));
    drafts.into_iter().map(|d| d.finding).collect()
}

/// One draft per distinct finding id among the hits, in the order of first hit.
fn signature_drafts(facts: &BootFacts<'_>) -> Vec<Draft> {
    let mut seen: Vec<&str> = Vec::new();
    let mut drafts = Vec::new();
    for hit in &facts.boot.hits {
        if seen.contains(&hit.id) {
            continue;
        }
        seen.push(hit.id);
        drafts.extend(signature_draft(facts, hit));
    }
    drafts
}

fn signature_draft(facts: &BootFacts<'_>, hit: &Hit) -> Option<Draft> {
    let boot = facts.boot;
    // These only feed other findings: the faulty module, the memcg leak,
    // the device the initramfs or a mount waited for.
    if ["tainting-module-loaded", "memcg-cache", "device-timeout"].contains(&hit.id) {
        return None;
    }
    let id = if hit.id == "page-allocation-failure" && facts.memcg {
        "memcg-allocation-failure"
    } else {
        hit.id
    };
    let info = signatures::info(id)?;
    let event = hit.event.and_then(|i| boot.events.get(i));
    let kernel = event
        .and_then(|e| e.kernel_version.as_deref())
        .or(facts.kernel);
    // Parameters of later hits of the same id fill what the first one lacks
    // (the root device is often named only on a later line).
    let mut extra = hit.params.clone();
    for other in boot.hits.iter().filter(|h| h.id == hit.id) {
        for (key, value) in &other.params {
            extra.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if ["initrd-root-not-found", "emergency-mode"].contains(&id) {
        add_timed_out_device(boot, id, &mut extra);
    }
    let corrected = extra.contains_key("corrected");
    // A finding whose two severities are equal is as bad whether or not the
    // boot panicked (a missing initramfs), so it counts as having caused it.
    // A machine check reported as an oops (POWER: `Oops: Machine check,
    // sig: 7`) panics as a plain "Fatal exception" of its own event.
    let own_event_panicked =
        id == "machine-check" && event.is_some_and(|e| e.panic_reason.is_some());
    let caused_panic = !corrected
        && (facts.panic_reasons.iter().any(|r| panic_caused_by(id, r)) || own_event_panicked)
        || (info.severity == info.survived);
    let severity = if id == "sysrq-crash" {
        Severity::Info
    } else if let Some(severity) = stage_severity(boot, id, &extra) {
        severity
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
    if extra.contains_key("timed_out") {
        evidence.splice(
            0..0,
            evidence_for(boot, "device-timeout").into_iter().take(2),
        );
        evidence.truncate(MAX_EVIDENCE + 2);
    }
    Some(Draft {
        finding: Finding {
            id: id.to_string(),
            severity,
            title: stage_title(info, &extra),
            explanation: explain(boot, info, hit.id, &extra),
            evidence,
            suggestions: suggestions(info, kernel, &extra),
            next_step: signatures::next_step(id, &extra),
            boot_index: Some(boot.index),
            kernel_version: kernel.map(str::to_string),
            culprit_module: facts.culprit_of(hit.event),
        },
        rank: info.rank,
        event: hit.event,
        explains_panic: severity == Severity::Critical || id == "sysrq-crash",
    })
}

/// The finding's explanation, with what this boot adds to it: how often it was
/// seen beyond the kept evidence, the exit code of init, the panic knob.
fn explain(
    boot: &Boot,
    info: &FindingInfo,
    hit_id: &str,
    extra: &BTreeMap<String, String>,
) -> String {
    let mut explanation = info.explanation.to_string();
    if let Some(count) = boot
        .hit_counts
        .get(hit_id)
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
    explanation
}

/// A module that taints the kernel in a crash trace, once per module. Its
/// severity follows the worst finding of its event, since the module is then
/// the likeliest cause of that finding.
fn faulty_module_drafts(facts: &BootFacts<'_>, drafts: &[Draft]) -> Vec<Draft> {
    let boot = facts.boot;
    let Some(info) = signatures::info("faulty-module") else {
        return Vec::new();
    };
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut modules = Vec::new();
    for (index, event) in boot.events.iter().enumerate() {
        let (Some(module), true) = &facts.culprits[index] else {
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
            .filter(|h| h.id == "tainting-module-loaded" && h.params.get("module") == Some(module))
            .map(|h| h.evidence.clone())
            .collect();
        evidence.extend(event.context_evidence.iter().cloned());
        evidence.truncate(MAX_EVIDENCE);
        let kernel = event.kernel_version.as_deref().or(facts.kernel);
        let extra = params([("module", module.clone())]);
        let tainted = event
            .taint
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| format!(" and the kernel is tainted ({t})"))
            .unwrap_or_default();
        modules.push(Draft {
            finding: Finding {
                id: "faulty-module".into(),
                severity,
                title: format!("{} ({module})", info.title),
                explanation: format!(
                    "{} The module `{module}` is in the crash trace{tainted}.",
                    info.explanation,
                ),
                evidence,
                suggestions: suggestions(info, kernel, &extra),
                next_step: None,
                boot_index: Some(boot.index),
                kernel_version: kernel.map(str::to_string),
                culprit_module: Some(module.clone()),
            },
            rank: info.rank,
            event: Some(index),
            explains_panic: crashed,
        });
    }
    modules
}

/// Where a known bug shows in this boot: `Some(Some(event))` in a crash event,
/// `Some(None)` by its required findings alone (no event), `None` not at all.
/// A bug that names functions must have them on one event's stack, with its
/// required findings on that same event, so that two unrelated crashes of
/// one boot do not add up to a bug.
fn known_bug_event(facts: &BootFacts<'_>, bug: &CompiledBug) -> Option<Option<usize>> {
    let boot = facts.boot;
    if bug.bug.functions.is_empty() {
        let all = bug
            .bug
            .requires
            .iter()
            .all(|r| facts.ids_present.contains(r.as_str()));
        return all.then(|| {
            boot.hits
                .iter()
                .find(|h| bug.bug.requires.iter().any(|r| r == h.id))
                .and_then(|h| h.event)
        });
    }
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
}

fn known_bug_draft(facts: &BootFacts<'_>, bug: &CompiledBug) -> Option<Draft> {
    let boot = facts.boot;
    let event_index = known_bug_event(facts, bug)?;
    let event = event_index.and_then(|i| boot.events.get(i));
    let kernel = event
        .and_then(|e| e.kernel_version.as_deref())
        .or(facts.kernel);
    let build = event
        .and_then(|e| e.kernel_build.as_deref())
        .or(boot.kernel_build.as_deref());
    if !bug.affects(kernel, build) {
        return None;
    }
    let mut evidence: Vec<EvidenceLine> = Vec::new();
    if let Some(i) = event_index {
        // The panic line is left to the top finding (see drop_explained_panic).
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
    let version_note = match kernel {
        Some(kernel) => format!("The kernel {kernel} is older than the fix."),
        None => {
            "The kernel version is not in the log; the bug applies if it is older than the fix."
                .into()
        }
    };
    Some(Draft {
        finding: Finding {
            id: bug.finding_id(),
            severity: Severity::Critical,
            title: bug.bug.title.clone(),
            explanation: format!(
                "{} Affected: {}. Fixed in {} ({}). {version_note}",
                bug.bug.explanation, bug.bug.distribution, bug.bug.fixed_in, bug.bug.reference
            ),
            evidence,
            suggestions: known_bug_suggestions(bug, kernel),
            next_step: None,
            boot_index: Some(boot.index),
            kernel_version: kernel.map(str::to_string),
            culprit_module: facts.culprit_of(event_index),
        },
        // Known bugs rank above every signature but a deliberate SysRq
        // crash (5): they name the cause and the kernel that fixes it.
        rank: 10,
        event: event_index,
        explains_panic: true,
    })
}

/// An older kernel always (the bug is in this kernel, and the fixed one may not
/// be installed yet); for the memcg leak, first the boot parameter that
/// avoids it.
fn known_bug_suggestions(bug: &CompiledBug, kernel: Option<&str>) -> Vec<RecipeSuggestion> {
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
    suggestions
}

/// Drops findings that another finding of the boot already explains.
fn drop_consequences(drafts: &mut Vec<Draft>) {
    let present: BTreeSet<String> = drafts.iter().map(|d| d.finding.id.clone()).collect();
    let has = |id: &str| present.contains(id);
    // A deliberate SysRq crash explains the oops that it produces.
    let sysrq = has("sysrq-crash");
    // The generic `oops` only says what a specific header already says better.
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
        if d.finding.id == "oops" && (specific_oops || has("machine-check")) {
            return false;
        }
        if is_consequence_of_stage(&d.finding.id, &has) {
            return false;
        }
        // When list debugging turns a corruption into a BUG (`kernel BUG at
        // lib/list_debug.c`), that is the same event, not a second bug.
        if d.finding.id == "kernel-bug"
            && has("list-corruption")
            && d.finding
                .evidence
                .iter()
                .all(|e| e.text.contains("list_debug"))
        {
            return false;
        }
        true
    });
}

/// The generic panic finding only when nothing specific explains it; its
/// lines then go to the evidence of the top finding, which they belong to.
fn drop_explained_panic(boot: &Boot, drafts: &mut Vec<Draft>) {
    let explained = drafts
        .iter()
        .any(|d| d.finding.id != "kernel-panic" && d.explains_panic);
    if !explained {
        return;
    }
    let panic_evidence: Vec<EvidenceLine> = evidence_for(boot, "kernel-panic");
    drafts.retain(|d| d.finding.id != "kernel-panic");
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

pub(super) fn summarize(boot: &Boot) -> BootSummary {
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

/// A stage finding another one explains: the emergency shell after a
/// failed fsck, SELinux or the initramfs's root; systemd-initrd's wait
/// after dracut's own report of it.
fn is_consequence_of_stage(id: &str, has: &dyn Fn(&str) -> bool) -> bool {
    match id {
        "emergency-mode" => [
            "filesystem-damaged",
            "initrd-root-not-found",
            "dracut-root-not-found",
            "initramfs-root-not-found",
            "selinux-policy-failed",
        ]
        .iter()
        .any(|other| has(other)),
        "initrd-root-not-found" => has("dracut-root-not-found"),
        "grub-kernel-missing" => has("secure-boot-refused"),
        _ => false,
    }
}

/// The device a `Timed out waiting for device` line named, for the root or
/// mount finding it explains (`root` / `device`).
fn add_timed_out_device(boot: &Boot, id: &str, extra: &mut BTreeMap<String, String>) {
    let Some(device) = boot
        .hits
        .iter()
        .filter(|h| h.id == "device-timeout")
        .find_map(|h| h.params.get("device"))
    else {
        return;
    };
    let key = if id == "initrd-root-not-found" {
        "root"
    } else {
        "device"
    };
    extra
        .entry(key.to_string())
        .or_insert_with(|| device.clone());
    extra.insert("timed_out".into(), "true".into());
}

/// The severity of a stage finding where it depends on what followed: a
/// firmware or GRUB failure after which a kernel still started was not
/// what stopped the boot; an emergency shell or fsck that stopped the
/// boot is critical, the same failure that did not is less.
fn stage_severity(boot: &Boot, id: &str, extra: &BTreeMap<String, String>) -> Option<Severity> {
    let stopped = extra.contains_key("stopped");
    match id {
        "emergency-mode" => Some(if stopped {
            Severity::Critical
        } else {
            Severity::Warning
        }),
        "filesystem-damaged" => Some(if stopped {
            Severity::Critical
        } else {
            Severity::Error
        }),
        "uefi-boot-failed" => {
            // A DVD, network or shell option failing before the disk's
            // starts is the firmware's routine order of tries.
            let failures: Vec<&Hit> = boot.hits.iter().filter(|h| h.id == id).collect();
            let only_removable = failures.iter().all(|h| {
                let description = h.params.get("description").map_or("", String::as_str);
                ["DVD", "CD-ROM", "PXE", "HTTP", "Network", "Shell", "Floppy"]
                    .iter()
                    .any(|kind| description.contains(kind))
            });
            let last_failure = failures.iter().map(|h| h.evidence.line_number).max();
            let fell_back = only_removable && boot.firmware_started > last_failure;
            (fell_back || boot.kernel_seen()).then_some(Severity::Info)
        }
        "secure-boot-refused" | "bootloader-damaged" | "grub-kernel-missing"
            if boot.kernel_seen() =>
        {
            Some(Severity::Warning)
        }
        _ => None,
    }
}

/// A console log in which the kernel never spoke, and that shows nothing
/// else that stopped the boot: the serial console is off.
pub(super) fn no_kernel_output(
    boots: &[Boot],
    findings: &[Finding],
    sources: &[String],
) -> Option<Finding> {
    let os_spoke = |boot: &Boot| {
        boot.kernel_seen()
            || !boot.events.is_empty()
            || boot
                .hit_counts
                .keys()
                .any(|id| !super::boot::FIRMWARE_IDS.contains(id))
    };
    if boots.iter().any(os_spoke)
        || findings
            .iter()
            .any(|f| matches!(f.severity, Severity::Critical | Severity::Error))
    {
        return None;
    }
    let info = signatures::info("no-kernel-output")?;
    let mut evidence: Vec<EvidenceLine> = boots
        .iter()
        .flat_map(|b| b.hits.iter().map(|h| h.evidence.clone()))
        .take(MAX_EVIDENCE)
        .collect();
    if evidence.is_empty() {
        evidence.push(EvidenceLine {
            source: sources.join(", "),
            line_number: 0,
            text: "no kernel message (no `Linux version`, no `Command line:`) in the log".into(),
        });
    }
    Some(Finding {
        id: info.id.to_string(),
        severity: info.severity,
        title: info.title.to_string(),
        explanation: info.explanation.to_string(),
        evidence,
        suggestions: suggestions(info, None, &BTreeMap::new()),
        next_step: None,
        boot_index: None,
        kernel_version: None,
        culprit_module: None,
    })
}

/// The title, with what a stage finding names: the mount, the device, the file.
fn stage_title(info: &FindingInfo, extra: &BTreeMap<String, String>) -> String {
    let named: Vec<String> = [
        ("mount", "mount"),
        ("root", "root"),
        ("device", "device"),
        ("file", "file"),
        ("entry", "boot entry"),
    ]
    .iter()
    .filter_map(|(key, label)| extra.get(*key).map(|v| format!("{label} {v}")))
    .collect();
    if named.is_empty() || !signatures::STAGE_IDS.contains(&info.id) {
        info.title.to_string()
    } else {
        format!("{} ({})", info.title, named.join(", "))
    }
}
