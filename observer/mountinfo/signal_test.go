package mountinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inPrivateMountNS runs f on a thread of its own in a new mount namespace
// where nothing propagates in from the host (other tests and sessions
// mount too), and returns f's error. The thread stays in the namespace
// until the end of the test: its exit would end the namespace, which
// unmounts everything in it (a change of its table).
func inPrivateMountNS(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var work func()
	work = func() {
		// Never unlocked: the thread, in its own namespace, goes with
		// the goroutine.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Not the main thread: /proc/self is the main thread's, and
			// Go keeps the main thread when a goroutine locked to it
			// ends, so it would stay in the private namespace, and every
			// later test reading /proc/self/mountinfo (the watcher's)
			// would see that table and not one of its own mounts. While
			// this goroutine holds the main thread, another one gets
			// another thread.
			other := make(chan struct{})
			go func() { defer close(other); work() }()
			<-other
			runtime.UnlockOSThread()
			return
		}
		defer func() { <-release }()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- err
			return
		}
		done <- f()
	}
	go work()
	return <-done
}

// TestChangeSignalCoalescesAndStops: a mount, then a burst of mounts made
// while nobody waits, each give one wake-up; nothing wakes a waiter while
// the table stays as it is; Stop ends a blocked Wait.
func TestChangeSignalCoalescesAndStops(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	var sig *ChangeSignal
	err := inPrivateMountNS(t, func() error {
		var err error
		// thread-self: the namespace of this thread, not of the process.
		if sig, err = OpenChangeSignal("/proc/thread-self/mountinfo"); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
			return err
		}
		if changed, err := sig.Wait(); !changed || err != nil {
			t.Errorf("Wait after a mount: %v, %v; want true", changed, err)
		}
		for i := range 5 {
			sub := filepath.Join(dir, string(rune('a'+i)))
			if err := os.Mkdir(sub, 0o755); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
				return err
			}
		}
		if changed, err := sig.Wait(); !changed || err != nil {
			t.Errorf("Wait after a burst: %v, %v; want true", changed, err)
		}
		return nil
	})
	if err != nil {
		t.Skipf("private mount namespace: %v", err)
	}
	t.Cleanup(func() { sig.Close() })

	// The burst was one change: a further Wait blocks until Stop. Other
	// sessions' unmounts can still reach the namespace's copies of their
	// mounts: a wake-up counts as spurious only if the table is the same.
	waited := make(chan bool, 1)
	for attempt := 1; ; attempt++ {
		before := readTable(t, sig)
		go func() {
			changed, _ := sig.Wait()
			waited <- changed
		}()
		select {
		case changed := <-waited:
			if readTable(t, sig) == before {
				t.Fatalf("Wait returned %v with the table unchanged", changed)
			}
			if attempt == 5 {
				t.Skip("the mount table keeps changing under the test")
			}
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	sig.Stop()
	select {
	case changed := <-waited:
		if changed {
			t.Error("Wait reported a change after Stop")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not end a blocked Wait")
	}
	if changed, _ := sig.Wait(); changed {
		t.Error("Wait after Stop reported a change")
	}
}

// readTable reads the table through the signal's own descriptor (the
// test's goroutine is not in the namespace); reading does not re-arm the
// signal.
func readTable(t *testing.T, sig *ChangeSignal) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 64*1024)
	for off := int64(0); ; {
		n, err := unix.Pread(sig.fd, buf, off)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

func TestChangeSignalRefusesMissingFile(t *testing.T) {
	if _, err := OpenChangeSignal(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("OpenChangeSignal of a missing file succeeded")
	}
}
