//! `vmrescue report`: the support bundle carries the reports, logs and boot
//! configuration, and never a secret planted on the target, even behind a
//! symlink from an allowlisted configuration file.

use std::path::Path;
use std::process::Command;

use crate::common::tree::write;
use crate::common::*;

/// Every secret planted on the target, each with a marker that must not
/// appear anywhere in the bundle.
const SECRETS: &[(&str, &str)] = &[
    ("etc/shadow", "root:$6$SECRET-SHADOW$x:19000:0:99999:7:::\n"),
    ("etc/gshadow", "wheel:SECRET-GSHADOW::root\n"),
    (
        "etc/ssh/ssh_host_ed25519_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-HOSTKEY\n",
    ),
    (
        "root/.ssh/authorized_keys",
        "ssh-ed25519 SECRET-AUTHKEYS user\n",
    ),
    (
        "home/azureuser/.ssh/id_rsa",
        "-----BEGIN RSA PRIVATE KEY-----\nSECRET-USERKEY\n",
    ),
    (
        "var/lib/waagent/ovf-env.xml",
        "<UserPassword>SECRET-WAAGENT</UserPassword>\n",
    ),
    (
        "var/lib/cloud/instance/user-data.txt",
        "password: SECRET-CLOUDINIT\n",
    ),
    ("etc/pki/tls/private/web.pem", "SECRET-PEM\n"),
    ("root/.ssh/kdump_id_rsa", "SECRET-KDUMPKEY\n"),
];

fn plant(root: &Path) {
    write_os_tree(
        root,
        "UUID=1234 / ext4 defaults 0 1\n//srv/share /mnt cifs username=bob,password=SECRET-FSTAB,vers=3.0 0 0\n",
    );
    for (path, content) in SECRETS {
        write(root, path, content);
    }
    write(
        root,
        "etc/crypttab",
        "data UUID=5678 none luks,password=SECRET-CRYPTTAB\n",
    );
    write(
        root,
        "boot/grub/grub.cfg",
        "set superusers=\"root\"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.SECRET-GRUBHASH\nmenuentry 'Debian' {\n\tlinux /vmlinuz root=UUID=1234 ro\n}\n",
    );
    write(root, "etc/default/grub", "GRUB_TIMEOUT=5\n");
    // Allowlisted names that are really secrets.
    std::fs::create_dir_all(root.join("etc/sysctl.d")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("etc/sysctl.d/50-evil.conf")).unwrap();
    std::fs::create_dir_all(root.join("etc/modprobe.d")).unwrap();
    std::os::unix::fs::symlink(
        "../../home/azureuser/.ssh/id_rsa",
        root.join("etc/modprobe.d/evil.conf"),
    )
    .unwrap();
    write(
        root,
        "etc/dracut.conf.d/key.conf",
        "-----BEGIN EC PRIVATE KEY-----\nSECRET-INCONFIG\n",
    );
    write(root, "etc/sysctl.d/10-fine.conf", "vm.panic_on_oom = 0\n");
}

#[test]
fn a_bundle_has_the_reports_and_no_planted_secret() {
    if !root_or_skip("bundle_secrets") {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    plant(tree.path());
    let scratch = tempfile::tempdir().unwrap();
    let console = scratch.path().join("serial.log");
    std::fs::write(
        &console,
        "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
    )
    .unwrap();
    let bundle = scratch.path().join("bundle.tar.gz");
    let out = vmrescue()
        .args(["--json", "report", "--root"])
        .arg(tree.path())
        .arg("--log")
        .arg(&console)
        .arg("-o")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = crate::common::tree::json(&out);
    assert_eq!(report["bundle"]["path"], bundle.to_str().unwrap());

    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&bundle)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    for report in ["scan", "inspect", "diagnose", "history"] {
        let ok = unpacked.join(format!("reports/{report}.json")).is_file()
            || unpacked
                .join(format!("reports/{report}.error.txt"))
                .is_file();
        assert!(ok, "no {report} report");
    }
    let diagnose = std::fs::read_to_string(unpacked.join("reports/diagnose.json")).unwrap();
    assert!(diagnose.contains("Unable to mount root fs"), "{diagnose}");
    assert!(unpacked.join("target/etc/sysctl.d/10-fine.conf").is_file());
    assert!(unpacked.join("target/etc/fstab").is_file());

    let everything = Command::new("grep")
        .args(["-r", "-o", "SECRET-[A-Z]*"])
        .arg(&unpacked)
        .output()
        .unwrap();
    let leaked = String::from_utf8_lossy(&everything.stdout);
    assert!(leaked.is_empty(), "secrets in the bundle:\n{leaked}");
    let manifest = std::fs::read_to_string(unpacked.join("MANIFEST.txt")).unwrap();
    for left_out in [
        "target/etc/sysctl.d/50-evil.conf: it is /etc/shadow",
        "target/etc/modprobe.d/evil.conf: it is /home/azureuser/.ssh/id_rsa",
        "target/etc/dracut.conf.d/key.conf: contains a private key",
    ] {
        assert!(manifest.contains(left_out), "{left_out}:\n{manifest}");
    }
    let fstab = std::fs::read_to_string(unpacked.join("target/etc/fstab")).unwrap();
    assert!(fstab.contains("password=<redacted>"), "{fstab}");
}
