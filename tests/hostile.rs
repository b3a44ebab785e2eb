//! A hostile or damaged target disk (issue: hostile disks). The tree is
//! untrusted: symlinks that point at the rescue host's files, symlinked
//! directories, hard links, FIFOs and device nodes where config files should
//! be, huge files and directories. Every case is handled inside the target
//! or refused with a clear message; nothing on the host changes, nothing
//! hangs, memory stays bounded.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::text;
use crate::common::tree::write;

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
    if !crate::common::root_or_skip("a_hostile_generator_stays_in_its_namespaces") {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    crate::common::write_os_tree(root, "UUID=1111-2222 / ext4 defaults 0 1\n");
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

/// A target `update-initramfs` written to escape: each line runs one escape
/// of issue 22 through `escape-probe` (tests/fixtures/escape-probe.c) and
/// logs its outcome; then it overwrites the initramfs, starts a shell fork
/// bomb and fails.
const ESCAPING_GENERATOR: &str = r#"#!/bin/sh
B=/bin/busybox
P=/bin/escape-probe
R=/escape-report
: > $R
p() { $P "$@" >> $R 2>&1; }
p read /dev/@DISK@
p mknod-read @MAJOR@ @MINOR@
p mount-tmpfs /mnt
p remount-rw /sys
p remount-rw /proc/sys
p write /proc/sys/kernel/hostname hacked-@MARKER@
p sethostname hacked-@MARKER@
p finit-module /bin/escape-probe
p init-module
p kexec-load
p ptrace 1
p process-vm-writev 1
p netlink
p unshare
p clone-newuser
p setns /proc/1/ns/mnt
p open-by-handle
p ioctl /dev/null 0x125f
p ioctl /dev/null 0x1269
p ioctl /dev/null 0xc138fd09
p ioctl /dev/null 0xfd09
p ioctl /dev/null 0x5412
p chroot-escape
p fill /var/tmp/escape-fill
p fork-bomb
$B grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status >> $R
echo "dev $($B ls /dev | $B tr '\n' ' ')" >> $R
echo done >> $R
for a; do v=$a; done
echo garbage > /boot/initrd.img-$v
b() { b | b & }
b
exit 1
"#;

/// The escapes the generator runs, as the first word of their report line.
const ESCAPES: &[&str] = &[
    "read",
    "mknod-read",
    "mount-tmpfs",
    "remount-rw",
    "write",
    "sethostname",
    "finit-module",
    "init-module",
    "kexec-load",
    "ptrace",
    "process-vm-writev",
    "netlink",
    "unshare",
    "clone-newuser",
    "setns",
    "open-by-handle",
    "ioctl",
    "chroot-escape",
    "fill",
    "fork-bomb",
];

/// What must not change on the host: its mount table (outside the scratch
/// places tests and the lead's runs use), the first MiB of each of its
/// disks, every file of /etc, hostname and a few sysctls.
fn host_state(host_loop: &str) -> Vec<String> {
    let mut state = Vec::new();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let point = fields[4];
        let scratch = ["/tmp", "/mnt", "/root", "/var/tmp", "/run/user"];
        if scratch.iter().any(|s| point.starts_with(s)) {
            continue;
        }
        let tail = line.split_once(" - ").map(|(_, t)| t).unwrap_or("");
        state.push(format!("mount {point} {} {tail}", fields[5]));
    }
    state.sort();
    for disk in host_disks().iter().filter(|d| readable(&d.0)) {
        let digest = crate::common::sh(&format!("head -c 1048576 /dev/{} | sha256sum", disk.0));
        state.push(format!("disk {} {digest}", disk.0));
    }
    let digest = crate::common::sh(&format!("head -c 1048576 {host_loop} | sha256sum"));
    state.push(format!("disk {host_loop} {digest}"));
    state.push(format!(
        "etc {}",
        crate::common::sh(
            "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"
        )
    ));
    for knob in [
        "kernel/hostname",
        "kernel/domainname",
        "kernel/modprobe",
        "kernel/core_pattern",
        "kernel/sysrq",
        "kernel/kptr_restrict",
        "vm/overcommit_memory",
        "net/ipv4/ip_forward",
    ] {
        let value = std::fs::read_to_string(Path::new("/proc/sys").join(knob)).unwrap_or_default();
        state.push(format!("sysctl {knob} {}", value.trim()));
    }
    state
}

fn readable(name: &str) -> bool {
    std::fs::File::open(Path::new("/dev").join(name)).is_ok()
}

/// A host block device that is not the target: a loop device over a small
/// file holding a marker, detached on drop.
struct HostLoop {
    device: String,
    _file: tempfile::NamedTempFile,
}

impl HostLoop {
    fn new(marker: &str) -> HostLoop {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), marker.repeat(1 << 16)).unwrap();
        let device = crate::common::sh(&format!("losetup -f --show {}", file.path().display()))
            .trim()
            .to_string();
        HostLoop {
            device,
            _file: file,
        }
    }

    /// (name, major, minor)
    fn id(&self) -> (String, String, String) {
        let name = self.device.trim_start_matches("/dev/").to_string();
        let number = std::fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap();
        let (major, minor) = number.trim().split_once(':').unwrap();
        (name, major.to_string(), minor.to_string())
    }
}

