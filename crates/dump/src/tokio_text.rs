//! tokio task dumps: the `Display` of `tokio::runtime::dump::Trace` (tokio 1.33 on, built with
//! `--cfg tokio_unstable` and the `taskdump` feature), one tree per task:
//!
//! ```text
//! task 7:                                          (optional framing: a program's own)
//! ╼ shop::serve::{{closure}} at /src/main.rs:18:20
//!   └╼ shop::load::{{closure}} at /src/main.rs:23:20
//!      ├╼ tokio::time::sleep::Sleep::poll_elapsed at /…/tokio-1.54.1/src/time/sleep.rs:437:27
//!      └╼ tokio::sync::oneshot::Receiver<T>::poll at /…/src/sync/oneshot.rs:1100:13
//! ```
//!
//! tokio prints the task's future at the root and what it awaits below it, with non-breaking
//! spaces (U+00A0) in the tree prefixes and after `╼`; plain spaces are read the same. Each
//! node is `NAME at FILE:LINE:COL` (the name without its hash, the location as far as the debug
//! info knows it). A tree is a task; its frames are the path from the root to a leaf,
//! reversed, so that `frames[0]` is the leaf the task is parked in.
//!
//! **Branches.** A task awaiting several futures at once (`join!`, `select!`) prints a tree
//! that forks. The task keeps the *first* leaf path (the first child at every fork, as tokio
//! printed it); every further leaf is counted in [`Task::branches`](crate::Task::branches)
//! and its frames are dropped.
//!
//! Framing lines a program may print around the trees are understood: `task <id>:` before a
//! tree gives the task its id, and `alive tasks: <n>` gives the dump's alive-task count. Blank lines separate trees.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{
    Diagnostic, Dump, FastHash, Format, Frame, Limits, Provenance, Result, Runtime, Stacks, Task,
};

/// A tree node: its depth (relative to its tree's root) and its text after `╼`.
struct Node<'t> {
    /// Characters before `╼`.
    indent: usize,
    text: &'t str,
}

/// Whether `text` holds a tokio task dump: a tree node `╼ NAME at FILE…`, or the framing
/// lines `task <n>:` / `alive tasks: <n>`.
pub fn detect(text: &str) -> bool {
    text.lines().take(10_000).any(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        parse_node(line).is_some_and(|n| n.text.contains(" at "))
            || parse_task_header(line).is_some()
            || parse_alive(line).is_some()
    })
}

/// A tree line: a prefix of spaces, non-breaking spaces and `│ ├ └`, then `╼`, a space, the
/// node.
fn parse_node(line: &str) -> Option<Node<'_>> {
    let mut indent = 0;
    for (i, c) in line.char_indices() {
        match c {
            ' ' | '\u{a0}' | '│' | '├' | '└' => indent += 1,
            '╼' => {
                let rest = &line[i + '╼'.len_utf8()..];
                let text = rest
                    .strip_prefix('\u{a0}')
                    .or_else(|| rest.strip_prefix(' '))?;
                return Some(Node { indent, text });
            }
            _ => return None,
        }
    }
    None
}

/// `task 42:` → 42.
fn parse_task_header(line: &str) -> Option<u64> {
    line.trim()
        .strip_prefix("task ")?
        .strip_suffix(':')?
        .parse()
        .ok()
}

/// `alive tasks: 6` → 6.
fn parse_alive(line: &str) -> Option<u64> {
    line.trim().strip_prefix("alive tasks: ")?.parse().ok()
}

/// A node's file, line and column.
type Location<'t> = (&'t str, Option<u32>, Option<u32>);

/// `NAME at FILE:LINE:COL` → name, and the location if there is one. Either side may be
/// missing: tokio prints what the debug info has.
fn parse_symbol(text: &str) -> (&str, Option<Location<'_>>) {
    let text = text.trim_end();
    let (name, location) = match text.strip_prefix("at ") {
        Some(location) => ("", location),
        None => match text.split_once(" at ") {
            Some((name, location)) => (name, location),
            None => return (text, None),
        },
    };
    let number = |s: &str| s.parse::<u32>().ok();
    let location = match location.rsplit_once(':') {
        Some((before, last)) if number(last).is_some() => match before.rsplit_once(':') {
            Some((file, line)) if number(line).is_some() => (file, number(line), number(last)),
            _ => (before, number(last), None),
        },
        _ => (location, None, None),
    };
    (name, Some(location))
}

