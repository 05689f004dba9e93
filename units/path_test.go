package units

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/fanotify"
	"vigil/observer/process"
	"vigil/units/api"
)

// remain is a oneshot that stays active and appends "run" to DIR/NAME.
func remain(name string) string {
	return "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/sh\", \"-c\", \"echo run >> @DIR@/" + name + "\"]\n"
}

func mustStart(t *testing.T, h *harness, name string) {
	t.Helper()
	if res, why := h.start(name); res != api.ResultDone {
		t.Fatalf("start %s: %s (%s)\n%s", name, res, why, h.logText())
	}
}

func wantSub(t *testing.T, h *harness, name, active, sub string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a, s := h.state(name)
		if a == active && s == sub {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s/%s, want %s/%s\n%s", name, a, s, active, sub, h.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPathExistsThroughMissingParents(t *testing.T) {
	h := newHarness(t, map[string]string{
		"flag.path":    "[path]\npath-exists = \"@DIR@/a/b/c/flag\"\n",
		"flag.service": remain("flag"),
	})
	mustStart(t, h, "flag.path")
	wantSub(t, h, "flag.path", "active", "waiting", 30*time.Second)
	// The components appear one by one; the watch moves down with them.
	for _, dir := range []string{"a", "a/b", "a/b/c"} {
		if err := os.Mkdir(h.path(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if n := runs(h, "flag"); n != 0 {
			t.Fatalf("triggered after creating %s", dir)
		}
	}
	os.WriteFile(h.path("a/b/c/flag"), nil, 0o644)
	waitRuns(t, h, "flag", 1, 30*time.Second)
	wantSub(t, h, "flag.path", "active", "running", 30*time.Second)
	st := h.status("flag.path")
	if len(st.Triggers) != 1 || st.Triggers[0] != "flag.service" {
		t.Errorf("Triggers = %v", st.Triggers)
	}
	if by := h.status("flag.service").TriggeredBy; len(by) != 1 || by[0] != "flag.path" {
		t.Errorf("TriggeredBy = %v", by)
	}
	var before []string
	h.do(func() { before = h.m.Unit("flag.path").Deps(Before) })
	if !contains(before, "paths.target") || !contains(before, "flag.service") {
		t.Errorf("flag.path Before = %v, want paths.target and flag.service", before)
	}
	// Stopping the service re-checks: the flag still exists, so systemd
	// (and we) start it again.
	h.stop("flag.service")
	waitRuns(t, h, "flag", 2, 30*time.Second)
}

func TestPathChangedAndModified(t *testing.T) {
	h := newHarness(t, map[string]string{
		"changed.path":        "[path]\npath-changed = \"@DIR@/watched/c\"\nunit = \"changed-run.service\"\n",
		"changed-run.service": counter("changed"),
		"modified.path":       "[path]\npath-modified = \"@DIR@/watched/m\"\n",
		"modified.service":    counter("modified"),
	})
	os.Mkdir(h.path("watched"), 0o755)
	os.WriteFile(h.path("watched/c"), nil, 0o644)
	os.WriteFile(h.path("watched/m"), nil, 0o644)
	mustStart(t, h, "changed.path")
	mustStart(t, h, "modified.path")
	time.Sleep(100 * time.Millisecond)
	if runs(h, "changed")+runs(h, "modified") != 0 {
		t.Fatal("path-changed/path-modified triggered at start")
	}
	// A write without close: path-modified fires, path-changed waits for
	// the close.
	fc, _ := os.OpenFile(h.path("watched/c"), os.O_WRONLY, 0)
	fm, _ := os.OpenFile(h.path("watched/m"), os.O_WRONLY, 0)
	fc.WriteString("x")
	fm.WriteString("x")
	waitRuns(t, h, "modified", 1, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := runs(h, "changed"); n != 0 {
		t.Fatalf("path-changed fired on a write before close (%d runs)", n)
	}
	fc.Close()
	fm.Close()
	waitRuns(t, h, "changed", 1, 30*time.Second)
	wantSub(t, h, "changed.path", "active", "waiting", 30*time.Second)
	// Deletion is a change too.
	os.Remove(h.path("watched/c"))
	waitRuns(t, h, "changed", 2, 30*time.Second)
	wantSub(t, h, "changed.path", "active", "waiting", 30*time.Second)
	// And so is creation.
	os.WriteFile(h.path("watched/c"), nil, 0o644)
	waitRuns(t, h, "changed", 3, 30*time.Second)
}

func TestPathGlobAndDirectoryNotEmpty(t *testing.T) {
	h := newHarness(t, map[string]string{
		"glob.path":     "[path]\npath-exists-glob = \"@DIR@/in/*.job\"\n",
		"glob.service":  remain("glob"),
		"spool.path":    "[path]\ndirectory-not-empty = \"@DIR@/spool\"\nmake-directory = true\ndirectory-mode = \"0700\"\n",
		"spool.service": remain("spool-runs"),
	})
	os.Mkdir(h.path("in"), 0o755)
	mustStart(t, h, "glob.path")
	mustStart(t, h, "spool.path")
	fi, err := os.Stat(h.path("spool"))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("make-directory: %v %v", fi, err)
	}
	os.WriteFile(h.path("in/other.txt"), nil, 0o644)
	os.WriteFile(h.path("spool/.hidden"), nil, 0o644)
	time.Sleep(200 * time.Millisecond)
	if runs(h, "glob")+runs(h, "spool-runs") != 0 {
		t.Fatal("triggered by a non-matching name or a hidden file")
	}
	os.WriteFile(h.path("in/a.job"), nil, 0o644)
	os.WriteFile(h.path("spool/mail"), nil, 0o644)
	waitRuns(t, h, "glob", 1, 30*time.Second)
	waitRuns(t, h, "spool-runs", 1, 30*time.Second)
}

func TestPathTriggerLimit(t *testing.T) {
	h := newHarness(t, map[string]string{
		// The file stays, the oneshot ends at once: each end re-checks
		// and re-triggers, until the limit stops it.
		"loop.path":    "[path]\npath-exists = \"@DIR@/stays\"\ntrigger-limit-burst = 3\ntrigger-limit-interval = \"1min\"\n",
		"loop.service": counter("loop"),
	})
	os.WriteFile(h.path("stays"), nil, 0o644)
	h.start("loop.path")
	wantSub(t, h, "loop.path", "failed", "failed", 10*time.Second)
	if r := h.prop("loop.path", "Result"); r != resultTriggerLimitHit {
		t.Errorf("Result = %q, want %s", r, resultTriggerLimitHit)
	}
	if n := runs(h, "loop"); n < 2 || n > 3 {
		t.Errorf("the service ran %d times under a burst of 3", n)
	}
	h.do(func() { h.m.Unit("loop.path").behaviour.ResetFailed() })
	wantSub(t, h, "loop.path", "inactive", "dead", 30*time.Second)
}

// TestPathHoldFallsBackWithoutFanotify: no FileAccess: one warning for the
// manager, status says the unit cannot hold, inotify still triggers.
func TestPathHoldFallsBackWithoutFanotify(t *testing.T) {
	h := newHarness(t, map[string]string{
		"h1.path":    "[path]\npath-exists = \"@DIR@/one\"\nhold = true\n",
		"h1.service": remain("h1"),
		"h2.path":    "[path]\npath-exists = \"@DIR@/two\"\nhold = true\n",
		"h2.service": remain("h2"),
	})
	mustStart(t, h, "h1.path")
	mustStart(t, h, "h2.path")
	if n := strings.Count(h.logText(), "fanotify permission events are unavailable: path units fall back"); n != 1 {
		t.Errorf("%d manager warnings, want 1\n%s", n, h.logText())
	}
	st := h.status("h1.path")
	if !strings.Contains(st.StatusText, "cannot hold") {
		t.Errorf("status text %q does not say the unit cannot hold", st.StatusText)
	}
	os.WriteFile(h.path("one"), nil, 0o644)
	waitRuns(t, h, "h1", 1, 30*time.Second)
}

// lateAccess lets a harness's manager get a fanotify source made on the
// harness's loop after the manager.
type lateAccess struct {
	mu  sync.Mutex
	src *fanotify.Source
}

func (l *lateAccess) Mark(p string, m fanotify.Mask) (fanotify.MarkID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.src.Mark(p, m)
}

func (l *lateAccess) Unmark(id fanotify.MarkID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.src.Unmark(id)
}

func newHoldHarness(t *testing.T, files map[string]string) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fanotify permission events need root")
	}
	la := &lateAccess{}
	h := newHarnessWith(t, files, func(o *Options) { o.FileAccess = la })
	src, err := fanotify.New(fanotify.Options{Loop: h.loop, Logf: h.logf, Deadline: 60 * time.Second})
	if err != nil {
		t.Skipf("fanotify: %v", err)
	}
	la.mu.Lock()
	la.src = src
	la.mu.Unlock()
	// Registered after the harness's own cleanup, so it runs first: the
	// source goes (allowing anything still held) before the units stop.
	t.Cleanup(func() { src.Close() })
	return h
}

// reader runs cat on p in the background.
type reader struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	errb bytes.Buffer
	done chan error
}

