//! Fixture trees for `--root` runs: writing files, and a snapshot of every
//! byte, mode, owner and extended attribute to compare before and after.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `content` at `path` below `root`, creating directories.
pub fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A writable copy of `tests/fixtures/trees/NAME` at `DIR/root`.
pub fn copy_fixture_tree(name: &str, dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/trees")
                .join(name),
        )
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success(), "copying fixture tree {name}");
    root
}

/// A file of tests/fixtures.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap()
}

/// Content (a link's target for symlinks), mode, owner, group and extended
/// attributes of every entry, except the journal (which undo keeps as the
/// record of what it did).
pub type TreeState = BTreeMap<PathBuf, (Vec<u8>, u32, u32, u32, Vec<(String, Vec<u8>)>)>;

pub fn tree_state(root: &Path) -> TreeState {
    let mut state = TreeState::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        if rel.starts_with("var/lib/vmrescue") {
            continue;
        }
        let meta = entry.path().symlink_metadata().unwrap();
        let content = if meta.is_file() {
            std::fs::read(entry.path()).unwrap()
        } else if meta.file_type().is_symlink() {
            std::fs::read_link(entry.path())
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        state.insert(
            rel,
            (
                content,
                meta.mode(),
                meta.uid(),
                meta.gid(),
                xattrs(entry.path()),
            ),
        );
    }
    state
}

fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let out = Command::new("getfattr")
        .args(["--absolute-names", "-d", "-m", "-", "-e", "hex", "-h"])
        .arg(path)
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Paths (as `/path` in the target) added, removed or changed between two states.
pub fn changed_paths(before: &TreeState, after: &TreeState) -> Vec<String> {
    let mut paths: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| format!("/{}", p.display()))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// A command's stdout parsed as JSON; the whole output in the panic otherwise.
pub fn json(out: &Output) -> serde_json::Value {
    super::data_of_any(out)
}
