//! The one way vmrescue runs an external program.
//!
//! Argv only (never `sh -c` strings). Every run is logged with its argv at
//! debug level, its stdout is captured, the last [`STDERR_TAIL_BYTES`] of its
//! stderr are kept for the error message, and the time it took is added to a
//! process-wide counter so benchmarks can split own time from tool time.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How much of a program's stderr is kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 4096;

static TOOL_NANOS: AtomicU64 = AtomicU64::new(0);
static TOOL_RUNS: AtomicU64 = AtomicU64::new(0);

/// Total wall time spent in external programs by this process, and how many ran.
pub fn tool_time() -> (Duration, u64) {
    (
        Duration::from_nanos(TOOL_NANOS.load(Ordering::Relaxed)),
        TOOL_RUNS.load(Ordering::Relaxed),
    )
}

/// A program that ran and exited non-zero (or was killed, or timed out).
#[derive(Debug, thiserror::Error)]
pub struct CommandFailed {
    pub argv: String,
    pub status: String,
    pub stderr_tail: String,
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.argv, self.status)?;
        let tail = self.stderr_tail.trim();
        if !tail.is_empty() {
            write!(f, ": {tail}")?;
        }
        Ok(())
    }
}

/// What a finished program left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The last [`STDERR_TAIL_BYTES`] of stderr, lossily decoded.
    pub stderr_tail: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Output {
    pub fn stdout_string(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }
}

/// Where a command runs when it must run inside the target: a private mount
/// namespace, the listed bind mounts made inside it, then `chroot`.
/// Nothing mounted here is visible in the host's mount table.
#[derive(Debug, Clone)]
pub struct ChrootSpec {
    pub root: PathBuf,
    /// (source on the host, destination inside `root`), made in order.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// A program to run: built up, then run once or more.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    chroot: Option<ChrootSpec>,
    private_dev: Option<Vec<PathBuf>>,
    current_dir: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            timeout: None,
            chroot: None,
            private_dev: None,
            current_dir: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Run inside the target root, in a private mount namespace.
    pub fn in_chroot(mut self, spec: ChrootSpec) -> Self {
        self.chroot = Some(spec);
        self
    }

    /// Run in a private mount namespace whose `/dev` holds only these device
    /// nodes (plus /dev/null and /dev/mapper/control). LVM then cannot see the
    /// host's `/dev/<vg>` directories, e.g. when renaming a target VG back to a
    /// name the host also uses.
    pub fn with_private_dev(mut self, nodes: Vec<PathBuf>) -> Self {
        self.private_dev = Some(nodes);
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The argv as one line for logs and error messages (not for a shell).
    pub fn display_argv(&self) -> String {
        let mut words = Vec::with_capacity(self.args.len() + 1);
        if let Some(spec) = &self.chroot {
            words.push(format!("chroot {}", spec.root.display()));
        }
        words.push(self.program.to_string_lossy().into_owned());
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            {
                words.push(format!("{arg:?}"));
            } else {
                words.push(arg.into_owned());
            }
        }
        words.join(" ")
    }

    /// Run and require exit status 0.
    pub fn run(&self) -> anyhow::Result<Output> {
        let output = self.run_unchecked()?;
        if output.success() {
            Ok(output)
        } else {
            Err(self.failure(&output).into())
        }
    }

    /// Run and return stdout as a string; non-zero exit is an error.
    pub fn read(&self) -> anyhow::Result<String> {
        Ok(self.run()?.stdout_string())
    }

