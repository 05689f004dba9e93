package units

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"vigil/observer"
	"vigil/observer/cgroupevents"
	"vigil/observer/clock"
	"vigil/observer/notify"
	"vigil/observer/process"
	"vigil/units/api"
	"vigil/units/cgroup"
	"vigil/units/unitfile"
)

// LogSink receives the lines the manager writes about units and the
// output their processes print.
type LogSink interface {
	Append(unit, stream, text string)
}

// Options configure a Manager.
type Options struct {
	// UnitPaths are searched in order; earlier wins.
	UnitPaths []string
	// RuntimeDir holds sockets and runtime state (/run/vigil for PID 1).
	RuntimeDir string
	// StateDir holds logs and persistent state (/var/lib/vigil).
	StateDir string
	// Console receives boot status lines ("[  OK  ] Started Foo.").
	Console io.Writer
	// Color decorates status lines with ANSI colours.
	Color bool
	// Log receives the manager's own log lines with the level the code
	// gave each (log.go). Nil hands them to Logf.
	Log func(level Level, line string)
	// Logf receives the manager's own log lines, without their level,
	// when Log is nil; nil too writes them to stderr.
	Logf func(format string, args ...any)
	// Logs stores per-unit log lines; nil keeps none.
	Logs LogSink
	// Spawner starts processes; nil uses the default.
	Spawner Spawner
	// Environment is passed to every unit process, before its own.
	Environment []string
	// KernelCommandLine is read by kernel-command-line conditions.
	KernelCommandLine string
	// Virtualization is read by virtualization conditions ("none" if bare).
	Virtualization string
	// Specifiers gives the values of %t, %h, %H and friends.
	Specifiers unitfile.Context
	// Clock is what timer units schedule by; nil is the machine's.
	Clock Clock
	// SlowJobAfter is when a running job is first announced on the
	// console, and how often after; default 3 s.
	SlowJobAfter time.Duration
	// Cgroups is the cgroup2 subtree units are placed in (see package
	// cgroup: ForPID1, ForManager). Nil means no cgroups, except in PID 1,
	// which takes the whole hierarchy; NoCgroups forbids even that.
	Cgroups   *cgroup.Tree
	NoCgroups bool
	// NotifySocket is where services send sd_notify messages; default
	// RuntimeDir/notify, "-" for none (services of type notify then fail).
	NotifySocket string
	// Devices turns on device events: device units, [trigger] uevent
	// units, coldplug and (for PID 1) module autoloading and /dev links
	// (device.go). Nil: device units appear only when named, and stay
	// dead.
	Devices *DeviceOptions
	// Generators write unit files into a directory on the unit path
	// (RuntimeDir/generated-units) before every scan: at start and on
	// daemon-reload (the fstab generator, units/fstab). Their errors are
	// load problems; they never stop the manager.
	Generators []Generator
	// FileAccess lets path units with hold = true hold openers (the
	// fanotify source, path.go). Nil: they watch with inotify only.
	FileAccess FileAccess
	// ExecDirectoryRoots are where runtime-directory and friends go
	// (execdirs.go); empty fields mean /run, /var/lib, /var/cache,
	// /var/log and /etc.
	ExecDirectoryRoots ExecDirectoryRoots
}