func startReader(t *testing.T, p string) *reader {
	t.Helper()
	r := &reader{cmd: exec.Command("cat", p), done: make(chan error, 1)}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errb
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	return r
}

// wait returns cat's exit error. The harness's reaper may collect cat
// before Wait does ("no child processes"): its output, which Wait has
// read to the end, then tells the outcome, and wait returns nil.
func (r *reader) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil && errors.Is(err, syscall.ECHILD) {
			return nil
		}
		return err
	case <-time.After(within):
		r.cmd.Process.Kill()
		t.Fatalf("cat did not finish in %v", within)
	}
	return nil
}

func TestPathHoldReleasesReadersWhenReady(t *testing.T) {
	h := newHoldHarness(t, map[string]string{
		"data.path": "[path]\npath-changed = \"@DIR@/data\"\nhold = true\nhold-timeout = \"30s\"\n",
		// The service takes its time, then fills the file.
		"data.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/sh\", \"-c\", \"sleep 0.5; echo hello > @DIR@/data\"]\n",
	})
	os.WriteFile(h.path("data"), nil, 0o644)
	mustStart(t, h, "data.path")
	if st := h.status("data.path"); !strings.Contains(st.StatusText, "holding opens of") {
		t.Fatalf("status text %q", st.StatusText)
	}
	var readers []*reader
	for i := 0; i < 3; i++ {
		readers = append(readers, startReader(t, h.path("data")))
	}
	for i, r := range readers {
		if err := r.wait(t, 30*time.Second); err != nil {
			t.Errorf("reader %d: %v: %s", i, err, r.errb.String())
		}
		if got := r.out.String(); got != "hello\n" {
			t.Errorf("reader %d read %q, want the service's content\n%s", i, got, h.logText())
		}
	}
	if a, _ := h.state("data.service"); a != "active" {
		t.Errorf("data.service is %s", a)
	}
	// Once the unit is active, opens go through at once.
	r := startReader(t, h.path("data"))
	if err := r.wait(t, 10*time.Second); err != nil || r.out.String() != "hello\n" {
		t.Errorf("reader after ready: %v %q", err, r.out.String())
	}
}

