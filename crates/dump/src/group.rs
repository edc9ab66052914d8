//! Folding tasks with the same stack into groups: the answer to "which stacks are piling up".

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Ancestor, Dump, Frame, Race, Runtime, Task};

/// How alike two tasks must be to share a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Same functions, files and lines, and the same state.
    Exact,
    /// Same functions and the same state; lines may differ (another build, another call site
    /// in the same function).
    Functions,
    /// The same innermost N frames of the service's own code, whatever the runtime frames
    /// around them and the state.
    OwnTop(usize),
}

/// What tasks of one group share, at the level they were grouped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The state, at levels that compare it.
    pub state: Option<String>,
    /// Function, and at [`Level::Exact`] file and line, of each frame that counts.
    pub frames: Vec<FrameKey>,
    /// At [`Level::Exact`], the creator (function, file, line): two goroutines with the same
    /// frames but created in different places are two groups, as panicparse tells them apart.
    pub creator: Option<FrameKey>,
}

/// A frame as a signature compares it: function, file, line.
pub type FrameKey = (Arc<str>, Option<Arc<str>>, Option<u32>);

/// Tasks with one signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What they share.
    pub signature: Signature,
    /// How many tasks.
    pub count: u64,
    /// The state of the first task (at [`Level::OwnTop`] states may differ: see
    /// `mixed_states`).
    pub state: Option<String>,
    /// Whether tasks of the group are in different states.
    pub mixed_states: bool,
    /// Shortest and longest wait, in seconds, of the tasks that report one.
    pub wait_seconds: Option<(u64, u64)>,
    /// The tasks' ids, in dump order.
    pub ids: Vec<u64>,
    /// Tasks locked to an OS thread.
    pub locked_to_thread: u64,
    /// Tasks the runtime proved leaked ([`Task::leaked`]).
    pub proven_leaked: u64,
    /// The frames of the first task: the group's representative stack.
    pub frames: Arc<[Frame]>,
    /// Index in `frames` of the first frame of the service's own code.
    pub own_frame: Option<usize>,
    /// The creator of the first task.
    pub creator: Option<Frame>,
    /// The first task's name (a thread's), if it has one.
    pub name: Option<String>,
    /// The first task's own message (a Rust thread's panic message), if it has one.
    pub message: Option<String>,
    /// The first task's ancestors (`GODEBUG=tracebackancestors`), nearest first.
    pub ancestors: Vec<Ancestor>,
}

/// Identical data races: the same pair of accesses, by their own code's frames.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceGroup {
    /// How many reports.
    pub count: u64,
    /// The first report.
    pub race: Race,
    /// The line of each report's `WARNING: DATA RACE`.
    pub lines: Vec<usize>,
}

