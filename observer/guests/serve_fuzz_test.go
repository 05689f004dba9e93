package guests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
)

// FuzzServe sends one fuzzed message to a running server after a hello and
// checks what a guest library relies on: every message gets an answer (ok,
// error or welcome) on the same connection, soon, and the server keeps
// serving. Messages with a watch or actions are not sent: as root they
// would hold opens on this machine or run commands.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		`{"op":"observe","id":1,"filter":"source=guest","queue":4}`,
		`{"op":"observe","id":2,"filter":"kind=x","decides":true,"hold_timeout_ms":5,"hold_default":"deny"}`,
		`{"op":"observe","id":3,"filter":"a=b c!=d kind~x*"}`,
		`{"op":"observe","id":4,"filter":"(("}`,
		`{"op":"unobserve","id":5,"observer":99}`,
		`{"op":"answer","id":6,"observer":1,"hold":1,"verdict":"allow"}`,
		`{"op":"emit","id":7,"kind":"x","attrs":{"guest":"spoof","a":"\u0000"}}`,
		`{"op":"hello","version":2,"name":"again"}`,
		`{"op":"nope","id":8}`,
		`{"op":"observe","queue":-1}`,
		`{"id":9}`, `not json`, `{"op":"emit","kind":""}`,
	} {
		f.Add([]byte(s))
	}
	loop := observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	srv, err := Listen(loop, filepath.Join(f.TempDir(), "observer.sock"), Options{Logf: func(string, ...any) {}})
	if err != nil {
		cancel()
		f.Fatal(err)
	}
	f.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})

	f.Fuzz(func(t *testing.T, line []byte) {
		line = bytes.ReplaceAll(line, []byte("\n"), []byte(" "))
		if len(bytes.TrimSpace(line)) == 0 || len(line) > MaxLine {
			return // blank lines are skipped; long ones end the connection
		}
		if m, err := Decode(line); err == nil && (m.Watch != nil || len(m.Actions) > 0) {
			return
		}
		conn, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(15 * time.Second))
		r := bufio.NewReader(conn)
		read := func() Message {
			for {
				b, err := r.ReadBytes('\n')
				if err != nil {
					t.Fatalf("after %q: read: %v", line, err)
				}
				var m Message
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatalf("after %q: server sent %q: %v", line, b, err)
				}
				if m.Op != "event" {
					return m
				}
			}
		}
		if _, err := conn.Write([]byte(`{"op":"hello","version":2,"name":"fuzz"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		if m := read(); m.Op != "welcome" {
			t.Fatalf("hello answered %+v", m)
		}
		if _, err := conn.Write(append(line, '\n')); err != nil {
			t.Fatal(err)
		}
		switch m := read(); m.Op {
		case "ok", "error", "welcome":
		default:
			t.Fatalf("%q answered %+v", line, m)
		}
		// Still serving: a second message on the same connection works.
		if _, err := conn.Write([]byte(`{"op":"emit","id":77,"kind":"fuzz-check"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		if m := read(); m.Op != "ok" || m.ID != 77 {
			t.Fatalf("after %q the check emit was answered %+v", line, m)
		}
	})
}
