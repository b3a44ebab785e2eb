//! The `az vm repair run` payload under an emulation of the vm-repair
//! extension's driver: appended to the driver, run as `bash -e` with no
//! arguments from a scratch directory, stdout collapsed with `echo $(cat log)`
//! (globs expanded), only the last 4096 bytes returned, `[STATUS]::SUCCESS`
//! appended only when the payload exits 0.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct DriverResult {
    /// What the client shows: the collapsed, glob-expanded last 4 KiB.
    tail: String,
    success: bool,
}

fn run_under_driver(shell: &str, payload: &Path, disk: &str, scratch: &Path) -> DriverResult {
    let log = scratch.join("driver-output.log");
    let status = Command::new(shell)
        .args(if shell == "bash" { vec!["-e"] } else { vec![] })
        .arg(payload)
        .current_dir(scratch)
        .env("VMRESCUE_DISK", disk)
        // The test images carry no kernel to boot.
        .env("VMRESCUE_NO_VERIFY_BOOT", "1")
        .env("VMRESCUE_BIN", env!("CARGO_BIN_EXE_vmrescue"))
        .env("VMRESCUE_LOG_DIR", scratch.join("logs"))
        .stdout(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let mut text = std::fs::read_to_string(&log).unwrap();
    if status.success() {
        text.push_str("[STATUS]::SUCCESS\n");
    } else {
        text.push_str(&format!(
            "[Error 01/01/2026 00:00:00]Payload exited {:?}\n",
            status.code()
        ));
    }
    std::fs::write(&log, &text).unwrap();
    // The extension returns `echo $(cat log)`: word splitting and globbing.
    let collapsed = Command::new("bash")
        .args(["-c", "echo $(cat driver-output.log)"])
        .current_dir(scratch)
        .output()
        .unwrap();
    let collapsed = String::from_utf8_lossy(&collapsed.stdout).into_owned();
    let tail = if collapsed.len() > 4096 {
        collapsed[collapsed.len() - 4096..].to_string()
    } else {
        collapsed
    };
    DriverResult {
        success: tail.contains("[STATUS]::SUCCESS"),
        tail,
    }
}

fn entries(tail: &str) -> Vec<String> {
    let re = regex::Regex::new(
        r"\[(Output|Info|Warning|Error|Debug) \d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}\]",
    )
    .unwrap();
    let starts: Vec<usize> = re.find_iter(tail).map(|m| m.start()).collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            tail[s..starts.get(i + 1).copied().unwrap_or(tail.len())]
                .trim()
                .to_string()
        })
        .collect()
}

fn payload(dir: &Path, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join("payload.sh");
    let out = vmrescue()
        .arg("az-payload")
        .args(args)
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    path
}

#[test]
fn a_repair_that_works_reports_success_and_its_summary_in_the_tail() {
    if !root_or_skip("az_payload_success") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    // A file a glob in a message would match, were one printed unescaped.
    std::fs::write(scratch.path().join("initramfs-PLANTED.img"), "").unwrap();
    let script = payload(scratch.path(), &["--recipe", "cgroup-nokmem"]);
    for shell in ["bash", "dash"] {
        let result = image.with_loop(|dev| run_under_driver(shell, &script, dev, scratch.path()));
        assert!(result.success, "{shell}: {}", result.tail);
        let entries = entries(&result.tail);
        assert!(!entries.is_empty(), "{}", result.tail);
        let summary = entries
            .iter()
            .rev()
            .find(|e| e.contains("summary:"))
            .expect("summary in the tail");
        assert!(summary.contains("cgroup-nokmem"), "{summary}");
        assert!(
            !result.tail.contains("PLANTED"),
            "a glob was expanded: {}",
            result.tail
        );
        assert!(result.tail.len() <= 4096);
    }
    // Applied once, then nothing to do: the kernel argument is in the BLS entries.
    image.with_partition(1, |root| {
        let entry = std::fs::read_to_string(
            root.join("boot/loader/entries/0123456789abcdef-5.14.0-427.13.1.el9_4.x86_64.conf"),
        )
        .unwrap();
        assert!(entry.contains("cgroup.memory=nokmem"), "{entry}");
    });
}

#[test]
fn a_refused_repair_reports_an_error_and_no_success() {
    if !root_or_skip("az_payload_refused") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    let script = payload(
        scratch.path(),
        &[
            "--recipe",
            "older-kernel",
            "--kernel",
            "9.9.9-not-installed",
        ],
    );
    let result = image.with_loop(|dev| run_under_driver("bash", &script, dev, scratch.path()));
    assert!(!result.success, "{}", result.tail);
    assert!(
        entries(&result.tail)
            .iter()
            .any(|e| e.starts_with("[Error")),
        "{}",
        result.tail
    );
}
