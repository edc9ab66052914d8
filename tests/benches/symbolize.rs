//! Symbolization benchmark: faultline, cold (`--no-index`) and from a warm symbol index, against
//! llvm-symbolizer, binutils addr2line, gimli's `addr2line` CLI and blazesym's `blazecli`, on
//! the same debug file and the same random addresses; then the index itself: how long making it
//! takes, its size, and one address as a whole process.
//!
//! Run by `scripts/bench-symbolize.sh` (`just bench-symbolize`), which builds the inputs:
//!
//! ```text
//! cargo bench -p faultline-tests --bench symbolize -- \
//!     --debug target/bench/rg.debug --faultline target/bench/bin/faultline \
//!     --gimli target/bench-tools/bin/addr2line --out target/bench/out
//! ```
//!
//! Addresses are sampled uniformly over the function symbols (size > 0) of the debug file's
//! symbol table, then uniformly inside the function, with a fixed xorshift seed. Every tool
//! reads them from a file on stdin and writes to a file; wall time, CPU time and peak RSS
//! (`ru_maxrss`) come from `wait4`'s rusage of each child, spawned by a freshly started copy of
//! this program so that this process's own memory cannot leak into the children's figures (see
//! [`measure`]). Each tool runs once untimed (page cache warm-up and output check), then
//! `--runs` times, round-robin; the table shows the median wall time and the largest peak RSS.
//! Every output is checked to hold exactly one record per address, or the run fails.
//!
//! Without `--debug` (as under `cargo test --all-targets` or a bare `cargo bench`) it prints its
//! usage and exits successfully: the inputs are only built by the script.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use object::{Object, ObjectSymbol, SymbolKind};

const USAGE: &str = "usage: symbolize --debug FILE --faultline BIN --gimli BIN --out DIR \
[--llvm-symbolizer BIN] [--binutils BIN] [--blazecli BIN] [--count N] [--runs N] [--seed N]";

