package units

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vigil/observer"
	"vigil/observer/notify"
	"vigil/observer/process"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// Service sub-states, as systemd names them.
const (
	svcDead         = "dead"
	svcCondition    = "condition"
	svcStartPre     = "start-pre"
	svcStart        = "start"
	svcStartPost    = "start-post"
	svcRunning      = "running"
	svcExited       = "exited"
	svcReload       = "reload"
	svcStop         = "stop"
	svcStopSigterm  = "stop-sigterm"
	svcStopSigkill  = "stop-sigkill"
	svcStopPost     = "stop-post"
	svcFinalSigterm = "final-sigterm"
	svcFinalSigkill = "final-sigkill"
	svcFailed       = "failed"
	svcAutoRestart  = "auto-restart"
)

// Service results, as systemd names them.
const (
	resultSuccess       = "success"
	resultExitCode      = "exit-code"
	resultSignal        = "signal"
	resultCoreDump      = "core-dump"
	resultTimeout       = "timeout"
	resultWatchdog      = "watchdog"
	resultStartLimitHit = "start-limit-hit"
	resultResources     = "resources"
	resultProtocol      = "protocol"
	resultOOMKill       = "oom-kill"
)

func serviceActiveState(sub string) ActiveState {
	switch sub {
	case svcRunning, svcExited:
		return StateActive
	case svcReload:
		return StateReloading
	case svcCondition, svcStartPre, svcStart, svcStartPost, svcAutoRestart:
		return StateActivating
	case svcStop, svcStopSigterm, svcStopSigkill, svcStopPost, svcFinalSigterm, svcFinalSigkill:
		return StateDeactivating
	case svcFailed:
		return StateFailed
	}
	return StateInactive
}

// service is the behaviour of .service units.
type service struct {
	u   *Unit
	m   *Manager
	cfg *unitfile.ServiceSection

	state  string
	result string
	// reloadResult is kept apart: a failed reload does not fail the unit.
	reloadResult string

	mainPID    int
	controlPID int
	// cgroup is the unit's group relative to the manager's tree while it
	// has one: then the unit's processes are exactly the group's. Without
	// cgroups, sessions stand in: the session IDs of every process we
	// started, whose members belong to the unit.
	cgroup   string
	sessions map[int]bool
	// oomBase is the group's oom_kill count when it was set up; oomKilled
	// records that the OOM killer struck since.
	oomBase   uint64
	oomKilled bool
	// cgroupWarnings are what the kernel could not apply at the last
	// Reconfigure, for set-property's answer.
	cgroupWarnings []string

	mainExit     *process.Exit
	mainExitText string
	// pending holds the commands of the current phase still to run.
	pending []unitfile.Command
	phase   string
	// afterControl continues the state machine when the control process
	// exits (true when it succeeded).
	afterControl func(ok bool)
	timer        observer.TimerID
	pollTimer    observer.TimerID

	nRestarts   int
	restartStep int
	statusText  string
	execStart   time.Time
	execExit    time.Time
	failReason  string
	stopForced  bool

	mainCommand    unitfile.Command
	controlCommand unitfile.Command

	// timerDeadline and timerFn describe the armed timer, so that
	// EXTEND_TIMEOUT_USEC= can push it back.
	timerDeadline time.Time
	timerFn       func()

	// What sd_notify told us (notify.go). readySeen is READY=1 in this
	// activation; reloadByNotify a reload the service itself announced.
	readySeen      bool
	reloadByNotify bool
	statusErrno    int
	statusBusError string
	accessOverride notify.Access
	// The watchdog: its timer, the interval the service asked for, the
	// last ping, and whether the stop under way is the watchdog's (its
	// processes then get watchdog-signal).
	watchdogTimer    observer.TimerID
	watchdogOverride time.Duration
	lastWatchdogPing time.Time
	watchdogKill     bool
	// fdStore holds the fds the service asked to keep (FDSTORE=1); they
	// outlive a restart and come back after the socket fds.
	fdStore []storedFD
	// connection is the accepted connection of an instance started by an
	// accept = true socket (acceptedBy), passed as its only fd.
	connection *os.File
	acceptedBy *socketUnit
	remoteEnv  []string
	// pidFileWatch is set while a forking service waits for its PID file
	// (pidfile.go); every state change ends the wait, as in systemd.
	pidFileWatch *pidFileWatch
}

func newService(u *Unit) *service {
	s := &service{u: u, m: u.m, cfg: u.cfg.Service, state: svcDead, result: resultSuccess, sessions: map[int]bool{}}
	return s
}

// Reconfigure takes the new configuration; a running unit's cgroup gets
// the new resource settings at once (its slice stays until a restart).
func (s *service) Reconfigure() {
	s.cfg = s.u.cfg.Service
	if s.cgroup != "" {
		warnings, err := s.m.applyCgroup(s.u, s.cgroup)
		s.logCgroupWarnings(warnings)
		s.cgroupWarnings = warnings
		if err != nil {
			s.u.warnf("Could not apply the new resource settings: %v", err)
			s.cgroupWarnings = append(s.cgroupWarnings, err.Error())
		}
	}
}

