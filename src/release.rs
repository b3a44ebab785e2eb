//! Names of the release assets that `scripts/release` writes and
//! `scripts/install.sh` downloads, so other code (the az-payload) can name
//! the asset of an architecture without repeating the scheme.

/// This build's version, the `<version>` in every asset name.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The checksum file published next to the assets (`sha256sum` format).
pub const SUMS_NAME: &str = "SHA256SUMS";

/// A CPU architecture with a release binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
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

#[cfg(test)]
mod tests {
    use super::*;

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
