//! Kernel command lines (`/proc/cmdline`, GRUB `linux` lines, BLS `options`,
//! `GRUB_CMDLINE_LINUX`): parse into arguments keeping every byte, edit one
//! argument, render the rest unchanged.
//!
//! Tokenizing follows the kernel's `next_arg()`: an argument ends at
//! whitespace outside double quotes, the key is everything before the first
//! `=`, and quotes are not part of key or value (`a="b c"` is `a` = `b c`).
//! For most parameters the last occurrence wins.

use std::fmt;

/// One argument as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    raw: String,
}

impl Arg {
    /// The argument exactly as written (quotes included).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The key: text before the first `=`, quotes removed.
    pub fn key(&self) -> String {
        let key = match self.raw.find('=') {
            Some(eq) => &self.raw[..eq],
            None => &self.raw,
        };
        unquote(key)
    }

    /// The value after the first `=`, quotes removed; `None` for a bare flag.
    pub fn value(&self) -> Option<String> {
        self.raw.find('=').map(|eq| unquote(&self.raw[eq + 1..]))
    }
}

fn unquote(text: &str) -> String {
    text.chars().filter(|&c| c != '"').collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Space(String),
    Arg(Arg),
}

/// A parsed command line; renders back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelCmdline {
    segments: Vec<Segment>,
}

