package exec

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/fanotify"
)

// heldExecEnv tells the copy of this test binary that
// TestHeldExecSpawnsSurviveGC runs where its private tmpfs is, and
// heldExecStubEnv=1 that it starts the programs through the exec stub
// rather than the trampoline. With heldExecDirectEnv=1 instead, the copy
// starts the programs directly (a vfork whose exec is held): that is the
// deadlock this test guards against, kept for showing it by hand (it hangs,
// and the outer test fails on its watchdog).
const (
	heldExecEnv       = "VIGIL_EXEC_HELDEXEC"
	heldExecStubEnv   = "VIGIL_EXEC_HELDEXEC_STUB"
	heldExecDirectEnv = "VIGIL_EXEC_HELDEXEC_DIRECT"
	heldExecSpawns    = 200
)

// TestHeldExecSpawnsSurviveGC starts 200 processes through the trampoline,
// and 200 through the exec stub (whose memfd the source counts as our own
// image, as init does), while a fanotify group of the same process holds every exec, open and
// read on the mount both our executable and the program live on, Inline
// answering Vigil's own children, and another goroutine runs the garbage
// collector in a loop. Started directly, a held exec in the vfork child
// deadlocks the runtime (the collector waits for the forking thread, the
// reader that would answer never runs). The checks run in a copy of this
// binary on a private tmpfs, so that our executable is under the mark and
// a hang can be caught from outside: the watchdog here sends SIGQUIT (the
// runtime dumps every goroutine) and fails.
func TestHeldExecSpawnsSurviveGC(t *testing.T) {
	if dir := os.Getenv(heldExecEnv); dir != "" {
		heldExecChecks(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (tmpfs mount, fanotify permission events)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := copyProgram(t, self, filepath.Join(dir, "exec.test"))
	copyProgram(t, "/bin/true", filepath.Join(dir, "true"))

	for _, via := range []string{"trampoline", "stub"} {
		t.Run(via, func(t *testing.T) {
			if _, err := stubForTests(); via == "stub" && err != nil {
				t.Skipf("no exec stub: %v", err)
			}
			limit := 4 * time.Minute
			if dl, ok := t.Deadline(); ok && time.Until(dl)-30*time.Second < limit {
				limit = time.Until(dl) - 30*time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run", "^TestHeldExecSpawnsSurviveGC$", "-test.v")
			cmd.Env = append(os.Environ(), heldExecEnv+"="+dir)
			if via == "stub" {
				cmd.Env = append(cmd.Env, heldExecStubEnv+"=1")
			}
			// On the watchdog's deadline: a goroutine dump, then the kill.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
			cmd.WaitDelay = 15 * time.Second
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("spawning under held execs did not finish within %v (deadlock?); the copy's output and goroutines:\n%s", limit, out)
			}
			t.Logf("the copy on the marked tmpfs:\n%s", out)
			if err != nil || !strings.Contains(string(out), "--- PASS: TestHeldExecSpawnsSurviveGC") {
				t.Fatalf("the copy failed: %v", err)
			}
		})
	}
}

func copyProgram(t *testing.T, from, to string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return to
}

// heldExecChecks runs in the copy, whose executable is dir/exec.test.
func heldExecChecks(t *testing.T, dir string) {
	if self, _ := os.Readlink("/proc/self/exe"); filepath.Dir(self) != dir {
		t.Fatalf("running from %q, want a copy in %s", self, dir)
	}
	loop := observer.New(observer.Options{Logf: t.Logf})
	var inline atomic.Int64
	src, err := fanotify.New(fanotify.Options{
		Loop: loop, Logf: t.Logf,
		Inline: func(ev *observer.Event) observer.Verdict {
			inline.Add(1)
			return observer.Allow
		},
	})
	if err != nil {
		t.Skipf("fanotify: %v", err)
	}
	defer src.Close()
	f, err := observer.ParseFilter("source=fanotify")
	if err != nil {
		t.Fatal(err)
	}
	var obs observer.ObserverID
	obs, err = loop.Register(observer.Observer{
		Guest: "test", Name: "allow-all", Filter: f, Decides: true, HoldTimeout: time.Second,
		Notify: func(ev *observer.Event) {
			if ev.Hold != nil {
				loop.Answer(ev.Hold.ID, obs, observer.Allow)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); loop.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	trampoline := os.Getenv(heldExecDirectEnv) == ""
	var stub *Stub
	if os.Getenv(heldExecStubEnv) != "" {
		// The stub is made, and counted as our own image, before any
		// mark exists, as init does.
		if stub, err = NewStub(); err != nil {
			t.Fatal(err)
		}
		defer stub.Close()
		if err := src.AddOwnImage(stub.File()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.MarkTree(dir, fanotify.Open|fanotify.Access|fanotify.Exec); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	collected := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				collected <- n
				return
			default:
				runtime.GC()
				n++
			}
		}
	}()
	start := time.Now()
	for i := range heldExecSpawns {
		spec := Spec{Path: filepath.Join(dir, "true"), Argv: []string{"true", strconv.Itoa(i)}, Env: []string{"PATH=/usr/bin:/bin"}, Trampoline: trampoline, Stub: stub}
		st, err := Start(&spec)
		if err != nil {
			t.Fatalf("spawn %d: %v", i, err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(st.PID, &ws, 0, nil); err != nil {
			t.Fatalf("wait for spawn %d: %v", i, err)
		}
		if !ws.Exited() || ws.ExitStatus() != 0 {
			t.Fatalf("spawn %d: %v", i, ws)
		}
		if st.Trampolined != (trampoline && stub == nil) || st.Stubbed != (stub != nil) {
			t.Fatalf("spawn %d: trampolined %v, stubbed %v; want the %s", i, st.Trampolined, st.Stubbed,
				map[bool]string{true: "stub", false: "trampoline"}[stub != nil])
		}
	}
	took := time.Since(start)
	close(stop)
	gcs := <-collected
	stats := src.Stats()
	t.Logf("%d spawns in %v, %d garbage collections meanwhile; fanotify: %+v", heldExecSpawns, took.Round(time.Millisecond), gcs, stats)
	// Each start's exec of the program was held and answered inline (the
	// stub, running its memfd, counts as our child still running our
	// image); the trampoline's exec of our executable, and the vfork
	// child's exec of the stub, never made an event.
	if got := inline.Load(); got < heldExecSpawns {
		t.Errorf("Inline answered %d events (%d posted to the loop), want at least one per spawn (%d): the execs were not held (the test proves nothing), or the child exec'ing the program was not recognised as ours", got, stats.Posted, heldExecSpawns)
	}
}

// TestStubExecNeverReported: once AddOwnImage has the stub, no mark makes
// an event of the vfork child's exec of it, not even a mark on the memfd's
// own inode, also after the flush that removing the last mark does.
func TestStubExecNeverReported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (fanotify permission events)")
	}
	stub := testStub(t)
	loop := observer.New(observer.Options{Logf: t.Logf})
	src, err := fanotify.New(fanotify.Options{Loop: loop, Logf: t.Logf, Deadline: 2 * time.Second})
	if err != nil {
		t.Skipf("fanotify: %v", err)
	}
	defer src.Close()
	if err := src.AddOwnImage(stub.File()); err != nil {
		t.Fatal(err)
	}
	memfd := "/proc/self/fd/" + strconv.Itoa(int(stub.File().Fd()))
	for _, when := range []string{"first mark", "mark after the flush"} {
		id, err := src.Mark(memfd, fanotify.Open|fanotify.Exec)
		if err != nil {
			t.Fatalf("%s: mark the stub's memfd: %v", when, err)
		}
		if n := src.Stats().Marks; n != 1 {
			t.Fatalf("%s: %d marks, want 1", when, n)
		}
		for range 5 {
			st, err := Start(&Spec{Path: "/bin/true", Argv: []string{"true"}, Trampoline: true, Stub: stub})
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if !st.Stubbed {
				t.Fatalf("%s: not started through the stub", when)
			}
			wait(t, st.PID)
		}
		src.Unmark(id)
	}
	if stats := src.Stats(); stats.Read != 0 {
		t.Errorf("the stub's memfd made %d events (%+v), want none: the ignore mark does not cover it", stats.Read, stats)
	}
}
