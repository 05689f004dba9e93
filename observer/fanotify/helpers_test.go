package fanotify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"vigil/observer"
)

// wait bounds every wait in these tests; a failure never hangs the run.
const wait = 20 * time.Second

type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, fmt.Sprintf(format, args...))
}

// harness is a loop, a fanotify source on it and a deciding observer that
// hands every event to the test.
type harness struct {
	t      *testing.T
	loop   *observer.Loop
	src    *Source
	log    *logBuffer
	events chan *observer.Event
	obs    observer.ObserverID
	cancel context.CancelFunc
	ran    chan struct{}
}

// newSource opens a source on a fresh loop, or skips when this machine
// cannot give permission events. The loop is not running yet.
func newSource(t *testing.T, opts Options) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fanotify permission events need root")
	}
	h := &harness{t: t, log: &logBuffer{}, events: make(chan *observer.Event, 1024)}
	h.loop = observer.New(observer.Options{Logf: h.log.logf})
	opts.Loop = h.loop
	if opts.Logf == nil {
		opts.Logf = h.log.logf
	}
	src, err := New(opts)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("fanotify: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	h.src = src
	t.Cleanup(func() {
		src.Close()
		if h.cancel != nil {
			h.cancel()
			<-h.ran
		}
	})
	return h
}

// decide registers a deciding observer (before the loop runs) that passes
// every fanotify event to h.events and never answers on its own.
func (h *harness) decide(timeout time.Duration, def observer.Verdict) {
	f, err := observer.ParseFilter("source=fanotify")
	if err != nil {
		h.t.Fatal(err)
	}
	id, err := h.loop.Register(observer.Observer{
		Guest: "test", Name: "decider", Filter: f, Decides: true, HoldTimeout: timeout, HoldDefault: def,
		Notify: func(ev *observer.Event) {
			select {
			case h.events <- ev:
			default:
			}
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.obs = id
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.ran = make(chan struct{})
	go func() {
		defer close(h.ran)
		h.loop.Run(ctx)
	}()
}

func (h *harness) answer(ev *observer.Event, v observer.Verdict) {
	h.t.Helper()
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if cerr := h.loop.Call(ctx, func() { err = h.loop.Answer(ev.Hold.ID, h.obs, v) }); cerr != nil {
		h.t.Fatal(cerr)
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) next() *observer.Event {
	h.t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(wait):
		h.t.Fatalf("no fanotify event within %v; log: %v", wait, h.log.lines)
		return nil
	}
}

func (h *harness) mark(path string, mask Mask) MarkID {
	h.t.Helper()
	id, err := h.src.Mark(path, mask)
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// accessor is another process touching files: the test process itself is
// exempt from holds.
type accessor struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func start(t *testing.T, name string, args ...string) *accessor {
	t.Helper()
	a := &accessor{cmd: exec.Command(name, args...), done: make(chan struct{})}
	a.cmd.Stdout = &a.out
	a.cmd.Stderr = &a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.done
	})
	return a
}

func (a *accessor) finished() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *accessor) wait(t *testing.T) (string, error) {
	t.Helper()
	select {
	case <-a.done:
		return a.out.String(), a.err
	case <-time.After(wait):
		t.Fatalf("%v still running after %v", a.cmd.Args, wait)
		return "", nil
	}
}

// tempFile makes a file with content in a fresh directory.
func tempFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "held")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// copyExecutable copies a program so that marking it touches nothing else.
func copyExecutable(t *testing.T, from string) string {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), filepath.Base(from))
	out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond until it holds or the wait ends.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deciding is a running source whose decider holds every event until the
// test answers (answering def only after an hour).
func deciding(t *testing.T, def observer.Verdict) *harness {
	t.Helper()
	h := newSource(t, Options{})
	h.decide(time.Hour, def)
	h.run()
	return h
}

// catHeld has cat read path in another process, expects its open held (the
// event naming path, and mark unless mark is empty), allows it and checks
// that cat then printed want.
func (h *harness) catHeld(path, mark, want string) {
	h.t.Helper()
	cat := start(h.t, "/bin/cat", path)
	ev := h.next()
	if ev.Attr("path") != path || mark != "" && ev.Attr("mark") != mark {
		h.t.Fatalf("event %v: want an open of %s (mark %q)", ev, path, mark)
	}
	if cat.finished() {
		h.t.Fatalf("cat of %s finished while its open was held", path)
	}
	h.answer(ev, observer.Allow)
	if out, err := cat.wait(h.t); err != nil || out != want {
		h.t.Fatalf("cat %s: %q, %v; want %q", path, out, err, want)
	}
}

// catFree has cat read path in another process and checks that it printed
// want without being held (nothing posted meanwhile).
func (h *harness) catFree(path, want string) {
	h.t.Helper()
	before := h.src.Stats().Posted
	if out, err := start(h.t, "/bin/cat", path).wait(h.t); err != nil || out != want {
		h.t.Fatalf("cat %s (not held): %q, %v; want %q", path, out, err, want)
	}
	if n := h.src.Stats().Posted - before; n != 0 {
		h.t.Fatalf("cat %s: %d events posted; want none", path, n)
	}
}

// kernelTargets lists the paths through which the kernel marks were
// placed, sorted.
func kernelTargets(h *harness) []string {
	h.src.mu.Lock()
	defer h.src.mu.Unlock()
	var out []string
	for _, t := range h.src.applied {
		out = append(out, t.path)
	}
	slices.Sort(out)
	return out
}

// markedThrough waits until the kernel mark is placed through want alone.
func markedThrough(t *testing.T, h *harness, want string) {
	t.Helper()
	eventually(t, "kernel mark through "+want, func() bool {
		got := kernelTargets(h)
		return len(got) == 1 && got[0] == want
	})
}

// markedOn waits until the kernel mark is on the inode path leads to now.
func markedOn(t *testing.T, h *harness, path string) {
	t.Helper()
	id, ok := statID(path)
	if !ok {
		t.Fatalf("stat %s failed", path)
	}
	eventually(t, "kernel mark on the inode of "+path, func() bool {
		h.src.mu.Lock()
		defer h.src.mu.Unlock()
		_, ok := h.src.applied[targetKey{dev: id.dev, ino: id.ino}]
		return ok
	})
}

// makeFile writes content to path, making the directories above it.
func makeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantPosted checks how many events were posted to the loop so far.
func (h *harness) wantPosted(n uint64) {
	h.t.Helper()
	if st := h.src.Stats(); st.Posted != n {
		h.t.Errorf("stats %+v: want %d posted events", st, n)
	}
}
