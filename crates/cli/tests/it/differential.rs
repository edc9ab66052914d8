//! Differential test against llvm-symbolizer on a real large binary with full DWARF: the
//! `faultline` binary of this very test run (a dev build: ~90 MB, every crate's debug info, and
//! std's inlined frames).
//!
//! 10,000 random addresses inside functions; for each, every frame (inlined ones too) must have
//! the same function and `file:line` in both tools, on at least 99.5% of addresses. The known
//! disagreements are explained in docs/symbolization.md.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

const ADDRESSES: usize = 10_000;
const REQUIRED_AGREEMENT: f64 = 0.995;

/// A frame as both tools print it in LLVM style: function, file, line (columns are not
/// compared: for line-0 rows addr2line reports no column where LLVM reports the row's).
type Frame = (String, String, String);

/// Addresses inside function symbols of `.text`, a function chosen uniformly, then an offset
/// inside it; deterministic (xorshift64 from a fixed seed).
fn sample_addresses(binary: &Path, n: usize) -> Vec<u64> {
    let data = std::fs::read(binary).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let functions: Vec<(u64, u64)> = obj
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter(|s| {
            s.section_index()
                .and_then(|i| obj.section_by_index(i).ok())
                .is_some_and(|sec| sec.kind() == SectionKind::Text)
        })
        .map(|s| (s.address(), s.size()))
        .collect();
    assert!(functions.len() > 10_000, "too few functions in {binary:?}");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let (start, size) = functions[(next() % functions.len() as u64) as usize];
            start + next() % size
        })
        .collect()
}

fn run(program: &str, args: &[&str], input: &str) -> String {
    let mut child = crate::isolated(&mut Command::new(program))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/install-deps.sh installs it)"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Splits LLVM-style output into one list of frames per address.
fn parse_llvm(text: &str) -> Vec<Vec<Frame>> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
            assert!(lines.len().is_multiple_of(2), "odd block: {block:?}");
            lines
                .chunks(2)
                .map(|pair| {
                    let mut loc = pair[1].rsplitn(3, ':');
                    let _column = loc.next().unwrap_or_default();
                    let line = loc.next().unwrap_or_default().to_owned();
                    let file = loc.next().unwrap_or_default().to_owned();
                    (pair[0].to_owned(), file, line)
                })
                .collect()
        })
        .collect()
}

/// faultline from DWARF: what is compared here is its reading of DWARF (the index gives the
/// same answers: crates/symbolize/tests/it/index.rs), and an index of this 280 MB dev binary
/// would be made by a debug build.
fn faultline(binary: &str, extra: &[&str], input: &str) -> Vec<Vec<Frame>> {
    let mut args = vec!["symbolize", "--no-index", "-e", binary];
    args.extend_from_slice(extra);
    parse_llvm(&run(env!("CARGO_BIN_EXE_faultline"), &args, input))
}

fn llvm(binary: &str, demangle: &str, input: &str) -> Vec<Vec<Frame>> {
    let obj = format!("--obj={binary}");
    parse_llvm(&run(
        "llvm-symbolizer",
        &[&obj, "--inlining", demangle, "--output-style=LLVM"],
        input,
    ))
}

fn report(what: &str, ours: &[Vec<Frame>], theirs: &[Vec<Frame>], agree: usize, total: usize) {
    let ratio = agree as f64 / total as f64;
    eprintln!("{what}: {agree}/{total} agree ({:.3}%)", ratio * 100.0);
    let mut shown = 0;
    for (a, b) in ours.iter().zip(theirs) {
        if a != b && shown < 5 {
            shown += 1;
            eprintln!("  faultline: {a:?}\n  llvm:      {b:?}");
        }
    }
    assert!(
        ratio >= REQUIRED_AGREEMENT,
        "{what}: only {:.3}% agree, need {:.1}%",
        ratio * 100.0,
        REQUIRED_AGREEMENT * 100.0
    );
}

#[test]
fn agrees_with_llvm_symbolizer_on_random_addresses() {
    let binary = env!("CARGO_BIN_EXE_faultline");
    let addresses = sample_addresses(Path::new(binary), ADDRESSES);
    let input: String = addresses.iter().map(|a| format!("{a:#x}\n")).collect();

    // Lookup: names as stored, so demangler differences do not count.
    let ours = faultline(binary, &["--no-demangle"], &input);
    let theirs = llvm(binary, "--no-demangle", &input);
    assert_eq!(ours.len(), ADDRESSES);
    assert_eq!(theirs.len(), ADDRESSES);
    let inlined = ours.iter().filter(|f| f.len() > 1).count();
    assert!(
        inlined > ADDRESSES / 100,
        "expected inlined frames in a sample this size, got {inlined}"
    );
    let agree = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    report(
        "function, file and line of every frame",
        &ours,
        &theirs,
        agree,
        ADDRESSES,
    );

    // Demangling: llvm-symbolizer 14 leaves Rust legacy escapes (`_$LT$…`, `..`) in names it
    // demangles with its Itanium demangler; compare the names it fully demangles.
    let ours = faultline(binary, &[], &input);
    let theirs = llvm(binary, "--demangle", &input);
    let pairs: Vec<(&String, &String)> = ours
        .iter()
        .zip(&theirs)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (&x.0, &y.0)))
        .filter(|(_, theirs)| !theirs.contains('$') && !theirs.contains(".."))
        .collect();
    let agree = pairs.iter().filter(|(a, b)| a == b).count();
    let ratio = agree as f64 / pairs.len() as f64;
    eprintln!(
        "demangled names: {agree}/{} agree ({:.3}%)",
        pairs.len(),
        ratio * 100.0
    );
    for (a, b) in pairs.iter().filter(|(a, b)| a != b).take(5) {
        eprintln!("  faultline: {a}\n  llvm:      {b}");
    }
    assert!(
        pairs.len() > ADDRESSES / 5,
        "too few comparable names: {}",
        pairs.len()
    );
    assert!(
        ratio >= REQUIRED_AGREEMENT,
        "demangled names: {:.3}%",
        ratio * 100.0
    );
}
