package units

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"vigil/units/api"
)

// txJob is a job a transaction plans, before it is installed.
type txJob struct {
	unit      *Unit
	typ       string
	essential bool
	// by is the job that pulled this one in (nil for the anchor).
	by *txJob
}

// transaction collects the jobs one request needs, checks them, and
// installs them.
type transaction struct {
	m      *Manager
	mode   string
	jobs   map[*Unit]*txJob
	order  []*Unit // insertion order, for stable behaviour
	anchor *txJob
}

// Enqueue asks for a job of type typ on the named unit with the given mode
// and installs the transaction it needs. It returns the anchor job.
func (m *Manager) Enqueue(name, typ, mode string) (*Job, error) {
	if mode == "" {
		mode = api.ModeReplace
	}
	u, err := m.LoadUnit(name)
	if err != nil {
		return nil, err
	}
	switch typ {
	case api.JobStart, api.JobStop, api.JobRestart, api.JobTryRestart, api.JobReload, api.JobVerifyActive:
	case api.JobReloadOrRestart:
		if u.behaviour != nil && u.behaviour.CanReload() && u.active.IsActiveOrReloading() {
			typ = api.JobReload
		} else {
			typ = api.JobRestart
		}
	default:
		return nil, fmt.Errorf("unknown job type %q", typ)
	}
	if u.LoadState != LoadLoaded && typ != api.JobStop {
		if u.LoadState == LoadNotFound {
			return nil, &NotFoundError{Name: u.Name}
		}
		msg := fmt.Sprintf("unit %s is %s", u.Name, u.LoadState)
		if u.LoadError != "" {
			msg += ": " + u.LoadError
		}
		return nil, fmt.Errorf("%s", msg)
	}
	if typ == api.JobReload && !u.behaviour.CanReload() {
		return nil, fmt.Errorf("job type reload is not applicable for unit %s", u.Name)
	}
	if mode == api.ModeIsolate && (typ != api.JobStart || u.Type != "target") {
		return nil, fmt.Errorf("isolate is only allowed for start jobs of targets (%s)", u.Name)
	}
	tx := &transaction{m: m, mode: mode, jobs: map[*Unit]*txJob{}}
	tx.anchor = tx.add(u, typ, true, nil)
	if mode == api.ModeIsolate {
		tx.addIsolateStops()
	}
	tx.dropRedundant()
	if err := tx.breakCycles(); err != nil {
		return nil, err
	}
	if err := tx.checkConflicts(); err != nil {
		return nil, err
	}
	return tx.install(), nil
}

// NotFoundError says a unit does not exist.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("unit %s not found", e.Name) }

// add plans a job and, recursively, the jobs its dependencies need.
func (tx *transaction) add(u *Unit, typ string, essential bool, by *txJob) *txJob {
	if existing, ok := tx.jobs[u]; ok {
		if existing.typ == typ {
			if essential {
				existing.essential = true
			}
			return existing
		}
		merged, ok := mergeJobTypes(existing.typ, typ)
		if !ok {
			// Keep the essential one; a clash of two essentials is found
			// by checkConflicts.
			if essential && !existing.essential {
				existing.typ, existing.essential, existing.by = typ, true, by
			} else if essential && existing.essential {
				existing.typ = existing.typ + "|" + typ
			}
			return existing
		}
		existing.typ = merged
		existing.essential = existing.essential || essential
		return existing
	}
	j := &txJob{unit: u, typ: typ, essential: essential, by: by}
	tx.jobs[u] = j
	tx.order = append(tx.order, u)
	if tx.mode == api.ModeIgnoreDependencies {
		return j
	}
	m := tx.m
	pull := func(kinds []DepKind, typ string, essentialToo bool) {
		for _, k := range kinds {
			for _, name := range u.Deps(k) {
				d, err := m.LoadUnit(name)
				if err != nil {
					m.warnf("%s: dependency %s %s: %v", u.Name, k, name, err)
					continue
				}
				if typ == api.JobStart && d.LoadState != LoadLoaded {
					if essentialToo && essential {
						// A missing requirement fails the start; a missing
						// want is only noted.
						tx.add(d, typ, true, j)
					} else {
						m.warnf("%s: wanted unit %s is %s; ignoring", u.Name, name, d.LoadState)
					}
					continue
				}
				tx.add(d, typ, essentialToo && essential, j)
			}
		}
	}
	switch typ {
	case api.JobStart, api.JobRestart:
		if tx.mode != api.ModeIgnoreRequirements {
			pull([]DepKind{Requires, BindsTo}, api.JobStart, true)
			pull([]DepKind{Requisite}, api.JobVerifyActive, true)
		}
		pull([]DepKind{Wants}, api.JobStart, false)
		pull([]DepKind{Conflicts, ConflictedBy}, api.JobStop, true)
		if typ == api.JobRestart {
			pull([]DepKind{ConsistsOf}, api.JobTryRestart, false)
		}
	case api.JobStop:
		pull([]DepKind{RequiredBy, BoundBy, ConsistsOf}, api.JobStop, true)
	case api.JobTryRestart:
		pull([]DepKind{ConsistsOf}, api.JobTryRestart, false)
	}
	return j
}

