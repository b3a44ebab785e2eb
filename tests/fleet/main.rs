//! `vmrescue az-fleet` against a faithful fake `az` (tests/fleet/fake_az.rs):
//! bounded parallelism, restore only after a verified run, kill + resume
//! reaching the same end as an uninterrupted run, the summary against what
//! the fake recorded, secrets never shown, and a 500-VM simulation.
//!
//! A custom main (harness = false): run through a symlink named `az`, this
//! binary is the fake; otherwise it runs the tests named on the command line
//! (all when none).

#[path = "../common/mod.rs"]
mod common;
mod fake_az;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fake_az::{Scenario, VmSpec, World};
use serde_json::Value;

fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0).file_name().is_some_and(|n| n == "az") {
        std::process::exit(fake_az::main());
    }
    let tests: &[(&str, fn())] = &[
        (
            "fleet_mixed_scenarios_match_what_the_fake_recorded",
            mixed_scenarios,
        ),
        ("fleet_dry_run_runs_nothing_and_redacts", dry_run),
        ("fleet_release_binary_bakes_its_own_sum", release_binary_sum),
        ("fleet_max_failures_stops_starting_new_vms", max_failures),
        (
            "fleet_kill_and_resume_reaches_the_same_end",
            kill_and_resume,
        ),
        ("fleet_five_hundred_vms_simulated", five_hundred_vms),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    // libtest's conventions: positional filters, `--skip NAME`; other flags ignored.
    let mut filters: Vec<&String> = Vec::new();
    let mut skips: Vec<&String> = Vec::new();
    let mut words = args.iter();
    while let Some(arg) = words.next() {
        if arg == "--skip" {
            skips.extend(words.next());
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        let wanted = filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
        if !wanted || skips.iter().any(|s| name.contains(s.as_str())) {
            continue;
        }
        ran += 1;
        let started = Instant::now();
        let result = std::panic::catch_unwind(test);
        let verdict = if result.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        if result.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

/// A fake Azure and a place for vmrescue's files.
struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn new(scenario: &Scenario) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(std::env::current_exe().unwrap(), dir.path().join("bin/az"))
            .unwrap();
        fake_az::setup(&dir.path().join("fake"), scenario);
        Fleet { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn fake(&self) -> PathBuf {
        self.path("fake")
    }

    /// `vmrescue az-fleet --no-download ARGS` with the fake first on PATH
    /// and fast retries.
    fn command(&self, args: &[&str]) -> Command {
        let binary = Path::new(env!("CARGO_BIN_EXE_vmrescue"));
        self.command_of(binary, &[&["--no-download"], args].concat())
    }

    /// `az-fleet ARGS` run by the vmrescue at `binary`, as `command` but
    /// with the payload's download left to ARGS.
    fn command_of(&self, binary: &Path, args: &[&str]) -> Command {
        let mut cmd = common::vmrescue_at(binary);
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.arg("--log-file")
            .arg(self.path("vmrescue.log"))
            .arg("az-fleet")
            .arg("--state")
            .arg(self.path("state.jsonl"))
            .args(["--retry-base-ms", "20", "--poll-ms", "20"])
            .args(args)
            .env("PATH", path)
            .env("FAKE_AZ_DIR", self.fake())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn vms_file(&self, lines: &[String]) -> PathBuf {
        let path = self.path("vms.txt");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    /// The fake's call log: the `end` records (one per finished call).
    fn calls(&self) -> Vec<Value> {
        lines(&self.fake().join("calls.jsonl"))
            .into_iter()
            .filter(|v| v["event"] == "end")
            .collect()
    }

    fn world(&self, spec: &VmSpec) -> World {
        fake_az::read_world(&self.fake(), &spec.rg, &spec.name).unwrap()
    }
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only complete lines: a fake az may be writing the last one right now.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON rows of a `--json` run, by VM, and the totals, from its one
/// envelope (checked against docs/schema/az-fleet.schema.json).
fn rows(out: &Output) -> (BTreeMap<String, Value>, Value) {
    let data = common::json_data(out, "az-fleet");
    let rows = data["vms"]
        .as_array()
        .unwrap_or_else(|| panic!("no vms: {}", text(out)))
        .iter()
        .map(|v| (v["vm"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    (rows, data["totals"].clone())
}

/// The most `az` calls that ran at the same moment, from their start and end times.
fn peak_concurrency(calls: &[Value]) -> usize {
    let mut events: Vec<(u128, i32)> = Vec::new();
    for c in calls {
        events.push((c["start"].as_u64().unwrap() as u128, 1));
        events.push((c["t"].as_u64().unwrap() as u128, -1));
    }
    // Ends before starts at the same microsecond.
    events.sort();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        peak = peak.max(now);
    }
    peak as usize
}

fn spec(name: &str, change: impl FnOnce(&mut VmSpec)) -> VmSpec {
    let mut vm = VmSpec::new("prod", name);
    change(&mut vm);
    vm
}

fn latency(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn mixed_scenario() -> Scenario {
    Scenario {
        latency_ms: latency(&[
            ("create", 120),
            ("run", 80),
            ("restore", 60),
            ("start", 20),
            ("boot_log", 10),
            ("show", 5),
            ("list", 10),
        ]),
        vms: vec![
            spec("web-01", |_| {}),
            spec("web-02", |v| {
                v.throttle = [
                    ("create".to_string(), 2),
                    ("run".to_string(), 1),
                    ("boot_log".to_string(), 1),
                ]
                .into();
            }),
            spec("web-03", |v| v.create = "quota".into()),
            spec("web-04", |v| v.run = "error".into()),
            spec("web-05", |v| v.run = "cutoff".into()),
            spec("web-06", |v| v.run = "nothing".into()),
            spec("web-07", |v| v.restore = "fail".into()),
            spec("web-08", |v| v.boots_after = false),
            spec("web-09", |v| v.power = "VM deallocated".into()),
            spec("win-10", |v| v.os = "Windows".into()),
            spec("web-11", |v| v.boot_diagnostics = false),
            spec("web-12", |v| {
                v.throttle = [("restore".to_string(), 3)].into()
            }),
        ],
    }
}

fn expected_outcomes() -> BTreeMap<&'static str, &'static str> {
    [
        ("prod/web-01", "repaired"),
        ("prod/web-02", "repaired"),
        ("prod/web-03", "create-failed"),
        ("prod/web-04", "run-failed"),
        ("prod/web-05", "unverified"),
        ("prod/web-06", "nothing-recognised"),
        ("prod/web-07", "restore-failed"),
        ("prod/web-08", "not-booting"),
        ("prod/web-09", "skipped"),
        ("prod/win-10", "skipped"),
        ("prod/web-11", "repaired"),
        ("prod/web-12", "repaired"),
        ("prod/ghost", "skipped"),
    ]
    .into()
}

fn vm_lines(scenario: &Scenario) -> Vec<String> {
    let mut lines: Vec<String> = scenario
        .vms
        .iter()
        .map(|v| {
            if v.name == "web-12" {
                format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}", fake_az::SUB, v.rg, v.name)
            } else {
                v.key()
            }
        })
        .collect();
    lines.insert(0, "# VMs broken by the 6.8 kernel update".into());
    lines.push("prod/ghost".into());
    lines
}

/// Checks the fake's record against the rows: parallelism, restore only
/// after verified, at most one repair VM per VM, and each row's facts.
fn check_against_fake(
    fleet: &Fleet,
    scenario: &Scenario,
    rows: &BTreeMap<String, Value>,
    parallel: usize,
) {
    let calls = fleet.calls();
    let peak = peak_concurrency(&calls);
    assert!(
        peak <= parallel,
        "{peak} az calls at once with --parallel {parallel}"
    );
    assert!(
        !fleet.fake().join("duplicates.jsonl").exists(),
        "a second repair VM was created"
    );
    for vm in &scenario.vms {
        let world = fleet.world(vm);
        let row = &rows[&vm.key()];
        let restores_ok = calls
            .iter()
            .filter(|c| c["vm"] == vm.key() && c["op"] == "restore" && c["result"] == "ok")
            .count();
        if world.restored {
            assert_eq!(
                world.restored_after.as_deref(),
                Some("verified"),
                "{}: restored after {:?}",
                vm.key(),
                world.restored_after
            );
            assert_eq!(restores_ok, 1, "{}", vm.key());
        } else {
            assert_eq!(restores_ok, 0, "{}", vm.key());
        }
        if world.last_run.as_deref() != Some("verified") {
            let restore_calls = calls
                .iter()
                .filter(|c| c["vm"] == vm.key() && c["op"] == "restore")
                .count();
            assert_eq!(
                restore_calls,
                0,
                "{}: restore called after a {:?} run",
                vm.key(),
                world.last_run
            );
        }
        assert_eq!(
            row["restored"].as_bool(),
            Some(world.restored),
            "{}: {row}",
            vm.key()
        );
        assert_eq!(
            row["verified"].as_bool(),
            Some(world.last_run.as_deref() == Some("verified")),
            "{}: {row}",
            vm.key()
        );
        if world.restored && world.started_after_restore {
            let boots = vm
                .boot_diagnostics
                .then_some(world.os_disk_repaired && vm.boots_after);
            assert_eq!(row["boots"].as_bool(), boots, "{}: {row}", vm.key());
        }
        let left = world.repair.is_some();
        assert_eq!(
            row["repair_vm_id"].is_string(),
            left,
            "{}: repair VM left in the fake: {left}; row {row}",
            vm.key()
        );
        if left {
            let commands = row["commands"].as_array().unwrap();
            assert!(
                commands
                    .iter()
                    .any(|c| c.as_str().unwrap().starts_with("az vm repair restore")),
                "{row}"
            );
            assert!(
                commands
                    .iter()
                    .any(|c| c.as_str().unwrap().starts_with("az group delete")),
                "{row}"
            );
        }
    }
}

fn mixed_scenarios() {
    let scenario = mixed_scenario();
    let fleet = Fleet::new(&scenario);
    let vms = fleet.vms_file(&vm_lines(&scenario));
    let out = fleet
        .command(&[
            "--json",
            "--vms",
            vms.to_str().unwrap(),
            "--parallel",
            "3",
            "--start",
            "--boot-wait",
            "2",
        ])
        .output()
        .unwrap();
    let (rows, totals) = rows(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for (vm, outcome) in expected_outcomes() {
        assert_eq!(rows[vm]["outcome"], outcome, "{vm}: {}", rows[vm]);
    }
    assert_eq!(totals["repaired"], 4, "{totals}");
    assert_eq!(totals["skipped"], 3, "{totals}");
    assert_eq!(totals["exit_code"], 1, "{totals}");
    check_against_fake(&fleet, &scenario, &rows, 3);

    // Throttled calls were retried and went through.
    let calls = fleet.calls();
    let throttled = |vm: &str, op: &str| {
        calls
            .iter()
            .filter(|c| c["vm"] == vm && c["op"] == op && c["result"] == "throttled")
            .count()
    };
    assert_eq!(throttled("prod/web-02", "create"), 2);
    assert_eq!(throttled("prod/web-12", "restore"), 3);
    // A quota error is not retried.
    let quota = calls
        .iter()
        .filter(|c| c["vm"] == "prod/web-03" && c["op"] == "create")
        .count();
    assert_eq!(quota, 1, "a quota failure was retried");

    // Evidence kept and baked into the payload.
    let evidence = fleet.path("state.jsonl.d");
    let serial = std::fs::read_to_string(evidence.join("prod__web-01.serial.log")).unwrap();
    assert!(serial.contains("Kernel panic - not syncing"));
    let payload = std::fs::read_to_string(evidence.join("prod__web-01.payload.sh")).unwrap();
    // gzip (1f 8b 08) then base64: "H4sI".
    assert!(
        payload.contains("CONSOLE_LOGS=\"H4sI"),
        "no console log baked in"
    );
    assert_eq!(
        rows["prod/web-01"]["recipe"], "rebuild-initramfs",
        "the baked log drove auto"
    );
    assert!(!evidence.join("prod__web-11.serial.log").exists());
    assert!(rows["prod/web-11"]["serial_log"].is_null());

    check_secrets(&fleet, &[&out]);

    // Run again on the same state: everything is done, nothing is repeated.
    let before = fleet.calls().len();
    let again = fleet
        .command(&[
            "--vms",
            vms.to_str().unwrap(),
            "--parallel",
            "3",
            "--start",
            "--boot-wait",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let new_calls: Vec<Value> = fleet.calls().into_iter().skip(before).collect();
    let repeated: Vec<&Value> = new_calls
        .iter()
        .filter(|c| ["create", "run", "restore", "start"].contains(&c["op"].as_str().unwrap()))
        .collect();
    assert!(
        repeated.is_empty(),
        "a resumed run repeated done steps: {repeated:?}"
    );
    let table = String::from_utf8_lossy(&again.stdout);
    assert!(
        table.contains("prod/web-01")
            && table.contains("repaired")
            && table.contains("Left for a person:"),
        "{table}"
    );
    check_secrets(&fleet, &[&out, &again]);
    std::fs::write(
        std::env::temp_dir().join("vmrescue-fleet-summary.txt"),
        table.as_bytes(),
    )
    .unwrap();
}

/// Every repair password is new per VM, and none is anywhere vmrescue writes.
fn check_secrets(fleet: &Fleet, outputs: &[&Output]) {
    let secrets = lines(&fleet.fake().join("secrets.jsonl"));
    assert!(!secrets.is_empty());
    let mut by_vm: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &secrets {
        by_vm
            .entry(s["vm"].as_str().unwrap().into())
            .or_default()
            .insert(s["password"].as_str().unwrap().into());
    }
    let all: BTreeSet<&String> = by_vm.values().flatten().collect();
    assert_eq!(
        all.len(),
        by_vm.values().map(BTreeSet::len).sum::<usize>(),
        "a password was used for two VMs"
    );
    let mut haystack = String::new();
    for out in outputs {
        haystack.push_str(&text(out));
    }
    for file in ["vmrescue.log", "state.jsonl"] {
        haystack.push_str(&std::fs::read_to_string(fleet.path(file)).unwrap_or_default());
    }
    for entry in std::fs::read_dir(fleet.path("state.jsonl.d")).unwrap() {
        haystack.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    for s in &secrets {
        for field in ["password", "username"] {
            let value = s[field].as_str().unwrap();
            assert!(
                !haystack.contains(value),
                "the repair {field} of {} leaked",
                s["vm"]
            );
        }
    }
}

fn dry_run() {
    let scenario = mixed_scenario();
    let fleet = Fleet::new(&scenario);
    let vms = fleet.vms_file(&vm_lines(&scenario));
    let out = fleet
        .command(&["--vms", vms.to_str().unwrap(), "--dry-run", "--start"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !fleet.fake().join("calls.jsonl").exists(),
        "a dry run called az"
    );
    assert!(
        !fleet.path("state.jsonl").exists(),
        "a dry run wrote a state file"
    );
    let creates: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("az vm repair create"))
        .collect();
    assert_eq!(creates.len(), 13, "{printed}");
    assert!(
        creates
            .iter()
            .all(|l| l.contains("--repair-username <redacted> --repair-password <redacted>")),
        "{printed}"
    );
    assert!(
        printed.contains("az vm repair run -g prod -n web-01 --custom-script-file"),
        "{printed}"
    );
    assert!(
        printed.contains("--subscription 00000000-1111-2222-3333-444444444444"),
        "{printed}"
    );
    assert!(
        printed.contains("# each payload runs the vmrescue installed on the repair VM"),
        "{printed}"
    );
}

/// The release asset (`VMRESCUE_RELEASE_BIN`), given only a release URL:
/// its dry run names its own sha256, and the payload it writes for a VM
/// carries that sum, the one `sha256sum` gives for the file.
fn release_binary_sum() {
    let Some(binary) = common::release_binary_or_skip("fleet_release_binary_bakes_its_own_sum")
    else {
        return;
    };
    let sum = common::sha256sum(&binary);
    let asset = format!("vmrescue-{}-x86_64-linux-musl", env!("CARGO_PKG_VERSION"));
    let scenario = Scenario {
        vms: vec![spec("web-01", |_| {})],
        ..Default::default()
    };
    let fleet = Fleet::new(&scenario);
    let vms = fleet.vms_file(&vm_lines(&scenario));
    let url = ["--release-url", "http://127.0.0.1:9/release"];
    let dry = [&["--vms", vms.to_str().unwrap(), "--dry-run"], &url[..]].concat();
    let out = fleet.command_of(&binary, &dry).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("{asset} sha256 {sum}")),
        "{printed}"
    );
    let run = [&["--json", "--vms", vms.to_str().unwrap()], &url[..]].concat();
    let out = fleet.command_of(&binary, &run).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let payload = fleet.path("state.jsonl.d/prod__web-01.payload.sh");
    let payload = std::fs::read_to_string(payload).unwrap();
    assert!(
        payload.contains(&format!("SHA256_X86_64=\"{sum}\"\n")),
        "the payload carries another sum than {sum}"
    );
}

fn max_failures() {
    let scenario = Scenario {
        latency_ms: latency(&[("create", 30)]),
        vms: (0..6)
            .map(|i| spec(&format!("q-{i}"), |v| v.create = "quota".into()))
            .collect(),
    };
    let fleet = Fleet::new(&scenario);
    let vms = fleet.vms_file(&scenario.vms.iter().map(VmSpec::key).collect::<Vec<_>>());
    let vms = vms.to_str().unwrap();
    let args = [
        "--json",
        "--vms",
        vms,
        "--parallel",
        "1",
        "--max-failures",
        "2",
    ];
    let out = fleet.command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (rows, _) = rows(&out);
    let count = |o: &str| rows.values().filter(|r| r["outcome"] == o).count();
    assert_eq!(
        (count("create-failed"), count("not-started")),
        (2, 4),
        "{rows:?}"
    );
    let creates = fleet.calls().iter().filter(|c| c["op"] == "create").count();
    assert_eq!(creates, 2);
}

/// A world, as far as the end state goes (names with the fleet id left out).
fn end_state(fleet: &Fleet, scenario: &Scenario) -> BTreeMap<String, String> {
    scenario
        .vms
        .iter()
        .map(|vm| {
            let w = fleet.world(vm);
            let repair = w
                .repair
                .as_ref()
                .map(|r| format!("{} {} repaired={}", r.state, r.vm_name, r.disk_repaired));
            (
                vm.key(),
                format!(
                    "restored={} os_disk_repaired={} started={} power={} repair={repair:?}",
                    w.restored, w.os_disk_repaired, w.started_after_restore, w.power
                ),
            )
        })
        .collect()
}

fn kill_and_resume() {
    let mut scenario = mixed_scenario();
    scenario.latency_ms = latency(&[
        ("create", 150),
        ("run", 100),
        ("restore", 150),
        ("start", 20),
        ("boot_log", 10),
        ("show", 5),
    ]);
    let args = |fleet: &Fleet| {
        let vms = fleet.vms_file(&vm_lines(&scenario));
        vec![
            "--json".to_string(),
            "--vms".into(),
            vms.display().to_string(),
            "--parallel".into(),
            "3".into(),
            "--start".into(),
            "--boot-wait".into(),
            "2".into(),
        ]
    };
    let baseline = Fleet::new(&scenario);
    let base_args = args(&baseline);
    let out = baseline
        .command(&base_args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    let (base_rows, _) = rows(&out);
    let base_end = end_state(&baseline, &scenario);

    let fleet = Fleet::new(&scenario);
    let run_args = args(&fleet);
    let argv: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let mut kills = 0;
    let mut in_flight_at_kill: Vec<String> = Vec::new();
    // Starts of repair calls (selection's `vm show` left out).
    let repair_starts = || -> Vec<Value> {
        lines(&fleet.fake().join("calls.jsonl"))
            .into_iter()
            .filter(|v| v["event"] == "start" && v["op"] != "show" && v["op"] != "list")
            .collect()
    };
    // Each run is killed as soon as one more call of this operation has started.
    let ops = [
        "create", "run", "restore", "run", "create", "restore", "start", "run", "create", "restore",
    ];
    for op in ops {
        let started_of = |op: &str| repair_starts().iter().filter(|v| v["op"] == op).count();
        let before = started_of(op);
        let mut child = fleet
            .command(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while started_of(op) <= before
            && Instant::now() < deadline
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            // SIGKILL: no clean-up; the az calls in flight finish on their own, as Azure's would.
            child.kill().unwrap();
            kills += 1;
            let all = lines(&fleet.fake().join("calls.jsonl"));
            for start in all.iter().filter(|v| v["event"] == "start") {
                let ended = all
                    .iter()
                    .any(|v| v["event"] == "end" && v["pid"] == start["pid"]);
                if !ended {
                    in_flight_at_kill.push(format!(
                        "{} {}",
                        start["op"].as_str().unwrap(),
                        start["vm"].as_str().unwrap()
                    ));
                }
            }
        }
        child.wait().unwrap();
        wait_for_orphans(&fleet);
    }
    eprintln!("kill/resume: calls in flight at the kills: {in_flight_at_kill:?}");
    for op in ["create", "run", "restore"] {
        assert!(
            in_flight_at_kill.iter().any(|c| c.starts_with(op)),
            "no kill landed during a {op}: {in_flight_at_kill:?}"
        );
    }
    assert!(kills >= 5, "only {kills} kills landed");
    let out = fleet.command(&argv).output().unwrap();
    let (rows, _) = rows(&out);
    for (vm, row) in &base_rows {
        assert_eq!(
            rows[vm]["outcome"], row["outcome"],
            "{vm}: resumed {} vs uninterrupted {row}",
            rows[vm]
        );
        assert_eq!(rows[vm]["restored"], row["restored"], "{vm}");
        assert_eq!(rows[vm]["boots"], row["boots"], "{vm}");
    }
    assert_eq!(
        end_state(&fleet, &scenario),
        base_end,
        "the fake's world differs after kills and resumes"
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    check_against_fake(&fleet, &scenario, &rows, 3 * 2);
    // Never a second create for a VM whose first one may have made something
    // (no duplicates.jsonl, checked above): a create that worked ran once; one
    // that failed on quota (the extension deleted its group) may run again
    // after a kill that cut it off (at most once per kill).
    for vm in scenario
        .vms
        .iter()
        .filter(|v| v.os == "Linux" && v.power == "VM running")
    {
        let w = fleet.world(vm);
        let allowed = if vm.create == "quota" { 1 + kills } else { 1 };
        assert!(
            (1..=allowed).contains(&w.effective_creates),
            "{}: {} creates",
            vm.key(),
            w.effective_creates
        );
    }
    eprintln!(
        "kill/resume: {kills} SIGKILLs, same outcomes and end state as the uninterrupted run"
    );
}

/// Waits until every az call that started has ended (orphans of a killed run).
fn wait_for_orphans(fleet: &Fleet) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = lines(&fleet.fake().join("calls.jsonl"));
        let starts = all.iter().filter(|v| v["event"] == "start").count();
        let ends = all.iter().filter(|v| v["event"] == "end").count();
        if starts == ends || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// User + system CPU seconds of the waited-for children (and theirs).
fn children_cpu_s() -> f64 {
    // SAFETY: getrusage only fills the struct passed to it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// User + system CPU seconds of a running process itself (not its children).
fn own_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// The peak RSS of a running process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn five_hundred_vms() {
    const VMS: usize = 500;
    const PARALLEL: usize = 25;
    let per_op = [
        ("boot_log", 10u64),
        ("create", 120),
        ("run", 80),
        ("restore", 60),
    ];
    let mut scenario = Scenario {
        latency_ms: latency(&per_op),
        ..Default::default()
    };
    scenario.latency_ms.insert("list".into(), 50);
    for i in 0..VMS {
        let mut vm = VmSpec::new("fleet", &format!("vm-{i:03}"));
        vm.tags.insert("wave".into(), "kernel-6.8".into());
        if i % 50 == 7 {
            vm.throttle.insert("create".into(), 1);
        }
        scenario.vms.push(vm);
    }
    let fleet = Fleet::new(&scenario);
    let cpu_before = children_cpu_s();
    let started = Instant::now();
    let mut child = fleet
        .command(&[
            "--json",
            "-g",
            "fleet",
            "--tag",
            "wave=kernel-6.8",
            "--parallel",
            &PARALLEL.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut { stdout }, &mut text).unwrap();
        text
    });
    let (mut peak, mut own_cpu) = (0, 0.0);
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        own_cpu = own_cpu_s(pid).unwrap_or(own_cpu);
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu_s() - cpu_before;
    let stdout = reader.join().unwrap();
    assert!(status.success(), "exit {:?}", status.code());
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let repaired = doc["data"]["vms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["outcome"] == "repaired")
        .count();
    assert_eq!(repaired, VMS);
    let calls = fleet.calls();
    let concurrency = peak_concurrency(&calls);
    assert!(concurrency <= PARALLEL, "{concurrency} calls at once");
    let per_vm: u64 = per_op.iter().map(|(_, ms)| ms).sum();
    let ideal = VMS.div_ceil(PARALLEL) as f64 * per_vm as f64 / 1000.0;
    let figures = serde_json::json!({
        "vms": VMS, "parallel": PARALLEL, "per_vm_ms": per_vm, "ideal_s": ideal,
        "wall_s": (wall * 100.0).round() / 100.0, "ratio": (wall / ideal * 100.0).round() / 100.0,
        "peak_rss_kib": peak, "az_calls": calls.len(), "peak_concurrent_calls": concurrency,
        "throttled_calls": calls.iter().filter(|c| c["result"] == "throttled").count(),
        "cpu_s_vmrescue_and_fake_az": (cpu * 100.0).round() / 100.0,
        "cpu_s_vmrescue_only": (own_cpu * 100.0).round() / 100.0,
        "loadavg_1min": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or_default().to_string(),
    });
    eprintln!("500-VM simulation: {figures}");
    std::fs::write(
        std::env::temp_dir().join("vmrescue-fleet-sim.json"),
        figures.to_string(),
    )
    .unwrap();
    assert!(wall < 90.0, "{figures}");
}
