package units

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vigil/observer"
	"vigil/observer/clock"
	"vigil/units/api"
	"vigil/units/calendar"
	"vigil/units/unitfile"
)

// Timer sub-states, as systemd names them.
const (
	timerDead    = "dead"
	timerWaiting = "waiting"
	timerRunning = "running"
	timerElapsed = "elapsed"
	timerFailed  = "failed"
)

// timer is the behaviour of .timer units: it starts its unit when one of
// its monotonic or calendar conditions elapses. Every timer runs on the
// loop's one timer heap; calendar timers re-compute when the clock or the
// time zone changes (source "clock").
type timer struct {
	u   *Unit
	m   *Manager
	cfg *unitfile.TimerSection

	state    string
	calendar []*calendar.Spec
	// activated is when the timer was last started (on-active's base).
	activated time.Time
	// lastTrigger is when the timer last started its unit (persistent).
	lastTrigger time.Time
	next        time.Time
	// nextMono says the next elapse comes from a monotonic setting.
	nextMono bool
	// cancel stops the pending elapse, if any.
	cancel func()
	result string
}

func newTimer(u *Unit) (*timer, error) {
	t := &timer{u: u, m: u.m, cfg: u.cfg.Timer, state: timerDead, result: resultSuccess}
	if err := t.parse(); err != nil {
		return nil, err
	}
	t.lastTrigger = t.loadStamp()
	if len(t.calendar) > 0 || t.cfg.OnClockChange || t.cfg.OnTimezoneChange {
		u.m.watchClock()
	}
	return t, nil
}

func (t *timer) parse() error {
	t.calendar = nil
	for _, expr := range t.cfg.OnCalendar {
		spec, err := calendar.Parse(expr)
		if err != nil {
			return fmt.Errorf("on-calendar = %q: %w", expr, err)
		}
		t.calendar = append(t.calendar, spec)
	}
	return nil
}

// target is the unit the timer starts.
func (t *timer) target() string {
	if t.cfg.Unit != "" {
		return t.cfg.Unit
	}
	return strings.TrimSuffix(t.u.Name, ".timer") + ".service"
}

func (t *timer) Reconfigure() {
	t.cfg = t.u.cfg.Timer
	if err := t.parse(); err != nil {
		t.u.errorf("%v", err)
	}
	if t.state == timerWaiting {
		t.schedule()
	}
}

func (t *timer) setState(sub string) {
	t.state = sub
	switch sub {
	case timerWaiting, timerRunning, timerElapsed:
		t.u.SetState(StateActive, sub)
	case timerFailed:
		t.u.SetState(StateFailed, sub)
	default:
		t.u.SetState(StateInactive, sub)
	}
}

func (t *timer) Start() error {
	if t.state == timerWaiting || t.state == timerRunning {
		return nil
	}
	t.result = resultSuccess
	t.activated = t.m.now()
	if stamp := t.loadStamp(); stamp.After(t.lastTrigger) {
		t.lastTrigger = stamp
	}
	t.setState(timerWaiting)
	// A persistent calendar timer that missed an elapse while it was not
	// running (the machine was off) catches up once, now.
	if t.cfg.Persistent && !t.lastTrigger.IsZero() {
		for _, spec := range t.calendar {
			if next, ok := spec.Next(t.lastTrigger); ok && !next.After(t.m.now()) {
				t.u.infof("Missed an elapse at %s while down; triggering now.", next.Format(time.RFC3339))
				t.elapse()
				return nil
			}
		}
	}
	t.schedule()
	return nil
}

func (t *timer) Stop() error {
	t.stopTimer()
	t.next = time.Time{}
	t.setState(timerDead)
	return nil
}

func (t *timer) stopTimer() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

