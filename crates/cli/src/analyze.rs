//! `faultline analyze`: every input read and told apart by `input`, then handed to the module
//! that presents its kind (`crash` for crash records, `dumps` for task dumps and panics); the
//! documents of several inputs joined (text one after another, JSON as one array).

use std::path::Path;

use crate::exit::Failure;
use crate::input::{self, Kind};
use crate::output::write_stdout;
use crate::{AnalyzeArgs, AnalyzeFormat};

pub fn run(args: AnalyzeArgs) -> Result<(), Failure> {
    if let Some(paths) = &args.diff {
        return write_stdout(&crate::dumps::diff(&paths[0], &paths[1], &args)?);
    }
    if matches!(args.format, AnalyzeFormat::Html) {
        // One page: every input's documents one after the other.
        let mut body = String::new();
        for path in &args.inputs {
            let bytes = input::read_input(path)?;
            for section in present(path, &bytes, &args)? {
                body.push_str(&section);
            }
        }
        let title = format!(
            "faultline analyze: {}",
            args.inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return write_stdout(&faultline_scenario::html::page(&title, &body));
    }
    let mut texts = Vec::new();
    let many = args.inputs.len() > 1;
    if many && matches!(args.format, AnalyzeFormat::Svg) {
        return Err(Failure::usage(
            "--format svg draws one task dump; give one FILE",
        ));
    }
    for path in &args.inputs {
        let bytes = input::read_input(path)?;
        for mut text in present(path, &bytes, &args)? {
            if many && matches!(args.format, AnalyzeFormat::Human) {
                text = format!("== {}\n{text}", path.display());
            }
            texts.push(text);
        }
    }
    // One document per dump: several (of several inputs, or of one text that holds several)
    // are one JSON array.
    let text = if texts.len() > 1 && matches!(args.format, AnalyzeFormat::Json) {
        // One JSON array of the per-file documents.
        format!(
            "[\n{}]\n",
            texts
                .iter()
                .map(|t| t.trim_end())
                .collect::<Vec<_>>()
                .join(",\n")
        )
    } else {
        texts.join("\n")
    };
    write_stdout(&text)
}

/// The documents of one input, by what it is.
fn present(path: &Path, bytes: &[u8], args: &AnalyzeArgs) -> Result<Vec<String>, Failure> {
    match input::detect(path, bytes, &args.log.fields()) {
        Kind::CrashRecord => crate::crash::report(path, bytes, args).map(|r| vec![r]),
        Kind::Core => crate::native::report(path, bytes, args).map(|r| vec![r]),
        Kind::Binary => Err(Failure::usage(format!(
            "{}: {}, which analyze does not read; it reads ELF core files and minidumps, faultline crash \
             records and task dumps, Go and Rust panic output and goroutine dumps (also inside \
             logs), pprof profiles, and logs of one JSON object per line",
            path.display(),
            input::describe_binary(bytes)
        ))),
        kind @ (Kind::TaskDumpRecord | Kind::Dump | Kind::Log) => {
            crate::dumps::report(path, bytes, kind, args)
        }
    }
}
