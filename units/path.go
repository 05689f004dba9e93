package units

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/fanotify"
	"vigil/observer/inotify"
	"vigil/units/api"
	"vigil/units/procfs"
	"vigil/units/unitfile"
)

// FileAccess is what path units with hold = true need of the fanotify
// source (package observer/fanotify's *Source): permission marks on the
// watched paths. Held accesses come back as loop events of source
// "fanotify", which the path unit decides as a deciding observer.
type FileAccess interface {
	Mark(path string, mask fanotify.Mask) (fanotify.MarkID, error)
	Unmark(fanotify.MarkID)
}

// Path sub-states, as systemd names them.
const (
	pathDead    = "dead"
	pathWaiting = "waiting"
	pathRunning = "running"
	pathFailed  = "failed"
)

// Path unit results beyond the service ones (systemd's names).
const (
	resultTriggerLimitHit   = "trigger-limit-hit"
	resultUnitStartLimitHit = "unit-start-limit-hit"
)

// The kinds of a path unit's conditions, named as their keys.
const (
	specExists       = "path-exists"
	specExistsGlob   = "path-exists-glob"
	specChanged      = "path-changed"
	specModified     = "path-modified"
	specDirNotEmpty  = "directory-not-empty"
	parentWatchFlags = unix.IN_MOVE_SELF | unix.IN_DELETE_SELF | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_MOVED_TO
)

// specFlags are the inotify events each kind watches on its own path
// (systemd's flags_table in src/core/path.c).
func specFlags(kind string) uint32 {
	switch kind {
	case specExists, specExistsGlob:
		return unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB
	case specChanged:
		return unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	case specModified:
		return specFlags(specChanged) | unix.IN_MODIFY
	case specDirNotEmpty:
		return unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_MOVED_TO
	}
	return 0
}

// pathSpec is one watched path of a path unit.
type pathSpec struct {
	kind, path string
	// previousExists is what the last check saw (path-changed and
	// path-modified trigger when existence flips).
	previousExists bool
	watches        []inotify.WatchID
	// primary is the watch of the path itself, once it exists.
	primary inotify.WatchID
}

// watchPath is the path inotify watches for the spec: a glob's directory.
func (s *pathSpec) watchPath() string {
	if s.kind == specExistsGlob {
		dir := s.path
		for strings.ContainsAny(dir, "*?[") {
			dir = filepath.Dir(dir)
		}
		return dir
	}
	return s.path
}

// heldAccess is an open (or read) that waits for the triggered unit.
type heldAccess struct {
	hold uint64
	pid  string
	path string
}

// pathUnit is the behaviour of .path units: it starts its unit when one of
// its path conditions holds (inotify, as systemd), and with hold = true
// makes processes that open a watched path wait until that unit is active
// (fanotify permission events): the race between the opener and the
// service it needs is closed.
type pathUnit struct {
	u   *Unit
	m   *Manager
	cfg *unitfile.PathSection

	state  string
	result string
	specs  []*pathSpec
	// inotifyTriggered records an event since the last activation, as
	// systemd does: only then does the unit's deactivation re-check.
	inotifyTriggered bool
	triggerLimit     rateLimit

	// Hold: the marks and the deciding observer while started; holdNote
	// says how holding goes (or why it cannot), for status.
	marks    []fanotify.MarkID
	markPath []string
	holdObs  observer.ObserverID
	holdNote string
	held     []heldAccess
	// startJob is the start job a trigger enqueued, while it runs.
	startJob *Job
}

func newPathUnit(u *Unit) *pathUnit {
	p := &pathUnit{u: u, m: u.m, state: pathDead, result: resultSuccess}
	p.configure()
	return p
}

