package mountinfo

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// TestEventsCarryTheTimeTheTableWasRead: a change read while the loop is
// busy is stamped with the time of the read, not of its late dispatch,
// so a guest can tell it from news of after its own calls (the mount
// units do).
func TestEventsCarryTheTimeTheTableWasRead(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	where := filepath.Join(t.TempDir(), "m")
	os.Mkdir(where, 0o755)
	w, got, loop := startWatcherWithLoop(t, Options{NoInitial: true, Under: filepath.Dir(where)})
	var mountedAt, busyUntil time.Duration
	done := make(chan error, 1)
	loop.Do(func() {
		before := loop.Now()
		if err := unix.Mount("vigiltest", where, "tmpfs", 0, "size=64k"); err != nil {
			done <- err
			return
		}
		mountedAt = before
		// Keep the loop busy until the watcher has read the change.
		for deadline := time.Now().Add(10 * time.Second); w.Stats().Changes == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		busyUntil = loop.Now()
		done <- nil
	})
	if err := <-done; err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	defer unix.Unmount(where, unix.MNT_DETACH)
	ev := waitFor(t, got, KindMount, where)
	if ev.Mono < mountedAt || ev.Mono >= busyUntil {
		t.Fatalf("event stamped %v; the mount call began at %v and the loop was busy until %v", ev.Mono, mountedAt, busyUntil)
	}
}

// startWatcherWithLoop is startWatcher that also gives the loop.
func startWatcherWithLoop(t *testing.T, opts Options) (*Watcher, chan *observer.Event, *observer.Loop) {
	t.Helper()
	loop := observer.New(observer.Options{})
	got := make(chan *observer.Event, 1024)
	if _, err := loop.Register(observer.Observer{Guest: "test", Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{SourceName}}}},
		Notify: func(ev *observer.Event) { got <- ev }}); err != nil {
		t.Fatal(err)
	}
	w, err := Watch(loop, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { w.Close(); cancel(); <-done })
	return w, got, loop
}
