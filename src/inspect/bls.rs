//! Boot Loader Specification entries (`/boot/loader/entries/*.conf`), as
//! written by kernel-install/grubby on RHEL 8+, Fedora, Alma, Rocky, Oracle,
//! Azure Linux, and read by GRUB's `blscfg` and by systemd-boot.
//!
//! Each line is `key value`; `#` lines are comments. Lines keep their bytes;
//! editing `options` rewrites only that line's value.
//!
//! Ordering (`sort_for_grub_blscfg`) follows RHEL's grub2 `blscfg` module
//! (`bls_cmp` → `split_cmp` on the file name without `.conf`): the id is
//! split at its last two `-` into name, version and release, each compared
//! with rpm's vercmp, newest first; two ids comparing equal keep only the
//! first. That is how "index N" and `saved_entry=<id>` resolve on RHEL 8/9.
//! (rhboot/grub2 PR #18, "Use BLS fragment filename as menu entry id and for
//! criteria to sort", replaced the earlier sort on the `version` field; the
//! Boot Loader Specification's `sort-key` order is what systemd-boot uses,
//! see `sort_for_systemd_boot`.)

use std::cmp::Ordering;

use anyhow::{Context, Result};
use serde::Serialize;

use super::cmdline::{CmdlineEdit, KernelCmdline};
use super::version::compare_versions;
use crate::rootfs::RootDir;

/// At most this many entry files are read from one directory.
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    raw: String,
    /// Key and value byte range within `raw` (for key/value lines).
    key: Option<String>,
    value_start: usize,
    value_end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlsEntry {
    /// File name, e.g. `8e15…-4.18.0-80.el8.x86_64.conf`.
    pub file_name: String,
    lines: Vec<Line>,
}

/// A summary for JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BlsSummary {
    pub id: String,
    pub title: Option<String>,
    pub version: Option<String>,
    pub linux: Option<String>,
    pub initrd: Vec<String>,
    pub options: Option<String>,
}

impl BlsEntry {
    /// Parses any text; never fails.
    pub fn parse(file_name: &str, text: &str) -> Self {
        let lines = text.split_inclusive('\n').map(parse_line).collect();
        BlsEntry {
            file_name: file_name.to_string(),
            lines,
        }
    }

    /// The id GRUB and grubby use: the file name without `.conf`.
    pub fn id(&self) -> &str {
        self.file_name
            .strip_suffix(".conf")
            .unwrap_or(&self.file_name)
    }

    pub fn render(&self) -> String {
        self.lines.iter().map(|l| l.raw.as_str()).collect()
    }