// setupCgroup gives the unit a fresh cgroup before its first process.
func (s *service) setupCgroup() error {
	if s.m.cgroups == nil {
		return nil
	}
	rel, err := s.m.cgroupPath(s.u)
	if err != nil {
		return err
	}
	warnings, err := s.m.applyCgroup(s.u, rel)
	s.logCgroupWarnings(warnings)
	if err != nil {
		return err
	}
	if err := s.m.cgroupEvents.Watch(s.m.cgroups.Path(rel), s.u.Name); err != nil {
		return err
	}
	s.cgroup = rel
	s.oomBase = s.m.cgroups.OOMKills(rel)
	s.oomKilled = false
	return nil
}

func (s *service) logCgroupWarnings(warnings []string) {
	for _, w := range warnings {
		s.u.warnf("Warning: %s", w)
	}
}

// releaseCgroup removes the unit's group once it is empty.
func (s *service) releaseCgroup() {
	if s.cgroup != "" && s.m.releaseUnitCgroup(s.u, s.cgroup) {
		s.cgroup = ""
	}
}

// cgroupEvent reacts to the group's events: an empty group may end a
// stop or a unit without main process; an OOM kill ends the unit with
// result oom-kill (systemd's default OOMPolicy=stop).
func (s *service) cgroupEvent(ev *observer.Event) {
	if s.cgroup == "" || ev.Attr("path") != s.m.cgroups.Path(s.cgroup) {
		return
	}
	switch ev.Kind {
	case "empty":
		s.checkEmpty()
	case "oom":
		if !s.noteOOMKill() {
			return
		}
		switch s.state {
		case svcStart, svcStartPost, svcRunning, svcReload, svcExited, svcStartPre:
			s.fail(resultOOMKill, "a process of the unit was killed by the OOM killer")
		}
	}
}

// noteOOMKill checks memory.events for an OOM kill since setup, logs the
// first one and records the result; it reports whether there was one.
func (s *service) noteOOMKill() bool {
	if s.oomKilled {
		return true
	}
	if s.cgroup == "" || s.m.cgroups.OOMKills(s.cgroup) <= s.oomBase {
		return false
	}
	s.oomKilled = true
	s.u.noticef("A process of this unit has been killed by the OOM killer.")
	s.m.noticef("%s: OOM killer killed a process of the unit (memory-max reached)", s.u.Name)
	if s.result == resultSuccess || s.result == resultSignal {
		s.result = resultOOMKill
	}
	if s.failReason == "" {
		s.failReason = fmt.Sprintf("%s: a process was killed by the OOM killer", s.u.Name)
	}
	return true
}

func (s *service) setState(sub string) {
	s.unwatchPIDFile()
	s.state = sub
	s.u.SetState(serviceActiveState(sub), sub)
}

// starting reports whether an activation is already under way.
func (s *service) starting() bool {
	switch s.state {
	case svcCondition, svcStartPre, svcStart, svcStartPost:
		return true
	}
	return false
}

func (s *service) CanReload() bool {
	return len(s.cfg.ExecReload) > 0 || s.cfg.Type == unitfile.ServiceNotifyReload
}

func (s *service) FailureReason() string { return s.failReason }

func (s *service) Start() error {
	if s.starting() {
		return nil
	}
	if s.state == svcAutoRestart {
		s.m.StopTimer(s.timer)
		s.nRestarts++
	} else {
		s.restartStep = 0
	}
	s.result = resultSuccess
	s.reloadResult = resultSuccess
	s.failReason = ""
	s.mainExit = nil
	s.mainExitText = ""
	s.statusText = ""
	s.statusErrno = 0
	s.statusBusError = ""
	s.readySeen = false
	s.reloadByNotify = false
	s.accessOverride = ""
	s.watchdogOverride = 0
	s.watchdogKill = false
	s.stopForced = false
	s.sessions = map[int]bool{}
	s.m.noteActivation(s.u)
	if err := s.setupCgroup(); err != nil {
		s.u.errorf("Failed to set up the unit's cgroup: %v", err)
		s.failReason = fmt.Sprintf("cgroup: %v", err)
		s.fail(resultResources, "")
		return nil
	}
	s.armTimeout(s.cfg.TimeoutStart)
	if len(s.cfg.ExecStartPre) > 0 {
		s.setState(svcStartPre)
		s.runCommands(svcStartPre, s.cfg.ExecStartPre, func(ok bool) {
			if !ok {
				s.fail(resultExitCode, "a start-pre command failed")
				return
			}
			s.enterStart()
		})
		return nil
	}
	s.enterStart()
	return nil
}

