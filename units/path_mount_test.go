package units

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountPrivateTmpfs mounts a private tmpfs on dir (made if missing),
// unmounted at the end of the test.
func mountPrivateTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		for unix.Unmount(dir, unix.MNT_DETACH) == nil {
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make %s private: %v", dir, err)
	}
}

// fanotifyMarksInode tells whether some fanotify group of this process
// has a mark asking for events on the inode path leads to (the kernel
// lists each group's marks in its descriptor's fdinfo).
func fanotifyMarksInode(path string) bool {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return false
	}
	infos, _ := filepath.Glob("/proc/self/fdinfo/*")
	for _, info := range infos {
		data, err := os.ReadFile(info)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			var ino, sdev, mflags, mask uint64
			if n, _ := fmt.Sscanf(line, "fanotify ino:%x sdev:%x mflags:%x mask:%x", &ino, &sdev, &mflags, &mask); n < 4 || mask == 0 {
				continue
			}
			// The kernel's dev_t: 12 bits of major above 20 of minor.
			if ino == st.Ino && unix.Mkdev(uint32(sdev>>20), uint32(sdev&(1<<20-1))) == uint64(st.Dev) {
				return true
			}
		}
	}
	return false
}

// TestPathHoldFollowsAMount: the held path appears because a file system
// that holds it (with stale content) is mounted over a directory of the
// path. The fanotify source marks it at that mount, so a reader opening it
// is held until the unit's service has written the file, and reads the
// new content, not the stale one.
func TestPathHoldFollowsAMount(t *testing.T) {
	h := newHoldHarness(t, map[string]string{
		"data.path":    "[path]\npath-changed = \"@DIR@/m/a/data\"\nhold = true\nhold-timeout = \"30s\"\n",
		"data.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/sh\", \"-c\", \"echo hello > @DIR@/m/a/data\"]\n",
	})
	m := h.path("m")
	mountPrivateTmpfs(t, m)
	a := filepath.Join(m, "a")
	stage := filepath.Join(m, "stage")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	mountPrivateTmpfs(t, stage)
	if err := os.WriteFile(filepath.Join(stage, "data"), []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustStart(t, h, "data.path")

	if err := unix.Mount(stage, a, "", unix.MS_MOVE, ""); err != nil {
		t.Fatalf("move mount %s to %s: %v", stage, a, err)
	}
	t.Cleanup(func() {
		for unix.Unmount(a, unix.MNT_DETACH) == nil {
		}
	})
	data := filepath.Join(a, "data")
	deadline := time.Now().Add(30 * time.Second)
	for !fanotifyMarksInode(data) {
		if time.Now().After(deadline) {
			t.Fatalf("%s, brought by a mount, not marked within 30s\n%s", data, h.logText())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := startReader(t, data)
	if err := r.wait(t, 30*time.Second); err != nil {
		t.Fatalf("cat: %v: %s", err, r.errb.String())
	}
	if got := r.out.String(); got != "hello\n" {
		t.Errorf("reader read %q, want the service's content\n%s", got, h.logText())
	}
	if a, _ := h.state("data.service"); a != "active" {
		t.Errorf("data.service is %s", a)
	}
}
