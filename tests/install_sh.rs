//! scripts/install.sh against a loopback HTTP server (python3 -m http.server)
//! serving a dist/-like directory of small fake assets: a good install with
//! curl and with wget, a tampered binary, a missing sum, an unsupported
//! architecture, no downloader, and a SAS-style query string.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmrescue::release::{self, Arch};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh")
}

/// The shell the script runs under, by full path (the script's PATH is cut
/// down): dash (Debian's /bin/sh) when present.
fn posix_sh() -> PathBuf {
    ["/usr/bin/dash", "/bin/dash", "/bin/sh"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("a POSIX sh")
}

/// `python3 -m http.server` on a free loopback port; killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn serve(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (scripts/install-deps installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/dist", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary release: fake binaries (shell scripts printing their arch),
/// a docs tarball and SHA256SUMS, served under /dist.
struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    fn new() -> Release {
        let dir = tempfile::tempdir().unwrap();
        let dist = dir.path().join("dist");
        std::fs::create_dir(&dist).unwrap();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let text = format!(
                "#!/bin/sh\necho 'vmrescue {VERSION} (fake {})'\n",
                arch.as_str()
            );
            std::fs::write(dist.join(release::asset_name(arch)), text).unwrap();
        }
        let docs = dir.path().join(format!("vmrescue-{VERSION}-docs"));
        std::fs::create_dir_all(docs.join("man/man1")).unwrap();
        std::fs::create_dir_all(docs.join("completions")).unwrap();
        std::fs::write(docs.join("man/man1/vmrescue.1"), ".TH vmrescue 1\n").unwrap();
        std::fs::write(
            docs.join("man/man1/vmrescue-repair.1"),
            ".TH vmrescue-repair 1\n",
        )
        .unwrap();
        for name in ["vmrescue.bash", "_vmrescue", "vmrescue.fish"] {
            std::fs::write(docs.join("completions").join(name), format!("# {name}\n")).unwrap();
        }
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(dir.path())
                .arg("-czf")
                .arg(dist.join(release::docs_asset_name()))
                .arg(format!("vmrescue-{VERSION}-docs")),
        );
        let release = Release { dir };
        release.write_sums(&[]);
        release
    }

    fn dist(&self) -> PathBuf {
        self.dir.path().join("dist")
    }

    /// Writes SHA256SUMS for every asset except `leave_out`.
    fn write_sums(&self, leave_out: &[String]) {
        let mut names = vec![
            release::asset_name(Arch::X86_64),
            release::asset_name(Arch::Aarch64),
            release::docs_asset_name(),
        ];
        names.retain(|n| !leave_out.contains(n));
        let out = run_ok(
            Command::new("sha256sum")
                .args(&names)
                .current_dir(self.dist()),
        );
        std::fs::write(self.dist().join(release::SUMS_NAME), out.stdout).unwrap();
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A PATH with only what the script needs, `uname -m` printing `machine`,
/// and curl and wget only when asked for.
fn tools(dir: &Path, machine: &str, curl: bool, wget: bool) -> PathBuf {
    let bin = dir.join("tools");
    std::fs::create_dir_all(&bin).unwrap();
    let mut wanted = vec![
        "mktemp",
        "rm",
        "mkdir",
        "cp",
        "mv",
        "chmod",
        "dirname",
        "cut",
        "awk",
        "sha256sum",
        "gzip",
        "tar",
    ];
    if curl {
        wanted.push("curl");
    }
    if wget {
        wanted.push("wget");
    }
    for tool in wanted {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed (scripts/install-deps)"));
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    let uname = bin.join("uname");
    std::fs::write(&uname, format!("#!/bin/sh\necho {machine}\n")).unwrap();
    std::fs::set_permissions(&uname, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

struct Run {
    out: Output,
    prefix: PathBuf,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn assert_refused(&self, needle: &str) {
        assert_eq!(self.out.status.code(), Some(1), "{}", self.stderr());
        assert!(self.stderr().contains(needle), "{}", self.stderr());
        let left: Vec<_> = walk(&self.prefix);
        assert!(left.is_empty(), "installed anyway: {left:?}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

fn install(url: &str, path: &Path, work: &Path) -> Run {
    let prefix = work.join("prefix");
    let out = Command::new(posix_sh())
        .arg(script())
        .env_clear()
        .env("PATH", path)
        .env("HOME", work)
        .env("TMPDIR", work)
        .env("PREFIX", &prefix)
        .env("VMRESCUE_RELEASE_URL", url)
        .output()
        .unwrap();
    Run { out, prefix }
}

fn assert_installed(run: &Run, release: &Release, arch: Arch) {
    assert!(run.out.status.success(), "{}", run.stderr());
    let asset = release.dist().join(release::asset_name(arch));
    let bin = run.prefix.join("bin/vmrescue");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(asset).unwrap());
    let version = run_ok(&mut Command::new(&bin));
    assert!(String::from_utf8_lossy(&version.stdout).contains(arch.as_str()));
    for file in [
        "share/man/man1/vmrescue.1",
        "share/man/man1/vmrescue-repair.1",
        "share/bash-completion/completions/vmrescue",
        "share/zsh/site-functions/_vmrescue",
        "share/fish/vendor_completions.d/vmrescue.fish",
    ] {
        assert!(run.prefix.join(file).is_file(), "{file} not installed");
    }
    assert_eq!(walk(&run.prefix).len(), 6, "{:?}", walk(&run.prefix));
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(
        stdout.contains("installed") && stdout.contains(&release::asset_name(arch)),
        "{stdout}"
    );
}

#[test]
fn installs_the_verified_asset_for_each_machine_name_with_curl() {
    let release = Release::new();
    let server = Server::serve(release.dir.path());
    for (machine, arch) in [
        ("x86_64", Arch::X86_64),
        ("amd64", Arch::X86_64),
        ("aarch64", Arch::Aarch64),
        ("arm64", Arch::Aarch64),
    ] {
        let work = tempfile::tempdir().unwrap();
        let path = tools(work.path(), machine, true, false);
        let run = install(&server.url(), &path, work.path());
        assert_installed(&run, &release, arch);
    }
}

#[test]
fn uses_wget_without_curl_and_refuses_with_neither() {
    let release = Release::new();
    let server = Server::serve(release.dir.path());
    let work = tempfile::tempdir().unwrap();
    let path = tools(work.path(), "x86_64", false, true);
    assert_installed(
        &install(&server.url(), &path, work.path()),
        &release,
        Arch::X86_64,
    );

    let work = tempfile::tempdir().unwrap();
    let path = tools(work.path(), "x86_64", false, false);
    install(&server.url(), &path, work.path()).assert_refused("neither curl nor wget");
}

#[test]
fn tampered_binary_is_refused_and_nothing_installed() {
    let release = Release::new();
    let asset = release.dist().join(release::asset_name(Arch::Aarch64));
    let mut bytes = std::fs::read(&asset).unwrap();
    bytes.extend_from_slice(b"echo tampered\n");
    std::fs::write(&asset, bytes).unwrap();
    let server = Server::serve(release.dir.path());
    for wget in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let path = tools(work.path(), "aarch64", !wget, wget);
        install(&server.url(), &path, work.path()).assert_refused("checksum mismatch");
    }
}

#[test]
fn missing_sum_or_sums_file_is_refused() {
    let release = Release::new();
    release.write_sums(&[release::asset_name(Arch::X86_64)]);
    let server = Server::serve(release.dir.path());
    let work = tempfile::tempdir().unwrap();
    let path = tools(work.path(), "x86_64", true, false);
    install(&server.url(), &path, work.path()).assert_refused("has no sum");

    std::fs::remove_file(release.dist().join(release::SUMS_NAME)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let path = tools(work.path(), "x86_64", true, false);
    install(&server.url(), &path, work.path()).assert_refused("could not download");
}

#[test]
fn unsupported_architecture_is_refused_by_name() {
    let release = Release::new();
    let server = Server::serve(release.dir.path());
    for machine in ["riscv64", "armv7l", "i686"] {
        let work = tempfile::tempdir().unwrap();
        let path = tools(work.path(), machine, true, false);
        let run = install(&server.url(), &path, work.path());
        run.assert_refused(&format!("unsupported architecture '{machine}'"));
    }
}

#[test]
fn sas_query_string_is_kept_on_downloads_and_not_printed() {
    let release = Release::new();
    let server = Server::serve(release.dir.path());
    let url = format!("{}?sv=2024-11-04&sig=SECRETSIG", server.url());
    let work = tempfile::tempdir().unwrap();
    let path = tools(work.path(), "x86_64", true, false);
    let run = install(&url, &path, work.path());
    assert_installed(&run, &release, Arch::X86_64);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&run.out.stdout),
        run.stderr()
    );
    assert!(!printed.contains("SECRETSIG"), "{printed}");
}

#[test]
fn script_is_posix_sh_and_defaults_match_the_crate() {
    for shell in [PathBuf::from("sh"), posix_sh()] {
        run_ok(Command::new(shell).arg("-n").arg(script()));
    }
    let text = std::fs::read_to_string(script()).unwrap();
    assert!(
        text.contains(&format!("VERSION=${{VMRESCUE_VERSION:-{VERSION}}}\n")),
        "install.sh's default version is not {VERSION}"
    );
    let repository = env!("CARGO_PKG_REPOSITORY");
    assert!(text.contains(&format!("REPOSITORY={repository}\n")));
    assert!(text.contains("$REPOSITORY/releases/download/v$VERSION"));
    assert_eq!(
        release::default_release_url(),
        format!("{repository}/releases/download/v{VERSION}")
    );
}

#[test]
fn a_truncated_script_runs_nothing() {
    let text = std::fs::read(script()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let prefix = work.path().join("prefix");
    let path = tools(work.path(), "x86_64", true, false);
    // Cut in the middle of the install steps, as a dropped `curl | sh` would.
    let cut = text.len() * 3 / 4;
    let mut child = Command::new(posix_sh())
        .env_clear()
        .env("PATH", &path)
        .env("PREFIX", &prefix)
        .env("VMRESCUE_RELEASE_URL", "http://127.0.0.1:9/unused")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&text[..cut]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Syntax error") || stderr.contains("syntax error"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("vmrescue install:"),
        "ran part of the script: {stderr}"
    );
    assert!(walk(&prefix).is_empty());
}
