package units

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer/autofs"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// automountSetup is a bind mount of a directory holding a known file,
// behind an automount, in the test's directory.
type automountSetup struct {
	*mountHarness
	src, where      string
	mount, autoName string
}

func newAutomountHarness(t *testing.T, what, automountExtra string) *automountSetup {
	t.Helper()
	if _, err := os.Stat(autofs.ControlPath); err != nil {
		t.Skipf("no autofs: %v", err)
	}
	s := &automountSetup{}
	s.mountHarness = newMountHarness(t, func(dir string) map[string]string {
		s.src = filepath.Join(dir, "src")
		s.where = filepath.Join(dir, "mnt", "data")
		os.MkdirAll(s.src, 0o755)
		os.WriteFile(filepath.Join(s.src, "hello"), []byte("hello from the disk\n"), 0o644)
		if what == "" {
			what = s.src
		}
		s.mount = mountName(t, s.where)
		esc, err := unitfile.EscapePath(s.where)
		if err != nil {
			t.Fatal(err)
		}
		s.autoName = esc + ".automount"
		return map[string]string{
			s.mount:    "[mount]\nwhat = \"" + what + "\"\nwhere = \"" + s.where + "\"\noptions = \"bind\"\ntimeout = \"5s\"\n",
			s.autoName: "[automount]\nwhere = \"" + s.where + "\"\n" + automountExtra,
		}
	}, nil)
	return s
}

// accessMount runs an accessor in a process group of its own: the test
// process's group is the autofs daemon, whose accesses never trigger. The
// harness's reaper may collect the child before Wait does, so the exit
// status travels on stdout.
func accessMount(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := `"$@"; echo "exit=$?"`
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "sh", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v hung: the automount never answered", name, args)
	}
	text := out.String()
	i := strings.LastIndex(text, "exit=")
	if i < 0 {
		return text, fmt.Errorf("%s %v: no exit status: %s", name, args, strings.TrimSpace(errb.String()))
	}
	if code := strings.TrimSpace(text[i+len("exit="):]); code != "0" {
		return text[:i], fmt.Errorf("%s %v: exit status %s: %s", name, args, code, strings.TrimSpace(errb.String()))
	}
	return text[:i], nil
}

func statfsType(t testing.TB, p string) int64 {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		t.Fatalf("statfs %s: %v", p, err)
	}
	return sfs.Type
}

func (s *automountSetup) waitSub(name, sub string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, got := s.state(name)
		if got == sub {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: sub-state %s, want %s\nlog:\n%s", name, got, sub, s.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAutomountMountsOnFirstAccess(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, s.logText())
	}
	if a, sub := s.state(s.autoName); a != "active" || sub != automountWaiting {
		t.Fatalf("automount %s (%s), want active (waiting)", a, sub)
	}
	if got := statfsType(t, s.where); got != autofs.SuperMagic {
		t.Fatalf("%s: magic %#x, want autofs", s.where, got)
	}
	if a, _ := s.state(s.mount); a == "active" {
		t.Fatal("the autofs trigger made the mount unit active")
	}
	out, err := accessMount(t, "ls", s.where)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.logText())
	}
	if strings.TrimSpace(out) != "hello" {
		t.Fatalf("ls = %q, want the file of the mounted directory", out)
	}
	s.waitState(s.mount, "active", 30*time.Second)
	s.waitSub(s.autoName, automountRunning)
	if got := s.prop(s.autoName, "Requests"); got != "1" {
		t.Errorf("Requests = %s, want 1", got)
	}
	var triggers []string
	s.do(func() { triggers = s.m.Unit(s.autoName).Deps(Triggers) })
	if len(triggers) != 1 || triggers[0] != s.mount {
		t.Errorf("Triggers = %v", triggers)
	}
}

