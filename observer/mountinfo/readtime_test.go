package mountinfo

import (
	"context"
	"fmt"
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
//
// The table followed is that of a private mount namespace. In the host's,
// any mount on the machine (other test packages, this package's previous
// run unmounting) starts a read, and a mount landing in the middle of
// that read is found by it and stamped with its start, before the mount
// call began; so would one in the watcher's own first read.
func TestEventsCarryTheTimeTheTableWasRead(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	where := filepath.Join(t.TempDir(), "m")
	os.Mkdir(where, 0o755)
	inNS, tid := privateNSThread(t)
	w, got, loop := startWatcherWithLoop(t, Options{NoInitial: true, Under: filepath.Dir(where),
		Path: fmt.Sprintf("/proc/%d/task/%d/mountinfo", os.Getpid(), tid)})
	// The watcher reads the table once more as it starts (Watcher.run):
	// a mount landing in that read would be stamped with its start too.
	for deadline := time.Now().Add(20 * time.Second); w.Stats().Reads < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not start reading: %+v", w.Stats())
		}
	}
	var mountedAt, busyUntil time.Duration
	done := make(chan error, 1)
	loop.Do(func() {
		before := loop.Now()
		var err error
		inNS(func() { err = unix.Mount("vigiltest", where, "tmpfs", 0, "size=64k") })
		if err != nil {
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
	ev := waitFor(t, got, KindMount, where)
	if ev.Mono < mountedAt || ev.Mono >= busyUntil {
		t.Fatalf("event stamped %v; the mount call began at %v and the loop was busy until %v", ev.Mono, mountedAt, busyUntil)
	}
}

// privateNSThread keeps a thread in a private mount namespace (see
// inPrivateMountNS) until the end of the test, and returns a function
// that runs fn on that thread, and the thread's ID.
func privateNSThread(t *testing.T) (func(fn func()), int) {
	t.Helper()
	calls := make(chan func())
	ready := make(chan int, 1)
	failed := make(chan error, 1)
	go func() {
		failed <- inPrivateMountNS(t, func() error {
			ready <- unix.Gettid()
			for fn := range calls {
				fn()
			}
			return nil
		})
	}()
	var tid int
	select {
	case tid = <-ready:
	case err := <-failed:
		t.Skipf("private mount namespace: %v", err)
	}
	t.Cleanup(func() { close(calls) })
	return func(fn func()) {
		ran := make(chan struct{})
		calls <- func() { defer close(ran); fn() }
		<-ran
	}, tid
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
