//! `faultline core-handler`: the kernel pipes a core into it (`core_pattern`), it keeps a small
//! one. The core is read once, front to back, in bounded buffers (faultline-native's `trim`);
//! what is kept is written atomically as `DIR/core-<time>-<pid>.core`, then the directory is
//! brought within its caps, oldest first. Every outcome is a line in `DIR/core-handler.log`
//! (the kernel shows a handler's output to no one).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use faultline_native::trim::{TrimOptions, trim};

use crate::CoreHandlerArgs;
use crate::exit::Failure;

pub fn run(args: CoreHandlerArgs) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::failed(anyhow::anyhow!("--out {}: {e}", args.out.display())))?;
    let options = TrimOptions {
        stack_window: args.stack_window,
        other_stack_window: args.other_stack_window,
        ..TrimOptions::default()
    };
    let stdin = std::io::stdin().lock();
    let time = args.time.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let who = format!(
        "pid {} tid {} signal {} exe {}",
        opt(args.pid),
        opt(args.tid),
        opt(args.signal),
        args.exe
            .as_deref()
            .map_or("-".into(), |e| e.replace('!', "/"))
    );
    let trimmed = match trim(std::io::BufReader::with_capacity(1 << 20, stdin), &options) {
        Ok(t) => t,
        Err(e) => {
            log(&args.out, &format!("{who}: not kept: {e}"));
            return Err(Failure::usage(format!("<stdin>: {e}")));
        }
    };
    let name = format!("core-{time}-{}.core", opt(args.pid));
    let path = args.out.join(&name);
    let tmp = args.out.join(format!(".{name}.tmp"));
    let written = std::fs::write(&tmp, &trimmed.bytes).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        log(
            &args.out,
            &format!("{who}: not kept: {}: {e}", path.display()),
        );
        return Err(Failure::failed(anyhow::anyhow!("{}: {e}", path.display())));
    }
    let missing = if trimmed.missing.is_empty() {
        String::new()
    } else {
        format!("; missing: {}", trimmed.missing.join("; "))
    };
    log(
        &args.out,
        &format!(
            "{who}: kept {} ({} bytes: {} threads, {} bytes of memory) of a {}-byte core{missing}",
            path.display(),
            trimmed.bytes.len(),
            trimmed.threads,
            trimmed.kept,
            trimmed.read
        ),
    );
    for dropped in enforce_caps(&args.out, args.max_files, args.max_bytes, &path) {
        log(
            &args.out,
            &format!(
                "dropped {} (the oldest; at most {} cores and {} bytes are kept)",
                dropped.display(),
                args.max_files,
                args.max_bytes
            ),
        );
    }
    Ok(())
}

fn opt(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Appends a line to `DIR/core-handler.log` and says it on stderr.
fn log(dir: &Path, line: &str) {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
    let line = format!("{stamp} {line}\n");
    eprint!("faultline core-handler: {line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("core-handler.log"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Removes the oldest cores of `dir` (by modification time) until at most `max_files` remain
/// and they take at most `max_bytes`; `keep` (the one just written) stays. Returns what went.
fn enforce_caps(dir: &Path, max_files: usize, max_bytes: u64, keep: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut cores: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?;
            if !(name.starts_with("core-") && name.ends_with(".core")) {
                return None;
            }
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), path))
        })
        .collect();
    cores.sort();
    let mut total: u64 = cores.iter().map(|c| c.1).sum();
    let mut count = cores.len();
    let mut dropped = Vec::new();
    for (_, size, path) in cores {
        if count <= max_files && total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= size;
            count -= 1;
            dropped.push(path);
        }
    }
    dropped
}
