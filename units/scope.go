package units

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/units/api"
	"vigil/units/cgroup"
	"vigil/units/unitfile"
)

// Scope units (.scope) hold processes that something else started: the
// manager does not fork them, it adopts them. systemd-run --scope asks for
// a scope with StartTransientUnit naming its own PID, waits for the start
// job and then execs the command, which thus runs inside the scope. So a
// scope exists only transiently; its start moves the named processes into
// its cgroup, it is active while any process remains there and goes dead
// (and is garbage-collected) when the group empties. Stopping it signals
// the group (kill-signal, then final-kill-signal after timeout-stop).
//
// The adopted processes are not the manager's children: their exits reach
// the manager through the group's "empty" event (cgroup.events), never
// through wait4. A manager without cgroups falls back on pidfds of the
// named processes, so that only those, not what they fork, are tracked.

// The scope sub-states, as systemd names them.
const (
	scopeDead        = "dead"
	scopeRunning     = "running"
	scopeAbandoned   = "abandoned"
	scopeStopSigterm = "stop-sigterm"
	scopeStopSigkill = "stop-sigkill"
	scopeFailed      = "failed"
)

func scopeActiveState(sub string) ActiveState {
	switch sub {
	case scopeRunning, scopeAbandoned:
		return StateActive
	case scopeStopSigterm, scopeStopSigkill:
		return StateDeactivating
	case scopeFailed:
		return StateFailed
	}
	return StateInactive
}

// scope is the behaviour of .scope units.
type scope struct {
	u   *Unit
	m   *Manager
	cfg *unitfile.ScopeSection

	state  string
	result string
	// adopt are the processes the transient request named; the start
	// consumes them (a scope cannot be started twice).
	adopt []int
	// controller is the bus name the client named as its controller:
	// a stop asks it first (RequestStop) and signals only after
	// timeout-stop, as systemd does.
	controller string
	// waitingForController is set while a stop waits for the controller
	// it asked.
	waitingForController bool
	failReason           string

	// cgroup is the scope's group relative to the manager's tree while it
	// has one.
	cgroup string
	// Without cgroups: pidfds of the adopted processes still alive, by
	// PID, and the watcher goroutine's stop function.
	pidfds    map[int]int
	stopWatch func()

	timer        observer.TimerID
	runtimeTimer observer.TimerID
}

func newScope(u *Unit) *scope {
	return &scope{u: u, m: u.m, cfg: u.cfg.Scope, state: scopeDead, result: resultSuccess}
}

func (s *scope) setState(sub string) {
	s.state = sub
	s.u.SetState(scopeActiveState(sub), sub)
}

func (s *scope) FailureReason() string { return s.failReason }

// Start adopts the processes the transient request named.
func (s *scope) Start() error {
	switch s.state {
	case scopeRunning, scopeAbandoned:
		return nil
	case scopeStopSigterm, scopeStopSigkill:
		return fmt.Errorf("%s is stopping", s.u.Name)
	}
	if s.adopt == nil {
		return fmt.Errorf("%s: scope units hold processes started elsewhere and can only be made at run time (systemd-run --scope, StartTransientUnit with PIDs)", s.u.Name)
	}
	pids := s.adopt
	s.adopt = []int{} // consumed: a second start finds nothing to adopt
	s.result = resultSuccess
	s.failReason = ""
	s.m.noteActivation(s.u)
	var n int
	var err error
	if s.m.cgroups != nil {
		n, err = s.adoptIntoCgroup(pids)
	} else {
		n, err = s.adoptByPidfd(pids)
	}
	if err != nil {
		s.u.errorf("Failed to adopt the scope's processes: %v", err)
		s.failReason = fmt.Sprintf("%s: %v", s.u.Name, err)
		s.enterDead(resultResources)
		return nil
	}
	if n == 0 {
		s.u.errorf("No PIDs left to attach to the scope's control group, refusing.")
		s.failReason = fmt.Sprintf("%s: none of the processes %v is alive to be adopted", s.u.Name, pids)
		s.enterDead(resultResources)
		return nil
	}
	s.setState(scopeRunning)
	if s.cfg.RuntimeMax > 0 && s.cfg.RuntimeMax != unitfile.Infinity {
		s.runtimeTimer = s.m.AfterFunc(s.cfg.RuntimeMax, func() {
			s.runtimeTimer = 0
			if s.state == scopeRunning || s.state == scopeAbandoned {
				s.u.warnf("Scope reached runtime time limit. Stopping.")
				s.enterSignal(scopeStopSigterm, resultTimeout)
			}
		})
	}
	// A process may have gone between its move and now: its event came
	// while the unit was not yet running.
	s.checkEmpty()
	return nil
}

