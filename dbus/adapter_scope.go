package dbus

import (
	"errors"

	"vigil/units"
	"vigil/units/api"
)

// The adapter's share of scopes and of the unit-file verbs link, preset,
// revert and add-wants (over units/scope.go and units/unitfileverbs.go). Like
// adapter.go, every method runs on the observer loop.

func (a *unitsAdapter) AbandonScope(name string) error {
	var aerr error
	err := a.onLoop(func() { aerr = a.m.AbandonScope(name) })
	var nf *units.NotFoundError
	switch {
	case errors.As(aerr, &nf):
		aerr = Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	case aerr != nil:
		aerr = Errorf(ErrNameScopeNotRunning, "%v", aerr)
	}
	return errors.Join(err, aerr)
}

func (a *unitsAdapter) LinkUnitFiles(paths []string, runtime, force bool) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.Link(paths, runtime, force) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) PresetUnitFiles(names []string, mode string) (bool, []InstallChange, error) {
	var ch api.Changes
	var carries bool
	var cerr error
	err := a.onLoop(func() { carries, ch, cerr = a.m.Preset(names, mode) })
	out, cerr := changes(ch, cerr)
	return carries, out, errors.Join(err, cerr)
}

func (a *unitsAdapter) PresetAllUnitFiles(mode string) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.PresetAll(mode) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) RevertUnitFiles(names []string) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.Revert(names) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}

func (a *unitsAdapter) AddDependencyUnitFiles(names []string, target, dep string, runtime, force bool) ([]InstallChange, error) {
	var ch api.Changes
	var cerr error
	err := a.onLoop(func() { ch, cerr = a.m.AddDependency(names, target, dep, runtime, force) })
	out, cerr := changes(ch, cerr)
	return out, errors.Join(err, cerr)
}
