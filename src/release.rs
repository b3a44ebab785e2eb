//! What a release of vmrescue is: one static binary per architecture named
//! `vmrescue-<version>-<arch>-linux-musl`, a docs tarball and `SHA256SUMS`,
//! as `scripts/release` writes them and `scripts/install.sh` downloads them.
//! A payload for a fresh repair VM downloads its architecture's asset and
//! checks it against a sha256 baked into the payload.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// This build's version, the `<version>` in every asset name.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The checksum file published next to the assets (`sha256sum` format).
pub const SUMS_NAME: &str = "SHA256SUMS";

/// A CPU architecture with a release binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture named by `uname -m` (or Debian's name for it);
    /// `None` for one without a release binary.
    pub fn from_machine(machine: &str) -> Option<Arch> {
        match machine.trim() {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The architecture this binary was built for, if it has a release.
    pub fn current() -> Option<Arch> {
        Arch::from_machine(std::env::consts::ARCH)
    }

    /// The name used in asset names and Rust target triples.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// The static binary's asset name: `vmrescue-<version>-<arch>-linux-musl`.
pub fn asset_name(arch: Arch) -> String {
    format!("vmrescue-{VERSION}-{}-linux-musl", arch.as_str())
}

/// The tarball of man pages and shell completions.
pub fn docs_asset_name() -> String {
    format!("vmrescue-{VERSION}-docs.tar.gz")
}

/// Where the project's GitHub release of this version serves its assets
/// (what `VMRESCUE_RELEASE_URL` overrides in scripts/install.sh).
pub fn default_release_url() -> String {
    format!(
        "{}/releases/download/v{VERSION}",
        env!("CARGO_PKG_REPOSITORY")
    )
}

/// True when `scripts/release` built this binary (it sets
/// `VMRESCUE_RELEASE_BUILD=1`), so the running file is the published asset
/// of its architecture.
pub fn is_release_build() -> bool {
    option_env!("VMRESCUE_RELEASE_BUILD") == Some("1")
}

/// `SHA256SUMS` lines (`<hex>  <name>`, `*` before binary names) by file name.
pub fn parse_sha256sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (sum, name) = line.trim().split_once(char::is_whitespace)?;
            let name = name.trim_start().trim_start_matches('*');
            let valid = sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit());
            valid.then(|| (name.to_string(), sum.to_ascii_lowercase()))
        })
        .collect()
}

/// The sha256 of a file, as `sha256sum` prints it.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    sha256_reader(file).with_context(|| format!("computing the sha256 of {}", path.display()))
}

/// The sha256 of everything `reader` yields, in lowercase hex. Streamed: a
/// release binary is several MB and need not sit in memory.
pub fn sha256_reader(reader: impl Read) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    std::io::copy(&mut reader, &mut hasher).context("reading")?;
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        write!(hex, "{byte:02x}").context("formatting the sha256")?;
    }
    Ok(hex)
}

/// The sha256 of the running binary. It is read in this process, never by a
/// helper program: a child reading `/proc/self/exe` would hash itself (a
/// release build once baked the sum of `sha256sum` into every payload).
/// Opening `/proc/self/exe` rather than the path `current_exe()` names
/// reads the file this process runs even if that path was replaced since.
pub fn own_sha256() -> Result<String> {
    sha256_file(Path::new("/proc/self/exe")).context("hashing this vmrescue binary")
}

/// The sha256 of each architecture's asset of this version that is known
/// here: this binary's own when it is a release build, and those a
/// `SHA256SUMS` file names.
pub fn known_sums(sha256sums: Option<&str>) -> Result<BTreeMap<Arch, String>> {
    let mut sums = BTreeMap::new();
    if let Some(text) = sha256sums {
        let by_name = parse_sha256sums(text);
        for arch in Arch::ALL {
            if let Some(sum) = by_name.get(&asset_name(arch)) {
                sums.insert(arch, sum.clone());
            }
        }
    }
    if let (true, Some(arch)) = (is_release_build(), Arch::current()) {
        let own = own_sha256()?;
        if let Some(listed) = sums.get(&arch) {
            if *listed != own {
                anyhow::bail!(
                    "the SHA256SUMS given lists {listed} for {}, but this binary is {own}",
                    asset_name(arch)
                );
            }
        }
        sums.insert(arch, own);
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_read_by_asset_name() {
        let text = format!(
            "{}  {}\n{} *{}\nnot a line\n",
            "a".repeat(64),
            asset_name(Arch::X86_64),
            "B".repeat(64),
            asset_name(Arch::Aarch64)
        );
        let sums = known_sums(Some(&text)).unwrap();
        if !is_release_build() {
            assert_eq!(sums[&Arch::X86_64], "a".repeat(64));
        }
        assert_eq!(sums[&Arch::Aarch64], "b".repeat(64));
        assert!(parse_sha256sums("xyz  file\n").is_empty());
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_reader(&b""[..]).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_reader(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Longer than the read buffer, so the streaming joins chunks right.
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            sha256_reader(&million_a[..]).unwrap(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        let missing = sha256_file(Path::new("/nonexistent/vmrescue")).unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/vmrescue"));
    }

    /// The running binary's sum is the file's, as `sha256sum` (a separate
    /// program reading it by path) sees it, not that of a helper process.
    #[test]
    fn own_sum_is_this_binary_file() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(&exe)
            .output()
            .unwrap();
        let expected = String::from_utf8(out.stdout).unwrap();
        assert_eq!(own_sha256().unwrap(), expected.split(' ').next().unwrap());
        assert_eq!(sha256_file(&exe).unwrap(), own_sha256().unwrap());
    }

    #[test]
    fn asset_names_follow_the_release_script() {
        assert_eq!(
            asset_name(Arch::X86_64),
            format!("vmrescue-{VERSION}-x86_64-linux-musl")
        );
        assert_eq!(
            asset_name(Arch::Aarch64),
            format!("vmrescue-{VERSION}-aarch64-linux-musl")
        );
        assert_eq!(docs_asset_name(), format!("vmrescue-{VERSION}-docs.tar.gz"));
    }

    #[test]
    fn machine_names_map_to_release_architectures() {
        assert_eq!(Arch::from_machine("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_machine("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_machine("aarch64\n"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_machine("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_machine("armv7l"), None);
        assert_eq!(Arch::from_machine("riscv64"), None);
        assert!(Arch::current().is_some());
    }

    #[test]
    fn default_url_is_the_github_release_of_this_version() {
        let url = default_release_url();
        assert!(url.starts_with("https://github.com/"), "{url}");
        assert!(
            url.ends_with(&format!("/releases/download/v{VERSION}")),
            "{url}"
        );
    }
}