func (p *pathUnit) configure() {
	p.cfg = p.u.cfg.Path
	old := map[string]*pathSpec{}
	for _, s := range p.specs {
		old[s.kind+" "+s.path] = s
	}
	p.specs = nil
	add := func(kind string, paths []string) {
		for _, path := range paths {
			s := &pathSpec{kind: kind, path: filepath.Clean(path)}
			if o := old[kind+" "+s.path]; o != nil {
				s.previousExists = o.previousExists
			}
			p.specs = append(p.specs, s)
		}
	}
	add(specExists, p.cfg.PathExists)
	add(specExistsGlob, p.cfg.PathExistsGlob)
	add(specChanged, p.cfg.PathChanged)
	add(specModified, p.cfg.PathModified)
	add(specDirNotEmpty, p.cfg.DirectoryNotEmpty)
	p.triggerLimit.interval = p.cfg.TriggerLimitInterval
	p.triggerLimit.burst = p.cfg.TriggerLimitBurst
}

// target is the unit the path starts.
func (p *pathUnit) target() string {
	if p.cfg.Unit != "" {
		return p.cfg.Unit
	}
	return strings.TrimSuffix(p.u.Name, ".path") + ".service"
}

func (p *pathUnit) Reconfigure() {
	started := p.state == pathWaiting || p.state == pathRunning
	if started {
		p.unwatch()
		p.unhold()
	}
	p.configure()
	if started {
		p.hold()
		if p.state == pathWaiting {
			p.enterWaiting(false, true, false)
		}
	}
}

func (p *pathUnit) setState(sub string) {
	p.state = sub
	if sub != pathWaiting {
		p.unwatch()
	}
	switch sub {
	case pathWaiting, pathRunning:
		p.u.SetState(StateActive, sub)
	case pathFailed:
		p.u.SetState(StateFailed, sub)
	default:
		p.u.SetState(StateInactive, sub)
	}
}

func (p *pathUnit) Start() error {
	if p.state == pathWaiting || p.state == pathRunning {
		return nil
	}
	if t := p.m.units[p.m.canonical(p.target())]; t == nil || t.LoadState != LoadLoaded {
		if t, err := p.m.LoadUnit(p.target()); err != nil || t.LoadState != LoadLoaded {
			return fmt.Errorf("%s: the unit to trigger, %s, is not loaded", p.u.Name, p.target())
		}
	}
	p.result = resultSuccess
	p.makeDirectories()
	p.hold()
	p.enterWaiting(true, true, false)
	return nil
}

func (p *pathUnit) Stop() error {
	p.unhold()
	p.enterDead(resultSuccess)
	return nil
}

func (p *pathUnit) enterDead(result string) {
	if p.result == resultSuccess {
		p.result = result
	}
	p.unwatch()
	if p.result != resultSuccess {
		p.unhold()
		p.u.warnf("Failed with result '%s'.", p.result)
		p.setState(pathFailed)
		return
	}
	p.setState(pathDead)
}

func (p *pathUnit) failStartLimit() { p.enterDead(resultStartLimitHit) }

// makeDirectories is make-directory: the paths of the kinds that name a
// directory (not path-exists and path-exists-glob) are created.
func (p *pathUnit) makeDirectories() {
	if !p.cfg.MakeDirectory {
		return
	}
	for _, s := range p.specs {
		if s.kind == specExists || s.kind == specExistsGlob {
			continue
		}
		if err := os.MkdirAll(s.path, os.FileMode(p.cfg.DirectoryMode)&os.ModePerm); err != nil {
			p.u.warnf("make-directory %s: %v", s.path, err)
			continue
		}
		// MkdirAll's mode is masked by the umask; directory-mode is not.
		os.Chmod(s.path, os.FileMode(p.cfg.DirectoryMode)&os.ModePerm)
	}
}

// enterWaiting is systemd's path_enter_waiting: check, watch, check again
// (the path may have changed between the first check and the watch).
func (p *pathUnit) enterWaiting(initial, recheck, fromTrigger bool) {
	if recheck && p.checkGood(initial, fromTrigger) {
		p.enterRunning("a path condition holds")
		return
	}
	if err := p.watch(); err != nil {
		p.u.warnf("Failed to enter waiting state: %v", err)
		p.enterDead(resultResources)
		return
	}
	if recheck && p.checkGood(false, fromTrigger) {
		p.enterRunning("a path condition holds")
		return
	}
	if p.state != pathWaiting {
		p.setState(pathWaiting)
	}
}

