//! faultline records (`faultline-crash` v1 JSON, see `faultline-record`) as dumps: a task-dump
//! record (`kind: task_dump`, what `faultline-capture` takes from a tokio runtime) gives one
//! task per recorded task; any other record gives one task, the crashing thread.
//!
//! A record holds raw addresses, not names: a [`Resolve`] turns each into source frames
//! (faultline-symbolize implements it against debug files found by build-id). Each distinct
//! address is resolved once. What the resolver cannot name stays a frame named after its module
//! and module-relative address (`app+0x1b2c3`), so unknown stacks still group by address and
//! are never merged into one `??`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use faultline_record::{CrashRecord, Kind};

use crate::{
    Crash, Diagnostic, Dump, FastHash, Format, Frame, Limits, Provenance, Result, Runtime, Stacks,
    Task,
};

/// Turns a recorded frame (a raw address in a module) into source frames.
pub trait Resolve {
    /// The source frames at `frame` of `record`, innermost (inlined) first, with
    /// [`Provenance::Symbolized`]; empty when nothing is known about the address.
    fn resolve(&mut self, record: &CrashRecord, frame: &faultline_record::Frame) -> Vec<Frame>;
}

/// A [`Resolve`] that knows nothing: every frame keeps its module and address.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unresolved;

impl Resolve for Unresolved {
    fn resolve(&mut self, _: &CrashRecord, _: &faultline_record::Frame) -> Vec<Frame> {
        Vec::new()
    }
}

/// Whether `input` looks like a faultline record: a JSON object naming the format.
pub(crate) fn detect(input: &[u8]) -> bool {
    let start = input.iter().position(|b| !b.is_ascii_whitespace());
    start.is_some_and(|i| input[i] == b'{')
        && input
            .windows(b"\"faultline-crash\"".len())
            .take(4096)
            .any(|w| w == b"\"faultline-crash\"")
}

/// Parses a record and resolves its frames. A record that does not parse gives an empty dump
/// with the record's error (JSON path, line and column) as a diagnostic.
pub(crate) fn parse(input: &[u8], limits: &Limits, resolver: &mut dyn Resolve) -> Result<Dump> {
    match CrashRecord::from_json(input) {
        Ok(record) => from_record(&record, limits, resolver),
        Err(e) => {
            let mut dump = Dump::empty(Runtime::Rust, Format::FaultlineRecord);
            let line = match &e {
                faultline_record::Error::Json { line, .. } => *line,
                _ => 1,
            };
            dump.diagnostics.push(Diagnostic {
                line,
                message: format!("not a valid faultline record: {e}"),
            });
            Ok(dump)
        }
    }
}

/// A dump of `record`'s tasks (or of its crashing thread), frames resolved with `resolver`.
pub fn from_record(
    record: &CrashRecord,
    limits: &Limits,
    resolver: &mut dyn Resolve,
) -> Result<Dump> {
    let runtime =
        if record.runtimes.iter().any(|r| r.name == "tokio") || record.kind == Kind::TaskDump {
            Runtime::Tokio
        } else {
            Runtime::Rust
        };
    let mut dump = Dump::empty(runtime, Format::FaultlineRecord);
    dump.version = record
        .runtimes
        .iter()
        .find(|r| r.name == "tokio")
        .map(|r| r.version.clone());
    dump.captured_at = Some(record.time.clone());
    dump.alive_tasks = record.alive_tasks;
    dump.pid = Some(record.pid);
    let mut frames = FrameCache::new(record, resolver);
    let mut stacks = Stacks::default();

    if record.kind == Kind::TaskDump {
        for (i, recorded) in record.tasks.iter().enumerate() {
            limits.check_tasks(i + 1, dump.tasks.len())?;
            let mut task = Task::new(recorded.id.parse().ok());
            if task.id.is_none() {
                task.name = Some(recorded.id.clone());
            }
            task.state.clone_from(&recorded.state);
            task.wait_seconds = recorded.wait_seconds.map(|s| s.max(0.0) as u64);
            task.creator_id = recorded.parent.as_deref().and_then(|p| p.parse().ok());
            let path = frames.stack(&recorded.frames, limits)?;
            task.frames = stacks.intern(&path);
            task.branches = recorded.branches.len() as u64;
            dump.tasks.push(task);
        }
    } else {
        let mut task = Task::new(record.tid.map(u64::from));
        task.name.clone_from(&record.thread_name);
        task.message.clone_from(&record.message);
        let path = frames.stack(&record.frames, limits)?;
        task.frames = stacks.intern(&path);
        dump.tasks.push(task);
        dump.crash = Some(Crash {
            kind: match record.kind {
                Kind::Signal => "signal",
                _ => "panic",
            }
            .to_owned(),
            message: record.message.clone().unwrap_or_default(),
            signal: None,
            signal_info: None,
        });
    }
    Ok(dump)
}

