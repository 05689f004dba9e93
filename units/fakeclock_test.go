package units

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a test advances it. It is
// used on the loop goroutine only (the manager calls it there; advance runs
// there through the harness).
type fakeClock struct {
	now, boot time.Time
	timers    []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	fn      func()
	stopped bool
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, boot: now.Add(-time.Minute)}
}

func (c *fakeClock) Now() time.Time      { return c.now }
func (c *fakeClock) BootTime() time.Time { return c.boot }
func (c *fakeClock) AfterFunc(d time.Duration, fn func()) func() {
	t := &fakeTimer{at: c.now.Add(d), fn: fn}
	c.timers = append(c.timers, t)
	return func() { t.stopped = true }
}

// advance moves the clock by d, firing every timer that falls due, in
// order, each at its own time.
func (c *fakeClock) advance(h *harness, d time.Duration) {
	h.do(func() {
		target := c.now.Add(d)
		for {
			var due []*fakeTimer
			for _, t := range c.timers {
				if !t.stopped && !t.at.After(target) {
					due = append(due, t)
				}
			}
			if len(due) == 0 {
				break
			}
			sort.Slice(due, func(a, b int) bool { return due[a].at.Before(due[b].at) })
			t := due[0]
			t.stopped = true
			if t.at.After(c.now) {
				c.now = t.at
			}
			t.fn()
		}
		c.now = target
	})
}

func TestMonotonicTimerOnAFakeClock(t *testing.T) {
	clock := newFakeClock(time.Date(2030, 3, 1, 10, 0, 0, 0, time.UTC))
	h := newHarnessWith(t, map[string]string{
		"hourly.service": counter("hourly"),
		"hourly.timer":   "[timer]\non-active = \"1h\"\non-unit-active = \"30min\"\n",
	}, func(o *Options) { o.Clock = clock })
	h.start("hourly.timer")
	clock.advance(h, 59*time.Minute)
	time.Sleep(100 * time.Millisecond)
	if n := runs(h, "hourly"); n != 0 {
		t.Fatalf("ran %d times before on-active = 1h had passed", n)
	}
	clock.advance(h, 2*time.Minute)
	waitRuns(t, h, "hourly", 1, 30*time.Second)
	h.waitState("hourly.service", "inactive", 30*time.Second)
	// on-unit-active counts from when the unit last started (10:59 + ...).
	clock.advance(h, 28*time.Minute)
	time.Sleep(100 * time.Millisecond)
	if n := runs(h, "hourly"); n != 1 {
		t.Fatalf("ran %d times before on-unit-active = 30min had passed", n)
	}
	clock.advance(h, 3*time.Minute)
	waitRuns(t, h, "hourly", 2, 30*time.Second)
	// Fired at 11:00 (on-active) and at 11:30 (30 min after that start).
	want := time.Date(2030, 3, 1, 11, 30, 0, 0, time.UTC).UnixMicro()
	if got := h.prop("hourly.timer", "LastTriggerUSec"); got != fmt.Sprint(want) {
		t.Errorf("LastTriggerUSec %s, want %d (11:30)", got, want)
	}
}

func TestPersistentTimerOnAFakeClock(t *testing.T) {
	start := time.Date(2030, 3, 10, 9, 30, 0, 0, time.UTC)
	clock := newFakeClock(start)
	h := newHarnessWith(t, map[string]string{
		"backup.service": counter("backup"),
		"backup.timer":   "[timer]\non-calendar = \"*-*-* 02:00:00 UTC\"\npersistent = true\n",
	}, func(o *Options) { o.Clock = clock })
	// The last backup ran two days ago: this morning's 02:00 was missed.
	stamp := filepath.Join(h.dir, "state", "timers", "stamp-backup.timer")
	os.MkdirAll(filepath.Dir(stamp), 0o755)
	os.WriteFile(stamp, nil, 0o644)
	last := start.Add(-48 * time.Hour)
	os.Chtimes(stamp, last, last)
	h.start("backup.timer")
	waitRuns(t, h, "backup", 1, 30*time.Second)
	h.waitState("backup.service", "inactive", 30*time.Second)
	// Caught up once, not once per missed day; the stamp says when.
	if fi, _ := os.Stat(stamp); !fi.ModTime().Equal(start) {
		t.Errorf("stamp %v, want the catch-up time %v", fi.ModTime(), start)
	}
	// The next run is tomorrow at 02:00, not before.
	clock.advance(h, 16*time.Hour)
	time.Sleep(100 * time.Millisecond)
	if n := runs(h, "backup"); n != 1 {
		t.Fatalf("ran %d times before the next 02:00", n)
	}
	clock.advance(h, 30*time.Minute)
	waitRuns(t, h, "backup", 2, 30*time.Second)
	want := time.Date(2030, 3, 12, 2, 0, 0, 0, time.UTC).UnixMicro()
	if next := h.prop("backup.timer", "NextElapseUSecRealtime"); next != fmt.Sprint(want) {
		t.Errorf("next elapse %s, want %d (the day after at 02:00)", next, want)
	}
}
