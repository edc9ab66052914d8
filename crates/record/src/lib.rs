//! The formats that cross a process boundary.
//!
//! A crash record is what `faultline-capture` writes when a Rust service panics, and what
//! `faultline analyze` reads later, on another machine: raw frame addresses, the module table
//! (path, GNU build-id, load bias, `PT_LOAD` segments) and the runtime's own words about the
//! crash. Nothing in a record is resolved in-process; the record plus a debug store keyed by
//! build-id is enough to symbolize a stripped PIE binary.
//!
//! The format is JSON, versioned by [`FORMAT_VERSION`], and documented in `docs/formats.md`.
//! Addresses are hex strings (`"0x55d1c0de"`) because JSON numbers lose precision past 2^53 in
//! many readers.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value of the `format` field of every crash record.
pub const FORMAT_NAME: &str = "faultline-crash";
/// The record format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Errors from reading a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not JSON, or a field has the wrong shape.
    #[error("at `{path}` (line {line}, column {column}): {message}")]
    Json {
        /// Where in the document, as a path such as `modules[0].build_id`.
        path: String,
        /// 1-based line of the error in the input.
        line: usize,
        /// 1-based column of the error in the input.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// The `format` field names something that is not a faultline crash record.
    #[error("not a faultline crash record: `format` is {found:?}, expected {FORMAT_NAME:?}")]
    NotARecord {
        /// The value found.
        found: String,
    },
    /// The record was written by a newer (or unknown) version of the format.
    #[error("unsupported record version {found}; this faultline reads version {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The record is well-formed JSON but says something impossible.
    #[error("at `{path}`: {message}")]
    Invalid {
        /// Where in the document.
        path: String,
        /// What is wrong, and what was expected.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A GNU build-id: the bytes of the `NT_GNU_BUILD_ID` note, usually 20 (SHA-1) but variable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId(Vec<u8>);

/// Why a string is not a build-id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildIdError {
    /// Odd length or a character outside `[0-9a-fA-F]`.
    #[error("build-id must be an even number of hex digits, got {0:?}")]
    NotHex(String),
    /// Fewer than [`BuildId::MIN_LEN`] or more than [`BuildId::MAX_LEN`] bytes.
    #[error("build-id must be {min} to {max} bytes, got {len}", min = BuildId::MIN_LEN, max = BuildId::MAX_LEN)]
    BadLength {
        /// Bytes given.
        len: usize,
    },
}

impl BuildId {
    /// Shortest build-id accepted: the `.build-id/ab/cdef…` layout needs at least two bytes.
    pub const MIN_LEN: usize = 2;
    /// Longest build-id accepted; real ones are 8 to 32 bytes.
    pub const MAX_LEN: usize = 64;

    /// A build-id from the note's bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, BuildIdError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(BuildIdError::BadLength { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// Parses lowercase or uppercase hex.
    pub fn from_hex(hex: &str) -> Result<Self, BuildIdError> {
        let not_hex = || BuildIdError::NotHex(hex.to_owned());
        if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_hex());
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| not_hex()))
            .collect::<Result<Vec<u8>, _>>()?;
        Self::new(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hex, as in `.build-id/` paths and debuginfod URLs.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({self})")
    }
}

impl FromStr for BuildId {
    type Err = BuildIdError;
    fn from_str(s: &str) -> Result<Self, BuildIdError> {
        Self::from_hex(s)
    }
}

impl Serialize for BuildId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BuildId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A 64-bit address, written in JSON as a `0x`-prefixed hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub u64);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl FromStr for Addr {
    type Err = String;
    /// Accepts `0x1234`, `0X1234` and bare hex `1234`, as symbolizers do.
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!("expected a hex address such as 0x1a2b, got {s:?}"));
        }
        u64::from_str_radix(digits, 16)
            .map(Addr)
            .map_err(|e| format!("bad address {s:?}: {e}"))
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Rust panic (the panic hook ran).
    Panic,
    /// A fatal signal.
    Signal,
    /// A tokio task dump.
    TaskDump,
    /// A Go goroutine dump.
    GoroutineDump,
}

