//! The panic playbook recipes (panic-knobs, enable-kdump, kdump-hyperv) run
//! by the binary on fixture trees (`--root`): plan shows the diff, apply
//! changes exactly that, verify passes, a second run is a no-op, undo
//! restores every byte and removes what was created. Trees are built from
//! the boot fixtures (tests/fixtures/boot) and the kdump packages' files
//! (tests/fixtures/kdump, sources in its README).

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;

use crate::common::text;
use crate::common::tree::{changed_paths as changed, fixture, json, tree_state, write, TreeState};

const ROCKY_KERNELS: &[&str] = &["4.18.0-553.el8_10.x86_64", "4.18.0-553.22.1.el8_10.x86_64"];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Rocky Linux 8.10 on Azure: BLS entries, grubenv kernelopts, grub.cfg with
/// blscfg (the real Rocky 8.10 files), no crashkernel= anywhere.
fn rocky8() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = dir.path();
    for d in [
        "var/lib",
        "etc/sysctl.d",
        "etc/systemd/system",
        "usr/lib/systemd/system",
        "sbin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write(
        root,
        "etc/os-release",
        "NAME=\"Rocky Linux\"\nVERSION=\"8.10 (Green Obsidian)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.10\"\n",
    );
    write(
        root,
        "etc/fstab",
        "UUID=2f64394d-a847-4c1a-bda9-e658edc017ad / xfs defaults 0 0\n",
    );
    write(
        root,
        "etc/default/grub",
        "GRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\nGRUB_DEFAULT=saved\n\
         GRUB_CMDLINE_LINUX=\"console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0 rootdelay=300\"\nGRUB_ENABLE_BLSCFG=true\n",
    );
    write(root, "sbin/init", "");
    write(
        root,
        "boot/grub2/grub.cfg",
        &fixture("boot/rocky8/grub.cfg"),
    );
    write(root, "boot/grub2/grubenv", &fixture("boot/rocky8/grubenv"));
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/boot/rocky8/loader"),
        &root.join("boot/loader"),
    );
    for version in ROCKY_KERNELS {
        write(root, &format!("boot/vmlinuz-{version}"), "kernel");
        write(root, &format!("boot/initramfs-{version}.img"), "initramfs");
        write(root, &format!("lib/modules/{version}/modules.dep"), "");
    }
    dir
}

/// kexec-tools as RHEL 8 installs it (dracut-based: with kdumpctl).
fn add_kexec_tools(root: &Path) {
    write(root, "etc/kdump.conf", &fixture("kdump/rhel8-kdump.conf"));
    write(
        root,
        "etc/sysconfig/kdump",
        &fixture("kdump/rhel8-sysconfig-kdump"),
    );
    write(
        root,
        "usr/lib/systemd/system/kdump.service",
        &fixture("kdump/kdump.service"),
    );
    write(root, "usr/bin/kdumpctl", "#!/bin/bash\n");
}

fn debian12() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("var/lib")).unwrap();
    write(
        root,
        "etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    write(root, "etc/fstab", "UUID=abcd / ext4 defaults 0 1\n");
    write(root, "sbin/init", "");
    write(root, "usr/sbin/grub-mkconfig", "");
    write(
        root,
        "etc/default/grub",
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n",
    );
    write(
        root,
        "boot/grub/grub.cfg",
        "set default=\"0\"\nmenuentry 'Debian GNU/Linux' {\n\tlinux /boot/vmlinuz-6.1.0-9-amd64 root=UUID=abcd ro console=ttyS0 quiet\n\tinitrd /boot/initrd.img-6.1.0-9-amd64\n}\n",
    );
    write(root, "boot/vmlinuz-6.1.0-9-amd64", "kernel");
    write(root, "boot/initrd.img-6.1.0-9-amd64", "initramfs");
    write(root, "lib/modules/6.1.0-9-amd64/modules.dep", "");
    dir
}

