//! Helpers shared by the library's unit tests.

/// A temporary directory holding `files` (paths relative to it, parents
/// made as needed), as a target root for a test.
pub fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, bytes) in files {
        let full = dir.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("creating a test directory");
        }
        std::fs::write(full, bytes).expect("writing a test file");
    }
    dir
}