// adoptIntoCgroup creates the scope's group, watches it, and moves the
// processes in. It returns how many were moved.
func (s *scope) adoptIntoCgroup(pids []int) (int, error) {
	rel, err := s.m.cgroupPath(s.u)
	if err != nil {
		return 0, err
	}
	warnings, err := s.m.applyCgroup(s.u, rel)
	for _, w := range warnings {
		s.u.warnf("Warning: %s", w)
	}
	if err != nil {
		return 0, err
	}
	// Watch before moving, so that an exit right after the move is seen.
	if err := s.m.cgroupEvents.Watch(s.m.cgroups.Path(rel), s.u.Name); err != nil {
		return 0, err
	}
	s.cgroup = rel
	n := 0
	for _, pid := range pids {
		err := s.m.cgroups.Move(rel, pid)
		switch {
		case err == nil:
			n++
		case errors.Is(err, syscall.ESRCH):
			s.u.infof("Process %d is gone; not adopted.", pid)
		default:
			s.u.warnf("Could not move process %d into %s: %v", pid, s.m.cgroups.Name(rel), err)
		}
	}
	if n == 0 {
		// Processes the group held already (a scope made again over a
		// left-over group) count as adopted.
		if populated, _ := s.m.cgroups.Populated(rel); populated {
			n = 1
		}
	}
	return n, nil
}

// adoptByPidfd opens a pidfd for each process and watches them until
// they exit: the fallback of a manager without cgroups.
func (s *scope) adoptByPidfd(pids []int) (int, error) {
	s.pidfds = map[int]int{}
	var watch []int
	for _, pid := range pids {
		if _, dup := s.pidfds[pid]; dup {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				s.u.infof("Process %d is gone; not adopted.", pid)
				continue
			}
			s.closePidfds()
			return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
		}
		wfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			unix.Close(fd)
			s.closePidfds()
			return 0, fmt.Errorf("dup pidfd of %d: %w", pid, err)
		}
		s.pidfds[pid] = fd
		watch = append(watch, pid, wfd)
	}
	if len(s.pidfds) == 0 {
		return 0, nil
	}
	stop, err := watchPidfds(watch, func(pid int) { s.m.loop.Do(func() { s.pidExited(pid) }) })
	if err != nil {
		for i := 1; i < len(watch); i += 2 {
			unix.Close(watch[i])
		}
		s.closePidfds()
		return 0, err
	}
	s.stopWatch = stop
	return len(s.pidfds), nil
}

// watchPidfds polls pidfds (pairs of PID, fd, which it owns and closes)
// in a goroutine and calls exited(pid) for each process that ends, until
// all have or stop is called.
func watchPidfds(pairs []int, exited func(pid int)) (stop func(), err error) {
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("scope watcher: %w", err)
	}
	go observer.Guard("scope pidfd watcher", nil, func() {
		defer unix.Close(pipe[0])
		type watched struct{ pid, fd int }
		var ws []watched
		for i := 0; i+1 < len(pairs); i += 2 {
			ws = append(ws, watched{pairs[i], pairs[i+1]})
		}
		defer func() {
			for _, w := range ws {
				unix.Close(w.fd)
			}
		}()
		for len(ws) > 0 {
			fds := []unix.PollFd{{Fd: int32(pipe[0]), Events: unix.POLLIN}}
			for _, w := range ws {
				fds = append(fds, unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN})
			}
			if _, err := unix.Poll(fds, -1); err != nil {
				if err == unix.EINTR {
					continue
				}
				return
			}
			if fds[0].Revents != 0 {
				return // stopped
			}
			kept := ws[:0]
			for i, w := range ws {
				if fds[i+1].Revents != 0 {
					unix.Close(w.fd)
					exited(w.pid)
					continue
				}
				kept = append(kept, w)
			}
			ws = kept
		}
	})
	return func() { unix.Close(pipe[1]) }, nil
}

