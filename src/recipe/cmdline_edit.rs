//! Small line-preserving edits of the places a kernel command line lives:
//! `GRUB_CMDLINE_LINUX` in /etc/default/grub, BLS `options` lines, grubenv
//! `kernelopts`, and `linux` lines of grub.cfg. Untouched lines stay
//! byte-identical.

/// Keys whose values are comma lists that merge instead of replace.
const LIST_KEYS: &[&str] = &["module_blacklist", "rd.driver.blacklist"];

pub fn key_of(arg: &str) -> &str {
    arg.split_once('=').map(|(k, _)| k).unwrap_or(arg)
}

/// Adds `arg` to a space-separated argument list (or replaces the value of
/// the same key; list keys merge their comma-separated values).
pub fn add_arg(args: &str, arg: &str) -> String {
    let key = key_of(arg);
    let mut words: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    if let Some(existing) = words.iter_mut().rev().find(|w| key_of(w) == key) {
        if LIST_KEYS.contains(&key) {
            let new_values = arg.split_once('=').map(|(_, v)| v).unwrap_or("");
            let mut values: Vec<String> = existing
                .split_once('=')
                .map(|(_, v)| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for value in new_values.split(',').filter(|s| !s.is_empty()) {
                if !values.iter().any(|v| v == value) {
                    values.push(value.to_string());
                }
            }
            *existing = format!("{key}={}", values.join(","));
        } else {
            *existing = arg.to_string();
        }
    } else {
        words.push(arg.to_string());
    }
    words.join(" ")
}

/// Removes every argument with `arg`'s key (or exactly `arg` when it has a value).
pub fn remove_arg(args: &str, arg: &str) -> String {
    let has_value = arg.contains('=');
    args.split_whitespace()
        .filter(|w| {
            if has_value {
                *w != arg
            } else {
                key_of(w) != arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn has_arg(args: &str, arg: &str) -> bool {
    let key = key_of(arg);
    if LIST_KEYS.contains(&key) {
        let wanted: Vec<&str> = arg
            .split_once('=')
            .map(|(_, v)| v.split(',').collect())
            .unwrap_or_default();
        return args
            .split_whitespace()
            .filter(|w| key_of(w) == key)
            .any(|w| {
                let values: Vec<&str> = w
                    .split_once('=')
                    .map(|(_, v)| v.split(',').collect())
                    .unwrap_or_default();
                wanted.iter().all(|v| values.contains(v))
            });
    }
    if arg.contains('=') {
        args.split_whitespace().rev().find(|w| key_of(w) == key) == Some(arg)
    } else {
        args.split_whitespace().any(|w| w == arg)
    }
}

/// Applies `edit` to the value of a shell assignment `NAME="..."` in a
/// /etc/default/grub-style file (the last assignment wins, as in the shell);
/// appends the assignment when absent.
pub fn edit_shell_var(text: &str, name: &str, edit: impl Fn(&str) -> String) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let position = lines.iter().rposition(|line| {
        let trimmed = line.trim_start();
        let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        trimmed.starts_with(&format!("{name}="))
    });
    match position {
        Some(index) => {
            let line = lines[index];
            let indent_len = line.len() - line.trim_start().len();
            let body = line.trim_start();
            let (prefix, rest) = body.split_at(body.find('=').map(|i| i + 1).unwrap_or(body.len()));
            let rest_trimmed = rest.trim_end_matches(['\n', '\r']);
            let (value, quote) = unquote(rest_trimmed);
            let new_value = edit(&value);
            let quote = quote.unwrap_or('"');
            let newline = &rest[rest_trimmed.len()..];
            let new_line = format!(
                "{}{prefix}{quote}{new_value}{quote}{newline}",
                &line[..indent_len]
            );
            let mut out: String = lines[..index].concat();
            out.push_str(&new_line);
            out.push_str(&lines[index + 1..].concat());
            out
        }
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{name}=\"{}\"\n", edit("")));
            out
        }
    }
}

/// The value of the last `NAME=...` assignment, unquoted.
pub fn shell_var(text: &str, name: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|line| {
            let trimmed = line.trim_start();
            let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
            trimmed.strip_prefix(&format!("{name}="))
        })
        .map(|rest| unquote(rest.trim_end()).0)
}

