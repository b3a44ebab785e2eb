//! `inspect` snapshots, compared with the expected JSON in
//! tests/fixtures/inspect/: trees assembled from the real boot fixtures in
//! tests/fixtures/boot plus each distribution's os-release and fstab, and
//! the whole captured trees in tests/fixtures/trees (see
//! tests/fixtures/boot/README.md for the sources of both).
//! `UPDATE_SNAPSHOTS=1 cargo test --test inspect_snapshots` rewrites them
//! after a reviewed change.

use std::path::{Path, PathBuf};

use vmrescue::inspect::snapshot::snapshot;
use vmrescue::rootfs::RootDir;

struct Tree {
    name: &'static str,
    os_release: &'static str,
    fstab: &'static str,
    /// (fixture file or dir under tests/fixtures/boot, destination in the tree)
    boot_files: &'static [(&'static str, &'static str)],
}

const TREES: &[Tree] = &[
    Tree {
        name: "rhel8",
        os_release: "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.0 (Ootpa)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.0\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 8.0 (Ootpa)\"\n",
        fstab: "/dev/mapper/rhel-root / xfs defaults 0 0\n",
        boot_files: &[("rhel8/grub.cfg", "boot/grub2/grub.cfg"), ("rhel8/grubenv", "boot/grub2/grubenv"), ("rhel8/loader", "boot/loader")],
    },
    Tree {
        name: "rocky8",
        os_release: "NAME=\"Rocky Linux\"\nVERSION=\"8.10 (Green Obsidian)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.10\"\nPRETTY_NAME=\"Rocky Linux 8.10 (Green Obsidian)\"\n",
        fstab: "UUID=2f64394d-a847-4c1a-bda9-e658edc017ad / xfs defaults 0 0\n",
        boot_files: &[("rocky8/grub.cfg", "boot/grub2/grub.cfg"), ("rocky8/grubenv", "boot/grub2/grubenv"), ("rocky8/loader", "boot/loader")],
    },
    Tree {
        name: "rhel7",
        os_release: "NAME=\"Red Hat Enterprise Linux Server\"\nVERSION=\"7.2 (Maipo)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"7.2\"\nPRETTY_NAME=\"Red Hat Enterprise Linux Server 7.2 (Maipo)\"\n",
        fstab: "/dev/mapper/rhel_team--area--222-root / xfs defaults 0 0\n",
        boot_files: &[("rhel7/grub.cfg", "boot/grub2/grub.cfg"), ("rhel7/grubenv", "boot/grub2/grubenv")],
    },
    Tree {
        name: "ubuntu2404",
        os_release: "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n",
        fstab: "/dev/mapper/ubuntu--otus-ubuntu--lv / ext4 defaults 0 1\n",
        boot_files: &[("ubuntu2404/grub.cfg", "boot/grub/grub.cfg"), ("ubuntu2404/grubenv", "boot/grub/grubenv")],
    },
    // Planted problem: fstab mounts / from another UUID than root= names.
    Tree {
        name: "sles15",
        os_release: "NAME=\"SLES\"\nVERSION=\"15-SP4\"\nVERSION_ID=\"15.4\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP4\"\nID=\"sles\"\nID_LIKE=\"suse\"\n",
        fstab: "UUID=d2c5c4f1-5e1a-4b52-9d0e-3f9a3b7a8c11 / btrfs defaults 0 0\n",
        boot_files: &[("sles15/grub.cfg", "boot/grub2/grub.cfg"), ("sles15/grubenv", "boot/grub2/grubenv")],
    },
    Tree {
        name: "fedora-submenu",
        os_release: "NAME=Fedora\nVERSION=\"17 (Beefy Miracle)\"\nID=fedora\nVERSION_ID=17\nPRETTY_NAME=\"Fedora 17 (Beefy Miracle)\"\n",
        fstab: "/dev/mapper/vg_pjones5-lv_root / ext4 defaults 1 1\n",
        boot_files: &[("fedora/grub.cfg", "boot/grub2/grub.cfg")],
    },
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        let mut entries: Vec<_> = std::fs::read_dir(from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            copy(&entry, &to.join(entry.file_name().unwrap()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// Kernel versions the boot files name (`vmlinuz-<version>`).
fn kernel_versions(tree: &Path) -> Vec<String> {
    let re = regex::Regex::new(r"vmlinuz-([0-9][^\s'\x22]*)").unwrap();
    let mut versions = Vec::new();
    for entry in walkdir::WalkDir::new(tree.join("boot")).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
            for cap in re.captures_iter(&text) {
                if !versions.contains(&cap[1].to_string()) {
                    versions.push(cap[1].to_string());
                }
            }
        }
    }
    versions
}

fn build(tree: &Tree, dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/os-release"), tree.os_release).unwrap();
    std::fs::write(dir.join("etc/fstab"), tree.fstab).unwrap();
    for (from, to) in tree.boot_files {
        copy(&fixtures().join("boot").join(from), &dir.join(to));
    }
    let debian = tree.name.starts_with("ubuntu");
    let suse = tree.name.starts_with("sles");
    for version in kernel_versions(dir) {
        std::fs::write(dir.join(format!("boot/vmlinuz-{version}")), "kernel").unwrap();
        let modules = dir.join(format!("lib/modules/{version}"));
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(modules.join("modules.dep"), "").unwrap();
        let initramfs = if debian {
            format!("boot/initrd.img-{version}")
        } else if suse {
            format!("boot/initrd-{version}")
        } else {
            format!("boot/initramfs-{version}.img")
        };
        std::fs::write(dir.join(initramfs), "initramfs").unwrap();
    }
}

/// Compares (or, with UPDATE_SNAPSHOTS, rewrites) the snapshot of `dir`;
/// returns the difference, if any.
fn compare(name: &str, dir: &Path) -> Option<String> {
    let snap = snapshot(&RootDir::open(dir).unwrap()).unwrap();
    // Through a Value: keys sorted, as the stored snapshots are.
    let value = serde_json::to_value(&snap).unwrap();
    let actual = serde_json::to_string_pretty(&value).unwrap() + "\n";
    let expected_path = fixtures().join(format!("inspect/{name}.json"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            expected_path.display()
        )
    });
    (expected != actual).then(|| {
        format!(
            "{name}:\n{}",
            similar::TextDiff::from_lines(&expected, &actual).unified_diff()
        )
    })
}

#[test]
fn inspect_snapshots_match_the_expected_json() {
    let mut mismatches = Vec::new();
    for tree in TREES {
        let dir = tempfile::tempdir().unwrap();
        build(tree, dir.path());
        mismatches.extend(compare(tree.name, dir.path()));
    }
    assert!(
        mismatches.is_empty(),
        "snapshots differ:\n{}",
        mismatches.join("\n")
    );
}

fn set_mtime(path: &Path, seconds: i64) {
    let t = nix::sys::time::TimeSpec::new(seconds, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Copies a captured tree. Its kernels and initramfs files are stored
/// empty; here they get a few bytes (an empty initramfs is a finding of its
/// own) and mtimes newer than their modules.dep, as after a clean install.
fn materialize(from: &Path, to: &Path) {
    copy(from, to);
    for entry in walkdir::WalkDir::new(to).sort_by_file_name() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !entry.file_type().is_file() {
            continue;
        }
        let in_boot = path.parent() == Some(&to.join("boot"));
        if in_boot && (name.starts_with("vmlinuz-") || name.starts_with("initr")) {
            std::fs::write(
                path,
                if name.starts_with("vmlinuz-") {
                    "kernel"
                } else {
                    "initramfs"
                },
            )
            .unwrap();
            set_mtime(path, 2_000_000_000);
        } else if name == "modules.dep" {
            set_mtime(path, 1_900_000_000);
        }
    }
}

#[test]
fn captured_trees_match_the_expected_json() {
    let trees = fixtures().join("trees");
    let mut names: Vec<String> = std::fs::read_dir(&trees)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 11, "captured trees missing: {names:?}");
    let mut mismatches = Vec::new();
    for name in &names {
        let dir = tempfile::tempdir().unwrap();
        materialize(&trees.join(name), dir.path());
        mismatches.extend(compare(name, dir.path()));
    }
    assert!(
        mismatches.is_empty(),
        "snapshots differ:\n{}",
        mismatches.join("\n")
    );
}
