// Command cgocrash dereferences a null pointer inside a C function called through cgo: Go
// prints `SIGSEGV: segmentation violation`, `PC=… m=… sigcode=… addr=0x0` and `signal
// arrived during cgo execution` (Go 1.27), or `fatal error: unexpected signal during runtime
// execution` with `[signal SIGSEGV …]` and the system stack (Go 1.19). Needs cgo and gcc.
package main

/*
#include <stddef.h>
static int deref(int *p) { return *p; }
static int crash(void) { return deref(NULL); }
*/
import "C"

import "fmt"

//go:noinline
func callC() int { return int(C.crash()) }

func main() {
	fmt.Println(callC())
}
