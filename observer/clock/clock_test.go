package clock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

func run(t *testing.T, opts Options) (*Watcher, chan string) {
	t.Helper()
	loop := observer.New(observer.Options{})
	got := make(chan string, 16)
	if _, err := loop.Register(observer.Observer{Guest: "test", Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"clock"}}}},
		Notify: func(ev *observer.Event) { got <- ev.Kind }}); err != nil {
		t.Fatal(err)
	}
	w, err := Start(loop, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { w.Close(); cancel(); <-done })
	return w, got
}

func TestSettingTheClockIsNoticed(t *testing.T) {
	_, got := run(t, Options{LocaltimePath: "-"})
	// Setting the clock to what it already says (a step of microseconds)
	// is a clock change for the kernel, without disturbing anything else.
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Fatal(err)
	}
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Skipf("cannot set the clock here: %v", err)
	}
	select {
	case kind := <-got:
		if kind != "changed" {
			t.Errorf("event %q, want changed", kind)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no clock event after clock_settime")
	}
	// The timerfd is re-armed: a second change is seen too.
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the second clock change was missed")
	}
}

func TestTimezoneChangeIsNoticed(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "localtime")
	os.Symlink("/usr/share/zoneinfo/UTC", zone)
	w, got := run(t, Options{LocaltimePath: zone})
	if err := w.ZoneWatchErr(); err != nil {
		t.Fatalf("no zone watch: %v", err)
	}
	// "changed" events are not this test's: other tests on the machine
	// set the clock (units' on-clock-change timer test, the test above in
	// another run), and the kernel tells every process.
	nextZoneEvent := func(within time.Duration) (string, bool) {
		timeout := time.After(within)
		for {
			select {
			case kind := <-got:
				if kind != "changed" {
					return kind, true
				}
			case <-timeout:
				return "", false
			}
		}
	}
	// As timedatectl does: a new link renamed over the old one.
	tmp := filepath.Join(dir, ".localtime.new")
	os.Symlink("/usr/share/zoneinfo/Europe/Berlin", tmp)
	if err := os.Rename(tmp, zone); err != nil {
		t.Fatal(err)
	}
	if kind, ok := nextZoneEvent(5 * time.Second); !ok {
		t.Fatal("no timezone event")
	} else if kind != "timezone" {
		t.Errorf("event %q, want timezone", kind)
	}
	// Other files in the directory are not zone changes.
	os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o644)
	if kind, ok := nextZoneEvent(300 * time.Millisecond); ok {
		t.Errorf("unexpected %q event for an unrelated file", kind)
	}
}
