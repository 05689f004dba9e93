package units

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// Swap units activate a swap device or file with swapon(2) and deactivate
// it with swapoff(2), both on a goroutine (swapoff of a full device can
// take minutes) bounded by the unit's timeout. Their state is what the
// calls said, checked against /proc/swaps when the unit starts, so a swap
// area someone else activated is not activated twice.

// The swapon(2) flags (linux/swap.h).
const (
	swapFlagPrefer      = 0x8000
	swapFlagPrioMask    = 0x7fff
	swapFlagDiscard     = 0x10000
	swapFlagDiscardOnce = 0x20000
	swapFlagDiscardPage = 0x40000
)

type swap struct {
	u *Unit
	// cgroup is the unit's group (relative to the manager's tree) from
	// its start until it goes down, as systemd gives swaps one; Vigil
	// calls swapon(2) itself, so no process runs in it.
	cgroup string
	op     int
	timer  observer.TimerID
	result string
	reason string
}

func newSwap(u *Unit) *swap { return &swap{u: u, result: "success"} }

// section gives the unit's [swap]; a unit whose file went away while
// active keeps working from its name.
func (sw *swap) section() *unitfile.SwapSection {
	if c := sw.u.cfg; c != nil && c.Swap != nil {
		return c.Swap
	}
	what := ""
	if n, err := unitfile.ParseName(sw.u.Name); err == nil {
		what, _ = unitfile.UnescapePath(n.Prefix)
	}
	return &unitfile.SwapSection{What: what, Timeout: 90 * time.Second}
}

// SwapFlags turns a swap unit's priority and options into swapon(2) flags.
// Options that are not for the kernel (nofail, noauto, sw, defaults, x-*)
// are ignored; pri=N in options counts when priority is not set.
func SwapFlags(priority *int, options string) (int, error) {
	flags := 0
	prio := priority
	for _, opt := range strings.Split(options, ",") {
		name, value, _ := strings.Cut(opt, "=")
		switch name {
		case "pri":
			p, err := strconv.Atoi(value)
			if err != nil || p < -1 || p > swapFlagPrioMask {
				return 0, fmt.Errorf("swap option %q: want pri=N with N from -1 to 32767", opt)
			}
			if prio == nil {
				prio = &p
			}
		case "discard":
			switch value {
			case "":
				flags |= swapFlagDiscard
			case "once":
				flags |= swapFlagDiscard | swapFlagDiscardOnce
			case "pages":
				flags |= swapFlagDiscard | swapFlagDiscardPage
			default:
				return 0, fmt.Errorf("swap option %q: want discard, discard=once or discard=pages", opt)
			}
		}
	}
	if prio != nil && *prio >= 0 {
		flags |= swapFlagPrefer | (*prio & swapFlagPrioMask)
	}
	return flags, nil
}

// swapActive reports whether path is in /proc/swaps.
func swapActive(path string) bool {
	f, err := os.Open("/proc/swaps")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && strings.ReplaceAll(fields[0], `\040`, " ") == path {
			return true
		}
	}
	return false
}

func swapCall(trap uintptr, path string, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	// swapon reads the device and swapoff pages everything back in: both
	// may sleep uninterruptibly on a device that stopped answering.
	return callWithSignalsOff(func() error {
		if _, _, e := unix.Syscall(trap, uintptr(unsafe.Pointer(p)), uintptr(flags), 0); e != 0 {
			return e
		}
		return nil
	})
}

func (sw *swap) starting() bool { return sw.u.active == StateActivating }

func (sw *swap) cancelOp() {
	sw.op++
	sw.u.m.StopTimer(sw.timer)
	sw.timer = 0
}

func (sw *swap) fail(result, reason string) {
	sw.cancelOp()
	sw.result, sw.reason = result, reason
	sw.u.errorf("%s", reason)
	sw.u.SetState(StateFailed, "failed")
}

