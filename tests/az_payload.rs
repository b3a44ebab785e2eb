//! The `az vm repair run` payload under an emulation of the vm-repair
//! extension's driver: appended to the driver, run as `bash -e` with no
//! arguments from a scratch directory, stdout collapsed with `echo $(cat log)`
//! (globs expanded), only the last 4096 bytes returned, `[STATUS]::SUCCESS`
//! appended only when the payload exits 0.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

struct DriverResult {
    /// What the client shows: the collapsed, glob-expanded last 4 KiB.
    tail: String,
    success: bool,
}

fn run_under_driver(shell: &str, payload: &Path, disk: &str, scratch: &Path) -> DriverResult {
    run_under_driver_with(
        shell,
        payload,
        disk,
        scratch,
        &[("VMRESCUE_BIN", env!("CARGO_BIN_EXE_vmrescue"))],
    )
}

/// The driver on a repair VM with the given environment (no VMRESCUE_BIN:
/// a fresh VM without vmrescue).
fn run_under_driver_with(
    shell: &str,
    payload: &Path,
    disk: &str,
    scratch: &Path,
    envs: &[(&str, &str)],
) -> DriverResult {
    let log = scratch.join("driver-output.log");
    let mut command = Command::new(shell);
    command.env_remove("VMRESCUE_DISK");
    // An empty disk: the payload chooses it (`vmrescue scan --pick`).
    if !disk.is_empty() {
        command.env("VMRESCUE_DISK", disk);
    }
    let status = command
        .args(if shell == "bash" { vec!["-e"] } else { vec![] })
        .arg(payload)
        .current_dir(scratch)
        .env_remove("VMRESCUE_BIN")
        .env_remove("VMRESCUE_DEVICE_ROOT")
        // The test images carry no kernel to boot.
        .env("VMRESCUE_NO_VERIFY_BOOT", "1")
        .env("VMRESCUE_LOG_DIR", scratch.join("logs"))
        .env("VMRESCUE_BIN_DIR", scratch.join("bin"))
        .envs(envs.iter().copied())
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

/// The repair reached the RHEL test image's newest BLS entry.
fn assert_nokmem_in_bls(image: &TestImage) {
    image.with_partition(1, |root| {
        let entry = std::fs::read_to_string(
            root.join("boot/loader/entries/0123456789abcdef-5.14.0-427.13.1.el9_4.x86_64.conf"),
        )
        .unwrap();
        assert!(entry.contains("cgroup.memory=nokmem"), "{entry}");
    });
}

/// The payload's last entry says the disk was repaired and verified.
fn assert_repaired_and_verified(tail: &str) {
    let entries = entries(tail);
    assert!(
        entries
            .last()
            .is_some_and(|e| e.contains("result: repaired and verified")),
        "{entries:#?}"
    );
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

/// A payload for a repair VM that has vmrescue (the tests' VMRESCUE_BIN).
fn payload(dir: &Path, args: &[&str]) -> PathBuf {
    let mut with_binary = args.to_vec();
    with_binary.push("--no-download");
    payload_with(dir, &with_binary)
}

fn payload_with(dir: &Path, args: &[&str]) -> PathBuf {
    payload_from(Path::new(env!("CARGO_BIN_EXE_vmrescue")), dir, args)
}

/// `az-payload ARGS -o DIR/payload.sh` run by the vmrescue at `binary`.
fn payload_from(binary: &Path, dir: &Path, args: &[&str]) -> PathBuf {
    let path = dir.join("payload.sh");
    let out = vmrescue_at(binary)
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
    let scratch = tempfile::tempdir().unwrap();
    // A file a glob in a message would match, were one printed unescaped.
    std::fs::write(scratch.path().join("initramfs-PLANTED.img"), "").unwrap();
    let script = payload(scratch.path(), &["--recipe", "cgroup-nokmem"]);
    let mut images = Vec::new();
    for shell in ["dash", "bash"] {
        // Each shell repairs a disk of its own: a second run changes nothing.
        let image = rhel_bls_image();
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
            result.tail.contains("support bundle on the repair VM: "),
            "{}",
            result.tail
        );
        assert!(
            !result.tail.contains("PLANTED"),
            "a glob was expanded: {}",
            result.tail
        );
        assert!(result.tail.len() <= 4096);
        images.push(image);
    }
    // The kernel argument is in the BLS entries.
    assert_nokmem_in_bls(&images[1]);
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
    // The refusal names the kernels there are and how to choose one.
    assert!(
        result
            .tail
            .contains("5.14.0-427.13.1.el9_4.x86_64 (complete)")
            && result.tail.contains("--param kernel=VERSION"),
        "{}",
        result.tail
    );
}

/// A loopback HTTP server serving `dir` (a release folder), stopped on drop.
struct ReleaseServer {
    child: std::process::Child,
    url: String,
}

impl ReleaseServer {
    fn start(dir: &Path) -> ReleaseServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ReleaseServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A release folder on a loopback server: `binary` as the x86_64 asset
/// (tampered on request after its sum was taken) and its SHA256SUMS.
struct ServedRelease {
    dir: tempfile::TempDir,
    server: ReleaseServer,
    /// The untampered asset's sha256, as SHA256SUMS lists it.
    sum: String,
}

impl ServedRelease {
    fn start(binary: &Path, tampered: bool) -> ServedRelease {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("vmrescue-{}-x86_64-linux-musl", env!("CARGO_PKG_VERSION"));
        let asset = dir.path().join(&name);
        std::fs::copy(binary, &asset).unwrap();
        let sum = sha256sum(&asset);
        std::fs::write(dir.path().join("SHA256SUMS"), format!("{sum}  {name}\n")).unwrap();
        if tampered {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&asset)
                .unwrap();
            std::io::Write::write_all(&mut file, b"tampered").unwrap();
        }
        let server = ReleaseServer::start(dir.path());
        ServedRelease { dir, server, sum }
    }

    fn url(&self) -> &str {
        &self.server.url
    }

    fn sums(&self) -> PathBuf {
        self.dir.path().join("SHA256SUMS")
    }
}

/// PATH without any directory that holds a `vmrescue`: a fresh repair VM.
fn path_without_vmrescue() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("vmrescue").exists())
        .collect();
    std::env::join_paths(kept).unwrap().into_string().unwrap()
}

