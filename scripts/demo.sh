#!/usr/bin/env bash
# The demo: `faultline run scenarios/demo.yaml` in a local lab of network namespaces.
#
# A checkout service (Rust, stripped, faultline-capture) and an inventory service (Go,
# net/http/pprof) run as lab hosts. A partition between them makes checkout panic (captured
# and symbolized from its stripped binary against a debug store kept outside the "image"),
# a CPU stress squeezes checkout, inventory is killed and restarted, and inventory's goroutine
# leak is flagged. The run's verdict is FAILED (exit 1) on purpose; the report explains why.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=target/demo
mkdir -p "$demo/image" "$demo/store"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build faultline and the two demo services"
cargo build --quiet --locked -p faultline
cargo build --quiet --locked --profile release-debug -p faultline-demo
built=target/release-debug/faultline-demo
# The debug info goes to a store keyed by build-id; the "image" gets a stripped copy.
objcopy --only-keep-debug "$built" "$demo/faultline-demo.debug"
objcopy --strip-all "$built" "$demo/image/faultline-demo"
target/debug/faultline debug-store add "$demo/faultline-demo.debug" --store "$demo/store" >/dev/null
go=$(scripts/find-go.sh)
(cd tests/targets/go/inventory && GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=0 "$go" build -ldflags "-s -w" -o "../../../../$demo/image/inventory" .)
echo "checkout: $(stat -c %s "$demo/image/faultline-demo") bytes, stripped: $(nm "$demo/image/faultline-demo" 2>&1 | head -1)"
echo "inventory: $("$go" version)"

say "faultline run scenarios/demo.yaml"
set +e
target/debug/faultline run scenarios/demo.yaml --out "$demo/run" --seed 42
status=$?
set -e

say "the report: $demo/run/report.md (also report.html, junit.xml, journal.json)"
sed -n '1,/^## Probes/p' "$demo/run/report.md" | head -n -1
sed -n '/^## Crashes/,/^## Timeline/p' "$demo/run/report.md" | head -n -1
if [[ $status -eq 1 ]]; then
    echo "demo: verdict FAILED (exit 1), as documented: the partition made checkout panic and inventory leaks goroutines"
    exit 0
fi
echo "demo: unexpected exit status $status (documented: 1)" >&2
exit 1
