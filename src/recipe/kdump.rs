//! kdump actions and checks: the tools must be there, kdump.conf directives
//! edited in place, the service enabled by its wants link, and the default
//! `crashkernel=` reservation for the family.

use anyhow::{Context, Result};

use super::facts::{Facts, Family};
use super::plan::{ActionContext, Planned, PlannedChange, Workspace};
use crate::error::Failure;
use crate::inspect::cmdline::{CmdlineEdit, KernelCmdline};
use crate::inspect::default_grub::{self, DefaultGrub, GrubSettings};
use crate::inspect::kdump::{self as detect, Flavor, KdumpSetup, KDUMP_CONF, SYSCONFIG_KDUMP};
use crate::inspect::kdump_conf::KdumpConf;
use crate::rootfs::RootDir;

/// The kdump kernel's extra arguments in /etc/sysconfig/kdump (kexec-tools).
pub const CMDLINE_APPEND: &str = "KDUMP_COMMANDLINE_APPEND";

/// The family's `crashkernel=` when the operator gives none: RHEL 7/8
/// kernels size the reservation themselves with `auto`; later kernels
/// (and other distributions) need the memory-size table.
pub fn family_crashkernel(facts: &Facts) -> &'static str {
    let major = facts.version_id.split('.').next().unwrap_or("");
    if facts.family == Family::Rhel && (major == "7" || major == "8") {
        "auto"
    } else {
        "1G-4G:192M,4G-64G:256M,64G-:512M"
    }
}

/// The `crashkernel=` value already on one of the target's command lines
/// (so a value the operator chose earlier is kept), else the family's.
pub fn default_crashkernel(root: &RootDir, facts: &Facts) -> Result<String> {
    let mut lines: Vec<String> = super::facts::command_lines(root, facts)?
        .into_iter()
        .map(|(_, args)| args)
        .collect();
    let defaults = GrubSettings::merge(&default_grub::load_all(root)?);
    for name in [
        default_grub::CMDLINE_LINUX,
        default_grub::CMDLINE_LINUX_DEFAULT,
    ] {
        lines.extend(defaults.value(name).map(str::to_string));
    }
    let existing = lines.iter().find_map(|args| {
        KernelCmdline::parse(args)
            .value("crashkernel")
            .flatten()
            .filter(|v| !v.is_empty())
    });
    Ok(existing.unwrap_or_else(|| family_crashkernel(facts).to_string()))
}

fn install_hint(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::KexecTools => "dnf install kexec-tools (yum on RHEL 7)",
        Flavor::KdumpTools => "apt-get install kdump-tools",
        Flavor::Suse => "zypper install kdump",
    }
}

/// Refuses unless the family's kdump tools are installed on the target
/// (and, with `kdump_conf`, /etc/kdump.conf exists).
pub fn require_kdump(
    ws: &Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    kdump_conf: bool,
) -> Result<()> {
    let setup = detect::detect(ws.root(), ctx.facts.family)?;
    let hint = install_hint(setup.flavor);
    if kdump_conf {
        if !ws.exists(KDUMP_CONF) {
            return Err(Failure::Refused(format!(
                "the target has no {KDUMP_CONF}: install kexec-tools in the VM ({hint}) and run this recipe again"
            ))
            .into());
        }
        return Ok(());
    }
    if !setup.installed() {
        return Err(Failure::Refused(format!(
            "kdump is not installed on the target ({} missing): install the {} package in the VM ({hint}) and run this recipe again",
            setup.missing().join(", "),
            setup.flavor.package()
        ))
        .into());
    }
    if setup.flavor == Flavor::KdumpTools && ws.exists("/etc/default/grub.d/kdump-tools.cfg") {
        planned.notes.push(
            "/etc/default/grub.d/kdump-tools.cfg adds its own crashkernel= to GRUB_CMDLINE_LINUX_DEFAULT, \
             which comes later on the command line and wins when grub.cfg is regenerated"
                .into(),
        );
    }
    Ok(())
}

