//! The support bundle (`vmrescue report`): one `.tar.gz` an engineer can
//! attach to a case before `az vm repair restore` deletes the repair VM. It
//! holds the reports (scan, inspect, diagnose, history as JSON), the run logs
//! and console logs vmrescue read, the target's journal index and its
//! boot-relevant configuration files.
//!
//! Secrets never enter it. Target files come from an allowlist of boot and
//! kernel configuration; each is resolved inside the target first (a
//! hostile `/etc/default/grub -> /etc/shadow` link names the file it really
//! is), and a file is left out when its real path is a known secret
//! (shadow, SSH keys, `authorized_keys`, TLS keys, the Azure agent's and
//! cloud-init's provisioning data, kdump's SSH key) or its contents look like
//! a private key or a password hash. Passwords in mount options (fstab,
//! crypttab) and GRUB password lines are redacted. What was left out is
//! listed in the bundle's `MANIFEST.txt`, so nobody wonders where it went.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use regex::Regex;

use crate::cmd::Cmd;
use crate::rootfs::RootDir;

/// Largest file taken into a bundle (logs are cut to their last part).
const MAX_FILE: usize = 8 * 1024 * 1024;

/// Configuration files of the target that explain how it boots, as paths
/// or `DIR/*SUFFIX` globs (one directory level).
const TARGET_CONFIGS: &[&str] = &[
    "/etc/os-release",
    "/usr/lib/os-release",
    "/etc/default/grub",
    "/etc/default/grub.d/*.cfg",
    "/etc/kernel/cmdline",
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/dracut.conf",
    "/etc/dracut.conf.d/*.conf",
    "/etc/initramfs-tools/initramfs.conf",
    "/etc/initramfs-tools/modules",
    "/etc/initramfs-tools/conf.d/*",
    "/etc/modprobe.d/*.conf",
    "/etc/modules-load.d/*.conf",
    "/etc/sysctl.conf",
    "/etc/sysctl.d/*.conf",
    "/etc/kdump.conf",
    "/etc/sysconfig/kdump",
    "/etc/default/kdump-tools",
    "/etc/lvm/lvm.conf",
    "/etc/lvm/devices/system.devices",
    "/etc/selinux/config",
    "/boot/grub2/grub.cfg",
    "/boot/grub/grub.cfg",
    "/boot/grub2/grubenv",
    "/boot/grub/grubenv",
    "/boot/efi/EFI/*/grub.cfg",
    "/boot/loader/entries/*.conf",
    "/boot/efi/loader/entries/*.conf",
    "/boot/efi/loader/loader.conf",
    "/var/lib/vmrescue/journal/*/manifest.jsonl",
];

/// Why a target path is never bundled, judged on its real (resolved) path.
pub fn secret_path(path: &Path) -> Option<&'static str> {
    let text = path.to_string_lossy();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rules: &[(bool, &str)] = &[
        (
            matches!(name.as_str(), "shadow" | "gshadow" | "shadow-" | "gshadow-"),
            "password hashes",
        ),
        (
            text.starts_with("/etc/ssh/") && name.contains("_key"),
            "SSH host key",
        ),
        (
            text.contains("/.ssh/") || name == "authorized_keys",
            "SSH user keys",
        ),
        (
            name.ends_with(".pem") || name.ends_with(".key") || name.ends_with(".pfx"),
            "certificate or key",
        ),
        (
            text.starts_with("/var/lib/waagent/"),
            "Azure agent provisioning data",
        ),
        (
            text.starts_with("/var/lib/cloud/") || text.starts_with("/etc/cloud/"),
            "cloud-init data",
        ),
        (
            name.starts_with("kdump_id_")
                || name.starts_with("id_rsa")
                || name.starts_with("id_ed25519"),
            "kdump SSH key",
        ),
    ];
    rules.iter().find(|(hit, _)| *hit).map(|(_, why)| *why)
}

/// True for contents that are a secret whatever the file is called.
fn secret_contents(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        return Some("contains a private key");
    }
    let hash = Regex::new(r"(?m)^[^:\s]+:\$[0-9a-z]+\$[^:]+:").ok()?;
    hash.is_match(text).then_some("contains password hashes")
}

/// Passwords in mount options and GRUB password lines replaced.
pub fn redact(text: &str) -> String {
    let options = Regex::new(r"(?i)\b(pass|passwd|password|secret)=[^,\s]*")
        .map(|re| re.replace_all(text, "$1=<redacted>").into_owned())
        .unwrap_or_else(|_| text.to_string());
    Regex::new(r"(?m)^(\s*password(?:_pbkdf2)?\s+\S+)\s+\S+")
        .map(|re| re.replace_all(&options, "$1 <redacted>").into_owned())
        .unwrap_or(options)
}

