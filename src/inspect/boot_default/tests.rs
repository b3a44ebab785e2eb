use super::super::bls::BlsEntry;
use super::super::default_grub::{DefaultGrub, SourcedFile};
use super::grub::test_condition;
use super::*;
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/boot/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}
fn block(vars: &str) -> Grubenv {
    let mut b = format!("# GRUB Environment Block\n{vars}").into_bytes();
    b.resize(1024, b'#');
    Grubenv::parse(&b).unwrap()
}
fn bls_dir(dir: &str) -> Vec<BlsEntry> {
    let full = format!("{}/tests/fixtures/boot/{dir}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(full)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            BlsEntry::parse(&name, &std::fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}
fn etc_default_grub(text: &str) -> GrubSettings {
    GrubSettings::merge(&[SourcedFile {
        path: super::super::default_grub::PATH.to_string(),
        file: DefaultGrub::parse(text),
    }])
}
fn everything_exists(_: &str) -> bool {
    true
}
fn grub(
    cfg: &GrubCfg,
    env: Option<&Grubenv>,
    default_grub: Option<&GrubSettings>,
    bls: Vec<BlsEntry>,
) -> BootDefault {
    resolve_grub(
        GrubInputs {
            grub_cfg_path: "/boot/grub2/grub.cfg",
            grub_cfg: cfg,
            grubenv_path: env.map(|_| "/boot/grub2/grubenv"),
            grubenv: env,
            default_grub,
            bls_entries: bls,
            bls_dir: BLS_DIR,
        },
        &everything_exists,
    )
}

#[test]
fn ubuntu_saved_entry_as_submenu_path_of_ids() {
    let cfg = GrubCfg::parse(
        &text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"${saved_entry}\""),
    );
    let env = block("saved_entry=gnulinux-advanced-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb>gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb\n");
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
    assert_eq!(
        r.entry.title.as_deref(),
        Some("Ubuntu, with Linux 6.8.0-88-generic (recovery mode)")
    );
    assert_eq!(r.entry.kernel_version.as_deref(), Some("6.8.0-88-generic"));
    assert_eq!(
        r.entry.root.as_deref(),
        Some("/dev/mapper/ubuntu--otus-ubuntu--lv")
    );
    assert!(r
        .entry
        .cmdline
        .as_deref()
        .unwrap()
        .ends_with("recovery nomodeset dis_ucode_ldr"));
    assert_eq!(
        r.decided_by,
        ["/boot/grub2/grub.cfg", "/boot/grub2/grubenv"]
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn ubuntu_index_and_title_paths_and_next_entry_one_shot() {
    let cfg = GrubCfg::parse(&text("ubuntu2404/grub.cfg"));
    let env = Grubenv::parse(&fixture("ubuntu2404/grubenv")).unwrap();
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(
        r.next_entry.as_deref(),
        Some("gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb")
    );
    // next_entry names an entry inside the submenu without its path: GRUB falls back to 0.
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("inside submenu \"Advanced options for Ubuntu\"")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.after_next_entry.unwrap().title.as_deref(), Some("Ubuntu"));

    let cfg = GrubCfg::parse(
        &text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"1>0\""),
    );
    let r = grub(&cfg, None, None, vec![]);
    assert_eq!(
        r.entry.title.as_deref(),
        Some("Ubuntu, with Linux 6.8.0-88-generic")
    );
    let cfg = GrubCfg::parse(&text("ubuntu2404/grub.cfg").replace(
            "set default=\"0\"",
            "set default=\"Advanced options for Ubuntu>Ubuntu, with Linux 6.8.0-88-generic (recovery mode)\"",
        ));
    let r = grub(&cfg, None, None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
}

#[test]
fn rhel7_title_saved_entry_and_stale_title_fallback() {
    let cfg = GrubCfg::parse(&text("rhel7/grub.cfg"));
    let env =
        block("saved_entry=Red Hat Enterprise Linux Server (3.10.0-327.el7.x86_64) 7.2 (Maipo)\n");
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("1"));
    assert_eq!(
        r.entry.kernel_version.as_deref(),
        Some("3.10.0-327.el7.x86_64")
    );
    assert_eq!(
        r.entry.root.as_deref(),
        Some("/dev/mapper/rhel_team--area--222-root")
    );

    // grubby's fixture: saved_entry carries a title that no longer exists.
    let env = Grubenv::parse(&fixture("rhel7/grubenv")).unwrap();
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("falls back to entry 0")));
}

