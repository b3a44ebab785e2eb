//! File operations confined to the target root: every path is opened with
//! `openat2(RESOLVE_IN_ROOT)` and changed with `*at` calls on its parent
//! directory's descriptor, so nothing outside the root can be reached.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use serde::{Deserialize, Serialize};

use crate::failpoint;
use crate::rootfs::{is_missing, RootDir, MAX_FILE_BYTES};

/// Owner, mode and extended attributes (incl. `security.selinux`) of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// Name → value as hex.
    pub xattrs: Vec<(String, String)>,
}

/// A target path with its symlinks resolved inside the root.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub path: PathBuf,
    pub exists: bool,
}

/// `a/./b/../c` → `/a/c`, never above `/`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn canonical_root(root: &RootDir) -> Result<PathBuf> {
    std::fs::canonicalize(root.path())
        .with_context(|| format!("resolving {}", root.path().display()))
}

/// Where a target path really leads, inside the root.
pub fn resolve(root: &RootDir, path: &Path) -> Result<Resolved> {
    resolve_depth(root, &normalize(path), 0)
}

fn resolve_depth(root: &RootDir, path: &Path, depth: u32) -> Result<Resolved> {
    if depth > 40 {
        bail!("too many levels of symlinks resolving {}", path.display());
    }
    match root.open_fd(path, OFlag::O_PATH, Mode::empty()) {
        Ok(fd) => {
            let host = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .with_context(|| format!("resolving {}", path.display()))?;
            let root_path = canonical_root(root)?;
            let inside = host
                .strip_prefix(&root_path)
                .with_context(|| format!("{} resolved outside the target root", path.display()))?;
            Ok(Resolved {
                path: Path::new("/").join(inside),
                exists: true,
            })
        }
        Err(err) if is_missing(&err) => {
            // A dangling symlink: follow its text inside the root.
            if let Some(target) = root.read_link(path)? {
                let next = if target.is_absolute() {
                    target
                } else {
                    path.parent().unwrap_or(Path::new("/")).join(target)
                };
                return resolve_depth(root, &normalize(&next), depth + 1);
            }
            let name = path
                .file_name()
                .with_context(|| format!("{} has no file name", path.display()))?;
            let parent = path.parent().unwrap_or(Path::new("/"));
            let parent = if parent == Path::new("/") {
                PathBuf::from("/")
            } else {
                resolve_depth(root, parent, depth + 1)?.path
            };
            Ok(Resolved {
                path: parent.join(name),
                exists: false,
            })
        }
        Err(err) => Err(err).with_context(|| format!("resolving {} in the target", path.display())),
    }
}

fn parent_and_name(path: &Path) -> Result<(&Path, CString)> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let name = CString::new(name.as_bytes())
        .with_context(|| format!("{} contains a NUL byte", path.display()))?;
    Ok((parent, name))
}

fn open_dir(root: &RootDir, dir: &Path) -> Result<OwnedFd> {
    root.open_fd(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
        .with_context(|| format!("opening directory {} in the target", dir.display()))
}

pub fn read_all(root: &RootDir, path: &Path) -> Result<Vec<u8>> {
    root.read_limited(path, 1024 * MAX_FILE_BYTES)
}

/// Reads owner, mode and xattrs of a (non-symlink) file or directory.
pub fn read_meta(root: &RootDir, path: &Path) -> Result<FileMeta> {
    let nofollow = root
        .open_fd(path, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())
        .with_context(|| format!("opening {}", path.display()))?;
    let st = fstat(nofollow.as_raw_fd()).with_context(|| format!("stat {}", path.display()))?;
    let is_link = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK;
    let xattrs = if is_link {
        Vec::new()
    } else {
        let fd = root
            .open_fd(
                path,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .with_context(|| format!("opening {}", path.display()))?;
        list_xattrs(&fd)
            .with_context(|| format!("reading extended attributes of {}", path.display()))?
    };
    Ok(FileMeta {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
        xattrs,
    })
}

fn list_xattrs(fd: &OwnedFd) -> std::io::Result<Vec<(String, String)>> {
    let raw = fd.as_raw_fd();
    // SAFETY: buffers are sized from the kernel's answer and owned here.
    let size = unsafe { libc::flistxattr(raw, std::ptr::null_mut(), 0) };
    if size < 0 {
        let err = std::io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(Vec::new())
        } else {
            Err(err)
        };
    }
    let mut names = vec![0u8; size as usize];
    let size = unsafe { libc::flistxattr(raw, names.as_mut_ptr().cast(), names.len()) };
    if size < 0 {
        return Err(std::io::Error::last_os_error());
    }
    names.truncate(size as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(std::io::Error::other)?;
        let len = unsafe { libc::fgetxattr(raw, cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut value = vec![0u8; len as usize];
        let len =
            unsafe { libc::fgetxattr(raw, cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        if len < 0 {
            return Err(std::io::Error::last_os_error());
        }
        value.truncate(len as usize);
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        out.push((String::from_utf8_lossy(name).into_owned(), hex));
    }
    Ok(out)
}

fn set_xattrs(fd: &File, xattrs: &[(String, String)]) -> Result<()> {
    for (name, hex) in xattrs {
        let value: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16))
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("bad xattr value for {name} in the journal"))?;
        let cname = CString::new(name.as_bytes()).context("xattr name contains a NUL byte")?;
        // SAFETY: valid fd, NUL-terminated name, value buffer owned here.
        let ret = unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if ret != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("setting extended attribute {name}"));
        }
    }
    Ok(())
}

