//! Field extraction from single kernel messages (already stripped of prefixes).

use std::cmp::Ordering;
use std::sync::OnceLock;

use regex::Regex;

use super::{Frame, LinkedModule};

/// Longest call trace and module list kept per event.
pub const MAX_FRAMES: usize = 64;
pub const MAX_LINKED_MODULES: usize = 512;

fn cpu_line_regex() -> &'static Option<Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?x)
            (?:CPU:\ ?(?P<cpu>\d+)\ .*?)?
            P[Ii][Dd]:\ ?(?P<pid>\d+),?\ +[Cc]omm:\ (?P<comm>.+?)
            (?:\ +Kdump:\ (?:not\ )?loaded)?
            \ +(?:(?P<clean>Not\ tainted)|Tainted:\ (?P<taint>[A-Z\ ]*?))
            (?:\ +-[-\ A-Z]*?)?
            \ +(?P<version>\d\S*)(?:\ +(?P<build>\#\S+))?",
        )
        .ok()
    })
}

fn frame_regex() -> &'static Option<Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?:^|[\s(:\]])(?P<uncertain>\? )?(?P<function>[A-Za-z_][\w.$]*)\+(?P<offset>0x[0-9a-fA-F]+/0x[0-9a-fA-F]+)(?:\s+\[(?P<module>[\w-]+)\])?",
        )
        .ok()
    })
}

/// `CPU: 1 PID: 123 Comm: insmod Tainted: G  OE  5.4.0-105-generic #119-Ubuntu`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuLine {
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: String,
    /// Flags without spaces; "" when "Not tainted".
    pub taint: String,
    pub kernel_version: String,
    pub kernel_build: Option<String>,
}

pub fn cpu_line(message: &str) -> Option<CpuLine> {
    let caps = cpu_line_regex().as_ref()?.captures(message)?;
    let taint = if caps.name("clean").is_some() {
        String::new()
    } else {
        caps.name("taint")
            .map(|m| m.as_str().chars().filter(|c| !c.is_whitespace()).collect())
            .unwrap_or_default()
    };
    Some(CpuLine {
        cpu: caps.name("cpu").and_then(|m| m.as_str().parse().ok()),
        pid: caps.name("pid").and_then(|m| m.as_str().parse().ok()),
        comm: caps.name("comm")?.as_str().to_string(),
        taint,
        kernel_version: caps.name("version")?.as_str().to_string(),
        kernel_build: caps.name("build").map(|m| m.as_str().to_string()),
    })
}

/// The first frame on a line: call-trace entries, `RIP: 0010:f+0x1/0x2 [m]`,
/// `[<c0>] (f+0x1/0x2) from …` (ARM), `pc : f+0x1/0x2` (arm64).
pub fn frame(message: &str) -> Option<Frame> {
    let caps = frame_regex().as_ref()?.captures(message)?;
    Some(Frame {
        function: caps.name("function")?.as_str().to_string(),
        offset: caps.name("offset")?.as_str().to_string(),
        module: caps.name("module").map(|m| m.as_str().to_string()),
        uncertain: caps.name("uncertain").is_some(),
    })
}

/// The function name without compiler suffixes (`.isra.0`, `.cold`, `.constprop.3`).
pub fn base_function(function: &str) -> &str {
    function.split('.').next().unwrap_or(function)
}

/// `Modules linked in: eudp(OE) tampercore(POE) xfs libcrc32c [last unloaded: x]`
pub fn linked_modules(list: &str, into: &mut Vec<LinkedModule>) {
    for token in list.split_whitespace() {
        if token.starts_with('[') || into.len() >= MAX_LINKED_MODULES {
            break;
        }
        let (name, flags) = match token.split_once('(') {
            Some((name, rest)) => (name, rest.trim_end_matches(')')),
            None => (token, ""),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            continue;
        }
        into.push(LinkedModule {
            name: name.to_string(),
            flags: flags.to_string(),
        });
    }
}

