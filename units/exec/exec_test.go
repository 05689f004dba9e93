package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary act as the trampoline, as cmd/vigil does.
func TestMain(m *testing.M) {
	if IsTrampoline(os.Args[0]) {
		TrampolineMain()
	}
	os.Exit(m.Run())
}

// forceTrampoline returns a copy of spec that goes through the trampoline
// while behaving the same: a nice level of 0 is what the tests run with.
func forceTrampoline(spec Spec) Spec {
	if spec.Nice == nil {
		zero := 0
		spec.Nice = &zero
	}
	return spec
}

// stubForTests is the exec stub of the "stub" mode, made once. Where it
// cannot be made that mode goes through the trampoline, and the stub's own
// tests (stub_test.go) fail or skip.
var stubForTests = sync.OnceValues(NewStub)

// withStub returns a copy of spec that asks for a start whose exec is not
// our vfork child's, with the stub to do it: specs that need no trampoline
// setting go through the stub.
func withStub(spec Spec) Spec {
	spec.Trampoline = true
	spec.Stub, _ = stubForTests()
	return spec
}

var modes = []struct {
	name  string
	apply func(Spec) Spec
}{
	{"direct", func(s Spec) Spec { return s }},
	{"trampoline", forceTrampoline},
	{"stub", withStub},
}

// run starts spec with stdout captured, reads it to EOF and waits for the
// child (tests have no reaper, so waiting for the one PID is fine).
func run(t *testing.T, spec Spec) (string, unix.WaitStatus, *Started) {
	t.Helper()
	if spec.Stdout.Kind == StdioNull {
		spec.Stdout = Pipe()
	}
	st, err := Start(&spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var out []byte
	if st.Stdout != nil {
		out, err = io.ReadAll(st.Stdout)
		st.Stdout.Close()
		if err != nil {
			t.Fatalf("read stdout: %v", err)
		}
	}
	return string(out), wait(t, st.PID), st
}

func wait(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("wait4 %d: %v", pid, err)
		}
		return ws
	}
}

func sh(script string, args ...string) Spec {
	return Spec{Path: "/bin/sh", Argv: append([]string{"sh", "-c", script, "sh"}, args...), Setsid: true}
}

func TestDirectAndTrampolineRunTheProgram(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			out, ws, st := run(t, m.apply(sh("echo hello; exit 3")))
			if out != "hello\n" || ws.ExitStatus() != 3 {
				t.Errorf("got %q status %d, want \"hello\\n\" status 3", out, ws.ExitStatus())
			}
			if st.Trampolined != (m.name == "trampoline") {
				t.Errorf("Trampolined = %v in mode %s", st.Trampolined, m.name)
			}
			if _, err := stubForTests(); err == nil && st.Stubbed != (m.name == "stub") {
				t.Errorf("Stubbed = %v in mode %s", st.Stubbed, m.name)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := sh("id -u; id -g; id -G")
			spec.Credential = &Credential{UID: 65534, GID: 65534, SupplementaryGroups: []uint32{65534, 4242}}
			out, ws, _ := run(t, m.apply(spec))
			if ws.ExitStatus() != 0 {
				t.Fatalf("status %d, output %q", ws.ExitStatus(), out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || lines[0] != "65534" || lines[1] != "65534" || !strings.Contains(lines[2], "4242") {
				t.Errorf("id printed %q", out)
			}
		})
	}
}

func TestUmask(t *testing.T) {
	spec := sh("umask")
	u := uint32(0o027)
	spec.Umask = &u
	out, _, st := run(t, spec)
	if strings.TrimSpace(out) != "0027" || !st.Trampolined {
		t.Errorf("umask printed %q (trampolined %v), want 0027", out, st.Trampolined)
	}
}

func TestUmaskLikeTheManagersNeedsNoTrampoline(t *testing.T) {
	current := uint32(unix.Umask(0o022))
	unix.Umask(int(current))
	spec := sh("umask")
	spec.Umask = &current
	out, _, st := run(t, spec)
	if st.Trampolined || strings.TrimSpace(out) != fmt.Sprintf("%04o", current) {
		t.Errorf("umask %q, trampolined %v", out, st.Trampolined)
	}
}

func TestNice(t *testing.T) {
	spec := sh("cut -d' ' -f19 /proc/$$/stat")
	n := 7
	spec.Nice = &n
	out, _, _ := run(t, spec)
	if strings.TrimSpace(out) != "7" {
		t.Errorf("nice in child = %q, want 7", out)
	}
}