    /// Run and return whatever happened; only failing to start is an error.
    pub fn run_unchecked(&self) -> anyhow::Result<Output> {
        tracing::debug!(argv = %self.display_argv(), "running");
        let started = Instant::now();
        let mut command = self.command()?;
        command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| self.spawn_error(e))?;
        let result = self.collect(&mut child, started);
        record_time(started.elapsed());
        let output = result?;
        tracing::debug!(
            argv = %self.display_argv(),
            status = %describe_status(&output),
            millis = output.elapsed.as_millis() as u64,
            "finished"
        );
        Ok(output)
    }

    /// Run with the terminal attached (an interactive shell); returns the exit status.
    pub fn run_interactive(&self) -> anyhow::Result<ExitStatus> {
        tracing::debug!(argv = %self.display_argv(), "running interactively");
        let started = Instant::now();
        let status = self.command()?.status().map_err(|e| self.spawn_error(e))?;
        record_time(started.elapsed());
        Ok(status)
    }

    /// Starts the program in the background with stdout and stderr going to
    /// the given files (a VM whose console is read from a file while it
    /// runs). The program is killed if vmrescue dies (`PR_SET_PDEATHSIG`)
    /// and when the returned [`Background`] is dropped without being waited for.
    pub fn spawn_to_files(
        &self,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> anyhow::Result<Background> {
        tracing::debug!(argv = %self.display_argv(), "starting in the background");
        let mut command = self.command()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| self.spawn_error(e))?;
        Ok(Background {
            child,
            argv: self.display_argv(),
            started: Instant::now(),
            status: None,
        })
    }

    fn command(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        if self.chroot.is_some() || self.private_dev.is_some() {
            let prepared =
                PreparedNamespace::new(self.chroot.as_ref(), self.private_dev.as_deref())?;
            // SAFETY: the closure only makes raw syscalls on data prepared
            // before fork (no allocation, no locks).
            unsafe {
                command.pre_exec(move || prepared.enter());
            }
        }
        Ok(command)
    }

    fn spawn_error(&self, err: io::Error) -> anyhow::Error {
        if err.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "cannot run `{}`: program not found (is it installed and on PATH?)",
                self.display_argv()
            )
        } else {
            anyhow::Error::new(err).context(format!("starting `{}`", self.display_argv()))
        }
    }

    fn collect(&self, child: &mut Child, started: Instant) -> anyhow::Result<Output> {
        let stdin_writer = match (child.stdin.take(), self.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
                // A program may exit without reading all of its input.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let mut stdout_pipe = child.stdout.take();
        let stdout_reader = thread::spawn(move || -> io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            if let Some(pipe) = stdout_pipe.as_mut() {
                pipe.read_to_end(&mut buf)?;
            }
            Ok(buf)
        });
        let mut stderr_pipe = child.stderr.take();
        let stderr_reader = thread::spawn(move || -> io::Result<Vec<u8>> {
            let mut tail = TailBuffer::new(STDERR_TAIL_BYTES);
            if let Some(pipe) = stderr_pipe.as_mut() {
                let mut chunk = [0u8; 8192];
                loop {
                    let n = pipe.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    tail.push(&chunk[..n]);
                }
            }
            Ok(tail.into_bytes())
        });

        let (status, timed_out) = wait_with_timeout(child, self.timeout).map_err(|e| {
            anyhow::Error::new(e).context(format!("waiting for `{}`", self.display_argv()))
        })?;
        if let Some(writer) = stdin_writer {
            let _ = writer.join();
        }
        let stdout = join_reader(stdout_reader).map_err(|e| {
            anyhow::Error::new(e).context(format!("reading stdout of `{}`", self.display_argv()))
        })?;
        let stderr = join_reader(stderr_reader).map_err(|e| {
            anyhow::Error::new(e).context(format!("reading stderr of `{}`", self.display_argv()))
        })?;
        Ok(Output {
            status,
            stdout,
            stderr_tail: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: started.elapsed(),
            timed_out,
        })
    }

    /// The error for a finished run that did not succeed.
    pub fn failure(&self, output: &Output) -> CommandFailed {
        CommandFailed {
            argv: self.display_argv(),
            status: describe_status(output),
            stderr_tail: output.stderr_tail.clone(),
        }
    }
}

/// A program started by [`Cmd::spawn_to_files`]. Dropping it stops the
/// program (SIGKILL) if it still runs.
#[derive(Debug)]
pub struct Background {
    child: Child,
    argv: String,
    started: Instant,
    status: Option<ExitStatus>,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn argv(&self) -> &str {
        &self.argv
    }

