//! The crash record as captured in-process, and its JSON form.
//!
//! The JSON written here is the `faultline-crash` format version 1 defined by `faultline-record`
//! (field names, order and layout); this crate cannot depend on that one (it brings serde), so
//! the tests check the two agree.

use std::fmt::Write as _;
use std::panic::Location;
use std::path::{Path, PathBuf};

use crate::json::JsonWriter;
use crate::modules::{self, Module};
use crate::stack::{self, RawFrame};
use crate::{Result, store, time};

/// The compiler that built this crate, from `build.rs`.
const RUSTC_VERSION: &str = env!("FAULTLINE_CAPTURE_RUSTC_VERSION");

/// A crash record captured in this process, ready to be written.
///
/// It holds raw addresses and the module table only; nothing is symbolized in-process.
#[derive(Debug, Clone)]
pub struct Record {
    unix_ms: i64,
    pid: u32,
    tid: Option<u32>,
    thread_name: Option<String>,
    message: String,
    location: Option<SourceLocation>,
    raw_text: String,
    modules: Vec<Module>,
    frames: Vec<Frame>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceLocation {
    file: String,
    line: u32,
    column: u32,
}

/// A frame mapped to its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    address: u64,
    exact: bool,
    module: Option<usize>,
    module_address: Option<u64>,
}

impl Record {
    /// Captures a record of a panic on the current thread with `message` at `location`: the
    /// stack from here outwards, the loaded modules, and the thread's identity.
    ///
    /// The panic hook calls this; it is public so a record can be built without panicking (in
    /// tests, or to report a fatal condition that does not panic). The record's kind is always
    /// `panic`.
    #[inline(never)]
    pub fn capture(message: &str, location: Option<&Location<'_>>) -> Record {
        // The clock and the stack first: they are about the crash; the rest is about the process.
        let unix_ms = time::now_unix_ms();
        let stack = stack::capture();
        let modules = modules::loaded();
        let frames = map_frames(&stack, &modules);
        let thread_name = std::thread::current().name().map(str::to_owned);
        let tid = current_tid();
        let location = location.map(|l| SourceLocation {
            file: l.file().to_owned(),
            line: l.line(),
            column: l.column(),
        });
        let printed_tid = if cfg!(faultline_std_prints_tid) {
            tid
        } else {
            None
        };
        let raw_text = default_hook_text(
            thread_name.as_deref(),
            printed_tid,
            location.as_ref(),
            message,
        );
        Record {
            unix_ms,
            pid: std::process::id(),
            tid,
            thread_name,
            message: message.to_owned(),
            location,
            raw_text,
            modules,
            frames,
        }
    }

    /// The record as `faultline-crash` version 1 JSON.
    pub fn to_json(&self) -> String {
        let mut w = JsonWriter::new();
        w.begin_object();
        w.key("format");
        w.string("faultline-crash");
        w.key("version");
        w.number(1);
        w.key("time");
        w.string(&time::format_rfc3339(self.unix_ms));
        w.key("kind");
        w.string("panic");
        w.key("pid");
        w.number(u64::from(self.pid));
        w.key("tid");
        match self.tid {
            Some(tid) => w.number(u64::from(tid)),
            None => w.null(),
        }
        w.key("thread_name");
        w.optional_string(self.thread_name.as_deref());
        w.key("arch");
        w.string(std::env::consts::ARCH);
        w.key("runtimes");
        write_runtimes(&mut w);
        w.key("message");
        w.string(&self.message);
        w.key("location");
        match &self.location {
            Some(location) => {
                w.begin_object();
                w.key("file");
                w.string(&location.file);
                w.key("line");
                w.number(u64::from(location.line));
                w.key("column");
                w.number(u64::from(location.column));
                w.end_object();
            }
            None => w.null(),
        }
        w.key("raw_text");
        w.string(&self.raw_text);
        w.key("modules");
        w.begin_array();
        for module in &self.modules {
            write_module(&mut w, module);
        }
        w.end_array();
        w.key("frames");
        write_frames(&mut w, &self.frames);
        w.end_object();
        w.finish()
    }

    /// Writes the record into `dir` (created if missing) as
    /// `faultline-crash-<unix_ms>-<pid>-<tid>.json`, atomically: a reader never sees a partial
    /// file. Returns the file's path.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf> {
        let mut json = self.to_json();
        json.push('\n');
        store::write_atomically(dir, &self.file_name(), json.as_bytes())
    }

    fn file_name(&self) -> String {
        format!(
            "faultline-crash-{}-{}-{}.json",
            self.unix_ms.max(0),
            self.pid,
            self.tid.unwrap_or(0)
        )
    }
}

/// A JSON array of frames, innermost first.
pub(crate) fn write_frames(w: &mut JsonWriter, frames: &[Frame]) {
    w.begin_array();
    for frame in frames {
        w.begin_object();
        w.key("address");
        w.address(frame.address);
        w.key("kind");
        w.string(if frame.exact { "pc" } else { "return_address" });
        w.key("module");
        match frame.module {
            Some(index) => w.number(index as u64),
            None => w.null(),
        }
        w.key("module_address");
        match frame.module_address {
            Some(address) => w.address(address),
            None => w.null(),
        }
        w.end_object();
    }
    w.end_array();
}

