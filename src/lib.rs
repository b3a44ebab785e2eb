//! vmrescue: find, mount, diagnose and repair the broken OS disk of another
//! Linux VM from a rescue VM. The library knows no command line and no
//! screen: the binary (`main.rs` with its `cli`, `run` and `ui` modules)
//! turns flags into plain arguments and renders what the library returns.
//!
//! The pipeline runs one way (see ARCHITECTURE.md):
//! `disk` → `attach` → `inspect` → `diagnose` → `recipe` (+ `journal`) → report;
//! `verify_boot` boots the target copy-on-write in QEMU to prove the result.

pub mod attach;
pub mod bundle;
pub mod cmd;
pub mod diagnose;
pub mod disk;
pub mod error;
pub mod failpoint;
pub mod fleet;
pub mod inspect;
pub mod journal;
pub mod progress;
pub mod recipe;
pub mod release;
pub mod rootfs;
pub mod runlog;
pub mod sandbox;
pub mod signals;
#[cfg(test)]
mod testutil;
pub mod verify_boot;

pub use error::{exit_code_for, ExitCode, Failure};
