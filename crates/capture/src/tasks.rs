//! tokio task dumps as faultline records, and an opt-in HTTP endpoint serving them.
//!
//! Behind the `tokio` feature, and only with tokio's own `--cfg tokio_unstable` (tokio's
//! `taskdump` feature demands it; Linux on x86_64, x86, aarch64 and s390x).
//!
//! [`task_dump`] takes a dump of every task of a runtime, under a timeout: tokio's
//! `Handle::dump()` waits for every worker to pause, and never finishes while one is blocked
//! (a synchronous deadlock, a busy loop, a `std::thread::sleep` on a worker) — exactly when a
//! dump is wanted most. Worse, a dump requested while a worker is blocked stalls the other
//! workers too (see [`TaskDumpError::WorkerStuck`]), so a worker that shows no sign of life
//! for a second gets a refusal instead of a dump. The result is a `faultline-crash` record of kind `task_dump`: per task,
//! the raw return addresses of the stack it is parked in (one stack per leaf future it awaits),
//! plus the module table with build-ids and load biases, so `faultline analyze` resolves the
//! names offline even when the service binary is stripped.
//!
//! tokio hands out a trace's addresses only through `Trace::resolve_backtraces`, which also
//! looks the names up in-process. In a stripped binary there is nothing to look up, so that is
//! cheap; it runs on a blocking thread so the workers are not held up either way. Only the
//! addresses are kept.
//!
//! [`serve`] answers, like Go's `net/http/pprof`:
//!
//! - `GET /debug/faultline/tasks`: the task-dump record (`application/json`); `503` with the
//!   reason when the dump timed out;
//! - `GET /debug/faultline/tasks/count`: `{"alive_tasks": N, "workers": W}`, cheap enough to
//!   poll (no dump is taken).
//!
//! It is opt-in and binds where it is told: bind it to loopback or a pod-internal address, as
//! one would pprof. One dump runs at a time; further requests wait for it.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6070").await?;
//! tokio::spawn(faultline_capture::tasks::serve(listener, faultline_capture::tasks::DEFAULT_TIMEOUT));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

use crate::json::JsonWriter;
use crate::modules::{self, Module};
use crate::record::{self, Frame};
use crate::stack::RawFrame;
use crate::time;

/// How long [`serve`] lets a dump take before answering 503, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The task-dump path.
pub const TASKS_PATH: &str = "/debug/faultline/tasks";
/// The alive-task-count path.
pub const COUNT_PATH: &str = "/debug/faultline/tasks/count";

/// Longest request head [`serve`] reads.
const MAX_REQUEST: usize = 8 * 1024;
/// How long [`serve`] waits for a request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A task dump of one runtime, as raw addresses: ready to be written or served as a
/// `faultline-crash` record of kind `task_dump`.
#[derive(Debug, Clone)]
pub struct TaskDump {
    unix_ms: i64,
    pid: u32,
    alive_tasks: usize,
    modules: Vec<Module>,
    tasks: Vec<DumpedTask>,
}

#[derive(Debug, Clone)]
struct DumpedTask {
    id: String,
    /// One stack per leaf future the task awaits, innermost first. Usually one.
    stacks: Vec<Vec<Frame>>,
}

/// Why no dump was taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskDumpError {
    /// The runtime did not finish the dump in time: a worker is blocked or busy.
    TimedOut(Duration),
    /// A worker showed no activity for a while: it is blocked or busy in one poll, and asking
    /// tokio for a dump now would stall the whole runtime. No dump was requested.
    WorkerStuck {
        /// The worker's index, as tokio's metrics number them.
        worker: usize,
        /// How long it was watched.
        for_at_least: Duration,
    },
    /// Too many tasks were waiting to run for tokio to dump safely (see [`task_dump`]'s
    /// notes), and they did not drain in time. No dump was requested.
    Backlog {
        /// Tasks in the workers' run queues at the last look.
        queued: usize,
    },
    /// The thread that read the trace's addresses failed.
    Resolve(tokio::task::JoinError),
}

impl fmt::Display for TaskDumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskDumpError::TimedOut(after) => write!(
                f,
                "the tokio task dump did not finish within {after:?}: a runtime worker is \
                 blocked or busy (tokio can only dump a runtime whose workers all pause)"
            ),
            TaskDumpError::WorkerStuck {
                worker,
                for_at_least,
            } => write!(
                f,
                "tokio worker {worker} showed no activity for {for_at_least:?}: it is blocked \
                 or busy in one poll, or was lost to an earlier task dump (tokio-rs/tokio#8370); \
                 no dump was requested, because tokio cannot pause such a worker and the dump \
                 would stall every other worker too. Look for blocking calls in async code"
            ),
            TaskDumpError::Backlog { queued } => write!(
                f,
                "{queued} tasks were waiting in the tokio run queues; no dump was requested, \
                 because tokio 1.54 loops forever when it gathers more than 128 of them for a \
                 dump. Try again when the service is less busy"
            ),
            TaskDumpError::Resolve(e) => write!(f, "reading the task traces failed: {e}"),
        }
    }
}

