//! The JSON Schemas of every command's envelope, generated from the types
//! the commands serialize, and the test that keeps `docs/schema/` equal to
//! them. Regenerate with
//! `VMRESCUE_WRITE_SCHEMAS=1 cargo test --bin vmrescue schemas`.

use std::path::{Path, PathBuf};

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::Serialize;

use super::data as d;
use crate::output::json::{Envelope, VERSION};

fn envelope<T: Serialize + JsonSchema + 'static>(verb: &str) -> Schema {
    // What the commands write, so the serialize side of serde's attributes
    // (skipped empty fields are optional) decides.
    let mut schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Envelope<'static, T>>();
    schema.insert(
        "$id".into(),
        format!("https://vmrescue.dev/schema/v{VERSION}/{verb}.schema.json").into(),
    );
    // Pin what this file is for: its verb and the envelope version.
    if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        properties.insert("command".into(), serde_json::json!({ "const": verb }));
        properties.insert("version".into(), serde_json::json!({ "const": VERSION }));
    }
    schema
}

/// Every verb with the schema of what `--json` prints for it.
pub(crate) fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("wizard", envelope::<()>("wizard")),
        ("scan", envelope::<d::ScanData<'static>>("scan")),
        ("mount", envelope::<vmrescue::attach::Layout>("mount")),
        ("umount", envelope::<d::Unmounted>("umount")),
        ("chroot", envelope::<()>("chroot")),
        ("fsck", envelope::<d::FsckReport>("fsck")),
        ("inspect", envelope::<d::InspectReport>("inspect")),
        ("plan", envelope::<d::RepairData>("plan")),
        ("repair", envelope::<d::RepairData>("repair")),
        (
            "diagnose",
            envelope::<vmrescue::diagnose::Diagnosis>("diagnose"),
        ),
        (
            "verify",
            envelope::<vmrescue::verify_boot::VerifyReport>("verify"),
        ),
        ("undo", envelope::<d::Undone>("undo")),
        ("history", envelope::<d::History>("history")),
        ("recipes", envelope::<d::RecipesData<'static>>("recipes")),
        ("az-payload", envelope::<d::Payload>("az-payload")),
        ("az-fleet", envelope::<d::FleetData>("az-fleet")),
        ("report", envelope::<d::Bundle>("report")),
        ("completions", envelope::<d::DocsData>("completions")),
        ("man", envelope::<d::DocsData>("man")),
    ]
}

pub(crate) fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

/// The files' text, as committed.
pub(crate) fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// FNV-1a over every schema: a change to any of them changes it, and it is
/// the same on every machine and Rust version (unlike `DefaultHasher`).
pub(crate) fn fingerprint(schemas: &[(&str, Schema)]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (verb, schema) in schemas {
        for byte in verb.bytes().chain(render(schema).bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::VERBS;

    /// `docs/schema/VERSIONS`: one `VERSION FINGERPRINT` line per envelope
    /// version. A schema change without a version bump changes the
    /// fingerprint of a version already recorded, and this test says so.
    #[test]
    fn schemas_are_current_and_versioned() {
        let schemas = all();
        let verbs: Vec<&str> = schemas.iter().map(|(v, _)| *v).collect();
        assert_eq!(verbs, VERBS, "one schema per verb");
        let print = fingerprint(&schemas);
        let versions_path = dir().join("VERSIONS");
        let versions = std::fs::read_to_string(&versions_path).unwrap_or_default();
        let recorded = versions
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(v, _)| v.parse() == Ok(VERSION))
            .map(|(_, f)| f.trim().to_string());
        let write = std::env::var_os("VMRESCUE_WRITE_SCHEMAS").is_some();
        if write {
            assert!(
                recorded.as_deref().is_none_or(|r| r == print),
                "the schemas changed but the envelope version is still {VERSION}: bump output::json::VERSION"
            );
            std::fs::create_dir_all(dir()).unwrap();
            for (verb, schema) in &schemas {
                std::fs::write(dir().join(format!("{verb}.schema.json")), render(schema)).unwrap();
            }
            if recorded.is_none() {
                std::fs::write(&versions_path, format!("{versions}{VERSION} {print}\n")).unwrap();
            }
            return;
        }
        assert_eq!(
            recorded.as_deref(),
            Some(print.as_str()),
            "the schemas of envelope version {VERSION} changed: bump output::json::VERSION, then regenerate with VMRESCUE_WRITE_SCHEMAS=1 cargo test --bin vmrescue schemas"
        );
        for (verb, schema) in &schemas {
            let path = dir().join(format!("{verb}.schema.json"));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                committed,
                render(schema),
                "{} is stale: regenerate with VMRESCUE_WRITE_SCHEMAS=1 cargo test --bin vmrescue schemas",
                path.display()
            );
        }
    }
}
