package fanotify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// ownTmpfs mounts a tmpfs of the test's own on a temporary directory,
// private so that nothing mounted below it propagates anywhere, and
// unmounts it at the end (before the directory is removed).
func ownTmpfs(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	mountTmpfs(t, dir)
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make %s private: %v", dir, err)
	}
	return dir
}

// mountTmpfs mounts an empty tmpfs on dir, unmounted at the end if still
// there.
func mountTmpfs(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs on %s: %v", dir, err)
	}
	cleanupMount(t, dir)
}

// cleanupMount unmounts whatever is mounted on dir at the end of the test.
func cleanupMount(t testing.TB, dir string) {
	t.Cleanup(func() {
		for unix.Unmount(dir, unix.MNT_DETACH) == nil {
		}
	})
}

// bindMount mounts from over to and unmounts it at the end.
func bindMount(t *testing.T, from, to string) {
	t.Helper()
	if err := unix.Mount(from, to, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s on %s: %v", from, to, err)
	}
	cleanupMount(t, to)
}

// unmount unmounts dir now.
func unmount(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatalf("unmount %s: %v", dir, err)
	}
}

// groupMarkLines are the lines of the source's group descriptor's fdinfo,
// one per kernel mark ("fanotify ino:..." or "fanotify mnt_id:...").
func groupMarkLines(t *testing.T, h *harness) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", h.src.fd))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "fanotify ") {
			lines = append(lines, line)
		}
	}
	return lines
}

// kernelInodeMarks lists the inodes the source's group has a mark on that
// asks for events (the ignore marks of our own images aside), as the
// kernel shows them in the group descriptor's fdinfo.
func kernelInodeMarks(t *testing.T, h *harness) map[fileID]bool {
	t.Helper()
	marks := map[fileID]bool{}
	for _, line := range groupMarkLines(t, h) {
		var ino, sdev, mflags, mask uint64
		if n, _ := fmt.Sscanf(line, "fanotify ino:%x sdev:%x mflags:%x mask:%x", &ino, &sdev, &mflags, &mask); n < 4 || mask == 0 {
			continue
		}
		// The kernel's own dev_t: 12 bits of major above 20 of minor.
		dev := unix.Mkdev(uint32(sdev>>20), uint32(sdev&(1<<20-1)))
		marks[fileID{dev, ino}] = true
	}
	return marks
}

// kernelMountMarks lists the mounts (by mount id) the group has a mark on.
func kernelMountMarks(t *testing.T, h *harness) map[uint64]bool {
	t.Helper()
	marks := map[uint64]bool{}
	for _, line := range groupMarkLines(t, h) {
		var id, mflags, mask uint64
		if n, _ := fmt.Sscanf(line, "fanotify mnt_id:%x mflags:%x mask:%x", &id, &mflags, &mask); n == 3 && mask != 0 {
			marks[id] = true
		}
	}
	return marks
}

func mountID(t *testing.T, path string) uint64 {
	t.Helper()
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &sx); err != nil {
		t.Fatal(err)
	}
	return sx.Mnt_id
}

// noKernelMarkOn waits until the group has no mark on the inode id.
func noKernelMarkOn(t *testing.T, h *harness, id fileID, what string) {
	t.Helper()
	eventually(t, "no kernel mark left on "+what, func() bool { return !kernelInodeMarks(t, h)[id] })
}

// stopMountFollower ends the source's mount follower, for tests that
// show what the path watcher alone does: any mount on the machine (other
// tests, other sessions) would have the follower move a mark whose path
// changed meanwhile.
func stopMountFollower(t *testing.T, h *harness) {
	t.Helper()
	if h.src.mounts == nil {
		return
	}
	h.src.mounts.sig.Stop()
	select {
	case <-h.src.mounts.keeper.Done():
	case <-time.After(wait):
		t.Fatal("the mount follower did not stop")
	}
}

func mustStatID(t *testing.T, path string) fileID {
	t.Helper()
	id, ok := statID(path)
	if !ok {
		t.Fatalf("stat %s failed", path)
	}
	return id
}

