//! Loop devices through the kernel's loop ioctls (linux/loop.h).
//!
//! Why not the loopdev crate: loopdev-3 generates these bindings at build
//! time with bindgen, which runs libclang on the build host's
//! `/usr/include/linux/loop.h`. That needs libclang on every build machine
//! and fails when cross-building for aarch64 ("'asm/posix_types.h' file not
//! found"). The ABI is small and stable, so the two structs and six ioctl
//! numbers are written out here instead.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;

const LOOP_CONTROL: &str = "/dev/loop-control";

// Flags of loop_info64.lo_flags.
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_PARTSCAN: u32 = 8;

const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64` of linux/loop.h (same layout on every architecture:
/// only fixed-width fields, naturally aligned).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` of linux/loop.h (LOOP_CONFIGURE, Linux 5.8+).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

impl LoopInfo64 {
    fn new(image: &Path, flags: u32) -> Self {
        let mut info = LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        };
        // Informational only (losetup shows it); the kernel keeps the real
        // backing file itself. Truncated, always NUL-terminated.
        let name = image.as_os_str().as_encoded_bytes();
        let len = name.len().min(LO_NAME_SIZE - 1);
        info.lo_file_name[..len].copy_from_slice(&name[..len]);
        info
    }
}

// The loop ioctls are "bad" ones: plain numbers without direction or size
// encoded (0x4C = 'L').
nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
nix::ioctl_write_int_bad!(loop_set_fd, 0x4C00);
nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);
nix::ioctl_write_ptr_bad!(loop_set_status64, 0x4C04, LoopInfo64);
nix::ioctl_write_ptr_bad!(loop_configure, 0x4C0A, LoopConfig);

/// How to attach a backing file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub read_only: bool,
    /// Let the kernel scan the partition table (loopNpM devices).
    pub part_scan: bool,
    /// Detach automatically once the last user closes the device.
    pub autoclear: bool,
}

impl AttachOptions {
    fn flags(self) -> u32 {
        let mut flags = 0;
        if self.read_only {
            flags |= LO_FLAGS_READ_ONLY;
        }
        if self.part_scan {
            flags |= LO_FLAGS_PARTSCAN;
        }
        if self.autoclear {
            flags |= LO_FLAGS_AUTOCLEAR;
        }
        flags
    }
}

/// An open loop device node (`/dev/loopN`).
#[derive(Debug)]
pub struct LoopDevice {
    file: File,
    path: PathBuf,
}

/// Why an attach failed: `Busy` when another program took the device first.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{0} is already in use")]
    Busy(PathBuf),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Asks /dev/loop-control for a free loop device and opens it.
pub fn next_free() -> Result<LoopDevice> {
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open(LOOP_CONTROL)
        .with_context(|| format!("opening {LOOP_CONTROL}"))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument; the fd is open.
    let number = unsafe { loop_ctl_get_free(control.as_raw_fd()) }
        .context("LOOP_CTL_GET_FREE: finding a free loop device")?;
    LoopDevice::open(Path::new(&format!("/dev/loop{number}")))
}

