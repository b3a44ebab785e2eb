//! `/etc/default/grub`: shell variable assignments read by `grub-mkconfig`.
//!
//! Parsed as logical lines (an assignment may span lines inside quotes or
//! after a backslash). Values keep `$VAR` references and command
//! substitutions literal; nothing is executed. Editing changes only the
//! value of the assignment concerned (minimal re-quoting); every other line
//! keeps its bytes.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::cmdline::{CmdlineEdit, KernelCmdline};
use crate::rootfs::RootDir;

pub const PATH: &str = "/etc/default/grub";

/// Reads the target's `/etc/default/grub`; `None` when it does not exist.
pub fn load(root: &RootDir) -> Result<Option<DefaultGrub>> {
    let text = root
        .read_string_optional(PATH)
        .with_context(|| format!("reading {PATH}"))?;
    Ok(text.map(|t| DefaultGrub::parse(&t)))
}

/// grub-mkconfig sources these after [`PATH`], in byte order of their names.
pub const DROPIN_DIR: &str = "/etc/default/grub.d";

/// One file grub-mkconfig sources, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedFile {
    pub path: String,
    pub file: DefaultGrub,
}

/// The paths grub-mkconfig sources, in its order: [`PATH`] (if it exists),
/// then every `*.cfg` of [`DROPIN_DIR`] byte-sorted (its shell glob order).
pub fn source_paths(root: &RootDir) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    if root.is_file(PATH) {
        paths.push(PATH.to_string());
    }
    let mut dropins: Vec<Vec<u8>> = root
        .list_dir(DROPIN_DIR)
        .with_context(|| format!("listing {DROPIN_DIR}"))?
        .into_iter()
        .map(|e| e.name.into_encoded_bytes())
        .filter(|name| name.ends_with(b".cfg"))
        .collect();
    dropins.sort();
    for name in dropins {
        let path = format!("{DROPIN_DIR}/{}", String::from_utf8_lossy(&name));
        // `[ -e "$x" ] && . "$x"`: a dangling link or a directory is skipped.
        if root.is_file(&path) {
            paths.push(path);
        }
    }
    Ok(paths)
}

/// Reads every file grub-mkconfig sources, in order (empty when none exists).
pub fn load_all(root: &RootDir) -> Result<Vec<SourcedFile>> {
    source_paths(root)?
        .into_iter()
        .map(|path| {
            let text = root
                .read_string(&path)
                .with_context(|| format!("reading {path}"))?;
            Ok(SourcedFile {
                file: DefaultGrub::parse(&text),
                path,
            })
        })
        .collect()
}

/// The effective value of one variable after all files are sourced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Shell-expanded; the quote-stripped text when it could not be expanded.
    pub value: String,
    /// The file and 1-based line of the assignment that takes effect.
    pub path: String,
    pub line: usize,
    /// Why the value was kept unexpanded (command substitution, `${x:-y}`, …).
    pub unexpanded: Option<String>,
    /// The deciding assignment refers to the variable's earlier value
    /// (`X="$X more"`), so earlier files still contribute.
    pub extends_earlier: bool,
}

/// The variables as grub-mkconfig sees them after sourcing [`PATH`] and
/// then the [`DROPIN_DIR`] files: a later assignment wins, and `$VAR` /
/// `${VAR}` expand to the value at that point, as in sh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubSettings {
    settings: BTreeMap<String, Setting>,
    /// Every file assigning each variable, in sourcing order.
    assigned_in: BTreeMap<String, Vec<String>>,
    sources: Vec<String>,
}

impl GrubSettings {
    pub fn merge(files: &[SourcedFile]) -> Self {
        let mut merged = GrubSettings::default();
        for source in files {
            merged.sources.push(source.path.clone());
            for line in &source.file.lines {
                let Some(assignment) = &line.assignment else {
                    continue;
                };
                let raw = &line.raw[assignment.value_start..assignment.value_end];
                let lookup = |name: &str| merged.settings.get(name).map(|s| s.value.clone());
                let (value, unexpanded, refs) = match expand_word(raw, &lookup) {
                    Ok(expanded) => (expanded.value, None, expanded.refs),
                    Err(why) => (assignment.value.clone(), Some(why), Vec::new()),
                };
                let setting = Setting {
                    value,
                    path: source.path.clone(),
                    line: line.number,
                    unexpanded,
                    extends_earlier: refs.iter().any(|r| r == &assignment.name),
                };
                merged.settings.insert(assignment.name.clone(), setting);
                let files = merged
                    .assigned_in
                    .entry(assignment.name.clone())
                    .or_default();
                if files.last() != Some(&source.path) {
                    files.push(source.path.clone());
                }
            }
        }
        merged
    }

    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.settings.get(name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(|s| s.value.as_str())
    }

