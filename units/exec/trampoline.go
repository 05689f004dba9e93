package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TrampolineArg0 is argv[0] of the manager binary re-executed as the
// trampoline. argv[1] holds the encoded settings, argv[2:] the program's
// argv; the environment is the program's.
const TrampolineArg0 = "vigil-exec"

// IsTrampoline reports whether a process started with this argv[0] is the
// trampoline and must call TrampolineMain.
func IsTrampoline(argv0 string) bool { return argv0 == TrampolineArg0 }

// trampolineSettings is what the trampoline applies before exec.
type trampolineSettings struct {
	Path        string          `json:"path"`
	Dir         string          `json:"dir,omitempty"`
	Root        string          `json:"root,omitempty"`
	Credential  *Credential     `json:"cred,omitempty"`
	Umask       *uint32         `json:"umask,omitempty"`
	Nice        *int            `json:"nice,omitempty"`
	Rlimits     []rlimitSetting `json:"rlimits,omitempty"`
	NoNewPrivs  bool            `json:"nnp,omitempty"`
	Ambient     []int           `json:"ambient,omitempty"`
	Bounding    []int           `json:"bounding,omitempty"`
	HasBounding bool            `json:"has_bounding,omitempty"`
	ListenPID   bool            `json:"listen_pid,omitempty"`
	WatchdogPID bool            `json:"watchdog_pid,omitempty"`
	StatusFD    int             `json:"status_fd"`
}

