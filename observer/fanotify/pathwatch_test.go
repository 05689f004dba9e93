package fanotify

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// TestMissingPathFollowedComponentByComponent: a mark of /…/a/b/c, none of
// which exists, moves down as a, then b, then c appear (created by this
// process, so no permission event can be what notices them), back up as
// they go, and nothing polls in between.
func TestMissingPathFollowedComponentByComponent(t *testing.T) {
	h := deciding(t, observer.Allow)
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
	// The nearest existing ancestor and every directory above it.
	if n, want := h.src.paths.watching(), len(dirsDownTo(dir)); n != want {
		t.Fatalf("following %d directories, want %d (%v)", n, want, dirsDownTo(dir))
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
	h.catHeld(path, path, "here\n")

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
	h := deciding(t, observer.Allow)
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
	h.catHeld(path, "", "new\n")
}

// TestPathWatcherComesBackAfterAPanic: the path watcher panics on the
// record of a component appearing; it is run again, resolves the marks
// at once (so the component it lost is still marked), and the source's
// statistics show the restart.
func TestPathWatcherComesBackAfterAPanic(t *testing.T) {
	h := deciding(t, observer.Allow)
	stopMountFollower(t, h)
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

// dirsDownTo lists the directories from the root down to dir.
func dirsDownTo(dir string) []string {
	var out []string
	for ; dir != "/"; dir = filepath.Dir(dir) {
		out = append(out, dir)
	}
	return append(out, "/")
}

// TestRenamedAncestorIsFollowed: a mark of top/a/b/file follows the file
// when a directory above it goes or is replaced: a renamed away (the mark
// falls back to top), another a renamed into its place (the new file is
// held, the old one, now under a.old, is not), then top itself swapped
// with another tree by one rename (RENAME_EXCHANGE, so the path never
// stops existing).
func TestRenamedAncestorIsFollowed(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	top := filepath.Join(dir, "top")
	rel := filepath.Join("a", "b", "file")
	path := filepath.Join(top, rel)
	makeFile(t, path, "first\n")
	h.mark(path, Open)
	markedOn(t, h, path)
	h.catHeld(path, path, "first\n")

	// An ancestor renamed away: the mark falls back to what is left.
	if err := os.Rename(filepath.Join(top, "a"), filepath.Join(top, "a.old")); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, top)
	if !h.src.snap.Load().pending {
		t.Fatal("not pending after an ancestor went")
	}
	// Another directory renamed into its place: the new file is marked, the
	// old one (same inode as before, kernel mark and all) is not held.
	second := filepath.Join(dir, "second")
	makeFile(t, filepath.Join(second, rel), "second\n")
	if err := os.Rename(filepath.Join(second, "a"), filepath.Join(top, "a")); err != nil {
		t.Fatal(err)
	}
	markedOn(t, h, path)
	h.catHeld(path, path, "second\n")
	h.catFree(filepath.Join(top, "a.old", "b", "file"), "first\n")

	// A directory further up swapped in one step: no record about a or b,
	// only about top in dir.
	third := filepath.Join(dir, "third")
	makeFile(t, filepath.Join(third, rel), "third\n")
	if err := unix.Renameat2(unix.AT_FDCWD, third, unix.AT_FDCWD, top, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("renameat2(RENAME_EXCHANGE): %v", err)
	}
	markedOn(t, h, path)
	h.catHeld(path, path, "third\n")
	h.catFree(filepath.Join(third, rel), "second\n")
	if h.src.snap.Load().pending {
		t.Error("pending though the path exists")
	}
}

// TestAncestorWatchesAreShared: marks below the same directories share
// their watches (one per distinct directory, not per mark and level), and
// the watches go with the marks.
func TestAncestorWatchesAreShared(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	var ids []MarkID
	for _, p := range []string{"x/f1", "x/f2", "y/f3", "y/missing/f4", "z/missing/f5"} {
		full := filepath.Join(dir, p)
		if !strings.Contains(p, "missing") {
			makeFile(t, full, "")
		} else if err := os.MkdirAll(filepath.Dir(filepath.Dir(full)), 0o755); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.mark(full, Open))
	}
	// dir and above, x, y and z (z/missing/f5 is covered through z,
	// watched for "missing"; y is watched for "missing" and "f3").
	want := len(dirsDownTo(dir)) + 3
	if n := h.src.paths.watching(); n != want {
		t.Fatalf("%d inotify watches for 5 marks, want %d (one per distinct directory)", n, want)
	}
	for _, id := range ids {
		h.src.Unmark(id)
	}
	if n := h.src.paths.watching(); n != 0 {
		t.Fatalf("%d inotify watches left with no mark", n)
	}
}

// TestOpenOfAComponentCatchesUp: with the path watcher stalled, a pending
// mark of dir/a/b/file whose directories and file have just been made
// stays on dir. A plain open of the file then is not held: the kernel
// reports opens of dir's children only, and dir/a/b/file is a grandchild
// (the limit docs/fanotify.md describes). An opener that opens dir/a
// first (ls, find, openat through a directory descriptor) is held on the
// file: the reader moves the mark down before it answers the open of a.
func TestOpenOfAComponentCatchesUp(t *testing.T) {
	h := deciding(t, observer.Allow)
	if h.src.paths == nil {
		t.Fatal("no path watcher")
	}
	stopMountFollower(t, h)
	stalled, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	var once sync.Once
	stall := func() {
		once.Do(func() { close(stalled) })
		<-release
	}
	h.src.paths.afterRead.Store(&stall)
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "file")
	h.mark(path, Open)
	markedThrough(t, h, dir)
	// Stall the watcher on a record of its own (after its first
	// resolution, which would otherwise move the mark down should the
	// watcher start late).
	if err := os.WriteFile(filepath.Join(dir, "unrelated"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(wait):
		t.Fatal("the path watcher read nothing")
	}
	makeFile(t, path, "caught\n")
	if got := kernelTargets(h); len(got) != 1 || got[0] != dir {
		t.Fatalf("kernel marks %v moved with the watcher stalled", got)
	}

	read := h.src.Stats().Read
	h.catFree(path, "caught\n")
	if n := h.src.Stats().Read - read; n != 0 {
		t.Fatalf("%d events for an open two levels below the marked ancestor; the kernel reported none before", n)
	}
	if got := kernelTargets(h); len(got) != 1 || got[0] != dir {
		t.Fatalf("kernel marks %v moved with the watcher stalled", got)
	}

	sh := start(t, "/bin/sh", "-c", "ls \"$1\" >/dev/null && exec cat \"$2\"", "sh", filepath.Join(dir, "a"), path)
	ev := h.next()
	if ev.Attr("path") != path || ev.Attr("mark") != path {
		t.Fatalf("event %v: want the open of %s held", ev, path)
	}
	h.answer(ev, observer.Allow)
	if out, err := sh.wait(t); err != nil || out != "caught\n" {
		t.Fatalf("ls && cat: %q, %v", out, err)
	}
}