    /// The files that assign `name`, in sourcing order.
    pub fn files_assigning(&self, name: &str) -> &[String] {
        self.assigned_in.get(name).map_or(&[], Vec::as_slice)
    }

    /// The files sourced, in order.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expanded {
    value: String,
    /// Variable names referenced.
    refs: Vec<String>,
}

/// Expands a raw shell word the way sh does in an assignment (no field
/// splitting): quotes and backslashes removed, `$NAME` / `${NAME}` replaced
/// (unset names by nothing). Anything else that would run or compute
/// something is an `Err` naming it.
fn expand_word(raw: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, String> {
    let mut out = Expanded {
        value: String::new(),
        refs: Vec::new(),
    };
    let mut chars = raw.char_indices().peekable();
    let mut in_double = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\n')) => {}
                Some((_, next)) if !in_double || matches!(next, '$' | '`' | '"' | '\\') => {
                    out.value.push(next)
                }
                Some((_, next)) => {
                    out.value.push('\\');
                    out.value.push(next);
                }
                None => out.value.push('\\'),
            },
            '\'' if !in_double => {
                for (_, q) in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    out.value.push(q);
                }
            }
            '"' => in_double = !in_double,
            '`' => return Err("a command substitution (`…`)".to_string()),
            '$' => {
                let rest = &raw[i + 1..];
                let name_len = rest
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                let name = if rest.starts_with('{') {
                    let close = rest
                        .find('}')
                        .ok_or_else(|| "an unterminated ${".to_string())?;
                    let inner = &rest[1..close];
                    if !is_name(inner) {
                        return Err(format!("the parameter expansion ${{{inner}}}"));
                    }
                    for _ in 0..close + 1 {
                        chars.next();
                    }
                    inner
                } else if rest.starts_with('(') {
                    return Err("a command substitution $(…)".to_string());
                } else if name_len > 0 && !rest.as_bytes()[0].is_ascii_digit() {
                    for _ in 0..name_len {
                        chars.next();
                    }
                    &rest[..name_len]
                } else if rest.starts_with(|c: char| "?$!#@*-0123456789".contains(c)) {
                    return Err(format!("the special parameter ${}", &rest[..1]));
                } else {
                    out.value.push('$');
                    continue;
                };
                out.value.push_str(&lookup(name).unwrap_or_default());
                out.refs.push(name.to_string());
            }
            other => out.value.push(other),
        }
    }
    Ok(out)
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && !text.as_bytes()[0].is_ascii_digit()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub const CMDLINE_LINUX: &str = "GRUB_CMDLINE_LINUX";
pub const CMDLINE_LINUX_DEFAULT: &str = "GRUB_CMDLINE_LINUX_DEFAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    None,
    Single,
    Double,
    /// Several quoted/unquoted parts, `$(…)` or backticks: rewritten whole.
    Mixed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    name: String,
    /// Byte range of the value word inside the line's raw text.
    value_start: usize,
    value_end: usize,
    /// The value with shell quoting removed (`$VAR` kept literal).
    value: String,
    quoting: Quoting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    raw: String,
    /// 1-based number of the first physical line.
    number: usize,
    assignment: Option<Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultGrub {
    lines: Vec<Line>,
    warnings: Vec<String>,
}

impl DefaultGrub {
    /// Parses any text; never fails. Unterminated quotes give a warning.
    pub fn parse(text: &str) -> Self {
        let mut lines = Vec::new();
        let mut warnings = Vec::new();
        let mut pos = 0;
        let mut number = 1;
        while pos < text.len() {
            let rest = &text[pos..];
            let (len, assignment, unterminated) = scan_logical_line(rest);
            let raw = rest[..len].to_string();
            if unterminated {
                warnings.push(format!(
                    "line {number}: unterminated quote; the value runs to the end of the file"
                ));
            }
            let physical = raw.matches('\n').count();
            lines.push(Line {
                raw,
                number,
                assignment,
            });
            number += physical.max(1);
            pos += len.max(1);
        }
        if text.contains("\r\n") {
            warnings.push("CRLF line endings: the shell keeps the carriage return in every value (e.g. GRUB_DEFAULT=\"0\\r\")".to_string());
        }
        DefaultGrub { lines, warnings }
    }

