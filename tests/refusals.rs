//! Flags that would aim vmrescue at the rescue VM itself are refused before
//! anything is read or written, with exit 3 and one line naming why (issue
//! 22, part 1): `--root` on the running root, `--image` on anything but a
//! regular file nobody is using, `--log` on devices and FIFOs or past its cap.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::text;

/// Runs vmrescue under `timeout`: a refusal that hangs fails the test.
fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_vmrescue"))
        .args(["--log-file", "/dev/null"])
        .args(args)
        .env_remove("VMRESCUE_FAILPOINT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, started.elapsed())
}

/// Exit 3, quickly, with one error line that contains `needle`.
fn assert_refused(args: &[&str], needle: &str) {
    let (out, elapsed) = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(out.status.code(), Some(3), "{args:?}\n{}", text(&out));
    assert_eq!(errors.len(), 1, "{args:?}: not one line\n{}", text(&out));
    assert!(errors[0].contains(needle), "{args:?}\n{}", text(&out));
    assert!(
        elapsed < Duration::from_secs(10),
        "{args:?} took {elapsed:?}"
    );
}

#[test]
fn root_on_the_running_system_is_refused() {
    for root in ["/", "//", "/usr/.."] {
        assert_refused(
            &["plan", "cgroup-nokmem", "--root", root],
            "the running system's own root",
        );
    }
    // `--root "$DIR/"` with DIR unset in a script.
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" --log-file /dev/null plan cgroup-nokmem --root \"$DIR/\"")
        .arg(env!("CARGO_BIN_EXE_vmrescue"))
        .env_remove("DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn root_on_a_bind_mount_of_the_running_root_is_refused() {
    if !crate::common::root_or_skip("root_on_a_bind_mount") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let point = dir.path().display().to_string();
    crate::common::sh(&format!("mount --bind / {point}"));
    let (out, _) = run(&["plan", "cgroup-nokmem", "--root", &point]);
    crate::common::sh(&format!("umount {point}"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("same device and inode"),
        "{}",
        text(&out)
    );
}

#[test]
fn image_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().display().to_string();
    assert_refused(&["inspect", "--image", "/dev/null"], "character device");
    assert_refused(&["inspect", "--image", &dir_path], "directory");
    let fifo = dir.path().join("disk.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert_refused(&["inspect", "--image", &fifo.display().to_string()], "FIFO");
    if nix::unistd::geteuid().is_root() {
        // A block device node (loop0's number; never opened): use --disk.
        let node = dir.path().join("vda");
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::S_IRUSR,
            nix::sys::stat::makedev(7, 0),
        )
        .unwrap();
        assert_refused(
            &[
                "plan",
                "cgroup-nokmem",
                "--image",
                &node.display().to_string(),
            ],
            "--disk",
        );
    }
}

#[test]
fn image_mounted_or_open_for_writing_is_refused() {
    if !crate::common::root_or_skip("image_mounted_or_open_for_writing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    let image_arg = image.display().to_string();
    let point = dir.path().join("mnt");
    std::fs::create_dir(&point).unwrap();
    crate::common::sh(&format!(
        "truncate -s 16M {image_arg} && mkfs.ext4 -q -F {image_arg} && mount -o loop {image_arg} {}",
        point.display()
    ));
    let (out, _) = run(&["inspect", "--image", &image_arg]);
    crate::common::sh(&format!("umount {}", point.display()));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("is in use: attached to /dev/loop"),
        "{}",
        text(&out)
    );

    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<>\"$1\"; echo ready; exec sleep 60")
        .arg("sh")
        .arg(&image)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    let (out, _) = run(&["inspect", "--image", &image_arg]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("open for writing by pid {}", holder.id())),
        "{}",
        text(&out)
    );
}

#[test]
fn log_devices_fifos_and_huge_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(
        &["diagnose", "--log", "/dev/zero"],
        "/dev/zero is a character device",
    );
    let fifo = dir.path().join("console.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert_refused(
        &["diagnose", "--log", &fifo.display().to_string()],
        "is a FIFO",
    );
    let huge = dir.path().join("huge.log");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(vmrescue::diagnose::log_input::LOG_CAP + 1)
        .unwrap();
    assert_refused(
        &["diagnose", "--log", &huge.display().to_string()],
        "2048 MiB read limit",
    );
    // A regular file and stdin still work.
    let log = dir.path().join("console.log");
    std::fs::write(
        &log,
        "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
    )
    .unwrap();
    let (out, _) = run(&["diagnose", "--log", &log.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_vmrescue"))
        .args(["--log-file", "/dev/null", "diagnose", "--log", "-"])
        .stdin(std::fs::File::open(&log).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("unknown-block"), "{}", text(&out));
}
