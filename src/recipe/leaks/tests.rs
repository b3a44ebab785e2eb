use std::path::{Path, PathBuf};

use super::*;
use crate::recipe::fixture_copy;
use crate::verify_boot::initramfs::{parent_dirs, write_newc, CpioEntry};

fn same_image(vg: &str) -> RescueNames {
    let temporary = format!("{vg}_vmrescue");
    RescueNames::new(&[(&temporary, vg)], &["/dev/sdc"])
}

#[test]
fn every_spelling_of_a_temporary_vg_name_is_put_back() {
    let names = same_image("rootvg");
    assert_eq!(
        names.restore_vg_names(
            "root=/dev/mapper/rootvg_vmrescue-rootlv rd.lvm.lv=rootvg_vmrescue/rootlv resume=/dev/rootvg_vmrescue/swaplv"
        ),
        "root=/dev/mapper/rootvg-rootlv rd.lvm.lv=rootvg/rootlv resume=/dev/rootvg/swaplv"
    );
    // A VG name with a dash is doubled in device-mapper names.
    let names = RescueNames::new(&[("vg-os_vmrescue", "vg-os")], &[]);
    assert_eq!(
        names.restore_vg_names(
            "root=/dev/mapper/vg--os_vmrescue-root rd.lvm.lv=vg-os_vmrescue/root"
        ),
        "root=/dev/mapper/vg--os-root rd.lvm.lv=vg-os/root"
    );
    assert_eq!(
        names.vg_traces(b"x /dev/mapper/vg--os_vmrescue-root"),
        ["vg--os_vmrescue"]
    );
}

#[test]
fn rescue_devices_are_the_attached_disk_loop_and_nbd() {
    let names = same_image("rootvg");
    for leaked in ["/dev/sdc", "/dev/sdc2", "/dev/loop3p1", "/dev/nbd0p2"] {
        assert!(names.is_rescue_device(leaked), "{leaked}");
    }
    for fine in [
        "/dev/sda2",
        "/dev/sdca1",
        "UUID=1234",
        "/dev/mapper/rootvg-rootlv",
    ] {
        assert!(!names.is_rescue_device(fine), "{fine}");
    }
    assert_eq!(
        names.device_traces("linux /vmlinuz root=/dev/sdc2 ro resume=UUID=x\n"),
        ["/dev/sdc2"]
    );
}

