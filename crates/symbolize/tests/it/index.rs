//! The symbol index never changes an answer: real binaries symbolized through their index and
//! from DWARF, address by address.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use faultline_symbolize::index::{self, IndexError, SymbolIndex};
use faultline_symbolize::{DebugFile, Demangle, SymbolizeOptions, Symbolized, symbolize_to};
use faultline_tests::{CProgram, GoBuild, demo_binary, go_toolchains, run_ok};

/// A C program whose hot paths the compiler inlines at `-O2`: static helpers called from
/// loops, a recursive function and a table of function pointers.
const INLINED_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline unsigned mix(unsigned h, unsigned v) { h ^= v; h *= 0x9e3779b1u; return h ^ (h >> 15); }
static unsigned hash_bytes(const char *s, size_t n) {
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = mix(h, (unsigned char)s[i]);
    return h;
}
static int weigh(const char *word) {
    int w = 0;
    for (const char *p = word; *p; p++) w += clamp(*p - 'a', 0, 25);
    return w;
}
static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
typedef int (*op)(int, int);
static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return clamp(a * b, -1000000, 1000000); }
static const op OPS[] = { add, sub, mul };

int main(int argc, char **argv) {
    unsigned h = 0;
    int total = 0;
    for (int i = 1; i < argc; i++) {
        h = mix(h, hash_bytes(argv[i], strlen(argv[i])));
        total = OPS[h % 3](total, weigh(argv[i]));
    }
    printf("%u %d %ld\n", h, total, fib(argc + 10));
    return total > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
"#;

/// The address ranges of the file's executable sections, as binutils' `readelf` lists them.
fn code_ranges(file: &Path) -> Vec<(u64, u64)> {
    let out = run_ok(Command::new("readelf").args(["-S", "-W"]).arg(file));
    let mut ranges = Vec::new();
    for line in out.stdout.lines() {
        // `  [14] .text  PROGBITS  0000000000001060 001060 000185 00  AX  0   0 16`
        let Some((_, rest)) = line.split_once(']') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 7 || !fields[6].contains('X') {
            continue;
        }
        let (Ok(addr), Ok(size)) = (
            u64::from_str_radix(fields[2], 16),
            u64::from_str_radix(fields[4], 16),
        ) else {
            continue;
        };
        if size > 0 {
            ranges.push((addr, addr + size));
        }
    }
    assert!(
        !ranges.is_empty(),
        "no code in {}:\n{}",
        file.display(),
        out.stdout
    );
    ranges
}

/// `n` addresses: uniform over the code (by size), a few around it and far outside.
fn addresses(file: &Path, n: usize) -> Vec<u64> {
    let ranges = code_ranges(file);
    let total: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out: Vec<u64> = (0..n)
        .map(|_| {
            let mut at = next() % total;
            for &(a, b) in &ranges {
                if at < b - a {
                    return a + at;
                }
                at -= b - a;
            }
            unreachable!()
        })
        .collect();
    let (first, last) = (ranges[0].0, ranges[ranges.len() - 1].1);
    out.extend([0, 1, first.saturating_sub(1), last, last + 1, u64::MAX - 1]);
    out
}

/// `file` with an index made and attached, the index kept in `dir`.
fn indexed(file: &Path, dir: &Path) -> DebugFile {
    let plain = DebugFile::open(file).unwrap();
    let bytes = index::build(&plain).unwrap();
    let path = dir.join("test.faultline-index");
    index::write_atomically(&path, &bytes).unwrap();
    let mut with = DebugFile::open(file).unwrap();
    let index = SymbolIndex::open(&path, with.identity(), with.size()).unwrap();
    with.set_index(Arc::new(index));
    let debug_size = std::fs::metadata(file).unwrap().len();
    assert!(
        (bytes.len() as u64) * 2 <= debug_size,
        "the index of {} is {} bytes, more than half its {debug_size}",
        file.display(),
        bytes.len()
    );
    with
}

/// Every address symbolized both ways, in every name style; returns how many had inlined
/// frames.
fn same_answers(file: &Path, n: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let with = indexed(file, dir.path());
    let without = DebugFile::open(file).unwrap();
    let probes = addresses(file, n);
    let mut inlined = 0;
    for (style, count) in [
        (Demangle::Full, probes.len()),
        (Demangle::Short, n / 10),
        (Demangle::Off, n / 10),
    ] {
        let a = with.symbolizer(style).unwrap();
        let b = without.symbolizer(style).unwrap();
        let mut differ = Vec::new();
        for &probe in &probes[..count.min(probes.len())] {
            let (x, y) = (a.symbolize(probe), b.symbolize(probe));
            if style == Demangle::Full && matches!(&y, Symbolized::Frames(f) if f.len() > 1) {
                inlined += 1;
            }
            if x != y && differ.len() < 5 {
                differ.push(format!("{probe:#x}:\n  index: {x:?}\n  DWARF: {y:?}"));
            }
        }
        assert!(!a.index_damaged());
        assert!(
            differ.is_empty(),
            "{} ({style:?}): the index answers differently\n{}",
            file.display(),
            differ.join("\n")
        );
    }
    // The batch paths too: chunks through the index on two threads, formatted where they
    // were answered, against DWARF's threads, in input order.
    let options = SymbolizeOptions {
        demangle: Demangle::Full,
        threads: 2,
    };
    let format = |buf: &mut Vec<u8>, probe: u64, s: &Symbolized| {
        use std::io::Write as _;
        writeln!(buf, "{probe:#x} {s:?}")
    };
    let batch = |file: &DebugFile| {
        let mut out = Vec::new();
        symbolize_to(file, &probes, &options, format, |bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        })
        .unwrap();
        out
    };
    let (through_index, from_dwarf) = (batch(&with), batch(&without));
    assert!(
        through_index == from_dwarf,
        "{}: symbolize_to answers differently through the index",
        file.display()
    );
    inlined
}

