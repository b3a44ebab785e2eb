//! Every parser of untrusted input under arbitrary input: it must never
//! panic, and the editable formats must render back byte-identical.
//! `scripts/fuzz` runs this with 100,000 cases per property
//! (`PROPTEST_CASES`); `cargo test` runs proptest's default of 256.

use proptest::prelude::*;
use vmrescue::inspect::{
    bls, cmdline, default_grub, grub_cfg, grubenv, kdump_conf, loader_conf, os, sysctl,
};

/// Text that looks like config files: printable characters, the syntax
/// characters of every format, line ends, and some invalid UTF-8 made lossy.
fn config_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(\\PC|[\n\r\t '\"\\\\$`=#;(){}\\[\\]<>|&*?!~,:.@-]){0,400}",
        proptest::collection::vec(any::<u8>(), 0..400)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}

/// JSON-ish text: structural characters, strings, numbers and nulls.
fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\[\\]{}\",:0-9a-z \n\\\\-]{0,300}",
        r#"\{"(blockdevices|report)": \[(\{"[a-z_]{1,10}": ("[a-z0-9/]{0,8}"|[0-9]{1,4}|null|true|\[\]|\{\})\},?){0,5}\]\}"#,
    ]
}

proptest! {
    #[test]
    fn grub_cfg_never_panics_and_round_trips(text in config_text()) {
        let cfg = grub_cfg::GrubCfg::parse(&text);
        prop_assert_eq!(cfg.render(), text.as_str());
        let _ = cfg.entries_with_ids();
    }

    #[test]
    fn default_grub_never_panics_and_round_trips(text in config_text()) {
        prop_assert_eq!(default_grub::DefaultGrub::parse(&text).render(), text.as_str());
    }

    #[test]
    fn bls_entries_never_panic_and_round_trip(text in config_text()) {
        let entry = bls::BlsEntry::parse("x.conf", &text);
        prop_assert_eq!(entry.render(), text.as_str());
        let _ = entry.summary();
    }

    #[test]
    fn loader_conf_never_panics_and_round_trips(text in config_text()) {
        let conf = loader_conf::LoaderConf::parse(&text);
        prop_assert_eq!(conf.render(), text.as_str());
        let _ = conf.default_pattern();
    }

    #[test]
    fn kdump_conf_never_panics_and_round_trips(text in config_text()) {
        prop_assert_eq!(kdump_conf::KdumpConf::parse(&text).render(), text.as_str());
    }

    #[test]
    fn kernel_command_lines_never_panic_and_round_trip(text in config_text()) {
        let line = cmdline::KernelCmdline::parse(&text);
        prop_assert_eq!(line.to_string(), text);
    }

    #[test]
    fn grubenv_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(env) = grubenv::Grubenv::parse(&bytes) {
            let _ = env.render();
        }
    }

    #[test]
    fn grubenv_boot_view_never_panics(tail in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'='), Just(b'\\'), Just(b'#'), any::<u8>()], 0..1500)) {
        let mut bytes = grubenv::SIGNATURE.as_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        let env = grubenv::Grubenv::parse(&bytes).unwrap();
        let _ = env.boot_env().get("saved_entry");
    }

    #[test]
    fn grub_defaults_merge_never_panics(a in config_text(), b in config_text()) {
        let files: Vec<_> = [("/etc/default/grub", &a), ("/etc/default/grub.d/50.cfg", &b)]
            .into_iter()
            .map(|(path, text)| default_grub::SourcedFile { path: path.to_string(), file: default_grub::DefaultGrub::parse(text) })
            .collect();
        let merged = default_grub::GrubSettings::merge(&files);
        let _ = merged.value("GRUB_CMDLINE_LINUX");
        for file in &files {
            prop_assert_eq!(&file.file.render(), if file.path.ends_with("grub") { &a } else { &b });
        }
    }

    #[test]
    fn sysctl_lines_never_panic(text in config_text()) {
        for line in text.lines() {
            let _ = sysctl::parse_line(line);
        }
    }

    #[test]
    fn os_release_never_panics(text in config_text(), key in "[A-Z_]{1,12}") {
        let _ = os::os_release_value(&text, &key);
    }

    #[test]
    fn fstab_plans_never_panic(text in config_text()) {
        let _ = vmrescue::attach::fstab_mounts::plan(&text, &[], &[]);
    }

    #[test]
    fn lsblk_and_lvm_json_never_panic(text in json_text()) {
        let _ = vmrescue::disk::lsblk::parse(&text);
        let _ = vmrescue::attach::lvm::parse_pvs(&text);
        let _ = vmrescue::attach::lvm::parse_lvs(&text);
    }

    #[test]
    fn blkid_export_never_panics(text in config_text()) {
        let _ = vmrescue::disk::blkid::parse_export(&text);
    }

    #[test]
    fn console_logs_never_panic(text in config_text()) {
        let mut classifier = vmrescue::diagnose::Classifier::new().unwrap();
        classifier.add_reader(text.as_bytes(), "fuzz").unwrap();
        let _ = classifier.finish().unwrap();
    }
}