/// Resolves each distinct address once and shares the strings of its frames.
struct FrameCache<'r> {
    record: &'r CrashRecord,
    resolver: &'r mut dyn Resolve,
    by_address: HashMap<(Option<usize>, u64), Vec<Frame>, FastHash>,
    strings: HashSet<Arc<str>, FastHash>,
}

impl<'r> FrameCache<'r> {
    fn new(record: &'r CrashRecord, resolver: &'r mut dyn Resolve) -> Self {
        Self {
            record,
            resolver,
            by_address: HashMap::default(),
            strings: HashSet::default(),
        }
    }

    /// The source frames of a recorded stack, innermost first.
    fn stack(
        &mut self,
        recorded: &[faultline_record::Frame],
        limits: &Limits,
    ) -> Result<Vec<Frame>> {
        let mut path = Vec::with_capacity(recorded.len());
        for frame in recorded {
            let key = (frame.module, frame.address.0);
            if !self.by_address.contains_key(&key) {
                let resolved = self.resolve(frame);
                self.by_address.insert(key, resolved);
            }
            for f in self.by_address.get(&key).into_iter().flatten() {
                limits.check_frames(1, path.len())?;
                path.push(f.clone());
            }
        }
        Ok(path)
    }

    fn resolve(&mut self, frame: &faultline_record::Frame) -> Vec<Frame> {
        let mut resolved = self.resolver.resolve(self.record, frame);
        if resolved.is_empty() {
            resolved.push(Frame {
                function: Arc::from(unknown_name(self.record, frame)),
                file: None,
                line: None,
                column: None,
                offset: None,
                address: Some(frame.address.0),
                inlined: false,
                provenance: Provenance::Symbolized,
            });
        }
        for f in &mut resolved {
            f.function = self.intern(&f.function);
            if let Some(file) = &f.file {
                f.file = Some(self.intern(file));
            }
            f.address.get_or_insert(frame.address.0);
        }
        resolved
    }

    fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some(existing) = self.strings.get(s) {
            return existing.clone();
        }
        self.strings.insert(s.clone());
        s.clone()
    }
}