/// The targets: cold faultline at least this much faster than the fastest other tool…
const SPEEDUP_TARGET: f64 = 1.5;
/// …from a warm index, at least this much…
const WARM_SPEEDUP_TARGET: f64 = 10.0;
/// …making the index no slower than this many cold runs…
const BUILD_RATIO_TARGET: f64 = 2.0;
/// …the index no larger than this share of the debug file…
const SIZE_RATIO_TARGET: f64 = 0.5;
/// …one address from a warm index, as a whole process, under this…
const SINGLE_TARGET: Duration = Duration::from_millis(1);
/// …measured this many times;
const SINGLE_RUNS: usize = 30;
// and peak RSS, cold and warm, no higher than the gimli CLI's.

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == MEASURE_CHILD) {
        return measure_child(&argv[1..]);
    }
    let args: Vec<String> = match argv.into_iter().map(OsString::into_string).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("bench-symbolize: error: argument {bad:?} is not UTF-8");
            return ExitCode::from(2);
        }
    };
    let args = match Args::parse(&args) {
        Ok(Some(args)) => args,
        Ok(None) => {
            eprintln!("{USAGE}\n(scripts/bench-symbolize.sh builds the inputs; nothing to do)");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench-symbolize: error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-symbolize: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
struct Args {
    debug: PathBuf,
    faultline: PathBuf,
    gimli: PathBuf,
    llvm_symbolizer: PathBuf,
    binutils: PathBuf,
    blazecli: Option<PathBuf>,
    out: PathBuf,
    count: usize,
    runs: usize,
    seed: u64,
}

impl Args {
    fn parse(argv: &[String]) -> Result<Option<Self>, String> {
        let mut debug = None;
        let mut faultline = None;
        let mut gimli = None;
        let mut out = None;
        let mut llvm_symbolizer = PathBuf::from("llvm-symbolizer");
        let mut binutils = PathBuf::from("addr2line");
        let mut blazecli = None;
        let mut count = 100_000;
        let mut runs = 5;
        let mut seed = 0x5eed_f417_u64;
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            // `cargo bench` appends `--bench`.
            if flag == "--bench" {
                continue;
            }
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            let number = |v: String| {
                v.replace('_', "")
                    .parse::<u64>()
                    .map_err(|e| format!("{flag} {v}: {e}"))
            };
            match flag.as_str() {
                "--debug" => debug = Some(PathBuf::from(value()?)),
                "--faultline" => faultline = Some(PathBuf::from(value()?)),
                "--gimli" => gimli = Some(PathBuf::from(value()?)),
                "--out" => out = Some(PathBuf::from(value()?)),
                "--llvm-symbolizer" => llvm_symbolizer = PathBuf::from(value()?),
                "--binutils" => binutils = PathBuf::from(value()?),
                "--blazecli" => blazecli = Some(PathBuf::from(value()?)),
                "--count" => count = number(value()?)? as usize,
                "--runs" => runs = number(value()?)? as usize,
                "--seed" => seed = number(value()?)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let Some(debug) = debug else {
            return Ok(None);
        };
        let need = |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required"));
        if count == 0 || runs == 0 {
            return Err("--count and --runs must be at least 1".into());
        }
        Ok(Some(Self {
            debug,
            faultline: need(faultline, "--faultline")?,
            gimli: need(gimli, "--gimli")?,
            out: need(out, "--out")?,
            llvm_symbolizer,
            binutils,
            blazecli,
            count,
            runs,
            seed,
        }))
    }
}

/// How a tool's output is laid out, for counting records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// llvm-symbolizer's LLVM style: function and `file:line:column` per frame, a blank line
    /// after each address.
    Llvm,
    /// addr2line's `-f -i`: function and `file:line` per frame, nothing between addresses. The
    /// untimed first run adds `-a` (the address before each record) so records can be counted;
    /// timed runs must then print exactly that output without the address lines.
    Addr2line,
    /// blazecli's: a line `0x…: function @ …` per address, indented lines for its inlined
    /// frames, `<no-symbol>` when unknown. It takes the addresses as arguments.
    Blaze,
}

#[derive(Debug)]
struct Tool {
    /// Row label.
    name: String,
    /// File name stem under `--out`.
    key: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    layout: Layout,
    /// Counts against the speed target (faultline's own rows do not).
    anchor: bool,
}

impl Tool {
    /// Program and arguments; `check_run` adds `-a` for the addr2line layout.
    fn argv(&self, check_run: bool) -> Vec<OsString> {
        let mut argv = vec![self.program.clone().into_os_string()];
        if check_run && self.layout == Layout::Addr2line {
            argv.push("-a".into());
        }
        argv.extend(self.args.iter().cloned());
        argv
    }
}

#[derive(Debug, Clone, Copy)]
struct Measurement {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

fn run(args: &Args) -> Result<(), String> {
    fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let load_before = loadavg();

    let addresses = sample_addresses(&args.debug, args.count, args.seed)?;
    let input = args.out.join("addresses.txt");
    write_addresses(&input, &addresses)?;
    let debug_size = fs::metadata(&args.debug)
        .map_err(|e| format!("{}: {e}", args.debug.display()))?
        .len();
    println!(
        "debug file: {} ({:.1} MB, {:.1} MiB)",
        args.debug.display(),
        debug_size as f64 / 1e6,
        debug_size as f64 / MIB
    );
    println!(
        "addresses:  {} ({} sampled over function symbols, seed {:#x})",
        input.display(),
        addresses.len(),
        args.seed
    );
    println!("load average before: {load_before}");
    let others_before = OtherLoad::sample(Duration::from_secs(1));
    println!(
        "other processes before: {:.0}% of one core over 1 s",
        others_before * 100.0
    );
    let mut other_load = OtherLoad::start();

    let debug = args.debug.clone().into_os_string();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let addr2line_args = || -> Vec<OsString> {
        vec![
            "-e".into(),
            debug.clone(),
            "-f".into(),
            "-i".into(),
            "-C".into(),
        ]
    };
    let symbolize = |extra: &[&str]| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["symbolize".into(), "-e".into(), debug.clone()];
        args.extend(extra.iter().map(OsString::from));
        args
    };
    let mut tools = vec![
        Tool {
            name: format!("faultline --no-index ({cores} threads)"),
            key: "faultline",
            program: args.faultline.clone(),
            args: symbolize(&["--no-index"]),
            layout: Layout::Llvm,
            anchor: false,
        },
        Tool {
            name: "faultline --no-index --threads 1".into(),
            key: "faultline-1thread",
            program: args.faultline.clone(),
            args: symbolize(&["--no-index", "--threads", "1"]),
            layout: Layout::Llvm,
            anchor: false,
        },
        // Its untimed first run makes the index; the timed runs read it.
        Tool {
            name: "faultline, warm index".into(),
            key: "faultline-warm",
            program: args.faultline.clone(),
            args: symbolize(&[]),
            layout: Layout::Llvm,
            anchor: false,
        },
        Tool {
            name: "llvm-symbolizer".into(),
            key: "llvm-symbolizer",
            program: args.llvm_symbolizer.clone(),
            args: vec![
                {
                    let mut obj = OsString::from("--obj=");
                    obj.push(&debug);
                    obj
                },
                "--inlining".into(),
                "--demangle".into(),
                "--output-style=LLVM".into(),
            ],
            layout: Layout::Llvm,
            anchor: true,
        },
        Tool {
            name: "binutils addr2line".into(),
            key: "binutils-addr2line",
            program: args.binutils.clone(),
            args: addr2line_args(),
            layout: Layout::Addr2line,
            anchor: true,
        },
        Tool {
            name: "gimli addr2line".into(),
            key: "gimli-addr2line",
            program: args.gimli.clone(),
            args: addr2line_args(),
            layout: Layout::Addr2line,
            anchor: true,
        },
    ];
    if let Some(blazecli) = &args.blazecli {
        let mut argv: Vec<OsString> = vec![
            "symbolize".into(),
            "elf".into(),
            "--path".into(),
            debug.clone(),
        ];
        argv.extend(addresses.iter().map(|a| OsString::from(format!("{a:#x}"))));
        tools.push(Tool {
            name: "blazecli".into(),
            key: "blazecli",
            program: blazecli.clone(),
            args: argv,
            layout: Layout::Blaze,
            anchor: true,
        });
    }
    let _ = fs::remove_dir_all(args.out.join("cache"));

    // The measurer's own few MiB are the smallest peak RSS it can report.
    let floor = measure(
        "true",
        "true",
        &["true".into()],
        &input,
        &args.out.join("true.txt"),
        &args.out,
    )?;
    println!(
        "RSS floor:  `true` run the same way reports {:.1} MiB",
        floor.max_rss_kib as f64 / 1024.0
    );

    // Untimed first run of each tool: warms the page cache, checks the record count, and for
    // the addr2line layout keeps the reference the timed runs must reproduce.
    let mut reference: Vec<Option<Vec<u8>>> = Vec::with_capacity(tools.len());
    let mut unknown: Vec<usize> = Vec::with_capacity(tools.len());
    for tool in &tools {
        let out = args.out.join(format!("{}.check.txt", tool.key));
        eprintln!("bench-symbolize: {}: warm-up and output check", tool.name);
        measure(
            &tool.name,
            tool.key,
            &tool.argv(true),
            &input,
            &out,
            &args.out,
        )?;
        let bytes = fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let records = match tool.layout {
            Layout::Llvm => {
                let records = llvm_records(&bytes, addresses.len())
                    .map_err(|e| format!("{}: {}: {e}", tool.name, out.display()))?;
                reference.push(None);
                records
            }
            Layout::Addr2line => {
                let (records, stripped) = addr2line_records(&bytes, &addresses)
                    .map_err(|e| format!("{}: {}: {e}", tool.name, out.display()))?;
                reference.push(Some(stripped));
                records
            }
            Layout::Blaze => {
                let records = blaze_records(&bytes, addresses.len())
                    .map_err(|e| format!("{}: {}: {e}", tool.name, out.display()))?;
                reference.push(None);
                records
            }
        };
        unknown.push(records.iter().filter(|r| r.unknown).count());
    }

    let mut measured: Vec<Vec<Measurement>> = vec![Vec::new(); tools.len()];
    for round in 1..=args.runs {
        for (i, tool) in tools.iter().enumerate() {
            eprintln!("bench-symbolize: {}: run {round}/{}", tool.name, args.runs);
            let out = args.out.join(format!("{}.txt", tool.key));
            let m = measure(
                &tool.name,
                tool.key,
                &tool.argv(false),
                &input,
                &out,
                &args.out,
            )?;
            let bytes = fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            match &reference[i] {
                None if tool.layout == Layout::Blaze => {
                    blaze_records(&bytes, addresses.len())
                        .map_err(|e| format!("{}: {}: {e}", tool.name, out.display()))?;
                }
                None => {
                    llvm_records(&bytes, addresses.len())
                        .map_err(|e| format!("{}: {}: {e}", tool.name, out.display()))?;
                }
                Some(expected) => {
                    if &bytes != expected {
                        return Err(format!(
                            "{}: {} differs from the checked output of the -a run",
                            tool.name,
                            out.display()
                        ));
                    }
                }
            }
            measured[i].push(m);
        }
    }
    let load_after = loadavg();
    let others = other_load.finish();

    // faultline's output must not depend on the thread count.
    let multi = fs::read(args.out.join("faultline.txt")).map_err(|e| e.to_string())?;
    let single = fs::read(args.out.join("faultline-1thread.txt")).map_err(|e| e.to_string())?;
    if multi != single {
        return Err("faultline's output differs between the default and --threads 1".into());
    }
    // The index never changes an answer.
    let warm = fs::read(args.out.join("faultline-warm.txt")).map_err(|e| e.to_string())?;
    if multi != warm {
        return Err("faultline's output from the index differs from its output from DWARF".into());
    }
    let llvm = fs::read(args.out.join("llvm-symbolizer.txt")).map_err(|e| e.to_string())?;
    let (identical, same_locations) = agreement(&multi, &llvm);
    let rows: Vec<Row<'_>> = tools
        .iter()
        .zip(&measured)
        .zip(&unknown)
        .map(|((tool, runs), &unknown)| Row::new(tool, runs, unknown))
        .collect();
    print_table(&rows, addresses.len(), args.runs);
    println!("load average after: {load_after}");
    println!(
        "other processes during the run: {:.0}% of one core on average{}",
        others * 100.0,
        if others >= 0.1 {
            " (timings are skewed: re-run on an idle machine)"
        } else {
            ""
        }
    );
    println!(
        "faultline's output is identical with 1 and {cores} threads and from its index. Against llvm-symbolizer, of \
         {} addresses: {identical} print identically, {same_locations} have the same frames \
         with the same file:line:column (names aside: llvm-symbolizer 14 leaves Rust's \
         $LT$-style escapes undecoded).",
        addresses.len()
    );
    verdict(&rows)?;
    let cold = rows
        .iter()
        .find(|r| r.tool.key == "faultline")
        .ok_or("no faultline row")?;
    let gimli = rows
        .iter()
        .find(|r| r.tool.key == "gimli-addr2line")
        .ok_or("no gimli row")?;
    index_figures(args, &addresses, debug_size, cold, gimli)
}

struct Row<'a> {
    tool: &'a Tool,
    wall_median: Duration,
    wall_min: Duration,
    wall_max: Duration,
    cpu_median: Duration,
    max_rss_kib: u64,
    unknown: usize,
}

impl<'a> Row<'a> {
    fn new(tool: &'a Tool, runs: &[Measurement], unknown: usize) -> Self {
        let mut walls: Vec<Duration> = runs.iter().map(|m| m.wall).collect();
        walls.sort();
        let mut cpus: Vec<Duration> = runs.iter().map(|m| m.cpu).collect();
        cpus.sort();
        Self {
            tool,
            wall_median: walls[walls.len() / 2],
            wall_min: walls[0],
            wall_max: walls[walls.len() - 1],
            cpu_median: cpus[cpus.len() / 2],
            max_rss_kib: runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0),
            unknown,
        }
    }

    fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn print_table(rows: &[Row<'_>], addresses: usize, runs: usize) {
    println!();
    println!(
        "{addresses} addresses; wall: median of {runs} runs (min–max); CPU: user+sys, median; \
         RSS: largest ru_maxrss of the runs"
    );
    println!();
    println!("| tool | wall s | min–max s | CPU s | peak RSS MiB | records | `??` records |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {:.2} | {:.2}–{:.2} | {:.2} | {:.0} | {} | {} |",
            row.tool.name,
            row.wall_median.as_secs_f64(),
            row.wall_min.as_secs_f64(),
            row.wall_max.as_secs_f64(),
            row.cpu_median.as_secs_f64(),
            row.rss_mib(),
            addresses,
            row.unknown,
        );
    }
    println!();
}

/// Prints faultline's ratios and whether the targets are met. The outcome is reported, not
/// enforced: a missed target is a finding, not a broken benchmark.
fn verdict(rows: &[Row<'_>]) -> Result<(), String> {
    let faultline = rows
        .iter()
        .find(|r| r.tool.key == "faultline")
        .ok_or("no faultline row")?;
    let fastest = rows
        .iter()
        .filter(|r| r.tool.anchor)
        .min_by_key(|r| r.wall_median)
        .ok_or("no anchor rows")?;
    let gimli = rows
        .iter()
        .find(|r| r.tool.key == "gimli-addr2line")
        .ok_or("no gimli row")?;
    let speedup = fastest.wall_median.as_secs_f64() / faultline.wall_median.as_secs_f64();
    let rss_ratio = faultline.rss_mib() / gimli.rss_mib();
    let met = |ok: bool| if ok { "MET" } else { "NOT MET" };
    println!(
        "faultline vs the fastest other tool ({}): {speedup:.2}x faster (target >= {SPEEDUP_TARGET}x: {})",
        fastest.tool.name,
        met(speedup >= SPEEDUP_TARGET),
    );
    println!(
        "faultline peak RSS vs gimli addr2line: {:.0} / {:.0} MiB = {rss_ratio:.2} (target <= 1: {})",
        faultline.rss_mib(),
        gimli.rss_mib(),
        met(faultline.max_rss_kib <= gimli.max_rss_kib),
    );
    if let Some(warm) = rows.iter().find(|r| r.tool.key == "faultline-warm") {
        let speedup = fastest.wall_median.as_secs_f64() / warm.wall_median.as_secs_f64();
        println!(
            "faultline from a warm index vs the fastest other tool ({}): {speedup:.1}x faster \
             (target >= {WARM_SPEEDUP_TARGET}x: {})",
            fastest.tool.name,
            met(speedup >= WARM_SPEEDUP_TARGET),
        );
        println!(
            "faultline from a warm index, peak RSS vs gimli addr2line: {:.0} / {:.0} MiB = {:.2} \
             (target <= 1: {})",
            warm.rss_mib(),
            gimli.rss_mib(),
            warm.rss_mib() / gimli.rss_mib(),
            met(warm.max_rss_kib <= gimli.max_rss_kib),
        );
    }
    Ok(())
}

/// The index on its own: making it (`--runs` times, each from nothing, with one address to
/// answer), its size, and one address as a whole process from the warm index, beside
/// faultline from DWARF and llvm-symbolizer for the same address.
fn index_figures(
    args: &Args,
    addresses: &[u64],
    debug_size: u64,
    cold: &Row<'_>,
    gimli: &Row<'_>,
) -> Result<(), String> {
    let met = |ok: bool| if ok { "MET" } else { "NOT MET" };
    let cache = args.out.join("cache");
    let one = OsString::from(format!("{:#x}", addresses[0]));
    let debug = args.debug.clone().into_os_string();
    let faultline = |extra: &[&str]| -> Vec<OsString> {
        let mut argv = vec![
            args.faultline.clone().into_os_string(),
            "symbolize".into(),
            "-e".into(),
            debug.clone(),
        ];
        argv.extend(extra.iter().map(OsString::from));
        argv.push(one.clone());
        argv
    };
    let out = args.out.join("one.txt");
    let input = args.out.join("addresses.txt");

    let mut builds = Vec::with_capacity(args.runs);
    for round in 1..=args.runs {
        eprintln!(
            "bench-symbolize: making the index: run {round}/{}",
            args.runs
        );
        let _ = fs::remove_dir_all(&cache);
        builds.push(measure(
            "faultline (making the index)",
            "faultline-build",
            &faultline(&[]),
            &input,
            &out,
            &args.out,
        )?);
    }
    let index = find_index(&cache)?;
    let index_size = fs::metadata(&index)
        .map_err(|e| format!("{}: {e}", index.display()))?
        .len();
    let (build, build_min, build_max) = median_min_max(builds.iter().map(|m| m.wall));
    let build_rss = builds.iter().map(|m| m.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0;

    // What no process here can go below (`true`), and what starting faultline costs before it
    // reads anything (`--version`): the floors of "one address as a whole process".
    let singles: [(&str, &str, Vec<OsString>); 5] = [
        ("faultline, warm index", "one-warm", faultline(&[])),
        (
            "`true` (the machine's floor)",
            "one-true",
            vec!["true".into()],
        ),
        (
            "`faultline --version` (starting the binary)",
            "one-version",
            vec![args.faultline.clone().into_os_string(), "--version".into()],
        ),
        (
            "faultline --no-index",
            "one-cold",
            faultline(&["--no-index"]),
        ),
        ("llvm-symbolizer", "one-llvm", {
            let mut obj = OsString::from("--obj=");
            obj.push(&debug);
            vec![
                args.llvm_symbolizer.clone().into_os_string(),
                obj,
                "--inlining".into(),
                "--demangle".into(),
                one.clone(),
            ]
        }),
    ];
    let mut single = Vec::new();
    for (name, key, argv) in &singles {
        eprintln!("bench-symbolize: one address: {name} ({SINGLE_RUNS} runs)");
        // Untimed: the page cache.
        measure(name, key, argv, &input, &out, &args.out)?;
        let runs = (0..SINGLE_RUNS)
            .map(|_| measure(name, key, argv, &input, &out, &args.out))
            .collect::<Result<Vec<_>, _>>()?;
        single.push((name, runs));
    }

    println!();
    println!(
        "symbol index of {}: {} bytes ({:.1} MiB), {:.0}% of the debug file",
        args.debug.display(),
        index_size,
        index_size as f64 / MIB,
        100.0 * index_size as f64 / debug_size as f64
    );
    println!();
    println!("| | wall | min–max | peak RSS MiB |");
    println!("|---|---:|---:|---:|");
    println!(
        "| making the index (and one address), median of {} | {:.2} s | {:.2}–{:.2} s | {build_rss:.0} |",
        args.runs,
        build.as_secs_f64(),
        build_min.as_secs_f64(),
        build_max.as_secs_f64(),
    );
    for (name, runs) in &single {
        let (median, min, max) = median_min_max(runs.iter().map(|m| m.wall));
        let rss = runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        println!(
            "| one address, {name}, median of {SINGLE_RUNS} | {:.2} ms | {:.2}–{:.2} ms | {rss:.0} |",
            median.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }
    println!();
    let ratio = build.as_secs_f64() / cold.wall_median.as_secs_f64();
    println!(
        "making the index vs one cold run of {} addresses ({:.2} s): {ratio:.2}x (target <= \
         {BUILD_RATIO_TARGET}x: {})",
        addresses.len(),
        cold.wall_median.as_secs_f64(),
        met(ratio <= BUILD_RATIO_TARGET)
    );
    let share = index_size as f64 / debug_size as f64;
    println!(
        "index size vs the debug file: {share:.2} (target <= {SIZE_RATIO_TARGET}: {})",
        met(share <= SIZE_RATIO_TARGET)
    );
    let median_of = |k: usize| median_min_max(single[k].1.iter().map(|m| m.wall)).0;
    let (warm_one, floor, start) = (median_of(0), median_of(1), median_of(2));
    println!(
        "one address from a warm index, whole process: {:.2} ms (target < {} ms: {}); `true` \
         takes {:.2} ms here, starting faultline {:.2} ms: the lookup itself adds {:.2} ms",
        warm_one.as_secs_f64() * 1e3,
        SINGLE_TARGET.as_millis(),
        met(warm_one < SINGLE_TARGET),
        floor.as_secs_f64() * 1e3,
        start.as_secs_f64() * 1e3,
        warm_one.saturating_sub(start).as_secs_f64() * 1e3,
    );
    println!(
        "peak RSS making the index vs gimli addr2line's run: {build_rss:.0} / {:.0} MiB",
        gimli.rss_mib()
    );
    Ok(())
}

fn median_min_max(walls: impl Iterator<Item = Duration>) -> (Duration, Duration, Duration) {
    let mut walls: Vec<Duration> = walls.collect();
    walls.sort();
    (walls[walls.len() / 2], walls[0], walls[walls.len() - 1])
}

/// The one index under the cache directory (`<hex>/faultline-index`).
fn find_index(cache: &Path) -> Result<PathBuf, String> {
    let entries = fs::read_dir(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    for entry in entries.flatten() {
        let index = entry.path().join("faultline-index");
        if index.is_file() {
            return Ok(index);
        }
    }
    Err(format!("no index was made under {}", cache.display()))
}

/// Runs `argv` once with `input` on stdin and `out` as stdout, through a fresh copy of this
/// program in [`MEASURE_CHILD`] mode, and returns the rusage it reaped. A failed run (spawn
/// error, non-zero exit, signal) is an error.
///
/// Why the detour: Linux folds the RSS high-water mark of the address space a process had
/// *before* `exec` into its `ru_maxrss`. A child spawned straight from this process (which holds
/// the debug file and tool outputs in memory) would report at least this process's own peak;
/// spawned from a freshly started measurer, it reports at most the measurer's few MiB.
fn measure(
    name: &str,
    key: &str,
    argv: &[OsString],
    input: &Path,
    out: &Path,
    dir: &Path,
) -> Result<Measurement, String> {
    let stdin = File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let stdout = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let err_path = dir.join(format!("{key}.stderr"));
    let stderr = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let result_path = dir.join(format!("{key}.rusage"));
    let _ = fs::remove_file(&result_path);
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let status = Command::new(me)
        // faultline's indexes of files outside a store go to the cache: the benchmark's own.
        .env("FAULTLINE_CACHE_DIR", dir.join("cache"))
        .arg(MEASURE_CHILD)
        .arg(&result_path)
        .args(argv)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|e| format!("{name}: cannot start the measurer: {e}"))?;
    let stderr_text = fs::read_to_string(&err_path).unwrap_or_default();
    let first_lines = || stderr_text.lines().take(20).collect::<Vec<_>>().join("\n");
    if !status.success() {
        return Err(format!(
            "{name}: the measurer failed ({status}); stderr ({}):\n{}",
            err_path.display(),
            first_lines()
        ));
    }
    let result =
        fs::read_to_string(&result_path).map_err(|e| format!("{}: {e}", result_path.display()))?;
    let fields: Vec<u64> = result
        .split_whitespace()
        .map(|f| f.parse::<i64>().map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", result_path.display()))?;
    let &[wall_ns, cpu_ns, max_rss_kib, raw_status] = fields.as_slice() else {
        return Err(format!("{}: malformed: {result:?}", result_path.display()));
    };
    let status = ExitStatus::from_raw(raw_status as i32);
    if !status.success() {
        return Err(format!(
            "{name} failed ({status}); its stderr ({}):\n{}",
            err_path.display(),
            first_lines()
        ));
    }
    if !stderr_text.is_empty() {
        eprintln!(
            "bench-symbolize: {name} wrote {} line(s) to stderr ({}), first: {}",
            stderr_text.lines().count(),
            err_path.display(),
            stderr_text.lines().next().unwrap_or("")
        );
    }
    Ok(Measurement {
        wall: Duration::from_nanos(wall_ns),
        cpu: Duration::from_nanos(cpu_ns),
        max_rss_kib,
    })
}

/// First argument of the measurer mode: `symbolize --measure-child RESULT PROGRAM [ARGS...]`.
const MEASURE_CHILD: &str = "--measure-child";

/// The measurer: runs PROGRAM with this process's stdio, reaps it with `wait4`, and writes
/// `wall_ns cpu_ns max_rss_kib wait_status` to RESULT. Fails only if it cannot measure.
fn measure_child(argv: &[OsString]) -> ExitCode {
    let [result_path, program, args @ ..] = argv else {
        eprintln!("bench-symbolize: {MEASURE_CHILD} RESULT PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let child = match Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "bench-symbolize: cannot run {}: {e}",
                program.to_string_lossy()
            );
            return ExitCode::FAILURE;
        }
    };
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return ExitCode::FAILURE;
    };
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our unreaped child (std's `Child` never waits unless asked, and it
        // is not asked); both pointers are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            eprintln!("bench-symbolize: wait4: {err}");
            return ExitCode::FAILURE;
        }
    }
    let wall = start.elapsed();
    drop(child);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    // Linux reports ru_maxrss in KiB.
    let line = format!(
        "{} {} {} {}\n",
        wall.as_nanos(),
        cpu.as_nanos(),
        usage.ru_maxrss,
        status
    );
    match fs::write(result_path, line) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-symbolize: {}: {e}", result_path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}

/// `count` addresses: a function symbol (size > 0, deduplicated by address) chosen uniformly,
/// then an offset chosen uniformly inside it.
fn sample_addresses(debug: &Path, count: usize, seed: u64) -> Result<Vec<u64>, String> {
    let data = fs::read(debug).map_err(|e| format!("{}: {e}", debug.display()))?;
    let obj = object::File::parse(&*data).map_err(|e| format!("{}: {e}", debug.display()))?;
    let mut functions: Vec<(u64, u64)> = obj
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.size() > 0)
        .map(|s| (s.address(), s.size()))
        .collect();
    functions.sort_unstable();
    functions.dedup_by_key(|&mut (address, _)| address);
    if functions.is_empty() {
        return Err(format!(
            "{}: no function symbols with a size in its symbol table",
            debug.display()
        ));
    }
    let mut rng = XorShift64::new(seed);
    Ok((0..count)
        .map(|_| {
            let (address, size) = functions[rng.below(functions.len() as u64) as usize];
            address + rng.below(size)
        })
        .collect())
}

fn write_addresses(path: &Path, addresses: &[u64]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut out = BufWriter::new(File::create(path).map_err(err)?);
    for address in addresses {
        writeln!(out, "{address:#x}").map_err(err)?;
    }
    out.flush().map_err(err)
}

/// xorshift64* (Vigna): deterministic, dependency-free, good enough to spread samples.
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is far below anything measurable here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Debug)]
struct Record {
    /// The outermost frame's function is `??`.
    unknown: bool,
}

