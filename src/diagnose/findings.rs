//! Turning the state of a finished boot into ranked findings: culprit module,
//! known bugs, suppression of consequences (the generic panic, the oops a SysRq
//! crash produces) and recipe suggestions with parameters.

use std::collections::{BTreeMap, BTreeSet};

use super::boot::{params, Boot, Event, MAX_EVIDENCE};
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

pub(super) fn boot_findings(boot: &Boot, known_bugs: &[CompiledBug]) -> Vec<Finding> {
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
