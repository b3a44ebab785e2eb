//! Pure parsers and renderers of boot-relevant files of the target OS (parse → edit → render).

pub mod bls;
pub mod boot_default;
pub mod cmdline;
pub mod default_grub;
pub mod grub_cfg;
pub mod grubenv;
pub mod kdump;
pub mod kdump_conf;
pub mod kernels;
pub mod loader_conf;
pub mod os;
pub mod snapshot;
pub mod sysctl;
pub mod version;
