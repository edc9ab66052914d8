#!/usr/bin/env bash
# Benchmarks the native-crash path: `faultline core-handler` on the core of a process with 1 GiB
# resident and 20 threads (time, peak RSS, the size of what it keeps), then `faultline analyze`
# of what it kept with a warm store, beside gdb reading the same small core and the whole one.
# Figures go to docs/benchmarks.md by hand; the script prints them.
#
# Inputs are made under $TARGET/bench/cores/ (the program, its store, a 1 GiB core: about 1.1 GB
# of disk while it runs; the core is removed at the end). Never touches core_pattern: the core
# is written by `ulimit -c unlimited` in that directory, as the tests do.
#
# Environment: BENCH_RUNS (timed runs, default 5).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
dir="$target/bench/cores"
runs="${BENCH_RUNS:-5}"
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -f "$dir/core"' EXIT

"$root/scripts/install-deps.sh"
cargo build --release --locked -p faultline
faultline="$target/release/faultline"

cat > "$dir/big.c" <<'C'
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
volatile int sink;
pthread_barrier_t ready;
__attribute__((noinline)) void idle(void) { pause(); sink++; }
__attribute__((noinline)) void crash(volatile int *p) { sink = *p; sink++; }
void *worker(void *arg) { (void)arg; pthread_barrier_wait(&ready); idle(); return 0; }
int main(void) {
    size_t size = (size_t)1 << 30;
    char *heap = malloc(size);
    memset(heap, 0x5a, size);            /* 1 GiB resident */
    pthread_t t[19];
    pthread_barrier_init(&ready, 0, 20);
    for (int k = 0; k < 19; k++) pthread_create(&t[k], 0, worker, 0);
    pthread_barrier_wait(&ready);
    usleep(100000);
    crash(0);
    return heap[12];
}
C
gcc -O2 -g -pthread -Wl,--build-id "$dir/big.c" -o "$dir/big"
"$faultline" debug-store add "$dir/big" --store "$dir/store" >/dev/null
(cd "$dir" && sh -c 'ulimit -c unlimited; exec ./big' 2>/dev/null) || true
[[ -f "$dir/core" ]] || { echo "bench-cores: no core in $dir (core_pattern: $(cat /proc/sys/kernel/core_pattern))" >&2; exit 1; }
core_bytes=$(stat -c %s "$dir/core")

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() { # runs "$@" $runs times; prints "median_wall_s max_rss_kib"
  local walls=() rss=0
  for _ in $(seq "$runs"); do
    /usr/bin/time -o "$dir/time.txt" -f '%e %M' "$@" >/dev/null 2>&1
    local out
    out=$(tail -n1 "$dir/time.txt")
    walls+=("${out% *}")
    local r="${out#* }"
    if (( r > rss )); then rss=$r; fi
  done
  echo "$(printf '%s\n' "${walls[@]}" | median) $rss"
}

# The handler, fed the 1 GiB core from a file on stdin, as the kernel feeds it from a pipe.
handler_runs=()
for i in $(seq "$runs"); do
  rm -rf "$dir/out"
  /usr/bin/time -o "$dir/time.txt" -f '%e %M' "$faultline" core-handler --out "$dir/out" --pid 1 \
    --time "$i" < "$dir/core" >/dev/null 2>&1
  handler_runs+=("$(tail -n1 "$dir/time.txt")")
done
handler_wall=$(printf '%s\n' "${handler_runs[@]}" | awk '{print $1}' | median)
handler_rss=$(printf '%s\n' "${handler_runs[@]}" | awk '{print $2}' | sort -n | tail -n1)
kept=$(ls "$dir/out"/core-*.core)
kept_bytes=$(stat -c %s "$kept")
cp "$kept" "$dir/kept.core"
dmp_bytes=$(stat -c %s "$(ls "$dir/out"/core-*.dmp)")
cp "$(ls "$dir/out"/core-*.dmp)" "$dir/kept.dmp"
# The handler without its minidump, to see what writing one costs.
read -r nodmp_wall nodmp_rss < <(measure sh -c "rm -rf '$dir/out2'; '$faultline' core-handler --out '$dir/out2' --pid 1 --time 1 --no-minidump < '$dir/core'")

# analyze of what was kept, the store warm (its index made by debug-store add).
"$faultline" analyze "$dir/kept.core" --debug-dir "$dir/store" >/dev/null 2>&1
read -r analyze_wall analyze_rss < <(measure "$faultline" analyze "$dir/kept.core" --debug-dir "$dir/store")
read -r analyze_json_wall _ < <(measure "$faultline" analyze "$dir/kept.core" --debug-dir "$dir/store" --format json)
read -r analyze_dmp_wall analyze_dmp_rss < <(measure "$faultline" analyze "$dir/kept.dmp" --debug-dir "$dir/store")
# And of the whole core, mapped rather than read.
read -r whole_wall whole_rss < <(measure "$faultline" analyze "$dir/core" --debug-dir "$dir/store")
threads=$("$faultline" analyze "$dir/kept.core" --debug-dir "$dir/store" --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["threads"]))')
# gdb on the same small core and on the whole one.
read -r gdb_small_wall gdb_small_rss < <(measure gdb -batch -nx -ex 'thread apply all bt' "$dir/big" "$dir/kept.core")
read -r gdb_whole_wall gdb_whole_rss < <(measure gdb -batch -nx -ex 'thread apply all bt' "$dir/big" "$dir/core")

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain -- crates 2>/dev/null)" ]]; then commit+=" + uncommitted changes"; fi
cat <<REPORT
machine:   $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)
faultline: $("$faultline" --version) (commit $commit); gdb: $(gdb --version | head -n1)
core:      $core_bytes bytes (1 GiB resident, $threads threads); median of $runs runs

| | wall s | peak RSS MiB | goal |
|---|---:|---:|---|
| core-handler on the whole core (small core + minidump) | $handler_wall | $(( handler_rss / 1024 )) | < 1 s, < 32 MiB |
| core-handler --no-minidump | $nodmp_wall | $(( nodmp_rss / 1024 )) | |
| what it kept: the small core | $kept_bytes bytes | | < 1 MiB |
| what it kept: the minidump | $dmp_bytes bytes | | < 1 MiB |
| analyze of what it kept ($threads threads, warm store) | $analyze_wall | $(( analyze_rss / 1024 )) | < 0.1 s |
| analyze --format json of it | $analyze_json_wall | | |
| analyze of the minidump | $analyze_dmp_wall | $(( analyze_dmp_rss / 1024 )) | < 0.1 s |
| analyze of the whole core (mapped) | $whole_wall | $(( whole_rss / 1024 )) | |
| gdb thread apply all bt, the small core | $gdb_small_wall | $(( gdb_small_rss / 1024 )) | |
| gdb thread apply all bt, the whole core | $gdb_whole_wall | $(( gdb_whole_rss / 1024 )) | |
REPORT
