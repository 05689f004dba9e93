package units

// The commands of a socket unit (exec-start-pre, exec-start-post,
// exec-stop-pre, exec-stop-post) and the states they run in, as systemd's
// socket.c orders them:
//
//	dead → start-pre → (open the listeners) → start-post → listening
//	listening/running → stop-pre → (close the listeners) → stop-post →
//	    final-sigterm → final-sigkill → dead or failed
//
// Each command is the unit's control process, started with the service
// machinery (execSpec, spawnInCgroup, captureOutput: its output goes to
// the socket's log) and bounded by timeout-sec from its own start. A
// failed start-pre ends the start (result exit-code) without opening
// anything; a failed start-post closes again through stop-pre/stop-post;
// a failed stop command is recorded as the result but the stop goes on.
// A '-' command's failure is ignored.
//
// Socket commands run in the socket's cgroup (in its slice, see
// commandCgroup), removed when the socket is dead; each also leads its
// own session, and stopping signals those sessions (per kill-mode). A
// command killed by a stop (a stop during start-pre or start-post goes
// straight to stop-pre-sigterm) counts as its exit says, as in systemd's
// socket_sigchld_event: the unit ends failed with result "signal" unless
// the command was '-'. A timeout is the result "timeout" and stays so,
// since only the first failure of an activation is kept.

import (
	"fmt"
	"syscall"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/exec"
	"vigil/units/unitfile"
)

// Socket sub-states of the command phases, as systemd names them.
const (
	sockStartPre       = "start-pre"
	sockStartPost      = "start-post"
	sockStopPre        = "stop-pre"
	sockStopPreSigterm = "stop-pre-sigterm"
	sockStopPreSigkill = "stop-pre-sigkill"
	sockStopPost       = "stop-post"
	sockFinalSigterm   = "final-sigterm"
	sockFinalSigkill   = "final-sigkill"
)

// socketControl is the running command list of a socket unit.
type socketControl struct {
	pid  int
	cmd  unitfile.Command
	kind string // ExecStartPre, ... for the unit's exec records
	// pending are the commands of the list still to run; next continues
	// the state machine with the list's result.
	pending []unitfile.Command
	next    func(result string)
	timer   observer.TimerID
	// poll rechecks, while signalling, whether the sessions are empty.
	poll observer.TimerID
	// sessions are the session IDs of every command started in this
	// activation (each leads its own): a stop signals their members.
	sessions map[int]bool
}

func sockStopping(sub string) bool {
	switch sub {
	case sockStopPre, sockStopPreSigterm, sockStopPreSigkill, sockStopPost, sockFinalSigterm, sockFinalSigkill:
		return true
	}
	return false
}

// noteResult keeps the first failure of an activation.
func (k *socketUnit) noteResult(result string) {
	if result != resultSuccess && k.result == resultSuccess {
		k.result = result
	}
}

// beginStart runs a start from dead or failed: start-pre, then open.
func (k *socketUnit) beginStart() {
	k.result = resultSuccess
	k.failReason = ""
	k.ctl.sessions = map[int]bool{}
	k.m.noteActivation(k.u)
	if reason := k.checkListen(); reason != "" {
		k.failReason = fmt.Sprintf("%s: %s", k.u.Name, reason)
		k.enterDead(resultResources)
		return
	}
	if len(k.cfg.ExecStartPre) == 0 {
		k.enterOpen()
		return
	}
	k.setState(sockStartPre)
	k.runControl("ExecStartPre", k.cfg.ExecStartPre, func(result string) {
		if result != resultSuccess {
			k.setFailReason("an exec-start-pre command failed")
			k.enterSignal(sockFinalSigterm, result)
			return
		}
		k.enterOpen()
	})
}

// enterOpen opens the listeners, then runs start-post.
func (k *socketUnit) enterOpen() {
	if err := k.openListeners(); err != nil {
		k.u.errorf("Failed to create listening socket: %v", err)
		k.setFailReason(err.Error())
		k.enterStopPre(resultResources)
		return
	}
	if len(k.cfg.ExecStartPost) == 0 {
		k.enterListening()
		return
	}
	k.setState(sockStartPost)
	k.runControl("ExecStartPost", k.cfg.ExecStartPost, func(result string) {
		if result != resultSuccess {
			k.setFailReason("an exec-start-post command failed")
			k.enterStopPre(result)
			return
		}
		k.enterListening()
	})
}

