package units

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"vigil/observer"
	"vigil/units/unitfile"
)

// Cleaning (`systemctl clean`, systemd's Unit.Clean): removing the
// directories a unit names (execdirs.go) of the kinds asked for, only
// while the unit is inactive with no job, as systemd's unit_clean allows.
// The removal runs off the loop (a cache may be large); meanwhile the unit
// is in systemd's "maintenance" state, sub-state "cleaning", and jobs for
// it wait. Then it is inactive again, with a clean result of success or
// exit-code (something could not be removed), which `systemctl clean`
// turns into its exit status. timeout-clean (systemd's TimeoutCleanSec=,
// default infinity) bounds the removal: when it passes, the removal is
// told to stop (cleanremove.go) and the unit is failed at once, with
// clean result timeout and, for a service, result timeout. (systemd kills
// its rm helper with SIGKILL there, so that its service's Result reads
// signal; Vigil has no helper process to kill.)

// StateMaintenance is systemd's active state of a unit whose resources
// are being cleaned.
const StateMaintenance ActiveState = "maintenance"

// Why a clean is refused, as systemd's unit_clean says.
var (
	// ErrCleanNotSupported: the unit type has no directories to clean.
	ErrCleanNotSupported = errors.New("unit does not support cleaning")
	// ErrNothingToClean: none of the kinds asked for is configured.
	ErrNothingToClean = errors.New("no matching resources found")
	// ErrCleanUnitBusy: the unit is not inactive, not loaded, or has a job.
	ErrCleanUnitBusy = errors.New("unit is not inactive or has pending job")
)

// cleanRun is a unit's clean: while running, and after one that failed
// (a success leaves no record: the result then reads success).
type cleanRun struct {
	running bool
	result  string
	// stop tells the removal to stop: timeout-clean passed.
	stop  atomic.Bool
	timer observer.TimerID
}

