package units

import (
	"fmt"
	"strconv"
	"syscall"

	"vigil/units/api"
	"vigil/units/cgroup"
	"vigil/units/unitfile"
)

// Slice units (.slice) are the inner nodes of the cgroup tree, as in
// systemd: "-.slice" is the root, "system.slice" holds the system's
// services, and "a-b.slice" sits inside "a.slice". A slice needs no file
// (the loader makes one for every slice the tree needs, see
// unitfile.ScanCached); a file or drop-in only adds a description and
// [resources] limits, which apply to everything in the slice.
//
// The graph gives every slice Requires= and After= its parent, and every
// unit that gets a cgroup (service, socket, scope; see addSliceDeps)
// Requires= and After= its slice, so starting a unit starts its slices
// first, outermost first, and stopping a slice stops everything in it
// before the slice goes. A slice is active while started, like a target;
// starting it creates its group and writes its limits, stopping it
// removes the group once it is empty. The root slice is perpetual: active
// from the moment it is loaded, and it cannot be stopped.

// sliceUnit is the behaviour of .slice units.
type sliceUnit struct {
	u *Unit
	m *Manager
	// realized is the group the slice made when it started, relative to
	// the tree; "" while inactive, without cgroups and for the root.
	realized string
	// warnings are what the kernel could not apply at the last start or
	// reconfiguration (set-property returns them).
	warnings []string
}

func newSlice(u *Unit) *sliceUnit {
	s := &sliceUnit{u: u, m: u.m}
	if u.Name == cgroup.RootSlice && u.active != StateActive {
		// Perpetual: nothing watches a unit being loaded, so the state is
		// set without a transition.
		now := u.m.now()
		u.active, u.sub = StateActive, "active"
		u.activeEnter, u.stateChange, u.inactiveExit = now, now, now
	}
	return s
}

// sliceOfConfig names the slice a unit sits in: a slice's parent (none
// for the root), the slice = of [resources] for the types that have
// cgroups (system.slice when unset), "" for the others.
func sliceOfConfig(cfg *config) string {
	switch cfg.Type {
	case unitfile.TypeSlice:
		return parentSlice(cfg.Name)
	case unitfile.TypeService, unitfile.TypeSocket, unitfile.TypeScope, unitfile.TypeMount, unitfile.TypeSwap:
		if r := cfg.Resources; r != nil && r.Slice != "" {
			if _, err := cgroup.SlicePath(r.Slice); err == nil {
				return r.Slice
			}
		}
		return unitfile.DefaultSlice(cfg.Name)
	}
	return ""
}

// parentSlice is the slice enclosing a slice: "a-b.slice" is in
// "a.slice", top-level slices in "-.slice", the root in none.
func parentSlice(name string) string {
	if name == cgroup.RootSlice {
		return ""
	}
	if parents := cgroup.ParentSlices(name); len(parents) > 0 {
		return parents[len(parents)-1]
	}
	return cgroup.RootSlice
}

// SliceOf names the slice a unit sits in ("" if its type has none): the
// D-Bus Slice property.
func (m *Manager) SliceOf(name string) string {
	u := m.units[name]
	if u == nil || u.cfg == nil {
		return ""
	}
	return sliceOfConfig(u.cfg)
}

// addSliceDeps gives a unit the implicit Requires= and After= on its
// slice; they do not depend on default-dependencies, as in systemd.
func addSliceDeps(u *Unit, cfg *config, add func(u *Unit, k DepKind, name string)) {
	if cfg.LoadState != unitfile.LoadStateLoaded {
		// A unit that did not load has no cgroup; ordering it after a
		// slice would only delay the failure of what requires it.
		return
	}
	switch cfg.Type {
	// The types Vigil places in a cgroup of their own.
	case unitfile.TypeService, unitfile.TypeSocket, unitfile.TypeScope, unitfile.TypeSlice:
	default:
		return
	}
	if slice := sliceOfConfig(cfg); slice != "" {
		add(u, Requires, slice)
		add(u, After, slice)
	}
}

// path is the slice's group relative to the tree ("" for the root).
func (s *sliceUnit) path() (string, error) { return cgroup.SlicePath(s.u.Name) }

func (s *sliceUnit) Start() error {
	if s.m.cgroups != nil {
		rel, err := s.path()
		if err != nil {
			return err
		}
		if rel != "" {
			if err := s.apply(rel); err != nil {
				return fmt.Errorf("%s: %w", s.u.Name, err)
			}
			s.realized = rel
		}
	}
	s.u.SetState(StateActive, "active")
	return nil
}

// apply creates the group and writes the slice's [resources].
func (s *sliceUnit) apply(rel string) error {
	warnings, err := s.m.applyResources(s.u, rel)
	s.warnings = warnings
	for _, w := range warnings {
		s.u.warnf("Warning: %s", w)
	}
	return err
}

