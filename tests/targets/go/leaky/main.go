// Command leaky is the leak-detection evaluation corpus: one workload per -workload, each with
// a known ground truth, serving net/http/pprof on 127.0.0.1 so that `faultline leaks --scrape`
// can sample it. Every workload also runs background traffic (short-lived request goroutines
// in serveRequest) so that no series is perfectly clean.
//
// Workloads (ground truth in brackets; rates are per second of wall time):
//
//	steady-leak   one goroutine per second stays blocked in leakOrder            [leaks: leakOrder]
//	slow-leak     one goroutine every 5 s stays blocked in leakSlowly            [leaks: leakSlowly]
//	burst-drain   500 goroutines at 5 s, all gone by 20 s (burstWorker)          [no leak]
//	batch         every 5 s, 200 batchWorkers that all finish within a second    [no leak]
//	pool-cap      poolWorkers added 5 per second up to 50, then kept             [no leak]
//	constant      300 goroutines in handleConstant, each replaced when it ends   [no leak]
//	late-leak     nothing for -quiet (default 30 s), then one per second in leakLate [leaks: leakLate]
//	two-leaks     one per second in leakCache, one per 2 s in leakSession         [leaks: both]
//	hidden-leak   200 goroutines in runWorker via startPool (stable), and one per second
//	              in runWorker via leakyRetry (the same top frame)                 [leaks: leakyRetry path]
//	noisy         background traffic only, at a higher, more variable rate       [no leak]
//
// Only the standard library is used; go.mod says go 1.19 so Debian's Go 1.19 and a current Go
// both build it.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync"
	"time"
)

var forever = make(chan struct{}) // never closed: what leaked goroutines wait on

//go:noinline
func leakOrder() { <-forever }

//go:noinline
func leakSlowly() { <-forever }

//go:noinline
func leakLate() { <-forever }

//go:noinline
func leakCache() { <-forever }

//go:noinline
func leakSession() { <-forever }

//go:noinline
func burstWorker(d time.Duration) { time.Sleep(d) }

//go:noinline
func batchWorker(wg *sync.WaitGroup, d time.Duration) {
	defer wg.Done()
	time.Sleep(d)
}

//go:noinline
func poolWorker(jobs chan int) {
	for range jobs {
	}
}

//go:noinline
func handleConstant(d time.Duration) { time.Sleep(d) }

//go:noinline
func runWorker(wait chan struct{}) { <-wait }

//go:noinline
func startPool(wait chan struct{}) { runWorker(wait) }

//go:noinline
func leakyRetry() { runWorker(forever) }

//go:noinline
func serveRequest(d time.Duration) { time.Sleep(d) }

// traffic starts `perTick` (±50%) short-lived requests every 100 ms, each living up to `life`.
func traffic(rng *rand.Rand, mu *sync.Mutex, perTick int, life time.Duration) {
	for {
		mu.Lock()
		n := perTick/2 + rng.Intn(perTick+1)
		lives := make([]time.Duration, n)
		for i := range lives {
			lives[i] = time.Duration(rng.Int63n(int64(life)))
		}
		mu.Unlock()
		for _, d := range lives {
			go serveRequest(d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// every runs f every period, forever, starting after `after`.
func every(after, period time.Duration, f func()) {
	go func() {
		time.Sleep(after)
		for {
			f()
			time.Sleep(period)
		}
	}()
}

func main() {
	workload := flag.String("workload", "", "which workload to run (see the package comment)")
	quiet := flag.Duration("quiet", 30*time.Second, "late-leak: how long before the leak starts")
	seed := flag.Int64("seed", 1, "seed of the background traffic")
	flag.Parse()

	rng := rand.New(rand.NewSource(*seed))
	var rngMu sync.Mutex
	perTick, life := 10, 300*time.Millisecond

	switch *workload {
	case "steady-leak":
		every(0, time.Second, func() { go leakOrder() })
	case "slow-leak":
		every(0, 5*time.Second, func() { go leakSlowly() })
	case "burst-drain":
		go func() {
			time.Sleep(5 * time.Second)
			for i := 0; i < 500; i++ {
				go burstWorker(time.Duration(1+i%15) * time.Second)
			}
		}()
	case "batch":
		every(0, 5*time.Second, func() {
			var wg sync.WaitGroup
			for i := 0; i < 200; i++ {
				wg.Add(1)
				go batchWorker(&wg, time.Duration(100+i*4)*time.Millisecond)
			}
			wg.Wait()
		})
	case "pool-cap":
		jobs := make(chan int)
		started := 0
		every(0, time.Second, func() {
			for i := 0; i < 5 && started < 50; i++ {
				started++
				go poolWorker(jobs)
			}
		})
	case "constant":
		for i := 0; i < 300; i++ {
			go func(i int) {
				for {
					handleConstant(time.Duration(200+(i*37)%800) * time.Millisecond)
				}
			}(i)
		}
	case "late-leak":
		every(*quiet, time.Second, func() { go leakLate() })
	case "two-leaks":
		every(0, time.Second, func() { go leakCache() })
		every(0, 2*time.Second, func() { go leakSession() })
	case "hidden-leak":
		pool := make(chan struct{})
		for i := 0; i < 200; i++ {
			go startPool(pool)
		}
		every(0, time.Second, func() { go leakyRetry() })
	case "noisy":
		perTick, life = 40, 900*time.Millisecond
	default:
		fmt.Fprintf(os.Stderr, "leaky: unknown -workload %q\n", *workload)
		os.Exit(2)
	}
	go traffic(rng, &rngMu, perTick, life)

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaky:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, "leaky:", err)
		os.Exit(1)
	}
}