// pidExited is the pidfd watcher's report, on the loop.
func (s *scope) pidExited(pid int) {
	fd, ok := s.pidfds[pid]
	if !ok {
		return
	}
	unix.Close(fd)
	delete(s.pidfds, pid)
	s.checkEmpty()
}

func (s *scope) closePidfds() {
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	for pid, fd := range s.pidfds {
		unix.Close(fd)
		delete(s.pidfds, pid)
	}
}

// cgroupEvent: an empty group ends the scope.
func (s *scope) cgroupEvent(ev *observer.Event) {
	if s.cgroup == "" || ev.Attr("path") != s.m.cgroups.Path(s.cgroup) {
		return
	}
	switch ev.Kind {
	case "empty":
		s.checkEmpty()
	case "oom":
		s.u.noticef("A process of this scope has been killed by the OOM killer.")
	}
}

// remaining reports whether any process of the scope is alive.
func (s *scope) remaining() bool {
	if s.cgroup != "" {
		populated, err := s.m.cgroups.Populated(s.cgroup)
		return populated || err != nil
	}
	return len(s.pidfds) > 0
}

func (s *scope) checkEmpty() {
	switch s.state {
	case scopeRunning, scopeAbandoned, scopeStopSigterm, scopeStopSigkill:
		if !s.remaining() {
			s.enterDead(resultSuccess)
		}
	}
}

// members lists the scope's live processes.
func (s *scope) members() []int {
	if s.cgroup != "" {
		pids, _ := s.m.cgroups.Procs(s.cgroup)
		return pids
	}
	out := make([]int, 0, len(s.pidfds))
	for pid := range s.pidfds {
		out = append(out, pid)
	}
	return out
}

// signal sends sig to the scope's processes; with pidfds, through them,
// so that a reused PID is never hit.
func (s *scope) signal(sig syscall.Signal) int {
	n := 0
	if s.cgroup != "" {
		if sig == syscall.SIGKILL && s.m.cgroups.Kill(s.cgroup) == nil {
			return 1
		}
		n, _ = s.m.cgroups.Signal(s.cgroup, sig)
		return n
	}
	for _, fd := range s.pidfds {
		if unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
			n++
		}
	}
	return n
}

func (s *scope) Stop() error {
	switch s.state {
	case scopeRunning, scopeAbandoned:
		s.enterSignal(scopeStopSigterm, resultSuccess)
	}
	return nil
}

// enterSignal signals the group as kill-mode says and waits for it to
// empty, escalating after timeout-stop.
func (s *scope) enterSignal(sub, result string) {
	if s.result == resultSuccess {
		s.result = result
	}
	s.m.StopTimer(s.runtimeTimer)
	s.runtimeTimer = 0
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.waitingForController = false
	if sub == scopeStopSigterm && s.remaining() && s.requestStop() {
		// The controller was asked to stop the scope, as systemd asks
		// it: no signal now; timeout-stop later if it does not.
		s.waitingForController = true
		s.setState(sub)
		s.armStopTimer(sub)
		return
	}
	sig := s.cfg.KillSignal
	if sub == scopeStopSigkill {
		sig = s.cfg.FinalKillSignal
	}
	// A scope has no main process: kill-mode process signals nobody, and
	// mixed only the final kill reaches the group.
	send := true
	switch s.cfg.KillMode {
	case unitfile.KillNone, unitfile.KillProcess:
		send = false
	case unitfile.KillMixed:
		send = sub == scopeStopSigkill
	}
	if !send || !s.remaining() {
		if s.remaining() {
			s.u.warnf("Unit's processes are left behind (kill-mode %s).", s.cfg.KillMode)
		}
		s.enterDead(resultSuccess)
		return
	}
	s.setState(sub)
	s.signal(sig)
	if sig != syscall.SIGKILL && sig != syscall.SIGCONT {
		if s.cfg.SendSIGHUP {
			s.signal(syscall.SIGHUP)
		}
		s.signal(syscall.SIGCONT)
	}
	if s.state != sub {
		return // the group emptied meanwhile
	}
	s.armStopTimer(sub)
}

