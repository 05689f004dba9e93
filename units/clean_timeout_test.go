package units

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// blockedFUSE mounts on dir a FUSE file system whose server never
// answers, not even the kernel's INIT: whatever reaches it (opening its
// root) blocks until release, which aborts the connection and unmounts.
func blockedFUSE(t *testing.T, dir string) (release func()) {
	t.Helper()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("vigil-test", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Skipf("cannot mount a FUSE file system here: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			unix.Close(fd) // the last fd of the connection: it is aborted, blocked calls fail
			unix.Unmount(dir, unix.MNT_DETACH)
		})
	}
	t.Cleanup(release)
	return release
}

// TestCleanTimeout: a clean whose removal hangs (a directory with a FUSE
// file system that never answers mounted below it) is cut off by
// timeout-clean: the service ends failed with result and clean result
// timeout, while the manager goes on serving other units; reset-failed
// and a start work as for any failed unit.
func TestCleanTimeout(t *testing.T) {
	h, roots := execDirHarness(t, map[string]string{
		"hangs.service": `[service]
type = "oneshot"
state-directory = "hangs"
timeout-clean = "1s"
exec-start = "/bin/true"
`,
		"other.service": "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n",
	})
	if r, why := h.start("hangs.service"); r != api.ResultDone {
		t.Fatalf("start: %s %s", r, why)
	}
	h.waitState("hangs.service", string(StateInactive), 30*time.Second)
	dir := filepath.Join(roots.State, "hangs")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	release := blockedFUSE(t, mnt)

	if err := h.clean("hangs.service", "state"); err != nil {
		t.Fatalf("clean: %v", err)
	}
	// The manager serves other units while the removal hangs.
	if r, why := h.start("other.service"); r != api.ResultDone {
		t.Errorf("another unit's start while a clean hangs: %s %s", r, why)
	}
	h.waitState("hangs.service", string(StateFailed), 30*time.Second)
	if got := h.prop("hangs.service", "Result"); got != "timeout" {
		t.Errorf("Result after the clean timed out = %q, want timeout", got)
	}
	var cleanResult string
	h.do(func() { cleanResult = h.m.CleanResult("hangs.service") })
	if cleanResult != "timeout" {
		t.Errorf("CleanResult = %q, want timeout", cleanResult)
	}
	if !exists(dir) {
		t.Errorf("the hanging removal took %s away", dir)
	}
	if !strings.Contains(h.logText(), "Cleaning timed out") {
		t.Errorf("nothing logged of the timeout:\n%s", h.logText())
	}
	// The removal is still blocked; the manager still answers.
	if r, why := h.start("other.service"); r != api.ResultDone {
		t.Errorf("another unit's start after the timeout: %s %s", r, why)
	}
	// Unblocked, the abandoned removal changes nothing more, and the unit
	// stays failed until reset.
	release()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(h.logText(), "abandoned clean has ended") {
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned removal did not end after the FUSE connection was aborted:\n%s", h.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a, _ := h.state("hangs.service"); a != string(StateFailed) {
		t.Errorf("after the abandoned removal ended the unit is %s, want failed", a)
	}
	if !exists(dir) {
		t.Errorf("the abandoned removal went on and took %s away", dir)
	}
	var err error
	h.do(func() { err = h.m.ResetFailed([]string{"hangs.service"}) })
	if err != nil {
		t.Fatal(err)
	}
	if r, why := h.start("hangs.service"); r != api.ResultDone {
		t.Errorf("start after reset-failed: %s %s", r, why)
	}
	// A clean without the hang succeeds and leaves the result success.
	h.waitState("hangs.service", string(StateInactive), 30*time.Second)
	if err := h.clean("hangs.service", "state"); err != nil {
		t.Fatalf("second clean: %v", err)
	}
	h.waitCleaned("hangs.service")
	h.do(func() { cleanResult = h.m.CleanResult("hangs.service") })
	if a, _ := h.state("hangs.service"); a != string(StateInactive) || cleanResult != "success" || exists(dir) {
		t.Errorf("second clean: state %s, clean result %s, directory left %v", a, cleanResult, exists(dir))
	}
}