fn unquote(raw: &str) -> (String, Option<char>) {
    for quote in ['"', '\''] {
        if raw.len() >= 2 && raw.starts_with(quote) && raw.ends_with(quote) {
            return (raw[1..raw.len() - 1].to_string(), Some(quote));
        }
    }
    (raw.to_string(), None)
}

/// Applies `edit` to the arguments of every line starting with `keyword`
/// (BLS `options`, grub.cfg `linux`/`linuxefi` after the kernel path).
pub fn edit_keyword_lines(
    text: &str,
    keywords: &[&str],
    skip_words: usize,
    edit: impl Fn(&str) -> String,
) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            let Some(keyword) = keywords
                .iter()
                .find(|k| trimmed.starts_with(**k) && trimmed[k.len()..].starts_with([' ', '\t']))
            else {
                return line.to_string();
            };
            let indent = &line[..line.len() - trimmed.len()];
            let content = trimmed.trim_end_matches(['\n', '\r']);
            let newline = &trimmed[content.len()..];
            let mut words = content[keyword.len()..].split_whitespace();
            let fixed: Vec<&str> = words.by_ref().take(skip_words).collect();
            let args: Vec<&str> = words.collect();
            let edited = edit(&args.join(" "));
            let mut parts = vec![keyword.to_string()];
            parts.extend(fixed.iter().map(|s| s.to_string()));
            if !edited.is_empty() {
                parts.push(edited);
            }
            format!("{indent}{}{newline}", parts.join(" "))
        })
        .collect()
}

/// The argument lists of every line starting with one of `keywords`.
pub fn keyword_line_args(text: &str, keywords: &[&str], skip_words: usize) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let trimmed = line.trim_start();
            let keyword = keywords.iter().find(|k| {
                trimmed.starts_with(**k) && trimmed[k.len()..].starts_with([' ', '\t'])
            })?;
            Some(
                trimmed[keyword.len()..]
                    .split_whitespace()
                    .skip(skip_words)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn add_replace_and_merge() {
        assert_eq!(
            add_arg("quiet splash", "cgroup.memory=nokmem"),
            "quiet splash cgroup.memory=nokmem"
        );
        assert_eq!(add_arg("a panic=0 b", "panic=10"), "a panic=10 b");
        assert_eq!(
            add_arg("module_blacklist=foo", "module_blacklist=eudp"),
            "module_blacklist=foo,eudp"
        );
        assert_eq!(
            add_arg("module_blacklist=eudp", "module_blacklist=eudp"),
            "module_blacklist=eudp"
        );
        assert_eq!(
            remove_arg("a cgroup.memory=nokmem b", "cgroup.memory"),
            "a b"
        );
        assert!(has_arg(
            "x module_blacklist=a,eudp",
            "module_blacklist=eudp"
        ));
        assert!(!has_arg("panic=0", "panic=10"));
    }

    #[test]
    fn default_grub_edit_keeps_other_lines_and_quotes() {
        let text = "# comment\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX='console=ttyS0 rootdelay=300'\nGRUB_TIMEOUT=1\n";
        let out = edit_shell_var(text, "GRUB_CMDLINE_LINUX", |v| {
            add_arg(v, "cgroup.memory=nokmem")
        });
        assert_eq!(out, "# comment\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX='console=ttyS0 rootdelay=300 cgroup.memory=nokmem'\nGRUB_TIMEOUT=1\n");
        assert_eq!(shell_var(&out, "GRUB_TIMEOUT").as_deref(), Some("1"));
        let appended = edit_shell_var("GRUB_TIMEOUT=5", "GRUB_CMDLINE_LINUX", |v| add_arg(v, "x"));
        assert_eq!(appended, "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"x\"\n");
    }

    #[test]
    fn bls_options_and_grub_linux_lines() {
        let bls = "title RHEL\nlinux /vmlinuz-5.14\noptions root=/dev/mapper/rootvg-rootlv ro crashkernel=auto\n";
        let out = edit_keyword_lines(bls, &["options"], 0, |a| add_arg(a, "cgroup.memory=nokmem"));
        assert!(out.ends_with(
            "options root=/dev/mapper/rootvg-rootlv ro crashkernel=auto cgroup.memory=nokmem\n"
        ));
        let cfg = "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1 root=UUID=abc ro quiet\n\tinitrd /boot/initrd.img-6.1\n}\n";
        let out = edit_keyword_lines(cfg, &["linux", "linuxefi"], 1, |a| add_arg(a, "x=1"));
        assert!(
            out.contains("\tlinux /boot/vmlinuz-6.1 root=UUID=abc ro quiet x=1\n"),
            "{out}"
        );
        assert!(out.contains("\tinitrd /boot/initrd.img-6.1\n"));
        assert_eq!(
            keyword_line_args(&out, &["linux"], 1),
            vec!["root=UUID=abc ro quiet x=1"]
        );
    }

    proptest! {
        #[test]
        fn edits_touch_only_the_assignment_line(lines in proptest::collection::vec("[A-Za-z0-9_ #=\"'.-]{0,30}", 0..12)) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let out = edit_shell_var(&text, "GRUB_CMDLINE_LINUX", |v| add_arg(v, "nokmem"));
            let before: Vec<&str> = text.lines().collect();
            let after: Vec<&str> = out.lines().collect();
            let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            prop_assert!(changed <= 1);
            prop_assert!(after.len() == before.len() || after.len() == before.len() + 1);
        }

        #[test]
        fn add_then_has(args in "[a-z=. ]{0,40}", key in "[a-z]{1,8}", value in "[a-z0-9]{1,5}") {
            let arg = format!("{key}={value}");
            prop_assert!(has_arg(&add_arg(&args, &arg), &arg));
        }
    }
}