func TestPathHoldDeniesWhenUnitFails(t *testing.T) {
	h := newHoldHarness(t, map[string]string{
		"bad.path":     "[path]\npath-changed = \"@DIR@/bad\"\nhold = true\nhold-timeout = \"30s\"\nhold-verdict = \"deny\"\n",
		"bad.service":  "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"sleep 0.3; exit 1\"]\n",
		"slow.path":    "[path]\npath-changed = \"@DIR@/slow\"\nhold = true\nhold-timeout = \"500ms\"\nhold-verdict = \"deny\"\n",
		"slow.service": "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sleep\", \"60\"]\n",
	})
	os.WriteFile(h.path("bad"), []byte("old\n"), 0o644)
	os.WriteFile(h.path("slow"), []byte("old\n"), 0o644)
	mustStart(t, h, "bad.path")
	mustStart(t, h, "slow.path")
	for _, name := range []string{"bad", "slow"} {
		r := startReader(t, h.path(name))
		err := r.wait(t, 25*time.Second)
		if r.out.Len() > 0 || !strings.Contains(r.errb.String(), "Operation not permitted") {
			t.Errorf("%s: cat: %v %q %q, want EPERM\n%s", name, err, r.out.String(), r.errb.String(), h.logText())
		}
	}
	if !strings.Contains(h.logText(), "waited hold-timeout (500ms) for slow.service; answering deny") {
		t.Errorf("the hold-timeout is not in the log:\n%s", h.logText())
	}
	if a, _ := h.state("bad.service"); a != "failed" {
		t.Errorf("bad.service is %s", a)
	}
}

