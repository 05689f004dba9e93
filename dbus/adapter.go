package dbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"vigil/observer"
	"vigil/units"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// adapterTimeout bounds one visit to the manager's loop. systemctl's own
// method timeout is 25 s; a loop that does not answer in 10 s is stuck.
const adapterTimeout = 10 * time.Second

// unitsAdapter is the Manager over vigil/units: every method runs on the
// observer loop with loop.Call, because the manager is owned by the loop.
type unitsAdapter struct {
	loop    *observer.Loop
	m       *units.Manager
	started time.Time
}

// NewUnitsAdapter gives the D-Bus view of m, which is a guest of loop.
func NewUnitsAdapter(loop *observer.Loop, m *units.Manager) Manager {
	return &unitsAdapter{loop: loop, m: m, started: time.Now()}
}

// onLoop runs fn on the loop and waits for it, within adapterTimeout.
func (a *unitsAdapter) onLoop(fn func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), adapterTimeout)
	defer cancel()
	if err := a.loop.Call(ctx, fn); err != nil {
		return Errorf(ErrNameFailed, "the manager did not answer: %v", err)
	}
	return nil
}

func (a *unitsAdapter) Info() (ManagerInfo, error) {
	var info ManagerInfo
	err := a.onLoop(func() {
		info.Version = units.Version
		info.UserspaceTimestamp = a.started
		all := a.m.Units()
		for _, u := range all {
			info.NNames += 1 + uint32(len(u.Aliases))
			if st, _ := u.Active(); st == units.StateFailed {
				info.NFailedUnits++
			}
		}
		info.NJobs = uint32(len(a.m.Jobs()))
		switch {
		case a.m.IsShuttingDown():
			info.SystemState = "stopping"
		case info.NJobs > 0:
			info.SystemState = "starting"
		case info.NFailedUnits > 0:
			info.SystemState = "degraded"
		default:
			info.SystemState = "running"
		}
		info.DefaultTimeoutStart = 90 * time.Second
		info.DefaultTimeoutStop = 90 * time.Second
	})
	return info, err
}

func (a *unitsAdapter) ListUnits() ([]UnitStatus, error) {
	var out []UnitStatus
	err := a.onLoop(func() {
		for _, s := range a.m.List(api.ListArgs{All: true}) {
			out = append(out, UnitStatus{Name: s.Name, Description: s.Description, LoadState: s.Load,
				ActiveState: s.Active, SubState: s.Sub, JobID: s.JobID, JobType: s.JobType})
		}
	})
	return out, err
}

func (a *unitsAdapter) Unit(name string) (UnitProps, bool, error) {
	var props UnitProps
	var found bool
	err := a.onLoop(func() {
		if a.m.Unit(name) == nil {
			return
		}
		found = true
		props = a.describe(name)
	})
	return props, found, err
}

func (a *unitsAdapter) LoadUnit(name string) (UnitProps, error) {
	var props UnitProps
	var lerr error
	err := a.onLoop(func() {
		if _, lerr = a.m.LoadUnit(name); lerr == nil {
			props = a.describe(name)
		}
	})
	if err != nil {
		return props, err
	}
	if lerr != nil {
		return props, Errorf(ErrNameInvalidArgs, "%v", lerr)
	}
	return props, nil
}

// wallLayout is how units.Manager.Show renders timestamps.
const wallLayout = "Mon 2006-01-02 15:04:05 MST"

// describe gathers a loaded unit's properties; on the loop.
func (a *unitsAdapter) describe(name string) UnitProps {
	u := a.m.Unit(name)
	st, err := a.m.Status(u.Name)
	if err != nil {
		return notFoundUnit(name)
	}
	shown := map[string]string{}
	if props, err := a.m.Show(u.Name, nil); err == nil {
		for _, p := range props {
			shown[p.Name] = p.Value
		}
	}
	active, sub := u.Active()
	p := UnitProps{
		ID: u.Name, Names: append([]string{u.Name}, u.Aliases...), Description: u.Description,
		LoadState: u.LoadState, ActiveState: string(active), SubState: sub, LoadError: u.LoadError,
		FragmentPath: u.Fragment, DropInPaths: u.DropIns, Deps: map[string][]string{},
		StateChange: st.StateChange, ActiveEnter: st.ActiveEnter, ActiveExit: st.ActiveExit,
		InactiveEnter: st.InactiveEnter, NeedDaemonReload: st.NeedReload,
		ConditionResult: shown["ConditionResult"] != "no",
		JobID:           st.JobID, JobType: st.JobType,
	}
	if t, err := time.Parse(wallLayout, shown["InactiveExitTimestamp"]); err == nil {
		p.InactiveExit = t
	}
	if st.UnitFileState != "not-found" {
		p.UnitFileState = st.UnitFileState
	}
	loaded := u.LoadState == units.LoadLoaded
	p.CanStart, p.CanStop = loaded, loaded
	for k := units.Requires; k <= units.TriggeredBy; k++ {
		if deps := u.Deps(k); len(deps) > 0 {
			p.Deps[k.String()] = deps
		}
	}
	if u.Type == "service" {
		p.Service = serviceOf(st, shown)
	}
	return p
}