impl Drop for HostLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// The host's disks (name, major, minor): not loop, ram, zram, nbd or dm.
fn host_disks() -> Vec<(String, String, String)> {
    let mut disks = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let virtual_dev = ["loop", "ram", "zram", "nbd", "dm-", "sr"];
        if virtual_dev.iter().any(|p| name.starts_with(p))
            || !Path::new("/dev").join(&name).exists()
        {
            continue;
        }
        let number = std::fs::read_to_string(entry.path().join("dev")).unwrap();
        let (major, minor) = number.trim().split_once(':').unwrap();
        disks.push((name.clone(), major.to_string(), minor.to_string()));
    }
    disks.sort();
    disks
}

/// Pids cgroups left by the sandboxes of vmrescue process `pid` (cgroup
/// v1 and v2 places; others' runs may be going on meanwhile).
fn sandbox_cgroups(pid: u32) -> Vec<String> {
    let prefix = format!("vmrescue-{pid}-");
    let mut found = Vec::new();
    for dir in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            found.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix)),
            );
        }
    }
    found
}

/// Runs vmrescue on `root` and returns its pid with its output; killed
/// after two minutes so a hang fails the test instead of stalling it.
fn vmrescue_with_pid(args: &[&str], root: &Path) -> (u32, Output) {
    let child = Command::new(env!("CARGO_BIN_EXE_vmrescue"))
        .args(["--log-file", "/dev/null"])
        .args(args)
        .arg("--root")
        .arg(root)
        .env_remove("VMRESCUE_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = done.clone();
    let watchdog = std::thread::spawn(move || {
        for _ in 0..1200 {
            if watching.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Not reaped yet, so the pid is still this child's.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let output = child.wait_with_output();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    (pid, output.unwrap())
}

#[test]
fn a_generator_written_to_escape_fails_at_every_step_and_the_host_is_unchanged() {
    let test = "a_generator_written_to_escape";
    if !crate::common::root_or_skip(test) {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    crate::common::write_os_tree(root, "UUID=1111-2222 / ext4 defaults 0 1\n");
    assert!(
        root.join("bin/busybox").exists(),
        "{test}: needs a static busybox (scripts/install-deps)"
    );
    let probe = root.join("bin/escape-probe");
    let built = Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(&probe)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/escape-probe.c"
        ))
        .status()
        .unwrap();
    assert!(
        built.success(),
        "{test}: cc -static failed (scripts/install-deps installs gcc and libc6-dev)"
    );
    let marker = format!("vmrescue-escape-{}", std::process::id());
    // The host disk it goes for: a loop device that is not the target,
    // readable by the test (a VM's own disks may be closed even to root).
    let host_loop = HostLoop::new(&marker);
    let (disk, major, minor) = host_loop.id();
    let _restore = HostRestore {
        marker: marker.clone(),
        hostname: hostname(),
    };
    let version = "6.1.0-28-amd64";
    write(root, &format!("lib/modules/{version}/modules.dep"), "");
    write(root, &format!("boot/vmlinuz-{version}"), "kernel");
    let initrd = format!("boot/initrd.img-{version}");
    // Empty: the recipe rebuilds it.
    write(root, &initrd, "");
    write(root, "sbin/depmod", "#!/bin/sh\nexit 0\n");
    let script = ESCAPING_GENERATOR
        .replace("@DISK@", &disk)
        .replace("@MAJOR@", &major)
        .replace("@MINOR@", &minor)
        .replace("@MARKER@", &marker);
    write(root, "usr/sbin/update-initramfs", &script);
    for script in ["sbin/depmod", "usr/sbin/update-initramfs"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join(script), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    for dir in ["mnt", "tmp", "var/tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let before = host_state(&host_loop.device);

    let started = std::time::Instant::now();
    let kernel = format!("kernel={version}");
    let (pid, out) = vmrescue_with_pid(
        &["repair", "rebuild-initramfs", "--yes", "--param", &kernel],
        root,
    );
    let elapsed = started.elapsed();

    let after = host_state(&host_loop.device);
    let report = std::fs::read_to_string(root.join("escape-report")).unwrap_or_default();
    let context = format!("{}\nreport:\n{report}", text(&out));
    println!("escape report ({:.1} s):\n{report}", elapsed.as_secs_f64());
    assert!(report.contains("\ndone\n"), "{context}");
    for escape in ESCAPES {
        let lines: Vec<&str> = report
            .lines()
            .filter(|l| l.split(' ').next() == Some(*escape))
            .collect();
        assert!(!lines.is_empty(), "no outcome for {escape}\n{context}");
        for line in lines {
            assert!(
                !line.split(' ').any(|w| w == "ok") && !line.contains("unknown"),
                "escape succeeded: {line}\n{context}"
            );
        }
    }
    // The limits, not chance, stopped the filler and the bomb.
    assert!(report.contains("fill EFBIG at 1024 MiB"), "{context}");
    let bomb = report
        .lines()
        .find_map(|l| l.strip_prefix("fork-bomb EAGAIN after "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok());
    assert!(bomb.is_some_and(|n| n < 512), "{context}");
    assert!(report.contains("NoNewPrivs:\t1"), "{context}");
    assert!(report.contains("CapEff:\t00000000800000fb"), "{context}");
    assert!(
        !report.contains(&format!(" {disk} ")),
        "the host disk is in /dev\n{context}"
    );
    // The failed generator fails the repair, which undoes its own writes.
    assert_eq!(out.status.code(), Some(1), "{context}");
    assert!(text(&out).contains("was undone"), "{context}");
    assert_eq!(std::fs::read_to_string(root.join(&initrd)).unwrap(), "");
    assert!(!root.join("var/tmp/escape-fill").exists());
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert_eq!(before, after, "the host changed");
    assert!(
        sandbox_cgroups(pid).is_empty(),
        "left: {:?}",
        sandbox_cgroups(pid)
    );
}
