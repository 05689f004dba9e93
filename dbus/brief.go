package dbus

import (
	"strings"

	"github.com/godbus/dbus/v5"
)

// unitBriefer is a Manager that can describe a unit cheaply: UnitBrief
// fills only the fields the brief properties (briefUnitProperty) read, and
// reads no files, cgroups or /proc to do it. A Get of one of those
// properties then costs a look-up instead of everything a unit object
// shows (its processes, resource figures, commands, log tail): systemctl
// reads NeedDaemonReload after every start, and scripts poll ActiveState.
type unitBriefer interface {
	UnitBrief(name string) (UnitProps, bool, error)
}

// briefUnitProperty names the Unit properties read from UnitBrief's
// fields only: ID, Names, Description, LoadState, ActiveState, SubState,
// LoadError, FragmentPath, DropInPaths, NeedDaemonReload, JobID/JobType,
// the state timestamps, Transient, InvocationID, CanStart and CanStop.
// TestBriefPropertiesMatchFull checks that each reads the same as from a
// full description.
func briefUnitProperty(name string) bool {
	switch strings.TrimSuffix(name, "Monotonic") {
	case "Id", "Names", "Description", "LoadState", "ActiveState", "SubState", "LoadError",
		"FragmentPath", "DropInPaths", "NeedDaemonReload", "Job", "CanStart", "CanStop",
		"Transient", "InvocationID", "StateChangeTimestamp", "ActiveEnterTimestamp",
		"ActiveExitTimestamp", "InactiveEnterTimestamp":
		return true
	}
	return false
}

// resolveBrief resolves a unit object for a Get of one property from the
// manager's brief description, when the manager offers one and the
// property is a brief one; false sends the caller to resolve.
func (s *Server) resolveBrief(p dbus.ObjectPath, ifcName, prop string) (*object, bool, error) {
	b, ok := s.m.(unitBriefer)
	ps := string(p)
	if !ok || !strings.HasPrefix(ps, unitPrefix) || !briefUnitProperty(prop) {
		return nil, false, nil
	}
	if ifcName != ifaceUnit && ifcName != "" {
		return nil, false, nil
	}
	name := UnescapeBusLabel(ps[len(unitPrefix):])
	if !validUnitName(name) {
		return nil, false, nil // resolve gives the error
	}
	props, found, err := b.UnitBrief(name)
	if err != nil {
		return nil, false, err
	}
	if !found {
		props = notFoundUnit(name)
	}
	o := s.unitObject(p, &props)
	if ifcName == "" && len(o.ifcs) > 1 && o.ifcs[0].byName[prop] != nil {
		// The type's interface answers first for an unnamed interface,
		// and may read fields the brief description leaves out.
		return nil, false, nil
	}
	return o, true, nil
}