func (s *service) enterStart() {
	if len(s.cfg.ExecStart) == 0 {
		if s.cfg.Type == unitfile.ServiceOneshot {
			s.enterStartPost()
			return
		}
		s.fail(resultResources, "no exec-start command")
		return
	}
	s.setState(svcStart)
	switch s.cfg.Type {
	case unitfile.ServiceForking:
		s.runCommands(svcStart, s.cfg.ExecStart[:1], func(ok bool) {
			if !ok {
				s.fail(resultExitCode, "the control process exited with an error")
				return
			}
			s.execStart = time.Now()
			if s.cfg.PIDFile != "" {
				// A start-post command may write the PID file: then it is
				// looked for after it (systemd does the same).
				hasStartPost := len(s.cfg.ExecStartPost) > 0
				if _, err := s.loadPIDFile(!hasStartPost); err != nil && !hasStartPost {
					if !s.demandPIDFile() {
						s.fail(resultProtocol, fmt.Sprintf("PID file %s not readable after start and no process left to write it", s.cfg.PIDFile))
					}
					return
				}
			} else {
				s.searchMainPID()
			}
			s.enterStartPost()
		})
	case unitfile.ServiceOneshot:
		s.pending = append([]unitfile.Command(nil), s.cfg.ExecStart...)
		s.runNextMain()
	default:
		pid, err := s.spawn(s.cfg.ExecStart[0], true)
		if err != nil {
			s.execFailed(s.cfg.ExecStart[0], err)
			return
		}
		s.mainPID = pid
		s.execStart = time.Now()
		s.armWatchdog()
		if s.isNotify() {
			if s.m.notify == nil {
				s.u.errorf("Type %s needs the notify socket, which the manager does not have.", s.cfg.Type)
			}
			return // READY=1 moves on (notifyReady)
		}
		s.enterStartPost()
	}
}

// runNextMain runs a oneshot's commands one after another as main process.
func (s *service) runNextMain() {
	if len(s.pending) == 0 {
		s.mainPID = 0
		s.enterStartPost()
		return
	}
	cmd := s.pending[0]
	s.pending = s.pending[1:]
	pid, err := s.spawn(cmd, true)
	if err != nil {
		s.execFailed(cmd, err)
		return
	}
	s.mainPID = pid
	s.execStart = time.Now()
	s.phase = "oneshot"
	s.afterControl = nil
	s.mainCommand = cmd
}

func (s *service) enterStartPost() {
	if len(s.cfg.ExecStartPost) > 0 {
		s.setState(svcStartPost)
		s.runCommands(svcStartPost, s.cfg.ExecStartPost, func(ok bool) {
			if !ok {
				s.fail(resultExitCode, "a start-post command failed")
				return
			}
			if s.cfg.Type == unitfile.ServiceForking {
				if s.cfg.PIDFile != "" {
					if _, err := s.loadPIDFile(true); err != nil {
						if !s.demandPIDFile() {
							s.fail(resultProtocol, fmt.Sprintf("PID file %s not readable after start-post and no process left to write it", s.cfg.PIDFile))
						}
						return
					}
				} else {
					s.searchMainPID()
				}
			}
			s.enterRunning()
		})
		return
	}
	s.enterRunning()
}

func (s *service) enterRunning() {
	s.m.StopTimer(s.timer)
	s.timer = 0
	if s.cfg.Type == unitfile.ServiceOneshot || (s.mainPID == 0 && s.mainExit != nil) {
		if s.result != resultSuccess {
			s.enterStop(s.result)
			return
		}
		if s.cfg.RemainAfterExit {
			s.setState(svcExited)
			return
		}
		s.enterStop(resultSuccess)
		return
	}
	s.setState(svcRunning)
	if s.watchdogTimer == 0 {
		s.armWatchdog()
	}
	if s.cfg.Type == unitfile.ServiceForking && s.mainPID == 0 {
		// No main process known: the unit lives as long as its processes.
		s.pollProcesses()
	}
}

// runCommands runs cmds one by one as the control process, then calls
// next with whether all succeeded (commands with '-' always succeed).
func (s *service) runCommands(phase string, cmds []unitfile.Command, next func(ok bool)) {
	s.phase = phase
	s.pending = append([]unitfile.Command(nil), cmds...)
	s.afterControl = next
	s.runNextControl()
}

func (s *service) runNextControl() {
	if len(s.pending) == 0 {
		next := s.afterControl
		s.afterControl = nil
		s.controlPID = 0
		if next != nil {
			next(true)
		}
		return
	}
	cmd := s.pending[0]
	s.pending = s.pending[1:]
	pid, err := s.spawn(cmd, false)
	if err != nil {
		s.u.errorf("Failed to execute %s: %v", cmd.Path, err)
		if cmd.IgnoreFailure {
			s.runNextControl()
			return
		}
		next := s.afterControl
		s.afterControl = nil
		s.failReason = fmt.Sprintf("failed to execute %s: %v", cmd.Path, err)
		if next != nil {
			next(false)
		}
		return
	}
	s.controlPID = pid
	s.controlCommand = cmd
}

func (s *service) spawn(cmd unitfile.Command, main bool) (int, error) {
	spec, err := s.m.execSpec(s.u, &s.cfg.ExecContext, cmd, s.mainPID)
	if err != nil {
		return 0, err
	}
	// The start command of a forking service runs as the control process
	// but is the service's own: it gets what the main process would.
	if err := s.activationSpec(spec, main || s.phase == svcStart); err != nil {
		return 0, err
	}
	started, err := s.m.spawnInCgroup(s.u, spec, s.cgroup)
	if err != nil {
		return 0, err
	}
	if s.cgroup == "" {
		s.sessions[started.PID] = true
	}
	s.m.watchPID(started.PID, s)
	s.m.noteExecStart(s.u, execKind(s.phase, main), cmd, started.PID, main)
	s.m.captureOutput(s.u, started)
	return started.PID, nil
}

