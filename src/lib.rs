//! vmrescue: find, mount, diagnose and repair the broken OS disk of another
//! Linux VM from a rescue VM. `main.rs` is a thin shell over this library.
//!
//! The pipeline runs one way (see DESIGN.md):
//! `disk` → `target` → `inspect` → `diagnose` → `recipe` (+ `journal`) → `ui`;
//! `verify_boot` boots the target copy-on-write in QEMU to prove the result.

pub mod bundle;
pub mod cli;
pub mod cmd;
pub mod diagnose;
pub mod disk;
pub mod error;
pub mod failpoint;
pub mod fleet;
pub mod inspect;
pub mod journal;
pub mod recipe;
pub mod release;
pub mod rootfs;
pub mod run;
pub mod sandbox;
pub mod signals;
pub mod target;
pub mod ui;
pub mod verify_boot;

pub use error::{exit_code_for, ExitCode, Failure};