// ParseCleanMask turns `systemctl clean --what=` resource names (runtime,
// state, cache, logs, configuration, all) into a mask of directory kinds.
// systemd names fdstore too: it is accepted and selects nothing, as Vigil
// keeps no file-descriptor store across a stop.
func ParseCleanMask(what []string) (uint, error) {
	var mask uint
	for _, w := range what {
		switch w {
		case "all":
			mask |= 1<<numExecDirKinds - 1
			continue
		case "fdstore":
			continue
		}
		found := false
		for k := execDirKind(0); k < numExecDirKinds; k++ {
			if k.Name() == w {
				mask |= 1 << k
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("invalid resource type: %s", w)
		}
	}
	return mask, nil
}

// CleanUnit removes the directories of the kinds in what (see
// ParseCleanMask) of an inactive unit. It returns once the removal is
// under way; the unit is in maintenance until it is done.
func (m *Manager) CleanUnit(name string, what []string) error {
	u := m.units[name]
	if u == nil {
		return &NotFoundError{Name: name}
	}
	mask, err := ParseCleanMask(what)
	if err != nil {
		return err
	}
	if !canClean(u) {
		return fmt.Errorf("%s: %w", u.Name, ErrCleanNotSupported)
	}
	if mask == 0 {
		return fmt.Errorf("%s: %w", u.Name, ErrNothingToClean)
	}
	if u.LoadState != LoadLoaded || u.job != nil || u.active != StateInactive {
		return fmt.Errorf("%s: %w", u.Name, ErrCleanUnitBusy)
	}
	paths := m.execDirPaths(u.execContext(), mask)
	if len(paths) == 0 {
		return fmt.Errorf("%s: %w", u.Name, ErrNothingToClean)
	}
	if m.cleans == nil {
		m.cleans = map[*Unit]*cleanRun{}
	}
	run := &cleanRun{running: true, result: resultSuccess}
	m.cleans[u] = run
	sub := u.sub
	u.infof("Cleaning %s.", strings.Join(paths, ", "))
	u.SetState(StateMaintenance, "cleaning")
	if d := u.execContext().TimeoutClean; d > 0 && d != unitfile.Infinity {
		run.timer = m.AfterFunc(d, func() {
			run.timer = 0
			m.cleanTimedOut(u, run)
		})
	}
	go observer.Guard("clean of "+u.Name, m.logf, func() {
		// The removal may hang in a dead file system: see sigmask.go.
		if err := keepSignalsOffThisThread(); err != nil {
			m.logf("clean of %s: block signals on its thread: %v", u.Name, err)
		}
		var failed []string
		for _, p := range paths {
			if err := removeTree(p, &run.stop); err != nil {
				failed = append(failed, err.Error())
			}
		}
		m.loop.Do(func() { m.cleanEnded(u, run, sub, failed) })
	})
	return nil
}

// cleanEnded takes the end of u's removal, on the loop: u is inactive
// again (sub-state sub), unless timeout-clean has failed it already.
func (m *Manager) cleanEnded(u *Unit, run *cleanRun, sub string, failed []string) {
	if run.stop.Load() {
		u.infof("The abandoned clean has ended.")
		return
	}
	m.StopTimer(run.timer)
	run.timer = 0
	run.running = false
	if len(failed) > 0 {
		run.result = "exit-code"
		u.warnf("Cleaning failed: %s", strings.Join(failed, "; "))
	} else if m.cleans[u] == run {
		delete(m.cleans, u)
	}
	u.SetState(StateInactive, sub)
	m.dispatchJobs()
}

// cleanTimedOut ends a clean that outlived timeout-clean: the removal is
// told to stop, and u fails with result timeout; its jobs go on.
func (m *Manager) cleanTimedOut(u *Unit, run *cleanRun) {
	if !run.running || m.cleans[u] != run {
		return
	}
	run.stop.Store(true)
	run.running = false
	run.result = resultTimeout
	u.warnf("Cleaning timed out. Abandoning the removal.")
	if f, ok := u.behaviour.(interface{ failClean(result string) }); ok {
		f.failClean(resultTimeout)
	} else {
		u.SetState(StateFailed, "failed")
	}
	m.dispatchJobs()
}

// canClean reports whether u's type has directories to clean: the types
// that run processes with an exec context.
func canClean(u *Unit) bool {
	switch u.Type {
	case "service", "socket", "mount":
		return true
	}
	return false
}

// CanClean lists the kinds of directories u has configured, in systemd's
// order, as the CanClean property shows them.
func (m *Manager) CanClean(name string) []string {
	u := m.units[name]
	if u == nil || !canClean(u) {
		return nil
	}
	ec := u.execContext()
	if ec == nil {
		return nil
	}
	var out []string
	for k := execDirKind(0); k < numExecDirKinds; k++ {
		if dirs, _ := execDirs(ec, k); len(dirs) > 0 {
			out = append(out, k.Name())
		}
	}
	return out
}

// CleanResult is the result of u's last clean: success unless it failed.
func (m *Manager) CleanResult(name string) string {
	u := m.units[name]
	if run := m.cleans[u]; u != nil && run != nil && !run.running {
		return run.result
	}
	return resultSuccess
}

// cleaning reports whether u's directories are being removed: its jobs
// wait meanwhile.
func (m *Manager) cleaning(u *Unit) bool {
	run := m.cleans[u]
	return run != nil && run.running
}

// ExecDirectory is one kind of a unit's own directories as configured:
// the kind (runtime, state, cache, logs, configuration), the relative
// paths and their mode.
type ExecDirectory struct {
	Kind  string
	Paths []string
	Mode  uint32
}

// ExecDirectories lists a unit's directory settings, every kind in
// systemd's order (empty Paths when none), and runtime-directory-preserve;
// nothing for a unit without an exec context.
func (m *Manager) ExecDirectories(name string) ([]ExecDirectory, string) {
	u := m.units[name]
	if u == nil {
		return nil, ""
	}
	ec := u.execContext()
	if ec == nil {
		return nil, ""
	}
	out := make([]ExecDirectory, 0, numExecDirKinds)
	for k := execDirKind(0); k < numExecDirKinds; k++ {
		dirs, mode := execDirs(ec, k)
		out = append(out, ExecDirectory{Kind: k.Name(), Paths: dirs, Mode: uint32(mode)})
	}
	return out, string(ec.RuntimeDirectoryPreserve)
}

// TimeoutClean is u's timeout-clean (unitfile.Infinity: none); 0 for a
// unit that cannot be cleaned.
func (m *Manager) TimeoutClean(name string) time.Duration {
	u := m.units[name]
	if u == nil || !canClean(u) {
		return 0
	}
	ec := u.execContext()
	if ec == nil {
		return 0
	}
	return ec.TimeoutClean
}
