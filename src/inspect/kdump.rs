//! Which kdump the target has (kexec-tools, Debian's kdump-tools, SUSE's
//! kdump), where its unit and configuration are, and whether it is enabled.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::os::Family;
use crate::rootfs::{EntryKind, RootDir};

pub const KDUMP_CONF: &str = "/etc/kdump.conf";
pub const SYSCONFIG_KDUMP: &str = "/etc/sysconfig/kdump";
pub const DEFAULT_KDUMP_TOOLS: &str = "/etc/default/kdump-tools";
/// Where systemd units are enabled (wants links) and masked.
pub const ETC_UNITS: &str = "/etc/systemd/system";
const UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];
/// Directives of the mkinitrd-era kdump (RHEL 6) that kdumpctl with dracut
/// (RHEL 7 and later) refuses: with one of them active, kdump does not start.
pub const REFUSED_BY_KDUMPCTL: &[&str] = &[
    "net",
    "options",
    "link_delay",
    "disk_timeout",
    "debug_mem_level",
    "blacklist",
];
const KDUMPCTL: &[&str] = &[
    "/usr/bin/kdumpctl",
    "/usr/sbin/kdumpctl",
    "/bin/kdumpctl",
    "/sbin/kdumpctl",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// RHEL, Fedora, Amazon Linux, Azure Linux: `/etc/kdump.conf`, kdump.service.
    KexecTools,
    /// Debian, Ubuntu: `/etc/default/kdump-tools`, kdump-tools.service.
    KdumpTools,
    /// SUSE: `/etc/sysconfig/kdump`, kdump.service.
    Suse,
}

impl Flavor {
    pub fn of(family: Family) -> Flavor {
        match family {
            Family::Debian => Flavor::KdumpTools,
            Family::Suse => Flavor::Suse,
            Family::Rhel | Family::Amazon | Family::AzureLinux => Flavor::KexecTools,
        }
    }

    /// The package to install when the tools are missing.
    pub fn package(self) -> &'static str {
        match self {
            Flavor::KexecTools => "kexec-tools",
            Flavor::KdumpTools => "kdump-tools (on Ubuntu: linux-crashdump)",
            Flavor::Suse => "kdump",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Flavor::KdumpTools => "kdump-tools.service",
            Flavor::KexecTools | Flavor::Suse => "kdump.service",
        }
    }

    pub fn config(self) -> &'static str {
        match self {
            Flavor::KexecTools => KDUMP_CONF,
            Flavor::KdumpTools => DEFAULT_KDUMP_TOOLS,
            Flavor::Suse => SYSCONFIG_KDUMP,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct KdumpSetup {
    pub flavor: Flavor,
    /// The unit file on the target (`/usr/lib/systemd/system/kdump.service`).
    pub unit_path: Option<PathBuf>,
    pub config_present: bool,
    /// Targets of the unit's `[Install] WantedBy=`.
    pub wanted_by: Vec<String>,
    /// Existing `/etc/systemd/system/*.wants/<unit>` links.
    pub enabled_links: Vec<PathBuf>,
    /// `/etc/systemd/system/<unit>` points at /dev/null.
    pub masked: bool,
    /// kexec-tools with kdumpctl and dracut (RHEL 7 and later), which refuses
    /// the mkinitrd-era directives (`blacklist`, `options`, `disk_timeout`…).
    pub dracut_based: bool,
    /// Debian's `USE_KDUMP` switch (`None` for other flavors or when unset).
    pub use_kdump: Option<bool>,
}

impl KdumpSetup {
    /// What is missing for the tools to count as installed.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.unit_path.is_none() {
            missing.push(self.flavor.unit().to_string());
        }
        if !self.config_present {
            missing.push(self.flavor.config().to_string());
        }
        missing
    }

    pub fn installed(&self) -> bool {
        self.missing().is_empty()
    }

    /// Will kdump be armed at boot?
    pub fn enabled(&self) -> bool {
        self.installed()
            && !self.masked
            && !self.enabled_links.is_empty()
            && self.use_kdump != Some(false)
    }

    /// The wants link that enables the unit, e.g.
    /// `/etc/systemd/system/multi-user.target.wants/kdump.service`.
    pub fn wants_link(&self) -> PathBuf {
        let target = self
            .wanted_by
            .first()
            .map(String::as_str)
            .unwrap_or("multi-user.target");
        Path::new(ETC_UNITS)
            .join(format!("{target}.wants"))
            .join(self.flavor.unit())
    }
}

