//! Refusals made before anything is read or written: the flags that would aim
//! vmrescue at the rescue VM itself (issue 22, part 1). Each returns
//! [`Failure::NoTarget`] (exit 3) with one line naming what was refused.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::Failure;

/// Device and inode: what identifies a file whatever the path to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// `--root` on the running system's own root (`/`, `"$DIR/"` with `DIR`
/// empty, `/proc/1/root`, or a bind mount of it elsewhere: all the same
/// device and inode) is refused.
pub fn check_root_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("opening {}", dir.display()))?;
    let wanted = FileId::of(&meta);
    // PID 1's root is the system's; our own `/` differs only in a container
    // or chroot, and both are the host from the target's point of view.
    for host_root in ["/proc/1/root", "/"] {
        let Ok(host) = std::fs::metadata(host_root) else {
            continue;
        };
        if FileId::of(&host) == wanted {
            return Err(Failure::NoTarget(format!(
                "--root {} is the running system's own root (same device and inode as {host_root}): refusing to repair the rescue VM itself",
                dir.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// `--image` must be a regular file that no mount and no running program
/// is using for writing; returns it canonicalized.
pub fn check_image(image: &Path) -> Result<PathBuf> {
    let path = std::fs::canonicalize(image)
        .with_context(|| format!("opening image {}", image.display()))?;
    let meta =
        std::fs::metadata(&path).with_context(|| format!("opening image {}", path.display()))?;
    let kind = meta.file_type();
    if kind.is_block_device() {
        return Err(refused(format!(
            "--image {} is a block device: name it with --disk, which checks it is not one of the rescue VM's own disks",
            image.display()
        )));
    }
    if !kind.is_file() {
        return Err(refused(format!(
            "--image {} is a {}, not a regular disk image file",
            image.display(),
            describe_type(&meta)
        )));
    }
    let id = FileId::of(&meta);
    if let Some(loop_dev) = mounted_loop_of(id)? {
        return Err(refused(format!(
            "--image {} is in use: attached to {loop_dev}, which is mounted or held; unmount it first (a running system's disk image must not be repaired under it)",
            image.display()
        )));
    }
    if let Some(user) = writer_of(id) {
        return Err(refused(format!(
            "--image {} is open for writing by {user}: stop that VM or program first",
            image.display()
        )));
    }
    Ok(path)
}

fn refused(message: String) -> anyhow::Error {
    Failure::NoTarget(message).into()
}

pub(crate) fn describe_type(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// A loop device backed by this file that is mounted (itself or one of its
/// partitions) or held by another device (LVM, dm), e.g. `/dev/loop3`.
fn mounted_loop_of(image: FileId) -> Result<Option<String>> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Ok(None);
    };
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mounted: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(2))
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let sys = entry.path();
        let Ok(backing) = std::fs::read_to_string(sys.join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end_matches('\n');
        let same = std::fs::metadata(backing).is_ok_and(|m| FileId::of(&m) == image);
        if same && loop_in_use(&sys, &name, &mounted) {
            return Ok(Some(format!("/dev/{name}")));
        }
    }
    Ok(None)
}

/// The loop device or a partition of it is in the mount table (by
/// major:minor), or something (dm, LVM) holds it.
fn loop_in_use(sys: &Path, name: &str, mounted: &[&str]) -> bool {
    let mut devices = vec![sys.to_path_buf()];
    if let Ok(children) = std::fs::read_dir(sys) {
        devices.extend(
            children
                .flatten()
                .filter(|c| c.file_name().to_string_lossy().starts_with(name))
                .map(|c| c.path()),
        );
    }
    devices.iter().any(|dev| {
        let number = std::fs::read_to_string(dev.join("dev")).unwrap_or_default();
        let held = std::fs::read_dir(dev.join("holders")).is_ok_and(|mut h| h.next().is_some());
        held || mounted.contains(&number.trim())
    })
}

/// The first running process (not this one) holding the file open for
/// writing, as `pid N (comm)`. Reads `/proc/*/fd` links and their
/// `fdinfo` flags: one stat per open descriptor on the host.
fn writer_of(image: FileId) -> Option<String> {
    let me = std::process::id().to_string();
    let procs = std::fs::read_dir("/proc").ok()?;
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let same = std::fs::metadata(fd.path()).is_ok_and(|m| FileId::of(&m) == image);
            if !same {
                continue;
            }
            let info = proc_entry.path().join("fdinfo").join(fd.file_name());
            if opened_for_writing(&std::fs::read_to_string(info).unwrap_or_default()) {
                let comm =
                    std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

/// The `flags:` line of an fdinfo file (octal) has O_WRONLY or O_RDWR.
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| {
            let mode = flags & i64::from(libc::O_ACCMODE);
            mode == i64::from(libc::O_WRONLY) || mode == i64::from(libc::O_RDWR)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_root_is_refused_by_any_path() {
        for path in ["/", "//", "/.", "/usr/.."] {
            let err = check_root_dir(Path::new(path)).unwrap_err();
            assert!(
                matches!(err.downcast_ref::<Failure>(), Some(Failure::NoTarget(_))),
                "{path}: {err:#}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        check_root_dir(dir.path()).unwrap();
    }

    #[test]
    fn fdinfo_flags_name_writers() {
        assert!(opened_for_writing("pos:\t0\nflags:\t0100002\nmnt_id:\t1\n"));
        assert!(opened_for_writing("flags:\t01\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t02100000\n"));
        assert!(!opened_for_writing("garbage"));
    }

    #[test]
    fn an_image_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for path in [dir.path(), Path::new("/dev/null")] {
            let err = check_image(path).unwrap_err();
            assert!(
                matches!(err.downcast_ref::<Failure>(), Some(Failure::NoTarget(_))),
                "{err:#}"
            );
        }
        let file = dir.path().join("disk.img");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(check_image(&file).unwrap(), file.canonicalize().unwrap());
    }

    #[test]
    fn an_image_open_for_writing_by_a_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        std::fs::write(&file, b"").unwrap();
        let mut holder = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<>\"$1\"; echo ready; exec sleep 30")
            .arg("sh")
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut ready,
        )
        .unwrap();
        let result = check_image(&file);
        holder.kill().unwrap();
        holder.wait().unwrap();
        let err = result.unwrap_err();
        assert!(
            format!("{err}").contains("open for writing by pid"),
            "{err}"
        );
        check_image(&file).unwrap();
    }
}
