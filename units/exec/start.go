package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultPath is where programs named without a slash are looked up when Env
// has no PATH; it is systemd's.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// trampolineDeadline bounds the wait for the trampoline to exec the program:
// it only starts a Go runtime and makes a few system calls, so this is
// generous even under QEMU TCG.
const trampolineDeadline = 10 * time.Second

// Start starts the process spec describes and returns its PID without
// waiting for it. Any failure before the program runs, in the manager or in
// the child, is returned as an error (an *ExecError for failures of a step),
// and then no process is left to track.
func Start(spec *Spec) (*Started, error) {
	argv := spec.Argv
	if spec.ExpandArgv {
		argv = ExpandArgv(argv, spec.Env)
	}
	if len(argv) == 0 {
		return nil, &ExecError{Step: StepExec, Subject: spec.Path, Err: errors.New("empty command line")}
	}
	path, err := resolvePath(spec, argv[0])
	if err != nil {
		return nil, err
	}
	env := spec.Env
	if spec.ListenFDs {
		env = listenEnv(env, len(spec.ExtraFiles), spec.FDNames)
	}

	fds, err := openStdio(spec)
	if err != nil {
		return nil, err
	}
	defer fds.closeChildEnds()
	files := append([]uintptr(nil), fds.child[:]...)
	for i, f := range spec.ExtraFiles {
		fd, err := rawFD(f)
		if err != nil {
			fds.closeReadEnds()
			return nil, &ExecError{Step: StepFDs, Subject: "extra file " + strconv.Itoa(i), Err: err}
		}
		files = append(files, fd)
	}

	sys := &syscall.SysProcAttr{Setsid: spec.Setsid}
	if spec.Stdin.Kind == StdioTTY && spec.Setsid {
		sys.Setctty = true
		sys.Ctty = 0
	}
	if spec.CgroupFD > 0 {
		sys.UseCgroupFD = true
		sys.CgroupFD = spec.CgroupFD
	}

	started := &Started{Stdout: fds.stdoutRead, Stderr: fds.stderrRead}
	needsSettings := spec.needsTrampolineSettings()
	switch {
	case !needsSettings && !spec.Trampoline:
		started.PID, err = startDirect(spec, path, argv, env, files, sys)
	case !needsSettings && spec.Stub != nil && spec.RootDirectory == "":
		// Only the exec must not be our vfork child's: the stub does that
		// much without a Go runtime start.
		stubSys := *sys
		started.Stubbed = true
		started.PID, err = startStub(spec, spec.Stub, path, argv, env, files, &stubSys)
		if errors.Is(err, errStubUnusable) {
			started.Stubbed = false
			started.Trampolined = true
			started.PID, err = startTrampoline(spec, path, argv, env, files, sys)
		}
	default:
		started.Trampolined = true
		started.PID, err = startTrampoline(spec, path, argv, env, files, sys)
	}
	runtime.KeepAlive(spec.ExtraFiles) // their raw fds were used above
	if err != nil {
		fds.closeReadEnds()
		return nil, err
	}
	return started, nil
}

func startDirect(spec *Spec, path string, argv, env []string, files []uintptr, sys *syscall.SysProcAttr) (int, error) {
	dir := directAttr(spec, sys)
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys})
	if err != nil {
		return 0, diagnoseForkExec(spec, path, dir, err)
	}
	return pid, nil
}

// directAttr completes sys with what Go's vfork child applies itself when
// no trampoline runs (root directory, credentials, ambient capabilities)
// and returns the working directory.
func directAttr(spec *Spec, sys *syscall.SysProcAttr) (dir string) {
	sys.Chroot = spec.RootDirectory
	if c := spec.Credential; c != nil {
		sys.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.SupplementaryGroups}
	}
	for _, c := range spec.AmbientCapabilities {
		sys.AmbientCaps = append(sys.AmbientCaps, uintptr(c))
	}
	dir = spec.Dir
	if dir == "" && spec.RootDirectory != "" {
		dir = "/"
	}
	return dir
}