impl KernelCmdline {
    /// Parses any text; never fails (an unterminated quote runs to the end,
    /// as in the kernel).
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut in_space = false;
        let mut in_quote = false;
        for c in text.chars() {
            let is_space = c.is_whitespace() && !in_quote;
            if is_space != in_space && !current.is_empty() {
                segments.push(make_segment(std::mem::take(&mut current), in_space));
            }
            in_space = is_space;
            if c == '"' {
                in_quote = !in_quote;
            }
            current.push(c);
        }
        if !current.is_empty() {
            segments.push(make_segment(current, in_space));
        }
        KernelCmdline { segments }
    }

    /// All arguments in order.
    pub fn args(&self) -> impl Iterator<Item = &Arg> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Arg(arg) => Some(arg),
            Segment::Space(_) => None,
        })
    }

    /// The effective occurrence of `key` (the last one, as the kernel applies them).
    pub fn get(&self, key: &str) -> Option<&Arg> {
        self.args().filter(|a| a.key() == key).last()
    }

    /// The effective value of `key=value` (`Some(None)` for a bare flag).
    pub fn value(&self, key: &str) -> Option<Option<String>> {
        self.get(key).map(Arg::value)
    }

    /// Every value given for `key`, in order (for repeatable parameters such
    /// as `console=` or `rd.lvm.lv=`).
    pub fn values(&self, key: &str) -> Vec<Option<String>> {
        self.args()
            .filter(|a| a.key() == key)
            .map(Arg::value)
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// True when an argument with exactly this key and value is effective.
    pub fn contains_arg(&self, arg: &str) -> bool {
        let wanted = Arg {
            raw: arg.to_string(),
        };
        self.get(&wanted.key()).map(Arg::value) == Some(wanted.value())
    }

    /// Makes `arg` (`key`, `key=value`) effective: replaces the last
    /// occurrence of its key in place, or appends it. Returns whether the
    /// text changed.
    pub fn set(&mut self, arg: &str) -> bool {
        let new = Arg {
            raw: arg.to_string(),
        };
        let key = new.key();
        let last = self
            .segments
            .iter()
            .rposition(|s| matches!(s, Segment::Arg(a) if a.key() == key));
        match last {
            Some(index) => {
                if let Segment::Arg(existing) = &self.segments[index] {
                    if existing.value() == new.value() {
                        return false;
                    }
                }
                self.segments[index] = Segment::Arg(new);
                true
            }
            None => {
                self.append(new);
                true
            }
        }
    }

    /// Makes `arg` the only occurrence of its key: the last occurrence is
    /// replaced in place and earlier ones removed (for `root=` and other
    /// parameters where stale duplicates mislead readers).
    pub fn set_only(&mut self, arg: &str) -> bool {
        let key = Arg {
            raw: arg.to_string(),
        }
        .key();
        let Some(last) = self
            .segments
            .iter()
            .rposition(|s| matches!(s, Segment::Arg(a) if a.key() == key))
        else {
            return self.set(arg);
        };
        let mut changed = false;
        let mut index = 0;
        let mut last = last;
        while index < last {
            if matches!(&self.segments[index], Segment::Arg(a) if a.key() == key) {
                self.segments.remove(index);
                last -= 1;
                if index < self.segments.len() && matches!(self.segments[index], Segment::Space(_))
                {
                    self.segments.remove(index);
                    last -= 1;
                }
                changed = true;
            } else {
                index += 1;
            }
        }
        self.merge_spaces();
        self.set(arg) || changed
    }

    /// Adds `arg` unless an identical argument is already effective.
    pub fn add(&mut self, arg: &str) -> bool {
        if self.contains_arg(arg) {
            return false;
        }
        self.set(arg)
    }

    /// Appends an argument after the last one (keeps trailing whitespace last).
    fn append(&mut self, arg: Arg) {
        let insert_at = self
            .segments
            .iter()
            .rposition(|s| matches!(s, Segment::Arg(_)))
            .map(|i| i + 1);
        match insert_at {
            Some(at) => {
                self.segments.insert(at, Segment::Arg(arg));
                self.segments.insert(at, Segment::Space(" ".into()));
            }
            None => {
                // Only whitespace (or nothing): put the argument first.
                self.segments.insert(0, Segment::Arg(arg));
            }
        }
        self.merge_spaces();
    }

    /// Removes every occurrence of `key` and the whitespace before it.
    pub fn remove(&mut self, key: &str) -> bool {
        let mut changed = false;
        while let Some(index) = self
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Arg(a) if a.key() == key))
        {
            changed = true;
            self.segments.remove(index);
            if index > 0 && matches!(self.segments[index - 1], Segment::Space(_)) {
                self.segments.remove(index - 1);
            } else if index < self.segments.len()
                && matches!(self.segments[index], Segment::Space(_))
            {
                self.segments.remove(index);
            }
        }
        self.merge_spaces();
        changed
    }

    /// Removes only occurrences matching `key=value` exactly (or the bare flag).
    pub fn remove_arg(&mut self, arg: &str) -> bool {
        let wanted = Arg {
            raw: arg.to_string(),
        };
        let (key, value) = (wanted.key(), wanted.value());
        let before = self.segments.len();
        let mut index = 0;
        while index < self.segments.len() {
            let hit = matches!(&self.segments[index], Segment::Arg(a) if a.key() == key && a.value() == value);
            if hit {
                self.segments.remove(index);
                if index > 0 && matches!(self.segments[index - 1], Segment::Space(_)) {
                    self.segments.remove(index - 1);
                    index -= 1;
                } else if index < self.segments.len()
                    && matches!(self.segments[index], Segment::Space(_))
                {
                    self.segments.remove(index);
                }
            } else {
                index += 1;
            }
        }
        self.merge_spaces();
        self.segments.len() != before
    }

    fn merge_spaces(&mut self) {
        let mut merged: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for segment in self.segments.drain(..) {
            match (merged.last_mut(), segment) {
                (Some(Segment::Space(prev)), Segment::Space(next)) => prev.push_str(&next),
                (_, segment) => merged.push(segment),
            }
        }
        self.segments = merged;
    }

    pub fn is_empty(&self) -> bool {
        self.args().next().is_none()
    }

    /// True when `arg` is effective: for a [`LIST_KEYS`] key every value of
    /// `arg` is in the comma list of some occurrence, otherwise as
    /// [`Self::contains_arg`].
    pub fn holds(&self, arg: &str) -> bool {
        let key = key_of(arg);
        if !LIST_KEYS.contains(&key.as_str()) {
            return self.contains_arg(arg);
        }
        let wanted = list_values(arg);
        self.args()
            .filter(|a| a.key() == key)
            .any(|a| wanted.iter().all(|v| list_values(&a.raw).contains(v)))
    }

    /// Adds the comma-separated values of `key=v1,v2` to the last
    /// occurrence of the key (appending the argument when there is none);
    /// values already present stay where they are.
    pub fn add_to_list(&mut self, arg: &str) -> bool {
        let key = key_of(arg);
        let Some(existing) = self.get(&key) else {
            return self.set(arg);
        };
        let mut values = list_values(&existing.raw);
        let before = values.len();
        for value in list_values(arg) {
            if !values.contains(&value) {
                values.push(value);
            }
        }
        if values.len() == before {
            return false;
        }
        self.set(&format_arg(&key, Some(&values.join(","))))
    }

    /// Gives every occurrence of `key` whose value `replace` maps to
    /// `Some(new)` that new value (quoted when needed), in place.
    pub fn replace_values(&mut self, key: &str, replace: impl Fn(&str) -> Option<String>) -> bool {
        let mut changed = false;
        for segment in &mut self.segments {
            let Segment::Arg(arg) = segment else { continue };
            if arg.key() != key {
                continue;
            }
            let Some(new) = arg.value().as_deref().and_then(&replace) else {
                continue;
            };
            let raw = format_arg(key, Some(&new));
            if raw != arg.raw {
                arg.raw = raw;
                changed = true;
            }
        }
        changed
    }
}

