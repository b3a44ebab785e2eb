//! The known-bug table (`known_bugs.toml`): call-trace signatures of
//! distribution-kernel bugs and the first kernel that fixes each.

use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::parse;
use super::signatures;

const EMBEDDED: &str = include_str!("known_bugs.toml");

/// One entry of the table, as written in the TOML file.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownBug {
    pub id: String,
    pub title: String,
    pub distribution: String,
    pub explanation: String,
    #[serde(default)]
    pub functions: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
    pub kernel: Option<String>,
    pub fixed_in: String,
    pub reference: String,
}

/// A table entry ready for matching.
#[derive(Debug, Clone)]
pub struct CompiledBug {
    pub bug: KnownBug,
    pub kernel: Option<Regex>,
    pub fixed_key: Vec<u64>,
}

impl CompiledBug {
    /// Whether a kernel release is affected; an unknown release is assumed affected.
    pub fn affects(&self, release: Option<&str>, build: Option<&str>) -> bool {
        let Some(release) = release else {
            return true;
        };
        if let Some(pattern) = &self.kernel {
            if !pattern.is_match(release) {
                return false;
            }
        }
        parse::compare_version_keys(&parse::version_key(release, build), &self.fixed_key).is_lt()
    }

    pub fn finding_id(&self) -> String {
        format!("known-bug-{}", self.bug.id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    bug: Vec<toml::Value>,
}

/// Parses a known-bug table; an error names the offending entry.
pub fn load_known_bugs(text: &str) -> Result<Vec<KnownBug>> {
    let file: File = toml::from_str(text).context("parsing the known-bug table")?;
    let mut bugs: Vec<KnownBug> = Vec::with_capacity(file.bug.len());
    for (index, value) in file.bug.into_iter().enumerate() {
        let name = value.get("id").and_then(toml::Value::as_str).map_or_else(
            || format!("#{}", index + 1),
            |id| format!("#{} ({id})", index + 1),
        );
        let bug =
            KnownBug::deserialize(value).with_context(|| format!("known-bug entry {name}"))?;
        validate(&bug).with_context(|| format!("known-bug entry {name}"))?;
        if bugs.iter().any(|other| other.id == bug.id) {
            bail!("known-bug entry {name}: duplicate id");
        }
        bugs.push(bug);
    }
    Ok(bugs)
}

fn validate(bug: &KnownBug) -> Result<()> {
    if bug.id.is_empty()
        || !bug
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        bail!("id must be kebab-case");
    }
    if bug.functions.is_empty() && bug.requires.is_empty() {
        bail!("needs `functions` or `requires`");
    }
    for required in &bug.requires {
        if signatures::info(required).is_none() {
            bail!("`requires` names unknown finding id {required:?}");
        }
    }
    if parse::version_key(&bug.fixed_in, None).is_empty() {
        bail!("fixed_in {:?} is not a kernel version", bug.fixed_in);
    }
    Ok(())
}

fn compile(bugs: Vec<KnownBug>) -> Result<Vec<CompiledBug>> {
    bugs.into_iter()
        .map(|bug| {
            let kernel = bug
                .kernel
                .as_deref()
                .map(Regex::new)
                .transpose()
                .with_context(|| format!("known-bug entry {}: kernel pattern", bug.id))?;
            let fixed_key = parse::version_key(&bug.fixed_in, None);
            Ok(CompiledBug {
                bug,
                kernel,
                fixed_key,
            })
        })
        .collect()
}

/// The embedded table, parsed once.
pub fn embedded() -> Result<&'static [CompiledBug]> {
    static TABLE: OnceLock<std::result::Result<Vec<CompiledBug>, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            load_known_bugs(EMBEDDED)
                .and_then(compile)
                .map_err(|err| format!("{err:#}"))
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(|err| anyhow!("embedded known_bugs.toml: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_loads_with_every_advertised_bug() {
        let table = embedded().unwrap();
        for id in [
            "ubuntu-5-4-tcp-openreq-child",
            "intel-pstate-divide-error",
            "rhel8-4-list-del-corruption",
            "rhel7-blk-mq-timeout",
            "rhel7-virtio-feature-lvm",
            "centos7-memcg-idr",
            "rhel7-hyperv-host-upgrade",
        ] {
            assert!(table.iter().any(|b| b.bug.id == id), "{id} missing");
        }
    }

    #[test]
    fn unknown_key_error_names_the_entry() {
        let text = r#"
[[bug]]
id = "x-bug"
title = "t"
distribution = "d"
explanation = "e"
functions = ["f"]
fixed_in = "1.2"
reference = "r"
colour = "red"
"#;
        let err = format!("{:#}", load_known_bugs(text).unwrap_err());
        assert!(err.contains("#1 (x-bug)"), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn affects_compares_release_and_distribution_pattern() {
        let table = embedded().unwrap();
        let rhel84 = table
            .iter()
            .find(|b| b.bug.id == "rhel8-4-list-del-corruption")
            .unwrap();
        assert!(rhel84.affects(Some("4.18.0-305.el8.x86_64"), None));
        assert!(!rhel84.affects(Some("4.18.0-305.12.1.el8_4.x86_64"), None));
        assert!(!rhel84.affects(Some("4.18.0-348.el8.x86_64"), None));
        let ubuntu = table
            .iter()
            .find(|b| b.bug.id == "ubuntu-5-4-tcp-openreq-child")
            .unwrap();
        assert!(ubuntu.affects(Some("5.4.0-105-generic"), Some("#119-Ubuntu")));
        assert!(!ubuntu.affects(Some("5.4.0-124-generic"), Some("#140-Ubuntu")));
    }
}