#[test]
fn rhel8_expanded_bls_menu_with_saved_id_and_kernelopts() {
    let cfg = GrubCfg::parse(&text("rhel8/grub.cfg"));
    let env = Grubenv::parse(&fixture("rhel8/grubenv")).unwrap();
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(
        r.entry.id.as_deref(),
        Some("8e15296c9cc14deb9e3f8548d49fd6fc-4.18.0-80.el8.ppc64le")
    );
    assert_eq!(r.entry.menu_path.as_deref(), Some("1"));
    assert_eq!(r.entry.root.as_deref(), Some("/dev/mapper/rhel-root"));
    assert_eq!(r.entry.initramfs, ["/initramfs-4.18.0-80.el8.ppc64le.img"]);
    assert_eq!(
        r.entry.image_path.as_deref(),
        Some("/boot/vmlinuz-4.18.0-80.el8.ppc64le")
    );
}

#[test]
fn rhel9_blscfg_saved_entry_is_bls_id_and_grubby_agrees() {
    let cfg = GrubCfg::parse(
            "load_env -f ${config_directory}/grubenv\nif [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\nelse\n   set default=\"${saved_entry}\"\nfi\ninsmod blscfg\nblscfg\n",
        );
    let env = block("saved_entry=7b92728670d64c65879a91ae405012ed-4.18.0-553.el8_10.x86_64\nkernelopts=root=UUID=2f64 ro crashkernel=auto\n");
    let r = grub(&cfg, Some(&env), None, bls_dir("rocky8/loader/entries"));
    assert_eq!(
        r.entry.menu_path.as_deref(),
        Some("1"),
        "blscfg lists the newer 553.22.1 first"
    );
    assert_eq!(
        r.entry.cmdline.as_deref(),
        Some("root=UUID=2f64 ro crashkernel=auto ")
    );
    assert_eq!(
        r.grubby_default_kernel.as_deref(),
        Some("/boot/vmlinuz-4.18.0-553.el8_10.x86_64")
    );
    assert!(r
        .decided_by
        .iter()
        .any(|d| d.ends_with("7b92728670d64c65879a91ae405012ed-4.18.0-553.el8_10.x86_64.conf")));

    let env = block("saved_entry=7b92728670d64c65879a91ae405012ed-4.18.0-477.el8_8.x86_64\n");
    let r = grub(&cfg, Some(&env), None, bls_dir("rocky8/loader/entries"));
    assert_eq!(
        r.entry.kernel_version.as_deref(),
        Some("4.18.0-553.22.1.el8_10.x86_64")
    );
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("falls back to entry 0")));
    assert!(
        r.warnings.iter().any(|w| w.contains("no root=")),
        "no kernelopts anywhere: {:?}",
        r.warnings
    );
}