/// The races of `dump`, identical ones together (the same two accesses' frames of your own
/// code, function and line, in either order; all their frames where none is yours), most
/// frequent first (ties in the order printed).
pub fn group_races(dump: &Dump, main_module: Option<&str>) -> Vec<RaceGroup> {
    type Key = Vec<(Arc<str>, Option<u32>)>;
    let access_key = |frames: &[Frame]| -> Key {
        let own: Key = frames
            .iter()
            .filter(|f| is_own_code(Runtime::Go, &f.function, main_module))
            .map(|f| (f.function.clone(), f.line))
            .collect();
        if own.is_empty() {
            frames
                .iter()
                .map(|f| (f.function.clone(), f.line))
                .collect()
        } else {
            own
        }
    };
    let mut index: HashMap<Vec<Key>, usize> = HashMap::new();
    let mut groups: Vec<RaceGroup> = Vec::new();
    for race in &dump.races {
        let mut key: Vec<Key> = race
            .accesses
            .iter()
            .take(2)
            .map(|a| access_key(&a.frames))
            .collect();
        key.sort();
        match index.get(&key) {
            Some(&i) => {
                groups[i].count += 1;
                groups[i].lines.push(race.line);
            }
            None => {
                index.insert(key, groups.len());
                groups.push(RaceGroup {
                    count: 1,
                    race: race.clone(),
                    lines: vec![race.line],
                });
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

/// Groups the tasks of `dump` at `level`, largest group first (ties: first seen first).
///
/// `main_module` is the Go main module's path (`example.com/shop`), if known; it decides which
/// frames are the service's own code (see [`is_own_code`]).
pub fn group(dump: &Dump, level: Level, main_module: Option<&str>) -> Vec<Group> {
    let mut index: HashMap<Signature, usize> = HashMap::new();
    // Tasks with the same (shared) stack and state (and, at `Exact`, creator) have the same
    // signature: look it up once.
    type StackKey<'d> = (
        usize,
        Option<&'d str>,
        Option<(&'d str, Option<&'d str>, Option<u32>)>,
    );
    let mut by_stack: HashMap<StackKey<'_>, usize, crate::FastHash> = HashMap::default();
    let mut groups: Vec<Group> = Vec::new();
    for task in &dump.tasks {
        let stack = (
            Arc::as_ptr(&task.frames).cast::<Frame>() as usize,
            task.state.as_deref(),
            (level == Level::Exact)
                .then(|| {
                    task.creator
                        .as_ref()
                        .map(|c| (&*c.function, c.file.as_deref(), c.line))
                })
                .flatten(),
        );
        if let Some(&i) = by_stack.get(&stack) {
            add(&mut groups[i], task);
            continue;
        }
        let own = |f: &Frame| is_own_code(dump.runtime, &f.function, main_module);
        let signature = signature(task, level, &own);
        match index.get(&signature) {
            Some(&i) => {
                by_stack.insert(stack, i);
                add(&mut groups[i], task);
            }
            None => {
                by_stack.insert(stack, groups.len());
                index.insert(signature.clone(), groups.len());
                let own_frame = task.frames.iter().position(own);
                groups.push(Group {
                    signature,
                    count: 0,
                    state: task.state.clone(),
                    mixed_states: false,
                    wait_seconds: None,
                    ids: Vec::new(),
                    locked_to_thread: 0,
                    proven_leaked: 0,
                    frames: task.frames.clone(),
                    own_frame,
                    creator: task.creator.clone(),
                    name: task.name.clone(),
                    message: task.message.clone(),
                    ancestors: task.ancestors.clone(),
                });
                if let Some(last) = groups.last_mut() {
                    add(last, task);
                }
            }
        }
    }
    // Stable: equal counts keep dump order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

fn add(group: &mut Group, task: &Task) {
    group.count = group.count.saturating_add(task.count);
    if task.state != group.state {
        group.mixed_states = true;
    }
    if let Some(wait) = task.wait_seconds {
        group.wait_seconds = Some(match group.wait_seconds {
            Some((lo, hi)) => (lo.min(wait), hi.max(wait)),
            None => (wait, wait),
        });
    }
    if let Some(id) = task.id {
        group.ids.push(id);
    }
    if task.locked_to_thread {
        group.locked_to_thread += task.count;
    }
    if task.leaked {
        group.proven_leaked += task.count;
    }
}

fn signature(task: &Task, level: Level, own: &dyn Fn(&Frame) -> bool) -> Signature {
    let key = |f: &Frame, exact: bool| {
        (
            f.function.clone(),
            if exact { f.file.clone() } else { None },
            if exact { f.line } else { None },
        )
    };
    match level {
        Level::Exact => Signature {
            state: task.state.clone(),
            frames: task.frames.iter().map(|f| key(f, true)).collect(),
            creator: task.creator.as_ref().map(|f| key(f, true)),
        },
        Level::Functions => Signature {
            state: task.state.clone(),
            frames: task.frames.iter().map(|f| key(f, false)).collect(),
            creator: None,
        },
        Level::OwnTop(n) => {
            let frames: Vec<_> = task
                .frames
                .iter()
                .filter(|f| own(f))
                .take(n)
                .map(|f| key(f, false))
                .collect();
            if frames.is_empty() {
                // No own code at all (runtime goroutines): fall back to the functions, so
                // they do not all land in one group.
                Signature {
                    state: task.state.clone(),
                    frames: task.frames.iter().map(|f| key(f, false)).collect(),
                    creator: None,
                }
            } else {
                Signature {
                    state: None,
                    frames,
                    creator: None,
                }
            }
        }
    }
}

/// Whether `function` belongs to the service rather than its runtime or standard library.
///
/// Go: the `main` package, or a package of `main_module` when it is known; without it, any
/// package outside the standard library (whose first path element has no dot) and outside
/// `golang.org/x/`. Rust: any crate but std, core, alloc, tokio and the runtime crates around
/// them.
pub fn is_own_code(runtime: Runtime, function: &str, main_module: Option<&str>) -> bool {
    match runtime {
        Runtime::Go => {
            let package = go_package(function);
            if package == "main" {
                return true;
            }
            match main_module {
                Some(module) => {
                    package == module
                        || package
                            .strip_prefix(module)
                            .is_some_and(|rest| rest.starts_with('/'))
                }
                None => {
                    let first = package.split('/').next().unwrap_or(package);
                    first.contains('.') && !package.starts_with("golang.org/x/")
                }
            }
        }
        Runtime::Rust | Runtime::Tokio => {
            const RUNTIME_CRATES: &[&str] = &[
                "std",
                "core",
                "alloc",
                "tokio",
                "futures",
                "futures_util",
                "futures_core",
                "faultline_capture",
                "panic_unwind",
                "panic_abort",
            ];
            let path = function.trim_start_matches(['<', '&']);
            let krate = path.split("::").next().unwrap_or(path);
            function.contains("::") && !RUNTIME_CRATES.contains(&krate) && !krate.starts_with("__")
        }
    }
}

/// The package path of a Go function name: `net/http.(*conn).serve` → `net/http`.
fn go_package(function: &str) -> &str {
    let last_slash = function.rfind('/').map_or(0, |i| i + 1);
    match function[last_slash..].find('.') {
        Some(dot) => &function[..last_slash + dot],
        None => function,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_tells_creators_apart() {
        let text = "goroutine 5 [chan receive]:\nmain.wait()\n\t/src/main.go:9 +0x1d\n\
                    created by main.startA in goroutine 1\n\t/src/main.go:20 +0x2a\n\n\
                    goroutine 6 [chan receive]:\nmain.wait()\n\t/src/main.go:9 +0x1d\n\
                    created by main.startB in goroutine 1\n\t/src/main.go:30 +0x2a\n\n\
                    goroutine 7 [chan receive]:\nmain.wait()\n\t/src/main.go:9 +0x1d\n\
                    created by main.startA in goroutine 1\n\t/src/main.go:20 +0x2a\n";
        let dump = crate::parse(text.as_bytes(), &crate::Limits::default()).unwrap();
        let exact = group(&dump, Level::Exact, None);
        assert_eq!(exact.iter().map(|g| g.count).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(
            exact[1].creator.as_ref().map(|c| &*c.function),
            Some("main.startB")
        );
        assert_eq!(group(&dump, Level::Functions, None).len(), 1);
    }

    #[test]
    fn go_own_code() {
        let own = |f: &str, m: Option<&str>| is_own_code(Runtime::Go, f, m);
        assert!(own("main.waitOnChannel", None));
        assert!(own("main.(*server).handle.func1", None));
        assert!(!own("runtime.gopark", None));
        assert!(!own("net/http.(*conn).serve", None));
        assert!(!own("internal/poll.(*FD).Read", None));
        assert!(own("example.com/shop/cart.(*Cart).Add", None));
        assert!(!own("golang.org/x/net/http2.(*serverConn).serve", None));
        assert!(own("example.com/shop/cart.Add", Some("example.com/shop")));
        assert!(!own("example.com/shopping.Add", Some("example.com/shop")));
        assert!(!own(
            "github.com/lib/pq.(*conn).recv",
            Some("example.com/shop")
        ));
        assert_eq!(go_package("net/http.(*conn).serve"), "net/http");
        assert_eq!(go_package("main.main"), "main");
        assert_eq!(go_package("example.com/x.Map[...].Get"), "example.com/x");
    }

    #[test]
    fn rust_own_code() {
        let own = |f: &str| is_own_code(Runtime::Rust, f, None);
        assert!(own("shop::cart::add"));
        assert!(own("<shop::Cart as core::fmt::Debug>::fmt"));
        assert!(!own("tokio::runtime::task::raw::poll"));
        assert!(!own("core::panicking::panic_fmt"));
        assert!(!own("main"));
    }
}