/// `script` under the driver on a repair VM where vmrescue is not installed
/// (no VMRESCUE_BIN, none on PATH), so it must download and verify one.
fn run_on_a_fresh_repair_vm(image: &TestImage, script: &Path, scratch: &Path) -> DriverResult {
    let path = path_without_vmrescue();
    image.with_loop(|dev| run_under_driver_with("bash", script, dev, scratch, &[("PATH", &path)]))
}

/// A cgroup-nokmem payload made by this build with `--sha256sums`, that
/// downloads from a loopback release server (its binary tampered on request).
fn on_a_fresh_repair_vm(image: &TestImage, scratch: &Path, tampered: bool) -> DriverResult {
    let release = ServedRelease::start(Path::new(env!("CARGO_BIN_EXE_vmrescue")), tampered);
    let sums = release.sums();
    let script = payload_with(
        scratch,
        &[
            "cgroup-nokmem",
            "--release-url",
            release.url(),
            "--sha256sums",
            sums.to_str().unwrap(),
        ],
    );
    run_on_a_fresh_repair_vm(image, &script, scratch)
}

fn image_sha(image: &TestImage) -> String {
    sha256sum(&image.path)
}

#[test]
fn a_fresh_repair_vm_downloads_verifies_and_repairs() {
    if !root_or_skip("az_payload_download") || std::env::consts::ARCH != "x86_64" {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    let result = on_a_fresh_repair_vm(&image, scratch.path(), false);
    assert!(result.success, "{}", result.tail);
    assert!(result.tail.contains("downloading"), "{}", result.tail);
    assert!(scratch.path().join("bin/vmrescue").is_file());
    assert_repaired_and_verified(&result.tail);
}

#[test]
fn a_tampered_download_ends_in_error_and_touches_nothing() {
    if !root_or_skip("az_payload_tampered") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let before = image_sha(&image);
    let scratch = tempfile::tempdir().unwrap();
    let result = on_a_fresh_repair_vm(&image, scratch.path(), true);
    assert!(!result.success, "{}", result.tail);
    assert!(result.tail.contains("sha256 mismatch"), "{}", result.tail);
    assert!(!scratch.path().join("bin/vmrescue").exists());
    assert_eq!(image_sha(&image), before, "the disk was changed");
}

#[test]
fn a_payload_carrying_a_panic_log_applies_the_recipe_it_points_to() {
    if !root_or_skip("az_payload_log") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/panics/slab-objects-remaining-rhel73-docker.log");
    let script = payload(scratch.path(), &["--log", log.to_str().unwrap()]);
    let result = image.with_loop(|dev| run_under_driver("bash", &script, dev, scratch.path()));
    assert!(result.success, "{}", result.tail);
    assert!(
        result.tail.contains("cgroup-nokmem applied"),
        "{}",
        result.tail
    );
    assert_repaired_and_verified(&result.tail);
    assert_nokmem_in_bls(&image);
}

#[test]
fn an_unchanged_disk_is_never_reported_as_success() {
    if !root_or_skip("az_payload_unchanged") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    // cgroup-nokmem twice: the second run has nothing left to change.
    let script = payload(scratch.path(), &["cgroup-nokmem"]);
    let first = image.with_loop(|dev| run_under_driver("bash", &script, dev, scratch.path()));
    assert!(first.success, "{}", first.tail);
    let before = image_sha(&image);
    let second = image.with_loop(|dev| run_under_driver("bash", &script, dev, scratch.path()));
    assert!(!second.success, "{}", second.tail);
    let entries = entries(&second.tail);
    assert!(
        entries
            .iter()
            .rev()
            .find(|e| e.contains("result:"))
            .is_some_and(|e| e.starts_with("[Error")
                && e.contains("result: nothing recognised: disk unchanged")),
        "{}",
        second.tail
    );
    assert_eq!(image_sha(&image), before);
}

#[test]
fn a_payload_that_could_not_work_or_would_not_fit_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let out = vmrescue()
        .args(["az-payload", "rebuild-initramfs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--sha256sums"), "{}", text(&out));

    // 2 MiB that gzip cannot shrink: over the 256 KiB script limit.
    let noise = scratch.path().join("noise.log");
    let random = Command::new("head")
        .args(["-c", "2097152", "/dev/urandom"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(&noise, random).unwrap();
    let out = vmrescue()
        .args(["az-payload", "--no-download", "--log"])
        .arg(&noise)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("room for"), "{}", text(&out));
    let out = vmrescue()
        .args([
            "az-payload",
            "--no-download",
            "--log-tail-kib",
            "64",
            "--log",
        ])
        .arg(&noise)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.len() < 256 * 1024);
}