/// Keys whose values are comma lists that an added argument merges into
/// instead of replacing (one blacklist argument collects every module).
pub const LIST_KEYS: &[&str] = &["module_blacklist", "rd.driver.blacklist"];

/// The key of one argument as written (`a="b c"` → `a`).
pub fn key_of(arg: &str) -> String {
    Arg {
        raw: arg.to_string(),
    }
    .key()
}

/// The non-empty comma-separated values of one `key=v1,v2` argument.
fn list_values(arg: &str) -> Vec<String> {
    let value = Arg {
        raw: arg.to_string(),
    }
    .value()
    .unwrap_or_default();
    value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

fn make_segment(text: String, space: bool) -> Segment {
    if space {
        Segment::Space(text)
    } else {
        Segment::Arg(Arg { raw: text })
    }
}

impl fmt::Display for KernelCmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Space(text) => f.write_str(text)?,
                Segment::Arg(arg) => f.write_str(&arg.raw)?,
            }
        }
        Ok(())
    }
}

/// Formats `key=value`, quoting the value when it contains whitespace.
pub fn format_arg(key: &str, value: Option<&str>) -> String {
    match value {
        None => key.to_string(),
        Some(v) if v.chars().any(char::is_whitespace) => format!("{key}=\"{v}\""),
        Some(v) => format!("{key}={v}"),
    }
}

/// Applies one edit to command-line text and returns the new text and
/// whether it changed; untouched arguments keep their bytes.
pub fn edit_text(text: &str, edit: &CmdlineEdit) -> (String, bool) {
    let mut cmdline = KernelCmdline::parse(text);
    let changed = edit.apply(&mut cmdline);
    (cmdline.to_string(), changed)
}

/// An edit of a kernel command line, shared by every format that holds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineEdit {
    /// Add `key[=value]` unless already effective (replacing the key's value).
    Add(String),
    /// Like `Add`, and drop earlier occurrences of the key.
    SetOnly(String),
    /// Remove every occurrence of a key.
    RemoveKey(String),
    /// Remove occurrences of exactly `key[=value]`.
    RemoveArg(String),
    /// Merge the values of a comma-list argument (`module_blacklist=a,b`).
    AddToList(String),
    /// Replace the value of `key` wherever it is none of `keep` (compared
    /// without regard to ASCII case, as device names and UUIDs are).
    ReplaceValue {
        key: String,
        keep: Vec<String>,
        value: String,
    },
}

impl CmdlineEdit {
    /// What a recipe's `add-kernel-arg` does: comma-list keys merge, other
    /// keys get the new value.
    pub fn add(arg: &str) -> Self {
        if LIST_KEYS.contains(&key_of(arg).as_str()) {
            CmdlineEdit::AddToList(arg.to_string())
        } else {
            CmdlineEdit::Add(arg.to_string())
        }
    }

    /// What a recipe's `remove-kernel-arg` does: `key` removes every
    /// occurrence, `key=value` only that exact argument.
    pub fn remove(arg: &str) -> Self {
        if arg.contains('=') {
            CmdlineEdit::RemoveArg(arg.to_string())
        } else {
            CmdlineEdit::RemoveKey(arg.to_string())
        }
    }

