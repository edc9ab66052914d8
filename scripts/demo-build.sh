#!/usr/bin/env bash
# Builds what the scenarios in scenarios/ run into target/demo: image/ holds the "image" (the
# stripped checkout service and the Go inventory service), store/ the checkout's debug file
# by build-id, kept outside the image. Also builds faultline (target/debug/faultline).
set -euo pipefail
cd "$(dirname "$0")/.."
demo=target/demo
mkdir -p "$demo/image" "$demo/store"

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