    pub fn render(&self) -> String {
        self.lines.iter().map(|l| l.raw.as_str()).collect()
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn last_assignment(&self, name: &str) -> Option<(usize, &Assignment)> {
        self.lines.iter().enumerate().rev().find_map(|(i, l)| {
            l.assignment
                .as_ref()
                .filter(|a| a.name == name)
                .map(|a| (i, a))
        })
    }

    /// The value of the last assignment to `name`, quotes removed
    /// (`$VAR` references kept literal).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.last_assignment(name).map(|(_, a)| a.value.as_str())
    }

    /// The 1-based line number of the effective assignment to `name`.
    pub fn line_of(&self, name: &str) -> Option<usize> {
        self.last_assignment(name)
            .map(|(i, _)| self.lines[i].number)
    }

    /// The value with `$NAME` / `${NAME}` references to earlier assignments
    /// in this file expanded (unknown names expand to nothing, as in sh).
    pub fn get_expanded(&self, name: &str) -> Option<String> {
        let (index, _) = self.last_assignment(name)?;
        let mut vars: Vec<(String, String)> = Vec::new();
        for line in &self.lines[..=index] {
            if let Some(a) = &line.assignment {
                let expanded = expand(&a.value, &vars);
                vars.retain(|(n, _)| n != &a.name);
                vars.push((a.name.clone(), expanded));
            }
        }
        vars.into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets `name` to `value`: the last assignment's value is replaced with
    /// minimal quoting, or `NAME="value"` is appended. Returns whether the
    /// text changed.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        if self.get(name) == Some(value) {
            return false;
        }
        match self.last_assignment(name).map(|(i, a)| (i, a.clone())) {
            Some((index, assignment)) => {
                let quoted = quote_like(value, assignment.quoting);
                self.replace_value(index, &assignment, &quoted);
            }
            None => {
                let mut raw = String::new();
                if !self.render().is_empty() && !self.render().ends_with('\n') {
                    raw.push('\n');
                }
                raw.push_str(&format!("{name}={}\n", quote_like(value, Quoting::Double)));
                let number = self
                    .lines
                    .last()
                    .map_or(1, |l| l.number + l.raw.matches('\n').count());
                let reparsed = DefaultGrub::parse(&raw);
                for mut line in reparsed.lines {
                    line.number += number - 1;
                    self.lines.push(line);
                }
            }
        }
        true
    }

    fn replace_value(&mut self, index: usize, assignment: &Assignment, new_value_text: &str) {
        let line = &mut self.lines[index];
        let mut raw = String::with_capacity(line.raw.len() + new_value_text.len());
        raw.push_str(&line.raw[..assignment.value_start]);
        raw.push_str(new_value_text);
        raw.push_str(&line.raw[assignment.value_end..]);
        let number = line.number;
        let (_, reparsed, _) = scan_logical_line(&raw);
        *line = Line {
            raw,
            number,
            assignment: reparsed,
        };
    }

    /// `GRUB_CMDLINE_LINUX` as a command line (unquoted; `$VAR` literal).
    pub fn cmdline_linux(&self) -> Option<KernelCmdline> {
        self.get(CMDLINE_LINUX).map(KernelCmdline::parse)
    }

    /// `GRUB_CMDLINE_LINUX_DEFAULT` (used for the normal, non-recovery entries).
    pub fn cmdline_linux_default(&self) -> Option<KernelCmdline> {
        self.get(CMDLINE_LINUX_DEFAULT).map(KernelCmdline::parse)
    }

    /// Applies a command-line edit to the value of `name`, keeping its
    /// quoting and any `$VAR` references: inside double or single quotes the
    /// raw text between the quotes is edited directly.
    pub fn edit_cmdline(&mut self, name: &str, edit: &CmdlineEdit) -> bool {
        let Some((index, assignment)) = self.last_assignment(name).map(|(i, a)| (i, a.clone()))
        else {
            return match edit {
                CmdlineEdit::Add(arg) | CmdlineEdit::SetOnly(arg) | CmdlineEdit::AddToList(arg) => {
                    self.set(name, arg)
                }
                _ => false,
            };
        };
        let raw_value = &self.lines[index].raw[assignment.value_start..assignment.value_end];
        let (open, close) = match assignment.quoting {
            Quoting::Double if raw_value.len() >= 2 => ("\"", "\""),
            Quoting::Single if raw_value.len() >= 2 => ("'", "'"),
            _ => {
                let mut cmdline = KernelCmdline::parse(&assignment.value);
                if !edit.apply(&mut cmdline) {
                    return false;
                }
                let value = cmdline.to_string();
                let quoting = if assignment.quoting == Quoting::Mixed {
                    Quoting::Double
                } else {
                    assignment.quoting
                };
                let quoted = quote_like(&value, quoting);
                self.replace_value(index, &assignment, &quoted);
                return true;
            }
        };
        let inner = &raw_value[1..raw_value.len() - 1];
        let edit = match edit {
            CmdlineEdit::Add(arg) if open == "\"" => {
                CmdlineEdit::Add(escape_arg_for_double_quotes(arg))
            }
            CmdlineEdit::SetOnly(arg) if open == "\"" => {
                CmdlineEdit::SetOnly(escape_arg_for_double_quotes(arg))
            }
            CmdlineEdit::Add(arg) | CmdlineEdit::SetOnly(arg) if arg.contains('\'') => {
                // Cannot be written inside single quotes: requote the whole value.
                let mut cmdline = KernelCmdline::parse(&assignment.value);
                if !edit.apply(&mut cmdline) {
                    return false;
                }
                let quoted = quote_like(&cmdline.to_string(), Quoting::Double);
                self.replace_value(index, &assignment, &quoted);
                return true;
            }
            other => other.clone(),
        };
        let mut cmdline = KernelCmdline::parse(inner);
        if !edit.apply(&mut cmdline) {
            return false;
        }
        let new_text = format!("{open}{cmdline}{close}");
        self.replace_value(index, &assignment, &new_text);
        true
    }

    /// Adds a kernel argument to `GRUB_CMDLINE_LINUX` (all entries, including recovery).
    pub fn add_kernel_arg(&mut self, arg: &str) -> bool {
        self.edit_cmdline(CMDLINE_LINUX, &CmdlineEdit::Add(arg.to_string()))
    }

    /// Removes a kernel argument key from both `GRUB_CMDLINE_LINUX` and
    /// `GRUB_CMDLINE_LINUX_DEFAULT`.
    pub fn remove_kernel_arg(&mut self, key: &str) -> bool {
        let edit = CmdlineEdit::RemoveKey(key.to_string());
        let a = self.edit_cmdline(CMDLINE_LINUX, &edit);
        let b = self.edit_cmdline(CMDLINE_LINUX_DEFAULT, &edit);
        a || b
    }
}

