package units

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/api"
	"vigil/units/exec"
)

func TestMain(m *testing.M) {
	if exec.IsTrampoline(os.Args[0]) {
		exec.TrampolineMain()
		return
	}
	os.Exit(m.Run())
}

// harness runs a real manager, with a real reaper, on units written to a
// temporary directory.
type harness struct {
	t      testing.TB
	dir    string
	units  string
	loop   *observer.Loop
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	logs []string
}

func newHarness(t *testing.T, files map[string]string) *harness {
	t.Helper()
	return newHarnessWith(t, files, nil)
}

// newHarnessWith lets a test adjust the manager's options.
func newHarnessWith(t *testing.T, files map[string]string, adjust func(*Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, units: filepath.Join(dir, "units")}
	os.MkdirAll(h.units, 0o755)
	h.write(files)
	inotifyBefore := inotifyInstances(t)
	h.loop = observer.New(observer.Options{Logf: h.logf})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	reaper, err := process.Start(ctx, h.loop)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		UnitPaths:  []string{h.units},
		RuntimeDir: filepath.Join(dir, "run"),
		StateDir:   filepath.Join(dir, "state"),
		Logf:       h.logf,
	}
	if adjust != nil {
		adjust(&opts)
	}
	m, err := New(h.loop, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	done := make(chan struct{})
	go func() { h.loop.Run(ctx); close(done) }()
	t.Cleanup(func() {
		// Stop everything the test started so no process outlives it.
		h.do(func() {
			for _, u := range h.m.Units() {
				if !u.active.IsInactiveOrFailed() {
					h.m.Enqueue(u.Name, api.JobStop, api.ModeReplace)
				}
			}
		})
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			busy := false
			h.do(func() { busy = len(h.m.jobs) > 0 })
			if !busy {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		// The next test's own children must not be reaped by this one.
		<-reaper.Done()
		h.m.Close()
		// inotify instances are counted per user, 128 by default, for
		// every process of the machine: a test that leaks them makes
		// others fail, here or in another package's test binary.
		if after := inotifyInstances(t); after > inotifyBefore {
			t.Errorf("the manager left %d inotify instances open after Close", after-inotifyBefore)
		}
	})
	return h
}

// inotifyInstances counts this process's open inotify descriptors.
func inotifyInstances(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

func (h *harness) logf(format string, args ...any) {
	h.mu.Lock()
	h.logs = append(h.logs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *harness) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.logs, "\n")
}

func (h *harness) write(files map[string]string) {
	for name, content := range files {
		p := filepath.Join(h.units, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		content = strings.ReplaceAll(content, "@DIR@", h.dir)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// do runs fn on the loop and waits.
func (h *harness) do(fn func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.loop.Call(ctx, fn); err != nil {
		h.t.Fatalf("loop call: %v", err)
	}
}

// job enqueues a job and waits for its result.
func (h *harness) job(name, typ, mode string) (string, string) {
	h.t.Helper()
	type outcome struct{ result, reason string }
	ch := make(chan outcome, 1)
	var err error
	h.do(func() {
		var j *Job
		j, err = h.m.Enqueue(name, typ, mode)
		if err != nil {
			return
		}
		if j.State == "done" {
			ch <- outcome{j.Result, j.Reason}
			return
		}
		j.OnDone(func(j *Job) { ch <- outcome{j.Result, j.Reason} })
	})
	if err != nil {
		return "error", err.Error()
	}
	select {
	case o := <-ch:
		return o.result, o.reason
	case <-time.After(30 * time.Second):
		h.t.Fatalf("job %s/%s did not finish", name, typ)
	}
	return "", ""
}

func (h *harness) start(name string) (string, string) { return h.job(name, api.JobStart, "") }
func (h *harness) stop(name string) (string, string)  { return h.job(name, api.JobStop, "") }

func (h *harness) state(name string) (string, string) {
	var a, s string
	h.do(func() {
		if u := h.m.Unit(name); u != nil {
			a, s = string(u.active), u.sub
		}
	})
	return a, s
}

func (h *harness) prop(name, key string) string {
	var v string
	h.do(func() {
		props, _ := h.m.Show(name, []string{key})
		if len(props) > 0 {
			v = props[0].Value
		}
	})
	return v
}

// waitState polls until the unit reaches active state want.
func (h *harness) waitState(name, want string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a, s := h.state(name)
		if a == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: state %s (%s), want %s\nlog:\n%s", name, a, s, want, h.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) path(p string) string { return filepath.Join(h.dir, p) }

func readFile(t testing.TB, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	sid, state, ok := procSession(pid)
	_ = sid
	return ok && state != 'Z'
}

func killPID(pid int) error { return syscallKill(pid) }

// newBenchHarness is a harness for benchmarks: 1,000 oneshots and a target.
func newBenchHarness(b *testing.B) *harness {
	dir := b.TempDir()
	h := &harness{t: b, dir: dir, units: filepath.Join(dir, "units")}
	writeOneshots(b, h.units, 1000)
	h.loop = observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if _, err := process.Start(ctx, h.loop); err != nil {
		b.Fatal(err)
	}
	m, err := New(h.loop, Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"), Logf: func(string, ...any) {}})
	if err != nil {
		b.Fatal(err)
	}
	h.m = m
	h.done = make(chan struct{})
	go func() { h.loop.Run(ctx); close(h.done) }()
	return h
}

func (h *harness) close() {
	h.cancel()
	<-h.done
}