// TestMountOverDirectoryMovesTheMark: a tmpfs mounted over a directory of
// a marked file's path makes the path lead into the new file system: the
// mark moves there (waiting on the new root until the file is made in it,
// then on the file, whose open is held) and the hidden file loses its
// kernel mark; unmounted, the mark goes back to the original file.
func TestMountOverDirectoryMovesTheMark(t *testing.T) {
	h := deciding(t, observer.Allow)
	if h.src.mounts == nil {
		t.Fatal("no mount follower")
	}
	root := ownTmpfs(t)
	a := filepath.Join(root, "a")
	path := filepath.Join(a, "b", "file")
	makeFile(t, path, "under\n")
	h.mark(path, Open)
	markedOn(t, h, path)
	under := mustStatID(t, path)
	if !kernelInodeMarks(t, h)[under] {
		t.Fatal("the file has no kernel mark")
	}

	mountTmpfs(t, a)
	// The path is missing in the new file system: covered through its
	// root, and the hidden file no longer marked.
	markedThrough(t, h, a)
	if !h.src.snap.Load().pending {
		t.Error("mark not pending on the empty file system mounted over its path")
	}
	noKernelMarkOn(t, h, under, "the hidden file")

	makeFile(t, path, "over\n")
	markedOn(t, h, path)
	over := mustStatID(t, path)
	h.catHeld(path, path, "over\n")

	unmount(t, a)
	markedThrough(t, h, path)
	markedOn(t, h, path)
	if id := mustStatID(t, path); id != under {
		t.Fatalf("after the unmount %s is %v, want the original %v", path, id, under)
	}
	h.catHeld(path, path, "under\n")
	noKernelMarkOn(t, h, over, "the unmounted file system's file")
	if !kernelInodeMarks(t, h)[under] {
		t.Error("the original file has no kernel mark after the unmount")
	}
}

// TestBindMountOverMarkedFile: a file bind-mounted over the marked file
// takes its mark (opens through the marked path are held, opens of the
// same inode by its own path are not: the mark is a path's); unmounted,
// the mark goes back.
func TestBindMountOverMarkedFile(t *testing.T) {
	h := deciding(t, observer.Allow)
	root := ownTmpfs(t)
	path := filepath.Join(root, "a", "file")
	other := filepath.Join(root, "other")
	makeFile(t, path, "mine\n")
	makeFile(t, other, "other\n")
	h.mark(path, Open)
	markedOn(t, h, path)
	mine, theirs := mustStatID(t, path), mustStatID(t, other)

	bindMount(t, other, path)
	markedOn(t, h, path)
	noKernelMarkOn(t, h, mine, "the file under the bind mount")
	h.catHeld(path, path, "other\n")
	h.catFree(other, "other\n")

	unmount(t, path)
	markedOn(t, h, path)
	if id := mustStatID(t, path); id != mine {
		t.Fatalf("after the unmount %s is %v, want %v", path, id, mine)
	}
	noKernelMarkOn(t, h, theirs, "the file once bind-mounted")
	h.catHeld(path, path, "mine\n")
	h.catFree(other, "other\n")
}

// TestMountOverTreeMovesTheMountMark: a MarkTree whose directory a mount
// hides loses its mark on the old mount, covers the directory once it
// exists on the new one, and goes back to the old mount when that is
// unmounted.
func TestMountOverTreeMovesTheMountMark(t *testing.T) {
	h := deciding(t, observer.Allow)
	root := ownTmpfs(t)
	a := filepath.Join(root, "a")
	tree := filepath.Join(a, "tree")
	makeFile(t, filepath.Join(tree, "file"), "old\n")
	if _, err := h.src.MarkTree(tree, Open); err != nil {
		t.Fatal(err)
	}
	old := mountID(t, tree)
	if !kernelMountMarks(t, h)[old] {
		t.Fatal("no kernel mark on the tree's mount")
	}

	mountTmpfs(t, a)
	markedThrough(t, h, a)
	eventually(t, "no kernel mark left on the hidden mount", func() bool { return !kernelMountMarks(t, h)[old] })
	makeFile(t, filepath.Join(tree, "file"), "new\n")
	over := mountID(t, tree)
	eventually(t, "kernel mark on the mount over the tree", func() bool { return kernelMountMarks(t, h)[over] })
	h.catHeld(filepath.Join(tree, "file"), tree, "new\n")

	unmount(t, a)
	eventually(t, "kernel mark back on the tree's mount", func() bool { return kernelMountMarks(t, h)[old] })
	h.catHeld(filepath.Join(tree, "file"), tree, "old\n")
}

