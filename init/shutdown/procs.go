package shutdown

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pfKthread is PF_KTHREAD from the kernel's include/linux/sched.h: the
// flags field of /proc/PID/stat has it for kernel threads.
const pfKthread = 0x00200000

// Proc is a user-space process seen in /proc.
type Proc struct {
	PID  int
	PPID int
	// Comm is the command name (/proc/PID/stat field 2).
	Comm string
	// State is the one-letter state (R, S, D, Z, ...).
	State byte
	// Cmdline is argv joined by spaces (empty for zombies).
	Cmdline string
}

func (p Proc) String() string {
	if p.Cmdline != "" {
		return fmt.Sprintf("%d (%s)", p.PID, p.Cmdline)
	}
	return fmt.Sprintf("%d (%s)", p.PID, p.Comm)
}

// procStat is what shutdown needs from /proc/PID/stat.
type procStat struct {
	Comm  string
	State byte
	PPID  int
	Flags uint64
}

// parseProcStat parses /proc/PID/stat. The command name is in parentheses
// and may itself hold spaces and parentheses, so it ends at the last ')'.
func parseProcStat(data string) (procStat, error) {
	var s procStat
	open := strings.IndexByte(data, '(')
	closing := strings.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("malformed stat %q", data)
	}
	s.Comm = data[open+1 : closing]
	rest := strings.Fields(data[closing+1:])
	// rest[0] is field 3 (state); flags is field 9, so rest[6].
	if len(rest) < 7 || len(rest[0]) != 1 {
		return s, fmt.Errorf("malformed stat %q", data)
	}
	s.State = rest[0][0]
	var err error
	if s.PPID, err = strconv.Atoi(rest[1]); err != nil {
		return s, fmt.Errorf("stat ppid %q: %w", rest[1], err)
	}
	if s.Flags, err = strconv.ParseUint(rest[6], 10, 64); err != nil {
		return s, fmt.Errorf("stat flags %q: %w", rest[6], err)
	}
	return s, nil
}

// Processes lists the user-space processes of this PID namespace, leaving
// out kernel threads, PID 1, the calling process, the PIDs in except, and
// processes whose argv[0] starts with '@' (systemd's convention for
// processes that must survive until the root file system is unmounted,
// such as a storage daemon). Processes that vanish while being read are
// skipped.
func Processes(except []int) ([]Proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	skip := map[int]bool{1: true, os.Getpid(): true}
	for _, pid := range except {
		skip[pid] = true
	}
	var procs []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 || skip[pid] {
			continue
		}
		p, ok := readProc(pid)
		if ok {
			procs = append(procs, p)
		}
	}
	return procs, nil
}

// readProc reads one process; ok is false for kernel threads, survivors
// marked with '@', and processes that are gone.
func readProc(pid int) (Proc, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	data, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Proc{}, false
	}
	st, err := parseProcStat(string(data))
	if err != nil || st.Flags&pfKthread != 0 {
		return Proc{}, false
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	if len(raw) > 0 && raw[0] == '@' {
		return Proc{}, false
	}
	if st.PPID == 0 && len(raw) == 0 && st.State != 'Z' {
		// kthreadd's children have PPID 2 and flag PF_KTHREAD; PPID 0
		// without a command line is kthreadd itself on old kernels.
		return Proc{}, false
	}
	cmd := string(bytes.TrimRight(bytes.ReplaceAll(raw, []byte{0}, []byte{' '}), " "))
	return Proc{PID: pid, PPID: st.PPID, Comm: st.Comm, State: st.State, Cmdline: cmd}, true
}

// KillAll sends sig to every process Processes(except) lists and returns
// the processes signalled. A process that exits meanwhile (ESRCH) is not
// an error. SIGTERM and SIGHUP are followed by SIGCONT so stopped
// processes see them, as systemd does.
func KillAll(sig syscall.Signal, except []int) ([]Proc, error) {
	procs, err := Processes(except)
	if err != nil {
		return nil, err
	}
	var errs []error
	var signalled []Proc
	for _, p := range procs {
		if err := unix.Kill(p.PID, sig); err != nil {
			if !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %s with %v: %w", p, sig, err))
			}
			continue
		}
		if sig == unix.SIGTERM || sig == unix.SIGHUP {
			_ = unix.Kill(p.PID, unix.SIGCONT)
		}
		signalled = append(signalled, p)
	}
	return signalled, errors.Join(errs...)
}

// WaitForProcesses polls /proc until no process Processes(except) would
// list is left alive, or timeout passes. Zombies count as gone: they are
// dead, and reaping them is the reaper's job. progress, if not nil, is
// called with the processes still alive when the set changes and at least
// once a second, so the caller can print what it is waiting for. The
// survivors are returned (empty when all exited).
func WaitForProcesses(timeout time.Duration, except []int, progress func(remaining []Proc)) []Proc {
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	lastReport := time.Time{}
	lastCount := -1
	for {
		procs, _ := Processes(except)
		alive := procs[:0]
		for _, p := range procs {
			if p.State != 'Z' && p.State != 'X' {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		now := time.Now()
		if progress != nil && (len(alive) != lastCount || now.Sub(lastReport) >= time.Second) {
			progress(alive)
			lastReport, lastCount = now, len(alive)
		}
		if !now.Before(deadline) {
			return alive
		}
		sleep := interval
		if left := deadline.Sub(now); left < sleep {
			sleep = left
		}
		time.Sleep(sleep)
		if interval < 100*time.Millisecond {
			interval *= 2
		}
	}
}

// Sync flushes every file system's dirty data to disk.
func Sync() {
	unix.Sync()
}
