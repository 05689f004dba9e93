package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vigil/observer"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// Request is what the manager needs of a control request (the Payload of a
// "control" event): decode the arguments, answer once, send progress.
type Request interface {
	Decode(v any) error
	Reply(v any)
	Fail(code int, format string, args ...any)
	Progress(v any) bool
	Done() <-chan struct{}
}

// LogReader serves `initctl logs` and the log tail in `status`.
type LogReader interface {
	Tail(unit string, n int, since time.Time) []api.LogLine
	Follow(unit string) (<-chan api.LogLine, func())
}

// ShutdownFunc carries out poweroff, reboot or halt.
type ShutdownFunc func(action string) error

func (m *Manager) onControlEvent(ev *observer.Event) {
	req, ok := ev.Payload.(Request)
	if !ok {
		return
	}
	m.HandleRequest(ev.Kind, req)
}

// HandleRequest answers one control request on the loop goroutine.
func (m *Manager) HandleRequest(method string, req Request) {
	switch method {
	case api.MethodPing:
		req.Reply(api.Version{Version: Version, PID: os.Getpid(), PID1: os.Getpid() == 1})
	case api.MethodList:
		var args api.ListArgs
		if decodeOr(req, &args) {
			req.Reply(m.List(args))
		}
	case api.MethodStatus:
		var args api.UnitArgs
		if decodeOr(req, &args) {
			st, err := m.Status(args.Unit)
			if err != nil {
				failWith(req, err)
				return
			}
			req.Reply(st)
		}
	case api.MethodShow:
		var args api.ShowArgs
		if decodeOr(req, &args) {
			props, err := m.Show(args.Unit, args.Properties)
			if err != nil {
				failWith(req, err)
				return
			}
			req.Reply(props)
		}
	case api.MethodCat:
		var args api.UnitArgs
		if decodeOr(req, &args) {
			res, err := m.Cat(args.Unit)
			if err != nil {
				failWith(req, err)
				return
			}
			req.Reply(res)
		}
	case api.MethodJob:
		var args api.JobArgs
		if decodeOr(req, &args) {
			m.handleJob(req, args)
		}
	case api.MethodIsActive, api.MethodIsFailed, api.MethodIsEnabled:
		var args api.UnitsArgs
		if decodeOr(req, &args) {
			out := make([]string, 0, len(args.Units))
			for _, name := range args.Units {
				switch method {
				case api.MethodIsEnabled:
					out = append(out, m.UnitFileState(name))
				default:
					if u := m.units[name]; u != nil {
						out = append(out, string(u.active))
					} else {
						out = append(out, string(StateInactive))
					}
				}
			}
			req.Reply(out)
		}
	case api.MethodEnable, api.MethodDisable:
		var args api.UnitsArgs
		if decodeOr(req, &args) {
			ch, err := m.EnableDisable(method == api.MethodEnable, args.Units)
			if err != nil {
				failWith(req, err)
				return
			}
			req.Reply(ch)
		}
	case api.MethodDaemonReload:
		req.Reply(m.Reload())
	case api.MethodResetFailed:
		var args api.UnitsArgs
		if decodeOr(req, &args) {
			if err := m.ResetFailed(args.Units); err != nil {
				failWith(req, err)
				return
			}
			req.Reply(struct{}{})
		}
	case api.MethodKill:
		var args api.KillArgs
		if decodeOr(req, &args) {
			if err := m.Kill(args); err != nil {
				failWith(req, err)
				return
			}
			req.Reply(struct{}{})
		}
	case api.MethodListJobs:
		req.Reply(m.Jobs())
	case api.MethodCancel:
		var args api.CancelArgs
		if decodeOr(req, &args) {
			res, err := m.cancelRequest(args)
			if err != nil {
				failWith(req, err)
				return
			}
			req.Reply(res)
		}
	case api.MethodLogs:
		var args api.LogsArgs
		if decodeOr(req, &args) {
			m.handleLogs(req, args)
		}
	case api.MethodShutdown:
		var args api.ShutdownArgs
		if decodeOr(req, &args) {
			if m.onShutdown == nil {
				req.Fail(api.ErrGeneric, "shutdown is not available in this manager")
				return
			}
			if err := m.onShutdown(args.Action); err != nil {
				failWith(req, err)
				return
			}
			req.Reply(struct{}{})
		}
	case api.MethodEmit:
		var args api.EmitArgs
		if decodeOr(req, &args) {
			if args.Kind == "" {
				req.Fail(api.ErrInvalidArgs, "emit: an event needs a name")
				return
			}
			if !m.loop.Emit(observer.Event{Source: "emit", Kind: args.Kind, Attrs: args.Attrs}) {
				req.Fail(api.ErrGeneric, "emit: event queue full")
				return
			}
			req.Reply(struct{}{})
		}
	case api.MethodObserve:
		var args api.ObserveArgs
		if decodeOr(req, &args) {
			m.handleObserve(req, args)
		}
	case api.MethodObservers:
		var res api.ObserversResult
		for _, o := range m.loop.Observers() {
			res.Observers = append(res.Observers, api.ObserverRow{ID: uint64(o.ID), Guest: o.Guest, Name: o.Name, Filter: o.Filter, Matched: o.Matched, Dropped: o.Dropped,
				Decides: o.Decides, Overruled: o.Overrul})
		}
		for _, s := range m.loop.Sources() {
			res.Sources = append(res.Sources, api.SourceRow{Name: s.Name, Posted: s.Posted, Dropped: s.Dropped,
				Restarts: s.Restarts, LastError: s.LastError, Failed: s.Failed})
		}
		req.Reply(res)
	default:
		req.Fail(api.ErrInvalidArgs, "unknown method %q", method)
	}
}