func (s *sliceUnit) Stop() error {
	if s.u.Name == cgroup.RootSlice {
		return fmt.Errorf("%s is the root of the tree and cannot be stopped", s.u.Name)
	}
	if s.realized != "" {
		if populated, _ := s.m.cgroups.Populated(s.realized); populated {
			s.u.warnf("Slice's cgroup %s still has processes; left in place.", s.m.cgroups.Name(s.realized))
		} else if err := s.m.cgroups.Remove(s.realized); err != nil {
			s.u.warnf("%v", err)
		}
		s.realized = ""
	}
	s.u.SetState(StateInactive, "dead")
	return nil
}

// IgnoresIsolate: isolating a target leaves slices alone, as systemd's
// slice_init does; stopping one would stop everything in it, whether the
// target pulls it in or not.
func (s *sliceUnit) IgnoresIsolate() bool { return true }

func (s *sliceUnit) Reload() error   { return fmt.Errorf("%s cannot be reloaded", s.u.Name) }
func (s *sliceUnit) CanReload() bool { return false }
func (s *sliceUnit) ResetFailed()    {}

// Kill signals every process in the slice's groups.
func (s *sliceUnit) Kill(whom string, sig int) error {
	if whom != "" && whom != "all" {
		return fmt.Errorf("%s has no %s process: only --kill-whom=all applies to a slice", s.u.Name, whom)
	}
	rel, ok := s.group()
	if !ok || rel == "" {
		return fmt.Errorf("%s has no cgroup of its own to signal", s.u.Name)
	}
	_, err := s.m.cgroups.Signal(rel, syscall.Signal(sig))
	return err
}

// group is the slice's group while it is active with cgroups; the root
// slice's is the tree's root ("").
func (s *sliceUnit) group() (string, bool) {
	if s.m.cgroups == nil || !s.u.active.IsActiveOrReloading() {
		return "", false
	}
	if s.u.Name == cgroup.RootSlice {
		return "", true
	}
	return s.realized, s.realized != ""
}

// Reconfigure applies new [resources] (daemon-reload, set-property) to
// an active slice at once.
func (s *sliceUnit) Reconfigure() {
	s.warnings = nil
	if s.realized == "" {
		return
	}
	if err := s.apply(s.realized); err != nil {
		s.u.warnf("Could not apply the new resource settings: %v", err)
		s.warnings = append(s.warnings, err.Error())
	}
}

func (s *sliceUnit) Describe(st *api.UnitStatus) {
	rel, ok := s.group()
	if !ok {
		return
	}
	st.ControlGroup = s.m.cgroups.Name(rel)
	stats := s.m.cgroups.Stats(rel)
	st.MemoryCurrent, st.MemoryPeak, st.TasksCurrent, st.CPUUsageNSec = stats.MemoryCurrent, stats.MemoryPeak, stats.TasksCurrent, stats.CPUUsageNSec
	st.Accounting = &api.Accounting{MemoryCurrent: stats.MemoryCurrent, MemoryPeak: stats.MemoryPeak, Tasks: stats.TasksCurrent,
		CPUUsageNSec: stats.CPUUsageNSec, IOReadBytes: stats.IOReadBytes, IOWriteBytes: stats.IOWriteBytes}
	pids, _ := s.m.cgroups.Procs(rel)
	for _, pid := range pids {
		st.Processes = append(st.Processes, api.Process{PID: pid, Command: procCommand(pid)})
	}
}

// Properties are the accounting of the slice's group, as systemd names
// them ("[not set]" for what the kernel does not count there).
func (s *sliceUnit) Properties() []api.Property {
	props := []api.Property{{Name: "Slice", Value: parentSlice(s.u.Name)}}
	rel, ok := s.group()
	if !ok {
		return append(props, api.Property{Name: "ControlGroup", Value: ""})
	}
	stats := s.m.cgroups.Stats(rel)
	num := func(v *uint64) string {
		if v == nil {
			return "[not set]"
		}
		return strconv.FormatUint(*v, 10)
	}
	return append(props,
		api.Property{Name: "ControlGroup", Value: s.m.cgroups.Name(rel)},
		api.Property{Name: "MemoryCurrent", Value: num(stats.MemoryCurrent)},
		api.Property{Name: "MemoryPeak", Value: num(stats.MemoryPeak)},
		api.Property{Name: "TasksCurrent", Value: num(stats.TasksCurrent)},
		api.Property{Name: "CPUUsageNSec", Value: num(stats.CPUUsageNSec)},
		api.Property{Name: "IOReadBytes", Value: num(stats.IOReadBytes)},
		api.Property{Name: "IOWriteBytes", Value: num(stats.IOWriteBytes)},
	)
}

// jobMessage words the console lines as systemd does for slices.
func (s *sliceUnit) jobMessage(jobType, event string) (string, bool) {
	switch event {
	case api.ResultDone:
		if jobType == api.JobStop {
			return "Removed slice " + s.u.describe() + ".", true
		}
		return "Created slice " + s.u.describe() + ".", true
	case "starting", "stopping":
		return "", true
	}
	return "", false
}
