//! The state file: every mount, loop device and VG change vmrescue makes for
//! a target, written (atomically) *before* each step, so that
//! `vmrescue umount` can undo them in reverse order even after `kill -9`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Default directory of state files (tmpfs: gone after a reboot, like the mounts).
pub const STATE_DIR: &str = "/run/vmrescue";
pub const STATE_SCHEMA_VERSION: u32 = 1;

pub fn state_dir() -> PathBuf {
    std::env::var_os("VMRESCUE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(STATE_DIR))
}

/// One thing vmrescue did that must be undone on `umount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// A directory vmrescue created (removed if empty on umount).
    CreatedDir { path: PathBuf },
    /// A loop device attached for an image file.
    LoopAttached { device: PathBuf, image: PathBuf },
    /// A target VG given new UUIDs and a temporary name (vgimportclone)
    /// because the host has a VG of the same name; recorded with the
    /// identity umount puts back, before anything changes.
    VgCloned {
        temporary: String,
        identity: super::lvm::VgIdentity,
    },
    /// A target VG activated by vmrescue.
    VgActivated { vg: String, pvs: Vec<String> },
    /// A filesystem mounted by vmrescue.
    Mounted { source: String, path: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct State {
    pub version: u32,
    /// Names the target (disk name or image stem); also the file name.
    pub key: String,
    pub mount_root: PathBuf,
    pub pid: u32,
    pub steps: Vec<Step>,
    /// Set once everything is mounted.
    #[serde(default)]
    pub layout: Option<super::Layout>,
    /// Left mounted on purpose by `vmrescue mount`.
    #[serde(default)]
    pub kept: bool,
}

/// A state file on disk, rewritten atomically on every change.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    pub state: State,
}

impl StateFile {
    pub fn create(key: &str, mount_root: &Path) -> Result<Self> {
        let dir = state_dir();
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let path = dir.join(format!("{key}.json"));
        if path.exists() {
            anyhow::bail!(
                "{} exists: the target `{key}` is already mounted by vmrescue (run `vmrescue umount` first)",
                path.display()
            );
        }
        let file = StateFile {
            path,
            state: State {
                version: STATE_SCHEMA_VERSION,
                key: key.to_string(),
                mount_root: mount_root.to_path_buf(),
                pid: std::process::id(),
                steps: Vec::new(),
                layout: None,
                kept: false,
            },
        };
        file.save()?;
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading state file {}", path.display()))?;
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("parsing state file {}", path.display()))?;
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
        })
    }

    /// All state files, oldest key first.
    pub fn list() -> Result<Vec<PathBuf>> {
        let dir = state_dir();
        let mut paths = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let path = entry
                        .with_context(|| format!("listing {}", dir.display()))?
                        .path();
                    if path.extension().is_some_and(|e| e == "json") {
                        paths.push(path);
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
        }
        paths.sort();
        Ok(paths)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a step before it is carried out.
    pub fn push(&mut self, step: Step) -> Result<()> {
        self.state.steps.push(step);
        self.save()
    }

    /// Forgets the last step (after it was undone).
    pub fn pop(&mut self) -> Result<Option<Step>> {
        let step = self.state.steps.pop();
        self.save()?;
        Ok(step)
    }

    pub fn remove(self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing state file {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }

    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.state).context("serialising state")?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().with_context(|| format!("writing state file {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("VMRESCUE_STATE_DIR", dir.path());
        let mut file = StateFile::create("sdc-test", Path::new("/mnt/vmrescue/sdc")).unwrap();
        file.push(Step::LoopAttached {
            device: "/dev/loop3".into(),
            image: "/x.img".into(),
        })
        .unwrap();
        file.push(Step::Mounted {
            source: "/dev/loop3p2".into(),
            path: "/mnt/vmrescue/sdc".into(),
        })
        .unwrap();
        assert!(
            StateFile::create("sdc-test", Path::new("/x")).is_err(),
            "a second mount of the same target is refused"
        );
        let loaded = StateFile::load(file.path()).unwrap();
        assert_eq!(loaded.state.steps, file.state.steps);
        assert!(StateFile::list()
            .unwrap()
            .contains(&file.path().to_path_buf()));
        file.remove().unwrap();
    }
}
