//! The GRUB environment block (`grubenv`): a 1024-byte file starting with
//! `# GRUB Environment Block\n`, then `key=value\n` lines, padded with `#`.
//! GRUB escapes `\` and newline in values with a backslash.
//!
//! An untouched block renders to its original bytes; an edited one is
//! rebuilt like `grub-editenv` does (variables replaced in place, new ones
//! appended) and padded back to exactly 1024 bytes.

use std::fmt;

use anyhow::{Context, Result};

use super::cmdline::{CmdlineEdit, KernelCmdline};
use crate::rootfs::RootDir;

/// Reads and parses a target grubenv; `None` when the file does not exist.
pub fn load(root: &RootDir, path: &str) -> Result<Option<Grubenv>> {
    if !root.exists(path) {
        return Ok(None);
    }
    let bytes = root.read(path).with_context(|| format!("reading {path}"))?;
    Grubenv::parse(&bytes)
        .map(Some)
        .with_context(|| format!("parsing {path}"))
}

pub const SIGNATURE: &str = "# GRUB Environment Block\n";
pub const BLOCK_SIZE: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrubenvError {
    #[error("not a GRUB environment block (missing the \"# GRUB Environment Block\" header)")]
    MissingSignature,
    #[error("the variables need {needed} bytes; a GRUB environment block holds {BLOCK_SIZE}")]
    Overflow { needed: usize },
    #[error("invalid variable name {0:?}")]
    InvalidName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Var {
        name: String,
        value: String,
    },
    /// A comment line (GRUB skips lines starting with `#`), without its newline.
    Comment(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grubenv {
    original: Vec<u8>,
    lines: Vec<Line>,
    dirty: bool,
    warnings: Vec<String>,
}

impl Grubenv {
    /// Parses a block. A missing header is an error (GRUB ignores such a
    /// file); a wrong size or invalid UTF-8 gives a best-effort result with
    /// warnings.
    pub fn parse(bytes: &[u8]) -> Result<Self, GrubenvError> {
        if !bytes.starts_with(SIGNATURE.as_bytes()) {
            return Err(GrubenvError::MissingSignature);
        }
        let mut warnings = Vec::new();
        if bytes.len() != BLOCK_SIZE {
            warnings.push(format!(
                "size is {} bytes, not {BLOCK_SIZE}: the block is truncated or was edited by hand",
                bytes.len()
            ));
        }
        let body = &bytes[SIGNATURE.len()..];
        let text = match std::str::from_utf8(body) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => {
                warnings.push("contains invalid UTF-8; read lossily".to_string());
                String::from_utf8_lossy(body)
            }
        };
        let mut lines = Vec::new();
        let mut rest: &str = &text;
        let mut line_number = 1;
        while !rest.is_empty() {
            line_number += 1;
            if rest.starts_with('#') {
                let end = rest.find('\n').unwrap_or(rest.len());
                lines.push(Line::Comment(rest[..end].to_string()));
                rest = rest.get(end + 1..).unwrap_or("");
                continue;
            }
            let (raw, consumed) = logical_line(rest);
            rest = &rest[consumed..];
            match raw.split_once('=') {
                Some((name, value)) if !name.is_empty() => lines.push(Line::Var {
                    name: name.to_string(),
                    value: unescape(value),
                }),
                _ => {
                    if !raw.trim().is_empty() {
                        warnings.push(format!(
                            "line {line_number}: {raw:?} has no `=`; GRUB reads it as the start of the next variable's name"
                        ));
                    }
                    lines.push(Line::Comment(raw.to_string()));
                }
            }
        }
        Ok(Grubenv {
            original: bytes.to_vec(),
            lines,
            dirty: false,
            warnings,
        })
    }

    /// A new, empty block.
    pub fn empty() -> Self {
        let mut original = SIGNATURE.as_bytes().to_vec();
        original.resize(BLOCK_SIZE, b'#');
        Grubenv {
            original,
            lines: Vec::new(),
            dirty: false,
            warnings: Vec::new(),
        }
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The value of a variable (the first definition, as GRUB reads it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lines.iter().find_map(|line| match line {
            Line::Var { name: n, value } if n == name => Some(value.as_str()),
            _ => None,
        })
    }

    /// All variables in file order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|line| match line {
            Line::Var { name, value } => Some((name.as_str(), value.as_str())),
            Line::Comment(_) => None,
        })
    }

    /// Sets a variable: replaced in place, or appended after the last one.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, GrubenvError> {
        if name.is_empty() || name.contains(['=', '\n', '\\']) || name.starts_with('#') {
            return Err(GrubenvError::InvalidName(name.to_string()));
        }
        if self.get(name) == Some(value) {
            return Ok(false);
        }
        let existing = self
            .lines
            .iter()
            .position(|l| matches!(l, Line::Var { name: n, .. } if n == name));
        let new = Line::Var {
            name: name.to_string(),
            value: value.to_string(),
        };
        match existing {
            Some(index) => {
                self.lines[index] = new;
                // Later duplicates would be confusing; GRUB reads the first.
                let mut seen = false;
                self.lines.retain(|l| match l {
                    Line::Var { name: n, .. } if n == name => !std::mem::replace(&mut seen, true),
                    _ => true,
                });
            }
            None => {
                let after_last_var = self
                    .lines
                    .iter()
                    .rposition(|l| matches!(l, Line::Var { .. }))
                    .map_or(0, |i| i + 1);
                self.lines.insert(after_last_var, new);
            }
        }
        self.dirty = true;
        Ok(true)
    }

    /// Removes a variable; returns whether it was present.
    pub fn unset(&mut self, name: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Var { name: n, .. } if n == name));
        let changed = self.lines.len() != before;
        self.dirty |= changed;
        changed
    }

    /// Applies a command-line edit to a variable holding kernel arguments
    /// (`kernelopts` on RHEL 8). A missing variable is left missing: BLS
    /// entries then carry their options literally.
    pub fn edit_cmdline_var(
        &mut self,
        name: &str,
        edit: &CmdlineEdit,
    ) -> Result<bool, GrubenvError> {
        let Some(value) = self.get(name) else {
            return Ok(false);
        };
        let mut cmdline = KernelCmdline::parse(value);
        if !edit.apply(&mut cmdline) {
            return Ok(false);
        }
        self.set(name, &cmdline.to_string())
    }

    /// The block's bytes: the original when untouched, else rebuilt and
    /// padded to 1024 bytes (an error if the variables do not fit).
    pub fn render(&self) -> Result<Vec<u8>, GrubenvError> {
        if !self.dirty {
            return Ok(self.original.clone());
        }
        let mut out = String::from(SIGNATURE);
        for line in &self.lines {
            match line {
                Line::Var { name, value } => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(&escape(value));
                    out.push('\n');
                }
                // The old padding is regenerated below.
                Line::Comment(text) if text.bytes().all(|b| b == b'#') => {}
                Line::Comment(text) => {
                    out.push_str(text);
                    out.push('\n');
                }
            }
        }
        if out.len() > BLOCK_SIZE {
            return Err(GrubenvError::Overflow { needed: out.len() });
        }
        let mut bytes = out.into_bytes();
        bytes.resize(BLOCK_SIZE, b'#');
        Ok(bytes)
    }
}

