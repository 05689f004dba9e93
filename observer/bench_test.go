package observer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchLoop registers 100 observers: 90 that never match (other kinds), 9
// that match by alternatives, glob and numeric comparison, and one that
// counts every bench event and calls onEvent.
func benchLoop(b *testing.B, onEvent func(n int)) (*Loop, *Source) {
	l := New(Options{})
	// A bounded source: the kernel paces real producers, and an unbounded
	// queue growing by millions would measure append, not dispatch.
	src := l.NewSource("bench", 4096)
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
	seen := 0
	if _, err := l.Register(Observer{Guest: "bench", Name: "count", Filter: Filter{Terms: []Term{{Key: "source", Op: OpEq, Values: []string{"bench"}}}},
		Notify: func(*Event) { seen++; onEvent(seen) }}); err != nil {
		b.Fatal(err)
	}
	return l, src
}

var benchAttrs = map[string]string{"SUBSYSTEM": "block", "DEVNAME": "vda", "SEQNUM": "100", "ACTION": "add"}

// BenchmarkDispatch100Observers measures events per second through the whole
// core: a producer goroutine posts to a source and the running loop matches
// every event against 100 observers, calling the 10 that match. It includes
// the hand-over between goroutines, so it is sensitive to other load on the
// machine; BenchmarkDispatch100ObserversOneGoroutine is not.
func BenchmarkDispatch100Observers(b *testing.B) {
	done := make(chan struct{})
	l, src := benchLoop(b, func(n int) {
		if n == b.N {
			close(done)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for !src.Post(Event{Kind: "add", Attrs: benchAttrs}) {
			runtime.Gosched() // full: let the loop catch up
		}
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkDispatch100ObserversOneGoroutine is the same work with the loop
// driven by hand on the benchmark's goroutine: the cost of Post, take and
// dispatch alone.
func BenchmarkDispatch100ObserversOneGoroutine(b *testing.B) {
	l, src := benchLoop(b, func(int) {})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		src.Post(Event{Kind: "add", Attrs: benchAttrs})
		if i%64 == 63 {
			l.turn()
		}
	}
	l.turn()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

func BenchmarkFilterMatch(b *testing.B) {
	f, err := ParseFilter("source=uevent kind=add|change SUBSYSTEM=block DEVNAME=vd* SEQNUM>=100 DEVTYPE!=partition")
	if err != nil {
		b.Fatal(err)
	}
	ev := blockAdd()
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match(ev) {
			b.Fatal("no match")
		}
	}
}
