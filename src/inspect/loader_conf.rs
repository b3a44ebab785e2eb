//! systemd-boot `loader/loader.conf` (`default` glob pattern, `timeout`, …)
//! and how systemd-boot picks its default entry from the BLS entries.
//!
//! systemd-boot selects, in order: the EFI variable `LoaderEntryOneShot`,
//! `LoaderEntryDefault` (set by `bootctl set-default`), the `default`
//! pattern of loader.conf matched against entry ids (file names, `.conf`
//! included) in menu order, else the first entry. EFI variables live in the
//! VM's firmware, not on its disk, so offline we can only warn about them.

use serde::Serialize;

use super::bls::BlsEntry;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    raw: String,
    key: Option<String>,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConf {
    lines: Vec<Line>,
}

impl LoaderConf {
    pub fn parse(text: &str) -> Self {
        let lines = text
            .split_inclusive('\n')
            .map(|raw| {
                let content = raw.trim();
                if content.is_empty() || content.starts_with('#') {
                    return Line {
                        raw: raw.to_string(),
                        key: None,
                        value: String::new(),
                    };
                }
                let (key, value) = content.split_once([' ', '\t']).unwrap_or((content, ""));
                Line {
                    raw: raw.to_string(),
                    key: Some(key.to_string()),
                    value: value.trim().to_string(),
                }
            })
            .collect();
        LoaderConf { lines }
    }

    pub fn render(&self) -> String {
        self.lines.iter().map(|l| l.raw.as_str()).collect()
    }