    /// The exit status once the program has ended, without blocking.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let status = self
            .child
            .try_wait()
            .map_err(|e| anyhow::Error::new(e).context(format!("waiting for `{}`", self.argv)))?;
        if let Some(status) = status {
            self.finished(status);
        }
        Ok(status)
    }

    /// Asks the program to end (SIGTERM), waits up to `grace`, then kills it.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // It may have ended in between: ESRCH is fine.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }

    fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map_err(|e| anyhow::Error::new(e).context(format!("waiting for `{}`", self.argv)))?;
        self.finished(status);
        Ok(status)
    }

    fn finished(&mut self, status: ExitStatus) {
        self.status = Some(status);
        record_time(self.started.elapsed());
        tracing::debug!(
            argv = %self.argv,
            status = ?status,
            millis = self.started.elapsed().as_millis() as u64,
            "background program finished"
        );
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Err(err) = self.kill() {
                tracing::warn!("stopping `{}`: {err:#}", self.argv);
            }
        }
    }
}

fn record_time(elapsed: Duration) {
    TOOL_NANOS.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    TOOL_RUNS.fetch_add(1, Ordering::Relaxed);
}

fn describe_status(output: &Output) -> String {
    if output.timed_out {
        return format!("timed out after {:.1}s", output.elapsed.as_secs_f64());
    }
    match (output.status.code(), output.status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended abnormally".to_string(),
    }
}

fn join_reader(handle: thread::JoinHandle<io::Result<Vec<u8>>>) -> io::Result<Vec<u8>> {
    handle
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("output reader thread panicked")))
}

fn wait_with_timeout(
    child: &mut Child,
    timeout: Option<Duration>,
) -> io::Result<(ExitStatus, bool)> {
    let Some(limit) = timeout else {
        return Ok((child.wait()?, false));
    };
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            return Ok((child.wait()?, true));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Keeps only the last `limit` bytes pushed into it.
struct TailBuffer {
    buf: Vec<u8>,
    limit: usize,
}

impl TailBuffer {
    fn new(limit: usize) -> Self {
        TailBuffer {
            buf: Vec::with_capacity(limit * 2),
            limit,
        }
    }
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.limit * 2 {
            let cut = self.buf.len() - self.limit;
            self.buf.drain(..cut);
        }
    }
    fn into_bytes(mut self) -> Vec<u8> {
        if self.buf.len() > self.limit {
            let cut = self.buf.len() - self.limit;
            self.buf.drain(..cut);
        }
        self.buf
    }
}

/// A device node to recreate in a private `/dev`.
struct DevNode {
    path: CString,
    mode: libc::mode_t,
    rdev: libc::dev_t,
}

/// What the child does before exec, prepared before `fork` so the child
/// allocates nothing: a private mount namespace, optionally a private `/dev`,
/// bind mounts and a chroot.
struct PreparedNamespace {
    root: Option<CString>,
    binds: Vec<(CString, CString)>,
    private_dev: Option<Vec<DevNode>>,
}

fn c_path(p: &Path) -> anyhow::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| anyhow::anyhow!("path {} contains a NUL byte", p.display()))
}

impl PreparedNamespace {
    fn new(chroot: Option<&ChrootSpec>, private_dev: Option<&[PathBuf]>) -> anyhow::Result<Self> {
        let mut binds = Vec::new();
        let mut root = None;
        if let Some(spec) = chroot {
            for (source, dest_in_root) in &spec.binds {
                let rel = dest_in_root.strip_prefix("/").unwrap_or(dest_in_root);
                binds.push((c_path(source)?, c_path(&spec.root.join(rel))?));
            }
            root = Some(c_path(&spec.root)?);
        }
        let private_dev = match private_dev {
            None => None,
            Some(nodes) => {
                let mut wanted: Vec<PathBuf> = vec![
                    PathBuf::from("/dev/null"),
                    PathBuf::from("/dev/mapper/control"),
                ];
                wanted.extend(nodes.iter().cloned());
                let mut prepared = Vec::new();
                for path in wanted {
                    let meta = std::fs::metadata(&path)
                        .map_err(|e| anyhow::anyhow!("device node {}: {e}", path.display()))?;
                    use std::os::unix::fs::MetadataExt;
                    prepared.push(DevNode {
                        path: c_path(&path)?,
                        mode: meta.mode(),
                        rdev: meta.rdev(),
                    });
                }
                Some(prepared)
            }
        };
        Ok(PreparedNamespace {
            root,
            binds,
            private_dev,
        })
    }