/// Of the addresses, how many print identically in both LLVM-style outputs, and how many have
/// the same number of frames with the same location lines (function names aside).
fn agreement(a: &[u8], b: &[u8]) -> (usize, usize) {
    let mut identical = 0;
    let mut same_locations = 0;
    for (x, y) in llvm_blocks(a).zip(llvm_blocks(b)) {
        if x == y {
            identical += 1;
        }
        let locations = |block: &'_ [u8]| -> Vec<Vec<u8>> {
            block
                .split(|&c| c == b'\n')
                .skip(1)
                .step_by(2)
                .map(<[u8]>::to_vec)
                .collect()
        };
        if locations(x) == locations(y) {
            same_locations += 1;
        }
    }
    (identical, same_locations)
}

/// The blocks of LLVM-style output: the lines of each address, without the blank line.
fn llvm_blocks(bytes: &[u8]) -> SplitBlank<'_> {
    SplitBlank(bytes)
}

/// Splits on `\n\n` (the blank line after each address).
struct SplitBlank<'a>(&'a [u8]);

impl<'a> Iterator for SplitBlank<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.windows(2).position(|w| w == b"\n\n") {
            Some(i) => {
                let block = &self.0[..i];
                self.0 = &self.0[i + 2..];
                Some(block)
            }
            None => Some(std::mem::take(&mut self.0)),
        }
    }
}

