//! The namespaces, mounts and chroot a program runs in, set up by the child
//! between `fork` and `exec` (`pre_exec`).
//!
//! Everything is prepared in the parent ([`PreparedNamespace::new`]): after
//! `fork` in a threaded process, the child may only make async-signal-safe
//! calls, so it must not allocate or take a lock (another thread may have
//! held the allocator's lock at the fork). [`PreparedNamespace::enter`] then
//! makes raw syscalls on that prepared data only.

use crate::sandbox::check;
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{ChrootMount, ChrootSpec};

/// A device node to recreate in a private `/dev`.
struct DevNode {
    path: CString,
    mode: libc::mode_t,
    rdev: libc::dev_t,
}

/// One mount of a [`ChrootSpec`] with its paths as C strings.
enum MountOp {
    Bind {
        source: CString,
        dest: CString,
        read_only: bool,
        create_dir: bool,
    },
    Fresh {
        fstype: &'static CStr,
        dest: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    /// Fill a fresh tmpfs (a private `/dev`).
    Populate(Vec<crate::sandbox::CDevEntry>),
    /// Make a mount read-only (the private `/dev`, once its submounts exist).
    ReadOnly { dest: CString },
}

/// What the child does before exec, prepared before `fork` so the child
/// allocates nothing: private namespaces, optionally a private `/dev`,
/// the chroot's mounts and the chroot.
pub(super) struct PreparedNamespace {
    root: Option<CString>,
    mounts: Vec<MountOp>,
    private_dev: Option<Vec<DevNode>>,
    pub(super) sandbox: Option<crate::sandbox::Prepared>,
}

fn c_path(p: &Path) -> anyhow::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| anyhow::anyhow!("path {} contains a NUL byte", p.display()))
}

impl PreparedNamespace {
    pub(super) fn new(
        chroot: Option<&ChrootSpec>,
        private_dev: Option<&[PathBuf]>,
    ) -> anyhow::Result<Self> {
        let mut mounts = Vec::new();
        let mut root = None;
        let mut sandbox = None;
        if let Some(spec) = chroot {
            mounts = chroot_mounts(spec)?;
            root = Some(c_path(&spec.root)?);
            sandbox = Some(crate::sandbox::Prepared::new(&spec.sandbox)?);
        }
        let private_dev = private_dev.map(dev_nodes).transpose()?;
        Ok(PreparedNamespace {
            root,
            mounts,
            private_dev,
            sandbox,
        })
    }

    /// Runs in the forked child. A chroot also gets new PID, UTS, IPC and
    /// network namespaces; a new PID namespace only applies to children, so
    /// the child forks once more: the grandchild (PID 1 there) returns and
    /// goes on to exec, the child stays as its reaper and exits with its
    /// status, so waiting for and killing the child still mean the program.
    pub(super) fn enter(&self) -> io::Result<()> {
        // SAFETY: plain syscalls on NUL-terminated strings owned by self.
        unsafe {
            if self.root.is_some() {
                enter_chroot_namespaces()?;
            } else {
                check(libc::unshare(libc::CLONE_NEWNS))?;
            }
            // Keep every mount made from here on out of the host's table.
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            if let Some(nodes) = &self.private_dev {
                make_private_dev(nodes)?;
            }
            for op in &self.mounts {
                mount(op)?;
            }
            if let Some(root) = &self.root {
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))?;
            }
        }
        if let Some(sandbox) = &self.sandbox {
            sandbox.enter()?;
        }
        Ok(())
    }
}

/// The chroot's mounts in the order the child makes them. The read-only
/// remounts of private `/dev`s come last, once the mounts below them exist:
/// a read-only tmpfs takes no new mount point.
fn chroot_mounts(spec: &ChrootSpec) -> anyhow::Result<Vec<MountOp>> {
    let mut mounts = Vec::new();
    let mut read_only_last = Vec::new();
    let inside = |p: &Path| c_path(&spec.root.join(p.strip_prefix("/").unwrap_or(p)));
    for mount in &spec.mounts {
        match mount {
            ChrootMount::Bind {
                source,
                dest,
                read_only,
                create_dir,
            } => mounts.push(MountOp::Bind {
                source: c_path(source)?,
                dest: inside(dest)?,
                read_only: *read_only,
                create_dir: *create_dir,
            }),
            ChrootMount::Proc { dest } => {
                mounts.push(MountOp::Fresh {
                    fstype: c"proc",
                    dest: inside(dest)?,
                    flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    data: CString::default(),
                });
                // /proc/sys and /proc/sysrq-trigger are bound read-only onto
                // themselves, so that a program in the chroot cannot change
                // the host's kernel settings or crash it. The host's proc
                // shows what a fresh one will hold (no sysrq-trigger without
                // CONFIG_MAGIC_SYSRQ).
                for knob in ["sys", "sysrq-trigger"] {
                    if !Path::new("/proc").join(knob).exists() {
                        continue;
                    }
                    let path = inside(&dest.join(knob))?;
                    mounts.push(MountOp::Bind {
                        source: path.clone(),
                        dest: path,
                        read_only: true,
                        create_dir: false,
                    });
                }
            }
            ChrootMount::Devpts { dest } => {
                // A new devpts instance: the chroot's terminals are not the
                // host's, and /dev/ptmx must point at this instance.
                mounts.push(MountOp::Fresh {
                    fstype: c"devpts",
                    dest: inside(dest)?,
                    flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                    data: CString::new("newinstance,ptmxmode=0666,mode=0620")?,
                });
                let ptmx = dest.parent().unwrap_or(Path::new("/")).join("ptmx");
                mounts.push(MountOp::Bind {
                    source: inside(&dest.join("ptmx"))?,
                    dest: inside(&ptmx)?,
                    read_only: false,
                    create_dir: false,
                });
            }
            ChrootMount::Tmpfs { dest, mode } => {
                mounts.push(MountOp::Fresh {
                    fstype: c"tmpfs",
                    dest: inside(dest)?,
                    flags: libc::MS_NOSUID | libc::MS_NODEV,
                    data: CString::new(format!("mode={mode:o},size=64m"))?,
                });
            }
            ChrootMount::PrivateDev { dest, entries } => {
                mounts.push(MountOp::Fresh {
                    fstype: c"tmpfs",
                    dest: inside(dest)?,
                    flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                    data: CString::new("mode=755,size=1m")?,
                });
                mounts.push(MountOp::Populate(crate::sandbox::c_entries(
                    &spec.root, entries,
                )?));
                read_only_last.push(MountOp::ReadOnly {
                    dest: inside(dest)?,
                });
            }
        }
    }
    mounts.append(&mut read_only_last);
    Ok(mounts)
}

