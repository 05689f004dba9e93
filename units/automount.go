package units

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/autofs"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// Automount units (systemd's automount.c, in Vigil's shape).
//
// An .automount unit mounts an autofs trigger at its mount point
// (observer/autofs) and starts the .mount unit of the same place when a
// process touches it. The kernel holds that process until the mount
// unit's start job finishes: the request is a held event that the unit
// answers READY when the mount unit is active, FAIL when its job failed,
// and the hold's deadline (the mount unit's timeout, plus a margin)
// answers FAIL if nobody did, so an accessor never sleeps forever.
//
// With timeout-idle, the kernel is asked regularly whether the mount is
// idle; when it is, its expire request stops the mount unit and is
// answered when the unmount is done. Stopping the automount stops the
// mount unit first, then answers whatever still waits with FAIL and
// removes the trigger. The trigger, its pipe and its descriptors belong to
// the unit's behaviour, which daemon-reload keeps: a reload never drops
// the autofs mount nor a waiting accessor.

// AutomountSource is the name of the source the autofs triggers post to.
const AutomountSource = "autofs"

// Automount sub-states, as systemd names them.
const (
	automountDead    = "dead"
	automountWaiting = "waiting"
	automountRunning = "running"
	automountFailed  = "failed"
)

// automountHoldCeiling is the automount observer's own hold timeout: each
// request carries its real deadline (Hold.Deadline), which overrules it.
const automountHoldCeiling = 365 * 24 * time.Hour

// automountDeadlineMargin is added to the mount unit's timeout: the mount
// unit fails (and its failure is the answer) before the hold's deadline.
const automountDeadlineMargin = 5 * time.Second

// automountDefaultDeadline bounds a request when the mount unit has no
// timeout of its own (not loaded).
const automountDefaultDeadline = 90 * time.Second

type automount struct {
	u   *Unit
	m   *Manager
	cfg *unitfile.AutomountSection

	state  string
	result string
	// trigger is the autofs mount while the unit is waiting or running.
	trigger *autofs.Mount
	obs     observer.ObserverID
	// missing are the holds of accessors waiting for the mount; expiring
	// those of expire requests waiting for the unmount.
	missing  []uint64
	expiring []uint64
	// stopping is set while Stop waits for the mount unit to stop.
	stopping bool
}

func newAutomount(u *Unit) *automount {
	return &automount{u: u, m: u.m, cfg: u.cfg.Automount, state: automountDead, result: resultSuccess}
}

// target is the mount unit the automount starts.
func (a *automount) target() string {
	name, err := unitfile.MountUnitName(a.cfg.Where)
	if err != nil {
		return ""
	}
	return name
}

func (a *automount) setState(sub string) {
	a.state = sub
	switch sub {
	case automountWaiting, automountRunning:
		a.u.SetState(StateActive, sub)
	case automountFailed:
		a.u.SetState(StateFailed, sub)
	default:
		a.u.SetState(StateInactive, sub)
	}
}

// requestDeadline is how long an accessor may wait: the wait for the
// mount unit's device, its timeout and a margin. The mount unit answers
// first (it fails when its device does not come, mount.go); the deadline
// only catches what nobody answered.
func (a *automount) requestDeadline() time.Duration {
	if mu := a.m.units[a.target()]; mu != nil && mu.cfg != nil && mu.cfg.Mount != nil {
		t := mu.cfg.Mount.Timeout
		if t == unitfile.Infinity {
			return 0
		}
		if t > 0 {
			return a.m.mountDeviceWait(mu) + t + automountDeadlineMargin
		}
	}
	return automountDefaultDeadline
}

func (a *automount) fail(result, format string, args ...any) {
	a.result = result
	a.u.errorf(format, args...)
	a.setState(automountFailed)
}