// schedule computes the next elapse and arms the loop's timer for it.
func (t *timer) schedule() {
	t.stopTimer()
	now := t.m.now()
	var next time.Time
	mono := false
	consider := func(at time.Time, monotonic bool) {
		if at.IsZero() || (!t.lastTrigger.IsZero() && !at.After(t.lastTrigger)) {
			return
		}
		if next.IsZero() || at.Before(next) {
			next, mono = at, monotonic
		}
	}
	for _, d := range t.cfg.OnActive {
		consider(t.activated.Add(d), true)
	}
	for _, d := range t.cfg.OnBoot {
		consider(t.m.opts.Clock.BootTime().Add(d), true)
	}
	for _, d := range t.cfg.OnStartup {
		// The manager started when its loop did.
		consider(t.m.started.Add(d), true)
	}
	if target := t.m.units[t.target()]; target != nil {
		// As systemd: "active" counts from when the unit last left
		// inactive, which a oneshot also does.
		if !target.inactiveExit.IsZero() {
			for _, d := range t.cfg.OnUnitActive {
				consider(target.inactiveExit.Add(d), true)
			}
		}
		if !target.inactiveEnter.IsZero() && target.active.IsInactiveOrFailed() {
			for _, d := range t.cfg.OnUnitInactive {
				consider(target.inactiveEnter.Add(d), true)
			}
		}
	}
	base := now
	if !t.lastTrigger.IsZero() && t.lastTrigger.After(base) {
		base = t.lastTrigger
	}
	for _, spec := range t.calendar {
		if at, ok := spec.Next(base); ok {
			consider(at, false)
		}
	}
	t.next, t.nextMono = next, mono
	if next.IsZero() {
		if t.cfg.RemainAfterElapse {
			if t.state != timerElapsed && t.state != timerRunning {
				t.setState(timerElapsed)
			}
			return
		}
		if t.state != timerRunning {
			t.setState(timerDead)
		}
		return
	}
	delay := next.Sub(now) + t.randomDelay()
	if delay < 0 {
		delay = 0
	}
	t.cancel = t.m.opts.Clock.AfterFunc(delay, func() {
		t.cancel = nil
		t.elapse()
	})
}

