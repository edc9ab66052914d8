//! `/debug/pprof/goroutine?debug=0`: a gzipped `profile.proto`, one sample per distinct stack
//! with the number of goroutines on it.
//!
//! The few messages needed are decoded by hand (varints and length-delimited fields), which is
//! all protobuf's wire format asks: no code generator, no runtime. A sample's locations are
//! innermost first; a location with several lines is a call site with inlined functions, the
//! last line being the function they were inlined into.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use crate::{Diagnostic, Dump, Error, Format, Frame, Limits, Provenance, Result, Runtime, Task};

/// Whether `input` is gzip data (the pprof endpoint always compresses).
pub fn detect(input: &[u8]) -> bool {
    input.starts_with(&[0x1f, 0x8b])
}

pub fn parse(input: &[u8], limits: &Limits) -> Result<Dump> {
    let mut dump = Dump::empty(Runtime::Go, Format::GoPprofProto);
    let mut data = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(input).take(limits.max_decompressed as u64 + 1);
    if let Err(e) = decoder.read_to_end(&mut data) {
        dump.diagnostics.push(Diagnostic {
            line: 1,
            message: format!("not a gzipped pprof profile: {e}"),
        });
        return Ok(dump);
    }
    if data.len() > limits.max_decompressed {
        return Err(Error::Limit {
            line: 1,
            what: "decompressed size",
            limit: limits.max_decompressed,
        });
    }
    match decode(&data, limits) {
        Ok(tasks) => dump.tasks = tasks,
        Err(ProtoError::Limit(what, limit)) => {
            return Err(Error::Limit {
                line: 1,
                what,
                limit,
            });
        }
        Err(ProtoError::Malformed(message)) => dump.diagnostics.push(Diagnostic {
            line: 1,
            message: format!("not a valid pprof profile: {message}"),
        }),
    }
    Ok(dump)
}

enum ProtoError {
    Malformed(&'static str),
    Limit(&'static str, usize),
}

type ProtoResult<T> = std::result::Result<T, ProtoError>;

/// A cursor over protobuf wire data.
struct Wire<'a> {
    data: &'a [u8],
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> ProtoResult<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .data
                .split_first()
                .ok_or(ProtoError::Malformed("truncated varint"))?;
            self.data = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::Malformed("varint longer than 10 bytes"))
    }

    /// The next field: its number and value, or `None` at the end.
    fn field(&mut self) -> ProtoResult<Option<(u64, Value<'a>)>> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtoError::Malformed("length too large"))?;
                let bytes = self
                    .data
                    .get(..len)
                    .ok_or(ProtoError::Malformed("truncated field"))?;
                self.data = &self.data[len..];
                Value::Bytes(bytes)
            }
            5 => {
                self.skip(4)?;
                Value::Fixed
            }
            _ => return Err(ProtoError::Malformed("unknown wire type")),
        };
        Ok(Some((key >> 3, value)))
    }

    fn skip(&mut self, n: usize) -> ProtoResult<()> {
        self.data = self
            .data
            .get(n..)
            .ok_or(ProtoError::Malformed("truncated fixed-size field"))?;
        Ok(())
    }
}

/// A repeated integer field, packed (one length-delimited run) or not (one varint per field).
fn push_ints(value: Value<'_>, out: &mut Vec<u64>) -> ProtoResult<()> {
    match value {
        Value::Varint(v) => out.push(v),
        Value::Bytes(bytes) => {
            let mut wire = Wire { data: bytes };
            while !wire.data.is_empty() {
                out.push(wire.varint()?);
            }
        }
        Value::Fixed => {
            return Err(ProtoError::Malformed(
                "fixed-size integer where a varint was expected",
            ));
        }
    }
    Ok(())
}

fn varint(value: Value<'_>) -> ProtoResult<u64> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(ProtoError::Malformed("expected a varint")),
    }
}

struct Sample {
    locations: Vec<u64>,
    values: Vec<u64>,
}

struct Location {
    /// (function id, line), innermost inlined first.
    lines: Vec<(u64, i64)>,
}

struct Function {
    name: u64,
    file: u64,
}

