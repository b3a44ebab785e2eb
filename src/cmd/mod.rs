//! The one way vmrescue runs an external program.
//!
//! Argv only (never `sh -c` strings). Every run is logged with its argv at
//! debug level, its stdout is captured, the last [`STDERR_TAIL_BYTES`] of its
//! stderr are kept for the error message, and the time it took is added to a
//! process-wide counter so benchmarks can split own time from tool time.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How much of a program's stderr is kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 4096;

mod namespace;

use namespace::PreparedNamespace;

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

/// Where a command runs when it must run inside the target: new mount, PID,
/// UTS, IPC and network namespaces, the listed mounts made inside them, then
/// `chroot`. Nothing mounted here is visible in the host's mount table, and
/// the program is PID 1 of its own PID namespace (docs/safety.md, "Isolation
/// of the target's own programs").
#[derive(Debug, Clone)]
pub struct ChrootSpec {
    pub root: PathBuf,
    /// Made in order; destinations are paths inside `root`.
    pub mounts: Vec<ChrootMount>,
    /// Capabilities, seccomp filter and limits applied last, after the chroot.
    pub sandbox: crate::sandbox::Sandbox,
}

/// One mount made for a chrooted program, destination inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChrootMount {
    /// The host's `source` on `dest`: this one mount, not the ones below it.
    /// `create_dir` makes `dest` first (only for destinations inside a tmpfs
    /// made here: the target's own tree is never written).
    Bind {
        source: PathBuf,
        dest: PathBuf,
        read_only: bool,
        create_dir: bool,
    },
    /// A `proc` of the program's own PID namespace, `sys` and
    /// `sysrq-trigger` in it read-only.
    Proc { dest: PathBuf },
    /// A `devpts` instance of its own (not the host's terminals), with
    /// `<dest>/../ptmx` bound to its `ptmx`.
    Devpts { dest: PathBuf },
    /// An empty tmpfs with this mode (64 MiB at most: it is the host's RAM).
    Tmpfs { dest: PathBuf, mode: u32 },
    /// A tmpfs on `dest` (the chroot's `/dev`) holding only these entries,
    /// made read-only once every other mount is made.
    PrivateDev {
        dest: PathBuf,
        entries: Vec<crate::sandbox::DevEntry>,
    },
}

impl ChrootMount {
    pub fn dest(&self) -> &Path {
        match self {
            ChrootMount::Bind { dest, .. }
            | ChrootMount::Proc { dest }
            | ChrootMount::Devpts { dest }
            | ChrootMount::Tmpfs { dest, .. }
            | ChrootMount::PrivateDev { dest, .. } => dest,
        }
    }
}

/// A program to run: built up, then run once or more.
#[derive(Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    chroot: Option<ChrootSpec>,
    private_dev: Option<Vec<PathBuf>>,
    current_dir: Option<PathBuf>,
    /// Indices into `args` shown as `<redacted>` in logs and error messages.
    secret_args: Vec<usize>,
}

