#!/usr/bin/env bash
# Regenerates crates/dump/tests/fixtures/rust/: real Rust panic output, from
# tests/targets/rust-panics/main.rs (three threads panic: a named one on an index out of bounds,
# an unnamed one with panic!, and main with a two-line Option::expect message), compiled with
# the machine's rustc, run with RUST_BACKTRACE unset, =1 and =full, and stripped with =1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/dump/tests/fixtures/rust
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rustc -g -O -o "$tmp/panics" tests/targets/rust-panics/main.rs
cp "$tmp/panics" "$tmp/panics-stripped"
strip "$tmp/panics-stripped"
run() { # NAME BINARY RUST_BACKTRACE
  local status=0
  if [[ -n $3 ]]; then
    (cd tests/targets/rust-panics && RUST_BACKTRACE=$3 "$2" 2> "$tmp/$1") || status=$?
  else
    (cd tests/targets/rust-panics && env -u RUST_BACKTRACE "$2" 2> "$tmp/$1") || status=$?
  fi
  [[ $status == 101 ]] || { echo "rust-fixtures: $1 exited $status, expected 101" >&2; exit 1; }
}
run panic-nobacktrace.txt "$tmp/panics" ""
run panic-backtrace.txt "$tmp/panics" 1
run panic-backtrace-full.txt "$tmp/panics" full
run panic-stripped.txt "$tmp/panics-stripped" 1
for f in panic-nobacktrace.txt panic-backtrace.txt panic-backtrace-full.txt panic-stripped.txt; do
  # Three panics per file, or the program changed.
  [[ $(grep -c "^thread '.*panicked at" "$tmp/$f") == 3 ]] || { echo "rust-fixtures: $f: expected 3 panics" >&2; exit 1; }
  cp "$tmp/$f" "$out/$f"
done
echo "rust-fixtures: $(rustc --version) -> $out" >&2