func TestPathDirectoryModeIsExact(t *testing.T) {
	h := newHarness(t, map[string]string{
		"mk.path":    "[path]\npath-changed = \"@DIR@/x/y\"\nmake-directory = true\ndirectory-mode = \"0750\"\n",
		"mk.service": remain("mk"),
	})
	mustStart(t, h, "mk.path")
	fi, err := os.Stat(filepath.Join(h.dir, "x/y"))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("directory: %v %v", fi, err)
	}
}

// BenchmarkPathHoldOpen measures open()+close() of a file that a hold
// path unit watches while its unit is already active (every open is one
// fanotify round trip through the loop and the unit's decision), against
// an unwatched file in the same directory.
func BenchmarkPathHoldOpen(b *testing.B) {
	for _, watched := range []bool{false, true} {
		name := "unwatched"
		if watched {
			name = "held-unit-active"
		}
		b.Run(name, func(b *testing.B) {
			if os.Geteuid() != 0 {
				b.Skip("needs root")
			}
			la := &lateAccess{}
			h := newBenchPathHarness(b, la)
			defer h.close()
			p := h.path("data")
			if !watched {
				p = h.path("other")
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// newBenchPathHarness runs a manager with a fanotify source and a started
// hold path unit whose service is active.
func newBenchPathHarness(b *testing.B, la *lateAccess) *harness {
	dir := b.TempDir()
	h := &harness{t: b, dir: dir, units: filepath.Join(dir, "units")}
	os.MkdirAll(h.units, 0o755)
	h.write(map[string]string{
		"data.path":    "[path]\npath-changed = \"@DIR@/data\"\nhold = true\n",
		"data.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/true\"]\n",
	})
	os.WriteFile(h.path("data"), []byte("x"), 0o644)
	os.WriteFile(h.path("other"), []byte("x"), 0o644)
	h.loop = observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if _, err := process.Start(ctx, h.loop); err != nil {
		b.Fatal(err)
	}
	m, err := New(h.loop, Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"), Logf: func(string, ...any) {}, FileAccess: la})
	if err != nil {
		b.Fatal(err)
	}
	h.m = m
	src, err := fanotify.New(fanotify.Options{Loop: h.loop})
	if err != nil {
		b.Skipf("fanotify: %v", err)
	}
	la.src = src
	h.done = make(chan struct{})
	go func() { h.loop.Run(ctx); close(h.done) }()
	b.Cleanup(func() { src.Close() })
	if res, why := h.start("data.service"); res != api.ResultDone {
		b.Fatalf("data.service: %s %s", res, why)
	}
	if res, why := h.start("data.path"); res != api.ResultDone {
		b.Fatalf("data.path: %s %s", res, why)
	}
	return h
}

// TestPathHoldOnUnmarkableFileSystem: fanotify refuses procfs; the unit
// falls back to inotify and says it cannot hold.
func TestPathHoldOnUnmarkableFileSystem(t *testing.T) {
	h := newHoldHarness(t, map[string]string{
		"proc.path":    "[path]\npath-exists = \"/proc/vigil-no-such-entry\"\nhold = true\n",
		"proc.service": remain("proc"),
	})
	mustStart(t, h, "proc.path")
	wantSub(t, h, "proc.path", "active", "waiting", 30*time.Second)
	if st := h.status("proc.path"); !strings.Contains(st.StatusText, "cannot hold") {
		t.Errorf("status text %q does not say the unit cannot hold", st.StatusText)
	}
	if p := h.prop("proc.path", "HoldStatus"); !strings.Contains(p, "inotify only") {
		t.Errorf("HoldStatus = %q", p)
	}
}

// TestPathReloadChangesWatchedPath: after daemon-reload a waiting path
// unit watches its new path and no longer the old one.
func TestPathReloadChangesWatchedPath(t *testing.T) {
	h := newHarness(t, map[string]string{
		"re.path":    "[path]\npath-exists = \"@DIR@/old\"\n",
		"re.service": remain("re"),
	})
	mustStart(t, h, "re.path")
	h.write(map[string]string{"re.path": "[path]\npath-exists = \"@DIR@/new\"\n"})
	h.do(func() { h.m.Reload() })
	wantSub(t, h, "re.path", "active", "waiting", 30*time.Second)
	os.WriteFile(h.path("old"), nil, 0o644)
	time.Sleep(200 * time.Millisecond)
	if n := runs(h, "re"); n != 0 {
		t.Fatalf("the old path still triggers after reload")
	}
	os.WriteFile(h.path("new"), nil, 0o644)
	waitRuns(t, h, "re", 1, 30*time.Second)
}