// checkGood evaluates every condition; true when one holds.
func (p *pathUnit) checkGood(initial, fromTrigger bool) bool {
	good := false
	for _, s := range p.specs {
		if p.specGood(s, initial, fromTrigger) {
			good = true
		}
	}
	return good
}

func (p *pathUnit) specGood(s *pathSpec, initial, fromTrigger bool) bool {
	switch s.kind {
	case specExists:
		_, err := os.Stat(s.path)
		return err == nil
	case specExistsGlob:
		matches, _ := filepath.Glob(s.path)
		return len(matches) > 0
	case specDirNotEmpty:
		return dirHasEntries(s.path)
	case specChanged, specModified:
		_, err := os.Stat(s.path)
		exists := err == nil
		good := !initial && !fromTrigger && exists != s.previousExists
		s.previousExists = exists
		return good
	}
	return false
}

// dirHasEntries is directory-not-empty: entries that are hidden or backup
// files do not count, as in systemd's dir_is_empty.
func dirHasEntries(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(64)
		for _, n := range names {
			if !hiddenOrBackup(n) {
				return true
			}
		}
		if err != nil || len(names) == 0 {
			return false
		}
	}
}

func hiddenOrBackup(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	for _, suffix := range []string{".rpmnew", ".rpmsave", ".rpmorig", ".dpkg-old", ".dpkg-new", ".dpkg-tmp", ".dpkg-dist", ".dpkg-bak", ".dpkg-backup", ".dpkg-remove", ".ucf-new", ".ucf-old", ".ucf-dist", ".swp", ".bak", ".old", ".new"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// enterRunning starts the triggered unit (systemd's path_enter_running),
// within the trigger limit.
func (p *pathUnit) enterRunning(why string) {
	if j := p.u.job; j != nil && j.Type == api.JobStop {
		return // going down: do not start anything
	}
	if !p.triggerLimit.allow(p.m.now()) {
		p.u.warnf("Trigger limit hit, refusing further activation.")
		p.enterDead(resultTriggerLimitHit)
		return
	}
	p.u.infof("Triggering %s: %s.", p.target(), why)
	j, err := p.m.Enqueue(p.target(), api.JobStart, api.ModeReplace)
	if err != nil {
		p.u.warnf("Failed to queue unit startup job: %v", err)
		p.enterDead(resultResources)
		return
	}
	p.inotifyTriggered = false
	p.startJob = j
	j.OnDone(p.startJobDone)
	p.setState(pathRunning)
	if tu := j.Unit; j.State == "done" && tu.job == nil && tu.active.IsInactiveOrFailed() {
		// The job ended inside Enqueue (before we were running, so its
		// unit's notification passed us by): check again, as systemd does
		// when the triggered unit goes down.
		p.enterWaiting(false, true, true)
	}
}

// startJobDone releases the held accesses: allow when the unit came up
// (a oneshot that finished counts: its job succeeded), the configured
// verdict when it did not.
func (p *pathUnit) startJobDone(j *Job) {
	if p.startJob == j {
		p.startJob = nil
	}
	if j.Result == api.ResultDone {
		p.releaseHeld(observer.Allow, "the unit is up")
		return
	}
	p.releaseHeld(p.holdVerdict(), "the unit's start job ended with "+j.Result)
}

// triggeredChanged follows the started unit (systemd's
// path_trigger_notify): when it goes down, the conditions are checked
// again, and a path whose condition still holds starts it again.
func (p *pathUnit) triggeredChanged(other *Unit) {
	if other.Name != p.m.canonical(p.target()) || p.state == pathFailed || p.state == pathDead {
		return
	}
	if other.active == StateActive && other.job == nil {
		p.releaseHeld(observer.Allow, "the unit is active")
	}
	if s, ok := other.behaviour.(*service); ok && other.active == StateFailed && s.result == resultStartLimitHit {
		p.releaseHeld(p.holdVerdict(), "the unit hit its start limit")
		p.enterDead(resultUnitStartLimitHit)
		return
	}
	if other.job != nil {
		return
	}
	if other.active.IsInactiveOrFailed() && len(p.held) > 0 && p.startJob == nil {
		p.releaseHeld(p.holdVerdict(), "the unit is "+string(other.active))
	}
	switch {
	case p.state == pathRunning && other.active.IsInactiveOrFailed():
		p.enterWaiting(false, true, true)
	case p.state == pathWaiting && !other.active.IsInactiveOrFailed():
		p.setState(pathRunning)
	}
}

// watch (re)creates the inotify watches of every spec.
func (p *pathUnit) watch() error {
	p.unwatch()
	w, err := p.m.pathWatcher()
	if err != nil {
		return err
	}
	for _, s := range p.specs {
		if err := p.watchSpec(w, s); err != nil {
			p.unwatch()
			return err
		}
	}
	return nil
}

// watchSpec watches the path's components from the root down as far as
// they exist: the deepest existing directory for the creation of the next
// component, its ancestors only for being moved away (systemd's
// path_spec_watch), and the path itself, once it exists, for the events of
// its kind.
func (p *pathUnit) watchSpec(w *pathWatchers, s *pathSpec) error {
	target := s.watchPath()
	var comps []string
	for dir := target; ; dir = filepath.Dir(dir) {
		comps = append(comps, dir)
		if dir == "/" || dir == "." {
			break
		}
	}
	var last inotify.WatchID
	lastIdx := -1
	for i := len(comps) - 1; i >= 0; i-- {
		flags := uint32(parentWatchFlags)
		final := i == 0
		if final {
			flags = specFlags(s.kind)
			if s.kind == specExistsGlob {
				flags = parentWatchFlags
			}
		}
		id, err := w.add(comps[i], flags, p)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOTDIR) {
				break
			}
			return fmt.Errorf("watch %s: %w", comps[i], err)
		}
		if lastIdx >= 0 {
			// The parent exists and so does this: it needs to be watched
			// only for being moved away.
			w.remove(last)
			s.watches = s.watches[:len(s.watches)-1]
			if pid, err := w.add(comps[lastIdx], unix.IN_MOVE_SELF, p); err == nil {
				s.watches = append(s.watches, pid)
			}
		}
		s.watches = append(s.watches, id)
		last, lastIdx = id, i
		if final {
			s.primary = id
		}
	}
	if lastIdx < 0 {
		return fmt.Errorf("watch %s: no component of the path can be watched", target)
	}
	return nil
}

