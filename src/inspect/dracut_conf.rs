//! `dracut.conf` and `dracut.conf.d/*.conf`: the driver lists
//! (`add_drivers`, `force_drivers`, `omit_drivers`, `drivers`) as
//! `name="…"` or `name+=" … "` shell assignments. Other lines are kept as
//! they are; adding drivers appends one line.

use serde::Serialize;

use super::lines::{append, content, physical_lines};

pub const DRIVER_KEYS: [&str; 4] = ["add_drivers", "force_drivers", "omit_drivers", "drivers"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Assignment {
    /// 1-based line number.
    pub line: usize,
    pub name: String,
    /// `+=` (appends to the list) rather than `=` (replaces it).
    pub append: bool,
    pub words: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DracutConf {
    lines: Vec<String>,
    assignments: Vec<Assignment>,
}

fn parse_line(index: usize, raw: &str) -> Option<Assignment> {
    let line = content(raw).trim();
    if line.starts_with('#') {
        return None;
    }
    let (name, value) = line.split_once('=')?;
    let (name, append) = match name.strip_suffix('+') {
        Some(n) => (n, true),
        None => (name, false),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let value = value.split(" #").next().unwrap_or(value).trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some(Assignment {
        line: index + 1,
        name: name.to_string(),
        append,
        words: unquoted.split_whitespace().map(str::to_string).collect(),
    })
}

impl DracutConf {
    pub fn parse(text: &str) -> Self {
        let lines = physical_lines(text);
        let assignments = lines
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| parse_line(i, raw))
            .collect();
        DracutConf { lines, assignments }
    }

    pub fn render(&self) -> String {
        self.lines.concat()
    }

    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// The list `name` ends up with in this file (`=` resets, `+=` extends).
    pub fn list(&self, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for a in self.assignments.iter().filter(|a| a.name == name) {
            if !a.append {
                out.clear();
            }
            out.extend(a.words.iter().map(String::as_str));
        }
        out
    }

    /// Appends `add_drivers+=" … "` with the drivers this file does not
    /// already add or force; returns whether it changed.
    pub fn add_drivers(&mut self, drivers: &[&str]) -> bool {
        let present: Vec<&str> = self
            .list("add_drivers")
            .into_iter()
            .chain(self.list("force_drivers"))
            .collect();
        let missing: Vec<&str> = drivers
            .iter()
            .copied()
            .filter(|d| !present.contains(d))
            .collect();
        if missing.is_empty() {
            return false;
        }
        append(
            &mut self.lines,
            &format!("add_drivers+=\" {} \"", missing.join(" ")),
        );
        *self = DracutConf::parse(&self.render());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AZURE: &str = "# Azure\nadd_drivers+=\" hv_vmbus hv_netvsc hv_storvsc \"\nforce_drivers+=\"nvme\" # NVMe disks\nomit_drivers=\"floppy\"\nhostonly=\"yes\"\n";

    #[test]
    fn driver_lists_and_append_semantics() {
        let conf = DracutConf::parse(AZURE);
        assert_eq!(
            conf.list("add_drivers"),
            ["hv_vmbus", "hv_netvsc", "hv_storvsc"]
        );
        assert_eq!(conf.list("force_drivers"), ["nvme"]);
        assert_eq!(conf.list("omit_drivers"), ["floppy"]);
        let reset =
            DracutConf::parse("add_drivers+=\" a \"\nadd_drivers=\"b\"\nadd_drivers+=\" c \"\n");
        assert_eq!(reset.list("add_drivers"), ["b", "c"]);
        assert_eq!(conf.render(), AZURE);
    }

    #[test]
    fn add_drivers_appends_only_the_missing() {
        let mut conf = DracutConf::parse(AZURE);
        assert!(!conf.add_drivers(&["hv_vmbus", "nvme"]));
        assert!(conf.add_drivers(&["hv_vmbus", "virtio_scsi"]));
        assert_eq!(
            conf.render(),
            format!("{AZURE}add_drivers+=\" virtio_scsi \"\n")
        );
        assert!(!conf.add_drivers(&["virtio_scsi"]), "second run is a no-op");
    }

    proptest! {
        #[test]
        fn render_is_identity(text in "(\\PC|[\n\t #=+\"'])*") {
            prop_assert_eq!(DracutConf::parse(&text).render(), text);
        }

        #[test]
        fn lossy_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut conf = DracutConf::parse(&String::from_utf8_lossy(&bytes));
            conf.add_drivers(&["hv_vmbus"]);
            let _ = conf.list("add_drivers");
        }

        #[test]
        fn add_drivers_keeps_existing_lines(text in "(\\PC|[\n=+\"])*") {
            let mut conf = DracutConf::parse(&text);
            conf.add_drivers(&["zz_new"]);
            let out = conf.render();
            prop_assert!(out.starts_with(&text));
            prop_assert!(conf.list("add_drivers").contains(&"zz_new") || !out.ends_with("\"\n"));
        }
    }
}
