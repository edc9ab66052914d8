// Command forms prints the Go crash forms faultline reads, for real, one per -mode:
//
//	race       two goroutines write one map, unordered (build with -race): `WARNING: DATA RACE`,
//	           exit 66
//	race-then-wait  the same, then stays up (a service whose log has the report)
//	ancestry   a goroutine three generations deep, then a panic (run with
//	           GODEBUG=tracebackancestors=5 GOTRACEBACK=all): `[originating from goroutine N]:`
//	long-panic a panic whose message is 40 KB (one line longer than Docker's 16 KiB entries)
//	crash      a nil map assignment (run with GOTRACEBACK=crash): the panic, every goroutine
//	           with fp/sp/pc, then SIGABRT
//
// forms_test.go adds a race inside `go test -race` (TestRace) and a test that kills a child Go
// process with SIGQUIT before timing out itself (TestChildQuit, with -timeout), so both
// tracebacks are in one output. Only the standard library; go.mod says go 1.19.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

var cache = map[string]int{}

//go:noinline
func store(k string, v int) { cache[k] = v }

// race writes the map from two goroutines with nothing ordering the writes. The second
// waits first, so the writes never overlap in time: the runtime's own check ("concurrent map
// writes", a fatal error) cannot fire, and the race detector reports the race every time.
//
//go:noinline
func race() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		store("a", 1)
	}()
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		store("a", 2)
	}()
	wg.Wait()
}

//go:noinline
func leaf() { time.Sleep(time.Hour) }

//go:noinline
func middle() {
	go leaf()
	time.Sleep(time.Hour)
}

//go:noinline
func root() {
	go middle()
	time.Sleep(time.Hour)
}

//go:noinline
func hang() { time.Sleep(time.Hour) }

func main() {
	mode := flag.String("mode", "", "race, race-then-wait, ancestry, long-panic or crash")
	flag.Parse()
	switch *mode {
	case "race":
		race()
	case "race-then-wait":
		race()
		hang()
	case "ancestry":
		go root()
		time.Sleep(300 * time.Millisecond)
		panic("three generations deep")
	case "long-panic":
		// A panic value longer than a log line may be: Docker splits its line at 16 KiB.
		go hang()
		time.Sleep(100 * time.Millisecond)
		panic("order rejected: " + strings.Repeat("item-", 8000))
	case "crash":
		go hang()
		time.Sleep(100 * time.Millisecond)
		var m map[string]int
		m["x"] = 1
	default:
		fmt.Fprintf(os.Stderr, "forms: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
}
