package fanotify

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/observer"
)

// kernelTargets lists the paths through which the kernel marks were
// placed, sorted.
func kernelTargets(h *harness) []string {
	h.src.mu.Lock()
	defer h.src.mu.Unlock()
	var out []string
	for _, t := range h.src.applied {
		out = append(out, t.path)
	}
	slices.Sort(out)
	return out
}

// markedThrough waits until the kernel mark is placed through want alone.
func markedThrough(t *testing.T, h *harness, want string) {
	t.Helper()
	eventually(t, "kernel mark through "+want, func() bool {
		got := kernelTargets(h)
		return len(got) == 1 && got[0] == want
	})
}

// TestMissingPathFollowedComponentByComponent: a mark of /…/a/b/c, none of
// which exists, moves down as a, then b, then c appear (created by this
// process, so no permission event can be what notices them), back up as
// they go, and nothing polls in between.
func TestMissingPathFollowedComponentByComponent(t *testing.T) {
	h := newSource(t, Options{})
	h.decide(time.Hour, observer.Allow)
	h.run()
	if h.src.paths == nil {
		t.Fatal("no path watcher")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")
	path := filepath.Join(b, "c")
	h.mark(path, Open)
	markedThrough(t, h, dir)
	if !h.src.snap.Load().pending {
		t.Fatal("mark of a missing path is not pending")
	}
	if n := h.src.paths.watching(); n != 1 {
		t.Fatalf("following %d directories, want 1 (the nearest ancestor)", n)
	}

	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, a)
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, b)
	if err := os.WriteFile(path, []byte("here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, path)
	if h.src.snap.Load().pending {
		t.Error("still pending once the path exists")
	}
	cat := start(t, "/bin/cat", path)
	ev := h.next()
	if ev.Attr("path") != path || ev.Attr("mark") != path {
		t.Fatalf("event %v: want the marked path", ev)
	}
	h.answer(ev, observer.Allow)
	if out, err := cat.wait(t); err != nil || out != "here\n" {
		t.Fatalf("cat: %q, %v", out, err)
	}

	// Going: the file, then its directory renamed away.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, b)
	if !h.src.snap.Load().pending {
		t.Error("not pending after the file went")
	}
	if err := os.Rename(b, filepath.Join(dir, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, a)

	// Idle: nothing resolves the marks again (the old source polled every
	// 500 ms while a mark was pending).
	before := h.src.paths.resolves.Load()
	time.Sleep(1200 * time.Millisecond)
	if n := h.src.paths.resolves.Load() - before; n != 0 {
		t.Errorf("%d re-resolutions while nothing changed", n)
	}
	// Unrelated entries in a followed directory do not count either.
	if err := os.WriteFile(filepath.Join(a, "unrelated"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, b)
	if n := h.src.paths.resolves.Load() - before; n != 1 {
		t.Errorf("%d re-resolutions for one relevant change among two", n)
	}
}

// TestReplacedFileIsMarkedAgain: a marked file replaced by a rename (the
// way editors and package managers write) is marked again on its new
// inode, without waiting for another mark to change.
func TestReplacedFileIsMarkedAgain(t *testing.T) {
	h := newSource(t, Options{})
	h.decide(time.Hour, observer.Allow)
	h.run()
	dir := t.TempDir()
	path := filepath.Join(dir, "conf")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.mark(path, Open)
	oldID, _ := statID(path)
	tmp := filepath.Join(dir, "conf.new")
	if err := os.WriteFile(tmp, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	newID, _ := statID(path)
	if newID == oldID {
		t.Fatal("the rename did not replace the inode")
	}
	eventually(t, "the new inode marked", func() bool {
		h.src.mu.Lock()
		defer h.src.mu.Unlock()
		_, ok := h.src.applied[targetKey{dev: newID.dev, ino: newID.ino}]
		return ok
	})
	cat := start(t, "/bin/cat", path)
	ev := h.next()
	if ev.Attr("path") != path {
		t.Fatalf("event %v: want %s", ev, path)
	}
	h.answer(ev, observer.Allow)
	if out, err := cat.wait(t); err != nil || out != "new\n" {
		t.Fatalf("cat: %q, %v", out, err)
	}
}

// TestPathWatcherComesBackAfterAPanic: the path watcher panics on the
// record of a component appearing; it is run again, resolves the marks
// at once (so the component it lost is still marked), and the source's
// statistics show the restart.
func TestPathWatcherComesBackAfterAPanic(t *testing.T) {
	h := newSource(t, Options{})
	h.decide(time.Hour, observer.Allow)
	h.run()
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	h.mark(filepath.Join(a, "file"), Open)
	markedThrough(t, h, dir)
	panicked := false
	hook := func() {
		if !panicked {
			panicked = true
			panic("path watcher test panic")
		}
	}
	h.src.paths.afterRead.Store(&hook)
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, a)
	if err := os.WriteFile(filepath.Join(a, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, filepath.Join(a, "file"))
	var info observer.SourceInfo
	for _, s := range h.loop.Sources() {
		if s.Name == "fanotify" {
			info = s
		}
	}
	if info.Restarts != 1 || !strings.Contains(info.LastError, "fanotify path watcher: panic: path watcher test panic") {
		t.Errorf("source info %+v: want 1 restart of the path watcher", info)
	}
}