/// Whether module taint markers mark a module that is not part of the distribution kernel.
pub fn flags_taint(flags: &str) -> bool {
    flags.contains(['O', 'E', 'P'])
}

/// The module named before `: loading out-of-tree module taints kernel.` and
/// `: module verification failed: …` / `: module license '…' taints kernel.`
pub fn tainting_module_name(message: &str) -> Option<&str> {
    let cut = [
        "loading out-of-tree module",
        "module verification failed",
        "module license",
    ]
    .iter()
    .find_map(|marker| message.find(marker))?;
    let name = message[..cut].trim_end().strip_suffix(':')?.trim();
    let name = name.rsplit(' ').next()?;
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(name)
}

/// `Linux version 5.4.0-105-generic (buildd@…) (gcc …) #119-Ubuntu SMP …`
pub fn version_line(message: &str) -> Option<(String, Option<String>)> {
    let rest = &message[message.find("Linux version ")? + "Linux version ".len()..];
    let version = rest.split_whitespace().next()?;
    if !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let build = rest
        .split_whitespace()
        .find(|token| token.starts_with('#'))
        .map(str::to_string);
    Some((version.to_string(), build))
}

/// Numeric release components for ordering: `4.18.0-305.12.1.el8_4.x86_64` →
/// [4, 18, 0, 305, 12, 1]; Ubuntu's upload number from `#139-Ubuntu` is
/// appended to `5.4.0-123-generic` → [5, 4, 0, 123, 139].
pub fn version_key(release: &str, build: Option<&str>) -> Vec<u64> {
    let mut key = Vec::new();
    let mut numeric_only = true;
    for part in release.split(['.', '-', '_', '+', '~']) {
        match part.parse::<u64>() {
            Ok(n) if numeric_only => key.push(n),
            _ => {
                numeric_only = false;
            }
        }
    }
    if let Some(build) = build {
        let build = build.trim_start_matches('#');
        if let Some(number) = build.strip_suffix("-Ubuntu").or_else(|| {
            build
                .split_once('-')
                .filter(|(_, rest)| rest.starts_with("Ubuntu"))
                .map(|(n, _)| n)
        }) {
            let number = number.split('~').next().unwrap_or(number);
            if let Ok(n) = number.parse::<u64>() {
                if key.len() == 4 {
                    key.push(n);
                }
            }
        }
    }
    key
}