// armStopTimer bounds a stop: the group's "empty" event (or the pidfd
// watcher) ends it; timeout-stop escalates.
func (s *scope) armStopTimer(sub string) {
	s.timer = s.m.AfterFunc(s.cfg.TimeoutStop, func() {
		s.timer = 0
		if sub == scopeStopSigterm && s.cfg.SendSIGKILL {
			s.u.warnf("Stopping timed out. Killing.")
			s.enterSignal(scopeStopSigkill, resultTimeout)
			return
		}
		s.u.warnf("Still around after final kill signal. Ignoring.")
		s.enterDead(resultTimeout)
	})
}

func (s *scope) enterDead(result string) {
	if s.result == resultSuccess {
		s.result = result
	}
	s.waitingForController = false
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.m.StopTimer(s.runtimeTimer)
	s.runtimeTimer = 0
	s.releaseCgroup()
	s.closePidfds()
	s.controller = ""
	if s.result != resultSuccess {
		if s.failReason == "" {
			s.failReason = fmt.Sprintf("%s: result %s", s.u.Name, s.result)
		}
		s.u.warnf("Failed with result '%s'.", s.result)
		s.setState(scopeFailed)
		return
	}
	s.setState(scopeDead)
}

// releaseCgroup removes the group once it is empty.
func (s *scope) releaseCgroup() {
	if s.cgroup != "" && s.m.releaseUnitCgroup(s.u, s.cgroup) {
		s.cgroup = ""
	}
}

// Abandon lets go of the scope's controller: the scope stays, in state
// abandoned, until its processes are gone (systemd's AbandonScope).
func (s *scope) Abandon() error {
	if s.state != scopeRunning && s.state != scopeAbandoned {
		return fmt.Errorf("scope %s is not running, cannot abandon", s.u.Name)
	}
	s.controller = ""
	if s.state == scopeRunning {
		s.u.infof("Scope abandoned.")
		s.setState(scopeAbandoned)
	}
	return nil
}

func (s *scope) Reload() error   { return fmt.Errorf("%s cannot be reloaded", s.u.Name) }
func (s *scope) CanReload() bool { return false }

func (s *scope) Kill(whom string, sig int) error {
	switch whom {
	case "main", "control":
		return fmt.Errorf("%s has no %s process", s.u.Name, whom)
	}
	if !s.remaining() {
		return fmt.Errorf("%s has no processes to signal", s.u.Name)
	}
	s.signal(syscall.Signal(sig))
	return nil
}

func (s *scope) ResetFailed() {
	if s.state == scopeFailed {
		// A group left populated by a stop that gave up goes now, if
		// it has emptied since.
		s.releaseCgroup()
		s.setState(scopeDead)
	}
	s.result = resultSuccess
}

// Reconfigure takes new settings (set-property): a running scope's group
// gets the new resource limits at once.
func (s *scope) Reconfigure() {
	s.cfg = s.u.cfg.Scope
	if s.cgroup == "" {
		return
	}
	warnings, err := s.m.applyCgroup(s.u, s.cgroup)
	for _, w := range warnings {
		s.u.warnf("Warning: %s", w)
	}
	if err != nil {
		s.u.warnf("Could not apply the new resource settings: %v", err)
	}
}

func (s *scope) Describe(st *api.UnitStatus) {
	st.Result = s.result
	if s.cgroup != "" {
		st.ControlGroup = s.m.cgroups.Name(s.cgroup)
		stats := s.m.cgroups.Stats(s.cgroup)
		st.MemoryCurrent, st.MemoryPeak, st.TasksCurrent, st.CPUUsageNSec = stats.MemoryCurrent, stats.MemoryPeak, stats.TasksCurrent, stats.CPUUsageNSec
	}
	for _, pid := range s.members() {
		st.Processes = append(st.Processes, api.Process{PID: pid, Command: procCommand(pid)})
	}
}

