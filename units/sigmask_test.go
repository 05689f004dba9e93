package units

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignalsReachOtherThreadsWhileOneHangs: a thread that forked a child
// and then sleeps uninterruptibly in a file system that never answers
// (a FUSE mount without a server) must not take the child's SIGCHLD once
// keepSignalsOffThisThread has run on it; without it the kernel delivers
// the signal to that very thread, where it waits as long as the hang, and
// the reaper never hears of the exit (TestCleanTimeout's hang at -cpu 1).
func TestSignalsReachOtherThreadsWhileOneHangs(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	fuse, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fuse)
	if err := unix.Mount("vigil-test", mnt, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fuse)
		t.Skipf("cannot mount a FUSE file system here: %v", err)
	}
	// Closing the last descriptor of the connection aborts it: the hung
	// open fails and the thread comes back.
	var abort sync.Once
	release := func() {
		abort.Do(func() {
			unix.Close(fuse)
			unix.Unmount(mnt, unix.MNT_DETACH)
		})
	}
	defer release()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)

	type forked struct {
		pid int
		err error
	}
	started := make(chan forked, 1)
	hangEnded := make(chan struct{})
	go func() {
		defer close(hangEnded)
		// This thread forks the child (so the kernel sends the child's
		// SIGCHLD to it), then hangs.
		runtime.LockOSThread()
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "0.2"}, nil)
		if err == nil {
			err = keepSignalsOffThisThread()
		}
		started <- forked{pid, err}
		if err != nil {
			return
		}
		unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0) // blocks until the connection is aborted
	}()
	f := <-started
	if f.err != nil {
		t.Fatal(f.err)
	}
	defer func() {
		release()
		<-hangEnded
		var ws unix.WaitStatus
		unix.Wait4(f.pid, &ws, 0, nil)
	}()
	select {
	case <-sigs:
	case <-time.After(20 * time.Second):
		t.Fatalf("no SIGCHLD for child %d while the thread that forked it hangs in FUSE", f.pid)
	}
}

// TestCallWithSignalsOffBlocksOnlyItsThread: the call runs on a thread
// that blocks every signal (SigBlk all ones in /proc/thread-self/status),
// and the caller's thread is left as it was.
func TestCallWithSignalsOffBlocksOnlyItsThread(t *testing.T) {
	sigBlk := func() string {
		data, err := os.ReadFile("/proc/thread-self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "SigBlk:"); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatal("no SigBlk in /proc/thread-self/status")
		return ""
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := sigBlk()
	var inside string
	if err := callWithSignalsOff(func() error { inside = sigBlk(); return nil }); err != nil {
		t.Fatal(err)
	}
	// Every signal but SIGKILL and SIGSTOP, which cannot be blocked.
	const all = "fffffffffffbfeff"
	if inside != all {
		t.Errorf("SigBlk inside the call = %s, want %s (every signal blocked)", inside, all)
	}
	if after := sigBlk(); after != before || after == all {
		t.Errorf("the caller's SigBlk went from %s to %s", before, after)
	}
	want := errors.New("the call's own error")
	if err := callWithSignalsOff(func() error { return want }); err != want {
		t.Errorf("callWithSignalsOff returned %v, want the call's error", err)
	}
}
