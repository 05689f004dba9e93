package sockets

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"vigil/observer"
)

const wait = 10 * time.Second

// readableEvents runs a loop and collects its socket events.
func readableEvents(t *testing.T) (*observer.Loop, chan *observer.Event) {
	t.Helper()
	loop := observer.New(observer.Options{Logf: t.Logf})
	ch := make(chan *observer.Event, 64)
	f, err := observer.ParseFilter("source=socket kind=readable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loop.Register(observer.Observer{Guest: "test", Name: "sockets", Filter: f, Notify: func(ev *observer.Event) { ch <- ev }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { loop.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return loop, ch
}

func nextEvent(t *testing.T, ch chan *observer.Event) *observer.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(wait):
		t.Fatal("no readable event")
	}
	return nil
}

func noEvent(t *testing.T, ch chan *observer.Event, d time.Duration) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected second event %v", ev)
	case <-time.After(d):
	}
}

// 200 clients connect at once while nobody accepts: one event, then the
// "service" accepts every one of them from the backlog and answers.
func TestWatchHoldsConnectionsInBacklog(t *testing.T) {
	for _, where := range []string{"tcp", filepath.Join(t.TempDir(), "s.sock")} {
		t.Run(where, func(t *testing.T) {
			loop, ch := readableEvents(t)
			addr := where
			var ls []*Listener
			if where == "tcp" {
				ls, _ = openOnFreePort(t, func(port string) Spec {
					addr = "127.0.0.1:" + port
					return Spec{Unit: "echo.socket", Listen: []Address{mustParse(t, Stream, addr)}}
				})
			} else {
				ls = openSpec(t, Spec{Unit: "echo.socket", Listen: []Address{mustParse(t, Stream, addr)}})
			}
			w := Watch(loop, ls, "echo.socket")
			defer w.Close()
			network := "tcp"
			if addr[0] == '/' {
				network = "unix"
			}
			const clients = 200
			var wg sync.WaitGroup
			answers := make(chan string, clients)
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.DialTimeout(network, addr, wait)
					if err != nil {
						t.Errorf("client %d: %v", i, err)
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(2 * wait))
					if _, err := c.Write([]byte(strconv.Itoa(i) + "\n")); err != nil {
						t.Errorf("client %d write: %v", i, err)
						return
					}
					line, err := bufio.NewReader(c).ReadString('\n')
					if err != nil {
						t.Errorf("client %d read: %v", i, err)
						return
					}
					answers <- line
				}()
			}
			ev := nextEvent(t, ch)
			if ev.Attrs["unit"] != "echo.socket" || ev.Attrs["fd"] != strconv.Itoa(ls[0].FD()) || ev.Attrs["index"] != "0" || ev.Attrs["listen"] != "stream" {
				t.Errorf("event attrs %v", ev.Attrs)
			}
			if ev.Payload.(*Listener) != ls[0] {
				t.Errorf("payload is not the listener")
			}
			// The service "starts" slowly: more connections arrive, no more events.
			noEvent(t, ch, 300*time.Millisecond)
			if !w.Paused() {
				t.Error("watcher not paused after the event")
			}
			ln, err := net.FileListener(ls[0].File)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			for range clients {
				c, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					defer c.Close()
					line, err := bufio.NewReader(c).ReadString('\n')
					if err == nil {
						c.Write([]byte("echo " + line))
					}
				}()
			}
			wg.Wait()
			if len(answers) != clients {
				t.Fatalf("%d of %d clients answered", len(answers), clients)
			}
			// The "service" has gone; watching resumes and the next client fires once more.
			w.Resume()
			noEvent(t, ch, 100*time.Millisecond)
			c, err := net.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			nextEvent(t, ch)
		})
	}
}

// Resume with connections still waiting fires again at once; datagrams
// are left unread; of several listeners, only the first readable fires.
func TestWatchDatagramAndResume(t *testing.T) {
	loop, ch := readableEvents(t)
	dir := t.TempDir()
	dgram, stream := filepath.Join(dir, "d.sock"), filepath.Join(dir, "s.sock")
	ls := openSpec(t, Spec{Unit: "multi.socket", Listen: []Address{mustParse(t, Stream, stream), mustParse(t, Datagram, dgram)}})
	w := Watch(loop, ls, "multi.socket")
	defer w.Close()
	noEvent(t, ch, 100*time.Millisecond)
	c, err := net.Dial("unixgram", dgram)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	ev := nextEvent(t, ch)
	if ev.Attrs["index"] != "1" || ev.Attrs["listen"] != "datagram" || ev.Attrs["address"] != dgram {
		t.Errorf("attrs %v", ev.Attrs)
	}
	// The stream listener is paused with the unit.
	s, err := net.Dial("unix", stream)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	noEvent(t, ch, 200*time.Millisecond)
	// Resume: both are still readable (nothing was consumed), one event.
	w.Resume()
	nextEvent(t, ch)
	noEvent(t, ch, 200*time.Millisecond)
	pc, err := net.FilePacketConn(ls[1].File)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	buf := make([]byte, 16)
	pc.SetReadDeadline(time.Now().Add(wait))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Errorf("datagram %q %v: the watcher must not consume it", buf[:n], err)
	}
}

// Close stops the goroutines promptly and leaves the listeners usable.
func TestWatchClose(t *testing.T) {
	loop, ch := readableEvents(t)
	ls := openSpec(t, Spec{Unit: "c.socket", Listen: []Address{mustParse(t, Stream, filepath.Join(t.TempDir(), "c.sock"))}})
	w := Watch(loop, ls, "c.socket")
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	c, err := net.Dial("unix", ls[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	noEvent(t, ch, 100*time.Millisecond)
	ln, err := net.FileListener(ls[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(wait))
	if a, err := ln.Accept(); err != nil {
		t.Fatalf("accept after Close: %v", err)
	} else {
		a.Close()
	}
}

// Watch makes a source and Close removes it: 200 watch/close rounds on
// the same listener leave the loop with the sources it had, and the
// watching goroutines are gone.
func TestWatchCloseRemovesItsSource(t *testing.T) {
	loop, ch := readableEvents(t)
	ls := openSpec(t, Spec{Unit: "cycle.socket", Listen: []Address{mustParse(t, Stream, filepath.Join(t.TempDir(), "c.sock"))}})
	before := len(loop.Sources())
	goroutines := runtime.NumGoroutine()
	for i := 0; i < 200; i++ {
		w := Watch(loop, ls, "cycle.socket")
		if n := len(loop.Sources()); n != before+1 {
			t.Fatalf("round %d: %d sources while watching, want %d", i, n, before+1)
		}
		w.Close()
	}
	if n := len(loop.Sources()); n != before {
		t.Fatalf("after 200 watch/close rounds: %d sources, want %d", n, before)
	}
	// The last round still works: a connection fires one event.
	w := Watch(loop, ls, "cycle.socket")
	defer w.Close()
	c, err := net.Dial("unix", ls[0].Address.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ev := nextEvent(t, ch); ev.Attrs["unit"] != "cycle.socket" {
		t.Errorf("event %v", ev.Attrs)
	}
	if n := runtime.NumGoroutine(); n > goroutines+5 {
		t.Errorf("%d goroutines after 200 rounds, %d before", n, goroutines)
	}
}
