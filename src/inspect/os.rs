//! Which distribution the target runs: /etc/os-release (then the older
//! release files) and the family that decides its boot tools.

use anyhow::Result;
use serde::Serialize;

use crate::rootfs::RootDir;

/// The distribution family, which decides the tools and file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Rhel,
    Debian,
    Suse,
    Amazon,
    AzureLinux,
}

impl Family {
    pub fn id(self) -> &'static str {
        match self {
            Family::Rhel => "rhel",
            Family::Debian => "debian",
            Family::Suse => "suse",
            Family::Amazon => "amazon",
            Family::AzureLinux => "azurelinux",
        }
    }
}

/// The target's distribution as its release files name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Distro {
    pub id: String,
    pub id_like: String,
    pub version_id: String,
    pub pretty_name: String,
    /// `None` for a distribution vmrescue has no tools for.
    pub family: Option<Family>,
    /// The file the answer came from.
    pub source: String,
}

impl Distro {
    pub fn describe(&self) -> String {
        if self.pretty_name.is_empty() {
            format!(
                "ID={:?} VERSION_ID={:?} in {}",
                self.id, self.version_id, self.source
            )
        } else {
            format!("{} ({})", self.pretty_name, self.source)
        }
    }
}

pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

pub fn family_of(id: &str, id_like: &str) -> Option<Family> {
    let words: Vec<&str> = std::iter::once(id)
        .chain(id_like.split_whitespace())
        .collect();
    for word in words {
        let family = match word {
            "rhel" | "centos" | "fedora" | "almalinux" | "rocky" | "ol" => Family::Rhel,
            "debian" | "ubuntu" => Family::Debian,
            "sles" | "suse" | "opensuse" | "opensuse-leap" => Family::Suse,
            "amzn" => Family::Amazon,
            "azurelinux" | "mariner" => Family::AzureLinux,
            _ => continue,
        };
        return Some(family);
    }
    None
}

/// Reads /etc/os-release (or /usr/lib/os-release), falling back to the
/// release files of distributions older than os-release.
pub fn detect(root: &RootDir) -> Result<Distro> {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(text) = root.read_string_optional(path)? {
            let get = |key: &str| os_release_value(&text, key).unwrap_or_default();
            let (id, id_like) = (get("ID"), get("ID_LIKE"));
            return Ok(Distro {
                family: family_of(&id, &id_like),
                version_id: get("VERSION_ID"),
                pretty_name: get("PRETTY_NAME"),
                source: path.to_string(),
                id,
                id_like,
            });
        }
    }
    let legacy = [
        ("/etc/redhat-release", "rhel"),
        ("/etc/SuSE-release", "sles"),
        ("/etc/debian_version", "debian"),
        ("/etc/system-release", "amzn"),
    ];
    for (path, id) in legacy {
        if let Some(text) = root.read_string_optional(path)? {
            let first = text.lines().next().unwrap_or_default().trim().to_string();
            let version_id = first
                .split_whitespace()
                .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .unwrap_or_default()
                .to_string();
            return Ok(Distro {
                id: id.to_string(),
                id_like: String::new(),
                version_id,
                pretty_name: first,
                family: family_of(id, ""),
                source: path.to_string(),
            });
        }
    }
    Ok(Distro {
        id: String::new(),
        id_like: String::new(),
        version_id: String::new(),
        pretty_name: String::new(),
        family: None,
        source: "no release file".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_os_release_ids() {
        assert_eq!(
            family_of("almalinux", "rhel centos fedora"),
            Some(Family::Rhel)
        );
        assert_eq!(family_of("ubuntu", "debian"), Some(Family::Debian));
        assert_eq!(family_of("sles", ""), Some(Family::Suse));
        assert_eq!(
            family_of("amzn", "centos rhel fedora"),
            Some(Family::Amazon)
        );
        assert_eq!(family_of("mariner", ""), Some(Family::AzureLinux));
        assert_eq!(family_of("gentoo", ""), None);
    }

    #[test]
    fn legacy_release_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/redhat-release"),
            "CentOS Linux release 7.9.2009 (Core)\n",
        )
        .unwrap();
        let distro = detect(&RootDir::open(dir.path()).unwrap()).unwrap();
        assert_eq!(distro.family, Some(Family::Rhel));
        assert_eq!(distro.version_id, "7.9.2009");
    }
}