func TestAutomountConcurrentAccessorsAllSucceed(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := accessMount(t, "cat", filepath.Join(s.where, "hello"))
			if err == nil && !strings.Contains(out, "hello from the disk") {
				err = fmt.Errorf("read %q", out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if a, _ := s.state(s.mount); a != "active" {
		t.Errorf("mount unit %s after the accesses", a)
	}
}

func TestAutomountIdleExpiryAndRemount(t *testing.T) {
	s := newAutomountHarness(t, "", "timeout-idle = \"1s\"\n")
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	if _, err := accessMount(t, "ls", s.where); err != nil {
		t.Fatal(err)
	}
	s.waitState(s.mount, "active", 30*time.Second)
	// Idle: the kernel's expire request stops the mount unit.
	s.waitState(s.mount, "inactive", 30*time.Second)
	s.waitSub(s.autoName, automountWaiting)
	if got := statfsType(t, s.where); got != autofs.SuperMagic {
		t.Fatalf("after expiry: magic %#x, want the autofs trigger back", got)
	}
	out, err := accessMount(t, "ls", s.where)
	if err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("after expiry: ls = %q, %v\n%s", out, err, s.logText())
	}
	if !strings.Contains(s.logText(), "Got expire request") {
		t.Error("no expire request in the log")
	}
}

func TestAutomountFailedMountFailsAccessors(t *testing.T) {
	s := newAutomountHarness(t, "/nonexistent/vigil-source", "")
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	_, err := accessMount(t, "ls", s.where)
	if err == nil {
		t.Fatal("ls succeeded although the mount fails")
	}
	t.Logf("accessor: %v", err)
	s.waitState(s.mount, "failed", 30*time.Second)
	if a, sub := s.state(s.autoName); a != "active" || sub != automountWaiting {
		t.Errorf("automount %s (%s) after the failure, want active (waiting): later accesses try again", a, sub)
	}
	if got := s.prop(s.autoName, "FailedRequests"); got != "1" {
		t.Errorf("FailedRequests = %s, want 1", got)
	}
}

func TestAutomountStopUnmountsMountThenTrigger(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	if _, err := accessMount(t, "ls", s.where); err != nil {
		t.Fatal(err)
	}
	s.waitState(s.mount, "active", 30*time.Second)
	if res, why := s.stop(s.autoName); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)\n%s", res, why, s.logText())
	}
	if a, _ := s.state(s.mount); a != "inactive" {
		t.Errorf("mount unit %s after the automount stopped", a)
	}
	if got := statfsType(t, s.where); got == autofs.SuperMagic {
		t.Error("the autofs trigger is still mounted")
	}
	if _, ok := isMounted(t, s.where); ok {
		t.Error("something is still mounted at the mount point")
	}
	// Restartable: the trigger comes back.
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("restart: %s (%s)\n%s", res, why, s.logText())
	}
	if out, err := accessMount(t, "ls", s.where); err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("after restart: %q, %v", out, err)
	}
}

func TestAutomountSurvivesReload(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	var before uint64
	s.do(func() { before = s.m.Unit(s.autoName).behaviour.(*automount).trigger.DevID() })
	// A changed file: the unit is reconfigured, not replaced.
	s.write(map[string]string{s.autoName: "[automount]\nwhere = \"" + s.where + "\"\ntimeout-idle = \"1h\"\n"})
	var changed []string
	s.do(func() { changed = s.m.Reload().Changed })
	if !strings.Contains(strings.Join(changed, " "), s.autoName) {
		t.Errorf("reload changed %v, want %s", changed, s.autoName)
	}
	var after uint64
	var same bool
	s.do(func() {
		a := s.m.Unit(s.autoName).behaviour.(*automount)
		same = a.trigger != nil
		if same {
			after = a.trigger.DevID()
		}
	})
	if !same || after != before {
		t.Fatalf("the trigger was replaced by the reload (dev %d -> %d)", before, after)
	}
	if out, err := accessMount(t, "ls", s.where); err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("after reload: %q, %v", out, err)
	}
}