/// The tail as the extension's driver frames it: Log-Start first, Log-End last.
fn framed(tail: &str) -> String {
    format!("[Log-Start 12/02/2026 06:00:00] {tail} [Log-End 12/02/2026 06:00:09]/root/logs.txt")
}

#[test]
fn az_fleet_judges_the_real_payload_output() {
    use vmrescue::fleet::verdict::{assess, Expect, Verdict};
    if !root_or_skip("az_payload_fleet_verdict") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    let script = payload(scratch.path(), &["cgroup-nokmem"]);
    let first = image.with_loop(|dev| run_under_driver("bash", &script, dev, scratch.path()));
    let judged = assess(&framed(&first.tail), Expect::default());
    assert_eq!(judged.verdict, Verdict::Verified, "{}", first.tail);
    assert_eq!(judged.recipe.as_deref(), Some("cgroup-nokmem"));
    // Run again on the same disk, as after a kill during the first run.
    let second = image.with_loop(|dev| run_under_driver("bash", &script, dev, scratch.path()));
    let resumed = Expect {
        boot_proof: false,
        resumed: true,
    };
    assert_eq!(
        assess(&framed(&second.tail), resumed).verdict,
        Verdict::Verified,
        "{}",
        second.tail
    );
    // Not resumed, the same answer is a disk left as it was: never restored.
    assert_eq!(
        assess(&framed(&second.tail), Expect::default()).verdict,
        Verdict::NothingChanged
    );
}

// The published binary: the release asset scripts/release builds (with
// VMRESCUE_RELEASE_BUILD=1), which bakes its own sha256 into a payload when
// given no download flags. scripts/test builds it; VMRESCUE_RELEASE_BIN
// names it.

/// A setting baked into a generated payload (`NAME="value"`).
fn baked(script: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(script).unwrap();
    let prefix = format!("{name}=\"");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {}", script.display()))
        .trim_end_matches('"')
        .to_string()
}

