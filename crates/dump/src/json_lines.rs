//! Logs as log platforms keep them: one JSON object per line, the text in a field. Docker's
//! json-file driver (`{"log":"…\n","stream":"stderr","time":"…"}`, still the default on many
//! clusters and every Docker host) and the exports of Loki, Elasticsearch/OpenSearch,
//! CloudWatch, journald or a cloud's log service (`message`, `msg`, `line`, `MESSAGE`,
//! `textPayload`…).
//!
//! Each entry's text is taken from the first of the usual fields (or the one named), its JSON
//! escapes decoded and a trailing newline dropped; an entry without a trailing newline is a
//! partial line (Docker splits lines at 16 KiB) and is joined with the next entry of its
//! stream. Entries are kept apart by stream (`stream`, or a field named, such as a pod name), so
//! two containers' panics are never interleaved; each line keeps the time of its entry.
//!
//! A small JSON reader of its own (strings with every escape, numbers, literals, nested values
//! skipped or descended into for a dotted key), so that faultline-dump keeps no dependency.

use std::collections::HashMap;

/// The fields looked in for an entry's text, in order.
pub const TEXT_FIELDS: &[&str] = &[
    "log",
    "message",
    "msg",
    "line",
    "MESSAGE",
    "textPayload",
    "text",
    "@message",
];

/// The fields looked in for an entry's time, in order.
pub const TIME_FIELDS: &[&str] = &[
    "time",
    "timestamp",
    "@timestamp",
    "ts",
    "__REALTIME_TIMESTAMP",
];

/// Which fields to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFields {
    /// The field with the text (`--log-field`); the first of [`TEXT_FIELDS`] an entry has
    /// when `None`.
    pub text: Option<String>,
    /// The field entries are kept apart by (`--log-key`, a dotted path into nested objects
    /// such as `kubernetes.pod_name`); `stream` when `None`.
    pub key: Option<String>,
}

/// The entries of one stream, their text joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    /// The stream's key (`stderr`, a pod's name), if entries have one.
    pub key: Option<String>,
    /// The text, one line per line of the entries.
    pub text: String,
    /// The time of each line of `text` (the time of the entry it began in), as written, or
    /// as RFC 3339 for an epoch number.
    pub times: Vec<Option<String>>,
    /// The 1-based line of the log each line of `text` began on.
    pub lines: Vec<usize>,
}

/// Why a JSON-lines log could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLinesError {
    /// The 1-based line.
    pub line: usize,
    /// What was expected.
    pub message: String,
}

impl std::fmt::Display for JsonLinesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A JSON value, as far as a log needs it.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Str(String),
    Num(String),
    Other,
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A dotted path: `kubernetes.pod_name`, or the whole name if an entry has it as is.
    fn path(&self, path: &str) -> Option<&Json> {
        if let Some(v) = self.get(path) {
            return Some(v);
        }
        path.split('.').try_fold(self, |v, k| v.get(k))
    }

    fn text(&self) -> Option<String> {
        match self {
            Json::Str(s) | Json::Num(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// The deepest nesting read.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.at += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at column {}", self.at + 1))
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return self.err("nested too deep");
        }
        self.ws();
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(depth),
            Some(b'[') => {
                self.at += 1;
                self.ws();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Json::Other);
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Other);
                        }
                        _ => return self.err("expected , or ] in an array"),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.at += 1;
                }
                Ok(Json::Num(
                    String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned(),
                ))
            }
            _ => {
                for literal in [&b"true"[..], b"false", b"null"] {
                    if self.bytes[self.at..].starts_with(literal) {
                        self.at += literal.len();
                        return Ok(Json::Other);
                    }
                }
                self.err("expected a JSON value")
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.at += 1;
        let mut entries = Vec::new();
        self.ws();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.ws();
            if self.bytes.get(self.at) != Some(&b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.ws();
            if self.bytes.get(self.at) != Some(&b':') {
                return self.err("expected :");
            }
            self.at += 1;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.ws();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(entries));
                }
                _ => return self.err("expected , or } in an object"),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match digits {
            Some(n) => {
                self.at += 4;
                Ok(n)
            }
            None => self.err("expected four hex digits after \\u"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.bytes.get(self.at) else {
                return self.err("unterminated string");
            };
            self.at += 1;
            match b {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let Some(&e) = self.bytes.get(self.at) else {
                        return self.err("unterminated escape");
                    };
                    self.at += 1;
                    let c = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'/' => '/',
                        b'\\' => '\\',
                        b'"' => '"',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&high)
                                && self.bytes.get(self.at..self.at + 2) == Some(b"\\u")
                            {
                                self.at += 2;
                                let low = self.hex4()?;
                                if (0xdc00..0xe000).contains(&low) {
                                    0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                                } else {
                                    0xfffd
                                }
                            } else {
                                high
                            };
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return self.err("unknown escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }
}

/// One line of the log, read as a JSON object.
fn object(line: &[u8]) -> Result<Json, String> {
    let mut reader = Reader { bytes: line, at: 0 };
    reader.ws();
    if reader.bytes.get(reader.at) != Some(&b'{') {
        return reader.err("expected a JSON object");
    }
    let value = reader.object(0)?;
    reader.ws();
    if reader.at != line.len() {
        return reader.err("text after the object");
    }
    Ok(value)
}

/// The field of `entry` that holds its text: the one named, or the first usual one.
fn text_field<'f>(entry: &Json, fields: &'f LogFields) -> Option<&'f str> {
    match &fields.text {
        Some(named) => entry.path(named).and(Some(named.as_str())),
        None => TEXT_FIELDS
            .iter()
            .copied()
            .find(|f| matches!(entry.get(f), Some(Json::Str(_)))),
    }
}