func (p *pathUnit) unwatch() {
	w := p.m.paths
	for _, s := range p.specs {
		if w != nil {
			for _, id := range s.watches {
				w.remove(id)
			}
		}
		s.watches, s.primary = nil, 0
	}
}

// pathChanged handles an inotify event for one of the unit's watches.
func (p *pathUnit) pathChanged(id inotify.WatchID, c *inotify.Change) {
	if p.state != pathWaiting && p.state != pathRunning {
		return
	}
	changed := false
	if c.Record.WD >= 0 {
		for _, s := range p.specs {
			if (s.kind == specChanged || s.kind == specModified) && s.primary == id {
				changed = true
			}
		}
	}
	p.inotifyTriggered = true
	if changed {
		p.enterRunning(fmt.Sprintf("%s changed (%s)", c.Path, inotify.MaskString(c.Record.Mask)))
		return
	}
	p.enterWaiting(false, true, false)
}

// pathWatchers is the manager's share of inotify for path units.
type pathWatchers struct {
	w       *inotify.Watcher
	byWatch map[inotify.WatchID]*pathUnit
	// warned is set once the manager said that fanotify is unavailable.
	warned bool
}

// pathWatcher opens the manager's inotify watcher on first use.
func (m *Manager) pathWatcher() (*pathWatchers, error) {
	if m.paths == nil {
		m.paths = &pathWatchers{byWatch: map[inotify.WatchID]*pathUnit{}}
	}
	if m.paths.w != nil {
		return m.paths, nil
	}
	w, err := inotify.Open(m.loop, inotify.Options{Logf: m.warnf})
	if err != nil {
		return nil, err
	}
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "path changes",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{inotify.SourceName}}}},
		Notify: m.onPathChange,
	}); err != nil {
		w.Close()
		return nil, err
	}
	m.paths.w = w
	return m.paths, nil
}

