//! Run Command log lines: what `az vm repair run` shows of vmrescue's
//! output, in the format its client recognises.

/// The levels of the Run Command client's log lines that vmrescue writes
/// (the client also knows Output, Warning and Debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "Info",
            Level::Error => "Error",
        }
    }
}

/// Replaces what a shell would expand when the log is echoed unquoted.
pub(crate) fn glob_safe(message: &str) -> String {
    message
        .replace('*', "<star>")
        .replace('?', "<q>")
        .replace('[', "(")
        .replace(']', ")")
        .replace('\n', " ")
}

/// One log line: `[Info 11/24/2026 19:50:37]message`.
pub(crate) fn line(level: Level, message: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[month]/[day]/[year] [hour]:[minute]:[second]");
    let stamp = now.format(&format).unwrap_or_default();
    format!("[{} {stamp}]{}", level.name(), glob_safe(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_client_prefix_and_no_glob_characters() {
        let text = line(Level::Info, "removed /boot/initrd.img-* and [x]?");
        let re = regex::Regex::new(r"^\[Info \d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}\]").unwrap();
        assert!(re.is_match(&text), "{text}");
        let message = re.replace(&text, "");
        assert!(!message.contains(['*', '?', '[']), "{message}");
    }
}