#[test]
fn rocky8_grub_default_0_ignores_saved_entry() {
    let cfg = GrubCfg::parse(&text("rocky8/grub.cfg"));
    let env = Grubenv::parse(&fixture("rocky8/grubenv")).unwrap();
    let default_grub = etc_default_grub("GRUB_DEFAULT=0\nGRUB_ENABLE_BLSCFG=true\n");
    let r = grub(
        &cfg,
        Some(&env),
        Some(&default_grub),
        bls_dir("rocky8/loader/entries"),
    );
    assert_eq!(
        r.entry.kernel_version.as_deref(),
        Some("4.18.0-553.22.1.el8_10.x86_64")
    );
    assert_eq!(
        r.entry.root.as_deref(),
        Some("UUID=2f64394d-a847-4c1a-bda9-e658edc017ad")
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("is ignored because GRUB_DEFAULT is 0")),
        "{:?}",
        r.warnings
    );

    let default_grub = etc_default_grub("GRUB_DEFAULT=saved\n");
    let r = grub(
        &cfg,
        Some(&env),
        Some(&default_grub),
        bls_dir("rocky8/loader/entries"),
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("was not regenerated")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn systemd_boot_default_from_loader_conf() {
    let entries = vec![
            BlsEntry::parse("abc-6.1.0.conf", "title Debian\nversion 6.1.0\nlinux /abc/6.1.0/linux\ninitrd /abc/6.1.0/initrd.img-6.1.0\noptions root=UUID=1 ro\n"),
            BlsEntry::parse("abc-6.5.0.conf", "title Debian\nversion 6.5.0\nlinux /abc/6.5.0/linux\noptions root=UUID=2 ro\n"),
        ];
    let conf = LoaderConf::parse("default abc-6.1*\ntimeout 3\n");
    let exists = |p: &str| p == "/boot/efi/abc/6.1.0/linux";
    let r = resolve_systemd_boot(
        "/boot/efi/loader/loader.conf",
        Some(&conf),
        "/boot/efi/loader/entries",
        entries,
        "/boot/efi",
        &exists,
    );
    assert_eq!(r.entry.id.as_deref(), Some("abc-6.1.0.conf"));
    assert_eq!(r.entry.root.as_deref(), Some("UUID=1"));
    assert_eq!(
        r.entry.image_path.as_deref(),
        Some("/boot/efi/abc/6.1.0/linux")
    );
}

#[test]
fn sles15_title_saved_entry_and_btrfs_snapshot_source() {
    let cfg = GrubCfg::parse(&text("sles15/grub.cfg"));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let env = Grubenv::parse(&fixture("sles15/grubenv")).unwrap();
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert_eq!(r.entry.title.as_deref(), Some("SLES 15-SP4"));
    assert_eq!(
        r.entry.kernel_version.as_deref(),
        Some("5.14.21-150400.24.46-default")
    );
    assert_eq!(
        r.entry.initramfs,
        ["/boot/initrd-5.14.21-150400.24.46-default"]
    );
    assert_eq!(
        r.entry.root.as_deref(),
        Some("UUID=3c5b7fb5-8f5c-4d4c-9a2d-3b2a6b1e8f11")
    );
    assert!(!r
        .entry
        .cmdline
        .as_deref()
        .unwrap()
        .contains("extra_cmdline"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    // grub2-set-default with the older kernel's submenu path.
    let env = block("saved_entry=Advanced options for SLES 15-SP4>SLES 15-SP4, with Linux 5.14.21-150400.24.41-default\n");
    let r = grub(&cfg, Some(&env), None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("1>2"));
    assert_eq!(
        r.entry.kernel_version.as_deref(),
        Some("5.14.21-150400.24.41-default")
    );
}

#[test]
fn debian_default_with_a_space_is_not_a_path() {
    // GRUB_DEFAULT="1 >0" as written on a real Debian 12 host: "1 " is neither
    // an index nor a title, so GRUB boots entry 0.
    let cfg = GrubCfg::parse(
        &text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"1 >0\""),
    );
    let r = grub(&cfg, None, None, vec![]);
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("\"1 >0\" names no entry")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn oversized_grub_cfg_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boot/grub/grub.cfg");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(&path)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let err = effective_default(&RootDir::open(dir.path()).unwrap()).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("/boot/grub/grub.cfg") && message.contains("larger than"),
        "{message}"
    );
}

fn put(root: &Path, path: &str, content: &[u8]) {
    let full = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

#[test]
fn effective_default_reads_rhel8_uefi_layout_with_grubenv_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    // RHEL 8 UEFI: the real grub.cfg and grubenv on the ESP, /boot/grub2/grubenv a symlink to it.
    let cfg =
        text("rocky8/grub.cfg").replace("set default=\"0\"", "set default=\"${saved_entry}\"");
    put(r, "/boot/efi/EFI/redhat/grub.cfg", cfg.as_bytes());
    put(
        r,
        "/boot/efi/EFI/redhat/grubenv",
        &fixture("rocky8/grubenv"),
    );
    std::fs::create_dir_all(r.join("boot/grub2")).unwrap();
    std::os::unix::fs::symlink("../efi/EFI/redhat/grubenv", r.join("boot/grub2/grubenv")).unwrap();
    put(
        r,
        "/boot/efi/EFI/BOOT/grub.cfg",
        b"search --fs-uuid --set=dev 2f64\nset prefix=($dev)/grub2\nconfigfile $prefix/grub.cfg\n",
    );
    for e in bls_dir("rocky8/loader/entries") {
        put(
            r,
            &format!("/boot/loader/entries/{}", e.file_name),
            e.render().as_bytes(),
        );
    }
    put(r, "/boot/vmlinuz-4.18.0-553.el8_10.x86_64", b"k");
    put(r, "/boot/initramfs-4.18.0-553.el8_10.x86_64.img", b"i");
    put(
        r,
        "/etc/default/grub",
        b"GRUB_DEFAULT=saved\nGRUB_CMDLINE_LINUX=\"crashkernel=auto\"\n",
    );
    let result = effective_default(&RootDir::open(r).unwrap()).unwrap();
    assert_eq!(
        result.entry.kernel_version.as_deref(),
        Some("4.18.0-553.el8_10.x86_64")
    );
    assert_eq!(
        result.entry.image_path.as_deref(),
        Some("/boot/vmlinuz-4.18.0-553.el8_10.x86_64")
    );
    assert_eq!(
        result.entry.initramfs_paths,
        ["/boot/initramfs-4.18.0-553.el8_10.x86_64.img"]
    );
    assert_eq!(result.decided_by[0], "/boot/efi/EFI/redhat/grub.cfg");
    assert!(result
        .decided_by
        .contains(&"/boot/efi/EFI/redhat/grubenv".to_string()));
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["kernel_version"], "4.18.0-553.el8_10.x86_64");
    assert_eq!(json["bootloader"], "grub");
}