/// The allowlisted configuration files that exist on the target.
fn target_config_paths(root: &RootDir) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for pattern in TARGET_CONFIGS {
        let Some((dir, suffix)) = pattern.split_once("/*") else {
            paths.push(PathBuf::from(pattern));
            continue;
        };
        // `A/*/B`: every subdirectory of A; `A/*SUFFIX`: every file of A.
        if let Some(rest) = suffix.strip_prefix('/') {
            for entry in root.list_dir(dir)? {
                paths.push(Path::new(dir).join(&entry.name).join(rest));
            }
        } else {
            for entry in root.list_dir(dir)? {
                if entry.name.to_string_lossy().ends_with(suffix) {
                    paths.push(Path::new(dir).join(&entry.name));
                }
            }
        }
    }
    paths.retain(|p| root.is_file(p));
    Ok(paths)
}

/// A bundle being assembled in a private staging directory.
pub struct Bundle {
    staging: tempfile::TempDir,
    manifest: Vec<String>,
}

impl Bundle {
    pub fn new() -> Result<Bundle> {
        let staging = tempfile::Builder::new()
            .prefix("vmrescue-report.")
            .tempdir()
            .context("creating the bundle's staging directory")?;
        Ok(Bundle {
            staging,
            manifest: Vec::new(),
        })
    }

    fn put(&mut self, dest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.staging.path().join(dest.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        self.manifest.push(format!("added {dest}"));
        Ok(())
    }

    /// A report as `reports/NAME.json`.
    pub fn add_document(&mut self, name: &str, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value).context("serialising a report")?;
        self.put(&format!("reports/{name}.json"), text.as_bytes())
    }

    /// A report that could not be made: its error, so the bundle still says why.
    pub fn add_failure(&mut self, name: &str, err: &anyhow::Error) -> Result<()> {
        self.put(
            &format!("reports/{name}.error.txt"),
            format!("{err:#}\n").as_bytes(),
        )
    }

    /// A file of the rescue VM (a run log, a console log), its last
    /// [`MAX_FILE`] bytes, redacted.
    pub fn add_host_file(&mut self, dest: &str, path: &Path) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        // A FIFO or a serial device would never end.
        if !size.is_file() {
            self.manifest.push(format!(
                "left out {dest}: {} is not a regular file",
                path.display()
            ));
            return Ok(());
        }
        let start = size.len().saturating_sub(MAX_FILE as u64);
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.take(MAX_FILE as u64).read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        if let Some(why) = secret_contents(&text) {
            self.manifest.push(format!("left out {dest}: {why}"));
            return Ok(());
        }
        self.put(dest, redact(&text).as_bytes())
    }

    /// The target's boot-relevant configuration, under `target/`.
    pub fn add_target_configs(&mut self, root: &RootDir) -> Result<()> {
        for path in target_config_paths(root)? {
            let real = crate::journal::resolve_in_root(root, &path)?;
            let dest = format!("target{}", path.display());
            if let Some(why) = secret_path(&real) {
                self.manifest
                    .push(format!("left out {dest}: it is {} ({why})", real.display()));
                continue;
            }
            let bytes = root.read_limited(&path, MAX_FILE as u64)?;
            let text = String::from_utf8_lossy(&bytes);
            if let Some(why) = secret_contents(&text) {
                self.manifest.push(format!("left out {dest}: {why}"));
                continue;
            }
            self.put(&dest, redact(&text).as_bytes())?;
        }
        Ok(())
    }

    /// Writes the `.tar.gz` (mode 0600: it describes a customer's VM).
    pub fn write(mut self, out: &Path) -> Result<Vec<String>> {
        let mut manifest = std::mem::take(&mut self.manifest);
        manifest.insert(
            0,
            format!("vmrescue {} support bundle", crate::release::VERSION),
        );
        self.put("MANIFEST.txt", (manifest.join("\n") + "\n").as_bytes())?;
        Cmd::new("tar")
            .arg("-czf")
            .arg(out)
            .args(["--owner=0", "--group=0", "-C"])
            .arg(self.staging.path())
            .arg(".")
            .run()
            .with_context(|| format!("writing the support bundle {}", out.display()))?;
        std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("restricting {}", out.display()))?;
        Ok(manifest)
    }
}

/// Where vmrescue writes its run logs on the rescue VM.
pub const RUN_LOG_DIR: &str = "/var/log/vmrescue";

/// How many of the newest run logs a bundle carries.
const RUN_LOGS: usize = 20;

/// What `vmrescue report` wrote.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct BundleReport {
    pub path: PathBuf,
    /// `added …` / `left out …: why`, as in the bundle's MANIFEST.txt.
    pub manifest: Vec<String>,
}

