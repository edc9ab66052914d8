//! `faultline debug-store`: add files by build-id, index them, list and trim a store.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use faultline_symbolize::index::{self, IndexError, SymbolIndex};
use faultline_symbolize::{BuildId, DebugFile, DebugStore, Entry, Error, StoredFile, elf, plan_gc};
use serde_json::json;

use crate::exit::{self, Failure};
use crate::{StoreCommand, StoreFormat};

pub fn run(command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Add {
            files,
            store,
            no_index,
        } => add(&files, &store, !no_index),
        StoreCommand::Index {
            store,
            build_ids,
            all,
            force,
        } => index(&store, &build_ids, all, force),
        StoreCommand::Ls { store, format } => ls(&store, format),
        StoreCommand::Gc {
            store,
            max_size,
            dry_run,
        } => gc(&store, max_size, dry_run),
    }
}

fn check_store(store: &Path) -> Result<(), Failure> {
    if store.exists() && !store.is_dir() {
        return Err(Failure::usage(format!(
            "--store {}: not a directory",
            store.display()
        )));
    }
    Ok(())
}

fn add(files: &[PathBuf], store: &Path, make_index: bool) -> Result<(), Failure> {
    check_store(store)?;
    let store_handle = DebugStore::new(store);
    let mut stdout = std::io::stdout().lock();
    // Once stdout is gone (`| head -1`), keep adding files, just stop saying so.
    let mut printing = true;
    for file in files {
        match store_handle.add(file) {
            Ok(added) => {
                let what = match (added.new, added.replaced) {
                    _ if added.beside_debug_file => {
                        "added beside its debug file, for its unwind tables"
                    }
                    (true, true) => "added, replacing a copy without DWARF",
                    (true, false) => "added",
                    (false, _) => "already present",
                };
                if printing {
                    let line = format!(
                        "{} {} -> {} ({what})",
                        added.build_id,
                        file.display(),
                        added.path.display()
                    );
                    match writeln!(stdout, "{line}") {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => printing = false,
                        Err(e) => return Err(Failure::failed(anyhow::anyhow!("<stdout>: {e}"))),
                    }
                }
                if !added.has_dwarf && !added.beside_debug_file {
                    eprintln!(
                        "faultline: warning: {} has no DWARF debug info (stripped?); \
                         it can give function names from its symbol table at best",
                        file.display()
                    );
                }
                // The binary beside a debug file is for unwinding; the index is the debug
                // file's (both would have the same name).
                if make_index && !added.beside_debug_file {
                    match index_one(&added.path, false)? {
                        Indexed::Made { path, bytes, took } => eprintln!(
                            "faultline: indexed {} in {:.1} s: {} ({})",
                            added.build_id,
                            took.as_secs_f64(),
                            path.display(),
                            human(bytes)
                        ),
                        Indexed::There(_) => {}
                        Indexed::Not(why) => eprintln!(
                            "faultline: warning: {}: no symbol index: {why}",
                            added.build_id
                        ),
                    }
                }
            }
            Err(Error::NoBuildId { path }) => {
                return Err(Failure::usage(format!(
                    "{}: has no GNU build-id note, so it cannot be matched to a crash. \
                     Link with one: C and C++ `-Wl,--build-id`, Rust \
                     `-C link-arg=-Wl,--build-id` (on by default), Go `-ldflags=-B=gobuildid`",
                    path.display()
                )));
            }
            Err(e) => return Err(exit::from_symbolize(e)),
        }
    }
    Ok(())
}

/// What [`index_one`] did.
enum Indexed {
    /// Made (or made again) now.
    Made {
        path: PathBuf,
        bytes: u64,
        took: Duration,
    },
    /// A valid index was there already.
    There(PathBuf),
    /// The file cannot be indexed; it is symbolized from DWARF.
    Not(String),
}

/// Makes the index of the store file `debug`, unless a valid one is there and not `force`.
fn index_one(debug: &Path, force: bool) -> Result<Indexed, Failure> {
    let file = DebugFile::open(debug).map_err(exit::from_symbolize)?;
    let Some(build_id) = file.identity().build_id.clone() else {
        return Ok(Indexed::Not("the file has no GNU build-id".into()));
    };
    // In a store, the index sits beside the file: the cache is never used.
    let path = index::index_path(debug, &build_id, Path::new(""));
    if !force && SymbolIndex::open(&path, file.identity(), file.size()).is_ok() {
        return Ok(Indexed::There(path));
    }
    let start = Instant::now();
    match index::make(&file, &path) {
        Ok(_) => Ok(Indexed::Made {
            bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            path,
            took: start.elapsed(),
        }),
        Err(IndexError::NotIndexable(why)) => Ok(Indexed::Not(why)),
        Err(e) => Err(Failure::failed(anyhow::anyhow!("{e}"))),
    }
}