/// Where a kdump.conf directive goes on this target.
#[derive(Debug, PartialEq, Eq)]
enum Placement {
    Conf,
    /// Arguments of the kdump kernel (`KDUMP_COMMANDLINE_APPEND`).
    KdumpCmdline(Vec<String>),
    /// dracut does it already; the directive would only stop kdumpctl.
    NotNeeded(&'static str),
}

fn placement(setup: &KdumpSetup, directive: &str, value: &str) -> Result<Placement> {
    if !setup.dracut_based || !detect::REFUSED_BY_KDUMPCTL.contains(&directive) {
        return Ok(Placement::Conf);
    }
    let words: Vec<&str> = value.split_whitespace().collect();
    Ok(match directive {
        "blacklist" => {
            Placement::KdumpCmdline(vec![format!("rd.driver.blacklist={}", words.join(","))])
        }
        "options" => {
            let (module, options) = words
                .split_first()
                .ok_or_else(|| Failure::Usage("`options` needs a module name".into()))?;
            Placement::KdumpCmdline(options.iter().map(|o| format!("{module}.{o}")).collect())
        }
        "debug_mem_level" => Placement::KdumpCmdline(vec![format!("rd.memdebug={value}")]),
        "disk_timeout" | "link_delay" => {
            Placement::NotNeeded("dracut waits for the disks and network links itself")
        }
        other => {
            return Err(Failure::Usage(format!(
                "kdump.conf `{other}` is deprecated and has no replacement vmrescue knows"
            ))
            .into())
        }
    })
}

fn validate_directive(directive: &str, value: &str) -> Result<()> {
    let name_ok = !directive.is_empty()
        && directive
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(Failure::Usage(format!("`{directive}` is not a kdump.conf directive")).into());
    }
    if value.trim().is_empty() || value.contains(['\n', '\r', '#']) {
        return Err(Failure::Usage(format!(
            "kdump.conf {directive}: `{value}` is not a one-line value"
        ))
        .into());
    }
    Ok(())
}

