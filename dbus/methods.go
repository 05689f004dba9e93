package dbus

import (
	"strings"

	"github.com/godbus/dbus/v5"
)

// call is one incoming method call being served.
type call struct {
	s      *Server
	p      *peerConn
	msg    *dbus.Message
	member string
	args   []any
}

func (c *call) str(i int) string {
	v, _ := c.args[i].(string)
	return v
}

func (c *call) strs(i int) []string {
	v, _ := c.args[i].([]string)
	return v
}

// unitRow is one entry of a(ssssssouso).
type unitRow struct {
	ID, Description, LoadState, ActiveState, SubState, Following string
	Path                                                         dbus.ObjectPath
	JobID                                                        uint32
	JobType                                                      string
	JobPath                                                      dbus.ObjectPath
}

// jobRow is one entry of a(usssoo).
type jobRow struct {
	ID                   uint32
	Unit, JobType, State string
	JobPath, UnitPath    dbus.ObjectPath
}

type processRow struct { // (sus)
	CGroup  string
	PID     uint32
	Command string
}

type fileRow struct{ Path, State string } // (ss)

type changeRow struct{ Type, Path, Source string } // (sss)

func toUnitRow(u UnitStatus) unitRow {
	r := unitRow{ID: u.Name, Description: u.Description, LoadState: u.LoadState, ActiveState: u.ActiveState,
		SubState: u.SubState, Following: u.Following, Path: UnitPath(u.Name), JobPath: "/"}
	if r.Description == "" {
		r.Description = u.Name
	}
	if u.JobID != 0 {
		r.JobID, r.JobType, r.JobPath = uint32(u.JobID), u.JobType, JobPath(u.JobID)
	}
	return r
}