/// The non-blank lines of `input`, with their 1-based numbers.
fn lines(input: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()))
}

/// Whether `input` is a JSON-lines log: its first line is a whole JSON object with a text
/// field (the one named, or one of [`TEXT_FIELDS`]).
pub fn detect(input: &[u8], fields: &LogFields) -> bool {
    lines(input)
        .next()
        .and_then(|(_, line)| object(line).ok())
        .is_some_and(|entry| text_field(&entry, fields).is_some())
}

/// What a JSON text that is not a JSON-lines log looks like, for an error that says so:
/// `a JSON object with keys a, b, c`, `a JSON array`, …
pub fn describe(input: &[u8]) -> String {
    let Some((_, first)) = lines(input).next() else {
        return "empty".into();
    };
    match object(first) {
        Ok(Json::Object(entries)) => {
            let keys: Vec<&str> = entries.iter().take(8).map(|(k, _)| k.as_str()).collect();
            format!(
                "one JSON object per line whose first has no text field (its keys: {})",
                keys.join(", ")
            )
        }
        _ if first.trim_ascii_start().starts_with(b"[") => "a JSON array".into(),
        _ => "JSON spread over several lines (one document, not one object per line)".into(),
    }
}

/// The log's streams, in the order each first appears. Errors on a line that is not a JSON
/// object, or whose text field is not there.
///
/// Where entries end their text with a newline (Docker's json-file does), one that does not
/// is a partial line, joined with the stream's next entry. Where none does (exports strip
/// it), each entry is a line.
pub fn streams(input: &[u8], fields: &LogFields) -> Result<Vec<LogStream>, JsonLinesError> {
    let key_field = fields.key.as_deref().unwrap_or("stream");
    // (key, text, time, line) of every entry.
    let mut entries: Vec<(Option<String>, String, Option<String>, usize)> = Vec::new();
    for (n, line) in lines(input) {
        let entry = object(line).map_err(|message| JsonLinesError {
            line: n,
            message: format!("not a JSON object: {message}"),
        })?;
        let Some(field) = text_field(&entry, fields) else {
            return Err(JsonLinesError {
                line: n,
                message: format!(
                    "no text field (looked for {})",
                    fields
                        .text
                        .clone()
                        .unwrap_or_else(|| TEXT_FIELDS.join(", "))
                ),
            });
        };
        let text = entry.path(field).and_then(Json::text).unwrap_or_default();
        let key = entry.path(key_field).and_then(Json::text);
        let time = TIME_FIELDS.iter().find_map(|f| match entry.get(f)? {
            Json::Str(s) => Some(s.clone()),
            Json::Num(n) => epoch(n),
            _ => None,
        });
        entries.push((key, text, time, n));
    }
    let partials = entries.iter().any(|(_, text, _, _)| text.ends_with('\n'));
    let mut order: Vec<Option<String>> = Vec::new();
    let mut by_key: HashMap<Option<String>, (LogStream, bool)> = HashMap::new();
    for (key, text, time, n) in entries {
        let (stream, open) = by_key.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            (
                LogStream {
                    key: key.clone(),
                    text: String::new(),
                    times: Vec::new(),
                    lines: Vec::new(),
                },
                false,
            )
        });
        // A line begun in this entry takes its time; a partial line's rest, the time it began.
        let complete = !partials || text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(&text);
        for (i, piece) in body.split('\n').enumerate() {
            if i > 0 || !*open {
                stream.times.push(time.clone());
                stream.lines.push(n);
            }
            if i > 0 {
                stream.text.push('\n');
            }
            stream
                .text
                .push_str(piece.strip_suffix('\r').unwrap_or(piece));
        }
        if complete {
            stream.text.push('\n');
        }
        *open = !complete;
    }
    Ok(order
        .into_iter()
        .filter_map(|k| by_key.remove(&k).map(|(s, _)| s))
        .collect())
}

