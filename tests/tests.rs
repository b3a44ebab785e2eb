//! The one integration-test binary (linking one binary instead of one per
//! file is most of `cargo test`'s time on two cores). Each module is one
//! area; `common` is the shared harness: the `vmrescue()` command builder,
//! test images, and the JSON envelope check. Tests that attach disks hold
//! `common::serial()`, since they now share a process.
//!
//! `tests/fleet/` stays a binary of its own: it is also the fake `az`.

mod common;

mod aarch64_qemu;
mod az_payload;
mod boot_failures;
mod bundle;
mod cli;
mod fix_mounts;
mod fuzz_parsers;
mod hostile;
mod inspect_snapshots;
mod install_sh;
mod playbook;
mod recipes;
mod refusals;
mod target_mount;
mod verify_boot;
mod wizard;