struct Run {
    logs: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run {
            logs: tempfile::tempdir().unwrap(),
        }
    }

    fn vmrescue(&self, root: &Path, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vmrescue"));
        cmd.env_remove("VMRESCUE_FAILPOINT")
            .arg("--log-file")
            .arg(self.logs.path().join("log"))
            .args(args)
            .arg("--root")
            .arg(root);
        cmd.output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// repair → verify ok; repair again → nothing to do; undo → the tree as before.
fn apply_twice_then_undo(
    run: &Run,
    root: &Path,
    args: &[&str],
    expect_changed: &[&str],
) -> TreeState {
    let before = tree_state(root);
    let mut repair = vec!["--json", "repair", "--yes"];
    repair.extend(args);
    let out = run.vmrescue(root, &repair);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    let outcome = &report["recipes"][0];
    assert_eq!(outcome["status"], "applied", "{report:#}");
    for check in outcome["verify"].as_array().unwrap() {
        assert_eq!(check["ok"], true, "{check}");
    }
    let after = tree_state(root);
    assert_eq!(changed(&before, &after), expect_changed, "{report:#}");

    let out = run.vmrescue(root, &repair);
    assert!(out.status.success(), "{}", text(&out));
    let again = json(&out);
    assert_eq!(again["recipes"][0]["status"], "nothing-to-do", "{again:#}");
    assert_eq!(tree_state(root), after, "the second run changed the tree");

    let out = run.vmrescue(root, &["undo", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        changed(&before, &tree_state(root)),
        Vec::<String>::new(),
        "undo left differences"
    );
    after
}

#[test]
fn panic_knobs_without_params_is_an_audit_that_changes_nothing() {
    let tree = rocky8();
    let root = tree.path();
    write(
        root,
        "etc/sysctl.d/90-hang.conf",
        "# site policy\nkernel.softlockup_panic = 0\n",
    );
    write(
        root,
        "usr/lib/sysctl.d/50-default.conf",
        "kernel.hung_task_timeout_secs = 120\n",
    );
    write(
        root,
        "etc/sysctl.d/50-default.conf",
        "kernel.hung_task_timeout_secs = 300\n",
    );
    let run = Run::new();
    let before = tree_state(root);
    let out = run.vmrescue(root, &["plan", "panic-knobs"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains("kernel.softlockup_panic = 0 (/etc/sysctl.d/90-hang.conf:2)")
            && plan
                .contains("kernel.hung_task_timeout_secs = 300 (/etc/sysctl.d/50-default.conf:1)")
            && plan.contains("kernel.unknown_nmi_panic = kernel default")
            && plan.contains("panics on a soft lockup")
            && plan.contains("nothing to do: audit only"),
        "{plan}"
    );
    for knob in [
        "softlockup_panic",
        "hardlockup_panic",
        "hung_task_panic",
        "hung_task_timeout_secs",
        "panic_on_warn",
        "panic_on_rcu_stall",
        "panic_print",
        "nmi_watchdog",
        "watchdog_thresh",
        "unknown_nmi_panic",
        "panic_on_unrecovered_nmi",
        "panic_on_io_nmi",
    ] {
        assert!(
            plan.contains(&format!("kernel.{knob} = ")),
            "{knob} missing: {plan}"
        );
    }
    assert!(!plan.contains("+++"), "an audit has no diff: {plan}");

    let out = run.vmrescue(root, &["--json", "repair", "panic-knobs", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["recipes"][0]["status"], "nothing-to-do");
    assert_eq!(tree_state(root), before);
    let out = run.vmrescue(root, &["repair", "panic-knobs", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("kernel.softlockup_panic = 0 (/etc/sysctl.d/90-hang.conf:2)")
            && stdout(&out).contains("audit only"),
        "{}",
        text(&out)
    );
    assert_eq!(tree_state(root), before);

    let out = run.vmrescue(root, &["recipes", "show", "panic-knobs"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("on this target:") && shown.contains("kernel.softlockup_panic = 0")
            && shown.contains("audit-sysctl kernel.panic_on_warn (set with --param panic_on_warn): 1 turns every kernel WARNING"),
        "{shown}"
    );
}

#[test]
fn panic_knobs_sets_only_the_named_knobs_and_undo_restores() {
    let tree = rocky8();
    let root = tree.path();
    write(
        root,
        "etc/sysctl.d/90-hang.conf",
        "# site policy\nkernel.softlockup_panic = 0\nkernel.panic = 10\n",
    );
    let run = Run::new();
    let args = [
        "panic-knobs",
        "--param",
        "softlockup_panic=1",
        "--param",
        "hung_task_timeout_secs=240",
    ];
    let mut plan_args = vec!["plan"];
    plan_args.extend(args);
    let out = run.vmrescue(root, &plan_args);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains("kernel.softlockup_panic = 0 (/etc/sysctl.d/90-hang.conf:2) -> 1")
            && plan.contains("kernel.hung_task_timeout_secs = kernel default -> 240")
            && plan.contains("-kernel.softlockup_panic = 0\n+# disabled by vmrescue")
            && plan
                .contains("+kernel.softlockup_panic = 1\n+kernel.hung_task_timeout_secs = 240\n")
            && !plan.contains("kernel.hardlockup_panic = kernel default ->"),
        "{plan}"
    );
    let after = apply_twice_then_undo(
        &run,
        root,
        &args,
        &[
            "/etc/sysctl.d/90-hang.conf",
            "/etc/sysctl.d/99-vmrescue.conf",
        ],
    );
    let drop_in = &after
        .get(Path::new("etc/sysctl.d/99-vmrescue.conf"))
        .expect("the file exists after the repair")
        .0;
    assert_eq!(
        String::from_utf8_lossy(drop_in),
        "# Written by vmrescue; `vmrescue undo` removes it.\nkernel.softlockup_panic = 1\nkernel.hung_task_timeout_secs = 240\n"
    );

    let out = run.vmrescue(
        root,
        &["plan", "panic-knobs", "--param", "panic_on_warn=yes"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn enable_kdump_on_rocky8_adds_crashkernel_auto_edits_kdump_conf_and_links_the_unit() {
    let tree = rocky8();
    let root = tree.path();
    add_kexec_tools(root);
    let run = Run::new();
    let out = run.vmrescue(root, &["plan", "enable-kdump"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    for expected in [
        "plan for enable-kdump crashkernel=auto",
        "+GRUB_CMDLINE_LINUX=\"console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0 rootdelay=300 crashkernel=auto\"",
        "crashkernel=auto in grubenv kernelopts",
        "-core_collector makedumpfile -l --message-level 1 -d 31\n+core_collector makedumpfile -l --message-level 7 -d 31\n",
        "symlink /etc/systemd/system/multi-user.target.wants/kdump.service -> /usr/lib/systemd/system/kdump.service",
        "echo c > /proc/sysrq-trigger",
    ] {
        assert!(plan.contains(expected), "missing {expected:?} in\n{plan}");
    }
    assert!(
        !plan.contains("chroot$"),
        "BLS with blscfg needs no grub2-mkconfig: {plan}"
    );

    let out = run.vmrescue(root, &["repair", "enable-kdump", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("after boot: test it (this crashes the VM on purpose): `echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger`"),
        "{}",
        text(&out)
    );
    let link = root.join("etc/systemd/system/multi-user.target.wants/kdump.service");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/usr/lib/systemd/system/kdump.service")
    );
    let conf = std::fs::read_to_string(root.join("etc/kdump.conf")).unwrap();
    let original = fixture("kdump/rhel8-kdump.conf");
    let diff: Vec<(&str, &str)> = original
        .split_inclusive('\n')
        .zip(conf.split_inclusive('\n'))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        diff,
        vec![(
            "core_collector makedumpfile -l --message-level 1 -d 31\n",
            "core_collector makedumpfile -l --message-level 7 -d 31\n"
        )]
    );
    assert_eq!(conf.lines().count(), original.lines().count());
    let grubenv = std::fs::read_to_string(root.join("boot/grub2/grubenv")).unwrap();
    assert!(
        grubenv.contains("crashkernel=auto") && grubenv.len() == 1024,
        "{grubenv}"
    );
    let out = run.vmrescue(root, &["undo", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));

    apply_twice_then_undo(
        &run,
        root,
        &["enable-kdump"],
        &[
            "/boot/grub2/grubenv",
            "/etc/default/grub",
            "/etc/kdump.conf",
            "/etc/systemd/system/multi-user.target.wants",
            "/etc/systemd/system/multi-user.target.wants/kdump.service",
        ],
    );
}

#[test]
fn enable_kdump_keeps_a_crashkernel_value_already_there_and_takes_an_explicit_one() {
    let tree = rocky8();
    let root = tree.path();
    add_kexec_tools(root);
    let grub = std::fs::read_to_string(root.join("etc/default/grub")).unwrap();
    write(
        root,
        "etc/default/grub",
        &grub.replace("rootdelay=300", "rootdelay=300 crashkernel=512M"),
    );
    let run = Run::new();
    let out = run.vmrescue(root, &["plan", "enable-kdump"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("plan for enable-kdump crashkernel=512M"),
        "{}",
        text(&out)
    );
    let out = run.vmrescue(
        root,
        &[
            "plan",
            "enable-kdump",
            "--param",
            "crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("-GRUB_CMDLINE_LINUX=\"console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0 rootdelay=300 crashkernel=512M\"\n+GRUB_CMDLINE_LINUX=\"console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0 rootdelay=300 crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M\""),
        "{}",
        text(&out)
    );
}

#[test]
fn enable_kdump_refuses_with_exit_5_naming_the_package_when_the_tools_are_missing() {
    let run = Run::new();
    let tree = rocky8();
    let before = tree_state(tree.path());
    let out = run.vmrescue(tree.path(), &["repair", "enable-kdump", "--yes"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kdump is not installed")
            && stderr.contains("install the kexec-tools package"),
        "{stderr}"
    );
    assert_eq!(tree_state(tree.path()), before);

    let debian = debian12();
    let out = run.vmrescue(debian.path(), &["plan", "enable-kdump"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kdump-tools"),
        "{}",
        text(&out)
    );
}

#[test]
fn enable_kdump_on_debian_sets_use_kdump_and_links_into_basic_target() {
    let tree = debian12();
    let root = tree.path();
    write(
        root,
        "etc/default/kdump-tools",
        &fixture("kdump/kdump-tools.default"),
    );
    write(
        root,
        "lib/systemd/system/kdump-tools.service",
        &fixture("kdump/kdump-tools.service"),
    );
    let run = Run::new();
    let out = run.vmrescue(root, &["plan", "enable-kdump"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    assert!(!plan.contains("grub-mkconfig -o"), "{plan}");
    for expected in [
        "plan for enable-kdump crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M",
        "+GRUB_CMDLINE_LINUX=\"console=ttyS0 crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M\"",
        // Edited in place: no grub-mkconfig runs for an argument change.
        "+\tlinux /boot/vmlinuz-6.1.0-9-amd64 root=UUID=abcd ro console=ttyS0 quiet crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M\n",
        "note: no /etc/kdump.conf",
        "-USE_KDUMP=0\n+USE_KDUMP=1\n",
        "symlink /etc/systemd/system/basic.target.wants/kdump-tools.service -> /lib/systemd/system/kdump-tools.service",
    ] {
        assert!(plan.contains(expected), "missing {expected:?} in\n{plan}");
    }
}

#[test]
fn kdump_hyperv_on_dracut_based_kexec_tools_moves_refused_directives_to_the_kdump_cmdline() {
    let tree = rocky8();
    let root = tree.path();
    add_kexec_tools(root);
    // The old advice pasted in: kdumpctl would refuse to start with these.
    let conf = fixture("kdump/rhel8-kdump.conf") + "blacklist hv_vmbus\ndisk_timeout 100\n";
    write(root, "etc/kdump.conf", &conf);
    let run = Run::new();
    let out = run.vmrescue(root, &["plan", "kdump-hyperv"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    for expected in [
        "+extra_modules ata_piix sr_mod sd_mod\n",
        "-blacklist hv_vmbus\n-disk_timeout 100\n+# disabled by vmrescue (kdumpctl refuses this deprecated directive): blacklist hv_vmbus\n",
        "rd.driver.blacklist=hv_vmbus,hv_storvsc,hv_utils,hv_netvsc,hid-hyperv ata_piix.prefer_ms_hyperv=0\"",
        "`disk_timeout 100` is not written",
    ] {
        assert!(plan.contains(expected), "missing {expected:?} in\n{plan}");
    }
    let after = apply_twice_then_undo(
        &run,
        root,
        &["kdump-hyperv"],
        &["/etc/kdump.conf", "/etc/sysconfig/kdump"],
    );
    let conf = &after
        .get(Path::new("etc/kdump.conf"))
        .expect("the file exists after the repair")
        .0;
    let conf = String::from_utf8_lossy(conf);
    assert!(
        !conf.lines().any(|l| l.starts_with("blacklist")
            || l.starts_with("disk_timeout")
            || l.starts_with("options")),
        "{conf}"
    );
}

#[test]
fn kdump_hyperv_on_mkinitrd_era_kdump_writes_the_four_directives() {
    let tree = rocky8();
    let root = tree.path();
    add_kexec_tools(root);
    std::fs::remove_file(root.join("usr/bin/kdumpctl")).unwrap();
    let run = Run::new();
    let after = apply_twice_then_undo(&run, root, &["kdump-hyperv"], &["/etc/kdump.conf"]);
    let conf = &after
        .get(Path::new("etc/kdump.conf"))
        .expect("the file exists after the repair")
        .0;
    let conf = String::from_utf8_lossy(conf);
    let original = fixture("kdump/rhel8-kdump.conf");
    assert_eq!(
        conf.strip_prefix(original.as_str()),
        Some("extra_modules ata_piix sr_mod sd_mod\nblacklist hv_vmbus hv_storvsc hv_utils hv_netvsc hid-hyperv\noptions ata_piix prefer_ms_hyperv=0\ndisk_timeout 100\n"),
        "{conf}"
    );
}

#[test]
fn kdump_hyperv_refuses_with_exit_5_without_kdump_conf() {
    let tree = rocky8();
    let run = Run::new();
    let before = tree_state(tree.path());
    let out = run.vmrescue(tree.path(), &["repair", "kdump-hyperv", "--yes"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/kdump.conf") && stderr.contains("kexec-tools"),
        "{stderr}"
    );
    assert_eq!(tree_state(tree.path()), before);
}

#[test]
fn undo_removes_the_wants_link_even_when_the_wants_directory_existed() {
    let tree = rocky8();
    let root = tree.path();
    add_kexec_tools(root);
    std::fs::create_dir_all(root.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    symlink(
        "/usr/lib/systemd/system/sshd.service",
        root.join("etc/systemd/system/multi-user.target.wants/sshd.service"),
    )
    .unwrap();
    let run = Run::new();
    apply_twice_then_undo(
        &run,
        root,
        &["enable-kdump"],
        &[
            "/boot/grub2/grubenv",
            "/etc/default/grub",
            "/etc/kdump.conf",
            "/etc/systemd/system/multi-user.target.wants/kdump.service",
        ],
    );
}
