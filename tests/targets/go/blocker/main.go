// Command blocker is a test target for faultline's Go dump parser: it parks goroutines in
// known states, in known numbers, each in a named function of package main, and serves
// net/http/pprof so that a goroutine dump can be taken while they wait. With -panic or
// -fault it crashes instead, once the goroutines are parked, so the crash output contains
// them too.
//
// scripts/go-fixtures.sh builds it with several Go toolchains and records its output as the
// fixtures in crates/dump/tests/fixtures/go; crates/dump/tests/fixtures/go/README.md lists
// what a test can expect to find in each of them.
//
// Only the standard library is used, so it builds without network access, and the go.mod
// says go 1.19 so that both Debian's Go 1.19 and a current Go build it unchanged.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// Every blocking function below is marked noinline so that it is a frame of its own in
// every dump, whatever the compiler version decides about inlining.

var (
	neverClosed = make(chan struct{}) // nobody ever sends on or closes it
	neverRead   = make(chan int)      // nobody ever receives from it
	heldMutex   sync.Mutex            // locked by main before the waiters start, never unlocked
	keepPeers   []net.Conn            // the silent ends of the -io connections
)

//go:noinline
func waitOnChannel(started *sync.WaitGroup) {
	started.Done()
	<-neverClosed
}

//go:noinline
func waitInSelect(started *sync.WaitGroup, other chan int) {
	// pprof labels show up in ?debug=1 ("# labels: {...}") and, on Go 1.27 with
	// GODEBUG=tracebacklabels=1, in tracebacks; a parser should carry them through.
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("role", "selector")))
	started.Done()
	select {
	case <-neverClosed:
	case <-other:
	}
}

//go:noinline
func lockMutex(started *sync.WaitGroup) {
	started.Done()
	heldMutex.Lock()
}

//go:noinline
func readForever(started *sync.WaitGroup, conn net.Conn) {
	started.Done()
	var buf [1]byte
	_, _ = conn.Read(buf[:]) // the peer never writes and never closes
}

//go:noinline
func sleepForever(started *sync.WaitGroup) {
	started.Done()
	time.Sleep(1000 * time.Hour)
}

//go:noinline
func recurse(started *sync.WaitGroup, depth int) int {
	if depth <= 0 {
		deepWait(started)
		return 0
	}
	// The addition after the call keeps this from being a tail call.
	return recurse(started, depth-1) + 1
}

//go:noinline
func deepWait(started *sync.WaitGroup) {
	started.Done()
	<-neverClosed
}

//go:noinline
func lockedWait(started *sync.WaitGroup) {
	runtime.LockOSThread()
	started.Done()
	<-neverClosed
}

//go:noinline
func spawner(started *sync.WaitGroup, children int) {
	var wg sync.WaitGroup
	for i := 0; i < children; i++ {
		wg.Add(1)
		started.Add(1)
		go spawnedWorker(started, &wg)
	}
	started.Done()
	wg.Wait() // the children never finish
}

//go:noinline
func spawnedWorker(started *sync.WaitGroup, wg *sync.WaitGroup) {
	defer wg.Done()
	started.Done()
	neverRead <- 1
}

// Large mode: -n goroutines spread evenly over 20 distinct stacks (4 blocking kinds at
// 5 call depths), for benchmarks of the parser and the grouping.

//go:noinline
func largeLevel(started *sync.WaitGroup, kind, depth int) int {
	if depth > 0 {
		return largeLevel(started, kind, depth-1) + 1
	}
	switch kind {
	case 0:
		largeChan(started)
	case 1:
		largeSelect(started)
	case 2:
		largeSleep(started)
	default:
		largeMutex(started)
	}
	return 0
}

//go:noinline
func largeChan(started *sync.WaitGroup) {
	started.Done()
	<-neverClosed
}

//go:noinline
func largeSelect(started *sync.WaitGroup) {
	started.Done()
	select {
	case <-neverClosed:
	case neverRead <- 2:
	}
}

//go:noinline
func largeSleep(started *sync.WaitGroup) {
	started.Done()
	time.Sleep(1000 * time.Hour)
}

//go:noinline
func largeMutex(started *sync.WaitGroup) {
	started.Done()
	heldMutex.Lock()
}

// Crash paths: main.main -> main.handle -> main.crash (-panic), or
// main.main -> main.handle -> main.fault -> main.writeNilMap / main.derefNil / main.overflow /
// main.unlockUnlocked (-fault).

type request struct {
	id    int
	attrs map[string]string
}

//go:noinline
func handle(r *request, mode string) {
	if mode == "" {
		crash(r)
	}
	fault(r, mode)
}

//go:noinline
func crash(r *request) {
	panic(fmt.Sprintf("faultline-blocker: deliberate panic in main.crash (request %d)", r.id))
}

//go:noinline
func fault(r *request, mode string) {
	switch mode {
	case "nilmap":
		writeNilMap(r)
	case "nilptr":
		derefNil(nil)
	case "overflow":
		// A small limit keeps the overflow quick and its memory use low; the output is
		// Go's "fatal error: stack overflow", with a "runtime stack:" section.
		debug.SetMaxStack(1 << 20)
		overflow(r, 0)
	case "unlock":
		unlockUnlocked()
	default:
		fmt.Fprintf(os.Stderr, "blocker: unknown -fault %q (want nilmap, nilptr, overflow or unlock)\n", mode)
		os.Exit(2)
	}
}

//go:noinline
func writeNilMap(r *request) {
	r.attrs["key"] = "value" // r.attrs is nil: "assignment to entry in nil map"
}

//go:noinline
func derefNil(r *request) {
	r.id++ // r is nil: SIGSEGV, "invalid memory address or nil pointer dereference"
}