func (sw *swap) Start() error {
	u := sw.u
	s := sw.section()
	flags, err := SwapFlags(s.Priority, s.Options)
	if err != nil {
		sw.fail("resources", err.Error())
		return nil
	}
	sw.cancelOp()
	sw.result, sw.reason = "success", ""
	op := sw.op
	if sw.cgroup == "" {
		sw.cgroup = u.m.commandCgroup(u)
	}
	u.SetState(StateActivating, "activating")
	sw.arm(func() {
		sw.fail("timeout", fmt.Sprintf("swapon %s timed out after %v", s.What, s.Timeout))
	})
	what := s.What
	go func() {
		var err error
		if !swapActive(what) {
			err = swapCall(unix.SYS_SWAPON, what, flags)
		}
		u.m.loop.Do(func() {
			if op != sw.op {
				return
			}
			sw.cancelOp()
			if err != nil {
				sw.fail("exit-code", fmt.Sprintf("swapon %s: %v", what, explainSwapError(err)))
				return
			}
			u.SetState(StateActive, "active")
		})
	}()
	return nil
}

func explainSwapError(err error) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("no swap signature (run mkswap) or a file with holes: %w", err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("already in use: %w", err)
	}
	return err
}

func (sw *swap) arm(fn func()) {
	s := sw.section()
	if s.Timeout <= 0 || s.Timeout == unitfile.Infinity {
		return
	}
	op := sw.op
	sw.timer = sw.u.m.AfterFunc(s.Timeout, func() {
		if sw.op == op {
			sw.timer = 0
			fn()
		}
	})
}

func (sw *swap) Stop() error {
	u := sw.u
	s := sw.section()
	sw.cancelOp()
	if u.active == StateInactive || u.active == StateFailed {
		return nil
	}
	op := sw.op
	u.SetState(StateDeactivating, "deactivating")
	sw.arm(func() {
		sw.cancelOp()
		sw.result, sw.reason = "timeout", fmt.Sprintf("swapoff %s timed out after %v", s.What, s.Timeout)
		u.warnf("%s", sw.reason)
		u.SetState(StateFailed, "failed")
	})
	what := s.What
	go func() {
		err := swapCall(unix.SYS_SWAPOFF, what, 0)
		u.m.loop.Do(func() {
			if op != sw.op {
				return
			}
			sw.cancelOp()
			if err != nil && !errors.Is(err, unix.EINVAL) {
				sw.result, sw.reason = "exit-code", fmt.Sprintf("swapoff %s: %v", what, err)
				u.warnf("%s", sw.reason)
				u.SetState(StateFailed, "failed")
				return
			}
			u.SetState(StateInactive, "dead")
		})
	}()
	return nil
}

func (sw *swap) Reload() error          { return fmt.Errorf("%s cannot be reloaded", sw.u.Name) }
func (sw *swap) CanReload() bool        { return false }
func (sw *swap) Kill(string, int) error { return fmt.Errorf("%s has no processes", sw.u.Name) }
func (sw *swap) ResetFailed() {
	sw.result, sw.reason = "success", ""
	if sw.u.active == StateFailed {
		sw.u.SetState(StateInactive, "dead")
	}
}
func (sw *swap) Reconfigure()                {}
func (sw *swap) FailureReason() string       { return sw.reason }
func (sw *swap) Describe(st *api.UnitStatus) { describeCommandCgroup(sw.u.m, sw.cgroup, st) }

// releaseCgroupWhenDown removes the unit's group once it is down
// (unitWentDown).
func (sw *swap) releaseCgroupWhenDown() {
	if sw.cgroup != "" && sw.u.m.releaseUnitCgroup(sw.u, sw.cgroup) {
		sw.cgroup = ""
	}
}
func (sw *swap) Properties() []api.Property {
	s := sw.section()
	prio := "-1"
	if s.Priority != nil {
		prio = strconv.Itoa(*s.Priority)
	}
	return []api.Property{{Name: "What", Value: s.What}, {Name: "Priority", Value: prio},
		{Name: "Options", Value: s.Options}, {Name: "Result", Value: sw.result}}
}
