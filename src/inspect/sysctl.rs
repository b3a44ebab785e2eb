//! The sysctl settings the target applies at boot, read the way
//! systemd-sysctl (and `sysctl --system`) do: `*.conf` in the sysctl.d
//! directories, a file in /etc hiding one of the same name in /run or /usr/lib,
//! all files in name order, /etc/sysctl.conf last; a later setting wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::rootfs::RootDir;

/// Lowest precedence first: a same-named file in a later directory replaces it.
const DIRS: &[&str] = &[
    "/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/run/sysctl.d",
    "/etc/sysctl.d",
];

pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// One effective setting and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Setting {
    pub value: String,
    pub file: PathBuf,
    /// 1-based.
    pub line: u64,
    /// The line as written (trimmed).
    pub text: String,
}

impl Setting {
    pub fn origin(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// `kernel/panic` and `kernel.panic` name the same key.
pub fn normalize_key(key: &str) -> String {
    key.trim().replace('/', ".")
}

/// The files read at boot, in the order they are applied.
pub fn files(root: &RootDir) -> Result<Vec<PathBuf>> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in DIRS {
        for entry in root.list_dir(dir)? {
            let name = entry.name.to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                by_name.insert(name, Path::new(dir).join(&entry.name));
            }
        }
    }
    let mut files: Vec<PathBuf> = by_name.into_values().collect();
    files.push(PathBuf::from(SYSCTL_CONF));
    Ok(files)
}

/// `(key, value)` of a settings line, `None` for comments and other lines.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let body = line.trim();
    if body.starts_with('#') || body.starts_with(';') {
        return None;
    }
    let body = body.strip_prefix('-').unwrap_or(body);
    let (key, value) = body.split_once('=')?;
    Some((normalize_key(key), value.trim().to_string()))
}

/// Every key's effective setting.
pub fn effective(root: &RootDir) -> Result<BTreeMap<String, Setting>> {
    let mut settings = BTreeMap::new();
    for file in files(root)? {
        let text = root.read_string_optional(&file)?.unwrap_or_default();
        for (index, line) in text.lines().enumerate() {
            if let Some((key, value)) = parse_line(line) {
                settings.insert(
                    key,
                    Setting {
                        value,
                        file: file.clone(),
                        line: index as u64 + 1,
                        text: line.trim().to_string(),
                    },
                );
            }
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_hides_a_vendor_file_of_the_same_name_and_sysctl_conf_comes_last() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["usr/lib/sysctl.d", "etc/sysctl.d", "run/sysctl.d"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(
            p.join("usr/lib/sysctl.d/50-default.conf"),
            "kernel.panic = 5\nkernel/sysrq = 16\n",
        )
        .unwrap();
        std::fs::write(p.join("etc/sysctl.d/50-default.conf"), "kernel.panic=7\n").unwrap();
        std::fs::write(
            p.join("run/sysctl.d/90-x.conf"),
            "; comment\n-kernel.hung_task_panic = 1\n",
        )
        .unwrap();
        std::fs::write(
            p.join("etc/sysctl.conf"),
            "# kernel.panic = 1\nkernel.panic = 9\n",
        )
        .unwrap();
        let root = RootDir::open(p).unwrap();
        let settings = effective(&root).unwrap();
        assert_eq!(settings["kernel.panic"].value, "9");
        assert_eq!(settings["kernel.panic"].origin(), "/etc/sysctl.conf:2");
        assert!(
            !settings.contains_key("kernel.sysrq"),
            "the /usr/lib file is hidden"
        );
        assert_eq!(settings["kernel.hung_task_panic"].value, "1");
    }
}