    fn enter(&self) -> io::Result<()> {
        fn check(ret: libc::c_int) -> io::Result<()> {
            if ret == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: plain syscalls on NUL-terminated strings owned by self.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Keep every mount made from here on out of the host's table.
            check(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            if let Some(nodes) = &self.private_dev {
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/dev".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    c"mode=755".as_ptr().cast(),
                ))?;
                check(libc::mkdir(c"/dev/mapper".as_ptr(), 0o755))?;
                for node in nodes {
                    check(libc::mknod(node.path.as_ptr(), node.mode, node.rdev))?;
                }
            }
            for (source, dest) in &self.binds {
                check(libc::mount(
                    source.as_ptr(),
                    dest.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
            }
            if let Some(root) = &self.root {
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_succeeds_with_empty_output() {
        let out = Cmd::new("true").run().unwrap();
        assert!(out.success());
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn false_fails_naming_program_and_status() {
        let err = Cmd::new("false").arg("--flag").run().unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("`false --flag`"), "{msg}");
        assert!(msg.contains("exited with status 1"), "{msg}");
        assert!(err.downcast_ref::<CommandFailed>().is_some());
    }

    #[test]
    fn stdout_is_captured() {
        let out = Cmd::new("printf").args(["%s-%s", "a", "b"]).read().unwrap();
        assert_eq!(out, "a-b");
    }

    #[test]
    fn stderr_tail_is_in_the_error() {
        let err = Cmd::new("ls")
            .arg("/nonexistent/vmrescue-test-path")
            .run()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("/nonexistent/vmrescue-test-path"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn stderr_keeps_only_the_tail() {
        // 20000 bytes of 'a' then a final marker: only the last 4 KiB survive.
        let script = "head -c 20000 /dev/zero | tr '\\0' a >&2; echo END-MARKER >&2; exit 3";
        let out = Cmd::new("bash")
            .args(["-c", script])
            .run_unchecked()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(out.stderr_tail.len() <= STDERR_TAIL_BYTES);
        assert!(out.stderr_tail.trim_end().ends_with("END-MARKER"));
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = Cmd::new("vmrescue-no-such-program")
            .arg("x")
            .run()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("vmrescue-no-such-program"), "{msg}");
        assert!(msg.contains("program not found"), "{msg}");
    }

    #[test]
    fn timeout_kills_the_program() {
        let started = Instant::now();
        let err = Cmd::new("sleep")
            .arg("10")
            .timeout(Duration::from_millis(200))
            .run()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin_bytes("hello").read().unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn argv_display_quotes_spaces() {
        let cmd = Cmd::new("grub2-editenv").args(["-", "set", "saved_entry=a b"]);
        assert_eq!(
            cmd.display_argv(),
            "grub2-editenv - set \"saved_entry=a b\""
        );
    }

    #[test]
    fn tool_time_accumulates() {
        let (_, before) = tool_time();
        Cmd::new("true").run().unwrap();
        let (_, after) = tool_time();
        assert!(after > before);
    }

    #[test]
    fn background_program_writes_to_its_file_and_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let err = std::fs::File::create(dir.path().join("err")).unwrap();
        let mut bg = Cmd::new("bash")
            .args(["-c", "echo started; exec sleep 30"])
            .spawn_to_files(out, err)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(dir.path().join("out")).unwrap() != "started\n" {
            assert!(
                Instant::now() < deadline,
                "no output from the background program"
            );
            thread::sleep(Duration::from_millis(20));
        }
        assert!(bg.try_wait().unwrap().is_none());
        let started = Instant::now();
        let status = bg.stop(Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn background_program_exit_status_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let err = std::fs::File::create(dir.path().join("err")).unwrap();
        let mut bg = Cmd::new("false").spawn_to_files(out, err).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = bg.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(1));
    }

    #[test]
    fn tail_buffer_keeps_last_bytes() {
        let mut tail = TailBuffer::new(4);
        tail.push(b"abc");
        tail.push(b"defgh");
        assert_eq!(tail.into_bytes(), b"efgh");
    }
}