/// Checks LLVM-style output: exactly `expected` blocks, each an even number (≥ 2) of lines.
fn llvm_records(bytes: &[u8], expected: usize) -> Result<Vec<Record>, String> {
    if !bytes.is_empty() && !bytes.ends_with(b"\n\n") {
        return Err("output does not end with a blank line".into());
    }
    let mut records = Vec::with_capacity(expected);
    for (i, block) in llvm_blocks(bytes).enumerate() {
        let lines: Vec<&[u8]> = block.split(|&b| b == b'\n').collect();
        if lines.len() < 2 || !lines.len().is_multiple_of(2) || lines.iter().any(|l| l.is_empty()) {
            return Err(format!(
                "record {} is not function/location line pairs: {:?}",
                i + 1,
                String::from_utf8_lossy(block)
            ));
        }
        records.push(Record {
            unknown: lines[lines.len() - 2] == b"??",
        });
    }
    if records.len() != expected {
        return Err(format!(
            "{} address records, expected {expected}",
            records.len()
        ));
    }
    Ok(records)
}

/// Checks blazecli's output: exactly `expected` records, each a `0x…:` line and the indented
/// lines of its inlined frames.
fn blaze_records(bytes: &[u8], expected: usize) -> Result<Vec<Record>, String> {
    let mut records = Vec::with_capacity(expected);
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if line.starts_with(b"0x") {
            records.push(Record {
                unknown: line.ends_with(b"<no-symbol>"),
            });
        } else if !line.starts_with(b" ") || records.is_empty() {
            return Err(format!(
                "line {:?} is neither an address's nor an inlined frame's",
                String::from_utf8_lossy(line)
            ));
        }
    }
    if records.len() != expected {
        return Err(format!(
            "{} address records, expected {expected}",
            records.len()
        ));
    }
    Ok(records)
}

