//! Read-only access to files of a target root directory, confined to it.
//!
//! The target disk is untrusted: every path is resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so `..` chains and absolute symlinks such as
//! `/etc/default/grub -> /etc/shadow` resolve inside the target, never on the
//! rescue host. Paths given here are target paths (`/etc/fstab`).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// Files larger than this are refused by [`RootDir::read`]: boot
/// configuration is small, and a hostile disk must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The cap for [`RootDir::read_boot_image`]: a generic dracut initramfs
/// with two kernels' firmware passes 32 MiB; none comes near this.
pub const MAX_BOOT_IMAGE_BYTES: u64 = 512 * 1024 * 1024;

/// A directory treated as `/` of the target OS.
#[derive(Debug)]
pub struct RootDir {
    path: PathBuf,
    dir: OwnedFd,
}

/// The kind of a directory entry, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: EntryKind,
}

impl RootDir {
    /// Opens `path` (a host path) as the target root.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_PATH | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("opening target root {}", path.display()))?;
        Ok(RootDir {
            path,
            dir: OwnedFd::from(file),
        })
    }

    /// The host path of the root (for messages and for external tools).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path a target path would have if it contained no symlinks.
    /// For display only: never open it, use the methods here instead.
    pub fn display_path(&self, target_path: impl AsRef<Path>) -> PathBuf {
        let target_path = target_path.as_ref();
        self.path
            .join(target_path.strip_prefix("/").unwrap_or(target_path))
    }

    /// Opens a target path with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
    pub fn open_fd(
        &self,
        target_path: impl AsRef<Path>,
        flags: OFlag,
        mode: Mode,
    ) -> io::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(self.dir.as_raw_fd(), target_path.as_ref(), how)?;
        // SAFETY: openat2 returned a new descriptor that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Reads a whole file (at most [`MAX_FILE_BYTES`]).
    pub fn read(&self, target_path: impl AsRef<Path>) -> Result<Vec<u8>> {
        self.read_limited(target_path, MAX_FILE_BYTES)
    }

    /// Reads a whole kernel or initramfs image (at most [`MAX_BOOT_IMAGE_BYTES`]).
    pub fn read_boot_image(&self, target_path: impl AsRef<Path>) -> Result<Vec<u8>> {
        self.read_limited(target_path, MAX_BOOT_IMAGE_BYTES)
    }

    /// Reads a whole file, refusing files over `limit` bytes.
    pub fn read_limited(&self, target_path: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>> {
        let target_path = target_path.as_ref();
        // O_NONBLOCK: a FIFO planted where a config file should be must not
        // hang the rescue; anything but a regular file is refused below.
        let fd = self
            .open_fd(
                target_path,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .with_context(|| self.describe("opening", target_path))?;
        let kind = nix::sys::stat::fstat(fd.as_raw_fd())
            .with_context(|| self.describe("checking", target_path))?
            .st_mode
            & libc::S_IFMT;
        if kind != libc::S_IFREG {
            let what = match kind {
                libc::S_IFDIR => "a directory",
                libc::S_IFIFO => "a FIFO",
                libc::S_IFCHR | libc::S_IFBLK => "a device node",
                libc::S_IFSOCK => "a socket",
                _ => "not a regular file",
            };
            anyhow::bail!(
                "{} is {what}, not a regular file: refusing to read it",
                self.display_path(target_path).display()
            );
        }
        let mut file = File::from(fd);
        let mut buf = Vec::new();
        (&mut file)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .with_context(|| self.describe("reading", target_path))?;
        if buf.len() as u64 > limit {
            anyhow::bail!(
                "{} is larger than {limit} bytes; refusing to read it",
                self.display_path(target_path).display()
            );
        }
        Ok(buf)
    }

    /// Reads a file as UTF-8 text (invalid sequences replaced, with a warning).
    pub fn read_string(&self, target_path: impl AsRef<Path>) -> Result<String> {
        let target_path = target_path.as_ref();
        let bytes = self.read(target_path)?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(err) => {
                tracing::warn!(
                    "{} is not valid UTF-8; reading it lossily",
                    self.display_path(target_path).display()
                );
                Ok(String::from_utf8_lossy(err.as_bytes()).into_owned())
            }
        }
    }

    /// Like [`read_string`](Self::read_string), but a missing file is `None`.
    pub fn read_string_optional(&self, target_path: impl AsRef<Path>) -> Result<Option<String>> {
        let target_path = target_path.as_ref();
        match self.open_fd(target_path, OFlag::O_PATH, Mode::empty()) {
            Err(err) if is_missing(&err) => Ok(None),
            Err(err) => Err(err).with_context(|| self.describe("opening", target_path)),
            Ok(_) => self.read_string(target_path).map(Some),
        }
    }

    /// Metadata of the file a path resolves to (symlinks followed inside the root).
    pub fn metadata(&self, target_path: impl AsRef<Path>) -> io::Result<FileStat> {
        let fd = self.open_fd(target_path, OFlag::O_PATH, Mode::empty())?;
        Ok(fstat(fd.as_raw_fd())?)
    }

    /// Metadata of the path itself (a final symlink is not followed).
    pub fn symlink_metadata(&self, target_path: impl AsRef<Path>) -> io::Result<FileStat> {
        let fd = self.open_fd(
            target_path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(fstat(fd.as_raw_fd())?)
    }

    /// True when the target has `program` in one of the directories the
    /// sandbox's PATH lists (symlinks followed inside the root).
    pub fn has_program(&self, program: &str) -> bool {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| self.is_file(Path::new(dir).join(program)))
    }

    /// True when the path resolves to something inside the root.
    pub fn exists(&self, target_path: impl AsRef<Path>) -> bool {
        self.metadata(target_path).is_ok()
    }

    pub fn is_file(&self, target_path: impl AsRef<Path>) -> bool {
        self.metadata(target_path)
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
            .unwrap_or(false)
    }

    pub fn is_dir(&self, target_path: impl AsRef<Path>) -> bool {
        self.metadata(target_path)
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
            .unwrap_or(false)
    }

    /// Entries of a directory, sorted by name; a missing directory is empty.
    pub fn list_dir(&self, target_path: impl AsRef<Path>) -> Result<Vec<DirEntry>> {
        let target_path = target_path.as_ref();
        let fd = match self.open_fd(
            target_path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        ) {
            Err(err) if is_missing(&err) => return Ok(Vec::new()),
            other => other.with_context(|| self.describe("opening directory", target_path))?,
        };
        let mut dir = nix::dir::Dir::from_fd(fd.as_raw_fd())
            .with_context(|| self.describe("listing", target_path))?;
        // Dir::from_fd took ownership of the descriptor.
        std::mem::forget(fd);
        let mut entries = Vec::new();
        for entry in dir.iter() {
            let entry = entry.with_context(|| self.describe("listing", target_path))?;
            let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                Some(nix::dir::Type::File) => EntryKind::File,
                Some(nix::dir::Type::Directory) => EntryKind::Dir,
                Some(nix::dir::Type::Symlink) => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            entries.push(DirEntry {
                name: name.to_owned(),
                kind,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The target of a symlink (as stored, not resolved); `None` if not a symlink or missing.
    pub fn read_link(&self, target_path: impl AsRef<Path>) -> Result<Option<PathBuf>> {
        let target_path = target_path.as_ref();
        let fd = match self.open_fd(
            target_path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            Err(err) if is_missing(&err) => return Ok(None),
            other => other.with_context(|| self.describe("opening", target_path))?,
        };
        match nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "") {
            Ok(target) => Ok(Some(PathBuf::from(target))),
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(None),
            Err(err) => Err(err).with_context(|| self.describe("reading link", target_path)),
        }
    }

    fn describe(&self, what: &str, target_path: &Path) -> String {
        format!(
            "{what} {} (in target root {})",
            target_path.display(),
            self.path.display()
        )
    }
}

/// Missing file, or a path component that is not a directory.
pub fn is_missing(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// True when the disk itself failed under a read (EIO, or EUCLEAN: the
/// filesystem found its own metadata corrupt), anywhere in the error's chain.
/// Callers that turn a file's errors into a finding ("no default boot entry:
/// …") must stop instead: a disk that fails reads is no boot configuration
/// problem, and a report built around the hole would be wrong.
pub fn is_read_failure(err: &anyhow::Error) -> bool {
    let failed = |errno: i32| errno == libc::EIO || errno == libc::EUCLEAN;
    err.chain().any(|cause| {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io.raw_os_error().is_some_and(failed);
        }
        cause
            .downcast_ref::<nix::errno::Errno>()
            .is_some_and(|errno| failed(*errno as i32))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/default")).unwrap();
        std::fs::write(dir.path().join("etc/fstab"), "UUID=x / ext4 defaults 0 1\n").unwrap();
        dir
    }

    #[test]
    fn reads_a_file_by_target_path() {
        let dir = tree();
        let root = RootDir::open(dir.path()).unwrap();
        assert_eq!(
            root.read_string("/etc/fstab").unwrap(),
            "UUID=x / ext4 defaults 0 1\n"
        );
        assert_eq!(
            root.read_string("etc/fstab").unwrap(),
            "UUID=x / ext4 defaults 0 1\n"
        );
    }

    #[test]
    fn absolute_symlink_to_host_file_stays_in_target() {
        let dir = tree();
        // On the host /etc/hostname exists; inside the target it does not.
        symlink("/etc/hostname", dir.path().join("etc/default/grub")).unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        assert!(root.read("/etc/default/grub").is_err());
        std::fs::write(dir.path().join("etc/hostname"), "target-host\n").unwrap();
        assert_eq!(
            root.read_string("/etc/default/grub").unwrap(),
            "target-host\n"
        );
    }

    #[test]
    fn dotdot_chain_cannot_escape() {
        let dir = tree();
        symlink(
            "../../../../../../etc/fstab",
            dir.path().join("etc/default/grub"),
        )
        .unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        // `..` at the root stays at the root, so this is the target's own fstab.
        assert_eq!(
            root.read_string("/etc/default/grub").unwrap(),
            "UUID=x / ext4 defaults 0 1\n"
        );
        assert_eq!(
            root.read_string("/../../etc/fstab").unwrap(),
            "UUID=x / ext4 defaults 0 1\n"
        );
    }

    #[test]
    fn missing_file_is_none_or_error_with_path() {
        let dir = tree();
        let root = RootDir::open(dir.path()).unwrap();
        assert!(root
            .read_string_optional("/etc/os-release")
            .unwrap()
            .is_none());
        let err = root.read("/etc/os-release").unwrap_err();
        assert!(format!("{err:#}").contains("/etc/os-release"), "{err:#}");
    }

    #[test]
    fn read_failure_is_found_under_context_and_nothing_else_is() {
        let eio: Result<()> = Err(io::Error::from_raw_os_error(libc::EIO))
            .context("reading /boot/grub/grub.cfg (in target root /mnt/t)");
        let eio = eio.unwrap_err().context("finding the default boot entry");
        assert!(is_read_failure(&eio), "{eio:#}");
        let nix_eio = anyhow::Error::new(nix::errno::Errno::EIO).context("checking /etc/fstab");
        assert!(is_read_failure(&nix_eio));
        let unclean = anyhow::Error::new(io::Error::from_raw_os_error(libc::EUCLEAN));
        assert!(is_read_failure(&unclean));
        let missing: Result<()> =
            Err(io::Error::from_raw_os_error(libc::ENOENT)).context("opening /boot/grub/grub.cfg");
        assert!(!is_read_failure(&missing.unwrap_err()));
        assert!(!is_read_failure(&anyhow::anyhow!(
            "no menuentry matches default=2"
        )));
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tree();
        std::fs::write(dir.path().join("big"), vec![b'x'; 100]).unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        assert!(root.read_limited("/big", 99).is_err());
        assert_eq!(root.read_limited("/big", 100).unwrap().len(), 100);
    }

    #[test]
    fn lists_and_reads_links() {
        let dir = tree();
        symlink("vmlinuz-6.1.0-9-amd64", dir.path().join("etc/vmlinuz")).unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let names: Vec<_> = root
            .list_dir("/etc")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["default", "fstab", "vmlinuz"]);
        assert_eq!(
            root.read_link("/etc/vmlinuz").unwrap(),
            Some(PathBuf::from("vmlinuz-6.1.0-9-amd64"))
        );
        assert_eq!(root.read_link("/etc/fstab").unwrap(), None);
        assert!(root.list_dir("/nope").unwrap().is_empty());
        assert!(root.is_dir("/etc") && root.is_file("/etc/fstab"));
    }
}