    /// The last value of a key (later lines override earlier ones).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.key.as_deref() == Some(key))
            .map(|l| l.value.as_str())
    }

    /// Sets `key` on its last line (keeping that line's indentation), or
    /// appends it; every other line stays byte-identical.
    pub fn set(&mut self, key: &str, value: &str) {
        let position = self
            .lines
            .iter()
            .rposition(|l| l.key.as_deref() == Some(key));
        match position {
            Some(index) => {
                let line = &mut self.lines[index];
                let indent: String = line.raw.chars().take_while(|c| c.is_whitespace()).collect();
                let newline = if line.raw.ends_with('\n') { "\n" } else { "" };
                line.raw = format!("{indent}{key} {value}{newline}");
                line.value = value.to_string();
            }
            None => {
                if let Some(last) = self.lines.last_mut() {
                    if !last.raw.ends_with('\n') {
                        last.raw.push('\n');
                    }
                }
                self.lines.push(Line {
                    raw: format!("{key} {value}\n"),
                    key: Some(key.to_string()),
                    value: value.to_string(),
                });
            }
        }
    }

    pub fn default_pattern(&self) -> Option<&str> {
        self.get("default")
    }

    pub fn timeout(&self) -> Option<&str> {
        self.get("timeout")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SystemdBootChoice {
    /// Index into the sorted entries.
    pub index: usize,
    pub id: String,
    pub reason: String,
    pub warnings: Vec<String>,
}

/// Picks the default entry among `entries` (already in systemd-boot menu
/// order, see [`super::bls::sort_for_systemd_boot`]).
pub fn systemd_boot_default(
    conf: Option<&LoaderConf>,
    entries: &[BlsEntry],
) -> Option<SystemdBootChoice> {
    let first = entries.first()?;
    let mut warnings = vec![
        "systemd-boot EFI variables (LoaderEntryOneShot, LoaderEntryDefault) are stored in the VM's firmware and cannot be read from its disk; they override loader.conf".to_string(),
    ];
    if let Some(pattern) = conf.and_then(LoaderConf::default_pattern) {
        if pattern.starts_with('@') {
            warnings.push(format!("loader.conf default {pattern:?} depends on EFI variables; assuming the first entry"));
        } else {
            let hit = entries
                .iter()
                .position(|e| glob_match(pattern, &e.file_name) || glob_match(pattern, e.id()));
            match hit {
                Some(index) => {
                    return Some(SystemdBootChoice {
                        index,
                        id: entries[index].file_name.clone(),
                        reason: format!("loader.conf default {pattern:?}"),
                        warnings,
                    })
                }
                None => warnings.push(format!(
                    "loader.conf default {pattern:?} matches no entry; systemd-boot falls back to the first entry"
                )),
            }
        }
    }
    Some(SystemdBootChoice {
        index: 0,
        id: first.file_name.clone(),
        reason: "first entry in menu order".into(),
        warnings,
    })
}

/// Shell-style glob: `*`, `?`, `[…]` (with `!`/`^` negation and ranges).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match_class(&p, pi, t[ti]),
            Some(&c) if c == t[ti] => Some(pi + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((star_pi, star_ti)) => {
                    pi = star_pi + 1;
                    ti = star_ti + 1;
                    star = Some((star_pi, star_ti + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; returns the
/// index after the class on a match.
fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (first || p[i] != ']') {
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        // No closing bracket: a literal '['.
        return (c == '[').then_some(start + 1);
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_the_last_default_line_only_or_appends() {
        let mut conf =
            LoaderConf::parse("# comment\ndefault old.conf\n  default newer.conf\ntimeout 3");
        conf.set("default", "debian-6.1.conf");
        assert_eq!(
            conf.render(),
            "# comment\ndefault old.conf\n  default debian-6.1.conf\ntimeout 3"
        );
        assert_eq!(conf.default_pattern(), Some("debian-6.1.conf"));
        let mut conf = LoaderConf::parse("timeout 3");
        conf.set("default", "x.conf");
        assert_eq!(conf.render(), "timeout 3\ndefault x.conf\n");
    }
    use crate::inspect::bls::sort_for_systemd_boot;
    use proptest::prelude::*;

    // The example from loader.conf(5).
    const EXAMPLE: &str = "# /boot/efi/loader/loader.conf\ntimeout 0\ndefault 01234567890abcdef1234567890abdf0-*\neditor no\n";

    fn entries() -> Vec<BlsEntry> {
        let mut e = vec![
            BlsEntry::parse(
                "01234567890abcdef1234567890abdf0-6.1.0.conf",
                "version 6.1.0\nlinux /a\n",
            ),
            BlsEntry::parse(
                "01234567890abcdef1234567890abdf0-6.8.0.conf",
                "version 6.8.0\nlinux /b\n",
            ),
            BlsEntry::parse("other-7.0.conf", "linux /c\n"),
        ];
        sort_for_systemd_boot(&mut e);
        e
    }

    #[test]
    fn default_pattern_picks_first_match_in_menu_order() {
        let conf = LoaderConf::parse(EXAMPLE);
        assert_eq!(conf.timeout(), Some("0"));
        assert_eq!(conf.render(), EXAMPLE);
        let choice = systemd_boot_default(Some(&conf), &entries()).unwrap();
        assert_eq!(choice.id, "01234567890abcdef1234567890abdf0-6.8.0.conf");
    }

    #[test]
    fn unmatched_pattern_falls_back_to_first_with_warning() {
        let conf = LoaderConf::parse("default nothing-*.conf\n");
        let choice = systemd_boot_default(Some(&conf), &entries()).unwrap();
        assert_eq!(choice.index, 0);
        assert!(choice
            .warnings
            .iter()
            .any(|w| w.contains("matches no entry")));
        assert!(systemd_boot_default(None, &[]).is_none());
    }

    #[test]
    fn glob_features() {
        assert!(glob_match("arch-*", "arch-6.1.conf"));
        assert!(glob_match("*.conf", "a.conf"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("a", "ab"));
        assert!(glob_match("[", "["));
    }

    proptest! {
        #[test]
        fn glob_never_panics(p in "[a-c*?\\[\\]!^-]{0,12}", t in "[a-c\\[\\]-]{0,12}") {
            let _ = glob_match(&p, &t);
        }

        #[test]
        fn render_of_parse_is_identity(text in "(\\PC|[\n\t #])*") {
            prop_assert_eq!(LoaderConf::parse(&text).render(), text);
        }
    }
}
