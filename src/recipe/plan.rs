//! A plan: the exact file changes (as unified diffs) and chroot commands a
//! recipe would make, computed without changing anything (invariant 5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::facts::Facts;
use crate::attach::Layout;
use crate::journal::DiskRegion;
use crate::rootfs::RootDir;

/// What the actions read besides the files.
pub struct ActionContext<'a> {
    pub facts: &'a Facts,
    pub layout: Option<&'a Layout>,
}

/// Collects changes and notes while a recipe is planned.
#[derive(Debug, Default)]
pub struct Planned {
    pub changes: Vec<PlannedChange>,
    pub notes: Vec<String>,
    pub audit: Vec<SysctlAudit>,
    /// GRUB defaults files (/etc/default/grub, grub.d drop-ins) as they were
    /// when a kernel-argument step last brought every grub.cfg in line with
    /// them by editing it in place: while they stay so, no regeneration.
    pub grub_cfg_in_line_with: Vec<(PathBuf, Option<String>)>,
}

impl Planned {
    /// Adds a change; a later write of a file already written (with no
    /// command in between) folds into the earlier one, so each file shows
    /// one diff from its original.
    pub(crate) fn push(&mut self, change: Option<PlannedChange>) {
        let Some(change) = change else { return };
        if let PlannedChange::Write {
            path, after, why, ..
        } = &change
        {
            let earlier = self
                .changes
                .iter()
                .rposition(|c| c.touched_paths().contains(path))
                .filter(|&index| {
                    !self.changes[index + 1..].iter().any(|c| {
                        matches!(
                            c,
                            PlannedChange::Command { .. } | PlannedChange::InstallBootLoader { .. }
                        )
                    })
                });
            if let Some(PlannedChange::Write {
                after: earlier_after,
                why: earlier_why,
                ..
            }) = earlier.map(|index| &mut self.changes[index])
            {
                *earlier_after = after.clone();
                earlier_why.push_str("; ");
                earlier_why.push_str(why);
                return;
            }
        }
        self.changes.push(change);
    }
}

/// Files as the plan would leave them: the target's contents with the
/// planned edits of earlier steps applied, so later steps build on them.
#[derive(Debug)]
pub struct Workspace<'a> {
    root: &'a RootDir,
    pending: BTreeMap<PathBuf, Option<String>>,
}

impl<'a> Workspace<'a> {
    pub fn new(root: &'a RootDir) -> Self {
        Workspace {
            root,
            pending: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &RootDir {
        self.root
    }

    /// The file's text as the plan stands; `None` when it does not exist.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Option<String>> {
        let path = path.as_ref();
        match self.pending.get(path) {
            Some(content) => Ok(content.clone()),
            None => self.root.read_string_optional(path),
        }
    }

    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        match self.pending.get(path.as_ref()) {
            Some(content) => content.is_some(),
            None => self.root.exists(path),
        }
    }

    /// Records a planned write and returns the change, or `None` when the
    /// file already has exactly that content (idempotence).
    pub fn write(
        &mut self,
        path: impl AsRef<Path>,
        content: String,
        why: &str,
    ) -> Result<Option<PlannedChange>> {
        let path = path.as_ref();
        let before = self.read(path)?;
        if before.as_deref() == Some(content.as_str()) {
            return Ok(None);
        }
        self.pending
            .insert(path.to_path_buf(), Some(content.clone()));
        Ok(Some(PlannedChange::Write {
            path: path.to_path_buf(),
            before,
            after: content,
            why: why.to_string(),
        }))
    }

    pub fn mark_removed(&mut self, path: impl AsRef<Path>) {
        self.pending.insert(path.as_ref().to_path_buf(), None);
    }
}