#[test]
fn a_rust_release_binary_answers_the_same_through_its_index() {
    let inlined = same_answers(demo_binary(), 100_000);
    assert!(
        inlined > 1000,
        "only {inlined} addresses with inlined frames"
    );
}

#[test]
fn a_go_binary_answers_the_same_through_its_index() {
    let go = go_toolchains()
        .iter()
        .find(|t| t.series == "go1.27")
        .unwrap();
    let inlined = same_answers(go.blocker(GoBuild::Default), 100_000);
    assert!(
        inlined > 1000,
        "only {inlined} addresses with inlined frames"
    );
}

#[test]
fn a_c_binary_at_o2_answers_the_same_through_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let binary = CProgram::new(
        "inlined",
        INLINED_C,
        "1d0c0ffee0000000000000000000000000000001",
    )
    .compile_flags(&["-g", "-O2"])
    .compile(dir.path());
    let inlined = same_answers(&binary, 100_000);
    assert!(inlined > 0, "gcc inlined nothing");
}

#[test]
fn a_damaged_or_foreign_index_is_refused_or_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let binary = CProgram::new(
        "inlined",
        INLINED_C,
        "1d0c0ffee0000000000000000000000000000002",
    )
    .compile_flags(&["-g", "-O2"])
    .compile(dir.path());
    let plain = DebugFile::open(&binary).unwrap();
    let bytes = index::build(&plain).unwrap();
    let path: PathBuf = dir.path().join("x.faultline-index");
    let open = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        SymbolIndex::open(&path, plain.identity(), plain.size())
    };
    assert!(open(&bytes).is_ok());
    // Cut short, a flipped header byte, another file's size: refused on open, with why.
    let why = |r: Result<SymbolIndex, IndexError>| r.unwrap_err().to_string();
    assert!(why(open(&bytes[..bytes.len() - 1])).contains("cut short"));
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert!(why(open(&flipped)).contains("header fails its checksum"));
    assert!(
        why(open(b"not an index at all, but long enough?"))
            .contains("not a faultline symbol index")
    );
    let other = SymbolIndex::open(&path, plain.identity(), plain.size() + 1);
    assert!(other.is_err());

    // A flipped byte in the body is found when a lookup reaches its block: the symbolizer
    // answers from DWARF from then on, removes the index, and says so.
    let mut body = bytes.clone();
    let last = body.len() - 1;
    body[last] ^= 0xff;
    for at in (300..last).step_by(4096) {
        body[at] ^= 0x55;
    }
    std::fs::write(&path, &body).unwrap();
    let mut with = DebugFile::open(&binary).unwrap();
    with.set_index(Arc::new(
        SymbolIndex::open(&path, with.identity(), with.size()).unwrap(),
    ));
    let a = with.symbolizer(Demangle::Full).unwrap();
    let b = plain.symbolizer(Demangle::Full).unwrap();
    for probe in addresses(&binary, 2000) {
        assert_eq!(a.symbolize(probe), b.symbolize(probe), "{probe:#x}");
    }
    assert!(a.index_damaged());
    assert!(!path.exists(), "a damaged index is removed");
}
