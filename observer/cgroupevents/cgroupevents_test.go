package cgroupevents

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// testGroup makes a fresh cgroup2 directory for one test, or skips when
// this machine has no writable cgroup2 hierarchy.
func testGroup(t *testing.T) string {
	t.Helper()
	mount := ""
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			mount = m
			break
		}
	}
	if mount == "" {
		t.Skip("no cgroup2 hierarchy")
	}
	dir := filepath.Join(mount, "vigil-test-events-"+strconv.Itoa(os.Getpid())+"-"+filepath.Base(t.Name()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	return dir
}

func startLoop(t *testing.T) (*observer.Loop, chan observer.Event) {
	t.Helper()
	loop := observer.New(observer.Options{Logf: t.Logf})
	events := make(chan observer.Event, 16)
	if _, err := loop.Register(observer.Observer{Guest: "test", Name: "cgroup",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{SourceName}}}},
		Notify: func(ev *observer.Event) { events <- *ev }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return loop, events
}

// bornIn starts argv inside the group dir (clone3 CLONE_INTO_CGROUP).
func bornIn(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestEmptyEventWhenLastProcessLeaves(t *testing.T) {
	dir := testGroup(t)
	loop, events := startLoop(t)
	w, err := Start(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Watch(dir, "x.service"); err != nil {
		t.Fatal(err)
	}
	// A shell that leaves a detached grandchild behind: the group is
	// empty only when the grandchild is gone too.
	// The clock starts before the sleep does: a loaded machine may take
	// long for the shell to exit after forking it.
	start := time.Now()
	cmd := bornIn(t, dir, "/bin/sh", "-c", "sleep 0.4 & exit 0")
	cmd.Wait()
	select {
	case ev := <-events:
		if ev.Kind != "empty" || ev.Attrs["unit"] != "x.service" || ev.Attrs["path"] != dir {
			t.Fatalf("event %s", ev.String())
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Fatalf("empty after %v: the detached sleep should have kept the group populated", time.Since(start))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no empty event")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if string(data) == "" || !strings.Contains(string(data), "populated 0") {
		t.Fatalf("cgroup.events: %q", data)
	}
}

func TestUnwatchedGroupIsSilent(t *testing.T) {
	dir := testGroup(t)
	loop, events := startLoop(t)
	w, err := Start(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Watch(dir, "x.service"); err != nil {
		t.Fatal(err)
	}
	w.Unwatch(dir)
	if len(w.Watching()) != 0 {
		t.Fatalf("still watching %v", w.Watching())
	}
	bornIn(t, dir, "/bin/true").Wait()
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %s", ev.String())
	case <-time.After(300 * time.Millisecond):
	}
}

func TestWatchMissingGroupFails(t *testing.T) {
	loop, _ := startLoop(t)
	w, err := Start(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Watch("/sys/fs/cgroup/no-such-group-here", "x"); err == nil {
		t.Fatal("watching a missing group succeeded")
	}
}