// randomDelay spreads elapses over randomized-delay, stable per machine and
// unit with fixed-random-delay.
func (t *timer) randomDelay() time.Duration {
	d := t.cfg.RandomizedDelay
	if d <= 0 || d == unitfile.Infinity {
		return 0
	}
	if t.cfg.FixedRandomDelay {
		h := fnv.New64a()
		id, _ := os.ReadFile("/etc/machine-id")
		h.Write(id)
		h.Write([]byte(t.u.Name))
		return time.Duration(h.Sum64() % uint64(d))
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// elapse starts the unit and schedules the next elapse.
func (t *timer) elapse() {
	if t.state != timerWaiting && t.state != timerElapsed {
		return
	}
	t.lastTrigger = t.m.now()
	t.saveStamp()
	t.u.debugf("Timer elapsed; starting %s.", t.target())
	if _, err := t.m.Enqueue(t.target(), api.JobStart, api.ModeReplace); err != nil {
		t.u.warnf("Failed to start %s: %v", t.target(), err)
		t.result = "resources"
		t.stopTimer()
		t.setState(timerFailed)
		return
	}
	t.setState(timerRunning)
	t.schedule()
}

// triggeredChanged follows the started unit: on-unit-active/inactive bases
// move, and the timer goes back to waiting when its unit is done.
func (t *timer) triggeredChanged(u *Unit) {
	if u.Name != t.target() || t.state == timerDead || t.state == timerFailed {
		return
	}
	if t.state == timerRunning && (u.active.IsInactiveOrFailed() || u.active == StateActive) {
		t.state = timerWaiting
		t.u.SetState(StateActive, timerWaiting)
	}
	t.schedule()
}

// clockChanged re-computes calendar elapses after the clock or the zone
// changed, and triggers when the unit asks for it.
func (t *timer) clockChanged(kind string) {
	if t.state != timerWaiting && t.state != timerElapsed && t.state != timerRunning {
		return
	}
	if (kind == "changed" && t.cfg.OnClockChange) || (kind == "timezone" && t.cfg.OnTimezoneChange) {
		t.u.infof("Clock %s; triggering.", kind)
		if t.state != timerRunning {
			t.elapse()
			return
		}
	}
	t.schedule()
}

func (t *timer) stampPath() string {
	if t.m.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(t.m.opts.StateDir, "timers", "stamp-"+t.u.Name)
}

func (t *timer) loadStamp() time.Time {
	p := t.stampPath()
	if p == "" || !t.cfg.Persistent {
		return time.Time{}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func (t *timer) saveStamp() {
	p := t.stampPath()
	if p == "" || !t.cfg.Persistent {
		return
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	f, err := os.Create(p)
	if err != nil {
		t.u.warnf("persistent timer stamp: %v", err)
		return
	}
	f.Close()
	os.Chtimes(p, t.lastTrigger, t.lastTrigger)
}

func (t *timer) Reload() error          { return fmt.Errorf("%s cannot be reloaded", t.u.Name) }
func (t *timer) CanReload() bool        { return false }
func (t *timer) Kill(string, int) error { return fmt.Errorf("%s has no processes", t.u.Name) }
func (t *timer) ResetFailed() {
	t.result = resultSuccess
	if t.state == timerFailed {
		t.setState(timerDead)
	}
}

func (t *timer) Describe(st *api.UnitStatus) {
	st.Result = t.result
	st.Triggers = append(st.Triggers[:0:0], t.target())
	if st.Extra == nil {
		st.Extra = map[string]string{}
	}
	for k, v := range t.listExtra() {
		st.Extra[k] = v
	}
}

// listExtra gives the columns of `initctl list-timers`.
func (t *timer) listExtra() map[string]string {
	x := map[string]string{"activates": t.target()}
	if !t.next.IsZero() {
		x["next"] = t.next.Format(time.RFC3339)
	}
	if !t.lastTrigger.IsZero() {
		x["last"] = t.lastTrigger.Format(time.RFC3339)
	}
	return x
}

func (t *timer) Properties() []api.Property {
	p := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	usec := func(at time.Time) string {
		if at.IsZero() {
			return "0"
		}
		return strconv.FormatInt(at.UnixMicro(), 10)
	}
	var cal []string
	for _, s := range t.calendar {
		cal = append(cal, s.String())
	}
	return []api.Property{
		p("Unit", t.target()),
		p("TimersCalendar", strings.Join(cal, "; ")),
		p("NextElapseUSecRealtime", usec(t.next)),
		p("LastTriggerUSec", usec(t.lastTrigger)),
		p("Result", t.result),
		p("Persistent", yesno(t.cfg.Persistent)),
		p("RemainAfterElapse", yesno(t.cfg.RemainAfterElapse)),
		p("AccuracyUSec", unitfile.FormatDuration(t.cfg.Accuracy)),
		p("RandomizedDelayUSec", unitfile.FormatDuration(t.cfg.RandomizedDelay)),
	}
}

// watchClock starts the clock source the first time a calendar timer needs
// it, and routes its events to every timer.
func (m *Manager) watchClock() {
	if m.clock != nil {
		return
	}
	w, err := clock.Start(m.loop, clock.Options{})
	if err != nil {
		m.warnf("calendar timers will not notice clock changes: %v", err)
		return
	}
	m.clock = w
	if err := w.ZoneWatchErr(); err != nil {
		m.warnf("calendar timers will not notice time zone changes: %v", err)
	}
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "clock changes",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"clock"}}}},
		Notify: func(ev *observer.Event) {
			for _, u := range m.Units() {
				if t, ok := u.behaviour.(*timer); ok {
					t.clockChanged(ev.Kind)
				}
			}
		},
	}); err != nil {
		m.warnf("clock observer: %v", err)
	}
}

// Close releases what the manager holds outside the loop (the clock
// watcher). Units keep running.
func (m *Manager) Close() {
	if m.clock != nil {
		m.clock.Close()
		m.clock = nil
	}
	m.closePaths()
	m.closeAutomounts()
	if m.cgroupEvents != nil {
		m.cgroupEvents.Close()
	}
}