// listUnits filters the loaded units as systemd does: a unit matches the
// states if its load, active or sub state is among them, and the patterns
// are globs on its name.
func (c *call) listUnits(states, patterns, names []string) ([]any, error) {
	units, err := c.s.m.ListUnits()
	if err != nil {
		return nil, err
	}
	out := []unitRow{}
	if names != nil {
		byName := map[string]UnitStatus{}
		for _, u := range units {
			byName[u.Name] = u
		}
		for _, n := range names {
			if u, ok := byName[n]; ok {
				out = append(out, toUnitRow(u))
			} else if validUnitName(n) {
				out = append(out, toUnitRow(UnitStatus{Name: n, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}))
			}
		}
		return []any{unitRows(out)}, nil
	}
	out = make([]unitRow, 0, len(units))
	for _, u := range units {
		if len(states) > 0 && !contains(states, u.LoadState) && !contains(states, u.ActiveState) && !contains(states, u.SubState) {
			continue
		}
		if !matchPatterns(patterns, u.Name) {
			continue
		}
		out = append(out, toUnitRow(u))
	}
	return []any{unitRows(out)}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// enqueue serves StartUnit and its siblings.
func (c *call) enqueue(name, jobType, mode string) ([]any, error) {
	if !validUnitName(name) {
		return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
	}
	switch mode {
	case "fail", "replace", "replace-irreversibly", "isolate", "flush", "ignore-dependencies", "ignore-requirements":
	default:
		return nil, Errorf(ErrNameInvalidArgs, "Job mode %s invalid.", mode)
	}
	j, err := c.s.m.Enqueue(name, jobType, mode)
	if err != nil {
		return nil, err
	}
	return []any{JobPath(j.ID)}, nil
}

func jobMethod(name, jobType string) method {
	return method{name: name, in: "ss", out: "o", argNames: []string{"name", "mode", "job"}, write: true,
		fn: func(c *call, _ *object) ([]any, error) { return c.enqueue(c.str(0), jobType, c.str(1)) }}
}

func unitJobMethod(name, jobType string) method {
	return method{name: name, in: "s", out: "o", argNames: []string{"mode", "job"}, write: true,
		fn: func(c *call, o *object) ([]any, error) { return c.enqueue(o.unit.ID, jobType, c.str(0)) }}
}

func nothing(_ *call, _ *object) ([]any, error) { return nil, nil }

func (c *call) unitPathOf(name string) ([]any, error) {
	if !validUnitName(name) {
		return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
	}
	var ok bool
	var err error
	if hc, cheap := c.s.m.(unitChecker); cheap {
		ok, err = hc.HasUnit(name)
	} else {
		_, ok, err = c.s.m.Unit(name)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	}
	return []any{UnitPath(name)}, nil
}

// unitChecker is a Manager that tells whether a unit is loaded without
// gathering all its properties (GetUnit, which systemctl calls after every
// start, needs no more).
type unitChecker interface {
	HasUnit(name string) (bool, error)
}

func (c *call) processes(name string) ([]any, error) {
	procs, err := c.s.m.UnitProcesses(name)
	if err != nil {
		return nil, err
	}
	out := []processRow{}
	for _, p := range procs {
		out = append(out, processRow(p))
	}
	return []any{out}, nil
}

func (c *call) unitFiles(states, patterns []string) ([]any, error) {
	files, err := c.s.m.UnitFiles()
	if err != nil {
		return nil, err
	}
	out := []fileRow{}
	for _, f := range files {
		name := f.Path[strings.LastIndexByte(f.Path, '/')+1:]
		if len(states) > 0 && !contains(states, f.State) || !matchPatterns(patterns, name) {
			continue
		}
		out = append(out, fileRow(f))
	}
	return []any{out}, nil
}

func changeRows(ch []InstallChange) []changeRow {
	out := []changeRow{}
	for _, c := range ch {
		out = append(out, changeRow(c))
	}
	return out
}

func shutdownMethod(name, action string) method {
	return method{name: name, write: true, fn: func(c *call, _ *object) ([]any, error) {
		return nil, c.s.m.Shutdown(action)
	}}
}

// managerMethods is org.freedesktop.systemd1.Manager's methods.
func managerMethods() []method {
	return []method{
		{name: "GetUnit", in: "s", out: "o", argNames: []string{"name", "unit"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.unitPathOf(c.str(0))
		}},
		{name: "GetUnitByPID", in: "u", out: "o", argNames: []string{"pid", "unit"}, fn: func(c *call, _ *object) ([]any, error) {
			pid, _ := c.args[0].(uint32)
			name, err := c.s.m.UnitByPID(pid)
			if err != nil {
				return nil, err
			}
			return []any{UnitPath(name)}, nil
		}},
		{name: "LoadUnit", in: "s", out: "o", argNames: []string{"name", "unit"}, fn: func(c *call, _ *object) ([]any, error) {
			name := c.str(0)
			if !validUnitName(name) {
				return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
			}
			u, err := c.s.m.LoadUnit(name)
			if err != nil {
				return nil, err
			}
			return []any{UnitPath(u.ID)}, nil
		}},
		jobMethod("StartUnit", "start"),
		{name: "StartUnitReplace", in: "sss", out: "o", argNames: []string{"old_unit", "new_unit", "mode", "job"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) { return c.enqueue(c.str(1), "start", c.str(2)) }},
		jobMethod("StopUnit", "stop"),
		jobMethod("ReloadUnit", "reload"),
		jobMethod("RestartUnit", "restart"),
		jobMethod("TryRestartUnit", "try-restart"),
		jobMethod("ReloadOrRestartUnit", "reload-or-restart"),
		jobMethod("ReloadOrTryRestartUnit", "reload-or-try-restart"),
		{name: "KillUnit", in: "ssi", argNames: []string{"name", "whom", "signal"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			sig, _ := c.args[2].(int32)
			whom := strings.TrimSuffix(c.str(1), "-fail")
			if whom == "" {
				whom = "all"
			}
			return nil, c.s.m.Kill(c.str(0), whom, sig)
		}},
		{name: "ResetFailedUnit", in: "s", argNames: []string{"name"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			return nil, c.s.m.ResetFailed([]string{c.str(0)})
		}},
		{name: "ResetFailed", write: true, fn: func(c *call, _ *object) ([]any, error) {
			return nil, c.s.m.ResetFailed(nil)
		}},
		{name: "GetUnitProcesses", in: "s", out: "a(sus)", argNames: []string{"name", "processes"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.processes(c.str(0))
		}},
		{name: "ListUnits", out: "a(ssssssouso)", argNames: []string{"units"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.listUnits(nil, nil, nil)
		}},
		{name: "ListUnitsFiltered", in: "as", out: "a(ssssssouso)", argNames: []string{"states", "units"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.listUnits(c.strs(0), nil, nil)
		}},
		{name: "ListUnitsByPatterns", in: "asas", out: "a(ssssssouso)", argNames: []string{"states", "patterns", "units"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.listUnits(c.strs(0), c.strs(1), nil)
		}},
		{name: "ListUnitsByNames", in: "as", out: "a(ssssssouso)", argNames: []string{"names", "units"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.listUnits(nil, nil, nonNil(c.strs(0)))
		}},
		{name: "ListJobs", out: "a(usssoo)", argNames: []string{"jobs"}, fn: func(c *call, _ *object) ([]any, error) {
			jobs, err := c.s.m.Jobs()
			if err != nil {
				return nil, err
			}
			out := []jobRow{}
			for _, j := range jobs {
				out = append(out, jobRow{uint32(j.ID), j.Unit, j.Type, j.State, JobPath(j.ID), UnitPath(j.Unit)})
			}
			return []any{out}, nil
		}},
		{name: "GetJob", in: "u", out: "o", argNames: []string{"id", "job"}, fn: func(c *call, _ *object) ([]any, error) {
			id, _ := c.args[0].(uint32)
			jobs, err := c.s.m.Jobs()
			if err != nil {
				return nil, err
			}
			for _, j := range jobs {
				if j.ID == uint64(id) {
					return []any{JobPath(j.ID)}, nil
				}
			}
			return nil, Errorf(ErrNameNoSuchJob, "Job %d does not exist.", id)
		}},
		{name: "CancelJob", in: "u", argNames: []string{"id"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			id, _ := c.args[0].(uint32)
			return nil, c.s.m.CancelJob(uint64(id))
		}},
		{name: "ClearJobs", write: true, fn: func(c *call, _ *object) ([]any, error) {
			return nil, c.s.m.ClearJobs()
		}},
		{name: "Subscribe", fn: nothing},
		{name: "Unsubscribe", fn: nothing},
		{name: "Reload", write: true, fn: func(c *call, _ *object) ([]any, error) { return nil, c.s.reload() }},
		{name: "Reexecute", write: true, fn: func(c *call, _ *object) ([]any, error) { return nil, c.s.reload() }},
		shutdownMethod("Exit", "exit"),
		shutdownMethod("PowerOff", "poweroff"),
		shutdownMethod("Reboot", "reboot"),
		shutdownMethod("Halt", "halt"),
		{name: "KExec", write: true, fn: func(*call, *object) ([]any, error) {
			return nil, Errorf(ErrNameNotSupported, "kexec is not supported by Vigil.")
		}},
		{name: "ListUnitFiles", out: "a(ss)", argNames: []string{"files"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.unitFiles(nil, nil)
		}},
		{name: "ListUnitFilesByPatterns", in: "asas", out: "a(ss)", argNames: []string{"states", "patterns", "files"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.unitFiles(c.strs(0), c.strs(1))
		}},
		{name: "GetUnitFileState", in: "s", out: "s", argNames: []string{"file", "state"}, fn: func(c *call, _ *object) ([]any, error) {
			st, err := c.s.m.UnitFileState(c.str(0))
			if err != nil {
				return nil, err
			}
			if st == "" || st == "not-found" {
				return nil, Errorf(ErrNameFileNotFound, "No such file or directory")
			}
			return []any{st}, nil
		}},
		{name: "EnableUnitFiles", in: "asbb", out: "ba(sss)", argNames: []string{"files", "runtime", "force", "carries_install_info", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				ch, err := c.s.m.EnableUnitFiles(c.strs(0))
				if err != nil {
					return nil, err
				}
				c.s.post(Event{Kind: EventUnitFilesChanged})
				return []any{true, changeRows(ch)}, nil
			}},
		{name: "DisableUnitFiles", in: "asb", out: "a(sss)", argNames: []string{"files", "runtime", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				ch, err := c.s.m.DisableUnitFiles(c.strs(0))
				if err != nil {
					return nil, err
				}
				c.s.post(Event{Kind: EventUnitFilesChanged})
				return []any{changeRows(ch)}, nil
			}},
		{name: "GetDefaultTarget", out: "s", argNames: []string{"name"}, fn: func(c *call, _ *object) ([]any, error) {
			t, err := c.s.m.DefaultTarget()
			return []any{t}, err
		}},
	}
}

// moreManagerMethods are the Manager's methods for transient units,
// properties, masks, links and the environment.
func moreManagerMethods() []method {
	fileChange := func(name, in, out string, args []string, fn func(c *call) ([]InstallChange, error)) method {
		return method{name: name, in: in, out: out, argNames: args, write: true, fn: func(c *call, _ *object) ([]any, error) {
			ch, err := fn(c)
			if err != nil {
				return nil, err
			}
			c.s.post(Event{Kind: EventUnitFilesChanged})
			if out == "ba(sss)" {
				return []any{true, changeRows(ch)}, nil
			}
			return []any{changeRows(ch)}, nil
		}}
	}
	return []method{
		{name: "StartTransientUnit", in: "ssa(sv)a(sa(sv))", out: "o", argNames: []string{"name", "mode", "properties", "aux", "job"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) { return c.startTransient() }},
		{name: "SetUnitProperties", in: "sba(sv)", argNames: []string{"name", "runtime", "properties"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				name, runtime := c.str(0), c.bool(1)
				if !validUnitName(name) {
					return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
				}
				props, err := decodeAssignments(c.args[2])
				if err != nil {
					return nil, err
				}
				assignments, err := setPropertyAssignments(props)
				if err != nil {
					return nil, err
				}
				return nil, c.s.m.SetUnitProperties(name, runtime, assignments)
			}},
		{name: "GetUnitByControlGroup", in: "s", out: "o", argNames: []string{"cgroup", "unit"}, fn: func(c *call, _ *object) ([]any, error) {
			name, err := c.s.m.UnitByControlGroup(c.str(0))
			if err != nil {
				return nil, err
			}
			return []any{UnitPath(name)}, nil
		}},
		fileChange("MaskUnitFiles", "asbb", "a(sss)", []string{"files", "runtime", "force", "changes"}, func(c *call) ([]InstallChange, error) {
			return c.s.m.MaskUnitFiles(c.strs(0), c.bool(1))
		}),
		fileChange("UnmaskUnitFiles", "asb", "a(sss)", []string{"files", "runtime", "changes"}, func(c *call) ([]InstallChange, error) {
			return c.s.m.UnmaskUnitFiles(c.strs(0), c.bool(1))
		}),
		fileChange("ReenableUnitFiles", "asbb", "ba(sss)", []string{"files", "runtime", "force", "carries_install_info", "changes"}, func(c *call) ([]InstallChange, error) {
			return c.s.m.ReenableUnitFiles(c.strs(0))
		}),
		fileChange("SetDefaultTarget", "sb", "a(sss)", []string{"name", "force", "changes"}, func(c *call) ([]InstallChange, error) {
			return c.s.m.SetDefaultTarget(c.str(0))
		}),
		{name: "GetUnitFileLinks", in: "sb", out: "as", argNames: []string{"name", "runtime", "links"}, fn: func(c *call, _ *object) ([]any, error) {
			links, err := c.s.m.UnitFileLinks(c.str(0), c.bool(1))
			return []any{nonNil(links)}, err
		}},
		{name: "SetEnvironment", in: "as", argNames: []string{"assignments"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			return nil, c.s.m.SetEnvironment(nil, c.strs(0))
		}},
		{name: "UnsetEnvironment", in: "as", argNames: []string{"names"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			return nil, c.s.m.SetEnvironment(c.strs(0), nil)
		}},
		{name: "UnsetAndSetEnvironment", in: "asas", argNames: []string{"names", "assignments"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			return nil, c.s.m.SetEnvironment(c.strs(0), c.strs(1))
		}},
	}
}

func (c *call) bool(i int) bool {
	v, _ := c.args[i].(bool)
	return v
}

// startTransient serves StartTransientUnit.
func (c *call) startTransient() ([]any, error) {
	name, mode := c.str(0), c.str(1)
	if err := validateTransientName(name); err != nil {
		return nil, err
	}
	switch mode {
	case "fail", "replace", "replace-irreversibly", "ignore-dependencies", "ignore-requirements":
	default:
		return nil, Errorf(ErrNameInvalidArgs, "Job mode %s invalid.", mode)
	}
	props, err := decodeAssignments(c.args[2])
	if err != nil {
		return nil, err
	}
	if aux, ok := c.args[3].([][]any); ok && len(aux) > 0 {
		return nil, Errorf(ErrNameNotSupported, "Auxiliary units are not supported by Vigil.")
	}
	spec, err := transientSpec(name, props)
	if err != nil {
		return nil, err
	}
	if err := resolveCallerPIDs(c, spec.PIDs); err != nil {
		return nil, err
	}
	if spec.AddRef {
		// Hold the reference before the unit exists, so that it cannot be
		// collected between its start and the client's first look.
		c.s.holdRef(c, name)
	}
	j, err := c.s.m.StartTransient(spec, mode)
	if err != nil {
		if spec.AddRef {
			c.s.dropRef(c, name)
		}
		return nil, err
	}
	if spec.Controller != "" {
		c.s.watchController(c, spec.Controller) // controller.go
	}
	return []any{JobPath(j.ID)}, nil
}

func managerSignals() []signal {
	return []signal{
		{"UnitNew", "so", []string{"id", "unit"}},
		{"UnitRemoved", "so", []string{"id", "unit"}},
		{"JobNew", "uos", []string{"id", "job", "unit"}},
		{"JobRemoved", "uoss", []string{"id", "job", "unit", "result"}},
		{"StartupFinished", "tttttt", []string{"firmware", "loader", "kernel", "initrd", "userspace", "total"}},
		{"UnitFilesChanged", "", nil},
		{"Reloading", "b", []string{"active"}},
	}
}

func unitMethods() []method {
	return []method{
		unitJobMethod("Start", "start"),
		unitJobMethod("Stop", "stop"),
		unitJobMethod("Reload", "reload"),
		unitJobMethod("Restart", "restart"),
		unitJobMethod("TryRestart", "try-restart"),
		unitJobMethod("ReloadOrRestart", "reload-or-restart"),
		unitJobMethod("ReloadOrTryRestart", "reload-or-try-restart"),
		{name: "Kill", in: "si", argNames: []string{"whom", "signal"}, write: true, fn: func(c *call, o *object) ([]any, error) {
			sig, _ := c.args[1].(int32)
			return nil, c.s.m.Kill(o.unit.ID, orDefault(c.str(0), "all"), sig)
		}},
		{name: "ResetFailed", write: true, fn: func(c *call, o *object) ([]any, error) {
			return nil, c.s.m.ResetFailed([]string{o.unit.ID})
		}},
		{name: "Ref", fn: func(c *call, o *object) ([]any, error) { return c.refUnit(o.unit.ID) }},
		{name: "Unref", fn: func(c *call, o *object) ([]any, error) {
			c.s.dropRef(c, o.unit.ID)
			return nil, nil
		}},
	}
}

func processMethods() []method {
	return []method{{name: "GetProcesses", out: "a(sus)", argNames: []string{"processes"}, fn: func(c *call, o *object) ([]any, error) {
		return c.processes(o.unit.ID)
	}}}
}

// buildTables assembles every interface.
func buildTables() *tables {
	stub := func(name string, props ...property) *iface { return newIface(name, nil, nil, props) }
	t := &tables{
		manager: newIface(ifaceManager, append(append(append(append(managerMethods(), moreManagerMethods()...), scopeAndInstallMethods()...), freezeManagerMethods()...), cleanManagerMethods()...), managerSignals(), managerProperties()),
		unit:    newIface(ifaceUnit, append(append(unitMethods(), freezeUnitMethods()...), cleanUnitMethods()...), nil, unitProperties()),
		service: newIface(ifaceService, processMethods(), nil, serviceProperties()),
		socket:  newIface(ifaceSocket, processMethods(), nil, socketProperties()),
		target:  stub(ifaceTarget),
		job: newIface(ifaceJob, append([]method{{name: "Cancel", write: true, fn: func(c *call, o *object) ([]any, error) {
			return nil, c.s.m.CancelJob(o.job.ID)
		}}}, jobOrderMethods()...), nil, jobProperties()),
		mount: stub("org.freedesktop.systemd1.Mount", mountProperties()...),
		timer: stub("org.freedesktop.systemd1.Timer", timerProperties()...),
		path:  stub("org.freedesktop.systemd1.Path", pathProperties()...),
		slice: stub("org.freedesktop.systemd1.Slice", cgroupProperties(func(o *object) string { return o.service().ControlGroup },
			(*object).service)...),
		scope:     newIface("org.freedesktop.systemd1.Scope", scopeMethods(), nil, scopeProperties()),
		device:    stub("org.freedesktop.systemd1.Device", constProp("SysFSPath", "")),
		automount: stub("org.freedesktop.systemd1.Automount", automountProperties()...),
		swap:      stub("org.freedesktop.systemd1.Swap", swapProperties()...),
	}
	t.standard = []*iface{
		newIface(ifacePeer, []method{{name: "Ping", fn: nothing}, {name: "GetMachineId", out: "s", argNames: []string{"machine_uuid"}}}, nil, nil),
		newIface(ifaceIntrospect, []method{{name: "Introspect", out: "s", argNames: []string{"xml_data"}}}, nil, nil),
		newIface(ifaceProperties, []method{
			{name: "Get", in: "ss", out: "v", argNames: []string{"interface_name", "property_name", "value"}},
			{name: "GetAll", in: "s", out: "a{sv}", argNames: []string{"interface_name", "props"}},
			{name: "Set", in: "ssv", argNames: []string{"interface_name", "property_name", "value"}, write: true},
		}, []signal{{"PropertiesChanged", "sa{sv}as", []string{"interface_name", "changed_properties", "invalidated_properties"}}}, nil),
	}
	return t
}