/// Checks addr2line `-a -f -i` output against the input addresses: each record starts with its
/// address line (in input order) and holds function/location line pairs. Returns the records
/// and the output with the address lines removed, which is what `-f -i` alone prints.
fn addr2line_records(bytes: &[u8], addresses: &[u64]) -> Result<(Vec<Record>, Vec<u8>), String> {
    let mut records = Vec::with_capacity(addresses.len());
    let mut stripped = Vec::with_capacity(bytes.len());
    let mut lines_in_record: Vec<&[u8]> = Vec::new();
    let finish = |lines: &mut Vec<&[u8]>, records: &mut Vec<Record>| -> Result<(), String> {
        if lines.len() < 2 || !lines.len().is_multiple_of(2) {
            return Err(format!(
                "record {} is not function/location line pairs: {:?}",
                records.len(),
                lines
                    .iter()
                    .map(|l| String::from_utf8_lossy(l))
                    .collect::<Vec<_>>()
            ));
        }
        records.push(Record {
            unknown: lines[lines.len() - 2] == b"??",
        });
        lines.clear();
        Ok(())
    };
    let mut next = 0;
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for line in body.split(|&b| b == b'\n') {
        let is_next_address = addresses
            .get(next)
            .is_some_and(|&a| parse_hex(line) == Some(a));
        if is_next_address {
            if next > 0 {
                finish(&mut lines_in_record, &mut records)?;
            }
            next += 1;
            continue;
        }
        if next == 0 {
            return Err("output does not start with the first address".into());
        }
        lines_in_record.push(line);
        stripped.extend_from_slice(line);
        stripped.push(b'\n');
    }
    if next > 0 {
        finish(&mut lines_in_record, &mut records)?;
    }
    if records.len() != addresses.len() {
        return Err(format!(
            "{} address records, expected {}",
            records.len(),
            addresses.len()
        ));
    }
    Ok((records, stripped))
}