impl fmt::Display for Grubenv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in self.vars() {
            writeln!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// The variables GRUB's `load_env` sets at boot, read the way GRUB's
/// `grub_envblk_iterate` reads the whole file: any size is accepted once the
/// signature matches; a name runs to the next `=` (newlines included), a
/// value to the next unescaped newline; a variable cut off by the end of the
/// file, and everything after it, is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootEnv {
    /// In file order; GRUB sets each in turn, so a later duplicate wins.
    pub vars: Vec<(String, String)>,
    /// Where the file differs from a clean block, and what GRUB makes of it.
    pub anomalies: Vec<String>,
}

impl BootEnv {
    /// The value GRUB ends up with (the last definition).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Skips to the start of the next line the way GRUB's `find_next_line` does.
fn next_line(bytes: &[u8], mut p: usize) -> usize {
    while p < bytes.len() {
        match bytes[p] {
            b'\\' => p += 2,
            b'\n' => break,
            _ => p += 1,
        }
    }
    p + 1
}

impl Grubenv {
    /// What GRUB sees at boot (see [`BootEnv`]); uses the bytes as they
    /// would be written after an edit.
    pub fn boot_env(&self) -> BootEnv {
        let bytes = self.render().unwrap_or_else(|_| self.original.clone());
        let mut env = BootEnv::default();
        if bytes.len() != BLOCK_SIZE {
            env.anomalies.push(format!(
                "size is {} bytes, not {BLOCK_SIZE} (truncated, or written by something other than grub-editenv); GRUB reads whatever variables are complete",
                bytes.len()
            ));
        }
        let end = bytes.len();
        let mut p = SIGNATURE.len().min(end);
        while p < end {
            if bytes[p] != b'#' {
                let name_start = p;
                while p < end && bytes[p] != b'=' {
                    p += 1;
                }
                let rest = String::from_utf8_lossy(&bytes[name_start..]);
                if p == end {
                    if !rest.trim().is_empty() {
                        env.anomalies.push(format!(
                            "{:?} at byte {name_start} has no `=`: GRUB stops reading there",
                            truncate(&rest)
                        ));
                    }
                    break;
                }
                let name = String::from_utf8_lossy(&bytes[name_start..p]).into_owned();
                p += 1;
                let value_start = p;
                while p < end && bytes[p] != b'\n' {
                    p += if bytes[p] == b'\\' { 2 } else { 1 };
                }
                if p >= end {
                    env.anomalies.push(format!(
                        "{:?} is cut off by the end of the file (no newline): GRUB drops it",
                        truncate(&rest)
                    ));
                    break;
                }
                let value = unescape(&String::from_utf8_lossy(&bytes[value_start..p]));
                if let Some((junk, real)) = name.rsplit_once('\n') {
                    env.anomalies.push(format!(
                        "{:?} before {real}= has no `=`: GRUB reads it as part of the name, so {real} is not set",
                        truncate(junk)
                    ));
                }
                if env.vars.iter().any(|(n, _)| n == &name) {
                    env.anomalies.push(format!(
                        "{name} is defined more than once: GRUB's load_env keeps the last ({value:?})"
                    ));
                }
                env.vars.push((name, value));
            }
            p = next_line(&bytes, p);
        }
        env
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// One `name=value` line, honouring backslash escapes (an escaped newline
/// belongs to the value). Returns the raw line and the bytes consumed.
fn logical_line(text: &str) -> (&str, usize) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return (&text[..i], i + 1),
            _ => i += 1,
        }
    }
    (text, text.len())
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c == '\n' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/boot/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn block(vars: &str) -> Vec<u8> {
        let mut bytes = format!("{SIGNATURE}{vars}").into_bytes();
        bytes.resize(BLOCK_SIZE, b'#');
        bytes
    }

