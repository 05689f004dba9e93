package uevent

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"vigil/observer"
)

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// startLoop runs a loop until the test ends.
func startLoop(t *testing.T, l *observer.Loop) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
}

// collect registers an observer for filter and returns the channel its
// events arrive on.
func collect(t *testing.T, l *observer.Loop, filter string) <-chan *observer.Event {
	t.Helper()
	f, err := observer.ParseFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *observer.Event, 1024)
	if _, err := l.Register(observer.Observer{Guest: "test", Name: t.Name(), Filter: f, Notify: func(ev *observer.Event) {
		select {
		case ch <- ev:
		default:
		}
	}}); err != nil {
		t.Fatal(err)
	}
	return ch
}

func next(t *testing.T, ch <-chan *observer.Event) *observer.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
		return nil
	}
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// trigger makes the kernel send a synthetic uevent for a device, tagged
// with a SYNTH_UUID so that this test recognises its own events among
// whatever else the host sends.
func trigger(t testing.TB, sysfsDir, action, uuid string) {
	t.Helper()
	if err := os.WriteFile(sysfsDir+"/uevent", []byte(action+" "+uuid), 0); err != nil {
		t.Skipf("cannot trigger a uevent (needs root): %v", err)
	}
}

func TestListenerReceivesHostEvent(t *testing.T) {
	loop := observer.New(observer.Options{})
	l, err := Listen(loop, ListenOptions{})
	if err != nil {
		t.Skipf("no uevent socket here: %v", err)
	}
	defer l.Close()
	if os.Geteuid() == 0 && l.ReceiveBufferSize() < 64<<20 {
		t.Errorf("root got a receive buffer of only %d bytes", l.ReceiveBufferSize())
	}
	uuid := newUUID()
	events := collect(t, loop, "source=uevent SYNTH_UUID="+uuid)
	startLoop(t, loop)
	trigger(t, "/sys/class/net/lo", "change", uuid)
	ev := next(t, events)
	u, ok := ev.Payload.(*Uevent)
	if !ok {
		t.Fatalf("payload %T", ev.Payload)
	}
	if ev.Kind != "change" || ev.Attr("INTERFACE") != "lo" || ev.Attr("SUBSYSTEM") != "net" ||
		u.DevPath != "/devices/virtual/net/lo" || u.Seqnum == 0 || u.FromUdev {
		t.Errorf("event %v, uevent %+v", ev, u)
	}
	if s := l.Stats(); s.Received == 0 || s.Foreign != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := l.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	l.Close() // a second Close is harmless
}

// A full loop queue loses events; the listener then posts a "resync" as
// soon as the queue has room, before the next event.
func TestListenerResyncAfterFullQueue(t *testing.T) {
	loop := observer.New(observer.Options{})
	l, err := Listen(loop, ListenOptions{QueueLimit: 2})
	if err != nil {
		t.Skipf("no uevent socket here: %v", err)
	}
	defer l.Close()
	uuid := newUUID()
	events := collect(t, loop, "source=uevent")
	// The loop is not running yet: the first two events fill the queue
	// and the others are dropped.
	for range 4 {
		trigger(t, "/sys/class/mem/full", "change", uuid)
	}
	deadline := time.Now().Add(wait)
	for l.Stats().Dropped < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := l.Stats(); s.Dropped < 2 {
		t.Fatalf("stats %+v: expected drops", s)
	}
	startLoop(t, loop)
	// Wait until the loop has taken what was queued (other processes on
	// the host may have sent events too: they count the same).
	deadline = time.Now().Add(wait)
	for time.Now().Before(deadline) && queued(loop, "uevent") > 0 {
		time.Sleep(time.Millisecond)
	}
	final := newUUID()
	trigger(t, "/sys/class/mem/full", "change", final)
	var sawResync bool
	for {
		ev := next(t, events)
		if ev.Kind == "resync" {
			if ev.Attr("reason") != "queue-full" {
				t.Errorf("resync %v", ev)
			}
			sawResync = true
			continue
		}
		if ev.Attr("SYNTH_UUID") == final {
			break
		}
	}
	if !sawResync {
		t.Error("no resync before the next event")
	}
}

func queued(l *observer.Loop, source string) int {
	for _, s := range l.Sources() {
		if s.Name == source {
			return s.Queued
		}
	}
	return -1
}

// With the smallest receive buffer the kernel allows, a burst overflows
// the socket: ENOBUFS is counted and turned into a resync event.
func TestListenerOverflowResync(t *testing.T) {
	loop := observer.New(observer.Options{})
	l, err := Listen(loop, ListenOptions{ReceiveBuffer: 1})
	if err != nil {
		t.Skipf("no uevent socket here: %v", err)
	}
	defer l.Close()
	events := collect(t, loop, "source=uevent kind=resync")
	startLoop(t, loop)
	uuid := newUUID()
	for i := 0; i < 20000 && l.Stats().Overflows == 0; i++ {
		trigger(t, "/sys/class/mem/full", "change", uuid)
	}
	if l.Stats().Overflows == 0 {
		t.Skip("the reader kept up with a burst of 20000 events")
	}
	// The resync goes out with the next message that arrives.
	trigger(t, "/sys/class/mem/full", "change", uuid)
	ev := next(t, events)
	if ev.Attr("reason") != "overflow" || ev.Attr("overflows") == "0" {
		t.Errorf("resync %v", ev)
	}
}