const RECOVERY: &str = "gnulinux-advanced-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb>gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb";

/// ubuntu2404's grub.cfg as GRUB_DEFAULT=saved generates it, with a grubenv of these bytes.
fn saved_default_with_grubenv(bytes: &[u8]) -> BootDefault {
    let cfg = GrubCfg::parse(
        &text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"${saved_entry}\""),
    );
    let env = Grubenv::parse(bytes).unwrap();
    grub(
        &cfg,
        Some(&env),
        Some(&etc_default_grub("GRUB_DEFAULT=saved\n")),
        vec![],
    )
}

fn has_warning(result: &BootDefault, parts: &[&str]) -> bool {
    result
        .warnings
        .iter()
        .any(|w| parts.iter().all(|p| w.contains(p)))
}

#[test]
fn short_grubenv_without_padding_still_gives_its_complete_saved_entry() {
    // GRUB's envblk accepts any size once the signature matches.
    let mut bytes = format!("# GRUB Environment Block\nsaved_entry={RECOVERY}\n").into_bytes();
    bytes.resize(700, b'#');
    let r = saved_default_with_grubenv(&bytes);
    assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
    assert!(
        has_warning(&r, &["/boot/grub2/grubenv: size is 700 bytes"]),
        "{:?}",
        r.warnings
    );
}

#[test]
fn grubenv_cut_inside_saved_entry_boots_entry_0_with_a_warning_naming_the_file() {
    let bytes = format!("# GRUB Environment Block\nsaved_entry={}", &RECOVERY[..40]);
    let r = saved_default_with_grubenv(bytes.as_bytes());
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert_eq!(r.entry.title.as_deref(), Some("Ubuntu"));
    assert!(
        has_warning(&r, &["/boot/grub2/grubenv: ", "cut off", "GRUB drops it"]),
        "{:?}",
        r.warnings
    );
}

