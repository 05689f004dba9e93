package fanotify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// selfExeEnv carries, to the copy of this test binary that
// TestOwnExecutableNeverHeld runs, the private tmpfs it lives on and a second
// one where the same inode is bind-mounted.
const selfExeEnv = "VIGIL_FANOTIFY_SELFEXE"

// privateTmpfs mounts a tmpfs that nobody else uses, so that marking its
// whole mount holds no other process on the machine.
func privateTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestOwnExecutableNeverHeld proves on this kernel that the ignore mark New
// puts on our own executable silences every permission event on that inode,
// under a mount mark (MarkTree), a directory mark, a mark on the file itself
// and a mount mark on another file system the inode is bind-mounted into,
// while the same accesses of another file are reported. Our own executable
// must be on the marked mount, so the test copies its binary to a private
// tmpfs and runs the checks in that copy.
func TestOwnExecutableNeverHeld(t *testing.T) {
	if os.Getenv(selfExeEnv) != "" {
		ownExecutableChecks(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (tmpfs mounts, fanotify permission events)")
	}
	dir := privateTmpfs(t)
	other := privateTmpfs(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := copyInto(t, self, dir, "fanotify.test")
	copyInto(t, "/bin/true", dir, "true")
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bound := filepath.Join(other, "bound.test")
	if err := os.WriteFile(bound, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(exe, bound, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bound, unix.MNT_DETACH) })

	// A bound on the whole copy, for a hang: its twenty-odd commands each
	// have their own (wait), and a loaded machine (or -race) needs minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run", "^TestOwnExecutableNeverHeld$", "-test.v")
	cmd.Env = append(os.Environ(), selfExeEnv+"="+dir+":"+other)
	out, err := cmd.CombinedOutput()
	t.Logf("checks in the copy:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestOwnExecutableNeverHeld") {
		t.Fatalf("checks in the copy on the marked tmpfs failed: %v", err)
	}
}

func copyInto(t *testing.T, from, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// ownExecutableChecks runs in the copy: our executable is dir/fanotify.test.
func ownExecutableChecks(t *testing.T) {
	dir, other, _ := strings.Cut(os.Getenv(selfExeEnv), ":")
	self, err := os.Readlink("/proc/self/exe")
	if err != nil || filepath.Dir(self) != dir {
		t.Fatalf("running from %q (%v), want a copy in %s", self, err, dir)
	}
	h := newSource(t, Options{})
	allowAll(h)
	h.run()

	// reads counts the permission events read while fn ran.
	reads := func(what string, fn func()) uint64 {
		t.Helper()
		before := h.src.Stats().Read
		fn()
		n := h.src.Stats().Read - before
		t.Logf("%s: %d permission events", what, n)
		return n
	}
	run := func(name string, args ...string) func() {
		return func() {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"} // the copy must not run the checks again
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %v: %v\n%s", name, args, err, out)
			}
		}
	}
	ownExec := run(self, "-test.run", "^$")
	ownRead := run("/bin/cat", self)
	boundExec := run(filepath.Join(other, "bound.test"), "-test.run", "^$")
	// The held exec must not be the target of this process's own vfork: a
	// garbage collection while it waits for our answer would deadlock the
	// runtime (units/exec's package doc). The shell, unmarked, has released
	// the vfork by the time it execs the marked program.
	otherExec := run("/bin/sh", "-c", "exec "+filepath.Join(dir, "true"))
	otherRead := run("/bin/cat", filepath.Join(dir, "data"))

	check := func(how string) {
		t.Helper()
		if n := reads(how+": exec of our own executable", ownExec); n != 0 {
			t.Errorf("%s: exec of our own executable produced %d events, want none", how, n)
		}
		if n := reads(how+": open and read of our own executable", ownRead); n != 0 {
			t.Errorf("%s: reading our own executable produced %d events, want none", how, n)
		}
		if n := reads(how+": exec of another program", otherExec); n == 0 {
			t.Errorf("%s: exec of %s/true produced no event: the mark does not cover it, the check proves nothing", how, dir)
		}
	}

	all := Open | Access | Exec
	tree, err := h.src.MarkTree(dir, all)
	if err != nil {
		t.Fatal(err)
	}
	check("mount mark")
	if n := reads("mount mark: read of a data file", otherRead); n == 0 {
		t.Error("mount mark: reading a data file produced no event")
	}
	h.src.Unmark(tree)

	dirMark := h.mark(dir, all)
	check("directory mark")
	h.src.Unmark(dirMark)

	fileMark := h.mark(self, all)
	dirMark = h.mark(dir, all)
	check("mark on the executable itself")
	h.src.Unmark(fileMark)
	check("after removing the mark on the executable")
	h.src.Unmark(dirMark)

	// All marks gone: the flush must have put the ignore mark back.
	tree, err = h.src.MarkTree(dir, all)
	if err != nil {
		t.Fatal(err)
	}
	check("mount mark after a flush")
	h.src.Unmark(tree)

	// The same inode reached on another file system, under its mount mark:
	// one ignore mark per group covers it.
	otherTree, err := h.src.MarkTree(other, all)
	if err != nil {
		t.Fatal(err)
	}
	if n := reads("mount mark on the bind mount: exec of our inode there", boundExec); n != 0 {
		t.Errorf("exec of our executable through a bind mount on a marked tmpfs produced %d events, want none", n)
	}
	h.src.Unmark(otherTree)
}

// allowAll registers a deciding observer that allows every held event at
// once.
func allowAll(h *harness) {
	f, err := observer.ParseFilter("source=fanotify")
	if err != nil {
		h.t.Fatal(err)
	}
	var id observer.ObserverID
	id, err = h.loop.Register(observer.Observer{
		Guest: "test", Name: "allow-all", Filter: f, Decides: true, HoldTimeout: time.Second,
		Notify: func(ev *observer.Event) {
			if ev.Hold != nil {
				h.loop.Answer(ev.Hold.ID, id, observer.Allow)
			}
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.obs = id
}

// TestIfUnmarked checks that IfUnmarked runs its function exactly while
// the group has no marks, and again once the last one is gone.
func TestIfUnmarked(t *testing.T) {
	h := newSource(t, Options{})
	ran := 0
	if !h.src.IfUnmarked(func() { ran++ }) || ran != 1 {
		t.Fatalf("no marks: IfUnmarked ran %d times, want 1", ran)
	}
	id := h.mark(tempFile(t, "x"), Open)
	if h.src.IfUnmarked(func() { ran++ }) || ran != 1 {
		t.Fatalf("with a mark: IfUnmarked ran the function")
	}
	h.src.Unmark(id)
	if !h.src.IfUnmarked(func() { ran++ }) || ran != 2 {
		t.Fatalf("after the last Unmark: IfUnmarked did not run the function")
	}
	if got := h.src.Backstop(); got != 30*time.Second {
		t.Errorf("Backstop() = %v, want the default 30s", got)
	}
}