/// `app+0x1b2c3` (the module's file name and the module-relative address), or the absolute
/// address when it lies in no known module.
fn unknown_name(record: &CrashRecord, frame: &faultline_record::Frame) -> String {
    match (
        frame.module.and_then(|m| record.modules.get(m)),
        frame.module_address,
    ) {
        (Some(module), Some(address)) => {
            let name = module.path.rsplit('/').next().unwrap_or(&module.path);
            format!("{name}+{address}")
        }
        _ => format!("{}", frame.address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tasks: serde_like::Tasks<'_>) -> Vec<u8> {
        serde_like::record(tasks)
    }

    /// Builds record JSON by hand (this crate has no serde_json).
    mod serde_like {
        pub(super) type Tasks<'a> = &'a [(&'a str, &'a [u64], usize)];

        pub(super) fn record(tasks: Tasks<'_>) -> Vec<u8> {
            let frame = |a: &u64| {
                format!(
                    r#"{{"address":"{:#x}","kind":"return_address","module":0,"module_address":"{:#x}"}}"#,
                    a + 0x1000,
                    a
                )
            };
            let tasks: Vec<String> = tasks
                .iter()
                .map(|(id, frames, branches)| {
                    let frames: Vec<String> = frames.iter().map(frame).collect();
                    let branches: Vec<String> = (0..*branches)
                        .map(|_| format!("[{}]", frames.join(",")))
                        .collect();
                    format!(
                        r#"{{"id":"{id}","frames":[{}],"branches":[{}]}}"#,
                        frames.join(","),
                        branches.join(",")
                    )
                })
                .collect();
            format!(
                r#"{{"format":"faultline-crash","version":1,"time":"2026-11-28T10:00:00.000Z","kind":"task_dump","pid":1,"arch":"x86_64","alive_tasks":4,"modules":[{{"path":"/srv/app","build_id":"abcd","load_bias":"0x1000","segments":[]}}],"frames":[],"tasks":[{}]}}"#,
                tasks.join(",")
            )
            .into_bytes()
        }
    }

    struct Table(HashMap<u64, Vec<&'static str>>, usize);

    impl Resolve for Table {
        fn resolve(&mut self, _: &CrashRecord, frame: &faultline_record::Frame) -> Vec<Frame> {
            self.1 += 1;
            let address = frame.lookup_address().unwrap_or(0);
            let names = self.0.get(&address).cloned().unwrap_or_default();
            let last = names.len().saturating_sub(1);
            names
                .into_iter()
                .enumerate()
                .map(|(i, name)| Frame {
                    function: Arc::from(name),
                    file: Some(Arc::from("src/main.rs")),
                    line: Some(10 + i as u32),
                    column: None,
                    offset: None,
                    address: None,
                    inlined: i < last,
                    provenance: Provenance::Symbolized,
                })
                .collect()
        }
    }

    #[test]
    fn resolves_each_address_once_and_keeps_unknowns_apart() {
        let input = record(&[
            ("1", &[0x11, 0x21], 0),
            ("2", &[0x11, 0x21], 1),
            ("3", &[0x99], 0),
            ("4", &[0x98], 0),
        ]);
        assert!(detect(&input));
        let mut table = Table(
            HashMap::from([
                (0x10, vec!["tokio::sync::oneshot::Receiver<T>::poll"]),
                (
                    0x20,
                    vec!["app::waiter::wait_for_order::{{closure}}", "app::outer"],
                ),
            ]),
            0,
        );
        let dump = crate::parse_with(&input, &Limits::default(), &mut table).unwrap();
        assert_eq!(table.1, 4, "four distinct addresses");
        assert_eq!(dump.format, Format::FaultlineRecord);
        assert_eq!(dump.runtime, Runtime::Tokio);
        assert_eq!(dump.alive_tasks, Some(4));
        assert_eq!(
            dump.captured_at.as_deref(),
            Some("2026-11-28T10:00:00.000Z")
        );
        assert_eq!(dump.tasks.len(), 4);
        let t = &dump.tasks[1];
        assert_eq!(t.id, Some(2));
        assert_eq!(t.branches, 1);
        let names: Vec<&str> = t.frames.iter().map(|f| &*f.function).collect();
        assert_eq!(
            names,
            [
                "tokio::sync::oneshot::Receiver<T>::poll",
                "app::waiter::wait_for_order::{{closure}}",
                "app::outer"
            ]
        );
        assert!(t.frames[1].inlined && !t.frames[2].inlined);
        assert_eq!(t.frames[1].address, Some(0x1021));
        assert!(Arc::ptr_eq(&dump.tasks[0].frames, &dump.tasks[1].frames));
        assert_eq!(&*dump.tasks[2].frames[0].function, "app+0x99");
        assert_eq!(&*dump.tasks[3].frames[0].function, "app+0x98");

        let groups = crate::group(&dump, crate::Level::Functions, None);
        let counts: Vec<u64> = groups.iter().map(|g| g.count).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(groups[0].own_frame, Some(1));
    }

    #[test]
    fn a_broken_record_is_a_diagnostic() {
        let input = br#"{"format": "faultline-crash", "version": 1, "kind": "task_dump"}"#;
        let dump = crate::parse(input, &Limits::default()).unwrap();
        assert!(dump.tasks.is_empty());
        assert_eq!(dump.diagnostics.len(), 1);
        assert!(
            dump.diagnostics[0].message.contains("missing field"),
            "{:?}",
            dump.diagnostics
        );
    }

    #[test]
    fn limits_apply() {
        let input = record(&[("1", &[1, 2, 3], 0), ("2", &[1], 0)]);
        let limits = Limits {
            max_frames: 2,
            ..Limits::default()
        };
        assert!(crate::parse(&input, &limits).is_err());
        let limits = Limits {
            max_tasks: 1,
            ..Limits::default()
        };
        assert!(crate::parse(&input, &limits).is_err());
    }
}