/// `debug-store index`: the named build-ids (all checked first) or every debug file.
fn index(store: &Path, hexes: &[String], all: bool, force: bool) -> Result<(), Failure> {
    check_store(store)?;
    let entries = DebugStore::new(store)
        .entries()
        .map_err(exit::from_symbolize)?;
    let targets: Vec<&Entry> = if all {
        entries.iter().filter(|e| e.debug.is_some()).collect()
    } else {
        let mut targets = Vec::with_capacity(hexes.len());
        for hex in hexes {
            let id = BuildId::from_hex(hex)
                .map_err(|e| Failure::usage(format!("build-id {hex:?}: {e}")))?;
            let entry = entries
                .iter()
                .find(|e| e.build_id == id && e.debug.is_some())
                .ok_or_else(|| {
                    Failure::new(
                        exit::NOT_FOUND,
                        anyhow::anyhow!(
                            "{id}: no debug file in the store {} (add it with `faultline \
                             debug-store add FILE --store {}`)",
                            store.display(),
                            store.display()
                        ),
                    )
                })?;
            targets.push(entry);
        }
        targets
    };
    let mut out = std::io::stdout().lock();
    let mut not_indexed = 0;
    for entry in &targets {
        let Some(debug) = &entry.debug else { continue };
        let line = match index_one(&debug.path, force)? {
            Indexed::Made { path, bytes, took } => format!(
                "{} indexed -> {} ({}, {:.1} s)",
                entry.build_id,
                path.display(),
                human(bytes),
                took.as_secs_f64()
            ),
            Indexed::There(path) => {
                format!("{} already indexed -> {}", entry.build_id, path.display())
            }
            Indexed::Not(why) => {
                not_indexed += 1;
                format!("{} not indexed: {why}", entry.build_id)
            }
        };
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                continue;
            }
            return Err(Failure::failed(anyhow::anyhow!("<stdout>: {e}")));
        }
    }
    if all && targets.is_empty() {
        eprintln!(
            "faultline: the store {} has no debug files",
            store.display()
        );
    }
    // Named build-ids are asked for: one that cannot be indexed fails the command. `--all`
    // only reports the ones that cannot (split DWARF skeletons, files without DWARF).
    if !all && not_indexed > 0 {
        return Err(Failure::failed(anyhow::anyhow!(
            "{not_indexed} of {} build-ids could not be indexed (symbolization still works from \
             their DWARF)",
            targets.len()
        )));
    }
    Ok(())
}

/// Whether an entry's index is valid for its debug file, and why not.
fn index_state(entry: &Entry) -> Option<Result<(), String>> {
    let index = entry.index.as_ref()?;
    let Some(debug) = &entry.debug else {
        return Some(Err("no debug file beside it".into()));
    };
    let identity = match elf::identity(&debug.path) {
        Ok(identity) => identity,
        Err(e) => return Some(Err(format!("its debug file: {e}"))),
    };
    Some(
        SymbolIndex::open(&index.path, &identity, debug.size)
            .map(drop)
            .map_err(|e| match e {
                IndexError::Invalid { why, .. } => why,
                other => other.to_string(),
            }),
    )
}

