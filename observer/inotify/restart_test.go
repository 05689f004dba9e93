package inotify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// TestReaderRestartsAfterPanicAndReportsLoss: a reader that panics on a
// buffer is run again; guests are told with an "overflow" that records
// were lost, later changes arrive as before, and the loop's source
// statistics show the restart.
func TestReaderRestartsAfterPanicAndReportsLoss(t *testing.T) {
	loop := observer.New(observer.Options{})
	w, ch := collectOn(t, loop)
	dir := t.TempDir()
	id, err := w.Add(dir, unix.IN_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	panicked := false
	hook := func() {
		if !panicked {
			panicked = true
			panic("inotify test panic")
		}
	}
	w.afterRead.Store(&hook)
	os.WriteFile(filepath.Join(dir, "lost"), nil, 0o644)
	expect(t, ch, id, unix.IN_Q_OVERFLOW)
	f := filepath.Join(dir, "after")
	os.WriteFile(f, nil, 0o644)
	if c := expect(t, ch, id, unix.IN_CREATE); c.Path != f {
		t.Errorf("after the restart: create of %s, want %s", c.Path, f)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var info observer.SourceInfo
		for _, s := range loop.Sources() {
			if s.Name == SourceName {
				info = s
			}
		}
		if info.Restarts == 1 && strings.Contains(info.LastError, "inotify test panic") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source info %+v: want 1 restart and the panic", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
