package process

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vigil/observer"
)

// TestReaperComesBackAfterPanics: a reaper whose goroutine panics twice is
// run again each time, reaps every child that exited meanwhile, and shows
// its restarts and last error in the loop's source statistics.
func TestReaperComesBackAfterPanics(t *testing.T) {
	l := observer.New(observer.Options{Logf: t.Logf})
	ch := make(chan *observer.Event, 64)
	f, err := observer.ParseFilter("source=process kind=exit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Register(observer.Observer{Guest: "test", Name: "exits", Filter: f, Notify: func(ev *observer.Event) { ch <- ev }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := Start(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	var panics atomic.Int32
	hook := func() {
		if panics.Add(1) <= 2 {
			panic("reaper test panic")
		}
	}
	r.beforeReap.Store(&hook)
	go l.Run(ctx)
	// The first child's SIGCHLD meets the panicking reaper: its exit must
	// still arrive, from a restarted one.
	first := spawn(t, "/bin/true")
	exitOf(t, ch, first)
	second := spawn(t, "/bin/sh", "-c", "exit 7")
	if ev := exitOf(t, ch, second); ev.Attrs["status"] != "7" {
		t.Errorf("second child: %v", ev.Attrs)
	}
	var info observer.SourceInfo
	for _, s := range l.Sources() {
		if s.Name == "process" {
			info = s
		}
	}
	if info.Restarts < 2 || info.Failed || !strings.Contains(info.LastError, "reaper test panic") {
		t.Errorf("source info %+v: want at least 2 restarts and the panic as last error", info)
	}
	cancel()
	select {
	case <-r.Done():
	case <-time.After(wait):
		t.Fatal("reaper did not stop with its context")
	}
}
