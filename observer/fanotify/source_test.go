package fanotify

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/observer"
)

func TestHeldOpenReleasedWithAllow(t *testing.T) {
	h := deciding(t, observer.Deny)
	path := tempFile(t, "the content\n")
	h.mark(path, Open)

	cat := start(t, "/bin/cat", path)
	ev := h.next()
	if ev.Kind != "open" || ev.Attr("path") != path || ev.Attr("mark") != path {
		t.Fatalf("event %v: want open of %s", ev, path)
	}
	if ev.Attr("pid") != strconv.Itoa(cat.cmd.Process.Pid) || ev.Attr("comm") != "cat" || ev.Attr("exe") != "/usr/bin/cat" && ev.Attr("exe") != "/bin/cat" {
		t.Errorf("event %v: want cat's pid %d, comm and exe", ev, cat.cmd.Process.Pid)
	}
	if ev.Attr("uid") != "0" || !strings.HasPrefix(ev.Attr("cgroup"), "/") {
		t.Errorf("event %v: want uid 0 and a cgroup path", ev)
	}
	if cat.finished() {
		t.Fatal("cat finished while its open was held")
	}
	h.answer(ev, observer.Allow)
	out, err := cat.wait(t)
	if err != nil || out != "the content\n" {
		t.Fatalf("cat after allow: %q, %v", out, err)
	}
	st := h.src.Stats()
	if st.Posted != 1 || st.Allowed < 1 || st.Denied != 0 || st.Marks != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHeldOpenReleasedWithDenyGivesEPERM(t *testing.T) {
	h := deciding(t, observer.Allow)
	path := tempFile(t, "secret\n")
	h.mark(path, Open)

	cat := start(t, "/bin/cat", path)
	h.answer(h.next(), observer.Deny)
	out, err := cat.wait(t)
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("cat after deny: %q, %v; want EPERM", out, err)
	}
	if st := h.src.Stats(); st.Denied != 1 {
		t.Errorf("stats %+v: want one denial", st)
	}
}

