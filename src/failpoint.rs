//! Test-only crash injection: `VMRESCUE_FAILPOINT=<name>` makes the process
//! kill itself with SIGKILL when it reaches the point of that name, exactly
//! like `kill -9` from outside, so tests can prove crash safety at each step.

/// Kills the process if the environment names this failpoint.
pub fn hit(name: &str) {
    if let Some(wanted) = std::env::var_os("VMRESCUE_FAILPOINT") {
        if wanted == name {
            tracing::warn!("failpoint {name} reached: killing the process");
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