// enterStopPre stops watching (the listeners stay open for the stop-pre
// commands), then runs them.
func (k *socketUnit) enterStopPre(result string) {
	k.noteResult(result)
	k.stopWatching()
	if len(k.cfg.ExecStopPre) == 0 {
		k.enterStopPost(resultSuccess)
		return
	}
	k.setState(sockStopPre)
	k.runControl("ExecStopPre", k.cfg.ExecStopPre, k.enterStopPost)
}

// enterStopPost closes the listeners, then runs stop-post.
func (k *socketUnit) enterStopPost(result string) {
	k.noteResult(result)
	k.closeListeners()
	if len(k.cfg.ExecStopPost) == 0 {
		k.enterSignal(sockFinalSigterm, resultSuccess)
		return
	}
	k.setState(sockStopPost)
	k.runControl("ExecStopPost", k.cfg.ExecStopPost, func(result string) {
		k.enterSignal(sockFinalSigterm, result)
	})
}

// enterSignal signals what is left of the commands' sessions and waits
// for them (bounded by timeout-sec), then goes on: after stop-pre-* to
// stop-post, after final-* to dead.
func (k *socketUnit) enterSignal(sub, result string) {
	k.noteResult(result)
	k.ctl.next = nil
	k.ctl.pending = nil
	sig := k.cfg.KillSignal
	if sub == sockStopPreSigkill || sub == sockFinalSigkill {
		sig = k.cfg.FinalKillSignal
	}
	if k.signalControl(sig) {
		k.setState(sub)
		k.armControlTimer(func() { k.signalTimedOut(sub) })
		k.pollControl()
		return
	}
	k.afterSignals(sub, resultSuccess)
}

// afterSignals goes on once nothing of the unit's commands is left.
func (k *socketUnit) afterSignals(sub, result string) {
	k.stopControlTimers()
	switch sub {
	case sockStopPreSigterm, sockStopPreSigkill:
		k.enterStopPost(result)
	default:
		k.enterDead(result)
	}
}

func (k *socketUnit) signalTimedOut(sub string) {
	switch sub {
	case sockStopPreSigterm, sockFinalSigterm:
		if k.cfg.SendSIGKILL {
			k.u.warnf("State '%s' timed out. Killing.", sub)
			next := sockStopPreSigkill
			if sub == sockFinalSigterm {
				next = sockFinalSigkill
			}
			k.enterSignal(next, resultTimeout)
			return
		}
		k.u.warnf("State '%s' timed out. Skipping SIGKILL.", sub)
	default:
		k.u.warnf("Processes still around after final kill signal. Ignoring.")
	}
	k.afterSignals(sub, resultTimeout)
}

// enterDead ends an activation: dead, or failed with the result. A start
// asked for while stopping begins now.
func (k *socketUnit) enterDead(result string) {
	k.noteResult(result)
	k.stopControlTimers()
	k.closeListeners()
	k.forgetControl()
	k.m.releaseCommandCgroup(k.u)
	if k.startAgain {
		k.startAgain = false
		k.beginStart()
		return
	}
	if k.result != resultSuccess {
		if k.failReason == "" {
			k.failReason = fmt.Sprintf("%s: result %s", k.u.Name, k.result)
		}
		k.u.warnf("Failed with result '%s'.", k.result)
		k.setState(sockFailed)
		return
	}
	k.setState(sockDead)
}

func (k *socketUnit) setFailReason(reason string) {
	if k.failReason == "" {
		k.failReason = fmt.Sprintf("%s: %s", k.u.Name, reason)
	}
}

// runControl runs cmds one by one as the control process, then calls
// next with the list's result.
func (k *socketUnit) runControl(kind string, cmds unitfile.Commands, next func(result string)) {
	k.ctl.kind = kind
	k.ctl.pending = append([]unitfile.Command(nil), cmds...)
	k.ctl.next = next
	k.runNextControl()
}

