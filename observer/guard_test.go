package observer

import (
	"strings"
	"testing"
)

func TestGuardKeepsAPanickingGoroutineFromEndingTheProcess(t *testing.T) {
	var logged string
	done := make(chan struct{})
	go func() {
		defer close(done)
		Guard("test reader", func(format string, args ...any) { logged = format }, func() { panic("boom") })
	}()
	<-done
	if !strings.Contains(logged, "stopped by a panic") {
		t.Errorf("the panic was not logged: %q", logged)
	}
	ran := false
	Guard("quiet", nil, func() { ran = true })
	if !ran {
		t.Error("Guard did not run fn")
	}
}