// execFailed handles a command that could not be executed at all, as
// systemd does with its 203/EXEC status.
func (s *service) execFailed(cmd unitfile.Command, err error) {
	s.u.errorf("Failed to execute %s: %v", cmd.Path, err)
	s.mainExitText = "status=203/EXEC"
	s.failReason = fmt.Sprintf("failed to execute %s: %v", cmd.Path, err)
	s.fail(resultExitCode, "")
}

// fail ends an activation with a result.
func (s *service) fail(result, reason string) {
	if reason != "" && s.failReason == "" {
		s.failReason = reason
	}
	s.enterStop(result)
}

func (s *service) processExited(pid int, ex process.Exit) {
	s.m.noteExecExit(s.u, pid, ex)
	switch pid {
	case s.mainPID:
		if s.cfg.PIDFile != "" && (s.state == svcStartPost || s.state == svcRunning || s.state == svcReload) {
			// A forking daemon may move to a new process: fine if it
			// wrote the new PID before the old one exited.
			if changed, _ := s.loadPIDFile(false); changed {
				return
			}
		}
		s.mainPID = 0
		s.mainExit = &ex
		s.execExit = time.Now()
		s.mainExitText = s.exitText(ex)
		s.mainExited(ex)
	case s.controlPID:
		s.controlPID = 0
		s.controlExited(ex)
	default:
		// A process we adopted when its parent died: check whether the
		// unit still has anything running.
		s.checkEmpty()
	}
}

func (s *service) exitText(ex process.Exit) string {
	if ex.Signal != 0 {
		return "signal=" + strings.TrimPrefix(unitfile.SignalName(ex.Signal), "SIG")
	}
	return "status=" + strconv.Itoa(ex.Code)
}

// exitResult classifies an exit the way systemd does.
func (s *service) exitResult(ex process.Exit) string {
	if ex.Signal != 0 {
		if s.cfg.SuccessExitStatus.HasSignal(ex.Signal) {
			return resultSuccess
		}
		switch ex.Signal {
		case syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE:
			if s.cfg.Type != unitfile.ServiceOneshot || s.stopForced {
				return resultSuccess
			}
		}
		if ex.CoreDumped {
			return resultCoreDump
		}
		return resultSignal
	}
	if ex.Code == 0 || s.cfg.SuccessExitStatus.HasCode(ex.Code) {
		return resultSuccess
	}
	return resultExitCode
}

func (s *service) mainExited(ex process.Exit) {
	res := s.exitResult(ex)
	if ex.Signal == syscall.SIGKILL && s.noteOOMKill() {
		res = resultOOMKill
	}
	code := "exited"
	if ex.Signal != 0 {
		code = "killed"
		if ex.CoreDumped {
			code = "dumped"
		}
	}
	s.u.logAt(exitLevel(res == resultSuccess), "Main process exited, code=%s, %s", code, s.mainExitText)
	if res != resultSuccess && s.failReason == "" {
		s.failReason = fmt.Sprintf("the main process exited with %s", s.mainExitText)
	}
	switch s.state {
	case svcStart:
		if s.cfg.Type == unitfile.ServiceOneshot {
			if res != resultSuccess {
				s.fail(res, "")
				return
			}
			s.runNextMain()
			return
		}
		if s.isNotify() && res == resultSuccess {
			// Gone before it said it was ready: systemd's "protocol".
			res = resultProtocol
			s.failReason = fmt.Sprintf("the main process exited (%s) before sending READY=1", s.mainExitText)
		}
		s.fail(res, "")
	case svcStartPost, svcRunning, svcReload:
		if res != resultSuccess {
			s.result = res
		}
		if s.state == svcStartPost {
			return // the post commands decide; enterRunning sees the exit
		}
		if res == resultSuccess && s.cfg.RemainAfterExit {
			s.setState(svcExited)
			return
		}
		s.enterStop(res)
	case svcStop, svcStopSigterm, svcStopSigkill, svcFinalSigterm, svcFinalSigkill:
		s.checkEmpty()
	}
}

func (s *service) controlExited(ex process.Exit) {
	ok := s.exitResult(ex) == resultSuccess || s.controlCommand.IgnoreFailure
	if !ok {
		s.u.noticef("Control process (%s) exited, %s", s.controlCommand.Path, s.exitText(ex))
		s.failReason = fmt.Sprintf("the control process (%s) exited with %s", s.phase, s.exitText(ex))
		if s.state == svcReload {
			s.reloadResult = s.exitResult(ex)
		}
	}
	if s.afterControl == nil {
		s.checkEmpty()
		return
	}
	if !ok {
		next := s.afterControl
		s.afterControl = nil
		s.pending = nil
		next(false)
		return
	}
	s.runNextControl()
}