/// The host's device nodes a private `/dev` gets: /dev/null and the
/// device-mapper control node always, plus `nodes`.
fn dev_nodes(nodes: &[PathBuf]) -> anyhow::Result<Vec<DevNode>> {
    use std::os::unix::fs::MetadataExt;
    let mut wanted: Vec<PathBuf> = vec![
        PathBuf::from("/dev/null"),
        PathBuf::from("/dev/mapper/control"),
    ];
    wanted.extend(nodes.iter().cloned());
    let mut prepared = Vec::new();
    for path in wanted {
        let meta = std::fs::metadata(&path)
            .map_err(|e| anyhow::anyhow!("device node {}: {e}", path.display()))?;
        prepared.push(DevNode {
            path: c_path(&path)?,
            mode: meta.mode(),
            rdev: meta.rdev(),
        });
    }
    Ok(prepared)
}

/// New mount, PID, UTS, IPC and network namespaces, then the second fork
/// that makes the program PID 1 of its namespace (see
/// [`PreparedNamespace::enter`]). Returns in the grandchild only.
///
/// # Safety
/// Only in the child between fork and exec.
unsafe fn enter_chroot_namespaces() -> io::Result<()> {
    check(libc::unshare(
        libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWNET,
    ))?;
    // A raw clone, not fork(): no atfork handlers in a child of a
    // threaded process.
    let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        reap_and_exit(pid as libc::pid_t);
    }
    // If the intermediate was killed before this line, the
    // program runs on unparented; vmrescue has already seen the
    // intermediate end, so only a kill in this instant leaks it.
    check(libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
    ))
}

/// A tmpfs over the (already private) `/dev` holding only `nodes`, so that
/// a program sees none of the host's other disks.
///
/// # Safety
/// Only in the child between fork and exec, after the mount namespace is
/// private.
unsafe fn make_private_dev(nodes: &[DevNode]) -> io::Result<()> {
    check(libc::mount(
        c"tmpfs".as_ptr(),
        c"/dev".as_ptr(),
        c"tmpfs".as_ptr(),
        0,
        c"mode=755".as_ptr().cast(),
    ))?;
    check(libc::mkdir(c"/dev/mapper".as_ptr(), 0o755))?;
    for node in nodes {
        check(libc::mknod(node.path.as_ptr(), node.mode, node.rdev))?;
    }
    Ok(())
}

/// Makes one prepared mount.
///
/// # Safety
/// Only in the child between fork and exec, in its private mount namespace.
unsafe fn mount(op: &MountOp) -> io::Result<()> {
    let null = std::ptr::null::<libc::c_char>();
    match op {
        MountOp::Bind {
            source,
            dest,
            read_only,
            create_dir,
        } => {
            if *create_dir {
                mkdir_exist_ok(dest, 0o755)?;
            }
            check(libc::mount(
                source.as_ptr(),
                dest.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            // A bind mount ignores MS_RDONLY on creation: read-only takes
            // a second, remounting call.
            if *read_only {
                check(libc::mount(
                    null,
                    dest.as_ptr(),
                    null,
                    libc::MS_BIND
                        | libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))?;
            }
            Ok(())
        }
        MountOp::Fresh {
            fstype,
            dest,
            flags,
            data,
        } => check(libc::mount(
            fstype.as_ptr(),
            dest.as_ptr(),
            fstype.as_ptr(),
            *flags,
            data.as_ptr().cast(),
        )),
        MountOp::Populate(entries) => crate::sandbox::populate(entries),
        MountOp::ReadOnly { dest } => check(libc::mount(
            null,
            dest.as_ptr(),
            null,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
            std::ptr::null(),
        )),
    }
}

fn mkdir_exist_ok(path: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain syscalls on a NUL-terminated string.
    unsafe {
        if libc::mkdir(path.as_ptr(), mode) != 0
            && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The intermediate process of a chroot: holds no descriptor but stdio (the
/// exec-error pipe std gave the child must close when the program execs, or
/// `spawn` would wait for the program to end), waits for the program and
/// exits with its status, 128+signal when it was killed.
fn reap_and_exit(pid: libc::pid_t) -> ! {
    // SAFETY: raw syscalls on local data; _exit never returns.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) != 0
        {
            for fd in 3..65536 {
                libc::close(fd);
            }
        }
        let mut status: libc::c_int = 0;
        loop {
            if libc::waitpid(pid, &mut status, 0) == pid {
                break;
            }
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(127);
            }
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            127
        };
        libc::_exit(code)
    }
}