/// Orders two numeric keys from [`version_key`], missing trailing components
/// counting as 0 (kernel strings compare with `inspect::version::compare_versions`).
pub fn compare_version_keys(left: &[u64], right: &[u64]) -> Ordering {
    let len = left.len().max(right.len());
    for i in 0..len {
        let a = left.get(i).copied().unwrap_or(0);
        let b = right.get(i).copied().unwrap_or(0);
        match a.cmp(&b) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_reads_taint_flags_version_and_comm() {
        let line = cpu_line(
            "CPU: 1 PID: 123 Comm: insmod Kdump: loaded Tainted: G           OE     5.4.0-105-generic #119-Ubuntu",
        )
        .unwrap();
        assert_eq!(line.cpu, Some(1));
        assert_eq!(line.pid, Some(123));
        assert_eq!(line.comm, "insmod");
        assert_eq!(line.taint, "GOE");
        assert_eq!(line.kernel_version, "5.4.0-105-generic");
        assert_eq!(line.kernel_build.as_deref(), Some("#119-Ubuntu"));

        let line =
            cpu_line("CPU: 0 UID: 0 PID: 1 Comm: swapper/0 Not tainted 6.11.2-300.fc41.x86_64 #1")
                .unwrap();
        assert_eq!(line.taint, "");
        assert_eq!(line.kernel_version, "6.11.2-300.fc41.x86_64");

        let old = cpu_line("Pid: 0, comm: swapper Not tainted 2.6.32-431.el6.x86_64 #1 Dell Inc.")
            .unwrap();
        assert_eq!((old.cpu, old.pid), (None, Some(0)));
        assert_eq!(old.kernel_version, "2.6.32-431.el6.x86_64");

        let rhel8 = cpu_line(
            "CPU: 18 PID: 1 Comm: kworker/18:2 Kdump: loaded Tainted: G        W IOE    --------- -  - 4.18.0-240.el8.x86_64 #1",
        )
        .unwrap();
        assert_eq!(
            (rhel8.taint.as_str(), rhel8.kernel_version.as_str()),
            ("GWIOE", "4.18.0-240.el8.x86_64")
        );
        let rhel7 = cpu_line("CPU: 1 PID: 1 Comm: swapper/0 Tainted: G               ------------ T 3.10.0-1160.el7.x86_64 #1").unwrap();
        assert_eq!(rhel7.kernel_version, "3.10.0-1160.el7.x86_64");
    }

    #[test]
    fn frame_reads_module_and_uncertainty_in_all_styles() {
        let f = frame("? eudp_rcv.isra.3+0x1f/0x80 [eudp]").unwrap();
        assert_eq!(
            (f.function.as_str(), f.module.as_deref(), f.uncertain),
            ("eudp_rcv.isra.3", Some("eudp"), true)
        );
        assert_eq!(base_function(&f.function), "eudp_rcv");
        let f = frame("RIP: 0010:tamper_hook+0x12/0x30 [tampercore]").unwrap();
        assert_eq!(f.function, "tamper_hook");
        assert_eq!(f.module.as_deref(), Some("tampercore"));
        let f = frame("[<ffffffff8163e7a5>] dump_stack+0x19/0x1b").unwrap();
        assert_eq!((f.function.as_str(), f.module), ("dump_stack", None));
        let f = frame(
            "[<c010f8b0>] (unwind_backtrace+0x0/0xe0) from [<c010b9c4>] (show_stack+0x10/0x14)",
        )
        .unwrap();
        assert_eq!(f.function, "unwind_backtrace");
        assert!(frame("no frame here 0x12").is_none());
    }

    #[test]
    fn linked_modules_keep_taint_markers_and_stop_at_last_unloaded() {
        let mut modules = Vec::new();
        linked_modules(
            "eudp(OE) tampercore(POE) xfs [last unloaded: foo]",
            &mut modules,
        );
        let names: Vec<_> = modules
            .iter()
            .map(|m| (m.name.as_str(), m.flags.as_str()))
            .collect();
        assert_eq!(names, [("eudp", "OE"), ("tampercore", "POE"), ("xfs", "")]);
    }

    #[test]
    fn tainting_module_name_is_the_word_before_the_marker() {
        assert_eq!(
            tainting_module_name("eudp: loading out-of-tree module taints kernel."),
            Some("eudp")
        );
        assert_eq!(
            tainting_module_name(
                "tampercore: module verification failed: signature and/or required key missing - tainting kernel"
            ),
            Some("tampercore")
        );
        assert_eq!(
            tainting_module_name("loading out-of-tree module taints kernel."),
            None
        );
    }

    #[test]
    fn version_keys_order_distribution_kernels() {
        let rhel = version_key("4.18.0-305.el8.x86_64", None);
        assert_eq!(rhel, [4, 18, 0, 305]);
        let fixed = version_key("4.18.0-305.12.1.el8_4", None);
        assert_eq!(compare_version_keys(&rhel, &fixed), Ordering::Less);
        let ubuntu = version_key("5.4.0-123-generic", Some("#139-Ubuntu"));
        assert_eq!(ubuntu, [5, 4, 0, 123, 139]);
        assert_eq!(
            compare_version_keys(&ubuntu, &version_key("5.4.0-123.139", None)),
            Ordering::Equal
        );
        let older = version_key("5.4.0-105-generic", Some("#119~18.04.1-Ubuntu"));
        assert_eq!(older, [5, 4, 0, 105, 119]);
    }
}
