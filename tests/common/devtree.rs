//! Lays out a recorded sysfs + /dev shape (`tests/fixtures/azure-disks/*.tree`)
//! in a directory, for `VMRESCUE_DEVICE_ROOT` and `disk::azure::read_layout`.
//! Shared by the library's unit tests (`#[path]`) and the integration tests.
//!
//! One entry a line, paths relative to the root:
//! `PATH -> TARGET` a symlink, `PATH = TEXT` a file holding TEXT and a
//! newline (as sysfs attributes read), `PATH/` a directory; `#` comments.
//! `@ROOTDEV@` becomes the `MAJ:MIN` of this machine's `/` (so the reader's
//! walk from `/` lands in the fake tree). `NODE -> @DISK@` is the device
//! node of the repair disk: a link to the `disk` argument (a real loop
//! device in the payload tests), or with `disk` empty a plain file that
//! stands for itself.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn lay_out(tree: &str, root: &Path, disk: &str) {
    let dev = std::fs::metadata("/").unwrap().dev();
    let rootdev = format!("{}:{}", libc::major(dev), libc::minor(dev));
    for line in tree.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.replace("@ROOTDEV@", &rootdev);
        let line = match line.strip_suffix(" -> @DISK@") {
            Some(node) if disk.is_empty() => format!("{node} = repair disk node"),
            _ => line.replace("@DISK@", disk),
        };
        let make_parent = |path: &Path| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        };
        if let Some((path, target)) = line.split_once(" -> ") {
            let path = root.join(path);
            make_parent(&path);
            std::os::unix::fs::symlink(target, &path).unwrap();
        } else if let Some((path, text)) = line.split_once(" = ") {
            let path = root.join(path);
            make_parent(&path);
            std::fs::write(&path, format!("{text}\n")).unwrap();
        } else if let Some(path) = line.strip_suffix('/') {
            std::fs::create_dir_all(root.join(path)).unwrap();
        } else {
            panic!("unknown tree line: {line}");
        }
    }
}

/// A fixture's text by name (`nvme-by-lun`).
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/azure-disks/{name}.tree",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
