//! `modprobe.d/*.conf`: `blacklist`, `install`, `options` (and the other
//! commands, kept opaque). Module names compare with `-` and `_` equal.
//! Edits remove or append whole lines; every other byte is kept.

use serde::Serialize;

use super::lines::{append, content, physical_lines};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Blacklist,
    Install,
    Options,
    /// `alias`, `softdep`, `remove`, … as written.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Directive {
    /// 1-based line number.
    pub line: usize,
    pub command: Command,
    /// The module name, normalized (`-` → `_`).
    pub module: String,
    /// The words after the module (install command, options).
    pub rest: Vec<String>,
}

impl Directive {
    /// `blacklist M`, or `install M /bin/false` (or `/bin/true`): the module never loads by name.
    pub fn disables(&self) -> bool {
        match self.command {
            Command::Blacklist => true,
            Command::Install => self.rest.first().is_some_and(|cmd| {
                let program = cmd.rsplit('/').next().unwrap_or(cmd);
                program == "false" || program == "true"
            }),
            _ => false,
        }
    }
}

pub fn normalize(module: &str) -> String {
    module.replace('-', "_")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModprobeConf {
    lines: Vec<String>,
    directives: Vec<Directive>,
}

fn parse_line(index: usize, raw: &str) -> Option<Directive> {
    let words: Vec<&str> = content(raw).split_whitespace().collect();
    let (command, module, rest) = match words.as_slice() {
        [first, ..] if first.starts_with('#') => return None,
        [command, module, rest @ ..] => (*command, *module, rest),
        _ => return None,
    };
    let command = match command {
        "blacklist" => Command::Blacklist,
        "install" => Command::Install,
        "options" => Command::Options,
        other => Command::Other(other.to_string()),
    };
    Some(Directive {
        line: index + 1,
        command,
        module: normalize(module),
        rest: rest.iter().map(|w| w.to_string()).collect(),
    })
}

impl ModprobeConf {
    pub fn parse(text: &str) -> Self {
        let lines = physical_lines(text);
        let directives = lines
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| parse_line(i, raw))
            .collect();
        ModprobeConf { lines, directives }
    }

    pub fn render(&self) -> String {
        self.lines.concat()
    }

    pub fn directives(&self) -> &[Directive] {
        &self.directives
    }

    /// Lines that keep `module` from loading.
    pub fn disabling(&self, module: &str) -> Vec<&Directive> {
        let module = normalize(module);
        self.directives
            .iter()
            .filter(|d| d.module == module && d.disables())
            .collect()
    }

    /// `options` words given to `module`.
    pub fn options(&self, module: &str) -> Vec<&str> {
        let module = normalize(module);
        self.directives
            .iter()
            .filter(|d| d.module == module && d.command == Command::Options)
            .flat_map(|d| d.rest.iter().map(String::as_str))
            .collect()
    }

    /// Appends `blacklist M` and `install M /bin/false` unless both are there.
    pub fn disable(&mut self, module: &str) -> bool {
        let module = normalize(module);
        let has = |c: Command| {
            self.directives
                .iter()
                .any(|d| d.module == module && d.command == c && d.disables())
        };
        let (blacklisted, installed) = (has(Command::Blacklist), has(Command::Install));
        if blacklisted && installed {
            return false;
        }
        if !blacklisted {
            append(&mut self.lines, &format!("blacklist {module}"));
        }
        if !installed {
            append(&mut self.lines, &format!("install {module} /bin/false"));
        }
        *self = ModprobeConf::parse(&self.render());
        true
    }

    /// Removes the lines that keep `module` from loading; returns how many.
    pub fn enable(&mut self, module: &str) -> usize {
        let remove: Vec<usize> = self.disabling(module).iter().map(|d| d.line).collect();
        if remove.is_empty() {
            return 0;
        }
        let kept: Vec<String> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(i, _)| !remove.contains(&(i + 1)))
            .map(|(_, l)| l.clone())
            .collect();
        *self = ModprobeConf::parse(&kept.concat());
        remove.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KDUMP_HV: &str = "# Hyper-V\nblacklist hv_vmbus\ninstall hv-storvsc /bin/false\noptions ata_piix prefer_ms_hyperv=0\ninstall nvme /sbin/modprobe --ignore-install nvme\nalias pci:v*d* foo";

    #[test]
    fn directives_and_disabling_lines() {
        let conf = ModprobeConf::parse(KDUMP_HV);
        assert_eq!(conf.directives().len(), 5);
        assert_eq!(conf.disabling("hv_storvsc")[0].line, 3);
        assert_eq!(conf.disabling("hv-vmbus")[0].command, Command::Blacklist);
        assert!(
            conf.disabling("nvme").is_empty(),
            "a real install command still loads it"
        );
        assert_eq!(conf.options("ata_piix"), ["prefer_ms_hyperv=0"]);
        assert_eq!(conf.render(), KDUMP_HV);
    }

    #[test]
    fn disable_and_enable_touch_only_their_lines() {
        let mut conf = ModprobeConf::parse(KDUMP_HV);
        assert!(conf.disable("eudp"));
        assert!(!conf.disable("eudp"));
        let out = conf.render();
        assert_eq!(
            out,
            format!("{KDUMP_HV}\nblacklist eudp\ninstall eudp /bin/false\n")
        );
        assert_eq!(conf.enable("hv_storvsc"), 1);
        assert_eq!(
            conf.render(),
            out.replace("install hv-storvsc /bin/false\n", "")
        );
    }

    proptest! {
        #[test]
        fn render_is_identity(text in "(\\PC|[\n\t #\\\\-])*") {
            prop_assert_eq!(ModprobeConf::parse(&text).render(), text);
        }

        #[test]
        fn lossy_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut conf = ModprobeConf::parse(&String::from_utf8_lossy(&bytes));
            conf.enable("a");
            conf.disable("a");
            let _ = conf.render();
        }

        #[test]
        fn enable_removes_only_disabling_lines(text in "((blacklist|install|options|#) [ab](-x)? [a-z/]{0,8}\n){0,8}") {
            let mut conf = ModprobeConf::parse(&text);
            conf.enable("a");
            let out = conf.render();
            let expected: String = text
                .split_inclusive('\n')
                .filter(|l| parse_line(0, l).is_none_or(|d| !(d.module == "a" && d.disables())))
                .collect();
            prop_assert_eq!(out, expected);
        }
    }
}