// Version is Vigil's version, reported by ping and on D-Bus.
const Version = "0.1"

func decodeOr(req Request, v any) bool {
	if err := req.Decode(v); err != nil {
		req.Fail(api.ErrInvalidArgs, "bad arguments: %v", err)
		return false
	}
	return true
}

// failWith answers a request with err. A unit that does not exist gets
// ErrNotFound and systemd's words for it, so that the client can print
// what systemctl prints and choose systemctl's exit status per command.
func failWith(req Request, err error) {
	var nf *NotFoundError
	if errors.As(err, &nf) {
		req.Fail(api.ErrNotFound, "Unit %s not found.", nf.Name)
		return
	}
	var nl *notLoadedError
	if errors.As(err, &nl) {
		req.Fail(api.ErrNotFound, "Unit %s not loaded.", nl.name)
		return
	}
	req.Fail(api.ErrGeneric, "%v", err)
}

// notLoadedError is an operation on a unit that only exists as a name: no
// unit file, nothing running. systemd answers such a stop, kill or
// reset-failed with "Unit NAME not loaded."
type notLoadedError struct{ name string }

func (e *notLoadedError) Error() string { return fmt.Sprintf("unit %s not loaded", e.name) }

// loadedUnit returns the unit called name unless it is only a name: not
// found on disk, inactive and without a job.
func (m *Manager) loadedUnit(name string) (*Unit, error) {
	u := m.units[name]
	if u == nil || (u.LoadState == LoadNotFound && u.active.IsInactiveOrFailed() && u.job == nil) {
		return nil, &notLoadedError{name: name}
	}
	return u, nil
}

// SetShutdown installs what shutdown requests do.
func (m *Manager) SetShutdown(fn ShutdownFunc) { m.onShutdown = fn }

// SetLogReader installs where `logs` and `status` read log lines.
func (m *Manager) SetLogReader(r LogReader) { m.logReader = r }