/// The `runtimes` field: the compiler that built the service and this crate's version.
pub(crate) fn write_runtimes(w: &mut JsonWriter) {
    w.begin_array();
    for (name, version) in [
        ("rust", RUSTC_VERSION),
        ("faultline-capture", env!("CARGO_PKG_VERSION")),
    ] {
        w.begin_object();
        w.key("name");
        w.string(name);
        w.key("version");
        w.string(version);
        w.end_object();
    }
    w.end_array();
}

pub(crate) fn write_module(w: &mut JsonWriter, module: &Module) {
    w.begin_object();
    w.key("path");
    w.string(&module.path);
    w.key("build_id");
    match &module.build_id {
        Some(id) => {
            let mut hex = String::with_capacity(id.len() * 2);
            for byte in id {
                let _ = write!(hex, "{byte:02x}");
            }
            w.string(&hex);
        }
        None => w.null(),
    }
    w.key("load_bias");
    w.address(module.load_bias);
    w.key("segments");
    w.begin_array();
    for segment in &module.segments {
        w.begin_object();
        w.key("start");
        w.address(segment.start);
        w.key("size");
        w.number(segment.size);
        w.key("file_offset");
        w.number(segment.file_offset);
        w.key("vaddr");
        w.address(segment.vaddr);
        w.key("flags");
        w.string(&segment.permissions());
        w.end_object();
    }
    w.end_array();
    w.end_object();
}

/// Maps each frame to the module it lies in.
///
/// A return address points after its call instruction, possibly past the end of the
/// function, or of the segment when the call was the segment's last instruction (a call to a
/// `noreturn` function). So containment is tested at `address - 1`, the call itself; exact
/// addresses are tested as they are. The recorded `module_address` is always
/// `address - load_bias`: the record's reader applies the `- 1` again when it symbolizes.
pub(crate) fn map_frames(stack: &[RawFrame], modules: &[Module]) -> Vec<Frame> {
    stack
        .iter()
        .map(|raw| {
            let probe = if raw.exact {
                raw.address
            } else {
                raw.address.wrapping_sub(1)
            };
            let module = modules.iter().position(|m| m.contains(probe));
            Frame {
                address: raw.address,
                exact: raw.exact,
                module,
                module_address: module
                    .and_then(|index| modules.get(index))
                    .map(|m| raw.address.wrapping_sub(m.load_bias)),
            }
        })
        .collect()
}

/// What std's default panic hook prints before the optional backtrace note:
/// `thread 'main' (4242) panicked at src/main.rs:2:5:\nmessage`. `tid` is `None` for a std that
/// does not print it (before 1.91).
fn default_hook_text(
    thread_name: Option<&str>,
    tid: Option<u32>,
    location: Option<&SourceLocation>,
    message: &str,
) -> String {
    let mut text = format!("thread '{}'", thread_name.unwrap_or("<unnamed>"));
    if let Some(tid) = tid {
        let _ = write!(text, " ({tid})");
    }
    text.push_str(" panicked");
    if let Some(l) = location {
        let _ = write!(text, " at {}:{}:{}", l.file, l.line, l.column);
    }
    let _ = write!(text, ":\n{message}");
    text
}