/// Whether a frame's address is the exact instruction or the address after a call.
///
/// Return addresses point one instruction past the call; a symbolizer looks them up at
/// `address - 1` so the call site, not the next line, is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// The exact program counter (the faulting instruction, or a signal frame).
    Pc,
    /// A return address taken from the stack.
    ReturnAddress,
}

/// A runtime or library version, as the runtime reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// `rust`, `go`, `tokio`, `faultline-capture`, …
    pub name: String,
    /// The version string verbatim.
    pub version: String,
}

/// A source location as the runtime reported it (for example a panic's `file:line:column`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file as the compiler recorded it (often relative).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column; 0 when unknown.
    #[serde(default)]
    pub column: u32,
}

/// A `PT_LOAD` segment of a loaded module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Runtime start address (`load_bias + vaddr`).
    pub start: Addr,
    /// Size in memory (`p_memsz`).
    pub size: u64,
    /// Offset in the file (`p_offset`).
    pub file_offset: u64,
    /// Virtual address in the ELF file (`p_vaddr`).
    pub vaddr: Addr,
    /// Permissions, `r-x` style.
    pub flags: String,
}

/// A loaded ELF module (the executable, a shared library, the vDSO).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Path as the loader knew it; `[vdso]` for the vDSO.
    pub path: String,
    /// The full GNU build-id, if the module has one.
    #[serde(default)]
    pub build_id: Option<BuildId>,
    /// Difference between runtime addresses and the ELF file's virtual addresses.
    pub load_bias: Addr,
    /// The `PT_LOAD` segments.
    #[serde(default)]
    pub segments: Vec<Segment>,
}

impl Module {
    /// Whether `address` (a runtime address) lies in one of this module's segments.
    pub fn contains(&self, address: u64) -> bool {
        self.segments
            .iter()
            .any(|s| address >= s.start.0 && address - s.start.0 < s.size)
    }
}

/// One raw stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The absolute runtime address.
    pub address: Addr,
    /// Exact PC or return address.
    pub kind: FrameKind,
    /// Index into [`CrashRecord::modules`], if the address lies in a known module.
    #[serde(default)]
    pub module: Option<usize>,
    /// `address - load_bias`: the address in the module's ELF virtual address space, the one
    /// debug info and `llvm-symbolizer` use.
    #[serde(default)]
    pub module_address: Option<Addr>,
}

impl Frame {
    /// The module-relative address to look up in debug info: `module_address - 1` for return
    /// addresses (so the call is found, not the instruction after it), exact otherwise.
    pub fn lookup_address(&self) -> Option<u64> {
        let addr = self.module_address?.0;
        Some(match self.kind {
            FrameKind::Pc => addr,
            FrameKind::ReturnAddress => addr.saturating_sub(1),
        })
    }
}

/// One task of a task dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The runtime's task id.
    pub id: String,
    /// The task that created this one, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// State or wait reason as the runtime named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How long the task has waited, in seconds, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<f64>,
    /// The task's frames, innermost first.
    #[serde(default)]
    pub frames: Vec<Frame>,
    /// Further stacks the task was parked in at once, each innermost first: a tokio task
    /// awaiting several futures (`join!`, `select!`) has one backtrace per leaf future.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Vec<Frame>>,
}

/// A crash record or task dump, format version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for records this crate writes.
    pub version: u32,
    /// When it happened, RFC 3339 in UTC (`2026-11-28T10:00:00.123Z`).
    pub time: String,
    /// What happened.
    pub kind: Kind,
    /// Process id.
    pub pid: u32,
    /// Kernel thread id of the crashing thread.
    #[serde(default)]
    pub tid: Option<u32>,
    /// Name of the crashing thread, if it has one.
    #[serde(default)]
    pub thread_name: Option<String>,
    /// CPU architecture as Rust names it (`x86_64`, `aarch64`).
    pub arch: String,
    /// Runtime and library versions.
    #[serde(default)]
    pub runtimes: Vec<Runtime>,
    /// The panic message (or signal description) as the runtime reported it.
    #[serde(default)]
    pub message: Option<String>,
    /// The panic location as the runtime reported it.
    #[serde(default)]
    pub location: Option<Location>,
    /// The runtime's own text, verbatim (for a panic: what the default hook prints).
    #[serde(default)]
    pub raw_text: Option<String>,
    /// Loaded modules. Required (possibly empty), so a misspelt key is an error rather than an
    /// empty stack.
    pub modules: Vec<Module>,
    /// The crashing thread's frames, innermost first. Required, like `modules`.
    pub frames: Vec<Frame>,
    /// Tasks, for task dumps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    /// For task dumps: how many tasks the runtime counted alive when the dump was taken (it
    /// may list fewer: tasks running on another thread cannot be traced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alive_tasks: Option<u64>,
}

