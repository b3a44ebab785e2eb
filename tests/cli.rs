//! The binary's command-line contract: usage errors, missing tools, JSON.

use crate::common::vmrescue;

#[test]
fn unknown_flag_exits_2_with_clap_message() {
    let out = vmrescue()
        .args(["scan", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn missing_lsblk_exits_1_naming_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let out = vmrescue()
        .args(["--log-file"])
        .arg(dir.path().join("log"))
        .arg("scan")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lsblk") && stderr.contains("program not found"),
        "{stderr}"
    );
}

#[test]
fn failing_lsblk_exits_1_with_its_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("lsblk");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'lsblk: cannot read /sys: broken' >&2\nexit 32\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = vmrescue()
        .args(["--log-file"])
        .arg(dir.path().join("log"))
        .arg("scan")
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exited with status 32") && stderr.contains("cannot read /sys: broken"),
        "{stderr}"
    );
}

#[test]
fn scan_json_is_valid_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let out = vmrescue()
        .args(["--log-file"])
        .arg(dir.path().join("log"))
        .args(["scan", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = crate::common::envelope(&out, "scan");
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["command"], "scan");
    assert!(doc["data"]["disks"].is_array());
}

#[test]
fn completions_and_man_page_render() {
    let out = vmrescue().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("vmrescue"));
    // `vmrescue repair <TAB>` offers the recipe ids.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rebuild-initramfs"),
        "no recipe ids in the bash completion"
    );
    // `--param <TAB>` offers each recipe's parameter names.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("crashkernel="),
        "no --param names in the bash completion"
    );
    let out = vmrescue().arg("man").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH vmrescue"));
}

#[test]
fn man_dir_writes_a_page_per_command_with_the_contract_sections() {
    let dir = tempfile::tempdir().unwrap();
    let out = vmrescue()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "vmrescue",
        "vmrescue-repair",
        "vmrescue-diagnose",
        "vmrescue-report",
        "vmrescue-az-payload",
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap();
        assert!(text.contains(&format!(".TH {page} 1")), "{page}");
        for section in [
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
        ] {
            assert!(text.contains(section), "{page} lacks {section}");
        }
    }
    let help = vmrescue().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Exit status:") && help.contains("  6  verification failed"),
        "{help}"
    );
}

#[test]
fn errors_end_with_the_run_log_and_usage_errors_speak_json_under_json() {
    let out = vmrescue()
        .args(["--json", "repair", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report = crate::common::envelope(&out, "repair");
    assert_eq!(report["command"], "repair");
    assert_eq!(report["error"]["kind"], "usage");
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--bogus"));
    // --json is --output json: the two cannot disagree.
    let out = vmrescue()
        .args(["--json", "--output", "text", "recipes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", crate::common::text(&out));

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let out = vmrescue()
        .arg("--log-file")
        .arg(&log)
        .args(["inspect", "--root"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some(format!("full log: {}", log.display()).as_str()),
        "{stderr}"
    );
}

/// Every verb's `--json` output is one envelope that validates against its
/// schema in docs/schema/ (`crate::common::envelope` checks it).
#[test]
fn every_command_speaks_the_versioned_envelope() {
    // `umount` takes down every vmrescue target: none of another test's.
    let _serial = crate::common::serial();
    let dir = tempfile::tempdir().unwrap();
    let root = crate::common::tree::copy_fixture_tree("debian12", dir.path());
    let log = dir.path().join("serial.log");
    std::fs::write(
        &log,
        "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
    )
    .unwrap();
    let root = root.to_str().unwrap();
    let log = log.to_str().unwrap();
    let pages = dir.path().join("man");
    let pages = pages.to_str().unwrap();
    let run = |verb: &str, args: &[&str]| {
        let out = vmrescue()
            .arg("--log-file")
            .arg(dir.path().join("run.log"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        crate::common::envelope(&out, verb)
    };
    let cases: &[(&str, &[&str])] = &[
        ("inspect", &["inspect", "--root", root]),
        ("diagnose", &["diagnose", "--log", log]),
        ("diagnose", &["diagnose", "--root", root, "--log", log]),
        ("plan", &["plan", "panic-on-oom", "--root", root]),
        ("history", &["history", "--root", root]),
        ("recipes", &["recipes"]),
        (
            "recipes",
            &["recipes", "show", "panic-knobs", "--root", root],
        ),
        ("undo", &["undo", "--yes", "--root", root]),
        ("umount", &["umount"]),
        ("man", &["man", "--dir", pages]),
        ("man", &["man"]),
        ("completions", &["completions", "bash"]),
        ("az-payload", &["az-payload", "auto", "--no-download"]),
        ("wizard", &["wizard"]),
        ("chroot", &["chroot", "--root", root]),
        ("verify", &["verify", "--root", root]),
    ];
    for (verb, args) in cases {
        let doc = run(verb, args);
        assert_eq!(doc["command"], *verb, "{doc}");
    }
    // The refusals above are errors inside the envelope.
    assert_eq!(
        run("undo", &["undo", "--yes", "--root", root])["error"]["kind"],
        "refused"
    );
    assert_eq!(run("wizard", &["wizard"])["error"]["kind"], "usage");
}