impl std::error::Error for TaskDumpError {}

/// Dumps every task of the runtime behind `handle`, waiting at most `timeout`.
///
/// Call it from within that runtime (a `current_thread` runtime can only be dumped from
/// inside). Tasks that are running on another worker while the dump is taken cannot be traced;
/// [`TaskDump::alive_tasks`] still counts them.
pub async fn task_dump(handle: &Handle, timeout: Duration) -> Result<TaskDump, TaskDumpError> {
    let unix_ms = time::now_unix_ms();
    let alive_tasks = handle.metrics().num_alive_tasks();
    check_workers(handle, timeout.min(STUCK_AFTER)).await?;
    let dump = tokio::time::timeout(timeout, handle.dump())
        .await
        .map_err(|_| TaskDumpError::TimedOut(timeout))?;
    let raw: Vec<(String, Vec<Vec<RawFrame>>)> = tokio::task::spawn_blocking(move || {
        dump.tasks()
            .iter()
            .map(|task| {
                let stacks = task
                    .trace()
                    .resolve_backtraces()
                    .iter()
                    .map(|backtrace| {
                        backtrace
                            .frames()
                            .map(|frame| RawFrame {
                                address: frame.ip() as u64,
                                // Every frame above tokio's leaf marker is a caller: its
                                // address is where the call returns to.
                                exact: false,
                            })
                            .collect()
                    })
                    .collect();
                (task.id().to_string(), stacks)
            })
            .collect()
    })
    .await
    .map_err(TaskDumpError::Resolve)?;
    let modules = modules::loaded();
    let tasks = raw
        .into_iter()
        .map(|(id, stacks)| DumpedTask {
            id,
            stacks: stacks
                .iter()
                .map(|stack| record::map_frames(stack, &modules))
                .collect(),
        })
        .collect();
    Ok(TaskDump {
        unix_ms,
        pid: std::process::id(),
        alive_tasks,
        modules,
        tasks,
    })
}

/// How long a worker may go without showing any activity before [`task_dump`] refuses to
/// dump: tokio itself gives up waiting for a worker after 250 ms.
const STUCK_AFTER: Duration = Duration::from_millis(1000);

/// Most tasks waiting in the workers' run queues for a dump to be requested. tokio 1.54
/// gathers the queued tasks of every worker into one queue of 256 before tracing, and once
/// that holds more than 128 it can take no more yet keeps trying: the dump spins forever on
/// a worker (`steal_all`). The check waits (within the same second) for the queues to drain
/// below this; tasks woken between the check and the dump can still cross the line.
const MAX_QUEUED: usize = 64;

/// Refuses a dump while a worker of a multi-thread runtime is stuck in one poll.
///
/// tokio (up to 1.54.1 at least) pauses every worker at a barrier to take a dump. A worker
/// blocked in a poll never arrives; the others give up after 250 ms, but the barrier keeps
/// their arrival, so on the next attempt a healthy worker believes everyone is there, traces,
/// and then waits forever for the blocked one at the end barrier (tokio-rs/tokio#8370). The
/// dump never finishes, the timeout around it never fires (no worker is left to run timers),
/// and a service that was partly stuck is now wholly stuck. The same leak also happens without
/// any blocking: a worker that goes idle right after a dump, before the dump's requester has
/// cleared the request, enters the barrier alone — so each dump of a multi-thread runtime has
/// a small chance of losing a worker (measured: docs/cli.md). So: wake every worker with a burst of no-op tasks, and require each
/// worker's counters (which tokio publishes when a worker parks or does maintenance) to move
/// within `within`. A worker that cannot move is blocked (or busy in one poll), and no dump is
/// requested.
async fn check_workers(handle: &Handle, within: Duration) -> Result<(), TaskDumpError> {
    let metrics = handle.metrics();
    let workers = metrics.num_workers();
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        // A current-thread runtime is dumped from inside, by the one thread that runs us, and
        // without gathering queues.
        return Ok(());
    }
    let activity = |w: usize| {
        metrics
            .worker_park_unpark_count(w)
            .wrapping_add(metrics.worker_poll_count(w))
            .wrapping_add(metrics.worker_noop_count(w))
            .wrapping_add(metrics.worker_steal_operations(w))
    };
    let queued = || {
        (0..workers)
            .map(|w| metrics.worker_local_queue_depth(w))
            .sum::<usize>()
    };
    let before: Vec<u64> = (0..workers).map(activity).collect();
    // With one worker, that worker is running this check: it is alive.
    let mut moved = vec![workers < 2; workers];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Spawned from outside the workers, the tasks go to the shared queue, and tokio wakes
        // parked workers for them (spawned here, they would sit in this worker's own queue).
        let nudge = handle.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for _ in 0..workers * 4 {
                nudge.spawn(tokio::task::yield_now());
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (w, moved) in moved.iter_mut().enumerate() {
            *moved |= activity(w) != before[w];
        }
        let backlog = queued();
        if moved.iter().all(|&m| m) && backlog <= MAX_QUEUED {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match moved.iter().position(|&m| !m) {
                Some(worker) => TaskDumpError::WorkerStuck {
                    worker,
                    for_at_least: within,
                },
                None => TaskDumpError::Backlog { queued: backlog },
            });
        }
    }
}