/// `WantedBy=` targets of a unit file's `[Install]` section.
pub fn wanted_by(unit: &str) -> Vec<String> {
    let mut section = "";
    let mut targets = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if section == "[Install]" {
            if let Some(value) = line.strip_prefix("WantedBy=") {
                targets.extend(value.split_whitespace().map(str::to_string));
            }
        }
    }
    targets
}

pub fn detect(root: &RootDir, family: Family) -> Result<KdumpSetup> {
    let flavor = Flavor::of(family);
    let unit = flavor.unit();
    let unit_path = UNIT_DIRS
        .iter()
        .map(|d| Path::new(d).join(unit))
        .find(|p| root.is_file(p));
    let wanted = match &unit_path {
        Some(path) => wanted_by(&root.read_string_optional(path)?.unwrap_or_default()),
        None => Vec::new(),
    };
    let mut enabled_links = Vec::new();
    for entry in root.list_dir(ETC_UNITS)? {
        let name = entry.name.to_string_lossy();
        if entry.kind == EntryKind::Dir && name.ends_with(".wants") {
            let link = Path::new(ETC_UNITS).join(&entry.name).join(unit);
            if root.symlink_metadata(&link).is_ok() {
                enabled_links.push(link);
            }
        }
    }
    let masked = root
        .read_link(Path::new(ETC_UNITS).join(unit))?
        .is_some_and(|t| t == Path::new("/dev/null"));
    let use_kdump = match flavor {
        Flavor::KdumpTools => root
            .read_string_optional(DEFAULT_KDUMP_TOOLS)?
            .and_then(|t| {
                super::default_grub::DefaultGrub::parse(&t)
                    .get("USE_KDUMP")
                    .map(|v| v.trim() == "1")
            }),
        _ => None,
    };
    Ok(KdumpSetup {
        flavor,
        unit_path,
        config_present: root.is_file(flavor.config()),
        wanted_by: wanted,
        enabled_links,
        masked,
        dracut_based: flavor == Flavor::KexecTools && KDUMPCTL.iter().any(|p| root.is_file(p)),
        use_kdump,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_by_comes_from_the_install_section() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kdump");
        let rhel = std::fs::read_to_string(format!("{fixtures}/kdump.service")).unwrap();
        assert_eq!(wanted_by(&rhel), vec!["multi-user.target"]);
        let debian = std::fs::read_to_string(format!("{fixtures}/kdump-tools.service")).unwrap();
        assert_eq!(wanted_by(&debian), vec!["basic.target"]);
        assert!(wanted_by("[Unit]\nWantedBy=x.target\n").is_empty());
    }

    #[test]
    fn detects_installed_enabled_and_masked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("usr/lib/systemd/system")).unwrap();
        std::fs::create_dir_all(p.join("etc/systemd/system/multi-user.target.wants")).unwrap();
        let root = RootDir::open(p).unwrap();
        let setup = detect(&root, Family::Rhel).unwrap();
        assert_eq!(setup.missing(), vec!["kdump.service", "/etc/kdump.conf"]);
        std::fs::write(
            p.join("usr/lib/systemd/system/kdump.service"),
            "[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        std::fs::write(p.join("etc/kdump.conf"), "path /var/crash\n").unwrap();
        let setup = detect(&root, Family::Rhel).unwrap();
        assert!(setup.installed() && !setup.enabled() && !setup.dracut_based);
        assert_eq!(
            setup.wants_link(),
            Path::new("/etc/systemd/system/multi-user.target.wants/kdump.service")
        );
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/kdump.service",
            p.join("etc/systemd/system/multi-user.target.wants/kdump.service"),
        )
        .unwrap();
        assert!(detect(&root, Family::Rhel).unwrap().enabled());
        std::os::unix::fs::symlink("/dev/null", p.join("etc/systemd/system/kdump.service"))
            .unwrap();
        let setup = detect(&root, Family::Rhel).unwrap();
        assert!(setup.masked && !setup.enabled());
    }
}