    fn values_of(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.key.as_deref() == Some(key))
            .map(|l| l.raw[l.value_start..l.value_end].trim_end())
            .collect()
    }

    /// The first value of a key (as GRUB's `bls_get_val`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values_of(key).into_iter().next()
    }

    /// Every value of a repeatable key (`initrd`, `grub_arg`, `grub_class`).
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.values_of(key)
    }

    pub fn title(&self) -> Option<&str> {
        self.get("title")
    }
    pub fn version(&self) -> Option<&str> {
        self.get("version")
    }
    pub fn linux(&self) -> Option<&str> {
        self.get("linux")
    }
    pub fn options(&self) -> Option<&str> {
        self.get("options")
    }
    pub fn sort_key(&self) -> Option<&str> {
        self.get("sort-key")
    }
    pub fn machine_id(&self) -> Option<&str> {
        self.get("machine-id")
    }

    /// `options` with `$name` references expanded like GRUB's blscfg does
    /// (unknown variables expand to nothing).
    pub fn expanded_options(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        self.options().map(|o| expand_grub_vars(o, env))
    }

    /// Initrd paths: every `initrd` line, split at spaces, variables
    /// expanded, empty results dropped.
    pub fn initrds(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        self.get_all("initrd")
            .into_iter()
            .flat_map(|v| {
                expand_grub_vars(v, env)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Edits the `options` line's value in place (appending an `options`
    /// line if there is none and the edit adds). Returns whether it changed.
    pub fn edit_options(&mut self, edit: &CmdlineEdit) -> bool {
        let Some(index) = self
            .lines
            .iter()
            .position(|l| l.key.as_deref() == Some("options"))
        else {
            let (CmdlineEdit::Add(arg) | CmdlineEdit::AddToList(arg)) = edit else {
                return false;
            };
            if !self.render().ends_with('\n') && !self.lines.is_empty() {
                if let Some(last) = self.lines.last_mut() {
                    last.raw.push('\n');
                }
            }
            self.lines.push(parse_line(&format!("options {arg}\n")));
            return true;
        };
        let line = &self.lines[index];
        let mut cmdline = KernelCmdline::parse(&line.raw[line.value_start..line.value_end]);
        if !edit.apply(&mut cmdline) {
            return false;
        }
        let raw = format!(
            "{}{}{}",
            &line.raw[..line.value_start],
            cmdline,
            &line.raw[line.value_end..]
        );
        self.lines[index] = parse_line(&raw);
        true
    }

    pub fn summary(&self) -> BlsSummary {
        BlsSummary {
            id: self.id().to_string(),
            title: self.title().map(str::to_string),
            version: self.version().map(str::to_string),
            linux: self.linux().map(str::to_string),
            initrd: self
                .get_all("initrd")
                .into_iter()
                .map(str::to_string)
                .collect(),
            options: self.options().map(str::to_string),
        }
    }
}

fn parse_line(raw: &str) -> Line {
    let body = raw.strip_suffix('\n').unwrap_or(raw);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let trimmed_start = body.len() - body.trim_start().len();
    let content = &body[trimmed_start..];
    if content.is_empty() || content.starts_with('#') {
        return Line {
            raw: raw.to_string(),
            key: None,
            value_start: 0,
            value_end: 0,
        };
    }
    let key_len = content.find([' ', '\t']).unwrap_or(content.len());
    let key = &content[..key_len];
    let after_key = &content[key_len..];
    let value_offset = trimmed_start + key_len + (after_key.len() - after_key.trim_start().len());
    Line {
        raw: raw.to_string(),
        key: Some(key.to_string()),
        value_start: value_offset,
        value_end: body.len(),
    }
}

/// Reads every `*.conf` entry of a target directory (dot files skipped, as
/// blscfg does); a missing directory gives no entries.
pub fn read_entries(root: &RootDir, dir: &str) -> Result<Vec<BlsEntry>> {
    let mut entries = Vec::new();
    for entry in root
        .list_dir(dir)
        .with_context(|| format!("listing {dir}"))?
    {
        let name = entry.name.to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".conf") || name.len() <= 5 {
            continue;
        }
        let path = format!("{dir}/{name}");
        let text = root
            .read_string(&path)
            .with_context(|| format!("reading {path}"))?;
        entries.push(BlsEntry::parse(&name, &text));
        if entries.len() >= MAX_ENTRIES {
            break;
        }
    }
    Ok(entries)
}

/// Expands `$name` and `${name}` like GRUB's blscfg `expand_val`.
pub fn expand_grub_vars(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            if let Some(close) = inner.find('}') {
                out.push_str(&env(&inner[..close]).unwrap_or_default());
                rest = &inner[close + 1..];
                continue;
            }
        }
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if len == 0 {
            out.push('$');
        } else {
            out.push_str(&env(&after[..len]).unwrap_or_default());
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Splits an id like grub2's `split_package_string`: name, version, release
/// at the last two `-`, with missing parts bubbled up.
fn split_nvr(id: &str) -> (&str, &str, &str) {
    match id.rsplit_once('-') {
        None => (id, "", ""),
        Some((head, release)) => match head.rsplit_once('-') {
            Some((name, version)) => (name, version, release),
            None => (head, release, ""),
        },
    }
}

/// GRUB blscfg's comparison of two entry ids: `Greater` when `a` is newer.
pub fn compare_ids_like_blscfg(a: &str, b: &str) -> Ordering {
    let (na, va, ra) = split_nvr(a);
    let (nb, vb, rb) = split_nvr(b);
    compare_versions(na, nb)
        .then_with(|| compare_versions(va, vb))
        .then_with(|| compare_versions(ra, rb))
}

/// Orders entries as RHEL's GRUB `blscfg` lists them (menu index 0 first).
/// Returns the ids dropped as duplicates.
pub fn sort_for_grub_blscfg(entries: &mut Vec<BlsEntry>) -> Vec<String> {
    // GRUB skips files without a `linux` key.
    entries.retain(|e| e.linux().is_some());
    entries.sort_by(|a, b| compare_ids_like_blscfg(b.id(), a.id()));
    let mut dropped = Vec::new();
    entries.dedup_by(|later, earlier| {
        let same = compare_ids_like_blscfg(later.id(), earlier.id()) == Ordering::Equal;
        if same {
            dropped.push(later.id().to_string());
        }
        same
    });
    dropped
}

/// Orders entries like systemd-boot: entries with `sort-key` first (by
/// sort-key, then machine-id ascending, then version descending), then the
/// rest by id descending (version-aware).
pub fn sort_for_systemd_boot(entries: &mut [BlsEntry]) {
    entries.sort_by(|a, b| match (a.sort_key(), b.sort_key()) {
        (Some(ka), Some(kb)) => ka
            .cmp(kb)
            .then_with(|| a.machine_id().cmp(&b.machine_id()))
            .then_with(|| compare_versions(b.version().unwrap_or(""), a.version().unwrap_or("")))
            .then_with(|| compare_versions(b.id(), a.id())),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => compare_versions(b.id(), a.id()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/boot/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const RHEL9_ENTRY: &str =
        "rhel9/loader/entries/ba6a0b9ac2d6406bb0e3c0d1fb1ecb29-5.14.0-362.18.1.el9_3.x86_64.conf";

    fn env(name: &str) -> Option<String> {
        match name {
            "kernelopts" => Some("root=/dev/mapper/rl-root ro crashkernel=auto".into()),
            "tuned_params" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn reads_rhel9_entry_fields() {
        let name = RHEL9_ENTRY.rsplit('/').next().unwrap();
        let e = BlsEntry::parse(name, &fixture(RHEL9_ENTRY));
        assert_eq!(
            e.id(),
            "ba6a0b9ac2d6406bb0e3c0d1fb1ecb29-5.14.0-362.18.1.el9_3.x86_64"
        );
        assert_eq!(
            e.title(),
            Some("Red Hat Enterprise Linux (5.14.0-362.18.1.el9_3.x86_64) 9.3 (Plow)")
        );
        assert_eq!(e.linux(), Some("/vmlinuz-5.14.0-362.18.1.el9_3.x86_64"));
        assert_eq!(
            e.initrds(&env),
            ["/initramfs-5.14.0-362.18.1.el9_3.x86_64.img"]
        );
        assert_eq!(e.get_all("grub_class"), ["rhel"]);
        let options = e.expanded_options(&env).unwrap();
        assert!(options.starts_with("root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M"));
        assert!(options.ends_with("rhgb quiet  "), "{options:?}");
        assert_eq!(e.render(), fixture(RHEL9_ENTRY));
    }

    #[test]
    fn expands_kernelopts_like_grub() {
        let e = BlsEntry::parse("x.conf", "linux /vmlinuz\ninitrd /initramfs.img $tuned_initrd\noptions $kernelopts $tuned_params\n");
        assert_eq!(
            e.expanded_options(&env).as_deref(),
            Some("root=/dev/mapper/rl-root ro crashkernel=auto ")
        );
        assert_eq!(e.initrds(&env), ["/initramfs.img"]);
        assert_eq!(
            expand_grub_vars("a${kernelopts}b $ c", &env),
            "aroot=/dev/mapper/rl-root ro crashkernel=autob $ c"
        );
    }

    #[test]
    fn edit_options_changes_only_that_line() {
        let text = fixture(RHEL9_ENTRY);
        let mut e = BlsEntry::parse("a.conf", &text);
        assert!(e.edit_options(&CmdlineEdit::Add("cgroup.memory=nokmem".into())));
        let out = e.render();
        let diff: Vec<_> = text
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(diff.len(), 1);
        assert!(
            diff[0].1.starts_with("options ")
                && diff[0]
                    .1
                    .ends_with("rhgb quiet  $tuned_params cgroup.memory=nokmem")
        );
        assert!(!e.edit_options(&CmdlineEdit::Add("cgroup.memory=nokmem".into())));
        assert!(e.edit_options(&CmdlineEdit::RemoveKey("cgroup.memory".into())));
        assert_eq!(e.render(), text);
    }

    #[test]
    fn blscfg_order_is_newest_first_with_rescue_last() {
        let ids = [
            "8e15296c9cc14deb9e3f8548d49fd6fc-0-rescue",
            "8e15296c9cc14deb9e3f8548d49fd6fc-4.18.0-80.el8.ppc64le",
            "8e15296c9cc14deb9e3f8548d49fd6fc-4.18.0-80.11.2.el8_0.ppc64le",
        ];
        let mut entries: Vec<_> = ids
            .iter()
            .map(|id| BlsEntry::parse(&format!("{id}.conf"), "linux /v\n"))
            .collect();
        entries.push(BlsEntry::parse("no-linux.conf", "title x\n"));
        let dropped = sort_for_grub_blscfg(&mut entries);
        assert!(dropped.is_empty());
        let order: Vec<_> = entries.iter().map(BlsEntry::id).collect();
        // Same order as the menu grub2-mkconfig generated from them on the RHEL 8 fixture.
        assert_eq!(order, [ids[2], ids[1], ids[0]]);
    }

    #[test]
    fn systemd_boot_order_puts_sort_key_entries_first() {
        let mut entries = vec![
            BlsEntry::parse("a-6.1.conf", "linux /a\n"),
            BlsEntry::parse("f-6.5.conf", "sort-key fedora\nversion 6.5.0\nlinux /a\n"),
            BlsEntry::parse("f-6.8.conf", "sort-key fedora\nversion 6.8.0\nlinux /a\n"),
        ];
        sort_for_systemd_boot(&mut entries);
        let order: Vec<_> = entries.iter().map(BlsEntry::id).collect();
        assert_eq!(order, ["f-6.8", "f-6.5", "a-6.1"]);
    }

    proptest! {
        #[test]
        fn render_of_parse_is_identity(text in "(\\PC|[\n\r\t #$])*") {
            prop_assert_eq!(BlsEntry::parse("x.conf", &text).render(), text);
        }

        #[test]
        fn edits_touch_only_options(arg in "x\\.[a-z]{1,8}=[a-z0-9]{1,5}") {
            let text = "title T\nversion 1\nlinux /v\noptions root=x ro\ngrub_class kernel\n";
            let mut e = BlsEntry::parse("x.conf", text);
            e.edit_options(&CmdlineEdit::Add(arg.clone()));
            let out = e.render();
            for (a, b) in text.lines().zip(out.lines()) {
                if a != b {
                    prop_assert!(a.starts_with("options "));
                    prop_assert_eq!(format!("{a} {arg}"), b);
                }
            }
        }
    }
}
