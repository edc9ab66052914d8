//! `faultline debug-store add`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use faultline_symbolize::{DebugStore, Error};

use crate::exit::{self, Failure};

pub fn add(files: &[PathBuf], store: &Path) -> Result<(), Failure> {
    if store.exists() && !store.is_dir() {
        return Err(Failure::usage(format!(
            "--store {}: not a directory",
            store.display()
        )));
    }
    let store_handle = DebugStore::new(store);
    let mut stdout = std::io::stdout().lock();
    // Once stdout is gone (`| head -1`), keep adding files, just stop saying so.
    let mut printing = true;
    for file in files {
        match store_handle.add(file) {
            Ok(added) => {
                let what = match (added.new, added.replaced) {
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
                if !added.has_dwarf {
                    eprintln!(
                        "faultline: warning: {} has no DWARF debug info (stripped?); \
                         it can give function names from its symbol table at best",
                        file.display()
                    );
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
