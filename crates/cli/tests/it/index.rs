//! Symbol indexes as users meet them: made on first use (and said so), used silently after,
//! made at once by `debug-store add`, never trusted when damaged, built by several processes at
//! once without a half-written file ever read, listed and trimmed by `debug-store ls` and `gc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use faultline_tests::{CProgram, Finished, demo_binary, gnu_build_id, nm_symbol, run, run_with};
use serde_json::Value;

use crate::{faultline, stdout_json, with_input};

const PROGRAM: &str = r#"
__attribute__((noinline)) int indexed_helper(int x) { return x * 7 + 3; }
__attribute__((noinline)) int indexed_other(int x) { return indexed_helper(x) - 1; }
int main(int argc, char **argv) { return indexed_other(argc); }
"#;

/// A C program and its store-relative paths.
struct Stored {
    dir: tempfile::TempDir,
    binary: PathBuf,
    build_id: String,
}

impl Stored {
    fn new(build_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let binary = CProgram::new("indexed", PROGRAM, build_id).compile(dir.path());
        Self {
            build_id: gnu_build_id(&binary).unwrap(),
            dir,
            binary,
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn entry(&self, suffix: &str) -> PathBuf {
        let (head, rest) = self.build_id.split_at(2);
        self.store()
            .join(".build-id")
            .join(head)
            .join(format!("{rest}{suffix}"))
    }

    fn index(&self) -> PathBuf {
        self.entry(".faultline-index")
    }

    fn add(&self, extra: &[&str]) -> Finished {
        run(faultline()
            .args(["debug-store", "add"])
            .arg(&self.binary)
            .arg("--store")
            .arg(self.store())
            .args(extra))
        .assert_success()
    }

    fn addresses(&self) -> String {
        ["indexed_helper", "indexed_other", "main"]
            .iter()
            .map(|name| format!("{:#x}\n", nm_symbol(&self.binary, name).address + 1))
            .collect::<String>()
            + "0x1\n"
    }

    fn symbolize(&self, extra: &[&str]) -> Finished {
        run_with(
            faultline()
                .args(["symbolize", "--build-id", &self.build_id, "--debug-dir"])
                .arg(self.store())
                .args(extra),
            with_input(&self.addresses()),
        )
        .assert_success()
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_first_use_makes_the_index_says_so_and_later_uses_read_it_silently() {
    let s = Stored::new("1dc0000000000000000000000000000000000001");
    s.add(&["--no-index"]);
    assert!(
        !s.index().exists(),
        "--no-index made {}",
        s.index().display()
    );
    let cold = s.symbolize(&["--no-index"]);
    assert!(!s.index().exists(), "--no-index made an index");
    assert_eq!(cold.stderr, "", "{}", cold.context());
    assert!(
        cold.stdout.contains("indexed_helper\n"),
        "{}",
        cold.context()
    );

    let first = s.symbolize(&[]);
    assert!(
        first.stderr.contains("indexing") && first.stderr.contains("once per build-id"),
        "{}",
        first.context()
    );
    assert!(s.index().is_file(), "{}", first.context());
    let second = s.symbolize(&[]);
    assert_eq!(second.stderr, "", "{}", second.context());
    assert_eq!(first.stdout, cold.stdout);
    assert_eq!(second.stdout, cold.stdout);

    // analyze and leaks take the flag too.
    for command in ["analyze", "leaks"] {
        let help = run(faultline().args([command, "--help"])).assert_success();
        assert!(
            help.stdout.contains("--no-index"),
            "{command}: {}",
            help.stdout
        );
    }
}

#[test]
fn a_file_outside_a_store_is_indexed_in_the_cache() {
    let s = Stored::new("1dc0000000000000000000000000000000000002");
    let cache = s.dir.path().join("cache");
    let ran = run_with(
        faultline()
            .env("FAULTLINE_CACHE_DIR", &cache)
            .arg("symbolize")
            .arg("-e")
            .arg(&s.binary),
        with_input(&s.addresses()),
    )
    .assert_success();
    let index = cache.join(&s.build_id).join("faultline-index");
    assert!(index.is_file(), "{}", ran.context());
    assert!(
        ran.stderr.contains(&index.display().to_string()),
        "{}",
        ran.context()
    );
}

#[test]
fn debug_store_add_indexes_at_once_and_ls_and_index_say_so() {
    let s = Stored::new("1dc0000000000000000000000000000000000003");
    let added = s.add(&[]);
    assert!(s.index().is_file(), "{}", added.context());
    assert!(
        added.stderr.contains(&format!("indexed {}", s.build_id)),
        "{}",
        added.context()
    );
    // The first symbolization has nothing to make.
    assert_eq!(s.symbolize(&[]).stderr, "");

    let ls = run(faultline()
        .args(["debug-store", "ls", "--store"])
        .arg(s.store()))
    .assert_success();
    let row = ls
        .stdout
        .lines()
        .find(|l| l.starts_with(&s.build_id))
        .unwrap_or_else(|| panic!("{}", ls.context()));
    assert!(row.ends_with("  indexed"), "{}", ls.context());
    assert!(ls.stdout.contains("1 build-ids"), "{}", ls.context());

    let json = stdout_json(
        &run(faultline()
            .args(["debug-store", "ls", "--format", "json", "--store"])
            .arg(s.store()))
        .assert_success(),
    );
    let entry = &json["entries"][0];
    assert_eq!(entry["build_id"], s.build_id.as_str());
    assert_eq!(entry["indexed"], true);
    assert_eq!(
        entry["debug"]["bytes"].as_u64(),
        Some(fs::metadata(s.entry(".debug")).unwrap().len())
    );
    assert_eq!(
        entry["index"]["bytes"].as_u64(),
        Some(fs::metadata(s.index()).unwrap().len())
    );

    let again = run(faultline()
        .args(["debug-store", "index", "--store"])
        .arg(s.store())
        .arg(&s.build_id))
    .assert_success();
    assert!(
        again.stdout.contains("already indexed"),
        "{}",
        again.context()
    );
    let forced = run(faultline()
        .args(["debug-store", "index", "--force", "--all", "--store"])
        .arg(s.store()))
    .assert_success();
    assert!(
        forced
            .stdout
            .starts_with(&format!("{} indexed -> ", s.build_id)),
        "{}",
        forced.context()
    );
    let unknown = run(faultline()
        .args(["debug-store", "index", "--store"])
        .arg(s.store())
        .arg("abcdef0123456789"))
    .assert_code(3);
    assert!(
        unknown
            .stderr
            .contains("abcdef0123456789: no debug file in the store"),
        "{}",
        unknown.context()
    );
    let neither = run(faultline()
        .args(["debug-store", "index", "--store"])
        .arg(s.store()));
    assert_eq!(neither.code(), Some(2), "{}", neither.context());
}

#[test]
fn a_truncated_or_corrupt_index_is_never_trusted_and_is_made_again() {
    let s = Stored::new("1dc0000000000000000000000000000000000004");
    s.add(&[]);
    let expected = s.symbolize(&["--no-index"]).stdout;
    let whole = fs::read(s.index()).unwrap();

    // Cut short: refused on open, made again.
    fs::write(s.index(), &whole[..whole.len() / 2]).unwrap();
    let ran = s.symbolize(&[]);
    assert_eq!(ran.stdout, expected);
    assert!(ran.stderr.contains("indexing"), "{}", ran.context());
    assert_eq!(
        fs::read(s.index()).unwrap(),
        whole,
        "made again, the same bytes"
    );

    // A byte flipped in the body: found by a block's checksum when a lookup reaches it; the
    // answer comes from DWARF and the index is dropped, to be made on the next use.
    let mut flipped = whole.clone();
    for byte in &mut flipped[300..] {
        *byte ^= 0x55;
    }
    fs::write(s.index(), &flipped).unwrap();
    let ran = s.symbolize(&[]);
    assert_eq!(ran.stdout, expected, "{}", ran.context());
    let ran = s.symbolize(&[]);
    assert_eq!(ran.stdout, expected, "{}", ran.context());
    assert_eq!(fs::read(s.index()).unwrap(), whole, "{}", ran.context());

    // Another build-id's index under this one's name.
    let other = Stored::new("1dc0000000000000000000000000000000000005");
    other.add(&[]);
    fs::copy(other.index(), s.index()).unwrap();
    let ran = s.symbolize(&[]);
    assert_eq!(ran.stdout, expected);
    assert!(ran.stderr.contains("indexing"), "{}", ran.context());
    assert_eq!(fs::read(s.index()).unwrap(), whole);
}

#[test]
fn processes_building_one_index_at_once_all_answer_and_leave_one_whole_index() {
    // A large debug file (a Rust release binary with inlines), so the builds overlap.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    run(faultline()
        .args(["debug-store", "add", "--no-index"])
        .arg(demo_binary())
        .arg("--store")
        .arg(&store))
    .assert_success();
    let build_id = gnu_build_id(demo_binary()).unwrap();
    let text = nm_symbol(demo_binary(), "main").address;
    let addresses: String = (0..2_000)
        .map(|k| format!("{:#x}\n", text + 7 * k))
        .collect();
    let symbolize = |extra: &[&str]| {
        let mut command = faultline();
        command
            .args(["symbolize", "--build-id", &build_id, "--debug-dir"])
            .arg(&store)
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let expected = run_with(&mut symbolize(&["--no-index"]), with_input(&addresses))
        .assert_success()
        .stdout;

    let children: Vec<std::process::Child> = (0..4)
        .map(|_| {
            use std::io::Write as _;
            let mut child = symbolize(&[]).spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(addresses.as_bytes())
                .unwrap();
            child
        })
        .collect();
    let mut built = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{stderr}");
        built += usize::from(stderr.contains("indexing"));
    }
    assert!(built >= 1, "no process made the index");
    let (head, rest) = build_id.split_at(2);
    let entry = store.join(".build-id").join(head);
    assert_eq!(
        files_in(&entry),
        [format!("{rest}.debug"), format!("{rest}.faultline-index")],
        "no temporary file left behind"
    );
    let ls = stdout_json(
        &run(faultline()
            .args(["debug-store", "ls", "--format", "json", "--store"])
            .arg(&store))
        .assert_success(),
    );
    assert_eq!(ls["entries"][0]["indexed"], true, "{ls:#}");
    let warm = run_with(&mut symbolize(&[]), with_input(&addresses)).assert_success();
    assert_eq!(warm.stdout, expected);
    assert_eq!(warm.stderr, "");
}

/// Sets a file's access and modification times `ago` in the past.
fn age(path: &Path, ago: Duration) {
    let when = SystemTime::now() - ago;
    let times = fs::FileTimes::new().set_accessed(when).set_modified(when);
    fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_times(times)
        .unwrap();
}

#[test]
fn gc_drops_the_least_recently_used_index_first_then_its_debug_file() {
    let old = Stored::new("1dc0000000000000000000000000000000000006");
    let store = old.store();
    old.add(&[]);
    let new = Stored::new("1dc0000000000000000000000000000000000007");
    run(faultline()
        .args(["debug-store", "add"])
        .arg(&new.binary)
        .arg("--store")
        .arg(&store))
    .assert_success();
    let new_index = store
        .join(".build-id/1d")
        .join("c0000000000000000000000000000000000007.faultline-index");
    let new_debug = new_index.with_extension("debug");
    for file in [old.index(), old.entry(".debug")] {
        age(&file, Duration::from_secs(3 * 86_400));
    }
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let total =
        size(&old.index()) + size(&old.entry(".debug")) + size(&new_index) + size(&new_debug);

    // Within its size: nothing goes.
    let kept = run(faultline()
        .args(["debug-store", "gc", "--max-size"])
        .arg(total.to_string())
        .arg("--store")
        .arg(&store))
    .assert_success();
    assert!(
        kept.stdout.contains("0 file(s) removed"),
        "{}",
        kept.context()
    );

    // One byte less: the old index goes, nothing else.
    let max = (total - 1).to_string();
    let dry = run(faultline()
        .args([
            "debug-store",
            "gc",
            "--dry-run",
            "--max-size",
            &max,
            "--store",
        ])
        .arg(&store))
    .assert_success();
    assert!(dry.stdout.starts_with("would remove "), "{}", dry.context());
    assert!(old.index().exists(), "--dry-run removed the index");
    let gc = run(faultline()
        .args(["debug-store", "gc", "--max-size", &max, "--store"])
        .arg(&store))
    .assert_success();
    assert!(!old.index().exists(), "{}", gc.context());
    assert!(old.entry(".debug").exists() && new_index.exists() && new_debug.exists());

    // Room for one entry: the old debug file goes too; the recent entry stays whole.
    let max = (size(&new_index) + size(&new_debug)).to_string();
    run(faultline()
        .args(["debug-store", "gc", "--max-size", &max, "--store"])
        .arg(&store))
    .assert_success();
    assert!(!old.entry(".debug").exists());
    assert!(new_index.exists() && new_debug.exists());
    assert_eq!(
        files_in(&store.join(".build-id/1d")),
        [
            "c0000000000000000000000000000000000007.debug",
            "c0000000000000000000000000000000000007.faultline-index"
        ],
        "nothing left of the old entry"
    );

    let bad = run(faultline()
        .args(["debug-store", "gc", "--max-size", "lots", "--store"])
        .arg(&store));
    assert_eq!(bad.code(), Some(2), "{}", bad.context());
    assert!(bad.stderr.contains("500M"), "{}", bad.context());
    let ls: Value = stdout_json(
        &run(faultline()
            .args(["debug-store", "ls", "--format", "json", "--store"])
            .arg(&store))
        .assert_success(),
    );
    assert_eq!(ls["entries"].as_array().unwrap().len(), 1, "{ls:#}");
}

#[test]
fn analyze_makes_the_index_of_a_crash_s_module_and_answers_as_without() {
    use crate::records::{frame_in, module, record, write};
    let s = Stored::new("1dc0000000000000000000000000000000000008");
    s.add(&["--no-index"]);
    let frames = ["indexed_helper", "indexed_other", "main"]
        .iter()
        .map(|name| frame_in(0, nm_symbol(&s.binary, name).address + 1))
        .collect();
    let crash = write(
        s.dir.path(),
        "crash",
        &record(vec![module("/srv/indexed", Some(&s.build_id))], frames),
    );
    let analyze = |extra: &[&str]| {
        run(faultline()
            .arg("analyze")
            .arg(&crash)
            .args(["--format", "json", "--debug-dir"])
            .arg(s.store())
            .args(extra))
        .assert_success()
    };
    let cold = analyze(&["--no-index"]);
    assert!(!s.index().exists(), "{}", cold.context());
    let first = analyze(&[]);
    assert!(first.stderr.contains("indexing"), "{}", first.context());
    assert!(s.index().is_file(), "{}", first.context());
    let second = analyze(&[]);
    assert_eq!(second.stderr, "", "{}", second.context());
    assert_eq!(stdout_json(&first), stdout_json(&cold));
    assert_eq!(stdout_json(&second), stdout_json(&cold));
    let functions: Vec<Value> = stdout_json(&second)["frames"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", second.stdout))
        .iter()
        .flat_map(|f| f["symbols"].as_array().cloned().unwrap_or_default())
        .map(|symbol| symbol["function"].clone())
        .collect();
    assert!(
        functions.contains(&Value::from("indexed_helper")),
        "{functions:?}"
    );
}

#[test]
fn where_no_index_can_be_written_dwarf_answers_without_a_word() {
    let s = Stored::new("1dc0000000000000000000000000000000000009");
    // The cache's place is a file: nothing can be made under it.
    let blocked = s.dir.path().join("not-a-directory");
    fs::write(&blocked, "").unwrap();
    let symbolize = |cache: &Path| {
        run_with(
            faultline()
                .env("FAULTLINE_CACHE_DIR", cache)
                .arg("symbolize")
                .arg("-e")
                .arg(&s.binary),
            with_input(&s.addresses()),
        )
        .assert_success()
    };
    let ran = symbolize(&blocked.join("cache"));
    assert_eq!(ran.stderr, "", "{}", ran.context());
    let expected = symbolize(&s.dir.path().join("cache")).stdout;
    assert_eq!(ran.stdout, expected);
}