#[test]
fn the_release_binary_bakes_its_own_sum_and_checks_a_sums_file() {
    let Some(binary) = release_binary_or_skip("az_payload_release_sum") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let real = sha256sum(&binary);
    let url = "http://127.0.0.1:9/release";
    // Only a release URL: the sum can come from nowhere but the binary itself.
    let script = payload_from(
        &binary,
        scratch.path(),
        &["cgroup-nokmem", "--release-url", url],
    );
    assert_eq!(baked(&script, "SHA256_X86_64"), real);
    assert_eq!(baked(&script, "RELEASE_URL"), url);
    // A SHA256SUMS listing its own sum is accepted...
    let name = format!("vmrescue-{}-x86_64-linux-musl", env!("CARGO_PKG_VERSION"));
    let sums = scratch.path().join("SHA256SUMS");
    std::fs::write(&sums, format!("{real}  {name}\n")).unwrap();
    let sums_arg = sums.to_str().unwrap();
    let args = [
        "cgroup-nokmem",
        "--release-url",
        url,
        "--sha256sums",
        sums_arg,
    ];
    let script = payload_from(&binary, scratch.path(), &args);
    assert_eq!(baked(&script, "SHA256_X86_64"), real);
    // So is the SHA256SUMS scripts/release wrote beside it (in its dist/).
    let published = binary.with_file_name("SHA256SUMS");
    if published.is_file() {
        let mut from_dist = args;
        from_dist[4] = published.to_str().unwrap();
        let script = payload_from(&binary, scratch.path(), &from_dist);
        assert_eq!(baked(&script, "SHA256_X86_64"), real);
    }
    // ...and one that lists another sum for it is refused, naming both.
    let other = "0".repeat(64);
    std::fs::write(&sums, format!("{other}  {name}\n")).unwrap();
    let out = vmrescue_at(&binary)
        .arg("az-payload")
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("lists {other}")) && text(&out).contains(&real),
        "{}",
        text(&out)
    );
}

#[test]
fn the_release_binary_payload_downloads_itself_and_repairs() {
    let Some(binary) = release_binary_or_skip("az_payload_release_download") else {
        return;
    };
    if !root_or_skip("az_payload_release_download") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    let release = ServedRelease::start(&binary, false);
    let script = payload_from(
        &binary,
        scratch.path(),
        &["cgroup-nokmem", "--release-url", release.url()],
    );
    assert_eq!(baked(&script, "SHA256_X86_64"), release.sum);
    let result = run_on_a_fresh_repair_vm(&image, &script, scratch.path());
    assert!(result.success, "{}", result.tail);
    assert!(result.tail.contains("downloading"), "{}", result.tail);
    // What ran is the published file, byte for byte.
    assert_eq!(sha256sum(&scratch.path().join("bin/vmrescue")), release.sum);
    assert_repaired_and_verified(&result.tail);
    assert_nokmem_in_bls(&image);
}

#[test]
fn the_release_binary_payload_refuses_a_tampered_asset() {
    let Some(binary) = release_binary_or_skip("az_payload_release_tampered") else {
        return;
    };
    if !root_or_skip("az_payload_release_tampered") {
        return;
    }
    let _serial = serial();
    let image = rhel_bls_image();
    let before = image_sha(&image);
    let scratch = tempfile::tempdir().unwrap();
    let release = ServedRelease::start(&binary, true);
    let script = payload_from(
        &binary,
        scratch.path(),
        &["cgroup-nokmem", "--release-url", release.url()],
    );
    let result = run_on_a_fresh_repair_vm(&image, &script, scratch.path());
    assert!(!result.success, "{}", result.tail);
    assert!(
        result
            .tail
            .contains("sha256 mismatch for the downloaded binary: got "),
        "{}",
        result.tail
    );
    assert!(
        result.tail.contains(&format!("expected {}", release.sum)),
        "{}",
        result.tail
    );
    assert!(!scratch.path().join("bin/vmrescue").exists());
    assert_eq!(image_sha(&image), before, "the disk was changed");
}

/// The payload choosing the repair disk itself (no VMRESCUE_DISK) on a
/// repair VM laid out like `tree` (tests/fixtures/azure-disks, through the
/// VMRESCUE_DEVICE_ROOT hook), its repair disk node a link to the loop
/// device of the test image. Returns the driver's result and the device.
fn payload_finds_the_disk(tree: &str, shell: &str, args: &[&str]) -> (DriverResult, String) {
    let image = rhel_bls_image();
    let scratch = tempfile::tempdir().unwrap();
    let script = payload(scratch.path(), args);
    let device_root = scratch.path().join("device-root");
    let result = image.with_loop(|dev| {
        devtree::lay_out(&devtree::fixture(tree), &device_root, dev);
        let envs = [
            ("VMRESCUE_BIN", env!("CARGO_BIN_EXE_vmrescue")),
            ("VMRESCUE_DEVICE_ROOT", device_root.to_str().unwrap()),
        ];
        let result = run_under_driver_with(shell, &script, "", scratch.path(), &envs);
        (result, dev.to_string())
    });
    if tree == "nvme-bare" {
        assert_nokmem_in_bls(&image);
    }
    result
}