/// An epoch number (seconds, milliseconds, microseconds or nanoseconds, told by its size) as
/// RFC 3339.
fn epoch(number: &str) -> Option<String> {
    let whole: f64 = number.parse().ok()?;
    let seconds = match whole.abs() {
        x if x >= 1e17 => whole / 1e9,
        x if x >= 1e14 => whole / 1e6,
        x if x >= 1e11 => whole / 1e3,
        _ => whole,
    };
    if !(0.0..253_402_300_800.0).contains(&seconds) {
        return None;
    }
    let secs = seconds.floor() as i64;
    let millis = ((seconds - seconds.floor()) * 1000.0).round().min(999.0) as i64;
    Some(faultline_record::time::format_rfc3339(secs * 1000 + millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_json_file_entries_are_their_logs_text_by_stream() {
        let log = br#"{"log":"starting\n","stream":"stdout","time":"2026-11-28T10:00:00.1Z"}
{"log":"panic: boom \u00e9\n","stream":"stderr","time":"2026-11-28T10:00:01.5Z"}
{"log":"\tat \"x\"\n","stream":"stderr","time":"2026-11-28T10:00:01.6Z"}
"#;
        assert!(detect(log, &LogFields::default()));
        let streams = streams(log, &LogFields::default()).unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].key.as_deref(), Some("stdout"));
        assert_eq!(streams[1].text, "panic: boom é\n\tat \"x\"\n");
        assert_eq!(
            streams[1].times,
            [
                Some("2026-11-28T10:00:01.5Z".to_owned()),
                Some("2026-11-28T10:00:01.6Z".to_owned())
            ]
        );
    }

    #[test]
    fn partial_entries_are_joined_and_keep_the_time_their_line_began() {
        let log = concat!(
            r#"{"log":"goroutine 1 [run","stream":"stderr","time":"t1"}"#,
            "\n",
            r#"{"log":"ning]:\n","stream":"stderr","time":"t2"}"#,
            "\n"
        );
        let s = &streams(log.as_bytes(), &LogFields::default()).unwrap()[0];
        assert_eq!(s.text, "goroutine 1 [running]:\n");
        assert_eq!(s.times, [Some("t1".to_owned())]);
    }

    #[test]
    fn exports_name_their_fields_and_keys() {
        let log = br#"{"ts": 1764324001.25, "line": "panic: a", "labels": {"pod": "a-1"}}
{"ts": 1764324001250, "line": "panic: b", "labels": {"pod": "b-2"}}
"#;
        let fields = LogFields {
            text: None,
            key: Some("labels.pod".into()),
        };
        let s = streams(log, &fields).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].key.as_deref(), s[0].text.as_str()),
            (Some("a-1"), "panic: a\n")
        );
        assert_eq!(s[0].times[0].as_deref(), Some("2025-11-28T10:00:01.250Z"));
        assert_eq!(s[1].times[0].as_deref(), Some("2025-11-28T10:00:01.250Z"));
        let named = LogFields {
            text: Some("body".into()),
            key: None,
        };
        assert!(!detect(br#"{"line":"x"}"#, &named));
        assert!(detect(br#"{"body":"x"}"#, &named));
    }

    #[test]
    fn what_is_not_a_json_lines_log_is_described() {
        assert!(!detect(
            br#"{"format": "faultline-crash", "version": 1}"#,
            &LogFields::default()
        ));
        assert_eq!(
            describe(br#"{"format": "x", "pid": 1}"#),
            "one JSON object per line whose first has no text field (its keys: format, pid)"
        );
        assert_eq!(describe(b"[1, 2]"), "a JSON array");
        assert!(describe(b"{\n  \"a\": 1\n}\n").starts_with("JSON spread over several lines"));
        let e = streams(b"{\"log\":\"a\\n\"}\nnot json\n", &LogFields::default()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.starts_with("not a JSON object"), "{e}");
        for bad in [
            &b"{\"log\":\"\\ud800"[..],
            b"{\"log\":\"\\x\"}",
            b"{\"a\":[1,",
            b"{",
        ] {
            assert!(streams(bad, &LogFields::default()).is_err());
        }
        let deep = format!(
            "{{\"log\":\"x\",\"a\":{}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(streams(deep.as_bytes(), &LogFields::default()).is_err());
    }
}