type rlimitSetting struct {
	Resource int    `json:"r"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

func (t *trampolineSettings) encode() (string, error) {
	slices.SortFunc(t.Rlimits, func(a, b rlimitSetting) int { return a.Resource - b.Resource })
	b, err := json.Marshal(t)
	return string(b), err
}

func decodeTrampolineSettings(s string) (*trampolineSettings, error) {
	var t trampolineSettings
	if err := json.Unmarshal([]byte(s), &t); err != nil {
		return nil, fmt.Errorf("decode trampoline settings: %w", err)
	}
	if t.Path == "" {
		return nil, errors.New("decode trampoline settings: no program path")
	}
	if t.StatusFD < 3 {
		return nil, fmt.Errorf("decode trampoline settings: status fd %d is a standard stream", t.StatusFD)
	}
	if t.Nice != nil && (*t.Nice < -20 || *t.Nice > 19) {
		return nil, fmt.Errorf("decode trampoline settings: nice %d out of range", *t.Nice)
	}
	for _, c := range append(slices.Clone(t.Ambient), t.Bounding...) {
		if c < 0 || c > 63 {
			return nil, fmt.Errorf("decode trampoline settings: capability %d out of range", c)
		}
	}
	return &t, nil
}

// trampolineAlive is the first thing the trampoline writes to the status
// pipe: a Self that exits without it is not a trampoline, and the pipe's EOF
// after it means the program was exec'd.
const trampolineAlive = "T"

// The status report is "STEP ERRNO SUBJECT": what failed, with which errno,
// on what.
func encodeStatusReport(step Step, errno syscall.Errno, subject string) []byte {
	return []byte(strconv.Itoa(int(step)) + " " + strconv.Itoa(int(errno)) + " " + subject)
}

func decodeStatusReport(b []byte) error {
	fields := strings.SplitN(string(b), " ", 3)
	if len(fields) == 3 {
		step, err1 := strconv.Atoi(fields[0])
		errno, err2 := strconv.Atoi(fields[1])
		if err1 == nil && err2 == nil && Step(step).valid() && errno >= 0 {
			return &ExecError{Step: Step(step), Subject: fields[2], Err: syscall.Errno(errno)}
		}
	}
	return &ExecError{Step: StepFDs, Subject: "trampoline", Err: fmt.Errorf("garbled status report %q", b)}
}

// TrampolineMain is the trampoline: it applies the settings from os.Args[1]
// and execs the program. It never returns: on failure it reports the step
// to the status pipe and exits with systemd's exit status for that step.
func TrampolineMain() {
	// Nice, capabilities, keep-caps, no_new_privs and the uid changed below
	// are per thread; the exec must come from the thread that has them.
	runtime.LockOSThread()
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "vigil-exec: not started by the manager")
		os.Exit(StepFDs.ExitStatus())
	}
	t, err := decodeTrampolineSettings(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-exec:", err)
		os.Exit(StepFDs.ExitStatus())
	}
	if _, err := unix.Write(t.StatusFD, []byte(trampolineAlive)); err != nil {
		os.Exit(StepFDs.ExitStatus())
	}
	step, subject, err := t.apply()
	if err == nil {
		env := os.Environ()
		if t.ListenPID {
			env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
		}
		if t.WatchdogPID {
			env = append(withoutVar(env, "WATCHDOG_PID"), "WATCHDOG_PID="+strconv.Itoa(os.Getpid()))
		}
		err = unix.Exec(t.Path, os.Args[2:], env)
		step, subject = StepExec, t.Path
	}
	errno, ok := errors.AsType[syscall.Errno](err)
	if !ok {
		errno = unix.EINVAL
	}
	unix.Write(t.StatusFD, encodeStatusReport(step, errno, subject))
	os.Exit(step.ExitStatus())
}

// apply runs the steps in an order that works: limits and nice while still
// privileged, chroot and the bounding set before the uid changes, keep-caps
// around setuid when ambient capabilities must survive it, chdir as the new
// user (so directory permissions are checked as it), no_new_privs last.
func (t *trampolineSettings) apply() (Step, string, error) {
	if _, err := unix.FcntlInt(uintptr(t.StatusFD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return StepFDs, "status fd", err
	}
	for _, rl := range t.Rlimits {
		if err := unix.Setrlimit(rl.Resource, &unix.Rlimit{Cur: rl.Cur, Max: rl.Max}); err != nil {
			return StepLimits, RlimitName(rl.Resource), err
		}
	}
	if t.Nice != nil {
		// PRIO_PROCESS with who=0 is the calling thread on Linux: the locked
		// thread that will exec.
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, *t.Nice); err != nil {
			return StepNice, strconv.Itoa(*t.Nice), err
		}
	}
	if t.Umask != nil {
		unix.Umask(int(*t.Umask))
	}
	if t.Root != "" {
		if err := unix.Chroot(t.Root); err != nil {
			return StepChroot, t.Root, err
		}
		if t.Dir == "" {
			t.Dir = "/"
		}
	}
	if t.HasBounding {
		if err := dropBoundingSet(t.Bounding); err != nil {
			return StepCapabilities, "bounding set", err
		}
	}
	if c := t.Credential; c != nil {
		if len(t.Ambient) > 0 {
			if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
				return StepCapabilities, "keep-caps", err
			}
		}
		if err := setThreadCredentials(c); err != nil {
			return err.step, err.subject, err.err
		}
	}
	if len(t.Ambient) > 0 {
		if err := raiseAmbient(t.Ambient); err != nil {
			return StepCapabilities, "ambient set", err
		}
	}
	if t.Dir != "" {
		if err := unix.Chdir(t.Dir); err != nil {
			return StepChdir, t.Dir, err
		}
	}
	if t.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return StepNoNewPrivileges, "", err
		}
	}
	return 0, "", nil
}

type stepError struct {
	step    Step
	subject string
	err     error
}

// setThreadCredentials changes groups, gid and uid of the calling thread
// only, with raw system calls: the exec happens from this thread, and the
// other threads of the trampoline die with the exec.
func setThreadCredentials(c *Credential) *stepError {
	groups := c.SupplementaryGroups
	var gp unsafe.Pointer
	if len(groups) > 0 {
		gp = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0); e != 0 {
		return &stepError{StepGroup, "supplementary groups", e}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(c.GID), uintptr(c.GID), uintptr(c.GID)); e != 0 {
		return &stepError{StepGroup, strconv.FormatUint(uint64(c.GID), 10), e}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID)); e != 0 {
		return &stepError{StepUser, strconv.FormatUint(uint64(c.UID), 10), e}
	}
	return nil
}

// dropBoundingSet drops every capability the kernel knows that keep lacks.
func dropBoundingSet(keep []int) error {
	for c := 0; c <= lastCapability(); c++ {
		if slices.Contains(keep, c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %s: %w", CapabilityName(c), err)
		}
	}
	return nil
}

// raiseAmbient puts caps into the inheritable and effective sets (they must
// be permitted: kept through setuid by keep-caps, or held by root) and then
// raises them in the ambient set, which survives the exec of an unprivileged
// program.
func raiseAmbient(caps []int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, c := range caps {
		data[c/32].Inheritable |= 1 << (uint(c) % 32)
		data[c/32].Effective |= 1 << (uint(c) % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	for _, c := range caps {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise %s: %w", CapabilityName(c), err)
		}
	}
	return nil
}

// withoutVar drops every assignment of name from env.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
