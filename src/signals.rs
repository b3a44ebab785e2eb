//! SIGINT/SIGTERM/SIGHUP (a closed SSH session or serial console): undo this process's mounts, loop devices and VG changes
//! before exiting with 130 (invariant 7).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

static INTERACTIVE_CHILD: AtomicBool = AtomicBool::new(false);
static CLEANUP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A scratch directory the signal handler removes before exiting (its
/// owner, e.g. a `tempfile::TempDir`, removes it normally). Unregistered on drop.
#[derive(Debug)]
pub struct CleanupDir(PathBuf);

impl CleanupDir {
    pub fn register(path: &Path) -> Self {
        if let Ok(mut dirs) = CLEANUP_DIRS.lock() {
            dirs.push(path.to_path_buf());
        }
        CleanupDir(path.to_path_buf())
    }
}

impl Drop for CleanupDir {
    fn drop(&mut self) {
        if let Ok(mut dirs) = CLEANUP_DIRS.lock() {
            dirs.retain(|d| d != &self.0);
        }
    }
}

fn remove_cleanup_dirs() {
    if let Ok(dirs) = CLEANUP_DIRS.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// While an interactive child (a chroot shell) runs, Ctrl-C belongs to it.
pub struct InteractiveGuard;

impl InteractiveGuard {
    pub fn new() -> Self {
        INTERACTIVE_CHILD.store(true, Ordering::SeqCst);
        InteractiveGuard
    }
}

impl Default for InteractiveGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InteractiveGuard {
    fn drop(&mut self) {
        INTERACTIVE_CHILD.store(false, Ordering::SeqCst);
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this (main) thread and every thread spawned
/// after it, and handles them on a dedicated thread: clean up what this
/// process mounted, then call `exit` (which must not return). What it does
/// is said through `say` (the library prints nothing itself). Child
/// processes get the default signal mask back from `std::process::Command`.
pub fn install(say: fn(&str), exit: fn(i32) -> !) -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.thread_block()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let Ok(signal) = set.wait() else { continue };
            if signal == Signal::SIGINT && INTERACTIVE_CHILD.load(Ordering::SeqCst) {
                continue;
            }
            say(&format!("{signal:?} received: cleaning up"));
            if let Err(err) = crate::attach::teardown_own() {
                say(&format!(
                    "cleanup incomplete: {err:#} (run `vmrescue umount`)"
                ));
            }
            // Background programs (a QEMU VM) die with us (PR_SET_PDEATHSIG).
            remove_cleanup_dirs();
            exit(130);
        })?;
    Ok(())
}
