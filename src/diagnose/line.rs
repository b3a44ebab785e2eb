//! Reading a log in large chunks and handing over only the lines that contain a
//! keyword, and normalising such a line to the kernel message it carries.
//!
//! Most lines of a console log are irrelevant. Instead of looking at every line,
//! one literal searcher (SIMD, Teddy) runs over a whole chunk; only lines with a hit are located, decoded and classified.
//! Line numbers come from counting newlines between hits.

use std::borrow::Cow;
use std::io::Read;

use anyhow::{Context, Result};

/// Bytes read per chunk; also the longest line kept whole (longer ones are cut).
const CHUNK_BYTES: usize = 1 << 20;
/// Text kept of one line for evidence and parsing.
pub const MAX_LINE_CHARS: usize = 1024;

/// Calls `on_line(line_number, bytes)` for every line (1-based numbers, `\n`
/// separated, a trailing `\r` removed) in which `keywords` matches.
pub fn scan_keyword_lines<R: Read>(
    mut reader: R,
    keywords: &aho_corasick::AhoCorasick,
    mut on_chunk: impl FnMut(&[u8]),
    mut on_line: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut filled = 0usize;
    let mut lines_before_chunk = 0u64;
    let mut at_eof = false;
    let mut last_byte = None;
    while !at_eof || filled > 0 {
        while !at_eof && filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => at_eof = true,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("reading the log"),
            }
        }
        // Process complete lines; at EOF or for an over-long line, everything.
        let process_end = match buffer[..filled].iter().rposition(|&b| b == b'\n') {
            Some(newline) if !at_eof => newline + 1,
            _ => filled,
        };
        let chunk = &buffer[..process_end];
        on_chunk(chunk);
        lines_before_chunk += scan_chunk(chunk, keywords, lines_before_chunk, &mut on_line)?;
        if let Some(&last) = chunk.last() {
            last_byte = Some(last);
        }
        buffer.copy_within(process_end..filled, 0);
        filled -= process_end;
    }
    // A last line without a newline still counts.
    Ok(lines_before_chunk + u64::from(last_byte.is_some_and(|b| b != b'\n')))
}

/// Returns the number of newlines in `chunk`.
fn scan_chunk(
    chunk: &[u8],
    keywords: &aho_corasick::AhoCorasick,
    lines_before: u64,
    on_line: &mut impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut counted_to = 0usize;
    let mut newlines = 0u64;
    let mut search_from = 0usize;
    while search_from < chunk.len() {
        let Some(hit) = keywords.find(aho_corasick::Input::new(chunk).range(search_from..)) else {
            break;
        };
        let start = memchr::memrchr(b'\n', &chunk[..hit.start()]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &chunk[hit.end()..]).map_or(chunk.len(), |i| hit.end() + i);
        newlines += count_newlines(&chunk[counted_to..start]);
        counted_to = start;
        let mut line = &chunk[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        on_line(lines_before + newlines + 1, line)?;
        search_from = end + 1;
    }
    newlines += count_newlines(&chunk[counted_to..]);
    Ok(newlines)
}

/// How many ASCII digits end `bytes`.
fn trailing_digits(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// Whether a chunk holds a message of the booted OS: a printk timestamp
/// (`[    1.234567]`), a syslog `kernel:` line, a process's `name[pid]: `
/// or systemd's `[  OK  ]`. Firmware and boot-loader chatter has none of
/// these. Stops at the first.
pub fn has_kernel_line(chunk: &[u8]) -> bool {
    if memchr::memmem::find(chunk, b" kernel: ").is_some()
        || memchr::memmem::find(chunk, b"[  OK  ]").is_some()
    {
        return true;
    }
    // `name[1234]: `: digits right after a `[`.
    let process = memchr::memmem::find_iter(chunk, b"]: ").any(|end| {
        let before = &chunk[..end];
        let digits = trailing_digits(before);
        digits > 0 && before.len() > digits && before[before.len() - digits - 1] == b'['
    });
    // `[    1.234567]`: six digits after a `.`.
    process
        || memchr::memchr_iter(b']', chunk).any(|end| {
            let before = &chunk[..end];
            trailing_digits(before) == 6 && before.len() > 7 && before[before.len() - 7] == b'.'
        })
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Decodes a line, replacing invalid UTF-8 and removing ANSI escape sequences;
/// borrows when there is nothing to change.
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = &bytes[..bytes.len().min(MAX_LINE_CHARS * 4)];
    let text = String::from_utf8_lossy(bytes);
    if !text.contains('\x1b') {
        return text;
    }
    Cow::Owned(strip_ansi(&text))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ parameters… final byte in @..~
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] … BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

/// A console line split into its optional kernel timestamp and the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Message<'a> {
    pub timestamp: Option<f64>,
    pub text: &'a str,
}

/// Removes the prefixes a kernel message gets on its way to a file: printk
/// levels (`<4>`), timestamps (`[ 1.234567]`, `[    T1]`), syslog/journal
/// headers (`Mar  1 12:00:00 host kernel: `, ISO timestamps).
pub fn message(line: &str) -> Message<'_> {
    let mut rest = line.trim();
    let mut timestamp = None;
    for _ in 0..4 {
        let before = rest.len();
        rest = strip_printk_level(rest);
        if let Some((seconds, after)) = strip_timestamp(rest) {
            timestamp = Some(seconds);
            rest = strip_caller_id(after);
        }
        if let Some(after) = strip_syslog_header(rest) {
            rest = after;
        }
        rest = rest.trim_start();
        if rest.len() == before {
            break;
        }
    }
    Message {
        timestamp,
        text: rest,
    }
}

