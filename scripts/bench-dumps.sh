#!/usr/bin/env bash
# Benchmarks `faultline analyze` on a large real goroutine dump: tests/targets/go/blocker holding
# 100,000 goroutines in 20 distinct stacks, its /debug/pprof/goroutine?debug=2 dump fetched from
# 127.0.0.1, parsed and grouped by faultline (release build) five times. Prints the dump's size,
# throughput (MB/s) and peak RSS, against the targets of the task-dump issue (>= 250 MB/s,
# peak RSS <= 2x the dump's size).
set -euo pipefail
cd "$(dirname "$0")/.."
"$PWD/scripts/install-deps.sh"
bench=target/bench-dumps
mkdir -p "$bench"
go=/usr/lib/go-1.19/bin/go
dump="$bench/goroutine-debug2-100k.txt"
if [[ ! -s $dump ]]; then
  (cd tests/targets/go/blocker && GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GOWORK=off \
    GOCACHE="$PWD/../../../../$bench/gocache" "$go" build -o "../../../../$bench/blocker" .)
  "$bench/blocker" -port 0 -n 100000 > "$bench/blocker.out" 2> "$bench/blocker.err" &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do grep -q listening "$bench/blocker.out" && break; sleep 0.5; done
  addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$bench/blocker.out" | head -1)
  curl -s "http://$addr/debug/pprof/goroutine?debug=2" -o "$dump"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
fi
cargo build --release --locked -p faultline
faultline=target/release/faultline
bytes=$(stat -c %s "$dump")
"$faultline" analyze "$dump" > /dev/null   # warm the page cache
echo "dump: $dump, $bytes bytes, $("$faultline" analyze "$dump" | head -1 | cut -d: -f2-)"
for run in 1 2 3 4 5; do
  /usr/bin/time -f "%e %M" "$faultline" analyze "$dump" 2>> "$bench/times" > /dev/null
done
tail -5 "$bench/times" | sort -n | awk -v bytes="$bytes" '
  { t[NR] = $1; if ($2 > rss) rss = $2 }
  END {
    median = t[3]; mbs = bytes / 1e6 / median
    printf "median %.2f s (%.0f MB/s; target >= 250: %s), peak RSS %.0f MiB (%.2fx the dump; target <= 2: %s)\n",
      median, mbs, (mbs >= 250 ? "met" : "NOT met"), rss / 1024, rss * 1024 / bytes, (rss * 1024 <= 2 * bytes ? "met" : "NOT met")
  }'
rm -f "$bench/times"