func (w *pathWatchers) add(path string, mask uint32, p *pathUnit) (inotify.WatchID, error) {
	id, err := w.w.Add(path, mask)
	if err == nil {
		w.byWatch[id] = p
	}
	return id, err
}

func (w *pathWatchers) remove(id inotify.WatchID) {
	delete(w.byWatch, id)
	w.w.Remove(id)
}

func (m *Manager) onPathChange(ev *observer.Event) {
	c, ok := ev.Payload.(*inotify.Change)
	if !ok || m.paths == nil {
		return
	}
	// One event may concern several units, and one unit's reaction (a
	// re-watch) removes its other watches: look each up as it comes.
	done := map[*pathUnit]bool{}
	for _, id := range c.Watches {
		p := m.paths.byWatch[id]
		if p == nil || done[p] {
			continue
		}
		done[p] = true
		p.pathChanged(id, c)
	}
}

// closePaths stops the inotify watcher.
func (m *Manager) closePaths() {
	if m.paths != nil && m.paths.w != nil {
		m.paths.w.Close()
		m.paths.w = nil
	}
}

// holdVerdict is hold-verdict as an observer verdict.
func (p *pathUnit) holdVerdict() observer.Verdict {
	v, _ := observer.ParseVerdict(string(p.cfg.HoldVerdict))
	return v
}

// hold marks the watched paths with fanotify and registers the deciding
// observer. Without fanotify the unit keeps working on inotify alone and
// says that it cannot hold.
func (p *pathUnit) hold() {
	p.holdNote = ""
	if !p.cfg.Hold {
		return
	}
	fa := p.m.opts.FileAccess
	if fa == nil {
		p.cannotHold(fanotify.ErrUnavailable)
		return
	}
	mask := fanotify.Open | fanotify.Access
	seen := map[string]bool{}
	for _, s := range p.specs {
		mp := s.path
		if s.kind == specExistsGlob {
			mp = s.watchPath()
		}
		if seen[mp] {
			continue
		}
		seen[mp] = true
		id, err := fa.Mark(mp, mask)
		if err != nil {
			p.unhold()
			p.cannotHold(fmt.Errorf("mark %s: %w", mp, err))
			return
		}
		p.marks = append(p.marks, id)
		p.markPath = append(p.markPath, mp)
	}
	sort.Strings(p.markPath)
	obs, err := p.m.loop.Register(observer.Observer{
		Guest: "supervisor",
		Name:  "hold " + p.u.Name,
		Filter: observer.Filter{Terms: []observer.Term{
			{Key: "source", Op: observer.OpEq, Values: []string{"fanotify"}},
			{Key: "mark", Op: observer.OpEq, Values: p.markPath}}},
		Notify:  p.onHeldAccess,
		Decides: true,
		// The unit answers at hold-timeout itself (holdTimedOut, which
		// says so in its log); the loop's overruling, a little later, is
		// only the safety net, so the two never race.
		HoldTimeout: p.cfg.HoldTimeout + time.Second,
		HoldDefault: p.holdVerdict(),
	})
	if err != nil {
		p.unhold()
		p.cannotHold(err)
		return
	}
	p.holdObs = obs
	p.holdNote = "holding opens of " + strings.Join(p.markPath, ", ") + " until " + p.target() + " is active"
	// No hold outlasts the source's backstop: the loop then takes
	// hold-verdict, whatever hold-timeout says.
	if b, ok := fa.(interface{ Backstop() time.Duration }); ok && p.cfg.HoldTimeout > b.Backstop() {
		backstop := unitfile.FormatDuration(b.Backstop())
		p.holdNote += " (at most " + backstop + ": hold-timeout is over the fanotify backstop)"
		p.u.warnf("hold-timeout=%s is longer than the fanotify backstop (%s): openers get hold-verdict (%s) after %s.",
			unitfile.FormatDuration(p.cfg.HoldTimeout), backstop, p.holdVerdict(), backstop)
	}
}

