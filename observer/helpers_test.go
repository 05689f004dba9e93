package observer

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// wait bounds every wait in these tests; a failure never hangs the run.
const wait = 10 * time.Second

// logBuffer collects the loop's complaints for assertions.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, fmt.Sprintf(format, args...))
}

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if bytes.Contains([]byte(l), []byte(s)) {
			return true
		}
	}
	return false
}

// runningLoop is a Loop whose Run goroutine the test started.
type runningLoop struct {
	*Loop
	log       *logBuffer
	goroutine uint64 // the goroutine Run runs on
}

// goroutineID reads the current goroutine's number from its stack header:
// the only way to show that guest code runs on the loop goroutine.
func goroutineID() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	buf = buf[:bytes.IndexByte(buf, ' ')]
	id, err := strconv.ParseUint(string(buf), 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

// newLoop makes a loop with a log buffer; setup runs before Run, where
// loop-goroutine-only calls are allowed. The loop stops at cleanup.
func newLoop(t testing.TB, opts Options, setup func(l *Loop)) *runningLoop {
	t.Helper()
	log := &logBuffer{}
	opts.Logf = log.logf
	l := New(opts)
	if setup != nil {
		setup(l)
	}
	return startLoop(t, l, log)
}

func startLoop(t testing.TB, l *Loop, log *logBuffer) *runningLoop {
	t.Helper()
	rl := &runningLoop{Loop: l, log: log}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		rl.goroutine = goroutineID()
		close(started)
		stopped <- l.Run(ctx)
	}()
	<-started
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-stopped:
			if err != context.Canceled {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return rl
}

// on runs fn on the loop goroutine and waits for it.
func (rl *runningLoop) on(t testing.TB, fn func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := rl.Call(ctx, fn); err != nil {
		t.Fatalf("call on loop: %v", err)
	}
}

// eventually polls cond on the loop goroutine until it holds.
func (rl *runningLoop) eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var ok bool
		rl.on(t, func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// collector gathers events that reach an observer's Notify.
type collector struct {
	mu     sync.Mutex
	events []Event
	ch     chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) notify(ev *Event) {
	c.mu.Lock()
	c.events = append(c.events, *ev)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// waitFor blocks until at least n events arrived. It counts on each wake
// and copies once at the end: copying every time made the wait quadratic
// (12000 events in TestDispatchOrderPerSource), and under -race on a
// loaded machine the copies starved the loop past the deadline.
func (c *collector) waitFor(t testing.TB, n int) []Event {
	t.Helper()
	timeout := time.After(wait)
	for {
		got := c.count()
		if got >= n {
			return c.snapshot()
		}
		select {
		case <-c.ch:
		case <-timeout:
			t.Fatalf("got %d events, want %d", got, n)
		}
	}
}

// holdRecorder is a Hold's Release that fails the test when called twice.
type holdRecorder struct {
	t        testing.TB
	mu       sync.Mutex
	verdicts []Verdict
	at       time.Time
	done     chan Verdict
}

func newHold(t testing.TB, def Verdict, deadline time.Duration) (*Hold, *holdRecorder) {
	rec := &holdRecorder{t: t, done: make(chan Verdict, 1)}
	return &Hold{Release: rec.release, Default: def, Deadline: deadline}, rec
}

func (r *holdRecorder) release(v Verdict) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verdicts = append(r.verdicts, v)
	if len(r.verdicts) > 1 {
		r.t.Errorf("hold released %d times (%v)", len(r.verdicts), r.verdicts)
		return
	}
	r.at = time.Now()
	r.done <- v
}

func (r *holdRecorder) released() (Verdict, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.verdicts) == 0 {
		return 0, false
	}
	return r.verdicts[0], true
}

// wait blocks until the hold is released and returns the verdict.
func (r *holdRecorder) wait(t testing.TB) Verdict {
	t.Helper()
	select {
	case v := <-r.done:
		return v
	case <-time.After(wait):
		t.Fatalf("hold was never released")
		return 0
	}
}

func mustFilter(t testing.TB, s string) Filter {
	t.Helper()
	f, err := ParseFilter(s)
	if err != nil {
		t.Fatalf("ParseFilter(%q): %v", s, err)
	}
	return f
}
