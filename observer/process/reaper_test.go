package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Nothing in this package's tests may use os/exec: its Wait would race the
// reaper for exit statuses. Children are started with syscall.ForkExec.

const wait = 10 * time.Second

// exits runs a loop with a reaper and returns a channel of exit events.
func exits(t *testing.T) <-chan *observer.Event {
	t.Helper()
	l := observer.New(observer.Options{Logf: t.Logf})
	ch := make(chan *observer.Event, 1024)
	f, err := observer.ParseFilter("source=process kind=exit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Register(observer.Observer{Guest: "test", Name: "exits", Filter: f, Notify: func(ev *observer.Event) {
		select {
		case ch <- ev:
		default:
			t.Errorf("exit channel full")
		}
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, l)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { l.Run(ctx); close(stopped) }()
	t.Cleanup(func() {
		cancel()
		for _, done := range []<-chan struct{}{r.Done(), stopped} {
			select {
			case <-done:
			case <-time.After(wait):
				t.Errorf("reaper or loop did not stop")
			}
		}
	})
	return ch
}

func spawn(t *testing.T, argv ...string) int {
	t.Helper()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatalf("fork/exec %v: %v", argv, err)
	}
	return pid
}

// exitOf waits for the exit event of pid, skipping others.
func exitOf(t *testing.T, ch <-chan *observer.Event, pid int) *observer.Event {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-ch:
			if ev.Attrs["pid"] == strconv.Itoa(pid) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no exit event for pid %d", pid)
			return nil
		}
	}
}

func TestExitStatus(t *testing.T) {
	ch := exits(t)
	for _, code := range []int{0, 3, 255} {
		pid := spawn(t, "/bin/sh", "-c", "exit "+strconv.Itoa(code))
		ev := exitOf(t, ch, pid)
		if ev.Attrs["status"] != strconv.Itoa(code) || ev.Attrs["signal"] != "" {
			t.Errorf("exit %d: attrs %v", code, ev.Attrs)
		}
		ex, ok := ev.Payload.(Exit)
		if !ok {
			t.Fatalf("payload %T", ev.Payload)
		}
		if ex.PID != pid || ex.Code != code || !ex.Exited() || ex.Signal != 0 {
			t.Errorf("exit %d: payload %+v", code, ex)
		}
		if ex.String() != "status="+strconv.Itoa(code) {
			t.Errorf("String() = %q", ex.String())
		}
	}
}

func TestKilledBySignal(t *testing.T) {
	ch := exits(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.Signal(36) /* SIGRTMIN+2, which has no name */} {
		pid := spawn(t, "/bin/sleep", "30")
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		ev := exitOf(t, ch, pid)
		ex := ev.Payload.(Exit)
		if ex.Signal != sig || ex.Exited() || ex.Code != 0 {
			t.Errorf("signal %d: payload %+v", sig, ex)
		}
		want := unix.SignalName(sig)
		if want == "" {
			want = strconv.Itoa(int(sig)) // real-time signals have no name
		}
		if ev.Attrs["signal"] != want || ev.Attrs["status"] != "" {
			t.Errorf("signal %d: attrs %v, want signal=%s", sig, ev.Attrs, want)
		}
		if ex.String() != "signal="+want {
			t.Errorf("String() = %q", ex.String())
		}
	}
}

// TestOrphanIsReaped: a double-forked grandchild is re-parented to us (the
// subreaper) and its exit arrives as an event too.
func TestOrphanIsReaped(t *testing.T) {
	ch := exits(t)
	pidFile := filepath.Join(t.TempDir(), "orphan.pid")
	pid := spawn(t, "/bin/sh", "-c", "(sleep 0.1 & echo $! >"+pidFile+")")
	exitOf(t, ch, pid)
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", data, err)
	}
	ev := exitOf(t, ch, orphan)
	if ev.Attrs["status"] != "0" {
		t.Errorf("orphan attrs %v", ev.Attrs)
	}
	// It is gone, not a zombie: the reaper collected it.
	if err := syscall.Kill(orphan, 0); err != syscall.ESRCH {
		t.Errorf("kill(%d, 0) = %v, want ESRCH", orphan, err)
	}
}

// TestManyChildren: exits racing each other are all collected, none lost
// to coalesced SIGCHLDs.
func TestManyChildren(t *testing.T) {
	ch := exits(t)
	const n = 50
	want := map[string]bool{}
	for i := range n {
		want[strconv.Itoa(spawn(t, "/bin/sh", "-c", "exit "+strconv.Itoa(i%7)))] = true
	}
	timeout := time.After(wait)
	for len(want) > 0 {
		select {
		case ev := <-ch:
			delete(want, ev.Attrs["pid"])
		case <-timeout:
			t.Fatalf("%d exits never arrived", len(want))
		}
	}
}

func TestExitString(t *testing.T) {
	cases := map[string]Exit{
		"status=0":                     {Code: 0},
		"status=1":                     {Code: 1},
		"signal=SIGSEGV (core dumped)": {Signal: syscall.SIGSEGV, CoreDumped: true},
		"signal=SIGKILL":               {Signal: syscall.SIGKILL},
		"signal=" + strconv.Itoa(40):   {Signal: 40},
	}
	for want, ex := range cases {
		if got := ex.String(); got != want {
			t.Errorf("%+v: %q, want %q", ex, got, want)
		}
	}
}
