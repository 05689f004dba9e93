package units

import "vigil/units/api"

// Brief is a loaded unit's identity and state as Status gives them, without
// what costs reads of files, cgroups or /proc: no processes, no resource
// figures, no log tail, no unit-file state, nothing from the unit's type.
// It serves the single-property reads clients make often (systemctl reads
// NeedDaemonReload after every start). False if no unit is loaded under
// name (an alias finds its unit); nothing is loaded.
func (m *Manager) Brief(name string) (api.UnitStatus, bool) {
	u := m.units[name]
	if u == nil {
		return api.UnitStatus{}, false
	}
	return api.UnitStatus{UnitSummary: u.summary(), Fragment: u.Fragment, DropIns: u.DropIns,
		LoadError: u.LoadError, ActiveEnter: u.activeEnter, ActiveExit: u.activeExit,
		InactiveEnter: u.inactiveEnter, StateChange: u.stateChange, NeedReload: u.needsReload()}, true
}