fn assert_chosen(result: &DriverResult, dev: &str) {
    assert!(result.success, "{}", result.tail);
    assert!(
        result.tail.contains(&format!(
            "repair disk {dev} (chosen by vmrescue scan --pick)"
        )),
        "{}",
        result.tail
    );
}

#[test]
fn the_payload_finds_the_scsi_lun0_disk() {
    if !root_or_skip("az_payload_scsi_lun0") {
        return;
    }
    let _serial = serial();
    let (result, dev) = payload_finds_the_disk("scsi", "bash", &["cgroup-nokmem", "--dry-run"]);
    assert_chosen(&result, &dev);
    assert!(result.tail.contains("result: dry run"), "{}", result.tail);
}

#[test]
fn the_payload_finds_the_nvme_disk_by_its_data_by_lun_link() {
    if !root_or_skip("az_payload_nvme_by_lun") {
        return;
    }
    let _serial = serial();
    let (result, dev) =
        payload_finds_the_disk("nvme-by-lun", "dash", &["cgroup-nokmem", "--dry-run"]);
    assert_chosen(&result, &dev);
}

#[test]
fn the_payload_finds_the_bare_nvme_namespace_after_the_os_disk_and_repairs_it() {
    if !root_or_skip("az_payload_nvme_bare") {
        return;
    }
    let _serial = serial();
    let (result, dev) = payload_finds_the_disk("nvme-bare", "bash", &["cgroup-nokmem"]);
    assert_chosen(&result, &dev);
    assert_repaired_and_verified(&result.tail);
}

/// `lsblk` and `blkid` stand-ins on PATH: the NVMe repair VM of
/// tests/fixtures/lsblk/azure-rescue-nvme.json without its repair disk,
/// so no disk of this machine (another test's loop device) can be chosen.
fn nvme_os_only_tools(dir: &Path) -> String {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lsblk");
    let text = std::fs::read_to_string(fixtures.join("azure-rescue-nvme.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["blockdevices"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["name"] != "nvme0n2");
    let listing = dir.join("lsblk.json");
    std::fs::write(&listing, json.to_string()).unwrap();
    let bin = dir.join("tools");
    std::fs::create_dir_all(&bin).unwrap();
    for (tool, body) in [
        ("lsblk", format!("cat '{}'", listing.display())),
        // blkid -p: nothing found on the fixture's devices.
        ("blkid", "exit 2".to_string()),
    ] {
        let path = bin.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, executable).unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn a_repair_vm_with_only_its_own_nvme_os_disk_exits_3_saying_where_it_looked() {
    for shell in ["dash", "bash"] {
        let scratch = tempfile::tempdir().unwrap();
        let script = payload(scratch.path(), &["cgroup-nokmem"]);
        let device_root = scratch.path().join("device-root");
        devtree::lay_out(&devtree::fixture("nvme-os-only"), &device_root, "");
        let path = nvme_os_only_tools(scratch.path());
        let envs = [
            ("VMRESCUE_BIN", env!("CARGO_BIN_EXE_vmrescue")),
            ("VMRESCUE_DEVICE_ROOT", device_root.to_str().unwrap()),
            ("PATH", path.as_str()),
        ];
        let result = run_under_driver_with(shell, &script, "", scratch.path(), &envs);
        assert!(!result.success, "{shell}: {}", result.tail);
        assert!(
            result.tail.contains("Payload exited Some(3)"),
            "{shell}: {}",
            result.tail
        );
        let error = entries(&result.tail)
            .into_iter()
            .find(|e| e.starts_with("[Error") && e.contains("no repair disk"))
            .unwrap_or_else(|| panic!("{shell}: {}", result.tail));
        for looked in [
            "no candidate disk found",
            "/dev/disk/azure/scsi1/lun0: absent",
            "/dev/disk/azure/data/by-lun/0: absent",
            "NVMe controller nvme0: only the OS disk nvme0n1 (namespace 1), no namespace after it",
        ] {
            assert!(error.contains(looked), "{shell}: {error}");
        }
    }
}
