package dbus

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units"
	"vigil/units/cgroup"
	vexec "vigil/units/exec"
)

func TestMain(m *testing.M) {
	if vexec.IsTrampoline(os.Args[0]) {
		vexec.TrampolineMain()
		return
	}
	if dir := os.Getenv(serveEnv); dir != "" {
		os.Exit(serverMain(dir))
	}
	os.Exit(m.Run())
}

// serveEnv makes the test binary a manager with a D-Bus server instead of
// running tests (see procHarness).
const serveEnv = "VIGIL_DBUS_TEST_SERVE"

// busEnv, in server mode, also serves the system bus at that socket.
const busEnv = "VIGIL_DBUS_TEST_BUS"

// profileEnv, in server mode, writes a CPU profile of the server to that
// file when it stops (for the benchmarks of real clients).
const profileEnv = "VIGIL_DBUS_TEST_CPUPROFILE"

// serverMain runs a manager with its D-Bus server on dir/units and
// dir/private until stdin closes.
func serverMain(dir string) int {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	loop := observer.New(observer.Options{Logf: logf})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := process.Start(ctx, loop); err != nil {
		logf("reaper: %v", err)
		return 1
	}
	var err error
	var tree *cgroup.Tree
	if cg := os.Getenv(cgroupEnv); cg != "" {
		if tree, err = cgroup.Open(cg); err != nil {
			logf("cgroup: %v", err)
			return 1
		}
	}
	m, err := units.New(loop, units.Options{UnitPaths: []string{filepath.Join(dir, "units")},
		RuntimeDir: filepath.Join(dir, "run"), StateDir: filepath.Join(dir, "state"), Logf: logf, Cgroups: tree,
		ExecDirectoryRoots: testExecDirectoryRoots(dir)})
	if err != nil {
		logf("manager: %v", err)
		return 1
	}
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	srv, err := NewServer(NewUnitsAdapter(loop, m), Options{Logf: logf})
	if err != nil {
		logf("server: %v", err)
		return 1
	}
	if err := srv.ListenPrivate(filepath.Join(dir, "private")); err != nil {
		logf("%v", err)
		return 1
	}
	if bus := os.Getenv(busEnv); bus != "" {
		go srv.ServeSystemBus(ctx, bus)
	}
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			logf("profile: %v", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			logf("profile: %v", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	stopAll(loop, m)
	cancel()
	<-done
	return 0
}

// stopAll stops every unit and waits (up to 5 s) for the jobs to finish,
// so that no process outlives a test.
func stopAll(loop *observer.Loop, m *units.Manager) {
	loop.Call(context.Background(), func() {
		for _, u := range m.Units() {
			if st, _ := u.Active(); !st.IsInactiveOrFailed() {
				m.Enqueue(u.Name, "stop", "replace")
			}
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		busy := false
		loop.Call(context.Background(), func() { busy = len(m.Jobs()) > 0 })
		if !busy {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procHarness runs the manager and server in a child copy of the test
// binary. Outside clients must be run this way: the manager's reaper is a
// subreaper that collects every child of its process, including clients a
// test would start and wait for.
type procHarness struct {
	t     testing.TB
	dir   string
	units string
	sock  string
	stdin io.WriteCloser
	logs  *syncBuffer
	pid   int // the server's
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newProcHarness(t testing.TB, files map[string]string, env ...string) *procHarness {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: real processes, SO_PEERCRED as root, mount namespaces")
	}
	dir := t.TempDir()
	h := &procHarness{t: t, dir: dir, units: filepath.Join(dir, "units"), sock: filepath.Join(dir, "private"), logs: &syncBuffer{}}
	if err := os.MkdirAll(h.units, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(h.units, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), serveEnv+"="+dir), env...)
	cmd.Stderr = h.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		h.stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs.String())
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("server said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("server did not start: %v\n%s", err, h.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server did not start in 10 s:\n%s", h.logs.String())
	}
	return h
}

// harness runs a real manager (with a real reaper, on units written to a
// temporary directory) and a Server on a temporary private socket.
type harness struct {
	t      testing.TB
	dir    string
	units  string
	sock   string
	loop   *observer.Loop
	m      *units.Manager
	srv    *Server
	logMu  sync.Mutex
	logBuf bytes.Buffer
}

func newHarness(t testing.TB, files map[string]string) *harness {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: real processes, SO_PEERCRED as root, mount namespaces")
	}
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, units: filepath.Join(dir, "units"), sock: filepath.Join(dir, "private")}
	if err := os.MkdirAll(h.units, 0o755); err != nil {
		t.Fatal(err)
	}
	h.write(files)
	h.loop = observer.New(observer.Options{Logf: h.logf})
	ctx, cancel := context.WithCancel(context.Background())
	reaper, err := process.Start(ctx, h.loop)
	if err != nil {
		t.Fatal(err)
	}
	m, err := units.New(h.loop, units.Options{UnitPaths: []string{h.units},
		RuntimeDir: filepath.Join(dir, "run"), StateDir: filepath.Join(dir, "state"), Logf: h.logf})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	done := make(chan struct{})
	go func() { h.loop.Run(ctx); close(done) }()
	srv, err := NewServer(NewUnitsAdapter(h.loop, m), Options{Logf: h.logf})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	if err := srv.ListenPrivate(h.sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		stopAll(h.loop, m)
		cancel()
		<-done
		// The next test's own children must not be reaped by this one.
		<-reaper.Done()
		if t.Failed() {
			h.logMu.Lock()
			t.Logf("manager log:\n%s", h.logBuf.String())
			h.logMu.Unlock()
		}
	})
	return h
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	h.logBuf.WriteString(strings.TrimSpace(sprintf(format, args...)) + "\n")
}

func (h *harness) write(files map[string]string) {
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(h.units, name), []byte(text), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// run runs a command with a deadline and returns its combined output and
// exit status.
func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C", "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "TERM=dumb"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v; output:\n%s", name, strings.Join(args, " "), timeout, out.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), 0
}

// systemctlScript runs systemctl in a private mount namespace where a fresh
// tmpfs covers /run/systemd, /run/systemd/system exists (sd_booted) and
// /run/systemd/private leads to our socket: the host's /run/systemd is
// never touched.
const systemctlScript = `set -e
mount -t tmpfs -o mode=0755 vigil-test /run/systemd
mkdir /run/systemd/system
ln -s "$1" /run/systemd/private
shift
exec systemctl --no-pager "$@"`

func (h *procHarness) systemctl(args ...string) (string, int) {
	h.t.Helper()
	if _, err := exec.LookPath("systemctl"); err != nil {
		h.t.Skip("systemctl is not installed")
	}
	all := append([]string{"-m", "--propagation", "private", "sh", "-c", systemctlScript, "sh", h.sock}, args...)
	return run(h.t, 30*time.Second, nil, "unshare", all...)
}
