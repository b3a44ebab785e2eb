//! `/etc/fstab`: entries (octal escapes decoded) with their line numbers;
//! edits change one field of one line and keep every other byte.

use serde::Serialize;

use super::lines::{content, physical_lines};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FstabEntry {
    /// 1-based line number.
    pub line: usize,
    pub spec: String,
    pub mount_point: String,
    /// `auto` when the field is missing.
    pub fstype: String,
    /// `defaults` when the field is missing.
    pub options: Vec<String>,
}

impl FstabEntry {
    pub fn has_option(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fstab {
    lines: Vec<String>,
    entries: Vec<FstabEntry>,
}

/// Decodes the octal escapes fstab(5) uses for blanks and backslashes.
pub fn decode(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

fn parse_entry(index: usize, raw: &str) -> Option<FstabEntry> {
    let line = content(raw).trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut parts = line.split_whitespace();
    let spec = decode(parts.next()?);
    let mount_point = decode(parts.next()?);
    let fstype = parts.next().unwrap_or("auto").to_string();
    let options = parts
        .next()
        .unwrap_or("defaults")
        .split(',')
        .map(str::to_string)
        .collect();
    Some(FstabEntry {
        line: index + 1,
        spec,
        mount_point,
        fstype,
        options,
    })
}

impl Fstab {
    /// Parses any text; lines that are not entries are kept as they are.
    pub fn parse(text: &str) -> Self {
        let lines = physical_lines(text);
        let entries = lines
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| parse_entry(i, raw))
            .collect();
        Fstab { lines, entries }
    }

    pub fn render(&self) -> String {
        self.lines.concat()
    }

    pub fn entries(&self) -> &[FstabEntry] {
        &self.entries
    }

    /// The entry mounting `/`.
    pub fn root(&self) -> Option<&FstabEntry> {
        self.entries.iter().find(|e| e.mount_point == "/")
    }

    fn replace_line(&mut self, line: usize, new: String) -> bool {
        let Some(raw) = line.checked_sub(1).and_then(|i| self.lines.get_mut(i)) else {
            return false;
        };
        if *raw == new {
            return false;
        }
        *raw = new;
        *self = Fstab::parse(&self.render());
        true
    }

    /// Adds a mount option to the entry on `line`; false when already there.
    pub fn add_option(&mut self, line: usize, option: &str) -> bool {
        match line.checked_sub(1).and_then(|i| self.lines.get(i)) {
            Some(raw) if parse_entry(line - 1, raw).is_some() => {
                let new = add_option_to_line(raw, option);
                self.replace_line(line, new)
            }
            _ => false,
        }
    }

    /// Replaces the source field of the entry on `line`.
    pub fn set_spec(&mut self, line: usize, spec: &str) -> bool {
        self.set_field(line, 0, spec)
    }

    /// Replaces the filesystem type field of the entry on `line` (false
    /// when the line has none).
    pub fn set_fstype(&mut self, line: usize, fstype: &str) -> bool {
        self.set_field(line, 2, fstype)
    }

    /// Replaces the options field of the entry on `line`; a line that ends
    /// after its type gets the field appended (with the line's own
    /// separator), a line without a type is left alone.
    pub fn set_options(&mut self, line: usize, options: &[String]) -> bool {
        let joined = options.join(",");
        if self.set_field(line, 3, &joined) {
            return true;
        }
        let Some(raw) = self.entry_line(line) else {
            return false;
        };
        if field_range(raw, 3).is_some() {
            return false; // already that value
        }
        let Some((start, end)) = field_range(raw, 2) else {
            return false;
        };
        let separator = if raw[..start].contains('\t') {
            '\t'
        } else {
            ' '
        };
        let new = format!("{}{separator}{joined}{}", &raw[..end], &raw[end..]);
        self.replace_line(line, new)
    }

    /// The raw text of `line` when it holds an entry.
    fn entry_line(&self, line: usize) -> Option<&String> {
        let raw = line.checked_sub(1).and_then(|i| self.lines.get(i))?;
        parse_entry(line - 1, raw).map(|_| raw)
    }

    fn set_field(&mut self, line: usize, n: usize, value: &str) -> bool {
        let Some(raw) = self.entry_line(line) else {
            return false;
        };
        // A `#` starts a comment only at the start of a line in fstab(5),
        // but the content ends at the line terminator.
        let Some((start, end)) = field_range(content(raw), n) else {
            return false;
        };
        let new = format!("{}{value}{}", &raw[..start], &raw[end..]);
        self.replace_line(line, new)
    }
}

/// Byte range of the `n`-th (0-based) whitespace-separated field.
fn field_range(line: &str, n: usize) -> Option<(usize, usize)> {
    let mut count = 0;
    let mut start = None;
    for (index, ch) in line.char_indices() {
        match (ch.is_whitespace(), start) {
            (false, None) => start = Some(index),
            (true, Some(s)) => {
                if count == n {
                    return Some((s, index));
                }
                count += 1;
                start = None;
            }
            _ => {}
        }
    }
    start.filter(|_| count == n).map(|s| (s, line.len()))
}

/// Adds an option to the 4th field of an fstab line, keeping its spacing;
/// a line without options gets none added (the field would be ambiguous).
pub fn add_option_to_line(line: &str, option: &str) -> String {
    let Some((start, end)) = field_range(line, 3) else {
        return line.to_string();
    };
    let options = &line[start..end];
    if options.split(',').any(|o| o == option) {
        return line.to_string();
    }
    format!("{}{options},{option}{}", &line[..start], &line[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEBIAN12: &str = "# /etc/fstab: static file system information.\n/dev/mapper/vg0-root /               ext4    errors=remount-ro 0       1\n# /boot was on /dev/vda1 during installation\nUUID=c81e /boot           ext2    defaults        0       2\n/dev/mapper/vg0-swap_1 none            swap    sw              0       0\n/srv/My\\040Data /data auto\n";

    #[test]
    fn entries_with_lines_and_escapes() {
        let f = Fstab::parse(DEBIAN12);
        let e = f.entries();
        assert_eq!(e.len(), 4);
        assert_eq!(f.root().map(|r| r.line), Some(2));
        assert_eq!(e[1].mount_point, "/boot");
        assert_eq!(e[1].line, 4);
        assert_eq!(e[3].spec, "/srv/My Data");
        assert_eq!(e[3].options, ["defaults"]);
        assert_eq!(f.render(), DEBIAN12);
    }

    #[test]
    fn edits_touch_one_field_of_one_line() {
        let mut f = Fstab::parse(DEBIAN12);
        assert!(f.add_option(4, "nofail"));
        assert!(!f.add_option(4, "nofail"));
        assert!(!f.add_option(1, "nofail"), "comment lines are not entries");
        assert!(f.set_spec(2, "UUID=6a0f"));
        let out = f.render();
        let changed: Vec<_> = DEBIAN12
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(
            out.contains("UUID=c81e /boot           ext2    defaults,nofail        0       2\n")
        );
        assert!(out.contains("UUID=6a0f /               ext4"));
        assert_eq!(
            add_option_to_line("UUID=x /data ext4\n", "nofail"),
            "UUID=x /data ext4\n"
        );
        assert_eq!(
            add_option_to_line("UUID=x\t/data\text4\tdefaults\t0 2\n", "nofail"),
            "UUID=x\t/data\text4\tdefaults,nofail\t0 2\n"
        );
    }

    #[test]
    fn type_and_options_fields_are_replaced_or_appended() {
        let text = "# c\nUUID=a /data xfs defaults 0 2\nUUID=b\t/srv\text4\r\nUUID=c /x\n";
        let mut f = Fstab::parse(text);
        assert!(f.set_fstype(2, "ext4"));
        assert!(!f.set_fstype(2, "ext4"));
        assert!(f.set_options(2, &["defaults".into(), "nofail".into()]));
        assert!(f.set_options(3, &["nofail".into()]));
        assert!(!f.set_options(3, &["nofail".into()]));
        assert!(!f.set_options(4, &["nofail".into()]), "no type: left alone");
        assert!(!f.set_fstype(1, "ext4"), "comments are not entries");
        assert_eq!(
            f.render(),
            "# c\nUUID=a /data ext4 defaults,nofail 0 2\nUUID=b\t/srv\text4\tnofail\r\nUUID=c /x\n"
        );
        assert_eq!(f.entries()[1].options, ["nofail"]);
    }

    proptest! {
        #[test]
        fn render_is_identity(text in "(\\PC|[\n\t #,\\\\])*") {
            prop_assert_eq!(Fstab::parse(&text).render(), text);
        }

        #[test]
        fn lossy_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut f = Fstab::parse(&text);
            for line in 0..6 {
                f.add_option(line, "nofail");
                f.set_spec(line, "UUID=x");
            }
            let _ = f.render();
        }

        #[test]
        fn add_option_changes_only_that_line(
            lines in proptest::collection::vec("[A-Za-z0-9=/_-]{1,8}[ \t]+/[a-z]{0,5}[ \t]+[a-z0-9]{1,5}[ \t]+[a-z,]{1,9}[ \t]+0 [0-2]", 1..6),
            pick in 0usize..6,
        ) {
            let text = lines.join("\n") + "\n";
            let mut f = Fstab::parse(&text);
            let line = pick % lines.len() + 1;
            f.add_option(line, "nofail");
            let out = f.render();
            for (i, (a, b)) in text.lines().zip(out.lines()).enumerate() {
                if i + 1 != line { prop_assert_eq!(a, b); }
            }
            prop_assert!(f.entries()[line - 1].has_option("nofail"));
        }
    }
}