func (k *socketUnit) runNextControl() {
	for len(k.ctl.pending) > 0 {
		cmd := k.ctl.pending[0]
		k.ctl.pending = k.ctl.pending[1:]
		err := k.spawnControl(cmd)
		if err == nil {
			return
		}
		k.u.errorf("Failed to execute %s: %v", cmd.Path, err)
		if cmd.IgnoreFailure {
			continue
		}
		k.setFailReason(fmt.Sprintf("failed to execute %s: %v", cmd.Path, err))
		k.finishControl(resultResources)
		return
	}
	k.finishControl(resultSuccess)
}

// finishControl hands the list's result to whoever waits for it.
func (k *socketUnit) finishControl(result string) {
	k.stopControlTimers()
	next := k.ctl.next
	k.ctl.next, k.ctl.pending, k.ctl.pid = nil, nil, 0
	if next != nil {
		next(result)
	}
}

// spawnControl starts one command, with the unit's exec settings, and
// arms timeout-sec for it.
func (k *socketUnit) spawnControl(cmd unitfile.Command) error {
	spec, err := k.m.execSpec(k.u, &k.cfg.ExecContext, cmd, 0)
	if err != nil {
		return err
	}
	for _, st := range []*exec.Stdio{&spec.Stdin, &spec.Stdout, &spec.Stderr} {
		if st.Kind == exec.StdioFD && st.FD == stdioSocketFD {
			return fmt.Errorf("standard stream \"socket\" is for services started by an accept = true socket, not for a socket's own commands")
		}
	}
	started, err := k.m.spawnInCgroup(k.u, spec, k.m.commandCgroup(k.u))
	if err != nil {
		return err
	}
	k.ctl.pid, k.ctl.cmd = started.PID, cmd
	k.ctl.sessions[started.PID] = true
	k.m.watchPID(started.PID, k)
	k.m.noteExecStart(k.u, k.ctl.kind, cmd, started.PID, false)
	k.m.captureOutput(k.u, started)
	k.armControlTimer(k.controlTimedOut)
	return nil
}

func (k *socketUnit) armControlTimer(fn func()) {
	k.m.StopTimer(k.ctl.timer)
	k.ctl.timer = 0
	d := k.cfg.Timeout
	if d <= 0 || d == unitfile.Infinity {
		return
	}
	k.ctl.timer = k.m.AfterFunc(d, func() { k.ctl.timer = 0; fn() })
}

func (k *socketUnit) stopControlTimers() {
	k.m.StopTimer(k.ctl.timer)
	k.m.StopTimer(k.ctl.poll)
	k.ctl.timer, k.ctl.poll = 0, 0
}

// controlTimedOut handles a command that outlived timeout-sec.
func (k *socketUnit) controlTimedOut() {
	sub := k.state
	k.u.warnf("%s operation timed out. Terminating.", sub)
	k.setFailReason(fmt.Sprintf("%s timed out in state %s", k.ctl.cmd.Path, sub))
	switch sub {
	case sockStartPre, sockStopPost:
		k.enterSignal(sockFinalSigterm, resultTimeout)
	case sockStopPre:
		k.enterSignal(sockStopPreSigterm, resultTimeout)
	case sockStartPost:
		// The stop-pre commands come next: the hung one goes first.
		k.killControlNow()
		k.ctl.next, k.ctl.pending = nil, nil
		k.enterStopPre(resultTimeout)
	}
}

// killControlNow sends final-kill-signal to the running command's group
// and forgets it.
func (k *socketUnit) killControlNow() {
	if k.ctl.pid != 0 {
		syscall.Kill(-k.ctl.pid, k.cfg.FinalKillSignal)
		syscall.Kill(k.ctl.pid, k.cfg.FinalKillSignal)
		k.ctl.pid = 0
	}
}

