package observer

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

func TestKeepRestartsAPanickingSourceUntilItWorks(t *testing.T) {
	seen := make(chan *Event, 1)
	rl := newLoop(t, Options{}, func(l *Loop) {
		if _, err := l.Register(Observer{Guest: "t", Name: "alive", Filter: mustFilter(t, "source=flaky"), Notify: func(ev *Event) { seen <- ev }}); err != nil {
			t.Fatal(err)
		}
	})
	src := rl.NewSource("flaky", 0)
	const panics = 3
	var runs atomic.Int32
	stop := make(chan struct{})
	// No run counts as healthy here: a panicking run (its stack logged,
	// under -race on a loaded machine) can outlast the 4ms MaxDelay, and
	// would reset the backoff this test checks (TestKeepBackoffResetsAfterAHealthyRun).
	k := src.Keep("flaky reader", KeepOptions{Logf: rl.log.logf, MinDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond, HealthyAfter: time.Hour}, func() error {
		if n := runs.Add(1); n <= panics {
			panic(fmt.Sprintf("run %d", n))
		}
		src.Post(Event{Kind: "alive"})
		<-stop
		return nil
	})
	select {
	case ev := <-seen:
		if ev.Kind != "alive" {
			t.Fatalf("got %s", ev)
		}
	case <-time.After(wait):
		t.Fatalf("the source never worked after its panics (runs %d, stats %+v)", runs.Load(), k.Stats())
	}
	st := k.Stats()
	if st.Restarts != panics || st.State != KeeperRunning || !strings.Contains(st.LastError, "run 3") {
		t.Errorf("stats %+v: want %d restarts, running, last error of run 3", st, panics)
	}
	info := sourceInfo(t, rl.Loop, "flaky")
	if info.Restarts != panics || info.Failed || !strings.Contains(info.LastError, "flaky reader: panic: run 3") {
		t.Errorf("source info %+v", info)
	}
	if !rl.log.contains("flaky reader failed: panic: run 1; restarting in 1ms") || !rl.log.contains("restarting in 4ms") {
		t.Errorf("restarts were not logged with their backoff: %q", rl.log.lines)
	}
	close(stop)
	select {
	case <-k.Done():
	case <-time.After(wait):
		t.Fatal("a run that returned nil was not the end")
	}
	if st := k.Stats(); st.State != KeeperStopped || st.Restarts != panics {
		t.Errorf("after a clean return: %+v", st)
	}
	// A new keeper on the same source retires the stopped one from the
	// list; its history stays in the source's totals.
	next := src.Keep("second reader", KeepOptions{}, func() error { return nil })
	<-next.Done()
	src.Keep("third reader", KeepOptions{}, func() error { return nil })
	src.mu.Lock()
	kept := len(src.keepers)
	src.mu.Unlock()
	info = sourceInfo(t, rl.Loop, "flaky")
	if kept != 1 || info.Restarts != panics || !strings.Contains(info.LastError, "run 3") {
		t.Errorf("after retiring: %d keepers listed, info %+v", kept, info)
	}
}

func TestKeepGivesUpLoudlyOnASourceThatCannotRestart(t *testing.T) {
	rl := newLoop(t, Options{}, nil)
	src := rl.NewSource("broken", 0)
	var runs atomic.Int32
	k := src.Keep("broken reader", KeepOptions{Logf: rl.log.logf, MinDelay: time.Millisecond}, func() error {
		if runs.Add(1) == 1 {
			return errors.New("read: EIO")
		}
		return fmt.Errorf("reopen /dev/thing: %w", ErrCannotRestart)
	})
	select {
	case <-k.Done():
	case <-time.After(wait):
		t.Fatal("Keep did not give up")
	}
	if runs.Load() != 2 {
		t.Errorf("ran %d times, want 2 (one restart after the plain error, none after the permanent one)", runs.Load())
	}
	info := sourceInfo(t, rl.Loop, "broken")
	if !info.Failed || info.Restarts != 1 || !strings.Contains(info.LastError, "cannot be restarted") {
		t.Errorf("source info %+v: want failed, 1 restart, the permanent error", info)
	}
	if !rl.log.contains("broken reader failed and cannot be restarted: reopen /dev/thing") {
		t.Errorf("giving up was not logged: %q", rl.log.lines)
	}
}

func TestKeepStopEndsTheBackoff(t *testing.T) {
	failed := make(chan struct{}, 1)
	k := Keep("stubborn", KeepOptions{Logf: func(string, ...any) {}, MinDelay: time.Hour}, func() error {
		failed <- struct{}{}
		return errors.New("nope")
	})
	<-failed
	k.Stop()
	select {
	case <-k.Done():
	case <-time.After(wait):
		t.Fatal("Stop did not cut the hour-long backoff short")
	}
	if st := k.Stats(); st.State != KeeperStopped || st.Restarts != 0 {
		t.Errorf("after Stop: %+v", st)
	}
}

func TestKeepSurvivesAPanickingLogger(t *testing.T) {
	var runs atomic.Int32
	k := Keep("noisy", KeepOptions{Logf: func(string, ...any) { panic("logger down") }, MinDelay: time.Millisecond}, func() error {
		if runs.Add(1) < 3 {
			panic("reader down")
		}
		return nil
	})
	select {
	case <-k.Done():
	case <-time.After(wait):
		t.Fatal("keeper did not finish")
	}
	if runs.Load() != 3 || k.Stats().Restarts != 2 {
		t.Errorf("runs %d, stats %+v: want 3 runs, 2 restarts", runs.Load(), k.Stats())
	}
}

// TestKeepBackoffResetsAfterAHealthyRun: a run that lasted longer than
// HealthyAfter starts the backoff again at MinDelay; quick failures double
// it (the default HealthyAfter is MaxDelay).
func TestKeepBackoffResetsAfterAHealthyRun(t *testing.T) {
	for _, c := range []struct {
		name    string
		healthy time.Duration
		sleep   time.Duration
		want    []string
	}{
		{"long runs", time.Millisecond, 20 * time.Millisecond, []string{"1ms", "1ms", "1ms"}},
		{"quick runs", time.Hour, 0, []string{"1ms", "2ms", "4ms"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := &logBuffer{}
			var runs atomic.Int32
			k := Keep("reader", KeepOptions{Logf: log.logf, MinDelay: time.Millisecond, MaxDelay: 8 * time.Millisecond, HealthyAfter: c.healthy}, func() error {
				if runs.Add(1) > int32(len(c.want)) {
					return nil
				}
				time.Sleep(c.sleep)
				return errors.New("failed")
			})
			select {
			case <-k.Done():
			case <-time.After(wait):
				t.Fatal("the keeper did not stop after a clean return")
			}
			var got []string
			log.mu.Lock()
			for _, l := range log.lines {
				if _, delay, ok := strings.Cut(l, "restarting in "); ok {
					got = append(got, delay)
				}
			}
			log.mu.Unlock()
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("restart delays %q, want %q", got, c.want)
			}
		})
	}
}