// List returns the units a listing asks for.
func (m *Manager) List(args api.ListArgs) []api.UnitSummary {
	out := []api.UnitSummary{}
	for _, u := range m.Units() {
		if len(args.Types) > 0 && !contains(args.Types, u.Type) {
			continue
		}
		if len(args.States) > 0 && !contains(args.States, string(u.active)) && !contains(args.States, u.sub) && !contains(args.States, u.LoadState) {
			continue
		}
		if len(args.Patterns) > 0 && !matchAny(args.Patterns, u.Name) {
			continue
		}
		// As systemctl: without --all or --state, inactive units with no
		// job are left out, patterns or not.
		if !args.All && len(args.States) == 0 && u.active == StateInactive && u.job == nil && u.LoadState != LoadNotFound {
			continue
		}
		if !args.All && u.LoadState == LoadNotFound && u.active == StateInactive && u.job == nil {
			continue
		}
		s := u.summary()
		if svc, ok := u.behaviour.(*service); ok {
			s.MainPID = svc.mainPID
			if !u.active.IsInactiveOrFailed() {
				s.Accounting = svc.accounting()
			}
		}
		if x, ok := u.behaviour.(interface{ listExtra() map[string]string }); ok {
			s.Extra = x.listExtra()
		}
		out = append(out, s)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok || p == name {
			return true
		}
	}
	return false
}

// Status describes a unit for `initctl status`.
func (m *Manager) Status(name string) (api.UnitStatus, error) {
	u, err := m.LoadUnit(name)
	if err != nil {
		return api.UnitStatus{}, err
	}
	st := api.UnitStatus{UnitSummary: u.summary(), Fragment: u.Fragment, DropIns: u.DropIns,
		LoadError: u.LoadError, ActiveEnter: u.activeEnter, ActiveExit: u.activeExit,
		InactiveEnter: u.inactiveEnter, StateChange: u.stateChange, NeedReload: u.needsReload(),
		UnitFileState: m.UnitFileState(u.Name)}
	st.Triggers = u.Deps(Triggers)
	st.TriggeredBy = u.Deps(TriggeredBy)
	if !u.conditionResult {
		st.Conditions = u.conditionFailed
	}
	u.behaviour.Describe(&st)
	if m.logReader != nil {
		st.Logs = m.logReader.Tail(u.Name, 10, time.Time{})
	}
	return st, nil
}

// Show lists a unit's properties, systemd-named where systemd has them.
func (m *Manager) Show(name string, only []string) ([]api.Property, error) {
	u, err := m.LoadUnit(name)
	if err != nil {
		return nil, err
	}
	p := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format("Mon 2006-01-02 15:04:05 MST")
	}
	props := []api.Property{
		p("Id", u.Name), p("Names", strings.Join(append([]string{u.Name}, u.Aliases...), " ")),
		p("Description", u.describe()), p("LoadState", u.LoadState), p("ActiveState", string(u.active)),
		p("SubState", u.sub), p("FragmentPath", u.Fragment), p("DropInPaths", strings.Join(u.DropIns, " ")),
		p("UnitFileState", m.UnitFileState(u.Name)), p("LoadError", u.LoadError),
		p("StateChangeTimestamp", ts(u.stateChange)), p("ActiveEnterTimestamp", ts(u.activeEnter)),
		p("ActiveExitTimestamp", ts(u.activeExit)), p("InactiveEnterTimestamp", ts(u.inactiveEnter)),
		p("InactiveExitTimestamp", ts(u.inactiveExit)), p("ConditionResult", yesno(u.conditionResult)),
		p("NeedDaemonReload", yesno(u.needsReload())),
	}
	if u.cfg != nil {
		if slice := sliceOfConfig(u.cfg); slice != "" {
			props = append(props, p("Slice", slice))
		}
	}
	for k := DepKind(0); k < numDepKinds; k++ {
		if deps := u.Deps(k); len(deps) > 0 {
			props = append(props, p(k.String(), strings.Join(deps, " ")))
		}
	}
	if u.job != nil {
		props = append(props, p("Job", fmt.Sprintf("%d %s", u.job.ID, u.job.Type)))
	}
	props = append(props, u.behaviour.Properties()...)
	if len(only) == 0 {
		return props, nil
	}
	out := []api.Property{}
	for _, want := range only {
		for _, pr := range props {
			if pr.Name == want {
				out = append(out, pr)
			}
		}
	}
	return out, nil
}

