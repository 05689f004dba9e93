package control

import (
	"context"
	"testing"

	"vigil/observer"
)

// BenchmarkCallRoundTrip measures one call through the socket, the loop and
// back (the cost of e.g. `initctl is-active` once connected).
func BenchmarkCallRoundTrip(b *testing.B) {
	loop := observer.New(observer.Options{})
	f, _ := observer.ParseFilter("source=control")
	loop.Register(observer.Observer{Guest: "bench", Name: "echo", Filter: f, Notify: func(ev *observer.Event) {
		ev.Payload.(*Request).Reply([]string{"active"})
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loop.Run(ctx)
	srv, err := Listen(loop, b.TempDir()+"/c.sock", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(srv.Path())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	args := map[string][]string{"units": {"web.service"}}
	var res []string
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Call(ctx, "is-active", args, &res, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProgress measures queueing a progress frame from the loop side.
func BenchmarkProgress(b *testing.B) {
	req, frames, _, err := NewTestRequest("observe", nil)
	if err != nil {
		b.Fatal(err)
	}
	ev := map[string]any{"seq": 1, "source": "uevent", "kind": "add", "attrs": map[string]string{"DEVNAME": "vda"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req.Progress(ev)
		if i%128 == 127 {
			frames()
		}
	}
}
