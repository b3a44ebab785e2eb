//! Helpers for root-only integration tests on loop-device images built by the test.
#![allow(dead_code)]

pub mod devtree;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// Tests that attach disks change what `scan` sees: run them one at a time.
static DISK_LOCK: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    DISK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True when the test may attach loop devices; prints a SKIP line otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        println!("SKIP {test}: needs root (loop devices and mounts)");
        false
    }
}

pub fn vmrescue() -> Command {
    vmrescue_at(Path::new(env!("CARGO_BIN_EXE_vmrescue")))
}

/// A command for the vmrescue binary at `binary` (e.g. the release asset).
pub fn vmrescue_at(binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_remove("VMRESCUE_FAILPOINT");
    cmd
}

/// The release asset `scripts/release` built (`VMRESCUE_RELEASE_BIN`, set
/// by scripts/test on x86_64): a `VMRESCUE_RELEASE_BUILD=1` binary, the
/// file a payload downloads. Absent, the test prints a SKIP line.
pub fn release_binary_or_skip(test: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os("VMRESCUE_RELEASE_BIN") else {
        println!(
            "SKIP {test}: VMRESCUE_RELEASE_BIN is not set (scripts/test builds the release asset with scripts/release --arch x86_64)"
        );
        return None;
    };
    let path = PathBuf::from(path);
    // Named but missing is a broken setup, not a reason to skip.
    assert!(
        path.is_file(),
        "VMRESCUE_RELEASE_BIN={} is not a file",
        path.display()
    );
    Some(path)
}

/// The sha256 of a file as `sha256sum` prints it: a program other than
/// vmrescue, so the tests check vmrescue's own sums against it.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

pub fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What must be the same before and after a test on `image`: the mounts
/// under its mount point, the loop devices backed by it, its state file.
/// Other activity on the machine (image builds, another test run) is ignored.
pub fn host_snapshot(image: &TestImage) -> (Vec<String>, String, Vec<String>) {
    let key = image.key();
    let mount_root = format!("/mnt/vmrescue/{key}");
    let backing = image.path.display().to_string();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| {
            let (left, right) = l.split_once(" - ").unwrap();
            let mount_point = left.split(' ').nth(4).unwrap();
            format!("{mount_point} {right}")
        })
        .filter(|m| m.starts_with(&mount_root) || m.contains(&backing))
        .collect();
    mounts.sort();
    let loops: String = sh("losetup -a | sort")
        .lines()
        .filter(|l| l.contains(&backing))
        .map(|l| format!("{l}\n"))
        .collect();
    let states: Vec<String> = std::fs::read_dir("/run/vmrescue")
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| *name == format!("{key}.json"))
                .collect()
        })
        .unwrap_or_default();
    (mounts, loops, states)
}

/// A disk image file in a temporary directory, with helpers to fill it.
pub struct TestImage {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestImage {
    /// `sfdisk` script, then one mkfs per partition (`None` leaves it empty).
    pub fn new(size_mb: u64, sfdisk: &str, filesystems: &[Option<&str>]) -> TestImage {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        // A name of its own, so concurrent test runs never share a target key.
        let path = dir.path().join(format!(
            "disk{}.img",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches(".tmp")
        ));
        sh(&format!(
            "truncate -s {size_mb}M {p} && printf '{sfdisk}' | sfdisk -q {p}",
            p = path.display()
        ));
        let image = TestImage { dir, path };
        image.with_loop(|dev| {
            for (index, fs) in filesystems.iter().enumerate() {
                if let Some(mkfs) = fs {
                    sh(&format!("{mkfs} {dev}p{}", index + 1));
                }
            }
        });
        image
    }

    /// The key `vmrescue mount --image` gives this image (`img-` and the file stem).
    pub fn key(&self) -> String {
        let stem = self.path.file_stem().unwrap().to_string_lossy();
        format!("img-{stem}")
    }

