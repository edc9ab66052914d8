#!/usr/bin/env bash
# Regenerates crates/dump/tests/fixtures/tokio/taskdump.txt: a real tokio task dump, printed by
# tests/targets/tokio-dump (3 tasks awaiting a oneshot in waiter::wait_for_order, 2 in
# tokio::time::sleep inside sleeper::nap, 1 awaiting a Mutex in locker::hold), built with
# --cfg tokio_unstable and tokio's taskdump feature into target/tokio-dump.
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/dump/tests/fixtures/tokio
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
RUSTFLAGS="--cfg tokio_unstable" cargo build --release \
  --manifest-path tests/targets/tokio-dump/Cargo.toml --target-dir target/tokio-dump
timeout 60 target/tokio-dump/release/tokio-dump > "$tmp/taskdump.txt"
# Six tasks, each where the program left it, or the program (or tokio's output) changed.
count() { grep -c "^╼.tokio_dump::$1 at " "$tmp/taskdump.txt" || true; }
[[ $(grep -c '^task [0-9]*:$' "$tmp/taskdump.txt") == 6 ]] || { echo "tokio-fixtures: expected 6 tasks" >&2; exit 1; }
[[ $(count waiter::wait_for_order) == 3 && $(count sleeper::nap) == 2 && $(count locker::hold) == 1 ]] \
  || { echo "tokio-fixtures: unexpected task roots" >&2; cat "$tmp/taskdump.txt" >&2; exit 1; }
cp "$tmp/taskdump.txt" "$out/taskdump.txt"
echo "tokio-fixtures: $(rustc --version), $(grep -o 'tokio-1\.[0-9.]*' "$out/taskdump.txt" | head -1) -> $out" >&2