// mergeJobTypes combines two job types on one unit the way systemd does,
// or reports that they conflict.
func mergeJobTypes(a, b string) (string, bool) {
	if a == b {
		return a, true
	}
	pair := a + "+" + b
	switch pair {
	case "start+verify-active", "verify-active+start":
		return api.JobStart, true
	case "start+restart", "restart+start", "try-restart+restart", "restart+try-restart",
		"start+try-restart", "try-restart+start":
		return api.JobRestart, true
	case "reload+start", "start+reload":
		return api.JobReloadOrRestart, true
	case "reload+restart", "restart+reload":
		return api.JobRestart, true
	}
	return "", false
}

// isolateIgnorer is a behaviour whose units isolation leaves alone even
// without a file that says so (device units: only the kernel unplugs a
// device, and stopping one would stop everything bound to it).
type isolateIgnorer interface{ IgnoresIsolate() bool }

// addIsolateStops plans a stop for every running unit the target does not
// pull in.
func (tx *transaction) addIsolateStops() {
	for _, name := range tx.m.unitNames() {
		u := tx.m.units[name]
		if _, planned := tx.jobs[u]; planned || u.Name != name {
			continue // aliases are visited under their own name
		}
		if u.active.IsInactiveOrFailed() && (u.job == nil || isStopLike(u.job.Type)) {
			continue
		}
		if u.cfg != nil && u.cfg.Unit.IgnoreOnIsolate {
			continue
		}
		if ig, ok := u.behaviour.(isolateIgnorer); ok && ig.IgnoresIsolate() {
			continue
		}
		tx.add(u, api.JobStop, false, tx.anchor)
	}
}