fn decode(data: &[u8], limits: &Limits) -> ProtoResult<Vec<Task>> {
    let mut samples = Vec::new();
    let mut locations: HashMap<u64, Location> = HashMap::new();
    let mut functions: HashMap<u64, Function> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    // The string index of each sample type's name (`goroutine`, or `goroutineleak` for the
    // leak profile of Go 1.26 and later, whose every goroutine was proven leaked).
    let mut sample_types: Vec<u64> = Vec::new();
    let mut wire = Wire { data };
    while let Some((field, value)) = wire.field()? {
        match (field, value) {
            (1, Value::Bytes(bytes)) => {
                let mut w = Wire { data: bytes };
                while let Some((f, v)) = w.field()? {
                    if f == 1 {
                        sample_types.push(varint(v)?);
                    }
                }
            }
            (2, Value::Bytes(bytes)) => {
                if samples.len() >= limits.max_tasks {
                    return Err(ProtoError::Limit("task count", limits.max_tasks));
                }
                let mut sample = Sample {
                    locations: Vec::new(),
                    values: Vec::new(),
                };
                let mut w = Wire { data: bytes };
                while let Some((f, v)) = w.field()? {
                    match f {
                        1 => push_ints(v, &mut sample.locations)?,
                        2 => push_ints(v, &mut sample.values)?,
                        _ => {}
                    }
                }
                if sample.locations.len() > limits.max_frames {
                    return Err(ProtoError::Limit("frame count", limits.max_frames));
                }
                samples.push(sample);
            }
            (4, Value::Bytes(bytes)) => {
                let mut id = 0;
                let mut lines = Vec::new();
                let mut w = Wire { data: bytes };
                while let Some((f, v)) = w.field()? {
                    match (f, v) {
                        (1, v) => id = varint(v)?,
                        (4, Value::Bytes(line)) => {
                            let (mut function, mut number) = (0, 0i64);
                            let mut lw = Wire { data: line };
                            while let Some((lf, lv)) = lw.field()? {
                                match lf {
                                    1 => function = varint(lv)?,
                                    // int64, two's complement in a varint.
                                    2 => number = varint(lv)? as i64,
                                    _ => {}
                                }
                            }
                            lines.push((function, number));
                        }
                        _ => {}
                    }
                }
                locations.insert(id, Location { lines });
            }
            (5, Value::Bytes(bytes)) => {
                let (mut id, mut name, mut file) = (0, 0, 0);
                let mut w = Wire { data: bytes };
                while let Some((f, v)) = w.field()? {
                    match f {
                        1 => id = varint(v)?,
                        2 => name = varint(v)?,
                        4 => file = varint(v)?,
                        _ => {}
                    }
                }
                functions.insert(id, Function { name, file });
            }
            (6, Value::Bytes(bytes)) => {
                strings.push(
                    std::str::from_utf8(bytes)
                        .map_err(|_| ProtoError::Malformed("a string that is not UTF-8"))?,
                );
            }
            _ => {}
        }
    }

    let leak_profile = sample_types.iter().any(|&t| {
        usize::try_from(t)
            .ok()
            .and_then(|t| strings.get(t))
            .is_some_and(|name| *name == "goroutineleak")
    });
    let mut names: HashMap<u64, Arc<str>> = HashMap::new();
    let mut text = |index: u64| -> Option<Arc<str>> {
        let s = *strings.get(usize::try_from(index).ok()?)?;
        (!s.is_empty()).then(|| names.entry(index).or_insert_with(|| s.into()).clone())
    };
    let mut tasks = Vec::with_capacity(samples.len());
    let mut frames = Vec::new();
    for sample in samples {
        let mut task = Task::new(None);
        task.count = sample.values.first().copied().unwrap_or(1);
        task.leaked = leak_profile;
        frames.clear();
        for id in &sample.locations {
            let Some(location) = locations.get(id) else {
                return Err(ProtoError::Malformed(
                    "a sample names a location that is not there",
                ));
            };
            let last = location.lines.len().saturating_sub(1);
            for (i, &(function_id, line)) in location.lines.iter().enumerate() {
                // Checked per frame: a tiny profile can reference one large location many
                // times, and expanding it first would allocate without bound.
                if frames.len() >= limits.max_frames {
                    return Err(ProtoError::Limit("frame count", limits.max_frames));
                }
                let function = functions.get(&function_id);
                frames.push(Frame {
                    function: function
                        .and_then(|f| text(f.name))
                        .unwrap_or_else(|| Arc::from("??")),
                    file: function.and_then(|f| text(f.file)),
                    line: u32::try_from(line).ok().filter(|&l| l > 0),
                    column: None,
                    offset: None,
                    address: None,
                    inlined: i < last,
                    provenance: Provenance::GoPprof,
                });
            }
        }
        if frames.len() > limits.max_frames {
            return Err(ProtoError::Limit("frame count", limits.max_frames));
        }
        task.frames = Arc::from(frames.as_slice());
        tasks.push(task);
    }
    // Largest first, like the debug=1 text, so the two read alike.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.count));
    Ok(tasks)
}
