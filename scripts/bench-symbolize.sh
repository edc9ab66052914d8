#!/usr/bin/env bash
# Benchmarks `faultline symbolize`, cold (--no-index) and from a warm symbol index, against
# llvm-symbolizer, binutils addr2line, gimli's addr2line CLI and blazesym's blazecli: 100,000
# random addresses, with inlines and demangling, output to a file, all against the same large
# debug file (ripgrep built with full debug info), in one run; then making the index, its size,
# and one address as a whole process. Prints wall time and peak RSS per tool and faultline's
# ratios against the targets; docs/benchmarks.md has results.
#
# Idempotent: inputs are cached under $TARGET/bench/ (ripgrep, rg.debug, a frozen copy of the
# faultline binary) and $TARGET/bench-tools/ (the gimli CLI, blazecli); outputs go to
# $TARGET/bench/out/ (the index to $TARGET/bench/out/cache/).
#
# Environment: BENCH_COUNT (addresses, default 100000), BENCH_RUNS (timed runs per tool,
# default 5), BENCH_SEED (sampling seed).
set -euo pipefail

RIPGREP_VERSION=15.2.0
GIMLI_ADDR2LINE_VERSION=0.27.1
BLAZECLI_VERSION=0.1.14

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
bench="$target/bench"
tools="$target/bench-tools"
mkdir -p "$bench/bin" "$bench/out"

log() { echo "bench-symbolize: $*" >&2; }

# llvm-symbolizer, binutils addr2line, objcopy.
"$root/scripts/install-deps.sh"

# 1. The large debug file: ripgrep from crates.io, release with full debug info, unstripped.
rg="$bench/ripgrep/bin/rg"
if ! [[ -x "$rg" ]] || [[ "$("$rg" --version | head -n1)" != "ripgrep $RIPGREP_VERSION"* ]]; then
  log "building ripgrep $RIPGREP_VERSION with full debug info (a few minutes)"
  CARGO_PROFILE_RELEASE_DEBUG=true CARGO_PROFILE_RELEASE_STRIP=none \
    cargo install ripgrep --version "$RIPGREP_VERSION" --locked --force --root "$bench/ripgrep"
fi
debug="$bench/rg.debug"
if ! [[ -f "$debug" ]] || [[ "$rg" -nt "$debug" ]]; then
  objcopy --only-keep-debug "$rg" "$debug.tmp"
  mv "$debug.tmp" "$debug"
fi

# 2. gimli's addr2line CLI.
gimli="$tools/bin/addr2line"
if ! [[ -x "$gimli" ]] || [[ "$("$gimli" --version)" != "addr2line $GIMLI_ADDR2LINE_VERSION" ]]; then
  log "installing gimli's addr2line $GIMLI_ADDR2LINE_VERSION"
  cargo install addr2line --version "$GIMLI_ADDR2LINE_VERSION" --features bin --locked --force \
    --root "$tools"
fi

# 2b. blazesym's CLI.
blazecli="$tools/bin/blazecli"
if ! [[ -x "$blazecli" ]] || [[ "$("$blazecli" --version)" != "blazecli $BLAZECLI_VERSION" ]]; then
  log "installing blazecli $BLAZECLI_VERSION"
  cargo install blazecli --version "$BLAZECLI_VERSION" --locked --force --root "$tools"
fi

# 3. faultline, release. Copied so a concurrent build cannot swap the binary mid-benchmark.
cargo build --release --locked -p faultline
cp "$target/release/faultline" "$bench/bin/faultline.tmp"
mv "$bench/bin/faultline.tmp" "$bench/bin/faultline"

# 4. Build the harness before measuring anything, so its compilation does not load the machine.
cargo bench --locked -p faultline-tests --bench symbolize --no-run

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain -- crates 2>/dev/null)" ]]; then commit+=" + uncommitted changes"; fi
{
  echo "machine:    $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/^MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
  echo "kernel:     $(uname -sr)"
  echo "ripgrep:    $("$rg" --version | head -n1), $(stat -c %s "$rg") bytes unstripped"
  echo "faultline:  $("$bench/bin/faultline" --version) (commit $commit)"
  echo "llvm-symbolizer: $(llvm-symbolizer --version | grep -m1 -i 'version' | sed 's/^ *//')"
  echo "addr2line:  $(addr2line --version | head -n1)"
  echo "gimli:      $("$gimli" --version)"
  echo "blazecli:   $("$blazecli" --version)"
  cargo bench --locked -p faultline-tests --bench symbolize -- \
    --debug "$debug" \
    --faultline "$bench/bin/faultline" \
    --gimli "$gimli" \
    --llvm-symbolizer "$(command -v llvm-symbolizer)" \
    --binutils "$(command -v addr2line)" \
    --blazecli "$blazecli" \
    --out "$bench/out" \
    --count "${BENCH_COUNT:-100000}" \
    --runs "${BENCH_RUNS:-5}" \
    ${BENCH_SEED:+--seed "$BENCH_SEED"}
} | tee "$bench/results.txt"