//go:noinline
func overflow(r *request, n int) int {
	var pad [64]byte // grows the frame so the limit is reached in fewer calls
	pad[n%64] = byte(n)
	return overflow(r, n+1) + int(pad[0])
}

//go:noinline
func unlockUnlocked() {
	var mu sync.Mutex
	mu.Unlock() // "fatal error: sync: unlock of unlocked mutex": a fatal error, not a panic
}

// waitParked waits until every goroutine other than the caller is parked (blocked in a wait
// state rather than running, runnable or in a system call), or until the deadline passes.
// It is what makes the dumps repeatable: "listening" is printed only once the goroutines
// started below are in their final states, and each HTTP request waits for the goroutines
// of earlier requests (and net/http's background reader of this one) to settle before the
// profile is written.
func waitParked(deadline time.Duration) error {
	buf := make([]byte, 1<<20)
	end := time.Now().Add(deadline)
	for {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		// runtime.Stack lists the calling goroutine first; skip it.
		blocks := strings.Split(string(buf[:n]), "\n\n")[1:]
		notParked := 0
		for _, block := range blocks {
			header, _, _ := strings.Cut(block, "\n")
			if strings.Contains(header, "[running") || strings.Contains(header, "[runnable") ||
				strings.Contains(header, "[syscall") {
				notParked++
			}
		}
		if notParked == 0 {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%d goroutines still not parked after %v", notParked, deadline)
		}
		time.Sleep(time.Millisecond)
	}
}

// settled serves a request once the other goroutines are parked (see waitParked). If they
// do not settle within a second it serves the request anyway: a dump is still a dump.
func settled(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = waitParked(time.Second)
		h.ServeHTTP(w, r)
	})
}

// ioPairs returns n connected loopback connections; the caller reads from the first of
// each pair and keeps the second open without ever writing to it.
func ioPairs(n int) (readers, peers []net.Conn, err error) {
	if n == 0 {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, err
		}
		s, err := ln.Accept()
		if err != nil {
			return nil, nil, err
		}
		readers = append(readers, c)
		peers = append(peers, s)
	}
	return readers, peers, nil
}

func main() {
	var (
		port     = flag.Int("port", 0, "pprof port on 127.0.0.1 (0: any free port)")
		nChan    = flag.Int("chan", 7, "goroutines in main.waitOnChannel [chan receive]")
		nSelect  = flag.Int("select", 5, "goroutines in main.waitInSelect [select]")
		nMutex   = flag.Int("mutex", 4, "goroutines in main.lockMutex [sync.Mutex.Lock] (semacquire before Go 1.20)")
		nIO      = flag.Int("io", 3, "goroutines in main.readForever [IO wait]")
		nSleep   = flag.Int("sleep", 6, "goroutines in main.sleepForever [sleep]")
		nDeep    = flag.Int("deep", 2, "goroutines in main.deepWait at the bottom of main.recurse [chan receive]")
		depth    = flag.Int("depth", 200, "recursion depth of the -deep goroutines")
		nLocked  = flag.Int("locked", 1, "goroutines in main.lockedWait [chan receive, locked to thread]")
		nSpawner = flag.Int("spawners", 1, "goroutines in main.spawner [sync.WaitGroup.Wait] (semacquire before Go 1.20)")
		children = flag.Int("children", 2, "main.spawnedWorker goroutines [chan send] started by each spawner")
		large    = flag.Int("n", 0, "extra goroutines spread over 20 distinct stacks (large-dump mode)")
		doPanic  = flag.Bool("panic", false, "panic in main.crash once the goroutines are parked")
		faultArg = flag.String("fault", "", "runtime error once the goroutines are parked: nilmap, nilptr, overflow or unlock")
	)
	flag.Parse()

	readers, peers, err := ioPairs(*nIO)
	if err != nil {
		fmt.Fprintln(os.Stderr, "blocker:", err)
		os.Exit(1)
	}
	// Keep the peers reachable: a collected net.Conn is closed by its finalizer, and that
	// would wake its reader with EOF.
	keepPeers = peers

	heldMutex.Lock()
	var started sync.WaitGroup
	start := func(n int, f func()) {
		for i := 0; i < n; i++ {
			started.Add(1)
			go f()
		}
	}
	start(*nChan, func() { waitOnChannel(&started) })
	other := make(chan int)
	start(*nSelect, func() { waitInSelect(&started, other) })
	start(*nMutex, func() { lockMutex(&started) })
	for _, c := range readers {
		c := c
		start(1, func() { readForever(&started, c) })
	}
	start(*nSleep, func() { sleepForever(&started) })
	start(*nDeep, func() { recurse(&started, *depth) })
	start(*nLocked, func() { lockedWait(&started) })
	start(*nSpawner, func() { spawner(&started, *children) })
	for i := 0; i < *large; i++ {
		kind, d := i%4, (i/4)%5
		start(1, func() { largeLevel(&started, kind, d) })
	}
	started.Wait()

	if *doPanic || *faultArg != "" {
		mustPark()
		handle(&request{id: 42}, *faultArg)
		return
	}

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "blocker:", err)
		os.Exit(1)
	}
	go serve(ln)
	mustPark()
	fmt.Printf("listening on %s\n", ln.Addr())
	select {} // main parks here: [select (no cases)]
}

func mustPark() {
	if err := waitParked(30 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "blocker:", err)
		os.Exit(1)
	}
}

//go:noinline
func serve(ln net.Listener) {
	err := http.Serve(ln, settled(http.DefaultServeMux))
	fmt.Fprintln(os.Stderr, "blocker: serve:", err)
	os.Exit(1)
}
