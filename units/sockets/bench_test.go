package sockets

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
)

// BenchmarkConnectToEvent measures a unix client's connect until the
// readable event reaches an observer, then accepts and resumes: the
// activation path's own share of a socket-activated connection.
func BenchmarkConnectToEvent(b *testing.B) {
	loop := observer.New(observer.Options{})
	events := make(chan *observer.Event, 1)
	f, _ := observer.ParseFilter("source=socket kind=readable")
	if _, err := loop.Register(observer.Observer{Guest: "bench", Name: "s", Filter: f, Notify: func(ev *observer.Event) { events <- ev }}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loop.Run(ctx)
	path := filepath.Join(b.TempDir(), "b.sock")
	a, err := ParseListen(Stream, path)
	if err != nil {
		b.Fatal(err)
	}
	ls, err := Open(Spec{Unit: "b.socket", Listen: []Address{a}})
	if err != nil {
		b.Fatal(err)
	}
	defer CloseAll(ls, true)
	ln, err := net.FileListener(ls[0].File)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	w := Watch(loop, ls, "b.socket")
	defer w.Close()
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-events:
		case <-time.After(wait):
			b.Fatal("no event")
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		c.Close()
		w.Resume()
	}
}