// Manager owns the units and their jobs. All its methods must be called on
// the observer loop's goroutine.
type Manager struct {
	loop *observer.Loop
	opts Options

	units map[string]*Unit // by name and by alias
	jobs  map[uint64]*Job

	// unitFiles keeps the parsed unit files between scans (config.go).
	unitFiles *unitfile.FileCache
	// scanStamps is unitFiles while a scan applies its configurations:
	// the stamps it holds are those of the files just read.
	scanStamps *unitfile.FileCache

	nextJob     uint64
	dispatching bool
	redispatch  bool

	pids map[int]processOwner

	shuttingDown bool
	problems     []string

	// started is when the manager started (on-startup's base).
	started time.Time
	// clock reports wall-clock and time zone changes to calendar timers.
	clock *clock.Watcher

	// slowTimer announces long-running jobs; slowTurn rotates among them.
	slowTimer observer.TimerID
	slowTurn  int

	onShutdown ShutdownFunc
	logReader  LogReader

	// cgroups is nil when units run without cgroups; cgroupEvents then
	// is too.
	cgroups      *cgroup.Tree
	cgroupEvents *cgroupevents.Watcher
	machine      cgroup.Machine

	jobWatchers  map[int]func(*Job)
	unitWatchers map[int]func(*Unit)
	nextWatcher  int

	// notify is the NOTIFY_SOCKET (nil without one); notifyStats counts
	// what the manager refused of its messages (notify.go).
	notify      *notify.Socket
	notifyStats NotifyStats
	// socketEvents is the one source all socket units' watchers post to
	// (socket.go): the loop cannot drop sources.
	socketEvents *observer.Source
	// devices follows device events (device.go); never nil.
	devices *devices
	// mounts is the mount table as the mountinfo source tells it
	// (mount.go); never nil after New.
	mounts *mountTable
	// autofsEvents is the one source the automount units' triggers post
	// to (automount.go); nil until the first starts.
	autofsEvents *observer.Source
	// paths is the inotify share of path units (path.go); nil until used.
	paths *pathWatchers

	// fileStates caches UnitFileState answers until the next scan or
	// install change (unitfiles.go); nil when empty.
	fileStates map[string]string
	// transients are the units made at run time (transient.go).
	transients map[string]*transientUnit
	// runs records each unit's commands of its last activation and its
	// invocation ID (execruns.go).
	runs map[*Unit]*unitRuns
	// unitSetWatchers hear of units added and removed (unitfiles.go).
	unitSetWatchers map[int]func(name string, added bool)
	// runtimeWants are wants added at run time, by wanting unit
	// (runtimewants.go).
	runtimeWants map[string][]string
	// cleans are the units' clean operations, running and done (clean.go).
	cleans map[*Unit]*cleanRun
	// scopeStopRequester asks scope controllers to stop their scopes
	// (scope.go); nil without a bus.
	scopeStopRequester *scopeStopRequest
}

// processOwner is told when a process it started exits.
type processOwner interface {
	processExited(pid int, ex process.Exit)
}

// New loads every unit and registers the manager as a guest of loop. Call
// it before loop.Run or on the loop goroutine.
func New(loop *observer.Loop, opts Options) (*Manager, error) {
	if opts.RuntimeDir == "" {
		return nil, fmt.Errorf("manager: no runtime directory")
	}
	if opts.Virtualization == "" {
		opts.Virtualization = "none"
	}
	clockUnset := opts.Clock == nil
	if opts.SlowJobAfter <= 0 {
		opts.SlowJobAfter = defaultSlowJobAfter
	}
	if opts.Spawner == nil {
		opts.Spawner = defaultSpawner{}
	}
	m := &Manager{
		loop:         loop,
		opts:         opts,
		units:        map[string]*Unit{},
		jobs:         map[uint64]*Job{},
		pids:         map[int]processOwner{},
		jobWatchers:  map[int]func(*Job){},
		unitWatchers: map[int]func(*Unit){},
		devices:      newDevices(opts.Devices),
		mounts:       newMountTable(),
	}
	if clockUnset {
		m.opts.Clock = systemClock{m}
	}
	m.started = m.now()
	for _, dir := range []string{opts.RuntimeDir, opts.StateDir} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("manager: %w", err)
		}
	}
	if err := m.setupCgroups(); err != nil {
		return nil, err
	}
	if err := m.writeBuiltinUnits(); err != nil {
		return nil, err
	}
	if err := m.setupSockets(); err != nil {
		return nil, err
	}
	if err := m.listenNotify(); err != nil {
		// Services of type notify fail without it; everything else runs.
		m.consoleLine(consoleWarn, "No sd_notify socket: %v", err)
		m.warnf("running without a notify socket: %v", err)
	}
	m.takeOverTransients()
	m.scan()
	// A broken unit never stops the boot, but it is said where the
	// administrator looks.
	for _, p := range m.problems {
		m.consoleLine(consoleWarn, "%s", p)
	}
	if _, err := loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "process exits",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"process"}}}},
		Notify: m.onProcessEvent,
	}); err != nil {
		return nil, err
	}
	if _, err := loop.Register(observer.Observer{
		Guest: "supervisor",
		Name:  "control requests",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"control"}},
			// audit.* calls are the audit guest's (observer/audit).
			{Key: "kind", Op: observer.OpNe, Values: []string{api.MethodSetProperty, "audit.*"}}}},
		Notify: m.onControlEvent,
	}); err != nil {
		return nil, err
	}
	if _, err := loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "set-property requests",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"control"}}, {Key: "kind", Op: observer.OpEq, Values: []string{api.MethodSetProperty}}}},
		Notify: m.onSetPropertyEvent,
	}); err != nil {
		return nil, err
	}
	if m.cgroupEvents != nil {
		if _, err := loop.Register(observer.Observer{
			Guest:  "supervisor",
			Name:   "cgroup events",
			Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{cgroupevents.SourceName}}}},
			Notify: m.onCgroupEvent,
		}); err != nil {
			return nil, err
		}
	}
	for _, kind := range []string{api.JobStart, api.JobStop, api.JobRestart, api.JobReload, api.JobTryRestart} {
		typ := kind
		loop.DefineActor(typ, func(ev *observer.Event, args map[string]string) error {
			_, err := m.Enqueue(args["unit"], typ, args["mode"])
			return err
		})
	}
	// Triggers register with the start actor, defined just above.
	m.syncTriggers()
	if err := m.startDevices(); err != nil {
		return nil, err
	}
	if err := m.startMounts(); err != nil {
		return nil, err
	}
	return m, nil
}

