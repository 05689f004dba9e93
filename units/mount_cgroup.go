package units

import "vigil/units/api"

// Mounts and swaps have a cgroup, as in systemd (system.slice/NAME.mount,
// or the slice they name): made when a start begins (commandCgroup, with
// the unit's [resources]), the mount helpers run in it (spawnInCgroup),
// it is shown as ControlGroup, and it is removed when the unit goes down
// (unitWentDown), unless a process (a FUSE daemon) is still in it.

// describeCommandCgroup shows a mount's or swap's group, when it has one,
// with its figures and processes.
func describeCommandCgroup(m *Manager, rel string, st *api.UnitStatus) {
	if rel == "" || m.cgroups == nil {
		return
	}
	st.ControlGroup = m.cgroups.Name(rel)
	stats := m.cgroups.Stats(rel)
	st.MemoryCurrent, st.MemoryPeak, st.TasksCurrent, st.CPUUsageNSec = stats.MemoryCurrent, stats.MemoryPeak, stats.TasksCurrent, stats.CPUUsageNSec
	pids, _ := m.cgroups.Procs(rel)
	for _, pid := range pids {
		st.Processes = append(st.Processes, api.Process{PID: pid, Command: procCommand(pid)})
	}
}
