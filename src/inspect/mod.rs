//! Pure parsers and renderers of boot-relevant files of the target OS (parse → edit → render).

pub mod bls;
pub mod boot_default;
pub mod cmdline;
pub mod default_grub;
pub mod disk_usage;
pub mod dracut_conf;
pub mod fstab;
pub mod grub_cfg;
pub mod grubenv;
pub mod initramfs_modules;
pub mod kdump;
pub mod kdump_conf;
pub mod kernels;
mod lines;
pub mod loader_conf;
pub mod lvm_devices;
pub mod modprobe_d;
pub mod os;
pub mod snapshot;
pub mod sysctl;
pub mod version;