func (a *automount) Start() error {
	if a.state == automountWaiting || a.state == automountRunning {
		return nil
	}
	a.result = resultSuccess
	a.stopping = false
	where := a.cfg.Where
	if a.m.autofsEvents == nil {
		a.m.autofsEvents = a.m.loop.NewSource(AutomountSource, 1024)
	}
	// The trigger logs from its own goroutines: hand the lines to the loop.
	u, loop := a.u, a.m.loop
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		loop.Do(func() { u.warnf("%s", line) })
	}
	trigger, err := autofs.Start(autofs.Options{
		Where:           where,
		DirectoryMode:   os.FileMode(a.cfg.DirectoryMode),
		ExtraOptions:    a.cfg.ExtraOptions,
		IdleTimeout:     idleOf(a.cfg),
		Source:          a.m.autofsEvents,
		RequestDeadline: a.requestDeadline(),
		Attrs:           map[string]string{"unit": a.u.Name},
		Logf:            logf,
	})
	if err != nil {
		a.fail("resources", "Failed to set up the automount: %v", err)
		return nil
	}
	id, err := a.m.loop.Register(observer.Observer{
		Guest: "supervisor",
		Name:  "automount " + a.u.Name,
		Filter: observer.Filter{Terms: []observer.Term{
			{Key: "source", Op: observer.OpEq, Values: []string{AutomountSource}},
			{Key: "unit", Op: observer.OpEq, Values: []string{a.u.Name}},
		}},
		Decides:     true,
		HoldTimeout: automountHoldCeiling,
		HoldDefault: observer.Deny,
		Notify:      a.onRequest,
	})
	if err != nil {
		trigger.Close()
		trigger.Unmount()
		a.fail("resources", "Failed to watch the automount: %v", err)
		return nil
	}
	a.trigger, a.obs = trigger, id
	a.setState(automountWaiting)
	return nil
}

func idleOf(s *unitfile.AutomountSection) time.Duration {
	if s.TimeoutIdle == unitfile.Infinity {
		return 0
	}
	return s.TimeoutIdle
}

// onRequest runs on the loop for each request of the trigger.
func (a *automount) onRequest(ev *observer.Event) {
	if ev.Hold == nil {
		return
	}
	if a.trigger == nil || a.stopping {
		a.answer(ev.Hold.ID, observer.Deny)
		return
	}
	target := a.target()
	switch ev.Kind {
	case autofs.KindMissing:
		a.missing = append(a.missing, ev.Hold.ID)
		a.u.infof("Got automount request for %s, triggered by %s (pid %s).", a.cfg.Where, processName(ev.Attr("pid")), ev.Attr("pid"))
		mb := a.mountBehaviour(target)
		if mb != nil {
			mb.automountStart = true
		}
		j, err := a.m.Enqueue(target, api.JobStart, api.ModeReplace)
		if err != nil {
			if mb != nil {
				mb.automountStart = false
			}
			a.u.warnf("Failed to start %s: %v", target, err)
			a.answerAll(&a.missing, observer.Deny)
			return
		}
		j.OnDone(func(*Job) {
			if mb != nil {
				mb.automountStart = false
			}
			a.settle()
		})
	case autofs.KindExpire:
		a.expiring = append(a.expiring, ev.Hold.ID)
		mu := a.m.units[target]
		if mu == nil || (mu.active.IsInactiveOrFailed() && mu.job == nil) {
			a.settle()
			return
		}
		a.u.infof("Got expire request for %s; stopping %s.", a.cfg.Where, target)
		j, err := a.m.Enqueue(target, api.JobStop, api.ModeReplace)
		if err != nil {
			a.u.warnf("Failed to stop %s: %v", target, err)
			a.answerAll(&a.expiring, observer.Deny)
			return
		}
		j.OnDone(func(*Job) { a.settle() })
	default:
		a.answer(ev.Hold.ID, observer.Deny)
	}
}

// mountBehaviour gives the behaviour of the mount unit name, or nil.
func (a *automount) mountBehaviour(name string) *mount {
	if mu := a.m.units[name]; mu != nil {
		if mb, ok := mu.behaviour.(*mount); ok {
			return mb
		}
	}
	return nil
}

// exemptFromStartLimit reports whether the start of u is a (re)mount that
// an access through its automount asked for. Those do not count against
// the mount unit's start limit: with a short timeout-idle, a mount that
// is used now and then expires and comes back far more often than a
// start limit made for crash loops allows, and every access would then
// fail with start-limit-hit. An accessor that finds the mount failing
// gets the error at once; nothing restarts on its own, so there is no
// loop to limit.
func exemptFromStartLimit(u *Unit) bool {
	mb, ok := u.behaviour.(*mount)
	return ok && mb.automountStart
}

