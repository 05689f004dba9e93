package units

// releaseUnitCgroup removes a unit's group rel once it is empty and reports
// whether it did. A group that still has processes (kill-mode process or
// none) stays, watched, as systemd leaves it.
func (m *Manager) releaseUnitCgroup(u *Unit, rel string) bool {
	if populated, _ := m.cgroups.Populated(rel); populated {
		u.warnf("Unit's cgroup %s still has processes; left in place.", m.cgroups.Name(rel))
		return false
	}
	m.cgroupEvents.Unwatch(m.cgroups.Path(rel))
	if err := m.cgroups.Remove(rel); err != nil {
		u.warnf("%v", err)
	}
	return true
}