    /// Attaches the image, runs `f` with the loop device path, detaches.
    pub fn with_loop<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        let dev = sh(&format!("losetup -f --show -P {}", self.path.display()))
            .trim()
            .to_string();
        sh(&format!("partx -u {dev} || true; for i in $(seq 50); do ls {dev}p* >/dev/null 2>&1 && break; sleep 0.1; done"));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&dev)));
        sh(&format!("losetup -d {dev}"));
        match result {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Mounts partition `n` on a scratch dir, runs `f` with that dir, unmounts.
    pub fn with_partition<T>(&self, n: u32, f: impl FnOnce(&Path) -> T) -> T {
        self.with_loop(|dev| {
            let mnt = tempfile::tempdir().unwrap();
            sh(&format!("mount {dev}p{n} {}", mnt.path().display()));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(mnt.path())));
            sh(&format!("umount {}", mnt.path().display()));
            match result {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    pub fn uuid(&self, n: u32) -> String {
        self.with_loop(|dev| {
            sh(&format!("blkid -p -o value -s UUID {dev}p{n}"))
                .trim()
                .to_string()
        })
    }
}

/// Writes a minimal installed-OS skeleton (os-release, fstab, a static shell).
pub fn write_os_tree(root: &Path, fstab: &str) {
    for dir in [
        "etc", "boot", "dev", "proc", "sys", "run", "bin", "tmp", "var",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/fstab"), fstab).unwrap();
    if let Ok(busybox) = which("busybox") {
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    }
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

/// GPT: 100 MiB ext4 /boot + XFS root, fstab by UUID plus a missing nofail
/// entry and an NFS line.
pub fn gpt_boot_xfs_root() -> TestImage {
    let image = TestImage::new(
        600,
        "label: gpt\\nsize=100M, type=linux\\nsize=+, type=linux\\n",
        &[Some("mkfs.ext4 -q -L boot"), Some("mkfs.xfs -q -f -L root")],
    );
    let (boot, root) = (image.uuid(1), image.uuid(2));
    let fstab = format!(
        "# /etc/fstab\nUUID={root} / xfs defaults 0 0\nUUID={boot} /boot ext4 defaults 0 2\n\
         UUID=deadbeef-0000-4000-8000-000000000000 /data ext4 defaults,nofail 0 2\n\
         srv:/export /mnt/nfs nfs defaults 0 0\n"
    );
    image.with_partition(2, |dir| {
        write_os_tree(dir, &fstab);
        std::fs::create_dir_all(dir.join("data")).unwrap();
    });
    image.with_partition(1, |dir| {
        std::fs::write(dir.join("vmlinuz-6.1.0-9-amd64"), "kernel").unwrap()
    });
    image
}

/// A RHEL 9-style disk: ext4 root with BLS entries, grub.cfg using blscfg,
/// grubenv with kernelopts, two kernels with modules and initramfs.
pub fn rhel_bls_image() -> TestImage {
    let image = TestImage::new(
        300,
        "label: gpt\\nsize=+, type=linux\\n",
        &[Some("mkfs.ext4 -q -L root")],
    );
    let uuid = image.uuid(1);
    image.with_partition(1, |root| {
        write_os_tree(root, &format!("UUID={uuid} / ext4 defaults 0 1\n"));
        std::fs::write(
            root.join("etc/os-release"),
            "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("etc/default")).unwrap();
        std::fs::write(
            root.join("etc/default/grub"),
            "GRUB_TIMEOUT=5\nGRUB_DEFAULT=saved\nGRUB_CMDLINE_LINUX=\"console=ttyS0,115200n8 rootdelay=300\"\nGRUB_ENABLE_BLSCFG=true\n",
        )
        .unwrap();
        let entries = root.join("boot/loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::create_dir_all(root.join("boot/grub2")).unwrap();
        std::fs::write(root.join("boot/grub2/grub.cfg"), "set default=\"${saved_entry}\"\nload_env\nblscfg\n").unwrap();
        for version in ["5.14.0-362.8.1.el9_3.x86_64", "5.14.0-427.13.1.el9_4.x86_64"] {
            // Modules first: an initramfs older than modules.dep is a finding.
            std::fs::create_dir_all(root.join(format!("lib/modules/{version}/extra"))).unwrap();
            std::fs::write(root.join(format!("lib/modules/{version}/modules.dep")), "").unwrap();
            std::fs::write(root.join(format!("boot/vmlinuz-{version}")), "kernel").unwrap();
            std::fs::write(root.join(format!("boot/initramfs-{version}.img")), "initramfs").unwrap();
            std::fs::write(
                entries.join(format!("0123456789abcdef-{version}.conf")),
                format!(
                    "title Red Hat Enterprise Linux ({version}) 9.4\nversion {version}\nlinux /vmlinuz-{version}\n\
                     initrd /initramfs-{version}.img\noptions root=UUID={uuid} ro console=ttyS0,115200n8\n"
                ),
            )
            .unwrap();
        }
        let mut env = String::from("# GRUB Environment Block\nsaved_entry=0123456789abcdef-5.14.0-427.13.1.el9_4.x86_64\n");
        env.push_str(&"#".repeat(1024 - env.len()));
        std::fs::write(root.join("boot/grub2/grubenv"), env).unwrap();
    });
    image
}

/// The `data` of a `--json` envelope, checked against the schema of the
/// command the envelope names (see [`envelope`]).
pub fn data_of_any(out: &Output) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", text(out)));
    let command = doc["command"].as_str().unwrap_or("?").to_string();
    json_data(out, &command)
}

/// The whole JSON envelope a `--json` run printed, checked against
/// `docs/schema/<command>.schema.json` and against the process itself: the
/// envelope's `exit_code` is the exit status and `ok` is true exactly for 0.
pub fn envelope(out: &Output, command: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", text(out)));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(format!("{command}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{command} --json does not match {}:\n{}\n{}",
        path.display(),
        errors.join("\n"),
        text(out)
    );
    assert_eq!(
        doc["exit_code"],
        out.status.code().unwrap_or(-1),
        "{}",
        text(out)
    );
    assert_eq!(doc["ok"], out.status.success(), "{}", text(out));
    doc
}

/// The `data` of a `--json` run's envelope (see [`envelope`]).
pub fn json_data(out: &Output, command: &str) -> serde_json::Value {
    let doc = envelope(out, command);
    assert!(doc.get("data").is_some(), "no data: {}", text(out));
    doc["data"].clone()
}