func TestRlimits(t *testing.T) {
	spec := sh("ulimit -n; ulimit -Hn; ulimit -c")
	spec.Rlimits = map[int]Rlimit{
		unix.RLIMIT_NOFILE: {Cur: 1234, Max: 2345},
		unix.RLIMIT_CORE:   {Cur: RlimInfinity, Max: RlimInfinity},
	}
	out, _, _ := run(t, spec)
	if out != "1234\n2345\nunlimited\n" {
		t.Errorf("limits printed %q", out)
	}
}

// The trampoline is a Go program whose runtime raises its own soft nofile
// limit; the program it execs must still get the limit a direct child gets.
func TestTrampolineKeepsDefaultNofile(t *testing.T) {
	direct, _, _ := run(t, sh("ulimit -n"))
	via, _, _ := run(t, forceTrampoline(sh("ulimit -n")))
	if direct != via {
		t.Errorf("soft nofile: direct %q, via trampoline %q", direct, via)
	}
}

func TestEnvironmentAndExpansion(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := Spec{
				Path:       "/bin/sh",
				Argv:       []string{"sh", "-c", `printf '%s|' "$@"; printf '%s' "$ONLY"`, "sh", "$FOO", "${FOO}", "x${FOO}y", "$$", "$UNSET", "${UNSET:-dflt}", "a$FOO"},
				Env:        []string{"FOO=a  b", "ONLY=yes"},
				ExpandArgv: true,
			}
			out, _, _ := run(t, m.apply(spec))
			want := "a|b|a  b|xa  by|$|dflt|a$FOO|yes"
			if out != want {
				t.Errorf("got %q, want %q", out, want)
			}
		})
	}
}

func TestPathLookupUsesEnvPATH(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "vigil-test-prog")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho found\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, _, _ := run(t, Spec{Argv: []string{"vigil-test-prog"}, Env: []string{"PATH=/nonexistent:" + dir}})
	if out != "found\n" {
		t.Errorf("got %q", out)
	}
	_, err := Start(&Spec{Argv: []string{"vigil-no-such-prog"}})
	if step, ok := StepOf(err); !ok || step != StepExec || !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing program: %v", err)
	}
}

func TestWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := sh("pwd")
			spec.Dir = dir
			out, _, _ := run(t, m.apply(spec))
			if strings.TrimSpace(out) != dir {
				t.Errorf("pwd = %q, want %q", out, dir)
			}
		})
	}
}

func TestStdioFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	start := func(how FileOpen, text string) {
		t.Helper()
		spec := sh("printf " + text)
		spec.Stdout = File(path, how)
		spec.Stderr = SameAsStdout()
		st, err := Start(&spec)
		if err != nil {
			t.Fatal(err)
		}
		wait(t, st.PID)
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	start(FileAppend, "one")
	start(FileAppend, "two")
	if got := read(); got != "onetwo" {
		t.Errorf("after two appends: %q", got)
	}
	start(FileOverwrite, "XY")
	if got := read(); got != "XYetwo" {
		t.Errorf("after overwrite: %q", got)
	}
	start(FileTruncate, "new")
	if got := read(); got != "new" {
		t.Errorf("after truncate: %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("created with mode %v", fi.Mode().Perm())
	}

	in := filepath.Join(dir, "in")
	os.WriteFile(in, []byte("from a file\n"), 0o600)
	spec := sh("cat")
	spec.Stdin = File(in, FileOverwrite)
	if out, _, _ := run(t, spec); out != "from a file\n" {
		t.Errorf("stdin from file: %q", out)
	}
}

func TestStdioNullAndPipes(t *testing.T) {
	spec := sh("readlink /proc/$$/fd/0; echo err >&2")
	spec.Stderr = Pipe()
	spec.Stdout = Pipe()
	st, err := Start(&spec)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(st.Stdout)
	errOut, _ := io.ReadAll(st.Stderr)
	wait(t, st.PID)
	if string(out) != "/dev/null\n" || string(errOut) != "err\n" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}

	spec = sh("echo out; echo err >&2")
	spec.Stderr = SameAsStdout()
	if out, _, st := run(t, spec); out != "out\nerr\n" || st.Stderr != nil {
		t.Errorf("shared pipe carried %q (separate stderr %v)", out, st.Stderr)
	}
}

