//! Long work outside a repair's own steps (activating LVM, checking a
//! filesystem, booting a disk) is announced here, so that whoever drives
//! the library can show it. The library never prints: the binary installs
//! a hook ([`set_hook`]) when it wants progress on the screen, and without
//! one these calls cost a lookup.

use std::sync::OnceLock;
use std::time::Instant;

/// What is happening now.
#[derive(Debug, Clone, Copy)]
pub enum Activity<'a> {
    /// Work that will take a while starts.
    Started { what: &'a str },
    /// That work ended after `seconds`.
    Finished { what: &'a str, seconds: u64 },
    /// A milestone inside longer work (a boot reaching "root mounted").
    Reached {
        what: &'a str,
        milestone: &'a str,
        seconds: u64,
    },
}

type Hook = Box<dyn Fn(&Activity) + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Installs the one listener for this process (later calls are ignored).
pub fn set_hook(hook: Hook) {
    let _ = HOOK.set(hook);
}

fn notify(activity: &Activity) {
    if let Some(hook) = HOOK.get() {
        hook(activity);
    }
}

/// Announces `what` now and its end (with its duration) when dropped.
pub struct Span {
    what: String,
    started: Instant,
}

pub fn start(what: impl Into<String>) -> Span {
    let span = Span {
        what: what.into(),
        started: Instant::now(),
    };
    notify(&Activity::Started { what: &span.what });
    span
}

impl Span {
    /// A milestone of this work, with the time since it started.
    pub fn reached(&self, milestone: &str) {
        notify(&Activity::Reached {
            what: &self.what,
            milestone,
            seconds: self.started.elapsed().as_secs(),
        });
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        notify(&Activity::Finished {
            what: &self.what,
            seconds: self.started.elapsed().as_secs(),
        });
    }
}
