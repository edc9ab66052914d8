//! Every input of `analyze` and `leaks` comes in here: read (a file, a URL, a pod's endpoint or
//! a container's log), then told apart by what it is ([`Kind`]), so that each kind goes to the
//! one module that presents it (`crash` for crash records, `dumps` for everything grouped as
//! tasks). A new kind of input is a new [`Kind`], its test in [`detect`], and one arm in
//! `analyze::present`.

use std::io::Read as _;
use std::path::Path;

use faultline_dump::json_lines::LogFields;

use crate::exit::Failure;

/// What an input is, told from its bytes (and a `.json` name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A faultline crash record (JSON, or a `.json` file: a broken record gets the JSON
    /// parser's precise error): printed frame by frame.
    CrashRecord,
    /// A faultline record of `kind: task_dump` (what faultline-capture's tokio endpoint
    /// serves): its addresses resolved, then grouped as a dump.
    TaskDumpRecord,
    /// A task dump or a panic in any format faultline-dump reads: Go tracebacks and goroutine
    /// dumps, pprof text and protobuf, Rust panics, tokio's text, also inside logs.
    Dump,
    /// A log of JSON lines (Docker's json-file, a log platform's export): each stream's text
    /// read as a dump is.
    Log,
    /// An ELF core file or a minidump: every thread unwound offline and symbolized
    /// (`native`).
    Core,
    /// Binary data that is none of the above (an executable, an archive): refused,
    /// saying what it is and what `analyze` reads.
    Binary,
}

/// What a binary input is, in a few words, for the error that refuses it.
pub fn describe_binary(bytes: &[u8]) -> String {
    if bytes.starts_with(b"\x7fELF") {
        return match faultline_native::Core::parse(bytes) {
            Err(faultline_native::CoreError::NotCore(what)) => format!("an ELF {what}"),
            Err(e) => format!("an ELF file ({e})"),
            Ok(_) => "an ELF core".into(),
        };
    }
    if faultline_native::minidump::looks_like_minidump(bytes) {
        return "a minidump".into();
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return "a zip archive".into();
    }
    if bytes.starts_with(b"\x28\xb5\x2f\xfd") {
        return "zstd-compressed data".into();
    }
    "binary data".into()
}

/// Bytes no text format has: an ELF file, or a NUL in the first 8 KiB (gzip, which the pprof
/// reader takes, aside).
fn is_binary(bytes: &[u8]) -> bool {
    // gzip: a pprof profile (`debug=0`), which the dump reader decompresses.
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return false;
    }
    bytes.starts_with(b"\x7fELF") || bytes.iter().take(8192).any(|&b| b == 0)
}

/// Tells what `bytes` (read from `path`) are, a log of JSON lines by `fields`. Only the
/// envelope is looked at; the module the kind goes to parses (and reports errors in) the whole
/// input.
pub fn detect(path: &Path, bytes: &[u8], fields: &LogFields) -> Kind {
    if faultline_native::elfcore::looks_like_core(bytes)
        || faultline_native::minidump::looks_like_minidump(bytes)
    {
        return Kind::Core;
    }
    if is_binary(bytes) {
        return Kind::Binary;
    }
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let json =
        path.extension().is_some_and(|e| e == "json") || start.is_some_and(|i| bytes[i] == b'{');
    if !json {
        Kind::Dump
    } else if faultline_dump::json_lines::detect(bytes, fields) {
        Kind::Log
    } else if is_task_dump_record(bytes) {
        Kind::TaskDumpRecord
    } else {
        Kind::CrashRecord
    }
}

fn is_task_dump_record(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|v| v.get("kind").is_some_and(|k| k == "task_dump"))
}

/// An input's bytes: read, or mapped (a core file, which may be gigabytes).
pub enum Input {
    /// Read into memory.
    Read(Vec<u8>),
    /// A core file, mapped.
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Input::Read(bytes) => bytes,
            Input::Mapped(map) => map,
        }
    }
}

/// [`read`], except that a core file is mapped rather than read: a 1 GiB core costs the pages
/// the unwinder touches, not 1 GiB.
pub fn read_input(path: &Path) -> Result<Input, Failure> {
    if let Some(map) = map_core(path) {
        return Ok(Input::Mapped(map));
    }
    read(path).map(Input::Read)
}

/// A regular file that starts as an ELF core or a minidump, mapped.
fn map_core(path: &Path) -> Option<memmap2::Mmap> {
    let mut file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = [0u8; 64];
    file.read_exact(&mut head).ok()?;
    if !faultline_native::elfcore::looks_like_core(&head)
        && !faultline_native::minidump::looks_like_minidump(&head)
    {
        return None;
    }
    // SAFETY: a read-only private map of a core file, which nothing writes once the kernel has
    // finished it; a file truncated under us could fault, the risk gdb takes too.
    unsafe { memmap2::Mmap::map(&file) }.ok()
}