#[test]
fn regenerated_grub_cfg_gets_its_root_back() {
    let names = same_image("rootvg");
    let old = "menuentry 'Debian' {\n\tlinux /vmlinuz root=/dev/mapper/rootvg-rootlv ro quiet\n}\n";
    let leaked = "menuentry 'Debian' {\n\tlinux /vmlinuz root=/dev/mapper/rootvg_vmrescue-rootlv ro quiet cgroup.memory=nokmem\n}\n";
    let fixed = names
        .scrub(
            Path::new("/boot/grub/grub.cfg"),
            Some(old.as_bytes()),
            leaked.as_bytes(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(fixed).unwrap(),
        "menuentry 'Debian' {\n\tlinux /vmlinuz root=/dev/mapper/rootvg-rootlv ro quiet cgroup.memory=nokmem\n}\n"
    );
    assert!(names
        .scrub(
            Path::new("/boot/grub/grub.cfg"),
            Some(old.as_bytes()),
            old.as_bytes()
        )
        .unwrap()
        .is_none());
}

/// RHEL 8: grub2-mkconfig writes root= into grubenv `kernelopts`, which
/// the BLS entries use through `$kernelopts`.
#[test]
fn rhel8_grubenv_kernelopts_is_put_back_and_stays_a_grubenv_block() {
    let tree = fixture_copy("ol8");
    let root = RootDir::open(tree.path()).unwrap();
    let names = same_image("ol");
    let old = root.read("/boot/grub2/grubenv").unwrap();
    let leaked_text = String::from_utf8(old.clone()).unwrap().replace(
        "root=/dev/mapper/ol-root",
        "root=/dev/mapper/ol_vmrescue-root",
    );
    let mut leaked = Grubenv::parse(leaked_text.as_bytes()).unwrap();
    leaked.set("saved_entry", "x").unwrap();
    let leaked = leaked.render().unwrap();
    std::fs::write(tree.path().join("boot/grub2/grubenv"), &leaked).unwrap();

    let changed = vec![PathBuf::from("/boot/grub2/grubenv")];
    let failed = check(&root, &names, &changed).unwrap();
    assert!(!failed.ok);
    assert!(
        failed.detail.contains("/boot/grub2/grubenv: ol_vmrescue"),
        "{}",
        failed.detail
    );

    let fixed = names
        .scrub(Path::new("/boot/grub2/grubenv"), Some(&old), &leaked)
        .unwrap()
        .unwrap();
    assert_eq!(fixed.len(), 1024);
    let env = Grubenv::parse(&fixed).unwrap();
    assert!(env
        .get("kernelopts")
        .unwrap()
        .starts_with("root=/dev/mapper/ol-root ro"));
    assert_eq!(
        env.get("saved_entry"),
        Some("x"),
        "other variables are kept"
    );
    std::fs::write(tree.path().join("boot/grub2/grubenv"), &fixed).unwrap();
    assert!(check(&root, &names, &changed).unwrap().ok);
}

#[test]
fn rhel8_kernelopts_rescue_device_root_gets_the_old_root_back() {
    let names = same_image("ol");
    let mut old = Grubenv::empty();
    old.set(
        "kernelopts",
        "root=/dev/mapper/ol-root ro rd.lvm.lv=ol/root",
    )
    .unwrap();
    let mut new = Grubenv::empty();
    new.set("kernelopts", "root=/dev/sdc2 ro rd.lvm.lv=ol/root")
        .unwrap();
    let fixed = names
        .scrub(
            Path::new("/boot/efi/EFI/redhat/grubenv"),
            Some(&old.render().unwrap()),
            &new.render().unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        Grubenv::parse(&fixed).unwrap().get("kernelopts"),
        Some("root=/dev/mapper/ol-root ro rd.lvm.lv=ol/root")
    );
}

/// RHEL 9: literal BLS options, /etc/kernel/cmdline, an LVM devices file.
#[test]
fn rhel9_literal_bls_options_and_kernel_cmdline_are_checked() {
    let tree = fixture_copy("alma9");
    let root = RootDir::open(tree.path()).unwrap();
    let names = same_image("rootvg");
    let entries = tree.path().join("boot/loader/entries");
    let entry = std::fs::read_dir(&entries)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&entry).unwrap();
    let uuid_root = text
        .split_whitespace()
        .find(|w| w.starts_with("root=UUID="))
        .unwrap()
        .to_string();
    let leaked = text.replace(
        &uuid_root,
        "root=/dev/mapper/rootvg_vmrescue-rootlv rd.lvm.lv=rootvg_vmrescue/rootlv",
    );
    std::fs::write(&entry, &leaked).unwrap();
    std::fs::create_dir_all(tree.path().join("etc/kernel")).unwrap();
    std::fs::write(
        tree.path().join("etc/kernel/cmdline"),
        "root=/dev/mapper/rootvg_vmrescue-rootlv ro\n",
    )
    .unwrap();
    std::fs::create_dir_all(tree.path().join("etc/lvm/devices")).unwrap();
    std::fs::write(
        tree.path().join("etc/lvm/devices/system.devices"),
        "VERSION=1.1.2\nIDTYPE=sys_wwid IDNAME=x DEVNAME=/dev/sda3 PVID=abc PART=3\n",
    )
    .unwrap();

    let result = check(&root, &names, &[]).unwrap();
    assert!(!result.ok);
    assert!(
        result.detail.contains("/etc/kernel/cmdline"),
        "{}",
        result.detail
    );
    assert!(
        result.detail.contains("/boot/loader/entries/"),
        "{}",
        result.detail
    );

    for path in [entry.clone(), tree.path().join("etc/kernel/cmdline")] {
        let rel = Path::new("/").join(path.strip_prefix(tree.path()).unwrap());
        let new = std::fs::read(&path).unwrap();
        let fixed = names.scrub(&rel, None, &new).unwrap().unwrap();
        std::fs::write(&path, fixed).unwrap();
    }
    assert!(check(&root, &names, &[]).unwrap().ok);
    assert!(std::fs::read_to_string(&entry)
        .unwrap()
        .contains("root=/dev/mapper/rootvg-rootlv rd.lvm.lv=rootvg/rootlv"));
}