// enterStop runs exec-stop, then signals what is left, then exec-stop-post.
func (s *service) enterStop(result string) {
	if s.result == resultSuccess {
		s.result = result
	}
	s.stopWatchdog()
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.pending = nil
	s.afterControl = nil
	wasRunning := s.state == svcRunning || s.state == svcExited || s.state == svcStartPost || s.state == svcReload
	if wasRunning && len(s.cfg.ExecStop) > 0 {
		s.setState(svcStop)
		s.armTimeout(s.cfg.TimeoutStop)
		s.runCommands(svcStop, s.cfg.ExecStop, func(bool) { s.enterSignal(svcStopSigterm) })
		return
	}
	s.enterSignal(svcStopSigterm)
}

// enterSignal sends the stop signal (or the final kill) to what remains.
func (s *service) enterSignal(sub string) {
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.stopWatchdog()
	sig := s.cfg.KillSignal
	if s.watchdogKill && sub == svcStopSigterm {
		sig = s.cfg.WatchdogSignal
	}
	if sub == svcStopSigkill || sub == svcFinalSigkill {
		sig = s.cfg.FinalKillSignal
	}
	if s.controlPID != 0 && sub == svcStopSigterm {
		// A control process still running (start-pre, reload...) is
		// part of what we stop.
		s.afterControl = nil
		s.pending = nil
	}
	pids := s.killTargets(sub == svcStopSigkill || sub == svcFinalSigkill)
	if len(pids) == 0 {
		s.afterSignals(sub)
		return
	}
	s.setState(sub)
	if sig == syscall.SIGKILL && s.cgroup != "" && (s.cfg.KillMode == unitfile.KillControlGroup || s.cfg.KillMode == unitfile.KillMixed || s.cfg.KillMode == "") {
		// One write kills the whole group, including what forks meanwhile.
		if err := s.m.cgroups.Kill(s.cgroup); err != nil {
			s.u.warnf("%v", err)
		}
	}
	signalled := map[int]bool{}
	send := func(pids []int) {
		for _, pid := range pids {
			if signalled[pid] {
				continue
			}
			signalled[pid] = true
			syscall.Kill(pid, sig)
			if s.cfg.SendSIGHUP && sig != syscall.SIGKILL && pid == s.mainPID {
				syscall.Kill(pid, syscall.SIGHUP)
			}
			if sig != syscall.SIGKILL && sig != syscall.SIGSTOP {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		}
	}
	send(pids)
	// A process forked while the list was read escapes it: read the group
	// again until it holds nobody new, as systemd does (bounded, so a fork
	// loop cannot keep the loop here).
	if s.cgroup != "" && sub != svcStopSigkill && sub != svcFinalSigkill {
		for i := 0; i < 16; i++ {
			before := len(signalled)
			send(s.killTargets(false))
			if len(signalled) == before {
				break
			}
		}
	}
	next := svcStopSigkill
	if sub == svcFinalSigterm {
		next = svcFinalSigkill
	}
	if sub == svcStopSigkill || sub == svcFinalSigkill {
		s.armTimer(s.cfg.TimeoutStop, func() {
			s.u.warnf("Processes still around after final kill signal. Ignoring.")
			s.afterSignals(sub)
		})
	} else if s.cfg.SendSIGKILL {
		s.armTimer(s.cfg.TimeoutStop, func() {
			s.u.warnf("State '%s' timed out. Killing.", sub)
			if s.result == resultSuccess {
				s.result = resultTimeout
			}
			s.enterSignal(next)
		})
	}
	s.pollProcesses()
}

// killTargets lists the processes a stop signals, per kill-mode.
func (s *service) killTargets(final bool) []int {
	mode := s.cfg.KillMode
	var pids []int
	add := func(pid int) {
		// Negative: a whole process group.
		if pid != 0 {
			for _, p := range pids {
				if p == pid {
					return
				}
			}
			pids = append(pids, pid)
		}
	}
	switch mode {
	case unitfile.KillNone:
		return nil
	case unitfile.KillProcess:
		add(s.mainPID)
		add(s.controlPID)
		return pids
	case unitfile.KillMixed:
		add(s.mainPID)
		add(s.controlPID)
		if !final {
			return pids
		}
	}
	add(s.mainPID)
	add(s.controlPID)
	if s.cgroup != "" {
		procs, err := s.m.cgroups.Procs(s.cgroup)
		if err != nil {
			s.u.warnf("%v", err)
		}
		for _, pid := range procs {
			add(pid)
		}
		return pids
	}
	// Every process we started leads its own session and process group;
	// signalling the group reaches its members without a walk of /proc.
	for sid := range s.sessions {
		if syscall.Kill(-sid, 0) == nil {
			add(-sid)
		}
	}
	return pids
}

// remaining reports whether any process of the unit is still alive.
func (s *service) remaining() bool {
	if s.mainPID != 0 || s.controlPID != 0 {
		return true
	}
	if s.cfg.KillMode == unitfile.KillProcess || s.cfg.KillMode == unitfile.KillNone {
		return false
	}
	if s.cgroup != "" {
		populated, err := s.m.cgroups.Populated(s.cgroup)
		return populated || err != nil
	}
	for sid := range s.sessions {
		if syscall.Kill(-sid, 0) == nil {
			return true
		}
		delete(s.sessions, sid)
	}
	return false
}

// pollProcesses rechecks, while stopping, whether the unit's processes are
// gone. Exits of adopted processes also trigger checkEmpty; the poll covers
// processes that are not our children. A unit with a cgroup needs no poll:
// the group's "empty" event says when its last process is gone.
func (s *service) pollProcesses() {
	if s.cgroup != "" {
		return
	}
	s.m.StopTimer(s.pollTimer)
	s.pollTimer = s.m.AfterFunc(50*time.Millisecond, func() {
		s.pollTimer = 0
		s.checkEmpty()
		switch s.state {
		case svcStopSigterm, svcStopSigkill, svcFinalSigterm, svcFinalSigkill:
			s.pollProcesses()
		case svcRunning:
			if s.mainPID == 0 && s.cfg.Type == unitfile.ServiceForking {
				s.pollProcesses()
			}
		}
	})
}

func (s *service) checkEmpty() {
	switch s.state {
	case svcStart, svcStartPost:
		s.pidFileNeverWritten()
	case svcStopSigterm, svcStopSigkill:
		if !s.remaining() {
			s.afterSignals(s.state)
		}
	case svcFinalSigterm, svcFinalSigkill:
		if !s.remaining() {
			s.enterDead()
		}
	case svcRunning:
		if s.mainPID == 0 && s.cfg.Type == unitfile.ServiceForking && !s.remaining() {
			s.enterStop(resultSuccess)
		}
	}
}

func (s *service) afterSignals(sub string) {
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.m.StopTimer(s.pollTimer)
	s.pollTimer = 0
	if sub == svcFinalSigterm || sub == svcFinalSigkill {
		s.enterDead()
		return
	}
	if len(s.cfg.ExecStopPost) > 0 {
		s.setState(svcStopPost)
		s.armTimeout(s.cfg.TimeoutStop)
		s.runCommands(svcStopPost, s.cfg.ExecStopPost, func(bool) { s.enterSignal(svcFinalSigterm) })
		return
	}
	s.enterSignal(svcFinalSigterm)
}

func (s *service) enterDead() {
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.m.StopTimer(s.pollTimer)
	s.pollTimer = 0
	s.stopWatchdog()
	s.mainPID, s.controlPID = 0, 0
	s.releaseCgroup()
	for pid := range s.m.pids {
		if s.m.pids[pid] == processOwner(s) {
			delete(s.m.pids, pid)
		}
	}
	if s.result != resultSuccess {
		if s.failReason == "" {
			s.failReason = fmt.Sprintf("%s: result %s", s.u.Name, s.result)
		}
		s.u.warnf("Failed with result '%s'.", s.result)
	}
	if s.shouldRestart() {
		// The service goes dead in systemd's sense before it waits to
		// restart: runtime-directory-preserve = "no" empties /run now.
		s.m.removeRuntimeDirectories(s.u, true)
		s.enterAutoRestart()
		s.endStartJob()
		return
	}
	if !s.keepsFDStore() {
		s.releaseFDStore()
	}
	if s.result != resultSuccess {
		s.setState(svcFailed)
		return
	}
	s.setState(svcDead)
}

func (s *service) shouldRestart() bool {
	if s.u.manualStop || s.m.shuttingDown || s.result == resultStartLimitHit {
		return false
	}
	if ex := s.mainExit; ex != nil {
		if (ex.Signal == 0 && s.cfg.RestartPreventExitStatus.HasCode(ex.Code)) || (ex.Signal != 0 && s.cfg.RestartPreventExitStatus.HasSignal(ex.Signal)) {
			return false
		}
		if (ex.Signal == 0 && s.cfg.RestartForceExitStatus.HasCode(ex.Code)) || (ex.Signal != 0 && s.cfg.RestartForceExitStatus.HasSignal(ex.Signal)) {
			return true
		}
	}
	r := s.result
	switch s.cfg.Restart {
	case unitfile.RestartAlways:
		return true
	case unitfile.RestartOnSuccess:
		return r == resultSuccess
	case unitfile.RestartOnFailure:
		return r != resultSuccess
	case unitfile.RestartOnAbnormal:
		return r == resultSignal || r == resultCoreDump || r == resultTimeout || r == resultWatchdog
	case unitfile.RestartOnWatchdog:
		return r == resultWatchdog
	case unitfile.RestartOnAbort:
		return r == resultSignal || r == resultCoreDump
	}
	return false
}

// restartDelay grows from restart-sec to restart-max-delay over
// restart-steps restarts, exponentially, as systemd 254 does.
func (s *service) restartDelay() time.Duration {
	base := s.cfg.RestartSec
	max := s.cfg.RestartMaxDelay
	steps := s.cfg.RestartSteps
	if steps <= 0 || max == unitfile.Infinity || max <= base || base <= 0 {
		return base
	}
	n := s.restartStep
	if n >= steps {
		return max
	}
	f := math.Pow(float64(max)/float64(base), float64(n)/float64(steps))
	return time.Duration(float64(base) * f).Round(time.Millisecond)
}

// endStartJob ends a start job that is still waiting for this activation
// when the service goes into auto-restart: as in systemd 252, the job
// reports the failed attempt and the restart goes on without it (else a
// service failing before it is up would hold its start job forever).
func (s *service) endStartJob() {
	j := s.u.job
	if j == nil || j.State != jobRunning || !(j.Type == api.JobStart || j.Type == api.JobRestart && j.phase == api.JobStart) {
		return
	}
	if s.result == resultSuccess {
		s.m.finishJob(j, api.ResultDone, "")
		return
	}
	s.m.finishJob(j, api.ResultFailed, s.m.failureReason(s.u))
}

func (s *service) enterAutoRestart() {
	delay := s.restartDelay()
	s.restartStep++
	s.u.infof("Scheduled restart in %s (restart counter is at %d).", unitfile.FormatDuration(delay), s.nRestarts+1)
	s.setState(svcAutoRestart)
	s.timer = s.m.AfterFunc(delay, func() {
		s.timer = 0
		if s.state != svcAutoRestart {
			return
		}
		if _, err := s.m.Enqueue(s.u.Name, api.JobStart, api.ModeReplace); err != nil {
			s.u.warnf("Failed to schedule restart job: %v", err)
			s.setState(svcFailed)
		}
	})
}

func (s *service) failStartLimit() {
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.result = resultStartLimitHit
	s.failReason = fmt.Sprintf("start request repeated too quickly for %s", s.u.Name)
	s.setState(svcFailed)
}

// failClean fails the service whose clean outlived timeout-clean
// (clean.go): it was dead, and is failed with that result.
func (s *service) failClean(result string) {
	s.result = result
	s.failReason = fmt.Sprintf("cleaning %s timed out", s.u.Name)
	s.setState(svcFailed)
}

func (s *service) armTimeout(d time.Duration) {
	s.armTimer(d, func() {
		s.u.warnf("%s operation timed out. Terminating.", s.state)
		s.failReason = fmt.Sprintf("%s timed out in state %s", s.u.Name, s.state)
		if s.state == svcStopSigterm || s.state == svcStop || s.state == svcStopPost {
			if s.result == resultSuccess {
				s.result = resultTimeout
			}
			s.enterSignal(svcStopSigkill)
			return
		}
		s.enterStop(resultTimeout)
	})
}

func (s *service) armTimer(d time.Duration, fn func()) {
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.timerFn = nil
	if d <= 0 || d == unitfile.Infinity {
		return
	}
	s.timerDeadline = time.Now().Add(d)
	s.timerFn = fn
	s.timer = s.m.AfterFunc(d, func() { s.timer = 0; s.timerFn = nil; fn() })
}

func (s *service) Stop() error {
	switch s.state {
	case svcAutoRestart:
		s.m.StopTimer(s.timer)
		s.timer = 0
		s.state = svcDead
		if !s.keepsFDStore() {
			s.releaseFDStore()
		}
		s.setState(svcDead)
		return nil
	case svcDead, svcFailed:
		return nil
	case svcStop, svcStopSigterm, svcStopSigkill, svcStopPost, svcFinalSigterm, svcFinalSigkill:
		return nil
	}
	s.stopForced = true
	s.enterStop(resultSuccess)
	return nil
}

func (s *service) Reload() error {
	if s.state != svcRunning && s.state != svcExited {
		return fmt.Errorf("%s cannot reload in state %s", s.u.Name, s.state)
	}
	prev := s.state
	s.reloadResult = resultSuccess
	if s.cfg.Type == unitfile.ServiceNotifyReload && len(s.cfg.ExecReload) == 0 {
		// systemd 253's notify-reload: signal the main process, then wait
		// for RELOADING=1 ... READY=1 (notifyReady ends the reload).
		if s.mainPID == 0 {
			return fmt.Errorf("%s has no main process to signal for a reload", s.u.Name)
		}
		if err := syscall.Kill(s.mainPID, syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload %s: signal main process %d: %w", s.u.Name, s.mainPID, err)
		}
		s.setState(svcReload)
		s.armTimeout(s.cfg.TimeoutStart)
		return nil
	}
	s.setState(svcReload)
	s.armTimeout(s.cfg.TimeoutStart)
	s.runCommands(svcReload, s.cfg.ExecReload, func(ok bool) {
		s.m.StopTimer(s.timer)
		s.timer = 0
		if !ok {
			s.u.warnf("Reload failed.")
		} else if s.cfg.Type == unitfile.ServiceForking {
			// A reload may have replaced the daemon's process (systemd
			// reads the PID file again, or guesses).
			if s.cfg.PIDFile != "" {
				s.loadPIDFile(true)
			}
			s.searchMainPID()
		}
		if s.mainPID == 0 && prev == svcRunning && s.cfg.Type != unitfile.ServiceForking {
			s.enterStop(s.result)
			return
		}
		s.setState(prev)
	})
	return nil
}

func (s *service) Kill(whom string, sig int) error {
	var pids []int
	switch whom {
	case "main":
		if s.mainPID == 0 {
			return fmt.Errorf("%s has no main process", s.u.Name)
		}
		pids = []int{s.mainPID}
	case "control":
		if s.controlPID == 0 {
			return fmt.Errorf("%s has no control process", s.u.Name)
		}
		pids = []int{s.controlPID}
	default:
		pids = s.killTargets(true)
	}
	if len(pids) == 0 {
		return fmt.Errorf("%s has no processes to signal", s.u.Name)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.Signal(sig)); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	return nil
}

func (s *service) ResetFailed() {
	if s.state == svcFailed {
		s.setState(svcDead)
	}
	s.result = resultSuccess
	s.nRestarts = 0
	s.restartStep = 0
	s.u.startLimit.reset()
}

func (s *service) Describe(st *api.UnitStatus) {
	st.MainPID = s.mainPID
	st.Result = s.result
	st.ExitStatus = s.mainExitText
	st.StatusText = s.statusText
	st.NRestarts = s.nRestarts
	s.describeNotify(st)
	seen := map[int]bool{}
	if s.mainPID != 0 {
		st.Processes = append(st.Processes, api.Process{PID: s.mainPID, Command: procCommand(s.mainPID), Main: true})
		seen[s.mainPID] = true
	}
	if s.controlPID != 0 {
		st.Processes = append(st.Processes, api.Process{PID: s.controlPID, Command: procCommand(s.controlPID), Control: true})
		seen[s.controlPID] = true
	}
	if s.cgroup != "" {
		st.ControlGroup = s.m.cgroups.Name(s.cgroup)
		stats := s.m.cgroups.Stats(s.cgroup)
		st.MemoryCurrent, st.MemoryPeak, st.TasksCurrent, st.CPUUsageNSec = stats.MemoryCurrent, stats.MemoryPeak, stats.TasksCurrent, stats.CPUUsageNSec
		st.Accounting = s.accounting()
	}
	for _, pid := range s.members() {
		if !seen[pid] {
			st.Processes = append(st.Processes, api.Process{PID: pid, Command: procCommand(pid)})
		}
	}
}

// members lists the unit's live processes: its cgroup's, or without one
// the members of the sessions it started.
func (s *service) members() []int {
	if s.cgroup != "" {
		pids, _ := s.m.cgroups.Procs(s.cgroup)
		return pids
	}
	return s.m.sessionMembers(s.sessions)
}

func (s *service) Properties() []api.Property {
	p := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	props := append(s.cgroupProperties(), s.notifyProperties()...)
	return append(props, []api.Property{
		p("Type", string(s.cfg.Type)),
		p("Restart", string(s.cfg.Restart)),
		p("MainPID", strconv.Itoa(s.mainPID)),
		p("ControlPID", strconv.Itoa(s.controlPID)),
		p("Result", s.result),
		p("ReloadResult", s.reloadResult),
		p("NRestarts", strconv.Itoa(s.nRestarts)),
		p("ExecMainStatus", s.mainExitText),
		p("StatusText", s.statusText),
		p("RemainAfterExit", yesno(s.cfg.RemainAfterExit)),
		p("PIDFile", s.cfg.PIDFile),
		p("KillMode", string(s.cfg.KillMode)),
		p("TimeoutStartUSec", unitfile.FormatDuration(s.cfg.TimeoutStart)),
		p("TimeoutStopUSec", unitfile.FormatDuration(s.cfg.TimeoutStop)),
		p("RestartUSec", unitfile.FormatDuration(s.cfg.RestartSec)),
	}...)
}

// cgroupProperties are the accounting properties, as systemd names them.
func (s *service) cgroupProperties() []api.Property {
	if s.cgroup == "" {
		return []api.Property{{Name: "ControlGroup", Value: ""}}
	}
	stats := s.m.cgroups.Stats(s.cgroup)
	num := func(v *uint64) string {
		if v == nil {
			return "[not set]"
		}
		return strconv.FormatUint(*v, 10)
	}
	return []api.Property{
		{Name: "ControlGroup", Value: s.m.cgroups.Name(s.cgroup)},
		{Name: "MemoryCurrent", Value: num(stats.MemoryCurrent)},
		{Name: "MemoryPeak", Value: num(stats.MemoryPeak)},
		{Name: "TasksCurrent", Value: num(stats.TasksCurrent)},
		{Name: "CPUUsageNSec", Value: num(stats.CPUUsageNSec)},
		{Name: "IOReadBytes", Value: num(stats.IOReadBytes)},
		{Name: "IOWriteBytes", Value: num(stats.IOWriteBytes)},
	}
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// jobTimeout is how long a start or stop of this service may take.
func (s *service) jobTimeout(jobType string) time.Duration {
	if jobType == api.JobStop {
		return s.cfg.TimeoutStop
	}
	return s.cfg.TimeoutStart
}

// accounting reads the service's cgroup use for listings; nil without a
// cgroup.
func (s *service) accounting() *api.Accounting {
	if s.cgroup == "" || s.m.cgroups == nil {
		return nil
	}
	st := s.m.cgroups.Stats(s.cgroup)
	return &api.Accounting{MemoryCurrent: st.MemoryCurrent, MemoryPeak: st.MemoryPeak, Tasks: st.TasksCurrent,
		CPUUsageNSec: st.CPUUsageNSec, IOReadBytes: st.IOReadBytes, IOWriteBytes: st.IOWriteBytes}
}