// moveMount moves the mount at from to to (MS_MOVE).
func moveMount(t *testing.T, from, to string) {
	t.Helper()
	if err := unix.Mount(from, to, "", unix.MS_MOVE, ""); err != nil {
		t.Fatalf("move mount %s to %s: %v", from, to, err)
	}
	cleanupMount(t, to)
}

// filledTmpfs mounts a tmpfs on a fresh directory under root holding
// rel with content, ready to be moved into place.
func filledTmpfs(t *testing.T, root, rel, content string) string {
	t.Helper()
	stage, err := os.MkdirTemp(root, "stage")
	if err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, stage)
	makeFile(t, filepath.Join(stage, rel), content)
	return stage
}

// TestPendingPathAppearsWithAMount: a missing path, two components below
// its nearest existing ancestor, appears because a file system that holds
// it is mounted on that ancestor: no inotify record says so (nothing was
// created in a watched directory), the mount follower marks it.
func TestPendingPathAppearsWithAMount(t *testing.T) {
	h := deciding(t, observer.Allow)
	root := ownTmpfs(t)
	a := filepath.Join(root, "a")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a, "sub", "deep", "file")
	h.mark(path, Open)
	markedThrough(t, h, a)
	stage := filledTmpfs(t, root, "sub/deep/file", "mounted\n")

	moveMount(t, stage, a)
	markedOn(t, h, path)
	if h.src.snap.Load().pending {
		t.Error("still pending once the mount brought the path")
	}
	h.catHeld(path, path, "mounted\n")
}

// TestMountBelowPendingAncestor: the missing component of a pending path
// is made and a file system holding the rest mounted on it at once; the
// mount point lies below the directory the mark waited on, so the mount
// cannot be told relevant by its mount point being above the mark's
// existing part. Whichever of the path watcher and the mount follower
// comes first, the file ends up marked.
func TestMountBelowPendingAncestor(t *testing.T) {
	h := deciding(t, observer.Allow)
	root := ownTmpfs(t)
	a := filepath.Join(root, "a")
	b := filepath.Join(a, "b")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(b, "c", "file")
	h.mark(path, Open)
	markedThrough(t, h, a)
	stage := filledTmpfs(t, root, "c/file", "below\n")

	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	moveMount(t, stage, b)
	markedThrough(t, h, path)
	h.catHeld(path, path, "below\n")

	// Unmounted (the path watcher's watches in it report that), the mark
	// waits on the empty directory; a mount there now is seen by the
	// mount follower alone.
	unmount(t, b)
	markedThrough(t, h, b)
	stage = filledTmpfs(t, root, "c/file", "again\n")
	moveMount(t, stage, b)
	markedThrough(t, h, path)
	h.catHeld(path, path, "again\n")
}

// TestMountChangesCostNothingUnlessAMarkMoves: without marks a change of
// the mount table resolves nothing; with marks, a mount that moves none
// of them makes no kernel or watch changes (moves stays), one over a
// marked path does.
func TestMountChangesCostNothingUnlessAMarkMoves(t *testing.T) {
	h := deciding(t, observer.Allow)
	mf := h.src.mounts
	root := ownTmpfs(t)
	unrelated := filepath.Join(root, "unrelated")
	if err := os.Mkdir(unrelated, 0o755); err != nil {
		t.Fatal(err)
	}

	signals := mf.signals.Load()
	mountTmpfs(t, unrelated)
	eventually(t, "the mount follower saw the mount", func() bool { return mf.signals.Load() > signals })
	unmount(t, unrelated)
	if n := mf.moves.Load(); n != 0 {
		t.Fatalf("%d re-resolutions without marks", n)
	}

	path := filepath.Join(root, "a", "file")
	makeFile(t, path, "x\n")
	h.mark(path, Open)
	markedOn(t, h, path)
	signals = mf.signals.Load()
	mountTmpfs(t, unrelated)
	eventually(t, "the mount follower saw the unrelated mount", func() bool { return mf.signals.Load() > signals })
	if n := mf.moves.Load(); n != 0 {
		t.Fatalf("%d re-resolutions for a mount no mark goes through", n)
	}

	mountTmpfs(t, filepath.Join(root, "a"))
	eventually(t, "a re-resolution for a mount over the marked path", func() bool { return mf.moves.Load() > 0 })
	markedThrough(t, h, filepath.Join(root, "a"))
}