// serviceOf reads the Service state from a status and the `show` strings.
func serviceOf(st api.UnitStatus, shown map[string]string) *ServiceProps {
	atoi := func(k string) uint32 {
		n, _ := strconv.ParseUint(shown[k], 10, 32)
		return uint32(n)
	}
	dur := func(k string) time.Duration {
		d, err := unitfile.ParseDuration(shown[k])
		if err != nil || d == unitfile.Infinity {
			return 0
		}
		return d
	}
	s := &ServiceProps{
		Type: shown["Type"], Restart: shown["Restart"], KillMode: shown["KillMode"], PIDFile: shown["PIDFile"],
		RemainAfterExit: shown["RemainAfterExit"] == "yes",
		MainPID:         uint32(st.MainPID), ControlPID: atoi("ControlPID"),
		Result: st.Result, ReloadResult: shown["ReloadResult"], NRestarts: uint32(st.NRestarts),
		StatusText: st.StatusText, ControlGroup: st.ControlGroup,
		MemoryCurrent: st.MemoryCurrent, TasksCurrent: st.TasksCurrent, CPUUsageNSec: st.CPUUsageNSec,
		TimeoutStart: dur("TimeoutStartUSec"), TimeoutStop: dur("TimeoutStopUSec"), RestartDelay: dur("RestartUSec"),
	}
	if s.MainPID != 0 {
		s.ExecMainPID = s.MainPID
	}
	s.ExecMainCode, s.ExecMainStatus = exitCode(st.ExitStatus)
	return s
}

// exitCode turns "status=1" or "signal=KILL" into si_code and status.
func exitCode(text string) (int32, int32) {
	switch k, v, _ := strings.Cut(text, "="); k {
	case "status":
		n, err := strconv.Atoi(v)
		if err == nil {
			return 1, int32(n) // CLD_EXITED
		}
	case "signal":
		if sig, err := unitfile.ParseSignal(v); err == nil {
			return 2, int32(sig) // CLD_KILLED
		}
	}
	return 0, 0
}

func (a *unitsAdapter) UnitByPID(pid uint32) (string, error) {
	var name string
	err := a.onLoop(func() {
		for _, s := range a.m.List(api.ListArgs{All: true}) {
			if s.MainPID != 0 && uint32(s.MainPID) == pid {
				name = s.Name
				return
			}
		}
	})
	if err == nil && name == "" {
		err = Errorf(ErrNameNoUnitForPID, "PID %d does not belong to any loaded unit.", pid)
	}
	return name, err
}

func (a *unitsAdapter) UnitProcesses(name string) ([]Process, error) {
	var out []Process
	var serr error
	err := a.onLoop(func() {
		if a.m.Unit(name) == nil {
			if name != "-.slice" { // the root slice exists even where Vigil does not model it
				serr = Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
			}
			return
		}
		st, err := a.m.Status(name)
		if err != nil {
			serr = err
			return
		}
		cg := st.ControlGroup
		if cg == "" {
			cg = "/"
		}
		for _, p := range st.Processes {
			out = append(out, Process{CGroup: cg, PID: uint32(p.PID), Command: p.Command})
		}
	})
	return out, errors.Join(err, serr)
}

// jobError gives a job request's failure systemd's error name.
func jobError(name, jobType string, err error) error {
	var nf *units.NotFoundError
	msg := err.Error()
	switch {
	case errors.As(err, &nf):
		return Errorf(ErrNameNoSuchUnit, "Unit %s not found.", name)
	case strings.Contains(msg, "not applicable"):
		return Errorf(ErrNameJobTypeNotApplicable, "Job type %s is not applicable for unit %s.", jobType, name)
	case strings.Contains(msg, "isolate"):
		return Errorf(ErrNameNoIsolation, "%s", msg)
	case strings.Contains(msg, "invalid unit name"):
		return Errorf(ErrNameInvalidArgs, "%s", msg)
	}
	return Errorf(ErrNameLoadFailed, "%s", msg)
}

func (a *unitsAdapter) Enqueue(name, jobType, mode string) (Job, error) {
	var job Job
	var jerr error
	err := a.onLoop(func() {
		typ := jobType
		if typ == "reload-or-try-restart" {
			typ = api.JobTryRestart
			if u := a.m.Unit(name); u != nil {
				if st, _ := u.Active(); st.IsActiveOrReloading() {
					typ = api.JobReloadOrRestart
				}
			}
		}
		j, err := a.m.Enqueue(name, typ, mode)
		if err != nil {
			jerr = jobError(name, jobType, err)
			return
		}
		job = Job{ID: j.ID, Unit: j.Unit.Name, Type: j.Type, State: j.State, Result: j.Result}
	})
	return job, errors.Join(err, jerr)
}

