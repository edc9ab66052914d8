#!/usr/bin/env bash
# The demo: a stripped Rust service panics; faultline symbolizes its crash record offline
# against the debug file kept outside the "image", found by GNU build-id.
set -euo pipefail
cd "$(dirname "$0")/.."

out=demo-out
rm -rf "$out"
mkdir -p "$out/image" "$out/store" "$out/crashes"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build the demo service (release, full debug info) and faultline"
cargo build --quiet --profile release-debug -p faultline-demo
cargo build --quiet -p faultline
faultline=target/debug/faultline
built=target/release-debug/faultline-demo

say "split it as a release pipeline would: debug info to a store, a stripped copy to the image"
objcopy --only-keep-debug "$built" "$out/faultline-demo.debug"
objcopy --strip-all "$built" "$out/image/faultline-demo"
"$faultline" debug-store add "$out/faultline-demo.debug" --store "$out/store"
echo "image binary: $(stat -c %s "$out/image/faultline-demo") bytes, DWARF sections: $(readelf -S "$out/image/faultline-demo" | grep -cE '\.debug_(info|line)' || true), $(nm "$out/image/faultline-demo" 2>&1 | head -1)"

say "run the stripped binary until it panics (this is all std can tell you)"
set +e
RUST_BACKTRACE=1 FAULTLINE_CRASH_DIR="$out/crashes" "$out/image/faultline-demo"
status=$?
set -e
echo "exit status: $status"
record=$(ls "$out"/crashes/*.json)

say "faultline analyze $record --debug-dir $out/store"
"$faultline" analyze "$record" --debug-dir "$out/store"
