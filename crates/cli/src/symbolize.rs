//! `faultline symbolize`: addresses in, frames out, in llvm-symbolizer's format or JSON.

use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use faultline_record::{Addr, BuildId};
use faultline_symbolize::{
    DebugFile, Demangle, Reason, Source, SourceFrame, SymbolizeOptions, Symbolized, elf,
    symbolize_many, symbolize_to,
};

use crate::SymbolizeArgs;
use crate::SymbolizeFormat;
use crate::exit::{self, Failure};

pub fn run(args: SymbolizeArgs) -> Result<(), Failure> {
    let locator = args.lookup.locator()?;
    let path = match (&args.exe, &args.build_id) {
        (Some(exe), _) => debug_file_for_binary(exe, &locator)?,
        (None, Some(hex)) => {
            let build_id =
                BuildId::from_hex(hex).map_err(|e| Failure::usage(format!("--build-id: {e}")))?;
            match locator.find(&build_id, None) {
                Ok(found) => found.path,
                Err(reason) => {
                    return Err(Failure::new(exit::NOT_FOUND, anyhow::anyhow!("{reason}")));
                }
            }
        }
        (None, None) => return Err(Failure::usage("give -e FILE or --build-id HEX")),
    };
    let mut file = DebugFile::open(&path).map_err(exit::from_symbolize)?;

    let demangle = if args.no_demangle {
        Demangle::Off
    } else {
        Demangle::Full
    };
    if args.addresses.is_empty() && io::stdin().is_terminal() {
        faultline_symbolize::index::attach(&mut file, locator.index_options());
        return interactive(&file, demangle, args.format);
    }
    let probes = if args.addresses.is_empty() {
        read_addresses(io::stdin().lock(), "<stdin>")?
    } else {
        args.addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse::<Addr>()
                    .map(|a| a.0)
                    .map_err(|e| Failure::usage(format!("address argument {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    // Only for input worth answering: a bad address is refused before any index is made.
    faultline_symbolize::index::attach(&mut file, locator.index_options());

    let options = SymbolizeOptions {
        demangle,
        threads: args.threads,
    };
    let stdout = io::stdout();
    let flush_each = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let format = args.format;
    let result = if flush_each {
        // A terminal sees each address as soon as it is answered.
        symbolize_many(&file, &probes, &options, |i, symbolized| {
            match format {
                SymbolizeFormat::Llvm => write_llvm(&mut out, symbolized)?,
                SymbolizeFormat::Json => write_json(&mut out, probes[i], symbolized)?,
            }
            out.flush()
        })
    } else {
        // A file or a pipe gets the bytes in chunks, formatted on every thread.
        symbolize_to(
            &file,
            &probes,
            &options,
            |buf, probe, symbolized| match format {
                SymbolizeFormat::Llvm => write_llvm(buf, symbolized),
                SymbolizeFormat::Json => write_json(buf, probe, symbolized),
            },
            |bytes| out.write_all(bytes),
        )
    };
    // A closed pipe (`| head`) is not an error worth reporting.
    match result.and_then(|()| {
        out.flush()
            .map_err(|source| faultline_symbolize::Error::Io {
                path: PathBuf::from("<stdout>"),
                source,
            })
    }) {
        Ok(()) => Ok(()),
        Err(faultline_symbolize::Error::Io { source, .. })
            if source.kind() == io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        Err(e) => Err(exit::from_symbolize(e)),
    }
}

/// Someone typing addresses: answer each line as it comes, as llvm-symbolizer does, and say
/// what is wrong with a bad line without giving up.
fn interactive(
    file: &DebugFile,
    demangle: Demangle,
    format: SymbolizeFormat,
) -> Result<(), Failure> {
    let symbolizer = file.symbolizer(demangle).map_err(exit::from_symbolize)?;
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let line = line.map_err(Failure::failed)?;
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        if word.starts_with('#') {
            continue;
        }
        let result = match word.parse::<Addr>() {
            Ok(addr) => {
                let symbolized = symbolizer.symbolize(addr.0);
                match format {
                    SymbolizeFormat::Llvm => write_llvm(&mut out, &symbolized),
                    SymbolizeFormat::Json => write_json(&mut out, addr.0, &symbolized),
                }
            }
            Err(e) => {
                eprintln!("faultline: error: {e}");
                Ok(())
            }
        };
        match result.and_then(|()| out.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Failure::failed(e)),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// `-e FILE`: the file itself when it has DWARF; else its debug file found by build-id; else,
/// with a warning, the file itself for its symbol table.
fn debug_file_for_binary(
    exe: &std::path::Path,
    locator: &faultline_symbolize::Locator,
) -> Result<PathBuf, Failure> {
    let identity = elf::identity(exe).map_err(exit::from_symbolize)?;
    if identity.has_dwarf {
        return Ok(exe.to_owned());
    }
    let reason = match &identity.build_id {
        Some(build_id) => match locator.find(build_id, Some(exe)) {
            Ok(found) => return Ok(found.path),
            Err(reason) => reason,
        },
        None => Reason::ModuleWithoutBuildId {
            module: exe.display().to_string(),
        },
    };
    eprintln!(
        "faultline: warning: {} has no DWARF and {reason}; using its symbol table only",
        exe.display()
    );
    Ok(exe.to_owned())
}

/// One address per line; blank lines and `#` comments are skipped. Only the first
/// whitespace-separated word counts, so `0x1234 some note` works.
fn read_addresses(input: impl BufRead, name: &str) -> Result<Vec<u64>, Failure> {
    let mut out = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Failure::failed(anyhow::anyhow!("{name}: {e}")))?;
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        if word.starts_with('#') {
            continue;
        }
        let addr = word
            .parse::<Addr>()
            .map_err(|e| Failure::usage(format!("{name}:{}: {e}", n + 1)))?;
        out.push(addr.0);
    }
    Ok(out)
}

/// llvm-symbolizer's LLVM output style: per frame the function, then `file:line:column`; a
/// blank line after each address.
fn write_llvm(out: &mut impl Write, symbolized: &Symbolized) -> io::Result<()> {
    match symbolized {
        Symbolized::Frames(frames) => {
            for frame in frames {
                out.write_all(frame.function.as_deref().unwrap_or("??").as_bytes())?;
                out.write_all(b"\n")?;
                match &frame.file {
                    Some(file) => {
                        out.write_all(file.as_bytes())?;
                        let mut buf = [0u8; 24];
                        let mut at = buf.len();
                        // `:line:column\n`, digits written from the end.
                        at -= 1;
                        buf[at] = b'\n';
                        for number in [frame.column.unwrap_or(0), frame.line.unwrap_or(0)] {
                            let mut n = number;
                            loop {
                                at -= 1;
                                buf[at] = b'0' + (n % 10) as u8;
                                n /= 10;
                                if n == 0 {
                                    break;
                                }
                            }
                            at -= 1;
                            buf[at] = b':';
                        }
                        out.write_all(&buf[at..])?;
                    }
                    None => out.write_all(b"??:0:0\n")?,
                }
            }
        }
        Symbolized::Unknown(_) => out.write_all(b"??\n??:0:0\n")?,
    }
    out.write_all(b"\n")
}

fn write_json(out: &mut impl Write, probe: u64, symbolized: &Symbolized) -> io::Result<()> {
    let value = match symbolized {
        Symbolized::Frames(frames) => serde_json::json!({
            "address": Addr(probe),
            "frames": frames.iter().map(frame_json).collect::<Vec<_>>(),
            "unknown": null,
        }),
        Symbolized::Unknown(reason) => serde_json::json!({
            "address": Addr(probe),
            "frames": [],
            "unknown": reason.to_string(),
        }),
    };
    serde_json::to_writer(&mut *out, &value)?;
    out.write_all(b"\n")
}

/// How a debug file was found, in a word or two.
pub fn source_name(source: &Source) -> &'static str {
    match source {
        Source::Explicit => "given",
        Source::Store(_) => "store",
        Source::Debuglink => "debuglink",
        Source::Binary => "binary",
        Source::Debuginfod { from_cache: true } => "debuginfod cache",
        Source::Debuginfod { from_cache: false } => "debuginfod",
    }
}

pub fn frame_json(frame: &SourceFrame) -> serde_json::Value {
    serde_json::json!({
        "function": frame.function.as_deref(),
        "file": frame.file.as_deref(),
        "line": frame.line,
        "column": frame.column,
        "inlined": frame.inlined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_lines() {
        let input = "0x10\n\n  # comment\n1f extra words\n";
        assert_eq!(
            read_addresses(input.as_bytes(), "in").unwrap(),
            vec![0x10, 0x1f]
        );
        let err = read_addresses("0x10\nzzz\n".as_bytes(), "in").unwrap_err();
        assert!(format!("{err:?}").contains("in:2"), "{err:?}");
    }
}