func TestAutomountDefaultDependencies(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	s.do(func() {
		u := s.m.Unit(s.autoName)
		for _, want := range []struct {
			k    DepKind
			name string
		}{{Before, s.mount}, {Triggers, s.mount}, {Before, "local-fs.target"}, {Conflicts, "umount.target"}} {
			if !u.hasDep(want.k, want.name) {
				t.Errorf("%s has no %s=%s", s.autoName, want.k, want.name)
			}
		}
		if !s.m.Unit(s.mount).hasDep(TriggeredBy, s.autoName) {
			t.Errorf("%s is not TriggeredBy %s", s.mount, s.autoName)
		}
	})
}

func TestAutomountOnAMountPointIsRefused(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	if res, why := s.start(s.mount); res != api.ResultDone {
		t.Fatalf("start mount: %s (%s)", res, why)
	}
	if res, _ := s.start(s.autoName); res == api.ResultDone {
		if a, _ := s.state(s.autoName); a != "failed" {
			t.Fatalf("automount over a mounted file system: %s", a)
		}
	}
	if !strings.Contains(s.logText(), "already a mount point") {
		t.Errorf("no reason in the log:\n%s", s.logText())
	}
}

// blockedMounts makes every mount call wait until released.
type blockedMounts struct {
	release chan struct{}
	once    sync.Once
}

func (x *blockedMounts) Mount(string, string, string, uintptr, string) error {
	<-x.release
	return fmt.Errorf("released")
}
func (x *blockedMounts) Unmount(string, int) error { return nil }
func (x *blockedMounts) free()                     { x.once.Do(func() { close(x.release) }) }

func TestAutomountStopAnswersWaitingAccessors(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	blocked := &blockedMounts{release: make(chan struct{})}
	t.Cleanup(blocked.free)
	s.do(func() { s.m.mounts.sys = blocked })
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	result := make(chan error, 1)
	go func() {
		_, err := accessMount(t, "ls", s.where)
		result <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pending := 0
		s.do(func() {
			if a := s.m.Unit(s.autoName).behaviour.(*automount); a.trigger != nil {
				pending = a.trigger.Pending()
			}
		})
		if pending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending request\n%s", s.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a, _ := s.state(s.mount); a != "activating" {
		t.Fatalf("mount unit %s while its mount call hangs", a)
	}
	if res, why := s.stop(s.autoName); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)\n%s", res, why, s.logText())
	}
	if err := <-result; err == nil {
		t.Fatal("the waiting accessor succeeded without a mount")
	}
	if got := statfsType(t, s.where); got == autofs.SuperMagic {
		t.Error("the trigger is still mounted after stop")
	}
	if a, _ := s.state(s.autoName); a != "inactive" {
		t.Errorf("automount %s after stop", a)
	}
}

func TestAutomountOnAFileFails(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	os.MkdirAll(filepath.Dir(s.where), 0o755)
	if err := os.WriteFile(s.where, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start(s.autoName)
	if a, _ := s.state(s.autoName); a != "failed" {
		t.Fatalf("automount on a file: %s", a)
	}
	if got := s.prop(s.autoName, "Result"); got != "resources" {
		t.Errorf("Result = %s", got)
	}
	if !strings.Contains(s.logText(), s.where) || !strings.Contains(s.logText(), "Failed to set up the automount") {
		t.Errorf("no reason naming the path in the log:\n%s", s.logText())
	}
}

// TestAutomountManagerCloseAnswersWaitingAccessors: a manager that goes
// away without stopping its units (Close) still answers the accessors.
func TestAutomountManagerCloseAnswersWaitingAccessors(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	blocked := &blockedMounts{release: make(chan struct{})}
	t.Cleanup(blocked.free)
	s.do(func() { s.m.mounts.sys = blocked })
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	result := make(chan error, 1)
	go func() {
		_, err := accessMount(t, "ls", s.where)
		result <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for pending := 0; pending != 1; {
		s.do(func() { pending = s.m.Unit(s.autoName).behaviour.(*automount).trigger.Pending() })
		if time.Now().After(deadline) {
			t.Fatal("no pending request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.do(s.m.closeAutomounts)
	if err := <-result; err == nil {
		t.Fatal("the waiting accessor succeeded without a mount")
	}
	if got := statfsType(t, s.where); got == autofs.SuperMagic {
		t.Error("the trigger is still mounted after Close")
	}
}