// Cat returns a unit's fragment and drop-ins as they are on disk.
func (m *Manager) Cat(name string) (api.CatResult, error) {
	u, err := m.LoadUnit(name)
	if err != nil {
		return api.CatResult{}, err
	}
	if u.Fragment == "" {
		return api.CatResult{}, &NotFoundError{Name: name}
	}
	var res api.CatResult
	for _, f := range append([]string{u.Fragment}, u.DropIns...) {
		data, err := os.ReadFile(f)
		if err != nil {
			return res, fmt.Errorf("cat %s: %w", f, err)
		}
		res.Files = append(res.Files, api.CatFile{Path: f, Content: string(data)})
	}
	return res, nil
}

// EnableDisable creates or removes the links [install] asks for.
func (m *Manager) EnableDisable(enable bool, names []string) (api.Changes, error) {
	var res api.Changes
	for _, name := range names {
		// Enabling or disabling a name without a unit file is a typo
		// more often than not: say so, as systemctl does.
		if u, err := m.LoadUnit(name); err != nil {
			return res, err
		} else if u.LoadState == LoadNotFound {
			return res, &NotFoundError{Name: name}
		}
		var changes []unitfile.Change
		var err error
		if enable {
			changes, err = unitfile.Enable(m.opts.UnitPaths, name, m.opts.Specifiers)
		} else {
			changes, err = unitfile.Disable(m.opts.UnitPaths, name, m.opts.Specifiers)
		}
		for _, c := range changes {
			res.Changes = append(res.Changes, api.Change{Type: c.Kind, Path: c.Path, Destination: c.Target})
		}
		if err != nil {
			return res, err
		}
	}
	m.forgetFileStates()
	m.scan()
	return res, nil
}

// ResetFailed forgets failures of the named units (all when none named).
func (m *Manager) ResetFailed(names []string) error {
	units := m.Units()
	if len(names) > 0 {
		units = units[:0]
		for _, n := range names {
			u, err := m.loadedUnit(n)
			if err != nil {
				return err
			}
			units = append(units, u)
		}
	}
	for _, u := range units {
		u.behaviour.ResetFailed()
		u.startLimit.reset()
		if u.active == StateFailed {
			u.SetState(StateInactive, "dead")
		}
	}
	return nil
}

// Kill signals a unit's processes.
func (m *Manager) Kill(args api.KillArgs) error {
	u, err := m.loadedUnit(args.Unit)
	if err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if args.Signal != "" {
		s, err := unitfile.ParseSignal(args.Signal)
		if err != nil {
			return err
		}
		sig = s
	}
	return u.behaviour.Kill(args.Whom, int(sig))
}