impl BundleReport {
    /// One line: where the bundle is and what was left out.
    pub fn summary(&self) -> String {
        let added = self
            .manifest
            .iter()
            .filter(|l| l.starts_with("added "))
            .count();
        let left_out = self
            .manifest
            .iter()
            .filter(|l| l.starts_with("left out "))
            .count();
        format!(
            "support bundle: {} ({added} files; {left_out} left out as secrets, listed in its MANIFEST.txt)",
            self.path.display()
        )
    }
}

/// The default bundle path for a run: beside the run logs, else in /tmp.
pub fn default_path(run_id: &str) -> PathBuf {
    let name = format!("vmrescue-report-{run_id}.tar.gz");
    if std::fs::create_dir_all(RUN_LOG_DIR).is_ok() {
        Path::new(RUN_LOG_DIR).join(name)
    } else {
        std::env::temp_dir().join(name)
    }
}

/// Collects a support bundle for a mounted target (or for the rescue VM
/// alone when no target could be mounted) and writes it to `out`.
pub fn write_bundle(
    target: Result<&crate::attach::Target, &anyhow::Error>,
    console_logs: &[PathBuf],
    out: &Path,
) -> Result<BundleReport> {
    let mut bundle = Bundle::new()?;
    match crate::disk::scan().and_then(|s| Ok(serde_json::to_value(s)?)) {
        Ok(scan) => bundle.add_document("scan", &scan)?,
        Err(err) => bundle.add_failure("scan", &err)?,
    }
    match target {
        Ok(target) => add_target_reports(&mut bundle, target, console_logs)?,
        Err(err) => bundle.add_failure("target", err)?,
    }
    for (index, log) in console_logs.iter().enumerate() {
        let name = log
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("log-{index}"));
        bundle.add_host_file(&format!("console/{index}-{name}"), log)?;
    }
    for log in newest_run_logs(Path::new(RUN_LOG_DIR))? {
        if let Some(name) = log.file_name() {
            bundle.add_host_file(&format!("logs/{}", name.to_string_lossy()), &log)?;
        }
    }
    let manifest = bundle.write(out)?;
    Ok(BundleReport {
        path: out.to_path_buf(),
        manifest,
    })
}

/// inspect, diagnose and history of the target, and its configuration.
/// A report that fails is recorded as its error: a bundle is for when
/// things are broken.
fn add_target_reports(
    bundle: &mut Bundle,
    target: &crate::attach::Target,
    console_logs: &[PathBuf],
) -> Result<()> {
    let root = target.rootdir()?;
    let inspect = crate::inspect::snapshot::snapshot(&root)
        .map(|snapshot| serde_json::json!({"layout": target.layout(), "snapshot": snapshot}));
    let diagnose = crate::diagnose::diagnose_target(console_logs, target)
        .and_then(|d| Ok(serde_json::to_value(d)?));
    let history = crate::journal::history(target.root())
        .map(|runs| serde_json::json!({"version": 1, "runs": runs}));
    for (name, report) in [
        ("inspect", inspect),
        ("diagnose", diagnose),
        ("history", history),
    ] {
        match report {
            Ok(value) => bundle.add_document(name, &value)?,
            Err(err) => bundle.add_failure(name, &err)?,
        }
    }
    bundle.add_target_configs(&root)
}

fn newest_run_logs(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log") && p.is_file())
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    logs.sort();
    Ok(logs
        .into_iter()
        .rev()
        .take(RUN_LOGS)
        .map(|(_, p)| p)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised_by_real_path() {
        for secret in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/ssh/ssh_host_ed25519_key",
            "/root/.ssh/id_rsa",
            "/home/azureuser/.ssh/authorized_keys",
            "/etc/pki/tls/private/server.key",
            "/var/lib/waagent/ovf-env.xml",
            "/var/lib/cloud/instance/user-data.txt",
            "/root/.ssh/kdump_id_rsa",
        ] {
            assert!(secret_path(Path::new(secret)).is_some(), "{secret}");
        }
        for fine in ["/etc/default/grub", "/etc/fstab", "/etc/ssh/sshd_config"] {
            assert!(secret_path(Path::new(fine)).is_none(), "{fine}");
        }
    }

    #[test]
    fn passwords_are_redacted_and_keys_and_hashes_refused() {
        let fstab = "//srv/share /mnt cifs username=bob,password=hunter2,vers=3.0 0 0\n";
        assert_eq!(
            redact(fstab),
            "//srv/share /mnt cifs username=bob,password=<redacted>,vers=3.0 0 0\n"
        );
        let grub = "set superusers=\"root\"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.ABC\n";
        assert!(!redact(grub).contains("ABC"), "{}", redact(grub));
        assert!(secret_contents("-----BEGIN OPENSSH PRIVATE KEY-----\nx").is_some());
        assert!(secret_contents("root:$6$salt$hash:19000:0:99999:7:::\n").is_some());
        assert!(secret_contents("GRUB_TIMEOUT=5\n").is_none());
    }
}
