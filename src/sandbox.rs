//! The sandbox around the target's own programs (update-initramfs, dracut,
//! grub-mkconfig, depmod, `vmrescue chroot`), on top of the namespaces and
//! chroot of [`crate::cmd::ChrootSpec`]: a private `/dev` holding only the
//! target's block devices, capabilities dropped, `PR_SET_NO_NEW_PRIVS`, a
//! seccomp filter and resource limits (docs/safety.md, "Isolation of the
//! target's own programs"; issue 22).
//!
//! Everything here is prepared before `fork`; [`Prepared::enter`] only makes
//! raw system calls on that data in the child.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// What a target program may keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// `CAP_SYS_ADMIN` stays: device-mapper queries (grub-probe, dracut and
    /// lvm on an LVM target) need it. The seccomp filter still refuses
    /// mounts, namespaces and device-mapper or partition writes.
    pub keep_sys_admin: bool,
}

/// Resource limits of a target program and of each of its descendants.
pub const CPU_SECONDS: u64 = 600;
/// The largest file it can write: far above an initramfs, far below a full disk.
pub const FILE_SIZE: u64 = 1 << 30;
/// Processes in its pids cgroup (RLIMIT_NPROC does not bind uid 0).
pub const PROCESSES: u64 = 512;
pub const OPEN_FILES: u64 = 4096;

/// Capabilities a generator keeps: writing root-owned files and setting
/// their owner, mode and file capabilities, signalling its own children,
/// changing uid/gid for helpers that drop privileges.
const KEPT_CAPABILITIES: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    31, // CAP_SETFCAP
];
const CAP_SYS_ADMIN: u32 = 21;

/// `setrlimit`'s resource type: glibc's enum, musl's int.
#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

/// The sandbox, ready to enter in a forked child.
pub(crate) struct Prepared {
    filters: Vec<BpfProgram>,
    keep: u64,
    last_cap: u32,
    rlimits: Vec<(RlimitResource, libc::rlimit)>,
    cgroup_procs: Option<OwnedFd>,
    /// Held until the program has been waited for; removes the cgroup.
    pub(crate) cgroup: Option<Arc<PidsCgroup>>,
}