/// One change the plan makes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PlannedChange {
    /// Replace (or create) a file inside the target.
    Write {
        path: PathBuf,
        #[serde(skip)]
        before: Option<String>,
        #[serde(skip)]
        after: String,
        why: String,
    },
    /// Move a file into the journal (restorable by undo).
    Quarantine { path: PathBuf, why: String },
    /// Copy a file of the target (a signed boot loader from its packages)
    /// over another, byte for byte; `sha256` is the source's when planned,
    /// checked again before the copy.
    Copy {
        from: PathBuf,
        path: PathBuf,
        bytes: u64,
        sha256: String,
        /// The destination exists (and differs).
        replaces: bool,
        why: String,
    },
    /// Delete a regenerable file for good (no backup: the point is the
    /// space it frees); undo cannot bring it back.
    Discard {
        path: PathBuf,
        bytes: u64,
        why: String,
    },
    /// Create a symlink (a systemd wants link); undo removes it.
    Symlink {
        path: PathBuf,
        target: PathBuf,
        why: String,
    },
    /// Run the target's own boot loader installer (grub-install,
    /// bootctl) in the sandbox. Every file below `trees` is backed up
    /// first and what it creates there is recorded; the byte ranges of the
    /// target disk in `disk` (boot code outside any filesystem) are
    /// journaled too, so undo puts all of it back.
    InstallBootLoader {
        argv: Vec<String>,
        /// Environment the installer needs (`SYSTEMD_RELAX_ESP_CHECKS`).
        env: Vec<(String, String)>,
        trees: Vec<PathBuf>,
        #[serde(skip_serializing_if = "Option::is_none")]
        disk: Option<DiskWrite>,
        why: String,
    },
    /// Run one of the target's own programs in a chroot.
    Command {
        argv: Vec<String>,
        /// Files it rewrites (backed up first so undo restores them).
        rewrites: Vec<PathBuf>,
        /// Kernel version it works for, when it matters (never the host's).
        kernel: Option<String>,
        why: String,
    },
}

impl PlannedChange {
    /// Unified diff for writes, a one-line description otherwise.
    pub fn render(&self) -> String {
        match self {
            PlannedChange::Write {
                path,
                before,
                after,
                why,
            } => {
                let old = before.as_deref().unwrap_or("");
                let label = path.display().to_string();
                let old_label = if before.is_some() {
                    format!("a{label}")
                } else {
                    "/dev/null".to_string()
                };
                let diff = similar::TextDiff::from_lines(old, after.as_str())
                    .unified_diff()
                    .context_radius(2)
                    .header(&old_label, &format!("b{label}"))
                    .to_string();
                format!("# {why}\n{diff}")
            }
            PlannedChange::Quarantine { path, why } => {
                format!(
                    "# {why}\nquarantine {} (moved into the journal)\n",
                    path.display()
                )
            }
            PlannedChange::Command { argv, why, .. } => {
                format!("# {why}\nchroot$ {}\n", argv.join(" "))
            }
            PlannedChange::InstallBootLoader {
                argv,
                trees,
                disk,
                why,
                ..
            } => {
                let mut out = format!("# {why}\nsandbox$ {}\n", argv.join(" "));
                for tree in trees {
                    out += &format!("  journals every file below {}\n", tree.display());
                }
                for region in disk
                    .iter()
                    .flat_map(|d| d.regions.iter().map(move |r| (d, r)))
                {
                    out += &format!("  journals {} {}\n", region.0.device, region.1.describe());
                }
                out
            }
            PlannedChange::Discard { path, bytes, why } => {
                format!(
                    "# {why}\ndelete {} ({}, not restorable by undo)\n",
                    path.display(),
                    crate::inspect::disk_usage::human_bytes(*bytes)
                )
            }
            PlannedChange::Symlink { path, target, why } => {
                format!(
                    "# {why}\nsymlink {} -> {}\n",
                    path.display(),
                    target.display()
                )
            }
            PlannedChange::Copy {
                from,
                path,
                bytes,
                sha256,
                replaces,
                why,
            } => {
                let verb = if *replaces { "replace" } else { "create" };
                format!(
                    "# {why}\n{verb} {} with a copy of {} ({bytes} bytes, sha256 {sha256})\n",
                    path.display(),
                    from.display()
                )
            }
        }
    }

    /// One line for a progress display.
    pub fn headline(&self) -> String {
        match self {
            PlannedChange::Write { path, before, .. } => {
                let verb = if before.is_some() { "edit" } else { "create" };
                format!("{verb} {}", path.display())
            }
            PlannedChange::Quarantine { path, .. } => format!("quarantine {}", path.display()),
            PlannedChange::Command { argv, .. } | PlannedChange::InstallBootLoader { argv, .. } => {
                format!("run {}", argv.join(" "))
            }
            PlannedChange::Symlink { path, .. } => format!("link {}", path.display()),
            PlannedChange::Copy { path, from, .. } => {
                format!("copy {} to {}", from.display(), path.display())
            }
            PlannedChange::Discard { path, .. } => format!("delete {}", path.display()),
        }
    }

