package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestRace is the commonest CI use of the race detector: `go test -race`.
func TestRace(t *testing.T) {
	race()
}

// TestChildQuit starts this binary as a child that hangs, kills it with SIGQUIT, logs its
// traceback (printed at once under `go test -v`), then hangs itself until `go test -timeout`
// dumps the test binary's goroutines.
func TestChildQuit(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FORMS_CHILD=1")
	var out lines
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	err := cmd.Wait()
	t.Logf("child: %v\n%s", err, out.b)
	hang()
}

type lines struct{ b []byte }

func (l *lines) Write(p []byte) (int, error) { l.b = append(l.b, p...); return len(p), nil }

func TestMain(m *testing.M) {
	if os.Getenv("FORMS_CHILD") == "1" {
		go hang()
		hang()
	}
	os.Exit(m.Run())
}