// dropRedundant removes the planned jobs that would change nothing, as
// systemd's transaction_drop_redundant does: a start or verify-active of a
// unit that is active (or reloading), a stop of one that is inactive or
// failed. Installed, such a job is dispatched and finished at once without
// touching its unit, yet it costs a JobNew and a JobRemoved signal and a
// place in the ordering: every `systemctl start` of a service planned one
// for sysinit.target, its targets and slices, and stops for the shutdown
// and emergency units they conflict with. The anchor stays (its caller
// waits for its result), and so does a job on a unit that has a job of
// its own, which the planned one would merge with or replace.
//
// Unlike systemd, a redundant job that links two waits also stays: when a
// job that does something waits for it and it waits for another that does
// something (or for a job already queued), it carries that order. A start
// of B that conflicts with a running A, both after basic.target, waits
// for A's stop only through basic.target's job; dropping that job would
// start B beside a still running A.
func (tx *transaction) dropRedundant() {
	redundant := map[*txJob]bool{}
	for u, j := range tx.jobs {
		if j != tx.anchor && u.job == nil && redundantJob(j.typ, u.active) {
			redundant[j] = true
		}
	}
	if len(redundant) == 0 {
		return
	}
	// The "waits for" edges among planned jobs, and which planned jobs
	// wait for a job already queued.
	waitsFor := map[*txJob][]*txJob{}
	waitedBy := map[*txJob][]*txJob{}
	waitsQueued := map[*txJob]bool{}
	for _, j := range tx.jobs {
		for _, k := range [...]DepKind{After, Before} {
			for name := range j.unit.deps[k] {
				o := tx.m.units[name]
				if o == nil || o == j.unit {
					continue
				}
				if oj := tx.jobs[o]; oj != nil {
					if txMayWait(j.unit, j.typ, o, oj.typ, "") {
						waitsFor[j] = append(waitsFor[j], oj)
						waitedBy[oj] = append(waitedBy[oj], j)
					}
				} else if o.job != nil && txMayWait(j.unit, j.typ, o, o.job.Type, o.job.phase) {
					waitsQueued[j] = true
				}
			}
		}
	}
	// fromUseful: reached by following waits from a job that stays;
	// toUseful: leads by waits to such a job or to a queued one.
	walk := func(seeds []*txJob, next map[*txJob][]*txJob) map[*txJob]bool {
		seen := map[*txJob]bool{}
		for len(seeds) > 0 {
			j := seeds[len(seeds)-1]
			seeds = seeds[:len(seeds)-1]
			for _, n := range next[j] {
				if !seen[n] {
					seen[n] = true
					seeds = append(seeds, n)
				}
			}
		}
		return seen
	}
	var useful, toSeeds []*txJob
	for _, j := range tx.jobs {
		if !redundant[j] {
			useful = append(useful, j)
			toSeeds = append(toSeeds, j)
		} else if waitsQueued[j] {
			toSeeds = append(toSeeds, j)
		}
	}
	fromUseful := walk(useful, waitsFor)
	toUseful := walk(toSeeds, waitedBy)
	for j := range redundant {
		if fromUseful[j] && (toUseful[j] || waitsQueued[j]) {
			continue
		}
		delete(tx.jobs, j.unit)
	}
}

// txMayWait reports whether a job of type ta on ua may have to wait for
// one of type tb on ub (in phase phaseB): a restart is taken both as the
// stop it begins with and as the start it ends with.
func txMayWait(ua *Unit, ta string, ub *Unit, tb, phaseB string) bool {
	for _, pa := range restartPhases(ta) {
		for _, pb := range restartPhases(tb) {
			if phaseB != "" {
				pb = phaseB
			}
			if ordered(ua, ta, pa, ub, tb, pb) {
				return true
			}
		}
	}
	return false
}

func restartPhases(typ string) []string {
	if typ == api.JobRestart || typ == api.JobTryRestart {
		return []string{api.JobStop, api.JobStart}
	}
	return []string{""}
}

// redundantJob reports whether a job of type typ has nothing to do on a
// unit in state st (systemd's job_type_is_redundant; restart never is).
func redundantJob(typ string, st ActiveState) bool {
	switch typ {
	case api.JobStart, api.JobVerifyActive:
		return st.IsActiveOrReloading()
	case api.JobStop:
		return st.IsInactiveOrFailed()
	}
	return false
}

// breakCycles finds ordering cycles among the planned jobs and drops a
// non-essential job on each, or fails the transaction.
func (tx *transaction) breakCycles() error {
	for {
		cycle := tx.findCycle()
		if cycle == nil {
			return nil
		}
		names := make([]string, len(cycle))
		for i, j := range cycle {
			names[i] = j.unit.Name + "/" + j.typ
		}
		var victim *txJob
		for _, j := range cycle {
			if !j.essential && j != tx.anchor {
				victim = j
				break
			}
		}
		if victim == nil {
			return fmt.Errorf("ordering cycle with only essential jobs: %s; transaction is invalid", strings.Join(names, " after "))
		}
		tx.m.errorf("Found ordering cycle: %s; deleting job %s/%s to break it", strings.Join(names, " after "), victim.unit.Name, victim.typ)
		tx.m.consoleLine(consoleWarn, "Ordering cycle found, skipping %s", victim.unit.describe())
		tx.drop(victim)
	}
}

// drop removes a job and every non-essential job it pulled in alone.
func (tx *transaction) drop(j *txJob) {
	delete(tx.jobs, j.unit)
	for _, o := range tx.jobs {
		if o.by == j && !o.essential {
			tx.drop(o)
		}
	}
}

