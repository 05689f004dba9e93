package units

import (
	"fmt"
	"sort"
	"time"

	"vigil/observer"
	"vigil/units/api"
)

// Job states.
const (
	jobWaiting = "waiting"
	jobRunning = "running"
)

// Job is a state change requested for one unit.
type Job struct {
	ID    uint64
	Unit  *Unit
	Type  string
	State string
	// Result is set when the job has finished.
	Result string
	// Reason explains a failure in one line.
	Reason string
	// irreversible jobs (shutdown) cannot be replaced by later transactions.
	irreversible bool
	// quiet jobs had nothing to do: no status line.
	quiet bool
	// phase tracks a restart: "stop" then "start".
	phase   string
	timer   observer.TimerID
	created time.Time
	begun   time.Time
	// done callbacks run once, when the job finishes.
	done []func(*Job)
}

func (j *Job) String() string { return fmt.Sprintf("%s/%s", j.Unit.Name, j.Type) }

func (j *Job) info() api.JobInfo {
	return api.JobInfo{ID: j.ID, Unit: j.Unit.Name, Type: j.Type, State: j.State, Result: j.Result, Reason: j.Reason}
}

// OnDone registers fn to run (on the loop) when the job finishes.
// A job that already finished (jobs often finish inside Enqueue) calls fn
// at once.
func (j *Job) OnDone(fn func(*Job)) {
	if j.State == "done" {
		fn(j)
		return
	}
	j.done = append(j.done, fn)
}

// isStopLike is true for jobs that take a unit down.
func isStopLike(t string) bool { return t == api.JobStop }

// jobsOrdered reports whether job a must wait for job b, following
// systemd's rule: on an After/Before edge, stop jobs go first; two start
// jobs follow the edge; two stop jobs go against it.
func jobsOrdered(a, b *Job) bool {
	return ordered(a.Unit, a.Type, a.phase, b.Unit, b.Type, b.phase)
}

// ordered is the rule of jobsOrdered on plain values, so that planned jobs
// need not be turned into Jobs to be compared.
func ordered(ua *Unit, ta, phaseA string, ub *Unit, tb, phaseB string) bool {
	aAfterB := ua.hasDep(After, ub.Name) || ub.hasDep(Before, ua.Name)
	bAfterA := ub.hasDep(After, ua.Name) || ua.hasDep(Before, ub.Name)
	if !aAfterB && !bAfterA {
		return false
	}
	aStop, bStop := stopsNext(ta, phaseA), stopsNext(tb, phaseB)
	switch {
	case aStop && bStop:
		return bAfterA // stopping in reverse order
	case aStop != bStop:
		return bStop // a stop goes first, whatever the edge
	default:
		return aAfterB
	}
}

// effectiveStop is true while the job's next step takes the unit down.
func (j *Job) effectiveStop() bool { return stopsNext(j.Type, j.phase) }

func stopsNext(typ, phase string) bool {
	return isStopLike(typ) || ((typ == api.JobRestart || typ == api.JobTryRestart) && phase == api.JobStop)
}

// runnable reports whether no other pending job must go first.
func (m *Manager) runnable(j *Job) bool {
	u := j.Unit
	if m.cleaning(u) {
		return false // clean.go: the unit's directories are being removed
	}
	for _, k := range [...]DepKind{After, Before} {
		for name := range u.deps[k] {
			o := m.units[name]
			if o == nil || o.job == nil || o.job == j {
				continue
			}
			if jobsOrdered(j, o.job) {
				return false
			}
		}
	}
	return true
}