func TestOwnProcessIsExempt(t *testing.T) {
	h := deciding(t, observer.Deny)
	path := tempFile(t, "mine\n")
	h.mark(path, Open|Access)
	// A decider that never answers: were our own open held, this would
	// hang until the backstop, and then be denied.
	done := make(chan error, 1)
	go func() {
		data, err := os.ReadFile(path)
		if err == nil && string(data) != "mine\n" {
			err = fmt.Errorf("read %q", data)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("our own open of a marked file was held")
	}
	st := h.src.Stats()
	if st.Exempt < 2 || st.Posted != 0 {
		t.Errorf("stats %+v: want the open and the read exempt, nothing posted", st)
	}
}

func TestExecHeldAndDenied(t *testing.T) {
	h := deciding(t, observer.Allow)
	prog := copyExecutable(t, "/bin/true")
	h.mark(prog, Exec)

	// Through a shell, so the exec is not by our own child still running
	// the test binary (that one goes Inline).
	sh := start(t, "/bin/sh", "-c", prog)
	ev := h.next()
	if ev.Kind != "exec" || ev.Attr("path") != prog {
		t.Fatalf("event %v: want exec of %s", ev, prog)
	}
	h.answer(ev, observer.Deny)
	out, err := sh.wait(t)
	if err == nil || !strings.Contains(out, "Operation not permitted") && !strings.Contains(out, "Permission denied") {
		t.Fatalf("exec after deny: %q, %v", out, err)
	}

	sh = start(t, "/bin/sh", "-c", prog)
	h.answer(h.next(), observer.Allow)
	if out, err := sh.wait(t); err != nil {
		t.Fatalf("exec after allow: %q, %v", out, err)
	}
}

func TestOwnChildBeforeExecGoesInline(t *testing.T) {
	prog := copyExecutable(t, "/bin/true")
	var mu sync.Mutex
	var seen []*observer.Event
	h := newSource(t, Options{Inline: func(ev *observer.Event) observer.Verdict {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
		return observer.Deny
	}})
	h.decide(time.Hour, observer.Allow)
	h.run()
	h.mark(prog, Exec)
	// os/exec forks the test binary and execs prog: the exec event comes
	// from our child still running our image, while this goroutine waits.
	// That vfork child's exec is held by our own reader: a garbage
	// collection in between would wait forever for the forking thread, so
	// the collector is held off (units/exec's package doc). The forking
	// thread also keeps its P: with GOMAXPROCS=1 (go test -cpu 1, a
	// one-CPU cgroup) no P is left to run the reader, and the test hung.
	runtime.GC()
	gcPercent := debug.SetGCPercent(-1)
	procs := runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	err := osexec.Command(prog).Run()
	runtime.GOMAXPROCS(procs)
	debug.SetGCPercent(gcPercent)
	if err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("exec by our own child with an inline deny: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].Kind != "exec" || seen[0].Attr("path") != prog || seen[0].Attr("mark") != prog {
		t.Fatalf("inline saw %v", seen)
	}
	if st := h.src.Stats(); st.Inline != 1 || st.Posted != 0 {
		t.Errorf("stats %+v: want one inline decision and nothing posted", st)
	}
}

func TestNonexistentFileCoveredThroughParent(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	path := filepath.Join(dir, "later")
	h.mark(path, Open)
	if !h.src.snap.Load().pending {
		t.Fatal("mark of a missing file is not pending")
	}
	// Another file in the same directory is not held.
	other := filepath.Join(dir, "other")
	makeFile(t, other, "x")
	h.catFree(other, "x")
	if err := os.WriteFile(path, []byte("now here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.catHeld(path, path, "now here\n")
	eventually(t, "mark resolved to the file itself", func() bool { return !h.src.snap.Load().pending })
	h.wantPosted(1)
}

func TestNonexistentDeepPathMarkedOnceItAppears(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "file")
	h.mark(path, Open)
	makeFile(t, path, "deep\n")
	eventually(t, "mark resolved to the new file", func() bool { return !h.src.snap.Load().pending })
	h.catHeld(path, "", "deep\n")
}

// A path made between a mark's resolution and the inotify watch that
// should report it sends no record at all: the refresh must notice anyway.
func TestPathMadeBeforeItsWatchIsPlaced(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "file")
	made := false
	h.src.mu.Lock()
	h.src.beforeWatch = func() {
		if made {
			return
		}
		made = true
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(path, []byte("raced\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	h.src.mu.Unlock()
	h.mark(path, Open)
	if !made {
		t.Fatal("the hook never ran")
	}
	if h.src.snap.Load().pending {
		t.Fatal("mark still pending on an ancestor though its file exists")
	}
	h.catHeld(path, "", "raced\n")
}

func TestDirectoryMarkCoversItsFiles(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	makeFile(t, filepath.Join(dir, "f"), "f\n")
	makeFile(t, filepath.Join(dir, "sub", "g"), "g\n")
	h.mark(dir, Open)

	h.catHeld(filepath.Join(dir, "f"), dir, "f\n")
	// A grandchild is not covered by a directory mark.
	h.catFree(filepath.Join(dir, "sub", "g"), "g\n")
	h.wantPosted(1)
}

// The tree is on a private tmpfs: MarkTree marks the whole mount, and on
// the root file system every open of every process on the machine (other
// test packages, the go command) would wait for this test's reader. The
// exec of /bin/cat itself would be held too, inside this process's vfork,
// where a garbage collection waiting for the vforking thread while the
// reader is stopped deadlocks the test and every opener with it.
func TestMarkTreeCoversTheSubtreeOnly(t *testing.T) {
	h := deciding(t, observer.Allow)
	mnt := privateTmpfs(t)
	dir := filepath.Join(mnt, "tree")
	deep := filepath.Join(dir, "x", "y", "z")
	makeFile(t, deep, "z\n")
	// Outside the tree but on the marked mount: the reader must answer
	// it without posting.
	outside := filepath.Join(mnt, "outside")
	makeFile(t, outside, "out\n")
	if _, err := h.src.MarkTree(dir, Open); err != nil {
		t.Fatal(err)
	}
	h.catHeld(deep, dir, "z\n")
	h.catFree(outside, "out\n")
}

func TestBackstopAnswersWhenTheLoopNeverDoes(t *testing.T) {
	h := newSource(t, Options{Deadline: 2 * time.Second, Default: observer.Deny})
	h.decide(time.Hour, observer.Allow)
	// The loop is never run: it is stuck as far as the source can tell.
	path := tempFile(t, "x\n")
	h.mark(path, Open)
	out, err := start(t, "/bin/cat", path).wait(t)
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("cat with a stuck loop and default deny: %q, %v", out, err)
	}
	st := h.src.Stats()
	if st.Backstop != 1 || st.Denied != 1 {
		t.Fatalf("stats %+v: want one backstop denial", st)
	}
	// The loop comes back and releases the same hold: nothing more is
	// written (released exactly once).
	h.run()
	eventually(t, "loop saw the stale hold", func() bool { return len(h.events) == 1 })
	h.answer(<-h.events, observer.Allow)
	if st := h.src.Stats(); st.Allowed != 0 || st.Denied != 1 {
		t.Fatalf("stats %+v: the late release answered again", st)
	}
}

func TestFloodOfOpensDoesNotHang(t *testing.T) {
	h := newSource(t, Options{QueueLimit: 4, Deadline: 2 * time.Second})
	h.decide(time.Hour, observer.Allow)
	// No loop: four events fill the source, the rest overflow and are
	// allowed at once; the four are allowed by the backstop.
	path := tempFile(t, "flood\n")
	h.mark(path, Open)
	const n = 40
	var cats []*accessor
	for range n {
		cats = append(cats, start(t, "/bin/cat", path))
	}
	for _, c := range cats {
		if out, err := c.wait(t); err != nil || out != "flood\n" {
			t.Fatalf("cat in a flood: %q, %v", out, err)
		}
	}
	st := h.src.Stats()
	if st.Overflows < n-4 || st.Backstop != 4 || st.Allowed != n {
		t.Fatalf("stats %+v: want %d overflows, 4 backstops, %d allowed", st, n-4, n)
	}
}

func TestUnmarkStopsEvents(t *testing.T) {
	h := deciding(t, observer.Allow)
	path := tempFile(t, "u\n")
	id := h.mark(path, Open)
	again := h.mark(path, Open)
	if again != id {
		t.Fatalf("same (path, mask) marked twice: ids %d and %d", id, again)
	}
	cat := start(t, "/bin/cat", path)
	h.answer(h.next(), observer.Allow)
	cat.wait(t)
	h.src.Unmark(id)
	cat = start(t, "/bin/cat", path)
	h.answer(h.next(), observer.Allow)
	cat.wait(t)
	h.src.Unmark(again)
	before := h.src.Stats()
	if before.Marks != 0 {
		t.Fatalf("stats %+v: marks left", before)
	}
	if out, err := start(t, "/bin/cat", path).wait(t); err != nil || out != "u\n" {
		t.Fatalf("cat after unmark: %q, %v", out, err)
	}
	if after := h.src.Stats(); after.Read != before.Read {
		t.Fatalf("events still read after unmark: %+v -> %+v", before, after)
	}
}

func TestCloseAllowsHeldAccessors(t *testing.T) {
	h := deciding(t, observer.Deny)
	path := tempFile(t, "c\n")
	h.mark(path, Open)
	cat := start(t, "/bin/cat", path)
	h.next()
	h.src.Close()
	if out, err := cat.wait(t); err != nil || out != "c\n" {
		t.Fatalf("cat after Close: %q, %v", out, err)
	}
	if _, err := h.src.Mark(path, Open); err == nil {
		t.Fatal("Mark after Close succeeded")
	}
}

func TestMarkRefusesProcAndBadPaths(t *testing.T) {
	h := newSource(t, Options{})
	if _, err := h.src.Mark("/proc/self/status", Open); err == nil {
		t.Fatal("mark on procfs accepted")
	}
	if _, err := h.src.Mark("relative", Open); err == nil {
		t.Fatal("relative path accepted")
	}
	if _, err := h.src.Mark("/tmp", 0); err == nil {
		t.Fatal("empty mask accepted")
	}
	if st := h.src.Stats(); st.Marks != 0 {
		t.Fatalf("stats %+v: refused marks were kept", st)
	}
}

func TestMarkThroughASymlinkMatchesTheRealPath(t *testing.T) {
	h := deciding(t, observer.Allow)
	real := tempFile(t, "via link\n")
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	h.mark(link, Open)
	cat := start(t, "/bin/cat", link)
	ev := h.next()
	if ev.Attr("path") != real || ev.Attr("mark") != link {
		t.Fatalf("event %v: want path %s under mark %s", ev, real, link)
	}
	h.answer(ev, observer.Allow)
	if out, err := cat.wait(t); err != nil || out != "via link\n" {
		t.Fatalf("cat: %q, %v", out, err)
	}
}
