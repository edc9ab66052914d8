//! A minimal JSON writer, just enough for a crash record.
//!
//! The crate writes JSON by hand instead of depending on serde: it is linked into every service
//! and runs inside a panic hook, so it stays small. The layout (two-space indent, `": "` after
//! keys, `[]`/`{}` for empty containers) and the string escapes are the same as serde_json's
//! pretty printer, so a record written here and the same record re-serialized by
//! `faultline-record` are byte-identical, which the tests check.

use std::fmt::Write as _;

/// Builds one JSON document into a string.
///
/// The caller is responsible for the shape (keys only inside objects, balanced begin/end); the
/// writer only tracks commas and indentation.
#[derive(Debug, Default)]
pub(crate) struct JsonWriter {
    out: String,
    depth: usize,
    /// Whether the current container already holds an element, so the next needs a comma.
    needs_comma: bool,
    /// Whether a key was just written, so the value goes on the same line.
    after_key: bool,
}

impl JsonWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The document written so far.
    pub(crate) fn finish(self) -> String {
        self.out
    }

    pub(crate) fn begin_object(&mut self) {
        self.begin('{');
    }

    pub(crate) fn end_object(&mut self) {
        self.end('}');
    }

    pub(crate) fn begin_array(&mut self) {
        self.begin('[');
    }

    pub(crate) fn end_array(&mut self) {
        self.end(']');
    }

    /// Writes an object key; the next call writes its value.
    pub(crate) fn key(&mut self, key: &str) {
        self.separate();
        push_string(&mut self.out, key);
        self.out.push_str(": ");
        self.after_key = true;
    }

    pub(crate) fn string(&mut self, value: &str) {
        self.before_value();
        push_string(&mut self.out, value);
        self.needs_comma = true;
    }

    pub(crate) fn number(&mut self, value: u64) {
        self.before_value();
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{value}");
        self.needs_comma = true;
    }

    pub(crate) fn null(&mut self) {
        self.before_value();
        self.out.push_str("null");
        self.needs_comma = true;
    }

    /// An address as the record format spells it: `"0x"` and lowercase hex, as a string because
    /// JSON numbers lose precision past 2^53 in many readers.
    pub(crate) fn address(&mut self, value: u64) {
        self.before_value();
        let _ = write!(self.out, "\"{value:#x}\"");
        self.needs_comma = true;
    }

    pub(crate) fn optional_string(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.string(value),
            None => self.null(),
        }
    }

    fn begin(&mut self, open: char) {
        self.before_value();
        self.out.push(open);
        self.depth += 1;
        self.needs_comma = false;
    }

    fn end(&mut self, close: char) {
        self.depth = self.depth.saturating_sub(1);
        // An empty container stays on one line (`[]`), as serde_json writes it.
        if self.needs_comma {
            self.newline();
        }
        self.out.push(close);
        self.needs_comma = true;
        self.after_key = false;
    }

    fn before_value(&mut self) {
        if self.after_key {
            self.after_key = false;
        } else {
            self.separate();
        }
    }

    fn separate(&mut self) {
        if self.needs_comma {
            self.out.push(',');
        }
        if self.depth > 0 {
            self.newline();
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
}

/// Appends `value` as a quoted JSON string.
///
/// Quotes, backslashes and every control character below U+0020 are escaped, which is what
/// RFC 8259 requires. The five control characters with short escapes use them and the rest use
/// `\u00xx`, as serde_json does; everything else, including DEL and non-ASCII, is written as is.
pub(crate) fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_string(input: &str, expected: &str) {
        let mut out = String::new();
        push_string(&mut out, input);
        assert_eq!(out, expected, "escaping {input:?}");
    }

    #[test]
    fn escapes_strings() {
        check_string("", r#""""#);
        check_string("plain text", r#""plain text""#);
        check_string(r#"say "hi""#, r#""say \"hi\"""#);
        check_string(r"C:\path\file", r#""C:\\path\\file""#);
        check_string("line\nnext\r\n\ttab", r#""line\nnext\r\n\ttab""#);
        check_string("\u{08}\u{0c}", r#""\b\f""#);
        check_string(
            "\u{00}\u{01}\u{1b}[0m\u{1f}",
            r#""\u0000\u0001\u001b[0m\u001f""#,
        );
        // Not control characters in JSON's sense: written as they are.
        check_string("\u{7f} é ✓ \u{2028} 🦀", "\"\u{7f} é ✓ \u{2028} 🦀\"");
        check_string("/not/escaped", r#""/not/escaped""#);
    }

    #[test]
    fn escaped_strings_round_trip_through_a_json_parser() {
        let mut input: String = (0u8..0x80).map(char::from).collect();
        input.push_str("\"\\ é 🦀");
        let mut out = String::new();
        push_string(&mut out, &input);
        let runtime = parse_runtime(&format!(r#"{{"name": {out}, "version": ""}}"#));
        assert_eq!(runtime.name, input);
    }

    /// Parses `{"name": …, "version": …}` by embedding it in a minimal record, since the record
    /// crate is the only JSON reader among the dev-dependencies.
    fn parse_runtime(doc: &str) -> faultline_record::Runtime {
        let record = format!(
            r#"{{"format": "faultline-crash", "version": 1, "time": "", "kind": "panic",
                "pid": 1, "arch": "x", "runtimes": [{doc}], "modules": [], "frames": []}}"#
        );
        let mut record = faultline_record::CrashRecord::from_json(record.as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{record}"));
        record.runtimes.remove(0)
    }

    #[test]
    fn writes_nested_documents_like_serde_json_pretty() {
        let mut w = JsonWriter::new();
        w.begin_object();
        w.key("a");
        w.number(1);
        w.key("empty_array");
        w.begin_array();
        w.end_array();
        w.key("empty_object");
        w.begin_object();
        w.end_object();
        w.key("list");
        w.begin_array();
        w.address(0xdead_beef);
        w.null();
        w.begin_object();
        w.key("k");
        w.optional_string(Some("v"));
        w.end_object();
        w.end_array();
        w.key("last");
        w.optional_string(None);
        w.end_object();
        let expected = r#"{
  "a": 1,
  "empty_array": [],
  "empty_object": {},
  "list": [
    "0xdeadbeef",
    null,
    {
      "k": "v"
    }
  ],
  "last": null
}"#;
        assert_eq!(w.finish(), expected);
    }
}
