//! Splitting text into physical lines that keep their terminators, so a
//! line-oriented parser can render every untouched line byte for byte.

/// `text` as lines with their `\n` (the last one may lack it).
pub fn physical_lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_string).collect()
}

/// The line without its terminator (`\n` or `\r\n`).
pub fn content(raw: &str) -> &str {
    raw.strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(raw)
}

/// Appends `line` (without terminator) to `lines`, first ending an
/// unterminated last line.
pub fn append(lines: &mut Vec<String>, line: &str) {
    if let Some(last) = lines.last_mut() {
        if !last.ends_with('\n') {
            last.push('\n');
        }
    }
    lines.push(format!("{line}\n"));
}