func TestListenFDs(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			w.WriteString("through fd 3\n")
			w.Close()
			defer r.Close()
			spec := sh(`echo "$LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES"; cat <&3`)
			spec.Env = []string{"LISTEN_PID=1", "LISTEN_FDS=9"}
			spec.ExtraFiles = []*os.File{r}
			spec.ListenFDs = true
			spec.FDNames = []string{"greeting"}
			out, _, st := run(t, m.apply(spec))
			want := fmt.Sprintf("%d %d 1 greeting\nthrough fd 3\n", st.PID, st.PID)
			if out != want {
				t.Errorf("got %q, want %q", out, want)
			}
		})
	}
}

func TestWatchdogPID(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := sh(`echo "$WATCHDOG_PID $$ $WATCHDOG_USEC"`)
			spec.Env = []string{"WATCHDOG_PID=1", "WATCHDOG_USEC=500000"}
			spec.WatchdogPID = true
			out, _, st := run(t, m.apply(spec))
			if want := fmt.Sprintf("%d %d 500000\n", st.PID, st.PID); out != want {
				t.Errorf("got %q, want %q", out, want)
			}
		})
	}
}

func TestExtraFilesKeepBlockingMode(t *testing.T) {
	r, w, err := os.Pipe() // os.Pipe files are non-blocking for the poller
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	spec := sh("true")
	spec.ExtraFiles = []*os.File{r}
	_, _, _ = run(t, spec)
	rc, _ := r.SyscallConn()
	var flags int
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("Start made the caller's extra file blocking")
	}
}

func TestExecFailures(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	cases := []struct {
		name  string
		spec  Spec
		step  Step
		errno syscall.Errno
		msg   string
	}{
		{"missing", Spec{Path: "/nonexistent/x", Argv: []string{"x"}}, StepExec, unix.ENOENT, "exec /nonexistent/x: no such file or directory"},
		{"not executable", Spec{Path: notExec, Argv: []string{"x"}}, StepExec, unix.EACCES, "exec " + notExec + ": permission denied"},
		{"missing dir", Spec{Path: "/bin/true", Argv: []string{"true"}, Dir: "/nonexistent"}, StepChdir, unix.ENOENT, "chdir /nonexistent: no such file or directory"},
	}
	for _, m := range modes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				spec := m.apply(c.spec)
				_, err := Start(&spec)
				ee, ok := errors.AsType[*ExecError](err)
				if !ok {
					t.Fatalf("error %v is not an *ExecError", err)
				}
				if ee.Step != c.step || !errors.Is(err, c.errno) || err.Error() != c.msg {
					t.Errorf("got %v (step %v), want %q (step %v)", err, ee.Step, c.msg, c.step)
				}
				if c.step == StepExec && ee.StatusName() != "203/EXEC" {
					t.Errorf("status name %q", ee.StatusName())
				}
				// No child may be left behind: not even a zombie.
				if pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
					t.Errorf("a child is left: wait4 = %d, %v", pid, err)
				}
			})
		}
	}
}

func TestTrampolineReportsFailingLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	spec := sh("true")
	spec.Rlimits = map[int]Rlimit{unix.RLIMIT_NOFILE: {Cur: 1 << 40, Max: 1 << 40}} // above nr_open
	_, err := Start(&spec)
	if step, _ := StepOf(err); step != StepLimits || !strings.Contains(err.Error(), "nofile") {
		t.Errorf("got %v", err)
	}
}

func procStatus(t *testing.T, spec Spec, field string) string {
	t.Helper()
	spec.Path, spec.Argv = "/bin/grep", []string{"grep", "^" + field + ":", "/proc/self/status"}
	out, _, _ := run(t, spec)
	_, v, ok := strings.Cut(out, ":")
	if !ok {
		t.Fatalf("no %s in %q", field, out)
	}
	return strings.TrimSpace(v)
}

func TestNoNewPrivileges(t *testing.T) {
	if got := procStatus(t, Spec{}, "NoNewPrivs"); got != "0" {
		t.Fatalf("NoNewPrivs without the setting = %s", got)
	}
	if got := procStatus(t, Spec{NoNewPrivileges: true}, "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs = %s, want 1", got)
	}
}

func TestCapabilityBoundingSet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	got := procStatus(t, Spec{CapabilityBoundingSet: []int{unix.CAP_NET_BIND_SERVICE, unix.CAP_KILL}}, "CapBnd")
	if want := fmt.Sprintf("%016x", 1<<unix.CAP_NET_BIND_SERVICE|1<<unix.CAP_KILL); got != want {
		t.Errorf("CapBnd = %s, want %s", got, want)
	}
	if got := procStatus(t, Spec{CapabilityBoundingSet: []int{}}, "CapBnd"); got != "0000000000000000" {
		t.Errorf("empty bounding set: CapBnd = %s", got)
	}
}