impl Prepared {
    pub(crate) fn new(sandbox: &Sandbox) -> Result<Self> {
        let mut keep = KEPT_CAPABILITIES
            .iter()
            .fold(0u64, |mask, &cap| mask | (1 << cap));
        if sandbox.keep_sys_admin {
            keep |= 1 << CAP_SYS_ADMIN;
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        let limit = |soft: u64, hard: u64| libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        let rlimits = vec![
            // SIGXCPU at the soft limit, SIGKILL at the hard one.
            (libc::RLIMIT_CPU, limit(CPU_SECONDS, CPU_SECONDS + 10)),
            (libc::RLIMIT_FSIZE, limit(FILE_SIZE, FILE_SIZE)),
            (libc::RLIMIT_NPROC, limit(PROCESSES, PROCESSES)),
            (libc::RLIMIT_NOFILE, limit(OPEN_FILES, OPEN_FILES)),
        ];
        let (cgroup, cgroup_procs) = match PidsCgroup::create(PROCESSES) {
            Ok(Some((cgroup, procs))) => (Some(Arc::new(cgroup)), Some(procs)),
            Ok(None) => {
                tracing::warn!("no pids cgroup controller: a target program's processes are not bounded (RLIMIT_NPROC does not apply to root)");
                (None, None)
            }
            Err(err) => {
                tracing::warn!("creating a pids cgroup for a target program: {err:#}");
                (None, None)
            }
        };
        Ok(Prepared {
            filters: seccomp_filters()?,
            keep,
            last_cap,
            rlimits,
            cgroup_procs,
            cgroup,
        })
    }

    /// In the child after the chroot, last before exec: limits, the pids
    /// cgroup, capabilities, then the seccomp filters (which also set
    /// `PR_SET_NO_NEW_PRIVS`).
    pub(crate) fn enter(&self) -> io::Result<()> {
        // SAFETY: raw syscalls on data owned by self; nothing allocates.
        unsafe {
            for (resource, limit) in &self.rlimits {
                check(libc::setrlimit(*resource, limit))?;
            }
            if let Some(procs) = &self.cgroup_procs {
                // "0" moves the writing process (cgroup v1 and v2).
                if libc::write(procs.as_raw_fd(), c"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(procs.as_raw_fd());
            }
            for cap in 0..=self.last_cap {
                if self.keep & (1 << cap) != 0 {
                    continue;
                }
                if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                    && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
                {
                    return Err(io::Error::last_os_error());
                }
            }
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ))?;
            set_capabilities(self.keep)?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        }
        for filter in &self.filters {
            seccompiler::apply_filter(filter).map_err(|e| match e {
                seccompiler::Error::Seccomp(err) | seccompiler::Error::Prctl(err) => err,
                _ => io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        }
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Effective and permitted become `keep`, inheritable empty. With the
/// bounding set cut to `keep` too, exec (root gains its bounding set)
/// gives the program exactly `keep`.
fn set_capabilities(keep: u64) -> io::Result<()> {
    let header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let half = |bits: u64| CapData {
        effective: bits as u32,
        permitted: bits as u32,
        inheritable: 0,
    };
    let data = [half(keep), half(keep >> 32)];
    // SAFETY: header and data are valid for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Not in the libc crate for aarch64 (the kernel's number there).
#[cfg(target_arch = "aarch64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = 294;
#[cfg(not(target_arch = "aarch64"))]
const SYS_KEXEC_FILE_LOAD: libc::c_long = libc::SYS_kexec_file_load;

/// System calls a target program gets EPERM for (issue 22): mounts and
/// roots, namespaces, kexec, modules, reboot, swap, bpf and perf, file
/// handles, ptrace, keyrings.
fn denied_syscalls() -> Vec<libc::c_long> {
    vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_kexec_load,
        SYS_KEXEC_FILE_LOAD,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_open_by_handle_at,
        libc::SYS_ptrace,
        libc::SYS_process_vm_writev,
        libc::SYS_process_vm_readv,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_quotactl,
        libc::SYS_acct,
    ]
}

/// ioctl requests refused exactly (the kernel matches these whole): block
/// devices' partition table, read-only flag, discards and block size; loop
/// device (re)configuration; a byte pushed into the terminal's input.
const DENIED_IOCTLS: &[u64] = &[
    0x1269,     // BLKPG: add or delete partitions
    0x125f,     // BLKRRPART: re-read the partition table
    0x125d,     // BLKROSET
    0x1277,     // BLKDISCARD
    0x127d,     // BLKSECDISCARD
    0x127f,     // BLKZEROOUT
    0x40081271, // BLKBSZSET
    0x4c00,     // LOOP_SET_FD
    0x4c01,     // LOOP_CLR_FD
    0x4c02,     // LOOP_SET_STATUS
    0x4c04,     // LOOP_SET_STATUS64
    0x4c06,     // LOOP_CHANGE_FD
    0x4c07,     // LOOP_SET_CAPACITY
    0x4c08,     // LOOP_SET_DIRECT_IO
    0x4c09,     // LOOP_SET_BLOCK_SIZE
    0x4c0a,     // LOOP_CONFIGURE
    0x4c80,     // LOOP_CTL_ADD
    0x4c81,     // LOOP_CTL_REMOVE
    0x4c82,     // LOOP_CTL_GET_FREE
    0x5412,     // TIOCSTI: type into the operator's terminal
    0x541c,     // TIOCLINUX
    0xc0045877, // FIFREEZE
];

/// Device-mapper commands that change tables or devices. The kernel looks
/// only at the type (0xfd) and number of a dm ioctl, not its size and
/// direction bits, so the filter masks those out too. Queries (DM_VERSION,
/// LIST_DEVICES, DEV_STATUS, TABLE_DEPS, TABLE_STATUS, LIST_VERSIONS) stay.
const DENIED_DM_COMMANDS: &[u64] = &[1, 3, 4, 5, 6, 9, 10, 14, 15];

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule> {
    Ok(SeccompRule::new(conditions)?)
}

fn arg(index: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition> {
    Ok(SeccompCondition::new(index, len, op, value)?)
}

fn target_arch() -> Result<seccompiler::TargetArch> {
    Ok(std::env::consts::ARCH.try_into()?)
}

/// The filters: EPERM for [`denied_syscalls`], the denied ioctls, netlink
/// and packet sockets and clone with a namespace flag; ENOSYS for clone3
/// (its flags are in memory, where a filter cannot look; libc falls back
/// to clone); EPERM for x32 system call numbers on x86_64, which would
/// otherwise reach the same calls under other numbers.
fn seccomp_filters() -> Result<Vec<BpfProgram>> {
    use SeccompCmpArgLen::{Dword, Qword};
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    let mut ioctl = Vec::new();
    for &request in DENIED_IOCTLS {
        ioctl.push(rule(vec![arg(1, Dword, SeccompCmpOp::Eq, request)?])?);
    }
    for &command in DENIED_DM_COMMANDS {
        let op = SeccompCmpOp::MaskedEq(0xffff);
        ioctl.push(rule(vec![arg(1, Dword, op, 0xfd00 | command)?])?);
    }
    rules.insert(libc::SYS_ioctl, ioctl);
    let socket = [libc::AF_NETLINK, libc::AF_PACKET]
        .iter()
        .map(|&family| rule(vec![arg(0, Dword, SeccompCmpOp::Eq, family as u64)?]))
        .collect::<Result<Vec<_>>>()?;
    rules.insert(libc::SYS_socket, socket);
    let namespaces = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWCGROUP,
    ];
    let clone = namespaces
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            rule(vec![arg(0, Qword, SeccompCmpOp::MaskedEq(flag), flag)?])
        })
        .collect::<Result<Vec<_>>>()?;
    rules.insert(libc::SYS_clone, clone);
    let arch = target_arch()?;
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let main = SeccompFilter::new(rules, SeccompAction::Allow, eperm, arch)?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    let mut filters = vec![main.try_into()?, clone3.try_into()?];
    if cfg!(target_arch = "x86_64") {
        filters.push(x32_filter());
    }
    Ok(filters)
}

/// x86_64 only: any system call number with the x32 bit gets EPERM.
fn x32_filter() -> BpfProgram {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| seccompiler::sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        op(JGE_K, 0, 1, 0x4000_0000),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// A cgroup of the pids controller holding one target program and its
/// descendants, with `pids.max` set: a fork bomb gets EAGAIN, the rescue VM
/// keeps its process table. Removed (its processes killed) on drop.
#[derive(Debug)]
pub struct PidsCgroup {
    dir: PathBuf,
}

static CGROUP_SEQ: AtomicU32 = AtomicU32::new(0);

impl PidsCgroup {
    /// A new cgroup below this process's own in the pids hierarchy (cgroup
    /// v1), or at the top of the unified hierarchy (v2, where a cgroup
    /// with processes cannot have controllers below it); its
    /// `cgroup.procs` opened for writing. None without a pids controller.
    fn create(max: u64) -> Result<Option<(PidsCgroup, OwnedFd)>> {
        let Some(parent) = pids_hierarchy()? else {
            return Ok(None);
        };
        let name = format!(
            "vmrescue-{}-{}",
            std::process::id(),
            CGROUP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cgroup = PidsCgroup { dir };
        let max_file = cgroup.dir.join("pids.max");
        std::fs::write(&max_file, max.to_string())
            .with_context(|| format!("writing {}", max_file.display()))?;
        let procs = cgroup.dir.join("cgroup.procs");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .with_context(|| format!("opening {}", procs.display()))?;
        Ok(Some((cgroup, file.into())))
    }

    fn kill_all(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Empty once the program's PID namespace is gone; a straggler is
        // killed, and removal waits for the kernel to reap it.
        for attempt in 0..100 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                    if attempt == 0 {
                        self.kill_all();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => {
                    tracing::warn!("removing {}: {err}", self.dir.display());
                    return;
                }
            }
        }
        tracing::warn!("{} is still busy: left in place", self.dir.display());
    }
}

/// Where to create a pids cgroup: this process's own cgroup in a v1 pids
/// hierarchy, or the root of a v2 hierarchy that offers pids.
fn pids_hierarchy() -> Result<Option<PathBuf>> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(&root), Some(&point), Some(&fstype)) = (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let point = Path::new(point);
        let options = right.get(2).copied().unwrap_or("");
        if fstype == "cgroup" && options.split(',').any(|o| o == "pids") {
            let path = own
                .lines()
                .filter_map(|l| {
                    l.splitn(3, ':')
                        .collect::<Vec<_>>()
                        .get(1..3)
                        .map(|v| (v[0], v[1]))
                })
                .find(|(controllers, _)| controllers.split(',').any(|c| c == "pids"))
                .map(|(_, path)| path.trim_start_matches('/'))
                .filter(|_| root == "/")
                .unwrap_or("");
            return Ok(Some(point.join(path)));
        }
        if fstype == "cgroup2" {
            let controllers =
                std::fs::read_to_string(point.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "pids") {
                // Enabling an enabled controller is a no-op.
                let _ = std::fs::write(point.join("cgroup.subtree_control"), "+pids");
                return Ok(Some(point.to_path_buf()));
            }
        }
    }
    Ok(None)
}

/// One entry of a private `/dev`, path absolute (below `/dev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevEntry {
    pub path: PathBuf,
    pub kind: DevKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevKind {
    Dir,
    /// An empty file (a mount point, e.g. `/dev/ptmx`).
    File,
    /// A device node: `mode` with its file type bits.
    Node {
        mode: u32,
        rdev: u64,
    },
    Symlink(PathBuf),
}

/// The private `/dev` of a target program: null, zero, full, random,
/// urandom, tty, the `/dev/fd` links, mount points for its own devpts and
/// `/dev/shm`, and the given block devices (kernel names, e.g. `loop3p1`,
/// `dm-0`) with every link udev made to them (`/dev/disk/by-*`,
/// `/dev/block`, `/dev/mapper`, `/dev/<vg>`). `/dev/mapper/control` only
/// with `dm_control` (read-only device-mapper queries).
pub fn private_dev(block_devices: &[String], dm_control: bool) -> Result<Vec<DevEntry>> {
    let mut entries = vec![
        dir("/dev/pts"),
        dir("/dev/shm"),
        DevEntry {
            path: PathBuf::from("/dev/ptmx"),
            kind: DevKind::File,
        },
    ];
    for (name, minor) in [
        ("null", 3),
        ("zero", 5),
        ("full", 7),
        ("random", 8),
        ("urandom", 9),
    ] {
        entries.push(char_node(name, libc::makedev(1, minor)));
    }
    entries.push(char_node("tty", libc::makedev(5, 0)));
    entries.push(link("/dev/fd", "/proc/self/fd"));
    for (n, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
        entries.push(link(&format!("/dev/{name}"), &format!("/proc/self/fd/{n}")));
    }
    let mut wanted: Vec<(PathBuf, u64)> = Vec::new();
    for name in block_devices {
        let node = Path::new("/dev").join(name);
        let meta = std::fs::metadata(&node)
            .with_context(|| format!("target block device {}", node.display()))?;
        if !meta.file_type().is_block_device() {
            anyhow::bail!("{} is not a block device", node.display());
        }
        entries.push(DevEntry {
            path: node.clone(),
            kind: DevKind::Node {
                mode: meta.mode(),
                rdev: meta.rdev(),
            },
        });
        wanted.push((node, meta.rdev()));
    }
    if dm_control {
        let control = Path::new("/dev/mapper/control");
        if let Ok(meta) = std::fs::metadata(control) {
            entries.push(dir("/dev/mapper"));
            entries.push(DevEntry {
                path: control.to_path_buf(),
                kind: DevKind::Node {
                    mode: meta.mode(),
                    rdev: meta.rdev(),
                },
            });
        }
    }
    if !wanted.is_empty() {
        entries.extend(links_to(Path::new("/dev"), &wanted, 0)?);
    }
    Ok(with_parents(entries))
}

fn dir(path: &str) -> DevEntry {
    DevEntry {
        path: PathBuf::from(path),
        kind: DevKind::Dir,
    }
}

fn char_node(name: &str, rdev: libc::dev_t) -> DevEntry {
    DevEntry {
        path: Path::new("/dev").join(name),
        kind: DevKind::Node {
            mode: libc::S_IFCHR | 0o666,
            rdev,
        },
    }
}

fn link(path: &str, target: &str) -> DevEntry {
    DevEntry {
        path: PathBuf::from(path),
        kind: DevKind::Symlink(PathBuf::from(target)),
    }
}

/// Symlinks below `dir` (three levels: `/dev/disk/by-uuid/X`) resolving to
/// one of the wanted nodes, and other nodes of the same device number
/// (`/dev/mapper/vg-lv` made by mknod rather than udev).
fn links_to(dir: &Path, wanted: &[(PathBuf, u64)], depth: usize) -> Result<Vec<DevEntry>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(found);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let resolves = std::fs::canonicalize(&path)
                .is_ok_and(|real| wanted.iter().any(|(node, _)| *node == real));
            if resolves {
                let target = std::fs::read_link(&path)?;
                found.push(DevEntry {
                    path,
                    kind: DevKind::Symlink(target),
                });
            }
        } else if kind.is_block_device() {
            let other_name = wanted
                .iter()
                .any(|(node, rdev)| *rdev == meta.rdev() && *node != path);
            if other_name {
                found.push(DevEntry {
                    path,
                    kind: DevKind::Node {
                        mode: meta.mode(),
                        rdev: meta.rdev(),
                    },
                });
            }
        } else if kind.is_dir()
            && depth < 2
            && !["pts", "shm", "fd"].contains(&&*entry.file_name().to_string_lossy())
        {
            found.extend(links_to(&path, wanted, depth + 1)?);
        }
    }
    Ok(found)
}

