package units

import (
	"sort"
	"time"

	"vigil/units/api"
)

// Behaviour is what one unit type does. The job engine calls it and learns
// the outcome from the state changes it reports with Unit.SetState; it never
// looks at the type itself.
type Behaviour interface {
	// Start begins activation. An error means the unit could not even begin
	// (the job fails at once); otherwise the outcome comes through SetState.
	Start() error
	// Stop begins deactivation.
	Stop() error
	// Reload asks the unit to re-read its configuration.
	Reload() error
	CanReload() bool
	// Kill signals the unit's processes: whom is "all", "main" or "control".
	Kill(whom string, sig int) error
	// ResetFailed forgets the last failure (result, restart counters).
	ResetFailed()
	// Describe adds type-specific fields to a status.
	Describe(st *api.UnitStatus)
	// Properties lists type-specific properties for `show`.
	Properties() []api.Property
	// Reconfigure takes a new configuration after daemon-reload without
	// touching running processes.
	Reconfigure()
}

// Unit is one loaded unit: its configuration, dependencies and state.
type Unit struct {
	m *Manager

	Name        string
	Type        string
	Aliases     []string
	Description string
	Fragment    string
	DropIns     []string
	LoadState   string
	LoadError   string
	// cfg is the decoded unit file; nil when not found or broken.
	cfg *config

	deps [numDepKinds]map[string]bool

	behaviour Behaviour

	active ActiveState
	sub    string
	job    *Job

	// Timestamps of the last transitions.
	stateChange   time.Time
	activeEnter   time.Time
	activeExit    time.Time
	inactiveEnter time.Time
	inactiveExit  time.Time

	conditionResult bool
	conditionFailed []string
	startLimit      rateLimit
	// manualStop records that the unit was stopped on request, so that
	// restart policies and OnSuccess do not fire.
	manualStop bool
	// loadedHash identifies the configuration, to flag changed units on reload.
	loadedHash string
}

// Active returns the unit's active state and sub-state.
func (u *Unit) Active() (ActiveState, string) { return u.active, u.sub }

// Deps lists the units this unit has a dependency of kind k on.
func (u *Unit) Deps(k DepKind) []string {
	out := make([]string, 0, len(u.deps[k]))
	for n := range u.deps[k] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (u *Unit) hasDep(k DepKind, name string) bool { return u.deps[k][name] }

func (u *Unit) addDep(k DepKind, name string) {
	if u.deps[k] == nil {
		u.deps[k] = map[string]bool{}
	}
	u.deps[k][name] = true
}

// SetState is how a behaviour reports a transition. It runs the job engine's
// reaction (finishing jobs, propagating failures) before it returns.
func (u *Unit) SetState(active ActiveState, sub string) {
	old := u.active
	u.sub = sub
	if old == active {
		return
	}
	now := u.m.now()
	u.active = active
	u.stateChange = now
	switch {
	case active.IsActiveOrReloading() && !old.IsActiveOrReloading():
		u.activeEnter = now
	case !active.IsActiveOrReloading() && old.IsActiveOrReloading():
		u.activeExit = now
	}
	switch {
	case active.IsInactiveOrFailed() && !old.IsInactiveOrFailed():
		u.inactiveEnter = now
	case !active.IsInactiveOrFailed() && old.IsInactiveOrFailed():
		u.inactiveExit = now
	}
	u.m.unitChanged(u, old, active)
}

// Logf writes a line to the unit's log and the manager's log at info
// level (LogAt takes another).
func (u *Unit) Logf(format string, args ...any) { u.logAt(LevelInfo, format, args...) }

func (u *Unit) summary() api.UnitSummary {
	s := api.UnitSummary{Name: u.Name, Type: u.Type, Load: u.LoadState, Active: string(u.active),
		Sub: u.sub, Description: u.describe()}
	if u.job != nil {
		s.JobID = u.job.ID
		s.JobType = u.job.Type
	}
	return s
}

func (u *Unit) describe() string {
	if u.Description != "" {
		return u.Description
	}
	return u.Name
}

// rateLimit is systemd's start limit: at most burst starts per interval.
type rateLimit struct {
	interval time.Duration
	burst    int
	begin    time.Time
	count    int
}

func (r *rateLimit) allow(now time.Time) bool {
	if r.interval <= 0 || r.burst <= 0 {
		return true
	}
	if r.begin.IsZero() || now.Sub(r.begin) > r.interval {
		r.begin = now
		r.count = 0
	}
	r.count++
	return r.count <= r.burst
}

func (r *rateLimit) reset() { r.begin = time.Time{}; r.count = 0 }

// needsReload reports whether the unit's files changed on disk since they
// were loaded (systemd's NeedDaemonReload).
func (u *Unit) needsReload() bool {
	return u.cfg != nil && u.cfg.Fragment != "" && hashConfig(u.cfg) != u.loadedHash
}