// cannotHold falls back to inotify: one warning per manager when fanotify
// is missing, and a note on the unit for status.
func (p *pathUnit) cannotHold(err error) {
	p.holdNote = "cannot hold (" + err.Error() + "); watching with inotify only"
	p.u.warnf("hold = true: cannot hold: %v; falling back to inotify, openers are not held", err)
	if errors.Is(err, fanotify.ErrUnavailable) {
		if p.m.paths == nil {
			p.m.paths = &pathWatchers{byWatch: map[inotify.WatchID]*pathUnit{}}
		}
		if !p.m.paths.warned {
			p.m.paths.warned = true
			p.m.warnf("fanotify permission events are unavailable: path units fall back to inotify and cannot hold openers")
			p.m.consoleLine(consoleWarn, "fanotify is unavailable: path units watch with inotify and cannot hold openers.")
		}
	}
}

// unhold removes the marks and the observer; accesses still held get the
// observer's default (hold-verdict) from the loop.
func (p *pathUnit) unhold() {
	if p.holdObs != 0 {
		p.m.loop.Unregister(p.holdObs)
		p.holdObs = 0
	}
	p.held = nil
	if fa := p.m.opts.FileAccess; fa != nil {
		for _, id := range p.marks {
			fa.Unmark(id)
		}
	}
	p.marks, p.markPath = nil, nil
}

// onHeldAccess decides a held open or read of a watched path.
func (p *pathUnit) onHeldAccess(ev *observer.Event) {
	if ev.Hold == nil {
		return
	}
	allow := func() { p.m.loop.Answer(ev.Hold.ID, p.holdObs, observer.Allow) }
	if p.state != pathWaiting && p.state != pathRunning {
		allow()
		return
	}
	path := ev.Attr("path")
	if !p.covers(path) {
		allow()
		return
	}
	tu := p.m.units[p.m.canonical(p.target())]
	if tu == nil {
		p.m.loop.Answer(ev.Hold.ID, p.holdObs, p.holdVerdict())
		return
	}
	if tu.active == StateActive && tu.job == nil {
		allow()
		return
	}
	pid, _ := strconv.Atoi(ev.Attr("pid"))
	if p.m.unitOwnsProcess(tu, pid, ev.Attr("cgroup")) {
		allow() // the unit's own processes are never held: they make it ready
		return
	}
	p.held = append(p.held, heldAccess{hold: ev.Hold.ID, pid: ev.Attr("pid"), path: path})
	id := ev.Hold.ID
	p.m.AfterFunc(p.cfg.HoldTimeout, func() { p.holdTimedOut(id) })
	if p.startJob == nil && (tu.job == nil || tu.job.Type != api.JobStart) {
		p.enterRunning(fmt.Sprintf("%s (pid %s) opened %s", ev.Attr("comm"), ev.Attr("pid"), path))
	}
}

// holdTimedOut answers a held access that is still waiting when
// hold-timeout passed with hold-verdict (the loop would overrule us with
// the same verdict) and says so in the unit's log.
func (p *pathUnit) holdTimedOut(id uint64) {
	for i, h := range p.held {
		if h.hold != id {
			continue
		}
		p.held = append(p.held[:i:i], p.held[i+1:]...)
		v := p.holdVerdict()
		// Logged before the answer: the released process may act on it
		// (and someone read the log) before a line written after.
		p.u.noticef("%s (pid %s) waited hold-timeout (%s) for %s; answering %s.", h.path, h.pid, unitfile.FormatDuration(p.cfg.HoldTimeout), p.target(), v)
		p.m.loop.Answer(id, p.holdObs, v)
		return
	}
}

// covers tells whether an accessed path is one the unit watches: the path
// itself, a glob's match, or an entry of a watched directory.
func (p *pathUnit) covers(path string) bool {
	for _, s := range p.specs {
		switch {
		case s.kind == specExistsGlob:
			if ok, _ := filepath.Match(s.path, path); ok {
				return true
			}
		case path == s.path:
			return true
		case filepath.Dir(path) == s.path:
			return true
		}
	}
	return false
}