impl CrashRecord {
    /// Parses and validates a record. Errors say where in the document, and what was expected.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // Check the envelope first, so a record from a newer version gets a version error and
        // not a confusing complaint about some field it added.
        #[derive(Deserialize)]
        struct Envelope {
            format: Option<serde_json::Value>,
            version: Option<serde_json::Value>,
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let envelope: Envelope =
            serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(bytes, e))?;
        match envelope.format {
            Some(serde_json::Value::String(s)) if s == FORMAT_NAME => {}
            other => {
                return Err(Error::NotARecord {
                    found: other.map_or_else(|| "missing".to_owned(), |v| v.to_string()),
                });
            }
        }
        match envelope
            .version
            .as_ref()
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::UnsupportedVersion {
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                });
            }
            None => {
                return Err(Error::Invalid {
                    path: "version".into(),
                    message: format!("expected the integer {FORMAT_VERSION}"),
                });
            }
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let record: CrashRecord =
            serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(bytes, e))?;
        de.end().map_err(|e| Error::Json {
            path: ".".into(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        record.validate()?;
        Ok(record)
    }

    /// Pretty JSON, as written to disk.
    pub fn to_json_pretty(&self) -> String {
        // Serializing these plain structs cannot fail: every map key is a string.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks what the types cannot: module indices in range, module-relative addresses that
    /// agree with the load bias.
    pub fn validate(&self) -> Result<()> {
        let frames =
            self.frames
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("frames[{i}]"), f))
                .chain(self.tasks.iter().enumerate().flat_map(|(t, task)| {
                    let main = task
                        .frames
                        .iter()
                        .enumerate()
                        .map(move |(i, f)| (format!("tasks[{t}].frames[{i}]"), f));
                    let branches =
                        task.branches
                            .iter()
                            .enumerate()
                            .flat_map(move |(b, frames)| {
                                frames.iter().enumerate().map(move |(i, f)| {
                                    (format!("tasks[{t}].branches[{b}][{i}]"), f)
                                })
                            });
                    main.chain(branches)
                }));
        for (path, frame) in frames {
            let Some(index) = frame.module else {
                if frame.module_address.is_some() {
                    return Err(Error::Invalid {
                        path: format!("{path}.module_address"),
                        message: "a frame with no module cannot have a module address".into(),
                    });
                }
                continue;
            };
            let Some(module) = self.modules.get(index) else {
                return Err(Error::Invalid {
                    path: format!("{path}.module"),
                    message: format!(
                        "module index {index} out of range: the record has {} modules",
                        self.modules.len()
                    ),
                });
            };
            let expected = frame.address.0.wrapping_sub(module.load_bias.0);
            match frame.module_address {
                Some(a) if a.0 == expected => {}
                Some(a) => {
                    return Err(Error::Invalid {
                        path: format!("{path}.module_address"),
                        message: format!(
                            "{a} disagrees with address {} minus load bias {} = {:#x}",
                            frame.address, module.load_bias, expected
                        ),
                    });
                }
                None => {
                    return Err(Error::Invalid {
                        path: format!("{path}.module_address"),
                        message: "missing: a frame with a module needs its module address".into(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn json_error(bytes: &[u8], e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let (line, column) = if inner.line() == 0 {
        // serde_json reports 0 for errors with no position (such as missing fields at EOF).
        let line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        (line, 1)
    } else {
        (inner.line(), inner.column())
    };
    Error::Json {
        path,
        line,
        column,
        message: strip_position(&inner.to_string()),
    }
}

/// serde_json appends " at line L column C"; we report those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

pub mod signal;
pub mod time;

#[cfg(test)]
mod tests;
