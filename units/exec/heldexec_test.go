package exec

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
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
// deadlock this test guards against (TestHeldExecWatchdogSeesDirectDeadlock
// provokes it on purpose). heldExecProgressEnv names a file outside the
// marked tmpfs where the copy counts its finished spawns and garbage
// collections, for the watchdog.
const (
	heldExecEnv         = "VIGIL_EXEC_HELDEXEC"
	heldExecStubEnv     = "VIGIL_EXEC_HELDEXEC_STUB"
	heldExecDirectEnv   = "VIGIL_EXEC_HELDEXEC_DIRECT"
	heldExecProgressEnv = "VIGIL_EXEC_HELDEXEC_PROGRESS"
	heldExecSpawns      = 200
)

// heldExecStall is how long the watchdog lets the copy go without
// finishing a spawn before it calls it a deadlock. A spawn that is merely
// slow ends within trampolineDeadline (the status pipe's read gives up
// then and Start fails), so several times that is a stall no load
// explains. A slow run is not a hang: under -race on 2 loaded cores the
// 200 trampoline spawns take 1-2 min at load 7-12 (5 times a build
// without -race), enough at load 20-28 to overrun the fixed 4-minute
// watchdog this test used to have, whose dump then read as a deadlock
// (see docs/benchmarks.md, "the trampoline under -race").
const heldExecStall = 6 * trampolineDeadline

// TestHeldExecSpawnsSurviveGC starts 200 processes through the trampoline,
// and 200 through the exec stub (whose memfd the source counts as our own
// image, as init does), while a fanotify group of the same process holds every exec, open and
// read on the mount both our executable and the program live on, Inline
// answering Vigil's own children, and another goroutine runs the garbage
// collector in a loop. Started directly, a held exec in the vfork child
// deadlocks the runtime (the collector waits for the forking thread, the
// reader that would answer never runs). The checks run in a copy of this
// binary on a private tmpfs, so that our executable is under the mark and
// a hang can be caught from outside. The watchdog here tells a deadlock
// (no spawn finished for heldExecStall) from a slow run (spawns still
// finishing when the test's time is up): both fail, with a goroutine dump
// (SIGQUIT) and a message saying which it was.
func TestHeldExecSpawnsSurviveGC(t *testing.T) {
	if dir := os.Getenv(heldExecEnv); dir != "" {
		heldExecChecks(t, dir)
		return
	}
	dir, exe := heldExecSetup(t)
	vias := []string{"trampoline", "stub"}
	for i, via := range vias {
		t.Run(via, func(t *testing.T) {
			if _, err := stubForTests(); via == "stub" && err != nil {
				t.Skipf("no exec stub: %v", err)
			}
			var env []string
			if via == "stub" {
				env = append(env, heldExecStubEnv+"=1")
			}
			r := runHeldExecCopy(t, exe, dir, env, heldExecStall, shareOfDeadline(t, len(vias)-i))
			switch {
			case r.stalled:
				t.Fatalf("deadlock: no spawn finished for %v (%d of %d done; %s); the copy's output and goroutines:\n%s",
					heldExecStall, r.spawns, heldExecSpawns, r.collectorState(), r.out)
			case r.slow:
				t.Fatalf("not a deadlock, too slow: %d of %d spawns done when the test's time was up, the last %v before (%d garbage collections); the copy's output:\n%s",
					r.spawns, heldExecSpawns, r.sinceSpawn.Round(time.Second), r.gcs, r.out)
			}
			t.Logf("the copy on the marked tmpfs:\n%s", r.out)
			if r.err != nil || !strings.Contains(r.out, "--- PASS: TestHeldExecSpawnsSurviveGC") {
				t.Fatalf("the copy failed: %v", r.err)
			}
		})
	}
}

