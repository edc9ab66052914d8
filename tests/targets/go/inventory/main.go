// inventory: the demo's Go service. It answers price lookups for the checkout service and
// serves net/http/pprof, so faultline can scrape its goroutines.
//
// With -leak (the demo's setting) every lookup starts an "audit" goroutine that waits on a
// channel nobody ever closes: one leaked goroutine per request, which faultline's leak
// detection flags from successive goroutine dumps.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"strconv"
	"time"
)

var leak = flag.Bool("leak", false, "leak one goroutine per price lookup")

// audits is never closed: every audit waits for it forever.
var audits = make(chan struct{})

func audit(item int) {
	<-audits // faultline-marker: leaked-wait
	log.Printf("audited item %d", item)
}

func price(w http.ResponseWriter, r *http.Request) {
	item, err := strconv.Atoi(r.URL.Query().Get("item"))
	if err != nil {
		http.Error(w, "item must be a number", http.StatusBadRequest)
		return
	}
	if *leak {
		go audit(item)
	}
	fmt.Fprintf(w, "%d\n", 1000+item*250)
}

func main() {
	listen := flag.String("listen", ":6060", "address to serve on")
	flag.Parse()
	http.HandleFunc("/price", price)
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	server := &http.Server{Addr: *listen, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("inventory: serving on %s (leak=%v)", *listen, *leak)
	log.Fatal(server.ListenAndServe())
}
