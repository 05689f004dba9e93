package dbus

import (
	"errors"
	"strings"
	"time"

	"vigil/units"
	"vigil/units/unitfile"
)

// Cleaning a unit's directories (`systemctl clean`), as systemd's
// src/core/dbus-unit.c (bus_unit_method_clean) and dbus-manager.c
// (CleanUnit) serve it: Manager.CleanUnit(s name, as what) and
// Unit.Clean(as what), with what among runtime, state, cache, logs,
// configuration, fdstore and all. The call answers once the removal is
// under way; the unit is in the "maintenance" state until it is done, and
// systemctl waits for that state to end (PropertiesChanged, GetAll) and
// fails if CleanResult is not success. A Manager that does not implement
// unitCleaner answers NotSupported.

// The errors systemd gives for a clean it refuses.
const (
	ErrNameNothingToClean = "org.freedesktop.systemd1.NothingToClean"
)

// unitCleaner removes units' directories.
type unitCleaner interface {
	CleanUnit(name string, what []string) error
}

func (a *unitsAdapter) CleanUnit(name string, what []string) error {
	var cerr error
	if err := a.onLoop(func() { cerr = a.m.CleanUnit(name, what) }); err != nil {
		return err
	}
	var nf *units.NotFoundError
	switch {
	case cerr == nil:
		return nil
	case errors.As(cerr, &nf):
		return Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	case errors.Is(cerr, units.ErrCleanNotSupported):
		return Errorf(ErrNameNotSupported, "Unit '%s' does not support cleaning.", name)
	case errors.Is(cerr, units.ErrNothingToClean):
		return Errorf(ErrNameNothingToClean, "No matching resources found.")
	case errors.Is(cerr, units.ErrCleanUnitBusy):
		return Errorf(ErrNameUnitBusy, "Unit is not inactive or has pending job.")
	}
	// ParseCleanMask's "invalid resource type: X".
	return Errorf(ErrNameInvalidArgs, "%v", cerr)
}

// clean is Clean and CleanUnit: name's directories of the kinds in what.
func (c *call) clean(name string, what []string) ([]any, error) {
	cl, ok := c.s.m.(unitCleaner)
	if !ok {
		return nil, Errorf(ErrNameNotSupported, "Unit '%s' does not support cleaning.", name)
	}
	return nil, cl.CleanUnit(name, what)
}

// cleanManagerMethods is the Manager's CleanUnit.
func cleanManagerMethods() []method {
	return []method{{name: "CleanUnit", in: "sas", argNames: []string{"name", "mask"}, write: true,
		fn: func(c *call, _ *object) ([]any, error) {
			name := c.str(0)
			if !validUnitName(name) {
				return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
			}
			return c.clean(name, c.strs(1))
		}}}
}

// cleanUnitMethods is the Unit interface's Clean.
func cleanUnitMethods() []method {
	return []method{{name: "Clean", in: "as", argNames: []string{"mask"}, write: true,
		fn: func(c *call, o *object) ([]any, error) { return c.clean(o.unit.ID, c.strs(0)) }}}
}

// canCleanProperty is the Unit interface's CanClean: the kinds of
// directories the unit has configured.
func canCleanProperty() property {
	return unitProp("CanClean", "as", func(u *UnitProps) any { return nonNil(u.CanClean) })
}

// cleanResultProperty is the type interfaces' CleanResult.
func cleanResultProperty() property {
	return unitProp("CleanResult", "s", func(u *UnitProps) any { return orDefault(u.CleanResult, "success") })
}

// ExecDirectory is one kind of a unit's own directories (runtime, state,
// cache, logs, configuration): the paths relative to its root, and the
// mode.
type ExecDirectory struct {
	Kind  string
	Paths []string
	Mode  uint32
}

func execDirectories(dirs []units.ExecDirectory, preserve string) ([]ExecDirectory, string) {
	out := make([]ExecDirectory, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, ExecDirectory{Kind: d.Kind, Paths: d.Paths, Mode: d.Mode})
	}
	return out, preserve
}

// execDirectoryProperties are the exec-context properties of a unit's own
// directories, as systemd's dbus-execute.c types them: RuntimeDirectory
// (as), RuntimeDirectoryMode (u), ... and RuntimeDirectoryPreserve (s).
func execDirectoryProperties() []property {
	kinds := []string{"runtime", "state", "cache", "logs", "configuration"}
	dir := func(o *object, kind string) ExecDirectory {
		if o.unit != nil {
			for _, d := range o.unit.Directories {
				if d.Kind == kind {
					return d
				}
			}
		}
		return ExecDirectory{Kind: kind, Mode: 0o755}
	}
	var ps []property
	for _, kind := range kinds {
		name := strings.ToUpper(kind[:1]) + kind[1:] + "Directory"
		ps = append(ps,
			property{name: name, sig: "as", get: func(o *object) any { return nonNil(dir(o, kind).Paths) }},
			property{name: name + "Mode", sig: "u", get: func(o *object) any { return dir(o, kind).Mode }})
		if kind == "runtime" {
			ps = append(ps, unitProp("RuntimeDirectoryPreserve", "s", func(u *UnitProps) any {
				return orDefault(u.DirectoriesPreserve, "no")
			}))
		}
	}
	return append(ps, unitProp("TimeoutCleanUSec", "t", func(u *UnitProps) any { return timeoutCleanUSec(u.TimeoutClean) }))
}

// timeoutCleanUSec is timeout-clean in µs, UINT64_MAX (infinity) when it
// is unset or infinite, as systemd sends TimeoutCleanUSec.
func timeoutCleanUSec(d time.Duration) uint64 {
	if d <= 0 || d == unitfile.Infinity {
		return unknownU64
	}
	return uint64(d / time.Microsecond)
}