// TestHeldExecWatchdogSeesDirectDeadlock provokes the deadlock the
// trampoline and the stub avoid, to show that the watchdog of
// TestHeldExecSpawnsSurviveGC recognises one: the copy starts the programs
// directly, so the vfork child's exec is held by the copy's own reader; a
// collection starting meanwhile waits for the forking thread forever. The
// watchdog must see the spawns stop and the collections stop with them,
// and the dump must show the collector stuck on the forking goroutine.
func TestHeldExecWatchdogSeesDirectDeadlock(t *testing.T) {
	if testing.Short() {
		t.Skip("provokes a deadlock and waits it out")
	}
	dir, exe := heldExecSetup(t)
	// Direct spawns take milliseconds; a quarter of the usual stall limit
	// without one is a deadlock at any load.
	stall := heldExecStall / 4
	r := runHeldExecCopy(t, exe, dir, []string{heldExecDirectEnv + "=1"}, stall, shareOfDeadline(t, 1))
	if !r.stalled {
		if r.err == nil && strings.Contains(r.out, "--- PASS: TestHeldExecSpawnsSurviveGC") {
			t.Skipf("%d direct spawns under held execs happened not to deadlock this time", heldExecSpawns)
		}
		t.Fatalf("the copy neither deadlocked nor passed (slow %v, exit %v):\n%s", r.slow, r.err, r.out)
	}
	if !r.counted {
		t.Fatalf("the watchdog never read the copy's counts: it cannot tell a stall from a slow run:\n%s", r.out)
	}
	t.Logf("stalled after %d spawns; %s", r.spawns, r.collectorState())
	if !r.worldStopped {
		t.Errorf("the spawns stopped but the collections went on (%d): the watchdog would call this deadlock the wrong kind", r.gcs)
	}
	if !collectorStuckOnVfork(r.out) {
		t.Errorf("the goroutine dump shows no collector stopping the world or waiting to scan a goroutine:\n%s", r.out)
	}
}

// collectorStuckOnVfork tells whether a goroutine dump shows the collector
// waiting for the vforking goroutine, which it can neither stop nor scan
// (its thread keeps its P and blocks signals until the child execs). The
// wait takes one of two forms, depending on where the cycle was: a
// goroutine "[stopping the world]" (starting a cycle or ending its mark
// phase), or, during the mark phase, a mark worker spinning in
// runtime.suspendG to scan that goroutine's stack; that worker keeps the
// other P, so the fanotify reader stays runnable and never runs.
func collectorStuckOnVfork(dump string) bool {
	return strings.Contains(dump, "[stopping the world]") || strings.Contains(dump, "runtime.suspendG(")
}

// heldExecSetup mounts a private tmpfs and copies this test binary and
// /bin/true onto it.
func heldExecSetup(t *testing.T) (dir, exe string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (tmpfs mount, fanotify permission events)")
	}
	dir = t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe = copyProgram(t, self, filepath.Join(dir, "exec.test"))
	copyProgram(t, "/bin/true", filepath.Join(dir, "true"))
	return dir, exe
}

// shareOfDeadline is this run's part of the time left before the test
// binary's deadline (keeping 30 s for the dumps and the rest), when runs
// more copies are still to go; 0 (no limit) without a deadline.
func shareOfDeadline(t *testing.T, runs int) time.Duration {
	dl, ok := t.Deadline()
	if !ok {
		return 0
	}
	return max(time.Until(dl)-30*time.Second, time.Second) / time.Duration(runs)
}

// heldExecRun is how a copy's run ended.
type heldExecRun struct {
	out          string
	err          error         // the copy's exit
	counted      bool          // the copy's counts were read at least once
	spawns, gcs  int           // as last counted by the copy
	stalled      bool          // no spawn finished for the stall limit: SIGQUIT
	worldStopped bool          // stalled, and no collection finished either
	slow         bool          // still finishing spawns at the limit: SIGQUIT
	sinceSpawn   time.Duration // from the last finished spawn to the end
}

func (r *heldExecRun) collectorState() string {
	if r.worldStopped {
		return fmt.Sprintf("no garbage collection finished either, the world is stopped (%d collections before)", r.gcs)
	}
	return fmt.Sprintf("garbage collections went on (%d): the runtime is alive, the spawner is stuck", r.gcs)
}

