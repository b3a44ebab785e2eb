//! Classifier tests: one per signature, ranking rules, the labelled corpus, robustness.

use super::*;

fn classify(log: &str) -> Diagnosis {
    classify_str(log, "test.log").unwrap()
}

fn ids(diagnosis: &Diagnosis) -> Vec<&str> {
    diagnosis.findings.iter().map(|f| f.id.as_str()).collect()
}

fn primary(log: &str) -> Finding {
    let diagnosis = classify(log);
    diagnosis
        .findings
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no finding for {log}"))
}

fn recipe<'a>(finding: &'a Finding, id: &str) -> Option<&'a RecipeSuggestion> {
    finding.suggestions.iter().find(|s| s.recipe == id)
}

#[test]
fn unknown_block_0_0_means_missing_initramfs_and_outranks_the_panic() {
    let log = "\
[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1
[    1.900000] VFS: Cannot open root device \"UUID=5e6f\" or unknown-block(0,0): error -6
[    1.901000] Please append a correct \"root=\" boot option; here are the available partitions:
[    1.902000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
[    1.903000] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-18-amd64 #1 Debian 6.1.76-1
";
    let diagnosis = classify(log);
    assert_eq!(ids(&diagnosis), ["initramfs-missing"]);
    let finding = &diagnosis.findings[0];
    assert_eq!(finding.severity, Severity::Critical);
    assert_eq!(finding.kernel_version.as_deref(), Some("6.1.0-18-amd64"));
    let rebuild = recipe(finding, "rebuild-initramfs").unwrap();
    assert_eq!(
        rebuild.params.get("kernel").map(String::as_str),
        Some("6.1.0-18-amd64")
    );
    assert!(recipe(finding, "older-kernel").is_some());
    assert!(finding.evidence.iter().any(|e| e.line_number == 4));
}

#[test]
fn other_unknown_block_suggests_fixing_the_root_fs() {
    let f =
        primary("Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(8,1)\n");
    assert_eq!(f.id, "root-device-unavailable");
    assert!(recipe(&f, "fix-root-fs").is_some());
}

#[test]
fn cannot_open_root_device_without_block_numbers() {
    let f = primary("VFS: Cannot open root device \"mapper/rootvg-rootlv\"\n");
    assert_eq!(f.id, "root-device-not-found");
    assert_eq!(
        recipe(&f, "fix-root-fs")
            .unwrap()
            .params
            .get("root")
            .map(String::as_str),
        Some("mapper/rootvg-rootlv")
    );
}

#[test]
fn dracut_timeout_and_missing_device_name_the_root() {
    let log = "\
[  190.1] dracut-initqueue[295]: Warning: dracut-initqueue timeout - starting timeout scripts
[  190.9] dracut-initqueue[295]: Warning: Could not boot.
[  191.0] dracut-initqueue[295]: Warning: /dev/mapper/rootvg-rootlv does not exist
Starting Dracut Emergency Shell...
";
    let f = primary(log);
    assert_eq!(f.id, "dracut-root-not-found");
    assert_eq!(f.evidence.len(), 4);
    assert_eq!(
        recipe(&f, "fix-root-fs")
            .unwrap()
            .params
            .get("root")
            .map(String::as_str),
        Some("/dev/mapper/rootvg-rootlv")
    );
}

#[test]
fn initramfs_tools_alert_names_the_root() {
    let log = "Gave up waiting for root file system device.  Common problems:\n\
ALERT!  UUID=0a1b2c3d does not exist.  Dropping to a shell!\n";
    let f = primary(log);
    assert_eq!(f.id, "initramfs-root-not-found");
    assert_eq!(
        recipe(&f, "fix-root-fs")
            .unwrap()
            .params
            .get("root")
            .map(String::as_str),
        Some("UUID=0a1b2c3d")
    );
}

#[test]
fn attempted_to_kill_init_explains_the_exit_code() {
    let f = primary(
        "[    2.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00007f00\n",
    );
    assert_eq!(f.id, "init-killed");
    assert!(f.explanation.contains("127"), "{}", f.explanation);
}

#[test]
fn sysrq_crash_is_informational_and_hides_its_oops_and_panic() {
    let log = "\
[  100.0] sysrq: SysRq : Trigger a crash
[  100.0] BUG: unable to handle kernel NULL pointer dereference at           (null)
[  100.0] IP: [<ffffffff813b>] sysrq_handle_crash+0x16/0x20
[  100.0] Oops: 0002 [#1] SMP
[  100.0] CPU: 0 PID: 1 Comm: bash Not tainted 3.10.0-957.el7.x86_64 #1
[  100.0] Call Trace:
[  100.0]  [<ffffffff813b1>] __handle_sysrq+0x10d/0x170
[  100.1] Kernel panic - not syncing: Fatal exception
";
    let diagnosis = classify(log);
    assert_eq!(ids(&diagnosis), ["sysrq-crash"]);
    assert_eq!(diagnosis.findings[0].severity, Severity::Info);
    assert!(diagnosis.findings[0].suggestions.is_empty());
}

#[test]
fn kernel_bug_records_file_and_line() {
    let log = "\
------------[ cut here ]------------
kernel BUG at fs/ext4/inode.c:2709!
invalid opcode: 0000 [#1] SMP
CPU: 3 PID: 99 Comm: kworker/u8:2 Not tainted 4.15.0-20-generic #21-Ubuntu
RIP: 0010:ext4_writepages+0x5b4/0xe30
Kernel panic - not syncing: Fatal exception
";
    let diagnosis = classify(log);
    assert_eq!(ids(&diagnosis), ["kernel-bug"]);
    assert_eq!(diagnosis.findings[0].severity, Severity::Critical);
}

#[test]
fn null_pointer_dereference_outranks_generic_oops() {
    let log = "\
BUG: kernel NULL pointer dereference, address: 0000000000000008
#PF: supervisor read access in kernel mode
Oops: 0000 [#1] SMP NOPTI
CPU: 1 PID: 2 Comm: kthreadd Not tainted 5.15.0-91-generic #101-Ubuntu
";
    assert_eq!(ids(&classify(log)), ["null-pointer-dereference"]);
}

#[test]
fn paging_request_and_gpf_are_distinct() {
    assert_eq!(
        primary("BUG: unable to handle kernel paging request at ffffeb0400000000\n").id,
        "page-fault"
    );
    assert_eq!(
        primary(
            "general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP\n"
        )
        .id,
        "general-protection-fault"
    );
}

#[test]
fn soft_lockup_that_panicked_names_softlockup_panic() {
    let log = "\
watchdog: BUG: soft lockup - CPU#2 stuck for 23s! [kworker/2:1:123]
CPU: 2 PID: 123 Comm: kworker/2:1 Tainted: G             L    5.4.0-1.el8 #1
Kernel panic - not syncing: softlockup: hung tasks
";
    let f = primary(log);
    assert_eq!(f.id, "soft-lockup");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        recipe(&f, "panic-knobs")
            .unwrap()
            .params
            .get("knob")
            .map(String::as_str),
        Some("softlockup_panic")
    );
    assert!(!classify(log).has("kernel-panic"));
}

#[test]
fn soft_lockup_without_panic_is_a_warning() {
    let f = primary("BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:0]\n");
    assert_eq!(
        (f.id.as_str(), f.severity),
        ("soft-lockup", Severity::Warning)
    );
}

#[test]
fn hard_lockup_and_hung_task_panics() {
    let f = primary("NMI watchdog: Watchdog detected hard LOCKUP on cpu 3\nKernel panic - not syncing: Hard LOCKUP\n");
    assert_eq!(
        (f.id.as_str(), f.severity),
        ("hard-lockup", Severity::Critical)
    );
    let f = primary(
        "INFO: task jbd2/sda1-8:123 blocked for more than 120 seconds.\nKernel panic - not syncing: hung_task: blocked tasks\n",
    );
    assert_eq!(f.id, "hung-task");
    assert_eq!(
        recipe(&f, "panic-knobs")
            .unwrap()
            .params
            .get("knob")
            .map(String::as_str),
        Some("hung_task_panic")
    );
}

#[test]
fn oom_panic_and_deadlock() {
    let f =
        primary("Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled\n");
    assert_eq!(f.id, "oom-panic");
    assert!(recipe(&f, "panic-on-oom").is_some());
    let f = primary("Kernel panic - not syncing: System is deadlocked on memory\n");
    assert_eq!(f.id, "oom-deadlock");
    let f = primary("Kernel panic - not syncing: Out of memory and no killable processes...\n");
    assert_eq!(f.id, "oom-deadlock");
}

#[test]
fn nmi_variants() {
    assert_eq!(
        primary("NMI: IOCK error (debug interrupt?) for reason 71 on CPU 0.\nKernel panic - not syncing: NMI IOCK error: Not continuing\n").id,
        "nmi-io-check"
    );
    let f = primary("Uhhuh. NMI received for unknown reason 30 on CPU 0.\nDazed and confused, but trying to continue\n");
    assert_eq!(
        (f.id.as_str(), f.severity),
        ("nmi-unknown", Severity::Warning)
    );
    assert_eq!(
        primary("Kernel panic - not syncing: NMI: Not continuing\n").id,
        "nmi-unrecovered"
    );
}

#[test]
fn machine_check_fatal_vs_corrected() {
    let f = primary("mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 4: b2000000\nKernel panic - not syncing: Fatal machine check\n");
    assert_eq!(
        (f.id.as_str(), f.severity),
        ("machine-check", Severity::Critical)
    );
    let f = primary("mce: [Hardware Error]: Machine check events logged\n");
    assert_eq!(
        (f.id.as_str(), f.severity),
        ("machine-check", Severity::Warning)
    );
}

#[test]
fn slab_leak_and_memcg_failures_suggest_nokmem() {
    let f = primary("BUG kmalloc-64 (Tainted: G B): Objects remaining in kmalloc-64 on __kmem_cache_shutdown()\n");
    assert_eq!(f.id, "slab-objects-remaining");
    assert!(recipe(&f, "cgroup-nokmem").is_some());
    let log = "SLUB: Unable to allocate memory on node -1 (gfp=0xd0)\n  cache: kmalloc-64(5:docker-1.scope), object size: 64\n";
    let d = classify(log);
    assert!(d.has("memcg-allocation-failure"), "{:?}", ids(&d));
}

#[test]
fn eudp_module_in_trace_is_named_and_suggested_for_removal() {
    let log = "\
[   10.0] eudp: loading out-of-tree module taints kernel.
[   10.0] eudp: module verification failed: signature and/or required key missing - tainting kernel
[   55.1] BUG: unable to handle kernel NULL pointer dereference at 0000000000000010
[   55.1] IP: [<ffffffffc05a1234>] eudp_rx+0x34/0x90 [eudp]
[   55.1] Oops: 0000 [#1] SMP
[   55.1] Modules linked in: eudp(OE) tampercore(OE) xfs libcrc32c
[   55.1] CPU: 1 PID: 0 Comm: swapper/1 Tainted: G           OE  ------------   3.10.0-1160.el7.x86_64 #1
[   55.1] Call Trace:
[   55.1]  [<ffffffffc05a1300>] eudp_recv+0x40/0x70 [eudp]
[   55.1]  [<ffffffff8155aa>] udp_queue_rcv_skb+0x1aa/0x4d0
[   55.1] Kernel panic - not syncing: Fatal exception in interrupt
";
    let diagnosis = classify(log);
    let first = &diagnosis.findings[0];
    assert_eq!(first.id, "faulty-module");
    assert_eq!(first.culprit_module.as_deref(), Some("eudp"));
    assert_eq!(
        recipe(first, "remove-faulty-modules")
            .unwrap()
            .params
            .get("module")
            .map(String::as_str),
        Some("eudp")
    );
    assert!(diagnosis.has("null-pointer-dereference"));
    assert!(!diagnosis.has("kernel-panic"));
    let summary = &diagnosis.boots[0].events[0];
    assert_eq!(summary.taint.as_deref(), Some("GOE"));
}

#[test]
fn tampercore_found_from_modules_list_markers_only() {
    let log = "\
general protection fault: 0000 [#1] SMP
Modules linked in: tampercore(OE) nf_conntrack ext4
CPU: 0 PID: 812 Comm: sshd Tainted: G           OE     4.18.0-348.el8.x86_64 #1
RIP: 0010:__list_add_valid+0x8/0x40
Call Trace:
 tamper_syscall_hook+0x5d/0x120 [tampercore]
 do_syscall_64+0x5b/0x1a0
";
    let f = primary(log);
    assert_eq!(f.id, "faulty-module");
    assert_eq!(f.culprit_module.as_deref(), Some("tampercore"));
}

#[test]
fn in_tree_module_is_culprit_but_not_faulty() {
    let log = "\
BUG: unable to handle kernel paging request at ffff
Modules linked in: xfs libcrc32c
CPU: 0 PID: 1 Comm: a Not tainted 4.18.0-348.el8.x86_64 #1
RIP: 0010:xfs_iflush+0x1/0x2 [xfs]
";
    let d = classify(log);
    assert!(!d.has("faulty-module"));
    assert_eq!(d.findings[0].culprit_module.as_deref(), Some("xfs"));
}

#[test]
fn known_bug_list_del_on_rhel_8_4_suggests_older_kernel_and_fix() {
    let log = "\
list_del corruption. prev->next should be ffff8d5a, but was ffff8d5b
------------[ cut here ]------------
kernel BUG at lib/list_debug.c:53!
invalid opcode: 0000 [#1] SMP NOPTI
CPU: 5 PID: 1 Comm: systemd Kdump: loaded Not tainted 4.18.0-305.el8.x86_64 #1
Kernel panic - not syncing: Fatal exception
";
    let d = classify(log);
    let f = &d.findings[0];
    assert_eq!(f.id, "known-bug-rhel8-4-list-del-corruption");
    let older = recipe(f, "older-kernel").unwrap();
    assert_eq!(
        older.params.get("fixed_in").map(String::as_str),
        Some("4.18.0-305.12.1")
    );
    assert!(d.has("list-corruption"));
    assert!(!d.has("kernel-panic"));
}

#[test]
fn known_bug_is_not_reported_on_a_fixed_kernel() {
    let log = "\
BUG: unable to handle kernel NULL pointer dereference at 0000000000000040
CPU: 2 PID: 0 Comm: swapper/2 Not tainted 5.4.0-125-generic #141-Ubuntu
RIP: 0010:tcp_create_openreq_child+0x2f1/0x400
";
    assert!(!classify(log)
        .findings
        .iter()
        .any(|f| f.id.starts_with("known-bug")));
    let old = log.replace(
        "5.4.0-125-generic #141-Ubuntu",
        "5.4.0-105-generic #119-Ubuntu",
    );
    assert_eq!(primary(&old).id, "known-bug-ubuntu-5-4-tcp-openreq-child");
}

#[test]
fn generic_panic_only_when_nothing_explains_it() {
    let f = primary("Kernel panic - not syncing: something nobody knows\n");
    assert_eq!(f.id, "kernel-panic");
    assert!(recipe(&f, "older-kernel").is_some());
}

#[test]
fn last_boot_is_reported_first() {
    let log = "\
Linux version 5.14.0-70.el9.x86_64 (mockbuild@x) #1 SMP
Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
Linux version 5.14.0-70.el9.x86_64 (mockbuild@x) #1 SMP
Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
";
    let d = classify(log);
    assert_eq!(ids(&d), ["init-killed", "initramfs-missing"]);
    assert_eq!(d.findings[0].boot_index, Some(1));
    assert_eq!(d.boots.len(), 2);
    assert_eq!(d.boots[0].boot_index, 1);
}

#[test]
fn command_line_starts_a_boot_when_there_is_no_version_line() {
    let log = "Command line: root=/dev/sda1\nKernel panic - not syncing: x\nCommand line: root=/dev/sda1\n";
    assert_eq!(classify(log).boots.len(), 2);
}

#[test]
fn syslog_ansi_and_crlf_prefixes_do_not_hide_signatures() {
    let log = "Mar  1 12:00:00 web01 kernel: [ 5.1] \x1b[31mKernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\x1b[0m\r\n";
    let d = classify(log);
    assert_eq!(ids(&d), ["init-killed"]);
    assert_eq!(d.findings[0].evidence[0].line_number, 1);
}

#[test]
fn clean_boot_with_a_warning_has_no_critical_finding() {
    let log = "\
[    0.0] Linux version 6.1.0-18-amd64 #1 SMP
[    0.1] NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.
[    1.0] ------------[ cut here ]------------
[    1.0] WARNING: CPU: 0 PID: 1 at drivers/gpu/drm/x.c:10 x_init+0x10/0x20
[    1.0] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-18-amd64 #1
[    1.0] ---[ end trace 0000000000000000 ]---
[    2.0] Run /init as init process
";
    let d = classify(log);
    assert_eq!(ids(&d), ["kernel-warning"]);
    assert!(d.findings.iter().all(|f| f.severity != Severity::Critical));
}

#[test]
fn known_finding_ids_include_signatures_and_known_bugs() {
    let ids = known_finding_ids().unwrap();
    assert!(ids.iter().any(|id| id == "initramfs-missing"));
    assert!(ids.iter().any(|id| id == "known-bug-rhel7-blk-mq-timeout"));
}

#[test]
fn diagnosis_serializes_with_schema_version() {
    let d = classify("Kernel panic - not syncing: x\n");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["version"], SCHEMA_VERSION);
    assert_eq!(json["findings"][0]["severity"], "critical");
}

#[test]
fn several_sources_continue_boot_numbering() {
    let mut classifier = Classifier::new().unwrap();
    classifier
        .add_reader(&b"Kernel panic - not syncing: a\n"[..], "a.log")
        .unwrap();
    classifier
        .add_reader(&b"Kernel panic - not syncing: b\n"[..], "b.log")
        .unwrap();
    let d = classifier.finish().unwrap();
    assert_eq!(d.findings[0].evidence[0].source, "b.log");
    assert_eq!(d.findings[1].evidence[0].source, "a.log");
}

/// A folder of tests/fixtures.
fn fixture_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A corpus folder's INDEX.toml (provenance and expected findings).
fn read_index<T: serde::de::DeserializeOwned>(dir: &std::path::Path) -> T {
    let text = std::fs::read_to_string(dir.join("INDEX.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

mod corpus {
    use super::*;
    use serde::Deserialize;
    use std::path::PathBuf;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Index {
        log: Vec<Entry>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        file: String,
        source: String,
        distribution: String,
        expected: Vec<String>,
        #[serde(default)]
        absent: Vec<String>,
        #[serde(default)]
        clean: bool,
        #[serde(default)]
        constructed: bool,
        #[allow(dead_code)]
        note: Option<String>,
    }

    fn dir() -> PathBuf {
        super::fixture_dir("panics")
    }

    fn index() -> Index {
        super::read_index(&dir())
    }

    /// Why a corpus log was misclassified, or None when it was right.
    fn judge(entry: &Entry, diagnosis: &Diagnosis) -> Option<String> {
        let found: Vec<&str> = diagnosis.findings.iter().map(|f| f.id.as_str()).collect();
        if entry.clean {
            if let Some(f) = diagnosis
                .findings
                .iter()
                .find(|f| f.severity == Severity::Critical)
            {
                return Some(format!("critical finding {} on a clean log", f.id));
            }
        } else if found.first().copied() != entry.expected.first().map(String::as_str) {
            return Some(format!(
                "primary {:?}, expected {:?}",
                found.first(),
                entry.expected.first()
            ));
        }
        if let Some(missing) = entry
            .expected
            .iter()
            .find(|id| !found.contains(&id.as_str()))
        {
            return Some(format!("missing {missing} in {found:?}"));
        }
        if let Some(extra) = entry.absent.iter().find(|id| found.contains(&id.as_str())) {
            return Some(format!("unexpected {extra} in {found:?}"));
        }
        None
    }

    #[test]
    fn corpus_accuracy_is_at_least_95_percent_with_no_false_panics() {
        let index = index();
        let mut correct = 0usize;
        let mut failures = Vec::new();
        let mut clean_criticals = Vec::new();
        for entry in &index.log {
            assert!(
                !entry.source.is_empty() && !entry.distribution.is_empty(),
                "{}",
                entry.file
            );
            let file = std::fs::File::open(dir().join(&entry.file)).unwrap();
            let diagnosis = classify_reader(std::io::BufReader::new(file), &entry.file).unwrap();
            match judge(entry, &diagnosis) {
                None => correct += 1,
                Some(why) => failures.push(format!("{}: {why}", entry.file)),
            }
            if entry.clean
                && diagnosis
                    .findings
                    .iter()
                    .any(|f| f.severity == Severity::Critical)
            {
                clean_criticals.push(entry.file.clone());
            }
        }
        let accuracy = correct as f64 / index.log.len() as f64;
        println!(
            "corpus accuracy: {correct}/{} = {:.1}%",
            index.log.len(),
            accuracy * 100.0
        );
        for failure in &failures {
            println!("  misclassified {failure}");
        }
        assert!(
            clean_criticals.is_empty(),
            "critical findings on clean logs: {clean_criticals:?}"
        );
        assert!(
            accuracy >= 0.95,
            "accuracy {:.1}% < 95%: {failures:#?}",
            accuracy * 100.0
        );
    }

    #[test]
    fn corpus_has_thirty_real_logs_clean_logs_and_covers_every_signature() {
        let index = index();
        let real = index.log.iter().filter(|e| !e.constructed).count();
        assert!(real >= 30, "only {real} real logs");
        assert!(index.log.iter().filter(|e| e.clean).count() >= 5);
        let mut listed: Vec<_> = std::fs::read_dir(dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".log"))
            .collect();
        listed.sort();
        let mut indexed: Vec<_> = index.log.iter().map(|e| e.file.clone()).collect();
        indexed.sort();
        assert_eq!(
            listed, indexed,
            "every fixture is indexed and every entry exists"
        );
        for info in super::super::signatures::FINDINGS {
            if [
                "kernel-panic",
                "no-init-found",
                "root-device-not-found",
                "page-allocation-failure",
            ]
            .contains(&info.id)
            {
                continue; // generic or covered by unit tests only
            }
            if crate::diagnose::signatures::STAGE_IDS.contains(&info.id) {
                continue; // the boot-failures corpus (tests/fixtures/boot-failures)
            }
            assert!(
                index
                    .log
                    .iter()
                    .any(|e| e.expected.iter().any(|id| id == info.id)),
                "no corpus log expects {}",
                info.id
            );
        }
    }
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn noisy_line() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ 0-9.]{0,14}(Kernel panic - not syncing: |BUG: |Oops: |Call Trace:|RIP: 0010:| [a-z_]{1,12}\\+0x[0-9a-f]{1,4}/0x[0-9a-f]{1,4}( \\[[a-z]{1,6}\\])?|Modules linked in: [a-z()OE ]{0,30}|CPU: [0-9] PID: [0-9]{1,4} Comm: [a-z]{1,5} Tainted: [A-Z ]{0,10}[0-9.a-z-]{0,12}|Linux version [0-9.]{1,8}|unknown-block\\([0-9]{1,3},[0-9]{1,3}\\)|\u{1b}\\[[0-9;]{0,5}m|\r)*",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn classify_never_panics_on_arbitrary_input(lines in proptest::collection::vec(noisy_line(), 0..40)) {
            let log = lines.join("\n");
            let diagnosis = classify_str(&log, "fuzz").unwrap();
            serde_json::to_string(&diagnosis).unwrap();
        }

        #[test]
        fn classify_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            classify_reader(&bytes[..], "bytes").unwrap();
        }
    }

    #[test]
    fn memory_stays_bounded_on_endless_repeats() {
        let mut log = String::new();
        for i in 0..3000 {
            log.push_str(&format!(
                "Linux version 5.{i}.0 #1\nBUG: soft lockup - CPU#0 stuck for 22s! [x:{i}]\n dump_stack+0x1/0x2 [mod{i}]\nModules linked in: m{i}(OE)\n"
            ));
        }
        let d = classify_str(&log, "many").unwrap();
        assert!(d.boots.len() <= 32);
        assert!(d.boots_dropped > 0);
        assert!(d.findings.iter().all(|f| f.evidence.len() <= 10));
    }

    #[test]
    fn a_gigantic_line_is_cut_not_buffered_whole() {
        let mut log = "x".repeat(3 << 20);
        log.push_str("\nKernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n");
        let d = classify_str(&log, "long").unwrap();
        assert_eq!(d.findings[0].id, "init-killed");
        assert_eq!(d.findings[0].evidence[0].line_number, 2);
    }

    /// `cargo test --release --lib diagnose::tests::robustness::throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn throughput_on_a_plain_log() {
        let mut chunk = String::new();
        for i in 0..2000 {
            chunk.push_str(&format!(
                "[{i:5}.123456] usb 1-1: new high-speed USB device number {i} using xhci_hcd\n[{i:5}.223456] EXT4-fs (sda1): mounted filesystem with ordered data mode. Opts: (null)\n"
            ));
        }
        let log = chunk.repeat(256);
        let start = std::time::Instant::now();
        let d = classify_str(&log, "bench").unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "classified {} MB in {secs:.3}s: {:.0} MB/s ({} findings)",
            log.len() / 1_000_000,
            log.len() as f64 / 1e6 / secs,
            d.findings.len()
        );
    }
}

/// Prints the diagnosis of a corpus file as JSON:
/// `DUMP=<file> cargo test --lib diagnose::tests::dump_fixture -- --ignored --nocapture`
#[test]
#[ignore]
fn dump_fixture() {
    let name = std::env::var("DUMP").unwrap_or_default();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/panics")
        .join(&name);
    let text = std::fs::read_to_string(&path).unwrap();
    let diagnosis = classify_str(&text, &name).unwrap();
    println!("{}", serde_json::to_string_pretty(&diagnosis).unwrap());
}

/// The corpus of boot failures that do not panic (tests/fixtures/boot-failures).
mod boot_failures {
    use super::*;
    use serde::Deserialize;
    use std::path::PathBuf;

    #[derive(Deserialize)]
    struct Index {
        log: Vec<Entry>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        file: String,
        source: String,
        distribution: String,
        expected: Vec<String>,
        #[serde(default)]
        absent: Vec<String>,
        #[serde(default)]
        healthy: bool,
        #[serde(default)]
        constructed: bool,
        #[serde(default)]
        recipe: Option<String>,
    }

    fn dir() -> PathBuf {
        super::fixture_dir("boot-failures")
    }

    fn index() -> Index {
        super::read_index(&dir())
    }

    fn judge(entry: &Entry, diagnosis: &Diagnosis) -> Option<String> {
        let found: Vec<&str> = diagnosis.findings.iter().map(|f| f.id.as_str()).collect();
        let errors: Vec<&str> = diagnosis
            .findings
            .iter()
            .filter(|f| matches!(f.severity, Severity::Critical | Severity::Error))
            .map(|f| f.id.as_str())
            .collect();
        if entry.healthy {
            if !errors.is_empty() {
                return Some(format!("error findings {errors:?} on a healthy log"));
            }
        } else if errors.first().copied() != entry.expected.first().map(String::as_str) {
            return Some(format!(
                "first error finding {:?}, expected {:?} (all: {found:?})",
                errors.first(),
                entry.expected.first()
            ));
        }
        if let Some(extra) = entry.absent.iter().find(|id| found.contains(&id.as_str())) {
            return Some(format!("unexpected {extra} in {found:?}"));
        }
        None
    }

    #[test]
    fn every_boot_failure_log_gives_its_finding_and_healthy_ones_no_error() {
        let mut failures = Vec::new();
        for entry in &index().log {
            assert!(!entry.source.is_empty() && !entry.distribution.is_empty());
            let file = std::fs::File::open(dir().join(&entry.file)).unwrap();
            let diagnosis = classify_reader(std::io::BufReader::new(file), &entry.file).unwrap();
            if let Some(why) = judge(entry, &diagnosis) {
                failures.push(format!("{}: {why}", entry.file));
            }
            if let (Some(recipe), Some(first)) = (&entry.recipe, diagnosis.findings.first()) {
                let suggested = first.suggestions.iter().any(|s| &s.recipe == recipe);
                let manual = recipe.is_empty() && first.next_step.is_some();
                if !entry.healthy && !suggested && !manual {
                    failures.push(format!(
                        "{}: {} neither suggests {recipe:?} nor says what to do",
                        entry.file, first.id
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn every_stage_family_has_real_logs_and_the_index_lists_every_file() {
        let index = index();
        for id in crate::diagnose::signatures::STAGE_IDS {
            if *id == "grub-initrd-missing" {
                continue; // the panic corpus's debian12-missing-initrd log and unit tests
            }
            let real = index
                .log
                .iter()
                .filter(|e| !e.constructed && e.expected.first().map(String::as_str) == Some(id))
                .count();
            let any = index
                .log
                .iter()
                .filter(|e| e.expected.first().map(String::as_str) == Some(id))
                .count();
            assert!(
                any >= 1 && (real >= 1),
                "{id}: {real} real logs, {any} in all"
            );
        }
        assert!(index.log.iter().filter(|e| e.healthy).count() >= 4);
        let mut listed: Vec<_> = std::fs::read_dir(dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".log"))
            .collect();
        listed.sort();
        let mut indexed: Vec<_> = index.log.iter().map(|e| e.file.clone()).collect();
        indexed.sort();
        assert_eq!(listed, indexed);
    }

    #[test]
    fn routine_lines_raise_no_error() {
        let log = "\
[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.76-1
[    0.000000] Command line: BOOT_IMAGE=/vmlinuz root=UUID=1 ro console=ttyS0 panic=10
[    0.792185] NMI watchdog: Shutting down hard lockup detector on all cpus
[    1.5] ACPI Error: AE_NOT_FOUND, While resolving a named reference package element (20210730/dspkginit-438)
[    2.1] EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x12345 offset:0x0)
[    3.0] Buffer I/O error on dev sr0, logical block 0, async page read
[    4.0] systemd-fsck[705]: /dev/sda1: clean, 90863/122101760 files, 110935625/488378368 blocks
[   20.0] app[812]: panic: runtime error: invalid memory address or nil pointer dereference
[   20.1] app[813]: thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/main.rs:2:5
";
        let diagnosis = classify(log);
        let errors: Vec<_> = diagnosis
            .findings
            .iter()
            .filter(|f| matches!(f.severity, Severity::Critical | Severity::Error))
            .map(|f| f.id.as_str())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn vendor_watchdog_nmi_and_power_machine_check_oops_are_classed() {
        let hpwdt = "Kernel panic - not syncing: An NMI occurred. Depending on your system the reason for the NMI is logged in any one of the following resources:\n";
        assert_eq!(primary(hpwdt).id, "nmi-unrecovered");
        let power = "\
Oops: Machine check, sig: 7 [#1]
CPU: 3 PID: 0 Comm: swapper/3 Not tainted 4.18.0-305.el8.ppc64le #1
Kernel panic - not syncing: Fatal exception
";
        let diagnosis = classify(power);
        assert_eq!(
            ids(&diagnosis).first().copied(),
            Some("machine-check"),
            "{:?}",
            ids(&diagnosis)
        );
        assert!(!diagnosis.has("oops"));
    }

    #[test]
    fn grub_names_the_missing_kernel_and_initramfs() {
        let f = primary("error: file `/vmlinuz-5.14.0-70.13.1.el9_0.x86_64' not found.\nerror: you need to load the kernel first.\n");
        assert_eq!(f.id, "grub-kernel-missing");
        assert_eq!(
            recipe(&f, "older-kernel")
                .and_then(|s| s.params.get("avoid_kernel"))
                .map(String::as_str),
            Some("5.14.0-70.13.1.el9_0.x86_64")
        );
        let f = primary("error: file `/initramfs-5.14.0-70.el9.x86_64.img' not found.\n");
        assert_eq!(f.id, "grub-initrd-missing");
        assert_eq!(
            recipe(&f, "rebuild-initramfs")
                .and_then(|s| s.params.get("kernel"))
                .map(String::as_str),
            Some("5.14.0-70.el9.x86_64")
        );
    }

    #[test]
    fn the_initramfs_finding_names_the_device_it_waited_for() {
        let f = primary("[ TIME ] Timed out waiting for device dev-disk-by\\x2duuid-5e6f\\x2d01.device.\n[DEPEND] Dependency failed for Initrd Root File System.\n");
        assert_eq!(f.id, "initrd-root-not-found");
        assert_eq!(
            recipe(&f, "fix-root-fs")
                .and_then(|s| s.params.get("root"))
                .map(String::as_str),
            Some("/dev/disk/by-uuid/5e6f-01")
        );
    }

    #[test]
    fn a_firmware_fallback_from_the_dvd_to_the_disk_is_not_a_failure() {
        let log = "\
BdsDxe: failed to load Boot0001 \"UEFI QEMU DVD-ROM QM00003 \" from PciRoot(0x0)/Pci(0x1,0x1)/Ata(0x0): Not Found
BdsDxe: loading Boot0002 \"UEFI QEMU HARDDISK QM00001 \" from PciRoot(0x0)/Pci(0x1,0x1)/Ata(0x0)
BdsDxe: starting Boot0002 \"UEFI QEMU HARDDISK QM00001 \" from PciRoot(0x0)/Pci(0x1,0x1)/Ata(0x0)
[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.76-1
";
        let diagnosis = classify(log);
        assert!(
            diagnosis
                .findings
                .iter()
                .all(|f| f.severity >= Severity::Warning),
            "{:?}",
            ids(&diagnosis)
        );
    }
}
