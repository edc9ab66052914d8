//! `faultline debug-store add`.

use std::path::{Path, PathBuf};

use faultline_symbolize::{DebugStore, Error};

use crate::exit::{self, Failure};

pub fn add(files: &[PathBuf], store: &Path) -> Result<(), Failure> {
    let store_handle = DebugStore::new(store);
    for file in files {
        match store_handle.add(file) {
            Ok(added) => {
                let what = if added.new {
                    "added"
                } else {
                    "already present"
                };
                println!(
                    "{} {} -> {} ({what})",
                    added.build_id,
                    file.display(),
                    added.path.display()
                );
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
                     Link with a build-id: Rust/C/C++ `-C link-arg=-Wl,--build-id` \
                     (`-Wl,--build-id`), Go `-ldflags=-B=gobuildid`",
                    path.display()
                )));
            }
            Err(e) => return Err(exit::from_symbolize(e)),
        }
    }
    Ok(())
}