// signalControl sends sig to what is left of the commands, per kill-mode;
// it reports whether anything was there to signal.
func (k *socketUnit) signalControl(sig syscall.Signal) bool {
	if k.cfg.KillMode == unitfile.KillNone {
		return false
	}
	any := false
	send := func(pid int) {
		if syscall.Kill(pid, sig) == nil {
			any = true
			if k.cfg.SendSIGHUP && sig != syscall.SIGKILL {
				syscall.Kill(pid, syscall.SIGHUP)
			}
			if sig != syscall.SIGKILL && sig != syscall.SIGCONT && sig != syscall.SIGSTOP {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		}
	}
	if k.ctl.pid != 0 {
		send(k.ctl.pid)
	}
	if k.cfg.KillMode == unitfile.KillProcess {
		return any
	}
	for sid := range k.ctl.sessions {
		send(-sid)
	}
	return any
}

// controlLeft reports whether a command or a member of its session lives.
func (k *socketUnit) controlLeft() bool {
	if k.ctl.pid != 0 {
		return true
	}
	if k.cfg.KillMode == unitfile.KillProcess || k.cfg.KillMode == unitfile.KillNone {
		return false
	}
	for sid := range k.ctl.sessions {
		if syscall.Kill(-sid, 0) == nil {
			return true
		}
		delete(k.ctl.sessions, sid)
	}
	return false
}

// pollControl rechecks while signalling: members of the sessions that are
// not our children tell us nothing when they go.
func (k *socketUnit) pollControl() {
	k.m.StopTimer(k.ctl.poll)
	k.ctl.poll = k.m.AfterFunc(50*time.Millisecond, func() {
		k.ctl.poll = 0
		k.checkSignalled()
		if k.signalling() {
			k.pollControl()
		}
	})
}

func (k *socketUnit) signalling() bool {
	switch k.state {
	case sockStopPreSigterm, sockStopPreSigkill, sockFinalSigterm, sockFinalSigkill:
		return true
	}
	return false
}

func (k *socketUnit) checkSignalled() {
	if k.signalling() && !k.controlLeft() {
		k.afterSignals(k.state, resultSuccess)
	}
}

// forgetControl drops the bookkeeping of the activation's commands.
func (k *socketUnit) forgetControl() {
	for pid, owner := range k.m.pids {
		if owner == processOwner(k) {
			delete(k.m.pids, pid)
		}
	}
	k.ctl.pid, k.ctl.next, k.ctl.pending = 0, nil, nil
}

// processExited is the end of a control process (or of one that a stop
// gave up on).
func (k *socketUnit) processExited(pid int, ex process.Exit) {
	k.m.noteExecExit(k.u, pid, ex)
	if pid != k.ctl.pid {
		k.checkSignalled()
		return
	}
	k.ctl.pid = 0
	cmd := k.ctl.cmd
	result := k.commandResult(ex)
	k.u.logAt(exitLevel(result == resultSuccess || cmd.IgnoreFailure), "Control process %s exited, %s", cmd.Path, exitDescription(ex))
	if cmd.IgnoreFailure {
		result = resultSuccess
	}
	if k.signalling() {
		// systemd's socket_sigchld_event keeps the killed command's
		// result: a stop during start-pre/start-post ends failed with
		// result "signal" (unless the command was '-').
		k.noteResult(result)
		k.checkSignalled()
		return
	}
	if k.ctl.next == nil {
		return
	}
	if result == resultSuccess && len(k.ctl.pending) > 0 {
		k.runNextControl()
		return
	}
	k.finishControl(result)
}

// commandResult classifies a command's exit as systemd's
// EXIT_CLEAN_COMMAND does: only status 0 is clean (socket units have no
// success-exit-status).
func (k *socketUnit) commandResult(ex process.Exit) string {
	switch {
	case ex.Signal != 0 && ex.CoreDumped:
		return resultCoreDump
	case ex.Signal != 0:
		return resultSignal
	case ex.Code != 0:
		return resultExitCode
	}
	return resultSuccess
}

// exitDescription is systemd's "code=exited, status=1" for a log line.
func exitDescription(ex process.Exit) string {
	switch {
	case ex.Signal != 0 && ex.CoreDumped:
		return "code=dumped, signal=" + unitfile.SignalName(ex.Signal)
	case ex.Signal != 0:
		return "code=killed, signal=" + unitfile.SignalName(ex.Signal)
	}
	return fmt.Sprintf("code=exited, status=%d", ex.Code)
}