func (s *scope) Properties() []api.Property {
	p := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	props := []api.Property{
		p("Result", s.result),
		p("Controller", s.controller),
		p("KillMode", string(s.cfg.KillMode)),
		p("KillSignal", strconv.Itoa(int(s.cfg.KillSignal))),
		p("FinalKillSignal", strconv.Itoa(int(s.cfg.FinalKillSignal))),
		p("SendSIGKILL", yesno(s.cfg.SendSIGKILL)),
		p("SendSIGHUP", yesno(s.cfg.SendSIGHUP)),
		p("TimeoutStopUSec", unitfile.FormatDuration(s.cfg.TimeoutStop)),
		p("RuntimeMaxUSec", unitfile.FormatDuration(s.cfg.RuntimeMax)),
	}
	cg := ""
	if s.cgroup != "" {
		cg = s.m.cgroups.Name(s.cgroup)
	}
	return append(props, p("ControlGroup", cg))
}

// AbandonScope is systemd's Manager.AbandonScope.
func (m *Manager) AbandonScope(name string) error {
	u := m.units[name]
	if u == nil {
		return &NotFoundError{Name: name}
	}
	sc, ok := u.behaviour.(*scope)
	if !ok {
		return fmt.Errorf("unit %s is not a scope", name)
	}
	return sc.Abandon()
}

// UnitOfProcess names the unit a process belongs to: by its cgroup when
// units have cgroups, else a scope that adopted it. (A service's main
// process is known by its MainPID, which callers check first.)
func (m *Manager) UnitOfProcess(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	if m.cgroups != nil {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			return "", false
		}
		name, err := cgroup.CgroupOfProc(string(data))
		if err != nil {
			return "", false
		}
		return m.UnitByControlGroup(name)
	}
	for _, u := range m.Units() {
		if sc, ok := u.behaviour.(*scope); ok {
			if _, in := sc.pidfds[pid]; in {
				return u.Name, true
			}
		}
	}
	return "", false
}

// ScopeStopRequester asks a scope's controller (a bus name) to stop the
// scope, as systemd's RequestStop signal does, and reports whether the
// request went out. It runs on the loop and must not block.
type ScopeStopRequester func(unit, controller string) bool

// scopeStopRequest holds the installed ScopeStopRequester; its address
// tells one installation from the next.
type scopeStopRequest struct{ fn ScopeStopRequester }

// SetScopeStopRequester installs fn (the D-Bus server while it is on the
// system bus) and returns a function that removes it again.
func (m *Manager) SetScopeStopRequester(fn ScopeStopRequester) (unset func()) {
	r := &scopeStopRequest{fn: fn}
	m.scopeStopRequester = r
	return func() {
		if m.scopeStopRequester == r { // a newer one stays
			m.scopeStopRequester = nil
		}
	}
}

// requestStop asks the scope's controller, if it has one and a requester
// is installed, to stop the scope.
func (s *scope) requestStop() bool {
	r := s.m.scopeStopRequester
	if s.controller == "" || r == nil {
		return false
	}
	if !r.fn(s.u.Name, s.controller) {
		return false
	}
	s.u.infof("Asked the scope's controller %s to stop it (RequestStop).", s.controller)
	return true
}

// ScopeControllerGone says that a scope's controller is not on the bus
// (any more): the scope forgets it, and a stop that waits for it goes on
// with the kill signal at once rather than after timeout-stop.
func (m *Manager) ScopeControllerGone(name, controller string) {
	u := m.units[name]
	if u == nil {
		return
	}
	s, ok := u.behaviour.(*scope)
	if !ok || s.controller != controller {
		return
	}
	s.u.infof("The scope's controller %s is gone.", controller)
	s.controller = ""
	if s.waitingForController && s.state == scopeStopSigterm {
		s.enterSignal(scopeStopSigterm, resultSuccess)
	}
}

// ForgetBusName is told (by the D-Bus server, which watches the bus's
// NameOwnerChanged) that a bus name has left the bus: every scope whose
// controller it was forgets it, as systemd's on_controller_gone does, so
// that a later stop neither sends RequestStop to it (or to whoever takes
// a well-known name next) nor waits for it.
func (m *Manager) ForgetBusName(name string) {
	if name == "" {
		return
	}
	for _, u := range m.units {
		if s, ok := u.behaviour.(*scope); ok && s.controller == name {
			m.ScopeControllerGone(u.Name, name)
			for _, fn := range m.unitWatchers {
				fn(u) // the Controller property changed
			}
		}
	}
}