    #[test]
    fn reads_rhel7_title_saved_entry_from_grubby_fixture() {
        let env = Grubenv::parse(&fixture("rhel7/grubenv")).unwrap();
        assert_eq!(
            env.get("saved_entry"),
            Some("Red Hat Enterprise Linux Server (3.10.0-327.22.2.el7.x86_64.debug) 7.2 (Maipo) with debugging")
        );
        assert!(env.warnings().is_empty());
    }

    #[test]
    fn reads_rhel8_kernelopts_and_boot_success() {
        let bytes = block("saved_entry=7b92728670d64c65879a91ae405012ed-4.18.0-553.22.1.el8_10.x86_64\nkernelopts=root=/dev/mapper/rl-root ro crashkernel=auto  rd.lvm.lv=rl/root\nboot_success=0\n");
        let env = Grubenv::parse(&bytes).unwrap();
        assert_eq!(
            env.get("kernelopts"),
            Some("root=/dev/mapper/rl-root ro crashkernel=auto  rd.lvm.lv=rl/root")
        );
        assert_eq!(env.get("boot_success"), Some("0"));
        assert_eq!(env.render().unwrap(), bytes);
    }

    #[test]
    fn set_replaces_in_place_and_keeps_1024_bytes() {
        let bytes = block("saved_entry=a\nkernelopts=root=/dev/sda1 ro\nboot_success=0\n");
        let mut env = Grubenv::parse(&bytes).unwrap();
        assert!(env.set("saved_entry", "b").unwrap());
        assert!(env.set("next_entry", "1>2").unwrap());
        assert!(!env.set("boot_success", "0").unwrap());
        let out = env.render().unwrap();
        assert_eq!(out.len(), BLOCK_SIZE);
        assert!(out.starts_with(
            format!("{SIGNATURE}saved_entry=b\nkernelopts=root=/dev/sda1 ro\nboot_success=0\nnext_entry=1>2\n###").as_bytes()
        ));
        assert!(env.unset("next_entry"));
        assert!(env.set("saved_entry", "a").unwrap());
        assert_eq!(env.render().unwrap(), bytes);
    }