func (a *unitsAdapter) CancelJob(id uint64) error {
	return Errorf(ErrNameNotSupported, "Vigil cannot cancel job %d yet.", id)
}

func (a *unitsAdapter) Jobs() ([]Job, error) {
	var out []Job
	err := a.onLoop(func() {
		for _, j := range a.m.Jobs() {
			out = append(out, Job{ID: j.ID, Unit: j.Unit, Type: j.Type, State: j.State, Result: j.Result})
		}
	})
	return out, err
}

func (a *unitsAdapter) Kill(name, whom string, signal int32) error {
	var kerr error
	err := a.onLoop(func() {
		kerr = a.m.Kill(api.KillArgs{Unit: name, Whom: whom, Signal: strconv.Itoa(int(signal))})
	})
	var nf *units.NotFoundError
	if errors.As(kerr, &nf) {
		return Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	}
	return errors.Join(err, kerr)
}

func (a *unitsAdapter) ResetFailed(names []string) error {
	var rerr error
	err := a.onLoop(func() { rerr = a.m.ResetFailed(names) })
	var nf *units.NotFoundError
	if errors.As(rerr, &nf) {
		return Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", nf.Name)
	}
	return errors.Join(err, rerr)
}

func (a *unitsAdapter) Reload() error {
	return a.onLoop(func() { a.m.Reload() })
}

// request is a units.Request that answers into fields, for the control
// methods the manager offers only through HandleRequest (shutdown).
type request struct {
	args   any
	failed error
	done   chan struct{}
}

func (r *request) Decode(v any) error {
	b, err := json.Marshal(r.args)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
func (r *request) Reply(any) {}
func (r *request) Fail(code int, format string, args ...any) {
	r.failed = fmt.Errorf(format, args...)
}
func (r *request) Progress(any) bool     { return true }
func (r *request) Done() <-chan struct{} { return r.done }

func (a *unitsAdapter) Shutdown(action string) error {
	req := &request{args: api.ShutdownArgs{Action: action}, done: make(chan struct{})}
	err := a.onLoop(func() { a.m.HandleRequest(api.MethodShutdown, req) })
	return errors.Join(err, req.failed)
}

func (a *unitsAdapter) UnitFiles() ([]UnitFile, error) {
	var out []UnitFile
	err := a.onLoop(func() {
		for _, u := range a.m.Units() {
			if u.Fragment == "" {
				continue
			}
			st := a.m.UnitFileState(u.Name)
			if st == "not-found" {
				st = "static"
			}
			out = append(out, UnitFile{Path: u.Fragment, State: st})
		}
	})
	return out, err
}

func (a *unitsAdapter) UnitFileState(name string) (string, error) {
	var st string
	err := a.onLoop(func() { st = a.m.UnitFileState(name) })
	if st == "not-found" {
		st = ""
	}
	return st, err
}

func (a *unitsAdapter) changeFiles(enable bool, names []string) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.EnableDisable(enable, names) })
	var out []InstallChange
	for _, c := range ch.Changes {
		out = append(out, InstallChange{Type: c.Type, Path: c.Path, Source: c.Destination})
	}
	if cerr != nil {
		cerr = Errorf(ErrNameFileNotFound, "%v", cerr)
	}
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) EnableUnitFiles(names []string) ([]InstallChange, error) {
	return a.changeFiles(true, names)
}

func (a *unitsAdapter) DisableUnitFiles(names []string) ([]InstallChange, error) {
	return a.changeFiles(false, names)
}

func (a *unitsAdapter) DefaultTarget() (string, error) {
	name := "default.target"
	err := a.onLoop(func() {
		if u := a.m.Unit(name); u != nil {
			name = u.Name
		}
	})
	return name, err
}

// Watch registers with the manager on the loop without waiting for it, so
// that a server may be built before the loop runs.
func (a *unitsAdapter) Watch(fn func(Event)) (func(), error) {
	var stopJobs, stopUnits func()
	a.loop.Do(func() {
		// seen holds the jobs JobNew was sent for; only the loop touches it.
		seen := map[uint64]bool{}
		stopJobs = a.m.WatchJobs(func(j *units.Job) {
			ev := Job{ID: j.ID, Unit: j.Unit.Name, Type: j.Type, State: j.State, Result: j.Result}
			switch {
			case j.State == "done":
				delete(seen, j.ID)
				fn(Event{Kind: EventJobRemoved, Job: ev})
			case !seen[j.ID]:
				seen[j.ID] = true
				fn(Event{Kind: EventJobNew, Job: ev})
			}
		})
		stopUnits = a.m.WatchUnits(func(u *units.Unit) {
			st, sub := u.Active()
			fn(Event{Kind: EventUnitChanged, Unit: u.Name, ActiveState: string(st), SubState: sub})
		})
	})
	return func() {
		a.loop.Do(func() {
			if stopJobs != nil {
				stopJobs()
				stopUnits()
			}
		})
	}, nil
}
