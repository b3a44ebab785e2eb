//! `grub.cfg`: the menu tree (menuentry / submenu with titles, ids, `linux`
//! and `initrd` lines, `set root`, `search --fs-uuid --set=root`), the
//! top-level `set default=…` statements with the `if` conditions around
//! them, `load_env`, and where `blscfg` splices in BLS entries.
//!
//! The lexer follows GRUB's script quoting ('…' literal, "…" with `\`
//! escapes, `\` outside quotes, `#` comments at word start). Unknown
//! commands are skipped, unbalanced braces give warnings, and nesting is kept
//! on an explicit stack, so arbitrary bytes never panic. Editing replaces
//! only the argument text of `linux` lines; every other byte is kept.

use serde::Serialize;

use super::cmdline::{CmdlineEdit, KernelCmdline};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LinuxCommand {
    /// `linux`, `linuxefi`, `linux16` or `kernel`.
    pub command: String,
    pub image: String,
    /// The argument text exactly as written.
    pub args: String,
    pub line: usize,
    #[serde(skip)]
    args_range: (usize, usize),
}

impl LinuxCommand {
    pub fn cmdline(&self) -> KernelCmdline {
        KernelCmdline::parse(&self.args)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct MenuEntry {
    pub title: String,
    pub id: Option<String>,
    pub classes: Vec<String>,
    pub linux: Option<LinuxCommand>,
    /// Paths from `initrd`/`initrdefi`/`initrd16` lines (variables kept literal).
    pub initrds: Vec<String>,
    /// Value of `set root=…` inside the entry.
    pub set_root: Option<String>,
    /// UUID from `search … --fs-uuid --set=root UUID`.
    pub search_uuid: Option<String>,
    pub line: usize,
    /// Defined inside an `if` (may be absent from the menu at boot).
    pub conditional: bool,
    /// Every `linux` and `initrd` line in order, with the `if` conditions
    /// inside the entry around it. `linux`/`initrds` above are the last of
    /// each whatever the conditions; [`MenuEntry::boot_files`] picks a branch.
    pub loads: Vec<EntryLoad>,
}

/// One `linux` or `initrd` line of an entry. Ubuntu cloud images
/// (`GRUB_FORCE_PARTUUID`) write both inside `if [ "${initrdfail}" = 1 ]`:
/// the `else` branch boots without an initramfs, the `then` branch is the
/// retry after a failed boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EntryLoad {
    /// Entry-local `if` conditions, innermost last (`else` prefixed `not `).
    pub conditions: Vec<String>,
    pub linux: Option<LinuxCommand>,
    pub initrds: Option<Vec<String>>,
}

impl MenuEntry {
    /// The kernel and initramfs GRUB loads, running the entry's commands
    /// with `holds` deciding each condition (`None`: unknown, taken as false).
    pub fn boot_files(
        &self,
        holds: &dyn Fn(&str) -> Option<bool>,
    ) -> (Option<&LinuxCommand>, Vec<String>) {
        let taken = |condition: &String| match condition.strip_prefix("not ") {
            Some(inner) => !holds(inner).unwrap_or(false),
            None => holds(condition).unwrap_or(false),
        };
        let mut linux = None;
        let mut initrds = Vec::new();
        for load in self.loads.iter().filter(|l| l.conditions.iter().all(taken)) {
            if let Some(l) = &load.linux {
                linux = Some(l);
            }
            if let Some(i) = &load.initrds {
                initrds = i.clone();
            }
        }
        (linux, initrds)
    }

