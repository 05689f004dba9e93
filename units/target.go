package units

import (
	"fmt"

	"vigil/units/api"
)

// target is the behaviour of .target units: a synchronisation point that is
// active while started.
type target struct{ u *Unit }

func (t *target) Start() error {
	t.u.SetState(StateActive, "active")
	return nil
}

func (t *target) Stop() error {
	t.u.SetState(StateInactive, "dead")
	return nil
}

func (t *target) Reload() error              { return fmt.Errorf("%s cannot be reloaded", t.u.Name) }
func (t *target) CanReload() bool            { return false }
func (t *target) Kill(string, int) error     { return fmt.Errorf("%s has no processes", t.u.Name) }
func (t *target) ResetFailed()               {}
func (t *target) Describe(*api.UnitStatus)   {}
func (t *target) Properties() []api.Property { return nil }
func (t *target) Reconfigure()               {}
func (t *target) jobMessage(jobType, event string) (string, bool) {
	if t.u.Type != "target" {
		return "", false
	}
	switch event {
	case api.ResultDone:
		if jobType == api.JobStop {
			return "Stopped target " + t.u.describe() + ".", true
		}
		return "Reached target " + t.u.describe() + ".", true
	case "starting", "stopping":
		return "", true
	}
	return "", false
}

// unsupported stands for unit types whose behaviour is not built yet: the
// unit loads and can be listed, but starting it fails with a clear reason.
type unsupported struct{ target }

func (x *unsupported) Start() error {
	return fmt.Errorf("%s: units of type %s cannot be started yet", x.u.Name, x.u.Type)
}

// inertBehaviour belongs to units that did not load: nothing can be done
// with them but listing and stopping.
type inertBehaviour struct{ u *Unit }

func (x *inertBehaviour) Start() error {
	return fmt.Errorf("unit %s is %s: %s", x.u.Name, x.u.LoadState, x.u.LoadError)
}
func (x *inertBehaviour) Stop() error                { x.u.SetState(StateInactive, "dead"); return nil }
func (x *inertBehaviour) Reload() error              { return x.Start() }
func (x *inertBehaviour) CanReload() bool            { return false }
func (x *inertBehaviour) Kill(string, int) error     { return x.Start() }
func (x *inertBehaviour) ResetFailed()               {}
func (x *inertBehaviour) Describe(*api.UnitStatus)   {}
func (x *inertBehaviour) Properties() []api.Property { return nil }
func (x *inertBehaviour) Reconfigure()               {}