/// The `/dev/disk/by-uuid` and `by-partuuid` links udev makes, for the
/// target's devices that have none: a host without udev (a container, this
/// project's CI) would otherwise leave grub-mkconfig no UUID to name and it
/// writes `root=/dev/loop0p1`. `devices` pairs a node's path (`/dev/loop0p1`)
/// with its filesystem UUID and partition UUID, from blkid.
pub fn with_identity_links(
    entries: Vec<DevEntry>,
    devices: &[(PathBuf, Option<String>, Option<String>)],
) -> Vec<DevEntry> {
    let mut extra = Vec::new();
    for (node, uuid, partuuid) in devices {
        let is_entry = entries
            .iter()
            .any(|e| e.path == *node && matches!(e.kind, DevKind::Node { .. }));
        let Some(name) = node
            .file_name()
            .filter(|_| is_entry && node.parent() == Some(Path::new("/dev")))
        else {
            continue;
        };
        for (dir, value) in [("by-uuid", uuid), ("by-partuuid", partuuid)] {
            let Some(value) = value
                .as_deref()
                .filter(|v| !v.is_empty() && !v.contains('/'))
            else {
                continue;
            };
            let path = Path::new("/dev/disk").join(dir).join(value);
            if !entries
                .iter()
                .chain(&extra)
                .any(|e: &DevEntry| e.path == path)
            {
                extra.push(DevEntry {
                    path,
                    kind: DevKind::Symlink(Path::new("../..").join(name)),
                });
            }
        }
    }
    let mut all = entries;
    all.extend(extra);
    with_parents(all)
}