// runHeldExecCopy runs heldExecChecks in the copy exe and watches its
// progress counts once a second. It stops the copy with SIGQUIT (the
// runtime dumps every goroutine) when no spawn has finished for stall, or
// when limit (if not 0) has passed while spawns still finish.
func runHeldExecCopy(t *testing.T, exe, dir string, env []string, stall, limit time.Duration) heldExecRun {
	t.Helper()
	scratch := t.TempDir() // not on the marked tmpfs: nothing here is held
	progressPath := filepath.Join(scratch, "progress")
	output, err := os.Create(filepath.Join(scratch, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer output.Close()
	cmd := exec.Command(exe, "-test.run", "^TestHeldExecSpawnsSurviveGC$", "-test.v")
	cmd.Env = append(os.Environ(), heldExecEnv+"="+dir, heldExecProgressEnv+"="+progressPath, "GOTRACEBACK=system")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = output, output
	// A process group of its own, killed at the end: a vfork child stuck
	// in a held exec keeps the copy's fanotify group open (its copy of the
	// descriptor table), so the kernel never answers it once the copy is
	// gone, and it would wait forever.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var r heldExecRun
	exitedYet := false
	start := time.Now()
	lastSpawn, lastGC := start, start
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for !r.stalled && !r.slow {
		select {
		case r.err = <-exited:
			exitedYet = true
		case <-tick.C:
		}
		now := time.Now()
		if spawns, gcs, ok := readHeldExecProgress(progressPath); ok {
			r.counted = true
			if spawns != r.spawns {
				r.spawns, lastSpawn = spawns, now
			}
			if gcs != r.gcs {
				r.gcs, lastGC = gcs, now
			}
		}
		r.sinceSpawn = now.Sub(lastSpawn)
		if exitedYet {
			break
		}
		if r.sinceSpawn > stall {
			r.stalled = true
			// The collector loops without pause: half the stall without a
			// finished collection means it cannot finish one.
			r.worldStopped = now.Sub(lastGC) > stall/2
		} else if limit > 0 && now.Sub(start) > limit {
			r.slow = true
		}
	}
	if !exitedYet {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case r.err = <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			r.err = <-exited
		}
	}
	out, _ := os.ReadFile(output.Name())
	r.out = string(out)
	return r
}

// readHeldExecProgress reads the counts heldExecProgress writes: two
// fixed-width fields. A read halfway through a write may give a wrong
// count or none (ok false); a stalled copy writes nothing, so neither
// can hide a stall.
func readHeldExecProgress(path string) (spawns, gcs int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	spawns, err1 := strconv.Atoi(f[0])
	gcs, err2 := strconv.Atoi(f[1])
	return spawns, gcs, err1 == nil && err2 == nil
}

// heldExecProgress is the copy's side: the spawn loop and the collector
// loop each overwrite their own fixed-width field, so that either one
// stopping shows.
type heldExecProgress struct{ f *os.File }

const heldExecProgressField = 11 // "%10d\n"

func openHeldExecProgress(path string) (*heldExecProgress, error) {
	if path == "" {
		return &heldExecProgress{}, nil // run by hand: nobody watches
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	p := &heldExecProgress{f: f}
	p.set(0, 0)
	p.set(1, 0)
	return p, nil
}

func (p *heldExecProgress) set(field, n int) {
	if p.f != nil {
		p.f.WriteAt(fmt.Appendf(nil, "%10d\n", n), int64(field*heldExecProgressField))
	}
}

func (p *heldExecProgress) close() {
	if p.f != nil {
		p.f.Close()
	}
}

// longestStopTheWorldWait is the upper bound of the largest bucket of
// the time collections waited for every goroutine to stop: a thread in a
// raw system call (the vfork of syscall.ForkExec) makes that wait as long
// as the call.
func longestStopTheWorldWait() time.Duration {
	s := []metrics.Sample{{Name: "/sched/pauses/stopping/gc:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := s[0].Value.Float64Histogram()
	for i := len(h.Counts) - 1; i >= 0; i-- {
		if h.Counts[i] == 0 {
			continue
		}
		upper := h.Buckets[i+1]
		if math.IsInf(upper, 1) {
			upper = h.Buckets[i]
		}
		return time.Duration(upper * float64(time.Second))
	}
	return 0
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

	progress, err := openHeldExecProgress(os.Getenv(heldExecProgressEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer progress.close()
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
				progress.set(1, n)
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
		progress.set(0, i+1)
	}
	took := time.Since(start)
	close(stop)
	gcs := <-collected
	stats := src.Stats()
	t.Logf("%d spawns in %v, %d garbage collections meanwhile, the longest wait of one for the world to stop <= %v; fanotify: %+v",
		heldExecSpawns, took.Round(time.Millisecond), gcs, longestStopTheWorldWait(), stats)
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

// TestCollectorStuckOnVforkForms: both dumps of a real deadlock are
// recognised, the dump of a healthy run cut off at its limit is not.
func TestCollectorStuckOnVforkForms(t *testing.T) {
	stw := "goroutine 25 gp=0x1 m=nil [stopping the world]:\nruntime.stopTheWorldWithSema(...)\n"
	scan := "goroutine 0 gp=0x1 m=0 mp=0x2 [idle]:\nruntime.osyield()\nruntime.suspendG(0x858e09023c0)\nruntime.markroot.func1()\n"
	healthy := "goroutine 25 gp=0x1 m=nil [wait for GC cycle]:\nruntime.GC()\ngoroutine 19 gp=0x2 m=nil [IO wait]:\nvigil/units/exec.startTrampoline(...)\n"
	for _, c := range []struct {
		name, dump string
		want       bool
	}{{"stopping the world", stw, true}, {"mark worker in suspendG", scan, true}, {"healthy", healthy, false}} {
		if got := collectorStuckOnVfork(c.dump); got != c.want {
			t.Errorf("%s: collectorStuckOnVfork = %v, want %v", c.name, got, c.want)
		}
	}
}
