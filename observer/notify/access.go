package notify

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Access is a unit's notify-access: whose messages it accepts.
type Access string

// The notify-access values, as in systemd's NotifyAccess=.
const (
	AccessNone Access = "none" // nobody
	AccessMain Access = "main" // the main process only
	AccessExec Access = "exec" // the main process or the current control process
	AccessAll  Access = "all"  // any process of the unit
)

// ParseAccess reads a notify-access value.
func ParseAccess(s string) (Access, bool) {
	switch a := Access(s); a {
	case AccessNone, AccessMain, AccessExec, AccessAll:
		return a, true
	}
	return "", false
}

// Processes is what the manager knows of a unit's processes when a message
// arrives. Zero PIDs are unknown; a nil Contains means only the main and
// control PIDs are known to belong to the unit.
type Processes struct {
	MainPID    int
	ControlPID int
	// Contains reports whether pid belongs to the unit: its cgroup, or the
	// process group it watches. See InCgroup and InProcessGroup.
	Contains func(pid int) bool
}

// Allowed decides, per access, whether a message from pid is the unit's to
// act on; reason says why not (for the log and the rejection count), or
// which rule admitted it.
func Allowed(access Access, pid int, p Processes) (ok bool, reason string) {
	if pid <= 0 {
		return false, "message without a sender PID"
	}
	switch access {
	case AccessNone:
		return false, "notify-access = none: reception is disabled"
	case AccessMain:
		if p.MainPID == 0 {
			return false, fmt.Sprintf("notify-access = main: PID %d sent a message but the main PID is not known", pid)
		}
		if pid == p.MainPID {
			return true, "main process"
		}
		return false, fmt.Sprintf("notify-access = main: PID %d is not the main process %d", pid, p.MainPID)
	case AccessExec:
		switch pid {
		case p.MainPID:
			return true, "main process"
		case p.ControlPID:
			if p.ControlPID != 0 {
				return true, "control process"
			}
		}
		return false, fmt.Sprintf("notify-access = exec: PID %d is neither the main (%d) nor the control process (%d)", pid, p.MainPID, p.ControlPID)
	case AccessAll:
		if pid == p.MainPID || pid == p.ControlPID {
			return true, "unit process"
		}
		if p.Contains != nil && p.Contains(pid) {
			return true, "unit process"
		}
		return false, fmt.Sprintf("notify-access = all: PID %d does not belong to the unit", pid)
	}
	return false, fmt.Sprintf("unknown notify-access %q", access)
}

// CgroupOf reads the cgroup2 path of pid from /proc/PID/cgroup (the "0::"
// line), e.g. "/vigil.slice/foo.service". On a hybrid host that is the
// path in the unified hierarchy.
func CgroupOf(pid int) (string, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/cgroup"
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cgroup of PID %d: %w", pid, err)
	}
	cg, ok := parseCgroupFile(data)
	if !ok {
		return "", fmt.Errorf("cgroup of PID %d: no cgroup2 (0::) line in %s", pid, path)
	}
	return cg, nil
}

// parseCgroupFile finds the "0::PATH" line of /proc/PID/cgroup.
func parseCgroupFile(data []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return rest, true
		}
	}
	return "", false
}

// InCgroup returns a Contains function admitting processes in the cgroup2
// group dir (a path like "/vigil.slice/foo.service") or below it.
func InCgroup(dir string) func(pid int) bool {
	dir = strings.TrimSuffix(dir, "/")
	return func(pid int) bool {
		cg, err := CgroupOf(pid)
		if err != nil {
			return false
		}
		return cg == dir || strings.HasPrefix(cg, dir+"/") || dir == ""
	}
}

// InProcessGroup returns a Contains function admitting processes of the
// process group pgid (units without a cgroup of their own).
func InProcessGroup(pgid int) func(pid int) bool {
	return func(pid int) bool {
		g, err := unix.Getpgid(pid)
		return err == nil && g == pgid && pgid > 0
	}
}