/// `KDUMP_COMMANDLINE_APPEND` with `args` added; list arguments
/// (`rd.driver.blacklist=`) keep the modules already listed.
fn add_kdump_args(text: &str, args: &[String]) -> String {
    let mut file = DefaultGrub::parse(text);
    for arg in args {
        let current = KernelCmdline::parse(file.get(CMDLINE_APPEND).unwrap_or(""));
        let arg = match arg.split_once('=') {
            Some((key @ "rd.driver.blacklist", new)) => {
                let mut modules: Vec<String> = current
                    .value(key)
                    .flatten()
                    .map(|v| {
                        v.split(',')
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                for module in new.split(',') {
                    if !modules.iter().any(|m| m == module) {
                        modules.push(module.to_string());
                    }
                }
                format!("{key}={}", modules.join(","))
            }
            _ => arg.clone(),
        };
        file.edit_cmdline(CMDLINE_APPEND, &CmdlineEdit::Add(arg));
    }
    file.render()
}

/// Comments out the active lines of a directive kdumpctl refuses.
fn disable_deprecated(conf: &mut KdumpConf, directive: &str) {
    let lines: Vec<usize> = conf
        .directives()
        .filter(|(_, d)| d.name == directive)
        .map(|(i, _)| i)
        .collect();
    for index in lines {
        conf.comment_out(
            index,
            "disabled by vmrescue (kdumpctl refuses this deprecated directive)",
        );
    }
}

/// Sets a kdump.conf directive (see [`super::spec::StepSpec::SetKdumpOption`]).
pub fn set_kdump_option(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
    directive: &str,
    value: &str,
    list: bool,
) -> Result<()> {
    validate_directive(directive, value)?;
    let setup = detect::detect(ws.root(), ctx.facts.family)?;
    let Some(text) = ws.read(KDUMP_CONF)? else {
        planned.notes.push(format!(
            "no {KDUMP_CONF}: {} keeps its settings in {} and dumps to /var/crash with makedumpfile -d 31 by default; \
             `{directive}` is left as the distribution sets it",
            setup.flavor.package(),
            setup.flavor.config()
        ));
        return Ok(());
    };
    let mut conf = KdumpConf::parse(&text);
    match placement(&setup, directive, value)? {
        Placement::Conf => {
            if list {
                conf.add_items(directive, value);
            } else {
                conf.set(directive, value);
            }
            planned.push(ws.write(
                KDUMP_CONF,
                conf.render(),
                &format!("{directive} {value} in kdump.conf"),
            )?);
        }
        Placement::KdumpCmdline(args) => {
            disable_deprecated(&mut conf, directive);
            planned.push(ws.write(
                KDUMP_CONF,
                conf.render(),
                &format!(
                    "comment out `{directive}`: this kdumpctl refuses it and kdump would not start"
                ),
            )?);
            let sysconfig = ws.read(SYSCONFIG_KDUMP)?.unwrap_or_else(|| {
                "# Written by vmrescue; `vmrescue undo` removes it.\n".to_string()
            });
            let joined = args.join(" ");
            planned.push(ws.write(
                SYSCONFIG_KDUMP,
                add_kdump_args(&sysconfig, &args),
                &format!("{joined} on the kdump kernel's command line ({CMDLINE_APPEND})"),
            )?);
            planned.notes.push(format!(
                "`{directive} {value}` is a directive of the old mkinitrd-based kdump; this kexec-tools (kdumpctl with dracut) \
                 refuses it, so it is passed as {joined} in {CMDLINE_APPEND} of {SYSCONFIG_KDUMP}"
            ));
        }
        Placement::NotNeeded(why) => {
            disable_deprecated(&mut conf, directive);
            planned.push(ws.write(
                KDUMP_CONF,
                conf.render(),
                &format!(
                    "comment out `{directive}`: this kdumpctl refuses it and kdump would not start"
                ),
            )?);
            planned.notes.push(format!(
                "`{directive} {value}` is not written: this kexec-tools (kdumpctl with dracut) refuses it and {why}"
            ));
        }
    }
    Ok(())
}

/// Enables the kdump unit with its wants link (and USE_KDUMP=1 on Debian).
pub fn enable_kdump_service(
    ws: &mut Workspace,
    ctx: &ActionContext,
    planned: &mut Planned,
) -> Result<()> {
    let setup = detect::detect(ws.root(), ctx.facts.family)?;
    let unit = setup.flavor.unit();
    let Some(unit_path) = setup.unit_path.clone() else {
        return Err(Failure::Refused(format!(
            "the target has no {unit}: install the {} package in the VM",
            setup.flavor.package()
        ))
        .into());
    };
    if setup.masked {
        return Err(Failure::Refused(format!(
            "{unit} is masked ({}/{unit} -> /dev/null): unmask it first (`vmrescue chroot --rw -- systemctl unmask {unit}`)",
            detect::ETC_UNITS
        ))
        .into());
    }
    if setup.enabled_links.is_empty() {
        let link = setup.wants_link();
        planned.changes.push(PlannedChange::Symlink {
            path: link.clone(),
            target: unit_path.clone(),
            why: format!("enable {unit} (what `systemctl enable {unit}` creates)"),
        });
    }
    if setup.flavor == Flavor::KdumpTools && setup.use_kdump != Some(true) {
        let text = ws
            .read(detect::DEFAULT_KDUMP_TOOLS)?
            .with_context(|| format!("reading {}", detect::DEFAULT_KDUMP_TOOLS))?;
        let mut file = DefaultGrub::parse(&text);
        file.set("USE_KDUMP", "1");
        planned.push(ws.write(
            detect::DEFAULT_KDUMP_TOOLS,
            file.render(),
            "USE_KDUMP=1: kdump-tools loads the crash kernel only when it is set",
        )?);
    }
    Ok(())
}

/// Verification: the directive is where this kdump reads it.
pub fn check_option(
    root: &RootDir,
    facts: &Facts,
    directive: &str,
    value: &str,
    list: bool,
) -> Result<(bool, String)> {
    let setup = detect::detect(root, facts.family)?;
    let Some(text) = root.read_string_optional(KDUMP_CONF)? else {
        return Ok((
            setup.flavor != Flavor::KexecTools,
            format!("no {KDUMP_CONF}; {} settings apply", setup.flavor.config()),
        ));
    };
    let conf = KdumpConf::parse(&text);
    let refused = setup.dracut_based
        && detect::REFUSED_BY_KDUMPCTL.contains(&directive)
        && conf.directives().any(|(_, d)| d.name == directive);
    if refused {
        return Ok((
            false,
            format!("{KDUMP_CONF} still has `{directive}`, which this kdumpctl refuses"),
        ));
    }
    Ok(match placement(&setup, directive, value)? {
        Placement::Conf => {
            let ok = conf.has(directive, value, list);
            let now = conf.get(&crate::inspect::kdump_conf::directive_key(directive, value));
            (
                ok,
                format!("{KDUMP_CONF}: {directive} {}", now.unwrap_or("(not set)")),
            )
        }
        Placement::KdumpCmdline(args) => {
            let sysconfig = root
                .read_string_optional(SYSCONFIG_KDUMP)?
                .unwrap_or_default();
            let append = DefaultGrub::parse(&sysconfig)
                .get(CMDLINE_APPEND)
                .unwrap_or("")
                .to_string();
            let cmdline = KernelCmdline::parse(&append);
            let ok = args.iter().all(|arg| match arg.split_once('=') {
                Some((key @ "rd.driver.blacklist", wanted)) => {
                    let have = cmdline.value(key).flatten().unwrap_or_default();
                    wanted.split(',').all(|m| have.split(',').any(|h| h == m))
                }
                _ => cmdline.contains_arg(arg),
            });
            (ok, format!("{CMDLINE_APPEND} has {}", args.join(" ")))
        }
        Placement::NotNeeded(why) => (true, format!("`{directive}` not needed: {why}")),
    })
}

/// Verification: kdump is armed at the next boot.
pub fn check_service(root: &RootDir, facts: &Facts) -> Result<(bool, String)> {
    let setup = detect::detect(root, facts.family)?;
    let unit = setup.flavor.unit();
    // A dangling link (the unit moved or was removed) enables nothing.
    let link_ok = setup.enabled_links.iter().any(|link| root.is_file(link));
    let detail = if setup.enabled() && link_ok {
        format!(
            "{unit} enabled ({})",
            setup
                .enabled_links
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if setup.masked {
        format!("{unit} is masked")
    } else if setup.use_kdump == Some(false) {
        "USE_KDUMP is not 1".to_string()
    } else {
        format!("{unit} is not enabled")
    };
    Ok((setup.enabled() && link_ok, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdump_args_merge_into_the_existing_append_line() {
        let text = "KDUMP_COMMANDLINE_APPEND=\"irqpoll nr_cpus=1 rd.driver.blacklist=nouveau\"\n";
        let out = add_kdump_args(
            text,
            &[
                "rd.driver.blacklist=hv_vmbus,hv_storvsc".to_string(),
                "ata_piix.prefer_ms_hyperv=0".to_string(),
            ],
        );
        assert_eq!(
            out,
            "KDUMP_COMMANDLINE_APPEND=\"irqpoll nr_cpus=1 rd.driver.blacklist=nouveau,hv_vmbus,hv_storvsc ata_piix.prefer_ms_hyperv=0\"\n"
        );
        assert_eq!(
            add_kdump_args(&out, &["ata_piix.prefer_ms_hyperv=0".to_string()]),
            out
        );
    }

    #[test]
    fn directive_values_are_one_line() {
        assert!(validate_directive("path", "/var/crash").is_ok());
        assert!(validate_directive("path", "/a\nssh x@y").is_err());
        assert!(validate_directive("Path", "/a").is_err());
        assert!(validate_directive("path", "  ").is_err());
    }
}
