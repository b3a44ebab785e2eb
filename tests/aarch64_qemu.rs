//! The aarch64 static binary, run under qemu-aarch64-static, gives the same
//! output as the host's x86_64 build: `--version`, `recipes --json`,
//! `diagnose --json` on all fixture logs and `inspect --json` on every
//! fixture tree. scripts/test builds the aarch64 binary first
//! (`cargo build --target aarch64-unknown-linux-musl`); VMRESCUE_AARCH64_BIN
//! names another one (e.g. dist/vmrescue-<version>-aarch64-linux-musl).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const QEMU: &str = "qemu-aarch64-static";

fn aarch64_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("VMRESCUE_AARCH64_BIN") {
        return PathBuf::from(bin);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/aarch64-unknown-linux-musl/debug/vmrescue")
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs `args` with both binaries; each writes its debug log into `logs`.
fn both(qemu: &Path, arm: &Path, logs: &Path, args: &[&str]) -> (Output, Output) {
    let log = |name: &str| logs.join(name).display().to_string();
    let host = Command::new(env!("CARGO_BIN_EXE_vmrescue"))
        .args(["--log-file", &log("x86_64.log")])
        .args(args)
        .output()
        .unwrap();
    let emulated = Command::new(qemu)
        .arg(arm)
        .args(["--log-file", &log("aarch64.log")])
        .args(args)
        .output()
        .unwrap();
    (host, emulated)
}

fn assert_same(qemu: &Path, arm: &Path, logs: &Path, args: &[&str]) -> usize {
    let (host, emulated) = both(qemu, arm, logs, args);
    let what = args.join(" ");
    assert!(!host.stdout.is_empty(), "x86_64 printed nothing for {what}");
    assert_eq!(
        host.status.code(),
        emulated.status.code(),
        "exit codes differ for {what}: aarch64 stderr: {}",
        String::from_utf8_lossy(&emulated.stderr)
    );
    if args.contains(&"--json") {
        let parse = |out: &Output| -> serde_json::Value {
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|err| panic!("{what}: not JSON ({err})"))
        };
        assert_eq!(parse(&host), parse(&emulated), "JSON differs for {what}");
    }
    assert_eq!(
        String::from_utf8_lossy(&host.stdout),
        String::from_utf8_lossy(&emulated.stdout),
        "stdout differs for {what}"
    );
    host.stdout.len()
}

fn fixtures(dir: &str, want_dirs: bool) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            if want_dirs {
                p.is_dir()
            } else {
                p.extension().is_some_and(|e| e == "log")
            }
        })
        .map(|p| p.display().to_string())
        .collect();
    found.sort();
    found
}

#[test]
fn aarch64_binary_under_qemu_user_matches_x86_64() {
    let Some(qemu) = find_on_path(QEMU) else {
        println!("SKIP aarch64_binary_under_qemu_user_matches_x86_64: {QEMU} not installed (Debian package qemu-user-static)");
        return;
    };
    // vmrescue reads the target only through openat2(RESOLVE_IN_ROOT):
    // Debian 12's qemu-user 7.2 answers it with ENOSYS ("has no
    // /etc/os-release"); bookworm-backports' 10.0 emulates it.
    let version = Command::new(&qemu).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let major: u32 = version
        .split("version ")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 10,
        "{QEMU} is too old for openat2 ({}): scripts/install-deps installs 10.x from bookworm-backports",
        version.lines().next().unwrap_or_default()
    );
    let arm = aarch64_binary();
    if !arm.is_file() {
        println!(
            "SKIP aarch64_binary_under_qemu_user_matches_x86_64: no aarch64 binary at {} (cargo build --target aarch64-unknown-linux-musl)",
            arm.display()
        );
        return;
    }
    let file = Command::new("file").arg("-b").arg(&arm).output().unwrap();
    let file = String::from_utf8_lossy(&file.stdout);
    assert!(
        file.contains("ARM aarch64") && file.contains("statically linked"),
        "{file}"
    );

    let started = std::time::Instant::now();
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path();
    let mut runs = 0;
    assert_same(&qemu, &arm, l, &["--version"]);
    assert_same(&qemu, &arm, l, &["recipes", "--json"]);
    runs += 2;
    // One run over every log: most of an emulated run is start-up (compiling
    // the classifier's patterns), and the JSON keeps one boot list per source.
    let panic_logs = [fixtures("panics", false), fixtures("boot-logs", false)].concat();
    assert!(panic_logs.len() > 20, "{panic_logs:?}");
    let mut diagnose = vec!["diagnose", "--json"];
    for log in &panic_logs {
        diagnose.extend(["--log", log.as_str()]);
    }
    let bytes = assert_same(&qemu, &arm, l, &diagnose);
    assert!(bytes > 10_000, "diagnose printed only {bytes} bytes");
    runs += 1;
    let trees = fixtures("trees", true);
    assert!(trees.len() >= 10, "{trees:?}");
    for tree in &trees {
        assert_same(&qemu, &arm, l, &["inspect", "--json", "--root", tree]);
        runs += 1;
    }
    println!(
        "aarch64 ({}) under {QEMU}: {runs} commands in {:.1} s, same output as x86_64 ({} logs, {} trees)",
        arm.display(),
        started.elapsed().as_secs_f64(),
        panic_logs.len(),
        trees.len()
    );
}
