// Command loadleak is the load side of the leak-detection corpus: an HTTP service whose
// request handlers live about 300 ms, for a load generator to ramp up against, and workloads
// that leak (or do not) in ways only the goroutines' identity or the runtime's own proof
// (Go 1.26 and later: the goroutineleak profile, `(leaked)` in dumps) tells apart. It serves
// net/http/pprof on the same address.
//
// Workloads (-workload; ground truth in brackets):
//
//	handlers     nothing but the handlers: GET /work sleeps 300 ms and answers   [no leak]
//	global-leak  every 10th request leaves a goroutine blocked on a package-level
//	             channel (reachable: the runtime cannot prove it)              [leaks: leakOnGlobal]
//	unreachable  one goroutine every 200 ms blocked on a channel nobody else
//	             holds: the runtime proves it leaked                           [leaks: waitUnreachable]
//	reachable    one goroutine every 200 ms blocked on a package-level channel  [leaks: waitGlobal]
//	pool         producers block on a full job queue that a worker pool drains:
//	             40 more every second for 6 s, drained at 20 a second, all gone
//	             by about 12 s (reachable, and released)                        [no leak]
//
// -traffic N starts N short-lived goroutines every 100 ms (their ids climb, as a busy
// service's do). -listen fixes the address (to restart on the same port).
//
// Only the standard library; go.mod says go 1.19 so both Go toolchains build it.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync/atomic"
	"time"
)

var global = make(chan struct{}) // never closed nor sent on: reachable, so never proven

// jobs is the pool's queue, kept in a package-level variable: the idle workers stay
// reachable (something could still send), so the runtime does not call them leaked. Held only
// by the workers, the queue would be unreachable once the producers are done, and the idle
// workers provably leaked (they are: nothing closes the queue).
var jobs chan int

//go:noinline
func leakOnGlobal() { <-global }

//go:noinline
func waitGlobal() { <-global }

//go:noinline
func waitUnreachable(ch chan int) { <-ch }

// leakUnreachable makes a channel only the new goroutine holds: once this returns, nothing
// reachable can ever send on it.
//
//go:noinline
func leakUnreachable() {
	ch := make(chan int)
	go waitUnreachable(ch)
}

//go:noinline
func produce(jobs chan int, n int) { jobs <- n }

//go:noinline
func poolWorker(jobs chan int, speed time.Duration) {
	for range jobs {
		time.Sleep(speed)
	}
}

//go:noinline
func serveWork(w http.ResponseWriter, r *http.Request) {
	time.Sleep(300 * time.Millisecond)
	fmt.Fprintln(w, "done")
}

//go:noinline
func shortLived() { time.Sleep(10 * time.Millisecond) }

func main() {
	workload := flag.String("workload", "handlers", "which workload to run (see the package comment)")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	traffic := flag.Int("traffic", 0, "short-lived goroutines started every 100 ms")
	flag.Parse()

	var requests atomic.Int64
	leakEvery := int64(0)
	switch *workload {
	case "handlers":
	case "global-leak":
		leakEvery = 10
	case "unreachable":
		go func() {
			for {
				leakUnreachable()
				time.Sleep(200 * time.Millisecond)
			}
		}()
	case "reachable":
		go func() {
			for {
				go waitGlobal()
				time.Sleep(200 * time.Millisecond)
			}
		}()
	case "pool":
		jobs = make(chan int, 10)
		for i := 0; i < 4; i++ {
			go poolWorker(jobs, 200*time.Millisecond)
		}
		go func() {
			for s := 0; s < 6; s++ {
				for i := 0; i < 40; i++ {
					go produce(jobs, i)
				}
				time.Sleep(time.Second)
			}
		}()
	default:
		fmt.Fprintf(os.Stderr, "loadleak: unknown -workload %q\n", *workload)
		os.Exit(2)
	}
	if *traffic > 0 {
		go func() {
			for {
				for i := 0; i < *traffic; i++ {
					go shortLived()
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		if n := requests.Add(1); leakEvery > 0 && n%leakEvery == 0 {
			go leakOnGlobal()
		}
		serveWork(w, r)
	})

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadleak:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, "loadleak:", err)
		os.Exit(1)
	}
}
