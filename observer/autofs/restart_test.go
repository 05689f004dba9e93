package autofs

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestExpiryLoopComesBackAfterPanics: an expire loop that panics on its
// first two rounds is run again each time, with the idle timeout it had,
// and the idle mount still expires and mounts again on the next access.
func TestExpiryLoopComesBackAfterPanics(t *testing.T) {
	s := newServer(t, Options{IdleTimeout: time.Second}, serveTmpfs)
	var panics atomic.Int32
	hook := func() {
		if panics.Add(1) <= 2 {
			panic("expiry test panic")
		}
	}
	s.mnt.beforeExpire.Store(&hook)
	if _, err := access(t, "ls", s.where); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle mount to expire after the restarts", func() bool { return fsMagic(t, s.where) == SuperMagic })
	if n := panics.Load(); n < 3 {
		t.Errorf("the expire loop went round %d times: it did not come back after the panics", n)
	}
	if s.expired.Load() < 1 {
		t.Fatal("unmounted without an expire request")
	}
	st := s.mnt.expirer.Stats()
	if st.Restarts < 2 || !strings.Contains(st.LastError, "expiry test panic") {
		t.Errorf("expirer %+v: want 2 restarts and the panic as last error", st)
	}
	out, err := access(t, "ls", s.where)
	if err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("after expiry: ls = %q, %v", out, err)
	}
}