// settle answers what waits, by the mount unit's state: accessors go on
// when it is active and fail when it is down with no job to change that;
// expire requests succeed when it is down and fail when it stayed up.
func (a *automount) settle() {
	mu := a.m.units[a.target()]
	active, down := false, true
	if mu != nil {
		active = mu.active == StateActive && mu.job == nil
		down = mu.active.IsInactiveOrFailed() && mu.job == nil
	}
	switch {
	case active:
		a.answerAll(&a.missing, observer.Allow)
		a.answerAll(&a.expiring, observer.Deny)
	case down:
		if len(a.missing) > 0 {
			a.u.warnf("%s is not active: failing %d waiting access(es).", a.target(), len(a.missing))
		}
		a.answerAll(&a.missing, observer.Deny)
		a.answerAll(&a.expiring, observer.Allow)
	}
	if a.stopping {
		if down {
			a.finishStop()
		}
		return
	}
	if a.trigger == nil {
		return
	}
	switch {
	case mu != nil && mu.active == StateActive && a.state == automountWaiting:
		a.setState(automountRunning)
	case down && a.state == automountRunning:
		a.setState(automountWaiting)
	}
}

func (a *automount) answer(holdID uint64, v observer.Verdict) {
	// A hold past its deadline was answered by the loop: not an error.
	_ = a.m.loop.Answer(holdID, a.obs, v)
}

func (a *automount) answerAll(holds *[]uint64, v observer.Verdict) {
	list := *holds
	*holds = nil
	for _, id := range list {
		a.answer(id, v)
	}
}

// triggeredChanged follows the mount unit (Triggers).
func (a *automount) triggeredChanged(u *Unit) {
	if u.Name != a.target() {
		return
	}
	a.settle()
}

// Stop stops the mount unit, then answers every waiting request FAIL and
// removes the trigger.
func (a *automount) Stop() error {
	if a.trigger == nil {
		if a.obs != 0 {
			a.m.loop.Unregister(a.obs)
			a.obs = 0
		}
		a.setState(automountDead)
		return nil
	}
	a.stopping = true
	a.answerAll(&a.missing, observer.Deny)
	target := a.target()
	mu := a.m.units[target]
	if mu == nil || (mu.active.IsInactiveOrFailed() && mu.job == nil) {
		a.finishStop()
		return nil
	}
	a.u.SetState(StateDeactivating, a.state)
	// Not from inside the job engine's call: on the next turn.
	a.m.loop.Do(func() {
		if !a.stopping {
			return
		}
		if mu := a.m.units[target]; mu == nil || (mu.active.IsInactiveOrFailed() && mu.job == nil) {
			a.settle()
			return
		}
		j, err := a.m.Enqueue(target, api.JobStop, api.ModeReplace)
		if err != nil {
			a.u.warnf("Failed to stop %s: %v", target, err)
			a.finishStop()
			return
		}
		j.OnDone(func(j *Job) {
			if a.stopping && j.Result != api.ResultDone {
				// It stays mounted: the trigger goes anyway (lazily).
				a.u.warnf("Stopping %s: %s; detaching it.", target, j.Result)
				a.finishStop()
			}
		})
	})
	return nil
}

// finishStop removes the trigger: every request still waiting is
// answered FAIL, then the autofs mount goes.
func (a *automount) finishStop() {
	a.stopping = false
	a.answerAll(&a.missing, observer.Deny)
	a.answerAll(&a.expiring, observer.Allow)
	if a.obs != 0 {
		// Holds the loop still has for this observer get its default (deny).
		a.m.loop.Unregister(a.obs)
		a.obs = 0
	}
	if a.trigger != nil {
		if err := a.trigger.Close(); err != nil {
			a.u.warnf("%v", err)
		}
		if err := unmountTrigger(a.cfg.Where); err != nil {
			a.u.warnf("%v", err)
		}
		a.trigger = nil
	}
	a.setState(automountDead)
}

// unmountTrigger removes the autofs mount at where; a mount still on top
// of it (its unit could not be stopped) is detached first, lazily, so its
// users keep it while the trigger goes.
func unmountTrigger(where string) error {
	for range 8 {
		var sfs unix.Statfs_t
		if err := unix.Statfs(where, &sfs); err != nil {
			return fmt.Errorf("automount %s: %w", where, err)
		}
		if sfs.Type == autofs.SuperMagic {
			return autofs.UnmountTrigger(where)
		}
		if err := unix.Unmount(where, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return nil // nothing mounted there any more
			}
			return fmt.Errorf("automount %s: detach what covers the trigger: %w", where, err)
		}
	}
	return fmt.Errorf("automount %s: the trigger stays covered", where)
}

