//! Repair recipes: loading the catalog, planning, applying through the
//! journal, verifying by inspecting again.

pub mod actions;
pub mod bootloader;
pub mod engine;
pub mod facts;
pub mod fix_mounts;
pub mod free_space;
pub mod kdump;
pub mod leaks;
pub mod lvm_devices;
pub mod nvme_ready;
pub mod plan;
pub mod relabel;
pub mod repair;
pub mod serial_console;
pub mod spec;

use std::path::Path;

use anyhow::{Context, Result};

use crate::error::Failure;
pub use spec::RecipeSpec;

/// The recipes shipped inside the binary (so the static binary is self-contained).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "older-kernel.toml",
        include_str!("../../recipes/older-kernel.toml"),
    ),
    (
        "rebuild-initramfs.toml",
        include_str!("../../recipes/rebuild-initramfs.toml"),
    ),
    (
        "fix-root-fs.toml",
        include_str!("../../recipes/fix-root-fs.toml"),
    ),
    (
        "cgroup-nokmem.toml",
        include_str!("../../recipes/cgroup-nokmem.toml"),
    ),
    (
        "panic-on-oom.toml",
        include_str!("../../recipes/panic-on-oom.toml"),
    ),
    (
        "panic-autoreboot.toml",
        include_str!("../../recipes/panic-autoreboot.toml"),
    ),
    (
        "remove-faulty-modules.toml",
        include_str!("../../recipes/remove-faulty-modules.toml"),
    ),
    (
        "panic-knobs.toml",
        include_str!("../../recipes/panic-knobs.toml"),
    ),
    (
        "enable-kdump.toml",
        include_str!("../../recipes/enable-kdump.toml"),
    ),
    (
        "kdump-hyperv.toml",
        include_str!("../../recipes/kdump-hyperv.toml"),
    ),
    (
        "lvm-devices.toml",
        include_str!("../../recipes/lvm-devices.toml"),
    ),
    (
        "nvme-ready.toml",
        include_str!("../../recipes/nvme-ready.toml"),
    ),
    (
        "bootloader.toml",
        include_str!("../../recipes/bootloader.toml"),
    ),
    (
        "fix-mounts.toml",
        include_str!("../../recipes/fix-mounts.toml"),
    ),
    (
        "enable-serial-console.toml",
        include_str!("../../recipes/enable-serial-console.toml"),
    ),
    (
        "selinux-relabel.toml",
        include_str!("../../recipes/selinux-relabel.toml"),
    ),
    (
        "free-space.toml",
        include_str!("../../recipes/free-space.toml"),
    ),
];

/// A writable copy of a fixture tree from tests/fixtures/trees.
#[cfg(test)]
pub(crate) fn fixture_copy(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trees")
        .join(name);
    let dir = tempfile::tempdir().expect("a temporary directory");
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.expect("a readable fixture tree");
        let rel = entry.path().strip_prefix(&src).expect("inside the fixture");
        let dest = dir.path().join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("a directory in the copy");
        } else {
            std::fs::copy(entry.path(), &dest).expect("a file in the copy");
        }
    }
    dir
}

#[derive(Debug, Clone)]
pub struct Recipe {
    pub spec: RecipeSpec,
    /// `embedded:NAME` or the file path it came from.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub recipes: Vec<Recipe>,
}

impl Catalog {
    /// The embedded recipes, plus (overriding by id) those in `extra_dir`.
    pub fn load(extra_dir: Option<&Path>) -> Result<Catalog> {
        let mut recipes = Vec::new();
        for (name, text) in EMBEDDED {
            let source = format!("embedded:recipes/{name}");
            recipes.push(Recipe {
                spec: spec::parse(&source, text)?,
                source,
            });
        }
        if let Some(dir) = extra_dir {
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .with_context(|| format!("listing recipes directory {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let source = path.display().to_string();
                let recipe = Recipe {
                    spec: spec::parse(&source, &text)?,
                    source,
                };
                recipes.retain(|r| r.spec.id != recipe.spec.id);
                recipes.push(recipe);
            }
        }
        recipes.sort_by(|a, b| (a.spec.order, &a.spec.id).cmp(&(b.spec.order, &b.spec.id)));
        Ok(Catalog { recipes })
    }

    pub fn get(&self, id: &str) -> Result<&Recipe> {
        self.recipes
            .iter()
            .find(|r| r.spec.id == id)
            .ok_or_else(|| {
                let ids: Vec<&str> = self.recipes.iter().map(|r| r.spec.id.as_str()).collect();
                Failure::Usage(format!("no recipe `{id}` (known: {})", ids.join(", "))).into()
            })
    }
}

/// The ids of the recipes shipped inside the binary (each file is named
/// after its id), for shell completion.
pub fn embedded_ids() -> Vec<&'static str> {
    EMBEDDED
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".toml"))
        .collect()
}

/// Every parameter name of the built-in recipes, sorted (for completions).
pub fn embedded_param_names() -> Vec<String> {
    let mut names: Vec<String> = Catalog::load(None)
        .map(|c| {
            c.recipes
                .iter()
                .flat_map(|r| r.spec.params.keys().cloned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_recipes_all_load() {
        let catalog = Catalog::load(None).unwrap();
        let ids: Vec<&str> = catalog.recipes.iter().map(|r| r.spec.id.as_str()).collect();
        for id in [
            "older-kernel",
            "rebuild-initramfs",
            "fix-root-fs",
            "fix-mounts",
            "cgroup-nokmem",
            "remove-faulty-modules",
            "panic-on-oom",
            "panic-autoreboot",
            "panic-knobs",
            "enable-kdump",
            "kdump-hyperv",
        ] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
    }

    /// A TOML added to recipes/ but not to [`EMBEDDED`] would ship nowhere.
    #[test]
    fn embedded_list_is_exactly_the_recipes_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "recipes/ and EMBEDDED in src/recipe/mod.rs differ"
        );
        for (name, text) in EMBEDDED {
            assert_eq!(
                std::fs::read_to_string(dir.join(name)).unwrap(),
                *text,
                "{name} is embedded under the wrong name"
            );
        }
    }

    #[test]
    fn recipes_dir_overrides_by_id_and_bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let text = EMBEDDED[3].1.replace(
            "title = \"Add cgroup.memory=nokmem",
            "title = \"Custom nokmem",
        );
        std::fs::write(dir.path().join("mine.toml"), text).unwrap();
        let catalog = Catalog::load(Some(dir.path())).unwrap();
        assert!(catalog
            .get("cgroup-nokmem")
            .unwrap()
            .spec
            .title
            .starts_with("Custom"));
        std::fs::write(dir.path().join("zz-bad.toml"), "id = \"x\"\nbogus = 1\n").unwrap();
        let err = format!("{:#}", Catalog::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("zz-bad.toml") && err.contains("line"), "{err}");
    }

    #[test]
    fn unknown_recipe_is_a_usage_error_listing_the_known_ones() {
        let catalog = Catalog::load(None).unwrap();
        let err = catalog.get("nope").unwrap_err();
        assert_eq!(crate::exit_code_for(&err), crate::ExitCode::Usage);
        assert!(format!("{err}").contains("older-kernel"));
    }
}