// releaseHeld answers every held access with v.
func (p *pathUnit) releaseHeld(v observer.Verdict, why string) {
	if len(p.held) == 0 {
		return
	}
	n := 0
	for _, h := range p.held {
		if err := p.m.loop.Answer(h.hold, p.holdObs, v); err == nil {
			n++
		}
	}
	p.held = nil
	if n > 0 {
		p.u.infof("Released %d held access(es) with %s: %s.", n, v, why)
	}
}

// unitOwnsProcess tells whether pid (with its cgroup2 path as the fanotify
// source read it) belongs to u: in u's cgroup, or, without cgroups, one of
// its processes, their descendants or the members of its sessions.
func (m *Manager) unitOwnsProcess(u *Unit, pid int, cgroupName string) bool {
	s, ok := u.behaviour.(*service)
	if !ok {
		return false
	}
	if s.cgroup != "" && m.cgroups != nil && cgroupName != "" {
		name := m.cgroups.Name(s.cgroup)
		if cgroupName == name || strings.HasPrefix(cgroupName, name+"/") {
			return true
		}
	}
	if pid <= 0 {
		return false
	}
	if sid, _, ok := procSession(pid); ok && s.sessions[sid] {
		return true
	}
	for i, q := 0, pid; i < 32 && q > 1; i++ {
		if q == s.mainPID || q == s.controlPID {
			return true
		}
		q = procParent(q)
	}
	return false
}

// procParent reads a process's parent from /proc; 0 when unknown.
func procParent(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	st, err := procfs.ParseStat(data)
	if err != nil {
		return 0
	}
	return st.PPID
}

func (p *pathUnit) Reload() error          { return fmt.Errorf("%s cannot be reloaded", p.u.Name) }
func (p *pathUnit) CanReload() bool        { return false }
func (p *pathUnit) Kill(string, int) error { return fmt.Errorf("%s has no processes", p.u.Name) }
func (p *pathUnit) ResetFailed() {
	p.result = resultSuccess
	if p.state == pathFailed {
		p.setState(pathDead)
	}
}

func (p *pathUnit) Describe(st *api.UnitStatus) {
	st.Result = p.result
	if !contains(st.Triggers, p.target()) {
		st.Triggers = append(st.Triggers[:len(st.Triggers):len(st.Triggers)], p.target())
	}
	if st.Extra == nil {
		st.Extra = map[string]string{}
	}
	var paths []string
	for _, s := range p.specs {
		paths = append(paths, s.kind+" "+s.path)
	}
	st.Extra["paths"] = strings.Join(paths, "\n")
	st.Extra["activates"] = p.target()
	if p.cfg.Hold {
		st.Extra["hold"] = p.holdNote
		st.Extra["held"] = strconv.Itoa(len(p.held))
		if st.StatusText == "" && p.holdNote != "" {
			st.StatusText = p.holdNote
		}
	}
}

func (p *pathUnit) Properties() []api.Property {
	prop := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	var paths []string
	for _, s := range p.specs {
		paths = append(paths, s.kind+"="+s.path)
	}
	return []api.Property{
		prop("Unit", p.target()),
		prop("Paths", strings.Join(paths, " ")),
		prop("MakeDirectory", yesno(p.cfg.MakeDirectory)),
		prop("DirectoryMode", p.cfg.DirectoryMode.String()),
		prop("Result", p.result),
		prop("TriggerLimitIntervalUSec", unitfile.FormatDuration(p.cfg.TriggerLimitInterval)),
		prop("TriggerLimitBurst", strconv.Itoa(p.cfg.TriggerLimitBurst)),
		prop("Hold", yesno(p.cfg.Hold)),
		prop("HoldTimeoutUSec", unitfile.FormatDuration(p.cfg.HoldTimeout)),
		prop("HoldVerdict", string(p.cfg.HoldVerdict)),
		prop("HoldStatus", p.holdNote),
		prop("HeldAccesses", strconv.Itoa(len(p.held))),
	}
}