/// The GRUB environment block is exactly this long, padded with `#`.
pub const GRUBENV_SIZE: usize = 1024;

/// The value of `key` in a grubenv block.
pub fn grubenv_get(block: &str, key: &str) -> Option<String> {
    block
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Sets (or with `None` removes) `key` in a grubenv block, keeping it 1024 bytes.
pub fn grubenv_set(block: &str, key: &str, value: Option<&str>) -> anyhow::Result<String> {
    let mut lines: Vec<String> = block
        .lines()
        .filter(|l| {
            !l.is_empty()
                && !l.chars().all(|c| c == '#')
                && !l.starts_with("# GRUB Environment Block")
        })
        .map(str::to_string)
        .collect();
    let prefix = format!("{key}=");
    let position = lines.iter().position(|l| l.starts_with(&prefix));
    match (position, value) {
        (Some(i), Some(v)) => lines[i] = format!("{prefix}{v}"),
        (None, Some(v)) => lines.push(format!("{prefix}{v}")),
        (Some(i), None) => {
            lines.remove(i);
        }
        (None, None) => {}
    }
    let mut out = String::from("# GRUB Environment Block\n");
    for line in &lines {
        out.push_str(line);
        out.push('\n');
    }
    if out.len() > GRUBENV_SIZE {
        anyhow::bail!("the GRUB environment block would exceed {GRUBENV_SIZE} bytes");
    }
    out.push_str(&"#".repeat(GRUBENV_SIZE - out.len()));
    Ok(out)
}

#[cfg(test)]
mod grubenv_tests {
    use super::*;

    #[test]
    fn grubenv_stays_1024_bytes() {
        let block = grubenv_set("", "saved_entry", Some("abc-5.14.0")).unwrap();
        assert_eq!(block.len(), GRUBENV_SIZE);
        let block = grubenv_set(
            &block,
            "kernelopts",
            Some("root=/dev/mapper/rootvg-rootlv ro"),
        )
        .unwrap();
        assert_eq!(
            grubenv_get(&block, "saved_entry").as_deref(),
            Some("abc-5.14.0")
        );
        assert_eq!(
            grubenv_get(&block, "kernelopts").as_deref(),
            Some("root=/dev/mapper/rootvg-rootlv ro")
        );
        let block = grubenv_set(&block, "saved_entry", None).unwrap();
        assert_eq!(grubenv_get(&block, "saved_entry"), None);
        assert_eq!(block.len(), GRUBENV_SIZE);
        assert!(grubenv_set("", "k", Some(&"x".repeat(2000))).is_err());
    }
}
