//! Man pages: `vmrescue(1)` and one `vmrescue-<verb>(1)` per command, each
//! with the contract a script needs (EXIT STATUS, FILES, ENVIRONMENT) and
//! EXAMPLES, appended as roff after clap_mangen's generated sections.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The exit codes, as a table for `--help` and the man pages.
pub(crate) const EXIT_STATUS: &[(u8, &str)] = &[
    (0, "repaired, or nothing to do"),
    (1, "error"),
    (2, "usage error"),
    (
        3,
        "no target disk found, several candidates, or a refused target (the rescue VM itself)",
    ),
    (
        4,
        "unsupported target (encrypted without a key, unknown layout), or cannot be booted here",
    ),
    (5, "recipe refused (preconditions unmet, or not confirmed)"),
    (
        6,
        "verification failed: the changes are kept, `vmrescue undo` restores them",
    ),
    (
        130,
        "interrupted (Ctrl-C, SIGTERM, hang-up): everything vmrescue mounted is released",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "/run/vmrescue/<key>.json",
        "what a mount did, so `vmrescue umount` can undo it after a crash",
    ),
    (
        "/mnt/vmrescue/<disk>",
        "where targets are mounted (read-only until a change is confirmed)",
    ),
    (
        "<target>/var/lib/vmrescue/journal/<run-id>/",
        "the journal of a repair run: manifest and backups, for `vmrescue undo`",
    ),
    (
        "/var/log/vmrescue/<run-id>.log",
        "the full debug log of a run (else /tmp)",
    ),
    (
        "/var/log/vmrescue/vmrescue-report-<run-id>.tar.gz",
        "a support bundle written by `vmrescue report`",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "VMRESCUE_NO_VERIFY_BOOT=1",
        "repair: skip the boot check after the repair (as --no-verify-boot)",
    ),
    (
        "VMRESCUE_ACCEL=kvm|tcg",
        "force the QEMU accelerator of boot checks",
    ),
    (
        "VMRESCUE_RELEASE_URL",
        "az-payload and scripts/install.sh: the release folder to download from",
    ),
    ("NO_COLOR", "no colour in human output"),
    (
        "TERM",
        "dumb, vt100 or vt220 (serial consoles): plain numbered menus and progress lines",
    ),
];

/// Examples per command (`""` for the top-level page).
fn examples(command: &str) -> &'static [&'static str] {
    match command {
        "" => &[
            "sudo vmrescue",
            "vmrescue diagnose --console-log serial.log",
            "vmrescue repair auto --yes --json --console-log serial.log",
        ],
        "repair" => &[
            "vmrescue repair rebuild-initramfs --yes",
            "vmrescue repair older-kernel --param once=true --yes --disk /dev/sdc",
            "vmrescue repair auto --yes --json --no-verify-boot --image broken.raw",
        ],
        "plan" => &["vmrescue plan cgroup-nokmem --disk /dev/sdc"],
        "diagnose" => &["vmrescue diagnose --console-log serial.log --json"],
        "verify" => &["vmrescue verify --boot --image repaired.raw --via kernel"],
        "undo" => &[
            "vmrescue history",
            "vmrescue undo 20261201-204716-57b0 --yes",
        ],
        "az-payload" => &[
            "vmrescue az-payload auto --console-log serial.log -o fix.sh",
            "vmrescue az-payload rebuild-initramfs --no-download -o fix.sh",
        ],
        "report" => &["vmrescue report --console-log serial.log -o case-1234.tar.gz"],
        "az-fleet" => &[
            "vmrescue az-fleet --vms broken.txt --parallel 10 --max-failures 5 --start",
            "vmrescue az-fleet -g prod-web --tag wave=kernel-6.8 --dry-run",
        ],
        "mount" => &["vmrescue mount --disk /dev/sdc", "vmrescue umount"],
        _ => &[],
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('-', "\\-")
}

/// The roff of the four contract sections.
fn contract_sections(command: &str) -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in EXIT_STATUS {
        roff.push_str(&format!(".TP\n.B {code}\n{}\n", escape(meaning)));
    }
    roff.push_str(".SH FILES\n");
    for (path, what) in FILES {
        roff.push_str(&format!(".TP\n.I {}\n{}\n", escape(path), escape(what)));
    }
    roff.push_str(".SH ENVIRONMENT\n");
    for (name, what) in ENVIRONMENT {
        roff.push_str(&format!(".TP\n.B {}\n{}\n", escape(name), escape(what)));
    }
    let examples = examples(command);
    roff.push_str(".SH EXAMPLES\n");
    if examples.is_empty() {
        roff.push_str(&format!(
            ".nf\n{}\n.fi\n",
            escape(&format!("vmrescue {command} --help"))
        ));
    }
    for example in examples {
        roff.push_str(&format!(".nf\n{}\n.fi\n", escape(example)));
    }
    roff
}

fn render(command: clap::Command, verb: &str) -> Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .context("rendering a man page")?;
    page.extend_from_slice(contract_sections(verb).as_bytes());
    Ok(page)
}

/// The top-level page (what `vmrescue man` prints).
pub(crate) fn top_page(cli: clap::Command) -> Result<Vec<u8>> {
    render(cli, "")
}

/// Writes `vmrescue.1` and `vmrescue-<verb>.1` for every command into
/// `dir`; returns the files written.
pub(crate) fn write_all(cli: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |name: String, page: Vec<u8>| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    let mut cli = cli;
    cli.build();
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        let verb = sub.get_name().to_string();
        let page_name = format!("vmrescue-{verb}");
        let command = sub.clone().display_name(&page_name);
        write(format!("{page_name}.1"), render(command, &verb)?)?;
    }
    write("vmrescue.1".into(), top_page(cli)?)?;
    Ok(written)
}