fn strip_printk_level(text: &str) -> &str {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'<') {
        if let Some(close) = bytes.iter().take(5).position(|&b| b == b'>') {
            if close > 1 && bytes[1..close].iter().all(u8::is_ascii_digit) {
                return &text[close + 1..];
            }
        }
    }
    text
}

fn strip_timestamp(text: &str) -> Option<(f64, &str)> {
    let inner_end = text.strip_prefix('[')?.find(']')?;
    let inner = text[1..1 + inner_end].trim();
    let (whole, fraction) = inner.split_once('.')?;
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds = inner.parse::<f64>().ok()?;
    Some((seconds, text[inner_end + 2..].trim_start()))
}

/// `[    T1]` / `[  C3]` printed with CONFIG_PRINTK_CALLER.
fn strip_caller_id(text: &str) -> &str {
    if let Some(inner) = text.strip_prefix('[') {
        if let Some(close) = inner.find(']') {
            let id = inner[..close].trim();
            let mut chars = id.chars();
            if matches!(chars.next(), Some('T' | 'C'))
                && !chars.as_str().is_empty()
                && chars.as_str().bytes().all(|b| b.is_ascii_digit())
            {
                return inner[close + 1..].trim_start();
            }
        }
    }
    text
}

const MONTHS: [&str; 12] = [
    "Jan ", "Feb ", "Mar ", "Apr ", "May ", "Jun ", "Jul ", "Aug ", "Sep ", "Oct ", "Nov ", "Dec ",
];

/// `Mar  1 12:00:00 host tag[pid]: ` or `2024-03-01T12:00:00.123+00:00 host tag: `.
fn strip_syslog_header(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let after_time = if MONTHS.iter().any(|m| text.starts_with(m)) {
        // "Mar  1 12:00:00[.123456] "
        let rest = text[4..].trim_start();
        let (day, rest) = rest.split_once(' ')?;
        if day.is_empty() || !day.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (time, rest) = rest.split_once(' ')?;
        if time.len() < 8 || time.as_bytes()[2] != b':' {
            return None;
        }
        rest
    } else if bytes.len() > 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && (bytes[10] == b'T' || bytes[10] == b' ')
    {
        let after_date = if bytes[10] == b'T' { text } else { &text[11..] };
        after_date.split_once(' ')?.1
    } else {
        return None;
    };
    let (_host, rest) = after_time.trim_start().split_once(' ')?;
    let (tag, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !tag.ends_with(':') || tag.len() < 2 {
        return None;
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_strips_kernel_timestamp_and_caller() {
        let m = message("[   12.345678][    T1] Kernel panic - not syncing: x");
        assert_eq!(m.text, "Kernel panic - not syncing: x");
        assert_eq!(m.timestamp, Some(12.345678));
    }

    #[test]
    fn message_strips_syslog_and_journal_headers() {
        assert_eq!(
            message("Mar  1 12:00:00 web01 kernel: [ 5.5] BUG: soft lockup").text,
            "BUG: soft lockup"
        );
        assert_eq!(
            message("2024-03-01T12:00:00.123456+00:00 web01 kernel: Oops: 0002 [#1] SMP").text,
            "Oops: 0002 [#1] SMP"
        );
        assert_eq!(
            message(
                "Mar 01 12:00:00 web01 dracut-initqueue[286]: Warning: dracut-initqueue timeout"
            )
            .text,
            "Warning: dracut-initqueue timeout"
        );
        assert_eq!(message("<4>[    1.0] hello").text, "hello");
    }

    #[test]
    fn message_keeps_lines_that_only_look_like_prefixes() {
        assert_eq!(
            message("[<ffffffff8100>] foo+0x1/0x2").text,
            "[<ffffffff8100>] foo+0x1/0x2"
        );
        assert_eq!(message("[  OK  ] Started x").text, "[  OK  ] Started x");
        assert_eq!(message("May be fine").text, "May be fine");
    }

    #[test]
    fn decode_strips_ansi_escapes() {
        assert_eq!(decode(b"\x1b[0;1;31mKernel panic\x1b[0m"), "Kernel panic");
        assert_eq!(decode(b"a\x1b]0;title\x07b"), "ab");
    }

    #[test]
    fn scanner_reports_only_keyword_lines_with_numbers() {
        let keywords = aho_corasick::AhoCorasick::new(["panic", "BUG"]).unwrap();
        let mut seen = Vec::new();
        let total = scan_keyword_lines(
            &b"a\r\nKernel panic\r\nb\nc\nBUG: x\nlast BUG"[..],
            &keywords,
            |_| {},
            |n, l| {
                seen.push((n, String::from_utf8_lossy(l).into_owned()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (2, "Kernel panic".to_string()),
                (5, "BUG: x".to_string()),
                (6, "last BUG".to_string())
            ]
        );
        assert_eq!(total, 6);
    }
}