// TestRenamedAwayFileLosesItsMark: a marked file renamed away keeps no
// kernel mark (removed through its file handle): its opens under the new
// name are not even reported.
func TestRenamedAwayFileLosesItsMark(t *testing.T) {
	h := deciding(t, observer.Allow)
	dir := t.TempDir()
	path := filepath.Join(dir, "conf")
	makeFile(t, path, "old\n")
	h.mark(path, Open)
	markedOn(t, h, path)
	id := mustStatID(t, path)
	away := filepath.Join(dir, "conf.away")
	if err := os.Rename(path, away); err != nil {
		t.Fatal(err)
	}
	markedThrough(t, h, dir)
	noKernelMarkOn(t, h, id, "the renamed file")
	read := h.src.Stats().Read
	h.catFree(away, "old\n")
	// The directory's mark (children's opens) still reports it, but not
	// as a mark of the file's own inode: at most that one event.
	if n := h.src.Stats().Read - read; n > 1 {
		t.Errorf("%d events read for one open of the renamed file", n)
	}
}

// TestOpenByHandleReachesHiddenInode: the removal path itself, on an inode
// hidden under a mount, and refuses an inode of another file system.
func TestOpenByHandleReachesHiddenInode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH")
	}
	root := ownTmpfs(t)
	path := filepath.Join(root, "a", "b", "file")
	makeFile(t, path, "x")
	id := mustStatID(t, path)
	handle := handleOf(path)
	if handle == nil {
		t.Skip("tmpfs gives no file handles here")
	}
	mountTmpfs(t, filepath.Join(root, "a"))
	fd, ok := openByHandle(targetKey{dev: id.dev, ino: id.ino}, path, handle)
	if !ok {
		t.Fatal("hidden inode not reached through its handle")
	}
	got, _ := fdID(fd)
	unix.Close(fd)
	if got != id {
		t.Fatalf("reached %v, want %v", got, id)
	}
	// Same handle, claimed for an inode it is not: refused.
	if fd, ok := openByHandle(targetKey{dev: id.dev, ino: id.ino + 1}, path, handle); ok {
		unix.Close(fd)
		t.Error("a handle opened as another inode")
	}
}

// TestHiddenFileSystemReachedThroughAnotherMount: a mount over a whole
// file system's mount point hides every directory of it on the path; the
// file's mark is still removed through another mount of that file system
// (found in the mount table).
func TestHiddenFileSystemReachedThroughAnotherMount(t *testing.T) {
	h := deciding(t, observer.Allow)
	root := ownTmpfs(t)
	inner, alias := filepath.Join(root, "inner"), filepath.Join(root, "alias")
	for _, d := range []string{inner, alias} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mountTmpfs(t, inner)
	bindMount(t, inner, alias)
	path := filepath.Join(inner, "file")
	makeFile(t, path, "x\n")
	h.mark(path, Open)
	markedOn(t, h, path)
	id := mustStatID(t, path)

	mountTmpfs(t, inner)
	markedThrough(t, h, inner)
	noKernelMarkOn(t, h, id, "the file of the file system mounted over")
}

func TestParentDir(t *testing.T) {
	for in, want := range map[string]string{"/": "", "": "", "/a": "/", "/a/b": "/a", "/a/b/c": "/a/b"} {
		if got := parentDir(in); got != want {
			t.Errorf("parentDir(%q) = %q, want %q", in, got, want)
		}
	}
}
