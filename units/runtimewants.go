package units

import (
	"slices"

	"vigil/units/unitfile"
)

// Wants a unit gets at run time rather than from its files:
//
//   - the boot's vigil.wants= (systemd.wants=) units, wanted by the target
//     the boot starts, as systemd's debug generator links them into
//     default.target.wants/: they join the boot's one transaction, start
//     in parallel with the rest, ordered by their own dependencies, and
//     the target (with default dependencies) waits for them;
//   - the units a device's events pulled in through [trigger] uevent,
//     wanted by the device unit, as udev's SYSTEMD_WANTS= makes them
//     (devices.wants, device.go);
//   - the units that name a device unit in [install] wanted-by: device
//     units have no files to hold .wants links, so wanted-by applies
//     without enabling (startWantedOnPlug, mount.go, starts them).
//
// rebuildGraph adds both after the files' dependencies, so they survive a
// daemon-reload, and they show as Wants/WantedBy like any other.

// AddWants makes target want each of names for the manager's lifetime.
// Names that do not load are kept (and ignored by start transactions,
// with a log line, as a missing want is).
func (m *Manager) AddWants(target string, names []string) error {
	t, err := m.LoadUnit(target)
	if err != nil {
		return err
	}
	if m.runtimeWants == nil {
		m.runtimeWants = map[string][]string{}
	}
	for _, name := range names {
		if _, err := m.LoadUnit(name); err != nil {
			m.warnf("%s: wants %s: %v", t.Name, name, err)
			continue
		}
		if !slices.Contains(m.runtimeWants[t.Name], name) {
			m.runtimeWants[t.Name] = append(m.runtimeWants[t.Name], name)
		}
	}
	m.rebuildGraph()
	return nil
}

// addRuntimeWants is rebuildGraph's share of the run-time wants.
func (m *Manager) addRuntimeWants(add func(u *Unit, k DepKind, name string)) {
	for _, byUnit := range []map[string][]string{m.runtimeWants, m.devices.wants} {
		for name, wanted := range byUnit {
			u := m.units[name]
			if u == nil {
				continue
			}
			for _, w := range wanted {
				add(u, Wants, w)
			}
		}
	}
	for _, u := range m.units {
		if u.cfg == nil || u.LoadState != LoadLoaded {
			continue
		}
		for _, by := range u.cfg.Install.WantedBy {
			if dev := m.units[by]; dev != nil && dev.Type == string(unitfile.TypeDevice) {
				add(dev, Wants, u.Name)
			}
		}
	}
}