func TestAmbientCapabilitiesSurviveUserChange(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	want := fmt.Sprintf("%016x", 1<<unix.CAP_NET_BIND_SERVICE)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := m.apply(Spec{
				Credential:          &Credential{UID: 65534, GID: 65534},
				AmbientCapabilities: []int{unix.CAP_NET_BIND_SERVICE},
			})
			for _, field := range []string{"CapAmb", "CapEff", "CapPrm"} {
				if got := procStatus(t, spec, field); got != want {
					t.Errorf("%s = %s, want %s", field, got, want)
				}
			}
		})
	}
}

func TestSetsidAndSession(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			out, _, st := run(t, m.apply(sh("cut -d' ' -f6 /proc/$$/stat")))
			if strings.TrimSpace(out) != strconv.Itoa(st.PID) {
				t.Errorf("session %q, want the child's pid %d", out, st.PID)
			}
		})
	}
}

func TestTTYStdinBecomesControllingTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skip("no /dev/ptmx:", err)
	}
	defer ptmx.Close()
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	pts := "/dev/pts/" + strconv.Itoa(n)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := sh("tty; cut -d' ' -f7 /proc/$$/stat")
			spec.Stdin = TTY("")
			spec.TTYPath = pts
			out, _, _ := run(t, m.apply(spec))
			lines := strings.Fields(out)
			if len(lines) != 2 || lines[0] != pts || lines[1] == "0" {
				t.Errorf("tty and tty_nr: %q, want %s and a non-zero controlling tty", out, pts)
			}
		})
	}
}

func TestBornInCgroup(t *testing.T) {
	root := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		root = "/sys/fs/cgroup"
		var fs unix.Statfs_t
		if unix.Statfs(root, &fs) != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Skip("no cgroup2 hierarchy")
		}
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			name := fmt.Sprintf("vigil-exec-test-%d-%s", os.Getpid(), m.name)
			dir := filepath.Join(root, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Skip("cannot create a cgroup:", err)
			}
			defer os.Remove(dir)
			fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			spec := sh("grep '^0::' /proc/self/cgroup")
			spec.CgroupFD = fd
			out, _, _ := run(t, m.apply(spec))
			if strings.TrimSpace(out) != "0::/"+name {
				t.Errorf("child's cgroup %q, want 0::/%s", out, name)
			}
		})
	}
}

func TestRootDirectory(t *testing.T) {
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("no static busybox")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "data"), 0o755)
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755)
	os.WriteFile(filepath.Join(root, "marker"), []byte("inside\n"), 0o644)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := Spec{Path: "/bin/busybox", Argv: []string{"busybox", "sh", "-c", "pwd; busybox cat /marker"}, RootDirectory: root, Dir: "/data"}
			out, _, _ := run(t, m.apply(spec))
			if out != "/data\ninside\n" {
				t.Errorf("got %q", out)
			}
		})
	}
}

func TestStatusReportRoundTrip(t *testing.T) {
	err := decodeStatusReport(encodeStatusReport(StepChdir, unix.ENOENT, "/a dir/with spaces"))
	if err.Error() != "chdir /a dir/with spaces: no such file or directory" {
		t.Errorf("got %v", err)
	}
	if step, _ := StepOf(decodeStatusReport([]byte("garbage"))); step != StepFDs {
		t.Errorf("garbage decoded to step %v", step)
	}
}

func BenchmarkStart(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			spec := m.apply(Spec{Path: "/bin/true", Argv: []string{"true"}, Setsid: true})
			for b.Loop() {
				st, err := Start(&spec)
				if err != nil {
					b.Fatal(err)
				}
				var ws unix.WaitStatus
				if _, err := unix.Wait4(st.PID, &ws, 0, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A Self that is not a trampoline is an error, not a silent success.
func TestSelfThatIsNotATrampoline(t *testing.T) {
	spec := forceTrampoline(sh("echo should not run"))
	spec.Self = "/bin/true"
	_, err := Start(&spec)
	if err == nil || !strings.Contains(err.Error(), "without a report") {
		t.Errorf("got %v", err)
	}
	if pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Errorf("a child is left: wait4 = %d, %v", pid, err)
	}
}