    /// Whether the kernel or initramfs depends on a condition inside the entry.
    pub fn has_conditional_loads(&self) -> bool {
        self.loads.iter().any(|l| !l.conditions.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Submenu {
    pub title: String,
    pub id: Option<String>,
    pub line: usize,
    pub children: Vec<MenuNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MenuNode {
    Entry(MenuEntry),
    Submenu(Submenu),
    /// `blscfg` / `bls_import`: BLS entries are inserted here at boot.
    Blscfg {
        line: usize,
    },
}

/// A top-level `set NAME=VALUE` (or `NAME=VALUE`) outside entries and functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TopLevelSet {
    pub name: String,
    pub value: String,
    /// The enclosing `if` conditions, innermost last (`else` branches prefixed `not `).
    pub conditions: Vec<String>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GrubCfg {
    #[serde(skip)]
    text: String,
    pub menu: Vec<MenuNode>,
    pub sets: Vec<TopLevelSet>,
    pub load_env_line: Option<usize>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct Word {
    value: String,
    raw_start: usize,
    raw_end: usize,
    quoted: bool,
}

#[derive(Debug)]
enum Token {
    Command { words: Vec<Word>, line: usize },
    Open { line: usize },
    Close { line: usize },
}

/// Splits GRUB script into commands and block braces.
fn lex(text: &str, warnings: &mut Vec<String>) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut lexer = Lexer {
        text,
        i: 0,
        line: 1,
        warnings,
    };
    let mut tokens = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    // A command's token carries the line it starts on, even when a quoted
    // argument runs over several lines.
    let mut command_line = 1usize;

    let flush = |words: &mut Vec<Word>, tokens: &mut Vec<Token>, line: usize| {
        if !words.is_empty() {
            tokens.push(Token::Command {
                words: std::mem::take(words),
                line,
            });
        }
    };

    while lexer.i < bytes.len() {
        let c = bytes[lexer.i];
        match c {
            b' ' | b'\t' | b'\r' => lexer.i += 1,
            b'\n' | b';' => {
                flush(&mut words, &mut tokens, command_line);
                if c == b'\n' {
                    lexer.line += 1;
                }
                lexer.i += 1;
            }
            b'#' => {
                while lexer.i < bytes.len() && bytes[lexer.i] != b'\n' {
                    lexer.i += 1;
                }
            }
            _ => {
                if words.is_empty() {
                    command_line = lexer.line;
                }
                let word = lexer.word();
                let raw = &text[word.raw_start..word.raw_end];
                // Braces are block delimiters only as bare words: `"{"` and
                // `a{` are ordinary arguments.
                if !word.quoted && raw == "{" {
                    flush(&mut words, &mut tokens, command_line);
                    tokens.push(Token::Open { line: lexer.line });
                } else if !word.quoted && raw == "}" {
                    flush(&mut words, &mut tokens, command_line);
                    tokens.push(Token::Close { line: lexer.line });
                } else {
                    if words.is_empty() {
                        command_line = lexer.line;
                    }
                    words.push(word);
                }
            }
        }
    }
    flush(&mut words, &mut tokens, command_line);
    tokens
}

/// A cursor over grub.cfg's text. `line` counts every newline passed,
/// quoted and escaped ones included.
struct Lexer<'a, 'w> {
    text: &'a str,
    i: usize,
    line: usize,
    warnings: &'w mut Vec<String>,
}

impl Lexer<'_, '_> {
    /// One word from the cursor: unquoted text, `'…'`, `"…"` and `\`
    /// escapes run together up to a blank or `;`, as in a shell.
    fn word(&mut self) -> Word {
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.i;
        let mut value = String::new();
        let mut quoted = false;
        // Start of the plain text not yet copied into `value`.
        let mut seg = self.i;
        while self.i < bytes.len() {
            match bytes[self.i] {
                b' ' | b'\t' | b'\r' | b'\n' | b';' => break,
                b'\'' => {
                    value.push_str(&text[seg..self.i]);
                    quoted = true;
                    self.single_quoted(&mut value);
                    seg = self.i;
                }
                b'"' => {
                    value.push_str(&text[seg..self.i]);
                    quoted = true;
                    self.double_quoted(&mut value);
                    seg = self.i;
                }
                b'\\' => {
                    value.push_str(&text[seg..self.i]);
                    self.escaped(&mut value);
                    seg = self.i;
                }
                _ => self.i += 1,
            }
        }
        let end = self.i.min(bytes.len());
        value.push_str(&text[seg.min(end)..end]);
        Word {
            value,
            raw_start: start,
            raw_end: end,
            quoted,
        }
    }

    /// `'…'` at the cursor: everything up to the next `'` is literal.
    fn single_quoted(&mut self, value: &mut String) {
        let (text, i) = (self.text, self.i);
        let close = text[i + 1..].find('\'');
        let end = close.map_or(text.len(), |c| i + 1 + c);
        value.push_str(&text[i + 1..end]);
        self.line += text[i + 1..end].matches('\n').count();
        if close.is_none() {
            let line = self.line;
            self.warnings
                .push(format!("line {line}: unterminated single quote"));
        }
        self.i = (end + 1).min(text.len());
    }

    /// `"…"` at the cursor: `\` escapes only `"`, `\`, `$` and a newline
    /// (which joins lines); `$` is kept as written.
    fn double_quoted(&mut self, value: &mut String) {
        let text = self.text;
        let bytes = text.as_bytes();
        self.i += 1;
        let mut s = self.i;
        let mut closed = false;
        while self.i < bytes.len() {
            let i = self.i;
            match bytes[i] {
                b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\' | b'$' | b'\n')) => {
                    value.push_str(&text[s..i]);
                    if bytes[i + 1] == b'\n' {
                        self.line += 1;
                    } else {
                        value.push(bytes[i + 1] as char);
                    }
                    self.i += 2;
                    s = self.i;
                }
                b'"' => {
                    closed = true;
                    break;
                }
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                _ => self.i += 1,
            }
        }
        value.push_str(&text[s..self.i.min(bytes.len())]);
        if closed {
            self.i += 1;
        } else {
            let line = self.line;
            self.warnings
                .push(format!("line {line}: unterminated double quote"));
        }
    }

    /// `\x` outside quotes: the next character, literal; `\` newline joins lines.
    fn escaped(&mut self, value: &mut String) {
        let (text, i) = (self.text, self.i);
        let next_len = text[i + 1..].chars().next().map_or(0, char::len_utf8);
        if text.as_bytes().get(i + 1) == Some(&b'\n') {
            self.line += 1;
        } else {
            value.push_str(&text[i + 1..i + 1 + next_len]);
        }
        self.i += 1 + next_len;
    }
}

enum Frame {
    Root,
    /// The entry and how many `if` conditions were open when it started.
    Entry(Box<MenuEntry>, usize),
    Submenu {
        submenu: Submenu,
        conditional: bool,
    },
    /// Function bodies and unknown blocks: their commands do not build the menu.
    Opaque,
}

/// Parsing state: the stack of open blocks and the menu children collected
/// for each (a parallel stack so children attach to the right parent).
struct Builder {
    frames: Vec<Frame>,
    children: Vec<Vec<MenuNode>>,
    conditions: Vec<String>,
    sets: Vec<TopLevelSet>,
    load_env_line: Option<usize>,
    conditional_submenus: usize,
}

/// Deeper menus than this are treated as opaque (real configs nest 2 levels).
const MAX_DEPTH: usize = 64;

impl GrubCfg {
    /// Parses any text; never fails. Problems become warnings.
    pub fn parse(text: &str) -> Self {
        let mut warnings = Vec::new();
        let tokens = lex(text, &mut warnings);
        let mut b = Builder {
            frames: vec![Frame::Root],
            children: vec![Vec::new()],
            conditions: Vec::new(),
            sets: Vec::new(),
            load_env_line: None,
            conditional_submenus: 0,
        };
        let mut pending_block: Option<Frame> = None;
        let mut too_deep_warned = false;
        for token in tokens {
            match token {
                Token::Command { words, line } => {
                    if pending_block.take().is_some() {
                        warnings.push(format!(
                            "line {line}: expected '{{' after menuentry/submenu/function"
                        ));
                    }
                    pending_block = b.command(&words, line, text);
                }
                Token::Open { line } => {
                    let mut frame = pending_block.take().unwrap_or_else(|| {
                        warnings.push(format!("line {line}: unexpected '{{'"));
                        Frame::Opaque
                    });
                    if b.frames.len() >= MAX_DEPTH && !matches!(frame, Frame::Opaque) {
                        if !too_deep_warned {
                            warnings.push(format!("line {line}: blocks nested deeper than {MAX_DEPTH}; inner menus ignored"));
                            too_deep_warned = true;
                        }
                        frame = Frame::Opaque;
                    }
                    if matches!(
                        frame,
                        Frame::Submenu {
                            conditional: true,
                            ..
                        }
                    ) {
                        b.conditional_submenus += 1;
                    }
                    b.frames.push(frame);
                    b.children.push(Vec::new());
                }
                Token::Close { line } => {
                    if b.frames.len() <= 1 {
                        warnings.push(format!("line {line}: unmatched '}}'"));
                    } else {
                        b.close();
                    }
                }
            }
        }
        if b.frames.len() > 1 {
            warnings.push(format!(
                "{} block(s) not closed at end of file",
                b.frames.len() - 1
            ));
            while b.frames.len() > 1 {
                b.close();
            }
        }
        let menu = b.children.pop().unwrap_or_default();
        GrubCfg {
            text: text.to_string(),
            menu,
            sets: b.sets,
            load_env_line: b.load_env_line,
            warnings,
        }
    }

    pub fn render(&self) -> &str {
        &self.text
    }

    /// True when the menu comes (at least partly) from BLS entries.
    pub fn uses_blscfg(&self) -> bool {
        fn any(nodes: &[MenuNode]) -> bool {
            nodes.iter().any(|n| match n {
                MenuNode::Blscfg { .. } => true,
                MenuNode::Submenu(s) => any(&s.children),
                MenuNode::Entry(_) => false,
            })
        }
        any(&self.menu)
    }

    /// Top-level `set default=…` statements in file order.
    pub fn default_settings(&self) -> impl Iterator<Item = &TopLevelSet> {
        self.sets.iter().filter(|s| s.name == "default")
    }

    /// Every menu entry, depth first, with its `>`-path of indexes.
    pub fn entries(&self) -> Vec<(String, &MenuEntry)> {
        self.entries_with_ids()
            .into_iter()
            .map(|(path, _, entry)| (path, entry))
            .collect()
    }

    /// [`Self::entries`] with the `>`-path of `$menuentry_id_option` ids too,
    /// when the entry and every submenu above it have one. Ids survive a
    /// regenerated menu with a kernel added; index paths do not.
    pub fn entries_with_ids(&self) -> Vec<(String, Option<String>, &MenuEntry)> {
        type Found<'a> = Vec<(String, Option<String>, &'a MenuEntry)>;
        fn join(prefix: &str, item: &str) -> String {
            if prefix.is_empty() {
                item.to_string()
            } else {
                format!("{prefix}>{item}")
            }
        }
        fn walk<'a>(nodes: &'a [MenuNode], prefix: &str, ids: Option<&str>, out: &mut Found<'a>) {
            for (index, node) in nodes.iter().enumerate() {
                let path = join(prefix, &index.to_string());
                match node {
                    MenuNode::Entry(e) => {
                        let id_path = ids.zip(e.id.as_deref()).map(|(p, id)| join(p, id));
                        out.push((path, id_path, e));
                    }
                    MenuNode::Submenu(s) => {
                        let sub_ids = ids.zip(s.id.as_deref()).map(|(p, id)| join(p, id));
                        walk(&s.children, &path, sub_ids.as_deref(), out);
                    }
                    MenuNode::Blscfg { .. } => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.menu, "", Some(""), &mut out);
        out
    }

    /// Applies a command-line edit to every `linux` line (each branch of an
    /// `if` too) of every entry that `select` accepts. Only those argument texts change. Returns how many
    /// lines changed.
    pub fn edit_linux_args(
        &mut self,
        select: impl Fn(&MenuEntry) -> bool,
        edit: &CmdlineEdit,
    ) -> usize {
        self.edit_linux_cmdlines(select, |cmdline| edit.apply(cmdline))
    }

    /// Every `linux` line of every menu entry, in file order.
    pub fn linux_commands(&self) -> Vec<&LinuxCommand> {
        self.entries()
            .into_iter()
            .flat_map(|(_, entry)| entry.loads.iter().filter_map(|l| l.linux.as_ref()))
            .collect()
    }

    /// [`Self::edit_linux_args`] with any change of the parsed command line:
    /// `edit` returns whether it changed it.
    pub fn edit_linux_cmdlines(
        &mut self,
        select: impl Fn(&MenuEntry) -> bool,
        edit: impl Fn(&mut KernelCmdline) -> bool,
    ) -> usize {
        let mut edits: Vec<((usize, usize), String)> = Vec::new();
        let linux_lines = self.entries().into_iter().flat_map(|(_, entry)| {
            let selected = select(entry);
            entry
                .loads
                .iter()
                .filter_map(|l| l.linux.as_ref())
                .filter(move |_| selected)
        });
        for linux in linux_lines {
            let (start, end) = linux.args_range;
            let old = &self.text[start..end];
            let mut cmdline = KernelCmdline::parse(old);
            if !edit(&mut cmdline) {
                continue;
            }
            let mut new = cmdline.to_string();
            if old.is_empty() && !new.is_empty() {
                new.insert(0, ' ');
            }
            edits.push(((start, end), new));
        }
        edits.sort_by_key(|((start, _), _)| std::cmp::Reverse(*start));
        let count = edits.len();
        if count > 0 {
            let mut text = self.text.clone();
            for ((start, end), new) in edits {
                text.replace_range(start..end, &new);
            }
            *self = GrubCfg::parse(&text);
        }
        count
    }
}

impl Builder {
    fn at_top_level(&self) -> bool {
        self.frames.len() == 1
    }

    fn conditional(&self) -> bool {
        !self.conditions.is_empty() || self.conditional_submenus > 0
    }

    fn close(&mut self) {
        let frame = self.frames.pop();
        let children = self.children.pop().unwrap_or_default();
        let node = match frame {
            Some(Frame::Entry(entry, _)) => Some(MenuNode::Entry(*entry)),
            Some(Frame::Submenu {
                mut submenu,
                conditional,
            }) => {
                if conditional {
                    self.conditional_submenus = self.conditional_submenus.saturating_sub(1);
                }
                submenu.children = children;
                Some(MenuNode::Submenu(submenu))
            }
            _ => None,
        };
        if let (Some(node), Some(parent)) = (node, self.children.last_mut()) {
            parent.push(node);
        }
    }

    /// Handles one command; returns the frame a following `{` opens.
    fn command(&mut self, words: &[Word], line: usize, text: &str) -> Option<Frame> {
        let first = words.first()?;
        match first.value.as_str() {
            "then" | "do" => return self.command(&words[1..], line, text),
            "else" => {
                if let Some(top) = self.conditions.last_mut() {
                    *top = format!("not {top}");
                }
                return self.command(&words[1..], line, text);
            }
            "if" | "while" | "until" => {
                self.conditions.push(join_values(&words[1..]));
                return None;
            }
            "elif" => {
                if let Some(top) = self.conditions.last_mut() {
                    *top = join_values(&words[1..]);
                }
                return None;
            }
            "fi" | "done" => {
                self.conditions.pop();
                return None;
            }
            "menuentry" | "submenu" => {
                let (title, id, classes) = menu_options(&words[1..]);
                let conditional = self.conditional();
                return Some(if first.value == "menuentry" {
                    Frame::Entry(
                        Box::new(MenuEntry {
                            title,
                            id,
                            classes,
                            linux: None,
                            initrds: Vec::new(),
                            set_root: None,
                            search_uuid: None,
                            line,
                            conditional,
                            loads: Vec::new(),
                        }),
                        self.conditions.len(),
                    )
                } else {
                    Frame::Submenu {
                        submenu: Submenu {
                            title,
                            id,
                            line,
                            children: Vec::new(),
                        },
                        conditional,
                    }
                });
            }
            "function" => return Some(Frame::Opaque),
            _ => {}
        }

        if let Some(Frame::Entry(entry, depth)) = self.frames.last_mut() {
            let local = self.conditions.get(*depth..).unwrap_or_default();
            entry_command(entry, words, line, text, local);
            return None;
        }
        if !matches!(
            self.frames.last(),
            Some(Frame::Root | Frame::Submenu { .. })
        ) {
            return None;
        }
        match first.value.as_str() {
            "blscfg" | "bls_import" => {
                if let Some(children) = self.children.last_mut() {
                    children.push(MenuNode::Blscfg { line });
                }
            }
            "load_env" if self.at_top_level() => {
                self.load_env_line.get_or_insert(line);
            }
            "set" if self.at_top_level() => {
                for word in &words[1..] {
                    self.record_set(&word.value, line);
                }
            }
            assignment
                if self.at_top_level()
                    && words.len() == 1
                    && is_assignment(&text[first.raw_start..first.raw_end]) =>
            {
                self.record_set(assignment, line);
            }
            _ => {}
        }
        None
    }

    fn record_set(&mut self, assignment: &str, line: usize) {
        if let Some((name, value)) = assignment.split_once('=') {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if valid {
                self.sets.push(TopLevelSet {
                    name: name.to_string(),
                    value: value.to_string(),
                    conditions: self.conditions.clone(),
                    line,
                });
            }
        }
    }
}

/// `name=…` with an unquoted, valid variable name (the value may be quoted).
fn is_assignment(raw: &str) -> bool {
    raw.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

fn join_values(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.value.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Title, id and classes from the words after `menuentry`/`submenu`.
fn menu_options(words: &[Word]) -> (String, Option<String>, Vec<String>) {
    let mut title = None;
    let mut id = None;
    let mut classes = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let next = words.get(i + 1).map(|n| n.value.clone());
        match w.value.as_str() {
            "--id" | "$menuentry_id_option" | "${menuentry_id_option}" if !w.quoted => {
                id = next;
                i += 2;
                continue;
            }
            "--class" | "--users" | "--hotkey" | "--source" => {
                if w.value == "--class" {
                    classes.extend(next);
                }
                i += 2;
                continue;
            }
            value if value.starts_with("--") && !w.quoted => {
                if let Some(v) = value.strip_prefix("--id=") {
                    id = Some(v.to_string());
                } else if let Some(v) = value.strip_prefix("--class=") {
                    classes.push(v.to_string());
                }
            }
            value if title.is_none() => title = Some(value.to_string()),
            _ => {}
        }
        i += 1;
    }
    (title.unwrap_or_default(), id, classes)
}

fn entry_command(
    entry: &mut MenuEntry,
    words: &[Word],
    line: usize,
    text: &str,
    conditions: &[String],
) {
    let Some(first) = words.first() else { return };
    match first.value.as_str() {
        command @ ("linux" | "linuxefi" | "linux16" | "kernel") => {
            let Some(image) = words.get(1) else { return };
            let args_range = match (words.get(2), words.last()) {
                (Some(start), Some(last)) => (start.raw_start, last.raw_end),
                _ => (image.raw_end, image.raw_end),
            };
            let linux = LinuxCommand {
                command: command.to_string(),
                image: image.value.clone(),
                args: text[args_range.0..args_range.1].to_string(),
                line,
                args_range,
            };
            entry.loads.push(EntryLoad {
                conditions: conditions.to_vec(),
                linux: Some(linux.clone()),
                initrds: None,
            });
            entry.linux = Some(linux);
        }
        "initrd" | "initrdefi" | "initrd16" => {
            let initrds: Vec<String> = words[1..].iter().map(|w| w.value.clone()).collect();
            entry.loads.push(EntryLoad {
                conditions: conditions.to_vec(),
                linux: None,
                initrds: Some(initrds.clone()),
            });
            entry.initrds = initrds;
        }
        "set" => {
            for word in &words[1..] {
                if let Some(root) = word.value.strip_prefix("root=") {
                    entry.set_root = Some(root.to_string());
                }
            }
        }
        "search" | "search.fs_uuid" => {
            let values: Vec<&str> = words[1..].iter().map(|w| w.value.as_str()).collect();
            let sets_root = values.windows(2).any(|w| w == ["--set", "root"])
                || values.contains(&"--set=root")
                || first.value == "search.fs_uuid" && values.last() == Some(&"root");
            let by_uuid = first.value == "search.fs_uuid"
                || values.iter().any(|v| *v == "--fs-uuid" || *v == "-u");
            if sets_root && by_uuid {
                let uuid = if first.value == "search.fs_uuid" {
                    values.first()
                } else {
                    values.last()
                };
                entry.search_uuid = uuid.map(|u| u.to_string());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/boot/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn titles(nodes: &[MenuNode]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| match n {
                MenuNode::Entry(e) => e.title.clone(),
                MenuNode::Submenu(s) => format!("{} [{}]", s.title, s.children.len()),
                MenuNode::Blscfg { .. } => "<blscfg>".into(),
            })
            .collect()
    }

    #[test]
    fn ubuntu_2404_menu_with_advanced_submenu_and_gnulinux_ids() {
        let cfg = GrubCfg::parse(&fixture("ubuntu2404/grub.cfg"));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(
            titles(&cfg.menu),
            [
                "Ubuntu",
                "Advanced options for Ubuntu [2]",
                "UEFI Firmware Settings"
            ]
        );
        let MenuNode::Entry(first) = &cfg.menu[0] else {
            panic!()
        };
        assert_eq!(
            first.id.as_deref(),
            Some("gnulinux-simple-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb")
        );
        let linux = first.linux.as_ref().unwrap();
        assert_eq!(linux.image, "/vmlinuz-6.8.0-88-generic");
        assert_eq!(linux.args, "root=/dev/mapper/ubuntu--otus-ubuntu--lv ro");
        assert_eq!(first.initrds, ["/initrd.img-6.8.0-88-generic"]);
        assert_eq!(first.set_root.as_deref(), Some("hd0,gpt2"));
        assert_eq!(
            first.search_uuid.as_deref(),
            Some("f1b9767f-fcd7-44a2-9fcc-02bb5f8f7575")
        );
        let entries = cfg.entries();
        assert_eq!(entries[2].0, "1>1");
        assert_eq!(
            entries[2].1.id.as_deref(),
            Some("gnulinux-6.8.0-88-generic-recovery-bae9d9ac-cfb9-4e94-a5e5-faa77306bffb")
        );
        assert!(
            entries[3].1.conditional,
            "UEFI Firmware Settings is inside an if"
        );
        let defaults: Vec<_> = cfg
            .default_settings()
            .map(|s| (s.value.as_str(), s.conditions.clone()))
            .collect();
        assert_eq!(
            defaults,
            [
                ("${next_entry}", vec!["[ ${next_entry} ]".to_string()]),
                ("0", vec!["not [ ${next_entry} ]".to_string()])
            ]
        );
        assert!(cfg.load_env_line.is_some());
        assert!(!cfg.uses_blscfg());
    }

    #[test]
    fn rocky8_blscfg_and_kernelopts_fallback() {
        let cfg = GrubCfg::parse(&fixture("rocky8/grub.cfg"));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert!(cfg.uses_blscfg());
        assert_eq!(titles(&cfg.menu), ["<blscfg>"]);
        let kernelopts = cfg.sets.iter().find(|s| s.name == "kernelopts").unwrap();
        assert_eq!(
            kernelopts.value,
            "root=UUID=2f64394d-a847-4c1a-bda9-e658edc017ad ro  "
        );
        assert_eq!(
            kernelopts.conditions,
            ["-z ${kernelopts} ]".replace("-z", "[ -z")]
        );
        // The boot-counter `set default=1` is conditional, the plain one is in the else branch.
        let defaults: Vec<_> = cfg.default_settings().map(|s| s.value.as_str()).collect();
        assert_eq!(defaults, ["${next_entry}", "0", "1"]);
    }

    #[test]
    fn rhel7_titles_and_linux16_lines() {
        let cfg = GrubCfg::parse(&fixture("rhel7/grub.cfg"));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let entries = cfg.entries();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0].1.title,
            "Red Hat Enterprise Linux Server (3.10.0-327.22.2.el7.x86_64.debug) 7.2 (Maipo)"
        );
        assert_eq!(entries[1].1.linux.as_ref().unwrap().command, "linux16");
        assert_eq!(
            cfg.default_settings().last().unwrap().value,
            "${saved_entry}"
        );
    }

    #[test]
    fn rhel8_ppc_bls_entries_expanded_into_grub_cfg() {
        let cfg = GrubCfg::parse(&fixture("rhel8/grub.cfg"));
        let entries = cfg.entries();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0].1.id.as_deref(),
            Some("8e15296c9cc14deb9e3f8548d49fd6fc-4.18.0-80.11.2.el8_0.ppc64le")
        );
        assert_eq!(
            entries[0].1.linux.as_ref().unwrap().args,
            "$kernelopts $tuned_params"
        );
        assert_eq!(
            entries[0].1.initrds,
            [
                "/initramfs-4.18.0-80.11.2.el8_0.ppc64le.img",
                "$tuned_initrd"
            ]
        );
    }

    #[test]
    fn kubuntu_1304_and_fedora_submenus() {
        let cfg = GrubCfg::parse(&fixture("ubuntu1304/grub.cfg"));
        assert_eq!(cfg.menu.len(), 4, "{:?}", titles(&cfg.menu));
        let cfg = GrubCfg::parse(&fixture("fedora/grub.cfg"));
        assert_eq!(
            titles(&cfg.menu)[1],
            "Advanced options for Fedora Linux [3]"
        );
    }

    #[test]
    fn edit_linux_args_changes_only_those_bytes() {
        let original = fixture("ubuntu2404/grub.cfg");
        let mut cfg = GrubCfg::parse(&original);
        let changed =
            cfg.edit_linux_args(|_| true, &CmdlineEdit::Add("cgroup.memory=nokmem".into()));
        assert_eq!(changed, 3);
        let out = cfg.render().to_string();
        let diff: Vec<_> = original
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(diff.len(), 3);
        for (before, after) in diff {
            assert_eq!(format!("{before} cgroup.memory=nokmem"), after);
        }
        assert_eq!(
            cfg.edit_linux_args(|_| true, &CmdlineEdit::Add("cgroup.memory=nokmem".into())),
            0
        );
        cfg.edit_linux_args(|_| true, &CmdlineEdit::RemoveKey("cgroup.memory".into()));
        assert_eq!(cfg.render(), original);
    }

    #[test]
    fn edits_reach_every_branch_of_an_initrdless_entry() {
        let text = "menuentry 'U' {\n\tif [ \"${initrdfail}\" = 1 ]; then\n\t  linux\t/vmlinuz-6 root=PARTUUID=p ro\n\t  initrd\t/initrd.img-6\n\telse\n\t  linux\t/vmlinuz-6 root=PARTUUID=p ro panic=-1\n\tfi\n\tinitrdfail\n}\n";
        let mut cfg = GrubCfg::parse(text);
        let entry = &cfg.entries()[0].1;
        assert_eq!(entry.loads.len(), 3);
        assert!(entry.has_conditional_loads());
        let (linux, initrds) = entry.boot_files(&|_| Some(false));
        assert!(linux.unwrap().args.ends_with("panic=-1"));
        assert!(initrds.is_empty());
        let (linux, initrds) = entry.boot_files(&|_| Some(true));
        assert_eq!(linux.unwrap().args, "root=PARTUUID=p ro");
        assert_eq!(initrds, ["/initrd.img-6"]);
        assert_eq!(
            cfg.edit_linux_args(|_| true, &CmdlineEdit::Add("nokmem=1".into())),
            2
        );
        assert_eq!(cfg.render().matches("nokmem=1").count(), 2);
    }

    #[test]
    fn bare_assignments_count_as_set() {
        let cfg = GrubCfg::parse("default=\"${saved_entry}\"\n'x=y'\nset timeout=5 fallback=1\n");
        let sets: Vec<_> = cfg
            .sets
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            sets,
            [
                ("default", "${saved_entry}"),
                ("timeout", "5"),
                ("fallback", "1")
            ]
        );
    }

    #[test]
    fn garbage_and_unbalanced_braces_give_warnings_not_panics() {
        let cfg = GrubCfg::parse("menuentry 'a' {\n linux /v root=x\n\"unterminated\n");
        assert!(!cfg.warnings.is_empty());
        assert_eq!(cfg.entries()[0].1.linux.as_ref().unwrap().args, "root=x");
        let cfg = GrubCfg::parse("}\n}\nmenuentry\n{\n");
        assert!(cfg.warnings.iter().any(|w| w.contains("unmatched")));
        let deep = "submenu x {\n".repeat(100_000);
        let cfg = GrubCfg::parse(&deep);
        assert_eq!(cfg.menu.len(), 1);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_render_is_identity(text in "(\\PC|[\n\t '\"\\\\$#;{}])*") {
            let cfg = GrubCfg::parse(&text);
            prop_assert_eq!(cfg.render(), text.as_str());
        }

        #[test]
        fn parse_never_panics_on_lossy_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = GrubCfg::parse(&text);
        }

        #[test]
        fn edits_touch_only_linux_lines(arg in "[a-z]{1,8}=[a-z0-9]{1,5}") {
            let original = fixture("rhel7/grub.cfg");
            let mut cfg = GrubCfg::parse(&original);
            cfg.edit_linux_args(|_| true, &CmdlineEdit::Add(arg.clone()));
            let out = cfg.render();
            for (before, after) in original.lines().zip(out.lines()) {
                if before != after {
                    prop_assert!(before.trim_start().starts_with("linux16"));
                    // A new key is appended; an existing flag of the same
                    // name (`ro` for `ro=0`) is set in place.
                    prop_assert!(after.split_whitespace().any(|word| word == arg));
                }
            }
        }
    }
}
