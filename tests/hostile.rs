//! A hostile or damaged target disk (issue: hostile disks). The tree is
//! untrusted: symlinks that point at the rescue host's files, symlinked
//! directories, hard links, FIFOs and device nodes where config files should
//! be, huge files and directories. Every case is handled inside the target
//! or refused with a clear message; nothing on the host changes, nothing
//! hangs, memory stays bounded.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::text;
use common::tree::write;

fn vmrescue(args: &[&str], root: &Path) -> Output {
    // `timeout` turns a hang (a FIFO read) into a failure instead of a stuck suite.
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_vmrescue"))
        .args(["--log-file", "/dev/null"])
        .args(args)
        .arg("--root")
        .arg(root)
        .env_remove("VMRESCUE_FAILPOINT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A minimal Debian tree that the sysctl and kernel-argument recipes accept.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    write(root, "etc/fstab", "UUID=1111-2222 / ext4 defaults 0 1\n");
    write(root, "sbin/init", "init");
    write(root, "lib/modules/6.1.0-28-amd64/modules.dep", "");
    write(root, "boot/vmlinuz-6.1.0-28-amd64", "kernel");
    write(root, "boot/initrd.img-6.1.0-28-amd64", "initramfs");
    write(
        root,
        "boot/loader/entries/debian-6.1.0-28-amd64.conf",
        "title Debian\nversion 6.1.0-28-amd64\nlinux /vmlinuz-6.1.0-28-amd64\ninitrd /initrd.img-6.1.0-28-amd64\noptions root=UUID=1111-2222 ro\n",
    );
    write(root, "boot/loader/loader.conf", "default debian-*\n");
    std::fs::create_dir_all(root.join("var/lib")).unwrap();
    dir
}

/// sha256 of the host files the hostile links aim at (missing ones too).
fn host_files_digest() -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            "for f in /etc/shadow /etc/passwd /etc/default/grub /etc/sysctl.conf /etc/sysctl.d/99-vmrescue.conf /etc/99-vmrescue.conf; do echo \"$f $(sha256sum < $f 2>/dev/null || echo missing)\"; done; ls -la /etc/sysctl.d 2>/dev/null",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn absolute_and_dotdot_symlinks_to_host_files_are_followed_inside_the_target() {
    let host_before = host_files_digest();
    let tree = tree();
    let root = tree.path();
    // The target's own /etc/shadow is where the absolute link really leads.
    write(root, "etc/shadow", "root:*:19000:0:99999:7:::\n");
    write(root, "etc/default/placeholder", "");
    symlink("/etc/shadow", root.join("etc/default/grub")).unwrap();
    symlink("../../../../../../etc/passwd", root.join("etc/sysctl.conf")).unwrap();
    write(root, "etc/passwd", "vm.panic_on_oom = 1\n");

    let out = vmrescue(&["repair", "panic-on-oom", "--yes"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The `..` chain is clamped at the target's root: its /etc/passwd was edited.
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("# disabled by vmrescue"), "{passwd}");
    let out = vmrescue(&["repair", "cgroup-nokmem", "--yes"], root);
    assert!(
        matches!(out.status.code(), Some(0) | Some(5)),
        "handled or refused: {}",
        text(&out)
    );
    assert_eq!(host_files_digest(), host_before, "a host file changed");
    let out = vmrescue(&["undo", "--yes"], root);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(host_files_digest(), host_before);
}

#[test]
fn a_symlinked_drop_in_directory_resolves_inside_the_target() {
    let host_before = host_files_digest();
    let tree = tree();
    let root = tree.path();
    symlink("/etc", root.join("etc/sysctl.d")).unwrap();
    write(root, "etc/sysctl.conf", "vm.panic_on_oom = 1\n");
    let out = vmrescue(&["repair", "panic-on-oom", "--yes"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        root.join("etc/99-vmrescue.conf").is_file(),
        "the drop-in landed in the target's /etc (the link's target inside the root)"
    );
    assert_eq!(host_files_digest(), host_before, "a host file changed");
    let out = vmrescue(&["undo", "--yes"], root);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!root.join("etc/99-vmrescue.conf").exists());
}

#[test]
fn a_hard_linked_config_is_replaced_and_its_other_name_keeps_the_old_content() {
    let tree = tree();
    let root = tree.path();
    write(root, "etc/sysctl.conf", "vm.panic_on_oom = 1\n");
    std::fs::hard_link(root.join("etc/sysctl.conf"), root.join("root-notes.txt")).unwrap();
    let out = vmrescue(&["repair", "panic-on-oom", "--yes"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("root-notes.txt")).unwrap(),
        "vm.panic_on_oom = 1\n",
        "the atomic replace must not write through a hard link into another file"
    );
}

#[test]
fn a_fifo_or_device_node_where_a_config_file_should_be_is_refused_without_hanging() {
    let tree = tree();
    let root = tree.path();
    nix::unistd::mkfifo(
        &root.join("etc/sysctl.conf"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = vmrescue(&["plan", "panic-on-oom"], root);
    assert_ne!(out.status.code(), Some(124), "vmrescue hung on a FIFO");
    assert!(started.elapsed() < Duration::from_secs(50));
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a FIFO, not a regular file"),
        "{}",
        text(&out)
    );
    if nix::unistd::geteuid().is_root() {
        std::fs::remove_file(root.join("etc/sysctl.conf")).unwrap();
        // /dev/zero's numbers: an endless read if it were opened as a file.
        nix::sys::stat::mknod(
            &root.join("etc/sysctl.conf"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        let out = vmrescue(&["plan", "panic-on-oom"], root);
        assert_ne!(
            out.status.code(),
            Some(124),
            "vmrescue hung on a device node"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("a device node, not a regular file"),
            "{}",
            text(&out)
        );
    }
}

/// Peak RSS in KiB of a vmrescue run (GNU time's %M), with its output.
fn peak_rss_kib(args: &[&str], root: Option<&Path>) -> (u64, Output) {
    let rss = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(rss.path())
        .arg(env!("CARGO_BIN_EXE_vmrescue"))
        .args(["--log-file", "/dev/null"])
        .args(args)
        .stdin(Stdio::null());
    if let Some(root) = root {
        cmd.arg("--root").arg(root);
    }
    let out = cmd.output().unwrap();
    let kib = std::fs::read_to_string(rss.path())
        .unwrap()
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    (kib, out)
}

fn have_gnu_time(test: &str) -> bool {
    let found = Path::new("/usr/bin/time").exists();
    if !found {
        println!("SKIP {test}: needs /usr/bin/time (apt install time)");
    }
    found
}

/// Memory bound stated in the safety report: files are read up to 32 MiB,
/// logs line by line with long lines cut, so a run stays under 100 MiB.
const RSS_BOUND_KIB: u64 = 100 * 1024;

#[test]
fn a_2_gib_grub_cfg_is_refused_with_bounded_memory() {
    if !have_gnu_time("a_2_gib_grub_cfg") {
        return;
    }
    let tree = tree();
    let root = tree.path();
    write(root, "boot/grub/grub.cfg", "");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("boot/grub/grub.cfg"))
        .unwrap();
    file.set_len(2 << 30).unwrap();
    let (kib, out) = peak_rss_kib(&["inspect", "--json"], Some(root));
    assert!(kib < RSS_BOUND_KIB, "peak RSS {kib} KiB: {}", text(&out));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("larger than"),
        "a clear refusal: {}",
        text(&out)
    );
    println!(
        "2 GiB grub.cfg: peak RSS {kib} KiB, exit {:?}",
        out.status.code()
    );
}

#[test]
fn a_100_mb_log_line_is_classified_with_bounded_memory() {
    if !have_gnu_time("a_100_mb_log_line") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let mut text_log = String::from("[    0.000000] Linux version 6.1.0-28-amd64\n");
    text_log.push_str(&"x".repeat(100 << 20));
    text_log.push_str("\n[    1.912334] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n");
    std::fs::write(&log, text_log).unwrap();
    let log = log.display().to_string();
    let (kib, out) = peak_rss_kib(&["diagnose", "--json", "--log", &log], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(kib < RSS_BOUND_KIB, "peak RSS {kib} KiB");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unknown-block(0,0)"),
        "the panic after the long line is still found: {}",
        text(&out)
    );
    println!("100 MB log line: peak RSS {kib} KiB");
}

#[test]
fn a_hundred_thousand_bls_entries_do_not_blow_up() {
    if !have_gnu_time("a_hundred_thousand_bls_entries") {
        return;
    }
    let tree = tree();
    let root = tree.path();
    let entries = root.join("boot/loader/entries");
    for i in 0..100_000 {
        std::fs::write(
            entries.join(format!("junk-{i:06}.conf")),
            "title junk\nversion 0\nlinux /vmlinuz-0\n",
        )
        .unwrap();
    }
    let started = std::time::Instant::now();
    let (kib, out) = peak_rss_kib(&["inspect", "--json"], Some(root));
    assert_ne!(out.status.code(), Some(101), "a panic: {}", text(&out));
    assert!(kib < RSS_BOUND_KIB * 4, "peak RSS {kib} KiB");
    println!(
        "100,000 BLS entries: inspect exit {:?}, peak RSS {kib} KiB, {:.1} s",
        out.status.code(),
        started.elapsed().as_secs_f64()
    );
}

/// What a hostile `update-initramfs` tries from its chroot, each line of its
/// report naming what it saw or managed. It still builds an initramfs so the
/// recipe succeeds.
const HOSTILE_GENERATOR: &str = r#"#!/bin/sh
B=/bin/busybox
M=@MARKER@
R=/hostile-report
: > $R
{ echo x > /proc/1/root/tmp/$M; } 2>/dev/null && echo wrote-proc1-root-tmp >> $R
{ echo x > /proc/1/root/etc/$M; } 2>/dev/null && echo wrote-proc1-root-etc >> $R
{ echo x > /run/$M; } 2>/dev/null && echo wrote-run >> $R
[ -S /run/systemd/private ] && echo host-systemd-reachable >> $R
echo "pids $(cd /proc && echo [0-9]*)" >> $R
echo "pid1 $($B cat /proc/1/comm)" >> $R
$B cat /proc/1/mountinfo > /mountinfo-pid1
$B cat /proc/self/mountinfo > /mountinfo-self
$B hostname hacked-$M 2>/dev/null && echo "hostname-now $($B hostname)" >> $R
v=$($B cat /sys/kernel/mm/ksm/run 2>/dev/null)
[ -n "$v" ] && { echo "$v" > /sys/kernel/mm/ksm/run; } 2>/dev/null && echo wrote-sys >> $R
echo "cgroups $($B ls /sys/fs/cgroup 2>/dev/null)" >> $R
$B mount -t tmpfs $M /mnt 2>/dev/null && echo mounted-tmpfs >> $R
for a; do v=$a; done
echo initramfs > /boot/initrd.img-$v
echo done >> $R
"#;

/// Removes what a hostile generator may have left on the host and puts the
/// hostname back, so a run against a chroot that does not isolate leaves
/// the machine as it was.
struct HostRestore {
    marker: String,
    hostname: String,
}

impl Drop for HostRestore {
    fn drop(&mut self) {
        for dir in ["/tmp", "/etc", "/run"] {
            let _ = std::fs::remove_file(Path::new(dir).join(&self.marker));
        }
        if hostname() != self.hostname {
            let _ = Command::new("hostname").arg(&self.hostname).status();
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Mount points (field 5 of mountinfo).
fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_hostile_generator_stays_in_its_namespaces_and_does_not_reach_the_host() {
    if !common::root_or_skip("a_hostile_generator_stays_in_its_namespaces") {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    common::write_os_tree(root, "UUID=1111-2222 / ext4 defaults 0 1\n");
    if !root.join("bin/busybox").exists() {
        println!("SKIP a_hostile_generator_stays_in_its_namespaces: needs a static busybox");
        return;
    }
    let marker = format!("vmrescue-hostile-{}", std::process::id());
    let _restore = HostRestore {
        marker: marker.clone(),
        hostname: hostname(),
    };
    let version = "6.1.0-28-amd64";
    write(root, &format!("lib/modules/{version}/modules.dep"), "");
    write(root, &format!("boot/vmlinuz-{version}"), "kernel");
    write(root, "sbin/depmod", "#!/bin/sh\nexit 0\n");
    write(
        root,
        "usr/sbin/update-initramfs",
        &HOSTILE_GENERATOR.replace("@MARKER@", &marker),
    );
    for script in ["sbin/depmod", "usr/sbin/update-initramfs"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join(script), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    std::fs::create_dir_all(root.join("mnt")).unwrap();
    let host_hostname = hostname();
    let host_mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();

    let kernel = format!("kernel={version}");
    let out = vmrescue(
        &["repair", "rebuild-initramfs", "--yes", "--param", &kernel],
        root,
    );

    let host_mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let report = std::fs::read_to_string(root.join("hostile-report")).unwrap_or_default();
    let context = format!("{}\nreport:\n{report}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{context}");
    assert!(report.ends_with("done\n"), "{context}");
    for dir in ["/tmp", "/etc", "/run"] {
        assert!(
            !Path::new(dir).join(&marker).exists(),
            "the generator wrote {dir}/{marker} on the host\n{context}"
        );
    }
    assert_eq!(hostname(), host_hostname, "the host's hostname changed");
    assert!(
        !host_mounts_after.contains(&marker),
        "the generator's tmpfs is in the host's mount table"
    );
    let tree_mounts = |info: &str| -> Vec<String> {
        mount_points(info)
            .into_iter()
            .filter(|m| m.starts_with(&root.display().to_string()))
            .collect()
    };
    assert_eq!(
        tree_mounts(&host_mounts_after),
        tree_mounts(&host_mounts_before)
    );
    // PID 1's root is the generator's own: the writes land in the target.
    assert!(root.join("tmp").join(&marker).exists(), "{context}");
    assert!(root.join("etc").join(&marker).exists(), "{context}");
    for line in ["host-systemd-reachable", "wrote-sys"] {
        assert!(
            !report.lines().any(|l| l == line),
            "the generator managed `{line}`\n{context}"
        );
    }
    let pids: Vec<u32> = report
        .lines()
        .find_map(|l| l.strip_prefix("pids "))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        pids.contains(&1) && pids.iter().all(|&p| p < 10),
        "the generator sees pids outside its namespace: {pids:?}"
    );
    assert!(
        report.contains("pid1 update-initramf"),
        "PID 1 is not the generator\n{context}"
    );
    assert!(
        report.contains("cgroups \n"),
        "the host's cgroup mounts are in reach\n{context}"
    );
    // The host's mounts outside the chroot's own set stay invisible, also
    // through PID 1's view.
    let own = [
        "/",
        "/dev",
        "/dev/pts",
        "/dev/ptmx",
        "/dev/shm",
        "/proc",
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/sys",
        "/sys/firmware/efi/efivars",
        "/run",
        "/run/udev",
    ];
    for file in ["mountinfo-pid1", "mountinfo-self"] {
        let seen = std::fs::read_to_string(root.join(file)).unwrap();
        let foreign: Vec<String> = mount_points(&seen)
            .into_iter()
            .filter(|m| !own.contains(&m.as_str()))
            .collect();
        assert!(
            foreign.is_empty(),
            "{file} of the generator shows the host's mounts {foreign:?}"
        );
    }
}
