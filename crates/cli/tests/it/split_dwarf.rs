//! Split DWARF (`gcc -gsplit-dwarf`): the binary keeps only skeleton units and line tables; the
//! function names, inlined frames included, live in a `.dwo` file next to the object, or in a
//! `.dwp` package next to the binary. `faultline symbolize` must find them there and agree
//! with llvm-symbolizer, address by address.
//!
//! A control run without the `.dwo` shows no inlined frame, so finding it proves the `.dwo` (or
//! the `.dwp`) was read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_tests::{CProgram, Finished, NmSymbol, marker_line, nm_symbol, run_ok, run_with};

use crate::{exit, faultline, llvm_style_functions, with_input};

const ID_SPLIT: &str = "5d1100000000000000000000000000000000a001";

/// `square_plus` is always inlined into `compute`, which is never inlined into `main`.
const SOURCE: &str = "\
static inline __attribute__((always_inline)) int square_plus(int x) { return x * x + 7; } // faultline-marker: inlined
__attribute__((noinline)) int compute(int v) { int r = square_plus(v); return r * 3; } // faultline-marker: caller
int main(int argc, char **argv) { (void)argv; return compute(argc) & 0xff; }
";

/// A `-gsplit-dwarf` build of [`SOURCE`] in its own directory.
struct SplitBuild {
    dir: tempfile::TempDir,
    program: PathBuf,
    dwo: PathBuf,
    compute: NmSymbol,
}

impl SplitBuild {
    /// Compiles with `-O1 -g -gdwarf-VERSION -gsplit-dwarf` and links with a build-id.
    fn new(dwarf_version: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let program = CProgram::new("split", SOURCE, ID_SPLIT)
            .compile_flags(&[
                "-O1",
                "-g",
                &format!("-gdwarf-{dwarf_version}"),
                "-gsplit-dwarf",
            ])
            .compile(dir.path());
        let dwo = dir.path().join("split.dwo");
        assert!(dwo.is_file(), "gcc left no {}", dwo.display());
        // The split: the binary has skeleton units only; the units with the functions are in
        // the .dwo.
        let sections =
            |file: &Path| run_ok(Command::new("readelf").args(["-S", "-W"]).arg(file)).stdout;
        assert!(!sections(&program).contains(".debug_info.dwo"));
        assert!(sections(&dwo).contains(".debug_info.dwo"));
        let compute = nm_symbol(&program, "compute");
        assert!(compute.size > 0);
        Self {
            dir,
            program,
            dwo,
            compute,
        }
    }

    /// Every address of `compute`, as `0x…` lines.
    fn addresses(&self) -> String {
        (self.compute.address..self.compute.address + self.compute.size)
            .map(|a| format!("{a:#x}\n"))
            .collect()
    }

    fn faultline(&self) -> Finished {
        run_with(
            faultline().arg("symbolize").arg("-e").arg(&self.program),
            with_input(&self.addresses()),
        )
        .assert_code(exit::OK)
    }

    fn llvm_symbolizer(&self) -> Finished {
        run_with(
            Command::new("llvm-symbolizer")
                .arg(format!("--obj={}", self.program.display()))
                .args(["--inlining", "--output-style=LLVM"]),
            with_input(&self.addresses()),
        )
        .assert_success()
    }

    /// Checks faultline gives the functions llvm-symbolizer gives at every address of
    /// `compute`, and that at least one of them shows `square_plus` inlined into `compute`,
    /// at its line.
    fn check_against_llvm(&self, what: &str) {
        let ours = self.faultline();
        // A split-DWARF file is not indexed (its answers depend on the .dwo), and no index is
        // announced, run after run.
        assert!(
            !ours.stderr.contains("indexing"),
            "{what}: an index of split DWARF?\n{}",
            ours.context()
        );
        let theirs = self.llvm_symbolizer();
        let our_functions = llvm_style_functions(&ours.stdout);
        assert_eq!(
            our_functions,
            llvm_style_functions(&theirs.stdout),
            "{what}: faultline and llvm-symbolizer disagree\n{}\n{}",
            ours.context(),
            theirs.context()
        );
        let inlined = ["square_plus", "compute"].map(str::to_owned);
        assert!(
            our_functions.iter().any(|f| *f == inlined),
            "{what}: no address shows square_plus inlined into compute\n{}",
            ours.context()
        );
        let source = self.dir.path().join("split.c");
        let line = format!("/split.c:{}:", marker_line(&source, "inlined"));
        let block = ours
            .stdout
            .split("\n\n")
            .find(|b| b.starts_with("square_plus\n"))
            .unwrap_or_default();
        assert!(
            block.lines().nth(1).is_some_and(|l| l.contains(&line)),
            "{what}: square_plus is not at {line}\n{}",
            ours.context()
        );
    }
}

#[test]
fn dwo_files_give_the_frames_llvm_symbolizer_gives() {
    for dwarf_version in [4, 5] {
        let build = SplitBuild::new(dwarf_version);
        build.check_against_llvm(&format!("DWARF {dwarf_version} .dwo"));

        // Control: without the .dwo the inlined frame cannot be known, and is not made up.
        fs::rename(&build.dwo, build.dir.path().join("moved-away")).unwrap();
        let ours = build.faultline();
        assert!(
            !ours.stdout.contains("square_plus"),
            "DWARF {dwarf_version}: square_plus without its .dwo?\n{}",
            ours.context()
        );
    }
}

/// `.dwp` packages made by binutils' `dwp` (gold) and by `llvm-dwp`, from DWARF 4 split units.
/// DWARF 5 is left out because neither packer here handles gcc 12's DWARF 5 `.dwo` files:
/// binutils 2.40's `dwp` crashes (SIGSEGV) and llvm-dwp 14 never finishes.
#[test]
fn dwp_packages_give_the_frames_llvm_symbolizer_gives() {
    for tool in ["dwp", "llvm-dwp"] {
        let build = SplitBuild::new(4);
        let package = build.dir.path().join("split.dwp");
        run_ok(Command::new(tool).current_dir(build.dir.path()).args([
            "-e",
            "split",
            "-o",
            "split.dwp",
        ]));
        assert!(package.is_file(), "{tool} made no package");
        // Only the package remains: the .dwo (and the object) are gone.
        remove(&build.dwo);
        remove(&build.dir.path().join("split.o"));
        build.check_against_llvm(&format!("{tool} .dwp"));
    }
}

fn remove(path: &Path) {
    fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}
