//! Corrupt debug files: truncated and bit-flipped copies of a real ELF with DWARF must give
//! errors or unknown frames, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_symbolize::{DebugFile, Demangle, SymbolizeOptions, Symbolized, symbolize_many};

const PROGRAM: &str = r#"
#include <stdio.h>
static inline __attribute__((always_inline)) int square(int x) { return x * x; }
__attribute__((noinline)) int work(int n) { int s = 0; for (int i = 0; i < n; i++) s += square(i); return s; }
int main(int argc, char **argv) { printf("%d\n", work(argc * 10)); return 0; }
"#;

/// Builds the program above with DWARF 5 and returns its path and some code addresses.
fn real_elf(dir: &Path) -> (PathBuf, Vec<u64>) {
    let src = dir.join("p.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = dir.join("p");
    let status = Command::new("gcc")
        .args(["-O1", "-g", "-Wl,--build-id", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("gcc (scripts/install-deps.sh installs it)");
    assert!(status.success());
    let file = DebugFile::open(&exe).unwrap();
    let symbolizer = file.symbolizer(Demangle::Full).unwrap();
    // Addresses of every function of the program, found by scanning for named frames.
    let data = std::fs::read(&exe).unwrap();
    let addrs: Vec<u64> = (0..data.len() as u64)
        .step_by(7)
        .filter(|&a| matches!(symbolizer.symbolize(a), Symbolized::Frames(_)))
        .take(64)
        .collect();
    assert!(addrs.len() > 8, "expected to find code addresses");
    (exe, addrs)
}

/// xorshift64, fixed seed: the same corruptions every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn exercise(path: &Path, addrs: &[u64]) {
    let Ok(file) = DebugFile::open(path) else {
        return;
    };
    if let Ok(symbolizer) = file.symbolizer(Demangle::Short) {
        for &a in addrs {
            let _ = symbolizer.symbolize(a);
        }
    }
    let options = SymbolizeOptions {
        demangle: Demangle::Full,
        threads: 1,
    };
    let _ = symbolize_many(&file, addrs, &options, |_, _| Ok(()));
}

#[test]
fn truncated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (exe, addrs) = real_elf(dir.path());
    let data = std::fs::read(&exe).unwrap();
    let cut = dir.path().join("cut");
    let mut rng = Rng(0x5eed);
    let mut lengths: Vec<usize> = (0..40)
        .map(|_| (rng.next() as usize) % data.len())
        .collect();
    lengths.extend([0, 1, 4, 16, 63, 64, 65, data.len() - 1]);
    for len in lengths {
        std::fs::write(&cut, &data[..len]).unwrap();
        exercise(&cut, &addrs);
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (exe, addrs) = real_elf(dir.path());
    let data = std::fs::read(&exe).unwrap();
    let bad = dir.path().join("bad");
    // Aim at the DWARF, the symbol table and the headers, where a parser has work to do.
    let targets: Vec<(usize, usize)> = {
        use object::{Object, ObjectSection};
        let obj = object::File::parse(&*data).unwrap();
        let mut t: Vec<(usize, usize)> = obj
            .sections()
            .filter(|s| {
                let name = s.name().unwrap_or("");
                name.starts_with(".debug") || name.contains("symtab") || name.contains("strtab")
            })
            .filter_map(|s| s.file_range())
            .map(|(start, len)| (start as usize, len as usize))
            .filter(|&(_, len)| len > 0)
            .collect();
        t.push((0, 64)); // the ELF header
        t
    };
    assert!(targets.len() > 5, "expected DWARF sections: {targets:?}");
    let mut rng = Rng(0xbad5eed);
    for _ in 0..500 {
        let mut copy = data.clone();
        for _ in 0..(1 + rng.next() % 8) {
            let (start, len) = targets[(rng.next() as usize) % targets.len()];
            let at = start + (rng.next() as usize) % len;
            copy[at] = rng.next() as u8;
        }
        std::fs::write(&bad, &copy).unwrap();
        exercise(&bad, &addrs);
    }
}

#[test]
fn non_elf_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("text", &b"hello, not an ELF file\n"[..]),
        ("elf-magic-only", &b"\x7fELF"[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = DebugFile::open(&path).unwrap_err().to_string();
        assert!(err.contains(name), "error should name the file: {err}");
    }
}