pub fn parse(text: &str, limits: &Limits) -> Result<Dump> {
    let mut dump = Dump::empty(Runtime::Tokio, Format::TokioTaskDump);
    let mut names: HashMap<String, Arc<str>, FastHash> = HashMap::default();
    let mut name = |s: &str| -> Arc<str> {
        if let Some(a) = names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        names.insert(s.to_owned(), a.clone());
        a
    };
    let mut stacks = Stacks::default();

    /// The task being read: the root's indent, the frames on the first leaf path (outermost
    /// first), whether that path has ended, the leaves seen before the last node, and the last
    /// node's depth.
    struct Open {
        task: Task,
        root_indent: Option<usize>,
        path: Vec<Frame>,
        path_done: bool,
        leaves: u64,
        last_depth: usize,
    }
    let finish = |open: &mut Option<Open>, stacks: &mut Stacks, dump: &mut Dump| {
        if let Some(mut o) = open.take() {
            if o.root_indent.is_some() {
                // The last node of a tree is a leaf.
                o.leaves += 1;
            }
            o.path.reverse();
            o.task.frames = stacks.intern(&o.path);
            o.task.branches = o.leaves.saturating_sub(1);
            dump.tasks.push(o.task);
        }
    };
    let start = |id: Option<u64>| Open {
        task: Task::new(id),
        root_indent: None,
        path: Vec::new(),
        path_done: false,
        leaves: 0,
        last_depth: 0,
    };

    let mut open: Option<Open> = None;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        limits.check_line(line_no, raw)?;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(alive) = parse_alive(line) {
            dump.alive_tasks = Some(alive);
            continue;
        }
        if let Some(id) = parse_task_header(line) {
            finish(&mut open, &mut stacks, &mut dump);
            limits.check_tasks(line_no, dump.tasks.len())?;
            open = Some(start(Some(id)));
            continue;
        }
        let Some(node) = parse_node(line) else {
            dump.diagnostics.push(Diagnostic {
                line: line_no,
                message: format!("unexpected line: {}", crate::shorten(line.trim())),
            });
            continue;
        };
        // A root: a new tree, so a new task, unless a `task <n>:` line opened one for it.
        let is_root = match &open {
            None => true,
            Some(o) => o.root_indent.is_none_or(|root| node.indent <= root),
        };
        if is_root && open.as_ref().is_none_or(|o| o.root_indent.is_some()) {
            finish(&mut open, &mut stacks, &mut dump);
            limits.check_tasks(line_no, dump.tasks.len())?;
            open = Some(start(None));
        }
        let Some(o) = open.as_mut() else { continue };
        let root = *o.root_indent.get_or_insert(node.indent);
        // tokio indents each level by three characters.
        let depth = (node.indent - root).div_ceil(3);
        if o.path.is_empty() || depth > o.last_depth {
            if depth != o.path.len() && !o.path_done {
                dump.diagnostics.push(Diagnostic {
                    line: line_no,
                    message: format!(
                        "a tree node deeper than its parent: {}",
                        crate::shorten(line.trim())
                    ),
                });
            }
        } else {
            // Back up the tree: the node before this one was a leaf.
            o.leaves += 1;
            o.path_done = true;
        }
        o.last_depth = depth;
        if o.path_done {
            continue;
        }
        limits.check_frames(line_no, o.path.len())?;
        let (function, location) = parse_symbol(node.text);
        let (file, line, column) = match location {
            Some((file, line, column)) => (Some(name(file)), line, column),
            None => (None, None, None),
        };
        o.path.push(Frame {
            function: name(if function.is_empty() {
                "<unknown>"
            } else {
                function
            }),
            file,
            line,
            column,
            offset: None,
            address: None,
            inlined: false,
            provenance: Provenance::TokioTree,
        });
    }
    finish(&mut open, &mut stacks, &mut dump);
    Ok(dump)
}