/// Scans one logical line from the start of `text`. Returns its length
/// (including the newline), the assignment if it is one, and whether a quote
/// was left open.
fn scan_logical_line(text: &str) -> (usize, Option<Assignment>, bool) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    let mut assignment = None;
    let mut unterminated = false;
    let mut end;
    if bytes.get(i) == Some(&b'#') {
        end = i;
    } else {
        if text[i..].starts_with("export") {
            let after = i + "export".len();
            if matches!(bytes.get(after), Some(b' ' | b'\t')) {
                i = after;
                while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                    i += 1;
                }
            }
        }
        let name_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let is_name = i > name_start && !bytes[name_start].is_ascii_digit();
        if is_name && bytes.get(i) == Some(&b'=') {
            let value_start = i + 1;
            let word = scan_word(text, value_start);
            unterminated = word.unterminated;
            assignment = Some(Assignment {
                name: text[name_start..i].to_string(),
                value_start,
                value_end: word.end,
                value: word.value,
                quoting: word.quoting,
            });
            end = word.end;
        } else {
            end = i;
        }
    }
    // The rest of the line (comments, further commands) up to the newline,
    // following backslash-newline continuations.
    while end < bytes.len() {
        match bytes[end] {
            b'\\' if bytes.get(end + 1) == Some(&b'\n') => end += 2,
            b'\n' => return (end + 1, assignment, unterminated),
            _ => end += 1,
        }
    }
    (bytes.len(), assignment, unterminated)
}

struct Word {
    end: usize,
    value: String,
    quoting: Quoting,
    unterminated: bool,
}

