//! The console logs named with `--log`: regular files, or `-` for stdin,
//! read up to [`LOG_CAP`]. A device (`/dev/zero`, a serial port) or a FIFO
//! would never end, so they are refused by name before any read.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::Failure;

/// The most bytes read from one `--log` (documented in docs/safety.md):
/// a serial console of months of boots is far smaller, and the classifier
/// benchmark's synthetic log (scripts/bench, "at least 1 GiB") fits.
pub const LOG_CAP: u64 = 2 << 30;

/// Opens a `--log` argument for the classifier, with its name for evidence.
pub fn open(path: &Path) -> Result<(Box<dyn BufRead>, String)> {
    if path.as_os_str() == "-" {
        let reader = Capped::new(io::stdin().lock(), "stdin".into(), LOG_CAP);
        return Ok((Box::new(BufReader::new(reader)), "stdin".into()));
    }
    let name = path.display().to_string();
    // Non-blocking: opening a FIFO or a serial port for reading would wait
    // for a writer or a carrier before the type could be checked.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("opening log {name}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading the type of log {name}"))?;
    if !meta.is_file() {
        return Err(Failure::NoTarget(format!(
            "--log {name} is a {}: logs are regular files, or `-` for stdin",
            crate::attach::refuse::describe_type(&meta)
        ))
        .into());
    }
    if meta.len() > LOG_CAP {
        return Err(Failure::NoTarget(too_large(&name)).into());
    }
    let reader = Capped::new(file, name.clone(), LOG_CAP);
    Ok((Box::new(BufReader::new(reader)), name))
}

fn too_large(name: &str) -> String {
    format!(
        "--log {name} is larger than the {} MiB read limit: pass the part with the failed boots (e.g. `tail -c 100M {name} > part.log`)",
        LOG_CAP >> 20
    )
}

/// A reader that fails with a clear error once more than `cap` bytes came
/// through (a file that grows while read, or stdin).
struct Capped<R> {
    inner: R,
    name: String,
    left: u64,
}

impl<R: Read> Capped<R> {
    fn new(inner: R, name: String, cap: u64) -> Self {
        Capped {
            inner,
            name,
            left: cap,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One byte more than the cap tells a log of exactly the cap apart.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(too_large(&self.name))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..want])?;
        self.left -= got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_past_its_cap_fails_naming_the_log() {
        let mut capped = Capped::new(&b"0123456789"[..], "x.log".into(), 4);
        let mut out = Vec::new();
        let err = capped.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("--log x.log is larger"), "{err}");
        let mut exact = Capped::new(&b"0123"[..], "x.log".into(), 4);
        out.clear();
        exact.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"0123");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("console.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, kind) in [
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
        ] {
            let err = open(path).err().unwrap();
            assert!(format!("{err}").contains(kind), "{err}");
        }
        // No writer: a blocking open would never return.
        let err = open(&fifo).err().unwrap();
        assert!(format!("{err}").contains("FIFO"), "{err}");
    }
}
