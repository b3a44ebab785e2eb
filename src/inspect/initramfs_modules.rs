//! `/etc/initramfs-tools/modules`: one module per line (optionally with
//! arguments) that initramfs-tools forces into the initramfs. Adding a
//! module appends a line; every other byte is kept.

use super::lines::{append, content, physical_lines};
use super::modprobe_d::normalize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsModules {
    lines: Vec<String>,
}

impl InitramfsModules {
    pub fn parse(text: &str) -> Self {
        InitramfsModules {
            lines: physical_lines(text),
        }
    }

    pub fn render(&self) -> String {
        self.lines.concat()
    }

    /// The modules listed, normalized (`-` → `_`), with their line numbers.
    pub fn modules(&self) -> Vec<(usize, String)> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let first = content(raw).split_whitespace().next()?;
                (!first.starts_with('#')).then(|| (i + 1, normalize(first)))
            })
            .collect()
    }

    pub fn contains(&self, module: &str) -> bool {
        let module = normalize(module);
        self.modules().iter().any(|(_, m)| *m == module)
    }

    /// Appends the modules not listed yet; returns those added.
    pub fn add(&mut self, modules: &[&str]) -> Vec<String> {
        let mut added = Vec::new();
        for module in modules {
            if !self.contains(module) {
                append(&mut self.lines, module);
                added.push(module.to_string());
            }
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEBIAN: &str = "# List of modules that you want to include in your initramfs.\n# Syntax:  module_name [args ...]\n#\n# raid1\n# sd_mod\nhv-vmbus\nnvme_core io_timeout=240";

    #[test]
    fn modules_and_idempotent_add() {
        let mut m = InitramfsModules::parse(DEBIAN);
        assert_eq!(
            m.modules(),
            [(6, "hv_vmbus".to_string()), (7, "nvme_core".to_string())]
        );
        assert!(!m.contains("sd_mod"), "commented out");
        assert_eq!(m.add(&["hv_vmbus", "hv_storvsc"]), ["hv_storvsc"]);
        assert_eq!(m.render(), format!("{DEBIAN}\nhv_storvsc\n"));
        assert!(m.add(&["hv_storvsc"]).is_empty());
    }

    proptest! {
        #[test]
        fn render_is_identity(text in "(\\PC|[\n\t #-])*") {
            prop_assert_eq!(InitramfsModules::parse(&text).render(), text);
        }

        #[test]
        fn add_keeps_existing_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut m = InitramfsModules::parse(&text);
            m.add(&["hv_storvsc"]);
            let out = m.render();
            prop_assert!(out.starts_with(&text));
            prop_assert!(m.contains("hv_storvsc"));
        }
    }
}
