package units

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"vigil/units/cgroup"
)

// Freezing a unit stops its processes where they are, through cgroup v2's
// freezer: writing 1 to the group's cgroup.freeze asks the kernel to
// freeze every task in it (and below it: a slice freezes its units), and
// cgroup.events says "frozen 1" once they all are. Thawing writes 0.
//
// The manager keeps no freezer state of its own: the cgroup's two files
// are the state, so it survives a re-exec and cannot drift from the
// kernel's. FreezerState reads them as systemd names the four states.

// Freezer states, systemd's names.
const (
	FreezerRunning  = "running"
	FreezerFreezing = "freezing"
	FreezerFrozen   = "frozen"
	FreezerThawing  = "thawing"
)

// Why a unit cannot be frozen or thawed; the D-Bus layer turns each into
// the error systemd answers.
var (
	// ErrFreezeNotSupported: the unit type has no cgroup of its own to
	// freeze (only services, scopes and slices do), or the kernel has no
	// freezer.
	ErrFreezeNotSupported = errors.New("unit does not support freezing")
	// ErrFreezeUnitBusy: a job is pending for the unit.
	ErrFreezeUnitBusy = errors.New("unit has a pending job")
	// ErrFreezeUnitInactive: the unit is not active, so it has no
	// processes to freeze.
	ErrFreezeUnitInactive = errors.New("unit is inactive")
)

// freezerGroup is u's cgroup (relative to the manager's tree) while it
// can be frozen; the error says why not.
func (m *Manager) freezerGroup(u *Unit) (string, error) {
	if m.cgroups == nil {
		return "", ErrFreezeNotSupported
	}
	rel, ok := freezableGroup(u)
	if !ok {
		return "", ErrFreezeNotSupported
	}
	if u.LoadState != LoadLoaded {
		return "", ErrFreezeUnitInactive
	}
	if u.job != nil {
		return "", ErrFreezeUnitBusy
	}
	if !u.active.IsActiveOrReloading() || rel == "" {
		return "", ErrFreezeUnitInactive
	}
	if _, err := os.Stat(m.cgroups.Path(rel) + "/cgroup.freeze"); err != nil {
		return "", ErrFreezeNotSupported
	}
	return rel, nil
}

// Freeze asks the kernel to freeze every process of the unit (systemctl
// freeze). It returns at once; FreezerState says "freezing" until all are
// stopped, then "frozen".
func (m *Manager) Freeze(name string) error { return m.setFrozen(name, true) }

// Thaw lets a frozen unit's processes run again (systemctl thaw).
func (m *Manager) Thaw(name string) error { return m.setFrozen(name, false) }

func (m *Manager) setFrozen(name string, frozen bool) error {
	verb, value, logged := "thaw", "0", "Thawing"
	if frozen {
		verb, value, logged = "freeze", "1", "Freezing"
	}
	u := m.units[name]
	if u == nil {
		return &NotFoundError{Name: name}
	}
	rel, err := m.freezerGroup(u)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, name, err)
	}
	if err := m.cgroups.Write(rel, "cgroup.freeze", value); err != nil {
		return fmt.Errorf("%s %s: %w", verb, name, err)
	}
	u.infof("%s %s.", logged, name)
	return nil
}

// FreezerState is running, freezing, frozen or thawing: what was asked
// (cgroup.freeze) against what the kernel reached (cgroup.events'
// "frozen"). A unit without a cgroup is running.
func (m *Manager) FreezerState(name string) string {
	u := m.units[name]
	if u == nil || m.cgroups == nil {
		return FreezerRunning
	}
	rel, _ := freezableGroup(u)
	if rel == "" {
		return FreezerRunning
	}
	asked, err := m.cgroups.Read(rel, "cgroup.freeze")
	if err != nil {
		return FreezerRunning
	}
	events, err := m.cgroups.Read(rel, "cgroup.events")
	if err != nil {
		return FreezerRunning
	}
	return freezerState(strings.TrimSpace(asked) == "1", eventsFrozen(events))
}

func freezerState(asked, frozen bool) string {
	switch {
	case asked && frozen:
		return FreezerFrozen
	case asked:
		return FreezerFreezing
	case frozen:
		return FreezerThawing
	}
	return FreezerRunning
}

// eventsFrozen reads the "frozen" key of a cgroup.events file.
func eventsFrozen(events string) bool {
	for _, line := range strings.Split(events, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == "frozen" {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// freezableGroup is u's cgroup relative to the manager's tree ("" while it
// has none); false if u's type cannot be frozen. The root slice's group is
// the manager's own tree, which is never frozen.
func freezableGroup(u *Unit) (string, bool) {
	switch b := u.behaviour.(type) {
	case *service:
		return b.cgroup, true
	case *scope:
		return b.cgroup, true
	case *sliceUnit:
		if u.Name == cgroup.RootSlice {
			return "", false
		}
		rel, _ := b.group()
		return rel, true
	}
	return "", false
}

// thawBeforeStop thaws a frozen unit that is about to be stopped, as
// systemd does: a frozen process cannot act on SIGTERM, so the stop would
// run into its timeout. A unit that is not frozen is left alone.
func (m *Manager) thawBeforeStop(u *Unit) {
	if m.cgroups == nil {
		return
	}
	if st := m.FreezerState(u.Name); st != FreezerFrozen && st != FreezerFreezing {
		return
	}
	rel, _ := freezableGroup(u)
	if err := m.cgroups.Write(rel, "cgroup.freeze", "0"); err != nil {
		u.warnf("Could not thaw %s before stopping it: %v", u.Name, err)
		return
	}
	u.infof("Thawed %s to stop it.", u.Name)
}

// CanFreeze reports whether name's type can be frozen here: a service,
// scope or non-root slice, with cgroups in use.
func (m *Manager) CanFreeze(name string) bool {
	u := m.units[name]
	if u == nil || m.cgroups == nil {
		return false
	}
	_, ok := freezableGroup(u)
	return ok
}