/// Reads an input: a file, an `http://`/`https://` URL fetched once (a Go service's
/// `/debug/pprof/goroutine?debug=2`, say), a pod's endpoint through a port-forward
/// (`pod://NS/NAME:PORT/PATH`), or `pod:NS/NAME[/CONTAINER]`, the log of a container's
/// previous (crashed) run through the Kubernetes API. A missing file is bad input (exit 2), other I/O and
/// network errors failures (exit 1).
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    if let Some(endpoint) = path.to_str().and_then(|p| p.strip_prefix("pod://")) {
        let forwarded = crate::kube::pod_endpoint(endpoint)?;
        return fetch(&forwarded.url).map_err(|f| {
            Failure::new(
                f.code(),
                anyhow::anyhow!("pod://{endpoint}: {}", f.message()),
            )
        });
    }
    if let Some(pod) = path.to_str().and_then(|p| p.strip_prefix("pod:")) {
        return crate::kube::previous_log(pod);
    }
    if let Some(url) = path
        .to_str()
        .filter(|p| p.starts_with("http://") || p.starts_with("https://"))
    {
        return fetch(url);
    }
    if path.is_dir() {
        return Err(Failure::usage(format!(
            "{}: is a directory, expected a crash record or a task dump",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            crate::exit::BAD_INPUT
        } else {
            crate::exit::FAILED
        };
        Failure::new(code, anyhow::anyhow!("{}: {e}", path.display()))
    })
}

/// The most a fetched dump may be: pprof's own debug=2 output stops at 64 MiB.
const MAX_FETCH: u64 = 1 << 30;

fn fetch(url: &str) -> Result<Vec<u8>, Failure> {
    fetch_with_timeout(url, std::time::Duration::from_secs(60))
}

/// `GET url`, the whole body, or a failure (exit 1) naming the URL and why.
pub fn fetch_with_timeout(url: &str, timeout: std::time::Duration) -> Result<Vec<u8>, Failure> {
    use anyhow::Context as _;
    let fetched = (|| -> anyhow::Result<Vec<u8>> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let response = client.get(url).send()?;
        let status = response.status();
        if !status.is_success() {
            // A debug endpoint says why it refused (faultline-capture's 503 names the stuck
            // worker): pass its first line on.
            let mut body = String::new();
            let _ = response.take(4096).read_to_string(&mut body);
            let reason = body.lines().next().unwrap_or_default().trim();
            if reason.is_empty() {
                anyhow::bail!("HTTP {status}");
            }
            anyhow::bail!("HTTP {status}: {reason}");
        }
        let mut body = Vec::new();
        response.take(MAX_FETCH + 1).read_to_end(&mut body)?;
        anyhow::ensure!(
            body.len() as u64 <= MAX_FETCH,
            "larger than {MAX_FETCH} bytes"
        );
        Ok(body)
    })();
    // The report prints the whole chain of causes (`{:#}`), naming the URL first.
    fetched
        .with_context(|| url.to_owned())
        .map_err(Failure::failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_input_is_told_apart_by_its_envelope() {
        let check = |path: &str, bytes: &str, expected: Kind| {
            assert_eq!(
                detect(Path::new(path), bytes.as_bytes(), &LogFields::default()),
                expected,
                "{path}: {bytes:?}"
            );
        };
        check(
            "crash.json",
            r#"{"format": "faultline-crash", "version": 1}"#,
            Kind::CrashRecord,
        );
        check("crash", "  \n{\"format\": 1", Kind::CrashRecord);
        // A `.json` name that is not JSON is still read as a record: its error says where.
        check("broken.json", "panic: x", Kind::CrashRecord);
        check(
            "tasks.json",
            r#"{"kind": "task_dump", "tasks": []}"#,
            Kind::TaskDumpRecord,
        );
        check("tasks", r#" {"kind":"task_dump"}"#, Kind::TaskDumpRecord);
        check(
            "now.txt",
            "goroutine 1 [running]:\nmain.main()\n",
            Kind::Dump,
        );
        check("pod.log", "panic: boom\n", Kind::Dump);
        check("profile.pb.gz", "\u{1f}\u{8b}", Kind::Dump);
        check("empty", "", Kind::Dump);
        // Docker's json-file, an export: one object per line, the text in a field.
        check(
            "container.log",
            "{\"log\":\"panic: boom\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-28T10:00:00Z\"}\n",
            Kind::Log,
        );
        check(
            "export.json",
            "{\"message\":\"goroutine 1 [running]:\"}\n",
            Kind::Log,
        );
    }
}