// dispatchJobs starts every waiting job that ordering allows. It loops
// because finishing one job synchronously may make others runnable.
func (m *Manager) dispatchJobs() {
	if m.dispatching {
		m.redispatch = true
		return
	}
	m.dispatching = true
	defer func() { m.dispatching = false }()
	for {
		m.redispatch = false
		ids := make([]uint64, 0, len(m.jobs))
		for id, j := range m.jobs {
			if j.State == jobWaiting {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
		for _, id := range ids {
			j, ok := m.jobs[id]
			if !ok || j.State != jobWaiting || !m.runnable(j) {
				continue
			}
			m.runJob(j)
		}
		if !m.redispatch {
			return
		}
	}
}

func (m *Manager) runJob(j *Job) {
	u := j.Unit
	j.State = jobRunning
	j.begun = time.Now()
	m.redispatch = true
	m.jobChanged(j)
	m.watchSlowJobs()
	switch j.Type {
	case api.JobStart:
		if missing := m.missingRequirement(u); missing != nil {
			// systemd refuses such a transaction outright; here the
			// requirement's own failed job may come too late, when this
			// unit already runs (nothing orders the two).
			m.finishJob(j, api.ResultDependency, fmt.Sprintf("dependency failed: required unit %s is %s", missing.Name, missing.LoadState))
			return
		}
		m.runStart(j)
	case api.JobVerifyActive:
		if u.active.IsActiveOrReloading() {
			m.finishJob(j, api.ResultDone, "")
		} else {
			m.finishJob(j, api.ResultDependency, fmt.Sprintf("%s is not active", u.Name))
		}
	case api.JobStop:
		if u.active.IsInactiveOrFailed() {
			j.quiet = true
			m.finishJob(j, api.ResultDone, "")
			return
		}
		u.manualStop = true
		m.statusLine(j, "stopping")
		m.thawBeforeStop(u)
		if err := u.behaviour.Stop(); err != nil {
			m.finishJob(j, api.ResultFailed, err.Error())
			return
		}
		m.checkJob(u)
	case api.JobReload:
		if !u.active.IsActiveOrReloading() {
			m.finishJob(j, api.ResultInvalid, fmt.Sprintf("%s is not active, cannot reload", u.Name))
			return
		}
		if err := u.behaviour.Reload(); err != nil {
			m.finishJob(j, api.ResultFailed, err.Error())
			return
		}
		m.checkJob(u)
	case api.JobRestart, api.JobTryRestart:
		if j.Type == api.JobTryRestart && j.phase == "" && !u.active.IsActiveOrReloading() && u.active != StateActivating {
			m.finishJob(j, api.ResultDone, "")
			return
		}
		if j.phase == "" {
			j.phase = api.JobStop
		}
		if j.phase == api.JobStop {
			if u.active.IsInactiveOrFailed() {
				m.restartToStart(j)
				return
			}
			u.manualStop = true
			m.thawBeforeStop(u)
			if err := u.behaviour.Stop(); err != nil {
				m.finishJob(j, api.ResultFailed, err.Error())
				return
			}
			m.checkJob(u)
			return
		}
		m.runStart(j)
	default:
		m.finishJob(j, api.ResultInvalid, "unknown job type "+j.Type)
	}
}

// restartToStart turns a restart job whose stop half is done into a start
// job waiting for its turn, as systemd does.
func (m *Manager) restartToStart(j *Job) {
	j.phase = api.JobStart
	j.State = jobWaiting
	m.redispatch = true
	m.dispatchJobs()
}

func (m *Manager) runStart(j *Job) {
	u := j.Unit
	if u.active.IsActiveOrReloading() {
		j.quiet = true
		m.finishJob(j, api.ResultDone, "")
		return
	}
	if u.LoadState != LoadLoaded {
		reason := fmt.Sprintf("unit %s is %s", u.Name, u.LoadState)
		if u.LoadError != "" {
			reason += ": " + u.LoadError
		}
		m.finishJob(j, api.ResultFailed, reason)
		return
	}
	if st, ok := u.behaviour.(interface{ starting() bool }); ok && st.starting() {
		return // already on its way: wait for the outcome
	}
	if ok, failed := m.checkConditions(u, false); !ok {
		u.conditionResult = false
		u.conditionFailed = failed
		u.infof("Condition check resulted in %s being skipped: %s", u.describe(), failed[0])
		m.finishJob(j, api.ResultDone, "")
		return
	}
	u.conditionResult = true
	u.conditionFailed = nil
	if ok, failed := m.checkConditions(u, true); !ok {
		u.warnf("Assertion failed for %s: %s", u.describe(), failed[0])
		m.finishJob(j, api.ResultAssert, "assertion failed: "+failed[0])
		return
	}
	if !exemptFromStartLimit(u) && !u.startLimit.allow(time.Now()) {
		u.warnf("Start request repeated too quickly.")
		m.failUnitStartLimit(u)
		m.finishJob(j, api.ResultFailed, fmt.Sprintf("start request repeated too quickly for %s (start-limit-hit)", u.Name))
		return
	}
	u.manualStop = false
	m.statusLine(j, "starting")
	if err := u.behaviour.Start(); err != nil {
		m.finishJob(j, api.ResultFailed, err.Error())
		return
	}
	m.checkJob(u)
}

// checkJob finishes the unit's running job if its state says so.
func (m *Manager) checkJob(u *Unit) {
	j := u.job
	if j == nil || j.State != jobRunning {
		return
	}
	st := u.active
	switch j.Type {
	case api.JobStart:
		switch {
		case st.IsActiveOrReloading(), st == StateInactive:
			// A oneshot that ran to completion ends inactive: done, as in
			// systemd.
			m.finishJob(j, api.ResultDone, "")
		case st == StateFailed:
			m.finishJob(j, api.ResultFailed, m.failureReason(u))
		}
	case api.JobStop:
		if st.IsInactiveOrFailed() {
			m.finishJob(j, api.ResultDone, "")
		}
	case api.JobReload:
		switch {
		case st == StateActive:
			m.finishJob(j, api.ResultDone, "")
		case st.IsInactiveOrFailed():
			m.finishJob(j, api.ResultFailed, m.failureReason(u))
		}
	case api.JobRestart, api.JobTryRestart:
		if j.phase == api.JobStop {
			if st.IsInactiveOrFailed() {
				m.restartToStart(j)
			}
			return
		}
		switch {
		case st.IsActiveOrReloading(), st == StateInactive:
			m.finishJob(j, api.ResultDone, "")
		case st == StateFailed:
			m.finishJob(j, api.ResultFailed, m.failureReason(u))
		}
	}
}

func (m *Manager) failureReason(u *Unit) string {
	if r, ok := u.behaviour.(interface{ FailureReason() string }); ok {
		if s := r.FailureReason(); s != "" {
			return s
		}
	}
	return fmt.Sprintf("%s entered state %s", u.Name, u.active)
}

// finishJob ends a job with a result and lets its dependents react.
func (m *Manager) finishJob(j *Job, result, reason string) {
	if _, ok := m.jobs[j.ID]; !ok {
		return
	}
	delete(m.jobs, j.ID)
	u := j.Unit
	if u.job == j {
		u.job = nil
	}
	m.StopTimer(j.timer)
	j.Result = result
	j.Reason = reason
	j.State = "done"
	m.statusLine(j, result)
	m.jobChanged(j)
	for _, fn := range j.done {
		fn(j)
	}
	if result != api.ResultDone && (j.Type == api.JobStart || j.Type == api.JobVerifyActive || j.Type == api.JobRestart) {
		// Jobs that required this one cannot succeed any more.
		for _, k := range []DepKind{RequiredBy, BoundBy, RequisiteOf} {
			for _, name := range u.Deps(k) {
				d := m.units[name]
				if d == nil || d.job == nil {
					continue
				}
				if t := d.job.Type; t == api.JobStart || t == api.JobVerifyActive || (t == api.JobRestart && d.job.phase != api.JobStop) {
					m.finishJob(d.job, api.ResultDependency, fmt.Sprintf("dependency failed: %s (%s)", u.Name, result))
				}
			}
		}
	}
	m.redispatch = true
	m.dispatchJobs()
}

// missingRequirement returns a unit that u requires or is bound to and that
// could not be loaded (not found, bad, masked), if there is one.
func (m *Manager) missingRequirement(u *Unit) *Unit {
	for _, k := range []DepKind{Requires, BindsTo, Requisite} {
		for _, name := range u.Deps(k) {
			if d := m.units[name]; d != nil && d.LoadState != LoadLoaded {
				return d
			}
		}
	}
	return nil
}

// cancelJob ends a job that a later transaction replaced.
func (m *Manager) cancelJob(j *Job) { m.finishJob(j, api.ResultCanceled, "replaced by a later job") }

// Jobs lists the pending jobs by ID.
func (m *Manager) Jobs() []api.JobInfo {
	out := make([]api.JobInfo, 0, len(m.jobs))
	for _, j := range m.jobs {
		out = append(out, j.info())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// JobOrder lists, by ID, the pending jobs that job id waits for (before:
// they must finish first; systemd's GetJobBefore) and those that wait for
// it (after; GetJobAfter), by the same rule dispatchJobs follows.
func (m *Manager) JobOrder(id uint64) (before, after []api.JobInfo, err error) {
	j, ok := m.jobs[id]
	if !ok || j.State == "done" {
		return nil, nil, &NoSuchJobError{ID: id}
	}
	for _, o := range m.jobs {
		if o == j || o.State == "done" {
			continue
		}
		if jobsOrdered(j, o) {
			before = append(before, o.info())
		}
		if jobsOrdered(o, j) {
			after = append(after, o.info())
		}
	}
	byID := func(l []api.JobInfo) { sort.Slice(l, func(a, b int) bool { return l[a].ID < l[b].ID }) }
	byID(before)
	byID(after)
	return before, after, nil
}