    pub fn touched_paths(&self) -> Vec<PathBuf> {
        match self {
            PlannedChange::Write { path, .. }
            | PlannedChange::Quarantine { path, .. }
            | PlannedChange::Copy { path, .. }
            | PlannedChange::Symlink { path, .. }
            | PlannedChange::Discard { path, .. } => {
                vec![path.clone()]
            }
            PlannedChange::Command { rewrites, .. } => rewrites.clone(),
            PlannedChange::InstallBootLoader { trees, .. } => trees.clone(),
        }
    }
}

/// The target disk's byte ranges a boot loader installer writes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DiskWrite {
    pub device: String,
    pub regions: Vec<DiskRegion>,
}

/// One audited sysctl: what it does, its effective value, and what the plan sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SysctlAudit {
    pub key: String,
    pub explain: String,
    /// `None`: not set anywhere, the kernel default applies.
    pub current: Option<String>,
    /// `file:line` of the effective setting.
    pub origin: Option<String>,
    /// The value the plan sets, when the operator chose one.
    pub new: Option<String>,
}

impl SysctlAudit {
    pub fn render(&self) -> String {
        let current = match (&self.current, &self.origin) {
            (Some(value), Some(origin)) => format!("{value} ({origin})"),
            (Some(value), None) => value.clone(),
            _ => "kernel default".to_string(),
        };
        let change = match &self.new {
            Some(new) if self.current.as_deref() == Some(new.as_str()) => {
                format!(" (already {new})")
            }
            Some(new) => format!(" -> {new}"),
            None => String::new(),
        };
        format!(
            "  {} = {current}{change}\n      {}\n",
            self.key, self.explain
        )
    }
}

/// Everything a recipe run would do.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub recipe: String,
    pub params: BTreeMap<String, String>,
    pub changes: Vec<PlannedChange>,
    /// Why steps did nothing, and other things the operator should know.
    pub notes: Vec<String>,
    /// Audited settings (audit-sysctl steps), in step order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<SysctlAudit>,
    /// Says why an empty plan changes nothing, when it is not "already done".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noop_reason: Option<String>,
    /// What to do once the VM boots again (the recipe's `after`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!("plan for {} {}\n", self.recipe, params.join(" ")));
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        if !self.audit.is_empty() {
            out.push_str("audit (effective values from the target's sysctl.conf and sysctl.d):\n");
            for line in &self.audit {
                out.push_str(&line.render());
            }
        }
        if self.changes.is_empty() {
            match &self.noop_reason {
                Some(reason) => out.push_str(&format!("nothing to do: {reason}\n")),
                None => out.push_str("nothing to do: the target already has these changes\n"),
            }
        }
        for change in &self.changes {
            out.push_str(&change.render());
        }
        for line in &self.after {
            out.push_str(&format!("after boot: {line}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_build_on_earlier_writes_and_identical_content_is_a_noop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/x.conf"), "a\n").unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let mut ws = Workspace::new(&root);
        assert!(ws
            .write("/etc/x.conf", "a\n".into(), "same")
            .unwrap()
            .is_none());
        let change = ws
            .write("/etc/x.conf", "a\nb\n".into(), "add b")
            .unwrap()
            .unwrap();
        assert_eq!(ws.read("/etc/x.conf").unwrap().as_deref(), Some("a\nb\n"));
        let rendered = change.render();
        assert!(
            rendered.contains("--- a/etc/x.conf") && rendered.contains("+b"),
            "{rendered}"
        );
        let created = ws
            .write("/etc/new.conf", "n\n".into(), "create")
            .unwrap()
            .unwrap();
        assert!(created.render().contains("--- /dev/null"));
        // Nothing was written to the target.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("etc/x.conf")).unwrap(),
            "a\n"
        );
        assert!(!dir.path().join("etc/new.conf").exists());
    }
}

/// One verification check and what it found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CheckResult {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}