#[test]
fn grubenv_garbage_after_the_block_is_read_like_grub_does() {
    let mut bytes = block(&format!("saved_entry={RECOVERY}\n"))
        .render()
        .unwrap();
    // Binary junk with no newline continues the padding line: a comment.
    let mut junk = bytes.clone();
    junk.extend_from_slice(&[0xff, 0x00, b'x', b'=', b'1']);
    let r = saved_default_with_grubenv(&junk);
    assert_eq!(r.entry.menu_path.as_deref(), Some("1>1"));
    assert!(has_warning(&r, &["size is 1029 bytes"]), "{:?}", r.warnings);
    // A later definition after the padding wins at boot.
    bytes.extend_from_slice(b"\nsaved_entry=0\n");
    let r = saved_default_with_grubenv(&bytes);
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert!(
        has_warning(
            &r,
            &["saved_entry is defined more than once", "keeps the last"]
        ),
        "{:?}",
        r.warnings
    );
}

#[test]
fn grubenv_junk_line_swallows_the_next_name_so_saved_entry_is_unset() {
    let mut bytes =
        format!("# GRUB Environment Block\njunk\nsaved_entry={RECOVERY}\n").into_bytes();
    bytes.resize(1024, b'#');
    let r = saved_default_with_grubenv(&bytes);
    assert_eq!(r.entry.menu_path.as_deref(), Some("0"));
    assert!(
        has_warning(
            &r,
            &["/boot/grub2/grubenv: \"junk\"", "saved_entry is not set"]
        ),
        "{:?}",
        r.warnings
    );
}

#[test]
fn grubenv_without_signature_is_ignored_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let cfg =
        text("ubuntu2404/grub.cfg").replace("set default=\"0\"", "set default=\"${saved_entry}\"");
    put(r, "/boot/grub/grub.cfg", cfg.as_bytes());
    put(
        r,
        "/boot/grub/grubenv",
        format!("saved_entry={RECOVERY}\n").as_bytes(),
    );
    let result = effective_default(&RootDir::open(r).unwrap()).unwrap();
    assert_eq!(result.entry.menu_path.as_deref(), Some("0"));
    assert!(
        has_warning(
            &result,
            &[
                "/boot/grub/grubenv: not a GRUB environment block",
                "GRUB ignores it"
            ]
        ),
        "{:?}",
        result.warnings
    );
}

#[test]
fn grub_d_dropins_decide_settings_and_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    put(
        r,
        "/boot/grub/grub.cfg",
        text("ubuntu2404/grub.cfg").as_bytes(),
    );
    put(
        r,
        "/etc/default/grub",
        b"GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n",
    );
    put(
        r,
        "/etc/default/grub.d/kdump-tools.cfg",
        b"GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M\"\n",
    );
    // Sourced last (byte order: '9' < 'k'); decides GRUB_DEFAULT.
    put(
        r,
        "/etc/default/grub.d/99-default.cfg",
        b"GRUB_DEFAULT=saved\n",
    );
    put(r, "/etc/default/grub.d/README", b"GRUB_DEFAULT=2\n");
    put(
        r,
        "/etc/default/grub.d/50-distributor.cfg",
        b"GRUB_CMDLINE_LINUX=\"$(cat /etc/cmdline)\"\n",
    );
    let result = effective_default(&RootDir::open(r).unwrap()).unwrap();
    assert_eq!(
        result.decided_by,
        [
            "/boot/grub/grub.cfg",
            "/etc/default/grub",
            "/etc/default/grub.d/50-distributor.cfg",
            "/etc/default/grub.d/99-default.cfg",
            "/etc/default/grub.d/kdump-tools.cfg",
        ]
    );
    let by_name = |name: &str| {
        result
            .grub_settings
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", result.grub_settings))
    };
    let default = by_name("GRUB_DEFAULT");
    assert_eq!(default.value, "saved");
    assert_eq!(
        default.decided_in,
        "/etc/default/grub.d/99-default.cfg line 1"
    );
    let cmdline = by_name("GRUB_CMDLINE_LINUX_DEFAULT");
    assert_eq!(cmdline.value, "quiet crashkernel=384M-:128M");
    assert_eq!(cmdline.also_in, ["/etc/default/grub"]);
    assert!(
        result.warnings.iter().any(|w| w.starts_with(
            "/etc/default/grub.d/99-default.cfg has GRUB_DEFAULT=saved but grub.cfg sets default=0"
        )),
        "{:?}",
        result.warnings
    );
    assert!(
            result.warnings.iter().any(|w| w.starts_with(
                "/etc/default/grub.d/50-distributor.cfg line 1: GRUB_CMDLINE_LINUX uses a command substitution"
            )),
            "{:?}",
            result.warnings
        );
}

