package guests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/fanotify"
)

// newWatchEnv is newEnv with a real fanotify source behind the server.
func newWatchEnv(t *testing.T) (*env, *fanotify.Source) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fanotify holds need root")
	}
	loop := observer.New(observer.Options{Logf: t.Logf})
	src, err := fanotify.New(fanotify.Options{Loop: loop, Logf: t.Logf, Deadline: 20 * time.Second})
	if errors.Is(err, fanotify.ErrUnavailable) {
		t.Skipf("fanotify: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, loop: loop}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	srv, err := Listen(loop, filepath.Join(t.TempDir(), "observer.sock"), Options{Logf: t.Logf, FileAccess: src})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() {
		srv.Close()
		src.Close()
		cancel()
		<-done
	})
	return e, src
}

// readEvent skips anything but events (late "ok"s of answers).
func (c *client) readEvent() Message {
	c.t.Helper()
	for {
		if m := c.read(); m.Op == "event" {
			return m
		}
	}
}

func heldFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "held")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// catFile runs cat in another process (our own accesses are never held).
func catFile(path string) (chan string, *exec.Cmd) {
	cmd := exec.Command("/bin/cat", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	res := make(chan string, 1)
	if err := cmd.Start(); err != nil {
		res <- err.Error()
		return res, cmd
	}
	go func() {
		err := cmd.Wait()
		res <- fmt.Sprintf("%s%v", out.String(), err)
	}()
	return res, cmd
}

func waitResult(t *testing.T, res chan string) string {
	t.Helper()
	select {
	case s := <-res:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("cat still held after 20 s")
		return ""
	}
}

func TestWatchHoldsAPathAndASilentGuestIsOverruled(t *testing.T) {
	e, src := newWatchEnv(t)
	path := heldFile(t, "guarded\n")
	judge := e.dial("judge")
	judgeObs := judge.observe(fmt.Sprintf(`"watch":{"paths":[%q],"access":["open"]},"decides":true,"hold_timeout_ms":60000,"hold_default":"deny"`, path))
	silent := e.dial("silent")
	silentObs := silent.observe(fmt.Sprintf(`"watch":{"paths":[%q]},"decides":true,"hold_timeout_ms":300,"hold_default":"allow"`, path))

	// The judge denies: cat gets EPERM whatever the silent guest does.
	res, _ := catFile(path)
	m := judge.readEvent()
	if m.Event.Source != "fanotify" || m.Event.Kind != "open" || m.Event.Attrs["path"] != path || m.Event.Hold == 0 {
		t.Fatalf("judge got %+v", m.Event)
	}
	if sm := silent.readEvent(); sm.Event.Hold != m.Event.Hold {
		t.Fatalf("silent guest got hold %d, judge %d", sm.Event.Hold, m.Event.Hold)
	}
	judge.write(fmt.Sprintf(`{"op":"answer","id":2,"observer":%d,"hold":%d,"verdict":"deny"}`, judgeObs, m.Event.Hold))
	if out := waitResult(t, res); !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("cat after the judge's deny: %q", out)
	}

	// The judge allows; the silent guest never answers and is overruled
	// at its 300 ms with its default: cat reads the file.
	res, _ = catFile(path)
	m = judge.readEvent()
	judge.write(fmt.Sprintf(`{"op":"answer","id":3,"observer":%d,"hold":%d,"verdict":"allow"}`, judgeObs, m.Event.Hold))
	if out := waitResult(t, res); out != "guarded\n<nil>" {
		t.Fatalf("cat after allow and an overruled silent guest: %q", out)
	}
	var overruled uint64
	e.loop.Call(context.Background(), func() {
		for _, o := range e.loop.Observers() {
			if uint64(o.ID) == silentObs {
				overruled = o.Overrul
			}
		}
	})
	if overruled != 2 {
		t.Errorf("silent guest overruled %d times, want 2", overruled)
	}

	// Both guests gone: the marks go with them, and nothing is held.
	judge.conn.Close()
	silent.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for src.Stats().Marks != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("marks left after the guests left: %+v", src.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := src.Stats().Read
	res, _ = catFile(path)
	if out := waitResult(t, res); out != "guarded\n<nil>" || src.Stats().Read != before {
		t.Fatalf("cat after the guests left: %q, %+v", out, src.Stats())
	}
}

func TestUnobserveRemovesTheWatchMarks(t *testing.T) {
	e, src := newWatchEnv(t)
	path := heldFile(t, "x")
	c := e.dial("watcher")
	obs := c.observe(fmt.Sprintf(`"watch":{"paths":[%q,%q],"access":["open","exec"]}`, path, filepath.Dir(path)))
	if got := src.Stats().Marks; got != 2 {
		t.Fatalf("marks %d, want 2", got)
	}
	c.write(fmt.Sprintf(`{"op":"unobserve","id":2,"observer":%d}`, obs))
	if m := c.read(); m.Op != "ok" {
		t.Fatalf("unobserve: %+v", m)
	}
	if got := src.Stats().Marks; got != 0 {
		t.Fatalf("marks %d after unobserve", got)
	}
}

func TestWatchWithoutFanotifyIsRefusedClearly(t *testing.T) {
	e := newEnv(t)
	e.srv.opts.FileAccessError = errors.New("fanotify_init: operation not permitted")
	c := e.dial("hopeful")
	c.write(`{"op":"observe","id":4,"watch":{"paths":["/srv/x"]},"decides":true,"hold_timeout_ms":100}`)
	m := c.read()
	if m.Op != "error" || m.ID != 4 || !strings.Contains(m.Message, "unavailable") || !strings.Contains(m.Message, "operation not permitted") {
		t.Fatalf("watch without fanotify: %+v", m)
	}
}

func TestWatchIsForRootOnly(t *testing.T) {
	g := &guest{srv: &Server{opts: Options{}}, root: false}
	var f observer.Filter
	_, err := g.watch(&Watch{Paths: []string{"/srv/x"}}, &f)
	if err == nil || !strings.Contains(err.Error(), "only root") {
		t.Fatalf("non-root watch: %v", err)
	}
}

func TestDecodeWatch(t *testing.T) {
	good := `{"op":"observe","watch":{"paths":["/srv/x"],"access":["open","exec"],"tree":true}}`
	m, err := Decode([]byte(good))
	if err != nil || m.Watch == nil || !m.Watch.Tree || len(m.Watch.Paths) != 1 {
		t.Fatalf("decode %s: %+v %v", good, m, err)
	}
	for _, bad := range []string{
		`{"op":"observe","watch":{}}`,
		`{"op":"observe","watch":{"paths":["relative"]}}`,
		`{"op":"observe","watch":{"paths":["/x"],"access":["write"]}}`,
		`{"op":"observe","watch":{"paths":["/a\u0000b"]}}`,
		`{"op":"hello","version":3}`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := Decode([]byte(`{"op":"hello","version":1}`)); err != nil {
		t.Errorf("version 1 client refused: %v", err)
	}
}

func FuzzDecodeWatch(f *testing.F) {
	for _, s := range []string{
		`{"op":"observe","watch":{"paths":["/srv/x"],"access":["open","exec"]},"decides":true,"hold_timeout_ms":5}`,
		`{"op":"observe","watch":{"paths":["/"],"tree":true}}`,
		`{"op":"observe","watch":{"paths":[]}}`,
		`{"op":"observe","watch":null}`,
		`{"op":"hello","version":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil || m.Watch == nil {
			return
		}
		if _, err := m.Watch.check(); err != nil {
			t.Fatalf("accepted a watch that does not check: %v", err)
		}
		if len(m.Watch.Paths) == 0 || len(m.Watch.Paths) > MaxWatchPaths {
			t.Fatalf("accepted %d paths", len(m.Watch.Paths))
		}
		for _, p := range m.Watch.Paths {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("accepted path %q", p)
			}
		}
	})
}
