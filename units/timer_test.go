package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/api"
)

// counter is a oneshot that appends a line to DIR/NAME each time it runs.
func counter(name string) string {
	return "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"echo run >> @DIR@/" + name + "\"]\n"
}

func runs(h *harness, name string) int {
	data, _ := os.ReadFile(h.path(name))
	return strings.Count(string(data), "run")
}

func waitRuns(t *testing.T, h *harness, name string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if runs(h, name) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s ran %d times in %v, want %d\n%s", name, runs(h, name), within, n, h.logText())
}

func TestMonotonicTimerFiresAndRepeats(t *testing.T) {
	h := newHarness(t, map[string]string{
		"tick.service": counter("tick"),
		"tick.timer":   "[timer]\non-active = \"200ms\"\non-unit-active = \"300ms\"\n",
		"once.service": counter("once"),
		"once.timer":   "[timer]\non-active = \"200ms\"\n",
	})
	begin := time.Now()
	for _, name := range []string{"tick.timer", "once.timer"} {
		if res, why := h.start(name); res != api.ResultDone {
			t.Fatalf("%s: %s (%s)", name, res, why)
		}
	}
	waitRuns(t, h, "tick", 3, 30*time.Second)
	if took := time.Since(begin); took < 800*time.Millisecond {
		t.Errorf("three runs after %v: on-unit-active = 300ms was not honoured", took)
	}
	waitRuns(t, h, "once", 1, 30*time.Second)
	// Not fired before on-active: compared on the manager's own time
	// stamps, since a look at the counter right after the start would
	// see a run on a machine that took 200ms to get there.
	var activated, ran time.Time
	h.do(func() {
		activated = h.m.Unit("once.timer").behaviour.(*timer).activated
		ran = h.m.Unit("once.service").inactiveExit
	})
	if gap := ran.Sub(activated); gap < 200*time.Millisecond {
		t.Errorf("once.service started %v after once.timer did: before on-active = 200ms", gap)
	}
	// The run ends before the timer can be elapsed (it is "running" until
	// then); the pause gives a wrong second run the time to show.
	h.waitState("once.service", "inactive", 30*time.Second)
	time.Sleep(400 * time.Millisecond)
	if n := runs(h, "once"); n != 1 {
		t.Errorf("a one-shot timer ran its unit %d times", n)
	}
	// remain-after-elapse (the default) keeps the timer active, elapsed.
	if a, s := h.state("once.timer"); a != "active" || s != "elapsed" {
		t.Errorf("once.timer %s/%s, want active/elapsed", a, s)
	}
	if h.prop("once.timer", "LastTriggerUSec") == "0" {
		t.Error("LastTriggerUSec not recorded")
	}
}

func TestCalendarTimerAndListing(t *testing.T) {
	h := newHarness(t, map[string]string{
		"sec.service": counter("sec"),
		"sec.timer":   "[timer]\non-calendar = \"*:*:0/1\"\naccuracy = \"1ms\"\n",
		"bad.timer":   "[timer]\non-calendar = \"*-*-* 25:00\"\nunit = \"sec.service\"\n",
	})
	h.start("sec.timer")
	waitRuns(t, h, "sec", 2, 30*time.Second)
	if got := h.prop("sec.timer", "TimersCalendar"); got != "*-*-* *:*:*" {
		t.Errorf("normalized calendar %q", got)
	}
	var rows []api.UnitSummary
	h.do(func() { rows = h.m.List(api.ListArgs{Types: []string{"timer"}, All: true}) })
	found := false
	for _, r := range rows {
		if r.Name == "sec.timer" {
			found = true
			if r.Extra["activates"] != "sec.service" || r.Extra["next"] == "" || r.Extra["last"] == "" {
				t.Errorf("list-timers columns: %v", r.Extra)
			}
		}
	}
	if !found {
		t.Error("sec.timer not listed")
	}
	var load, lerr string
	h.do(func() { u := h.m.Unit("bad.timer"); load, lerr = u.LoadState, u.LoadError })
	if load != LoadBadSetting || !strings.Contains(lerr, "25:00") {
		t.Errorf("bad calendar: %s %q", load, lerr)
	}
}

func TestPersistentTimerCatchesUpOnce(t *testing.T) {
	h := newHarness(t, map[string]string{
		"late.service": counter("late"),
		"late.timer":   "[timer]\non-calendar = \"hourly\"\npersistent = true\n",
	})
	// The last run was two hours ago: an hourly elapse was missed.
	stamp := filepath.Join(h.dir, "state", "timers", "stamp-late.timer")
	os.MkdirAll(filepath.Dir(stamp), 0o755)
	os.WriteFile(stamp, nil, 0o644)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stamp, past, past)
	began := time.Now()
	h.start("late.timer")
	waitRuns(t, h, "late", 1, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	// A full hour passed meanwhile (the test ran at hh:59:59) is a due
	// elapse of its own, not a second catch-up.
	want := 1
	if hour := "2006-01-02 15"; time.Now().Format(hour) != began.Format(hour) {
		want = 2
	}
	if n := runs(h, "late"); n != 1 && n != want {
		t.Errorf("caught up %d times, want once", n)
	}
	if fi, err := os.Stat(stamp); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("stamp not refreshed: %v", err)
	}
}

func TestClockChangeTriggers(t *testing.T) {
	h := newHarness(t, map[string]string{
		"clk.service": counter("clk"),
		"clk.timer":   "[timer]\non-clock-change = true\non-calendar = \"yearly\"\n",
	})
	h.start("clk.timer")
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Skipf("cannot set the clock: %v", err)
	}
	waitRuns(t, h, "clk", 1, 30*time.Second)
}
