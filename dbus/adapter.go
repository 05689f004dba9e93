package dbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"vigil/observer"
	"vigil/units"
	"vigil/units/api"
	"vigil/units/procfs"
	"vigil/units/unitfile"

	"golang.org/x/sys/unix"
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
	// finished is when the boot's default target was reached (zero
	// before); only the loop touches it.
	finished time.Time
}

// NewUnitsAdapter gives the D-Bus view of m, which is a guest of loop.
func NewUnitsAdapter(loop *observer.Loop, m *units.Manager) Manager {
	return &unitsAdapter{loop: loop, m: m, started: processStart()}
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
		info.FinishTimestamp = a.finished
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
		info.Environment = a.m.Environment()
		info.DefaultTimeoutStart = 90 * time.Second
		info.DefaultTimeoutStop = 90 * time.Second
	})
	return info, err
}

// ListUnits reads the units' names and states only: Manager.List would
// also read every running service's cgroup counters, files that ListUnits
// does not show, on the loop.
func (a *unitsAdapter) ListUnits() ([]UnitStatus, error) {
	var out []UnitStatus
	err := a.onLoop(func() {
		jobs := map[string]api.JobInfo{}
		for _, j := range a.m.Jobs() {
			jobs[j.Unit] = j
		}
		all := a.m.Units()
		out = make([]UnitStatus, 0, len(all))
		for _, u := range all {
			active, sub := u.Active()
			st := UnitStatus{Name: u.Name, Description: u.Description, LoadState: u.LoadState,
				ActiveState: string(active), SubState: sub}
			if st.Description == "" {
				st.Description = u.Name
			}
			if j, ok := jobs[u.Name]; ok {
				st.JobID, st.JobType = j.ID, j.Type
			}
			out = append(out, st)
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

// UnitBrief is Unit with only the fields the brief properties read
// (unitBriefer), from units.Manager.Brief: no files, cgroups or /proc.
func (a *unitsAdapter) UnitBrief(name string) (UnitProps, bool, error) {
	var props UnitProps
	var found bool
	err := a.onLoop(func() {
		st, ok := a.m.Brief(name)
		u := a.m.Unit(name)
		if !ok || u == nil {
			return
		}
		found = true
		loaded := st.Load == units.LoadLoaded
		props = UnitProps{ID: st.Name, Names: append([]string{u.Name}, u.Aliases...), Description: u.Description,
			LoadState: st.Load, ActiveState: st.Active, SubState: st.Sub, LoadError: st.LoadError,
			FragmentPath: st.Fragment, DropInPaths: st.DropIns, NeedDaemonReload: st.NeedReload,
			JobID: st.JobID, JobType: st.JobType, StateChange: st.StateChange, ActiveEnter: st.ActiveEnter,
			ActiveExit: st.ActiveExit, InactiveEnter: st.InactiveEnter, CanStart: loaded, CanStop: loaded,
			Transient: a.m.IsTransient(u.Name), InvocationID: a.m.InvocationID(u.Name)}
	})
	return props, found, err
}

// HasUnit is Unit's found without the properties (unitChecker).
func (a *unitsAdapter) HasUnit(name string) (bool, error) {
	var found bool
	err := a.onLoop(func() { found = a.m.Unit(name) != nil })
	return found, err
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
	switch u.Type {
	case "path", "automount", "timer":
		p.TypeProps = typeProps(shown)
	case "mount", "swap":
		p.TypeProps = typeProps(shown)
		p.Service = serviceOf(st, shown) // the cgroup figures
	case "scope", "slice":
		p.TypeProps = typeProps(shown)
		p.Service = serviceOf(st, shown) // the cgroup figures
	}
	p.Slice = a.m.SliceOf(u.Name)
	p.Transient = a.m.IsTransient(u.Name)
	p.InvocationID = a.m.InvocationID(u.Name)
	if u.Type == "service" {
		p.Service = serviceOf(st, shown)
		if rt, ok := a.m.ServiceRuntime(u.Name); ok {
			addRuntime(p.Service, rt)
		}
	}
	p.FreezerState, p.CanFreeze = a.m.FreezerState(u.Name), a.m.CanFreeze(u.Name)
	p.CanClean, p.CleanResult = a.m.CanClean(u.Name), a.m.CleanResult(u.Name)
	p.Directories, p.DirectoriesPreserve = execDirectories(a.m.ExecDirectories(u.Name))
	p.TimeoutClean = a.m.TimeoutClean(u.Name)
	if cmds, ok := a.m.SocketCommands(u.Name); ok {
		// The Socket interface reads its Exec* lists from Service.Exec,
		// as the Service interface does.
		p.Service = &ServiceProps{}
		addRuntime(p.Service, units.ServiceRuntime{Commands: cmds})
	}
	return p
}

// typeProps passes a unit type's `show` strings to the type interface,
// with durations (keys ending in USec, "1min 30s") turned into µs.
func typeProps(shown map[string]string) map[string]string {
	out := make(map[string]string, len(shown))
	for k, v := range shown {
		if strings.HasSuffix(k, "USec") {
			if _, err := strconv.ParseUint(v, 10, 64); err != nil {
				if d, err := unitfile.ParseDuration(v); err == nil {
					if d == unitfile.Infinity {
						v = "infinity"
					} else {
						v = strconv.FormatInt(d.Microseconds(), 10)
					}
				}
			}
		}
		out[k] = v
	}
	return out
}

// addRuntime adds what the service's last activation did: its commands
// with their runs and the main process's exit.
func addRuntime(s *ServiceProps, rt units.ServiceRuntime) {
	conv := func(runs []units.ExecRun) []ExecCommand {
		out := make([]ExecCommand, 0, len(runs))
		for _, r := range runs {
			out = append(out, ExecCommand{Path: r.Path, Argv: r.Argv, IgnoreFailure: r.IgnoreFailure,
				Start: r.Start, Exit: r.Exit, PID: uint32(r.PID), Code: r.Code, Status: r.Status})
		}
		return out
	}
	s.Exec = map[string][]ExecCommand{}
	for kind, runs := range rt.Commands {
		if kind == "ExecStart" {
			s.ExecStart = conv(runs)
			continue
		}
		s.Exec[kind] = conv(runs)
	}
	s.ExecMainStart, s.ExecMainExit = rt.ExecMainStart, rt.ExecMainExit
	if rt.ExecMainPID != 0 {
		s.ExecMainPID = uint32(rt.ExecMainPID)
	}
	if rt.ExecMainCode != 0 {
		s.ExecMainCode, s.ExecMainStatus = rt.ExecMainCode, rt.ExecMainStatus
	}
	if rt.ControlPID != 0 {
		s.ControlPID = uint32(rt.ControlPID)
	}
	s.Environment, s.WorkingDirectory, s.User, s.Group = rt.Environment, rt.WorkingDirectory, rt.User, rt.Group
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
		name, _ = a.m.UnitOfProcess(int(pid))
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
	case strings.Contains(msg, " is masked"):
		return Errorf(ErrNameUnitMasked, "Unit %s is masked.", name)
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
	var cerr error
	err := a.onLoop(func() { cerr = a.m.CancelJob(id) })
	var nsj *units.NoSuchJobError
	if errors.As(cerr, &nsj) {
		return Errorf(ErrNameNoSuchJob, "Job %d does not exist.", id)
	}
	return errors.Join(err, cerr)
}

func (a *unitsAdapter) ClearJobs() error {
	return a.onLoop(func() { a.m.ClearJobs() })
}

func (a *unitsAdapter) StartTransient(spec TransientSpec, mode string) (Job, error) {
	t := units.TransientUnit{Name: spec.Name, CollectMode: spec.CollectMode, PIDs: spec.PIDs, Controller: spec.Controller}
	for _, s := range spec.Settings {
		t.Settings = append(t.Settings, units.TransientSetting{Section: s.Section, Key: s.Key, Value: s.Value})
	}
	var job Job
	var jerr error
	err := a.onLoop(func() {
		j, err := a.m.StartTransient(t, mode, spec.AddRef)
		if err != nil {
			jerr = err
			return
		}
		job = Job{ID: j.ID, Unit: j.Unit.Name, Type: j.Type, State: j.State, Result: j.Result}
	})
	var ue *units.UnitExistsError
	switch {
	case errors.As(jerr, &ue):
		jerr = Errorf(ErrNameUnitExists, "%v", jerr)
	case jerr != nil:
		jerr = Errorf(ErrNameInvalidArgs, "%v", jerr)
	}
	return job, errors.Join(err, jerr)
}

func (a *unitsAdapter) UnrefUnit(name string) error {
	return a.onLoop(func() { a.m.UnrefUnit(name) })
}

func (a *unitsAdapter) SetUnitProperties(name string, runtime bool, assignments []string) error {
	var serr error
	err := a.onLoop(func() {
		if len(assignments) == 0 {
			if a.m.Unit(name) == nil {
				serr = Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
			}
			return
		}
		_, serr = a.m.SetProperty(api.SetPropertyArgs{Unit: name, Runtime: runtime, Properties: assignments})
	})
	var nf *units.NotFoundError
	if errors.As(serr, &nf) {
		return Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	}
	if serr != nil {
		if _, ok := serr.(*Error); !ok {
			serr = Errorf(ErrNameInvalidArgs, "%v", serr)
		}
	}
	return errors.Join(err, serr)
}

// changes converts install changes, giving errors systemd's names.
func changes(ch api.Changes, cerr error) ([]InstallChange, error) {
	var out []InstallChange
	for _, c := range ch.Changes {
		out = append(out, InstallChange{Type: c.Type, Path: c.Path, Source: c.Destination})
	}
	var nf *units.NotFoundError
	switch {
	case errors.As(cerr, &nf):
		cerr = Errorf(ErrNameNoSuchUnit, "Unit file %s does not exist.", nf.Name)
	case cerr != nil:
		cerr = Errorf(ErrNameInvalidArgs, "%v", cerr)
	}
	return out, cerr
}

func (a *unitsAdapter) MaskUnitFiles(names []string, runtime bool) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.Mask(names, runtime) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) UnmaskUnitFiles(names []string, runtime bool) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.Unmask(names, runtime) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) ReenableUnitFiles(names []string) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.Reenable(names) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) SetDefaultTarget(name string) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.SetDefaultTarget(name) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) UnitFileLinks(name string, runtime bool) ([]string, error) {
	var links []string
	var lerr error
	err := a.onLoop(func() { links, lerr = a.m.UnitFileLinks(name, runtime) })
	if lerr != nil {
		lerr = Errorf(ErrNameInvalidArgs, "%v", lerr)
	}
	return links, errors.Join(err, lerr)
}