// findCycle returns one cycle of ordering edges among planned jobs, in
// "waits for" order, or nil. Only a unit's After/Before neighbours can be
// ordered against it, so the search walks those, not every pair.
func (tx *transaction) findCycle() []*txJob {
	const (
		white = iota
		grey
		black
	)
	color := map[*txJob]int{}
	var stack []*txJob
	var found []*txJob
	var visit func(j *txJob) bool
	visit = func(j *txJob) bool {
		color[j] = grey
		stack = append(stack, j)
		for _, k := range [...]DepKind{After, Before} {
			for name := range j.unit.deps[k] {
				o := tx.jobs[tx.m.units[name]]
				if o == nil || o == j || !txOrdered(j, o) {
					continue
				}
				switch color[o] {
				case grey:
					for i := len(stack) - 1; i >= 0; i-- {
						if stack[i] == o {
							found = append([]*txJob(nil), stack[i:]...)
							return true
						}
					}
				case white:
					if visit(o) {
						return true
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[j] = black
		return false
	}
	for _, u := range tx.order {
		if j, ok := tx.jobs[u]; ok && color[j] == white && visit(j) {
			return found
		}
	}
	return nil
}

// txOrdered applies the job ordering rule to planned jobs; a restart is
// ordered as the start it ends with.
func txOrdered(a, b *txJob) bool {
	ta, tb := a.typ, b.typ
	if ta == api.JobRestart {
		ta = api.JobStart
	}
	if tb == api.JobRestart {
		tb = api.JobStart
	}
	return ordered(a.unit, ta, "", b.unit, tb, "")
}

// checkConflicts refuses transactions that ask opposite things of one unit
// or, in mode "fail", that would replace queued jobs.
func (tx *transaction) checkConflicts() error {
	for _, u := range tx.order {
		j, ok := tx.jobs[u]
		if !ok {
			continue
		}
		if strings.Contains(j.typ, "|") {
			return fmt.Errorf("transaction is destructive: %s would need both %s", u.Name, strings.ReplaceAll(j.typ, "|", " and "))
		}
		old := u.job
		if old == nil {
			continue
		}
		if _, ok := mergeJobTypes(old.Type, j.typ); ok {
			continue
		}
		if tx.mode == api.ModeFail || old.irreversible {
			return fmt.Errorf("transaction for %s/%s is destructive (%s has '%s' job queued)", tx.anchor.unit.Name, tx.anchor.typ, u.Name, old.Type)
		}
	}
	return nil
}

// install turns planned jobs into jobs, merging with or replacing what is
// queued, and starts what can start.
func (tx *transaction) install() *Job {
	m := tx.m
	// Replacing a job finishes it, which would dispatch jobs of this
	// transaction before their peers are installed: hold dispatching until
	// every job is in.
	wasDispatching := m.dispatching
	m.dispatching = true
	var anchor *Job
	for _, u := range tx.order {
		t, ok := tx.jobs[u]
		if !ok {
			continue
		}
		var j *Job
		if old := u.job; old != nil {
			if merged, ok := mergeJobTypes(old.Type, t.typ); ok && (old.State == jobWaiting || merged == old.Type) {
				old.Type = merged
				j = old
			} else {
				m.cancelJob(old)
			}
		}
		if j == nil {
			m.nextJob++
			j = &Job{ID: m.nextJob, Unit: u, Type: t.typ, State: jobWaiting, created: time.Now()}
			if m.shuttingDown && (t.typ == api.JobStop) {
				j.irreversible = true
			}
			u.job = j
			m.jobs[j.ID] = j
			if d := u.jobTimeout(); d > 0 {
				jj := j
				j.timer = m.AfterFunc(d, func() { m.jobTimedOut(jj) })
			}
			m.jobChanged(j)
		}
		if t == tx.anchor {
			anchor = j
		}
	}
	m.dispatching = wasDispatching
	m.dispatchJobs()
	return anchor
}

func (m *Manager) jobTimedOut(j *Job) {
	if _, ok := m.jobs[j.ID]; !ok {
		return
	}
	m.warnf("%s: job %s timed out", j.Unit.Name, j.Type)
	m.finishJob(j, api.ResultTimeout, fmt.Sprintf("job %s/%s timed out", j.Unit.Name, j.Type))
}

func (m *Manager) unitNames() []string {
	names := make([]string, 0, len(m.units))
	for n := range m.units {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