    pub fn apply(&self, cmdline: &mut KernelCmdline) -> bool {
        match self {
            CmdlineEdit::AddToList(arg) => cmdline.add_to_list(arg),
            CmdlineEdit::ReplaceValue { key, keep, value } => cmdline.replace_values(key, |v| {
                (!keep.iter().any(|k| k.eq_ignore_ascii_case(v))).then(|| value.clone())
            }),
            CmdlineEdit::Add(arg) => cmdline.add(arg),
            CmdlineEdit::SetOnly(arg) => cmdline.set_only(arg),
            CmdlineEdit::RemoveKey(key) => cmdline.remove(key),
            CmdlineEdit::RemoveArg(arg) => cmdline.remove_arg(arg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RHEL: &str = "root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet  $tuned_params";

    #[test]
    fn reads_keys_values_and_repeated_keys() {
        let c = KernelCmdline::parse(RHEL);
        assert_eq!(c.value("root"), Some(Some("/dev/mapper/rhel-root".into())));
        assert_eq!(c.value("ro"), Some(None));
        assert_eq!(
            c.values("rd.lvm.lv"),
            vec![Some("rhel/root".into()), Some("rhel/swap".into())]
        );
        assert_eq!(
            c.value("crashkernel"),
            Some(Some("1G-4G:192M,4G-64G:256M,64G-:512M".into()))
        );
        assert!(!c.contains("cgroup.memory"));
        assert_eq!(c.to_string(), RHEL);
    }

    #[test]
    fn last_occurrence_wins_and_quotes_group_words() {
        let c = KernelCmdline::parse(
            "console=tty0 console=ttyS0,115200 acpi_osi=\"!Windows 2015\" \"dyndbg=file x +p\"",
        );
        assert_eq!(c.value("console"), Some(Some("ttyS0,115200".into())));
        assert_eq!(c.value("acpi_osi"), Some(Some("!Windows 2015".into())));
        assert_eq!(c.value("dyndbg"), Some(Some("file x +p".into())));
        assert_eq!(c.args().count(), 4);
    }

    #[test]
    fn add_appends_after_last_argument_keeping_trailing_space() {
        let mut c = KernelCmdline::parse("root=UUID=2f64 ro  ");
        assert!(c.add("cgroup.memory=nokmem"));
        assert_eq!(c.to_string(), "root=UUID=2f64 ro cgroup.memory=nokmem  ");
        assert!(
            !c.add("cgroup.memory=nokmem"),
            "adding twice changes nothing"
        );
    }

    #[test]
    fn set_replaces_last_occurrence_in_place() {
        let mut c = KernelCmdline::parse("quiet root=/dev/sda1  ro\tsplash root=/dev/sda2 x");
        assert!(c.set("root=UUID=abc"));
        assert_eq!(
            c.to_string(),
            "quiet root=/dev/sda1  ro\tsplash root=UUID=abc x"
        );
    }

    #[test]
    fn set_only_drops_earlier_duplicates() {
        let mut c = KernelCmdline::parse("root=/dev/sda1 ro root=/dev/sdb2 quiet");
        assert!(c.set_only("root=UUID=abc"));
        assert_eq!(c.to_string(), "ro root=UUID=abc quiet");
        assert!(!c.set_only("root=UUID=abc"));
        let mut c = KernelCmdline::parse("ro");
        assert!(c.set_only("root=UUID=abc"));
        assert_eq!(c.to_string(), "ro root=UUID=abc");
    }

    #[test]
    fn remove_takes_every_occurrence_and_one_space() {
        let mut c = KernelCmdline::parse("a  module_blacklist=x b\tmodule_blacklist=y");
        assert!(c.remove("module_blacklist"));
        assert_eq!(c.to_string(), "a b");
        assert!(!c.remove("module_blacklist"));
        let mut c = KernelCmdline::parse("rhgb quiet");
        assert!(c.remove_arg("rhgb"));
        assert_eq!(c.to_string(), "quiet");
        assert!(!c.remove_arg("quiet=1"));
    }

    #[test]
    fn add_into_empty_or_blank_text() {
        let mut c = KernelCmdline::parse("");
        c.add("panic=10");
        assert_eq!(c.to_string(), "panic=10");
        let mut c = KernelCmdline::parse("  ");
        c.add("panic=10");
        assert_eq!(c.to_string(), "panic=10  ");
    }

    #[test]
    fn format_arg_quotes_only_when_needed() {
        assert_eq!(format_arg("a", Some("b c")), "a=\"b c\"");
        assert_eq!(format_arg("a", Some("b")), "a=b");
        assert_eq!(format_arg("nofb", None), "nofb");
    }

    /// What the recipes' add-/remove-kernel-arg steps do (formerly a second,
    /// whitespace-splitting editor in src/recipe).
    #[test]
    fn recipe_edits_replace_merge_and_remove_whole_quoted_arguments() {
        let edit = |text: &str, e: CmdlineEdit| edit_text(text, &e).0;
        assert_eq!(
            edit("quiet splash", CmdlineEdit::add("cgroup.memory=nokmem")),
            "quiet splash cgroup.memory=nokmem"
        );
        assert_eq!(
            edit("a panic=0 b", CmdlineEdit::add("panic=10")),
            "a panic=10 b"
        );
        assert_eq!(
            edit(
                "module_blacklist=foo",
                CmdlineEdit::add("module_blacklist=eudp")
            ),
            "module_blacklist=foo,eudp"
        );
        let (same, changed) = edit_text(
            "module_blacklist=eudp",
            &CmdlineEdit::add("module_blacklist=eudp"),
        );
        assert_eq!((same.as_str(), changed), ("module_blacklist=eudp", false));
        assert_eq!(
            edit(
                "a cgroup.memory=nokmem b",
                CmdlineEdit::remove("cgroup.memory")
            ),
            "a b"
        );
        assert_eq!(
            edit("a panic=0 panic=10", CmdlineEdit::remove("panic=0")),
            "a panic=10"
        );
        // A quoted value with spaces is one argument for every edit.
        assert_eq!(
            edit("ro a=\"b c\" quiet", CmdlineEdit::remove("a")),
            "ro quiet"
        );
        assert_eq!(
            edit("ro quiet", CmdlineEdit::add("a=\"b c\"")),
            "ro quiet a=\"b c\""
        );
        assert!(KernelCmdline::parse("ro a=\"b c\"").holds("a=\"b c\""));
        assert!(KernelCmdline::parse("x module_blacklist=a,eudp").holds("module_blacklist=eudp"));
        assert!(!KernelCmdline::parse("panic=0").holds("panic=10"));
        let root = CmdlineEdit::ReplaceValue {
            key: "root".into(),
            keep: vec!["UUID=ABC".into()],
            value: "UUID=abc".into(),
        };
        assert_eq!(edit("root=uuid=abc ro", root.clone()), "root=uuid=abc ro");
        assert_eq!(edit("root=/dev/sdc1 ro", root), "root=UUID=abc ro");
    }

    proptest! {
        #[test]
        fn add_then_holds(args in "[a-z=. ]{0,40}", key in "[a-z]{1,8}", value in "[a-z0-9]{1,5}") {
            let arg = format!("{key}={value}");
            let (text, _) = edit_text(&args, &CmdlineEdit::add(&arg));
            prop_assert!(KernelCmdline::parse(&text).holds(&arg));
        }

        #[test]
        fn list_merges_keep_every_value(old in "[a-z]{1,5}(,[a-z]{1,5}){0,3}", new in "[a-z]{1,5}") {
            let text = format!("ro module_blacklist={old} quiet");
            let arg = format!("module_blacklist={new}");
            let (merged, _) = edit_text(&text, &CmdlineEdit::add(&arg));
            let cmdline = KernelCmdline::parse(&merged);
            prop_assert!(cmdline.holds(&arg));
            let before = format!("module_blacklist={old}");
            prop_assert!(cmdline.holds(&before));
        }

        #[test]
        fn render_of_parse_is_identity(text in "(\\PC|[ \t\"=])*") {
            prop_assert_eq!(KernelCmdline::parse(&text).to_string(), text);
        }

        #[test]
        fn add_changes_only_appended_text(
            words in proptest::collection::vec("[a-z]{1,5}(=[a-z0-9]{1,4})?", 0..6),
            sep in "[ \t]{1,3}",
        ) {
            let text = words.join(&sep);
            let mut c = KernelCmdline::parse(&text);
            let changed = c.add("zz.new=1");
            prop_assert!(changed);
            let out = c.to_string();
            prop_assert!(out.starts_with(text.trim_end()));
            prop_assert!(out.contains("zz.new=1"));
            c.remove("zz.new");
            prop_assert_eq!(c.to_string(), text);
        }
    }
}