func (a *unitsAdapter) SetEnvironment(unset, set []string) error {
	var serr error
	err := a.onLoop(func() { serr = a.m.SetEnvironment(unset, set) })
	if serr != nil {
		serr = Errorf(ErrNameInvalidArgs, "%v", serr)
	}
	return errors.Join(err, serr)
}

func (a *unitsAdapter) UnitByControlGroup(cg string) (string, error) {
	var name string
	var ok bool
	err := a.onLoop(func() { name, ok = a.m.UnitByControlGroup(cg) })
	if err == nil && !ok {
		err = Errorf(ErrNameNoSuchUnit, "Control group %s is not valid or not managed by this instance.", cg)
	}
	return name, err
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
				if a.finished.IsZero() && j.Type == api.JobStart && a.isDefaultTarget(j.Unit.Name) {
					a.finished = time.Now()
					fn(Event{Kind: EventStartupFinished, Startup: a.startupTimes()})
				}
			case !seen[j.ID]:
				seen[j.ID] = true
				fn(Event{Kind: EventJobNew, Job: ev})
			}
		})
		watchUnits := a.m.WatchUnits(func(u *units.Unit) {
			st, sub := u.Active()
			fn(Event{Kind: EventUnitChanged, Unit: u.Name, ActiveState: string(st), SubState: sub})
		})
		watchSet := a.m.WatchUnitSet(func(name string, added bool) {
			kind := EventUnitRemoved
			if added {
				kind = EventUnitNew
			}
			fn(Event{Kind: kind, Unit: name})
		})
		stopUnits = func() { watchUnits(); watchSet() }
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

