package observer

import (
	"context"
	"testing"
	"time"
)

// A source that comes and goes 200 times leaves the loop as it was: the
// count in Sources stays put, events queued at removal are dropped and
// counted (held ones released with their Default, exactly once), and a
// Post after removal is dropped too.
func TestRemoveSourceLeavesNothing(t *testing.T) {
	l := New(Options{})
	before := len(l.Sources())
	released := make(chan Verdict, 400)
	for i := 0; i < 200; i++ {
		s := l.NewSource("come-and-go", 0)
		if n := len(l.Sources()); n != before+1 {
			t.Fatalf("round %d: %d sources with one added, want %d", i, n, before+1)
		}
		// Queued, never dispatched: the loop is not running.
		s.Post(Event{Kind: "plain"})
		s.Post(Event{Kind: "held", Hold: &Hold{Default: Deny, Release: func(v Verdict) { released <- v }}})
		l.RemoveSource(s)
		l.RemoveSource(s) // twice is harmless
		if s.Post(Event{Kind: "late", Hold: &Hold{Default: Allow, Release: func(v Verdict) { released <- v }}}) {
			t.Fatalf("round %d: Post after RemoveSource accepted", i)
		}
		if info := s.info(); info.Dropped != 3 || info.Queued != 0 {
			t.Fatalf("round %d: removed source %+v, want 3 dropped, none queued", i, info)
		}
	}
	if n := len(l.Sources()); n != before {
		t.Fatalf("after 200 add/remove rounds: %d sources, want %d", n, before)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deny, allow := 0, 0
	for deny+allow < 400 {
		select {
		case v := <-released:
			if v == Deny {
				deny++
			} else {
				allow++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 400 holds released (%d deny, %d allow)", deny+allow, deny, allow)
		}
	}
	if deny != 200 || allow != 200 {
		t.Errorf("released %d deny, %d allow; want each hold's Default, 200 of each", deny, allow)
	}
	select {
	case v := <-released:
		t.Errorf("a hold was released twice (%v)", v)
	case <-time.After(50 * time.Millisecond):
	}
}

// Removing one source while the loop runs does not disturb another.
func TestRemoveSourceWhileRunning(t *testing.T) {
	c := newCollector()
	var keep *Source
	rl := newLoop(t, Options{}, func(l *Loop) {
		keep = l.NewSource("keep", 0)
		if _, err := l.Register(Observer{Guest: "test", Name: "all", Filter: mustFilter(t, "kind=tick"), Notify: c.notify}); err != nil {
			t.Fatal(err)
		}
	})
	for i := 0; i < 200; i++ {
		s := rl.NewSource("brief", 0)
		s.Post(Event{Kind: "other"})
		keep.Post(Event{Kind: "tick"})
		rl.RemoveSource(s)
	}
	c.waitFor(t, 200)
	for _, info := range rl.Sources() {
		if info.Name == "brief" {
			t.Fatalf("a removed source is still listed: %+v", info)
		}
	}
}
