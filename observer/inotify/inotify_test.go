package inotify

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

func encode(recs ...Record) []byte {
	var out []byte
	for _, r := range recs {
		name := []byte(r.Name)
		if len(name) > 0 {
			// The kernel pads names with NULs to the record alignment.
			name = append(name, make([]byte, 16-len(name)%16)...)
		}
		h := make([]byte, headerSize)
		binary.NativeEndian.PutUint32(h[0:], uint32(r.WD))
		binary.NativeEndian.PutUint32(h[4:], r.Mask)
		binary.NativeEndian.PutUint32(h[8:], r.Cookie)
		binary.NativeEndian.PutUint32(h[12:], uint32(len(name)))
		out = append(append(out, h...), name...)
	}
	return out
}

func TestParseRecords(t *testing.T) {
	in := []Record{{WD: 1, Mask: unix.IN_CREATE | unix.IN_ISDIR, Name: "sub"}, {WD: 2, Mask: unix.IN_DELETE_SELF}, {WD: -1, Mask: unix.IN_Q_OVERFLOW}}
	got, err := ParseRecords(encode(in...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d records, want %d", len(got), len(in))
	}
	for i := range in {
		if got[i] != in[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], in[i])
		}
	}
	if s := MaskString(got[0].Mask); s != "create|isdir" {
		t.Errorf("MaskString = %q", s)
	}
	// A truncated tail is reported, the whole records before it kept.
	buf := encode(in...)
	got, err = ParseRecords(buf[:len(buf)-3])
	if err == nil || len(got) != 2 {
		t.Errorf("truncated: %d records, err %v; want 2 and an error", len(got), err)
	}
	bad := encode(Record{WD: 1, Mask: 1})
	binary.NativeEndian.PutUint32(bad[12:], 1<<31)
	if _, err := ParseRecords(bad); err == nil {
		t.Error("absurd name length accepted")
	}
}

func FuzzParseRecords(f *testing.F) {
	f.Add(encode(Record{WD: 1, Mask: unix.IN_CREATE, Name: "a"}))
	f.Add(encode(Record{WD: 3, Mask: unix.IN_CLOSE_WRITE}, Record{WD: 4, Mask: unix.IN_MOVED_TO, Cookie: 9, Name: "some-longer-name.conf"}))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		recs, err := ParseRecords(buf)
		if err == nil {
			// Whatever parsed cleanly re-encodes to a buffer that parses
			// to the same records.
			again, err2 := ParseRecords(encode(recs...))
			if err2 != nil || len(again) != len(recs) {
				t.Fatalf("re-parse: %v, %d vs %d records", err2, len(again), len(recs))
			}
		}
		for _, r := range recs {
			if len(r.Name) > maxNameLen {
				t.Fatalf("name of %d bytes", len(r.Name))
			}
		}
	})
}

// collect runs a loop and gathers the watcher's events.
func collect(t *testing.T) (*Watcher, chan *observer.Event) {
	t.Helper()
	return collectOn(t, observer.New(observer.Options{}))
}

// collectOn is collect on a loop the test keeps.
func collectOn(t *testing.T, loop *observer.Loop) (*Watcher, chan *observer.Event) {
	t.Helper()
	ch := make(chan *observer.Event, 256)
	if _, err := loop.Register(observer.Observer{Guest: "test", Name: "all",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{SourceName}}}},
		Notify: func(ev *observer.Event) { ch <- ev }}); err != nil {
		t.Fatal(err)
	}
	w, err := Open(loop, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { w.Close(); cancel(); <-done })
	return w, ch
}

// expect waits for an event for watch id whose mask has bit.
func expect(t *testing.T, ch chan *observer.Event, id WatchID, bit uint32) *Change {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			c := ev.Payload.(*Change)
			if c.Record.Mask&bit == 0 {
				continue
			}
			for _, w := range c.Watches {
				if w == id {
					return c
				}
			}
		case <-timeout:
			t.Fatalf("no event %s for watch %d", MaskString(bit), id)
		}
	}
}

func TestWatcherSharesInodes(t *testing.T) {
	w, ch := collect(t)
	dir := t.TempDir()
	creates, err := w.Add(dir, unix.IN_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	deletes, err := w.Add(dir, unix.IN_DELETE)
	if err != nil {
		t.Fatal(err)
	}
	if n, d := w.Watches(); n != 2 || d != 1 {
		t.Fatalf("%d watches on %d descriptors, want 2 on 1", n, d)
	}
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	c := expect(t, ch, creates, unix.IN_CREATE)
	if c.Path != f || len(c.Watches) != 1 {
		t.Errorf("create: path %s watches %v", c.Path, c.Watches)
	}
	os.Remove(f)
	c = expect(t, ch, deletes, unix.IN_DELETE)
	if len(c.Watches) != 1 || c.Watches[0] != deletes {
		t.Errorf("delete went to %v, want only %d", c.Watches, deletes)
	}
	// Removing one watch keeps the other's events.
	w.Remove(deletes)
	os.WriteFile(f, []byte("x"), 0o644)
	expect(t, ch, creates, unix.IN_CREATE)
	w.Remove(creates)
	if n, d := w.Watches(); n != 0 || d != 0 {
		t.Errorf("after removing all: %d watches on %d descriptors", n, d)
	}
	if _, err := w.Add(filepath.Join(dir, "missing"), unix.IN_CREATE); err == nil {
		t.Error("watching a missing path succeeded")
	}
}

func TestWatcherCloseWriteAndDeleteSelf(t *testing.T) {
	w, ch := collect(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	id, err := w.Add(f, unix.IN_CLOSE_WRITE|unix.IN_DELETE_SELF)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f, []byte("data"), 0o644)
	expect(t, ch, id, unix.IN_CLOSE_WRITE)
	os.Remove(f)
	expect(t, ch, id, unix.IN_DELETE_SELF)
	// The kernel drops the watch of a deleted inode (IN_IGNORED).
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := w.Watches(); n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the watch of a deleted file was not forgotten")
}