// diagnoseForkExec names the step a direct ForkExec failed at. ForkExec
// reports only an errno, so the step is inferred from what can be checked
// afterwards; the trampoline reports steps exactly.
func diagnoseForkExec(spec *Spec, path, dir string, err error) error {
	errno, _ := err.(syscall.Errno)
	switch {
	case spec.CgroupFD > 0 && (errno == unix.EBUSY || errno == unix.EOPNOTSUPP || errno == unix.EBADF || errno == unix.ENOSYS):
		return &ExecError{Step: StepCgroup, Subject: "fd " + strconv.Itoa(spec.CgroupFD), Err: err}
	case spec.Credential != nil && errno == unix.EPERM:
		return &ExecError{Step: StepUser, Subject: strconv.FormatUint(uint64(spec.Credential.UID), 10), Err: err}
	case spec.RootDirectory != "" && !isDir(spec.RootDirectory):
		return &ExecError{Step: StepChroot, Subject: spec.RootDirectory, Err: err}
	case dir != "" && !isDir(filepath.Join(spec.RootDirectory, dir)):
		return &ExecError{Step: StepChdir, Subject: dir, Err: err}
	}
	return &ExecError{Step: StepExec, Subject: path, Err: err}
}

// rawFD is f's descriptor. Unlike f.Fd it leaves the descriptor's blocking
// mode alone: a listening socket the observer polls must stay non-blocking.
func rawFD(f *os.File) (uintptr, error) {
	if f == nil {
		return 0, errors.New("nil file")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(raw uintptr) { fd = raw }); err != nil {
		return 0, err
	}
	return fd, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func startTrampoline(spec *Spec, path string, argv, env []string, files []uintptr, sys *syscall.SysProcAttr) (int, error) {
	statusRead, statusWrite, err := os.Pipe()
	if err != nil {
		return 0, &ExecError{Step: StepFDs, Subject: "status pipe", Err: err}
	}
	defer statusRead.Close()
	files = append(files, statusWrite.Fd())
	settings := trampolineSettings{
		Path:        path,
		Dir:         spec.Dir,
		Root:        spec.RootDirectory,
		Credential:  spec.Credential,
		Umask:       spec.Umask,
		Nice:        spec.Nice,
		NoNewPrivs:  spec.NoNewPrivileges,
		Ambient:     spec.AmbientCapabilities,
		Bounding:    spec.CapabilityBoundingSet,
		HasBounding: spec.CapabilityBoundingSet != nil,
		ListenPID:   spec.ListenFDs,
		WatchdogPID: spec.WatchdogPID,
		StatusFD:    len(files) - 1,
	}
	for res, lim := range spec.Rlimits {
		settings.Rlimits = append(settings.Rlimits, rlimitSetting{Resource: res, Cur: lim.Cur, Max: lim.Max})
	}
	encoded, err := settings.encode()
	if err != nil {
		statusWrite.Close()
		return 0, &ExecError{Step: StepFDs, Subject: "trampoline settings", Err: err}
	}
	self := spec.Self
	if self == "" {
		self = "/proc/self/exe"
	}
	tramArgv := append([]string{TrampolineArg0, encoded}, argv...)
	pid, err := syscall.ForkExec(self, tramArgv, &syscall.ProcAttr{Env: env, Files: files, Sys: sys})
	statusWrite.Close()
	if err != nil {
		if spec.CgroupFD > 0 {
			return 0, diagnoseForkExec(spec, self, "", err)
		}
		return 0, &ExecError{Step: StepExec, Subject: self + " (trampoline)", Err: err}
	}
	// The pipe closes on the trampoline's successful exec of the program, or
	// carries the failure before the trampoline exits. A Self that does not
	// call TrampolineMain would keep it open forever: the wait has a deadline.
	statusRead.SetReadDeadline(time.Now().Add(trampolineDeadline))
	report, readErr := io.ReadAll(io.LimitReader(statusRead, 4096))
	if readErr == nil && string(report) == trampolineAlive {
		return pid, nil
	}
	collectFailedChild(pid)
	switch {
	case errors.Is(readErr, os.ErrDeadlineExceeded):
		return 0, &ExecError{Step: StepFDs, Subject: self, Err: fmt.Errorf("no report from the trampoline within %v", trampolineDeadline)}
	case readErr != nil:
		return 0, &ExecError{Step: StepFDs, Subject: "status pipe", Err: readErr}
	case !strings.HasPrefix(string(report), trampolineAlive):
		return 0, &ExecError{Step: StepFDs, Subject: self, Err: errors.New("exited without a report: not a trampoline (no exec.TrampolineMain), or it could not read its settings")}
	}
	return 0, decodeStatusReport(report[len(trampolineAlive):])
}

// collectFailedChild kills and collects a trampoline or stub child that
// reported a failure (it exits right after reporting; anything else is
// killed), as ForkExec does for its own failed children, so no zombie stays
// behind. If the reaper was faster, Wait4 fails with ECHILD, which is fine.
func collectFailedChild(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
}

// resolvePath finds the program: Spec.Path or argv0, looked up in PATH (of
// Env, else defaultPath) below RootDirectory when it has no slash.
func resolvePath(spec *Spec, argv0 string) (string, error) {
	name := spec.Path
	if name == "" {
		name = argv0
	}
	if strings.Contains(name, "/") {
		return name, nil
	}
	searchPath := defaultPath
	if v, ok := envMap(spec.Env)["PATH"]; ok {
		searchPath = v
	}
	for _, dir := range filepath.SplitList(searchPath) {
		if !filepath.IsAbs(dir) {
			continue // a relative PATH entry would depend on Dir: refuse it
		}
		candidate := filepath.Join(dir, name)
		fi, err := os.Stat(filepath.Join(spec.RootDirectory, candidate))
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", &ExecError{Step: StepExec, Subject: name, Err: fmt.Errorf("not found in %s: %w", searchPath, unix.ENOENT)}
}

// listenEnv replaces any LISTEN_* of env with the socket-activation
// variables. LISTEN_PID is added by the trampoline, which knows the PID.
func listenEnv(env []string, n int, names []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, "LISTEN_FDS=") || strings.HasPrefix(kv, "LISTEN_PID=") || strings.HasPrefix(kv, "LISTEN_FDNAMES=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "LISTEN_FDS="+strconv.Itoa(n))
	if len(names) > 0 {
		out = append(out, "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	return out
}

// stdioFDs are the descriptors for the child's fds 0-2, the files the
// manager opened for them, and the read ends it keeps.
type stdioFDs struct {
	child                  [3]uintptr
	opened                 []*os.File // closed once the child has its copies
	stdoutRead, stderrRead *os.File
}

func (s *stdioFDs) closeChildEnds() {
	for _, f := range s.opened {
		f.Close()
	}
}

func (s *stdioFDs) closeReadEnds() {
	if s.stdoutRead != nil {
		s.stdoutRead.Close()
	}
	if s.stderrRead != nil {
		s.stderrRead.Close()
	}
}

var stdioSteps = [3]Step{StepStdin, StepStdout, StepStderr}

func openStdio(spec *Spec) (*stdioFDs, error) {
	s := &stdioFDs{}
	streams := [3]Stdio{spec.Stdin, spec.Stdout, spec.Stderr}
	for i, st := range streams {
		fd, err := s.open(spec, i, st)
		if err != nil {
			s.closeChildEnds()
			s.closeReadEnds()
			return nil, &ExecError{Step: stdioSteps[i], Subject: st.Path, Err: err}
		}
		s.child[i] = fd
	}
	return s, nil
}

func (s *stdioFDs) open(spec *Spec, i int, st Stdio) (uintptr, error) {
	keep := func(f *os.File, err error) (uintptr, error) {
		if err != nil {
			return 0, err
		}
		s.opened = append(s.opened, f)
		return f.Fd(), nil
	}
	switch st.Kind {
	case StdioNull:
		return keep(os.OpenFile(os.DevNull, os.O_RDWR, 0))
	case StdioInherit:
		return uintptr(i), nil
	case StdioFD:
		if st.FD < 0 {
			return 0, fmt.Errorf("invalid fd %d", st.FD)
		}
		return uintptr(st.FD), nil
	case StdioTTY:
		path := st.Path
		if path == "" {
			path = spec.TTYPath
		}
		if path == "" {
			path = "/dev/console"
		}
		return keep(os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0))
	case StdioFile:
		if st.Path == "" {
			return 0, errors.New("file stream without a path")
		}
		if i == 0 {
			return keep(os.Open(st.Path))
		}
		flags := os.O_WRONLY | os.O_CREATE
		switch st.Open {
		case FileAppend:
			flags |= os.O_APPEND
		case FileTruncate:
			flags |= os.O_TRUNC
		}
		return keep(os.OpenFile(st.Path, flags, 0o644))
	case StdioPipe:
		if i == 0 {
			return 0, errors.New("stdin cannot be a capture pipe")
		}
		r, w, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		if i == 1 {
			s.stdoutRead = r
		} else {
			s.stderrRead = r
		}
		return keep(w, nil)
	case StdioStdout:
		if i != 2 {
			return 0, errors.New("only stderr can share stdout")
		}
		return s.child[1], nil
	}
	return 0, fmt.Errorf("unknown stream kind %d", st.Kind)
}