// TestTimeoutCleanKey: timeout-clean parses as a duration, defaults to
// infinity as systemd's TimeoutCleanSec= does, and is what the manager
// reports.
func TestTimeoutCleanKey(t *testing.T) {
	h, _ := execDirHarness(t, map[string]string{
		"default.service": "[service]\nexec-start = \"/bin/true\"\nstate-directory = \"d\"\n",
		"set.service":     "[service]\nexec-start = \"/bin/true\"\nstate-directory = \"s\"\ntimeout-clean = \"2min 5s\"\n",
		"sock.socket":     "[socket]\nlisten-stream = \"/run/vigil-test-never.sock\"\ntimeout-clean = \"3s\"\n",
	})
	var def, set, sock time.Duration
	h.do(func() {
		def, set, sock = h.m.TimeoutClean("default.service"), h.m.TimeoutClean("set.service"), h.m.TimeoutClean("sock.socket")
	})
	if def != unitfile.Infinity || set != 125*time.Second || sock != 3*time.Second {
		t.Errorf("timeout-clean: default %v, set %v, socket %v; want infinity, 2m5s, 3s", def, set, sock)
	}
}

// TestRemoveTree: the removal takes a tree with files, symlinks and
// nested directories; a symlink is removed, not followed; a file system
// mounted below stays (an error says so); a stopped removal changes
// nothing.
func TestRemoveTree(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o644)
	tree := filepath.Join(base, "tree")
	for i := 0; i < 3; i++ {
		d := filepath.Join(tree, fmt.Sprintf("d%d", i), "sub")
		os.MkdirAll(d, 0o755)
		for j := 0; j < 50; j++ {
			os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", j)), nil, 0o644)
		}
	}
	os.Symlink(outside, filepath.Join(tree, "link"))
	os.Chmod(filepath.Join(tree, "d1"), 0o500) // read-only to its owner; root removes anyway

	var stop atomic.Bool
	stop.Store(true)
	if err := removeTree(tree, &stop); err != errCleanAbandoned || !exists(filepath.Join(tree, "d0", "sub", "f0")) {
		t.Errorf("a stopped removal: %v, and the tree went", err)
	}
	stop.Store(false)
	if err := removeTree(tree, &stop); err != nil {
		t.Fatalf("removeTree: %v", err)
	}
	if exists(tree) || !exists(filepath.Join(outside, "keep")) {
		t.Errorf("after removeTree: tree left %v, the symlink's target kept %v", exists(tree), exists(filepath.Join(outside, "keep")))
	}
	if err := removeTree(tree, &stop); err != nil {
		t.Errorf("removeTree of nothing: %v", err)
	}

	// A tmpfs mounted below: its contents stay.
	mnt := filepath.Join(base, "m", "mnt")
	os.MkdirAll(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	os.WriteFile(filepath.Join(mnt, "inside"), []byte("i"), 0o644)
	err := removeTree(filepath.Join(base, "m"), &stop)
	if err == nil || !strings.Contains(err.Error(), "mount point") {
		t.Errorf("removeTree over a mount point: %v, want an error naming it", err)
	}
	if !exists(filepath.Join(mnt, "inside")) {
		t.Errorf("removeTree went into a mounted file system")
	}
}

// BenchmarkRemoveTree removes a tree of 1,000 files in 10 directories
// with the clean's removal, and with os.RemoveAll for comparison.
func BenchmarkRemoveTree(b *testing.B) {
	var stop atomic.Bool
	for _, bc := range []struct {
		name   string
		remove func(string) error
	}{
		{"removeTree", func(p string) error { return removeTree(p, &stop) }},
		{"os.RemoveAll", os.RemoveAll},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := b.TempDir()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tree := filepath.Join(base, "t")
				for d := 0; d < 10; d++ {
					dir := filepath.Join(tree, fmt.Sprintf("d%d", d))
					os.MkdirAll(dir, 0o755)
					for f := 0; f < 100; f++ {
						os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", f)), nil, 0o644)
					}
				}
				b.StartTimer()
				if err := bc.remove(tree); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