fn ls(store: &Path, format: StoreFormat) -> Result<(), Failure> {
    check_store(store)?;
    let entries = DebugStore::new(store)
        .entries()
        .map_err(exit::from_symbolize)?;
    let states: Vec<Option<Result<(), String>>> = entries.iter().map(index_state).collect();
    let debug_bytes: u64 = entries
        .iter()
        .flat_map(|e| e.debug.iter().chain(&e.others))
        .map(|f| f.size)
        .sum();
    let index_bytes: u64 = entries.iter().flat_map(|e| &e.index).map(|f| f.size).sum();
    let indexed = states.iter().filter(|s| matches!(s, Some(Ok(())))).count();
    let text = match format {
        StoreFormat::Json => {
            let file = |f: &StoredFile| json!({"path": f.path, "bytes": f.size, "last_used": rfc3339(f.used)});
            let list: Vec<_> = entries
                .iter()
                .zip(&states)
                .map(|(e, state)| {
                    let index = e.index.as_ref().map(|i| {
                        let mut v = file(i);
                        v["valid"] = json!(matches!(state, Some(Ok(()))));
                        if let Some(Err(why)) = state {
                            v["why"] = json!(why);
                        }
                        v
                    });
                    json!({
                        "build_id": e.build_id.to_hex(),
                        "debug": e.debug.as_ref().map(file),
                        "others": e.others.iter().map(file).collect::<Vec<_>>(),
                        "index": index,
                        "indexed": matches!(state, Some(Ok(()))),
                        "bytes": e.size(),
                        "last_used": rfc3339(e.used()),
                    })
                })
                .collect();
            let doc = json!({
                "store": store,
                "entries": list,
                "bytes": debug_bytes + index_bytes,
                "debug_bytes": debug_bytes,
                "index_bytes": index_bytes,
                "indexed": indexed,
            });
            format!("{doc:#}\n")
        }
        StoreFormat::Human => {
            let width = entries
                .iter()
                .map(|e| e.build_id.to_hex().len())
                .max()
                .unwrap_or(0)
                .max("BUILD-ID".len());
            let mut text = format!(
                "{:<width$}  {:>10}  {:>10}  {:<20}  {}\n",
                "BUILD-ID", "DEBUG FILE", "INDEX", "LAST USED", "STATE"
            );
            for (e, state) in entries.iter().zip(&states) {
                let debug = e.debug.iter().chain(&e.others).map(|f| f.size).sum::<u64>();
                let debug = if e.debug.is_some() {
                    human(debug)
                } else {
                    "-".into()
                };
                let index = e.index.as_ref().map_or("-".into(), |i| human(i.size));
                let state = match state {
                    None => "not indexed".to_owned(),
                    Some(Ok(())) => "indexed".to_owned(),
                    Some(Err(why)) => format!("index not valid (made again on use): {why}"),
                };
                text.push_str(&format!(
                    "{:<width$}  {debug:>10}  {index:>10}  {:<20}  {state}\n",
                    e.build_id.to_hex(),
                    rfc3339(e.used()),
                ));
            }
            text.push_str(&format!(
                "{} build-ids, {}: debug files {}, indexes {}; {indexed} indexed\n",
                entries.len(),
                human(debug_bytes + index_bytes),
                human(debug_bytes),
                human(index_bytes),
            ));
            text
        }
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::failed(anyhow::anyhow!("<stdout>: {e}")))
        }
        _ => Ok(()),
    }
}

fn gc(store: &Path, max: u64, dry_run: bool) -> Result<(), Failure> {
    check_store(store)?;
    let entries = DebugStore::new(store)
        .entries()
        .map_err(exit::from_symbolize)?;
    let before: u64 = entries.iter().map(Entry::size).sum();
    let remove = plan_gc(&entries, max);
    let mut after = before;
    let mut failed = Vec::new();
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = std::io::stdout().lock();
    for file in &remove {
        let entry = entries
            .iter()
            .find(|e| e.contains(&file.path))
            .map_or_else(String::new, |e| e.build_id.to_hex());
        if !dry_run {
            match std::fs::remove_file(&file.path) {
                Ok(()) => {}
                // Removed by another gc meanwhile: as good.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    failed.push(format!("{}: {e}", file.path.display()));
                    continue;
                }
            }
            if let Some(dir) = file.path.parent() {
                // The `ab/` directory, once empty.
                let _ = std::fs::remove_dir(dir);
            }
        }
        after -= file.size;
        let _ = writeln!(
            out,
            "{verb} {entry} {} ({}, last used {})",
            file.path.display(),
            human(file.size),
            rfc3339(file.used)
        );
    }
    let _ = writeln!(
        out,
        "{}: {} -> {} (at most {}), {} file(s) {verb}",
        store.display(),
        human(before),
        human(after),
        human(max),
        remove.len() - failed.len()
    );
    if !failed.is_empty() {
        return Err(Failure::failed(anyhow::anyhow!(
            "could not remove {} file(s): {}",
            failed.len(),
            failed.join("; ")
        )));
    }
    Ok(())
}

/// `500M`, `10G`, `1.5GiB`, `2GB`, `4096`: K, M, G, T and KiB, MiB… are powers of 1024; KB,
/// MB… powers of 1000; a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("expected a size such as 500M or 10G, got {text:?}"))?;
    let unit = unit.trim();
    let scale: f64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KIB" => 1024.0,
        "M" | "MIB" => 1024.0 * 1024.0,
        "G" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TIB" => 1024f64.powi(4),
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: expected B, K, M, G, T (or KiB… KB…)"
            ));
        }
    };
    Ok((number * scale).round() as u64)
}

/// Bytes for people: `13.1 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("64 kib"), Ok(64 << 10));
        assert!(parse_size("ten").unwrap_err().contains("500M"));
        assert!(parse_size("5X").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(13_700_000), "13.1 MiB");
    }
}
