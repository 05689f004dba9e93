package guests

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vigil/observer"
)

// TestAcceptLoopComesBackAfterPanics: an accept loop that panics twice is
// run again each time; guests connected before go on, and new guests are
// still welcomed. The restarts and the panic show in AcceptorStats.
func TestAcceptLoopComesBackAfterPanics(t *testing.T) {
	e := newEnv(t)
	var panics atomic.Int32
	hook := func() {
		if panics.Add(1) <= 2 {
			panic("accept test panic")
		}
	}
	e.srv.beforeAccept.Store(&hook)
	// The loop is blocked in accept: this guest is served, then the next
	// turn of the loop panics, twice.
	first := e.dial("first")
	second := e.dial("second")
	if n := panics.Load(); n < 3 {
		t.Fatalf("the hook ran %d times: the loop did not go round after the panics", n)
	}
	st := e.srv.AcceptorStats()
	if st.Restarts < 2 || st.State != observer.KeeperRunning || !strings.Contains(st.LastError, "accept test panic") {
		t.Errorf("acceptor stats %+v: want 2 restarts, running, the panic as last error", st)
	}
	// Both guests work.
	for _, c := range []*client{first, second} {
		c.observe(`"filter":"source=test"`)
	}
	// Close still stops the kept loop.
	closed := make(chan error, 1)
	go func() { closed <- e.srv.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if st := e.srv.AcceptorStats(); st.State != observer.KeeperStopped {
		t.Errorf("after Close the acceptor is %s", st.State)
	}
}