// By hand, not derived: a derived Debug would print secret arguments.
impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmd")
            .field("argv", &self.display_argv())
            .finish_non_exhaustive()
    }
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
            secret_args: Vec::new(),
        }
    }

    /// An argument that must reach the program but never a log, an error
    /// message or `display_argv` (a password passed as argv).
    pub fn secret_arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.secret_args.push(self.args.len());
        self.args.push(arg.as_ref().to_owned());
        self
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
        for (index, arg) in self.args.iter().enumerate() {
            if self.secret_args.contains(&index) {
                words.push("<redacted>".to_string());
                continue;
            }
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
        let (mut command, _sandbox) = self.command(false)?;
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
        let (mut command, _sandbox) = self.command(false)?;
        let status = command.status().map_err(|e| self.spawn_error(e))?;
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
        let (mut command, sandbox) = self.command(true)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = command.spawn().map_err(|e| self.spawn_error(e))?;
        Ok(Background {
            child,
            argv: self.display_argv(),
            started: Instant::now(),
            status: None,
            _sandbox: sandbox,
        })
    }

    /// `die_with_parent`: the program gets SIGKILL when vmrescue dies. In a
    /// chroot that is the intermediate process, and the program dies with it.
    fn command(&self, die_with_parent: bool) -> anyhow::Result<(Command, SandboxGuard)> {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        if die_with_parent {
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut guard = None;
        if self.chroot.is_some() {
            // Without mknod (dropped), dracut would log errors for the
            // nodes it otherwise puts in the image; the kernel's built-in
            // initramfs and devtmpfs provide them at boot. Extended
            // attributes of the copied files need capabilities it lacks.
            command.env("DRACUT_NO_MKNOD", "1");
            command.env("DRACUT_NO_XATTR", "1");
        }
        if self.chroot.is_some() || self.private_dev.is_some() {
            let prepared =
                PreparedNamespace::new(self.chroot.as_ref(), self.private_dev.as_deref())?;
            guard = prepared.sandbox.as_ref().and_then(|s| s.cgroup.clone());
            // SAFETY: the closure only makes raw syscalls on data prepared
            // before fork (no allocation, no locks).
            unsafe {
                command.pre_exec(move || prepared.enter());
            }
        }
        Ok((command, guard))
    }

    fn spawn_error(&self, err: io::Error) -> anyhow::Error {
        if err.kind() == io::ErrorKind::NotFound && self.chroot.is_some() {
            // ENOENT also comes from a chroot mount whose mount point is missing.
            anyhow::anyhow!(
                "cannot run `{}`: program not found in the target, or the target lacks one of /dev, /proc, /sys, /run",
                self.display_argv()
            )
        } else if err.kind() == io::ErrorKind::NotFound {
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
    /// Dropped after the program is killed (field order).
    _sandbox: SandboxGuard,
}

/// The pids cgroup of a sandboxed program, removed when the last holder
/// (the caller, after waiting for the program) drops it.
type SandboxGuard = Option<std::sync::Arc<crate::sandbox::PidsCgroup>>;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_arguments_are_passed_but_never_shown() {
        let cmd = Cmd::new("printf")
            .args(["%s|%s", "--password"])
            .secret_arg("hunter2-secret");
        assert_eq!(cmd.read().unwrap(), "--password|hunter2-secret");
        assert!(!cmd.display_argv().contains("hunter2"));
        assert!(cmd.display_argv().ends_with("--password <redacted>"));
        assert!(!format!("{cmd:?}").contains("hunter2"));
        let failing = Cmd::new("false").secret_arg("hunter2-secret");
        let err = failing.run().unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"));
    }

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

    /// A target tree with a static busybox as its only program, when the
    /// test may chroot (root, busybox installed).
    fn busybox_root(test: &str) -> Option<(tempfile::TempDir, ChrootSpec)> {
        let busybox = Path::new("/usr/bin/busybox");
        if !nix::unistd::geteuid().is_root() || !busybox.is_file() {
            println!("SKIP {test}: needs root and /usr/bin/busybox");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        for sub in ["bin", "dev", "proc", "sys", "run", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        // A link, not a copy, where it can: a write descriptor inherited by a
        // process another test thread is forking makes exec fail with ETXTBSY.
        let copy = dir.path().join("bin/busybox");
        if std::fs::hard_link(busybox, &copy).is_err() {
            std::fs::copy(busybox, &copy).unwrap();
        }
        std::os::unix::fs::symlink("busybox", dir.path().join("bin/sh")).unwrap();
        let spec = crate::attach::chroot_spec(dir.path(), &[]).unwrap();
        Some((dir, spec))
    }

    #[test]
    fn a_chrooted_program_is_pid_1_of_its_own_namespace_and_its_status_passes_through() {
        let Some((_dir, spec)) = busybox_root("chrooted_program_is_pid_1") else {
            return;
        };
        let out = Cmd::new("/bin/sh")
            .args(["-c", "echo $$; exit 7"])
            .in_chroot(spec)
            .run_unchecked()
            .unwrap();
        assert_eq!(out.stdout_string(), "1\n");
        assert_eq!(out.status.code(), Some(7));
    }

    #[test]
    fn a_timeout_in_a_chroot_kills_what_the_program_started_too() {
        let Some((_dir, spec)) = busybox_root("timeout_in_a_chroot") else {
            return;
        };
        let started = Instant::now();
        // The background sleep keeps stdout open: only killing the whole
        // PID namespace lets the run end before it does.
        let err = Cmd::new("/bin/sh")
            .args(["-c", "/bin/busybox sleep 30 & /bin/busybox sleep 30"])
            .in_chroot(spec)
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{err:#}");
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    }

    #[test]
    fn a_program_missing_from_the_chroot_is_a_clear_error() {
        let Some((_dir, spec)) = busybox_root("program_missing_from_the_chroot") else {
            return;
        };
        let err = Cmd::new("/usr/sbin/vmrescue-no-such-program")
            .in_chroot(spec)
            .run()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("program not found in the target"),
            "{err:#}"
        );
    }

    #[test]
    fn a_bind_into_a_fresh_tmpfs_makes_its_mount_point_and_is_read_only() {
        let Some((dir, mut spec)) = busybox_root("bind_into_a_fresh_tmpfs") else {
            return;
        };
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("data"), "udev db\n").unwrap();
        spec.mounts = vec![
            ChrootMount::Tmpfs {
                dest: PathBuf::from("/run"),
                mode: 0o755,
            },
            ChrootMount::Bind {
                source: source.path().to_path_buf(),
                dest: PathBuf::from("/run/udev"),
                read_only: true,
                create_dir: true,
            },
        ];
        let out = Cmd::new("/bin/sh")
            .args([
                "-c",
                "/bin/busybox cat /run/udev/data; echo x > /run/udev/new",
            ])
            .in_chroot(spec)
            .run_unchecked()
            .unwrap();
        assert_eq!(out.stdout_string(), "udev db\n");
        assert!(!out.success());
        assert!(out.stderr_tail.contains("Read-only"), "{}", out.stderr_tail);
        assert!(!source.path().join("new").exists());
        assert!(
            !dir.path().join("run/udev").exists(),
            "the target tree was written"
        );
    }

    /// Host pids of the processes whose parent is `parent`.
    fn children_of(parent: u32) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
                after_comm.split_whitespace().nth(1) == Some(&parent.to_string())
            })
            .collect()
    }

    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn a_chrooted_background_program_starts_without_blocking_and_stopping_it_ends_it() {
        let Some((dir, spec)) = busybox_root("chrooted_background_program") else {
            return;
        };
        let out_path = dir.path().join("tmp/out");
        let out = std::fs::File::create(&out_path).unwrap();
        let err = std::fs::File::create(dir.path().join("tmp/err")).unwrap();
        let started = Instant::now();
        let mut bg = Cmd::new("/bin/sh")
            .args(["-c", "echo started; exec /bin/busybox sleep 30"])
            .in_chroot(spec)
            .spawn_to_files(out, err)
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "spawn waited for the program"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let program = loop {
            let children = children_of(bg.pid());
            if std::fs::read_to_string(&out_path).unwrap() == "started\n" && !children.is_empty() {
                break children[0];
            }
            assert!(
                Instant::now() < deadline,
                "the chrooted program did not start"
            );
            thread::sleep(Duration::from_millis(20));
        };
        let status = bg.stop(Duration::from_secs(5)).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(program) {
            assert!(
                Instant::now() < deadline,
                "pid {program} outlived its intermediate"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_private_dev_holds_only_null_mapper_control_and_the_nodes_asked_for() {
        if !nix::unistd::geteuid().is_root() || !Path::new("/dev/mapper/control").exists() {
            println!("SKIP: needs root and /dev/mapper/control");
            return;
        }
        let out = Cmd::new("ls")
            .args(["-A", "/dev", "/dev/mapper"])
            .with_private_dev(vec![PathBuf::from("/dev/zero")])
            .read()
            .unwrap();
        let mut names: Vec<&str> = out
            .lines()
            .filter(|l| !l.is_empty() && !l.ends_with(':'))
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["control", "mapper", "null", "zero"], "{out}");
        // The host's /dev is untouched.
        assert!(Path::new("/dev/full").exists());
    }

    #[test]
    fn tail_buffer_keeps_last_bytes() {
        let mut tail = TailBuffer::new(4);
        tail.push(b"abc");
        tail.push(b"defgh");
        assert_eq!(tail.into_bytes(), b"efgh");
    }
}
