//! `faultline core-handler`: the kernel pipes a core into it (`core_pattern`), it keeps a small
//! one. The core is read once, front to back, in bounded buffers (faultline-native's `trim`);
//! what is kept is written atomically as `DIR/core-<time>-<pid>.core`, and the same as a
//! minidump `DIR/core-<time>-<pid>.dmp`; then the directory is brought within its caps, oldest
//! crash first (its `.core` and `.dmp` together). Every outcome is a line in `DIR/core-handler.log`
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
    let stem = format!("core-{time}-{}", opt(args.pid));
    let path = args.out.join(format!("{stem}.core"));
    if let Err(e) = write_atomically(&path, &trimmed.bytes) {
        log(
            &args.out,
            &format!("{who}: not kept: {}: {e}", path.display()),
        );
        return Err(Failure::failed(anyhow::anyhow!("{}: {e}", path.display())));
    }
    // The same crash as a minidump, from the small core just kept.
    let minidump = (!args.no_minidump)
        .then(|| faultline_native::minidump::of_core(&trimmed.bytes, time))
        .flatten();
    let dmp = args.out.join(format!("{stem}.dmp"));
    let mut also = String::new();
    if let Some(bytes) = &minidump {
        match write_atomically(&dmp, bytes) {
            Ok(()) => also = format!(" and {} ({} bytes)", dmp.display(), bytes.len()),
            Err(e) => also = format!(" (its minidump not written: {}: {e})", dmp.display()),
        }
    }
    let missing = if trimmed.missing.is_empty() {
        String::new()
    } else {
        format!("; missing: {}", trimmed.missing.join("; "))
    };
    log(
        &args.out,
        &format!(
            "{who}: kept {} ({} bytes: {} threads, {} bytes of memory){also} of a {}-byte \
             core{missing}",
            path.display(),
            trimmed.bytes.len(),
            trimmed.threads,
            trimmed.kept,
            trimmed.read
        ),
    );
    for dropped in enforce_caps(&args.out, args.max_files, args.max_bytes, &stem) {
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

/// Writes `bytes` to a temporary file beside `path`, then renames it: a reader never sees half.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

/// Removes the oldest crashes of `dir` (by modification time; a crash is its `.core` and its
/// `.dmp`) until at most `max_files` remain and they take at most `max_bytes`; `keep` (the stem
/// of the one just written) stays. Returns what went.
fn enforce_caps(dir: &Path, max_files: usize, max_bytes: u64, keep: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    // stem → (newest modification, bytes, files)
    let mut crashes: std::collections::BTreeMap<String, (SystemTime, u64, Vec<PathBuf>)> =
        std::collections::BTreeMap::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name
            .strip_suffix(".core")
            .or_else(|| name.strip_suffix(".dmp"))
            .filter(|s| s.starts_with("core-"))
        else {
            continue;
        };
        let Ok(meta) = e.metadata() else { continue };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        let entry = crashes
            .entry(stem.to_owned())
            .or_insert((modified, 0, Vec::new()));
        entry.0 = entry.0.max(modified);
        entry.1 += meta.len();
        entry.2.push(path);
    }
    let mut crashes: Vec<(SystemTime, String, u64, Vec<PathBuf>)> = crashes
        .into_iter()
        .map(|(stem, (time, size, files))| (time, stem, size, files))
        .collect();
    crashes.sort();
    let mut total: u64 = crashes.iter().map(|c| c.2).sum();
    let mut count = crashes.len();
    let mut dropped = Vec::new();
    for (_, stem, _, mut files) in crashes {
        if count <= max_files && total <= max_bytes {
            break;
        }
        if stem == keep {
            continue;
        }
        files.sort();
        let mut gone = 0;
        for file in files {
            if let Ok(meta) = std::fs::symlink_metadata(&file)
                && std::fs::remove_file(&file).is_ok()
            {
                gone += meta.len();
                dropped.push(file);
            }
        }
        total = total.saturating_sub(gone);
        count -= 1;
    }
    dropped
}