/// Writes `contents` to `path` (resolved, inside the root) through a temp
/// file in the same directory and a rename, keeping `meta` when given.
pub fn atomic_write(
    stage: &str,
    root: &RootDir,
    path: &Path,
    contents: &[u8],
    meta: Option<&FileMeta>,
    mode_if_new: u32,
) -> Result<()> {
    let (parent, name) = parent_and_name(path)?;
    let dir = open_dir(root, parent)?;
    let tmp_name =
        CString::new([b".", name.as_bytes(), b".vmrescue-tmp"].concat()).context("temp name")?;
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        tmp_name.as_c_str(),
        UnlinkatFlags::NoRemoveDir,
    );
    let result = (|| -> Result<()> {
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            tmp_name.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .context("creating the temp file")?;
        // SAFETY: openat returned a new descriptor we own.
        let mut file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.write_all(contents).context("writing the temp file")?;
        match meta {
            Some(meta) => {
                nix::unistd::fchown(
                    file.as_raw_fd(),
                    Some(meta.uid.into()),
                    Some(meta.gid.into()),
                )
                .context("setting the owner")?;
                nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(meta.mode))
                    .context("setting the mode")?;
                set_xattrs(&file, &meta.xattrs)?;
            }
            None => nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode_if_new))
                .context("setting the mode")?,
        }
        file.sync_all().context("flushing the temp file")?;
        failpoint::hit(&format!("journal-{stage}-after-temp"));
        nix::fcntl::renameat(
            Some(dir.as_raw_fd()),
            tmp_name.as_c_str(),
            Some(dir.as_raw_fd()),
            name.as_c_str(),
        )
        .context("renaming the temp file over the original")?;
        failpoint::hit(&format!("journal-{stage}-after-rename"));
        nix::unistd::fsync(dir.as_raw_fd()).context("flushing the directory")?;
        Ok(())
    })();
    if result.is_err() {
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp_name.as_c_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
    result.map_err(|err| explain_write_error(err, path))
}

/// One line for the common reasons a write into the target fails.
fn explain_write_error(err: anyhow::Error, path: &Path) -> anyhow::Error {
    let errno = err.chain().find_map(|cause| {
        cause.downcast_ref::<Errno>().copied().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.raw_os_error())
                .map(Errno::from_raw)
        })
    });
    match errno {
        Some(Errno::ENOSPC) | Some(Errno::EDQUOT) => err.context(format!(
            "the target filesystem holding {} is full: free space on it (e.g. old kernels in /boot) and retry; nothing was changed",
            path.display()
        )),
        Some(Errno::EROFS) => err.context(format!(
            "the target filesystem holding {} is read-only: nothing was changed",
            path.display()
        )),
        _ => err,
    }
}

/// A backup copy into the journal (always whole: temp + rename).
pub fn copy_file(root: &RootDir, from: &Path, to: &Path) -> Result<()> {
    let contents = read_all(root, from)?;
    atomic_write("backup", root, to, &contents, None, 0o600)
}

pub fn mkdir(root: &RootDir, path: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(path)?;
    let dir = open_dir(root, parent)?;
    match nix::sys::stat::mkdirat(
        Some(dir.as_raw_fd()),
        name.as_c_str(),
        Mode::from_bits_truncate(0o755),
    ) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("creating directory {}", path.display())),
    }
}

/// `mkdir -p` inside the root (for the journal's own directories).
pub fn create_dirs(root: &RootDir, dir: &Path) -> Result<()> {
    let mut current = PathBuf::from("/");
    for component in normalize(dir).components().skip(1) {
        current.push(component);
        if !root.is_dir(&current) {
            mkdir(root, &current)?;
        }
    }
    Ok(())
}

pub fn symlink(root: &RootDir, link_target: &Path, path: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(path)?;
    let dir = open_dir(root, parent)?;
    nix::unistd::symlinkat(
        link_target.as_os_str(),
        Some(dir.as_raw_fd()),
        name.as_c_str(),
    )
    .with_context(|| format!("creating symlink {}", path.display()))
}

pub fn unlink(root: &RootDir, path: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(path)?;
    let dir = open_dir(root, parent)?;
    nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name.as_c_str(),
        UnlinkatFlags::NoRemoveDir,
    )
    .with_context(|| format!("removing {}", path.display()))?;
    nix::unistd::fsync(dir.as_raw_fd()).context("flushing the directory")
}

/// Removes a file; false when it was already gone.
pub fn unlink_if_exists(root: &RootDir, path: &Path) -> Result<bool> {
    if root.symlink_metadata(path).is_err() {
        return Ok(false);
    }
    unlink(root, path).map(|()| true)
}

pub fn rmdir_if_empty(root: &RootDir, path: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(path)?;
    let Ok(dir) = open_dir(root, parent) else {
        return Ok(());
    };
    match nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name.as_c_str(),
        UnlinkatFlags::RemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) | Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing directory {}", path.display())),
    }
}