// isDefaultTarget reports whether name is the unit default.target leads
// to; on the loop.
func (a *unitsAdapter) isDefaultTarget(name string) bool {
	u := a.m.Unit("default.target")
	return u != nil && u.Name == name
}

// startupTimes are StartupFinished's durations: firmware and loader are
// unknown (0), the kernel's share ends when this process started, and
// initrd is counted in the kernel's.
func (a *unitsAdapter) startupTimes() [6]time.Duration {
	now := monotonicNow()
	userspace := a.finished.Sub(a.started).Truncate(time.Microsecond)
	kernel := (now - time.Since(a.started)).Truncate(time.Microsecond)
	if kernel < 0 {
		kernel = 0
	}
	return [6]time.Duration{0, 0, kernel, 0, userspace, kernel + userspace}
}

// monotonicNow is CLOCK_MONOTONIC: the time since boot.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// processStart is when this process started, from /proc/self/stat (in
// clock ticks since boot, 100 per second on Linux); now if unreadable.
func processStart() time.Time {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return time.Now()
	}
	st, err := procfs.ParseStat(data)
	if err != nil || !st.HasStartTime {
		return time.Now()
	}
	since := monotonicNow() - time.Duration(st.StartTime)*10*time.Millisecond
	if since < 0 {
		return time.Now()
	}
	return time.Now().Add(-since)
}
