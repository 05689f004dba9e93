package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigil/observer"
)

// handler answers one method on the loop goroutine.
type handler func(l *observer.Loop, r *Request)

type harness struct {
	loop   *observer.Loop
	srv    *Server
	path   string
	cancel context.CancelFunc
	logMu  sync.Mutex
	logs   []string
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	h.logs = append(h.logs, fmt.Sprintf(format, args...))
	h.logMu.Unlock()
}

func (h *harness) logged(substr string) bool {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	for _, l := range h.logs {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// newHarness starts a real loop with an observer answering the given
// methods, and a real server in a temporary directory. run=false leaves the
// loop stopped; call h.run to start it.
func newHarness(t *testing.T, opts Options, handlers map[string]handler, run bool) *harness {
	t.Helper()
	h := &harness{}
	h.loop = observer.New(observer.Options{Logf: h.logf})
	dir := t.TempDir()
	h.path = filepath.Join(dir, "control.sock")
	if opts.Logf == nil {
		opts.Logf = h.logf
	}
	filter, err := observer.ParseFilter("source=control")
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.loop.Register(observer.Observer{Guest: "test", Name: "responder", Filter: filter, Notify: func(ev *observer.Event) {
		req := ev.Payload.(*Request)
		if fn, ok := handlers[req.Method]; ok {
			fn(h.loop, req)
			return
		}
		req.Fail(4, "unknown method %q", req.Method)
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.srv, err = Listen(h.loop, h.path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.srv.Close()
		if h.cancel != nil {
			h.cancel()
		}
	})
	if run {
		h.run()
	}
	return h
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go h.loop.Run(ctx)
}

func echo(_ *observer.Loop, r *Request) {
	var args map[string]any
	if err := r.Decode(&args); err != nil {
		r.Fail(2, "%v", err)
		return
	}
	r.Reply(map[string]any{"method": r.Method, "args": args, "uid": r.Peer.UID, "pid": r.Peer.PID})
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCallRoundTrip(t *testing.T) {
	h := newHarness(t, Options{}, map[string]handler{
		"echo": echo,
		"count": func(l *observer.Loop, r *Request) {
			var n int
			if err := r.Decode(&n); err != nil {
				r.Fail(2, "%v", err)
				return
			}
			// Progress spread over loop turns, the way a job reports.
			var step func(i int)
			step = func(i int) {
				if i == n {
					r.Reply(n)
					return
				}
				r.Progress(i)
				l.AfterFunc(time.Millisecond, func() { step(i + 1) })
			}
			step(0)
		},
	}, true)
	c := dial(t, h.path)
	ctx := context.Background()
	for i := 0; i < 3; i++ { // sequential calls on one connection
		var got struct {
			Method string         `json:"method"`
			Args   map[string]any `json:"args"`
			UID    int            `json:"uid"`
			PID    int            `json:"pid"`
		}
		if err := c.Call(ctx, "echo", map[string]int{"n": i}, &got, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got.Method != "echo" || got.Args["n"] != float64(i) || got.UID != 0 || got.PID != os.Getpid() {
			t.Fatalf("call %d: got %+v", i, got)
		}
	}
	var seen []int
	var total int
	err := c.Call(ctx, "count", 5, &total, func(p json.RawMessage) {
		var i int
		if err := json.Unmarshal(p, &i); err != nil {
			t.Errorf("progress %s: %v", p, err)
		}
		seen = append(seen, i)
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || fmt.Sprint(seen) != "[0 1 2 3 4]" {
		t.Fatalf("count: total %d, progress %v", total, seen)
	}
	err = c.Call(ctx, "nope", nil, nil, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != 4 || !strings.Contains(ce.Message, `unknown method "nope"`) {
		t.Fatalf("unknown method: got %v", err)
	}
	// The connection is still good after an error frame.
	if err := c.Call(ctx, "echo", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st := h.srv.Stats(); st.Calls != 6 || st.Accepted != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestEventAttributes(t *testing.T) {
	got := make(chan observer.Event, 1)
	h := newHarness(t, Options{}, map[string]handler{"echo": echo}, false)
	f, _ := observer.ParseFilter("source=control kind=echo uid=0")
	if _, err := h.loop.Register(observer.Observer{Guest: "test", Name: "spy", Filter: f, Notify: func(ev *observer.Event) { got <- *ev }}); err != nil {
		t.Fatal(err)
	}
	h.run()
	if err := dial(t, h.path).Call(context.Background(), "echo", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	ev := <-got
	if ev.Attrs["method"] != "echo" || ev.Attrs["pid"] != fmt.Sprint(os.Getpid()) {
		t.Fatalf("attrs %v", ev.Attrs)
	}
	if _, ok := ev.Payload.(*Request); !ok {
		t.Fatalf("payload %T", ev.Payload)
	}
}

func TestSocketFile(t *testing.T) {
	h := newHarness(t, Options{}, nil, true)
	st, err := os.Stat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	// A live server is not replaced.
	if _, err := Listen(h.loop, h.path, Options{}); err == nil || !strings.Contains(err.Error(), "running server") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	// A regular file is not removed.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("keep"), 0o644)
	if _, err := Listen(h.loop, file, Options{}); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file clobbered")
	}
	// Close removes the socket; a stale socket (nobody listening) is replaced.
	h.srv.Close()
	if _, err := os.Stat(h.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	srv, err := Listen(h.loop, h.path, Options{Group: "65534"})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer srv.Close()
	st, err = os.Stat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 65534 {
		t.Fatalf("group socket: mode %v gid %d", st.Mode(), st.Sys().(*syscall.Stat_t).Gid)
	}
}

// rawConn talks the protocol by hand, for tests of misbehaving clients.
type rawConn struct {
	t  *testing.T
	nc *net.UnixConn
	r  *FrameReader
}

func rawDial(t *testing.T, path string) *rawConn {
	t.Helper()
	nc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: NewFrameReader(nc, ClientMaxFrame)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) frame() Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	f, err := DecodeFrame(line)
	if err != nil {
		c.t.Fatalf("%v: %s", err, line)
	}
	return f
}

func TestMalformedCallsDoNotDisturbTheLoop(t *testing.T) {
	h := newHarness(t, Options{}, map[string]handler{"echo": echo}, false)
	other := h.loop.NewSource("other", 0)
	var dispatched sync.WaitGroup
	f, _ := observer.ParseFilter("source=other")
	h.loop.Register(observer.Observer{Guest: "test", Name: "other", Filter: f, Notify: func(*observer.Event) { dispatched.Done() }})
	h.run()

	c := rawDial(t, h.path)
	garbage := []string{
		"not json", "{", `{"id":1}`, `{"id":"x","method":"echo"}`, `[1,2,3]`, `{"id":2,"method":"echo"} trailing`,
		"\x00\xff\xfe", `{"id":3,"method":""}`, `null`, `{"id":4,"method":"` + strings.Repeat("m", 200) + `"}`,
	}
	const n = 1000
	go func() {
		w := bufio.NewWriter(c.nc)
		for i := 0; i < n; i++ {
			fmt.Fprintln(w, garbage[i%len(garbage)])
			if i%100 == 0 { // events from another source interleave
				dispatched.Add(1)
				other.Post(observer.Event{Kind: "tick"})
			}
		}
		w.Flush()
	}()
	for i := 0; i < n; i++ {
		fr := c.frame()
		if fr.Error == nil || fr.Error.Code != CodeProtocol {
			t.Fatalf("garbage %d (%q): got %+v", i, garbage[i%len(garbage)], fr)
		}
	}
	waitOrFail(t, &dispatched)
	// The same connection still works, and so does a fresh one.
	c.send(`{"id":77,"method":"echo","args":{"a":1}}` + "\n")
	if fr := c.frame(); fr.ID != 77 || fr.Result == nil {
		t.Fatalf("good call after garbage: %+v", fr)
	}
	if err := dial(t, h.path).Call(context.Background(), "echo", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st := h.srv.Stats(); st.Malformed != n {
		t.Fatalf("malformed count %d, want %d", st.Malformed, n)
	}
	// The error frame names the call when its id could be read.
	c.send(`{"id":9,"method":5}` + "\n")
	if fr := c.frame(); fr.ID != 9 || fr.Error == nil {
		t.Fatalf("bad method type: %+v", fr)
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
}

func TestFrameTooLargeClosesConnection(t *testing.T) {
	h := newHarness(t, Options{MaxFrame: 4096}, map[string]handler{"echo": echo}, true)
	c := rawDial(t, h.path)
	// Exactly at the limit is fine.
	pad := 4096 - len(`{"id":1,"method":"echo","args":""}`)
	c.send(`{"id":1,"method":"echo","args":"` + strings.Repeat("x", pad) + `"}` + "\n")
	if fr := c.frame(); fr.Error == nil || !strings.Contains(fr.Error.Message, "bad arguments") {
		// echo wants an object: the call got through framing and was answered.
		t.Fatalf("call at the limit: %+v", fr)
	}
	// A half-written frame over the limit is cut off without a newline.
	c.send(strings.Repeat("y", 10000))
	fr := c.frame()
	if fr.Error == nil || fr.Error.Code != CodeProtocol || !strings.Contains(fr.Error.Message, "larger than 4096") {
		t.Fatalf("oversized: %+v", fr)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.r.Next(); err != io.EOF {
		t.Fatalf("connection not closed after an oversized frame: %v", err)
	}
	if err := dial(t, h.path).Call(context.Background(), "echo", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestBusyWhenQueueFull(t *testing.T) {
	h := newHarness(t, Options{QueueLimit: 1}, map[string]handler{"echo": echo}, false)
	first := make(chan error, 1)
	go func() { first <- dial(t, h.path).Call(context.Background(), "echo", nil, nil, nil) }()
	// Wait until the first call sits in the source queue.
	for deadline := time.Now().Add(10 * time.Second); h.srv.Stats().Calls < 1; {
		if time.Now().After(deadline) {
			t.Fatal("first call never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	err := dial(t, h.path).Call(context.Background(), "echo", nil, nil, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeBusy || !strings.Contains(ce.Message, "busy") {
		t.Fatalf("second call with a full queue: %v", err)
	}
	h.run()
	if err := <-first; err != nil {
		t.Fatalf("queued call: %v", err)
	}
	if st := h.srv.Stats(); st.Busy != 1 {
		t.Fatalf("busy count %d", st.Busy)
	}
}

func TestPipelinedCallRejected(t *testing.T) {
	h := newHarness(t, Options{}, map[string]handler{
		"slow": func(l *observer.Loop, r *Request) {
			l.AfterFunc(100*time.Millisecond, func() { r.Reply("slow done") })
		},
	}, true)
	c := rawDial(t, h.path)
	c.send(`{"id":1,"method":"slow"}` + "\n" + `{"id":2,"method":"slow"}` + "\n")
	a, b := c.frame(), c.frame()
	if a.ID != 2 || a.Error == nil || a.Error.Code != CodeProtocol || !strings.Contains(a.Error.Message, "still being answered") {
		t.Fatalf("pipelined call: %+v", a)
	}
	if b.ID != 1 || string(b.Result) != `"slow done"` {
		t.Fatalf("first call: %+v", b)
	}
	// After the final frame, the next call is welcome.
	c.send(`{"id":3,"method":"slow"}` + "\n")
	if f := c.frame(); f.ID != 3 || f.Result == nil {
		t.Fatalf("third call: %+v", f)
	}
}

func TestSlowReaderLosesProgressNotResult(t *testing.T) {
	const total = 5000
	h := newHarness(t, Options{ProgressLimit: 16}, map[string]handler{
		"flood": func(l *observer.Loop, r *Request) {
			big := strings.Repeat("p", 2048)
			sent := 0
			for i := 0; i < total; i++ {
				if r.Progress(map[string]any{"i": i, "pad": big}) {
					sent++
				}
			}
			r.Reply(map[string]int{"sent": sent})
		},
	}, true)
	c := rawDial(t, h.path)
	c.send(`{"id":1,"method":"flood"}` + "\n")
	// Do not read until the loop has produced everything.
	for deadline := time.Now().Add(10 * time.Second); h.srv.Stats().ProgressDropped == 0; {
		if time.Now().After(deadline) {
			t.Fatal("nothing was dropped")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	progress, last := 0, -1
	for {
		f := c.frame()
		if f.Progress != nil {
			var p struct{ I int }
			json.Unmarshal(f.Progress, &p)
			if p.I <= last {
				t.Fatalf("progress out of order: %d after %d", p.I, last)
			}
			last = p.I
			progress++
			continue
		}
		if f.Result == nil {
			t.Fatalf("final: %+v", f)
		}
		var res struct{ Sent int }
		json.Unmarshal(f.Result, &res)
		if res.Sent != progress || uint64(progress)+f.Dropped != total || f.Dropped == 0 {
			t.Fatalf("received %d progress, server sent %d, final says %d dropped (total %d)", progress, res.Sent, f.Dropped, total)
		}
		if st := h.srv.Stats(); st.ProgressDropped != f.Dropped {
			t.Fatalf("stats dropped %d, frame %d", st.ProgressDropped, f.Dropped)
		}
		return
	}
}

func TestDoneWhenClientLeaves(t *testing.T) {
	done := make(chan string, 1)
	h := newHarness(t, Options{}, map[string]handler{
		"stream": func(l *observer.Loop, r *Request) {
			var tick func()
			tick = func() {
				if r.Closed() {
					r.Reply("too late") // discarded: nobody is there
					r.Reply("twice")    // and a second answer is a no-op
					done <- "closed"
					return
				}
				r.Progress("tick")
				l.AfterFunc(5*time.Millisecond, tick)
			}
			tick()
			go func() { <-r.Done(); done <- "done" }()
		},
	}, true)
	c := dial(t, h.path)
	ctx, cancel := context.WithCancel(context.Background())
	ticks := 0
	err := c.Call(ctx, "stream", nil, nil, func(json.RawMessage) {
		ticks++
		if ticks == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled call: %v", err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-done:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("server never noticed the client leaving: %v", got)
		}
	}
	if !h.logged("answered twice") {
		t.Fatal("a second answer was not logged")
	}
	// A client that is canceled is unusable, and says so.
	if err := c.Call(context.Background(), "stream", nil, nil, nil); err == nil {
		t.Fatal("call on a canceled client succeeded")
	}
	// The server holds no connection for the departed client.
	for deadline := time.Now().Add(10 * time.Second); h.srv.Stats().Open != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("connections still open: %d", h.srv.Stats().Open)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHalfCloseStillGetsAnswer(t *testing.T) {
	h := newHarness(t, Options{}, map[string]handler{
		"slow": func(l *observer.Loop, r *Request) {
			l.AfterFunc(50*time.Millisecond, func() { r.Reply("ok") })
		},
	}, true)
	c := rawDial(t, h.path)
	c.send(`{"id":5,"method":"slow"}` + "\n")
	c.nc.CloseWrite()
	if f := c.frame(); f.ID != 5 || string(f.Result) != `"ok"` {
		t.Fatalf("after half-close: %+v", f)
	}
}

func TestIdleAndVanishingClientsCostNothing(t *testing.T) {
	h := newHarness(t, Options{}, map[string]handler{"echo": echo}, true)
	idle := rawDial(t, h.path) // never sends
	_ = idle
	gone := rawDial(t, h.path)
	gone.send(`{"id":1,"method":"ec`) // disconnects mid-frame
	gone.nc.Close()
	if err := dial(t, h.path).Call(context.Background(), "echo", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); h.srv.Stats().Open != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want 2 (the idle one and the caller)", h.srv.Stats().Open)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTestRequest(t *testing.T) {
	req, frames, disconnect, err := NewTestRequest("show", map[string]string{"unit": "a.service"})
	if err != nil {
		t.Fatal(err)
	}
	var args struct{ Unit string }
	if err := req.Decode(&args); err != nil || args.Unit != "a.service" {
		t.Fatalf("decode: %v %+v", err, args)
	}
	req.Progress(1)
	req.Reply("r")
	got := frames()
	if len(got) != 2 || string(got[0].Progress) != "1" || string(got[1].Result) != `"r"` {
		t.Fatalf("frames %+v", got)
	}
	disconnect()
	if !req.Closed() {
		t.Fatal("not closed after disconnect")
	}
}

// The peer check needs a real non-root process: the test binary re-runs
// itself as uid 65534 (nobody) in client mode.
const helperEnv = "VIGIL_CONTROL_TEST_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(clientHelper(path, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// clientHelper calls each comma-separated method and prints one line per
// call: "method ok" or "method error CODE MESSAGE".
func clientHelper(path, methods string) int {
	c, err := Dial(path)
	if err != nil {
		fmt.Println("dial error", err)
		return 1
	}
	defer c.Close()
	for _, m := range strings.Split(methods, ",") {
		var res map[string]any
		err := c.Call(context.Background(), m, nil, &res, nil)
		var ce *Error
		switch {
		case err == nil:
			fmt.Printf("%s ok uid=%v\n", m, res["uid"])
		case errors.As(err, &ce):
			fmt.Printf("%s error %d %s\n", m, ce.Code, ce.Message)
		default:
			fmt.Printf("%s failed %v\n", m, err)
		}
	}
	return 0
}

func TestNonRootPeerLimitedToReadOnlyMethods(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// A directory nobody can traverse, holding a copy of the test binary
	// (the build cache is private to root) and the socket.
	dir, err := os.MkdirTemp("", "vigil-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, _ := os.Executable()
	bin := filepath.Join(dir, "client.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	loop := observer.New(observer.Options{})
	f, _ := observer.ParseFilter("source=control")
	loop.Register(observer.Observer{Guest: "test", Name: "responder", Filter: f, Notify: func(ev *observer.Event) { echo(loop, ev.Payload.(*Request)) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loop.Run(ctx)
	path := filepath.Join(dir, "control.sock")
	srv, err := Listen(loop, path, Options{Mode: 0o666, ReadOnlyMethods: []string{"status", "ping"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	cmd := exec.Command(bin, "-test.run=^$", "status,start,ping,stop")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	want := []string{
		"status ok uid=65534",
		"start error 5 access denied: start needs root (peer uid 65534)",
		"ping ok uid=65534",
		"stop error 5 access denied: stop needs root (peer uid 65534)",
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, "\n") {
		t.Fatalf("non-root client:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if st := srv.Stats(); st.Refused != 2 || st.Calls != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Root may call anything.
	c := dial(t, path)
	if err := c.Call(context.Background(), "start", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}