#[test]
fn a_rescue_device_counts_only_in_files_this_run_changed() {
    let tree = fixture_copy("alma9");
    let root = RootDir::open(tree.path()).unwrap();
    let names = same_image("rootvg");
    std::fs::write(
        tree.path().join("etc/fstab"),
        "/dev/sdc2 / xfs defaults 0 0\n",
    )
    .unwrap();
    assert!(check(&root, &names, &[]).unwrap().ok);
    let result = check(&root, &names, &[PathBuf::from("/etc/fstab")]).unwrap();
    assert!(!result.ok);
    assert!(
        result.detail.contains("/etc/fstab: /dev/sdc2"),
        "{}",
        result.detail
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    crate::cmd::Cmd::new("gzip")
        .args(["-c", "-n"])
        .stdin_bytes(data)
        .run_unchecked()
        .unwrap()
        .stdout
}

fn initramfs(members: &[(&str, &str)]) -> Vec<u8> {
    let mut entries = parent_dirs(members.iter().map(|(n, _)| *n));
    entries.extend(members.iter().map(|(name, data)| CpioEntry {
        name: name.to_string(),
        mode: 0o100644,
        data: data.as_bytes().to_vec(),
    }));
    // An uncompressed first archive (microcode), then a compressed one, as
    // dracut and initramfs-tools write them.
    let mut image = write_newc(&parent_dirs(["kernel/x86/microcode/GenuineIntel.bin"]));
    image.extend(gzip(&write_newc(&entries)));
    image
}

#[test]
fn a_regenerated_initramfs_is_searched_for_rescue_names() {
    let tree = fixture_copy("ol8");
    let root = RootDir::open(tree.path()).unwrap();
    let names = same_image("ol");
    let image = "/boot/initramfs-4.18.0-553.el8_10.x86_64.img";
    let changed = vec![PathBuf::from(image)];

    std::fs::write(
        tree.path().join(&image[1..]),
        initramfs(&[
            ("etc/cmdline.d/90lvm.conf", " rd.lvm.lv=ol_vmrescue/root \n"),
            ("etc/cmdline.d/95root-dev.conf", " root=/dev/sdc2 \n"),
            (
                "usr/lib/dracut/hooks/x.sh",
                "echo /dev/sdc2 is not a record\n",
            ),
        ]),
    )
    .unwrap();
    let result = check(&root, &names, &changed).unwrap();
    assert!(!result.ok);
    assert!(
        result
            .detail
            .contains("etc/cmdline.d/90lvm.conf: ol_vmrescue"),
        "{}",
        result.detail
    );
    assert!(
        result
            .detail
            .contains("etc/cmdline.d/95root-dev.conf: /dev/sdc2"),
        "{}",
        result.detail
    );
    assert!(!result.detail.contains("x.sh"), "{}", result.detail);

    std::fs::write(
        tree.path().join(&image[1..]),
        initramfs(&[("etc/lvm/lvm.conf", "devices { }\n")]),
    )
    .unwrap();
    assert!(check(&root, &names, &changed).unwrap().ok);
}
