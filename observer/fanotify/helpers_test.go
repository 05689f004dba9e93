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
