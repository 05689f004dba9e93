package notify

import (
	"testing"
	"time"
)

func BenchmarkParseMessage(b *testing.B) {
	text := []byte("READY=1\nSTATUS=Serving 3 clients\nMAINPID=4242\nWATCHDOG=1")
	b.ReportAllocs()
	for b.Loop() {
		m := ParseMessage(text)
		if !m.Ready {
			b.Fatal("not ready")
		}
	}
}

// BenchmarkDatagramToEvent measures one WATCHDOG=1 ping from a client's
// sendmsg to the observer callback.
func BenchmarkDatagramToEvent(b *testing.B) {
	h := start(b, "", Options{}, true)
	c := h.dial(b)
	msg := []byte("WATCHDOG=1")
	b.ReportAllocs()
	for b.Loop() {
		if err := c.send(msg, nil); err != nil {
			b.Fatal(err)
		}
		select {
		case <-h.events:
		case <-time.After(wait):
			b.Fatal("no event")
		}
	}
}