// Loop is the observer loop the manager is a guest of.
func (m *Manager) Loop() *observer.Loop { return m.loop }

// AfterFunc runs fn on the loop after d.
func (m *Manager) AfterFunc(d time.Duration, fn func()) observer.TimerID {
	return m.loop.AfterFunc(d, fn)
}

// StopTimer cancels a timer from AfterFunc.
func (m *Manager) StopTimer(id observer.TimerID) {
	if id != 0 {
		m.loop.StopTimer(id)
	}
}

// logf writes a line at info level; code that knows better says so with
// errorf, warnf, noticef or debugf (log.go).
func (m *Manager) logf(format string, args ...any) { m.logAt(LevelInfo, format, args...) }

// Problems lists the load problems of the last scan, one line each.
func (m *Manager) Problems() []string { return m.problems }

// Unit returns a loaded unit by name or alias, or nil.
func (m *Manager) Unit(name string) *Unit { return m.units[name] }

// Units lists every loaded unit once (aliases folded), sorted by name.
func (m *Manager) Units() []*Unit {
	out := make([]*Unit, 0, len(m.units))
	for name, u := range m.units {
		if u.Name == name {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// WatchJobs calls fn (on the loop) whenever a job is created, changes state
// or finishes. It returns a function that stops watching.
func (m *Manager) WatchJobs(fn func(*Job)) func() {
	m.nextWatcher++
	id := m.nextWatcher
	m.jobWatchers[id] = fn
	return func() { delete(m.jobWatchers, id) }
}

// WatchUnits calls fn (on the loop) whenever a unit changes state.
func (m *Manager) WatchUnits(fn func(*Unit)) func() {
	m.nextWatcher++
	id := m.nextWatcher
	m.unitWatchers[id] = fn
	return func() { delete(m.unitWatchers, id) }
}

func (m *Manager) jobChanged(j *Job) {
	for _, fn := range m.jobWatchers {
		fn(j)
	}
}

// unitChanged reacts to a unit's transition: its job, units bound to it,
// and OnFailure/OnSuccess units.
func (m *Manager) unitChanged(u *Unit, old, now ActiveState) {
	// A clean's end (maintenance to inactive) is not a unit going down.
	wentDown := now.IsInactiveOrFailed() && !old.IsInactiveOrFailed() && old != StateMaintenance
	if wentDown {
		m.unitWentDown(u) // before the job ends: its runtime directories are gone then
	}
	m.checkJob(u)
	m.noticeTriggers(u)
	if wentDown {
		for _, name := range u.Deps(BoundBy) {
			d := m.units[name]
			if d == nil || d.active.IsInactiveOrFailed() || (d.job != nil && isStopLike(d.job.Type)) {
				continue
			}
			d.infof("Unit is bound to inactive unit %s. Stopping, too.", u.Name)
			if _, err := m.Enqueue(d.Name, api.JobStop, api.ModeReplace); err != nil {
				d.warnf("Failed to enqueue stop job: %v", err)
			}
		}
		trigger := OnSuccess
		if now == StateFailed {
			trigger = OnFailure
		}
		if now == StateFailed || !u.manualStop {
			for _, name := range u.Deps(trigger) {
				if _, err := m.Enqueue(name, api.JobStart, api.ModeReplace); err != nil {
					u.warnf("Failed to enqueue %s job for %s: %v", trigger, name, err)
				} else {
					u.infof("Triggering %s dependency %s.", trigger, name)
				}
			}
		}
	}
	for _, fn := range m.unitWatchers {
		fn(u)
	}
}

// failUnitStartLimit puts a unit into failed with result start-limit-hit.
func (m *Manager) failUnitStartLimit(u *Unit) {
	if f, ok := u.behaviour.(interface{ failStartLimit() }); ok {
		f.failStartLimit()
		return
	}
	u.SetState(StateFailed, "failed")
}

// watchPID routes the exit of pid to owner.
func (m *Manager) watchPID(pid int, owner processOwner) { m.pids[pid] = owner }

func (m *Manager) unwatchPID(pid int) { delete(m.pids, pid) }

func (m *Manager) onProcessEvent(ev *observer.Event) {
	ex, ok := ev.Payload.(process.Exit)
	if !ok || ev.Kind != "exit" {
		return
	}
	owner, ok := m.pids[ex.PID]
	if !ok {
		return // an orphan we adopted and reaped: nothing to do
	}
	delete(m.pids, ex.PID)
	owner.processExited(ex.PID, ex)
}

// Status lines on the console, in systemd's familiar form.
type consoleKind int

const (
	consoleOK consoleKind = iota
	consoleFailed
	consoleDepend
	consoleTime
	consoleWarn
	consoleInfo
)

func (m *Manager) consoleLine(kind consoleKind, format string, args ...any) {
	if m.opts.Console == nil {
		return
	}
	tags := [...]string{"  OK  ", "FAILED", "DEPEND", " TIME ", " WARN ", ""}
	colors := [...]string{"\x1b[0;32m", "\x1b[0;1;31m", "\x1b[0;1;33m", "\x1b[0;1;31m", "\x1b[0;1;33m", ""}
	msg := fmt.Sprintf(format, args...)
	var line string
	switch {
	case kind == consoleInfo:
		line = "         " + msg
	case m.opts.Color:
		line = "[" + colors[kind] + tags[kind] + "\x1b[0m] " + msg
	default:
		line = "[" + tags[kind] + "] " + msg
	}
	io.WriteString(m.opts.Console, line+"\n")
}

// jobMessages lets a behaviour word its status lines ("Reached target").
type jobMessages interface {
	jobMessage(jobType, event string) (string, bool)
}

func (m *Manager) statusLine(j *Job, event string) {
	u := j.Unit
	if j.quiet {
		return
	}
	if jm, ok := u.behaviour.(jobMessages); ok {
		if msg, ok := jm.jobMessage(j.Type, event); ok {
			if msg != "" {
				kind := consoleOK
				if event == "starting" || event == "stopping" {
					kind = consoleInfo
				}
				m.consoleLine(kind, "%s", msg)
			}
			return
		}
	}
	desc := u.describe()
	stopping := j.effectiveStop() && j.Type != api.JobRestart || j.Type == api.JobStop
	switch event {
	case "starting":
		m.consoleLine(consoleInfo, "Starting %s...", desc)
	case "stopping":
		m.consoleLine(consoleInfo, "Stopping %s...", desc)
	case api.ResultDone:
		if stopping {
			m.consoleLine(consoleOK, "Stopped %s.", desc)
		} else if j.Type == api.JobReload {
			m.consoleLine(consoleOK, "Reloaded %s.", desc)
		} else if u.active.IsActiveOrReloading() && u.conditionResult {
			m.consoleLine(consoleOK, "Started %s.", desc)
		}
	case api.ResultFailed:
		if stopping {
			m.consoleLine(consoleFailed, "Stopped (with error) %s.", desc)
		} else {
			m.consoleLine(consoleFailed, "Failed to start %s.", desc)
			m.consoleLine(consoleInfo, "See 'initctl status %s' for details.", u.Name)
		}
	case api.ResultDependency:
		m.consoleLine(consoleDepend, "Dependency failed for %s.", desc)
	case api.ResultTimeout:
		verb := "starting"
		if stopping {
			verb = "stopping"
		}
		m.consoleLine(consoleTime, "Timed out %s %s.", verb, desc)
	case api.ResultAssert:
		m.consoleLine(consoleFailed, "Assertion failed for %s.", desc)
	}
	if m.opts.Logs != nil && (event == api.ResultFailed || event == api.ResultTimeout || event == api.ResultDependency) {
		m.opts.Logs.Append(u.Name, "vigil", fmt.Sprintf("Job %s/%s finished with result %s.", u.Name, j.Type, event))
	}
}

// ShuttingDown marks the manager as going down: stop jobs become
// irreversible and restart policies stop.
func (m *Manager) ShuttingDown() { m.shuttingDown = true }

// IsShuttingDown reports whether ShuttingDown was called.
func (m *Manager) IsShuttingDown() bool { return m.shuttingDown }

// Run is a convenience for callers that own the loop: it starts the reaper
// and runs the loop until ctx ends.
func Run(ctx context.Context, loop *observer.Loop) error {
	if _, err := process.Start(ctx, loop); err != nil {
		return err
	}
	return loop.Run(ctx)
}

// Logf writes a line to the manager's log at info level (LogAt takes
// another).
func (m *Manager) Logf(format string, args ...any) { m.logf(format, args...) }