// Reconfigure takes a new configuration after daemon-reload. The trigger
// and its waiting accessors stay; a new idle timeout applies at once.
func (a *automount) Reconfigure() {
	old := a.cfg
	a.cfg = a.u.cfg.Automount
	if a.trigger == nil {
		return
	}
	if a.cfg.Where != old.Where {
		a.u.noticef("where changed from %s to %s: takes effect when the unit is restarted.", old.Where, a.cfg.Where)
		a.cfg.Where = old.Where
	}
	if idleOf(a.cfg) != idleOf(old) {
		if err := a.trigger.SetIdleTimeout(idleOf(a.cfg)); err != nil {
			a.u.warnf("%v", err)
		}
	}
	a.trigger.SetRequestDeadline(a.requestDeadline())
}

func (a *automount) Reload() error          { return fmt.Errorf("%s cannot be reloaded", a.u.Name) }
func (a *automount) CanReload() bool        { return false }
func (a *automount) Kill(string, int) error { return fmt.Errorf("%s has no processes", a.u.Name) }

func (a *automount) ResetFailed() {
	a.result = resultSuccess
	if a.state == automountFailed {
		a.setState(automountDead)
	}
}

func (a *automount) Describe(st *api.UnitStatus) {
	st.Result = a.result
	st.Triggers = append(st.Triggers[:0:0], a.target())
	if st.Extra == nil {
		st.Extra = map[string]string{}
	}
	st.Extra["where"] = a.cfg.Where
	if a.trigger != nil {
		st.Extra["requests"] = strconv.FormatUint(a.trigger.Requests(), 10)
		st.Extra["failed-requests"] = strconv.FormatUint(a.trigger.Failed(), 10)
	}
}

func (a *automount) Properties() []api.Property {
	p := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	props := []api.Property{
		p("Where", a.cfg.Where),
		p("ExtraOptions", a.cfg.ExtraOptions),
		p("DirectoryMode", fmt.Sprintf("%04o", uint32(a.cfg.DirectoryMode))),
		p("TimeoutIdleUSec", unitfile.FormatDuration(a.cfg.TimeoutIdle)),
		p("Result", a.result),
		p("Unit", a.target()),
	}
	if a.trigger != nil {
		props = append(props, p("Requests", strconv.FormatUint(a.trigger.Requests(), 10)),
			p("FailedRequests", strconv.FormatUint(a.trigger.Failed(), 10)),
			p("PendingRequests", strconv.Itoa(a.trigger.Pending())))
	}
	return props
}

// processName gives the command name of pid for log lines, or "?".
func processName(pid string) string {
	if _, err := strconv.Atoi(pid); err != nil {
		return "?"
	}
	b, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil || len(b) == 0 {
		return "?"
	}
	return string(b[:len(b)-1])
}

// addAutomountDeps adds what an automount implies (systemd's automount
// defaults): it triggers its mount unit and is ordered before it; with
// default dependencies it is part of local-fs.target (remote-fs.target for
// a network mount) and goes at umount.target.
func (m *Manager) addAutomountDeps(u *Unit, cfg *config, add func(*Unit, DepKind, string)) {
	if cfg.Type != unitfile.TypeAutomount || cfg.Automount == nil {
		return
	}
	target, err := unitfile.MountUnitName(cfg.Automount.Where)
	if err != nil {
		return
	}
	add(u, Before, target)
	add(u, Triggers, target)
	if !cfg.Unit.DefaultDependencies {
		return
	}
	remote := false
	if mu := m.units[target]; mu != nil && mu.cfg != nil && mu.cfg.Mount != nil {
		remote = isNetworkMount(mu.cfg.Mount.FSType, mu.cfg.Mount.Options)
	}
	if remote {
		add(u, Before, "remote-fs.target")
	} else {
		add(u, Before, "local-fs.target")
		add(u, After, "local-fs-pre.target")
	}
	add(u, Conflicts, "umount.target")
	add(u, Before, "umount.target")
}

// closeAutomounts answers every waiting accessor and removes the triggers
// nothing covers, when the manager goes away without stopping its units.
// The loop is not running any more: only the triggers are touched.
func (m *Manager) closeAutomounts() {
	for _, u := range m.Units() {
		a, ok := u.behaviour.(*automount)
		if !ok || a.trigger == nil {
			continue
		}
		a.trigger.Close()
		autofs.UnmountTrigger(a.cfg.Where)
		a.trigger = nil
	}
}
