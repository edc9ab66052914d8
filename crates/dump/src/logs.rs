//! Dumps arrive embedded in logs: `kubectl logs` of a CRI runtime prefixes every line with a
//! timestamp, the stream and a tag; log shippers add timestamps and levels; Windows-edited files
//! end lines with CRLF. This strips those prefixes line by line, so the parsers see the
//! runtime's own text.

/// The runtime's text of one log line: CRI prefixes (`2026-11-28T10:00:00.000Z stderr F `),
/// leading ISO timestamps with an optional level (`2026-11-28 10:00:00,123 ERROR `), logfmt
/// up to `msg=`, and a trailing CR removed. Lines without a prefix come back unchanged.
pub fn strip_prefix(line: &str) -> &str {
    let line = line.strip_suffix('\r').unwrap_or(line);
    // Fast path: a runtime's own line starts with a tab, a letter other than t or l, or a dot.
    match line.as_bytes().first() {
        Some(b'0'..=b'9' | b'[' | b't' | b'l') => {}
        _ => return line,
    }
    if let Some(rest) = strip_timestamp(line) {
        let rest = strip_cri_stream(rest).unwrap_or_else(|| strip_level(rest));
        return rest;
    }
    if let Some(rest) = strip_logfmt(line) {
        return rest;
    }
    line
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM] `, optionally in brackets.
fn strip_timestamp(line: &str) -> Option<&str> {
    let body = line.strip_prefix('[').unwrap_or(line);
    let b = body.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':'))
    {
        return None;
    }
    // The rest of the time runs to the next space (or `]`).
    let end = body[11..].find([' ', ']'])? + 11;
    let mut rest = &body[end..];
    rest = rest.strip_prefix(']').unwrap_or(rest);
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// CRI: `stdout F ` or `stderr P ` after the timestamp.
fn strip_cri_stream(rest: &str) -> Option<&str> {
    let after = rest
        .strip_prefix("stdout ")
        .or_else(|| rest.strip_prefix("stderr "))?;
    after
        .strip_prefix("F ")
        .or_else(|| after.strip_prefix("P "))
        .or_else(|| (after == "F" || after == "P").then_some(""))
}

/// CRI's partial lines joined: a runtime splits a long line into entries marked `P` (partial),
/// the last marked `F`. Each run of `P` entries of a stream is joined with the `F` entry that
/// ends it, under the first entry's prefix, so the parsers see the line whole. Text without
/// partial entries comes back as it is.
pub fn join_cri_partials(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(" P ") {
        return std::borrow::Cow::Borrowed(text);
    }
    // Per stream (`stdout`, `stderr`): the joined line so far.
    let mut open: Vec<(&str, String)> = Vec::new();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let Some((prefix_len, stream, partial)) = cri_entry(body) else {
            out.push_str(line);
            continue;
        };
        let content = &body[prefix_len..];
        let slot = open.iter().position(|(s, _)| *s == stream);
        match (slot, partial) {
            (Some(i), true) => open[i].1.push_str(content),
            (Some(i), false) => {
                let (_, mut joined) = open.swap_remove(i);
                joined.push_str(content);
                out.push_str(&joined);
                out.push('\n');
            }
            (None, true) => open.push((stream, body.to_owned())),
            (None, false) => out.push_str(line),
        }
    }
    // Partial entries never finished: what there is.
    for (_, joined) in open {
        out.push_str(&joined);
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

/// A CRI entry: (length of its prefix, its stream, whether it is partial).
fn cri_entry(line: &str) -> Option<(usize, &str, bool)> {
    let rest = strip_timestamp(line)?;
    let (stream, after) = rest.split_once(' ')?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let (tag, content) = match after.split_once(' ') {
        Some((tag, content)) => (tag, content),
        None => (after, ""),
    };
    let partial = match tag {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some((line.len() - content.len(), stream, partial))
}

/// An optional level word after a timestamp: `ERROR `, `[error] `, `E `.
fn strip_level(rest: &str) -> &str {
    let word_end = rest.find(' ').unwrap_or(rest.len());
    let word = rest[..word_end].trim_matches(|c| c == '[' || c == ']' || c == ':');
    const LEVELS: &[&str] = &[
        "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "PANIC", "CRIT", "CRITICAL",
        "NOTICE",
    ];
    if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word)) {
        let rest = &rest[word_end..];
        return rest.strip_prefix(' ').unwrap_or(rest);
    }
    rest
}

/// logfmt: `time=… level=… msg=…` — the text after `msg=`, without its opening quote.
fn strip_logfmt(line: &str) -> Option<&str> {
    if !(line.starts_with("time=") || line.starts_with("ts=") || line.starts_with("level=")) {
        return None;
    }
    let at = line.find(" msg=")?;
    let rest = &line[at + 5..];
    Some(rest.strip_prefix('"').unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::{join_cri_partials, strip_prefix};

    #[test]
    fn cri_partial_lines_are_joined_per_stream() {
        let text = "2026-11-28T10:00:00Z stderr P goroutine 1 [run\n\
                    2026-11-28T10:00:00Z stdout F hello\n\
                    2026-11-28T10:00:01Z stderr F ning]:\n\
                    2026-11-28T10:00:01Z stderr F main.main()\n";
        // The joined line takes its place when its last entry arrives.
        assert_eq!(
            join_cri_partials(text),
            "2026-11-28T10:00:00Z stdout F hello\n\
             2026-11-28T10:00:00Z stderr P goroutine 1 [running]:\n\
             2026-11-28T10:00:01Z stderr F main.main()\n"
        );
        assert!(matches!(
            join_cri_partials("no partials here\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    fn check(line: &str, expected: &str) {
        assert_eq!(strip_prefix(line), expected, "{line:?}");
    }

    #[test]
    fn prefixes() {
        check("goroutine 1 [running]:", "goroutine 1 [running]:");
        check(
            "2026-11-28T10:00:00.000000000Z stderr F goroutine 1 [running]:",
            "goroutine 1 [running]:",
        );
        check(
            "2026-11-28T10:00:00.000Z stdout P \tmain.go:12 +0x1d",
            "\tmain.go:12 +0x1d",
        );
        check("2026-11-28T10:00:00Z stderr F", "");
        check("2026-11-28 10:00:00,123 ERROR main.main()", "main.main()");
        check(
            "[2026-11-28T10:00:00+01:00] [error] panic: boom",
            "panic: boom",
        );
        check(
            "2026-11-28T10:00:00Z goroutine 7 [select]:",
            "goroutine 7 [select]:",
        );
        check(
            "time=2026-11-28T10:00:00Z level=ERROR msg=\"goroutine 1 [running]:",
            "goroutine 1 [running]:",
        );
        check("goroutine 1 [running]:\r", "goroutine 1 [running]:");
        check("2026-11-28", "2026-11-28");
        check("2026", "2026");
    }
}