/// Reads a shell word starting at `start`: up to unquoted whitespace, `;`,
/// or a newline. Handles '…', "…" (with \ escapes), backslash escapes,
/// backticks and `$(…)` (kept literal).
fn scan_word(text: &str, start: usize) -> Word {
    let bytes = text.as_bytes();
    let mut value = String::new();
    let mut i = start;
    // What each run of the word was, to tell a word quoted as a whole (which
    // an edit can re-quote the same way) from one that mixes quoting.
    let mut parts: Vec<Quoting> = Vec::new();
    let mut unterminated = false;
    // Start of the plain text not yet copied into `value`. Backticks and
    // `$(…)` do not move it: their text stays in the value as written.
    let mut chars_start = i;
    let push_plain = |value: &mut String, from: usize, to: usize| value.push_str(&text[from..to]);
    while i < bytes.len() {
        let closed = match bytes[i] {
            b' ' | b'\t' | b'\n' | b';' => break,
            b'\'' => {
                push_plain(&mut value, chars_start, i);
                let closed;
                (i, closed) = single_quoted(text, i, &mut value);
                parts.push(Quoting::Single);
                chars_start = i;
                closed
            }
            b'"' => {
                push_plain(&mut value, chars_start, i);
                let closed;
                (i, closed) = double_quoted(text, i, &mut value);
                parts.push(Quoting::Double);
                chars_start = i;
                closed
            }
            b'\\' => {
                push_plain(&mut value, chars_start, i);
                // Backslash-newline is a continuation; otherwise the next char is literal.
                let next_len = text[i + 1..].chars().next().map_or(0, char::len_utf8);
                if bytes.get(i + 1) != Some(&b'\n') {
                    value.push_str(&text[i + 1..i + 1 + next_len]);
                }
                i += 1 + next_len;
                parts.push(Quoting::Mixed);
                chars_start = i;
                true
            }
            b'`' => {
                let closed;
                (i, closed) = backticks_end(text, i);
                parts.push(Quoting::Mixed);
                closed
            }
            b'$' if bytes.get(i + 1) == Some(&b'(') => {
                let closed;
                (i, closed) = command_substitution_end(text, i);
                parts.push(Quoting::Mixed);
                closed
            }
            _ => {
                i += 1;
                if parts.last() != Some(&Quoting::None) {
                    parts.push(Quoting::None);
                }
                true
            }
        };
        unterminated |= !closed;
    }
    let end = i.min(bytes.len());
    push_plain(&mut value, chars_start.min(end), end);
    let quoting = match parts.as_slice() {
        [] | [Quoting::None] => Quoting::None,
        [Quoting::Single] => Quoting::Single,
        [Quoting::Double] => Quoting::Double,
        _ => Quoting::Mixed,
    };
    Word {
        end,
        value,
        quoting,
        unterminated,
    }
}

/// `'…'` at `i`, its text appended to `value` as is; the index after it,
/// and whether it was closed.
fn single_quoted(text: &str, i: usize, value: &mut String) -> (usize, bool) {
    match text[i + 1..].find('\'') {
        Some(close) => {
            value.push_str(&text[i + 1..i + 1 + close]);
            (i + close + 2, true)
        }
        None => {
            value.push_str(&text[i + 1..]);
            (text.len(), false)
        }
    }
}

/// `"…"` at `i`: `\` escapes only `"`, `\`, `$`, `` ` `` and a newline (a
/// continuation), as in sh; the index after it, and whether it was closed.
fn double_quoted(text: &str, mut i: usize, value: &mut String) -> (usize, bool) {
    let bytes = text.as_bytes();
    i += 1;
    let mut closed = false;
    let mut seg_start = i;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\' | b'$' | b'`' | b'\n')) => {
                value.push_str(&text[seg_start..i]);
                if bytes[i + 1] != b'\n' {
                    value.push(bytes[i + 1] as char);
                }
                i += 2;
                seg_start = i;
            }
            b'"' => {
                closed = true;
                break;
            }
            _ => i += 1,
        }
    }
    value.push_str(&text[seg_start..i.min(bytes.len())]);
    if closed {
        i += 1;
    }
    (i, closed)
}

/// The index after the `` `…` `` at `i`, and whether it was closed.
fn backticks_end(text: &str, i: usize) -> (usize, bool) {
    match text[i + 1..].find('`') {
        Some(close) => (i + close + 2, true),
        None => (text.len(), false),
    }
}

/// The index after the `$(…)` at `i` (nested parentheses counted), and
/// whether it was closed.
fn command_substitution_end(text: &str, mut i: usize) -> (usize, bool) {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    i += 1;
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (i, depth == 0)
}