impl TaskDump {
    /// The tasks in the dump.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The tasks the runtime counted alive when the dump began.
    pub fn alive_tasks(&self) -> usize {
        self.alive_tasks
    }

    /// The dump as a `faultline-crash` version 1 record of kind `task_dump`.
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
        w.string("task_dump");
        w.key("pid");
        w.number(u64::from(self.pid));
        w.key("arch");
        w.string(std::env::consts::ARCH);
        w.key("runtimes");
        record::write_runtimes(&mut w);
        w.key("modules");
        w.begin_array();
        for module in &self.modules {
            record::write_module(&mut w, module);
        }
        w.end_array();
        w.key("frames");
        record::write_frames(&mut w, &[]);
        w.key("tasks");
        w.begin_array();
        for task in &self.tasks {
            w.begin_object();
            w.key("id");
            w.string(&task.id);
            w.key("frames");
            record::write_frames(&mut w, task.stacks.first().map_or(&[], Vec::as_slice));
            if task.stacks.len() > 1 {
                w.key("branches");
                w.begin_array();
                for stack in &task.stacks[1..] {
                    record::write_frames(&mut w, stack);
                }
                w.end_array();
            }
            w.end_object();
        }
        w.end_array();
        w.key("alive_tasks");
        w.number(self.alive_tasks as u64);
        w.end_object();
        w.finish()
    }
}

/// Serves [`TASKS_PATH`] and [`COUNT_PATH`] on `listener` until the runtime shuts down, each
/// dump under `timeout`. Spawn it on the runtime to be dumped.
pub async fn serve(listener: TcpListener, timeout: Duration) {
    let handle = Handle::current();
    // One dump at a time: a dump pauses every worker, and a queue of them would stall the
    // service rather than help anyone.
    let one_dump = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let handle = handle.clone();
        let one_dump = one_dump.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &handle, timeout, &one_dump).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    handle: &Handle,
    timeout: Duration,
    one_dump: &tokio::sync::Mutex<()>,
) -> std::io::Result<()> {
    let Ok(head) = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else {
        return Ok(());
    };
    let Some((method, target)) = head? else {
        return respond(&mut stream, 400, "text/plain", "bad request\n", false).await;
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut stream, 405, "text/plain", "only GET\n", false).await;
    }
    let path = target.split('?').next().unwrap_or_default();
    match path {
        TASKS_PATH => {
            let _one = one_dump.lock().await;
            match task_dump(handle, timeout).await {
                Ok(dump) => {
                    let mut body = dump.to_json();
                    body.push('\n');
                    respond(&mut stream, 200, "application/json", &body, head_only).await
                }
                Err(e) => {
                    let body = format!("{e}\n");
                    respond(&mut stream, 503, "text/plain", &body, head_only).await
                }
            }
        }
        COUNT_PATH => {
            let metrics = handle.metrics();
            let body = format!(
                "{{\"alive_tasks\": {}, \"workers\": {}}}\n",
                metrics.num_alive_tasks(),
                metrics.num_workers()
            );
            respond(&mut stream, 200, "application/json", &body, head_only).await
        }
        _ => {
            let body = format!("not found: try {TASKS_PATH} or {COUNT_PATH}\n");
            respond(&mut stream, 404, "text/plain", &body, head_only).await
        }
    }
}

/// Reads a request head and returns its method and target, `None` when it is not HTTP.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() > MAX_REQUEST {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Ok(None);
    };
    if !version.starts_with("HTTP/1.") {
        return Ok(None);
    }
    Ok(Some((method.to_owned(), target.to_owned())))
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
