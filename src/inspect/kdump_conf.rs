//! `/etc/kdump.conf` of kexec-tools: one directive per line (`name value…`),
//! `#` comments, and a trailing `# …` that kdumpctl strips from a directive.
//! parse → edit → render keeps every untouched line byte-identical.

use std::ops::Range;

/// One line as it is in the file, with what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line exactly as in the file, line ending included.
    raw: String,
    directive: Option<Directive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    /// The value with surrounding blanks and a trailing comment removed.
    pub value: String,
    /// Where `value` is in the raw line (edits replace only this).
    value_range: Range<usize>,
}

impl Directive {
    /// What a second line with the same key would conflict with: the name,
    /// and for `options` the module it sets options of.
    pub fn key(&self) -> String {
        directive_key(&self.name, &self.value)
    }
}

/// The key of a directive (see [`Directive::key`]).
pub fn directive_key(name: &str, value: &str) -> String {
    match (name, value.split_whitespace().next()) {
        ("options", Some(module)) => format!("options {module}"),
        _ => name.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KdumpConf {
    lines: Vec<Line>,
}

fn parse_line(raw: &str) -> Line {
    let content = raw.trim_end_matches(['\n', '\r']);
    let body_start = content.len() - content.trim_start().len();
    let rest = &content[body_start..];
    if rest.is_empty() || rest.starts_with('#') {
        return Line {
            raw: raw.to_string(),
            directive: None,
        };
    }
    // kdumpctl drops everything from the first `#` (`s/#.*//`).
    let body_end = body_start + rest.find('#').unwrap_or(rest.len());
    let body = content[body_start..body_end].trim_end();
    let name_len = body.find(char::is_whitespace).unwrap_or(body.len());
    let name = &body[..name_len];
    let after_name = &body[name_len..];
    let value_start = body_start + name_len + (after_name.len() - after_name.trim_start().len());
    let value_end = body_start + body.len();
    Line {
        raw: raw.to_string(),
        directive: Some(Directive {
            name: name.to_string(),
            value: content[value_start..value_end].to_string(),
            value_range: value_start..value_end,
        }),
    }
}

impl KdumpConf {
    pub fn parse(text: &str) -> KdumpConf {
        KdumpConf {
            lines: text.split_inclusive('\n').map(parse_line).collect(),
        }
    }

    pub fn render(&self) -> String {
        self.lines.iter().map(|l| l.raw.as_str()).collect()
    }

    /// Active directives in file order, with their line index (0-based).
    pub fn directives(&self) -> impl Iterator<Item = (usize, &Directive)> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.directive.as_ref().map(|d| (i, d)))
    }

    /// Active directives with this key (`path`, `options ata_piix`…).
    pub fn find(&self, key: &str) -> Vec<(usize, &Directive)> {
        self.directives().filter(|(_, d)| d.key() == key).collect()
    }

    /// The value of the first active directive with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).first().map(|(_, d)| d.value.as_str())
    }

    /// Replaces the value of line `index` in place (indent, spacing and a
    /// trailing comment stay as they were).
    fn replace_value(&mut self, index: usize, value: &str) {
        let Some(line) = self.lines.get(index) else {
            return;
        };
        let Some(directive) = &line.directive else {
            return;
        };
        let range = directive.value_range.clone();
        let mut raw = String::with_capacity(line.raw.len() + value.len());
        raw.push_str(&line.raw[..range.start]);
        if range.start == range.end && !line.raw[..range.start].ends_with([' ', '\t']) {
            raw.push(' ');
        }
        raw.push_str(value);
        raw.push_str(&line.raw[range.end..]);
        self.lines[index] = parse_line(&raw);
    }

    /// Turns line `index` into a comment that says why.
    pub fn comment_out(&mut self, index: usize, why: &str) {
        if let Some(line) = self.lines.get(index) {
            let raw = format!("# {why}: {}", line.raw);
            self.lines[index] = parse_line(&raw);
        }
    }

    fn append(&mut self, line: &str) {
        if let Some(last) = self.lines.last_mut() {
            if !last.raw.ends_with('\n') {
                last.raw.push('\n');
            }
        }
        self.lines.push(parse_line(&format!("{line}\n")));
    }

    /// Makes `name value` the one active setting of its key: the first such
    /// line is edited in place, later duplicates are commented out, and the
    /// line is appended when there is none.
    pub fn set(&mut self, name: &str, value: &str) {
        let key = directive_key(name, value);
        let found: Vec<usize> = self.find(&key).into_iter().map(|(i, _)| i).collect();
        match found.split_first() {
            Some((first, rest)) => {
                if self.lines[*first]
                    .directive
                    .as_ref()
                    .map(|d| d.value.as_str())
                    != Some(value)
                {
                    self.replace_value(*first, value);
                }
                for index in rest {
                    self.comment_out(*index, "duplicate disabled by vmrescue");
                }
            }
            None => self.append(&format!("{name} {value}")),
        }
    }

    /// Makes sure a list directive (`extra_modules`, `blacklist`) holds every
    /// word of `items`: missing words are added to the first such line, or
    /// a line is appended.
    pub fn add_items(&mut self, name: &str, items: &str) {
        let present: Vec<String> = self
            .find(name)
            .iter()
            .flat_map(|(_, d)| d.value.split_whitespace().map(str::to_string))
            .collect();
        let missing: Vec<&str> = items
            .split_whitespace()
            .filter(|item| !present.iter().any(|p| p == item))
            .collect();
        if missing.is_empty() {
            return;
        }
        match self.find(name).first().map(|(i, d)| (*i, d.value.clone())) {
            Some((index, value)) => {
                let mut words: Vec<&str> = value.split_whitespace().collect();
                words.extend(&missing);
                self.replace_value(index, &words.join(" "));
            }
            None => self.append(&format!("{name} {}", missing.join(" "))),
        }
    }

    /// Does the file hold `name value` (every word of it, for a list)?
    pub fn has(&self, name: &str, value: &str, list: bool) -> bool {
        if list {
            let present: Vec<&str> = self
                .find(name)
                .into_iter()
                .flat_map(|(_, d)| d.value.split_whitespace())
                .collect();
            value.split_whitespace().all(|item| present.contains(&item))
        } else {
            let found = self.find(&directive_key(name, value));
            found.len() == 1 && found[0].1.value == value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rhel8() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kdump/rhel8-kdump.conf"
        ))
        .unwrap()
    }

    #[test]
    fn the_rhel8_default_has_two_active_directives() {
        let conf = KdumpConf::parse(&rhel8());
        let active: Vec<(&str, &str)> = conf
            .directives()
            .map(|(_, d)| (d.name.as_str(), d.value.as_str()))
            .collect();
        assert_eq!(
            active,
            vec![
                ("path", "/var/crash"),
                ("core_collector", "makedumpfile -l --message-level 1 -d 31")
            ]
        );
        assert_eq!(conf.render(), rhel8());
    }

    #[test]
    fn set_edits_in_place_and_leaves_every_other_line_alone() {
        let text = rhel8();
        let mut conf = KdumpConf::parse(&text);
        conf.set("core_collector", "makedumpfile -l --message-level 7 -d 31");
        conf.set("path", "/var/crash");
        let out = conf.render();
        let old: Vec<&str> = text.split_inclusive('\n').collect();
        let new: Vec<&str> = out.split_inclusive('\n').collect();
        assert_eq!(old.len(), new.len());
        let changed: Vec<(&str, &str)> = old
            .iter()
            .zip(&new)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (*a, *b))
            .collect();
        assert_eq!(
            changed,
            vec![(
                "core_collector makedumpfile -l --message-level 1 -d 31\n",
                "core_collector makedumpfile -l --message-level 7 -d 31\n"
            )]
        );
    }

    #[test]
    fn duplicates_are_commented_out_and_missing_directives_appended() {
        let mut conf = KdumpConf::parse("path /a  # mine\r\npath /b\ndefault shell");
        conf.set("path", "/var/crash");
        conf.set("disk_timeout", "100");
        assert_eq!(
            conf.render(),
            "path /var/crash  # mine\r\n# duplicate disabled by vmrescue: path /b\ndefault shell\ndisk_timeout 100\n"
        );
        assert!(conf.has("path", "/var/crash", false));
        assert!(!conf.has("path", "/a", false));
    }

    #[test]
    fn options_are_keyed_by_module() {
        let mut conf = KdumpConf::parse("options loop max_loop=1\noptions ata_piix x=1\n");
        conf.set("options", "ata_piix prefer_ms_hyperv=0");
        assert_eq!(
            conf.render(),
            "options loop max_loop=1\noptions ata_piix prefer_ms_hyperv=0\n"
        );
    }

    #[test]
    fn list_items_merge_into_the_first_line() {
        let mut conf = KdumpConf::parse("extra_modules gfs2\n#extra_modules x\n");
        conf.add_items("extra_modules", "ata_piix sr_mod sd_mod gfs2");
        assert_eq!(
            conf.render(),
            "extra_modules gfs2 ata_piix sr_mod sd_mod\n#extra_modules x\n"
        );
        assert!(conf.has("extra_modules", "sd_mod ata_piix", true));
        let before = conf.render();
        conf.add_items("extra_modules", "sd_mod");
        assert_eq!(conf.render(), before);
    }

    #[test]
    fn a_directive_without_value_gets_one() {
        let mut conf = KdumpConf::parse("path\n");
        conf.set("path", "/var/crash");
        assert_eq!(conf.render(), "path /var/crash\n");
    }

    proptest! {
        #[test]
        fn render_of_parse_is_identity(text in "([a-z_#\t ]{0,6}[a-z0-9/=\"# \t.-]{0,20}(\r?\n)?){0,10}") {
            prop_assert_eq!(KdumpConf::parse(&text).render(), text);
        }

        #[test]
        fn set_touches_only_lines_of_its_key(
            lines in proptest::collection::vec("(#?[a-z_]{1,8} [a-z0-9/ ]{0,10})?", 0..10),
        ) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let mut conf = KdumpConf::parse(&text);
            conf.set("path", "/var/crash");
            let out = conf.render();
            let new: Vec<&str> = out.split_inclusive('\n').collect();
            for (old, new) in text.split_inclusive('\n').zip(&new) {
                let key = KdumpConf::parse(old).directives().next().map(|(_, d)| d.key());
                if key.as_deref() != Some("path") {
                    prop_assert_eq!(old, *new);
                }
            }
            prop_assert!(conf.has("path", "/var/crash", false));
        }
    }
}