fn escape_double(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a new kernel argument for use inside double quotes (`$` too, so
/// it stays literal).
fn escape_arg_for_double_quotes(arg: &str) -> String {
    escape_double(arg).replace('$', "\\$")
}

/// Quotes a value for the shell, keeping the original style when it can hold it.
fn quote_like(value: &str, style: Quoting) -> String {
    let plain_ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,:/=+@%".contains(c));
    match style {
        Quoting::None if plain_ok => value.to_string(),
        Quoting::Single if !value.contains('\'') => format!("'{value}'"),
        // `$` stays unescaped so `$GRUB_CMDLINE_LINUX`-style references keep working.
        _ => format!("\"{}\"", escape_double(value)),
    }
}

/// `$NAME` / `${NAME}` replaced by the latest value in `vars`, with the
/// one expansion GRUB's own scripts use (see [`super::bls::expand_grub_vars`]).
fn expand(value: &str, vars: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    super::bls::expand_grub_vars(value, &lookup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Debian 12 / Ubuntu default file (grub2-common), with an Azure-style cmdline.
    const UBUNTU: &str = r#"# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT_STYLE=hidden
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"
GRUB_CMDLINE_LINUX="console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0,115200 rootdelay=300"

# Uncomment to enable BadRAM filtering, modify to suit your needs
#GRUB_BADRAM="0x01234567,0xfefefefe,0x89abcdef,0xefefefef"
export GRUB_DISABLE_OS_PROBER=true
"#;

    const RHEL9: &str = "GRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\nGRUB_DEFAULT=saved\nGRUB_DISABLE_SUBMENU=true\nGRUB_TERMINAL_OUTPUT=\"console\"\nGRUB_CMDLINE_LINUX=\"crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet\"\nGRUB_DISABLE_RECOVERY=\"true\"\nGRUB_ENABLE_BLSCFG=true\n";

    #[test]
    fn reads_values_with_each_quoting() {
        let g = DefaultGrub::parse(UBUNTU);
        assert_eq!(g.get("GRUB_DEFAULT"), Some("0"));
        assert_eq!(g.get("GRUB_CMDLINE_LINUX_DEFAULT"), Some("quiet splash"));
        assert_eq!(
            g.get("GRUB_DISTRIBUTOR"),
            Some("`lsb_release -i -s 2> /dev/null || echo Debian`")
        );
        assert_eq!(g.get("GRUB_DISABLE_OS_PROBER"), Some("true"));
        assert_eq!(g.get("GRUB_BADRAM"), None, "commented out");
        assert_eq!(g.line_of("GRUB_CMDLINE_LINUX"), Some(11));
        assert_eq!(g.render(), UBUNTU);
        let r = DefaultGrub::parse(RHEL9);
        assert_eq!(
            r.get("GRUB_DISTRIBUTOR"),
            Some("$(sed 's, release .*$,,g' /etc/system-release)")
        );
        assert_eq!(r.get("GRUB_DEFAULT"), Some("saved"));
        assert!(r.warnings().is_empty());
    }

    #[test]
    fn set_requotes_minimally_and_touches_one_line() {
        let mut g = DefaultGrub::parse(UBUNTU);
        assert!(g.set(
            "GRUB_DEFAULT",
            "Advanced options for Ubuntu>Ubuntu, with Linux 5.15.0-88-generic"
        ));
        assert!(g.set("GRUB_TIMEOUT", "5"));
        let out = g.render();
        let changed: Vec<_> = UBUNTU
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            vec![
                ("GRUB_DEFAULT=0", "GRUB_DEFAULT=\"Advanced options for Ubuntu>Ubuntu, with Linux 5.15.0-88-generic\""),
                ("GRUB_TIMEOUT=0", "GRUB_TIMEOUT=5"),
            ]
        );
        let again = DefaultGrub::parse(&out);
        assert_eq!(
            again.get("GRUB_DEFAULT"),
            Some("Advanced options for Ubuntu>Ubuntu, with Linux 5.15.0-88-generic")
        );
        assert!(
            !g.set("GRUB_TIMEOUT", "5"),
            "setting the same value is a no-op"
        );
    }

    #[test]
    fn set_appends_when_absent() {
        let mut g = DefaultGrub::parse("GRUB_TIMEOUT=5");
        g.set("GRUB_SAVEDEFAULT", "true");
        assert_eq!(g.render(), "GRUB_TIMEOUT=5\nGRUB_SAVEDEFAULT=\"true\"\n");
        assert_eq!(g.get("GRUB_SAVEDEFAULT"), Some("true"));
    }

    #[test]
    fn add_and_remove_kernel_arg_keep_quotes_and_var_refs() {
        let mut g =
            DefaultGrub::parse("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX console=ttyS0\"\n");
        assert!(g.add_kernel_arg("cgroup.memory=nokmem"));
        assert_eq!(
            g.render(),
            "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX console=ttyS0 cgroup.memory=nokmem\"\n"
        );
        assert!(!g.add_kernel_arg("cgroup.memory=nokmem"));
        assert!(g.remove_kernel_arg("cgroup.memory"));
        assert_eq!(
            g.render(),
            "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX console=ttyS0\"\n"
        );

        let mut g = DefaultGrub::parse(UBUNTU);
        assert!(g.remove_kernel_arg("quiet"));
        assert!(g.add_kernel_arg("panic=10"));
        let out = g.render();
        assert!(out.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"splash\"\n"));
        assert!(out.contains("rootdelay=300 panic=10\"\n"));

        let mut g = DefaultGrub::parse("GRUB_CMDLINE_LINUX=''\n");
        g.add_kernel_arg("a=b");
        assert_eq!(g.render(), "GRUB_CMDLINE_LINUX='a=b'\n");
        let mut g = DefaultGrub::parse("GRUB_CMDLINE_LINUX=quiet\n");
        g.add_kernel_arg("a=b");
        assert_eq!(g.render(), "GRUB_CMDLINE_LINUX=\"quiet a=b\"\n");
        assert_eq!(g.get("GRUB_CMDLINE_LINUX"), Some("quiet a=b"));
    }

    #[test]
    fn new_args_are_escaped_for_their_quotes() {
        let mut g = DefaultGrub::parse("GRUB_CMDLINE_LINUX=\"quiet\"\n");
        assert!(g.add_kernel_arg("acpi_osi=\"!Windows 2015\""));
        assert_eq!(
            g.render(),
            "GRUB_CMDLINE_LINUX=\"quiet acpi_osi=\\\"!Windows 2015\\\"\"\n"
        );
        assert_eq!(
            g.get("GRUB_CMDLINE_LINUX"),
            Some("quiet acpi_osi=\"!Windows 2015\"")
        );
        let mut g = DefaultGrub::parse("GRUB_CMDLINE_LINUX='quiet'\n");
        assert!(g.edit_cmdline(CMDLINE_LINUX, &CmdlineEdit::SetOnly("x='y'".into())));
        assert_eq!(g.get("GRUB_CMDLINE_LINUX"), Some("quiet x='y'"));
        let mut g = DefaultGrub::parse("GRUB_CMDLINE_LINUX=\"root=/dev/sda1 ro root=/dev/sdb1\"\n");
        assert!(g.edit_cmdline(CMDLINE_LINUX, &CmdlineEdit::SetOnly("root=UUID=1".into())));
        assert_eq!(g.render(), "GRUB_CMDLINE_LINUX=\"ro root=UUID=1\"\n");
    }

    #[test]
    fn multi_line_values_escapes_and_expansion() {
        let text = "A=\"one\ntwo\"\nB=x\\ y\nC=\"$A ${B} \\\"q\\\"\"\nD='unterminated\n";
        let g = DefaultGrub::parse(text);
        assert_eq!(g.get("A"), Some("one\ntwo"));
        assert_eq!(g.get("B"), Some("x y"));
        assert_eq!(g.get("C"), Some("$A ${B} \"q\""));
        assert_eq!(g.get_expanded("C").as_deref(), Some("one\ntwo x y \"q\""));
        assert_eq!(g.line_of("B"), Some(3));
        assert_eq!(g.warnings().len(), 1);
        assert!(g.warnings()[0].starts_with("line 5"));
        assert_eq!(g.render(), text);
    }

    #[test]
    fn crlf_file_is_flagged() {
        let g = DefaultGrub::parse("GRUB_DEFAULT=0\r\nGRUB_TIMEOUT=5\r\n");
        assert_eq!(g.get("GRUB_DEFAULT"), Some("0\r"));
        assert!(g.warnings()[0].contains("CRLF"));
    }

    fn sourced(files: &[(&str, &str)]) -> Vec<SourcedFile> {
        files
            .iter()
            .map(|(path, text)| SourcedFile {
                path: path.to_string(),
                file: DefaultGrub::parse(text),
            })
            .collect()
    }

    #[test]
    fn dropins_override_in_order_and_name_the_deciding_file() {
        let files = sourced(&[
            (PATH, UBUNTU),
            (
                "/etc/default/grub.d/40-force-partuuid.cfg",
                "GRUB_FORCE_PARTUUID=1a2b\n",
            ),
            (
                "/etc/default/grub.d/50-cloudimg-settings.cfg",
                "GRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0\"\n",
            ),
        ]);
        let merged = GrubSettings::merge(&files);
        let cmdline = merged.get(CMDLINE_LINUX_DEFAULT).unwrap();
        assert_eq!(cmdline.value, "console=tty1 console=ttyS0");
        assert_eq!(cmdline.path, "/etc/default/grub.d/50-cloudimg-settings.cfg");
        assert_eq!(cmdline.line, 2);
        assert!(!cmdline.extends_earlier);
        assert_eq!(
            merged.files_assigning(CMDLINE_LINUX_DEFAULT),
            [PATH, "/etc/default/grub.d/50-cloudimg-settings.cfg"]
        );
        assert_eq!(merged.get("GRUB_DEFAULT").unwrap().path, PATH);
        assert_eq!(merged.value("GRUB_FORCE_PARTUUID"), Some("1a2b"));
        for (file, original) in files.iter().zip([UBUNTU, "GRUB_FORCE_PARTUUID=1a2b\n"]) {
            assert_eq!(file.file.render(), original);
        }
    }

    #[test]
    fn kdump_tools_dropin_extends_the_earlier_value() {
        let merged = GrubSettings::merge(&sourced(&[
            (PATH, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"),
            (
                "/etc/default/grub.d/kdump-tools.cfg",
                "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M\"\n",
            ),
        ]));
        let setting = merged.get(CMDLINE_LINUX_DEFAULT).unwrap();
        assert_eq!(setting.value, "quiet crashkernel=384M-:128M");
        assert_eq!(setting.path, "/etc/default/grub.d/kdump-tools.cfg");
        assert!(setting.extends_earlier);
        assert_eq!(setting.unexpanded, None);
    }

    #[test]
    fn expansion_follows_sh_quoting_and_refuses_what_it_cannot_evaluate() {
        let vars = |name: &str| (name == "A").then(|| "a b".to_string());
        let ok = |raw: &str| expand_word(raw, &vars).map(|e| e.value);
        assert_eq!(ok("\"$A ${A} x\""), Ok("a b a b x".to_string()));
        assert_eq!(
            ok("'$A'"),
            Ok("$A".to_string()),
            "single quotes are literal"
        );
        assert_eq!(ok("\"\\$A\""), Ok("$A".to_string()), "escaped dollar");
        assert_eq!(
            ok("$UNSET-x"),
            Ok("-x".to_string()),
            "unset expands to nothing"
        );
        assert_eq!(ok("\"cost: $ 5\""), Ok("cost: $ 5".to_string()));
        assert_eq!(ok("pre\"$A\"'$A'"), Ok("prea b$A".to_string()));
        assert!(ok("\"$(lsb_release -i -s)\"")
            .unwrap_err()
            .contains("command substitution"));
        assert!(ok("`uname`").unwrap_err().contains("command substitution"));
        assert!(ok("\"${A:-x}\"").unwrap_err().contains("${A:-x}"));
        assert!(ok("$1").unwrap_err().contains("special parameter"));

        let merged = GrubSettings::merge(&sourced(&[(
            PATH,
            "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n",
        )]));
        let setting = merged.get("GRUB_DISTRIBUTOR").unwrap();
        assert_eq!(
            setting.value,
            "`lsb_release -i -s 2> /dev/null || echo Debian`"
        );
        assert!(setting.unexpanded.is_some());
    }

    proptest! {
        #[test]
        fn expansion_never_panics(raw in "(\\PC|[\n'\"\\\\$`{}()])*") {
            let _ = expand_word(&raw, &|_| Some("v".to_string()));
        }

        #[test]
        fn render_of_parse_is_identity(text in "(\\PC|[\n\t '\"\\\\$`=#;(){}])*") {
            prop_assert_eq!(DefaultGrub::parse(&text).render(), text);
        }

        #[test]
        fn set_changes_only_its_line(value in "\\PC{0,30}") {
            let mut g = DefaultGrub::parse(UBUNTU);
            g.set("GRUB_TIMEOUT", &value);
            let out = g.render();
            let reparsed = DefaultGrub::parse(&out);
            prop_assert_eq!(reparsed.get("GRUB_TIMEOUT"), Some(value.as_str()));
            prop_assert_eq!(reparsed.get("GRUB_CMDLINE_LINUX"), g.get("GRUB_CMDLINE_LINUX"));
            let before: Vec<_> = UBUNTU.lines().filter(|l| !l.starts_with("GRUB_TIMEOUT=")).collect();
            let after: Vec<_> = out.lines().filter(|l| !l.starts_with("GRUB_TIMEOUT=")).collect();
            prop_assert_eq!(before, after);
        }
    }
}