/// Adds the directories the entries need, parents before children.
fn with_parents(entries: Vec<DevEntry>) -> Vec<DevEntry> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in &entries {
        if entry.kind == DevKind::Dir && !dirs.contains(&entry.path) {
            dirs.push(entry.path.clone());
        }
        let mut parent = entry.path.parent();
        while let Some(p) = parent {
            if p == Path::new("/dev") || p == Path::new("/") {
                break;
            }
            if !dirs.iter().any(|d| d == p) {
                dirs.push(p.to_path_buf());
            }
            parent = p.parent();
        }
    }
    dirs.sort_by_key(|d| d.components().count());
    let mut out: Vec<DevEntry> = dirs
        .into_iter()
        .map(|path| DevEntry {
            path,
            kind: DevKind::Dir,
        })
        .collect();
    out.extend(entries.into_iter().filter(|e| e.kind != DevKind::Dir));
    out
}

/// The block devices of a target disk by kernel name: the disk (e.g.
/// `/dev/loop3`), its partitions and every device stacked on them (LVM and
/// other dm devices, found through `holders` in sysfs).
pub fn block_device_tree(disk: &Path) -> Result<Vec<String>> {
    let real =
        std::fs::canonicalize(disk).with_context(|| format!("resolving {}", disk.display()))?;
    let name = real
        .file_name()
        .with_context(|| format!("{} has no device name", real.display()))?
        .to_string_lossy()
        .into_owned();
    let mut names = vec![name.clone()];
    let sys = Path::new("/sys/class/block").join(&name);
    if let Ok(children) = std::fs::read_dir(&sys) {
        for child in children.flatten() {
            if child.path().join("partition").exists() {
                names.push(child.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut i = 0;
    while i < names.len() {
        let holders = Path::new("/sys/class/block")
            .join(&names[i])
            .join("holders");
        if let Ok(list) = std::fs::read_dir(holders) {
            for holder in list.flatten() {
                let holder = holder.file_name().to_string_lossy().into_owned();
                if !names.contains(&holder) {
                    names.push(holder);
                }
            }
        }
        i += 1;
    }
    Ok(names)
}

/// Kernel names of the block devices mounted at or below `root` (a target
/// the operator mounted and named with `--root`).
pub fn devices_mounted_under(root: &Path) -> Vec<String> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut names: Vec<String> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(number), Some(point)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        if !Path::new(point).starts_with(&root) {
            continue;
        }
        let Ok(real) = std::fs::canonicalize(Path::new("/sys/dev/block").join(number)) else {
            continue;
        };
        if let Some(name) = real.file_name().map(|n| n.to_string_lossy().into_owned()) {
            if Path::new("/dev").join(&name).exists() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The entries as C strings for the child, paths under `root`.
pub(crate) fn c_entries(root: &Path, entries: &[DevEntry]) -> Result<Vec<CDevEntry>> {
    entries
        .iter()
        .map(|e| {
            let inside = root.join(e.path.strip_prefix("/").unwrap_or(&e.path));
            let c = |p: &Path| {
                CString::new(p.as_os_str().as_encoded_bytes())
                    .map_err(|_| anyhow::anyhow!("{} contains a NUL byte", p.display()))
            };
            Ok(CDevEntry {
                path: c(&inside)?,
                kind: match &e.kind {
                    DevKind::Dir => CDevKind::Dir,
                    DevKind::File => CDevKind::File,
                    DevKind::Node { mode, rdev } => CDevKind::Node {
                        mode: *mode,
                        rdev: *rdev,
                    },
                    DevKind::Symlink(target) => CDevKind::Symlink(c(target)?),
                },
            })
        })
        .collect()
}

pub(crate) struct CDevEntry {
    path: CString,
    kind: CDevKind,
}

enum CDevKind {
    Dir,
    File,
    Node { mode: u32, rdev: u64 },
    Symlink(CString),
}

/// Creates the entries (in the child, on the fresh tmpfs).
pub(crate) fn populate(entries: &[CDevEntry]) -> io::Result<()> {
    // SAFETY: plain syscalls on NUL-terminated strings.
    unsafe {
        let old = libc::umask(0);
        for entry in entries {
            let p = entry.path.as_ptr();
            let ret = match &entry.kind {
                CDevKind::Dir => libc::mkdir(p, 0o755),
                CDevKind::File => {
                    let fd = libc::open(p, libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644);
                    if fd >= 0 {
                        libc::close(fd);
                        0
                    } else {
                        -1
                    }
                }
                CDevKind::Node { mode, rdev } => libc::mknod(p, *mode, *rdev),
                CDevKind::Symlink(target) => libc::symlink(target.as_ptr(), p),
            };
            if ret != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                let err = io::Error::last_os_error();
                libc::umask(old);
                return Err(err);
            }
        }
        libc::umask(old);
    }
    Ok(())
}

/// A libc call's 0/-1 result as an io::Result (for `pre_exec` code, which
/// may not allocate an anyhow error).
pub(crate) fn check(ret: libc::c_int) -> std::io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_machine() {
        let filters = seccomp_filters().unwrap();
        assert!(filters.len() >= 2);
        assert!(filters.iter().all(|f| !f.is_empty()));
    }

    #[test]
    fn a_private_dev_without_target_devices_has_only_the_basic_nodes() {
        let entries = private_dev(&[], false).unwrap();
        let nodes: Vec<String> = entries
            .iter()
            .filter(|e| matches!(e.kind, DevKind::Node { .. }))
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(
            nodes,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
        assert!(!entries.iter().any(|e| e.path.starts_with("/dev/mapper")));
    }

    #[test]
    fn udev_links_to_the_target_devices_are_kept_and_others_left_out() {
        let dev = tempfile::tempdir().unwrap();
        let d = dev.path();
        std::fs::write(d.join("loop3p1"), "").unwrap();
        std::fs::write(d.join("vda1"), "").unwrap();
        for sub in ["disk/by-uuid", "block"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, d.join(at)).unwrap();
        link("../../loop3p1", "disk/by-uuid/target-uuid");
        link("../../vda1", "disk/by-uuid/host-uuid");
        link("../loop3p1", "block/7:1");
        let wanted = [(d.join("loop3p1").canonicalize().unwrap(), 0)];
        let mut found: Vec<String> = links_to(d, &wanted, 0)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {:?}", e.path.strip_prefix(d).unwrap().display(), e.kind))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                r#"block/7:1 Symlink("../loop3p1")"#,
                r#"disk/by-uuid/target-uuid Symlink("../../loop3p1")"#,
            ]
        );
    }

    #[test]
    fn identity_links_are_added_for_target_nodes_only_once() {
        let node = |path: &str| DevEntry {
            path: PathBuf::from(path),
            kind: DevKind::Node {
                mode: libc::S_IFBLK | 0o660,
                rdev: 7,
            },
        };
        let entries = vec![
            node("/dev/loop0p1"),
            link("/dev/disk/by-uuid/aaaa", "../../loop0p1"),
        ];
        let devices = vec![
            (
                PathBuf::from("/dev/loop0p1"),
                Some("aaaa".to_string()),
                Some("pp-01".to_string()),
            ),
            (PathBuf::from("/dev/sda1"), Some("host".to_string()), None),
        ];
        let out = with_identity_links(entries, &devices);
        let links: Vec<_> = out
            .iter()
            .filter_map(|e| match &e.kind {
                DevKind::Symlink(t) => Some(format!("{} -> {}", e.path.display(), t.display())),
                _ => None,
            })
            .collect();
        assert_eq!(
            links,
            [
                "/dev/disk/by-uuid/aaaa -> ../../loop0p1",
                "/dev/disk/by-partuuid/pp-01 -> ../../loop0p1"
            ],
            "no second by-uuid link, none for a device outside the sandbox"
        );
        let dirs: Vec<_> = out
            .iter()
            .filter(|e| e.kind == DevKind::Dir)
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(
            dirs,
            ["/dev/disk", "/dev/disk/by-uuid", "/dev/disk/by-partuuid"]
        );
    }

    #[test]
    fn parents_come_before_their_entries() {
        let entries = with_parents(vec![link("/dev/disk/by-uuid/x", "../../loop0p1")]);
        let paths: Vec<_> = entries
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            ["/dev/disk", "/dev/disk/by-uuid", "/dev/disk/by-uuid/x"]
        );
    }
}