#[test]
fn effective_default_on_garbage_and_missing_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootDir::open(dir.path()).unwrap();
    let err = effective_default(&root).unwrap_err();
    assert!(format!("{err:#}").contains("no boot loader configuration"));
    put(
        dir.path(),
        "/boot/grub/grub.cfg",
        &[0xff, 0xfe, b'{', b'}', b'\n', 0x00, b'm', b'e', b'n', b'u'],
    );
    put(dir.path(), "/boot/grub/grubenv", b"garbage");
    let result = effective_default(&root).unwrap();
    assert!(result
        .warnings
        .iter()
        .any(|w| w.contains("not valid UTF-8")));
    assert!(result
        .warnings
        .iter()
        .any(|w| w.contains("GRUB ignores it")));
    assert!(result.warnings.iter().any(|w| w.contains("menu is empty")));
}
/// Ubuntu cloud images (`GRUB_FORCE_PARTUUID`): the `else` branch boots
/// without an initramfs; grubenv `initrdfail=1` (left by a boot that did
/// not finish) selects the retry with it.
#[test]
fn initrdless_boot_branch_follows_grubenv_initrdfail() {
    let tree = format!(
        "{}/tests/fixtures/trees/ubuntu2004-azure/boot/grub/grub.cfg",
        env!("CARGO_MANIFEST_DIR")
    );
    let cfg = GrubCfg::parse(&std::fs::read_to_string(tree).unwrap());
    let healthy = grub(&cfg, Some(&block("")), None, Vec::new());
    assert_eq!(
        healthy.entry.kernel_version.as_deref(),
        Some("5.15.0-1089-azure")
    );
    assert!(healthy.entry.initramfs.is_empty(), "{:?}", healthy.entry);
    assert!(healthy
        .entry
        .cmdline
        .as_deref()
        .unwrap()
        .ends_with(" panic=-1"));
    assert!(
        healthy
            .warnings
            .iter()
            .any(|w| w.contains("initrdless boot")),
        "{:?}",
        healthy.warnings
    );

    let retry = grub(&cfg, Some(&block("initrdfail=1\n")), None, Vec::new());
    assert_eq!(
        retry.entry.initramfs,
        ["/boot/initrd.img-5.15.0-1089-azure"]
    );
    assert!(!retry.entry.cmdline.as_deref().unwrap().contains("panic=-1"));
}

#[test]
fn grub_test_conditions() {
    let env = |name: &str| (name == "x").then(|| "1".to_string());
    assert_eq!(test_condition("[ ${x} = 1 ]", &env), Some(true));
    assert_eq!(test_condition("[ ${y} = 1 ]", &env), Some(false));
    assert_eq!(test_condition("[ ${x} != 1 ]", &env), Some(false));
    assert_eq!(test_condition("[ -n ${x} ]", &env), Some(true));
    assert_eq!(test_condition("[ -z ${y} ]", &env), Some(true));
    assert_eq!(test_condition("hwmatch foo 3", &env), None);
    assert_eq!(test_condition("[ a -lt b ]", &env), None);
}