/// The kernel's id of the calling thread, as `gettid(2)` returns it.
fn current_tid() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid takes no arguments and cannot fail. It is called through syscall(2)
        // because the libc wrapper only exists since glibc 2.30.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        u32::try_from(tid).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use faultline_record::{CrashRecord, FrameKind};

    use super::*;
    use crate::modules::Segment;

    #[track_caller]
    fn check_text(
        name: Option<&str>,
        tid: Option<u32>,
        location: Option<(&str, u32, u32)>,
        expected: &str,
    ) {
        let location = location.map(|(file, line, column)| SourceLocation {
            file: file.to_owned(),
            line,
            column,
        });
        assert_eq!(
            default_hook_text(name, tid, location.as_ref(), "boom"),
            expected
        );
    }

    #[test]
    fn formats_raw_text_like_the_default_hook() {
        check_text(
            Some("main"),
            Some(4242),
            Some(("src/main.rs", 2, 5)),
            "thread 'main' (4242) panicked at src/main.rs:2:5:\nboom",
        );
        check_text(
            None,
            Some(7),
            Some(("src/lib.rs", 10, 1)),
            "thread '<unnamed>' (7) panicked at src/lib.rs:10:1:\nboom",
        );
        // What std before 1.91 printed.
        check_text(
            Some("worker"),
            None,
            Some(("a.rs", 1, 1)),
            "thread 'worker' panicked at a.rs:1:1:\nboom",
        );
        check_text(Some("main"), None, None, "thread 'main' panicked:\nboom");
    }

    fn module(load_bias: u64, start: u64, size: u64) -> Module {
        Module {
            path: format!("/lib/{start:x}.so"),
            build_id: None,
            load_bias,
            segments: vec![Segment {
                start,
                size,
                file_offset: 0,
                vaddr: start - load_bias,
                flags: 5,
            }],
        }
    }

    #[test]
    fn maps_return_addresses_by_their_call() {
        let modules = [
            module(0x1000, 0x2000, 0x1000),
            module(0x3000, 0x3000, 0x1000),
        ];
        let raw = |address, exact| RawFrame { address, exact };
        let frames = map_frames(
            &[
                // A return address just past the end of the first module's code: its call is
                // the first module's last instruction.
                raw(0x3000, false),
                // The same address, exact: the second module's first instruction.
                raw(0x3000, true),
                raw(0x2000, false),
                raw(0x2000, true),
                raw(0, false),
                raw(0x9000, true),
            ],
            &modules,
        );
        let mapped: Vec<_> = frames
            .iter()
            .map(|f| (f.module, f.module_address))
            .collect();
        assert_eq!(
            mapped,
            [
                (Some(0), Some(0x2000)),
                (Some(1), Some(0)),
                (None, None),
                (Some(0), Some(0x1000)),
                (None, None),
                (None, None),
            ]
        );
    }

    fn sample() -> Record {
        Record {
            unix_ms: 1_709_210_096_789,
            pid: 42,
            tid: Some(43),
            thread_name: Some("worker \"1\"".to_owned()),
            message: "bad\tthing\n\u{1}".to_owned(),
            location: Some(SourceLocation {
                file: r"src\main.rs".to_owned(),
                line: 7,
                column: 9,
            }),
            raw_text: "thread 'worker' panicked".to_owned(),
            modules: vec![Module {
                build_id: Some(vec![0xab, 0x01, 0xff]),
                ..module(0x5555_0000_0000, 0x5555_0000_1000, 0x2000)
            }],
            frames: vec![
                Frame {
                    address: 0x5555_0000_1234,
                    exact: false,
                    module: Some(0),
                    module_address: Some(0x1234),
                },
                Frame {
                    address: 0x10,
                    exact: true,
                    module: None,
                    module_address: None,
                },
            ],
        }
    }

    #[test]
    fn writes_the_record_format() {
        let json = sample().to_json();
        let parsed = CrashRecord::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.time, "2024-02-29T12:34:56.789Z");
        assert_eq!(parsed.thread_name.as_deref(), Some("worker \"1\""));
        assert_eq!(parsed.message.as_deref(), Some("bad\tthing\n\u{1}"));
        let location = parsed
            .location
            .as_ref()
            .unwrap_or_else(|| panic!("location"));
        assert_eq!(
            (location.file.as_str(), location.line, location.column),
            (r"src\main.rs", 7, 9)
        );
        let module = &parsed.modules[0];
        assert_eq!(
            module.build_id.as_ref().map(|b| b.to_hex()).as_deref(),
            Some("ab01ff")
        );
        assert_eq!(module.load_bias.0, 0x5555_0000_0000);
        assert_eq!(module.segments[0].flags, "r-x");
        assert_eq!(parsed.frames[0].kind, FrameKind::ReturnAddress);
        assert_eq!(parsed.frames[0].lookup_address(), Some(0x1233));
        assert_eq!(parsed.frames[1].kind, FrameKind::Pc);
        assert_eq!(parsed.frames[1].module, None);
        assert_eq!(parsed.runtimes[1].name, "faultline-capture");
        assert_eq!(parsed.runtimes[1].version, env!("CARGO_PKG_VERSION"));
        // The same bytes serde_json's pretty printer writes for the same record.
        assert_eq!(parsed.to_json_pretty(), json);
    }

    #[test]
    fn captures_this_process() {
        let location = Location::caller();
        let record = Record::capture("in-process", Some(location));
        let json = record.to_json();
        let parsed = CrashRecord::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.to_json_pretty(), json);
        assert_eq!(parsed.pid, std::process::id());
        assert_eq!(parsed.message.as_deref(), Some("in-process"));
        assert_eq!(parsed.location.map(|l| l.line), Some(location.line()));
        assert_eq!(parsed.arch, std::env::consts::ARCH);
        assert_eq!(parsed.runtimes[0].name, "rust");
        assert!(
            parsed.runtimes[0].version.starts_with("rustc 1."),
            "{:?}",
            parsed.runtimes[0]
        );
        if cfg!(target_os = "linux") {
            assert!(parsed.tid.is_some());
            assert!(!parsed.frames.is_empty());
            assert!(!parsed.modules.is_empty());
            // The innermost frames are in this executable.
            assert_eq!(parsed.frames[0].module, Some(0));
        }
    }

    #[test]
    fn names_files_by_time_pid_and_tid() {
        let mut record = sample();
        assert_eq!(
            record.file_name(),
            "faultline-crash-1709210096789-42-43.json"
        );
        record.tid = None;
        record.unix_ms = -5;
        assert_eq!(record.file_name(), "faultline-crash-0-42-0.json");
    }
}