func (m *Manager) handleJob(req Request, args api.JobArgs) {
	if len(args.Units) == 0 {
		req.Fail(api.ErrInvalidArgs, "no unit named")
		return
	}
	mode := args.Mode
	if mode == "" {
		mode = api.ModeReplace
	}
	var jobs []*Job
	for _, name := range args.Units {
		u, err := m.LoadUnit(name)
		if err != nil {
			failWith(req, err)
			return
		}
		if args.Type == api.JobStop {
			// Stopping what does not exist is an error in systemd, not
			// a no-op: the name is probably mistyped.
			if _, err := m.loadedUnit(name); err != nil {
				failWith(req, err)
				return
			}
		}
		if u.cfg != nil && args.Type == api.JobStart && u.cfg.Unit.RefuseManualStart {
			req.Fail(api.ErrGeneric, "operation refused, unit %s may be requested by dependency only", name)
			return
		}
		if u.cfg != nil && args.Type == api.JobStop && u.cfg.Unit.RefuseManualStop {
			req.Fail(api.ErrGeneric, "operation refused, unit %s may be requested by dependency only", name)
			return
		}
		if mode == api.ModeIsolate && (u.cfg == nil || !u.cfg.Unit.AllowIsolate) {
			req.Fail(api.ErrGeneric, "operation refused, unit %s may not be isolated", name)
			return
		}
		j, err := m.Enqueue(name, args.Type, mode)
		if err != nil {
			failWith(req, err)
			return
		}
		jobs = append(jobs, j)
	}
	outcome := func() api.JobOutcome {
		var o api.JobOutcome
		for _, j := range jobs {
			o.Jobs = append(o.Jobs, j.info())
		}
		return o
	}
	if args.NoBlock {
		req.Reply(outcome())
		return
	}
	pending := map[*Job]bool{}
	for _, j := range jobs {
		if j.State != "done" {
			pending[j] = true
		}
	}
	if len(pending) == 0 {
		req.Reply(outcome())
		return
	}
	var stop func()
	stop = m.WatchJobs(func(j *Job) {
		req.Progress(api.JobEvent{JobID: j.ID, Unit: j.Unit.Name, Type: j.Type, State: j.State, Result: j.Result})
		if j.State != "done" || !pending[j] {
			return
		}
		delete(pending, j)
		if len(pending) == 0 {
			stop()
			req.Reply(outcome())
		}
	})
}

func (m *Manager) handleLogs(req Request, args api.LogsArgs) {
	if m.logReader == nil {
		req.Fail(api.ErrGeneric, "no log store")
		return
	}
	if args.Unit != "" {
		if _, err := m.LoadUnit(args.Unit); err != nil {
			failWith(req, err)
			return
		}
	}
	// No count: everything a unit's log holds, as journalctl -u shows;
	// the merged log of every unit is cut to its latest lines so that one
	// answer stays a reasonable frame.
	n := args.Lines
	switch {
	case n == 0 && args.Unit == "":
		n = 1000
	case n == 0 && args.Follow:
		n = 10
	}
	if !args.Follow {
		req.Reply(m.logReader.Tail(args.Unit, n, args.Since))
		return
	}
	// Units write to the log store from their own goroutines, so a line
	// may land between reading the backlog and subscribing. Subscribing
	// first loses nothing; the lines both in the backlog and on the
	// channel are then skipped once on the channel.
	ch, cancel := m.logReader.Follow(args.Unit)
	backlog := m.logReader.Tail(args.Unit, n, args.Since)
	seen := make(map[api.LogLine]int, len(backlog))
	for _, l := range backlog {
		seen[l]++
		req.Progress(l)
	}
	go func() {
		defer cancel()
		for {
			select {
			case l, ok := <-ch:
				if !ok {
					req.Reply([]api.LogLine{})
					return
				}
				if seen[l] > 0 {
					if seen[l]--; seen[l] == 0 {
						delete(seen, l)
					}
					continue
				}
				req.Progress(l)
			case <-req.Done():
				return
			}
		}
	}()
}

func (m *Manager) handleObserve(req Request, args api.ObserveArgs) {
	f, err := observer.ParseFilter(args.Filter)
	if err != nil {
		req.Fail(api.ErrInvalidArgs, "%v", err)
		return
	}
	q := observer.NewQueue(1024)
	id, err := m.loop.Register(observer.Observer{Guest: "initctl observe", Name: "pid " + strconv.Itoa(os.Getpid()), Filter: f, Queue: q})
	if err != nil {
		req.Fail(api.ErrInvalidArgs, "%v", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-req.Done()
		cancel()
		q.Close()
		m.loop.Do(func() { m.loop.Unregister(id) })
	}()
	go func() {
		for {
			ev := q.Next(ctx)
			if ev == nil {
				return
			}
			oe := api.ObservedEvent{Seq: ev.Seq, Source: ev.Source, Kind: ev.Kind, Mono: ev.Mono, Wall: ev.Wall, Attrs: ev.Attrs}
			if ev.Hold != nil {
				oe.HoldID = ev.Hold.ID
			}
			req.Progress(oe)
		}
	}()
}