impl LoopDevice {
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(LoopDevice {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Attaches `image` with LOOP_CONFIGURE, or LOOP_SET_FD + LOOP_SET_STATUS64
    /// on kernels older than 5.8 that do not know LOOP_CONFIGURE.
    pub fn attach(&self, image: &Path, options: AttachOptions) -> Result<(), AttachError> {
        let backing = OpenOptions::new()
            .read(true)
            .write(!options.read_only)
            .open(image)
            .with_context(|| format!("opening {}", image.display()))?;
        let info = LoopInfo64::new(image, options.flags());
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info,
            reserved: [0; 8],
        };
        // SAFETY: both fds are open and `config` lives across the call.
        match unsafe { loop_configure(self.file.as_raw_fd(), &config) } {
            Ok(_) => Ok(()),
            Err(Errno::EINVAL) | Err(Errno::ENOTTY) => self.attach_legacy(&backing, &info),
            Err(err) => Err(self.attach_error(err, "LOOP_CONFIGURE")),
        }
        // `backing` closes here: the kernel holds its own reference.
    }

    fn attach_legacy(&self, backing: &File, info: &LoopInfo64) -> Result<(), AttachError> {
        // SAFETY: both fds are open.
        unsafe { loop_set_fd(self.file.as_raw_fd(), backing.as_raw_fd()) }
            .map_err(|err| self.attach_error(err, "LOOP_SET_FD"))?;
        // SAFETY: `info` lives across the call.
        if let Err(err) = unsafe { loop_set_status64(self.file.as_raw_fd(), info) } {
            // Half attached without autoclear/partscan: undo.
            let _ = self.detach();
            return Err(self.attach_error(err, "LOOP_SET_STATUS64"));
        }
        Ok(())
    }

    fn attach_error(&self, err: Errno, call: &str) -> AttachError {
        if err == Errno::EBUSY {
            return AttachError::Busy(self.path.clone());
        }
        AttachError::Other(
            anyhow::Error::new(err).context(format!("{call} on {}", self.path.display())),
        )
    }

    /// Detaches the backing file (LOOP_CLR_FD).
    pub fn detach(&self) -> Result<()> {
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is open.
        unsafe { loop_clr_fd(self.file.as_raw_fd()) }
            .with_context(|| format!("LOOP_CLR_FD on {}", self.path.display()))?;
        Ok(())
    }

    /// Keeps the device node open until the process exits. With autoclear,
    /// the kernel detaches the device on its last close: closing it now,
    /// before anything is mounted from it, would detach it at once.
    pub fn hold_until_exit(self) -> PathBuf {
        let _fd = self.file.into_raw_fd();
        self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_linux_loop_h() {
        // sizeof(struct loop_info64) and sizeof(struct loop_config) from
        // linux/loop.h, the same on x86_64 and aarch64.
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::align_of::<LoopInfo64>(), 8);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_flags), 52);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_file_name), 56);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_init), 216);
        assert_eq!(std::mem::offset_of!(LoopConfig, info), 8);
        assert_eq!(std::mem::offset_of!(LoopConfig, reserved), 240);
    }

    #[test]
    fn flags_follow_options() {
        let all = AttachOptions {
            read_only: true,
            part_scan: true,
            autoclear: true,
        };
        assert_eq!(all.flags(), 1 | 4 | 8);
        assert_eq!(AttachOptions::default().flags(), 0);
        let scan = AttachOptions {
            part_scan: true,
            ..AttachOptions::default()
        };
        assert_eq!(scan.flags(), LO_FLAGS_PARTSCAN);
    }

    #[test]
    fn file_name_is_truncated_and_terminated() {
        let long = "/".to_string() + &"x".repeat(200);
        let info = LoopInfo64::new(Path::new(&long), 0);
        assert_eq!(info.lo_file_name[LO_NAME_SIZE - 1], 0);
        assert_eq!(info.lo_file_name[0], b'/');
        assert_eq!(info.lo_file_name[62], b'x');
        let short = LoopInfo64::new(Path::new("/a.img"), LO_FLAGS_AUTOCLEAR);
        assert_eq!(&short.lo_file_name[..7], b"/a.img\0");
        assert_eq!(short.lo_flags, LO_FLAGS_AUTOCLEAR);
    }

    fn sysfs(device: &Path, attr: &str) -> String {
        let name = device.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_to_string(format!("/sys/block/{name}/{attr}"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Attaches a small image, checks the kernel's view in sysfs, detaches.
    fn attach_check_detach(legacy: bool, options: AttachOptions) {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let device = next_free().unwrap();
        if legacy {
            let backing = OpenOptions::new()
                .read(true)
                .write(!options.read_only)
                .open(&image)
                .unwrap();
            device
                .attach_legacy(&backing, &LoopInfo64::new(&image, options.flags()))
                .unwrap();
        } else {
            device.attach(&image, options).unwrap();
        }
        let path = device.path().to_path_buf();
        assert_eq!(
            sysfs(&path, "loop/backing_file"),
            image.display().to_string()
        );
        let flag = |on: bool| if on { "1" } else { "0" };
        assert_eq!(sysfs(&path, "loop/autoclear"), flag(options.autoclear));
        assert_eq!(sysfs(&path, "loop/partscan"), flag(options.part_scan));
        // LOOP_SET_FD takes read-only from the backing file's open mode.
        assert_eq!(sysfs(&path, "ro"), flag(options.read_only));
        // A second attach to the same device is refused as busy.
        assert!(matches!(
            device.attach(&image, options),
            Err(AttachError::Busy(_))
        ));
        device.detach().unwrap();
        // LOOP_CLR_FD is asynchronous only with autoclear; wait for it.
        for _ in 0..50 {
            if !Path::new(&format!(
                "/sys/block/{}/loop",
                path.file_name().unwrap().to_string_lossy()
            ))
            .exists()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            device.detach().is_err(),
            "{} still attached",
            path.display()
        );
    }

    #[test]
    fn attach_and_detach_with_both_ioctl_paths() {
        if !nix::unistd::geteuid().is_root() || !Path::new(LOOP_CONTROL).exists() {
            println!("SKIP attach_and_detach_with_both_ioctl_paths: needs root and {LOOP_CONTROL}");
            return;
        }
        let writable = AttachOptions {
            part_scan: true,
            autoclear: true,
            ..AttachOptions::default()
        };
        let read_only = AttachOptions {
            read_only: true,
            ..AttachOptions::default()
        };
        attach_check_detach(false, writable);
        attach_check_detach(false, read_only);
        attach_check_detach(true, writable);
        attach_check_detach(true, read_only);
    }
}