fn parse_hex(line: &[u8]) -> Option<u64> {
    let digits = line.strip_prefix(b"0x")?;
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU time the rest of the machine used: all CPU time the kernel counts as busy (`/proc/stat`)
/// minus this process's and its children's (`getrusage`), per second of wall time.
struct OtherLoad {
    start: Instant,
    busy: Duration,
    ours: Duration,
}

impl OtherLoad {
    fn start() -> Self {
        Self {
            start: Instant::now(),
            busy: machine_busy(),
            ours: own_cpu(),
        }
    }

    /// Cores' worth of other work, on average since `start`.
    fn finish(&mut self) -> f64 {
        let wall = self.start.elapsed().as_secs_f64();
        let busy = machine_busy().saturating_sub(self.busy);
        let ours = own_cpu().saturating_sub(self.ours);
        (busy.saturating_sub(ours).as_secs_f64() / wall).max(0.0)
    }

    /// Cores' worth of other work over `period`, this process sleeping.
    fn sample(period: Duration) -> f64 {
        let mut load = Self::start();
        std::thread::sleep(period);
        load.finish()
    }
}

/// Busy CPU time of the whole machine since boot: user, nice, system, irq, softirq and steal.
fn machine_busy() -> Duration {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Duration::ZERO;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(busy as f64 / hz as f64)
}

/// CPU time of this process and of its reaped descendants (the measurers and the tools).
fn own_cpu() -> Duration {
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN]
        .into_iter()
        .map(|who| {
            // SAFETY: an all-zero rusage is a valid value of this plain C struct.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `usage` is a live local of the right type.
            unsafe { libc::getrusage(who, &mut usage) };
            tv(usage.ru_utime) + tv(usage.ru_stime)
        })
        .sum()
}
