package observer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkDispatch100Observers measures events per second through the whole
// core: a producer goroutine posts to a source, the running loop matches
// every event against 100 registered observers and calls the ones that match.
func BenchmarkDispatch100Observers(b *testing.B) {
	l := New(Options{})
	// A bounded source, and a producer that yields when it is full: the
	// kernel paces real producers, and an unbounded queue growing by
	// millions would measure append, not dispatch.
	src := l.NewSource("bench", 4096)
	done := make(chan struct{})
	var seen int
	// 90 observers that never match (different kinds), 9 that match by
	// attribute glob and numeric comparison, and one counting every event.
	for i := range 90 {
		f, err := ParseFilter(fmt.Sprintf("source=bench kind=other%d SUBSYSTEM=block", i))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Register(Observer{Guest: "bench", Name: fmt.Sprint(i), Filter: f, Notify: func(*Event) {}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 9 {
		f, err := ParseFilter(fmt.Sprintf("kind=add|change DEVNAME=vd* SEQNUM>=%d", i))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Register(Observer{Guest: "bench", Name: fmt.Sprint("m", i), Filter: f, Notify: func(*Event) {}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Register(Observer{Guest: "bench", Name: "count", Notify: func(ev *Event) {
		if ev.Source != "bench" {
			return
		}
		seen++
		if seen == b.N {
			close(done)
		}
	}}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	attrs := map[string]string{"SUBSYSTEM": "block", "DEVNAME": "vda", "SEQNUM": "100", "ACTION": "add"}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for !src.Post(Event{Kind: "add", Attrs: attrs}) {
			runtime.Gosched()
		}
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