    #[test]
    fn kernelopts_edit_keeps_other_variables() {
        let bytes = block("saved_entry=x\nkernelopts=root=/dev/mapper/rl-root ro crashkernel=auto\nboot_success=0\n");
        let mut env = Grubenv::parse(&bytes).unwrap();
        assert!(env
            .edit_cmdline_var(
                "kernelopts",
                &CmdlineEdit::Add("cgroup.memory=nokmem".into())
            )
            .unwrap());
        assert!(!env
            .edit_cmdline_var(
                "kernelopts",
                &CmdlineEdit::Add("cgroup.memory=nokmem".into())
            )
            .unwrap());
        assert!(!env
            .edit_cmdline_var("missing", &CmdlineEdit::Add("a=b".into()))
            .unwrap());
        let out = env.render().unwrap();
        assert!(out.starts_with(
            format!("{SIGNATURE}saved_entry=x\nkernelopts=root=/dev/mapper/rl-root ro crashkernel=auto cgroup.memory=nokmem\nboot_success=0\n#").as_bytes()
        ));
        env.edit_cmdline_var(
            "kernelopts",
            &CmdlineEdit::RemoveKey("cgroup.memory".into()),
        )
        .unwrap();
        assert_eq!(env.render().unwrap(), bytes);
    }

    #[test]
    fn escapes_backslash_and_newline_like_grub() {
        let mut env = Grubenv::empty();
        env.set("x", "a\\b\nc").unwrap();
        let out = env.render().unwrap();
        assert!(out.starts_with(format!("{SIGNATURE}x=a\\\\b\\\nc\n").as_bytes()));
        assert_eq!(Grubenv::parse(&out).unwrap().get("x"), Some("a\\b\nc"));
    }

    #[test]
    fn overflow_is_an_error() {
        let mut env = Grubenv::empty();
        env.set("kernelopts", &"x".repeat(2000)).unwrap();
        assert_eq!(
            env.render(),
            Err(GrubenvError::Overflow {
                needed: SIGNATURE.len() + 2012
            })
        );
    }

    #[test]
    fn truncated_block_is_best_effort_with_warning() {
        let bytes = block("saved_entry=gnulinux-6.1.0-18-amd64-advanced-x\n");
        let env = Grubenv::parse(&bytes[..60]).unwrap();
        assert!(env.warnings()[0].contains("size is 60 bytes"));
        assert_eq!(
            env.get("saved_entry"),
            Some("gnulinux-6.1.0-18-amd64"),
            "cut at byte 60"
        );
        assert_eq!(
            Grubenv::parse(b"saved_entry=0\n"),
            Err(GrubenvError::MissingSignature)
        );
    }

    #[test]
    fn grubby_fixture_with_1025_bytes_warns() {
        let env = Grubenv::parse(&fixture("grubenv/grubby-grubenv.4")).unwrap();
        assert_eq!(env.warnings().len(), 1, "{:?}", env.warnings());
        assert_eq!(
            env.get("saved_entry"),
            Some("Linux, with Fedora 2.6.38.8-32.fc15.x86_64")
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_untouched_render_is_identity(body in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let mut bytes = SIGNATURE.as_bytes().to_vec();
            bytes.extend(body);
            let env = Grubenv::parse(&bytes).unwrap();
            prop_assert_eq!(env.render().unwrap(), bytes);
        }

        #[test]
        fn set_then_get_round_trips(value in "[^\u{0}]{0,200}") {
            let mut env = Grubenv::parse(&block("saved_entry=0\nboot_success=1\n")).unwrap();
            env.set("kernelopts", &value).unwrap();
            let out = env.render().unwrap();
            let back = Grubenv::parse(&out).unwrap();
            prop_assert_eq!(back.get("kernelopts"), Some(value.as_str()));
            prop_assert_eq!(back.get("saved_entry"), Some("0"));
            prop_assert_eq!(back.get("boot_success"), Some("1"));
        }
    }
}
