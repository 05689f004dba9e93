package guests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
)

type env struct {
	t      *testing.T
	loop   *observer.Loop
	src    *observer.Source
	srv    *Server
	cancel context.CancelFunc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, Options{})
}

func newEnvWith(t *testing.T, opts Options) *env {
	t.Helper()
	opts.Logf = t.Logf
	loop := observer.New(observer.Options{Logf: t.Logf})
	e := &env{t: t, loop: loop, src: loop.NewSource("test", 100000)}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	srv, err := Listen(loop, filepath.Join(t.TempDir(), "observer.sock"), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return e
}

type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (e *env) dial(name string) *client {
	e.t.Helper()
	conn, err := net.Dial("unix", e.srv.Path())
	if err != nil {
		e.t.Fatal(err)
	}
	c := &client{t: e.t, conn: conn, r: bufio.NewReader(conn)}
	e.t.Cleanup(func() { conn.Close() })
	c.write(fmt.Sprintf(`{"op":"hello","version":1,"name":%q}`, name))
	if m := c.read(); m.Op != "welcome" || !strings.HasPrefix(m.Guest, name+"#") {
		e.t.Fatalf("hello answered %+v", m)
	}
	return c
}

func (c *client) write(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() Message {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("bad line %q: %v", line, err)
	}
	return m
}

// observe registers an observer and returns its id.
func (c *client) observe(body string) uint64 {
	c.t.Helper()
	c.write(`{"op":"observe","id":1,` + body + `}`)
	m := c.read()
	if m.Op != "ok" || m.Observer == 0 {
		c.t.Fatalf("observe answered %+v", m)
	}
	return m.Observer
}

func TestGuestSubscribesAndReceives(t *testing.T) {
	e := newEnv(t)
	c := e.dial("watcher")
	obs := c.observe(`"filter":"source=test kind=add SUBSYSTEM=block"`)
	e.src.Post(observer.Event{Kind: "add", Attrs: map[string]string{"SUBSYSTEM": "net"}})
	e.src.Post(observer.Event{Kind: "add", Attrs: map[string]string{"SUBSYSTEM": "block", "DEVNAME": "vdb"}})
	m := c.read()
	if m.Op != "event" || m.Observer != obs || m.Event.Attrs["DEVNAME"] != "vdb" || m.Event.Source != "test" {
		t.Fatalf("got %+v", m)
	}
}

func TestHoldNeverAnsweredIsOverruledAtTheDeadline(t *testing.T) {
	e := newEnv(t)
	c := e.dial("sleepy")
	c.observe(`"filter":"source=test","decides":true,"hold_timeout_ms":200,"hold_default":"deny"`)
	verdict := make(chan observer.Verdict, 1)
	begin := time.Now()
	e.src.Post(observer.Event{Kind: "open", Hold: &observer.Hold{Default: observer.Allow, Release: func(v observer.Verdict) { verdict <- v }}})
	if m := c.read(); m.Op != "event" || m.Event.Hold == 0 {
		t.Fatalf("held event arrived as %+v", m)
	}
	select {
	case v := <-verdict:
		if v != observer.Deny {
			t.Errorf("verdict %s, want the observer's default deny", v)
		}
		if d := time.Since(begin); d < 200*time.Millisecond {
			t.Errorf("released after %v, before the deadline", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hold never released")
	}
}

func TestHoldAnsweredByTheGuest(t *testing.T) {
	e := newEnv(t)
	c := e.dial("judge")
	obs := c.observe(`"filter":"source=test","decides":true,"hold_timeout_ms":5000,"hold_default":"deny"`)
	verdict := make(chan observer.Verdict, 1)
	e.src.Post(observer.Event{Kind: "open", Hold: &observer.Hold{Release: func(v observer.Verdict) { verdict <- v }}})
	m := c.read()
	c.write(fmt.Sprintf(`{"op":"answer","id":9,"observer":%d,"hold":%d,"verdict":"allow"}`, obs, m.Event.Hold))
	if ok := c.read(); ok.Op != "ok" || ok.ID != 9 {
		t.Fatalf("answer: %+v", ok)
	}
	select {
	case v := <-verdict:
		if v != observer.Allow {
			t.Errorf("verdict %s, want allow", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hold not released by the answer")
	}
}

func TestGuestDisconnectingMidHoldReleasesAtOnce(t *testing.T) {
	e := newEnv(t)
	c := e.dial("flaky")
	c.observe(`"filter":"source=test","decides":true,"hold_timeout_ms":60000,"hold_default":"deny"`)
	verdict := make(chan observer.Verdict, 1)
	e.src.Post(observer.Event{Kind: "open", Hold: &observer.Hold{Release: func(v observer.Verdict) { verdict <- v }}})
	c.read()
	c.conn.Close()
	select {
	case v := <-verdict:
		if v != observer.Deny {
			t.Errorf("verdict %s, want the default deny", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a vanished guest's hold waited for its 60 s timeout")
	}
}

func TestSlowGuestLosesOnlyItsOwnEvents(t *testing.T) {
	// The slow guest never reads: with the default write timeout, a loaded
	// machine's fast guest may take long enough over its events for the
	// slow one to be cut off, and its observer (and count) to go with it.
	e := newEnvWith(t, Options{WriteTimeout: time.Hour})
	slow := e.dial("slow")
	slowID := slow.observe(`"filter":"source=test","queue":4`)
	fast := e.dial("fast")
	fast.observe(`"filter":"source=test","queue":65536`)
	const n = 20000
	for i := 0; i < n; i++ {
		e.src.Post(observer.Event{Kind: "tick", Attrs: map[string]string{"i": fmt.Sprint(i)}})
	}
	for i := 0; i < n; i++ {
		m := fast.read()
		if m.Event.Attrs["i"] != fmt.Sprint(i) {
			t.Fatalf("fast guest got event %s at %d", m.Event.Attrs["i"], i)
		}
	}
	var dropped uint64
	found := false
	e.loop.Call(context.Background(), func() {
		for _, o := range e.loop.Observers() {
			if uint64(o.ID) == slowID {
				dropped, found = o.Dropped, true
			}
		}
	})
	if !found {
		t.Fatal("the slow guest's observer is gone: only its events were to be lost, not the guest")
	}
	if dropped == 0 {
		t.Errorf("the slow guest lost nothing: its queue of 4 cannot have held %d events unread", n)
	}
}

func TestMalformedMessagesDoNotDisturbTheCore(t *testing.T) {
	e := newEnv(t)
	bad := e.dial("garbage")
	good := e.dial("good")
	good.observe(`"filter":"source=test"`)
	junk := []string{`{`, `not json`, `{"op":"fly"}`, `{"op":"observe","decides":true}`, `{"op":"answer","observer":1}`, `[]`, `{"op":""}`, `{"op":"observe","filter":"a<b<c"}`}
	go func() {
		for i := 0; i < 1000; i++ {
			bad.conn.Write([]byte(junk[i%len(junk)] + "\n"))
		}
	}()
	errs := 0
	for errs < 1000 {
		if m := bad.read(); m.Op == "error" {
			errs++
		}
	}
	e.src.Post(observer.Event{Kind: "still-alive"})
	if m := good.read(); m.Event == nil || m.Event.Kind != "still-alive" {
		t.Fatalf("good guest got %+v", m)
	}
	// One message in eight (the bad filter) decodes and fails later.
	if got := e.srv.Malformed.Load(); got < uint64(1000-1000/len(junk)) {
		t.Errorf("malformed count %d", got)
	}
}

func TestEmitReachesOtherGuests(t *testing.T) {
	e := newEnv(t)
	listener := e.dial("listener")
	listener.observe(`"filter":"source=guest kind=backup-done"`)
	talker := e.dial("talker")
	talker.write(`{"op":"emit","id":3,"kind":"backup-done","attrs":{"size":"12"}}`)
	if m := talker.read(); m.Op != "ok" {
		t.Fatalf("emit: %+v", m)
	}
	m := listener.read()
	if m.Event.Attrs["size"] != "12" || !strings.HasPrefix(m.Event.Attrs["guest"], "talker#") {
		t.Errorf("emitted event %+v", m.Event)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"op":"hello","version":1}`, `{"op":"observe","filter":"a=b","decides":true,"hold_timeout_ms":5}`, `{"op":"answer","observer":1,"hold":2,"verdict":"deny"}`, `{"op":"emit","kind":"x"}`, `{`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err == nil && m.Op == "" {
			t.Fatalf("accepted a message without op: %q", data)
		}
	})
}
